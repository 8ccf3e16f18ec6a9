//! A training run whatever its algorithm: the trainer core with its algorithm type erased, which
//! is what the command line drives (built by [`crate::registry`]).

use std::path::{Path, PathBuf};

use crate::algorithm::Algorithm;
use crate::collect::Episode;
use crate::config::{RunSettings, TrainConfig};
use crate::error::Result;
use crate::eval::{EvalOptions, Evaluation};
use crate::trainer::{IterationStats, Trainer};

/// A training run whatever its algorithm: what the command line drives.
pub trait Run {
    /// The shared settings of its config.
    fn settings(&self) -> RunSettings<'_>;
    /// Its resolved config as TOML.
    fn config_toml(&self) -> Result<String>;
    /// The names and TensorBoard tags of the values [`IterationStats::row`] gives.
    fn columns(&self) -> Vec<(String, Option<String>)>;
    /// Iterations done.
    fn iteration(&self) -> u64;
    /// Env steps done.
    fn global_step(&self) -> u64;
    /// The latest finished training episodes ([`crate::collect::RECENT_EPISODES`] at most).
    fn episodes(&self) -> &[Episode];
    /// Training episodes finished since the start of the run.
    fn episode_count(&self) -> u64;
    /// Whether the run has done all its iterations.
    fn finished(&self) -> bool;
    /// One iteration.
    fn iteration_step(&mut self) -> Result<IterationStats>;
    /// Writes a checkpoint into `dir`.
    fn save_checkpoint(&mut self, dir: &Path) -> Result<PathBuf>;
    /// Restores the checkpoint `dir/latest` names; returns its iteration.
    fn load_checkpoint(&mut self, dir: &Path) -> Result<u64>;
    /// The training envs' reset sampler's current distribution, if it shows one
    /// ([`keel_envs::ResetSampler::distribution`]).
    fn sampler_distribution(&self) -> Option<serde_json::Value> {
        None
    }
    /// Evaluates the current policy.
    fn evaluate(&mut self, options: &EvalOptions) -> Result<Evaluation>;
    /// Evaluates the current policy, calling `watch` with the env after every reset and step
    /// (`false` stops); see [`crate::eval::play_watched`].
    fn evaluate_watched(
        &mut self,
        options: &EvalOptions,
        watch: &mut dyn FnMut(&mut dyn keel_envs::Env, Option<&keel_envs::Step>) -> bool,
    ) -> Result<Evaluation>;
    /// Records episodes of the current policy (`keel demo`).
    fn demonstrate(&mut self, options: &crate::recorder::DemoOptions) -> Result<crate::demo::Demo>;
}

impl<A: Algorithm> Run for Trainer<A> {
    fn settings(&self) -> RunSettings<'_> {
        self.config().settings()
    }
    fn config_toml(&self) -> Result<String> {
        crate::config::to_toml(self.config())
    }
    fn columns(&self) -> Vec<(String, Option<String>)> {
        Trainer::columns(self)
    }
    fn iteration(&self) -> u64 {
        Trainer::iteration(self)
    }
    fn global_step(&self) -> u64 {
        Trainer::global_step(self)
    }
    fn episodes(&self) -> &[Episode] {
        Trainer::episodes(self)
    }
    fn episode_count(&self) -> u64 {
        Trainer::episode_count(self)
    }
    fn finished(&self) -> bool {
        Trainer::finished(self)
    }
    fn iteration_step(&mut self) -> Result<IterationStats> {
        Trainer::iteration_step(self)
    }
    fn save_checkpoint(&mut self, dir: &Path) -> Result<PathBuf> {
        Trainer::save_checkpoint(self, dir)
    }
    fn load_checkpoint(&mut self, dir: &Path) -> Result<u64> {
        Trainer::load_checkpoint(self, dir)
    }
    fn sampler_distribution(&self) -> Option<serde_json::Value> {
        self.envs().vector().sampler().and_then(|s| s.distribution())
    }
    fn evaluate(&mut self, options: &EvalOptions) -> Result<Evaluation> {
        Trainer::evaluate(self, options)
    }
    fn evaluate_watched(
        &mut self,
        options: &EvalOptions,
        watch: &mut dyn FnMut(&mut dyn keel_envs::Env, Option<&keel_envs::Step>) -> bool,
    ) -> Result<Evaluation> {
        Trainer::evaluate_watched(self, options, watch)
    }
    fn demonstrate(&mut self, options: &crate::recorder::DemoOptions) -> Result<crate::demo::Demo> {
        crate::recorder::record(self, options)
    }
}

//! What an algorithm is to the trainer core, and the algorithms `keel train --algo` knows.
//!
//! An [`Algorithm`] owns its networks and optimisers and does one iteration at a time on the
//! training envs ([`Envs`]): collect, learn, report its metrics. Everything else is the core's
//! ([`crate::trainer::Trainer`]): building the envs and the reset sampler, observation encoding
//! and action decoding, seeding, episode bookkeeping and per-step extras, divergence checks,
//! deployments, checkpoints with exact resume, evaluation. [`Run`] is the trainer with its
//! algorithm type erased, which is what the command line drives; [`algorithms`] lists the
//! registered algorithms and how to build a run of each from config overrides.

use std::path::{Path, PathBuf};

use serde_json::Value;
use tch::{Device, Tensor};

use keel_envs::EnvSpec;

use crate::collect::{Envs, Episode};
use crate::config::{RunSettings, TrainConfig};
use crate::error::{AgentError, Result};
use crate::eval::{EvalOptions, Evaluation};
use crate::trainer::{IterationStats, Trainer};

/// One column an algorithm reports per iteration: its `metrics.csv` name and TensorBoard tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Metric {
    /// Column name in `metrics.csv`.
    pub name: &'static str,
    /// TensorBoard tag (`losses/...`, `charts/...`).
    pub tag: &'static str,
}

/// Where an iteration stands in the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// This iteration, 1-based.
    pub iteration: u64,
    /// Iterations of the whole run.
    pub iterations: u64,
}

/// A learning algorithm the trainer core drives (see the module docs).
pub trait Algorithm: Sized + 'static {
    /// Its config.
    type Config: TrainConfig;

    /// Networks and optimisers for envs of `spec`, whose observations reach the networks as
    /// rows of `input_width` floats, on `device`. libtorch's generator is seeded already.
    fn new(config: &Self::Config, spec: &EnvSpec, input_width: usize, device: Device) -> Result<Self>;

    /// The columns [`Algorithm::iterate`] reports, in order.
    fn metrics(&self) -> &'static [Metric];

    /// One iteration: collect experience from `envs` and learn from it; one value per metric.
    /// A non-finite loss is [`AgentError::Diverged`].
    fn iterate(&mut self, envs: &mut Envs, schedule: Schedule) -> Result<Vec<f64>>;

    /// Actions for a batch of network input (its mode if `deterministic`).
    fn act(&self, input: &Tensor, deterministic: bool) -> Tensor;

    /// Action probabilities for a batch of network input, for policies over Discrete actions
    /// that can be deployed (`deploy_every`); `None` if the algorithm has no such policy.
    fn action_probabilities(&self, input: &Tensor) -> Option<Tensor> {
        let _ = input;
        None
    }

    /// Every network parameter by name, sorted by name.
    fn parameters(&self) -> Vec<(String, Tensor)>;

    /// What a checkpoint keeps of the networks and optimisers: the parameters and every
    /// optimiser's state under its name (names must be unique).
    fn tensors(&self) -> Vec<(String, Tensor)>;

    /// Restores [`Algorithm::tensors`].
    fn load_tensors(&mut self, saved: &[(String, Tensor)]) -> Result<()>;

    /// The algorithm's other state (statistics, counters), for checkpoints.
    fn state(&self) -> Result<Value> {
        Ok(Value::Null)
    }

    /// Restores [`Algorithm::state`].
    fn load_state(&mut self, state: &Value) -> Result<()> {
        let _ = state;
        Ok(())
    }
}

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
    /// Every finished training episode.
    fn episodes(&self) -> &[Episode];
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
    fn demonstrate(&mut self, options: &crate::demo::DemoOptions) -> Result<crate::demo::Demo>;
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
    fn demonstrate(&mut self, options: &crate::demo::DemoOptions) -> Result<crate::demo::Demo> {
        crate::demo::record(self, options)
    }
}

/// Resolves a config from an algorithm's defaults and overrides, and builds the run.
pub type BuildFn = fn(&[(String, Value)]) -> Result<Box<dyn Run>>;

/// A registered algorithm: its name and how to build a run of it.
#[derive(Clone, Copy)]
pub struct Registration {
    /// The name `--algo` takes (and a config's `algo` key holds).
    pub name: &'static str,
    /// One line for listings.
    pub description: &'static str,
    build: BuildFn,
    env_defaults: fn(&str) -> Option<&'static str>,
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration").field("name", &self.name).finish_non_exhaustive()
    }
}

impl Registration {
    /// A registration; `build` resolves a config from the algorithm's defaults and `overrides`
    /// (later wins) and builds the run; `env_defaults` gives the algorithm's config file (TOML)
    /// for an env, if it has one.
    pub const fn new(
        name: &'static str,
        description: &'static str,
        build: BuildFn,
        env_defaults: fn(&str) -> Option<&'static str>,
    ) -> Self {
        Self { name, description, build, env_defaults }
    }

    /// Resolves the config and builds the run (envs made, networks initialised). The
    /// `algo` key is set to this registration's name.
    pub fn build(&self, overrides: &[(String, Value)]) -> Result<Box<dyn Run>> {
        let mut all = overrides.to_vec();
        all.push(("algo".into(), Value::String(self.name.into())));
        (self.build)(&all)
    }

    /// The algorithm's config file for `env_id` (TOML), if it has one.
    pub fn env_defaults(&self, env_id: &str) -> Option<&'static str> {
        (self.env_defaults)(env_id)
    }
}

/// Every registered algorithm.
pub fn algorithms() -> Vec<Registration> {
    vec![crate::ppo::PPO, crate::ppo::DPPO, crate::dqn::DQN, crate::ild::ILD, crate::ild::BC, crate::ild::APG]
}

/// The algorithm registered as `name`, or an error listing the registered ones.
pub fn lookup(name: &str) -> Result<Registration> {
    let all = algorithms();
    all.iter().find(|r| r.name == name).copied().ok_or_else(|| {
        let known: Vec<&str> = all.iter().map(|r| r.name).collect();
        AgentError::Config(format!("unknown algorithm `{name}`; registered algorithms: {}", known.join(", ")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_lists_the_known_algorithms() {
        assert_eq!(lookup("dppo").map(|r| r.name).ok(), Some("dppo"));
        let err = lookup("sac").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("`sac`") && err.contains("ppo, dppo"), "{err}");
        assert!(lookup("ppo").is_ok_and(|r| r.env_defaults("keel/CartPole-v1").is_some()));
    }
}

//! Reset samplers: the hook a curriculum uses to choose how each episode starts.
//!
//! A [`VecEnv`](crate::VecEnv) with a sampler asks it for env `i`'s [`ResetOptions`] at every
//! reset and autoreset that the caller did not give options for, and tells it how each episode
//! ended ([`EpisodeEnd`]: the options used, return, length, flags, and the mean of every per-step
//! extra over the episode). The samplers themselves (start-state curricula, trajectory graphs,
//! transition fields, adaptive sampling) live in keel-curricula.
//!
//! The engine calls the sampler only from the calling thread, in env-index order, after every
//! worker has finished: a sampler sees the same calls in the same order whatever the worker
//! count, so a seeded sampler gives identical results on 0, 1 or 8 workers. Its state
//! ([`ResetSampler::snapshot`]) is part of the vector's snapshot and so of a training
//! checkpoint: a resumed run continues exactly.

use serde_json::Value;

use crate::env::{EnvSpec, ResetOptions};
use crate::error::Result;

/// How one episode of one sub-env ended, as reported to a [`ResetSampler`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EpisodeEnd<'a> {
    /// Index of the sub-env.
    pub env_index: usize,
    /// The options its episode was reset with (empty: defaults and persistent parameters).
    pub options: &'a ResetOptions,
    /// Undiscounted return.
    pub episode_return: f64,
    /// Steps taken.
    pub length: u64,
    /// The episode reached a terminal state.
    pub terminated: bool,
    /// The episode was cut (time limit).
    pub truncated: bool,
    /// Mean of each per-step extra over the episode's steps, in `spec.extras` order.
    pub extras_mean: &'a [f64],
}

/// Chooses reset options per sub-env and learns from how episodes end (see the module docs).
pub trait ResetSampler: Send {
    /// Called once when the sampler is installed on a vector of `num_envs` envs of `spec`; an
    /// error (e.g. options this env cannot take) refuses the installation.
    fn attach(&mut self, spec: &EnvSpec, num_envs: usize) -> Result<()> {
        let _ = (spec, num_envs);
        Ok(())
    }

    /// The options of env `env_index`'s next reset.
    fn sample(&mut self, env_index: usize) -> ResetOptions;

    /// An episode of env `episode.env_index` has ended.
    fn report(&mut self, episode: &EpisodeEnd<'_>) {
        let _ = episode;
    }

    /// Everything that determines the sampler's future calls (random stream, statistics).
    fn snapshot(&self) -> Value;

    /// Restores a [`ResetSampler::snapshot`]; a malformed one is an error that changes nothing.
    fn restore(&mut self, snapshot: &Value) -> Result<()>;

    /// The distribution the sampler currently draws starts from, for a trainer to log (e.g.
    /// adaptive sampling's weights per clip and frame); `None` if it has nothing to show.
    fn distribution(&self) -> Option<Value> {
        None
    }
}

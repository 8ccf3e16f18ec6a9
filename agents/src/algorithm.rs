//! What an algorithm is to the trainer core.
//!
//! An [`Algorithm`] owns its networks and optimisers and does one iteration at a time on the
//! training envs ([`Envs`]): collect, learn, report its metrics. Everything else is the core's
//! ([`crate::trainer::Trainer`]): building the envs and the reset sampler, observation encoding
//! and action decoding, seeding, episode bookkeeping and per-step extras, divergence checks,
//! deployments, checkpoints with exact resume, evaluation. [`crate::run::Run`] is the trainer
//! with its algorithm type erased, which is what the command line drives;
//! [`crate::registry`] lists the registered algorithms.

use serde_json::Value;
use tch::{Device, Tensor};

use keel_envs::EnvSpec;

use crate::collect::Envs;
use crate::config::TrainConfig;
use crate::error::Result;

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

    /// The config key that sets how long a run is (`total_timesteps`: env steps over all envs).
    const RUN_LENGTH: &'static str = "total_timesteps";

    /// The defaults of a run of `algo` (one of the names this algorithm is registered under),
    /// with anything such a run needs put in place first (e.g. envs to register). Default: the
    /// config's `Default`.
    fn defaults(algo: &str) -> Result<Self::Config> {
        let _ = algo;
        Ok(Self::Config::default())
    }

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

//! The single-environment API: [`Env`], its [`EnvSpec`], reset options and step results.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{EnvError, Result};
use crate::space::{Action, Space};

/// What an environment is: its id, spaces and episode limits (Gymnasium's `EnvSpec`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EnvSpec {
    /// Versioned id, e.g. `keel/CartPole-v1`.
    pub id: String,
    /// Space of observations.
    pub observation_space: Space,
    /// Space of actions.
    pub action_space: Space,
    /// Episode cap applied by [`crate::wrappers::TimeLimit`] when made through the registry.
    pub max_episode_steps: Option<u64>,
    /// Return above which the task counts as solved.
    pub reward_threshold: Option<f64>,
    /// Length of the full internal state returned by [`Env::state`], if the env exposes it.
    pub state_len: Option<usize>,
}

impl EnvSpec {
    /// Scalars in one observation row.
    pub fn obs_len(&self) -> usize {
        self.observation_space.flat_len()
    }

    /// Scalars in one action row.
    pub fn action_len(&self) -> usize {
        self.action_space.flat_len()
    }
}

/// Options of one `reset`, as Gymnasium's `options` dict.
///
/// `state` sets the initial state exactly (layout of [`Env::state`]); every other key is a
/// per-reset parameter of the env (e.g. CartPole's `low`/`high` noise bounds) that holds for this
/// reset only. Persistent per-reset parameters are set with [`Env::set_params`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ResetOptions {
    /// Explicit initial state, overriding the random start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<Vec<f64>>,
    /// Per-reset parameter overrides for this reset only.
    #[serde(flatten)]
    pub params: Map<String, Value>,
}

impl ResetOptions {
    /// Options that set the initial state.
    pub fn with_state(state: Vec<f64>) -> Self {
        Self { state: Some(state), params: Map::new() }
    }

    /// Whether these are the default options (nothing set).
    pub fn is_empty(&self) -> bool {
        self.state.is_none() && self.params.is_empty()
    }
}

/// The outcome of one step besides the observation.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Step {
    /// Reward of the transition.
    pub reward: f64,
    /// The MDP reached a terminal state (goal, failure, divergence).
    pub terminated: bool,
    /// The episode was cut from outside the MDP (time limit).
    pub truncated: bool,
}

/// A single environment, with Gymnasium 1.x semantics.
///
/// Observations are written into caller-provided rows of length `spec().obs_len()`, so the
/// vector engine steps without allocating. Every env owns its random stream:
/// `reset(Some(seed), ..)` reseeds it, `reset(None, ..)` continues it (an env never seeded
/// draws its seed from the OS). Same seed and actions give a bit-identical trajectory.
///
/// Errors leave the env as it was: a rejected action or option changes no state.
pub trait Env: Send {
    /// The env's spec.
    fn spec(&self) -> &EnvSpec;

    /// Starts an episode and writes its first observation into `obs`.
    fn reset(&mut self, seed: Option<u64>, options: &ResetOptions, obs: &mut [f32]) -> Result<()>;

    /// Advances one step with `action` and writes the next observation into `obs`.
    fn step(&mut self, action: Action<'_>, obs: &mut [f32]) -> Result<Step>;

    /// The full internal state (what `ResetOptions::state` accepts), if the env exposes one.
    fn state(&self) -> Option<Vec<f64>> {
        None
    }

    /// Sets persistent per-reset parameters, used by every later reset (autoresets included).
    /// Keys are validated; unknown keys are an error.
    fn set_params(&mut self, params: &Map<String, Value>) -> Result<()>;

    /// The current persistent per-reset parameters.
    fn params(&self) -> Value;

    /// Everything that determines the env's future (state, random stream, counters, per-reset
    /// parameters) as JSON, or `None` if the env cannot snapshot. With [`Env::restore`] it lets
    /// a training run stop and resume on exactly the same trajectory.
    fn snapshot(&self) -> Option<Value> {
        None
    }

    /// Restores a [`Env::snapshot`] of an env made with the same config. A malformed snapshot is
    /// an error that changes nothing.
    fn restore(&mut self, snapshot: &Value) -> Result<()> {
        let _ = snapshot;
        Err(EnvError::Snapshot(format!("{} does not support snapshots", self.spec().id)))
    }
}

impl<E: Env + ?Sized> Env for Box<E> {
    fn spec(&self) -> &EnvSpec {
        (**self).spec()
    }
    fn reset(&mut self, seed: Option<u64>, options: &ResetOptions, obs: &mut [f32]) -> Result<()> {
        (**self).reset(seed, options, obs)
    }
    fn step(&mut self, action: Action<'_>, obs: &mut [f32]) -> Result<Step> {
        (**self).step(action, obs)
    }
    fn state(&self) -> Option<Vec<f64>> {
        (**self).state()
    }
    fn set_params(&mut self, params: &Map<String, Value>) -> Result<()> {
        (**self).set_params(params)
    }
    fn params(&self) -> Value {
        (**self).params()
    }
    fn snapshot(&self) -> Option<Value> {
        (**self).snapshot()
    }
    fn restore(&mut self, snapshot: &Value) -> Result<()> {
        (**self).restore(snapshot)
    }
}

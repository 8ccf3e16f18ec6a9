//! The single-environment API: [`Env`], its [`EnvSpec`], reset options and step results, and
//! [`Registered`], what an env implements to be made by id.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::Validate;
use crate::error::{EnvError, Result};
use crate::obs::{ObsBuf, ObsMut, obs_dtype};
use crate::space::{Action, DType, Space};

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
    /// Names of the per-step extras ([`Env::write_extras`]): named float columns the env fills
    /// after every step and reset (Gymnasium's `info`, without per-step maps).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extras: Vec<String>,
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

    /// Element type of observation rows.
    pub fn obs_dtype(&self) -> DType {
        obs_dtype(&self.observation_space)
    }

    /// A zeroed buffer for `rows` observations.
    pub fn obs_buffer(&self, rows: usize) -> ObsBuf {
        ObsBuf::for_space(&self.observation_space, rows)
    }

    /// Number of per-step extras.
    pub fn extras_len(&self) -> usize {
        self.extras.len()
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

    /// The `state` option, if set, checked: `len` values, each finite and at most `limit` in
    /// magnitude (`limit_reason` says why, in the error: what the env cannot hold beyond it).
    pub fn checked_state(&self, len: usize, limit: f64, limit_reason: &str) -> Result<Option<&[f64]>> {
        let Some(state) = &self.state else { return Ok(None) };
        if state.len() != len {
            return Err(EnvError::InvalidState(format!("expected {len} values, got {}", state.len())));
        }
        if let Some(k) = state.iter().position(|v| !v.is_finite()) {
            return Err(EnvError::InvalidState(format!("element {k} is {}", state[k])));
        }
        if let Some(k) = state.iter().position(|v| v.abs() > limit) {
            return Err(EnvError::InvalidState(format!(
                "element {k} = {:e} is beyond {limit:e}, {limit_reason}",
                state[k]
            )));
        }
        Ok(Some(state))
    }
}

/// An RGB picture from [`Env::render`]: `height` rows of `width` pixels, 3 bytes each.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frame {
    /// Pixels per row.
    pub width: usize,
    /// Rows.
    pub height: usize,
    /// `height · width · 3` bytes, row-major.
    pub rgb: Vec<u8>,
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

/// How the vector engine counts the episode that ended at the last step (read only when a step
/// terminates or truncates).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum EpisodeCount {
    /// The engine sums the rewards and steps it saw (every env but a few).
    #[default]
    Engine,
    /// The env counted the episode itself: a game's unclipped score across lives (Atari).
    Ended {
        /// Return of the whole episode.
        episode_return: f64,
        /// Steps of the whole episode.
        length: u64,
    },
    /// The step ended a life, not the game: no episode is reported, and the game goes on
    /// after the reset (Atari's episodic life).
    Continues,
}

/// A single environment, with Gymnasium 1.x semantics.
///
/// Observations are written into caller-provided rows ([`ObsMut`]) of `spec().obs_len()`
/// elements of the observation space's type, so the vector engine steps without allocating; a
/// row of the wrong type or length is an error, not a panic. Every env owns its random stream:
/// `reset(Some(seed), ..)` reseeds it, `reset(None, ..)` continues it (an env never seeded
/// draws its seed from the OS). Same seed and actions give a bit-identical trajectory.
///
/// Errors leave the env as it was: a rejected action or option changes no state.
pub trait Env: Send {
    /// The env's spec.
    fn spec(&self) -> &EnvSpec;

    /// Starts an episode and writes its first observation into `obs`.
    fn reset(&mut self, seed: Option<u64>, options: &ResetOptions, obs: ObsMut<'_>) -> Result<()>;

    /// Advances one step with `action` and writes the next observation into `obs`.
    fn step(&mut self, action: Action<'_>, obs: ObsMut<'_>) -> Result<Step>;

    /// Writes the per-step extras of the last `reset` or `step` (one value per name in
    /// `spec().extras`, in that order) into `out`. Envs without extras keep the default.
    fn write_extras(&self, out: &mut [f64]) {
        let _ = out;
    }

    /// How the episode that ended at the last step counts in the episode statistics (see
    /// [`EpisodeCount`]); called only after a step that terminated or truncated.
    fn episode_count(&self) -> EpisodeCount {
        EpisodeCount::Engine
    }

    /// The full internal state (what `ResetOptions::state` accepts), if the env exposes one.
    fn state(&self) -> Option<Vec<f64>> {
        None
    }

    /// A picture of the current state (Gymnasium's `render_mode="rgb_array"`), or `None` for
    /// envs that do not draw themselves.
    fn render(&mut self) -> Result<Option<&Frame>> {
        Ok(None)
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
    fn reset(&mut self, seed: Option<u64>, options: &ResetOptions, obs: ObsMut<'_>) -> Result<()> {
        (**self).reset(seed, options, obs)
    }
    fn step(&mut self, action: Action<'_>, obs: ObsMut<'_>) -> Result<Step> {
        (**self).step(action, obs)
    }
    fn write_extras(&self, out: &mut [f64]) {
        (**self).write_extras(out)
    }
    fn episode_count(&self) -> EpisodeCount {
        (**self).episode_count()
    }
    fn state(&self) -> Option<Vec<f64>> {
        (**self).state()
    }
    fn render(&mut self) -> Result<Option<&Frame>> {
        (**self).render()
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

/// An env that can be made by id: the registry builds its `Config` from defaults plus
/// overrides, asks for its spec, and constructs it. Implemented by every env family, in this
/// crate or another (see [`crate::registry::register`]).
pub trait Registered: Env + Sized + 'static {
    /// Versioned id, `keel/<Name>-v<N>`.
    const ID: &'static str;
    /// One line for `keel list`.
    const DESCRIPTION: &'static str;
    /// Default episode cap applied by `make`.
    const MAX_EPISODE_STEPS: Option<u64>;
    /// Construction config.
    type Config: Validate;
    /// The spec of the env this config builds, without building it (an env whose spaces depend
    /// on data reads only what the spaces need).
    fn spec(config: &Self::Config) -> Result<EnvSpec>;
    /// Builds the env from a validated config.
    fn new(config: Self::Config) -> Result<Self>;
    /// Episode cap `make` applies for this config (envs whose episode length is a config key
    /// override this; the default is [`Self::MAX_EPISODE_STEPS`]).
    fn episode_cap(_config: &Self::Config) -> Option<u64> {
        Self::MAX_EPISODE_STEPS
    }
    /// Roughly how many bytes one env of this config holds, for the up-front check of a vector's
    /// size ([`crate::memory`]). Envs whose size is a config key override this.
    fn memory_estimate(_config: &Self::Config) -> u64 {
        4096
    }
}

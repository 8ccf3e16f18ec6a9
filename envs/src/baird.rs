//! # Baird
//!
//! ## Description
//! Baird's star counterexample (Baird 1995; Sutton & Barto, 2nd ed., Example 11.1): seven
//! states, two actions, reward 0 everywhere, so every value function is 0. With the linear
//! features below, off-policy semi-gradient TD(0) diverges under the behaviour policy while the
//! target policy's value is exactly representable. It is the standard test of the deadly triad
//! and of target networks (`keel td baird`).
//!
//! Action `dashed` moves to one of the six upper states uniformly; action `solid` moves to the
//! seventh (lower) state. The behaviour policy μ takes `dashed` with probability
//! `behaviour_dashed` (6/7), the target policy π always takes `solid`. Under μ every state is
//! reached with probability 1/7 from anywhere, so the on-policy state distribution of μ is
//! uniform.
//!
//! ## Observation space
//! `Box((8,), float32)` in `[0, 2]`: the feature vector φ(s) of [`features`]:
//! φ(sᵢ) = 2eᵢ + e₈ for the upper states i = 1..6, φ(s₇) = e₇ + 2e₈.
//!
//! ## Action space
//! `Discrete(2)`: 0 = dashed, 1 = solid.
//!
//! ## Reward
//! 0 on every transition.
//!
//! ## Per-step extras
//! - `state`: index of the current state (0..=5 upper, 6 lower);
//! - `importance_ratio`: π(a|s)/μ(a|s) of the last action: `1/(1 − behaviour_dashed)` (7) for
//!   solid, 0 for dashed; 0 after a reset (no action taken).
//!
//! ## Starting state
//! Uniform over the seven states (μ's stationary distribution); or exact via the `state` reset
//! option, layout `[state index]`.
//!
//! ## Episode end
//! Never terminates (a continuing task) and has no registered cap; set one with
//! `max_episode_steps` if episodes are wanted.
//!
//! ## Config
//! See [`BairdConfig`].
//!
//! ## Version history
//! - v0: Sutton & Barto's Example 11.1, γ = 0.99 as in Fellows, Smith & Whiteson (2023).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::{FieldError, Validate};
use crate::env::{Env, EnvSpec, Registered, ResetOptions, Step};
use crate::error::{EnvError, Result};
use crate::obs::ObsMut;
use crate::rng::EnvRng;
use crate::snapshot::snapshot_fields;
use crate::space::{Action, BoxSpace, Discrete, Space};

/// Number of states.
pub const STATES: usize = 7;
/// Number of features (weights of a linear value function).
pub const FEATURES: usize = 8;
/// Action index of `dashed` (to an upper state, uniformly).
pub const DASHED: i64 = 0;
/// Action index of `solid` (to the lower state).
pub const SOLID: i64 = 1;
/// Index of the lower state s₇, the one `solid` leads to.
pub const LOWER: usize = STATES - 1;

/// φ(s) for state index `state` (0..7): 2eᵢ + e₈ for the upper states, e₇ + 2e₈ for the lower.
pub fn features(state: usize) -> [f64; FEATURES] {
    let mut phi = [0.0; FEATURES];
    if state < LOWER {
        phi[state] = 2.0;
        phi[FEATURES - 1] = 1.0;
    } else {
        phi[FEATURES - 2] = 1.0;
        phi[FEATURES - 1] = 2.0;
    }
    phi
}

/// Construction config of [`Baird`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BairdConfig {
    /// Probability that the behaviour policy takes `dashed` (default 6/7); it sets the
    /// importance ratio of `solid`, 1/(1 − behaviour_dashed). Must lie in (0, 1).
    pub behaviour_dashed: f64,
    /// Discount the task is posed with (default 0.99). The env does not use it; agents read it
    /// from here so a study of the env and its analysis agree.
    pub gamma: f64,
}

impl Default for BairdConfig {
    fn default() -> Self {
        Self { behaviour_dashed: 6.0 / 7.0, gamma: 0.99 }
    }
}

impl Validate for BairdConfig {
    fn validate(&self) -> Result<(), FieldError> {
        if !(self.behaviour_dashed > 0.0 && self.behaviour_dashed < 1.0) {
            return Err(FieldError::new("behaviour_dashed", format!("must lie in (0, 1), got {}", self.behaviour_dashed)));
        }
        if !(0.0..=1.0).contains(&self.gamma) {
            return Err(FieldError::new("gamma", format!("must lie in [0, 1], got {}", self.gamma)));
        }
        Ok(())
    }
}

impl BairdConfig {
    /// π(a|s)/μ(a|s) for action `action` (π always takes `solid`).
    pub fn importance_ratio(&self, action: i64) -> f64 {
        if action == SOLID { 1.0 / (1.0 - self.behaviour_dashed) } else { 0.0 }
    }
}

/// Baird's star MDP (see the module docs).
pub struct Baird {
    config: BairdConfig,
    spec: EnvSpec,
    rng: EnvRng,
    /// Current state index; `None` before the first reset.
    state: Option<usize>,
    /// Importance ratio of the last action (0 after a reset).
    ratio: f64,
}

impl Registered for Baird {
    const ID: &'static str = "keel/Baird-v0";
    const DESCRIPTION: &'static str = "Baird's star counterexample: off-policy linear TD diverges (Sutton & Barto Example 11.1)";
    const MAX_EPISODE_STEPS: Option<u64> = None;
    type Config = BairdConfig;

    fn spec(_config: &BairdConfig) -> Result<EnvSpec> {
        Ok(EnvSpec {
            id: Self::ID.into(),
            observation_space: Space::Box(BoxSpace::vector(vec![0.0; FEATURES], vec![2.0; FEATURES])),
            action_space: Space::Discrete(Discrete { n: 2, start: 0 }),
            max_episode_steps: Self::MAX_EPISODE_STEPS,
            reward_threshold: None,
            state_len: Some(1),
            extras: vec!["state".into(), "importance_ratio".into()],
        })
    }

    fn new(config: BairdConfig) -> Result<Self> {
        let spec = <Self as Registered>::spec(&config)?;
        Ok(Self { config, spec, rng: EnvRng::default(), state: None, ratio: 0.0 })
    }
}

impl Baird {
    /// The validated config.
    pub fn config(&self) -> &BairdConfig {
        &self.config
    }

    fn write_obs(state: usize, obs: &mut [f32]) {
        for (o, f) in obs.iter_mut().zip(features(state)) {
            *o = f as f32;
        }
    }
}

/// The `state` reset option as a state index.
fn explicit_state(options: &ResetOptions) -> Result<Option<usize>> {
    let Some(state) = &options.state else { return Ok(None) };
    match state.as_slice() {
        [s] if s.fract() == 0.0 && (0.0..STATES as f64).contains(s) => Ok(Some(*s as usize)),
        [s] => Err(EnvError::InvalidState(format!("the state index must be an integer in 0..{STATES}, got {s}"))),
        other => Err(EnvError::InvalidState(format!("expected 1 value (the state index), got {}", other.len()))),
    }
}

impl Env for Baird {
    fn spec(&self) -> &EnvSpec {
        &self.spec
    }

    fn reset(&mut self, seed: Option<u64>, options: &ResetOptions, obs: ObsMut<'_>) -> Result<()> {
        let obs = obs.f32(FEATURES)?;
        if let Some(key) = options.params.keys().next() {
            return Err(EnvError::UnknownField { context: format!("{} reset options", Self::ID), field: key.clone(), known: "state".into() });
        }
        let explicit = explicit_state(options)?;
        self.rng.reseed(seed);
        let state = explicit.unwrap_or_else(|| (self.rng.uniform(0.0, STATES as f64) as usize).min(LOWER));
        Self::write_obs(state, obs);
        self.state = Some(state);
        self.ratio = 0.0;
        Ok(())
    }

    fn step(&mut self, action: Action<'_>, obs: ObsMut<'_>) -> Result<Step> {
        let obs = obs.f32(FEATURES)?;
        let action = self.spec.action_space.discrete_action(action)?;
        self.state.ok_or(EnvError::ResetNeeded)?;
        let next = if action == SOLID { LOWER } else { (self.rng.uniform(0.0, LOWER as f64) as usize).min(LOWER - 1) };
        Self::write_obs(next, obs);
        self.state = Some(next);
        self.ratio = self.config.importance_ratio(action);
        Ok(Step { reward: 0.0, terminated: false, truncated: false })
    }

    fn write_extras(&self, out: &mut [f64]) {
        if let [state, ratio] = out {
            *state = self.state.unwrap_or(0) as f64;
            *ratio = self.ratio;
        }
    }

    fn state(&self) -> Option<Vec<f64>> {
        self.state.map(|s| vec![s as f64])
    }

    fn set_params(&mut self, params: &Map<String, Value>) -> Result<()> {
        match params.keys().next() {
            None => Ok(()),
            Some(key) => Err(EnvError::UnknownField { context: format!("{} reset parameters", Self::ID), field: key.clone(), known: "(none)".into() }),
        }
    }

    fn params(&self) -> Value {
        Value::Object(Map::new())
    }

    snapshot_fields!(state, rng, ratio);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::registry::make;

    fn run(seed: u64, actions: &[i64]) -> Vec<(Vec<f32>, [f64; 2])> {
        let mut env = make(Baird::ID, &Map::new()).unwrap();
        let mut obs = env.spec().obs_buffer(1);
        env.reset(Some(seed), &ResetOptions::default(), obs.as_mut()).unwrap();
        let mut out = Vec::new();
        for &a in actions {
            env.step(Action::Int(&[a]), obs.as_mut()).unwrap();
            let mut extras = [0.0; 2];
            env.write_extras(&mut extras);
            out.push((obs.as_f32().unwrap().to_vec(), extras));
        }
        out
    }

    #[test]
    fn features_match_sutton_and_barto() {
        assert_eq!(features(0), [2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]);
        assert_eq!(features(5), [0.0, 0.0, 0.0, 0.0, 0.0, 2.0, 0.0, 1.0]);
        assert_eq!(features(6), [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 2.0]);
    }

    #[test]
    fn solid_leads_to_the_lower_state_with_ratio_seven() {
        for (obs, [state, ratio]) in run(3, &[SOLID; 5]) {
            assert_eq!(state, LOWER as f64);
            assert_eq!(obs, features(LOWER).map(|f| f as f32).to_vec());
            assert!((ratio - 7.0).abs() < 1e-12, "ratio {ratio}");
        }
    }

    #[test]
    fn dashed_spreads_uniformly_over_the_upper_states_with_ratio_zero() {
        let steps = run(5, &[DASHED; 6000]);
        let mut counts = [0usize; STATES];
        for (_, [state, ratio]) in &steps {
            counts[*state as usize] += 1;
            assert_eq!(*ratio, 0.0);
        }
        assert_eq!(counts[LOWER], 0);
        for c in &counts[..LOWER] {
            assert!((850..1150).contains(c), "upper-state counts {counts:?}");
        }
    }

    #[test]
    fn bad_configs_name_the_field() {
        for (key, value) in [("behaviour_dashed", 1.0), ("behaviour_dashed", 0.0), ("gamma", 1.5)] {
            let mut overrides = Map::new();
            overrides.insert(key.into(), value.into());
            let err = make(Baird::ID, &overrides).err().unwrap().to_string();
            assert!(err.contains(key), "{err}");
        }
    }

    #[test]
    fn explicit_state_must_be_a_state_index() {
        let mut env = make(Baird::ID, &Map::new()).unwrap();
        let mut obs = env.spec().obs_buffer(1);
        for bad in [7.0, -1.0, 2.5, f64::NAN] {
            assert!(env.reset(None, &ResetOptions::with_state(vec![bad]), obs.as_mut()).is_err(), "{bad}");
        }
        env.reset(None, &ResetOptions::with_state(vec![2.0]), obs.as_mut()).unwrap();
        assert_eq!(env.state(), Some(vec![2.0]));
    }
}

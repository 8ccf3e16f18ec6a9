//! # MountainCar
//!
//! ## Description
//! An under-powered car in a sinusoidal valley must rock back and forth to reach the flag on
//! the right hill (Moore, "Efficient Memory-based Learning for Robot Control", PhD thesis,
//! 1990). Numerically identical to Gymnasium 1.x `MountainCar-v0`.
//!
//! ## Observation space
//! `Box((2,), float32)`: position in `[-1.2, 0.6]`, velocity in `[-0.07, 0.07]`.
//!
//! ## Action space
//! `Discrete(3)`: accelerate left, don't accelerate, accelerate right.
//!
//! ## Reward
//! -1 per step.
//!
//! ## Starting state
//! Position uniform in `[low, high]` = `[-0.6, -0.4]` (per-reset parameters), velocity 0; or
//! exact via the `state` reset option, layout `[position, velocity]`.
//!
//! ## Episode end
//! Terminated when position >= `goal_position` (0.5) and velocity >= `goal_velocity`.
//! Truncated after 200 steps.
//!
//! ## Config
//! See [`MountainCarConfig`].
//!
//! ## Version history
//! - v0: Gymnasium 1.x `MountainCar-v0` (reward threshold -110).

use serde::{Deserialize, Serialize};

use super::{UniformStart, params_methods, start_state, write_state_obs};
use crate::config::{FieldError, Validate, finite, ordered, positive};
use crate::env::{Env, EnvSpec, Registered, ResetOptions, Step};
use crate::error::{EnvError, Result};
use crate::obs::ObsMut;
use crate::rng::EnvRng;
use crate::snapshot::snapshot_fields;
use crate::space::{Action, BoxSpace, Discrete, Space};

/// Construction config of [`MountainCar`]; defaults are Gymnasium's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MountainCarConfig {
    /// Left end of the track (default -1.2).
    pub min_position: f64,
    /// Right end of the track (default 0.6).
    pub max_position: f64,
    /// Speed limit (default 0.07).
    pub max_speed: f64,
    /// Position of the flag (default 0.5).
    pub goal_position: f64,
    /// Velocity needed at the flag (default 0).
    pub goal_velocity: f64,
    /// Acceleration of one push (default 0.001).
    pub force: f64,
    /// Gravity along the slope (default 0.0025).
    pub gravity: f64,
}

impl Default for MountainCarConfig {
    fn default() -> Self {
        Self {
            min_position: -1.2,
            max_position: 0.6,
            max_speed: 0.07,
            goal_position: 0.5,
            goal_velocity: 0.0,
            force: 0.001,
            gravity: 0.0025,
        }
    }
}

impl Validate for MountainCarConfig {
    fn validate(&self) -> Result<(), FieldError> {
        let goal = (self.goal_position, self.goal_velocity);
        validate_track(self.min_position, self.max_position, self.max_speed, goal)?;
        finite("force", self.force)?;
        finite("gravity", self.gravity)
    }
}

/// Checks the track both mountain cars drive on: its ends in order, a positive speed limit, a
/// finite goal `(goal_position, goal_velocity)`.
pub(super) fn validate_track(
    min_position: f64,
    max_position: f64,
    max_speed: f64,
    (goal_position, goal_velocity): (f64, f64),
) -> Result<(), FieldError> {
    ordered("min_position/max_position", min_position, max_position)?;
    positive("max_speed", max_speed)?;
    finite("goal_position", goal_position)?;
    finite("goal_velocity", goal_velocity)
}

/// The observation space of both mountain cars: the position between the track's ends, the
/// velocity within the speed limit.
pub(super) fn track_space(min_position: f64, max_position: f64, max_speed: f64) -> Space {
    Space::Box(BoxSpace::vector(vec![min_position, -max_speed], vec![max_position, max_speed]))
}

/// The discrete mountain-car task (see the module docs).
pub struct MountainCar {
    config: MountainCarConfig,
    params: UniformStart,
    spec: EnvSpec,
    rng: EnvRng,
    /// `[position, velocity]`; `None` before the first reset.
    state: Option<[f64; 2]>,
}

impl Registered for MountainCar {
    const ID: &'static str = "keel/MountainCar-v0";
    const DESCRIPTION: &'static str = "Drive an under-powered car up a hill by rocking it (Gymnasium MountainCar-v0)";
    const MAX_EPISODE_STEPS: Option<u64> = Some(200);
    type Config = MountainCarConfig;

    fn spec(config: &MountainCarConfig) -> Result<EnvSpec> {
        Ok(EnvSpec {
            id: Self::ID.into(),
            observation_space: track_space(config.min_position, config.max_position, config.max_speed),
            action_space: Space::Discrete(Discrete { n: 3, start: 0 }),
            max_episode_steps: Self::MAX_EPISODE_STEPS,
            reward_threshold: Some(-110.0),
            extras: Vec::new(),
            state_len: Some(2),
        })
    }

    fn new(config: MountainCarConfig) -> Result<Self> {
        let spec = <Self as Registered>::spec(&config)?;
        Ok(Self { config, params: UniformStart { low: -0.6, high: -0.4 }, spec, rng: EnvRng::default(), state: None })
    }
}

impl Env for MountainCar {
    fn spec(&self) -> &EnvSpec {
        &self.spec
    }

    fn reset(&mut self, seed: Option<u64>, options: &ResetOptions, obs: ObsMut<'_>) -> Result<()> {
        let obs = obs.f32(2)?;
        let state = start_state(Self::ID, &self.params, &mut self.rng, seed, options, UniformStart::draw_at_rest)?;
        write_state_obs(&state, obs);
        self.state = Some(state);
        Ok(())
    }

    fn step(&mut self, action: Action<'_>, obs: ObsMut<'_>) -> Result<Step> {
        let obs = obs.f32(2)?;
        let action = self.spec.action_space.discrete_action(action)?;
        let [mut position, mut velocity] = self.state.ok_or(EnvError::ResetNeeded)?;
        let c = &self.config;
        velocity += (action - 1) as f64 * c.force + (3.0 * position).cos() * (-c.gravity);
        velocity = velocity.clamp(-c.max_speed, c.max_speed);
        position += velocity;
        position = position.clamp(c.min_position, c.max_position);
        if position == c.min_position && velocity < 0.0 {
            velocity = 0.0;
        }
        let terminated = position >= c.goal_position && velocity >= c.goal_velocity;
        let state = [position, velocity];
        self.state = Some(state);
        write_state_obs(&state, obs);
        Ok(Step { reward: -1.0, terminated, truncated: false })
    }

    fn state(&self) -> Option<Vec<f64>> {
        self.state.map(|s| s.to_vec())
    }

    params_methods!(UniformStart);

    snapshot_fields!(state, rng, params);
}

//! # MountainCarContinuous
//!
//! ## Description
//! The mountain car with a continuous engine: the action is the force applied (Moore 1990;
//! Gymnasium 1.x `MountainCarContinuous-v0`).
//!
//! ## Observation space
//! `Box((2,), float32)`: position in `[-1.2, 0.6]`, velocity in `[-0.07, 0.07]`.
//!
//! ## Action space
//! `Box(-1, 1, (1,), float32)`: the force, scaled by `power`. Out-of-range forces are clipped to
//! `[-1, 1]` by the env, as in Gymnasium; non-finite ones are rejected.
//!
//! ## Reward
//! `-0.1 a²` per step, plus 100 on reaching the goal.
//!
//! ## Starting state
//! Position uniform in `[low, high]` = `[-0.6, -0.4]` (per-reset parameters), velocity 0; or exact
//! via the `state` reset option, layout `[position, velocity]`.
//!
//! ## Episode end
//! Terminated when position >= `goal_position` (0.45) and velocity >= `goal_velocity`.
//! Truncated after 999 steps.
//!
//! ## Numerics
//! Gymnasium stores this env's state as float32 after the first step, and NumPy 2 then does the
//! arithmetic in float32 (NEP 50 promotion). Keel reproduces those promotions step by step, so
//! trajectories agree to float32 rounding rather than drifting apart.
//!
//! ## Config
//! See [`MountainCarContinuousConfig`].
//!
//! ## Version history
//! - v0: Gymnasium 1.x `MountainCarContinuous-v0` (reward threshold 90).

use serde::{Deserialize, Serialize};

use super::mountain_car::{track_space, validate_track};
use super::{UniformStart, params_methods, start_state, write_state_obs};
use crate::config::{FieldError, Validate, finite};
use crate::env::{Env, EnvSpec, Registered, ResetOptions, Step};
use crate::error::{EnvError, Result};
use crate::obs::ObsMut;
use crate::rng::EnvRng;
use crate::snapshot::snapshot_fields;
use crate::space::{Action, BoxSpace, Space};

/// Construction config of [`MountainCarContinuous`]; defaults are Gymnasium's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MountainCarContinuousConfig {
    /// Left end of the track (default -1.2).
    pub min_position: f64,
    /// Right end of the track (default 0.6).
    pub max_position: f64,
    /// Speed limit (default 0.07).
    pub max_speed: f64,
    /// Position of the flag (default 0.45).
    pub goal_position: f64,
    /// Velocity needed at the flag (default 0).
    pub goal_velocity: f64,
    /// Acceleration per unit of action (default 0.0015).
    pub power: f64,
}

impl Default for MountainCarContinuousConfig {
    fn default() -> Self {
        Self {
            min_position: -1.2,
            max_position: 0.6,
            max_speed: 0.07,
            goal_position: 0.45,
            goal_velocity: 0.0,
            power: 0.0015,
        }
    }
}

impl Validate for MountainCarContinuousConfig {
    fn validate(&self) -> Result<(), FieldError> {
        let goal = (self.goal_position, self.goal_velocity);
        validate_track(self.min_position, self.max_position, self.max_speed, goal)?;
        finite("power", self.power)
    }
}

/// A NumPy scalar as it flows through Gymnasium's step: its value and its NumPy type.
#[derive(Clone, Copy, Debug)]
enum Np {
    /// `np.float32`
    F32(f32),
    /// `np.float64`
    F64(f64),
    /// A Python float: adopts the other operand's type (NEP 50 "weak" scalar).
    Py(f64),
}

impl Np {
    fn value(self) -> f64 {
        match self {
            Np::F32(v) => f64::from(v),
            Np::F64(v) | Np::Py(v) => v,
        }
    }

    fn is_f32(self) -> bool {
        matches!(self, Np::F32(_))
    }

    fn add(self, other: Np) -> Np {
        match (self, other) {
            (Np::F64(_), _) | (_, Np::F64(_)) => Np::F64(self.value() + other.value()),
            (Np::Py(a), Np::Py(b)) => Np::Py(a + b),
            _ => Np::F32(self.value() as f32 + other.value() as f32),
        }
    }

    /// `self > bound` for a Python-float bound, compared in `self`'s type.
    fn gt(self, bound: f64) -> bool {
        if self.is_f32() { self.value() as f32 > bound as f32 } else { self.value() > bound }
    }

    /// `self < bound` for a Python-float bound, compared in `self`'s type.
    fn lt(self, bound: f64) -> bool {
        if self.is_f32() { (self.value() as f32) < bound as f32 } else { self.value() < bound }
    }
}

/// The continuous mountain-car task (see the module docs).
pub struct MountainCarContinuous {
    config: MountainCarContinuousConfig,
    params: UniformStart,
    spec: EnvSpec,
    rng: EnvRng,
    /// `[position, velocity]`; `None` before the first reset.
    state: Option<[f64; 2]>,
    /// Whether the state is float64 (right after reset) rather than float32 (after a step).
    state_is_f64: bool,
}

impl Registered for MountainCarContinuous {
    const ID: &'static str = "keel/MountainCarContinuous-v0";
    const DESCRIPTION: &'static str =
        "Mountain car with a continuous engine force (Gymnasium MountainCarContinuous-v0)";
    const MAX_EPISODE_STEPS: Option<u64> = Some(999);
    type Config = MountainCarContinuousConfig;

    fn spec(config: &MountainCarContinuousConfig) -> Result<EnvSpec> {
        Ok(EnvSpec {
            id: Self::ID.into(),
            observation_space: track_space(config.min_position, config.max_position, config.max_speed),
            action_space: Space::Box(BoxSpace::symmetric(&[1.0])),
            max_episode_steps: Self::MAX_EPISODE_STEPS,
            reward_threshold: Some(90.0),
            extras: Vec::new(),
            state_len: Some(2),
        })
    }

    fn new(config: MountainCarContinuousConfig) -> Result<Self> {
        let spec = <Self as Registered>::spec(&config)?;
        Ok(Self {
            config,
            params: UniformStart { low: -0.6, high: -0.4 },
            spec,
            rng: EnvRng::default(),
            state: None,
            state_is_f64: true,
        })
    }
}

impl Env for MountainCarContinuous {
    fn spec(&self) -> &EnvSpec {
        &self.spec
    }

    fn reset(&mut self, seed: Option<u64>, options: &ResetOptions, obs: ObsMut<'_>) -> Result<()> {
        let obs = obs.f32(2)?;
        let state = start_state(Self::ID, &self.params, &mut self.rng, seed, options, UniformStart::draw_at_rest)?;
        write_state_obs(&state, obs);
        self.state = Some(state);
        self.state_is_f64 = true;
        Ok(())
    }

    fn step(&mut self, action: Action<'_>, obs: ObsMut<'_>) -> Result<Step> {
        let obs = obs.f32(2)?;
        let a = self.spec.action_space.box_action(action)?[0];
        let [p, v] = self.state.ok_or(EnvError::ResetNeeded)?;
        let c = &self.config;
        let typed = |x: f64| if self.state_is_f64 { Np::F64(x) } else { Np::F32(x as f32) };
        let (mut position, mut velocity) = (typed(p), typed(v));

        // force = min(max(a, -1.0), 1.0): the float32 action unless clipped to a Python float.
        let force = if a < -1.0 {
            Np::Py(-1.0)
        } else if a > 1.0 {
            Np::Py(1.0)
        } else {
            Np::F32(a)
        };
        let three_position = if position.is_f32() { f64::from(3.0 * (p as f32)) } else { 3.0 * p };
        let slope = 0.0025 * three_position.cos();
        let push = match force {
            Np::F32(f) => Np::F32(f * c.power as f32 - slope as f32),
            other => Np::Py(other.value() * c.power - slope),
        };
        velocity = velocity.add(push);
        if velocity.gt(c.max_speed) {
            velocity = Np::Py(c.max_speed);
        }
        if velocity.lt(-c.max_speed) {
            velocity = Np::Py(-c.max_speed);
        }
        position = position.add(velocity);
        if position.gt(c.max_position) {
            position = Np::Py(c.max_position);
        }
        if position.lt(c.min_position) {
            position = Np::Py(c.min_position);
        }
        if position.value() == c.min_position && velocity.lt(0.0) {
            velocity = Np::Py(0.0);
        }
        let terminated = !position.lt(c.goal_position) && !velocity.lt(c.goal_velocity);
        let mut reward = if terminated { 100.0 } else { 0.0 };
        reward -= f64::from(a).powi(2) * 0.1;

        // Gymnasium stores the new state as float32.
        let state = [f64::from(position.value() as f32), f64::from(velocity.value() as f32)];
        self.state = Some(state);
        self.state_is_f64 = false;
        write_state_obs(&state, obs);
        Ok(Step { reward, terminated, truncated: false })
    }

    fn state(&self) -> Option<Vec<f64>> {
        self.state.map(|s| s.to_vec())
    }

    params_methods!(UniformStart);

    snapshot_fields!(state, state_is_f64, rng, params);
}

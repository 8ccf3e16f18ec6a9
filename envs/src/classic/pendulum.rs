//! # Pendulum
//!
//! ## Description
//! The inverted-pendulum swing-up: a pendulum attached at one end to a fixed point starts at a
//! random angle, and the goal is to swing it upright and hold it there by applying torque at
//! the pivot. Numerically identical to Gymnasium 1.x `Pendulum-v1`.
//!
//! ## Observation space
//! `Box((3,), float32)`: `[cos θ, sin θ, θ̇]`, bounds ±1, ±1, ±`max_speed` (8).
//!
//! ## Action space
//! `Box(-2, 2, (1,), float32)`: the torque. Out-of-range torques are clipped to
//! `±max_torque` by the env, as in Gymnasium; non-finite ones are rejected.
//!
//! ## Reward
//! `-(θ² + 0.1 θ̇² + 0.001 u²)` with θ normalised to `[-π, π)`; between about -16.27 and 0.
//!
//! ## Starting state
//! θ uniform in `[-x_init, x_init]` (π) and θ̇ in `[-y_init, y_init]` (1) (per-reset
//! parameters), or exact via the `state` reset option, layout `[θ, θ̇]`.
//!
//! ## Episode end
//! Never terminates; truncated after 200 steps.
//!
//! ## Numerics
//! As in Gymnasium under NumPy 2, the torque terms are computed in float32 (the action's type),
//! the rest in float64.
//!
//! ## Config
//! See [`PendulumConfig`].
//!
//! ## Version history
//! - v1: Gymnasium 1.x `Pendulum-v1`.

use std::f64::consts::PI;

use serde::{Deserialize, Serialize};

use super::{params_methods, start_state};
use crate::config::{FieldError, Validate, finite, positive};
use crate::env::{Env, EnvSpec, Registered, ResetOptions, Step};
use crate::error::{EnvError, Result};
use crate::obs::ObsMut;
use crate::rng::EnvRng;
use crate::snapshot::snapshot_fields;
use crate::space::{Action, BoxSpace, Space};

/// Construction config of [`Pendulum`]; defaults are Gymnasium's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PendulumConfig {
    /// Gravitational acceleration, m/s² (default 10.0).
    pub g: f64,
    /// Mass, kg (default 1.0).
    pub m: f64,
    /// Length, m (default 1.0).
    pub l: f64,
    /// Seconds per step (default 0.05).
    pub dt: f64,
    /// Angular speed limit, rad/s (default 8).
    pub max_speed: f64,
    /// Torque limit, N·m (default 2).
    pub max_torque: f64,
}

impl Default for PendulumConfig {
    fn default() -> Self {
        Self { g: 10.0, m: 1.0, l: 1.0, dt: 0.05, max_speed: 8.0, max_torque: 2.0 }
    }
}

impl Validate for PendulumConfig {
    fn validate(&self) -> Result<(), FieldError> {
        finite("g", self.g)?;
        positive("m", self.m)?;
        positive("l", self.l)?;
        positive("dt", self.dt)?;
        positive("max_speed", self.max_speed)?;
        positive("max_torque", self.max_torque)
    }
}

/// Per-reset parameters of [`Pendulum`] (Gymnasium's reset options `x_init`, `y_init`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PendulumStart {
    /// θ starts uniform in `[-x_init, x_init]` (default π).
    pub x_init: f64,
    /// θ̇ starts uniform in `[-y_init, y_init]` (default 1).
    pub y_init: f64,
}

impl Default for PendulumStart {
    fn default() -> Self {
        Self { x_init: PI, y_init: 1.0 }
    }
}

impl Validate for PendulumStart {
    fn validate(&self) -> Result<(), FieldError> {
        finite("x_init", self.x_init)?;
        finite("y_init", self.y_init)
    }
}

impl PendulumStart {
    /// `[θ, θ̇]` uniform in `[-x_init, x_init] × [-y_init, y_init]`, θ drawn first.
    fn draw(&self, rng: &mut EnvRng) -> [f64; 2] {
        let theta = rng.uniform(-self.x_init, self.x_init);
        [theta, rng.uniform(-self.y_init, self.y_init)]
    }
}

/// The pendulum swing-up task (see the module docs).
pub struct Pendulum {
    config: PendulumConfig,
    params: PendulumStart,
    spec: EnvSpec,
    rng: EnvRng,
    /// `[θ, θ̇]`; `None` before the first reset.
    state: Option<[f64; 2]>,
}

impl Registered for Pendulum {
    const ID: &'static str = "keel/Pendulum-v1";
    const DESCRIPTION: &'static str =
        "Swing a pendulum upright and hold it with a bounded torque (Gymnasium Pendulum-v1)";
    const MAX_EPISODE_STEPS: Option<u64> = Some(200);
    type Config = PendulumConfig;

    fn spec(config: &PendulumConfig) -> Result<EnvSpec> {
        Ok(EnvSpec {
            id: Self::ID.into(),
            observation_space: Space::Box(BoxSpace::symmetric(&[1.0, 1.0, config.max_speed])),
            action_space: Space::Box(BoxSpace::symmetric(&[config.max_torque])),
            max_episode_steps: Self::MAX_EPISODE_STEPS,
            reward_threshold: None,
            extras: Vec::new(),
            state_len: Some(2),
        })
    }

    fn new(config: PendulumConfig) -> Result<Self> {
        let spec = <Self as Registered>::spec(&config)?;
        Ok(Self { config, params: PendulumStart::default(), spec, rng: EnvRng::default(), state: None })
    }
}

fn angle_normalize(x: f64) -> f64 {
    (x + PI).rem_euclid(2.0 * PI) - PI
}

fn write_obs(s: &[f64; 2], obs: &mut [f32]) {
    obs[0] = s[0].cos() as f32;
    obs[1] = s[0].sin() as f32;
    obs[2] = s[1] as f32;
}

impl Env for Pendulum {
    fn spec(&self) -> &EnvSpec {
        &self.spec
    }

    fn reset(&mut self, seed: Option<u64>, options: &ResetOptions, obs: ObsMut<'_>) -> Result<()> {
        let obs = obs.f32(3)?;
        let state = start_state(Self::ID, &self.params, &mut self.rng, seed, options, PendulumStart::draw)?;
        write_obs(&state, obs);
        self.state = Some(state);
        Ok(())
    }

    fn step(&mut self, action: Action<'_>, obs: ObsMut<'_>) -> Result<Step> {
        let obs = obs.f32(3)?;
        let u = self.spec.action_space.box_action(action)?[0];
        let [th, thdot] = self.state.ok_or(EnvError::ResetNeeded)?;
        let c = &self.config;
        let max_torque = c.max_torque as f32;
        let u = u.clamp(-max_torque, max_torque);
        let torque_cost = f64::from(0.001f32 * (u * u));
        let costs = angle_normalize(th).powi(2) + 0.1 * (thdot * thdot) + torque_cost;
        let torque_term = f64::from((3.0 / (c.m * (c.l * c.l))) as f32 * u);
        let newthdot = thdot + (3.0 * c.g / (2.0 * c.l) * th.sin() + torque_term) * c.dt;
        let newthdot = newthdot.clamp(-c.max_speed, c.max_speed);
        let newth = th + newthdot * c.dt;
        let state = [newth, newthdot];
        self.state = Some(state);
        write_obs(&state, obs);
        Ok(Step { reward: -costs, terminated: false, truncated: false })
    }

    fn state(&self) -> Option<Vec<f64>> {
        self.state.map(|s| s.to_vec())
    }

    params_methods!(PendulumStart);

    snapshot_fields!(state, rng, params);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The angle is normalised in closed form, never by a loop of turns: the largest start
    /// angle the env takes (float32's range) steps at once, with a finite reward.
    #[test]
    fn the_largest_start_angles_step_at_once() {
        let mut env = Pendulum::new(PendulumConfig::default()).unwrap_or_else(|e| panic!("{e}"));
        let mut obs = [0.0f32; 3];
        for theta in [f64::from(f32::MAX), -f64::from(f32::MAX), 1e18, 4e6 * PI] {
            let start = ResetOptions::with_state(vec![theta, 0.0]);
            env.reset(Some(0), &start, ObsMut::F32(&mut obs)).unwrap_or_else(|e| panic!("{e}"));
            let step = env.step(Action::Float(&[1.0]), ObsMut::F32(&mut obs)).unwrap_or_else(|e| panic!("{e}"));
            assert!(step.reward.is_finite() && step.reward <= 0.0, "θ = {theta}: {}", step.reward);
            assert!((-PI..PI).contains(&angle_normalize(theta)), "θ = {theta}");
        }
    }
}

//! # CartPole
//!
//! ## Description
//! A pole is attached by an un-actuated joint to a cart moving along a frictionless track; the
//! pendulum starts upright and the goal is to keep it balanced by pushing the cart left or right
//! (Barto, Sutton & Anderson, "Neuronlike adaptive elements that can solve difficult learning
//! control problems", 1983). Numerically identical to Gymnasium 1.x `CartPole-v1`.
//!
//! ## Observation space
//! `Box((4,), float32)`:
//!
//! | index | observation           | min                     | max                   |
//! |-------|-----------------------|-------------------------|-----------------------|
//! | 0     | cart position         | -2 x_threshold (-4.8)   | 2 x_threshold (4.8)   |
//! | 1     | cart velocity         | -f32::MAX               | f32::MAX              |
//! | 2     | pole angle (rad)      | -2 theta_threshold (~-0.419) | ~0.419           |
//! | 3     | pole angular velocity | -f32::MAX               | f32::MAX              |
//!
//! ## Action space
//! `Discrete(2)`: 0 pushes the cart left, 1 pushes it right, with `force_mag` newtons.
//!
//! ## Reward
//! +1 for every step, the terminating one included (`sutton_barto_reward = true`: 0 per step and
//! -1 on termination). Steps taken after termination give 0 (-1), as in Gymnasium.
//!
//! ## Starting state
//! Every state variable uniform in `[low, high]` = `[-0.05, 0.05]` (per-reset parameters `low`,
//! `high`; or an exact state via the `state` reset option, layout `[x, x_dot, theta, theta_dot]`).
//!
//! ## Episode end
//! Terminated when |pole angle| > `theta_threshold_radians` (12 degrees) or |cart position| >
//! `x_threshold` (2.4). Truncated after 500 steps (registry `TimeLimit`).
//!
//! ## Config
//! See [`CartPoleConfig`]: the physical constants, integrator and reward variant.
//!
//! ## Version history
//! - v1: Gymnasium 1.x `CartPole-v1` (500-step limit, reward threshold 475).

use serde::{Deserialize, Serialize};

use super::{UniformStart, params_methods, start_state, write_state_obs};
use crate::config::{FieldError, Validate, finite, positive};
use crate::env::{Env, EnvSpec, Registered, ResetOptions, Step};
use crate::error::{EnvError, Result};
use crate::obs::ObsMut;
use crate::rng::EnvRng;
use crate::snapshot::snapshot_fields;
use crate::space::{Action, BoxSpace, Discrete, Space};

/// Integration scheme of the cart-pole dynamics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Integrator {
    /// Explicit Euler: positions from the old velocities (Gymnasium's default `"euler"`).
    Euler,
    /// Semi-implicit Euler: velocities first, then positions from the new velocities.
    SemiImplicitEuler,
}

/// Construction config of [`CartPole`]; defaults are Gymnasium's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CartPoleConfig {
    /// Gravitational acceleration, m/s² (default 9.8).
    pub gravity: f64,
    /// Mass of the cart, kg (default 1.0).
    pub masscart: f64,
    /// Mass of the pole, kg (default 0.1).
    pub masspole: f64,
    /// Half the pole's length, m (default 0.5).
    pub length: f64,
    /// Magnitude of the push, N (default 10.0).
    pub force_mag: f64,
    /// Seconds between state updates (default 0.02).
    pub tau: f64,
    /// Integration scheme (default `euler`).
    pub kinematics_integrator: Integrator,
    /// Pole angle beyond which the episode terminates, rad (default 12° = 0.2094...).
    pub theta_threshold_radians: f64,
    /// Cart position beyond which the episode terminates, m (default 2.4).
    pub x_threshold: f64,
    /// Sutton & Barto's reward: 0 per step and -1 on failure (default false: +1 per step).
    pub sutton_barto_reward: bool,
}

impl Default for CartPoleConfig {
    fn default() -> Self {
        Self {
            gravity: 9.8,
            masscart: 1.0,
            masspole: 0.1,
            length: 0.5,
            force_mag: 10.0,
            tau: 0.02,
            kinematics_integrator: Integrator::Euler,
            theta_threshold_radians: 12.0 * 2.0 * std::f64::consts::PI / 360.0,
            x_threshold: 2.4,
            sutton_barto_reward: false,
        }
    }
}

impl Validate for CartPoleConfig {
    fn validate(&self) -> Result<(), FieldError> {
        finite("gravity", self.gravity)?;
        positive("masscart", self.masscart)?;
        positive("masspole", self.masspole)?;
        positive("length", self.length)?;
        finite("force_mag", self.force_mag)?;
        positive("tau", self.tau)?;
        positive("theta_threshold_radians", self.theta_threshold_radians)?;
        positive("x_threshold", self.x_threshold)
    }
}

/// The cart-pole balancing task (see the module docs).
pub struct CartPole {
    config: CartPoleConfig,
    params: UniformStart,
    spec: EnvSpec,
    rng: EnvRng,
    /// `[x, x_dot, theta, theta_dot]`; `None` before the first reset.
    state: Option<[f64; 4]>,
    /// Steps taken since termination (Gymnasium's `steps_beyond_terminated`).
    steps_beyond_terminated: Option<u64>,
    total_mass: f64,
    polemass_length: f64,
}

impl Registered for CartPole {
    const ID: &'static str = "keel/CartPole-v1";
    const DESCRIPTION: &'static str = "Balance a pole on a cart by pushing it left or right (Gymnasium CartPole-v1)";
    const MAX_EPISODE_STEPS: Option<u64> = Some(500);
    type Config = CartPoleConfig;

    fn spec(config: &CartPoleConfig) -> Result<EnvSpec> {
        let high =
            [config.x_threshold * 2.0, f64::from(f32::MAX), config.theta_threshold_radians * 2.0, f64::from(f32::MAX)];
        Ok(EnvSpec {
            id: Self::ID.into(),
            observation_space: Space::Box(BoxSpace::symmetric(&high)),
            action_space: Space::Discrete(Discrete { n: 2, start: 0 }),
            max_episode_steps: Self::MAX_EPISODE_STEPS,
            reward_threshold: Some(475.0),
            extras: Vec::new(),
            state_len: Some(4),
        })
    }

    fn new(config: CartPoleConfig) -> Result<Self> {
        let spec = <Self as Registered>::spec(&config)?;
        Ok(Self {
            total_mass: config.masspole + config.masscart,
            polemass_length: config.masspole * config.length,
            config,
            params: UniformStart::default(),
            spec,
            rng: EnvRng::default(),
            state: None,
            steps_beyond_terminated: None,
        })
    }
}

impl Env for CartPole {
    fn spec(&self) -> &EnvSpec {
        &self.spec
    }

    fn reset(&mut self, seed: Option<u64>, options: &ResetOptions, obs: ObsMut<'_>) -> Result<()> {
        let obs = obs.f32(4)?;
        let state = start_state(Self::ID, &self.params, &mut self.rng, seed, options, UniformStart::draw)?;
        write_state_obs(&state, obs);
        self.state = Some(state);
        self.steps_beyond_terminated = None;
        Ok(())
    }

    #[inline]
    fn step(&mut self, action: Action<'_>, obs: ObsMut<'_>) -> Result<Step> {
        let obs = obs.f32(4)?;
        let action = self.spec.action_space.discrete_action(action)?;
        let [mut x, mut x_dot, mut theta, mut theta_dot] = self.state.ok_or(EnvError::ResetNeeded)?;
        let c = &self.config;
        let force = if action == 1 { c.force_mag } else { -c.force_mag };
        let (sintheta, costheta) = theta.sin_cos();
        // Same operation order as Gymnasium, so results agree to the last bit.
        let temp = (force + self.polemass_length * (theta_dot * theta_dot) * sintheta) / self.total_mass;
        let thetaacc = (c.gravity * sintheta - costheta * temp)
            / (c.length * (4.0 / 3.0 - c.masspole * (costheta * costheta) / self.total_mass));
        let xacc = temp - self.polemass_length * thetaacc * costheta / self.total_mass;
        match c.kinematics_integrator {
            Integrator::Euler => {
                x += c.tau * x_dot;
                x_dot += c.tau * xacc;
                theta += c.tau * theta_dot;
                theta_dot += c.tau * thetaacc;
            }
            Integrator::SemiImplicitEuler => {
                x_dot += c.tau * xacc;
                x += c.tau * x_dot;
                theta_dot += c.tau * thetaacc;
                theta += c.tau * theta_dot;
            }
        }
        let state = [x, x_dot, theta, theta_dot];
        self.state = Some(state);
        write_state_obs(&state, obs);

        let terminated = x < -c.x_threshold
            || x > c.x_threshold
            || theta < -c.theta_threshold_radians
            || theta > c.theta_threshold_radians;
        let (alive, failed, after) = if c.sutton_barto_reward { (0.0, -1.0, -1.0) } else { (1.0, 1.0, 0.0) };
        let reward = if !terminated {
            alive
        } else if let Some(n) = &mut self.steps_beyond_terminated {
            *n += 1;
            after
        } else {
            self.steps_beyond_terminated = Some(0);
            failed
        };
        Ok(Step { reward, terminated, truncated: false })
    }

    fn state(&self) -> Option<Vec<f64>> {
        self.state.map(|s| s.to_vec())
    }

    params_methods!(UniformStart);

    snapshot_fields!(state, steps_beyond_terminated, rng, params);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh() -> CartPole {
        match CartPole::new(CartPoleConfig::default()) {
            Ok(env) => env,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn falls_when_pushed_one_way() {
        let mut env = fresh();
        let mut obs = [0.0; 4];
        env.reset(Some(0), &ResetOptions::default(), ObsMut::F32(&mut obs)).ok();
        let mut steps = 0;
        loop {
            let s = env.step(Action::Int(&[1]), ObsMut::F32(&mut obs)).ok().map(|s| s.terminated);
            steps += 1;
            if s == Some(true) || steps > 200 {
                break;
            }
        }
        assert!((5..60).contains(&steps), "terminated after {steps} steps");
    }

    #[test]
    fn step_before_reset_is_an_error() {
        let mut env = fresh();
        assert_eq!(env.step(Action::Int(&[0]), ObsMut::F32(&mut [0.0; 4])), Err(EnvError::ResetNeeded));
    }

    #[test]
    fn reset_bounds_are_reset_parameters() {
        let mut env = fresh();
        let mut obs = [0.0; 4];
        let mut opts = ResetOptions::default();
        opts.params.insert("low".into(), 0.2.into());
        opts.params.insert("high".into(), 0.3.into());
        assert!(env.reset(Some(3), &opts, ObsMut::F32(&mut obs)).is_ok());
        assert!(obs.iter().all(|&v| (0.2..=0.3).contains(&v)), "{obs:?}");
        opts.params.insert("low".into(), 0.5.into());
        assert!(matches!(env.reset(Some(3), &opts, ObsMut::F32(&mut obs)), Err(EnvError::InvalidField { .. })));
    }
}

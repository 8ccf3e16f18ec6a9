//! # Acrobot
//!
//! ## Description
//! Two links joined in a chain, the first hanging from a fixed pivot; only the joint between
//! them is actuated. The goal is to swing the free end above a line one link-length over the
//! pivot (Sutton, "Generalization in Reinforcement Learning: Successful Examples Using Sparse
//! Coarse Coding", NeurIPS 1996; dynamics of Sutton & Barto's book). Numerically identical to
//! Gymnasium 1.x `Acrobot-v1`: fourth-order Runge-Kutta over `dt`, angles wrapped to [-π, π].
//!
//! ## Observation space
//! `Box((6,), float32)`: `[cos θ1, sin θ1, cos θ2, sin θ2, θ̇1, θ̇2]`, bounds ±1 for the
//! trigonometric terms, ±4π and ±9π for the angular velocities.
//!
//! ## Action space
//! `Discrete(3)`: torque -1, 0 or +1 on the actuated joint.
//!
//! ## Reward
//! -1 per step that does not reach the goal, 0 on reaching it.
//!
//! ## Starting state
//! `[θ1, θ2, θ̇1, θ̇2]` uniform in `[low, high]` = `[-0.1, 0.1]` (per-reset parameters), or exact
//! via the `state` reset option.
//!
//! ## Episode end
//! Terminated when `-cos θ1 - cos(θ1 + θ2) > 1`. Truncated after 500 steps.
//!
//! ## Config
//! See [`AcrobotConfig`].
//!
//! ## Version history
//! - v1: Gymnasium 1.x `Acrobot-v1` (`book` dynamics, reward threshold -100).

use std::f64::consts::PI;

use serde::{Deserialize, Serialize};

use super::{UniformStart, params_methods, start_state};
use crate::config::{FieldError, Validate, positive};
use crate::env::{Env, EnvSpec, Registered, ResetOptions, Step};
use crate::error::{EnvError, Result};
use crate::obs::ObsMut;
use crate::rng::EnvRng;
use crate::snapshot::snapshot_fields;
use crate::space::{Action, BoxSpace, Discrete, Space};

/// Which equations of motion to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AcrobotDynamics {
    /// Sutton & Barto's book (Gymnasium's default).
    Book,
    /// The NeurIPS 1996 paper, which omits one term.
    Nips,
}

/// Construction config of [`Acrobot`]; defaults are Gymnasium's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AcrobotConfig {
    /// Integration interval of one step, s (default 0.2).
    pub dt: f64,
    /// Length of link 1, m (default 1.0).
    pub link_length_1: f64,
    /// Mass of link 1, kg (default 1.0).
    pub link_mass_1: f64,
    /// Mass of link 2, kg (default 1.0).
    pub link_mass_2: f64,
    /// Position of link 1's centre of mass, m (default 0.5).
    pub link_com_pos_1: f64,
    /// Position of link 2's centre of mass, m (default 0.5).
    pub link_com_pos_2: f64,
    /// Moment of inertia of both links (default 1.0).
    pub link_moi: f64,
    /// Bound of θ̇1, rad/s (default 4π).
    pub max_vel_1: f64,
    /// Bound of θ̇2, rad/s (default 9π).
    pub max_vel_2: f64,
    /// Uniform torque noise amplitude added to each action (default 0).
    pub torque_noise_max: f64,
    /// Equations of motion (default `book`).
    pub book_or_nips: AcrobotDynamics,
}

impl Default for AcrobotConfig {
    fn default() -> Self {
        Self {
            dt: 0.2,
            link_length_1: 1.0,
            link_mass_1: 1.0,
            link_mass_2: 1.0,
            link_com_pos_1: 0.5,
            link_com_pos_2: 0.5,
            link_moi: 1.0,
            max_vel_1: 4.0 * PI,
            max_vel_2: 9.0 * PI,
            torque_noise_max: 0.0,
            book_or_nips: AcrobotDynamics::Book,
        }
    }
}

impl Validate for AcrobotConfig {
    fn validate(&self) -> Result<(), FieldError> {
        positive("dt", self.dt)?;
        positive("link_length_1", self.link_length_1)?;
        positive("link_mass_1", self.link_mass_1)?;
        positive("link_mass_2", self.link_mass_2)?;
        positive("link_com_pos_1", self.link_com_pos_1)?;
        positive("link_com_pos_2", self.link_com_pos_2)?;
        positive("link_moi", self.link_moi)?;
        positive("max_vel_1", self.max_vel_1)?;
        positive("max_vel_2", self.max_vel_2)?;
        if !(self.torque_noise_max.is_finite() && self.torque_noise_max >= 0.0) {
            return Err(FieldError::new("torque_noise_max", "must be finite and >= 0"));
        }
        Ok(())
    }
}

/// The acrobot swing-up task (see the module docs).
pub struct Acrobot {
    config: AcrobotConfig,
    params: UniformStart,
    spec: EnvSpec,
    rng: EnvRng,
    /// `[θ1, θ2, θ̇1, θ̇2]`; `None` before the first reset.
    state: Option<[f64; 4]>,
}

const AVAIL_TORQUE: [f64; 3] = [-1.0, 0.0, 1.0];

impl Registered for Acrobot {
    const ID: &'static str = "keel/Acrobot-v1";
    const DESCRIPTION: &'static str =
        "Swing a two-link chain's end above a line by torquing its middle joint (Gymnasium Acrobot-v1)";
    const MAX_EPISODE_STEPS: Option<u64> = Some(500);
    type Config = AcrobotConfig;

    fn spec(config: &AcrobotConfig) -> Result<EnvSpec> {
        let high = [1.0, 1.0, 1.0, 1.0, config.max_vel_1, config.max_vel_2];
        Ok(EnvSpec {
            id: Self::ID.into(),
            observation_space: Space::Box(BoxSpace::symmetric(&high)),
            action_space: Space::Discrete(Discrete { n: 3, start: 0 }),
            max_episode_steps: Self::MAX_EPISODE_STEPS,
            reward_threshold: Some(-100.0),
            extras: Vec::new(),
            state_len: Some(4),
        })
    }

    fn new(config: AcrobotConfig) -> Result<Self> {
        let spec = <Self as Registered>::spec(&config)?;
        Ok(Self { config, params: UniformStart { low: -0.1, high: 0.1 }, spec, rng: EnvRng::default(), state: None })
    }
}

impl Acrobot {
    /// Time derivative of `[θ1, θ2, θ̇1, θ̇2, torque]`, in Gymnasium's operation order.
    fn dsdt(&self, s: &[f64; 5]) -> [f64; 5] {
        let c = &self.config;
        let (m1, m2, l1) = (c.link_mass_1, c.link_mass_2, c.link_length_1);
        let (lc1, lc2, i1, i2) = (c.link_com_pos_1, c.link_com_pos_2, c.link_moi, c.link_moi);
        let g = 9.8;
        let [theta1, theta2, dtheta1, dtheta2, a] = *s;
        let d1 = m1 * (lc1 * lc1) + m2 * (l1 * l1 + lc2 * lc2 + 2.0 * l1 * lc2 * theta2.cos()) + i1 + i2;
        let d2 = m2 * (lc2 * lc2 + l1 * lc2 * theta2.cos()) + i2;
        let phi2 = m2 * lc2 * g * (theta1 + theta2 - PI / 2.0).cos();
        let phi1 = -m2 * l1 * lc2 * (dtheta2 * dtheta2) * theta2.sin()
            - 2.0 * m2 * l1 * lc2 * dtheta2 * dtheta1 * theta2.sin()
            + (m1 * lc1 + m2 * l1) * g * (theta1 - PI / 2.0).cos()
            + phi2;
        let ddtheta2 = match c.book_or_nips {
            AcrobotDynamics::Nips => (a + d2 / d1 * phi1 - phi2) / (m2 * (lc2 * lc2) + i2 - (d2 * d2) / d1),
            AcrobotDynamics::Book => {
                (a + d2 / d1 * phi1 - m2 * l1 * lc2 * (dtheta1 * dtheta1) * theta2.sin() - phi2)
                    / (m2 * (lc2 * lc2) + i2 - (d2 * d2) / d1)
            }
        };
        let ddtheta1 = -(d2 * ddtheta2 + phi1) / d1;
        [dtheta1, dtheta2, ddtheta1, ddtheta2, 0.0]
    }

    /// One classical Runge-Kutta step over `dt` (Gymnasium's `rk4` with `t = [0, dt]`).
    fn rk4(&self, y0: [f64; 5]) -> [f64; 5] {
        let dt = self.config.dt;
        let dt2 = dt / 2.0;
        let add = |y: &[f64; 5], h: f64, k: &[f64; 5]| -> [f64; 5] { std::array::from_fn(|i| y[i] + h * k[i]) };
        let k1 = self.dsdt(&y0);
        let k2 = self.dsdt(&add(&y0, dt2, &k1));
        let k3 = self.dsdt(&add(&y0, dt2, &k2));
        let k4 = self.dsdt(&add(&y0, dt, &k3));
        std::array::from_fn(|i| y0[i] + dt / 6.0 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i]))
    }
}

/// Turns of the period that [`wrap`] takes one at a time, as Gymnasium does; farther angles
/// are wrapped in closed form, so no input (1e18, or `dt = 1000`) makes it loop for long.
const WRAP_TURNS: f64 = 64.0;

/// Gymnasium's `wrap`: `x` shifted by whole periods `big_m - m` into `[m, big_m]`. Within
/// [`WRAP_TURNS`] periods of the range (every step of sane dynamics) it subtracts or adds the
/// period one turn at a time, as Gymnasium does, so the result is the same bit for bit;
/// beyond, where Gymnasium's loop would take as many turns as `x` has periods (forever for
/// infinity), it takes the Euclidean remainder. Non-finite `x` gives NaN, which the
/// observation check turns into an error.
fn wrap(x: f64, m: f64, big_m: f64) -> f64 {
    let diff = big_m - m;
    if !(x >= m - WRAP_TURNS * diff && x <= big_m + WRAP_TURNS * diff) {
        return m + (x - m).rem_euclid(diff);
    }
    let mut x = x;
    // At most `WRAP_TURNS + 1` turns each: `x` is within that many periods of the range.
    while x > big_m {
        x -= diff;
    }
    while x < m {
        x += diff;
    }
    x
}

fn write_obs(s: &[f64; 4], obs: &mut [f32]) {
    let values = [s[0].cos(), s[0].sin(), s[1].cos(), s[1].sin(), s[2], s[3]];
    for (o, v) in obs.iter_mut().zip(values) {
        *o = v as f32;
    }
}

impl Env for Acrobot {
    fn spec(&self) -> &EnvSpec {
        &self.spec
    }

    fn reset(&mut self, seed: Option<u64>, options: &ResetOptions, obs: ObsMut<'_>) -> Result<()> {
        let obs = obs.f32(6)?;
        let state = start_state(Self::ID, &self.params, &mut self.rng, seed, options, UniformStart::draw)?;
        write_obs(&state, obs);
        self.state = Some(state);
        Ok(())
    }

    fn step(&mut self, action: Action<'_>, obs: ObsMut<'_>) -> Result<Step> {
        let obs = obs.f32(6)?;
        let action = self.spec.action_space.discrete_action(action)?;
        let s = self.state.ok_or(EnvError::ResetNeeded)?;
        let mut torque = AVAIL_TORQUE[action as usize];
        if self.config.torque_noise_max > 0.0 {
            let n = self.config.torque_noise_max;
            torque += self.rng.uniform(-n, n);
        }
        let ns = self.rk4([s[0], s[1], s[2], s[3], torque]);
        let (v1, v2) = (self.config.max_vel_1, self.config.max_vel_2);
        let state = [wrap(ns[0], -PI, PI), wrap(ns[1], -PI, PI), ns[2].max(-v1).min(v1), ns[3].max(-v2).min(v2)];
        self.state = Some(state);
        write_obs(&state, obs);
        let terminated = -state[0].cos() - (state[1] + state[0]).cos() > 1.0;
        Ok(Step { reward: if terminated { 0.0 } else { -1.0 }, terminated, truncated: false })
    }

    fn state(&self) -> Option<Vec<f64>> {
        self.state.map(|s| s.to_vec())
    }

    params_methods!(UniformStart);

    snapshot_fields!(state, rng, params);
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, json};

    use super::*;
    use crate::obs::ObsBuf;

    /// Gymnasium's `wrap`, loop for loop.
    fn gymnasium_wrap(mut x: f64, m: f64, big_m: f64) -> f64 {
        let diff = big_m - m;
        while x > big_m {
            x -= diff;
        }
        while x < m {
            x += diff;
        }
        x
    }

    #[test]
    fn wrap_is_gymnasiums_within_many_turns() {
        for i in -6_000..=6_000 {
            let x = f64::from(i) * 0.0191 * PI + 1e-9 * f64::from(i % 7);
            assert_eq!(wrap(x, -PI, PI).to_bits(), gymnasium_wrap(x, -PI, PI).to_bits(), "x = {x}");
        }
        for x in [PI, -PI, 3.0 * PI, -3.0 * PI, 0.0, -0.0] {
            assert_eq!(wrap(x, -PI, PI).to_bits(), gymnasium_wrap(x, -PI, PI).to_bits(), "x = {x}");
        }
    }

    #[test]
    fn wrap_takes_huge_and_non_finite_angles_at_once() {
        for x in [1e18, -1e18, 1e300, f64::MAX, -f64::MAX, 4e6 * PI] {
            let w = wrap(x, -PI, PI);
            assert!((-PI..=PI).contains(&w), "wrap({x}) = {w}");
        }
        for x in [f64::INFINITY, f64::NEG_INFINITY, f64::NAN] {
            assert!(wrap(x, -PI, PI).is_nan());
        }
    }

    fn map(v: serde_json::Value) -> Map<String, serde_json::Value> {
        match v {
            serde_json::Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn a_huge_start_angle_or_time_step_returns_from_step() {
        let mut env = crate::make(Acrobot::ID, &Map::new()).unwrap_or_else(|e| panic!("{e}"));
        let mut obs = ObsBuf::zeros(crate::space::DType::Float32, 6);
        let huge = ResetOptions::with_state(vec![1e18, 0.0, 0.0, 0.0]);
        env.reset(Some(0), &huge, obs.as_mut()).unwrap_or_else(|e| panic!("{e}"));
        env.step(Action::Int(&[1]), obs.as_mut()).unwrap_or_else(|e| panic!("{e}"));
        let state = env.state().unwrap_or_default();
        assert!(state[..2].iter().all(|t| (-PI..=PI).contains(t)), "{state:?}");
        // A time step so long that the integration leaves every angle's range: each step returns,
        // with an observation or with an error naming the non-finite value.
        let mut env = crate::make(Acrobot::ID, &map(json!({"dt": 1000.0}))).unwrap_or_else(|e| panic!("{e}"));
        env.reset(Some(0), &ResetOptions::default(), obs.as_mut()).unwrap_or_else(|e| panic!("{e}"));
        for _ in 0..5 {
            match env.step(Action::Int(&[1]), obs.as_mut()) {
                Ok(_) => assert!(obs.to_f64_vec().iter().all(|v| v.is_finite())),
                Err(e) => assert!(matches!(e, EnvError::NonFiniteObservation(_)), "{e}"),
            }
        }
    }
}

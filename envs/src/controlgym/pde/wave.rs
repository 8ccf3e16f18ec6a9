//! # Wave
//!
//! ## Description
//! The wave equation `u_tt = c² u_xx` on the periodic domain `[0, L)`, as a first-order system
//! with state `[u; u_t]` (two stacked fields of `n_state / 2` points). Undamped: energy put in
//! stays. The transition over one sample interval is exact (a 2×2 rotation-like block per
//! wavenumber), and the actuators push on `u_t` as an impulse `x⁺ = A x + B u`, as in
//! controlgym's `wave`. The waves are undamped, so LQR needs every mode reachable; at the default
//! size it is not (each actuator is 10 of the 100 points wide, and a 10-point top-hat has no
//! Fourier content at modes 10, 20, …, 50), and `keel baseline --controller lqr` says there is no
//! stabilising solution, where controlgym's `scipy` call returns a meaningless gain.
//!
//! ## Observation space
//! `Box(±observation_limit, (n_observation,), float32)`: point sensors of the stacked state
//! (default: five read `u`, five read `u_t`).
//!
//! ## Action space
//! `Box(±action_limit, (n_action,), float32)`: impulses on `u_t`.
//!
//! ## Reward
//! `−[q_weight ‖x − x*‖² + r_weight ‖u‖²]` of the pre-step stacked state and the action.
//!
//! ## Starting state
//! `u₀(x) = a · sech((x − L/2) / s)`, `u_t = 0`, `a ~ 1 ± 0.1`, `s ~ 0.05 ± 0.01` (per-reset
//! parameters [`WaveStart`]), or exact via the `state` reset option.
//!
//! ## Episode end
//! Terminated when the state diverges (non-finite, or reward below `−reward_limit`, 1e15 by
//! default); truncated after `n_steps` (200) steps. In `compat = "controlgym"` mode see
//! [`crate::controlgym::pde`].
//!
//! ## Config
//! [`WaveConfig`]; defaults as controlgym: `L = 1`, `sample_time = 0.1`, `n_state = 200`,
//! `n_steps = 200`, `reward_limit = 1e15`, `c = 0.1`; `n_observation = 10`, `n_action = 8`,
//! `control_sup_width = 0.1`, sensor noise variance 0.25, no process noise.
//!
//! ## Version history
//! - v0: controlgym 1.0.0's `wave`, with Gymnasium conventions by default.
//!
//! ## Source
//! Zhang et al., *Controlgym*, arXiv:2311.18736.

use super::spectral::ModalPair;
use super::{Dynamics, Grid, Integrator, Layout, PdeEnv, draw_around};
use crate::config::{FieldError, Validate};
use crate::rng::EnvRng;

super::pde_config! {
    /// Construction config of [`Wave`].
    pub struct WaveConfig {
        common: { sample_time: 0.1, n_state: 200, n_steps: 200, integration_time: None, reward_limit: Some(1e15) },
        /// Mean of the initial pulse amplitude `a`.
        pub init_amplitude_mean: f64 = 1.0,
        /// Width of the uniform spread of `a` around its mean.
        pub init_amplitude_width: f64 = 0.2,
        /// Mean of the initial pulse width `s`.
        pub init_spread_mean: f64 = 0.05,
        /// Width of the uniform spread of `s` around its mean.
        pub init_spread_width: f64 = 0.02,
        /// Wave speed `c` (>= 0).
        pub wave_speed: f64 = 0.1,
    }
}

impl Validate for WaveConfig {
    fn validate(&self) -> Result<(), FieldError> {
        super::validate_common(self, WaveDynamics::LAYOUT)?;
        if !(self.wave_speed.is_finite() && self.wave_speed >= 0.0) {
            return Err(FieldError::new("wave_speed", format!("must be finite and >= 0, got {}", self.wave_speed)));
        }
        WaveStart::from_config(self).validate()
    }
}

super::start_params! {
    /// Per-reset parameters of [`Wave`]: the initial pulse distribution.
    pub struct WaveStart from WaveConfig {
        /// Mean of the amplitude `a`.
        pub init_amplitude_mean,
        /// Uniform spread of `a`.
        pub init_amplitude_width,
        /// Mean of the width `s`.
        pub init_spread_mean,
        /// Uniform spread of `s`.
        pub init_spread_width,
    }
}

/// The exact per-mode transition.
pub struct WaveDynamics(ModalPair);

/// The wave env (see the module docs).
pub type Wave = PdeEnv<WaveDynamics>;

impl Dynamics for WaveDynamics {
    const ID: &'static str = "keel/Wave-v0";
    const DESCRIPTION: &'static str = "Damp an undamped periodic wave with 8 actuators (controlgym wave)";
    const LAYOUT: Layout = Layout { integrator: Integrator::Exact, stacked: true };
    type Config = WaveConfig;
    type Start = WaveStart;

    fn start(config: &WaveConfig) -> WaveStart {
        WaveStart::from_config(config)
    }

    fn build(config: &WaveConfig, grid: &Grid) -> Self {
        let t = config.common.sample_time;
        let blocks = grid
            .k
            .iter()
            .map(|&k| {
                let w = config.wave_speed * k.abs();
                if w == 0.0 {
                    [1.0, t, 0.0, 1.0]
                } else {
                    let (s, c) = (w * t).sin_cos();
                    [c, s / w, -w * s, c]
                }
            })
            .collect();
        Self(ModalPair::new(blocks, grid.x.len()))
    }

    fn initial_state(start: &WaveStart, rng: &mut EnvRng, grid: &Grid, out: &mut [f64]) {
        let a = draw_around(rng, start.init_amplitude_mean, start.init_amplitude_width);
        let s = draw_around(rng, start.init_spread_mean, start.init_spread_width);
        let (u, ut) = out.split_at_mut(grid.x.len());
        for (o, x) in u.iter_mut().zip(&grid.x) {
            *o = a * (1.0 / s * (x - grid.length / 2.0)).cosh().recip();
        }
        ut.fill(0.0);
    }

    fn advance(&mut self, state: &[f64], force: &[f64], out: &mut [f64]) -> bool {
        self.0.apply(state, force, out);
        true
    }
}

//! # Ginzburg–Landau
//!
//! ## Description
//! `u_t = u − u³ + u_xx` on the periodic domain `[0, L)`: the real Ginzburg–Landau equation: a bistable field whose kinks coarsen. Pseudo-spectral, ETDRK4 with
//! 3/2-rule dealiasing. controlgym's `ginzburg_landau`.
//!
//! ## Observation space
//! `Box(±observation_limit, (n_observation,), float32)`: point sensors of `u` (see [`crate::controlgym::pde`]).
//!
//! ## Action space
//! `Box(±action_limit, (n_action,), float32)`: actuator sources, held over each sample interval.
//!
//! ## Reward
//! `−[q_weight ‖x − x*‖² + r_weight ‖u‖²]` of the pre-step state and the action.
//!
//! ## Starting state
//! `u₀(x) = a (tanh(x − L/2 + s/2) − tanh(x − L/2 − s/2))`, `a ~ 0.1 ± 0.025`, `s ~ 20 ± 5` (per-reset parameters [`GinzburgLandauStart`]), or exact via the `state` reset
//! option.
//!
//! ## Episode end
//! Terminated when the state diverges (non-finite, or reward beyond `reward_limit`); truncated
//! after `n_steps` (100) steps. In `compat = "controlgym"` mode see [`crate::controlgym::pde`].
//!
//! ## Config
//! [`GinzburgLandauConfig`]; defaults as controlgym: `L = 100`, `h = 1e-2`, `sample_time = 0.1`, `n_state = 256`; `n_observation = 10`,
//! `n_action = 8`, `control_sup_width = 0.1`, sensor noise variance 0.25, no process noise. The
//! default-vs-controlgym differences are listed in [`crate::controlgym::pde`].
//!
//! ## Version history
//! - v0: controlgym 1.0.0's `ginzburg_landau`, with Gymnasium conventions by default.
//!
//! ## Source
//! Zhang et al., *Controlgym*, arXiv:2311.18736.

use realfft::num_complex::Complex64;

use super::spectral::{Etdrk4, Outcome, Pointwise};
use super::{Dynamics, Grid, Integrator, Layout, PdeConfig, PdeEnv, complex, draw_around, etdrk4};
use crate::config::{FieldError, Validate};
use crate::rng::EnvRng;

super::pde_config! {
    /// Construction config of [`GinzburgLandau`].
    pub struct GinzburgLandauConfig {
        common: { sample_time: 0.1, domain_length: 100.0, integration_time: Some(1e-2) },
        /// Mean of the initial amplitude `a`.
        pub init_amplitude_mean: f64 = 0.1,
        /// Width of the uniform spread of `a` around its mean.
        pub init_amplitude_width: f64 = 0.05,
        /// Mean of the initial plateau width `s`.
        pub init_spread_mean: f64 = 20.0,
        /// Width of the uniform spread of `s` around its mean.
        pub init_spread_width: f64 = 10.0,
    }
}

impl Validate for GinzburgLandauConfig {
    fn validate(&self) -> Result<(), FieldError> {
        super::validate_common(self, GinzburgLandauDynamics::LAYOUT)?;

        GinzburgLandauStart::from_config(self).validate()
    }
}

super::start_params! {
    /// Per-reset parameters of [`GinzburgLandau`]: the initial-state distribution.
    pub struct GinzburgLandauStart from GinzburgLandauConfig {
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

/// The Ginzburg–Landau equation integrated by ETDRK4.
pub struct GinzburgLandauDynamics(Etdrk4);

/// The Ginzburg–Landau env (see the module docs).
pub type GinzburgLandau = PdeEnv<GinzburgLandauDynamics>;

impl Dynamics for GinzburgLandauDynamics {
    const ID: &'static str = "keel/GinzburgLandau-v0";
    const DESCRIPTION: &'static str =
        "Control the real Ginzburg–Landau equation with 8 actuators (controlgym ginzburg_landau)";
    const LAYOUT: Layout = Layout { integrator: Integrator::Etdrk4, stacked: false };
    type Config = GinzburgLandauConfig;
    type Start = GinzburgLandauStart;

    fn start(config: &GinzburgLandauConfig) -> GinzburgLandauStart {
        GinzburgLandauStart::from_config(config)
    }

    fn build(config: &GinzburgLandauConfig, grid: &Grid) -> Self {
        let linear = complex(grid.k.iter().map(|k| 1.0 - k * k));
        let multiplier = grid.k.iter().map(|_| Complex64::new(-1.0, 0.0)).collect();
        Self(etdrk4(config.common(), &linear, multiplier, Pointwise::Cube))
    }

    fn initial_state(start: &GinzburgLandauStart, rng: &mut EnvRng, grid: &Grid, out: &mut [f64]) {
        let a = draw_around(rng, start.init_amplitude_mean, start.init_amplitude_width);
        let s = draw_around(rng, start.init_spread_mean, start.init_spread_width);
        for (o, x) in out.iter_mut().zip(&grid.x) {
            let d = x - grid.length / 2.0;
            *o = a * ((d + s / 2.0).tanh() - (d - s / 2.0).tanh());
        }
    }

    fn advance(&mut self, state: &[f64], force: &[f64], out: &mut [f64]) -> bool {
        self.0.advance(state, force, out) == Outcome::Completed
    }
}

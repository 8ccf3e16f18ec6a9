//! # Cahn–Hilliard
//!
//! ## Description
//! `u_t = D (∂²(u³) − u_xx) − γ D u_xxxx` on the periodic domain `[0, L)`: mass-conserving phase separation (spinodal decomposition) with surface tension `γ`. Pseudo-spectral, ETDRK4 with
//! 3/2-rule dealiasing. controlgym's `cahn_hilliard`.
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
//! `u₀(x) = a cos(π (x − L/2)) − exp(−4 (π (x − L/2))²)`, `a ~ 1 ± 0.1` (per-reset parameters [`CahnHilliardStart`]), or exact via the `state` reset
//! option.
//!
//! ## Episode end
//! Terminated when the state diverges (non-finite, or reward beyond `reward_limit`); truncated
//! after `n_steps` (50) steps. In `compat = "controlgym"` mode see [`crate::controlgym::pde`].
//!
//! ## Config
//! [`CahnHilliardConfig`]; defaults as controlgym: `L = 2`, `h = 1e-3`, `sample_time = 0.01`, `n_steps = 50`, `n_state = 256`, `D = 1`, `γ = 0.02`; `n_observation = 10`,
//! `n_action = 8`, `control_sup_width = 0.1`, sensor noise variance 0.25, no process noise. The
//! default-vs-controlgym differences are listed in [`crate::controlgym::pde`].
//!
//! ## Version history
//! - v0: controlgym 1.0.0's `cahn_hilliard`, with Gymnasium conventions by default.
//!
//! ## Source
//! Zhang et al., *Controlgym*, arXiv:2311.18736.

use std::f64::consts::PI;

use realfft::num_complex::Complex64;

use super::spectral::{Etdrk4, Outcome, Pointwise};
use super::{Dynamics, Grid, Integrator, Layout, PdeConfig, PdeEnv, complex, draw_around, etdrk4};
use crate::config::{FieldError, Validate, positive};
use crate::rng::EnvRng;

super::pde_config! {
    /// Construction config of [`CahnHilliard`].
    pub struct CahnHilliardConfig {
        common: { sample_time: 0.01, domain_length: 2.0, n_steps: 50 },
        /// Mean of the initial amplitude `a`.
        pub init_amplitude_mean: f64 = 1.0,
        /// Width of the uniform spread of `a` around its mean.
        pub init_amplitude_width: f64 = 0.2,
        /// Mobility `D`.
        pub diffusivity_constant: f64 = 1.0,
        /// Surface tension `γ`.
        pub surface_tension_constant: f64 = 0.02,
    }
}

impl Validate for CahnHilliardConfig {
    fn validate(&self) -> Result<(), FieldError> {
        super::validate_common(self, CahnHilliardDynamics::LAYOUT)?;
        positive("diffusivity_constant", self.diffusivity_constant)?;
        positive("surface_tension_constant", self.surface_tension_constant)?;
        CahnHilliardStart::from_config(self).validate()
    }
}

super::start_params! {
    /// Per-reset parameters of [`CahnHilliard`]: the initial-state distribution.
    pub struct CahnHilliardStart from CahnHilliardConfig {
        /// Mean of the amplitude `a`.
        pub init_amplitude_mean,
        /// Uniform spread of `a`.
        pub init_amplitude_width,
    }
}

/// The Cahn–Hilliard equation integrated by ETDRK4.
pub struct CahnHilliardDynamics(Etdrk4);

/// The Cahn–Hilliard env (see the module docs).
pub type CahnHilliard = PdeEnv<CahnHilliardDynamics>;

impl Dynamics for CahnHilliardDynamics {
    const ID: &'static str = "keel/CahnHilliard-v0";
    const DESCRIPTION: &'static str =
        "Steer Cahn–Hilliard phase separation with 8 actuators (controlgym cahn_hilliard)";
    const LAYOUT: Layout = Layout { integrator: Integrator::Etdrk4, stacked: false };
    type Config = CahnHilliardConfig;
    type Start = CahnHilliardStart;

    fn start(config: &CahnHilliardConfig) -> CahnHilliardStart {
        CahnHilliardStart::from_config(config)
    }

    fn build(config: &CahnHilliardConfig, grid: &Grid) -> Self {
        let linear = complex(
            grid.k.iter().map(|k| config.diffusivity_constant * (k * k - config.surface_tension_constant * k.powi(4))),
        );
        let multiplier = grid.k.iter().map(|k| Complex64::new(-config.diffusivity_constant * k * k, 0.0)).collect();
        Self(etdrk4(config.common(), &linear, multiplier, Pointwise::Cube))
    }

    fn initial_state(start: &CahnHilliardStart, rng: &mut EnvRng, grid: &Grid, out: &mut [f64]) {
        let a = draw_around(rng, start.init_amplitude_mean, start.init_amplitude_width);
        for (o, x) in out.iter_mut().zip(&grid.x) {
            let d = PI * (x - 0.5 * grid.length);
            *o = a * d.cos() - (-4.0 * d * d).exp();
        }
    }

    fn advance(&mut self, state: &[f64], force: &[f64], out: &mut [f64]) -> bool {
        self.0.advance(state, force, out) == Outcome::Completed
    }
}

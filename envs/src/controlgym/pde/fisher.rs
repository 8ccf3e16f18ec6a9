//! # Fisher–KPP
//!
//! ## Description
//! `u_t = D u_xx + r u (1 − u)` on the periodic domain `[0, L)`: reaction–diffusion of a population invading its domain as travelling fronts. Pseudo-spectral, ETDRK4 with
//! 3/2-rule dealiasing. controlgym's `fisher`.
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
//! `u₀(x) = a sin(4π x / L)`, `a ~ 1 ± 0.1` (per-reset parameters [`FisherStart`]), or exact via the `state` reset
//! option.
//!
//! ## Episode end
//! Terminated when the state diverges (non-finite, or reward beyond `reward_limit`); truncated
//! after `n_steps` (100) steps. In `compat = "controlgym"` mode see [`crate::controlgym::pde`].
//!
//! ## Config
//! [`FisherConfig`]; defaults as controlgym: `L = 10`, `h = 1e-3`, `sample_time = 0.05`, `n_state = 256`, `D = 1e-4`, `r = 0.1`; `n_observation = 10`,
//! `n_action = 8`, `control_sup_width = 0.1`, sensor noise variance 0.25, no process noise. The
//! default-vs-controlgym differences are listed in [`crate::controlgym::pde`].
//!
//! ## Version history
//! - v0: controlgym 1.0.0's `fisher`, with Gymnasium conventions by default.
//!
//! ## Source
//! Zhang et al., *Controlgym*, arXiv:2311.18736.

use std::f64::consts::PI;

use realfft::num_complex::Complex64;

use super::spectral::{Etdrk4, Outcome, Pointwise};
use super::{Dynamics, Grid, Integrator, Layout, PdeConfig, PdeEnv, complex, draw_around, etdrk4};
use crate::config::{FieldError, Validate, finite, positive};
use crate::rng::EnvRng;

super::pde_config! {
    /// Construction config of [`Fisher`].
    pub struct FisherConfig {
        common: { sample_time: 0.05, domain_length: 10.0 },
        /// Mean of the initial amplitude `a`.
        pub init_amplitude_mean: f64 = 1.0,
        /// Width of the uniform spread of `a` around its mean.
        pub init_amplitude_width: f64 = 0.2,
        /// Diffusivity `D`.
        pub diffusivity_constant: f64 = 1e-4,
        /// Growth rate `r`.
        pub reaction_constant: f64 = 0.1,
    }
}

impl Validate for FisherConfig {
    fn validate(&self) -> Result<(), FieldError> {
        super::validate_common(self, FisherDynamics::LAYOUT)?;
        positive("diffusivity_constant", self.diffusivity_constant)?;
        finite("reaction_constant", self.reaction_constant)?;
        FisherStart::from_config(self).validate()
    }
}

super::start_params! {
    /// Per-reset parameters of [`Fisher`]: the initial-state distribution.
    pub struct FisherStart from FisherConfig {
        /// Mean of the amplitude `a`.
        pub init_amplitude_mean,
        /// Uniform spread of `a`.
        pub init_amplitude_width,
    }
}

/// The Fisher–KPP equation integrated by ETDRK4.
pub struct FisherDynamics(Etdrk4);

/// The Fisher–KPP env (see the module docs).
pub type Fisher = PdeEnv<FisherDynamics>;

impl Dynamics for FisherDynamics {
    const ID: &'static str = "keel/Fisher-v0";
    const DESCRIPTION: &'static str =
        "Control Fisher–KPP reaction–diffusion fronts with 8 actuators (controlgym fisher)";
    const LAYOUT: Layout = Layout { integrator: Integrator::Etdrk4, stacked: false };
    type Config = FisherConfig;
    type Start = FisherStart;

    fn start(config: &FisherConfig) -> FisherStart {
        FisherStart::from_config(config)
    }

    fn build(config: &FisherConfig, grid: &Grid) -> Self {
        let linear = complex(grid.k.iter().map(|k| -config.diffusivity_constant * k * k));
        let multiplier = grid.k.iter().map(|_| Complex64::new(config.reaction_constant, 0.0)).collect();
        Self(etdrk4(config.common(), &linear, multiplier, Pointwise::Logistic))
    }

    fn initial_state(start: &FisherStart, rng: &mut EnvRng, grid: &Grid, out: &mut [f64]) {
        let a = draw_around(rng, start.init_amplitude_mean, start.init_amplitude_width);
        for (o, x) in out.iter_mut().zip(&grid.x) {
            *o = a * (4.0 * PI * x / grid.length).sin();
        }
    }

    fn advance(&mut self, state: &[f64], force: &[f64], out: &mut [f64]) -> bool {
        self.0.advance(state, force, out) == Outcome::Completed
    }
}

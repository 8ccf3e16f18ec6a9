//! # Allen–Cahn
//!
//! ## Description
//! `u_t = ε² u_xx + λ (u − u³)` on the periodic domain `[0, L)`: phase separation: a bistable field relaxes towards ±1 across thin interfaces of width ~ε. Pseudo-spectral, ETDRK4 with
//! 3/2-rule dealiasing. controlgym's `allen_cahn`.
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
//! `u₀(x) = c + (x − L/2)² cos(2π (x − L/2) / L)`, `c ~ 0 ± 0.1` (per-reset parameters [`AllenCahnStart`]), or exact via the `state` reset
//! option.
//!
//! ## Episode end
//! Terminated when the state diverges (non-finite, or reward beyond `reward_limit`); truncated
//! after `n_steps` (100) steps. In `compat = "controlgym"` mode see [`crate::controlgym::pde`].
//!
//! ## Config
//! [`AllenCahnConfig`]; defaults as controlgym: `L = 2`, `h = 1e-3`, `sample_time = 0.01`, `n_state = 256`, `ε = 1e-4` (so the diffusion is `ε² = 1e-8`, as controlgym), `λ = 5`; `n_observation = 10`,
//! `n_action = 8`, `control_sup_width = 0.1`, sensor noise variance 0.25, no process noise. The
//! default-vs-controlgym differences are listed in [`crate::controlgym::pde`].
//!
//! ## Version history
//! - v0: controlgym 1.0.0's `allen_cahn`, with Gymnasium conventions by default.
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
    /// Construction config of [`AllenCahn`].
    pub struct AllenCahnConfig {
        common: { sample_time: 0.01, domain_length: 2.0 },
        /// Mean of the initial offset `c`.
        pub init_offset_mean: f64 = 0.0,
        /// Width of the uniform spread of `c` around its mean.
        pub init_offset_width: f64 = 0.2,
        /// Interface width `ε`; the diffusion coefficient is `ε²`.
        pub diffusivity_constant: f64 = 1e-4,
        /// Reaction strength `λ`.
        pub potential_constant: f64 = 5.0,
    }
}

impl Validate for AllenCahnConfig {
    fn validate(&self) -> Result<(), FieldError> {
        super::validate_common(self, AllenCahnDynamics::LAYOUT)?;
        positive("diffusivity_constant", self.diffusivity_constant)?;
        finite("potential_constant", self.potential_constant)?;
        AllenCahnStart::from_config(self).validate()
    }
}

super::start_params! {
    /// Per-reset parameters of [`AllenCahn`]: the initial-state distribution.
    pub struct AllenCahnStart from AllenCahnConfig {
        /// Mean of the offset `c`.
        pub init_offset_mean,
        /// Uniform spread of `c`.
        pub init_offset_width,
    }
}

/// The Allen–Cahn equation integrated by ETDRK4.
pub struct AllenCahnDynamics(Etdrk4);

/// The Allen–Cahn env (see the module docs).
pub type AllenCahn = PdeEnv<AllenCahnDynamics>;

impl Dynamics for AllenCahnDynamics {
    const ID: &'static str = "keel/AllenCahn-v0";
    const DESCRIPTION: &'static str = "Steer Allen–Cahn phase separation with 8 actuators (controlgym allen_cahn)";
    const LAYOUT: Layout = Layout { integrator: Integrator::Etdrk4, stacked: false };
    type Config = AllenCahnConfig;
    type Start = AllenCahnStart;

    fn start(config: &AllenCahnConfig) -> AllenCahnStart {
        AllenCahnStart::from_config(config)
    }

    fn build(config: &AllenCahnConfig, grid: &Grid) -> Self {
        let linear =
            complex(grid.k.iter().map(|k| config.potential_constant - config.diffusivity_constant.powi(2) * k * k));
        let multiplier = grid.k.iter().map(|_| Complex64::new(-config.potential_constant, 0.0)).collect();
        Self(etdrk4(config.common(), &linear, multiplier, Pointwise::Cube))
    }

    fn initial_state(start: &AllenCahnStart, rng: &mut EnvRng, grid: &Grid, out: &mut [f64]) {
        let c = draw_around(rng, start.init_offset_mean, start.init_offset_width);
        for (o, x) in out.iter_mut().zip(&grid.x) {
            let d = x - 0.5 * grid.length;
            *o = c + d * d * (2.0 * PI * d / grid.length).cos();
        }
    }

    fn advance(&mut self, state: &[f64], force: &[f64], out: &mut [f64]) -> bool {
        self.0.advance(state, force, out) == Outcome::Completed
    }
}

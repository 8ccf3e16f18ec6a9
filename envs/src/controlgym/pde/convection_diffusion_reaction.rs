//! # Convection–diffusion–reaction
//!
//! ## Description
//! The linear PDE `u_t = D u_xx − c u_x + r u` on the periodic domain `[0, L)`: a pulse drifts,
//! spreads and grows (r > 0 makes the uncontrolled system unstable). The transition over one
//! sample interval is exact (each Fourier mode is multiplied by `e^{(−i c k − D k² + r) T}`), and
//! the actuators act as an impulse `x⁺ = A x + B u`, as in controlgym's
//! `convection_diffusion_reaction`. LQR and LQG apply (`keel baseline`).
//!
//! ## Observation space
//! `Box(±observation_limit, (n_observation,), float32)`: point sensors of `u` (see [`crate::controlgym::pde`]).
//!
//! ## Action space
//! `Box(±action_limit, (n_action,), float32)`: actuator impulses.
//!
//! ## Reward
//! `−[q_weight ‖x − x*‖² + r_weight ‖u‖²]` of the pre-step state and the action.
//!
//! ## Starting state
//! `u₀(x) = a · sech((x − L/2) / s)`, `a ~ 1 ± 0.1`, `s ~ 0.05 ± 0.01` (per-reset parameters
//! [`ConvectionDiffusionReactionStart`]), or exact via the `state` reset option.
//!
//! ## Episode end
//! Terminated when the state diverges (non-finite, or reward beyond `reward_limit`); truncated
//! after `n_steps` (100) steps. In `compat = "controlgym"` mode see [`crate::controlgym::pde`].
//!
//! ## Config
//! [`ConvectionDiffusionReactionConfig`]; defaults as controlgym: `L = 1`, `sample_time = 0.1`,
//! `n_state = 200`, `D = 0.002`, `c = 0.1`, `r = 0.1`; `n_observation = 10`, `n_action = 8`,
//! `control_sup_width = 0.1`, sensor noise variance 0.25, no process noise. controlgym builds the
//! transition as a dense matrix from an inexact DFT (entries off by ~1e-12); Keel's FFT form agrees
//! with it to ~1e-11 over 50 steps.
//!
//! ## Version history
//! - v0: controlgym 1.0.0's `convection_diffusion_reaction`, with Gymnasium conventions by default.
//!
//! ## Source
//! Zhang et al., *Controlgym*, arXiv:2311.18736.

use realfft::num_complex::Complex64;

use super::spectral::ModalScalar;
use super::{Dynamics, Grid, Integrator, Layout, PdeEnv, draw_around};
use crate::config::{FieldError, Validate, finite};
use crate::rng::EnvRng;

super::pde_config! {
    /// Construction config of [`ConvectionDiffusionReaction`].
    pub struct ConvectionDiffusionReactionConfig {
        common: { sample_time: 0.1, n_state: 200, integration_time: None },
        /// Mean of the initial pulse amplitude `a`.
        pub init_amplitude_mean: f64 = 1.0,
        /// Width of the uniform spread of `a` around its mean.
        pub init_amplitude_width: f64 = 0.2,
        /// Mean of the initial pulse width `s`.
        pub init_spread_mean: f64 = 0.05,
        /// Width of the uniform spread of `s` around its mean.
        pub init_spread_width: f64 = 0.02,
        /// Diffusivity `D` (>= 0).
        pub diffusivity_constant: f64 = 0.002,
        /// Convective velocity `c`.
        pub convective_velocity: f64 = 0.1,
        /// Reaction rate `r` (positive: unstable growth).
        pub reaction_constant: f64 = 0.1,
    }
}

impl Validate for ConvectionDiffusionReactionConfig {
    fn validate(&self) -> Result<(), FieldError> {
        super::validate_common(self, ConvectionDiffusionReactionDynamics::LAYOUT)?;
        if !(self.diffusivity_constant.is_finite() && self.diffusivity_constant >= 0.0) {
            return Err(FieldError::new("diffusivity_constant", "must be finite and >= 0"));
        }
        finite("convective_velocity", self.convective_velocity)?;
        finite("reaction_constant", self.reaction_constant)?;
        ConvectionDiffusionReactionStart::from_config(self).validate()
    }
}

super::start_params! {
    /// Per-reset parameters of [`ConvectionDiffusionReaction`]: the initial pulse distribution.
    pub struct ConvectionDiffusionReactionStart from ConvectionDiffusionReactionConfig {
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
pub struct ConvectionDiffusionReactionDynamics(ModalScalar);

/// The convection–diffusion–reaction env (see the module docs).
pub type ConvectionDiffusionReaction = PdeEnv<ConvectionDiffusionReactionDynamics>;

impl Dynamics for ConvectionDiffusionReactionDynamics {
    const ID: &'static str = "keel/ConvectionDiffusionReaction-v0";
    const DESCRIPTION: &'static str =
        "Stabilise an unstable linear convection-diffusion-reaction field (controlgym convection_diffusion_reaction)";
    const LAYOUT: Layout = Layout { integrator: Integrator::Exact, stacked: false };
    type Config = ConvectionDiffusionReactionConfig;
    type Start = ConvectionDiffusionReactionStart;

    fn start(config: &Self::Config) -> Self::Start {
        ConvectionDiffusionReactionStart::from_config(config)
    }

    fn build(config: &Self::Config, grid: &Grid) -> Self {
        let (d, c, r, t) =
            (config.diffusivity_constant, config.convective_velocity, config.reaction_constant, config.common.sample_time);
        // numpy's fftfreq puts the Nyquist bin at −k; only the real part of its factor reaches
        // the real state, and that is even in k.
        let factor = grid.k.iter().map(|&k| (Complex64::new(-d * k * k + r, -c * k) * t).exp()).collect();
        Self(ModalScalar::new(factor, config.common.n_state))
    }

    fn initial_state(start: &Self::Start, rng: &mut EnvRng, grid: &Grid, out: &mut [f64]) {
        let a = draw_around(rng, start.init_amplitude_mean, start.init_amplitude_width);
        let s = draw_around(rng, start.init_spread_mean, start.init_spread_width);
        for (o, x) in out.iter_mut().zip(&grid.x) {
            *o = a * (1.0 / s * (x - 0.5 * grid.length)).cosh().recip();
        }
    }

    fn advance(&mut self, state: &[f64], force: &[f64], out: &mut [f64]) -> bool {
        self.0.apply(state, force, out);
        true
    }
}

//! # Kuramoto–Sivashinsky
//!
//! ## Description
//! `u_t = −u_xx − u u_x − u_xxxx` on the periodic domain `[0, L)`: spatio-temporal chaos (flame fronts, thin films) to be stabilised. Pseudo-spectral, ETDRK4 with
//! 3/2-rule dealiasing. controlgym's `kuramoto_sivashinsky`.
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
//! `u₀(x) = a cos(2π x / L) sin(12π x / L)`, `a ~ 1 ± 0.1` (per-reset parameters [`KuramotoSivashinskyStart`]), or exact via the `state` reset
//! option.
//!
//! ## Episode end
//! Terminated when the state diverges (non-finite, or reward beyond `reward_limit`); truncated
//! after `n_steps` (500) steps. In `compat = "controlgym"` mode see [`crate::controlgym::pde`].
//!
//! ## Numerics
//! The default mode integrates the full sample interval (100 ETDRK4 substeps);
//! `compat = "controlgym"` takes controlgym's 99 (Python's `0.5 // 0.005`), 0.495 time units.
//!
//! ## Config
//! [`KuramotoSivashinskyConfig`]; defaults as controlgym: `L = 32π`, `h = 5e-3`, `sample_time = 0.5`, `n_steps = 500`, `n_state = 256`; `n_observation = 10`,
//! `n_action = 8`, `control_sup_width = 0.1`, sensor noise variance 0.25, no process noise. The
//! default-vs-controlgym differences are listed in [`crate::controlgym::pde`].
//!
//! ## Version history
//! - v0: controlgym 1.0.0's `kuramoto_sivashinsky`, with Gymnasium conventions by default.
//!
//! ## Source
//! Zhang et al., *Controlgym*, arXiv:2311.18736.

use std::f64::consts::PI;

use realfft::num_complex::Complex64;

use super::spectral::{Etdrk4, Outcome, Pointwise};
use super::{Dynamics, Grid, Integrator, Layout, PdeConfig, PdeEnv, complex, draw_around, etdrk4};
use crate::config::{FieldError, Validate};
use crate::rng::EnvRng;

super::pde_config! {
    /// Construction config of [`KuramotoSivashinsky`].
    pub struct KuramotoSivashinskyConfig {
        common: { sample_time: 0.5, domain_length: 32.0 * std::f64::consts::PI, integration_time: Some(5e-3), n_steps: 500 },
        /// Mean of the initial amplitude `a`.
        pub init_amplitude_mean: f64 = 1.0,
        /// Width of the uniform spread of `a` around its mean.
        pub init_amplitude_width: f64 = 0.2,
    }
}

impl Validate for KuramotoSivashinskyConfig {
    fn validate(&self) -> Result<(), FieldError> {
        super::validate_common(self, KuramotoSivashinskyDynamics::LAYOUT)?;

        KuramotoSivashinskyStart::from_config(self).validate()
    }
}

super::start_params! {
    /// Per-reset parameters of [`KuramotoSivashinsky`]: the initial-state distribution.
    pub struct KuramotoSivashinskyStart from KuramotoSivashinskyConfig {
        /// Mean of the amplitude `a`.
        pub init_amplitude_mean,
        /// Uniform spread of `a`.
        pub init_amplitude_width,
    }
}

/// The Kuramoto–Sivashinsky equation integrated by ETDRK4.
pub struct KuramotoSivashinskyDynamics(Etdrk4);

/// The Kuramoto–Sivashinsky env (see the module docs).
pub type KuramotoSivashinsky = PdeEnv<KuramotoSivashinskyDynamics>;

impl Dynamics for KuramotoSivashinskyDynamics {
    const ID: &'static str = "keel/KuramotoSivashinsky-v0";
    const DESCRIPTION: &'static str =
        "Stabilise chaotic Kuramoto–Sivashinsky dynamics with 8 actuators (controlgym kuramoto_sivashinsky)";
    const LAYOUT: Layout = Layout { integrator: Integrator::Etdrk4, stacked: false };
    type Config = KuramotoSivashinskyConfig;
    type Start = KuramotoSivashinskyStart;

    fn start(config: &KuramotoSivashinskyConfig) -> KuramotoSivashinskyStart {
        KuramotoSivashinskyStart::from_config(config)
    }

    fn build(config: &KuramotoSivashinskyConfig, grid: &Grid) -> Self {
        let linear = complex(grid.k.iter().map(|k| k * k - k.powi(4)));
        let multiplier = grid.k.iter().map(|&k| Complex64::new(0.0, -0.5) * k).collect();
        Self(etdrk4(config.common(), &linear, multiplier, Pointwise::Square))
    }

    fn initial_state(start: &KuramotoSivashinskyStart, rng: &mut EnvRng, grid: &Grid, out: &mut [f64]) {
        let a = draw_around(rng, start.init_amplitude_mean, start.init_amplitude_width);
        for (o, x) in out.iter_mut().zip(&grid.x) {
            *o = a * (2.0 * PI * x / grid.length).cos() * (12.0 * PI * x / grid.length).sin();
        }
    }

    fn advance(&mut self, state: &[f64], force: &[f64], out: &mut [f64]) -> bool {
        self.0.advance(state, force, out) == Outcome::Completed
    }
}

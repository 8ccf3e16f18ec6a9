//! # Korteweg–de Vries
//!
//! ## Description
//! `u_t = −u_xxx + 6 u u_x` on the periodic domain `[0, L)`: dispersive shallow-water waves: a soliton travels unchanged unless forced. Pseudo-spectral, ETDRK4 with
//! 3/2-rule dealiasing. controlgym's `korteweg_de_vries`.
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
//! `u₀(x) = −(a/2) sech²(√a (x − L/2) / 2)`, `a ~ 2 ± 0.5` (per-reset parameters [`KortewegDeVriesStart`]), or exact via the `state` reset
//! option.
//!
//! ## Episode end
//! Terminated when the state diverges (non-finite, or reward beyond `reward_limit`); truncated
//! after `n_steps` (100) steps. In `compat = "controlgym"` mode see [`crate::controlgym::pde`].
//!
//! ## Numerics
//! `L = i k³` is imaginary: the default mode uses complex contour means for the ETDRK4
//! coefficients and 1000 substeps per step; `compat = "controlgym"` keeps controlgym's real parts
//! (off by up to 16.5 % at the highest wavenumber) and its 999 substeps.
//!
//! ## Config
//! [`KortewegDeVriesConfig`]; defaults as controlgym: `L = 10`, `h = 1e-5`, `sample_time = 0.01`, `n_state = 128`; `n_observation = 10`,
//! `n_action = 8`, `control_sup_width = 0.1`, sensor noise variance 0.25, no process noise. The
//! default-vs-controlgym differences are listed in [`crate::controlgym::pde`].
//!
//! ## Version history
//! - v0: controlgym 1.0.0's `korteweg_de_vries`, with Gymnasium conventions by default.
//!
//! ## Source
//! Zhang et al., *Controlgym*, arXiv:2311.18736.

use realfft::num_complex::Complex64;

use super::spectral::{Etdrk4, Outcome, Pointwise};
use super::{Dynamics, Grid, Integrator, Layout, PdeConfig, PdeEnv, draw_around, etdrk4};
use crate::config::{FieldError, Validate};
use crate::rng::EnvRng;

super::pde_config! {
    /// Construction config of [`KortewegDeVries`].
    pub struct KortewegDeVriesConfig {
        common: { sample_time: 0.01, domain_length: 10.0, integration_time: Some(1e-5), n_state: 128 },
        /// Mean of the soliton amplitude `a`.
        pub init_amplitude_mean: f64 = 2.0,
        /// Width of the uniform spread of `a` around its mean.
        pub init_amplitude_width: f64 = 1.0,
    }
}

impl Validate for KortewegDeVriesConfig {
    fn validate(&self) -> Result<(), FieldError> {
        super::validate_common(self, KortewegDeVriesDynamics::LAYOUT)?;

        KortewegDeVriesStart::from_config(self).validate()
    }
}

super::start_params! {
    /// Per-reset parameters of [`KortewegDeVries`]: the initial-state distribution.
    pub struct KortewegDeVriesStart from KortewegDeVriesConfig {
        /// Mean of the amplitude `a`.
        pub init_amplitude_mean,
        /// Uniform spread of `a`.
        pub init_amplitude_width,
    }
}

/// The Korteweg–de Vries equation integrated by ETDRK4.
pub struct KortewegDeVriesDynamics(Etdrk4);

/// The Korteweg–de Vries env (see the module docs).
pub type KortewegDeVries = PdeEnv<KortewegDeVriesDynamics>;

impl Dynamics for KortewegDeVriesDynamics {
    const ID: &'static str = "keel/KortewegDeVries-v0";
    const DESCRIPTION: &'static str =
        "Control a Korteweg–de Vries soliton with 8 actuators (controlgym korteweg_de_vries)";
    const LAYOUT: Layout = Layout { integrator: Integrator::Etdrk4, stacked: false };
    type Config = KortewegDeVriesConfig;
    type Start = KortewegDeVriesStart;

    fn start(config: &KortewegDeVriesConfig) -> KortewegDeVriesStart {
        KortewegDeVriesStart::from_config(config)
    }

    fn build(config: &KortewegDeVriesConfig, grid: &Grid) -> Self {
        let linear = grid.k.iter().map(|k| Complex64::new(0.0, k * k * k)).collect::<Vec<_>>();
        let multiplier = grid.k.iter().map(|&k| Complex64::new(0.0, 3.0) * k).collect();
        Self(etdrk4(config.common(), &linear, multiplier, Pointwise::Square))
    }

    fn initial_state(start: &KortewegDeVriesStart, rng: &mut EnvRng, grid: &Grid, out: &mut [f64]) {
        let a = draw_around(rng, start.init_amplitude_mean, start.init_amplitude_width);
        for (o, x) in out.iter_mut().zip(&grid.x) {
            *o = -0.5 * a * (0.5 * a.sqrt() * (x - 0.5 * grid.length)).cosh().powi(-2);
        }
    }

    fn advance(&mut self, state: &[f64], force: &[f64], out: &mut [f64]) -> bool {
        self.0.advance(state, force, out) == Outcome::Completed
    }
}

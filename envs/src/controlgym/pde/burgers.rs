//! # Burgers
//!
//! ## Description
//! Viscous Burgers' equation `u_t = ν u_xx − u u_x` on the periodic domain `[0, L)`: a steep
//! pulse steepens into a shock that viscosity smooths; eight actuators shape it. Pseudo-spectral,
//! ETDRK4 with 3/2-rule dealiasing. controlgym's `burgers`.
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
//! `u₀(x) = a · sech((x − L/2) / s)`, `a ~ 1 ± 0.1`, `s ~ 0.05 ± 0.01` (per-reset parameters
//! [`BurgersStart`]), or exact via the `state` reset option.
//!
//! ## Episode end
//! Terminated when the state diverges (non-finite, or reward beyond `reward_limit`); truncated
//! after `n_steps` (100) steps. In `compat = "controlgym"` mode see [`crate::controlgym::pde`].
//!
//! ## Config
//! [`BurgersConfig`]; defaults as controlgym: `L = 1`, `h = 1e-3`, `sample_time = 0.05`,
//! `n_state = 256`, `n_observation = 10`, `n_action = 8`, `control_sup_width = 0.1`, sensor noise
//! variance 0.25, no process noise, `ν = 1e-3`. The default-vs-controlgym differences are listed in
//! [`crate::controlgym::pde`].
//!
//! ## Version history
//! - v0: controlgym 1.0.0's `burgers`, with Gymnasium conventions by default.
//!
//! ## Source
//! Zhang et al., *Controlgym*, arXiv:2311.18736.

use realfft::num_complex::Complex64;

use super::spectral::{Etdrk4, Pointwise};
use super::{Common, Dynamics, Grid, Integrator, Layout, PdeConfig, PdeEnv, complex, draw_around, etdrk4};
use crate::config::{FieldError, Validate, positive};
use crate::rng::EnvRng;

super::pde_config! {
    /// Construction config of [`Burgers`].
    pub struct BurgersConfig {
        common: { sample_time: 0.05 },
        /// Mean of the initial pulse amplitude `a`.
        pub init_amplitude_mean: f64 = 1.0,
        /// Width of the uniform spread of `a` around its mean.
        pub init_amplitude_width: f64 = 0.2,
        /// Mean of the initial pulse width `s`.
        pub init_spread_mean: f64 = 0.05,
        /// Width of the uniform spread of `s` around its mean.
        pub init_spread_width: f64 = 0.02,
        /// Viscosity `ν`.
        pub diffusivity_constant: f64 = 1e-3,
    }
}

impl Validate for BurgersConfig {
    fn validate(&self) -> Result<(), FieldError> {
        super::validate_common(self, BurgersDynamics::LAYOUT)?;
        positive("diffusivity_constant", self.diffusivity_constant)?;
        BurgersStart::from_config(self).validate()
    }
}

super::start_params! {
    /// Per-reset parameters of [`Burgers`]: the initial pulse distribution.
    pub struct BurgersStart from BurgersConfig {
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

/// Burgers' equation integrated by ETDRK4.
pub struct BurgersDynamics(Etdrk4);

/// The Burgers env (see the module docs).
pub type Burgers = PdeEnv<BurgersDynamics>;

impl Dynamics for BurgersDynamics {
    const ID: &'static str = "keel/Burgers-v0";
    const DESCRIPTION: &'static str = "Control a viscous Burgers shock with 8 actuators (controlgym burgers)";
    const LAYOUT: Layout = Layout { integrator: Integrator::Etdrk4, stacked: false };
    type Config = BurgersConfig;
    type Start = BurgersStart;

    fn start(config: &BurgersConfig) -> BurgersStart {
        BurgersStart::from_config(config)
    }

    fn build(config: &BurgersConfig, grid: &Grid) -> Self {
        let common: Common = config.common().clone();
        let linear = complex(grid.k.iter().map(|k| -config.diffusivity_constant * k * k));
        // −u u_x = −(u²)_x / 2
        let multiplier = grid.k.iter().map(|&k| Complex64::new(0.0, -0.5) * k).collect();
        Self(etdrk4(&common, &linear, multiplier, Pointwise::Square))
    }

    fn initial_state(start: &BurgersStart, rng: &mut EnvRng, grid: &Grid, out: &mut [f64]) {
        let a = draw_around(rng, start.init_amplitude_mean, start.init_amplitude_width);
        let s = draw_around(rng, start.init_spread_mean, start.init_spread_width);
        for (o, x) in out.iter_mut().zip(&grid.x) {
            *o = a * (1.0 / s * (x - 0.5 * grid.length)).cosh().recip();
        }
    }

    fn advance(&mut self, state: &[f64], force: &[f64], out: &mut [f64]) -> bool {
        self.0.advance(state, force, out) == super::spectral::Outcome::Completed
    }
}

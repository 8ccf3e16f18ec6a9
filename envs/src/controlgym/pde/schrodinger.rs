//! # Schrödinger
//!
//! ## Description
//! The linear Schrödinger equation `i ħ ψ_t = −ħ²/(2m) ψ_xx + V ψ` on the periodic domain
//! `[0, L)`, with state `[Re ψ; Im ψ]` (two stacked fields of `n_state / 2` points). Each Fourier
//! mode rotates at `λ(k) = ħ k² / (2m) + V / ħ`; the transition over one sample interval is that
//! exact rotation, and the actuators push on `Im ψ` as an impulse `x⁺ = A x + B u`, as in
//! controlgym's `schrodinger`. The modes no actuator reaches stay on the unit circle, so LQR has
//! no stabilising solution at the default sizes (`keel baseline` says so).
//!
//! ## Observation space
//! `Box(±observation_limit, (n_observation,), float32)`: point sensors of the stacked state.
//!
//! ## Action space
//! `Box(±action_limit, (n_action,), float32)`: impulses on `Im ψ`.
//!
//! ## Reward
//! `−[q_weight ‖x − x*‖² + r_weight ‖u‖²]` of the pre-step stacked state and the action.
//!
//! ## Starting state
//! `Re ψ₀(x) = a · sech((x − L/2) / s)`, `Im ψ₀ = 0`, `a ~ 1 ± 0.1`, `s ~ 0.05 ± 0.01` (per-reset
//! parameters [`SchrodingerStart`]), or exact via the `state` reset option.
//!
//! ## Episode end
//! Terminated when the state diverges (non-finite, or reward beyond `reward_limit`); truncated
//! after `n_steps` (500) steps. In `compat = "controlgym"` mode see [`crate::controlgym::pde`].
//!
//! ## Config
//! [`SchrodingerConfig`]; defaults as controlgym's code (its docstring disagrees): `L = 1`,
//! `sample_time = 0.001`, `n_state = 256`, `n_steps = 500`, `ħ = m = 1`, `V = 0`;
//! `n_observation = 10`, `n_action = 8`, `control_sup_width = 0.1`, sensor noise variance 0.25,
//! no process noise.
//!
//! ## Version history
//! - v0: controlgym 1.0.0's `schrodinger`, with Gymnasium conventions by default.
//!
//! ## Source
//! Zhang et al., *Controlgym*, arXiv:2311.18736.

use super::spectral::ModalPair;
use super::{Dynamics, Grid, Integrator, Layout, PdeEnv, draw_around};
use crate::config::{FieldError, Validate, finite, positive};
use crate::rng::EnvRng;

super::pde_config! {
    /// Construction config of [`Schrodinger`].
    pub struct SchrodingerConfig {
        common: { sample_time: 0.001, n_steps: 500, integration_time: None },
        /// Mean of the initial amplitude `a`.
        pub init_amplitude_mean: f64 = 1.0,
        /// Width of the uniform spread of `a` around its mean.
        pub init_amplitude_width: f64 = 0.2,
        /// Mean of the initial width `s`.
        pub init_spread_mean: f64 = 0.05,
        /// Width of the uniform spread of `s` around its mean.
        pub init_spread_width: f64 = 0.02,
        /// Reduced Planck constant `ħ`.
        pub planck_constant: f64 = 1.0,
        /// Particle mass `m`.
        pub particle_mass: f64 = 1.0,
        /// Constant potential `V`.
        pub potential: f64 = 0.0,
    }
}

impl Validate for SchrodingerConfig {
    fn validate(&self) -> Result<(), FieldError> {
        super::validate_common(self, SchrodingerDynamics::LAYOUT)?;
        positive("planck_constant", self.planck_constant)?;
        positive("particle_mass", self.particle_mass)?;
        finite("potential", self.potential)?;
        SchrodingerStart::from_config(self).validate()
    }
}

super::start_params! {
    /// Per-reset parameters of [`Schrodinger`]: the initial wave-packet distribution.
    pub struct SchrodingerStart from SchrodingerConfig {
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

/// The exact per-mode rotation.
pub struct SchrodingerDynamics(ModalPair);

/// The Schrödinger env (see the module docs).
pub type Schrodinger = PdeEnv<SchrodingerDynamics>;

impl Dynamics for SchrodingerDynamics {
    const ID: &'static str = "keel/Schrodinger-v0";
    const DESCRIPTION: &'static str =
        "Control a free quantum wave packet, state [Re psi; Im psi] (controlgym schrodinger)";
    const LAYOUT: Layout = Layout { integrator: Integrator::Exact, stacked: true };
    type Config = SchrodingerConfig;
    type Start = SchrodingerStart;

    fn start(config: &SchrodingerConfig) -> SchrodingerStart {
        SchrodingerStart::from_config(config)
    }

    fn build(config: &SchrodingerConfig, grid: &Grid) -> Self {
        let (hbar, m, v, t) = (config.planck_constant, config.particle_mass, config.potential, config.common.sample_time);
        let blocks = grid
            .k
            .iter()
            .map(|&k| {
                let rate = hbar / (2.0 * m) * k * k + v / hbar;
                let (s, c) = (rate * t).sin_cos();
                [c, s, -s, c]
            })
            .collect();
        Self(ModalPair::new(blocks, grid.x.len()))
    }

    fn initial_state(start: &SchrodingerStart, rng: &mut EnvRng, grid: &Grid, out: &mut [f64]) {
        let a = draw_around(rng, start.init_amplitude_mean, start.init_amplitude_width);
        let s = draw_around(rng, start.init_spread_mean, start.init_spread_width);
        let (re, im) = out.split_at_mut(grid.x.len());
        for (o, x) in re.iter_mut().zip(&grid.x) {
            *o = a * (1.0 / s * (x - grid.length / 2.0)).cosh().recip();
        }
        im.fill(0.0);
    }

    fn advance(&mut self, state: &[f64], force: &[f64], out: &mut [f64]) -> bool {
        self.0.apply(state, force, out);
        true
    }
}

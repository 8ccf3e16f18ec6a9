//! # PDE control: the ten controlgym PDE environments
//!
//! Large-scale, safety-critical control of 1-D partial differential equations on a periodic
//! domain `[0, L)`, after controlgym (Zhang et al., *Controlgym: Large-Scale Control
//! Environments for Benchmarking Reinforcement Learning Algorithms*, arXiv:2311.18736; PyPI
//! `controlgym` 1.0.0, MIT). Every env is Fourier pseudo-spectral:
//!
//! | id | PDE | integrator |
//! |---|---|---|
//! | `keel/AllenCahn-v0` | `u_t = ε² u_xx + λ (u − u³)` | ETDRK4 |
//! | `keel/Burgers-v0` | `u_t = ν u_xx − u u_x` | ETDRK4 |
//! | `keel/CahnHilliard-v0` | `u_t = D (∂²(u³) − u_xx) − γ D u_xxxx` | ETDRK4 |
//! | `keel/ConvectionDiffusionReaction-v0` | `u_t = D u_xx − c u_x + r u` | exact transition |
//! | `keel/Fisher-v0` | `u_t = D u_xx + r u (1 − u)` | ETDRK4 |
//! | `keel/GinzburgLandau-v0` | `u_t = u − u³ + u_xx` | ETDRK4 |
//! | `keel/KortewegDeVries-v0` | `u_t = −u_xxx + 6 u u_x` | ETDRK4 |
//! | `keel/KuramotoSivashinsky-v0` | `u_t = −u_xx − u u_x − u_xxxx` | ETDRK4 |
//! | `keel/Schrodinger-v0` | `i ħ ψ_t = −ħ²/(2m) ψ_xx + V ψ`, state `[Re ψ; Im ψ]` | exact transition |
//! | `keel/Wave-v0` | `u_tt = c² u_xx`, state `[u; u_t]` | exact transition |
//!
//! ## Shared conventions
//!
//! - **State**: `n_state` grid values (`x_i = i L / n`), or for Wave and Schrödinger two stacked
//!   fields of `n_state / 2` values. `n_state` must be even; any even size from 4 up works
//!   (64 to 16384 and beyond: every step is `O(n log n)`, without allocation).
//! - **Actions**: `Box(±action_limit, (n_action,), float32)`, unbounded by default. Actuator `k`
//!   adds `u_k` on its top-hat support of `control_sup_width · n` grid points, centred in the
//!   `k`-th of `n_action` equal cells (for Wave and Schrödinger, on the second field only). In
//!   the ETDRK4 envs `u` is a source held over the sample interval; in the three linear envs it is
//!   an impulse added once per step (`x⁺ = A x + B u`), as in controlgym.
//! - **Observations**: `Box(±observation_limit, (n_observation,), float32)`: sensor `j` reads grid
//!   value `j · (n_state / n_observation)` (integer division) of the stacked state, plus
//!   `N(0, sensor_noise_cov)` noise. The full `f64` state is `Env::state()` (and `state` in
//!   `keel rollout` output).
//! - **Reward**: `−[q_weight ‖x − x*‖² + r_weight ‖u‖²]` of the pre-step state `x` and the action,
//!   with `x*` = `target_state` (zeros by default).
//! - **Noise**: both `*_noise_cov` are variances. Process noise `N(0, process_noise_cov I)` is added
//!   once per step, after the transition. Keel draws from its own PCG stream, so a noisy run does
//!   not repeat numpy's numbers (noise-free runs agree with controlgym to ~1e-12).
//! - **Episode end**: `terminated` when the state stops being finite, its norm leaves
//!   `state_limit` or the reward falls below `−reward_limit` (the `diverged` extra is 1 on the
//!   step the state diverged); `truncated` after `n_steps` steps (the time limit of `make`).
//!
//! ## Benchmark preset
//!
//! By default (controlgym's settings) actions are unbounded and nothing limits the state.
//! `preset = "benchmark"` fills in what is not given, from the env's own initial state `x₀`
//! (drawn once with seed 0 from the configured initial-state family) and target `x*`:
//!
//! - `state_limit = 100 · max(‖x₀‖, ‖x*‖, 1e-3 √n)`: the episode ends as diverged (a safety
//!   violation) when `‖x‖` leaves it, and that step's reward carries the steps left, each at its
//!   own cost, so that diverging early never costs less than staying at the bound;
//! - `action_limit = a / sample_time` for the ETDRK4 envs (a source that moves the field by its
//!   initial amplitude `a = max(max|x₀|, max|x*|, 1e-3)` within one step) and `a` for the three
//!   linear envs (an impulse of that amplitude).
//!
//! ```text
//! keel train --algo ppo --env keel/Burgers-v0 --set env_config.preset=benchmark
//! ```
//!
//! ## Default mode vs `compat = "controlgym"`
//!
//! | | default (`compat = "keel"`) | `compat = "controlgym"` |
//! |---|---|---|
//! | observation returned by `step` | of the new state | of the pre-step state (so `x₀` is seen twice and `x_T` never) |
//! | time limit | `truncated` | `terminated` (and the env, not `make`, ends the episode) |
//! | reward out of `±reward_limit` or NaN | `terminated` | `truncated` |
//! | ETDRK4 substeps per step | `round(sample_time / integration_time)`: 100 for Kuramoto–Sivashinsky, 1000 for KdV | Python's `int(Ts // h)`: 99 and 999 (0.495 and 0.00999 time units integrated) |
//! | KdV ETDRK4 coefficients | complex contour means (exact for `L = i k³`) | real part of half-circle means (controlgym's, off by up to 16.5 %) |
//! | overflow inside a step | the state becomes non-finite, `terminated` | the state stays at the last finite substep (controlgym under its `warnings.filterwarnings("error")`) |
//! | `action_limit`, `observation_limit` | actions and observations clipped to them | bounds of the spaces only, nothing clipped |
//!
//! Kept in both modes because they define the task, not a convention: Allen–Cahn's diffusion is
//! `diffusivity_constant²`; the linear envs take the input as a per-step impulse; the sensors of
//! Wave and Schrödinger index the stacked state.
//!
//! ## Numerics
//!
//! The seven nonlinear envs use ETDRK4 (Cox & Matthews 2002) with coefficients from contour
//! integrals (Kassam & Trefethen 2005), precomputed once. The nonlinear term is dealiased by the
//! 3/2 rule on real FFTs (`realfft`), with numpy's transform conventions. The three linear envs
//! apply their exact discrete-time transition mode by mode (a complex factor for
//! convection–diffusion–reaction, a 2×2 real block per wavenumber for Wave and Schrödinger), which
//! is the matrix exponential controlgym builds densely, in `O(n log n)` instead of `O(n²)`.
//! [`crate::baselines`] builds the dense `A` and `B` from the same transition for LQR and LQG.

pub mod allen_cahn;
pub mod burgers;
pub mod cahn_hilliard;
pub mod convection_diffusion_reaction;
pub mod fisher;
pub mod ginzburg_landau;
pub mod korteweg_de_vries;
pub mod kuramoto_sivashinsky;
pub mod schrodinger;
pub(crate) mod spectral;
pub mod wave;

pub use allen_cahn::AllenCahn;
pub use burgers::Burgers;
pub use cahn_hilliard::CahnHilliard;
pub use convection_diffusion_reaction::ConvectionDiffusionReaction;
pub use fisher::Fisher;
pub use ginzburg_landau::GinzburgLandau;
pub use korteweg_de_vries::KortewegDeVries;
pub use kuramoto_sivashinsky::KuramotoSivashinsky;
pub use schrodinger::Schrodinger;
pub use wave::Wave;

use std::ops::Range;

use rand_distr::{Distribution, StandardNormal};
use realfft::num_complex::Complex64;
use serde_json::{Map, Value};

pub use crate::controlgym::compat::Compat;
use crate::controlgym::compat::{
    DIVERGENCE_FACTOR, Divergence, Preset, check_explicit_state, extras, float64_box, limits, read_action, step_result,
    variance,
};
use crate::config::{FieldError, Validate, positive};
use crate::env::{Env, EnvSpec, Registered, ResetOptions, Step};
use crate::error::{EnvError, Result};
use crate::obs::ObsMut;
use crate::rng::EnvRng;
use crate::space::Action;

/// The parameters every PDE env has. Each env's config holds them flattened (`#[serde(flatten)]`)
/// so they are top-level keys beside the env's own; [`crate::config::overlay`] rejects unknown
/// keys (serde cannot combine `flatten` with `deny_unknown_fields`), and a config is only ever
/// built through it, from a complete default.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Common {
    /// `"keel"`: Gymnasium conventions (default); `"controlgym"`: controlgym 1.0.0 number for
    /// number (the differences are listed in [`crate::controlgym::pde`]).
    pub compat: Compat,
    /// Episode length in steps: the time limit.
    pub n_steps: u64,
    /// Length `L` of the periodic domain `[0, L)`.
    pub domain_length: f64,
    /// ETDRK4 step `h` (null for the exactly integrated linear envs).
    pub integration_time: Option<f64>,
    /// Time covered by one env step; the action is held over it.
    pub sample_time: f64,
    /// Variance of the process noise added to every state value after each step.
    pub process_noise_cov: f64,
    /// Variance of the noise on every observation value.
    pub sensor_noise_cov: f64,
    /// Target state `x*` of the reward (null: zeros), `n_state` values.
    pub target_state: Option<Vec<f64>>,
    /// State dimension (even).
    pub n_state: usize,
    /// Number of point sensors.
    pub n_observation: usize,
    /// Number of actuators.
    pub n_action: usize,
    /// Width of each actuator's support as a fraction of the actuated field;
    /// `n_action × control_sup_width` must not exceed 1.
    pub control_sup_width: f64,
    /// Weight of the state cost `‖x − x*‖²` (controlgym's `Q_weight`).
    pub q_weight: f64,
    /// Weight of the action cost `‖u‖²` (controlgym's `R_weight`).
    pub r_weight: f64,
    /// Bound of the action space (null: unbounded).
    pub action_limit: Option<f64>,
    /// Bound of the observation space (null: unbounded).
    pub observation_limit: Option<f64>,
    /// Bound on the reward's magnitude beyond which the episode ends (null: none).
    pub reward_limit: Option<f64>,
    /// Bound on the state's Euclidean norm beyond which the episode ends as diverged (null:
    /// none; the benchmark preset derives one).
    pub state_limit: Option<f64>,
    /// `"none"` (controlgym's settings, default) or `"benchmark"`: finite action bounds and a
    /// divergence limit derived from the env (see the module docs).
    pub preset: Preset,
}

impl Common {
    /// controlgym's shared defaults; each env overrides some of them.
    pub fn baseline() -> Self {
        Self {
            compat: Compat::Keel,
            n_steps: 100,
            domain_length: 1.0,
            integration_time: Some(1e-3),
            sample_time: 0.01,
            process_noise_cov: 0.0,
            sensor_noise_cov: 0.25,
            target_state: None,
            n_state: 256,
            n_observation: 10,
            n_action: 8,
            control_sup_width: 0.1,
            q_weight: 1.0,
            r_weight: 1.0,
            action_limit: None,
            observation_limit: None,
            reward_limit: None,
            state_limit: None,
            preset: Preset::None,
        }
    }

    fn validate(&self, layout: Layout) -> Result<(), FieldError> {
        if self.n_steps == 0 {
            return Err(FieldError::new("n_steps", "must be at least 1"));
        }
        let n = self.n_state as u128;
        crate::memory::check("n_state", n, n * u128::from(layout.bytes_per_state()))?;
        positive("domain_length", self.domain_length)?;
        positive("sample_time", self.sample_time)?;
        if self.n_state < 4 || self.n_state % 2 != 0 {
            return Err(FieldError::new(
                "n_state",
                format!("must be even and at least 4 (real-FFT layout), got {}", self.n_state),
            ));
        }
        variance("process_noise_cov", self.process_noise_cov)?;
        variance("sensor_noise_cov", self.sensor_noise_cov)?;
        for (field, value) in [("q_weight", self.q_weight), ("r_weight", self.r_weight)] {
            if !(value.is_finite() && value >= 0.0) {
                return Err(FieldError::new(field, format!("must be finite and >= 0, got {value}")));
            }
        }
        limits(self.action_limit, self.observation_limit, self.reward_limit, self.state_limit)?;
        if self.n_observation == 0 || self.n_observation > self.n_state {
            return Err(FieldError::new(
                "n_observation",
                format!("must be between 1 and n_state = {}, got {}", self.n_state, self.n_observation),
            ));
        }
        let field_len = layout.field_len(self.n_state);
        if self.n_action == 0 || self.n_action > field_len {
            return Err(FieldError::new(
                "n_action",
                format!("must be between 1 and the {field_len} points of the actuated field, got {}", self.n_action),
            ));
        }
        positive("control_sup_width", self.control_sup_width)?;
        if self.control_sup_width * self.n_action as f64 > 1.0 {
            return Err(FieldError::new(
                "control_sup_width",
                format!(
                    "the actuators do not fit: n_action × control_sup_width = {} × {} > 1",
                    self.n_action, self.control_sup_width
                ),
            ));
        }
        if actuator_supports(self, layout).iter().any(Range::is_empty) {
            return Err(FieldError::new(
                "control_sup_width",
                format!("{} × {field_len} points leaves an actuator without any grid point", self.control_sup_width),
            ));
        }
        if let Some(target) = &self.target_state {
            if target.len() != self.n_state || target.iter().any(|v| !v.is_finite()) {
                return Err(FieldError::new(
                    "target_state",
                    format!("must be {} finite values (or null for zeros), got {}", self.n_state, target.len()),
                ));
            }
        }
        match (layout.integrator, self.integration_time) {
            (Integrator::Exact, None) => {}
            (Integrator::Exact, Some(_)) => {
                return Err(FieldError::new("integration_time", "this env is integrated exactly: leave it null"));
            }
            (Integrator::Etdrk4, None) => {
                return Err(FieldError::new("integration_time", "the ETDRK4 step is required"));
            }
            (Integrator::Etdrk4, Some(h)) => {
                positive("integration_time", h)?;
                if h > self.sample_time {
                    return Err(FieldError::new("integration_time", "must not exceed sample_time"));
                }
                // controlgym's own check: the sample time is a whole number of steps (to 1e-8).
                let (ts, hs) = ((self.sample_time * 1e8).round(), (h * 1e8).round());
                if hs == 0.0 || ts % hs != 0.0 {
                    return Err(FieldError::new(
                        "integration_time",
                        format!(
                            "sample_time = {} must be a whole number of integration steps of {h}",
                            self.sample_time
                        ),
                    ));
                }
                // Every substep runs inside one env step: bound the work a step can ask for.
                let substeps = self.substeps();
                if substeps > MAX_SUBSTEPS {
                    return Err(FieldError::new(
                        "integration_time",
                        format!(
                            "sample_time / integration_time = {} / {h} is {substeps} ETDRK4 substeps per env step; at most {MAX_SUBSTEPS}",
                            self.sample_time
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// ETDRK4 substeps per env step (see the module docs for the two modes).
    fn substeps(&self) -> usize {
        let h = self.integration_time.unwrap_or(self.sample_time);
        let steps = match self.compat {
            Compat::Keel => (self.sample_time / h).round(),
            Compat::Controlgym => spectral::python_floor_div(self.sample_time, h),
        };
        steps.max(0.0) as usize
    }
}

/// Most ETDRK4 substeps of one env step (controlgym's KdV takes 999): a step of more would
/// hold the calling thread for minutes without a way to stop it.
pub const MAX_SUBSTEPS: usize = 100_000;

/// Implemented by every PDE config: its shared parameters.
pub trait PdeConfig: Validate {
    /// The shared parameters.
    fn common(&self) -> &Common;
}

/// How an env integrates and lays out its state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// ETDRK4 or exact transition.
    pub integrator: Integrator,
    /// Two stacked fields (`[u; u_t]`, `[Re ψ; Im ψ]`) with the actuators on the second.
    pub stacked: bool,
}

/// The time integrator of an env.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Integrator {
    /// ETDRK4 over `integration_time` substeps.
    Etdrk4,
    /// The exact discrete-time transition.
    Exact,
}

impl Layout {
    fn field_len(self, n_state: usize) -> usize {
        if self.stacked { n_state / 2 } else { n_state }
    }

    /// Bytes an env holds per state value: ETDRK4's coefficient tables and dealiasing buffers, or
    /// the exact transition's modal factors (measured peak RSS at n_state = 2^21: 252 and 62-84).
    fn bytes_per_state(self) -> u64 {
        match self.integrator {
            Integrator::Etdrk4 => 256,
            Integrator::Exact => 96,
        }
    }
}

/// Top-hat actuator supports as half-open index ranges of the state (controlgym's rounding:
/// Python `int()` truncations of float products).
fn actuator_supports(common: &Common, layout: Layout) -> Vec<Range<usize>> {
    let n = layout.field_len(common.n_state);
    let offset = if layout.stacked { n as f64 } else { 0.0 };
    let width = common.control_sup_width * n as f64;
    let spacing = (n as f64 / common.n_action as f64).trunc();
    (0..common.n_action)
        .map(|k| {
            let center = ((0.5 + k as f64) * spacing + offset).trunc();
            let left = (center - 0.5 * width).trunc().max(0.0) as usize;
            let right = ((center + 0.5 * width).trunc().max(0.0) as usize).min(common.n_state);
            left..right.max(left)
        })
        .collect()
}

/// Sensor positions: index `j · (n_state / n_observation)` of the (stacked) state.
fn sensor_indices(common: &Common) -> Vec<usize> {
    let stride = common.n_state / common.n_observation;
    (0..common.n_observation).map(|j| j * stride).collect()
}

/// The grid of one field: coordinates and rfft wavenumbers.
#[derive(Clone, Debug)]
pub struct Grid {
    /// Domain length.
    pub length: f64,
    /// Coordinates `x_i` of the field's points (numpy's `linspace(0, L - L/n, n)`).
    pub x: Vec<f64>,
    /// Wavenumbers `2π j / L`, `j = 0..=n/2` (numpy's `rfftfreq(n, L/n) * 2π`).
    pub k: Vec<f64>,
}

impl Grid {
    fn new(length: f64, n: usize) -> Self {
        let stop = length - length / n as f64;
        let step = stop / (n as f64 - 1.0);
        let mut x: Vec<f64> = (0..n).map(|i| i as f64 * step).collect();
        if let Some(last) = x.last_mut() {
            *last = stop;
        }
        let spacing = length / n as f64;
        let unit = 1.0 / (n as f64 * spacing);
        let k = (0..=n / 2).map(|j| j as f64 * unit * 2.0 * std::f64::consts::PI).collect();
        Self { length, x, k }
    }
}

/// The dynamics of one PDE env: what each env file defines.
pub trait Dynamics: Send + Sized + 'static {
    /// Versioned id.
    const ID: &'static str;
    /// One line for `keel list`.
    const DESCRIPTION: &'static str;
    /// Integrator and state layout.
    const LAYOUT: Layout;
    /// Construction config.
    type Config: PdeConfig + Send;
    /// Per-reset parameters (the initial-state distribution).
    type Start: Validate + Send;
    /// The per-reset parameters a config starts with.
    fn start(config: &Self::Config) -> Self::Start;
    /// Builds the integrator for a validated config on `grid` (one field).
    fn build(config: &Self::Config, grid: &Grid) -> Self;
    /// Draws an initial state into `out` (length `n_state`).
    fn initial_state(start: &Self::Start, rng: &mut EnvRng, grid: &Grid, out: &mut [f64]);
    /// One sample interval from `state` with actuator field `force` (`B u`) into `out`.
    /// Returns false where a controlgym-compat ETDRK4 step stopped on overflow.
    fn advance(&mut self, state: &[f64], force: &[f64], out: &mut [f64]) -> bool;
}

/// `a + U(-w/2, w/2)`, controlgym's draw of one initial-state parameter.
pub(crate) fn draw_around(rng: &mut EnvRng, mean: f64, width: f64) -> f64 {
    mean + rng.uniform(-0.5 * width, 0.5 * width)
}

/// The shared keys of `config` with the benchmark preset's limits filled in where it leaves
/// them out (see the module docs); any other config's as they are.
pub fn resolved<D: Dynamics>(config: &D::Config) -> Common {
    let mut common = config.common().clone();
    if common.preset != Preset::Benchmark || (common.action_limit.is_some() && common.state_limit.is_some()) {
        return common;
    }
    let n = common.n_state;
    let grid = Grid::new(common.domain_length, D::LAYOUT.field_len(n));
    let mut rng = EnvRng::default();
    rng.reseed(Some(0));
    let mut x0 = vec![0.0; n];
    D::initial_state(&D::start(config), &mut rng, &grid, &mut x0);
    let target = common.target_state.clone().unwrap_or_else(|| vec![0.0; n]);
    let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
    let peak = |v: &[f64]| v.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    let size = norm(&x0).max(norm(&target)).max(1e-3 * (n as f64).sqrt());
    common.state_limit.get_or_insert(DIVERGENCE_FACTOR * size);
    let amplitude = peak(&x0).max(peak(&target)).max(1e-3);
    let action = match D::LAYOUT.integrator {
        Integrator::Exact => amplitude,
        Integrator::Etdrk4 => amplitude / common.sample_time,
    };
    common.action_limit.get_or_insert(action);
    common
}

/// A PDE control env (see the module docs); each env file names one `PdeEnv<Its Dynamics>`.
pub struct PdeEnv<D: Dynamics> {
    common: Common,
    spec: EnvSpec,
    dynamics: D,
    params: D::Start,
    grid: Grid,
    actuators: Vec<Range<usize>>,
    sensors: Vec<usize>,
    target: Vec<f64>,
    rng: EnvRng,
    state: Vec<f64>,
    next: Vec<f64>,
    force: Vec<f64>,
    action: Vec<f64>,
    steps: u64,
    started: bool,
    /// The weighted state and action costs of the last step (extras).
    costs: [f64; 2],
    /// Whether the last step diverged (extra).
    diverged: bool,
}

impl<D: Dynamics> PdeEnv<D> {
    /// A restored snapshot must hold a state of this env's size.
    #[allow(clippy::ptr_arg)] // `snapshot_fields!` passes the parsed field
    fn check_snapshot(&self, state: &Vec<f64>) -> Result<()> {
        if state.len() == self.common.n_state {
            Ok(())
        } else {
            Err(EnvError::Snapshot(format!(
                "{}: the snapshot's state has {} values, this env has n_state = {}",
                D::ID,
                state.len(),
                self.common.n_state
            )))
        }
    }

    /// The shared parameters this env was built with.
    pub fn common(&self) -> &Common {
        &self.common
    }

    /// Actuator supports (half-open index ranges of the state): the columns of `B`.
    pub fn actuators(&self) -> &[Range<usize>] {
        &self.actuators
    }

    /// Sensor indices: the rows of `C`.
    pub fn sensors(&self) -> &[usize] {
        &self.sensors
    }

    /// The target state `x*`.
    pub fn target(&self) -> &[f64] {
        &self.target
    }

    /// The noise-free, input-free transition of `state` (for linearisation and tests).
    pub fn transition(&mut self, state: &[f64], out: &mut [f64]) {
        self.force.fill(0.0);
        self.dynamics.advance(state, &self.force, out);
    }

    fn observe(&mut self, obs: &mut [f64]) {
        let c = &self.common;
        let std = c.sensor_noise_cov.sqrt();
        let limit = match c.compat {
            Compat::Keel => c.observation_limit,
            Compat::Controlgym => None,
        };
        for (o, &i) in obs.iter_mut().zip(&self.sensors) {
            let mut y = self.state[i];
            if std > 0.0 {
                let z: f64 = StandardNormal.sample(self.rng.reseed(None));
                y += std * z;
            }
            if let Some(l) = limit {
                y = y.clamp(-l, l);
            }
            *o = y;
        }
    }
}

impl<D: Dynamics> Registered for PdeEnv<D> {
    const ID: &'static str = D::ID;
    const DESCRIPTION: &'static str = D::DESCRIPTION;
    const MAX_EPISODE_STEPS: Option<u64> = None;
    type Config = D::Config;

    fn spec(config: &D::Config) -> Result<EnvSpec> {
        let common = config.common();
        // Configs reach here validated through `make`; a direct caller gets the same check.
        common.validate(D::LAYOUT).map_err(|e| EnvError::InvalidField {
            context: format!("{} config", D::ID),
            field: e.field.into(),
            message: e.message,
        })?;
        let common = &resolved::<D>(config);
        Ok(EnvSpec {
            id: D::ID.into(),
            observation_space: float64_box(common.observation_limit, common.n_observation),
            action_space: float64_box(common.action_limit, common.n_action),
            max_episode_steps: Self::episode_cap(config),
            reward_threshold: None,
            state_len: Some(common.n_state),
            extras: extras(),
        })
    }

    fn new(config: D::Config) -> Result<Self> {
        let spec = <Self as Registered>::spec(&config)?;
        let common = resolved::<D>(&config);
        let n = common.n_state;
        let grid = Grid::new(common.domain_length, D::LAYOUT.field_len(n));
        let dynamics = D::build(&config, &grid);
        Ok(Self {
            actuators: actuator_supports(&common, D::LAYOUT),
            sensors: sensor_indices(&common),
            target: common.target_state.clone().unwrap_or_else(|| vec![0.0; n]),
            action: vec![0.0; common.n_action],
            params: D::start(&config),
            common,
            spec,
            dynamics,
            grid,
            rng: EnvRng::default(),
            state: vec![0.0; n],
            next: vec![0.0; n],
            force: vec![0.0; n],
            steps: 0,
            started: false,
            costs: [0.0; 2],
            diverged: false,
        })
    }

    fn memory_estimate(config: &D::Config) -> u64 {
        4096 + (config.common().n_state as u64).saturating_mul(D::LAYOUT.bytes_per_state())
    }

    fn episode_cap(config: &D::Config) -> Option<u64> {
        let common = config.common();
        // In compat mode the env itself ends the episode (controlgym's `terminated`).
        match common.compat {
            Compat::Keel => Some(common.n_steps),
            Compat::Controlgym => None,
        }
    }
}

impl<D: Dynamics> Env for PdeEnv<D> {
    fn spec(&self) -> &EnvSpec {
        &self.spec
    }

    fn reset(&mut self, seed: Option<u64>, options: &ResetOptions, obs: ObsMut<'_>) -> Result<()> {
        let obs = obs.f64(self.sensors.len())?;
        let context = format!("{} reset options", D::ID);
        let params = crate::config::overlay(&self.params, &options.params, &context)?;
        if let Some(state) = &options.state {
            check_explicit_state(state, self.common.n_state)?;
        }
        self.rng.reseed(seed);
        match &options.state {
            Some(state) => self.state.copy_from_slice(state),
            None => D::initial_state(&params, &mut self.rng, &self.grid, &mut self.state),
        }
        self.steps = 0;
        self.started = true;
        self.costs = [0.0; 2];
        self.diverged = false;
        self.observe(obs);
        Ok(())
    }

    fn step(&mut self, action: Action<'_>, obs: ObsMut<'_>) -> Result<Step> {
        let obs = obs.f64(self.sensors.len())?;
        let c = &self.common;
        read_action(&self.spec.action_space, action, self.started, c.compat, c.action_limit, &mut self.action)?;
        let compat = c.compat == Compat::Controlgym;
        let state_cost: f64 = self.state.iter().zip(&self.target).map(|(x, t)| (x - t) * (x - t)).sum();
        let action_cost: f64 = self.action.iter().map(|a| a * a).sum();
        self.costs = [self.common.q_weight * state_cost, self.common.r_weight * action_cost];
        let reward = -(self.costs[0] + self.costs[1]);
        if compat {
            // controlgym returns the observation of the pre-step state.
            self.observe(obs);
        }
        self.force.fill(0.0);
        for (support, &a) in self.actuators.iter().zip(&self.action) {
            for f in &mut self.force[support.clone()] {
                *f += a;
            }
        }
        self.dynamics.advance(&self.state, &self.force, &mut self.next);
        let std = self.common.process_noise_cov.sqrt();
        if std > 0.0 {
            let rng = self.rng.reseed(None);
            for x in &mut self.next {
                let z: f64 = StandardNormal.sample(rng);
                *x += std * z;
            }
        }
        std::mem::swap(&mut self.state, &mut self.next);
        self.steps += 1;
        if !compat {
            self.observe(obs);
        }
        let c = &self.common;
        let state = &self.state;
        let divergence = Divergence { state_limit: c.state_limit, penalise: c.preset == Preset::Benchmark };
        let (step, diverged) =
            step_result(c.compat, reward, c.reward_limit, self.steps, c.n_steps, divergence, || divergence.diverged(state));
        self.diverged = diverged;
        Ok(step)
    }

    fn write_extras(&self, out: &mut [f64]) {
        let norm = self.state.iter().map(|x| x * x).sum::<f64>().sqrt();
        let diverged = if self.diverged { 1.0 } else { 0.0 };
        out.copy_from_slice(&[self.costs[0], self.costs[1], norm, diverged][..out.len()]);
    }

    fn state(&self) -> Option<Vec<f64>> {
        self.started.then(|| self.state.clone())
    }

    fn set_params(&mut self, params: &Map<String, Value>) -> Result<()> {
        let context = format!("{} reset parameters", D::ID);
        self.params = crate::config::overlay(&self.params, params, &context)?.into_owned();
        Ok(())
    }

    fn params(&self) -> Value {
        serde_json::to_value(&self.params).unwrap_or(Value::Null)
    }

    crate::snapshot::snapshot_fields!(state, rng, steps, started, params, costs, diverged; check(state) = Self::check_snapshot);
}

/// `L(k)` as complex values, for the ETDRK4 builder.
pub(crate) fn complex(values: impl IntoIterator<Item = f64>) -> Vec<Complex64> {
    values.into_iter().map(|v| Complex64::new(v, 0.0)).collect()
}

/// Builds the ETDRK4 integrator of a semilinear env from its linear operator and nonlinear term.
pub(crate) fn etdrk4(
    common: &Common,
    linear: &[Complex64],
    multiplier: Vec<Complex64>,
    pointwise: spectral::Pointwise,
) -> spectral::Etdrk4 {
    spectral::Etdrk4::new(spectral::Etdrk4Spec {
        n_state: common.n_state,
        linear,
        multiplier,
        pointwise,
        h: common.integration_time.unwrap_or(common.sample_time),
        substeps: common.substeps(),
        controlgym: common.compat == Compat::Controlgym,
    })
}

/// Declares a PDE config: the shared keys (with their docs) plus the env's own, and its
/// `Default` from controlgym's defaults for that env.
macro_rules! pde_config {
    (
        $(#[$doc:meta])*
        pub struct $name:ident {
            common: { $($cfield:ident: $cvalue:expr),* $(,)? },
            $( $(#[$fdoc:meta])* pub $field:ident: $ty:ty = $value:expr, )*
        }
    ) => {
        $(#[$doc])*
        ///
        /// Keys shared by every PDE env (flattened `common`, defaults in the env's module docs)
        /// and the env's own.
        #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(default)]
        pub struct $name {
            /// The keys every PDE env has ([`crate::controlgym::pde::Common`]), flattened.
            #[serde(flatten)]
            pub common: $crate::controlgym::pde::Common,
            $( $(#[$fdoc])* pub $field: $ty, )*
        }

        impl Default for $name {
            fn default() -> Self {
                #[allow(clippy::needless_update)]
                let common = $crate::controlgym::pde::Common { $($cfield: $cvalue,)* ..$crate::controlgym::pde::Common::baseline() };
                Self { common, $($field: $value,)* }
            }
        }

        impl $crate::controlgym::pde::PdeConfig for $name {
            fn common(&self) -> &$crate::controlgym::pde::Common {
                &self.common
            }
        }
    };
}
pub(crate) use pde_config;

/// Validates the shared keys of a PDE config for an env of layout `layout`.
pub(crate) fn validate_common<C: PdeConfig>(config: &C, layout: Layout) -> Result<(), FieldError> {
    config.common().validate(layout)
}

/// Declares the per-reset parameters of an env: `init_*` means and widths of its
/// initial-condition family, each drawn as `mean + U(−width/2, width/2)`.
macro_rules! start_params {
    (
        $(#[$doc:meta])*
        pub struct $name:ident from $config:ident { $( $(#[$fdoc:meta])* pub $field:ident, )* }
    ) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct $name {
            $( $(#[$fdoc])* pub $field: f64, )*
        }

        impl Default for $name {
            fn default() -> Self {
                let c = $config::default();
                Self { $($field: c.$field,)* }
            }
        }

        impl $crate::config::Validate for $name {
            fn validate(&self) -> std::result::Result<(), $crate::config::FieldError> {
                $( $crate::config::finite(stringify!($field), self.$field)?; )*
                Ok(())
            }
        }

        impl $name {
            fn from_config(c: &$config) -> Self {
                Self { $($field: c.$field,)* }
            }
        }
    };
}
pub(crate) use start_params;

#[cfg(test)]
mod tests {
    use super::*;

    fn common(n: usize, m: usize, w: f64) -> Common {
        Common { n_state: n, n_action: m, control_sup_width: w, ..Common::baseline() }
    }

    #[test]
    fn a_step_of_more_substeps_than_the_cap_is_refused() {
        let etdrk4 = Layout { integrator: Integrator::Etdrk4, stacked: false };
        let ok = Common { sample_time: 1.0, integration_time: Some(1e-5), ..Common::baseline() };
        assert!(ok.validate(etdrk4).is_ok());
        // 1e14 substeps: each step would run for days.
        let huge = Common { sample_time: 1e6, integration_time: Some(1e-8), ..Common::baseline() };
        let err = huge.validate(etdrk4).err().map(|e| format!("{}: {}", e.field, e.message)).unwrap_or_default();
        assert!(err.contains("integration_time") && err.contains("substeps"), "{err}");
    }

    #[test]
    fn actuators_and_sensors_match_controlgym_tables() {
        let single = Layout { integrator: Integrator::Etdrk4, stacked: false };
        let s = actuator_supports(&common(256, 8, 0.1), single);
        assert_eq!(s[0], 3..28);
        assert_eq!(s[7], 227..252);
        let s = actuator_supports(&common(200, 8, 0.1), single);
        assert_eq!((s[0].clone(), s[1].clone(), s[7].clone()), (2..22, 27..47, 177..197));
        let s = actuator_supports(&common(128, 8, 0.1), single);
        assert_eq!((s[0].clone(), s[7].clone()), (1..14, 113..126));
        let stacked = Layout { integrator: Integrator::Exact, stacked: true };
        let s = actuator_supports(&common(200, 8, 0.1), stacked);
        assert_eq!((s[0].clone(), s[7].clone()), (101..111, 185..195));
        let s = actuator_supports(&common(256, 8, 0.1), stacked);
        assert_eq!((s[0].clone(), s[7].clone()), (129..142, 241..254));
        let c = Common { n_state: 200, ..Common::baseline() };
        assert_eq!(sensor_indices(&c), (0..10).map(|j| 20 * j).collect::<Vec<_>>());
    }

    #[test]
    fn bad_shared_keys_name_the_field() {
        let single = Layout { integrator: Integrator::Etdrk4, stacked: false };
        let field = |c: Common| c.validate(single).err().map(|e| e.field);
        assert_eq!(field(Common { n_state: 255, ..Common::baseline() }), Some("n_state"));
        assert_eq!(field(common(256, 8, 0.2)), Some("control_sup_width"));
        assert_eq!(field(Common { process_noise_cov: -1.0, ..Common::baseline() }), Some("process_noise_cov"));
        assert_eq!(field(Common { sensor_noise_cov: -0.1, ..Common::baseline() }), Some("sensor_noise_cov"));
        assert_eq!(field(Common { integration_time: Some(3e-3), ..Common::baseline() }), Some("integration_time"));
        assert_eq!(field(Common { target_state: Some(vec![0.0; 3]), ..Common::baseline() }), Some("target_state"));
        assert_eq!(field(Common::baseline()), None);
    }

    #[test]
    fn grid_matches_numpy() {
        let g = Grid::new(1.0, 8);
        assert_eq!(g.x.len(), 8);
        assert_eq!(g.x[7], 1.0 - 1.0 / 8.0);
        assert_eq!(g.k.len(), 5);
        assert!((g.k[4] - 8.0 * std::f64::consts::PI).abs() < 1e-12);
    }
}

//! Model-based baseline controllers: zero, LQR and LQG, for the envs with a linear model
//! (`keel/Linear-v0` and the linear PDEs `keel/ConvectionDiffusionReaction-v0`, `keel/Wave-v0`,
//! `keel/Schrodinger-v0`).
//!
//! They live in `keel-envs`, beside the envs whose matrices they need, because they are part of
//! each env's definition of "solved" (a baseline cost), need no tensors, and must run wherever
//! the envs do (`keel baseline`, tests, Python). They act through the ordinary [`Env`] API:
//! [`run_episode`] resets the env, asks the controller for an action, steps, and sums the cost.
//!
//! - **LQR** uses the full state (`Env::state`): `u = K x + k_t`, with `K` from the discrete
//!   Riccati equation ([`riccati`]) and, when the target `x*` is not zero, the tracking term
//!   `k_t = (R + BᵀPB)⁻¹ Bᵀ (I − (A + BK)ᵀ)⁻¹ Q x*` (as controlgym).
//! - **LQG** uses the observations only: the LQR gain on a steady-state Kalman predictor
//!   `x̂⁺ = A x̂ + B u + L (y − C x̂)`, `L = (AΣCᵀ + N)(CΣCᵀ + V)⁻¹`, `Σ` from the dual Riccati
//!   equation. As in controlgym the estimate starts at the true initial state. It needs the
//!   default observation timing (the observation of the current state), so it refuses
//!   `compat = "controlgym"` envs.
//! - **Zero**: `u = 0`, the uncontrolled cost.
//!
//! Differences from controlgym: a failed design (no stabilising Riccati solution, a singular
//! tracking inverse, zero sensor noise for LQG) is an [`EnvError::Control`] naming the cause;
//! episode costs sum every step (controlgym's `run()` drops the last); the linear systems' noise
//! covariances are scaled by `noise_cov` and include the cross-covariance `B1 D21ᵀ`.

pub mod riccati;

use nalgebra::{DMatrix, DVector};
use serde_json::{Map, Value};

use crate::config::overlay;
use crate::controlgym::linear::Linear;
use crate::controlgym::pde::{Compat, ConvectionDiffusionReaction, Dynamics, PdeEnv, Schrodinger, Wave};
use crate::env::Registered;
use crate::env::{Env, ResetOptions};
use crate::error::{EnvError, Result};
use crate::space::Action;

pub use riccati::{Riccati, solve_dare};

/// The linear model `x⁺ = A x + B u + w`, `y = C x + v` of an env, with its quadratic cost
/// `(x − x*)ᵀQ(x − x*) + uᵀRu + 2xᵀSu` and noise covariances.
#[derive(Clone, Debug)]
pub struct LinearModel {
    /// Transition matrix.
    pub a: DMatrix<f64>,
    /// Input matrix.
    pub b: DMatrix<f64>,
    /// Measurement matrix.
    pub c: DMatrix<f64>,
    /// State cost.
    pub q: DMatrix<f64>,
    /// Action cost.
    pub r: DMatrix<f64>,
    /// Cross cost.
    pub s: DMatrix<f64>,
    /// Process-noise covariance.
    pub w: DMatrix<f64>,
    /// Sensor-noise covariance.
    pub v: DMatrix<f64>,
    /// Process–sensor noise cross-covariance.
    pub n: DMatrix<f64>,
    /// Target state `x*` (zeros: regulation).
    pub target: DVector<f64>,
    /// The env's conventions.
    pub compat: Compat,
}

/// Ids with a linear model.
pub const MODELLED: [&str; 4] = [Linear::ID, ConvectionDiffusionReaction::ID, Wave::ID, Schrodinger::ID];

/// The linear model of env `id` made with config `overrides` (the reserved key
/// `max_episode_steps` is ignored).
pub fn linear_model(id: &str, overrides: &Map<String, Value>) -> Result<LinearModel> {
    let mut overrides = overrides.clone();
    overrides.remove(crate::wrappers::MAX_EPISODE_STEPS);
    match id {
        Linear::ID => {
            let defaults = <Linear as Registered>::Config::default();
            let config = overlay(&defaults, &overrides, "keel/Linear-v0 config")?.into_owned();
            Ok(linear_system_model(&Linear::new(config)?))
        }
        ConvectionDiffusionReaction::ID => pde_model::<
            crate::controlgym::pde::convection_diffusion_reaction::ConvectionDiffusionReactionDynamics,
        >(&overrides),
        Wave::ID => pde_model::<crate::controlgym::pde::wave::WaveDynamics>(&overrides),
        Schrodinger::ID => pde_model::<crate::controlgym::pde::schrodinger::SchrodingerDynamics>(&overrides),
        other => Err(EnvError::Control(format!(
            "{other} has no linear model; model-based controllers apply to {}",
            MODELLED.join(", ")
        ))),
    }
}

fn linear_system_model(env: &Linear) -> LinearModel {
    let sys = env.system();
    let cov = env.config().noise_cov;
    let n = sys.a.nrows();
    let mut v = &sys.d21 * sys.d21.transpose() * cov;
    let smallest = v.clone().symmetric_eigen().eigenvalues.iter().fold(f64::INFINITY, |m, &x| m.min(x));
    if smallest <= 1e-12 * cov.max(f64::MIN_POSITIVE) {
        // Noise-free sensors: controlgym's regularisation, an independent noise of the same size.
        v = DMatrix::identity(v.nrows(), v.ncols()) * cov;
    }
    LinearModel {
        a: sys.a.clone(),
        b: sys.b2.clone(),
        c: sys.c.clone(),
        q: sys.q.clone(),
        r: sys.r.clone(),
        s: sys.s.clone(),
        w: &sys.b1 * sys.b1.transpose() * cov,
        n: &sys.b1 * sys.d21.transpose() * cov,
        v,
        target: DVector::zeros(n),
        compat: env.config().compat,
    }
}

fn pde_model<D: Dynamics>(overrides: &Map<String, Value>) -> Result<LinearModel> {
    let context = format!("{} config", D::ID);
    let config = overlay(&D::Config::default(), overrides, &context)?.into_owned();
    let mut env = PdeEnv::<D>::new(config)?;
    let common = env.common().clone();
    let n = common.n_state;
    // Column j of A is the transition of the unit vector e_j (the envs are linear and the
    // transition is exact).
    let mut a = DMatrix::<f64>::zeros(n, n);
    let (mut unit, mut column) = (vec![0.0; n], vec![0.0; n]);
    for j in 0..n {
        unit[j] = 1.0;
        env.transition(&unit, &mut column);
        a.column_mut(j).copy_from_slice(&column);
        unit[j] = 0.0;
    }
    let m = common.n_action;
    let mut b = DMatrix::<f64>::zeros(n, m);
    for (k, support) in env.actuators().iter().enumerate() {
        for i in support.clone() {
            b[(i, k)] += 1.0;
        }
    }
    let p = common.n_observation;
    let mut c = DMatrix::<f64>::zeros(p, n);
    for (j, &i) in env.sensors().iter().enumerate() {
        c[(j, i)] = 1.0;
    }
    Ok(LinearModel {
        a,
        b,
        c,
        q: DMatrix::identity(n, n) * common.q_weight,
        r: DMatrix::identity(m, m) * common.r_weight,
        s: DMatrix::zeros(n, m),
        w: DMatrix::identity(n, n) * common.process_noise_cov,
        v: DMatrix::identity(p, p) * common.sensor_noise_cov,
        n: DMatrix::zeros(n, p),
        target: DVector::from_column_slice(env.target()),
        compat: common.compat,
    })
}

/// Linear–quadratic regulator (full state).
#[derive(Clone, Debug)]
pub struct Lqr {
    /// Feedback gain `K`.
    pub gain: DMatrix<f64>,
    /// Tracking term `k_t` (zeros without a target).
    pub feedforward: DVector<f64>,
    /// The Riccati solution and its checks.
    pub riccati: Riccati,
}

impl Lqr {
    /// Designs the regulator of `model`.
    pub fn new(model: &LinearModel) -> Result<Self> {
        let riccati = solve_dare(&model.a, &model.b, &model.q, &model.r, &model.s)?;
        let gain = riccati.gain.clone();
        let mut feedforward = DVector::zeros(model.b.ncols());
        if model.target.iter().any(|&v| v != 0.0) {
            let n = model.a.nrows();
            let closed = &model.a + &model.b * &gain;
            let lhs = DMatrix::<f64>::identity(n, n) - closed.transpose();
            let v = lhs.lu().solve(&(&model.q * &model.target)).ok_or_else(|| {
                EnvError::Control("tracking gain: I − (A + BK)ᵀ is singular (a closed-loop eigenvalue at 1)".into())
            })?;
            let gram = &model.r + model.b.transpose() * &riccati.p * &model.b;
            feedforward = gram
                .lu()
                .solve(&(model.b.transpose() * v))
                .ok_or_else(|| EnvError::Control("tracking gain: R + BᵀPB is singular".into()))?;
        }
        Ok(Self { gain, feedforward, riccati })
    }

    /// `u = K x + k_t`.
    pub fn act(&self, x: &DVector<f64>) -> DVector<f64> {
        &self.gain * x + &self.feedforward
    }
}

/// Steady-state Kalman predictor.
#[derive(Clone, Debug)]
pub struct Kalman {
    /// Predictor gain `L`.
    pub gain: DMatrix<f64>,
    /// The dual Riccati solution (the prediction-error covariance `Σ`).
    pub riccati: Riccati,
}

impl Kalman {
    /// Designs the predictor of `model`.
    pub fn new(model: &LinearModel) -> Result<Self> {
        if model.v.clone().cholesky().is_none() {
            return Err(EnvError::Control(
                "LQG needs sensor noise: the sensor-noise covariance is not positive definite (set sensor_noise_cov > 0)"
                    .into(),
            ));
        }
        let riccati = solve_dare(&model.a.transpose(), &model.c.transpose(), &model.w, &model.v, &model.n)
            .map_err(|e| EnvError::Control(format!("Kalman filter: {e} (process noise may be missing)")))?;
        // The dual gain is −L'ᵀ with L' = (V + CΣCᵀ)⁻¹(CΣAᵀ + Nᵀ), so L = −gainᵀ.
        let gain = -riccati.gain.transpose();
        Ok(Self { gain, riccati })
    }
}

/// Which baseline to run.
#[derive(Clone, Debug)]
pub enum Controller {
    /// `u = 0`.
    Zero,
    /// Full-state LQR.
    Lqr(Lqr),
    /// LQR on a Kalman estimate.
    Lqg {
        /// The regulator.
        lqr: Lqr,
        /// The estimator.
        kalman: Kalman,
        /// The model (for the predictor).
        model: Box<LinearModel>,
    },
}

impl Controller {
    /// Builds the named controller (`zero`, `lqr`, `lqg`) for env `id` with config `overrides`.
    pub fn design(name: &str, id: &str, overrides: &Map<String, Value>) -> Result<Self> {
        match name {
            "zero" => Ok(Controller::Zero),
            "lqr" => Ok(Controller::Lqr(Lqr::new(&linear_model(id, overrides)?)?)),
            "lqg" => {
                let model = linear_model(id, overrides)?;
                if model.compat == Compat::Controlgym {
                    return Err(EnvError::Control(
                        "LQG needs the observation of the current state; compat = \"controlgym\" returns the \
                         pre-step one: use the default mode"
                            .into(),
                    ));
                }
                let lqr = Lqr::new(&model)?;
                let kalman = Kalman::new(&model)?;
                Ok(Controller::Lqg { lqr, kalman, model: Box::new(model) })
            }
            other => Err(EnvError::Control(format!("unknown controller `{other}`; known: zero, lqr, lqg"))),
        }
    }
}

/// The outcome of one controlled episode.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Episode {
    /// Sum of the stage costs (minus the return).
    pub cost: f64,
    /// Steps played.
    pub steps: u64,
    /// Whether the episode ended by termination (divergence) rather than the time limit.
    pub terminated: bool,
    /// Whether [`run_episode_until`]'s `stop` cut it short (then `cost` and `steps` are partial).
    pub stopped: bool,
}

/// Steps between two questions of [`run_episode_until`] to its `stop`: rare enough to cost
/// nothing, often enough that a stop is answered within milliseconds whatever the episode cap.
pub const STEPS_BETWEEN_STOP_CHECKS: u64 = 4096;

/// Runs one episode of `controller` in `env` from `reset(seed)` until it ends (or `max_steps`).
pub fn run_episode(env: &mut dyn Env, controller: &Controller, seed: u64, max_steps: u64) -> Result<Episode> {
    run_episode_until(env, controller, seed, max_steps, || false)
}

/// [`run_episode`] that asks `stop` every [`STEPS_BETWEEN_STOP_CHECKS`] steps and ends the
/// episode there when it says so (`stopped` set): the episode cap is the user's, so one episode
/// may be as long as they like, and Ctrl-C must not wait for its end.
pub fn run_episode_until(
    env: &mut dyn Env,
    controller: &Controller,
    seed: u64,
    max_steps: u64,
    mut stop: impl FnMut() -> bool,
) -> Result<Episode> {
    let spec = env.spec().clone();
    let (obs_len, act_len) = (spec.obs_len(), spec.action_len());
    let mut obs = spec.obs_buffer(1);
    env.reset(Some(seed), &ResetOptions::default(), obs.as_mut())?;
    let state_of = |env: &dyn Env| -> Result<DVector<f64>> {
        env.state()
            .map(DVector::from_vec)
            .ok_or_else(|| EnvError::Control(format!("{} does not expose its state", spec.id)))
    };
    let mut estimate = match controller {
        Controller::Lqg { .. } => Some(state_of(env)?),
        _ => None,
    };
    let (mut action, mut narrowed) = (vec![0.0f64; act_len], vec![0.0f32; act_len]);
    let float64 = spec.action_space.box_dtype() == Some(crate::space::DType::Float64);
    let (mut cost, mut steps) = (0.0, 0);
    while steps < max_steps {
        if steps % STEPS_BETWEEN_STOP_CHECKS == STEPS_BETWEEN_STOP_CHECKS - 1 && stop() {
            return Ok(Episode { cost, steps, terminated: false, stopped: true });
        }
        let u = match controller {
            Controller::Zero => DVector::zeros(act_len),
            Controller::Lqr(lqr) => lqr.act(&state_of(env)?),
            Controller::Lqg { lqr, .. } => lqr.act(estimate.as_ref().unwrap_or(&DVector::zeros(0))),
        };
        if u.len() != act_len {
            return Err(EnvError::Control(format!("the model has {} inputs, the env {act_len}", u.len())));
        }
        action.copy_from_slice(u.as_slice());
        if let (Controller::Lqg { kalman, model, .. }, Some(x)) = (controller, estimate.as_mut()) {
            // Predict with the observation of the current state, before it is overwritten.
            let y = DVector::from_iterator(obs_len, obs.as_ref().iter_f64());
            let innovation = y - &model.c * &*x;
            *x = &model.a * &*x + &model.b * &u + &kalman.gain * innovation;
        }
        let step = if float64 {
            env.step(Action::Float64(&action), obs.as_mut())?
        } else {
            narrowed.iter_mut().zip(&action).for_each(|(o, &v)| *o = v as f32);
            env.step(Action::Float(&narrowed), obs.as_mut())?
        };
        cost -= step.reward;
        steps += 1;
        if step.terminated || step.truncated {
            return Ok(Episode { cost, steps, terminated: step.terminated, stopped: false });
        }
    }
    Ok(Episode { cost, steps, terminated: false, stopped: false })
}

//! # Linear: the industrial linear systems of controlgym
//!
//! ## Description
//! `keel/Linear-v0` is one of 37 linear time-invariant systems, chosen by the config key `system`
//! (`--set system=he1`; default `toy`): controlgym's `toy` and the 36 COMPleib benchmark systems
//! it ships (aircraft `ac1`..`ac10`, distillation towers `bdt1`, `bdt2`, clamped beam `cbm`,
//! CD player `cdp`, cable–mass `cm1`..`cm5`, decentralised systems `dis1`..`dis5`, the DLR
//! structure `dlr`, helicopters `he1`..`he6`, space station `iss`, jet engines `je1`, `je2`, LA
//! hospital `lah`, piezo actuator `pas`, power system `psm`, chemical reactor `rea`, marine
//! vehicle `umv`). The continuous-time system `ẋ = A x + B1 w + B2 u`, `y = C x + D21 w`,
//! `z = C1 x + D11 w + D12 u` is discretised with a zero-order hold over `sample_time`
//! (`A_d = e^{A T}`, `[B1_d B2_d] = ∫₀ᵀ e^{A s} ds [B1 B2]`, one exponential of the augmented
//! matrix, as `scipy.signal.cont2discrete`); `C`, `D21` are kept. The disturbance
//! `w ~ N(0, noise_cov I)` is drawn every step.
//!
//! The data is controlgym's (COMPleib: F. Leibfritz, *COMPleib: COnstrained Matrix-optimization
//! Problem library*, Univ. Trier, 2004), read from an installed controlgym; see [`data`].
//!
//! ## Observation space
//! `Box(±observation_limit, (n_y,), float32)`: `y = C x + D21 w`.
//!
//! ## Action space
//! `Box(±action_limit, (n_u,), float64)`, unbounded by default (bounded by `preset = "benchmark"`).
//!
//! ## Reward
//! `−(xᵀQx + uᵀRu + 2 xᵀSu)` of the pre-step state, with `Q = C1ᵀC1`, `R = D12ᵀD12` (for `ac1`,
//! `ac6`, `ac8`: `λ_max(D12ᵀD12) I`, as controlgym) and `S = C1ᵀD12`, i.e. `−‖C1 x + D12 u‖²`;
//! like controlgym, the `D11 w` part of `z` is left out, so the reward is the LQR stage cost.
//!
//! ## Starting state
//! `init_state + N(0, random_init_state_cov I)` (`init_state` defaults to zeros), or exactly the
//! `state` reset option.
//!
//! ## Episode end
//! Terminated when the state diverges (non-finite, norm beyond `state_limit`, or reward beyond
//! `reward_limit`); truncated after `n_steps` (1000) steps. The `diverged` extra is 1 on the
//! step the state diverged.
//!
//! ## Benchmark preset
//! controlgym's systems have unbounded actions and no divergence limit: an open-loop unstable
//! system (`he1`, `ac1`, ...) under an untrained policy grows for 1000 steps until returns reach
//! −1e24 and a learner's losses overflow. `preset = "benchmark"` fills in what is not given:
//!
//! - the typical initial state norm `x̄ = ‖init_state‖ + sqrt(n · random_init_state_cov)` (if
//!   that is 0, `sqrt(n · noise_cov)`, at least 1e-6);
//! - `state_limit = 100 x̄` ([`DIVERGENCE_FACTOR`](crate::controlgym::compat::DIVERGENCE_FACTOR)):
//!   the episode ends as diverged when `‖x‖` leaves it;
//! - `action_limit = 10 x̄ · max_i ‖K_i‖`, with `K` the LQR gain of the discretised system (the
//!   largest LQR input at ten times the typical state), so the optimal controller is not
//!   bounded where it matters; where no stabilising LQR gain exists, `10 x̄ / σ_max(B2_d)`.
//! - a diverged step's reward carries the steps left, each at its own cost, so that diverging
//!   early never costs less than staying at the bound.
//!
//! ```text
//! keel train --algo ppo --env keel/Linear-v0 --set env_config.system=he1 --set env_config.preset=benchmark
//! ```
//!
//! ## Default mode vs `compat = "controlgym"`
//! | | default | `compat = "controlgym"` |
//! |---|---|---|
//! | observation returned by `step` | `C x_{t+1} + D21 w_{t+1}` (new state; `w_{t+1}` is the disturbance of the next step) | `C x_t + D21 w_t` (pre-step state) |
//! | time limit / reward out of range | `truncated` / `terminated` | `terminated` / `truncated` |
//! | `state` reset option | the exact initial state | the new mean: noise is added, and it stays the mean for later resets |
//! | limits | actions and observations clipped | bounds of the spaces only |
//!
//! ## Config
//! [`LinearConfig`].
//!
//! ## Version history
//! - v0: controlgym 1.0.0's `LinearControlEnv`, with Gymnasium conventions by default.
//!
//! ## Source
//! Zhang et al., *Controlgym*, arXiv:2311.18736.

pub mod data;

use nalgebra::{DMatrix, DVector};
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::controlgym::compat::{
    Compat, DIVERGENCE_FACTOR, Divergence, Preset, check_explicit_state, extras, float64_box, limits, read_action,
    step_result, variance,
};
use crate::config::{FieldError, Validate, positive};
use crate::env::{Env, EnvSpec, Registered, ResetOptions, Step};
use crate::error::{EnvError, Result};
use crate::obs::ObsMut;
use crate::rng::EnvRng;
use crate::space::Action;

/// Construction config of [`Linear`]; defaults are controlgym's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LinearConfig {
    /// `"keel"`: Gymnasium conventions (default); `"controlgym"`: controlgym 1.0.0 number for
    /// number (see the module docs).
    pub compat: Compat,
    /// Which system: `toy` (default) or a COMPleib id (see [`data::SYSTEMS`]).
    pub system: String,
    /// Episode length in steps (default 1000).
    pub n_steps: u64,
    /// Zero-order-hold sample time of the discretisation (default 0.1).
    pub sample_time: f64,
    /// Variance of each disturbance component `w` (default 0.1).
    pub noise_cov: f64,
    /// Variance of the initial-state noise around `init_state` (default 0.1).
    pub random_init_state_cov: f64,
    /// Mean initial state (null: zeros).
    pub init_state: Option<Vec<f64>>,
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
    /// divergence limit derived from the system (see the module docs).
    pub preset: Preset,
}

impl Default for LinearConfig {
    fn default() -> Self {
        Self {
            compat: Compat::Keel,
            system: "toy".into(),
            n_steps: 1000,
            sample_time: 0.1,
            noise_cov: 0.1,
            random_init_state_cov: 0.1,
            init_state: None,
            action_limit: None,
            observation_limit: None,
            reward_limit: None,
            state_limit: None,
            preset: Preset::None,
        }
    }
}

impl Validate for LinearConfig {
    fn validate(&self) -> Result<(), FieldError> {
        if !data::SYSTEMS.contains(&self.system.as_str()) {
            return Err(FieldError::new(
                "system",
                format!("unknown system `{}`; known: {}", self.system, data::SYSTEMS.join(", ")),
            ));
        }
        if self.n_steps == 0 {
            return Err(FieldError::new("n_steps", "must be at least 1"));
        }
        positive("sample_time", self.sample_time)?;
        variance("noise_cov", self.noise_cov)?;
        variance("random_init_state_cov", self.random_init_state_cov)?;
        limits(self.action_limit, self.observation_limit, self.reward_limit, self.state_limit)?;
        if let Some(x) = &self.init_state {
            if x.iter().any(|v| !v.is_finite()) {
                return Err(FieldError::new("init_state", "must be finite"));
            }
        }
        Ok(())
    }
}

/// A discretised system with its cost matrices.
#[derive(Clone, Debug)]
pub struct Discretised {
    /// `e^{A T}`.
    pub a: DMatrix<f64>,
    /// Discretised disturbance input.
    pub b1: DMatrix<f64>,
    /// Discretised control input.
    pub b2: DMatrix<f64>,
    /// Measurement matrix.
    pub c: DMatrix<f64>,
    /// Sensor-noise feed-through.
    pub d21: DMatrix<f64>,
    /// State cost `C1ᵀC1`.
    pub q: DMatrix<f64>,
    /// Action cost.
    pub r: DMatrix<f64>,
    /// Cross cost `C1ᵀD12`.
    pub s: DMatrix<f64>,
}

/// Zero-order-hold discretisation of `system` with sample time `t`, and its cost matrices.
pub fn discretise(system: &str, d: &data::SystemData, t: f64) -> Discretised {
    let (n, nw, nu) = (d.a.nrows(), d.b1.ncols(), d.b2.ncols());
    let mut augmented = DMatrix::<f64>::zeros(n + nw + nu, n + nw + nu);
    augmented.view_mut((0, 0), (n, n)).copy_from(&(&d.a * t));
    augmented.view_mut((0, n), (n, nw)).copy_from(&(&d.b1 * t));
    augmented.view_mut((0, n + nw), (n, nu)).copy_from(&(&d.b2 * t));
    let e = augmented.exp();
    let q = d.c1.transpose() * &d.c1;
    let d12td12 = d.d12.transpose() * &d.d12;
    let r = if matches!(system, "ac1" | "ac6" | "ac8") {
        // controlgym replaces these R by their largest eigenvalue times I.
        let largest = d12td12.clone().symmetric_eigen().eigenvalues.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v));
        DMatrix::identity(nu, nu) * largest
    } else {
        d12td12
    };
    Discretised {
        a: e.view((0, 0), (n, n)).into_owned(),
        b1: e.view((0, n), (n, nw)).into_owned(),
        b2: e.view((0, n + nw), (n, nu)).into_owned(),
        c: d.c.clone(),
        d21: d.d21.clone(),
        s: d.c1.transpose() * &d.d12,
        q,
        r,
    }
}

/// `config` with the benchmark preset's limits filled in where it leaves them out (see the
/// module docs); any other config as it is.
pub fn resolved(config: &LinearConfig) -> Result<LinearConfig> {
    let mut config = config.clone();
    if config.preset != Preset::Benchmark || (config.action_limit.is_some() && config.state_limit.is_some()) {
        return Ok(config);
    }
    let raw = data::load(&config.system)?;
    let system = discretise(&config.system, &raw, config.sample_time);
    let n = system.a.nrows() as f64;
    let mean = config.init_state.as_ref().map_or(0.0, |x| x.iter().map(|v| v * v).sum::<f64>().sqrt());
    let mut typical = mean + (n * config.random_init_state_cov).sqrt();
    if typical <= 0.0 {
        typical = (n * config.noise_cov).sqrt();
    }
    let typical = typical.max(1e-6);
    config.state_limit.get_or_insert(DIVERGENCE_FACTOR * typical);
    if config.action_limit.is_none() {
        let gain = crate::baselines::solve_dare(&system.a, &system.b2, &system.q, &system.r, &system.s)
            .ok()
            .map(|riccati| riccati.gain.row_iter().map(|row| row.norm()).fold(0.0, f64::max))
            .filter(|g| g.is_finite() && *g > 0.0);
        let limit = match gain {
            Some(g) => 10.0 * typical * g,
            None => 10.0 * typical / system.b2.norm().max(1e-12),
        };
        config.action_limit = Some(limit);
    }
    Ok(config)
}

/// One of controlgym's linear systems (see the module docs).
pub struct Linear {
    config: LinearConfig,
    spec: EnvSpec,
    system: Discretised,
    rng: EnvRng,
    init_mean: DVector<f64>,
    x: DVector<f64>,
    next: DVector<f64>,
    u: DVector<f64>,
    w: DVector<f64>,
    y: DVector<f64>,
    scratch: DVector<f64>,
    steps: u64,
    started: bool,
    /// `xᵀQx` and `uᵀRu + 2xᵀSu` of the last step (extras).
    costs: [f64; 2],
    /// Whether the last step diverged (extra).
    diverged: bool,
}

impl Linear {
    /// The discretised system.
    pub fn system(&self) -> &Discretised {
        &self.system
    }

    /// The config this env was built with.
    pub fn config(&self) -> &LinearConfig {
        &self.config
    }

    fn draw(rng: &mut EnvRng, std: f64, out: &mut DVector<f64>) {
        if std > 0.0 {
            let rng = rng.reseed(None);
            for v in out.iter_mut() {
                let z: f64 = StandardNormal.sample(rng);
                *v = std * z;
            }
        } else {
            out.fill(0.0);
        }
    }

    /// `y = C x + D21 w` into `obs`.
    fn observe(&mut self, obs: &mut [f64]) {
        self.y.gemv(1.0, &self.system.c, &self.x, 0.0);
        self.y.gemv(1.0, &self.system.d21, &self.w, 1.0);
        let limit = match self.config.compat {
            Compat::Keel => self.config.observation_limit,
            Compat::Controlgym => None,
        };
        for (o, &y) in obs.iter_mut().zip(self.y.iter()) {
            *o = limit.map_or(y, |l| y.clamp(-l, l));
        }
    }
}

impl Registered for Linear {
    const ID: &'static str = "keel/Linear-v0";
    const DESCRIPTION: &'static str =
        "Industrial linear systems: toy and the 36 COMPleib systems of controlgym (config key `system`)";
    const MAX_EPISODE_STEPS: Option<u64> = None;
    type Config = LinearConfig;

    fn spec(config: &LinearConfig) -> Result<EnvSpec> {
        crate::config::checked(config.clone(), "keel/Linear-v0 config")?;
        let config = &resolved(config)?;
        let dims = data::load(&config.system)?;
        let (n, nu, ny) = (dims.a.nrows(), dims.b2.ncols(), dims.c.nrows());
        Ok(EnvSpec {
            id: Self::ID.into(),
            observation_space: float64_box(config.observation_limit, ny),
            action_space: float64_box(config.action_limit, nu),
            max_episode_steps: Self::episode_cap(config),
            reward_threshold: None,
            state_len: Some(n),
            extras: extras(),
        })
    }

    fn new(config: LinearConfig) -> Result<Self> {
        let spec = <Self as Registered>::spec(&config)?;
        let config = resolved(&config)?;
        let raw = data::load(&config.system)?;
        let system = discretise(&config.system, &raw, config.sample_time);
        let (n, nw, nu, ny) = (system.a.nrows(), system.b1.ncols(), system.b2.ncols(), system.c.nrows());
        let init_mean = match &config.init_state {
            Some(x) if x.len() != n => {
                return Err(EnvError::InvalidField {
                    context: "keel/Linear-v0 config".into(),
                    field: "init_state".into(),
                    message: format!("system {} has {n} states, got {} values", config.system, x.len()),
                });
            }
            Some(x) => DVector::from_column_slice(x),
            None => DVector::zeros(n),
        };
        Ok(Self {
            spec,
            system,
            rng: EnvRng::default(),
            init_mean,
            x: DVector::zeros(n),
            next: DVector::zeros(n),
            u: DVector::zeros(nu),
            w: DVector::zeros(nw),
            y: DVector::zeros(ny),
            scratch: DVector::zeros(nu),
            steps: 0,
            started: false,
            costs: [0.0; 2],
            diverged: false,
            config,
        })
    }

    fn episode_cap(config: &LinearConfig) -> Option<u64> {
        match config.compat {
            Compat::Keel => Some(config.n_steps),
            Compat::Controlgym => None,
        }
    }
}

impl Env for Linear {
    fn spec(&self) -> &EnvSpec {
        &self.spec
    }

    fn reset(&mut self, seed: Option<u64>, options: &ResetOptions, obs: ObsMut<'_>) -> Result<()> {
        let obs = obs.f64(self.y.len())?;
        if !options.params.is_empty() {
            let known = "(none: the initial state is set with `state`)";
            let field = options.params.keys().next().cloned().unwrap_or_default();
            return Err(EnvError::UnknownField {
                context: "keel/Linear-v0 reset options".into(),
                field,
                known: known.into(),
            });
        }
        let n = self.x.len();
        if let Some(state) = &options.state {
            check_explicit_state(state, n)?;
        }
        self.rng.reseed(seed);
        let compat = self.config.compat == Compat::Controlgym;
        match (&options.state, compat) {
            (Some(state), false) => self.x.copy_from_slice(state),
            (explicit, _) => {
                if let Some(state) = explicit {
                    // controlgym: the given state becomes the mean of this and later resets.
                    self.init_mean.copy_from_slice(state);
                }
                Self::draw(&mut self.rng, self.config.random_init_state_cov.sqrt(), &mut self.next);
                self.x.copy_from(&self.init_mean);
                self.x += &self.next;
            }
        }
        Self::draw(&mut self.rng, self.config.noise_cov.sqrt(), &mut self.w);
        self.steps = 0;
        self.started = true;
        self.costs = [0.0; 2];
        self.diverged = false;
        self.observe(obs);
        Ok(())
    }

    fn step(&mut self, action: Action<'_>, obs: ObsMut<'_>) -> Result<Step> {
        let obs = obs.f64(self.y.len())?;
        let (compat, limit) = (self.config.compat, self.config.action_limit);
        read_action(&self.spec.action_space, action, self.started, compat, limit, self.u.as_mut_slice())?;
        let compat = compat == Compat::Controlgym;
        let sys = &self.system;
        // Stage cost xᵀQx + uᵀRu + 2 xᵀSu.
        self.next.gemv(1.0, &sys.q, &self.x, 0.0);
        let state_cost = self.x.dot(&self.next);
        self.scratch.gemv(1.0, &sys.r, &self.u, 0.0);
        let input_cost = self.u.dot(&self.scratch);
        self.scratch.gemv_tr(1.0, &sys.s, &self.x, 0.0);
        let cross_cost = 2.0 * self.u.dot(&self.scratch);
        self.costs = [state_cost, input_cost + cross_cost];
        // Summed in controlgym's order, (xᵀQx + uᵀRu) + 2xᵀSu, to the last bit.
        let reward = -(state_cost + input_cost + cross_cost);
        if compat {
            // controlgym draws this step's disturbance, observes the pre-step state with it.
            Self::draw(&mut self.rng, self.config.noise_cov.sqrt(), &mut self.w);
            self.observe(obs);
        }
        let sys = &self.system;
        self.next.gemv(1.0, &sys.a, &self.x, 0.0);
        self.next.gemv(1.0, &sys.b1, &self.w, 1.0);
        self.next.gemv(1.0, &sys.b2, &self.u, 1.0);
        std::mem::swap(&mut self.x, &mut self.next);
        self.steps += 1;
        if !compat {
            // The next step's disturbance, which also enters the new observation.
            Self::draw(&mut self.rng, self.config.noise_cov.sqrt(), &mut self.w);
            self.observe(obs);
        }
        let x = &self.x;
        let c = &self.config;
        let divergence = Divergence { state_limit: c.state_limit, penalise: c.preset == Preset::Benchmark };
        let (step, diverged) =
            step_result(c.compat, reward, c.reward_limit, self.steps, c.n_steps, divergence, || divergence.diverged(x.as_slice()));
        self.diverged = diverged;
        Ok(step)
    }

    fn write_extras(&self, out: &mut [f64]) {
        let diverged = if self.diverged { 1.0 } else { 0.0 };
        out.copy_from_slice(&[self.costs[0], self.costs[1], self.x.norm(), diverged][..out.len()]);
    }

    fn state(&self) -> Option<Vec<f64>> {
        self.started.then(|| self.x.iter().copied().collect())
    }

    fn set_params(&mut self, params: &Map<String, Value>) -> Result<()> {
        match params.keys().next() {
            None => Ok(()),
            Some(field) => Err(EnvError::UnknownField {
                context: "keel/Linear-v0 reset parameters".into(),
                field: field.clone(),
                known: "(none)".into(),
            }),
        }
    }

    fn params(&self) -> Value {
        Value::Object(Map::new())
    }

    fn snapshot(&self) -> Option<Value> {
        Some(serde_json::json!({
            "x": self.x.as_slice(),
            "w": self.w.as_slice(),
            "init_mean": self.init_mean.as_slice(),
            "rng": serde_json::to_value(&self.rng).ok()?,
            "steps": self.steps,
            "started": self.started,
            "costs": self.costs,
            "diverged": self.diverged,
        }))
    }

    fn restore(&mut self, snapshot: &Value) -> Result<()> {
        fn field<T: serde::de::DeserializeOwned>(s: &Value, key: &str) -> Result<T> {
            let value = s.get(key).cloned().ok_or_else(|| EnvError::Snapshot(format!("keel/Linear-v0: no `{key}`")))?;
            serde_json::from_value(value).map_err(|e| EnvError::Snapshot(format!("keel/Linear-v0: `{key}`: {e}")))
        }
        let (x, w, init_mean): (Vec<f64>, Vec<f64>, Vec<f64>) =
            (field(snapshot, "x")?, field(snapshot, "w")?, field(snapshot, "init_mean")?);
        if x.len() != self.x.len() || w.len() != self.w.len() || init_mean.len() != self.init_mean.len() {
            return Err(EnvError::Snapshot("keel/Linear-v0: snapshot of another system".into()));
        }
        let (rng, steps, started) = (field(snapshot, "rng")?, field(snapshot, "steps")?, field(snapshot, "started")?);
        let costs = field(snapshot, "costs")?;
        self.x.copy_from_slice(&x);
        self.w.copy_from_slice(&w);
        self.init_mean.copy_from_slice(&init_mean);
        self.rng = rng;
        self.steps = steps;
        self.started = started;
        self.costs = costs;
        self.diverged = snapshot.get("diverged").and_then(Value::as_bool).unwrap_or(false);
        Ok(())
    }
}

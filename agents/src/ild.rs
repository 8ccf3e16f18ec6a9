//! Imitation Learning via Differentiable Physics (ILD; Chen, Ma and Xu, CVPR 2023) as in its
//! official code, with two baselines that share its policy and rollouts:
//!
//! - `ild`: from one expert demonstration (`demo`, a file of `keel demo`), roll `num_envs`
//!   reparameterised policies for `horizon` steps through the differentiable physics of a
//!   `keel/Diff*-v0` env and minimise `tanh` of the bidirectional nearest-state (Chamfer) distance
//!   between the agent's and the expert's states (RMS over normalised state features): every agent
//!   state to its nearest expert state, and every expert state to its nearest agent state. No
//!   reward is used for learning.
//! - `bc`: behavioural cloning from the same demo, `mean_t Σ_a (π(o_t) − a_t)²` on sampled actions
//!   (ILD's warm-up, run on its own).
//! - `apg`: analytic policy gradients on the true reward through the same rollouts (how Keel
//!   trains the experts of the differentiable envs).
//!
//! Gradient handling, as in the official code: in the backward pass the cotangent of every
//! step's next state and of every action is made finite and scaled to global norm ≤ 1
//! (`norm_grad`); the state is detached every `trunc_len` steps (truncated BPTT); the parameter
//! gradient is made finite and clipped to global norm `max_grad_norm` (0.3); Adam at 1e-3. libtorch
//! has no custom autograd functions reachable from Rust, so the rollout keeps every step's graph
//! between leaf tensors and the backward pass walks the steps in reverse, normalising the
//! cotangents between them. `ild` first takes `bc_steps` steps of behavioural cloning with a
//! separate Adam.
//!
//! The policy is an MLP with swish activations giving a location and a scale per action;
//! actions are `tanh(loc + (softplus(scale) + 0.001) ε)`. Its observations are normalised by
//! running statistics (Brax's normaliser, as the official code): the demo's in every BC step, the
//! rollout's after every ILD / APG iteration. Start states are drawn once and reused
//! every iteration. Every iteration evaluates the deterministic policy on `eval_envs` fixed
//! starts with the env's reward over `horizon` steps and keeps the best parameters so far:
//! [`Algorithm::act`] (what `keel eval` and `keel demo` play) uses them. Each iteration also plays
//! one episode of the current policy in the ordinary Keel env, which is what `metrics.csv`'s
//! `episodic_return` reports.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tch::nn::Module;
use tch::{Device, Kind, Tensor, nn};

use keel_envs::EnvSpec;
use keel_envs::config::{FieldError, Validate, positive};
use keel_envs::diff::DiffSystem;
use keel_physics::diff::{Acrobot, CartPole, Hopper, Pendulum, PointMass, Reacher, System, tensor};

use crate::adam::Adam;
use crate::algorithm::{Algorithm, Metric, Schedule};
use crate::checkpoint;
use crate::collect::Envs;
use crate::config::{RunConfig, TrainConfig, mlp_parameters};
use crate::demo::Demo;
use crate::error::{AgentError, Result};
use crate::normalize::RunningMeanStd;
use crate::policy::{Activation, Init, Mlp};

/// Which objective a run optimises.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Objective {
    /// Chamfer state matching to the demo (after a BC warm-up).
    Ild,
    /// Behavioural cloning from the demo.
    Bc,
    /// Analytic policy gradient on the true reward.
    Apg,
}

impl Objective {
    fn name(self) -> &'static str {
        match self {
            Objective::Ild => "ild",
            Objective::Bc => "bc",
            Objective::Apg => "apg",
        }
    }
}

/// Everything an ILD / BC / APG run needs; defaults are the official ILD code's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IldConfig {
    /// The settings every run has: top-level keys, see [`RunConfig`]. For ILD, `env_id` is a
    /// differentiable env, `keel/Diff*-v0` (default `keel/DiffPendulum-v0`), `env_config` its
    /// physical constants, and `num_envs` the parallel differentiable rollouts per iteration
    /// (default 300); one ordinary env plays an episode of the current policy per iteration.
    /// `sampler`, `deploy_every` and `normalize_obs` do not apply (the rollouts start from the
    /// dynamics' own start states, and the policy normalises its input itself:
    /// `normalize_observations`).
    #[serde(flatten)]
    pub run: RunConfig,
    /// `ild`, `bc` or `apg` (default `ild`); `keel train --algo` sets it.
    pub algo: Objective,
    /// The expert demonstration (`keel demo` output; `--demo`); needed by `ild` and `bc`.
    pub demo: String,
    /// Which episode of the demo to imitate (default 0).
    pub demo_episode: usize,
    /// How many demo episodes to imitate, from `demo_episode` on (default 1). With more than one,
    /// each rollout's two Chamfer terms each take their minimum over the demos (the best-matching
    /// demo; the official `train_multi_traj.py`), and BC clones all of them.
    pub demo_count: usize,
    /// Gradient steps (iterations) (default 5000).
    pub iterations: u64,
    /// Steps per rollout; at most the demo's length (default 128).
    pub horizon: usize,
    /// Detach the state every this many steps (default 10; `horizon`: never).
    pub trunc_len: usize,
    /// Normalise the cotangent of every next state and action to global norm ≤ 1 (default true).
    pub normalize_step_grads: bool,
    /// Feed the policy observations normalised by running statistics (default true, as the
    /// official code): updated with the demo's observations in every BC step and with the
    /// rollout's in every ILD / APG iteration; `(o − mean) / std` clipped to ±5.
    pub normalize_observations: bool,
    /// Adam learning rate (default 1e-3).
    pub learning_rate: f64,
    /// Global gradient-norm bound (default 0.3).
    pub max_grad_norm: f64,
    /// BC steps before ILD; for `bc`, BC steps per iteration (default 1000 for `ild`; `bc` runs
    /// use 1 per iteration unless set).
    pub bc_steps: usize,
    /// Weight `rd^(T − t)` of step t in the loss (default 1).
    pub reverse_discount: f64,
    /// Hidden layer widths of the policy (default [512, 256]).
    pub hidden_sizes: Vec<i64>,
    /// Fixed evaluation starts (default 128).
    pub eval_envs: usize,
}

impl Default for IldConfig {
    fn default() -> Self {
        Self {
            run: RunConfig {
                env_id: "keel/DiffPendulum-v0".into(),
                num_envs: 300,
                checkpoint_every: 50,
                ..RunConfig::default()
            },
            algo: Objective::Ild,
            demo: String::new(),
            demo_episode: 0,
            demo_count: 1,
            iterations: 5000,
            horizon: 128,
            trunc_len: 10,
            normalize_step_grads: true,
            normalize_observations: true,
            learning_rate: 1e-3,
            max_grad_norm: 0.3,
            bc_steps: 1000,
            reverse_discount: 1.0,
            hidden_sizes: vec![512, 256],
            eval_envs: 128,
        }
    }
}

impl Validate for IldConfig {
    fn validate(&self) -> std::result::Result<(), FieldError> {
        let at_least_one = |field: &'static str, v: u64| {
            if v == 0 { Err(FieldError::new(field, "must be at least 1")) } else { Ok(()) }
        };
        at_least_one("iterations", self.iterations)?;
        at_least_one("horizon", self.horizon as u64)?;
        at_least_one("trunc_len", self.trunc_len as u64)?;
        at_least_one("eval_envs", self.eval_envs as u64)?;
        at_least_one("demo_count", self.demo_count as u64)?;
        positive("learning_rate", self.learning_rate)?;
        positive("max_grad_norm", self.max_grad_norm)?;
        positive("reverse_discount", self.reverse_discount)?;
        crate::config::float32("learning_rate", self.learning_rate)?;
        if self.hidden_sizes.iter().any(|&h| h < 1) {
            return Err(FieldError::new("hidden_sizes", "widths must be at least 1"));
        }
        if self.horizon > 100_000 {
            return Err(FieldError::new("horizon", format!("{} steps is more than 100000", self.horizon)));
        }
        if self.algo != Objective::Apg && self.demo.is_empty() {
            return Err(FieldError::new(
                "demo",
                format!("`{}` needs a demonstration: --demo FILE (from `keel demo`)", self.algo.name()),
            ));
        }
        if self.run.sampler.is_some() {
            return Err(FieldError::new(
                "sampler",
                "does not apply to ild, bc or apg: their rollouts start from the differentiable dynamics' own start \
                 states",
            ));
        }
        if self.run.deploy_every > 0 {
            return Err(FieldError::new(
                "deploy_every",
                "does not apply to ild, bc or apg (no deployable policy table)",
            ));
        }
        if self.run.normalize_obs {
            return Err(FieldError::new(
                "normalize_obs",
                "does not apply to ild, bc or apg: the policy normalises its input itself (`normalize_observations`)",
            ));
        }
        if self.algo == Objective::Bc && self.bc_steps == 0 {
            return Err(FieldError::new("bc_steps", "must be at least 1 for `bc`"));
        }
        Ok(())
    }
}

impl TrainConfig for IldConfig {
    fn run(&self) -> &RunConfig {
        &self.run
    }
    fn algo(&self) -> &'static str {
        self.algo.name()
    }
    fn steps_per_iteration(&self) -> u64 {
        self.horizon as u64
    }
    fn num_iterations(&self) -> u64 {
        self.iterations
    }
    // One ordinary env plays one episode of the current policy per iteration.
    fn training_envs(&self) -> usize {
        1
    }
}

/// The batched tensor dynamics of a differentiable env, its type erased.
trait Dynamics: Send {
    fn step(&self, state: &Tensor, action: &Tensor) -> Tensor;
    fn observe(&self, state: &Tensor) -> Tensor;
    fn reward(&self, state: &Tensor, action: &Tensor) -> Tensor;
    fn start(&self, count: i64, device: Device) -> Tensor;
    fn state_len(&self) -> usize;
    fn action_len(&self) -> usize;
}

struct Physics<S: System>(S);

impl<S: System> Dynamics for Physics<S> {
    fn step(&self, state: &Tensor, action: &Tensor) -> Tensor {
        tensor::step(&self.0, state, action)
    }
    fn observe(&self, state: &Tensor) -> Tensor {
        tensor::observe(&self.0, state)
    }
    fn reward(&self, state: &Tensor, action: &Tensor) -> Tensor {
        tensor::reward(&self.0, state, action)
    }
    fn start(&self, count: i64, device: Device) -> Tensor {
        tensor::start(&self.0, count, Kind::Float, device)
    }
    fn state_len(&self) -> usize {
        S::STATE
    }
    fn action_len(&self) -> usize {
        S::ACTION
    }
}

fn physics_of<S: DiffSystem>(env_config: &Map<String, Value>) -> Result<Box<dyn Dynamics>> {
    let mut fields = env_config.clone();
    fields.remove(keel_envs::wrappers::MAX_EPISODE_STEPS);
    let system: S = serde_json::from_value(Value::Object(fields))
        .map_err(|e| AgentError::Config(format!("{} config: {e}", S::ID)))?;
    if let Some((field, why)) = system.invalid_field() {
        return Err(AgentError::Config(format!("{} config: invalid `{field}`: {why}", S::ID)));
    }
    Ok(Box::new(Physics(system)))
}

/// The tensor dynamics of `env_id`, or an error saying which envs have them.
fn dynamics(env_id: &str, env_config: &Map<String, Value>) -> Result<Box<dyn Dynamics>> {
    match env_id {
        Pendulum::ID => physics_of::<Pendulum>(env_config),
        CartPole::ID => physics_of::<CartPole>(env_config),
        Reacher::ID => physics_of::<Reacher>(env_config),
        PointMass::ID => physics_of::<PointMass>(env_config),
        Acrobot::ID => physics_of::<Acrobot>(env_config),
        Hopper::ID => physics_of::<Hopper>(env_config),
        other => Err(AgentError::Config(format!(
            "training config: invalid `env_id`: {other} has no differentiable dynamics; ild, bc and apg \
             need one of {}",
            keel_envs::diff::IDS.join(", ")
        ))),
    }
}

/// The reparameterised tanh-Gaussian MLP policy: a SiLU MLP with PyTorch's default
/// initialisation whose output is a location and a scale per action.
struct Policy {
    vs: nn::VarStore,
    mlp: Mlp,
    actions: i64,
}

impl Policy {
    fn new(device: Device, input: i64, hidden: &[i64], actions: i64) -> Self {
        let vs = nn::VarStore::new(device);
        let mlp = Mlp::with(&vs.root(), input, hidden, 2 * actions, Activation::Silu, Init::Torch);
        Self { vs, mlp, actions }
    }

    /// `(loc, scale)` of each action.
    fn head(&self, obs: &Tensor) -> (Tensor, Tensor) {
        let parts = self.mlp.forward(obs).split(self.actions, -1);
        (parts[0].shallow_clone(), parts[1].softplus() + 0.001)
    }

    fn act(&self, obs: &Tensor, deterministic: bool) -> Tensor {
        let (loc, scale) = self.head(obs);
        if deterministic { loc.tanh() } else { (&loc + scale * loc.randn_like()).tanh() }
    }
}

/// Adds `rows [N, F]` to `stats`, each counted `weight` times (the official code repeats the
/// demo once per env before updating with it).
fn update_stats(stats: &mut RunningMeanStd, rows: &Tensor, weight: f64) {
    let rows = rows.detach().to_kind(Kind::Double).to_device(Device::Cpu).contiguous();
    let count = rows.size()[0].max(0) as usize;
    let values = Vec::<f64>::try_from(rows.flatten(0, -1)).unwrap_or_default();
    stats.update_weighted(&values, count, weight);
}

/// The normaliser of Brax's observation statistics (which the official code uses for both
/// observations and states), as tensors of `kind` on `device`: statistics that start empty
/// ([`RunningMeanStd::empty`]) with the variance `(1 + M2) / (count + 1)` (a prior of one unit
/// sample of variance 1) clipped to [1e-6, 1e6].
fn brax_scale(stats: &RunningMeanStd, kind: Kind, device: Device) -> Scale {
    let width = stats.mean.len() as i64;
    let std: Vec<f64> =
        stats.var.iter().map(|v| ((1.0 + v * stats.count) / (stats.count + 1.0)).clamp(1e-6, 1e6).sqrt()).collect();
    Scale {
        mean: Tensor::from_slice(&stats.mean).to_kind(kind).to_device(device).view([1, width]),
        std: Tensor::from_slice(&std).to_kind(kind).to_device(device).view([1, width]),
    }
}

/// A frozen snapshot of Brax-style statistics: `((x − mean) / std)` clipped to ±5 (the clip also stops
/// the gradient of a feature more than five deviations out, as in the official code).
struct Scale {
    mean: Tensor,
    std: Tensor,
}

impl Scale {
    fn apply(&self, x: &Tensor) -> Tensor {
        ((x - &self.mean) / &self.std).clamp(-5.0, 5.0)
    }
}

/// What checkpoints keep besides tensors.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct IldState {
    state_stats: RunningMeanStd,
    /// The policy's observation statistics, and the ones that went with the best parameters.
    obs_stats: RunningMeanStd,
    best_obs_stats: RunningMeanStd,
    best_return: Option<f64>,
    warmed_up: bool,
}

/// The columns an ILD / BC / APG iteration reports.
const METRICS: &[Metric] = &[
    Metric { name: "loss", tag: "losses/loss" },
    Metric { name: "bc_loss", tag: "losses/bc_loss" },
    Metric { name: "grad_norm", tag: "losses/grad_norm" },
    Metric { name: "eval_return", tag: "charts/eval_return" },
    Metric { name: "best_return", tag: "charts/best_return" },
];

/// The ILD / BC / APG learner (see the module docs).
pub struct Ild {
    config: IldConfig,
    physics: Box<dyn Dynamics>,
    policy: Policy,
    best: Policy,
    adam: Adam,
    bc_adam: Adam,
    /// The experts' states `[K, T, S]` (float32) for `ild`: K demos (usually one).
    expert_states: Option<Tensor>,
    /// The expert's observations `[T', O]` and actions `[T', A]` for BC.
    expert_pairs: Option<(Tensor, Tensor)>,
    starts: Tensor,
    eval_starts: Tensor,
    device: Device,
    state: IldState,
    /// The policy's observation normaliser now and the best parameters' (`None`: raw observations).
    obs_scale: Option<Scale>,
    best_obs_scale: Option<Scale>,
    /// Sample the policy in training rollouts (its mode otherwise; tests only).
    sample: bool,
}

/// Reads the demo and checks it against the env and the horizon.
fn load_demo(config: &IldConfig, spec: &EnvSpec, physics: &dyn Dynamics) -> Result<(Tensor, Tensor, Tensor)> {
    let path = PathBuf::from(&config.demo);
    let demo = Demo::read(&path)?;
    let bad = |why: String| AgentError::Config(format!("demo {}: {why}", path.display()));
    let states = demo.states.as_ref().ok_or_else(|| bad("it has no states (its env exposes none)".into()))?;
    let (s, want) = (states.size()[2], physics.state_len() as i64);
    if s != want {
        return Err(bad(format!(
            "its states have {s} values but {} has {want}: it is a demo of another env ({})",
            config.run.env_id, demo.env_id
        )));
    }
    let (o, a) = (demo.observations.size()[2], demo.actions.size()[2]);
    if o != spec.obs_len() as i64 || a != spec.action_len() as i64 {
        return Err(bad(format!(
            "{o} observations and {a} actions per step, but {} has {} and {}: a demo of another env ({})",
            config.run.env_id,
            spec.obs_len(),
            spec.action_len(),
            demo.env_id
        )));
    }
    if config.demo_episode as i64 >= demo.episodes() {
        return Err(AgentError::Config(format!(
            "training config: invalid `demo_episode`: {} but the demo holds {} episode(s)",
            config.demo_episode,
            demo.episodes()
        )));
    }
    if (config.demo_episode + config.demo_count) as i64 > demo.episodes() {
        return Err(AgentError::Config(format!(
            "training config: invalid `demo_count`: {} episodes from episode {} but the demo holds {} episode(s)",
            config.demo_count,
            config.demo_episode,
            demo.episodes()
        )));
    }
    if config.horizon as i64 > demo.steps() {
        return Err(AgentError::Config(format!(
            "training config: invalid `horizon`: {} steps is longer than the demo ({} steps); lower `horizon` \
             or record a longer demo",
            config.horizon,
            demo.steps()
        )));
    }
    let (e, k) = (config.demo_episode as i64, config.demo_count as i64);
    let t = config.horizon as i64;
    let window = |tensor: &Tensor| tensor.narrow(0, e, k).narrow(1, 0, t);
    let (states, observations, actions) = (window(states), window(&demo.observations), window(&demo.actions));
    // The states are the targets every rollout is pulled towards: one absurd value would turn
    // the float32 distances to infinity and the gradients to NaN.
    let limit = keel_envs::diff::MAX_START_MAGNITUDE;
    for (name, tensor, limit) in [
        ("states", &states, limit),
        ("observations", &observations, f64::INFINITY),
        ("actions", &actions, f64::INFINITY),
    ] {
        if let Some(([episode, step, element], value)) = first_out_of_range(tensor, limit) {
            let why = if value.is_finite() {
                format!("beyond {limit:e}, the differentiable envs' largest state")
            } else {
                "not finite".into()
            };
            return Err(bad(format!(
                "`{name}` of episode {}, step {step}, element {element} = {value:e} is {why}",
                e + episode
            )));
        }
    }
    Ok((states.to_kind(Kind::Float), observations.reshape([k * t, o]), actions.reshape([k * t, a]).clamp(-1.0, 1.0)))
}

/// The index `[episode, step, element]` and value of the first element of a demo tensor that is
/// not finite or is beyond `limit` in magnitude.
fn first_out_of_range(tensor: &Tensor, limit: f64) -> Option<([i64; 3], f64)> {
    let bad = tensor.isfinite().logical_not().logical_or(&tensor.abs().gt(limit));
    let found = bad.nonzero();
    if found.size().first().is_none_or(|&n| n == 0) {
        return None;
    }
    let index: [i64; 3] = Vec::<i64>::try_from(found.get(0)).ok()?.try_into().ok()?;
    Some((index, tensor.double_value(&index)))
}

/// A cotangent made finite and scaled to global norm ≤ 1 (the official code's `norm_grad`).
fn norm_grad(g: &Tensor) -> Tensor {
    let g = g.nan_to_num(0.0, 0.0, 0.0);
    let norm = g.norm().clamp_min(1.0);
    g / norm
}

/// The bidirectional nearest-state distance between agent states `x [B, T, S]` and the states
/// of K expert demos `e [K, T, S]`, with step weights `w [T]` (RMS over features; an epsilon keeps
/// the square root's gradient finite at zero distance). Each direction's weighted mean over steps
/// takes its minimum over the demos, then the mean over the batch (with one demo: the paper's
/// loss; with several: the official multi-demo variant).
pub fn chamfer(x: &Tensor, e: &Tensor, w: &Tensor) -> Tensor {
    let (k, t, s) = (e.size()[0], e.size()[1], e.size()[2]);
    let b = x.size()[0];
    // [B, K, T_agent, T_expert]
    let d =
        ((x.view([b, 1, t, 1, s]) - e.view([1, k, 1, t, s])).square().mean_dim(-1, false, Kind::Float) + 1e-12).sqrt();
    let w = w.view([1, 1, t]);
    let to_expert = (d.amin(-1, false) * &w).mean_dim(-1, false, Kind::Float).amin(1, false).mean(Kind::Float);
    let to_agent = (d.amin(2, false) * &w).mean_dim(-1, false, Kind::Float).amin(1, false).mean(Kind::Float);
    to_expert + to_agent
}

impl Ild {
    /// The observation of `state`, normalised as the current policy sees it.
    fn policy_input(&self, state: &Tensor) -> Tensor {
        self.normalized(&self.physics.observe(state))
    }

    fn normalized(&self, obs: &Tensor) -> Tensor {
        match &self.obs_scale {
            Some(scale) => scale.apply(obs),
            None => obs.shallow_clone(),
        }
    }

    /// The observation normalisers of the current and best statistics (none if disabled).
    fn refresh_scales(&mut self) {
        if self.config.normalize_observations {
            self.obs_scale = Some(brax_scale(&self.state.obs_stats, Kind::Float, self.device));
            self.best_obs_scale = Some(brax_scale(&self.state.best_obs_stats, Kind::Float, self.device));
        }
    }

    /// Adds observations `[N, O]` (counted `weight` times each) to the policy's statistics.
    fn update_obs_stats(&mut self, obs: &Tensor, weight: f64) {
        if self.config.normalize_observations {
            update_stats(&mut self.state.obs_stats, obs, weight);
            self.obs_scale = Some(brax_scale(&self.state.obs_stats, Kind::Float, self.device));
        }
    }

    /// One BC step; returns its loss.
    fn bc_step(&mut self) -> Result<f64> {
        let Some((obs, actions)) = &self.expert_pairs else { return Ok(f64::NAN) };
        let (obs, actions) = (obs.shallow_clone(), actions.shallow_clone());
        // As the official BC loss: the normaliser takes the demo (once per env) first.
        self.update_obs_stats(&obs, self.config.run.num_envs as f64);
        self.bc_adam.zero_grad();
        let predicted = self.policy.act(&self.normalized(&obs), false);
        let loss = (predicted - &actions).square().sum_dim_intlist(-1, false, Kind::Float).mean(Kind::Float);
        loss.backward();
        self.finite_grads();
        self.bc_adam.clip_grad_norm(self.config.max_grad_norm);
        self.bc_adam.step(self.config.learning_rate);
        Ok(loss.double_value(&[]))
    }

    fn finite_grads(&self) {
        tch::no_grad(|| {
            for p in self.policy.vs.trainable_variables() {
                let mut g = p.grad();
                if g.defined() {
                    let _ = g.nan_to_num_(0.0, 0.0, 0.0);
                }
            }
        });
    }

    /// One ILD or APG gradient step through a differentiable rollout; returns (loss, grad norm).
    fn rollout_step(&mut self) -> Result<(f64, f64)> {
        self.adam.zero_grad();
        let loss = self.rollout_gradients()?;
        self.finite_grads();
        let grad_norm = self.adam.clip_grad_norm(self.config.max_grad_norm);
        self.adam.step(self.config.learning_rate);
        Ok((loss, grad_norm))
    }

    /// A differentiable rollout and its backward pass: accumulates the parameter gradients of
    /// the loss (with the per-step normalisation and truncation) and returns the loss.
    fn rollout_gradients(&mut self) -> Result<f64> {
        let horizon = self.config.horizon;
        let batch = self.config.run.num_envs as i64;
        let apg = self.config.algo == Objective::Apg;
        // Forward: every step's graph kept between leaf tensors.
        let mut leaves = Vec::with_capacity(horizon);
        let mut actions = Vec::with_capacity(horizon);
        let mut action_leaves = Vec::with_capacity(horizon);
        let mut nexts = Vec::with_capacity(horizon);
        let mut rewards = Vec::with_capacity(horizon);
        let mut observations = Vec::with_capacity(horizon);
        let mut state = self.starts.shallow_clone();
        for _ in 0..horizon {
            let leaf = state.detach().set_requires_grad(true);
            let obs = self.physics.observe(&leaf);
            let action = self.policy.act(&self.normalized(&obs), !self.sample);
            observations.push(obs.detach());
            let action_leaf = action.detach().set_requires_grad(true);
            let next = self.physics.step(&leaf, &action_leaf);
            if apg {
                rewards.push(self.physics.reward(&leaf, &action_leaf));
            }
            state = next.shallow_clone();
            leaves.push(leaf);
            actions.push(action);
            action_leaves.push(action_leaf);
            nexts.push(next);
        }
        // The rollout's observations join the policy's statistics after it (the official loss).
        let o = observations[0].size()[1];
        self.update_obs_stats(&Tensor::stack(&observations, 1).view([-1, o]), 1.0);
        // The loss and its cotangent for every recorded state.
        let (loss_value, state_grads) = if apg {
            let total = Tensor::stack(&rewards, 1).detach().sum(Kind::Float).double_value(&[]);
            (-total / (batch as f64 * horizon as f64), None)
        } else {
            let detached: Vec<Tensor> = leaves.iter().map(Tensor::detach).collect();
            let x = Tensor::stack(&detached, 1).set_requires_grad(true);
            let s = x.size()[2];
            update_stats(&mut self.state.state_stats, &x.view([-1, s]), 1.0);
            let expert = self.expert_states.as_ref().ok_or_else(|| AgentError::Config("ild has no demo".into()))?;
            let k = expert.size()[0];
            let ts = Tensor::arange(horizon as i64, (Kind::Float, self.device));
            let w = Tensor::full([horizon as i64], self.config.reverse_discount, (Kind::Float, self.device))
                .pow(&(-ts + horizon as f64));
            let states = brax_scale(&self.state.state_stats, Kind::Float, self.device);
            let norm_x = states.apply(&x.view([-1, s])).view([batch, horizon as i64, s]);
            let norm_e = states.apply(&expert.view([-1, s])).view([k, horizon as i64, s]);
            let loss = chamfer(&norm_x, &norm_e, &w).tanh();
            let grads = Tensor::run_backward(&[&loss], &[&x], false, false);
            (loss.double_value(&[]), grads.into_iter().next())
        };
        // Backward, step by step in reverse, normalising the cotangents between steps.
        let normalize = self.config.normalize_step_grads;
        let scale = 1.0 / (batch as f64 * horizon as f64);
        for t in (0..horizon).rev() {
            let mut scalar: Option<Tensor> = None;
            if apg {
                scalar = Some(rewards[t].sum(Kind::Float) * -scale);
            }
            if t + 1 < horizon && (t + 1) % self.config.trunc_len != 0 {
                let mut g = leaves[t + 1].grad();
                if let Some(direct) = &state_grads {
                    let d = direct.select(1, (t + 1) as i64);
                    g = if g.defined() { g + d } else { d };
                }
                if g.defined() {
                    let g = if normalize { norm_grad(&g) } else { g.nan_to_num(0.0, 0.0, 0.0) };
                    let term = (&nexts[t] * g).sum(Kind::Float);
                    scalar = Some(match scalar {
                        Some(s) => s + term,
                        None => term,
                    });
                }
            }
            let Some(scalar) = scalar else { continue };
            scalar.backward();
            let ga = action_leaves[t].grad();
            if ga.defined() {
                let ga = if normalize { norm_grad(&ga) } else { ga.nan_to_num(0.0, 0.0, 0.0) };
                (&actions[t] * ga).sum(Kind::Float).backward();
            }
        }
        Ok(loss_value)
    }

    /// The mean return of the deterministic current policy from the fixed evaluation starts.
    fn evaluate(&self) -> f64 {
        tch::no_grad(|| {
            let mut state = self.eval_starts.shallow_clone();
            let mut total = Tensor::zeros([state.size()[0]], (Kind::Float, self.device));
            for _ in 0..self.config.horizon {
                let action = self.policy.act(&self.policy_input(&state), true);
                total += self.physics.reward(&state, &action);
                state = self.physics.step(&state, &action);
            }
            total.mean(Kind::Float).double_value(&[])
        })
    }

    /// `horizon` steps of the current policy in the ordinary env (the trainer's episode statistics:
    /// one finished episode per iteration when `horizon` is the env's 128 steps).
    fn play_episode(&self, envs: &mut Envs) -> Result<()> {
        for _ in 0..self.config.horizon {
            let obs = envs.observe().to_kind(Kind::Float);
            let action = tch::no_grad(|| self.policy.act(&self.normalized(&obs), true));
            envs.step(&action)?;
        }
        Ok(())
    }
}

impl Algorithm for Ild {
    type Config = IldConfig;

    // Gradient steps, whatever the env steps of its rollouts.
    const RUN_LENGTH: &'static str = "iterations";

    // The differentiable envs are registered on demand; BC's iterations are BC steps (one each
    // unless `bc_steps` is set), and APG takes none.
    fn defaults(algo: &str) -> Result<IldConfig> {
        keel_envs::diff::register()?;
        let mut base = IldConfig::default();
        match algo {
            "bc" => base.bc_steps = 1,
            "apg" => base.bc_steps = 0,
            _ => {}
        }
        Ok(base)
    }

    fn new(config: &IldConfig, spec: &EnvSpec, input_width: usize, device: Device) -> Result<Self> {
        let physics = dynamics(&config.run.env_id, &config.run.env_config)?;
        let actions = physics.action_len() as i64;
        let params = mlp_parameters(input_width, &config.hidden_sizes, 2 * actions as usize);
        // Parameters (policy, best, gradients, two Adams' moments) plus the rollout's graph.
        let graph = config.run.num_envs as u128
            * config.horizon as u128
            * (config.hidden_sizes.iter().sum::<i64>().max(1) as u128 * 3 + 64);
        let distances = config.run.num_envs as u128 * config.demo_count as u128 * (config.horizon as u128).pow(2) * 3;
        crate::config::check_memory("num_envs", config.run.num_envs as u128, 4 * (7 * params + graph + distances))?;
        let policy = Policy::new(device, input_width as i64, &config.hidden_sizes, actions);
        let mut best = Policy::new(device, input_width as i64, &config.hidden_sizes, actions);
        best.vs.freeze();
        best.vs.copy(&policy.vs).map_err(|e| AgentError::Config(format!("copying the policy: {e}")))?;
        let adam = Adam::over("adam", policy.vs.trainable_variables(), 1e-8);
        let bc_adam = Adam::over("bc_adam", policy.vs.trainable_variables(), 1e-8);
        let (expert_states, expert_pairs) = if config.algo == Objective::Apg {
            (None, None)
        } else {
            let (states, obs, acts) = load_demo(config, spec, physics.as_ref())?;
            (Some(states.to_device(device)), Some((obs.to_device(device), acts.to_device(device))))
        };
        let starts = physics.start(config.run.num_envs as i64, device);
        let eval_starts = physics.start(config.eval_envs as i64, device);
        let physics_state_len = physics.state_len();
        let mut ild = Self {
            config: config.clone(),
            physics,
            policy,
            best,
            adam,
            bc_adam,
            expert_states,
            expert_pairs,
            starts,
            eval_starts,
            device,
            state: IldState {
                state_stats: RunningMeanStd::empty(physics_state_len),
                obs_stats: RunningMeanStd::empty(input_width),
                best_obs_stats: RunningMeanStd::empty(input_width),
                best_return: None,
                warmed_up: false,
            },
            obs_scale: None,
            best_obs_scale: None,
            sample: true,
        };
        ild.refresh_scales();
        Ok(ild)
    }

    fn metrics(&self) -> &'static [Metric] {
        METRICS
    }

    fn iterate(&mut self, envs: &mut Envs, schedule: Schedule) -> Result<Vec<f64>> {
        let mut bc_loss = f64::NAN;
        let (loss, grad_norm) = match self.config.algo {
            Objective::Bc => {
                for _ in 0..self.config.bc_steps {
                    bc_loss = self.bc_step()?;
                }
                (bc_loss, f64::NAN)
            }
            Objective::Ild | Objective::Apg => {
                if !self.state.warmed_up && self.config.algo == Objective::Ild {
                    for _ in 0..self.config.bc_steps {
                        bc_loss = self.bc_step()?;
                    }
                    self.state.warmed_up = true;
                }
                self.rollout_step()?
            }
        };
        if !loss.is_finite() {
            return Err(AgentError::Diverged { iteration: schedule.iteration, what: format!("loss is {loss}") });
        }
        let eval_return = self.evaluate();
        if self.state.best_return.is_none_or(|b| eval_return > b) {
            self.state.best_return = Some(eval_return);
            self.best.vs.copy(&self.policy.vs).map_err(|e| AgentError::Config(format!("copying the policy: {e}")))?;
            self.state.best_obs_stats = self.state.obs_stats.clone();
            self.refresh_scales();
        }
        self.play_episode(envs)?;
        Ok(vec![loss, bc_loss, grad_norm, eval_return, self.state.best_return.unwrap_or(f64::NAN)])
    }

    fn act(&self, input: &Tensor, deterministic: bool) -> Tensor {
        let input = input.to_kind(Kind::Float);
        match &self.best_obs_scale {
            Some(scale) => self.best.act(&scale.apply(&input), deterministic),
            None => self.best.act(&input, deterministic),
        }
    }

    fn parameters(&self) -> Vec<(String, Tensor)> {
        checkpoint::variables(&self.policy.vs)
    }

    fn tensors(&self) -> Vec<(String, Tensor)> {
        let mut tensors = checkpoint::variables(&self.policy.vs);
        tensors.extend(checkpoint::variables(&self.best.vs).into_iter().map(|(n, t)| (format!("best.{n}"), t)));
        tensors.extend(self.adam.state());
        tensors.extend(self.bc_adam.state());
        tensors.push(("starts".into(), self.starts.shallow_clone()));
        tensors.push(("eval_starts".into(), self.eval_starts.shallow_clone()));
        tensors
    }

    fn load_tensors(&mut self, saved: &[(String, Tensor)]) -> Result<()> {
        checkpoint::load_variables(&self.policy.vs, saved)?;
        let best: Vec<(String, Tensor)> = saved
            .iter()
            .filter_map(|(n, t)| n.strip_prefix("best.").map(|n| (n.to_string(), t.shallow_clone())))
            .collect();
        checkpoint::load_variables(&self.best.vs, &best)?;
        self.adam.load_state(saved)?;
        self.bc_adam.load_state(saved)?;
        for (name, slot) in [("starts", &mut self.starts), ("eval_starts", &mut self.eval_starts)] {
            let t = saved
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, t)| t)
                .ok_or_else(|| AgentError::Checkpoint(format!("it lacks `{name}`")))?;
            if t.size() != slot.size() {
                return Err(AgentError::Checkpoint(format!(
                    "`{name}` is {:?}, this config needs {:?}",
                    t.size(),
                    slot.size()
                )));
            }
            *slot = t.to_kind(Kind::Float).to_device(self.device);
        }
        Ok(())
    }

    fn state(&self) -> Result<Value> {
        serde_json::to_value(&self.state).map_err(|e| AgentError::Checkpoint(e.to_string()))
    }

    fn load_state(&mut self, state: &Value) -> Result<()> {
        self.state =
            serde_json::from_value(state.clone()).map_err(|e| AgentError::Checkpoint(format!("ILD state: {e}")))?;
        self.refresh_scales();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::Run;

    fn config(env: &str, algo: Objective) -> IldConfig {
        {
            let mut c = IldConfig {
                algo,
                horizon: 24,
                hidden_sizes: vec![16, 16],
                eval_envs: 4,
                iterations: 2,
                bc_steps: 3,
                ..IldConfig::default()
            };
            c.run.env_id = env.into();
            c.run.num_envs = 8;
            c
        }
    }

    fn learner(config: &IldConfig) -> Ild {
        keel_envs::diff::register().unwrap_or_else(|e| panic!("{e}"));
        crate::threads::configure();
        let env = keel_envs::make(&config.run.env_id, &Map::new()).unwrap_or_else(|e| panic!("{e}"));
        let spec = env.spec().clone();
        Ild::new(config, &spec, spec.obs_len(), Device::Cpu).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A Pendulum demo of two 24-step episodes, all zeros but `value` at episode 1, step 5,
    /// element 1 of the tensor `name`.
    fn demo_with(name: &str, value: f64, path: &std::path::Path) {
        let zeros = |shape: &[i64], kind: Kind| Tensor::zeros(shape, (kind, Device::Cpu));
        let mut demo = Demo {
            env_id: Pendulum::ID.into(),
            states: Some(zeros(&[2, 24, 2], Kind::Double)),
            observations: zeros(&[2, 24, 3], Kind::Float),
            actions: zeros(&[2, 24, 1], Kind::Float),
            rewards: zeros(&[2, 24], Kind::Float),
        };
        let target = match name {
            "states" => demo.states.as_mut().unwrap_or_else(|| panic!("no states")),
            "observations" => &mut demo.observations,
            _ => &mut demo.actions,
        };
        let _ = target.get(1).get(5).get(1.min(target.size()[2] - 1)).fill_(value);
        demo.write(path).unwrap_or_else(|e| panic!("{e}"));
    }

    #[test]
    fn a_demo_with_absurd_or_non_finite_values_is_refused_naming_the_place() {
        keel_envs::diff::register().unwrap_or_else(|e| panic!("{e}"));
        let dir = temp_dir("absurd-demo");
        let spec = keel_envs::make(Pendulum::ID, &Map::new()).unwrap_or_else(|e| panic!("{e}")).spec().clone();
        let cases = [
            ("states", 1e30, "`states` of episode 1, step 5, element 1 = 1e30 is beyond 1e6"),
            ("states", f64::NAN, "`states` of episode 1, step 5, element 1 = NaN is not finite"),
            ("observations", f64::INFINITY, "`observations` of episode 1, step 5, element 1 = inf is not finite"),
            ("actions", f64::NAN, "`actions` of episode 1, step 5, element 0 = NaN is not finite"),
        ];
        for (name, value, needle) in cases {
            let path = dir.join("demo.safetensors");
            demo_with(name, value, &path);
            let mut c = config(Pendulum::ID, Objective::Ild);
            c.demo = path.display().to_string();
            c.demo_count = 2;
            let err = Ild::new(&c, &spec, spec.obs_len(), Device::Cpu).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(err.contains(needle) && err.contains("demo.safetensors"), "{name} = {value}: {err}");
        }
        // The same demo with sane values loads.
        let path = dir.join("demo.safetensors");
        demo_with("states", 0.5, &path);
        let mut c = config(Pendulum::ID, Objective::Ild);
        c.demo = path.display().to_string();
        c.demo_count = 2;
        assert!(Ild::new(&c, &spec, spec.obs_len(), Device::Cpu).is_ok());
    }

    fn grads(ild: &Ild) -> Vec<Tensor> {
        ild.policy.vs.trainable_variables().iter().map(|p| p.grad().copy()).collect()
    }

    #[test]
    fn the_stepwise_backward_pass_is_autograd_when_nothing_is_cut_or_normalised() {
        let mut c = config(Pendulum::ID, Objective::Apg);
        c.trunc_len = c.horizon;
        c.normalize_step_grads = false;
        // The observation statistics move after every rollout; they are constant within one.
        c.normalize_observations = false;
        let mut ild = learner(&c);
        // The policy's mode: libtorch's generator is shared with tests running alongside.
        ild.sample = false;
        let _generator = crate::threads::torch_generator();
        tch::manual_seed(5);
        ild.adam.zero_grad();
        ild.rollout_gradients().unwrap_or_else(|e| panic!("{e}"));
        let stepwise = grads(&ild);
        tch::manual_seed(5);
        ild.adam.zero_grad();
        let mut state = ild.starts.shallow_clone();
        let mut total = Tensor::zeros([], (Kind::Float, Device::Cpu));
        for _ in 0..c.horizon {
            let action = ild.policy.act(&ild.policy_input(&state), true);
            total = total + ild.physics.reward(&state, &action).sum(Kind::Float);
            state = ild.physics.step(&state, &action);
        }
        (total * (-1.0 / (c.run.num_envs * c.horizon) as f64)).backward();
        let direct = grads(&ild);
        for (a, b) in stepwise.iter().zip(&direct) {
            let err = (a - b).norm().double_value(&[]) / (b.norm().double_value(&[]) + 1e-12);
            assert!(err < 1e-4, "relative difference {err}");
        }
        // Truncation cuts gradient paths, so it changes the gradient.
        ild.config.trunc_len = 4;
        tch::manual_seed(5);
        ild.adam.zero_grad();
        ild.rollout_gradients().unwrap_or_else(|e| panic!("{e}"));
        let cut = grads(&ild);
        let change: f64 = cut.iter().zip(&direct).map(|(a, b)| (a - b).norm().double_value(&[])).sum();
        assert!(change > 1e-6, "truncation changed nothing");
    }

    #[test]
    fn norm_grad_scales_only_large_cotangents_and_clears_nans() {
        let small = Tensor::from_slice(&[0.3f32, 0.4]);
        assert_eq!(Vec::<f32>::try_from(norm_grad(&small)).unwrap_or_default(), vec![0.3, 0.4]);
        let large = Tensor::from_slice(&[3.0f32, 4.0, f32::NAN]);
        let v = Vec::<f32>::try_from(norm_grad(&large)).unwrap_or_default();
        assert!((v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6 && v[2] == 0.0, "{v:?}");
    }

    #[test]
    fn chamfer_is_near_zero_on_the_demo_and_has_finite_gradients_there() {
        let e = Tensor::from_slice(&[0.0f32, 1.0, 2.0, 3.0, 4.0, 5.0]).view([1, 3, 2]);
        let x = e.repeat([2, 1, 1]).set_requires_grad(true);
        let w = Tensor::ones([3], (Kind::Float, Device::Cpu));
        let d = chamfer(&x, &e, &w);
        assert!(d.double_value(&[]) < 1e-5);
        d.backward();
        assert!(x.grad().isfinite().all().int64_value(&[]) == 1);
        // Reversed in time, the states are still each other's nearest: Chamfer ignores order.
        let reversed = e.flip([1]);
        assert!(chamfer(&reversed, &e, &w).double_value(&[]) < 1e-5);
        let shifted = &reversed + 1.0;
        assert!(chamfer(&shifted, &e, &w).double_value(&[]) > 0.1);
    }

    #[test]
    fn multi_demo_chamfer_takes_the_best_matching_demo_per_direction() {
        let near = Tensor::from_slice(&[0.0f32, 1.0, 2.0, 3.0, 4.0, 5.0]).view([1, 3, 2]);
        let far = &near + 10.0;
        let w = Tensor::ones([3], (Kind::Float, Device::Cpu));
        let x = near.shallow_clone();
        // The rollout is demo 1: the minimum over demos ignores demo 0.
        let both = Tensor::cat(&[&far, &near], 0);
        assert!(chamfer(&x, &both, &w).double_value(&[]) < 1e-5);
        // One demo: the single-demo loss, unchanged by how the demos are stacked.
        let single = chamfer(&x, &far, &w).double_value(&[]);
        // Nearest RMS distances 10, 8, 6 each way.
        assert!((single - 16.0).abs() < 1e-4, "{single}");
        // Every rollout picks its own demo: one on each gives zero for both.
        let xs = Tensor::cat(&[&near, &far], 0);
        assert!(chamfer(&xs, &both, &w).double_value(&[]) < 1e-5);
    }

    #[test]
    fn running_stats_follow_braxs_normaliser() {
        let mut stats = RunningMeanStd::empty(2);
        // No data yet: mean 0, variance 1 (the prior), so only the ±5 clip acts.
        let x = Tensor::from_slice(&[3.0f32, -7.0]).view([1, 2]);
        let scaled = brax_scale(&stats, Kind::Float, Device::Cpu).apply(&x).view([-1]);
        assert_eq!(Vec::<f32>::try_from(scaled).unwrap_or_default(), vec![3.0, -5.0]);
        let rows = Tensor::from_slice(&[1.0f64, 10.0, 3.0, 10.0, 5.0, 10.0, 7.0, 10.0]).view([4, 2]);
        update_stats(&mut stats, &rows.narrow(0, 0, 2), 1.0);
        update_stats(&mut stats, &rows.narrow(0, 2, 2), 1.0);
        // mean 4 and 10; M2 = 20 and 0; variance (1 + M2) / (n + 1), floored at 1e-6.
        let m2 = stats.var[0] * stats.count;
        assert!((stats.mean[0] - 4.0).abs() < 1e-12 && (m2 - 20.0).abs() < 1e-9, "{stats:?}");
        let scale = brax_scale(&stats, Kind::Double, Device::Cpu);
        let probe = Tensor::from_slice(&[4.0 + 21f64.sqrt() / 5f64.sqrt(), 10.0]).view([1, 2]);
        let y = Vec::<f64>::try_from(scale.apply(&probe).view([-1])).unwrap_or_default();
        assert!((y[0] - 1.0).abs() < 1e-9 && y[1].abs() < 1e-9, "{y:?}");
        // A weight counts every row that many times: the same mean and variance as repeating them.
        let mut weighted = RunningMeanStd::empty(2);
        update_stats(&mut weighted, &rows, 3.0);
        let mut repeated = RunningMeanStd::empty(2);
        update_stats(&mut repeated, &rows.repeat([3, 1]), 1.0);
        assert!((weighted.count - repeated.count).abs() < 1e-12 && (weighted.var[0] - repeated.var[0]).abs() < 1e-9);
    }

    fn train(config: &IldConfig, iterations: u64, dir: &std::path::Path) -> Box<dyn Run> {
        let mut overrides: Vec<(String, Value)> = vec![
            ("env_id".into(), config.run.env_id.clone().into()),
            ("num_envs".into(), config.run.num_envs.into()),
            ("horizon".into(), config.horizon.into()),
            ("hidden_sizes".into(), serde_json::json!(config.hidden_sizes)),
            ("eval_envs".into(), config.eval_envs.into()),
            ("iterations".into(), iterations.into()),
            ("demo_count".into(), config.demo_count.into()),
        ];
        if !config.demo.is_empty() {
            overrides.push(("demo".into(), config.demo.clone().into()));
        }
        let registration = crate::registry::lookup(config.algo.name()).unwrap_or_else(|e| panic!("{e}"));
        let mut run = registration.build(&overrides).unwrap_or_else(|e| panic!("{e}"));
        for _ in 0..iterations {
            let stats = run.iteration_step().unwrap_or_else(|e| panic!("{e}"));
            assert!(stats.metric("eval_return").is_some_and(f64::is_finite));
            // One ordinary episode of `horizon` steps per iteration; the env's own episodes last 128.
            assert!(stats.episodes <= 1, "{} episodes in one iteration", stats.episodes);
            assert_eq!(stats.global_step, stats.iteration * config.horizon as u64);
        }
        run.save_checkpoint(dir).unwrap_or_else(|e| panic!("{e}"));
        run
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("keel-ild-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        dir
    }

    fn record(run: &mut Box<dyn Run>, steps: usize, path: &std::path::Path) {
        let options = crate::recorder::DemoOptions { episodes: 2, steps, seed: 0, deterministic: true };
        let demo = run.demonstrate(&options).unwrap_or_else(|e| panic!("{e}"));
        demo.write(path).unwrap_or_else(|e| panic!("{e}"));
    }

    #[test]
    fn expert_demo_ild_bc_and_resume_end_to_end() {
        let dir = temp_dir("e2e");
        let mut expert = train(&config(Pendulum::ID, Objective::Apg), 2, &dir.join("apg"));
        let demo_path = dir.join("demo.safetensors");
        record(&mut expert, 24, &demo_path);
        let demo = Demo::read(&demo_path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(demo.env_id, Pendulum::ID);
        assert_eq!(demo.states.as_ref().map(Tensor::size), Some(vec![2, 24, 2]));
        assert_eq!(demo.observations.size(), vec![2, 24, 3]);
        assert_eq!(demo.actions.size(), vec![2, 24, 1]);
        let mut c = config(Pendulum::ID, Objective::Ild);
        c.demo = demo_path.display().to_string();
        let mut ild = train(&c, 2, &dir.join("ild"));
        // Resuming restores the learner's tensors and state.
        let mut again = crate::registry::lookup("ild")
            .and_then(|r| {
                r.build(&[
                    ("env_id".into(), Pendulum::ID.into()),
                    ("num_envs".into(), 8.into()),
                    ("horizon".into(), 24.into()),
                    ("hidden_sizes".into(), serde_json::json!([16, 16])),
                    ("eval_envs".into(), 4.into()),
                    ("iterations".into(), 2.into()),
                    ("demo".into(), c.demo.clone().into()),
                ])
            })
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(again.load_checkpoint(&dir.join("ild")).unwrap_or_else(|e| panic!("{e}")), 2);
        let options = crate::eval::EvalOptions { episodes: 1, deterministic: true, seed: 4, max_episode_steps: None };
        let a = ild.evaluate(&options).unwrap_or_else(|e| panic!("{e}"));
        let b = again.evaluate(&options).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a.returns(), b.returns());
        let mut bc = config(Pendulum::ID, Objective::Bc);
        bc.demo = c.demo.clone();
        train(&bc, 2, &dir.join("bc"));
        // Both episodes of the demo at once (the multi-demo variant).
        let mut multi = c.clone();
        multi.demo_count = 2;
        train(&multi, 1, &dir.join("multi"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn build_error(overrides: &[(&str, Value)]) -> String {
        let overrides: Vec<(String, Value)> = overrides.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        crate::registry::lookup(
            overrides.iter().find(|(k, _)| k == "algo").and_then(|(_, v)| v.as_str()).unwrap_or("ild"),
        )
        .and_then(|r| r.build(&overrides))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default()
    }

    #[test]
    fn bad_demos_and_horizons_are_clear_errors() {
        let dir = temp_dir("bad");
        let mut cartpole = train(&config(CartPole::ID, Objective::Apg), 1, &dir.join("apg"));
        let demo = dir.join("cartpole.safetensors");
        record(&mut cartpole, 24, &demo);
        let path = Value::from(demo.display().to_string());
        let small =
            [("num_envs", Value::from(4)), ("hidden_sizes", serde_json::json!([8])), ("eval_envs", Value::from(2))];
        // A cart-pole demo (4 state values) for the pendulum (2).
        let mut o: Vec<(&str, Value)> = small.to_vec();
        o.extend([("env_id", Value::from(Pendulum::ID)), ("demo", path.clone()), ("horizon", Value::from(24))]);
        let err = build_error(&o);
        assert!(
            err.contains("another env") && err.contains("keel/DiffCartPole-v0") && err.contains("4 values"),
            "{err}"
        );
        // A horizon longer than the demo.
        let mut o: Vec<(&str, Value)> = small.to_vec();
        o.extend([("env_id", Value::from(CartPole::ID)), ("demo", path.clone()), ("horizon", Value::from(25))]);
        let err = build_error(&o);
        assert!(err.contains("`horizon`") && err.contains("longer than the demo (24 steps)"), "{err}");
        // More demos than the file holds (it has 2 episodes).
        let mut o: Vec<(&str, Value)> = small.to_vec();
        o.extend([
            ("env_id", Value::from(CartPole::ID)),
            ("demo", path.clone()),
            ("horizon", Value::from(24)),
            ("demo_count", Value::from(3)),
        ]);
        let err = build_error(&o);
        assert!(err.contains("`demo_count`") && err.contains("holds 2 episode(s)"), "{err}");
        // The same demo at its own length is fine.
        let mut o: Vec<(&str, Value)> = small.to_vec();
        o.extend([("env_id", Value::from(CartPole::ID)), ("demo", path.clone()), ("horizon", Value::from(24))]);
        assert_eq!(build_error(&o), "");
        // No demo, a missing file, a file that is not a demo, an env without tensor dynamics.
        let err = build_error(&[("algo", Value::from("bc")), ("env_id", Value::from(CartPole::ID))]);
        assert!(err.contains("`demo`"), "{err}");
        let err = build_error(&[
            ("env_id", Value::from(CartPole::ID)),
            ("demo", Value::from("/nonexistent/demo.safetensors")),
        ]);
        assert!(err.contains("no such file"), "{err}");
        let junk = dir.join("junk.safetensors");
        std::fs::write(&junk, b"not a tensor file").unwrap_or_else(|e| panic!("{e}"));
        let err =
            build_error(&[("env_id", Value::from(CartPole::ID)), ("demo", Value::from(junk.display().to_string()))]);
        assert!(err.contains("not a safetensors file"), "{err}");
        let err = build_error(&[("algo", Value::from("apg")), ("env_id", Value::from("keel/CartPole-v1"))]);
        assert!(err.contains("no differentiable dynamics"), "{err}");
        let err = build_error(&[("algo", Value::from("apg")), ("trunc_len", Value::from(0))]);
        assert!(err.contains("`trunc_len`"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

//! # DQN
//!
//! Deep Q-learning as CleanRL's `dqn.py` does it (Mnih et al. 2015): ε-greedy actions with ε
//! annealed linearly from `start_e` to `end_e` over `exploration_fraction` of the run, a replay
//! buffer of `buffer_size` transitions, one gradient step on a batch of `batch_size` every
//! `train_frequency` steps once `learning_starts` steps are done, and a target network moved
//! towards the online one (`target ← τ·online + (1 − τ)·target`) every
//! `target_network_frequency` steps (τ = 1: a hard copy every k steps). Options: double Q
//! (the online network picks the next action, the target network values it) and the Huber loss
//! instead of the squared error. Defaults are `dqn.py`'s for classic control; the network is
//! its `120 → 84` ReLU MLP with PyTorch's default initialisation.
//!
//! As in `dqn.py` (whose buffer ignores time-limit cuts only for the bootstrap), a transition
//! stores the terminal observation as its next observation when the episode ended, and only
//! `terminated` stops the bootstrap: a time-limit cut still bootstraps.
//!
//! The replay buffer lives on the training device, allocated once at full size, and goes into
//! checkpoints with the optimiser state and both networks, so a resumed run continues exactly.
//! Steps count vector steps (CleanRL's `global_step`, equal to env steps with one env). One
//! iteration of the trainer core is `iteration_steps` vector steps.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tch::nn::Module;
use tch::{Device, Kind, Tensor, nn};

use keel_envs::config::{FieldError, Validate, positive};
use keel_envs::{EnvSpec, Space};

use crate::adam::Adam;
use crate::algorithm::{Algorithm, Metric, Schedule};
use crate::checkpoint;
use crate::collect::Envs;
use crate::config::{RunConfig, TrainConfig, check_memory, mlp_parameters};
use crate::error::{AgentError, Result};
use crate::policy::{Activation, Init, Mlp};

/// The TD loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QLoss {
    /// Squared error (`dqn.py`).
    Mse,
    /// Huber (smooth L1, threshold 1), as the Nature DQN's clipped error.
    Huber,
}

/// Everything a DQN run needs; defaults are CleanRL's `dqn.py`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DqnConfig {
    /// The settings every run has (env, seed, envs, device, checkpoints, reset sampler,
    /// observation normalisation): top-level keys, see [`RunConfig`]. DQN's defaults: 1 env, a
    /// checkpoint every 50 iterations; Discrete actions.
    #[serde(flatten)]
    pub run: RunConfig,
    /// Always `dqn`; `keel train --algo` sets it.
    pub algo: String,
    /// Environment steps to train for, over all envs (default 500000).
    pub total_timesteps: u64,
    /// Adam learning rate (default 2.5e-4).
    pub learning_rate: f64,
    /// Replay buffer capacity in transitions (default 10000); at least `batch_size`.
    pub buffer_size: usize,
    /// Discount (default 0.99).
    pub gamma: f64,
    /// Target update rate τ in (0, 1] (default 1: a hard copy).
    pub tau: f64,
    /// Steps between target updates, k (default 500).
    pub target_network_frequency: u64,
    /// Transitions per gradient step (default 128).
    pub batch_size: usize,
    /// ε at the start (default 1).
    pub start_e: f64,
    /// ε at the end of the exploration phase and after (default 0.05).
    pub end_e: f64,
    /// Fraction of the run over which ε anneals (default 0.5).
    pub exploration_fraction: f64,
    /// Steps before learning starts (default 10000).
    pub learning_starts: u64,
    /// Steps between gradient steps (default 10).
    pub train_frequency: u64,
    /// Double Q-learning (default false).
    pub double_q: bool,
    /// `mse` (default) or `huber`.
    pub loss: QLoss,
    /// Global gradient-norm bound (default: none, as `dqn.py`).
    pub max_grad_norm: Option<f64>,
    /// Hidden layer widths of the Q-network (default [120, 84]).
    pub hidden_sizes: Vec<i64>,
    /// Vector steps per trainer iteration, i.e. per `metrics.csv` row (default 1000).
    pub iteration_steps: u64,
}

impl Default for DqnConfig {
    fn default() -> Self {
        Self {
            run: RunConfig { num_envs: 1, checkpoint_every: 50, ..RunConfig::default() },
            algo: "dqn".into(),
            total_timesteps: 500_000,
            learning_rate: 2.5e-4,
            buffer_size: 10_000,
            gamma: 0.99,
            tau: 1.0,
            target_network_frequency: 500,
            batch_size: 128,
            start_e: 1.0,
            end_e: 0.05,
            exploration_fraction: 0.5,
            learning_starts: 10_000,
            train_frequency: 10,
            double_q: false,
            loss: QLoss::Mse,
            max_grad_norm: None,
            hidden_sizes: vec![120, 84],
            iteration_steps: 1000,
        }
    }
}

impl Validate for DqnConfig {
    fn validate(&self) -> Result<(), FieldError> {
        if self.algo != "dqn" {
            return Err(FieldError::new("algo", format!("must be dqn for this config, got {:?}", self.algo)));
        }
        positive("learning_rate", self.learning_rate)?;
        for (field, v) in [("learning_rate", self.learning_rate), ("max_grad_norm", self.max_grad_norm.unwrap_or(1.0))]
        {
            crate::config::float32(field, v)?;
        }
        if self.batch_size == 0 {
            return Err(FieldError::new("batch_size", "must be at least 1"));
        }
        if self.buffer_size < self.batch_size {
            return Err(FieldError::new(
                "buffer_size",
                format!("{} is smaller than one batch (batch_size = {})", self.buffer_size, self.batch_size),
            ));
        }
        if self.target_network_frequency == 0 {
            return Err(FieldError::new("target_network_frequency", "(k) must be at least 1"));
        }
        if self.train_frequency == 0 {
            return Err(FieldError::new("train_frequency", "must be at least 1"));
        }
        if self.iteration_steps == 0 {
            return Err(FieldError::new("iteration_steps", "must be at least 1"));
        }
        if !(self.tau > 0.0 && self.tau <= 1.0) {
            return Err(FieldError::new("tau", format!("must lie in (0, 1], got {}", self.tau)));
        }
        for (field, v) in [("gamma", self.gamma), ("start_e", self.start_e), ("end_e", self.end_e)] {
            if !(0.0..=1.0).contains(&v) {
                return Err(FieldError::new(field, format!("must be in [0, 1], got {v}")));
            }
        }
        if !(self.exploration_fraction > 0.0 && self.exploration_fraction <= 1.0) {
            return Err(FieldError::new("exploration_fraction", "must lie in (0, 1]"));
        }
        if let Some(norm) = self.max_grad_norm {
            positive("max_grad_norm", norm)?;
        }
        if self.hidden_sizes.iter().any(|&h| h < 1) {
            return Err(FieldError::new("hidden_sizes", "widths must be at least 1"));
        }
        let per_iteration = self
            .iteration_steps
            .checked_mul(self.run.num_envs as u64)
            .ok_or_else(|| FieldError::new("iteration_steps", "iteration_steps * num_envs is beyond any run"))?;
        if self.total_timesteps < per_iteration {
            return Err(FieldError::new(
                "total_timesteps",
                "is smaller than one iteration (iteration_steps * num_envs)",
            ));
        }
        Ok(())
    }
}

impl TrainConfig for DqnConfig {
    fn run(&self) -> &RunConfig {
        &self.run
    }
    fn algo(&self) -> &'static str {
        "dqn"
    }
    fn steps_per_iteration(&self) -> u64 {
        self.iteration_steps * self.run.num_envs as u64
    }
    fn num_iterations(&self) -> u64 {
        self.total_timesteps / self.steps_per_iteration().max(1)
    }
}

impl DqnConfig {
    /// ε at vector step `t` (CleanRL's `linear_schedule`).
    pub fn epsilon(&self, t: u64) -> f64 {
        let duration = self.exploration_fraction * (self.total_timesteps / self.run.num_envs as u64) as f64;
        let slope = (self.end_e - self.start_e) / duration;
        (slope * t as f64 + self.start_e).max(self.end_e)
    }
}

/// CleanRL's `QNetwork`: a ReLU MLP with PyTorch's default initialisation.
fn q_network(path: &nn::Path, input: i64, hidden: &[i64], actions: i64) -> Mlp {
    Mlp::with(path, input, hidden, actions, Activation::Relu, Init::Torch)
}

/// The DQN trainer.
pub type DqnTrainer = crate::trainer::Trainer<Dqn>;

const METRICS: &[Metric] = &[
    Metric { name: "td_loss", tag: "losses/td_loss" },
    Metric { name: "q_values", tag: "losses/q_values" },
    Metric { name: "epsilon", tag: "charts/epsilon" },
];

/// Transitions in stored observation form, on the device, allocated once at full capacity.
struct Replay {
    obs: Tensor,
    next_obs: Tensor,
    actions: Tensor,
    rewards: Tensor,
    terminated: Tensor,
}

/// Where the replay buffer stands (checkpointed with its tensors).
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
struct ReplayState {
    /// Next row written.
    position: usize,
    /// Rows filled.
    size: usize,
}

const REPLAY: [&str; 5] = ["replay.obs", "replay.next_obs", "replay.actions", "replay.rewards", "replay.terminated"];

impl Replay {
    fn tensors(&self) -> [&Tensor; 5] {
        [&self.obs, &self.next_obs, &self.actions, &self.rewards, &self.terminated]
    }
}

/// DQN: the online and target Q-networks, Adam, and the replay buffer.
pub struct Dqn {
    config: DqnConfig,
    device: Device,
    actions: i64,
    online_vs: nn::VarStore,
    online: Mlp,
    target_vs: nn::VarStore,
    target: Mlp,
    adam: Adam,
    replay: Option<Replay>,
    cursor: ReplayState,
}

impl Algorithm for Dqn {
    type Config = DqnConfig;

    fn new(config: &DqnConfig, spec: &EnvSpec, input_width: usize, device: Device) -> Result<Self> {
        let Space::Discrete(d) = &spec.action_space else {
            return Err(AgentError::Config(format!(
                "training config: DQN needs Discrete actions; {} has {}",
                spec.id,
                spec.action_space.describe()
            )));
        };
        // Before anything is allocated: both networks (values, gradients, Adam's moments) and the
        // replay buffer (two observation rows of up to 8 bytes per element, action, reward, flag).
        let networks = 20 * mlp_parameters(input_width, &config.hidden_sizes, d.n.max(1) as usize);
        let widest = config.hidden_sizes.iter().copied().max().unwrap_or(0).max(0) as u128;
        check_memory("hidden_sizes", widest, networks)?;
        let replay = (config.buffer_size as u128) * (16 * input_width as u128 + 16);
        check_memory("buffer_size", config.buffer_size as u128, networks + replay)?;
        let width = input_width as i64;
        let online_vs = nn::VarStore::new(device);
        let online = q_network(&online_vs.root(), width, &config.hidden_sizes, d.n);
        let mut target_vs = nn::VarStore::new(device);
        let target = q_network(&target_vs.root(), width, &config.hidden_sizes, d.n);
        target_vs.copy(&online_vs)?;
        // Adam with PyTorch's default eps, as dqn.py.
        let adam = Adam::new(&online_vs, 1e-8);
        Ok(Self {
            config: config.clone(),
            device,
            actions: d.n,
            online_vs,
            online,
            target_vs,
            target,
            adam,
            replay: None,
            cursor: ReplayState::default(),
        })
    }

    fn metrics(&self) -> &'static [Metric] {
        METRICS
    }

    fn iterate(&mut self, envs: &mut Envs, schedule: Schedule) -> Result<Vec<f64>> {
        let cfg = self.config.clone();
        let n = envs.num_envs() as i64;
        let first = (schedule.iteration - 1) * cfg.iteration_steps;
        let (mut losses, mut q_values) = (Vec::new(), Vec::new());
        let mut epsilon = cfg.epsilon(first);
        for t in first..first + cfg.iteration_steps {
            epsilon = cfg.epsilon(t);
            let obs = envs.observe();
            let greedy = tch::no_grad(|| self.online.forward(&envs.encoder().input(&obs)).argmax(-1, false));
            let random = Tensor::randint(self.actions, [n], (Kind::Int64, self.device));
            let explore = Tensor::rand([n], (Kind::Float, self.device)).lt(epsilon);
            let actions = random.where_self(&explore, &greedy);
            let step = envs.step(&actions)?;
            // The next observation of an ended episode is its terminal one, not the reset's.
            let mut next = step.obs.copy();
            if !step.ended.is_empty() {
                let rows: Vec<i64> = step.ended.iter().map(|&i| i as i64).collect();
                let rows = Tensor::from_slice(&rows).to_device(self.device);
                let _ = tch::no_grad(|| next.index_copy_(0, &rows, &step.final_obs));
            }
            let rewards: Vec<f32> = step.reward.iter().map(|&r| r as f32).collect();
            let terminated: Vec<f32> = step.terminated.iter().map(|&d| f32::from(u8::from(d))).collect();
            self.add(&obs, &next, &actions, &rewards, &terminated);
            // dqn.py's schedule: learn and update the target only after learning_starts.
            if t + 1 > cfg.learning_starts {
                if (t + 1) % cfg.train_frequency == 0 {
                    let (loss, q) = self.learn(envs, schedule.iteration)?;
                    losses.push(loss);
                    q_values.push(q);
                }
                if (t + 1) % cfg.target_network_frequency == 0 {
                    self.update_target();
                }
            }
        }
        let mean = |v: &[f64]| if v.is_empty() { f64::NAN } else { v.iter().sum::<f64>() / v.len() as f64 };
        Ok(vec![mean(&losses), mean(&q_values), epsilon])
    }

    fn act(&self, input: &Tensor, deterministic: bool) -> Tensor {
        let greedy = self.online.forward(input).argmax(-1, false);
        if deterministic {
            return greedy;
        }
        let n = input.size()[0];
        let random = Tensor::randint(self.actions, [n], (Kind::Int64, input.device()));
        random.where_self(&Tensor::rand([n], (Kind::Float, input.device())).lt(self.config.end_e), &greedy)
    }

    fn parameters(&self) -> Vec<(String, Tensor)> {
        checkpoint::variables(&self.online_vs)
    }

    fn tensors(&self) -> Vec<(String, Tensor)> {
        let mut tensors = checkpoint::variables(&self.online_vs);
        tensors.extend(checkpoint::variables(&self.target_vs).into_iter().map(|(k, t)| (format!("target.{k}"), t)));
        tensors.extend(self.adam.state());
        if let Some(replay) = &self.replay {
            tensors.extend(REPLAY.iter().zip(replay.tensors()).map(|(name, t)| (name.to_string(), t.shallow_clone())));
        }
        tensors
    }

    fn load_tensors(&mut self, saved: &[(String, Tensor)]) -> Result<()> {
        let find = |name: &str| saved.iter().find(|(n, _)| n == name).map(|(_, t)| t.to_device(self.device));
        let replay = match REPLAY.map(find) {
            [Some(obs), Some(next_obs), Some(actions), Some(rewards), Some(terminated)] => {
                let rows = self.config.buffer_size as i64;
                if [&obs, &next_obs, &actions, &rewards, &terminated].iter().any(|t| t.size().first() != Some(&rows)) {
                    return Err(AgentError::Checkpoint(format!(
                        "the replay buffer does not hold {rows} rows (buffer_size)"
                    )));
                }
                Some(Replay { obs, next_obs, actions, rewards, terminated })
            }
            [None, None, None, None, None] => None,
            _ => return Err(AgentError::Checkpoint("the replay buffer is incomplete".into())),
        };
        let target: Vec<(String, Tensor)> = saved
            .iter()
            .filter_map(|(n, t)| n.strip_prefix("target.").map(|k| (k.to_string(), t.shallow_clone())))
            .collect();
        checkpoint::load_variables(&self.online_vs, saved)?;
        checkpoint::load_variables(&self.target_vs, &target)?;
        self.adam.load_state(saved)?;
        self.replay = replay;
        Ok(())
    }

    fn state(&self) -> Result<Value> {
        serde_json::to_value(self.cursor).map_err(|e| AgentError::Checkpoint(e.to_string()))
    }

    fn load_state(&mut self, state: &Value) -> Result<()> {
        let cursor: ReplayState =
            serde_json::from_value(state.clone()).map_err(|e| AgentError::Checkpoint(format!("DQN state: {e}")))?;
        let capacity = self.config.buffer_size;
        if cursor.size > capacity || cursor.position >= capacity.max(1) || (cursor.size > 0) != self.replay.is_some() {
            return Err(AgentError::Checkpoint(format!("DQN state: replay cursor {cursor:?} does not fit the buffer")));
        }
        self.cursor = cursor;
        Ok(())
    }
}

impl Dqn {
    /// Writes one row per env into the buffer, allocating it at the first call.
    fn add(&mut self, obs: &Tensor, next: &Tensor, actions: &Tensor, rewards: &[f32], terminated: &[f32]) {
        let capacity = self.config.buffer_size as i64;
        let device = self.device;
        let replay = self.replay.get_or_insert_with(|| {
            let row = |t: &Tensor| {
                let mut shape = t.size();
                shape[0] = capacity;
                Tensor::zeros(shape, (t.kind(), device))
            };
            Replay {
                obs: row(obs),
                next_obs: row(next),
                actions: Tensor::zeros([capacity], (Kind::Int64, device)),
                rewards: Tensor::zeros([capacity], (Kind::Float, device)),
                terminated: Tensor::zeros([capacity], (Kind::Float, device)),
            }
        });
        let n = rewards.len();
        let rows: Vec<i64> = (0..n).map(|i| ((self.cursor.position + i) % capacity as usize) as i64).collect();
        let rows = Tensor::from_slice(&rows).to_device(device);
        tch::no_grad(|| {
            let _ = replay.obs.index_copy_(0, &rows, obs);
            let _ = replay.next_obs.index_copy_(0, &rows, next);
            let _ = replay.actions.index_copy_(0, &rows, actions);
            let _ = replay.rewards.index_copy_(0, &rows, &Tensor::from_slice(rewards).to_device(device));
            let _ = replay.terminated.index_copy_(0, &rows, &Tensor::from_slice(terminated).to_device(device));
        });
        self.cursor.position = (self.cursor.position + n) % capacity as usize;
        self.cursor.size = (self.cursor.size + n).min(capacity as usize);
    }

    /// One gradient step on a uniform batch; returns the loss and the mean predicted Q.
    fn learn(&mut self, envs: &Envs, iteration: u64) -> Result<(f64, f64)> {
        let cfg = &self.config;
        let Some(replay) = &self.replay else { return Ok((f64::NAN, f64::NAN)) };
        let idx = Tensor::randint(self.cursor.size as i64, [cfg.batch_size as i64], (Kind::Int64, self.device));
        let encoder = envs.encoder();
        let obs = encoder.input(&replay.obs.index_select(0, &idx));
        let next = encoder.input(&replay.next_obs.index_select(0, &idx));
        let target = tch::no_grad(|| {
            let next_q = self.target.forward(&next);
            let next_value = if cfg.double_q {
                let choice = self.online.forward(&next).argmax(-1, true);
                next_q.gather(1, &choice, false).squeeze_dim(1)
            } else {
                next_q.amax(-1, false)
            };
            replay.rewards.index_select(0, &idx)
                + next_value * cfg.gamma * (1.0 - replay.terminated.index_select(0, &idx))
        });
        let actions = replay.actions.index_select(0, &idx).unsqueeze(1);
        let predicted = self.online.forward(&obs).gather(1, &actions, false).squeeze_dim(1);
        let loss = match cfg.loss {
            QLoss::Mse => predicted.mse_loss(&target, tch::Reduction::Mean),
            QLoss::Huber => predicted.smooth_l1_loss(&target, tch::Reduction::Mean, 1.0),
        };
        let loss_value = loss.double_value(&[]);
        if !loss_value.is_finite() {
            return Err(AgentError::Diverged { iteration, what: format!("TD loss = {loss_value}") });
        }
        self.adam.zero_grad();
        loss.backward();
        if let Some(norm) = cfg.max_grad_norm {
            self.adam.clip_grad_norm(norm);
        }
        self.adam.step(cfg.learning_rate);
        Ok((loss_value, predicted.mean(Kind::Float).double_value(&[])))
    }

    /// `target ← τ·online + (1 − τ)·target`.
    fn update_target(&mut self) {
        let tau = self.config.tau;
        let online = checkpoint::variables(&self.online_vs);
        tch::no_grad(|| {
            for ((_, mut t), (_, o)) in checkpoint::variables(&self.target_vs).into_iter().zip(online) {
                t.copy_(&(&o * tau + &t * (1.0 - tau)));
            }
        });
    }
}

/// Default configs per env, embedded so `keel train --algo dqn --env ID` works from anywhere.
const ENV_DEFAULTS: &[(&str, &str)] = &[("keel/CartPole-v1", include_str!("../../configs/dqn_cartpole.toml"))];

/// DQN's config file for `env_id` (TOML, from configs/), if it has one.
pub fn env_defaults(env_id: &str) -> Option<&'static str> {
    ENV_DEFAULTS.iter().find(|(id, _)| *id == env_id).map(|(_, text)| *text)
}

//! # PPO and D-PPO
//!
//! Proximal policy optimisation as CleanRL's `ppo.py` / `ppo_continuous_action.py` implement it
//! (Schulman et al. 2017; Huang et al., "The 37 implementation details of PPO", 2022): rollouts of
//! `num_steps` on `num_envs` envs stored on the training device, GAE, per-minibatch advantage
//! normalisation, clipped policy and value losses, an entropy bonus, global gradient-norm
//! clipping, Adam with eps 1e-5 and linear learning-rate annealing, orthogonal initialisation.
//! For Box actions: a state-independent log-std and, optionally, observation and reward
//! normalisation with clipping.
//!
//! Two deliberate differences from CleanRL, both switchable:
//! - `bootstrap_truncated = true` (default): when the time limit cuts an episode, the value of
//!   the final observation is added to the last reward (discounted), instead of treating the cut
//!   as a terminal state. `false` reproduces CleanRL.
//! - Normaliser statistics are shared by all envs of the vector (see `normalize.rs`).
//!
//! **D-PPO** (`algo = "dppo"`; Xie, Yu, Qiao, arXiv 2310.20380) drops, in every minibatch, the
//! samples that inflate the variance of the importance-sampled surrogate. With `x_i` the sample's
//! surrogate term (`(r_i - 1) Â_i` or `r_i Â_i`) and `S = Σ x_j`, the batch variance is
//! `(N-1) L̂² - (1/N) Σ_i x_i (S - x_i)`: the rule `score = cross` drops the fraction `drop_rate`
//! of samples with the smallest cross term `x_i (S - x_i)`; `score = abs` drops those with the
//! largest `|x_i|`; `per_sign` ranks positive- and negative-advantage samples separately. The rule
//! `ratio_deviation` instead drops samples with `|r_i - 1| > ratio_threshold` (Sample Dropout,
//! Lin et al. 2023). Only the policy loss is masked. The paper's own code is not public: this is
//! the reconstruction of the research notes, parameterised so it can be aligned later. With
//! `drop_rate = 0` D-PPO is PPO, bit for bit. The surrogate variance `Var_i(r_i Â_i)` and the kept
//! fraction are logged for both algorithms.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tch::{Device, Kind, Tensor, nn, nn::Module};

use keel_envs::config::{FieldError, Validate};
use keel_envs::{Action, AutoresetMode, VecEnv, VecOptions};

use crate::adam::Adam;
use crate::error::{AgentError, Result};
use crate::gae::gae;
use crate::normalize::{ObsNormalizer, RewardNormalizer};
use crate::policy::{ActorCritic, Head};

/// Which algorithm the trainer runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Algo {
    /// PPO.
    Ppo,
    /// PPO with variance-limiting sample dropout.
    Dppo,
}

/// The surrogate term each sample contributes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DropoutTerm {
    /// `(r - 1) Â`.
    Deviation,
    /// `r Â`.
    Raw,
}

/// How samples are ranked for dropping.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DropoutScore {
    /// Drop the smallest cross terms `x_i (S - x_i)`.
    Cross,
    /// Drop the largest `|x_i|`.
    Abs,
}

/// Which samples D-PPO drops.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DropoutRule {
    /// A fraction `drop_rate` ranked by `score`.
    Variance,
    /// Every sample with `|r - 1| > ratio_threshold`.
    RatioDeviation,
}

/// D-PPO settings (used when `algo = "dppo"`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DppoConfig {
    /// Fraction of each group dropped per minibatch, in [0, 1) (default 0.1).
    pub drop_rate: f64,
    /// Surrogate term of a sample (default `deviation`).
    pub term: DropoutTerm,
    /// Ranking (default `cross`).
    pub score: DropoutScore,
    /// Rank positive- and negative-advantage samples separately (default true).
    pub per_sign: bool,
    /// Dropping rule (default `variance`).
    pub rule: DropoutRule,
    /// `ratio_deviation` rule: drop samples with `|r - 1|` above this (default 0.3).
    pub ratio_threshold: f64,
}

impl Default for DppoConfig {
    fn default() -> Self {
        Self {
            drop_rate: 0.1,
            term: DropoutTerm::Deviation,
            score: DropoutScore::Cross,
            per_sign: true,
            rule: DropoutRule::Variance,
            ratio_threshold: 0.3,
        }
    }
}

/// Everything a PPO / D-PPO run needs; defaults are CleanRL's `ppo.py`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PpoConfig {
    /// Environment id (default `keel/CartPole-v1`).
    pub env_id: String,
    /// Config overrides of the environment (a table of its config fields).
    pub env_config: Map<String, Value>,
    /// `ppo` or `dppo` (default `ppo`).
    pub algo: Algo,
    /// Seed of the networks, the sampling and the envs (env i gets seed + i) (default 1).
    pub seed: u64,
    /// Environment steps to train for, over all envs (default 500000).
    pub total_timesteps: u64,
    /// Adam learning rate (default 2.5e-4).
    pub learning_rate: f64,
    /// Parallel envs (default 4).
    pub num_envs: usize,
    /// Steps per env per rollout (default 128).
    pub num_steps: usize,
    /// Anneal the learning rate linearly to 0 (default true).
    pub anneal_lr: bool,
    /// Discount (default 0.99).
    pub gamma: f64,
    /// GAE λ (default 0.95).
    pub gae_lambda: f64,
    /// Minibatches per epoch (default 4).
    pub num_minibatches: usize,
    /// Epochs per rollout (default 4).
    pub update_epochs: usize,
    /// Normalise advantages per minibatch (default true).
    pub norm_adv: bool,
    /// Clip range of the ratio and of the value update (default 0.2).
    pub clip_coef: f64,
    /// Clip the value loss (default true).
    pub clip_vloss: bool,
    /// Entropy bonus coefficient (default 0.01).
    pub ent_coef: f64,
    /// Value loss coefficient (default 0.5).
    pub vf_coef: f64,
    /// Global gradient-norm bound (default 0.5).
    pub max_grad_norm: f64,
    /// Stop an update early when the approximate KL exceeds this (default: none).
    pub target_kl: Option<f64>,
    /// Hidden layer widths of actor and critic (default [64, 64]).
    pub hidden_sizes: Vec<i64>,
    /// Initial log standard deviation of the Gaussian policy (Box actions; default 0, CleanRL's).
    /// Lower it where exploration noise is costly, e.g. unbounded actions with a quadratic cost.
    pub init_log_std: f64,
    /// Normalise observations with running statistics (default false; true for Box actions in
    /// the continuous configs).
    pub normalize_obs: bool,
    /// Scale rewards by the running std of discounted returns (default false).
    pub normalize_reward: bool,
    /// Clip of normalised observations (default 10).
    pub obs_clip: f64,
    /// Clip of normalised rewards (default 10).
    pub reward_clip: f64,
    /// Bootstrap from the final observation when the time limit cuts an episode (default true;
    /// false is CleanRL's behaviour).
    pub bootstrap_truncated: bool,
    /// Env worker threads (0: serial, default 0: small vectors gain nothing from threads).
    pub env_workers: usize,
    /// `cpu`, `cuda` or `auto` (default `cpu`).
    pub device: String,
    /// Write a checkpoint every this many iterations (default 25), and at the end.
    pub checkpoint_every: u64,
    /// Deploy the current policy to the envs every this many iterations (0: never, the default).
    /// For envs whose dynamics respond to the deployed policy (`keel/PerformativeGrid-v0`): the
    /// policy's action probabilities in every state are set as the envs' `learner_policy`, and
    /// the followers respond (repeated retraining with function approximation). Needs Discrete
    /// observations and actions.
    pub deploy_every: u64,
    /// D-PPO settings.
    pub dppo: DppoConfig,
}

impl Default for PpoConfig {
    fn default() -> Self {
        Self {
            env_id: "keel/CartPole-v1".into(),
            env_config: Map::new(),
            algo: Algo::Ppo,
            seed: 1,
            total_timesteps: 500_000,
            learning_rate: 2.5e-4,
            num_envs: 4,
            num_steps: 128,
            anneal_lr: true,
            gamma: 0.99,
            gae_lambda: 0.95,
            num_minibatches: 4,
            update_epochs: 4,
            norm_adv: true,
            clip_coef: 0.2,
            clip_vloss: true,
            ent_coef: 0.01,
            vf_coef: 0.5,
            max_grad_norm: 0.5,
            target_kl: None,
            hidden_sizes: vec![64, 64],
            init_log_std: 0.0,
            normalize_obs: false,
            normalize_reward: false,
            obs_clip: 10.0,
            reward_clip: 10.0,
            bootstrap_truncated: true,
            env_workers: 0,
            device: "cpu".into(),
            checkpoint_every: 25,
            deploy_every: 0,
            dppo: DppoConfig::default(),
        }
    }
}

impl Validate for PpoConfig {
    fn validate(&self) -> Result<(), FieldError> {
        use keel_envs::config::positive;
        let count = |field: &'static str, v: usize| {
            if v > 0 { Ok(()) } else { Err(FieldError::new(field, "must be at least 1")) }
        };
        count("num_envs", self.num_envs)?;
        count("num_steps", self.num_steps)?;
        count("num_minibatches", self.num_minibatches)?;
        count("update_epochs", self.update_epochs)?;
        if self.num_minibatches > self.num_envs * self.num_steps {
            return Err(FieldError::new("num_minibatches", "exceeds the batch size num_envs * num_steps"));
        }
        if self.total_timesteps < (self.num_envs * self.num_steps) as u64 {
            return Err(FieldError::new("total_timesteps", "is smaller than one rollout (num_envs * num_steps)"));
        }
        positive("learning_rate", self.learning_rate)?;
        for (field, v) in [("gamma", self.gamma), ("gae_lambda", self.gae_lambda)] {
            if !(0.0..=1.0).contains(&v) {
                return Err(FieldError::new(field, format!("must be in [0, 1], got {v}")));
            }
        }
        positive("clip_coef", self.clip_coef)?;
        positive("max_grad_norm", self.max_grad_norm)?;
        positive("obs_clip", self.obs_clip)?;
        positive("reward_clip", self.reward_clip)?;
        for (field, v) in [("ent_coef", self.ent_coef), ("vf_coef", self.vf_coef)] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(FieldError::new(field, format!("must be finite and >= 0, got {v}")));
            }
        }
        if let Some(kl) = self.target_kl {
            positive("target_kl", kl)?;
        }
        keel_envs::config::finite("init_log_std", self.init_log_std)?;
        if self.hidden_sizes.iter().any(|&h| h < 1) {
            return Err(FieldError::new("hidden_sizes", "widths must be at least 1"));
        }
        if !["cpu", "cuda", "auto"].contains(&self.device.as_str()) {
            return Err(FieldError::new("device", format!("must be cpu, cuda or auto, got {:?}", self.device)));
        }
        if !(0.0..1.0).contains(&self.dppo.drop_rate) {
            return Err(FieldError::new("dppo.drop_rate", "must be in [0, 1)"));
        }
        positive("dppo.ratio_threshold", self.dppo.ratio_threshold)?;
        count("checkpoint_every", self.checkpoint_every as usize)
    }
}

impl PpoConfig {
    /// This config with `overrides` applied in order. Keys are field names, with dots for nested
    /// fields (`dppo.drop_rate`, `env_config.gravity`); values are JSON. An unknown key or a value
    /// of the wrong type is an error naming the key; the result is validated.
    pub fn with_overrides(&self, overrides: &[(String, Value)]) -> Result<Self> {
        let mut json = serde_json::to_value(self).map_err(|e| AgentError::Config(e.to_string()))?;
        for (key, value) in overrides {
            let mut node = &mut json;
            let parts: Vec<&str> = key.split('.').collect();
            for (depth, part) in parts.iter().enumerate() {
                let free_form = depth > 0 && parts[0] == "env_config";
                let Value::Object(map) = node else {
                    return Err(AgentError::Config(format!(
                        "training config: `{key}`: `{}` is not a table",
                        parts[..depth].join(".")
                    )));
                };
                if !map.contains_key(*part) && !free_form {
                    let known: Vec<&str> = map.keys().map(String::as_str).collect();
                    return Err(AgentError::Config(format!(
                        "training config: unknown field `{key}`; known fields here: {}",
                        known.join(", ")
                    )));
                }
                if depth == parts.len() - 1 {
                    map.insert((*part).to_string(), value.clone());
                    break;
                }
                node = map.entry((*part).to_string()).or_insert_with(|| Value::Object(Map::new()));
            }
            if let Err(e) = serde_json::from_value::<PpoConfig>(json.clone()) {
                return Err(AgentError::Config(format!("training config: invalid `{key}`: {e}")));
            }
        }
        let config: PpoConfig = serde_json::from_value(json).map_err(|e| AgentError::Config(e.to_string()))?;
        config
            .validate()
            .map_err(|e| AgentError::Config(format!("training config: invalid `{}`: {}", e.field, e.message)))?;
        Ok(config)
    }

    /// The overrides a TOML document makes, as dotted keys (tables become prefixes; the
    /// `env_config` table stays one value).
    pub fn toml_overrides(text: &str) -> Result<Vec<(String, Value)>> {
        let table: toml::Table = text.parse().map_err(|e| AgentError::Config(format!("TOML: {e}")))?;
        let json = serde_json::to_value(table).map_err(|e| AgentError::Config(e.to_string()))?;
        let mut out = Vec::new();
        fn walk(prefix: &str, value: &Value, out: &mut Vec<(String, Value)>) {
            match value {
                Value::Object(map) if prefix != "env_config" => {
                    for (k, v) in map {
                        let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                        walk(&key, v, out);
                    }
                }
                other => out.push((prefix.to_string(), other.clone())),
            }
        }
        walk("", &json, &mut out);
        Ok(out)
    }

    /// The config as TOML (what a run folder's `config.toml` holds).
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string_pretty(self).map_err(|e| AgentError::Config(format!("config to TOML: {e}")))
    }

    /// Envs x steps per rollout.
    pub fn batch_size(&self) -> usize {
        self.num_envs * self.num_steps
    }

    /// Samples per minibatch.
    pub fn minibatch_size(&self) -> usize {
        self.batch_size() / self.num_minibatches
    }

    /// Rollout-update iterations of the whole run.
    pub fn num_iterations(&self) -> u64 {
        self.total_timesteps / self.batch_size() as u64
    }

    /// The libtorch device this config asks for.
    pub fn torch_device(&self) -> Result<Device> {
        match self.device.as_str() {
            "cpu" => Ok(Device::Cpu),
            "cuda" if tch::Cuda::is_available() => Ok(Device::Cuda(0)),
            "cuda" => Err(AgentError::Config("device = \"cuda\" but libtorch sees no CUDA device".into())),
            _ => Ok(Device::cuda_if_available()),
        }
    }
}

/// A finished training episode.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Episode {
    /// Global step at which it ended.
    pub global_step: u64,
    /// Undiscounted, unnormalised return.
    pub episode_return: f64,
    /// Length in steps.
    pub length: u64,
}

/// What one iteration measured.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct IterationStats {
    /// Iteration number (1-based).
    pub iteration: u64,
    /// Env steps so far.
    pub global_step: u64,
    /// Learning rate used.
    pub learning_rate: f64,
    /// Mean return of episodes finished in this iteration (NaN if none).
    pub episodic_return: f64,
    /// Mean length of those episodes (NaN if none).
    pub episodic_length: f64,
    /// Episodes finished in this iteration.
    pub episodes: u64,
    /// Last minibatch's value loss.
    pub value_loss: f64,
    /// Last minibatch's policy loss.
    pub policy_loss: f64,
    /// Last minibatch's mean entropy.
    pub entropy: f64,
    /// Last minibatch's KL estimate `mean(-log r)`.
    pub old_approx_kl: f64,
    /// Last minibatch's KL estimate `mean((r - 1) - log r)`.
    pub approx_kl: f64,
    /// Mean over minibatches of the fraction of clipped ratios.
    pub clipfrac: f64,
    /// `1 - Var(R - V) / Var(R)` of the rollout.
    pub explained_variance: f64,
    /// Mean over minibatches of `Var_i(r_i Â_i)` over the samples the policy loss keeps.
    pub surrogate_variance: f64,
    /// Mean over minibatches of `Var_i((r_i - 1) Â_i)` over the kept samples: the part of the
    /// surrogate's variance that importance sampling adds (0 while the policy has not moved).
    pub deviation_variance: f64,
    /// Mean over minibatches of the fraction of samples kept in the policy loss.
    pub kept_fraction: f64,
    /// On a deployment iteration, `‖π_new − π_old‖ / ‖π_old‖` of the deployed policy tables
    /// (NaN otherwise).
    pub policy_shift: f64,
}

/// One rollout on the training device, `[num_steps, num_envs, ...]`, built once per iteration
/// from host buffers and per-step tensors (one libtorch call per field, not one per step).
struct Storage {
    obs: Tensor,
    actions: Tensor,
    log_probs: Tensor,
    rewards: Tensor,
    dones: Tensor,
    values: Tensor,
}

/// The PPO / D-PPO trainer: owns the envs, the networks and the optimiser.
///
/// Runs are reproducible bit for bit on CPU from their seed, resumed or not. libtorch's random
/// generator is global to the process, so two trainers stepping concurrently in one process
/// perturb each other's sampling: run one trainer per process when that matters.
pub struct Trainer {
    config: PpoConfig,
    device: Device,
    venv: VecEnv,
    vs: nn::VarStore,
    model: ActorCritic,
    adam: Adam,
    obs_norm: Option<ObsNormalizer>,
    reward_norm: Option<RewardNormalizer>,
    /// Raw observations the next rollout step acts on, `[num_envs * obs_dim]`.
    next_obs: Vec<f32>,
    next_done: Vec<bool>,
    /// Discrete observations are fed one-hot over this many values (offset by `start`).
    one_hot: Option<(usize, i64)>,
    /// The policy table last deployed (`deploy_every`), row-major states x actions.
    deployed: Option<Vec<f64>>,
    iteration: u64,
    global_step: u64,
    episodes: Vec<Episode>,
}

/// Mixes a run seed and an iteration into one seed (SplitMix64 finaliser), so the randomness of
/// an iteration depends on where the run is, not on how it got there (what `--resume` needs).
pub fn iteration_seed(seed: u64, iteration: u64) -> u64 {
    let mut z = seed.wrapping_add(iteration.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn torch_seed(seed: u64) -> i64 {
    (seed >> 1) as i64
}

impl Trainer {
    /// Builds envs, networks and optimiser from a validated config.
    pub fn new(config: PpoConfig) -> Result<Self> {
        let config =
            keel_envs::config::checked(config, "training config").map_err(|e| AgentError::Config(e.to_string()))?;
        crate::threads::configure();
        let device = config.torch_device()?;
        let options = VecOptions { workers: config.env_workers, autoreset_mode: AutoresetMode::SameStep };
        let mut venv = VecEnv::make(&config.env_id, &config.env_config, config.num_envs, options)?;
        tch::manual_seed(torch_seed(config.seed));
        let spec = venv.spec().clone();
        let vs = nn::VarStore::new(device);
        let model = ActorCritic::new(
            &vs.root(),
            &spec.observation_space,
            &spec.action_space,
            &config.hidden_sizes,
            config.init_log_std,
        )?;
        let adam = Adam::new(&vs, 1e-5);
        venv.reset(Some(config.seed))?;
        let next_obs = venv.batch().obs.clone();
        let obs_norm = config.normalize_obs.then(|| ObsNormalizer::new(spec.obs_len(), config.obs_clip));
        let reward_norm =
            config.normalize_reward.then(|| RewardNormalizer::new(config.num_envs, config.gamma, config.reward_clip));
        let one_hot = match &spec.observation_space {
            keel_envs::Space::Discrete(d) => Some((d.n.max(1) as usize, d.start)),
            _ => None,
        };
        if config.deploy_every > 0 && (one_hot.is_none() || !matches!(spec.action_space, keel_envs::Space::Discrete(_)))
        {
            return Err(AgentError::Config(format!(
                "training config: invalid `deploy_every`: {} needs Discrete observations and actions",
                config.env_id
            )));
        }
        let mut trainer = Self {
            next_done: vec![false; config.num_envs],
            one_hot,
            deployed: None,
            config,
            device,
            venv,
            vs,
            model,
            adam,
            obs_norm,
            reward_norm,
            next_obs,
            iteration: 0,
            global_step: 0,
            episodes: Vec::new(),
        };
        // The first observations count for the running statistics, as after a wrapper's reset.
        if let Some(norm) = &mut trainer.obs_norm {
            norm.apply(&trainer.next_obs, trainer.config.num_envs, true);
        }
        Ok(trainer)
    }

    /// The run's config.
    pub fn config(&self) -> &PpoConfig {
        &self.config
    }

    /// Iterations done.
    pub fn iteration(&self) -> u64 {
        self.iteration
    }

    /// Env steps done.
    pub fn global_step(&self) -> u64 {
        self.global_step
    }

    /// Every finished training episode so far.
    pub fn episodes(&self) -> &[Episode] {
        &self.episodes
    }

    /// Whether the run has done all its iterations.
    pub fn finished(&self) -> bool {
        self.iteration >= self.config.num_iterations()
    }

    /// Observations as the networks see them (normalised if configured).
    fn normalized(&mut self, raw: &[f32], rows: usize, update: bool) -> Vec<f32> {
        if let Some((n, start)) = self.one_hot {
            let mut out = vec![0.0f32; rows * n];
            for (r, &v) in raw.iter().enumerate().take(rows) {
                let k = (v as i64 - start).clamp(0, n as i64 - 1) as usize;
                out[r * n + k] = 1.0;
            }
            return out;
        }
        match &mut self.obs_norm {
            Some(norm) => norm.apply(raw, rows, update),
            None => raw.to_vec(),
        }
    }

    fn tensor(&self, values: &[f32], rows: usize) -> Tensor {
        let dim = values.len() / rows.max(1);
        Tensor::from_slice(values).view([rows as i64, dim as i64]).to_device(self.device)
    }

    fn obs_tensor(&mut self, raw: &[f32], rows: usize, update: bool) -> Tensor {
        let values = self.normalized(raw, rows, update);
        self.tensor(&values, rows)
    }

    fn env_action(&self, action: &Tensor) -> Result<(Vec<i64>, Vec<f32>)> {
        let cpu = action.to_device(Device::Cpu).flatten(0, -1);
        match &self.model.head {
            Head::Categorical { start, .. } => {
                let mut ints = Vec::<i64>::try_from(&cpu)?;
                ints.iter_mut().for_each(|a| *a += start);
                Ok((ints, Vec::new()))
            }
            Head::Gaussian { low, high, .. } => {
                let mut floats = Vec::<f32>::try_from(&cpu)?;
                let dim = low.len();
                for (i, a) in floats.iter_mut().enumerate() {
                    *a = a.clamp(low[i % dim], high[i % dim]);
                }
                Ok((Vec::new(), floats))
            }
        }
    }

    /// The current policy's action probabilities in every state, row-major (Discrete
    /// observations and actions).
    pub fn policy_table(&self) -> Result<Vec<f64>> {
        let (n, _) =
            self.one_hot.ok_or_else(|| AgentError::Config("policy tables need Discrete observations".into()))?;
        let states = Tensor::eye(n as i64, (Kind::Float, self.device));
        let probs = tch::no_grad(|| self.model.actor.forward(&states).softmax(-1, Kind::Float));
        let table = Vec::<f32>::try_from(&probs.to_device(Device::Cpu).flatten(0, -1))?;
        Ok(table.into_iter().map(f64::from).collect())
    }

    /// Deploys the current policy to every env (see `deploy_every`); returns the relative change
    /// from the previous deployment (NaN for the first).
    fn deploy(&mut self) -> Result<f64> {
        let table = self.policy_table()?;
        let actions = match &self.venv.spec().action_space {
            keel_envs::Space::Discrete(d) => d.n.max(1) as usize,
            _ => 1,
        };
        // Probabilities from float32 softmax: renormalise in float64 so every row sums to 1.
        let rows: Vec<Vec<f64>> = table
            .chunks_exact(actions)
            .map(|row| {
                let total: f64 = row.iter().sum();
                row.iter().map(|p| p / total).collect()
            })
            .collect();
        let mut params = Map::new();
        params.insert(
            "learner_policy".into(),
            serde_json::to_value(&rows).map_err(|e| AgentError::Config(e.to_string()))?,
        );
        self.venv.set_params(&params)?;
        let flat: Vec<f64> = rows.concat();
        let shift = match &self.deployed {
            Some(old) => {
                let diff: f64 = flat.iter().zip(old).map(|(a, b)| (a - b).powi(2)).sum::<f64>().sqrt();
                diff / old.iter().map(|v| v * v).sum::<f64>().sqrt()
            }
            None => f64::NAN,
        };
        self.deployed = Some(flat);
        Ok(shift)
    }

    /// Runs one rollout and one update.
    pub fn iteration_step(&mut self) -> Result<IterationStats> {
        let cfg = self.config.clone();
        let (n, steps) = (cfg.num_envs, cfg.num_steps);
        self.iteration += 1;
        tch::manual_seed(torch_seed(iteration_seed(cfg.seed, self.iteration)));
        let lr = if cfg.anneal_lr {
            (1.0 - (self.iteration - 1) as f64 / cfg.num_iterations() as f64) * cfg.learning_rate
        } else {
            cfg.learning_rate
        };
        let first_episode = self.episodes.len();

        let raw_dim = self.next_obs.len() / n;
        let mut obs_values = self.normalized(&self.next_obs.clone(), n, false);
        let obs_dim = obs_values.len() / n;
        let mut obs = self.tensor(&obs_values, n);
        let (mut obs_buf, mut done_buf, mut reward_buf) =
            (Vec::with_capacity(steps * n * obs_dim), Vec::with_capacity(steps * n), Vec::with_capacity(steps * n));
        let (mut values, mut actions, mut log_probs) =
            (Vec::with_capacity(steps), Vec::with_capacity(steps), Vec::with_capacity(steps));
        for _ in 0..steps {
            self.global_step += n as u64;
            obs_buf.extend_from_slice(&obs_values);
            done_buf.extend(self.next_done.iter().map(|&d| f32::from(u8::from(d))));
            let (sample, value) = tch::no_grad(|| (self.model.sample(&obs, false), self.model.value(&obs)));
            let (ints, floats) = self.env_action(&sample.action)?;
            values.push(value);
            actions.push(sample.action);
            log_probs.push(sample.log_prob);

            let action = if ints.is_empty() { Action::Float(&floats) } else { Action::Int(&ints) };
            self.venv.step(action)?;
            let batch = self.venv.batch();
            for i in (0..n).filter(|&i| batch.episode_done[i]) {
                self.episodes.push(Episode {
                    global_step: self.global_step,
                    episode_return: batch.episode_return[i],
                    length: batch.episode_length[i],
                });
            }
            let mut rewards = batch.reward.clone();
            let terminated = batch.terminated.clone();
            let truncated = batch.truncated.clone();
            let raw_next = batch.obs.clone();
            let cut: Vec<usize> = (0..n).filter(|&i| truncated[i] && !terminated[i]).collect();
            let final_rows: Vec<f32> = if cfg.bootstrap_truncated && !cut.is_empty() {
                cut.iter().flat_map(|&i| batch.final_obs[i * raw_dim..(i + 1) * raw_dim].to_vec()).collect()
            } else {
                Vec::new()
            };
            if let Some(norm) = &mut self.reward_norm {
                norm.apply(&mut rewards, &terminated);
            }
            if !final_rows.is_empty() {
                // The time limit, not the MDP, ended these episodes: their last observation still has
                // value, which the autoreset would otherwise lose.
                let final_obs = self.obs_tensor(&final_rows, cut.len(), false);
                let values = Vec::<f32>::try_from(
                    &tch::no_grad(|| self.model.value(&final_obs)).to_device(Device::Cpu).flatten(0, -1),
                )?;
                for (k, &i) in cut.iter().enumerate() {
                    rewards[i] += cfg.gamma * f64::from(values[k]);
                }
            }
            reward_buf.extend(rewards.iter().map(|&r| r as f32));
            self.next_done = (0..n).map(|i| terminated[i] || truncated[i]).collect();
            obs_values = self.normalized(&raw_next, n, true);
            obs = self.tensor(&obs_values, n);
            self.next_obs = raw_next;
        }
        let (t, n64) = (steps as i64, n as i64);
        let storage = Storage {
            obs: Tensor::from_slice(&obs_buf).view([t, n64, obs_dim as i64]).to_device(self.device),
            actions: Tensor::stack(&actions, 0),
            log_probs: Tensor::stack(&log_probs, 0),
            rewards: Tensor::from_slice(&reward_buf).view([t, n64]).to_device(self.device),
            dones: Tensor::from_slice(&done_buf).view([t, n64]).to_device(self.device),
            values: Tensor::stack(&values, 0),
        };

        let mut stats = self.update(&storage, &obs, lr)?;
        stats.policy_shift = f64::NAN;
        if cfg.deploy_every > 0 && self.iteration % cfg.deploy_every == 0 {
            stats.policy_shift = self.deploy()?;
        }
        let finished = &self.episodes[first_episode..];
        let mean = |f: fn(&Episode) -> f64| {
            if finished.is_empty() { f64::NAN } else { finished.iter().map(f).sum::<f64>() / finished.len() as f64 }
        };
        Ok(IterationStats {
            iteration: self.iteration,
            global_step: self.global_step,
            learning_rate: lr,
            episodic_return: mean(|e| e.episode_return),
            episodic_length: mean(|e| e.length as f64),
            episodes: finished.len() as u64,
            ..stats
        })
    }

    fn update(&mut self, s: &Storage, next_obs: &Tensor, lr: f64) -> Result<IterationStats> {
        let cfg = &self.config;
        let next_value = tch::no_grad(|| self.model.value(next_obs));
        let done_flags: Vec<f32> = self.next_done.iter().map(|&d| f32::from(u8::from(d))).collect();
        let next_done = Tensor::from_slice(&done_flags).to_device(self.device);
        let (advantages, returns) =
            tch::no_grad(|| gae(&s.rewards, &s.values, &s.dones, &next_value, &next_done, cfg.gamma, cfg.gae_lambda));
        let batch = cfg.batch_size() as i64;
        let b_obs = s.obs.flatten(0, 1);
        let b_actions = s.actions.flatten(0, 1);
        let b_log_probs = s.log_probs.flatten(0, -1);
        let b_adv = advantages.flatten(0, -1);
        let b_returns = returns.flatten(0, -1);
        let b_values = s.values.flatten(0, -1);

        let mut stats = IterationStats::default();
        let (mut clipfracs, mut variances, mut kept) = (Vec::new(), Vec::new(), Vec::new());
        let mut deviation_variances = Vec::new();
        let mb = cfg.minibatch_size() as i64;
        'epochs: for _ in 0..cfg.update_epochs {
            let perm = Tensor::randperm(batch, (Kind::Int64, self.device));
            for start in (0..batch - mb + 1).step_by(mb as usize) {
                let idx = perm.narrow(0, start, mb);
                let (new_log_prob, entropy) =
                    self.model.evaluate(&b_obs.index_select(0, &idx), &b_actions.index_select(0, &idx));
                let new_value = self.model.value(&b_obs.index_select(0, &idx));
                let log_ratio = &new_log_prob - b_log_probs.index_select(0, &idx);
                let ratio = log_ratio.exp();
                let (old_kl, kl, clipfrac) = tch::no_grad(|| {
                    (
                        (-&log_ratio).mean(Kind::Float).double_value(&[]),
                        ((&ratio - 1.0) - &log_ratio).mean(Kind::Float).double_value(&[]),
                        (&ratio - 1.0).abs().gt(cfg.clip_coef).to_kind(Kind::Float).mean(Kind::Float).double_value(&[]),
                    )
                });
                clipfracs.push(clipfrac);
                let mut mb_adv = b_adv.index_select(0, &idx);
                if cfg.norm_adv {
                    mb_adv = (&mb_adv - mb_adv.mean(Kind::Float)) / (mb_adv.std(true) + 1e-8);
                }
                let pg_terms =
                    (-&mb_adv * &ratio).maximum(&(-&mb_adv * ratio.clamp(1.0 - cfg.clip_coef, 1.0 + cfg.clip_coef)));
                let mask = match cfg.algo {
                    Algo::Dppo => tch::no_grad(|| dropout_mask(&cfg.dppo, &ratio, &mb_adv)),
                    Algo::Ppo => None,
                };
                // Variances of the surrogate terms over the samples the policy loss uses.
                let (surrogate_var, deviation_var) = tch::no_grad(|| {
                    let kept_terms = |t: Tensor| match &mask {
                        Some(m) => t.masked_select(&m.gt(0.5)),
                        None => t,
                    };
                    (
                        kept_terms(&ratio * &mb_adv).var(false).double_value(&[]),
                        kept_terms((&ratio - 1.0) * &mb_adv).var(false).double_value(&[]),
                    )
                });
                variances.push(surrogate_var);
                deviation_variances.push(deviation_var);
                let pg_loss = match &mask {
                    Some(mask) => {
                        let count = mask.sum(Kind::Float);
                        kept.push(count.double_value(&[]) / mb as f64);
                        (&pg_terms * mask).sum(Kind::Float) / count.clamp_min(1.0)
                    }
                    None => {
                        kept.push(1.0);
                        pg_terms.mean(Kind::Float)
                    }
                };
                let mb_returns = b_returns.index_select(0, &idx);
                let v_loss: Tensor = if cfg.clip_vloss {
                    let mb_values = b_values.index_select(0, &idx);
                    let unclipped = (&new_value - &mb_returns).square();
                    let clipped_value = &mb_values + (&new_value - &mb_values).clamp(-cfg.clip_coef, cfg.clip_coef);
                    let clipped = (clipped_value - &mb_returns).square();
                    unclipped.maximum(&clipped).mean(Kind::Float) * 0.5
                } else {
                    (&new_value - &mb_returns).square().mean(Kind::Float) * 0.5
                };
                let entropy_loss = entropy.mean(Kind::Float);
                let loss: Tensor = &pg_loss - &entropy_loss * cfg.ent_coef + &v_loss * cfg.vf_coef;
                let loss_value = loss.double_value(&[]);
                if !loss_value.is_finite() {
                    return Err(AgentError::Diverged {
                        iteration: self.iteration,
                        what: format!("loss = {loss_value}"),
                    });
                }
                self.adam.zero_grad();
                loss.backward();
                self.adam.clip_grad_norm(cfg.max_grad_norm);
                self.adam.step(lr);
                stats.policy_loss = pg_loss.double_value(&[]);
                stats.value_loss = v_loss.double_value(&[]);
                stats.entropy = entropy_loss.double_value(&[]);
                stats.old_approx_kl = old_kl;
                stats.approx_kl = kl;
            }
            if cfg.target_kl.is_some_and(|target| stats.approx_kl > target) {
                break 'epochs;
            }
        }
        if !self.adam.parameters_finite() {
            return Err(AgentError::Diverged { iteration: self.iteration, what: "a parameter is not finite".into() });
        }
        let mean = |v: &[f64]| if v.is_empty() { f64::NAN } else { v.iter().sum::<f64>() / v.len() as f64 };
        stats.clipfrac = mean(&clipfracs);
        stats.surrogate_variance = mean(&variances);
        stats.deviation_variance = mean(&deviation_variances);
        stats.kept_fraction = mean(&kept);
        let var_returns = b_returns.var(false).double_value(&[]);
        stats.explained_variance = if var_returns == 0.0 {
            f64::NAN
        } else {
            1.0 - (&b_returns - &b_values).var(false).double_value(&[]) / var_returns
        };
        Ok(stats)
    }
}

/// The non-tensor part of a checkpoint.
#[derive(Serialize, Deserialize)]
struct TrainerState {
    iteration: u64,
    global_step: u64,
    next_obs: Vec<f32>,
    next_done: Vec<bool>,
    obs_norm: Option<ObsNormalizer>,
    reward_norm: Option<RewardNormalizer>,
    episodes: Vec<Episode>,
    envs: Value,
    #[serde(default)]
    deployed: Option<Vec<f64>>,
}

/// Name of the file in a checkpoint folder that names the newest checkpoint.
pub const LATEST: &str = "latest";

fn write_atomically(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let tmp = path.with_extension("partial");
    write(&tmp)?;
    std::fs::rename(&tmp, path).map_err(|e| AgentError::io(format!("renaming {}", tmp.display()), e))
}

impl Trainer {
    /// Writes `dir/iter_NNNNNN.safetensors` (networks, optimiser) and `.json` (counters, envs,
    /// normalisers, episodes), each atomically, then points `dir/latest` at them. A crash at any
    /// moment leaves the previous checkpoint intact and named by `latest`.
    pub fn save_checkpoint(&mut self, dir: &Path) -> Result<PathBuf> {
        std::fs::create_dir_all(dir).map_err(|e| AgentError::io(format!("creating {}", dir.display()), e))?;
        let stem = format!("iter_{:06}", self.iteration);
        let envs = self.venv.snapshot().ok_or_else(|| {
            AgentError::Config(format!("{} cannot snapshot, so runs cannot be checkpointed", self.config.env_id))
        })?;
        let state = TrainerState {
            iteration: self.iteration,
            global_step: self.global_step,
            next_obs: self.next_obs.clone(),
            next_done: self.next_done.clone(),
            obs_norm: self.obs_norm.clone(),
            reward_norm: self.reward_norm.clone(),
            episodes: self.episodes.clone(),
            envs,
            deployed: self.deployed.clone(),
        };
        let mut tensors: Vec<(String, Tensor)> = self.vs.variables().into_iter().collect();
        tensors.sort_by(|a, b| a.0.cmp(&b.0));
        tensors.extend(self.adam.state());
        let tensors_path = dir.join(format!("{stem}.safetensors"));
        write_atomically(&tensors_path, |tmp| Ok(Tensor::write_safetensors(&tensors, tmp)?))?;
        let json = serde_json::to_vec(&state).map_err(|e| AgentError::Config(e.to_string()))?;
        write_atomically(&dir.join(format!("{stem}.json")), |tmp| {
            std::fs::write(tmp, &json).map_err(|e| AgentError::io(format!("writing {}", tmp.display()), e))
        })?;
        write_atomically(&dir.join(LATEST), |tmp| {
            std::fs::write(tmp, &stem).map_err(|e| AgentError::io(format!("writing {}", tmp.display()), e))
        })?;
        Ok(tensors_path)
    }

    /// Restores the checkpoint named by `dir/latest` into a trainer built from the same config.
    pub fn load_checkpoint(&mut self, dir: &Path) -> Result<u64> {
        let latest = dir.join(LATEST);
        let stem =
            std::fs::read_to_string(&latest).map_err(|e| AgentError::io(format!("reading {}", latest.display()), e))?;
        let stem = stem.trim();
        let json_path = dir.join(format!("{stem}.json"));
        let text =
            std::fs::read(&json_path).map_err(|e| AgentError::io(format!("reading {}", json_path.display()), e))?;
        let state: TrainerState = serde_json::from_slice(&text)
            .map_err(|e| AgentError::Config(format!("{}: not a Keel checkpoint: {e}", json_path.display())))?;
        let tensors = Tensor::read_safetensors(dir.join(format!("{stem}.safetensors")))?;
        let find = |name: &str| tensors.iter().find(|(n, _)| n == name).map(|(_, t)| t);
        let mut variables = self.vs.variables();
        for (name, var) in variables.iter_mut() {
            let saved = find(name).ok_or_else(|| AgentError::Config(format!("checkpoint lacks parameter `{name}`")))?;
            if saved.size() != var.size() {
                return Err(AgentError::Config(format!("checkpoint parameter `{name}` has another shape")));
            }
            tch::no_grad(|| var.copy_(&saved.to_device(self.device)));
        }
        self.adam.load_state(&tensors).ok_or_else(|| AgentError::Config("checkpoint lacks optimiser state".into()))?;
        self.venv.restore(&state.envs)?;
        self.iteration = state.iteration;
        self.global_step = state.global_step;
        self.next_obs = state.next_obs;
        self.next_done = state.next_done;
        self.obs_norm = state.obs_norm;
        self.reward_norm = state.reward_norm;
        self.episodes = state.episodes;
        self.deployed = state.deployed;
        Ok(self.iteration)
    }

    /// Every network parameter by name (for comparisons and export).
    pub fn parameters(&self) -> Vec<(String, Tensor)> {
        let mut params: Vec<(String, Tensor)> = self.vs.variables().into_iter().collect();
        params.sort_by(|a, b| a.0.cmp(&b.0));
        params
    }

    /// Returns of `episodes` episodes of the current policy on a fresh env (made with the run's
    /// env config and the registered time limit), seeded `seed`, `seed + 1`, ...; the policy's
    /// mode if `deterministic`. Observation statistics are used, not updated.
    pub fn evaluate(&mut self, episodes: usize, deterministic: bool, seed: u64) -> Result<Vec<f64>> {
        let mut env = keel_envs::make(&self.config.env_id, &self.config.env_config)?;
        let mut obs = vec![0.0f32; env.spec().obs_len()];
        let mut returns = Vec::with_capacity(episodes);
        for k in 0..episodes {
            env.reset(Some(seed + k as u64), &keel_envs::ResetOptions::default(), &mut obs)?;
            let mut total = 0.0;
            loop {
                let x = self.obs_tensor(&obs.clone(), 1, false);
                let sample = tch::no_grad(|| self.model.sample(&x, deterministic));
                let (ints, floats) = self.env_action(&sample.action)?;
                let action = if ints.is_empty() { Action::Float(&floats) } else { Action::Int(&ints) };
                let step = env.step(action, &mut obs)?;
                total += step.reward;
                if step.terminated || step.truncated {
                    break;
                }
            }
            returns.push(total);
        }
        Ok(returns)
    }
}

/// The D-PPO keep-mask of a minibatch (`None`: keep everything).
fn dropout_mask(cfg: &DppoConfig, ratio: &Tensor, adv: &Tensor) -> Option<Tensor> {
    match cfg.rule {
        DropoutRule::RatioDeviation => Some((ratio - 1.0).abs().le(cfg.ratio_threshold).to_kind(Kind::Float)),
        DropoutRule::Variance => {
            if cfg.drop_rate == 0.0 {
                return None;
            }
            let x = match cfg.term {
                DropoutTerm::Deviation => (ratio - 1.0) * adv,
                DropoutTerm::Raw => ratio * adv,
            };
            // Lower score = dropped first.
            let score = match cfg.score {
                DropoutScore::Cross => &x * (x.sum(Kind::Float) - &x),
                DropoutScore::Abs => -x.abs(),
            };
            let groups: Vec<Tensor> =
                if cfg.per_sign { vec![adv.gt(0.0), adv.lt(0.0)] } else { vec![adv.ones_like().to_kind(Kind::Bool)] };
            let mut mask = adv.ones_like();
            for group in groups {
                let size = group.sum(Kind::Int64).int64_value(&[]);
                let drop = (cfg.drop_rate * size as f64).floor() as i64;
                if drop == 0 {
                    continue;
                }
                let ranked = score.masked_fill(&group.logical_not(), f64::INFINITY).argsort(0, false);
                mask = mask.index_fill(0, &ranked.narrow(0, 0, drop), 0.0);
            }
            Some(mask)
        }
    }
}

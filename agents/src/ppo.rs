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
//!
//! This file is the algorithm: its config, the rollout it collects and the update it makes
//! ([`Ppo`], an [`Algorithm`]). The trainer core ([`crate::trainer`]) runs it: envs and reset
//! sampler, observation encoding, checkpoints, exact resume, deployments, evaluation; so does
//! the training loop of `keel train` ([`crate::training`]).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tch::{Device, Kind, Tensor, nn};

use keel_envs::EnvSpec;
use keel_envs::config::{FieldError, Validate};

use crate::adam::Adam;
use crate::algorithm::{Algorithm, Metric, Schedule};
use crate::checkpoint;
use crate::collect::Envs;
use crate::config::{RunConfig, TrainConfig, mlp_parameters};
use crate::encode::ObsEncoder;
use crate::error::{AgentError, Result};
use crate::gae::gae;
use crate::history::{HistoryEncoder, HistoryEncoderConfig, PretrainReport};
use crate::normalize::{RewardNormalizer, RunningMeanStd};
pub use crate::policy::Network;
use crate::policy::{ActorCritic, Head, NATURE_FEATURES, NatureCnn};
use crate::rollout::{Rollout, RolloutBatch};

pub use crate::collect::Episode;
pub use crate::trainer::IterationStats;

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
    /// The settings every run has (env, seed, envs, device, checkpoints, deployments, reset
    /// sampler, observation normalisation): top-level keys, see [`RunConfig`]. PPO's defaults:
    /// 4 envs, a checkpoint every 25 iterations.
    #[serde(flatten)]
    pub run: RunConfig,
    /// `ppo` or `dppo` (default `ppo`); `keel train --algo` sets it.
    pub algo: Algo,
    /// Environment steps to train for, over all envs (default 500000).
    pub total_timesteps: u64,
    /// Adam learning rate (default 2.5e-4).
    pub learning_rate: f64,
    /// Steps per env per rollout (default 128).
    pub num_steps: usize,
    /// Anneal the learning rate linearly to 0 (default true).
    pub anneal_lr: bool,
    /// Discount (default 0.99).
    pub gamma: f64,
    /// GAE λ (default 0.95).
    pub gae_lambda: f64,
    /// Minibatches per epoch (default 4). It must divide the batch `num_envs * num_steps`, so
    /// every sample is used in every epoch, and leave at least 2 samples per minibatch when
    /// advantages are normalised (a standard deviation needs two).
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
    /// Global gradient-norm bound (default 0.5); with `critic_max_grad_norm`, the bound of the
    /// actor's gradients alone.
    pub max_grad_norm: f64,
    /// Gradient-norm bound of the critic's parameters on their own (default: none, one global
    /// bound over actor and critic, as CleanRL). Separate bounds keep a large value-loss
    /// gradient from shrinking the policy's step. Needs `network = "mlp"` (separate networks);
    /// a history encoder in front of both counts as the actor's.
    pub critic_max_grad_norm: Option<f64>,
    /// Fit the critic to returns standardised by their running mean and standard deviation,
    /// and undo the scaling wherever a value is used (rl_games' `normalize_value`; DeepMimic
    /// scales its values likewise). Value clipping then acts in standardised units (default
    /// false).
    pub normalize_value: bool,
    /// Stop an update early when the approximate KL exceeds this (default: none).
    pub target_kl: Option<f64>,
    /// Adapt the learning rate after every epoch to keep the epoch's mean approximate KL near
    /// this value (rl_games' adaptive schedule: divided by 1.5 above twice the target,
    /// multiplied by 1.5 below half of it, kept within [1e-6, 1e-2]); it starts at
    /// `learning_rate` and is checkpointed. Default: none. Excludes `anneal_lr`.
    pub kl_adaptive_lr: Option<f64>,
    /// Body of actor and critic: `mlp` (separate MLPs of `hidden_sizes`, the default) or
    /// `nature_cnn` (the Nature CNN shared by both, for image observations `(C, H, W)` such as
    /// the Atari presets'; frames stay bytes until the network scales them on the device).
    pub network: Network,
    /// Hidden layer widths of actor and critic (`network = "mlp"`; default [64, 64]).
    pub hidden_sizes: Vec<i64>,
    /// Initial log standard deviation of the Gaussian policy (Box actions; default 0, CleanRL's).
    /// Lower it where exploration noise is costly, e.g. unbounded actions with a quadratic cost.
    pub init_log_std: f64,
    /// Learn the Gaussian policy's log standard deviation (default true, CleanRL's); false
    /// holds it at `init_log_std` (DeepMimic and SkillMimic use a small fixed std).
    pub learn_log_std: bool,
    /// Scale rewards by the running std of discounted returns (default false).
    pub normalize_reward: bool,
    /// Clip of normalised rewards (default 10).
    pub reward_clip: f64,
    /// Bootstrap from the final observation when the time limit cuts an episode (default true;
    /// false is CleanRL's behaviour).
    pub bootstrap_truncated: bool,
    /// D-PPO settings.
    pub dppo: DppoConfig,
    /// A 1-D CNN over the observation's trailing history slice in front of the MLPs (a
    /// `[history_encoder]` table; default: none). Needs `network = "mlp"` and an env with a
    /// history observation of as many frames (`env_config.history_len`). See
    /// [`crate::history`].
    pub history_encoder: Option<HistoryEncoderConfig>,
}

impl Default for PpoConfig {
    fn default() -> Self {
        Self {
            run: RunConfig::default(),
            algo: Algo::Ppo,
            total_timesteps: 500_000,
            learning_rate: 2.5e-4,
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
            critic_max_grad_norm: None,
            normalize_value: false,
            target_kl: None,
            kl_adaptive_lr: None,
            network: Network::Mlp,
            hidden_sizes: vec![64, 64],
            init_log_std: 0.0,
            learn_log_std: true,
            normalize_reward: false,
            reward_clip: 10.0,
            bootstrap_truncated: true,
            dppo: DppoConfig::default(),
            history_encoder: None,
        }
    }
}

impl Validate for PpoConfig {
    fn validate(&self) -> Result<(), FieldError> {
        use keel_envs::config::positive;
        let count = |field: &'static str, v: usize| {
            if v > 0 { Ok(()) } else { Err(FieldError::new(field, "must be at least 1")) }
        };
        count("num_steps", self.num_steps)?;
        count("num_minibatches", self.num_minibatches)?;
        count("update_epochs", self.update_epochs)?;
        let batch = self
            .run
            .num_envs
            .checked_mul(self.num_steps)
            .ok_or_else(|| FieldError::new("num_steps", "num_envs * num_steps is beyond any memory"))?;
        if batch % self.num_minibatches != 0 {
            return Err(FieldError::new(
                "num_minibatches",
                format!(
                    "{} does not divide the batch num_envs * num_steps = {batch} (every sample is used in every \
                     epoch); choose a divisor",
                    self.num_minibatches
                ),
            ));
        }
        if self.norm_adv && batch / self.num_minibatches < 2 {
            return Err(FieldError::new(
                "num_minibatches",
                format!(
                    "{} gives minibatches of {} sample, too few to normalise advantages (norm_adv needs 2 or more)",
                    self.num_minibatches,
                    batch / self.num_minibatches
                ),
            ));
        }
        if self.total_timesteps < batch as u64 {
            return Err(FieldError::new("total_timesteps", "is smaller than one rollout (num_envs * num_steps)"));
        }
        positive("learning_rate", self.learning_rate)?;
        for (field, v) in [("gamma", self.gamma), ("gae_lambda", self.gae_lambda)] {
            if !(0.0..=1.0).contains(&v) {
                return Err(FieldError::new(field, format!("must be in [0, 1], got {v}")));
            }
        }
        let coefficients = [
            ("learning_rate", self.learning_rate),
            ("clip_coef", self.clip_coef),
            ("max_grad_norm", self.max_grad_norm),
            ("reward_clip", self.reward_clip),
            ("ent_coef", self.ent_coef),
            ("vf_coef", self.vf_coef),
            ("dppo.ratio_threshold", self.dppo.ratio_threshold),
        ];
        for (field, v) in coefficients {
            crate::config::float32(field, v)?;
        }
        // The standard deviation exp(init_log_std) must be a finite, non-zero float32.
        if !(-80.0..=80.0).contains(&self.init_log_std) {
            return Err(FieldError::new(
                "init_log_std",
                format!("must be in [-80, 80] (exp of it a finite, non-zero float32), got {}", self.init_log_std),
            ));
        }
        positive("clip_coef", self.clip_coef)?;
        positive("max_grad_norm", self.max_grad_norm)?;
        positive("reward_clip", self.reward_clip)?;
        for (field, v) in [("ent_coef", self.ent_coef), ("vf_coef", self.vf_coef)] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(FieldError::new(field, format!("must be finite and >= 0, got {v}")));
            }
        }
        if let Some(kl) = self.target_kl {
            positive("target_kl", kl)?;
        }
        if let Some(kl) = self.kl_adaptive_lr {
            positive("kl_adaptive_lr", kl)?;
            if self.anneal_lr {
                return Err(FieldError::new(
                    "kl_adaptive_lr",
                    "sets the learning rate from the KL, while anneal_lr = true anneals it: set anneal_lr = false",
                ));
            }
            if !(MIN_ADAPTIVE_LR..=MAX_ADAPTIVE_LR).contains(&self.learning_rate) {
                return Err(FieldError::new(
                    "learning_rate",
                    format!(
                        "must be within the adaptive schedule's [{MIN_ADAPTIVE_LR}, {MAX_ADAPTIVE_LR}] with kl_adaptive_lr, got {}",
                        self.learning_rate
                    ),
                ));
            }
        }
        if let Some(bound) = self.critic_max_grad_norm {
            positive("critic_max_grad_norm", bound)?;
            crate::config::float32("critic_max_grad_norm", bound)?;
            if self.network != Network::Mlp {
                return Err(FieldError::new(
                    "critic_max_grad_norm",
                    "needs network = \"mlp\": the Nature CNN's torso is shared by actor and critic",
                ));
            }
        }
        keel_envs::config::finite("init_log_std", self.init_log_std)?;
        if self.hidden_sizes.iter().any(|&h| h < 1) {
            return Err(FieldError::new("hidden_sizes", "widths must be at least 1"));
        }
        if self.network == Network::NatureCnn && self.run.normalize_obs {
            return Err(FieldError::new(
                "normalize_obs",
                "must be false with network = \"nature_cnn\", which scales pixels by 1/255 itself",
            ));
        }
        if let Some(history) = &self.history_encoder {
            history.validate()?;
            if self.network != Network::Mlp {
                return Err(FieldError::new(
                    "history_encoder",
                    "needs network = \"mlp\" (the Nature CNN reads images, not a history slice)",
                ));
            }
        }
        if !(0.0..1.0).contains(&self.dppo.drop_rate) {
            return Err(FieldError::new("dppo.drop_rate", "must be in [0, 1)"));
        }
        positive("dppo.ratio_threshold", self.dppo.ratio_threshold)
    }
}

impl TrainConfig for PpoConfig {
    fn run(&self) -> &RunConfig {
        &self.run
    }
    fn algo(&self) -> &'static str {
        match self.algo {
            Algo::Ppo => "ppo",
            Algo::Dppo => "dppo",
        }
    }
    fn steps_per_iteration(&self) -> u64 {
        self.batch_size() as u64
    }
    fn num_iterations(&self) -> u64 {
        self.total_timesteps / self.batch_size().max(1) as u64
    }
    fn raw_obs_tail(&self) -> usize {
        self.history_encoder.as_ref().filter(|h| h.pretrain.is_some()).map_or(0, HistoryEncoderConfig::slice_len)
    }
}

impl PpoConfig {
    /// This config with `overrides` applied in order (see [`crate::config::with_overrides`]).
    pub fn with_overrides(&self, overrides: &[(String, Value)]) -> Result<Self> {
        crate::config::with_overrides(self, overrides)
    }

    /// The overrides a TOML document makes (see [`crate::config::toml_overrides`]).
    pub fn toml_overrides(text: &str) -> Result<Vec<(String, Value)>> {
        crate::config::toml_overrides(text)
    }

    /// The config as TOML (what a run folder's `config.toml` holds).
    pub fn to_toml(&self) -> Result<String> {
        crate::config::to_toml(self)
    }

    /// Envs x steps per rollout.
    pub fn batch_size(&self) -> usize {
        self.run.num_envs * self.num_steps
    }

    /// Samples per minibatch.
    pub fn minibatch_size(&self) -> usize {
        self.batch_size() / self.num_minibatches
    }
}

/// The PPO / D-PPO trainer.
pub type PpoTrainer = crate::trainer::Trainer<Ppo>;

/// The columns PPO reports per iteration.
const METRICS: &[Metric] = &[
    Metric { name: "learning_rate", tag: "charts/learning_rate" },
    Metric { name: "value_loss", tag: "losses/value_loss" },
    Metric { name: "policy_loss", tag: "losses/policy_loss" },
    Metric { name: "entropy", tag: "losses/entropy" },
    Metric { name: "old_approx_kl", tag: "losses/old_approx_kl" },
    Metric { name: "approx_kl", tag: "losses/approx_kl" },
    Metric { name: "clipfrac", tag: "losses/clipfrac" },
    Metric { name: "explained_variance", tag: "losses/explained_variance" },
    Metric { name: "surrogate_variance", tag: "losses/surrogate_variance" },
    Metric { name: "deviation_variance", tag: "losses/deviation_variance" },
    Metric { name: "kept_fraction", tag: "losses/kept_fraction" },
];

/// What one update measured, in the order of [`METRICS`].
#[derive(Clone, Copy, Debug, Default)]
struct UpdateStats {
    /// The learning rate of the update's last step.
    learning_rate: f64,
    /// Last minibatch's value loss.
    value_loss: f64,
    /// Last minibatch's policy loss.
    policy_loss: f64,
    /// Last minibatch's mean entropy.
    entropy: f64,
    /// Last minibatch's KL estimate `mean(-log r)`.
    old_approx_kl: f64,
    /// Last minibatch's KL estimate `mean((r - 1) - log r)`.
    approx_kl: f64,
    /// Mean over minibatches of the fraction of clipped ratios.
    clipfrac: f64,
    /// `1 - Var(R - V) / Var(R)` of the rollout.
    explained_variance: f64,
    /// Mean over minibatches of `Var_i(r_i Â_i)` over the samples the policy loss keeps.
    surrogate_variance: f64,
    /// Mean over minibatches of `Var_i((r_i - 1) Â_i)` over the kept samples: the part of the
    /// surrogate's variance that importance sampling adds (0 while the policy has not moved).
    deviation_variance: f64,
    /// Mean over minibatches of the fraction of samples kept in the policy loss.
    kept_fraction: f64,
}

/// Bounds of the adaptive learning rate (`kl_adaptive_lr`), rl_games' defaults.
const MIN_ADAPTIVE_LR: f64 = 1e-6;
const MAX_ADAPTIVE_LR: f64 = 1e-2;

/// The learning rate after an epoch of mean approximate KL `kl`, for a target KL `target`
/// (rl_games' adaptive schedule).
fn adapt_learning_rate(lr: f64, kl: f64, target: f64) -> f64 {
    if kl > 2.0 * target {
        (lr / 1.5).max(MIN_ADAPTIVE_LR)
    } else if kl < 0.5 * target {
        (lr * 1.5).min(MAX_ADAPTIVE_LR)
    } else {
        lr
    }
}

/// PPO / D-PPO: actor-critic networks, their Adam, and the reward and value normalisers.
pub struct Ppo {
    config: PpoConfig,
    device: Device,
    vs: nn::VarStore,
    model: ActorCritic,
    adam: Adam,
    reward_norm: Option<RewardNormalizer>,
    /// Running statistics of the returns the critic is fitted to (`normalize_value`).
    value_norm: Option<RunningMeanStd>,
    /// The learning rate the adaptive schedule has reached (`kl_adaptive_lr`).
    adaptive_lr: Option<f64>,
    /// Which of the optimiser's parameters are the critic's (`critic_max_grad_norm`).
    critic_params: Vec<bool>,
    /// What the history encoder's pretraining measured, if it was pretrained.
    pretrain_report: Option<PretrainReport>,
}

/// The state a checkpoint keeps besides tensors.
#[derive(Serialize, Deserialize)]
struct PpoState {
    reward_normalizer: Option<RewardNormalizer>,
    /// The history encoder's pretraining report (for the record; pretraining is redone, with
    /// the same result, when the run is rebuilt, and the checkpoint's weights replace it).
    #[serde(default)]
    history_pretrain: Option<PretrainReport>,
    /// The critic's return statistics (`normalize_value`).
    #[serde(default)]
    value_normalizer: Option<RunningMeanStd>,
    /// The adaptive schedule's learning rate (`kl_adaptive_lr`).
    #[serde(default)]
    adaptive_learning_rate: Option<f64>,
}

impl Algorithm for Ppo {
    type Config = PpoConfig;

    fn new(config: &PpoConfig, spec: &EnvSpec, input_width: usize, device: Device) -> Result<Self> {
        let outputs = match &spec.action_space {
            keel_envs::Space::Discrete(d) => usize::try_from(d.n).unwrap_or(usize::MAX),
            other => other.flat_len(),
        };
        // With a history encoder the MLPs read the observation with its history slice encoded.
        let mlp_width = match &config.history_encoder {
            Some(h) => {
                h.check_env(&config.run.env_id, &config.run.env_config, spec)?;
                input_width - h.slice_len() + h.output_dim as usize
            }
            None => input_width,
        };
        check_memory(config, &spec.observation_space, mlp_width, outputs)?;
        let vs = nn::VarStore::new(device);
        let mut pretrain_report = None;
        let model = match config.network {
            Network::Mlp => {
                let model = ActorCritic::new(
                    &vs.root(),
                    mlp_width as i64,
                    &spec.action_space,
                    &config.hidden_sizes,
                    config.init_log_std,
                )?;
                match &config.history_encoder {
                    None => model,
                    Some(h) => {
                        let path = vs.root() / "history";
                        let encoder = match &h.pretrain {
                            None => HistoryEncoder::new(&path, h, true),
                            Some(p) => {
                                // Pretrained on the clips, then fixed: kept out of the optimiser.
                                let frames = crate::history::clip_frames(
                                    &config.run.env_id,
                                    &config.run.env_config,
                                    &p.clips,
                                    h.frame_dim,
                                )?;
                                let stride =
                                    config.run.env_config.get("history_stride").and_then(Value::as_u64).unwrap_or(1)
                                        as usize;
                                let (_pretrain_vs, trained, report) =
                                    crate::history::pretrain(h, &frames, stride, device)?;
                                let fixed = HistoryEncoder::new(&path, h, false);
                                fixed.copy_from(&trained);
                                pretrain_report = Some(report);
                                fixed
                            }
                        };
                        model.with_history(encoder)?
                    }
                }
            }
            Network::NatureCnn => {
                ActorCritic::nature_cnn(&vs.root(), &spec.observation_space, &spec.action_space, config.init_log_std)?
            }
        };
        if !config.learn_log_std {
            model.freeze_log_std();
        }
        let adam = Adam::new(&vs, 1e-5);
        let critic: Vec<usize> = (vs.variables().into_iter())
            .filter(|(name, _)| name.starts_with("critic"))
            .map(|(_, t)| t.data_ptr() as usize)
            .collect();
        let critic_params = adam.parameters().iter().map(|p| critic.contains(&(p.data_ptr() as usize))).collect();
        let reward_norm = config
            .normalize_reward
            .then(|| RewardNormalizer::new(config.run.num_envs, config.gamma, config.reward_clip));
        Ok(Self {
            config: config.clone(),
            device,
            vs,
            model,
            adam,
            reward_norm,
            value_norm: config.normalize_value.then(|| RunningMeanStd::new(1)),
            adaptive_lr: config.kl_adaptive_lr.map(|_| config.learning_rate),
            critic_params,
            pretrain_report,
        })
    }

    fn metrics(&self) -> &'static [Metric] {
        METRICS
    }

    /// A rollout of `num_steps` steps, then `update_epochs` epochs of minibatch updates.
    fn iterate(&mut self, envs: &mut Envs, schedule: Schedule) -> Result<Vec<f64>> {
        let cfg = self.config.clone();
        let lr = if let Some(lr) = self.adaptive_lr {
            lr
        } else if cfg.anneal_lr {
            (1.0 - (schedule.iteration - 1) as f64 / schedule.iterations as f64) * cfg.learning_rate
        } else {
            cfg.learning_rate
        };
        let mut rollout = Rollout::new(cfg.num_steps, envs.num_envs());
        let mut obs = envs.observe();
        for _ in 0..cfg.num_steps {
            let input = envs.encoder().input(&obs);
            let (sample, value) = tch::no_grad(|| self.model.sample_and_value(&input, false));
            let value = self.denormalized(value);
            rollout.push(&obs, envs.dones(), &sample.action, &sample.log_prob, &value);
            let step = envs.step(&sample.action)?;
            let mut rewards = step.reward;
            if let Some(norm) = &mut self.reward_norm {
                norm.apply(&mut rewards, &step.terminated);
            }
            // The time limit, not the MDP, ended these episodes: their last observation still
            // has value, which the autoreset would otherwise lose.
            let cut: Vec<(i64, usize)> = (step.ended.iter().enumerate())
                .filter(|&(_, &i)| step.truncated[i] && !step.terminated[i])
                .map(|(row, &i)| (row as i64, i))
                .collect();
            if cfg.bootstrap_truncated && !cut.is_empty() {
                let rows =
                    Tensor::from_slice(&cut.iter().map(|&(row, _)| row).collect::<Vec<_>>()).to_device(self.device);
                let final_input = envs.encoder().input(&step.final_obs.index_select(0, &rows));
                let values = Vec::<f32>::try_from(
                    &self
                        .denormalized(tch::no_grad(|| self.model.value(&final_input)))
                        .to_device(Device::Cpu)
                        .flatten(0, -1),
                )?;
                for (k, &(_, i)) in cut.iter().enumerate() {
                    rewards[i] += cfg.gamma * f64::from(values[k]);
                }
            }
            rollout.push_rewards(&rewards);
            obs = step.obs;
        }
        let batch = rollout.finish(self.device);
        let next_input = envs.encoder().input(&obs);
        let s = self.update(&batch, &next_input, envs.dones(), envs.encoder(), lr, schedule.iteration)?;
        Ok(vec![
            s.learning_rate,
            s.value_loss,
            s.policy_loss,
            s.entropy,
            s.old_approx_kl,
            s.approx_kl,
            s.clipfrac,
            s.explained_variance,
            s.surrogate_variance,
            s.deviation_variance,
            s.kept_fraction,
        ])
    }

    fn act(&self, input: &Tensor, deterministic: bool) -> Tensor {
        self.model.sample(input, deterministic).action
    }

    fn action_probabilities(&self, input: &Tensor) -> Option<Tensor> {
        match self.model.head {
            Head::Categorical { .. } => Some(self.model.policy_output(input).softmax(-1, Kind::Float)),
            Head::Gaussian { .. } => None,
        }
    }

    fn parameters(&self) -> Vec<(String, Tensor)> {
        checkpoint::variables(&self.vs)
    }

    fn tensors(&self) -> Vec<(String, Tensor)> {
        let mut tensors = checkpoint::variables(&self.vs);
        tensors.extend(self.adam.state());
        tensors
    }

    fn load_tensors(&mut self, saved: &[(String, Tensor)]) -> Result<()> {
        checkpoint::load_variables(&self.vs, saved)?;
        self.adam.load_state(saved)
    }

    fn state(&self) -> Result<Value> {
        let state = PpoState {
            reward_normalizer: self.reward_norm.clone(),
            history_pretrain: self.pretrain_report.clone(),
            value_normalizer: self.value_norm.clone(),
            adaptive_learning_rate: self.adaptive_lr,
        };
        serde_json::to_value(state).map_err(|e| AgentError::Checkpoint(e.to_string()))
    }

    fn load_state(&mut self, state: &Value) -> Result<()> {
        let state: PpoState =
            serde_json::from_value(state.clone()).map_err(|e| AgentError::Checkpoint(format!("PPO state: {e}")))?;
        if state.reward_normalizer.is_some() != self.reward_norm.is_some() {
            return Err(AgentError::Checkpoint("the checkpoint's normalize_reward differs from this config's".into()));
        }
        if state.value_normalizer.is_some() != self.value_norm.is_some() {
            return Err(AgentError::Checkpoint("the checkpoint's normalize_value differs from this config's".into()));
        }
        if state.adaptive_learning_rate.is_some() != self.adaptive_lr.is_some() {
            return Err(AgentError::Checkpoint("the checkpoint's kl_adaptive_lr differs from this config's".into()));
        }
        self.reward_norm = state.reward_normalizer;
        self.value_norm = state.value_normalizer;
        self.adaptive_lr = state.adaptive_learning_rate;
        Ok(())
    }
}

/// Checks, before anything is allocated, that PPO's networks and rollout fit in memory: the
/// parameters of the networks four times over (values, gradients, Adam's two moments), then
/// `num_steps * num_envs` rows of network input, actions and per-step scalars (twice: stored,
/// then flattened for the minibatches) and a minibatch's activations. Estimates, float32.
fn check_memory(config: &PpoConfig, observation: &keel_envs::Space, input_width: usize, outputs: usize) -> Result<()> {
    let hidden = &config.hidden_sizes;
    let (parameters, widest, activations_per_sample) = match config.network {
        Network::Mlp => (
            mlp_parameters(input_width, hidden, outputs.max(1)) + mlp_parameters(input_width, hidden, 1),
            hidden.iter().copied().max().unwrap_or(0).max(0) as u128,
            hidden.iter().map(|&h| h.max(1) as u128).sum::<u128>(),
        ),
        Network::NatureCnn => {
            let side = |k: usize| match observation {
                keel_envs::Space::Box(b) if b.shape.len() == 3 => b.shape[k] as i64,
                _ => 0,
            };
            let (c, h, w) = (side(0) as u128, side(1), side(2));
            let (oh, ow) =
                (NatureCnn::conv_output(h).unwrap_or(0) as u128, NatureCnn::conv_output(w).unwrap_or(0) as u128);
            let features = NATURE_FEATURES as u128;
            let convs = c * 32 * 64 + 32 + 32 * 64 * 16 + 64 + 64 * 64 * 9 + 64;
            let dense = 64 * oh * ow * features + features;
            let heads = (features + 1) * (outputs.max(1) as u128 + 1);
            // Activations: the float input and each layer's output (an upper bound).
            (convs + dense + heads, features, 2 * input_width as u128 + features)
        }
    };
    crate::config::check_memory("hidden_sizes", widest, 16 * parameters)?;
    let per_sample = 8 * (input_width as u128 + outputs as u128) + 32;
    let rollout = 2 * (config.num_steps as u128) * (config.run.num_envs as u128) * per_sample;
    let activations = 16 * (config.minibatch_size() as u128) * activations_per_sample;
    crate::config::check_memory("num_steps", config.num_steps as u128, 16 * parameters + rollout + activations)
}

/// The smallest standard deviation the value normaliser divides by (returns that never vary
/// would otherwise blow the critic's targets up).
const VALUE_STD_FLOOR: f64 = 1e-4;

/// The mean and standard deviation (floored) the value normaliser scales by.
fn value_scale(stats: &RunningMeanStd) -> (f64, f64) {
    (stats.mean[0], stats.var[0].sqrt().max(VALUE_STD_FLOOR))
}

impl Ppo {
    /// Critic outputs in return units: as they are, or with `normalize_value` scaled back by
    /// the return statistics.
    fn denormalized(&self, value: Tensor) -> Tensor {
        match &self.value_norm {
            Some(stats) => {
                let (mean, std) = value_scale(stats);
                value * std + mean
            }
            None => value,
        }
    }

    /// What the history encoder's pretraining measured (`[history_encoder.pretrain]`).
    pub fn pretrain_report(&self) -> Option<&PretrainReport> {
        self.pretrain_report.as_ref()
    }

    /// GAE over the rollout, then the clipped-surrogate updates.
    fn update(
        &mut self,
        s: &RolloutBatch,
        next_input: &Tensor,
        next_done: &[bool],
        encoder: &ObsEncoder,
        lr: f64,
        iteration: u64,
    ) -> Result<UpdateStats> {
        let cfg = self.config.clone();
        let next_value = self.denormalized(tch::no_grad(|| self.model.value(next_input)));
        let done_flags: Vec<f32> = next_done.iter().map(|&d| f32::from(u8::from(d))).collect();
        let next_done = Tensor::from_slice(&done_flags).to_device(self.device);
        let (advantages, returns) =
            tch::no_grad(|| gae(&s.rewards, &s.values, &s.starts, &next_value, &next_done, cfg.gamma, cfg.gae_lambda));
        let batch = cfg.batch_size() as i64;
        let b_obs = s.obs.flatten(0, 1);
        let b_actions = s.actions.flatten(0, 1);
        let b_log_probs = s.log_probs.flatten(0, -1);
        let b_adv = advantages.flatten(0, -1);
        let b_returns = returns.flatten(0, -1);
        let b_values = s.values.flatten(0, -1);
        // The critic's targets and old values, standardised with statistics that include this
        // rollout's returns (`normalize_value`).
        let (target_returns, target_values) = match &mut self.value_norm {
            Some(stats) => {
                let host = Vec::<f32>::try_from(&b_returns.to_device(Device::Cpu))?;
                stats.update(&host.iter().map(|&r| f64::from(r)).collect::<Vec<_>>(), host.len());
                let (mean, std) = value_scale(stats);
                ((&b_returns - mean) / std, (&b_values - mean) / std)
            }
            None => (b_returns.shallow_clone(), b_values.shallow_clone()),
        };
        let mut lr = lr;

        let mut stats = UpdateStats::default();
        let (mut clipfracs, mut variances, mut kept) = (Vec::new(), Vec::new(), Vec::new());
        let mut deviation_variances = Vec::new();
        let mb = cfg.minibatch_size() as i64;
        'epochs: for _ in 0..cfg.update_epochs {
            let mut epoch_kls = Vec::new();
            let perm = Tensor::randperm(batch, (Kind::Int64, self.device));
            for start in (0..batch - mb + 1).step_by(mb as usize) {
                let idx = perm.narrow(0, start, mb);
                let mb_input = encoder.input(&b_obs.index_select(0, &idx));
                let (new_log_prob, entropy, new_value) =
                    self.model.evaluate_and_value(&mb_input, &b_actions.index_select(0, &idx));
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
                let mb_returns = target_returns.index_select(0, &idx);
                let v_loss: Tensor = if cfg.clip_vloss {
                    let mb_values = target_values.index_select(0, &idx);
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
                    return Err(AgentError::Diverged { iteration, what: format!("loss = {loss_value}") });
                }
                self.adam.zero_grad();
                loss.backward();
                match cfg.critic_max_grad_norm {
                    None => {
                        self.adam.clip_grad_norm(cfg.max_grad_norm);
                    }
                    Some(critic_bound) => {
                        let critic = &self.critic_params;
                        self.adam.clip_grad_norm_of(cfg.max_grad_norm, |k| !critic[k]);
                        self.adam.clip_grad_norm_of(critic_bound, |k| critic[k]);
                    }
                }
                self.adam.step(lr);
                epoch_kls.push(kl);
                stats.policy_loss = pg_loss.double_value(&[]);
                stats.value_loss = v_loss.double_value(&[]);
                stats.entropy = entropy_loss.double_value(&[]);
                stats.old_approx_kl = old_kl;
                stats.approx_kl = kl;
            }
            if let (Some(target), Some(adaptive)) = (cfg.kl_adaptive_lr, &mut self.adaptive_lr) {
                let kl = epoch_kls.iter().sum::<f64>() / epoch_kls.len().max(1) as f64;
                *adaptive = adapt_learning_rate(*adaptive, kl, target);
                lr = *adaptive;
            }
            if cfg.target_kl.is_some_and(|target| stats.approx_kl > target) {
                break 'epochs;
            }
        }
        let mean = |v: &[f64]| if v.is_empty() { f64::NAN } else { v.iter().sum::<f64>() / v.len() as f64 };
        stats.clipfrac = mean(&clipfracs);
        stats.surrogate_variance = mean(&variances);
        stats.deviation_variance = mean(&deviation_variances);
        stats.kept_fraction = mean(&kept);
        stats.learning_rate = lr;
        let var_returns = b_returns.var(false).double_value(&[]);
        stats.explained_variance = if var_returns == 0.0 {
            f64::NAN
        } else {
            1.0 - (&b_returns - &b_values).var(false).double_value(&[]) / var_returns
        };
        Ok(stats)
    }
}

/// Default configs per env, embedded so `keel train --env ID` works from anywhere.
const ENV_DEFAULTS: &[(&str, &str)] = &[
    ("keel/CartPole-v1", include_str!("../../configs/ppo_cartpole.toml")),
    ("keel/Acrobot-v1", include_str!("../../configs/ppo_acrobot.toml")),
    ("keel/Pendulum-v1", include_str!("../../configs/ppo_pendulum.toml")),
    ("keel/MountainCarContinuous-v0", include_str!("../../configs/ppo_mountaincar_continuous.toml")),
    ("keel/ConvectionDiffusionReaction-v0", include_str!("../../configs/ppo_cdr.toml")),
    ("keel/PerformativeGrid-v0", include_str!("../../configs/ppo_performative.toml")),
    ("keel/HumanoidTrack-v1", include_str!("../../configs/ppo_humanoid_walk.toml")),
];

/// PPO's config file for `env_id` (TOML, from configs/), if it has one.
pub fn env_defaults(env_id: &str) -> Option<&'static str> {
    ENV_DEFAULTS.iter().find(|(id, _)| *id == env_id).map(|(_, text)| *text)
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

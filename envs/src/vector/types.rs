//! The vector engine's types: autoreset modes, executor options, reset seeds and options, and
//! the batch every call writes.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::env::{EnvSpec, ResetOptions};
use crate::error::{EnvError, Result};
use crate::obs::{ObsBuf, ObsRef};
use crate::sampler::ResetSampler;

/// What happens when a sub-env's episode ends (Gymnasium's `AutoresetMode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AutoresetMode {
    /// The ending step returns the terminal observation; the *next* step ignores that env's
    /// action, resets it and returns the reset observation with reward 0 and both flags false
    /// (Gymnasium 1.x default).
    #[default]
    NextStep,
    /// The ending step resets the env at once and returns the reset observation; the terminal
    /// observation is kept in [`Batch::final_obs`] with [`Batch::has_final_obs`] set (the
    /// Stable-Baselines3 convention).
    SameStep,
    /// No autoreset: finished envs must be reset by mask ([`VecEnv::reset_with`]); stepping
    /// one before that is an error.
    Disabled,
}

impl FromStr for AutoresetMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().replace('-', "_").as_str() {
            "next_step" | "nextstep" => Ok(Self::NextStep),
            "same_step" | "samestep" => Ok(Self::SameStep),
            "disabled" => Ok(Self::Disabled),
            _ => Err(format!("unknown autoreset mode `{s}` (next_step, same_step, disabled)")),
        }
    }
}

/// How a [`VecEnv`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VecOptions {
    /// 0: serial on the calling thread; `W >= 1`: a pool of `W` workers, the calling thread
    /// being one of them (capped at `num_envs`).
    pub workers: usize,
    /// Autoreset behaviour.
    pub autoreset_mode: AutoresetMode,
}

impl Default for VecOptions {
    fn default() -> Self {
        Self { workers: 0, autoreset_mode: AutoresetMode::NextStep }
    }
}

/// Seeds of a vector reset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seeds<'a> {
    /// Continue every env's stream.
    Continue,
    /// Env `i` gets `base + i`.
    Base(u64),
    /// One seed per env.
    PerEnv(&'a [u64]),
}

impl Seeds<'_> {
    /// The seed of env `i` (`None`: its stream continues).
    pub fn of(&self, i: usize) -> Option<u64> {
        match self {
            Seeds::Continue => None,
            Seeds::Base(s) => Some(s.wrapping_add(i as u64)),
            Seeds::PerEnv(s) => Some(s[i]),
        }
    }
}

/// Reset options of a vector reset.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum OptionsFor<'a> {
    /// The installed sampler's options for each env (defaults without a sampler).
    Sampler,
    /// The same options for every reset env.
    All(&'a ResetOptions),
    /// One set of options per env (`num_envs` of them; rows of envs not reset are ignored).
    PerEnv(&'a [ResetOptions]),
}

impl OptionsFor<'_> {
    /// The options of env `i`'s reset: the caller's, else `sampler`'s (`None`: defaults).
    pub(super) fn of(&self, i: usize, sampler: Option<&mut Box<dyn ResetSampler>>) -> Option<ResetOptions> {
        match self {
            OptionsFor::All(o) => Some((*o).clone()),
            OptionsFor::PerEnv(o) => Some(o[i].clone()),
            OptionsFor::Sampler => sampler.map(|s| s.sample(i)),
        }
    }
}

/// Checks that per-env seeds and options of a reset name `num_envs` envs.
pub(super) fn check_reset_counts(seeds: Seeds<'_>, options: OptionsFor<'_>, num_envs: usize) -> Result<()> {
    if let Seeds::PerEnv(s) = seeds {
        if s.len() != num_envs {
            return Err(EnvError::BatchShape(format!("{} seeds for {num_envs} envs", s.len())));
        }
    }
    if let OptionsFor::PerEnv(o) = options {
        if o.len() != num_envs {
            return Err(EnvError::BatchShape(format!("{} sets of reset options for {num_envs} envs", o.len())));
        }
    }
    Ok(())
}

/// The results of the last vector call, one row per env. Allocated once; every call rewrites
/// the rows of the envs it touched (a masked reset leaves the other rows as they were).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Batch {
    /// Observations, `num_envs * obs_len` values of the space's type, row `i` for env `i`.
    pub obs: ObsBuf,
    /// Rewards.
    pub reward: Vec<f64>,
    /// Terminated flags.
    pub terminated: Vec<bool>,
    /// Truncated flags.
    pub truncated: Vec<bool>,
    /// Per-step extras, `num_envs * spec.extras.len()`, row `i` for env `i` (of the reset, for
    /// an env reset this call).
    pub extras: Vec<f64>,
    /// `SameStep` only: terminal observations of envs reset this step (else empty).
    pub final_obs: ObsBuf,
    /// `SameStep` only: extras of the terminal steps of envs reset this step (else empty).
    pub final_extras: Vec<f64>,
    /// `SameStep` only: which rows of `final_obs` are set this step.
    pub has_final_obs: Vec<bool>,
    /// Return of the episode that ended this step (0 where `episode_done` is false).
    pub episode_return: Vec<f64>,
    /// Length of the episode that ended this step (0 where `episode_done` is false).
    pub episode_length: Vec<u64>,
    /// Which envs ended an episode this step.
    pub episode_done: Vec<bool>,
}

impl Batch {
    /// The batch of `num_envs` envs of `spec`; the buffers whose size the user chose are
    /// allocated fallibly.
    pub(super) fn new(num_envs: usize, spec: &EnvSpec, mode: AutoresetMode) -> Result<Self> {
        let same_step = mode == AutoresetMode::SameStep;
        let extras = num_envs * spec.extras_len();
        let obs_len = |rows: usize| rows.saturating_mul(spec.obs_len());
        let finals = if same_step { num_envs } else { 0 };
        Ok(Self {
            obs: ObsBuf::try_zeros(spec.obs_dtype(), obs_len(num_envs))?,
            reward: vec![0.0; num_envs],
            terminated: vec![false; num_envs],
            truncated: vec![false; num_envs],
            extras: crate::memory::try_filled(extras, 0.0, "extras buffer")?,
            final_obs: ObsBuf::try_zeros(spec.obs_dtype(), obs_len(finals))?,
            final_extras: vec![0.0; if same_step { extras } else { 0 }],
            has_final_obs: vec![false; num_envs],
            episode_return: vec![0.0; num_envs],
            episode_length: vec![0; num_envs],
            episode_done: vec![false; num_envs],
        })
    }
}

/// Read-only rows of a batch: the whole [`Batch`] of a sync vector ([`Batch::view`], row `i`
/// for env `i`), or one batch of an async vector ([`AsyncVecEnv::recv`], row `k` for env
/// `env_ids[k]`). Fields as [`Batch`]'s.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchView<'a> {
    /// Observations, one row per env of the view.
    pub obs: ObsRef<'a>,
    /// Rewards.
    pub reward: &'a [f64],
    /// Terminated flags.
    pub terminated: &'a [bool],
    /// Truncated flags.
    pub truncated: &'a [bool],
    /// Per-step extras, `spec.extras.len()` per row.
    pub extras: &'a [f64],
    /// `SameStep` only: terminal observations (else empty).
    pub final_obs: ObsRef<'a>,
    /// `SameStep` only: extras of the terminal steps (else empty).
    pub final_extras: &'a [f64],
    /// `SameStep` only: which rows of `final_obs` are set.
    pub has_final_obs: &'a [bool],
    /// Return of the episode that ended at this row's step (0 where `episode_done` is false).
    pub episode_return: &'a [f64],
    /// Length of that episode.
    pub episode_length: &'a [u64],
    /// Which rows ended an episode.
    pub episode_done: &'a [bool],
    /// The env of each row (async); empty for a sync batch, whose row `i` is env `i`.
    pub env_ids: &'a [usize],
}

impl BatchView<'_> {
    /// Rows in the view.
    pub fn len(&self) -> usize {
        self.reward.len()
    }

    /// Whether the view has no rows.
    pub fn is_empty(&self) -> bool {
        self.reward.is_empty()
    }

    /// The env of row `k`.
    pub fn env_id(&self, k: usize) -> usize {
        self.env_ids.get(k).copied().unwrap_or(k)
    }
}

impl Batch {
    /// The whole batch as a [`BatchView`] (no env ids: row `i` is env `i`).
    pub fn view(&self) -> BatchView<'_> {
        BatchView {
            obs: self.obs.as_ref(),
            reward: &self.reward,
            terminated: &self.terminated,
            truncated: &self.truncated,
            extras: &self.extras,
            final_obs: self.final_obs.as_ref(),
            final_extras: &self.final_extras,
            has_final_obs: &self.has_final_obs,
            episode_return: &self.episode_return,
            episode_length: &self.episode_length,
            episode_done: &self.episode_done,
            env_ids: &[],
        }
    }
}

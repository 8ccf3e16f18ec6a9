//! The vector engine: many envs stepped as one, writing into one preallocated batch.
//!
//! [`VecEnv`] owns `num_envs` envs of one spec and, after each call, exposes one [`Batch`]:
//! observations in the space's element type (`num_envs` rows), rewards, `terminated`,
//! `truncated`, the per-step extras the spec declares, the terminal observations kept aside in
//! [`AutoresetMode::SameStep`], and episode statistics (return and length of every episode that
//! ended this step). The batch is allocated once and written in place by whichever thread steps
//! each env (see `rows`); stepping allocates nothing.
//!
//! Executors: serial (`workers = 0`: everything on the calling thread), or a persistent pool of
//! `W` workers, the calling thread being worker 0. The envs are split into contiguous blocks (a
//! few per worker) that the threads claim one by one, so the calling thread takes over the
//! blocks of a worker the OS has not scheduled yet instead of waiting for it. Every env owns its
//! random stream, so results are bit-identical whatever the worker count. The pool's workers
//! spin briefly between steps (a vector step of cheap envs takes microseconds, less than a
//! thread wake-up) and then park, so they do not hold cores while a learner computes.
//!
//! Resets: [`VecEnv::reset_with`] takes seeds, options for all envs or one set per env, and a
//! mask. A [`ResetSampler`] installed with [`VecEnv::set_sampler`] chooses the options of every
//! reset and autoreset that the caller did not give options for, and hears how every episode
//! ended; it is called on the calling thread in env order, so results do not depend on the
//! worker count (see [`crate::sampler`]).
//!
//! Failures: an env error or panic in the middle of a vector step or reset leaves some envs
//! stepped and others not. The vector is then *poisoned*: every call fails with
//! [`EnvError::Poisoned`], naming the env and the cause, until a full reset succeeds. Errors
//! found before any env runs (bad actions, seeds, masks) change nothing. An env that panicked
//! is not trusted again (its state may be torn mid-step, as a physics world's or an emulator's
//! would be): the full reset replaces it with a new one, made as the vector made its envs
//! ([`VecEnv::make`], [`VecEnv::from_factory`]); a vector of envs given by value
//! ([`VecEnv::new`]) cannot, and stays poisoned. A panic that escapes an env's guard (a panic
//! payload whose drop panics) fails its block the same way; no thread waits for it.
//!
//! Autoreset follows Gymnasium 1.x ([`AutoresetMode`]). Env `i` of a vector reset with seed `s`
//! is seeded `s + i`, as Gymnasium's `make_vec`.
//!
//! [`AsyncVecEnv`] is the EnvPool-style async counterpart (`send` actions for some envs, `recv`
//! the first `batch_size` that finished, with their ids), built on the same per-env stepping.

mod async_env;
mod rows;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{Builder, JoinHandle};

use crossbeam::utils::Backoff;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::env::{Env, EnvSpec, EpisodeCount, ResetOptions};
use crate::error::{EnvError, Result};
use crate::obs::{ObsBuf, ObsRef};
use crate::registry;
use crate::sampler::{EpisodeEnd, ResetSampler};
use crate::space::{Action, DType, Space};
pub use async_env::{AsyncVecEnv, HeldBatch};
use rows::{Rows, SharedBatch};

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
    fn new(num_envs: usize, spec: &EnvSpec, mode: AutoresetMode) -> Result<Self> {
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

/// The actions of a block, in the action space's type.
enum ActionRows {
    Int(Vec<i64>),
    F32(Vec<f32>),
    F64(Vec<f64>),
}

impl ActionRows {
    fn new(space: &Space, len: usize) -> Self {
        match space {
            Space::Box(b) if b.dtype == DType::Float64 => ActionRows::F64(vec![0.0; len]),
            Space::Box(_) => ActionRows::F32(vec![0.0; len]),
            _ => ActionRows::Int(vec![0; len]),
        }
    }

    /// Copies rows of `actions` in. The callers have checked the batch against the space, so
    /// the actions are of the kind the rows hold (or `float32` for `float64` rows, widened).
    /// Rows of any other kind take the actions as they come, in their own type, so that every
    /// env is handed exactly what was sent (and rejects it itself); no row is left stale.
    fn fill(&mut self, actions: Action<'_>, rows: std::ops::Range<usize>) {
        match (&mut *self, actions) {
            (ActionRows::Int(out), Action::Int(a)) => out.copy_from_slice(&a[rows]),
            (ActionRows::F32(out), Action::Float(a)) => out.copy_from_slice(&a[rows]),
            (ActionRows::F64(out), Action::Float64(a)) => out.copy_from_slice(&a[rows]),
            (ActionRows::F64(out), Action::Float(a)) => {
                out.iter_mut().zip(&a[rows]).for_each(|(o, &v)| *o = f64::from(v));
            }
            // Allocates, but only for a kind of action that `check_batch` refuses.
            (_, Action::Int(a)) => *self = ActionRows::Int(a[rows].to_vec()),
            (_, Action::Float(a)) => *self = ActionRows::F32(a[rows].to_vec()),
            (_, Action::Float64(a)) => *self = ActionRows::F64(a[rows].to_vec()),
        }
    }

    #[inline(always)]
    fn row(&self, k: usize, width: usize) -> Action<'_> {
        let r = k * width..(k + 1) * width;
        match self {
            ActionRows::Int(v) => Action::Int(&v[r]),
            ActionRows::F32(v) => Action::Float(&v[r]),
            ActionRows::F64(v) => Action::Float64(&v[r]),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Command {
    Step,
    Reset,
    /// `SameStep` with a sampler: reset the envs whose episode ended this step, with the
    /// options the sampler chose after hearing how the episode went.
    ResetPending,
}

/// A contiguous run of envs and their bookkeeping: the unit of work of a worker.
struct Chunk {
    envs: Vec<Box<dyn Env>>,
    /// Index of the first env in the vector.
    start: usize,
    action_len: usize,
    extras_len: usize,
    mode: AutoresetMode,
    /// Keep each episode's options (a sampler hears them at the episode's end) and leave
    /// `SameStep` resets to [`Command::ResetPending`].
    with_sampler: bool,
    /// The env's episode has ended and its next command resets it (NextStep; SameStep with a
    /// sampler between the two phases of a step).
    needs_reset: Vec<bool>,
    running_return: Vec<f64>,
    running_length: Vec<u64>,
    /// Per env, the running sum of each extra over the current episode.
    extras_sum: Vec<f64>,
    /// Per env, the mean of each extra over the episode that ended this step.
    ended_extras_mean: Vec<f64>,
    /// Options of each env's next reset (`None`: defaults).
    pending: Vec<Option<ResetOptions>>,
    /// Options each env's current episode started with (kept with a sampler only).
    episode_options: Vec<ResetOptions>,
    // Inputs of the next command.
    command: Command,
    actions: ActionRows,
    seeds: Vec<Option<u64>>,
    reset_mask: Vec<bool>,
    // Outputs.
    result: Result<()>,
    /// Episodes that ended in the last step.
    ended: usize,
    /// The env being run, for the error report of a panic.
    current: usize,
    /// Envs that panicked: a full reset replaces them (see the module docs).
    panicked: Vec<bool>,
}

impl Chunk {
    fn new(envs: Vec<Box<dyn Env>>, start: usize, spec: &EnvSpec, mode: AutoresetMode) -> Self {
        let n = envs.len();
        let (action_len, extras_len) = (spec.action_len(), spec.extras_len());
        Self {
            envs,
            start,
            action_len,
            extras_len,
            mode,
            with_sampler: false,
            needs_reset: vec![false; n],
            running_return: vec![0.0; n],
            running_length: vec![0; n],
            extras_sum: vec![0.0; n * extras_len],
            ended_extras_mean: vec![0.0; n * extras_len],
            pending: vec![None; n],
            episode_options: vec![ResetOptions::default(); n],
            command: Command::Step,
            actions: ActionRows::new(&spec.action_space, n * action_len),
            seeds: vec![None; n],
            reset_mask: vec![true; n],
            result: Ok(()),
            ended: 0,
            current: 0,
            panicked: vec![false; n],
        }
    }

    /// Replaces every env of the chunk that panicked with a new one from `factory`, carrying
    /// over its persistent parameters; an env that cannot be replaced (no factory, a failing
    /// one, one of another spec) is an error naming it, and the envs after it stay as they are.
    pub(super) fn replace_panicked(&mut self, factory: Option<&EnvFactory>, spec: &EnvSpec) -> Result<()> {
        for k in 0..self.envs.len() {
            if !self.panicked[k] {
                continue;
            }
            let index = self.start + k;
            let cannot = |cause: String| EnvError::Poisoned { index, cause };
            let Some(factory) = factory else {
                return Err(cannot(
                    "it panicked, and a vector of envs given by value cannot replace it; make a new vector".into(),
                ));
            };
            let mut env =
                factory().map_err(|e| cannot(format!("it panicked, and making its replacement failed: {e}")))?;
            let new_spec = env.spec();
            if new_spec.observation_space != spec.observation_space
                || new_spec.action_space != spec.action_space
                || new_spec.extras != spec.extras
            {
                return Err(cannot("it panicked, and its replacement has other spaces or extras".into()));
            }
            let params = self.envs[k].params();
            if let Value::Object(map) = &params {
                if params != env.params() {
                    env.set_params(map).map_err(|e| {
                        cannot(format!("it panicked, and its parameters do not fit its replacement: {e}"))
                    })?;
                }
            }
            self.envs[k] = env;
            self.panicked[k] = false;
        }
        Ok(())
    }

    fn run(&mut self, rows: &mut Rows<'_>) {
        self.ended = 0;
        self.result = match self.command {
            Command::Step => self.step(rows),
            Command::Reset => self.reset(rows),
            Command::ResetPending => self.reset_pending(rows),
        };
    }

    /// Resets env `k` with `seed` and its pending options, writing its observation and extras
    /// (not its reward and flags: a same-step autoreset keeps those of the ending step).
    fn reset_env(&mut self, k: usize, seed: Option<u64>, rows: &mut Rows<'_>) -> Result<()> {
        self.current = k;
        let options = self.pending[k].take().unwrap_or_default();
        self.envs[k].reset(seed, &options, rows.obs.row(k))?;
        let e = self.extras_len;
        if e > 0 {
            self.envs[k].write_extras(&mut rows.extras[k * e..(k + 1) * e]);
            self.extras_sum[k * e..(k + 1) * e].fill(0.0);
        }
        if self.with_sampler {
            self.episode_options[k] = options;
        }
        self.needs_reset[k] = false;
        self.running_return[k] = 0.0;
        self.running_length[k] = 0;
        Ok(())
    }

    fn clear_step(k: usize, rows: &mut Rows<'_>) {
        rows.reward[k] = 0.0;
        rows.terminated[k] = false;
        rows.truncated[k] = false;
    }

    fn reset(&mut self, rows: &mut Rows<'_>) -> Result<()> {
        for k in 0..self.envs.len() {
            if self.reset_mask[k] {
                self.reset_env(k, self.seeds[k], rows)?;
                Self::clear_step(k, rows);
                rows.has_final_obs[k] = false;
                rows.episode_done[k] = false;
                rows.episode_return[k] = 0.0;
                rows.episode_length[k] = 0;
            }
        }
        Ok(())
    }

    fn reset_pending(&mut self, rows: &mut Rows<'_>) -> Result<()> {
        for k in 0..self.envs.len() {
            if self.needs_reset[k] {
                self.reset_env(k, None, rows)?;
            }
        }
        Ok(())
    }

    fn step(&mut self, rows: &mut Rows<'_>) -> Result<()> {
        let (al, e) = (self.action_len, self.extras_len);
        rows.episode_done.fill(false);
        rows.episode_return.fill(0.0);
        rows.episode_length.fill(0);
        rows.has_final_obs.fill(false);
        for k in 0..self.envs.len() {
            if self.needs_reset[k] {
                // NextStep: this step is the reset; the action is ignored.
                self.reset_env(k, None, rows)?;
                Self::clear_step(k, rows);
                continue;
            }
            self.current = k;
            let step = self.envs[k].step(self.actions.row(k, al), rows.obs.row(k))?;
            if e > 0 {
                let extras = &mut rows.extras[k * e..(k + 1) * e];
                self.envs[k].write_extras(extras);
                self.extras_sum[k * e..(k + 1) * e].iter_mut().zip(extras.iter()).for_each(|(s, x)| *s += x);
            }
            rows.reward[k] = step.reward;
            rows.terminated[k] = step.terminated;
            rows.truncated[k] = step.truncated;
            self.running_return[k] += step.reward;
            self.running_length[k] += 1;
            if step.terminated || step.truncated {
                self.ended += 1;
                let length = self.running_length[k];
                for j in k * e..(k + 1) * e {
                    self.ended_extras_mean[j] = self.extras_sum[j] / length as f64;
                }
                let counted = match self.envs[k].episode_count() {
                    EpisodeCount::Engine => Some((self.running_return[k], length)),
                    EpisodeCount::Ended { episode_return, length } => Some((episode_return, length)),
                    EpisodeCount::Continues => None,
                };
                if let Some((episode_return, length)) = counted {
                    rows.episode_done[k] = true;
                    rows.episode_return[k] = episode_return;
                    rows.episode_length[k] = length;
                }
                match self.mode {
                    AutoresetMode::NextStep => self.needs_reset[k] = true,
                    AutoresetMode::SameStep => {
                        rows.obs.keep_final(k);
                        rows.final_extras[k * e..(k + 1) * e].copy_from_slice(&rows.extras[k * e..(k + 1) * e]);
                        rows.has_final_obs[k] = true;
                        if self.with_sampler {
                            self.needs_reset[k] = true; // reset by `ResetPending`
                        } else {
                            self.reset_env(k, None, rows)?;
                        }
                    }
                    AutoresetMode::Disabled => {}
                }
            }
        }
        Ok(())
    }
}

/// Blocks of envs per worker: more blocks balance uneven envs and let the calling thread take
/// over the work of a worker the OS has descheduled; fewer cost fewer hand-offs.
const BLOCKS_PER_WORKER: usize = 4;

/// Shared state of one pool: the caller publishes a command by bumping `generation`; every
/// thread (the caller included) then claims blocks through `next_block` until none is left.
struct Signal {
    generation: AtomicU64,
    next_block: AtomicUsize,
    blocks_done: AtomicUsize,
    shutdown: AtomicBool,
}

fn lock(chunk: &Mutex<Chunk>) -> MutexGuard<'_, Chunk> {
    // A panicking env is caught inside the lock, so poisoning cannot happen; recover anyway.
    chunk.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into())
}

/// Runs one claimed block on its rows of the batch, turning a panic into an error.
fn run_block(chunk: &mut Chunk, batch: &SharedBatch) {
    let n = chunk.envs.len();
    // SAFETY: this thread claimed this block through `next_block` (each index is handed out
    // once per command) and blocks cover disjoint rows; see `rows`.
    #[allow(unsafe_code)]
    let mut rows = unsafe { batch.rows(chunk.start, n) };
    run_chunk(chunk, &mut rows);
}

/// Runs `chunk`'s command on `rows`, turning a panic into an error.
#[inline(always)]
fn run_chunk(chunk: &mut Chunk, rows: &mut Rows<'_>) {
    if let Err(panic) = catch_unwind(AssertUnwindSafe(|| chunk.run(rows))) {
        let k = chunk.current;
        chunk.panicked[k] = true;
        chunk.result = Err(EnvError::EnvPanicked { index: chunk.start + k, message: panic_message(&*panic) });
    }
}

/// The error that poisons a vector after `err` in env `index` (the env a panic names wins).
/// The spec that every env of a vector shares: spaces and extras equal to env 0's.
fn common_spec(envs: &[Box<dyn Env>]) -> Result<EnvSpec> {
    let Some(first) = envs.first() else {
        return Err(EnvError::BatchShape("a vector env needs at least one env".into()));
    };
    let spec = first.spec().clone();
    if let Some(i) = envs.iter().position(|e| {
        let s = e.spec();
        s.observation_space != spec.observation_space || s.action_space != spec.action_space || s.extras != spec.extras
    }) {
        return Err(EnvError::BatchShape(format!("env {i} has other spaces or extras than env 0")));
    }
    Ok(spec)
}

fn poison_cause(err: &EnvError, index: usize) -> EnvError {
    let (index, cause) = match err {
        EnvError::EnvPanicked { index, message } => (*index, format!("panicked: {message}")),
        other => (index, other.to_string()),
    };
    EnvError::Poisoned { index, cause }
}

/// A block claimed by this thread: counted done when it is left, normally or by a panic that
/// escaped the env's guard in [`run_chunk`] (a panic payload whose drop panics). Such a block
/// fails, naming its env, instead of leaving the caller waiting for it forever.
struct Claimed<'a> {
    block: &'a Mutex<Chunk>,
    signal: &'a Signal,
}

impl Drop for Claimed<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let mut chunk = lock(self.block);
            let k = chunk.current;
            if let Some(p) = chunk.panicked.get_mut(k) {
                *p = true;
            }
            if !matches!(chunk.result, Err(EnvError::EnvPanicked { .. })) {
                let message = "a panic escaped the env's guard and unwound its thread".into();
                chunk.result = Err(EnvError::EnvPanicked { index: chunk.start + k, message });
            }
        }
        // After the block's lock is released (the guard outlives it): the caller may lock it.
        self.signal.blocks_done.fetch_add(1, Ordering::AcqRel);
    }
}

/// Claims and runs blocks until none is left. Which thread runs a block does not matter: each
/// env's result depends only on its own state.
fn drain_blocks(blocks: &[Arc<Mutex<Chunk>>], batch: &SharedBatch, signal: &Signal) {
    loop {
        let b = signal.next_block.fetch_add(1, Ordering::AcqRel);
        let Some(block) = blocks.get(b) else { return };
        let _claimed = Claimed { block, signal };
        run_block(&mut lock(block), batch);
    }
}

/// [`drain_blocks`] until none is left, also after a panic that escaped an env's guard: that
/// block has failed (see [`Claimed`]) and the others still need a thread. The escaped panic's
/// payload is forgotten, not dropped: dropping it could panic again.
fn drain_all(blocks: &[Arc<Mutex<Chunk>>], batch: &SharedBatch, signal: &Signal) {
    while let Err(payload) = catch_unwind(AssertUnwindSafe(|| drain_blocks(blocks, batch, signal))) {
        std::mem::forget(payload);
    }
}

fn worker_loop(blocks: Arc<[Arc<Mutex<Chunk>>]>, batch: Arc<SharedBatch>, signal: Arc<Signal>) {
    let mut seen = 0u64;
    loop {
        // Spin, then yield, then park: a vector step of cheap envs takes microseconds, less than
        // a thread wake-up, but a worker must not hold a core while a learner computes.
        let backoff = Backoff::new();
        loop {
            if signal.shutdown.load(Ordering::Acquire) {
                return;
            }
            let generation = signal.generation.load(Ordering::Acquire);
            if generation != seen {
                seen = generation;
                break;
            }
            if backoff.is_completed() {
                // The caller unparks every worker after bumping the generation, and an unpark
                // that comes first makes this return at once: no wake-up is lost.
                std::thread::park();
            } else {
                backoff.snooze();
            }
        }
        drain_all(&blocks, &batch, &signal);
    }
}

/// Starts pool worker `w` of `workers` with `builder`; the OS refusing (too many threads, too
/// little memory) is a [`EnvError::WorkerSpawn`] naming the worker.
fn spawn_worker(
    builder: Builder,
    w: usize,
    workers: usize,
    work: impl FnOnce() + Send + 'static,
) -> Result<JoinHandle<()>> {
    builder.spawn(work).map_err(|e| EnvError::WorkerSpawn { worker: w, workers, cause: e.to_string() })
}

/// Blocks of envs, the shared batch, and the worker threads (none when serial).
struct Pool {
    blocks: Arc<[Arc<Mutex<Chunk>>]>,
    starts: Vec<usize>,
    threads: Vec<JoinHandle<()>>,
    signal: Arc<Signal>,
    batch: Arc<SharedBatch>,
    /// Episodes that ended in the last command, over all blocks.
    ended: usize,
}

impl Pool {
    fn new(mut envs: Vec<Box<dyn Env>>, spec: &EnvSpec, mode: AutoresetMode, workers: usize) -> Result<Self> {
        let num_envs = envs.len();
        let num_blocks = if workers <= 1 { 1 } else { (workers * BLOCKS_PER_WORKER).min(num_envs) };
        let mut blocks = Vec::with_capacity(num_blocks);
        let mut starts = Vec::with_capacity(num_blocks);
        for b in (0..num_blocks).rev() {
            let start = b * num_envs / num_blocks;
            starts.push(start);
            blocks.push(Arc::new(Mutex::new(Chunk::new(envs.split_off(start), start, spec, mode))));
        }
        blocks.reverse();
        starts.reverse();
        let signal = Arc::new(Signal {
            generation: AtomicU64::new(0),
            next_block: AtomicUsize::new(num_blocks),
            blocks_done: AtomicUsize::new(0),
            shutdown: AtomicBool::new(false),
        });
        let batch = Arc::new(SharedBatch::new(Batch::new(num_envs, spec, mode)?, num_envs));
        let mut pool = Self { blocks: blocks.into(), starts, threads: Vec::new(), signal, batch, ended: 0 };
        // The calling thread is worker 0; spawn the others.
        for w in 1..workers {
            let (blocks, batch, signal) = (Arc::clone(&pool.blocks), Arc::clone(&pool.batch), Arc::clone(&pool.signal));
            let builder = Builder::new().name(format!("keel-env-worker-{w}"));
            // On an error, dropping `pool` stops the workers already started.
            pool.threads.push(spawn_worker(builder, w, workers, move || worker_loop(blocks, batch, signal))?);
        }
        Ok(pool)
    }

    /// The batch of the last command.
    fn batch(&self) -> &Batch {
        // SAFETY: commands run in `run(&mut self)`, which returns only after every block is
        // done (acquired); `&self` keeps the next from starting while the reference lives.
        #[allow(unsafe_code)]
        unsafe {
            self.batch.batch()
        }
    }

    /// Runs the command every block holds; the first error (in env order) is returned.
    fn run(&mut self) -> Result<()> {
        let num_blocks = self.blocks.len();
        // Inputs are in place (the caller filled every block): publish the command.
        self.signal.blocks_done.store(0, Ordering::Release);
        self.signal.next_block.store(0, Ordering::Release);
        if !self.threads.is_empty() {
            self.signal.generation.fetch_add(1, Ordering::AcqRel);
            for t in &self.threads {
                t.thread().unpark();
            }
        }
        drain_all(&self.blocks, &self.batch, &self.signal);
        // Only blocks that a worker claimed and is still running remain; each is counted done
        // however its thread leaves it (`Claimed`), so this wait ends.
        let backoff = Backoff::new();
        while self.signal.blocks_done.load(Ordering::Acquire) < num_blocks {
            backoff.snooze();
        }
        self.ended = 0;
        for block in self.blocks.iter() {
            let block = lock(block);
            if let Err(e) = &block.result {
                return Err(e.clone());
            }
            self.ended += block.ended;
        }
        Ok(())
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.signal.shutdown.store(true, Ordering::Release);
        for t in &self.threads {
            t.thread().unpark();
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Makes one sub-env afresh, as a vector made its envs: what replaces an env that panicked.
pub type EnvFactory = Arc<dyn Fn() -> Result<Box<dyn Env>> + Send + Sync>;

/// `num_envs` envs of one spec stepped as one (see the module docs).
pub struct VecEnv {
    spec: EnvSpec,
    num_envs: usize,
    options: VecOptions,
    pool: Pool,
    /// Whether each env's episode has ended (cleared by its reset); guards `Disabled` mode.
    finished: Vec<bool>,
    was_reset: bool,
    episodes_completed: u64,
    sampler: Option<Box<dyn ResetSampler>>,
    /// Set when an env failed in the middle of a call; cleared by a full reset.
    poisoned: Option<EnvError>,
    /// Makes the envs that replace panicked ones (`None` for envs given by value).
    factory: Option<EnvFactory>,
}

impl VecEnv {
    /// Makes `num_envs` copies of the registered env `id` with config `overrides`. A vector
    /// that would not fit in memory (envs and batch) is refused before any env is made.
    pub fn make(id: &str, overrides: &Map<String, Value>, num_envs: usize, options: VecOptions) -> Result<Self> {
        let registration = registry::lookup(id)?;
        let spec = registration.spec_for(overrides)?;
        let per_env = u128::from(registration.memory_estimate(overrides)?) + Self::row_bytes(&spec, options);
        crate::memory::check("num_envs", num_envs as u128, (num_envs as u128) * per_env).map_err(|e| {
            EnvError::InvalidField { context: format!("{id} vector"), field: e.field.into(), message: e.message }
        })?;
        let overrides = overrides.clone();
        Self::from_factory(num_envs, options, Arc::new(move || registration.make(&overrides)))
    }

    /// A vector of `num_envs` envs made by `factory`, which also makes the env that replaces
    /// one that panicked, at the next full reset.
    pub fn from_factory(num_envs: usize, options: VecOptions, factory: EnvFactory) -> Result<Self> {
        let envs = (0..num_envs).map(|_| factory()).collect::<Result<Vec<_>>>()?;
        let mut venv = Self::new(envs, options)?;
        venv.factory = Some(factory);
        Ok(venv)
    }

    /// Bytes of one env's rows in the batch and of its bookkeeping.
    fn row_bytes(spec: &EnvSpec, options: VecOptions) -> u128 {
        let copies = if options.autoreset_mode == AutoresetMode::SameStep { 2 } else { 1 };
        let obs = spec.obs_len() as u128 * spec.obs_dtype().size() as u128;
        let extras = 8 * spec.extras_len() as u128;
        copies * (obs + extras) + 8 * spec.action_len() as u128 + 256
    }

    /// A vector over `envs`, which must share one spec. It cannot replace an env that panics:
    /// after a panic it stays poisoned (use [`VecEnv::from_factory`] to allow that).
    pub fn new(envs: Vec<Box<dyn Env>>, options: VecOptions) -> Result<Self> {
        let spec = common_spec(&envs)?;
        let num_envs = envs.len();
        let pool = Pool::new(envs, &spec, options.autoreset_mode, options.workers.min(num_envs))?;
        Ok(Self {
            spec,
            num_envs,
            options,
            pool,
            finished: vec![false; num_envs],
            was_reset: false,
            episodes_completed: 0,
            sampler: None,
            poisoned: None,
            factory: None,
        })
    }

    /// The spec of each sub-env.
    pub fn spec(&self) -> &EnvSpec {
        &self.spec
    }

    /// Number of sub-envs.
    pub fn num_envs(&self) -> usize {
        self.num_envs
    }

    /// The executor and autoreset options.
    pub fn options(&self) -> VecOptions {
        self.options
    }

    /// Episodes completed since construction.
    pub fn episodes_completed(&self) -> u64 {
        self.episodes_completed
    }

    /// The results of the last `reset` or `step`. The buffers stay at the same addresses for
    /// the vector's whole life (Python hands them to numpy without copying).
    pub fn batch(&self) -> &Batch {
        self.pool.batch()
    }

    /// The error that poisoned the vector, if an env failed in the middle of a call.
    pub fn poisoned(&self) -> Option<&EnvError> {
        self.poisoned.as_ref()
    }

    fn usable(&self) -> Result<()> {
        match &self.poisoned {
            None => Ok(()),
            Some(cause) => Err(cause.clone()),
        }
    }

    /// Installs `sampler` (or removes it with `None`): from now on it chooses the options of
    /// every reset the caller gives none for (see [`crate::sampler`]).
    pub fn set_sampler(&mut self, sampler: Option<Box<dyn ResetSampler>>) -> Result<()> {
        let mut sampler = sampler;
        if let Some(s) = &mut sampler {
            s.attach(&self.spec, self.num_envs)?;
        }
        let with_sampler = sampler.is_some();
        self.for_each_chunk(|chunk| chunk.with_sampler = with_sampler);
        self.sampler = sampler;
        Ok(())
    }

    /// The installed sampler.
    pub fn sampler(&self) -> Option<&dyn ResetSampler> {
        self.sampler.as_deref()
    }

    /// The installed sampler, mutably.
    pub fn sampler_mut(&mut self) -> Option<&mut (dyn ResetSampler + 'static)> {
        self.sampler.as_deref_mut()
    }

    /// Resets every env; env `i` is seeded `seed + i` (none: streams continue). Options come
    /// from the sampler, if one is installed.
    pub fn reset(&mut self, seed: Option<u64>) -> Result<()> {
        let seeds = seed.map_or(Seeds::Continue, Seeds::Base);
        self.reset_with(seeds, OptionsFor::Sampler, None)
    }

    /// Resets the envs selected by `mask` (all when `None`) with `seeds` and `options`. Invalid
    /// seeds, mask or option counts are rejected before any env changes; an env that rejects
    /// its options poisons the vector until a full reset succeeds.
    pub fn reset_with(&mut self, seeds: Seeds<'_>, options: OptionsFor<'_>, mask: Option<&[bool]>) -> Result<()> {
        let n = self.num_envs;
        if mask.is_some() {
            self.usable()?;
        }
        if let Seeds::PerEnv(s) = seeds {
            if s.len() != n {
                return Err(EnvError::BatchShape(format!("{} seeds for {n} envs", s.len())));
            }
        }
        if let OptionsFor::PerEnv(o) = options {
            if o.len() != n {
                return Err(EnvError::BatchShape(format!("{} sets of reset options for {n} envs", o.len())));
            }
        }
        if let Some(m) = mask {
            if m.len() != n {
                return Err(EnvError::BatchShape(format!("reset mask of length {} for {n} envs", m.len())));
            }
        }
        if !self.was_reset && mask.is_some_and(|m| !m.iter().all(|&x| x)) {
            return Err(EnvError::BatchShape("the first reset must reset every env (no mask)".into()));
        }
        let selected = |i: usize| mask.is_none_or(|m| m[i]);
        // The sampler is asked on this thread, in env order, before any env runs.
        let mut chosen: Vec<Option<ResetOptions>> = vec![None; n];
        for (i, slot) in chosen.iter_mut().enumerate().filter(|(i, _)| selected(*i)) {
            *slot = match options {
                OptionsFor::All(o) => Some(o.clone()),
                OptionsFor::PerEnv(o) => Some(o[i].clone()),
                OptionsFor::Sampler => self.sampler.as_mut().map(|s| s.sample(i)),
            };
        }
        let seed_of = |i: usize| match seeds {
            Seeds::Continue => None,
            Seeds::Base(s) => Some(s.wrapping_add(i as u64)),
            Seeds::PerEnv(s) => Some(s[i]),
        };
        if mask.is_none() {
            self.replace_panicked()?;
        }
        self.for_each_chunk(|chunk| {
            chunk.command = Command::Reset;
            for k in 0..chunk.envs.len() {
                let i = chunk.start + k;
                chunk.seeds[k] = seed_of(i);
                chunk.reset_mask[k] = selected(i);
                if selected(i) {
                    chunk.pending[k] = chosen[i].take();
                }
            }
        });
        self.run_command()?;
        for i in (0..n).filter(|&i| selected(i)) {
            self.finished[i] = false;
        }
        if mask.is_none() {
            self.poisoned = None;
        }
        self.was_reset = true;
        Ok(())
    }

    /// Steps every env with its row of `actions` (`num_envs * action_len` scalars of the action
    /// space's type; a float64 Box also takes `Float`). The whole batch is validated first: a
    /// bad row rejects the call and changes no env.
    pub fn step(&mut self, actions: Action<'_>) -> Result<()> {
        self.usable()?;
        if !self.was_reset {
            return Err(EnvError::ResetNeeded);
        }
        let (n, al) = (self.num_envs, self.spec.action_len());
        self.spec.action_space.check_batch(actions, n)?;
        if self.options.autoreset_mode == AutoresetMode::Disabled {
            if let Some(index) = self.finished.iter().position(|&f| f) {
                return Err(EnvError::StepAfterDone { index });
            }
        }
        self.for_each_chunk(|chunk| {
            chunk.command = Command::Step;
            chunk.actions.fill(actions, chunk.start * al..(chunk.start + chunk.envs.len()) * al);
        });
        self.run_command()?;
        let ended = self.pool.ended;
        if ended == 0 {
            return Ok(());
        }
        // `ended` counts steps that terminated or truncated; an env whose episode goes on after
        // one (a lost life, `EpisodeCount::Continues`) completes no episode there.
        let batch = self.pool.batch();
        self.episodes_completed += batch.episode_done.iter().filter(|&&d| d).count() as u64;
        if self.options.autoreset_mode == AutoresetMode::Disabled {
            // Only `Disabled` keeps finished envs finished until a masked reset.
            for (i, finished) in self.finished.iter_mut().enumerate() {
                *finished |= batch.terminated[i] || batch.truncated[i];
            }
        }
        if self.sampler.is_some() {
            self.report_and_resample()?;
        }
        Ok(())
    }

    /// Tells the sampler how this step's episodes ended and asks it for the envs' next options
    /// (NextStep: used by the next step; SameStep: used now, by a second pass).
    fn report_and_resample(&mut self) -> Result<()> {
        let Some(sampler) = self.sampler.as_mut() else { return Ok(()) };
        let mode = self.options.autoreset_mode;
        let batch = self.pool.batch();
        let mut resets = false;
        for block in self.pool.blocks.iter() {
            let mut chunk = lock(block);
            let e = chunk.extras_len;
            for k in 0..chunk.envs.len() {
                let i = chunk.start + k;
                if !batch.episode_done[i] {
                    // A lost life (`EpisodeCount::Continues`): nothing to report, but SameStep
                    // still resets the env, with its default options.
                    resets |= batch.terminated[i] || batch.truncated[i];
                    continue;
                }
                sampler.report(&EpisodeEnd {
                    env_index: i,
                    options: &chunk.episode_options[k],
                    episode_return: batch.episode_return[i],
                    length: batch.episode_length[i],
                    terminated: batch.terminated[i],
                    truncated: batch.truncated[i],
                    extras_mean: &chunk.ended_extras_mean[k * e..(k + 1) * e],
                });
                if mode != AutoresetMode::Disabled {
                    chunk.pending[k] = Some(sampler.sample(i));
                    resets = true;
                }
            }
            chunk.command = Command::ResetPending;
        }
        if resets && mode == AutoresetMode::SameStep {
            self.run_command()?;
        }
        Ok(())
    }

    /// Sets persistent per-reset parameters on every env. All envs share one parameter type, so
    /// an invalid key or value is rejected by the first env, before any env changes.
    pub fn set_params(&mut self, params: &Map<String, Value>) -> Result<()> {
        let all: Vec<usize> = (0..self.num_envs).collect();
        self.set_params_of(&all, params)
    }

    /// Sets persistent per-reset parameters on the envs `indices`. Indices are checked and the
    /// first env validates the parameters before any env changes.
    pub fn set_params_of(&mut self, indices: &[usize], params: &Map<String, Value>) -> Result<()> {
        self.usable()?;
        if let Some(&bad) = indices.iter().find(|&&i| i >= self.num_envs) {
            return Err(EnvError::BatchShape(format!("env index {bad} out of range for {} envs", self.num_envs)));
        }
        let mut result = Ok(());
        for &i in indices {
            self.with_env(i, |env| {
                if result.is_ok() {
                    result = env.set_params(params);
                }
            });
            result.clone()?;
        }
        result
    }

    /// The persistent per-reset parameters of env `index`.
    pub fn params_of(&self, index: usize) -> Result<Value> {
        self.with_env_ref(index, |env| env.params())
    }

    /// A snapshot of every sub-env, of the engine's bookkeeping (pending autoresets and options,
    /// running episode statistics) and of the sampler, or `None` if a sub-env cannot snapshot.
    /// Restoring it into a vector made with the same id, config, options and kind of sampler
    /// continues exactly where this one stood.
    pub fn snapshot(&mut self) -> Option<Value> {
        let mut envs = Vec::with_capacity(self.num_envs);
        let (mut needs_reset, mut running_return, mut running_length) = (Vec::new(), Vec::new(), Vec::new());
        let (mut extras_sum, mut pending, mut episode_options) = (Vec::new(), Vec::new(), Vec::new());
        let mut complete = true;
        self.for_each_chunk(|chunk| {
            for env in &chunk.envs {
                match env.snapshot() {
                    Some(s) => envs.push(s),
                    None => complete = false,
                }
            }
            needs_reset.extend_from_slice(&chunk.needs_reset);
            running_return.extend_from_slice(&chunk.running_return);
            running_length.extend_from_slice(&chunk.running_length);
            extras_sum.extend_from_slice(&chunk.extras_sum);
            pending.extend_from_slice(&chunk.pending);
            episode_options.extend_from_slice(&chunk.episode_options);
        });
        complete.then(|| {
            serde_json::json!({
                "envs": envs,
                "needs_reset": needs_reset,
                "running_return": running_return,
                "running_length": running_length,
                "extras_sum": extras_sum,
                "pending": pending,
                "episode_options": episode_options,
                "finished": self.finished,
                "was_reset": self.was_reset,
                "episodes_completed": self.episodes_completed,
                "obs": self.batch().obs,
                "sampler": self.sampler.as_ref().map(|s| s.snapshot()),
            })
        })
    }

    /// Restores a [`VecEnv::snapshot`]; a malformed one is an error.
    pub fn restore(&mut self, snapshot: &Value) -> Result<()> {
        let n = self.num_envs;
        fn field<T: serde::de::DeserializeOwned>(s: &Value, key: &str) -> Result<T> {
            let value = s.get(key).cloned().ok_or_else(|| EnvError::Snapshot(format!("vector: no `{key}`")))?;
            serde_json::from_value(value).map_err(|e| EnvError::Snapshot(format!("vector: `{key}`: {e}")))
        }
        let envs: Vec<Value> = field(snapshot, "envs")?;
        let needs_reset: Vec<bool> = field(snapshot, "needs_reset")?;
        let running_return: Vec<f64> = field(snapshot, "running_return")?;
        let running_length: Vec<u64> = field(snapshot, "running_length")?;
        let extras_sum: Vec<f64> = field(snapshot, "extras_sum")?;
        let pending: Vec<Option<ResetOptions>> = field(snapshot, "pending")?;
        let episode_options: Vec<ResetOptions> = field(snapshot, "episode_options")?;
        let finished: Vec<bool> = field(snapshot, "finished")?;
        let obs: ObsBuf = field(snapshot, "obs")?;
        let e = self.spec.extras_len();
        let lengths = [
            envs.len(),
            needs_reset.len(),
            running_return.len(),
            running_length.len(),
            finished.len(),
            pending.len(),
            episode_options.len(),
        ];
        let batch = self.batch();
        if lengths.iter().any(|&l| l != n)
            || extras_sum.len() != n * e
            || obs.len() != batch.obs.len()
            || obs.dtype() != batch.obs.dtype()
        {
            return Err(EnvError::Snapshot(format!("vector: snapshot is not of {n} envs of this spec")));
        }
        let was_reset: bool = field(snapshot, "was_reset")?;
        let episodes_completed: u64 = field(snapshot, "episodes_completed")?;
        let sampler_state: Option<Value> = field(snapshot, "sampler")?;
        match (&mut self.sampler, &sampler_state) {
            (Some(s), Some(state)) => s.restore(state)?,
            (None, None) => {}
            (Some(_), None) => return Err(EnvError::Snapshot("vector: the snapshot has no sampler state".into())),
            (None, Some(_)) => {
                return Err(EnvError::Snapshot("vector: the snapshot has a sampler state; install the sampler first".into()));
            }
        }
        let mut result = Ok(());
        let mut failed = 0;
        self.for_each_chunk(|chunk| {
            for k in 0..chunk.envs.len() {
                let i = chunk.start + k;
                if result.is_ok() {
                    result = chunk.envs[k].restore(&envs[i]);
                    failed = i;
                }
                chunk.needs_reset[k] = needs_reset[i];
                chunk.running_return[k] = running_return[i];
                chunk.running_length[k] = running_length[i];
                chunk.pending[k].clone_from(&pending[i]);
                chunk.episode_options[k].clone_from(&episode_options[i]);
                let ke = k * e..(k + 1) * e;
                chunk.extras_sum[ke].copy_from_slice(&extras_sum[i * e..(i + 1) * e]);
            }
        });
        if let Err(err) = result {
            self.poisoned = Some(EnvError::Poisoned { index: failed, cause: format!("restore failed: {err}") });
            return Err(err);
        }
        // SAFETY: no command is running (`&mut self`) and no other reference to the batch is
        // alive; only elements are written, the vectors keep their sizes.
        #[allow(unsafe_code)]
        let out = unsafe { self.pool.batch.batch_mut() };
        // Checked above: one type and length, so the rows are copied as they are.
        out.obs.copy_row(0, &obs, 0, obs.len());
        self.finished = finished;
        self.was_reset = was_reset;
        self.episodes_completed = episodes_completed;
        self.poisoned = None;
        Ok(())
    }

    /// The full internal state of env `i`, if the env exposes one.
    pub fn state(&self, i: usize) -> Option<Vec<f64>> {
        self.with_env_ref(i, |env| env.state()).ok().flatten()
    }

    /// Runs `f` on env `i` (an error if out of range).
    fn with_env_ref<T>(&self, i: usize, f: impl FnOnce(&dyn Env) -> T) -> Result<T> {
        let b = self.pool.starts.iter().rposition(|&s| s <= i).filter(|_| i < self.num_envs);
        let b = b.ok_or_else(|| EnvError::BatchShape(format!("env index {i} out of range for {} envs", self.num_envs)))?;
        let block = lock(&self.pool.blocks[b]);
        Ok(f(block.envs[i - block.start].as_ref()))
    }

    fn with_env(&mut self, i: usize, f: impl FnOnce(&mut dyn Env)) {
        if let Some(b) = self.pool.starts.iter().rposition(|&s| s <= i) {
            let mut block = lock(&self.pool.blocks[b]);
            let start = block.start;
            if let Some(env) = block.envs.get_mut(i - start) {
                f(env.as_mut());
            }
        }
    }

    /// Replaces every env that panicked (a full reset's first step; see the module docs).
    fn replace_panicked(&mut self) -> Result<()> {
        for block in self.pool.blocks.iter() {
            lock(block).replace_panicked(self.factory.as_ref(), &self.spec)?;
        }
        Ok(())
    }

    fn for_each_chunk(&mut self, mut f: impl FnMut(&mut Chunk)) {
        for block in self.pool.blocks.iter() {
            f(&mut lock(block));
        }
    }

    /// Runs the command the blocks hold; an env failure poisons the vector.
    fn run_command(&mut self) -> Result<()> {
        let result = self.pool.run();
        if let Err(err) = &result {
            self.poisoned = Some(poison_cause(err, self.failed_env().unwrap_or(0)));
        }
        result
    }

    fn failed_env(&self) -> Option<usize> {
        self.pool.blocks.iter().find_map(|block| {
            let block = lock(block);
            block.result.is_err().then_some(block.start + block.current)
        })
    }
}

#[cfg(test)]
mod tests;

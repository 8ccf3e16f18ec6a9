//! A chunk: a contiguous run of envs with their bookkeeping, and the per-env stepping, resets,
//! autoresets and episode statistics that both executors (the sync pool and the async vector)
//! run on it.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Mutex, MutexGuard};

use serde_json::Value;

use super::EnvFactory;
use super::rows::Rows;
use super::types::AutoresetMode;
use crate::env::{Env, EnvSpec, EpisodeCount, ResetOptions};
use crate::error::{EnvError, Result};
use crate::space::{Action, DType, Space};

/// The actions of a block, in the action space's type.
pub(super) enum ActionRows {
    Int(Vec<i64>),
    F32(Vec<f32>),
    F64(Vec<f64>),
}

impl ActionRows {
    pub(super) fn new(space: &Space, len: usize) -> Self {
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
    pub(super) fn fill(&mut self, actions: Action<'_>, rows: std::ops::Range<usize>) {
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
    pub(super) fn row(&self, k: usize, width: usize) -> Action<'_> {
        let r = k * width..(k + 1) * width;
        match self {
            ActionRows::Int(v) => Action::Int(&v[r]),
            ActionRows::F32(v) => Action::Float(&v[r]),
            ActionRows::F64(v) => Action::Float64(&v[r]),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Command {
    Step,
    Reset,
    /// `SameStep` with a sampler: reset the envs whose episode ended this step, with the
    /// options the sampler chose after hearing how the episode went.
    ResetPending,
}

/// A contiguous run of envs and their bookkeeping: the unit of work of a worker.
pub(super) struct Chunk {
    pub(super) envs: Vec<Box<dyn Env>>,
    /// Index of the first env in the vector.
    pub(super) start: usize,
    pub(super) action_len: usize,
    pub(super) extras_len: usize,
    pub(super) mode: AutoresetMode,
    /// Keep each episode's options (a sampler hears them at the episode's end) and leave
    /// `SameStep` resets to [`Command::ResetPending`].
    pub(super) with_sampler: bool,
    /// The env's episode has ended and its next command resets it (NextStep; SameStep with a
    /// sampler between the two phases of a step).
    pub(super) needs_reset: Vec<bool>,
    pub(super) running_return: Vec<f64>,
    pub(super) running_length: Vec<u64>,
    /// Per env, the running sum of each extra over the current episode.
    pub(super) extras_sum: Vec<f64>,
    /// Per env, the mean of each extra over the episode that ended this step.
    pub(super) ended_extras_mean: Vec<f64>,
    /// Options of each env's next reset (`None`: defaults).
    pub(super) pending: Vec<Option<ResetOptions>>,
    /// Options each env's current episode started with (kept with a sampler only).
    pub(super) episode_options: Vec<ResetOptions>,
    // Inputs of the next command.
    pub(super) command: Command,
    pub(super) actions: ActionRows,
    pub(super) seeds: Vec<Option<u64>>,
    pub(super) reset_mask: Vec<bool>,
    // Outputs.
    pub(super) result: Result<()>,
    /// Episodes that ended in the last step.
    pub(super) ended: usize,
    /// The env being run, for the error report of a panic.
    pub(super) current: usize,
    /// Envs that panicked: a full reset replaces them (see the module docs).
    pub(super) panicked: Vec<bool>,
}

impl Chunk {
    pub(super) fn new(envs: Vec<Box<dyn Env>>, start: usize, spec: &EnvSpec, mode: AutoresetMode) -> Self {
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

    pub(super) fn run(&mut self, rows: &mut Rows<'_>) {
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

pub(super) fn lock(chunk: &Mutex<Chunk>) -> MutexGuard<'_, Chunk> {
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

/// Runs `chunk`'s command on `rows`, turning a panic into an error.
#[inline(always)]
pub(super) fn run_chunk(chunk: &mut Chunk, rows: &mut Rows<'_>) {
    if let Err(panic) = catch_unwind(AssertUnwindSafe(|| chunk.run(rows))) {
        let k = chunk.current;
        chunk.panicked[k] = true;
        chunk.result = Err(EnvError::EnvPanicked { index: chunk.start + k, message: panic_message(&*panic) });
    }
}

/// The spec that every env of a vector shares: spaces and extras equal to env 0's.
pub(super) fn common_spec(envs: &[Box<dyn Env>]) -> Result<EnvSpec> {
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

/// The error that poisons a vector after `err` in env `index` (the env a panic names wins).
pub(super) fn poison_cause(err: &EnvError, index: usize) -> EnvError {
    let (index, cause) = match err {
        EnvError::EnvPanicked { index, message } => (*index, format!("panicked: {message}")),
        other => (index, other.to_string()),
    };
    EnvError::Poisoned { index, cause }
}

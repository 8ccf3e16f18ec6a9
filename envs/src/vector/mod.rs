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
mod chunk;
mod pool;
mod rows;
mod types;

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::env::{Env, EnvSpec, ResetOptions};
use crate::error::{EnvError, Result};
use crate::obs::ObsBuf;
use crate::registry;
use crate::sampler::{EpisodeEnd, ResetSampler};
use crate::space::Action;
pub use async_env::{AsyncVecEnv, HeldBatch};
use chunk::{Chunk, Command, common_spec, lock, poison_cause, run_chunk};
use pool::{Pool, spawn_worker};
use types::check_reset_counts;
pub use types::{AutoresetMode, Batch, BatchView, OptionsFor, Seeds, VecOptions};

/// Called with the number of envs made so far after each env a vector makes; an error stops
/// the construction ([`VecEnv::make_watched`], [`AsyncVecEnv::make_watched`]).
pub type OnMade<'a> = &'a mut dyn FnMut(usize) -> Result<()>;

/// `num_envs` envs from `factory`, `on_made` heard after each (its error stops and drops them).
fn make_envs(num_envs: usize, factory: &EnvFactory, on_made: OnMade<'_>) -> Result<Vec<Box<dyn Env>>> {
    let mut envs = Vec::with_capacity(num_envs);
    for made in 1..=num_envs {
        envs.push(factory()?);
        on_made(made)?;
    }
    Ok(envs)
}

/// Refuses a vector of `num_envs` envs that needs `bytes` of memory where that is more than
/// the process can have, naming `num_envs` in `context`.
fn check_memory(context: &str, num_envs: usize, bytes: u128) -> Result<()> {
    crate::memory::check("num_envs", num_envs as u128, bytes).map_err(|e| EnvError::InvalidField {
        context: context.into(),
        field: e.field.into(),
        message: e.message,
    })
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
        Self::make_watched(id, overrides, num_envs, options, &mut |_| Ok(()))
    }

    /// [`VecEnv::make`], calling `on_made` with the number of envs made after each one: an
    /// error from it stops the construction (the envs made so far are dropped) and is returned.
    /// What a caller uses to stop a long construction, e.g. Python on Ctrl-C.
    pub fn make_watched(
        id: &str,
        overrides: &Map<String, Value>,
        num_envs: usize,
        options: VecOptions,
        on_made: OnMade<'_>,
    ) -> Result<Self> {
        let registration = registry::lookup(id)?;
        let spec = registration.spec_for(overrides)?;
        let per_env = u128::from(registration.memory_estimate(overrides)?) + Self::row_bytes(&spec, options);
        check_memory(&format!("{id} vector"), num_envs, (num_envs as u128) * per_env)?;
        let overrides = overrides.clone();
        let factory: EnvFactory = Arc::new(move || registration.make(&overrides));
        let mut venv = Self::new(make_envs(num_envs, &factory, on_made)?, options)?;
        venv.factory = Some(factory);
        Ok(venv)
    }

    /// A vector of `num_envs` envs made by `factory`, which also makes the env that replaces
    /// one that panicked, at the next full reset.
    pub fn from_factory(num_envs: usize, options: VecOptions, factory: EnvFactory) -> Result<Self> {
        let mut venv = Self::new(make_envs(num_envs, &factory, &mut |_| Ok(()))?, options)?;
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
        check_reset_counts(seeds, options, n)?;
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
            *slot = options.of(i, self.sampler.as_mut());
        }
        if mask.is_none() {
            self.replace_panicked()?;
        }
        self.for_each_chunk(|chunk| {
            chunk.command = Command::Reset;
            for k in 0..chunk.envs.len() {
                let i = chunk.start + k;
                chunk.seeds[k] = seeds.of(i);
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
                return Err(EnvError::Snapshot(
                    "vector: the snapshot has a sampler state; install the sampler first".into(),
                ));
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
        let b =
            b.ok_or_else(|| EnvError::BatchShape(format!("env index {i} out of range for {} envs", self.num_envs)))?;
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

//! The vector engine: many envs stepped as one, writing into flat batch buffers.
//!
//! [`VecEnv`] owns `num_envs` envs of one spec and, after each call, exposes one [`Batch`]:
//! `obs[num_envs * obs_len]`, `reward[num_envs]`, `terminated`, `truncated`, the terminal
//! observations kept aside in [`AutoresetMode::SameStep`], and episode statistics (return and
//! length of every episode that ended this step). All buffers are allocated once; stepping
//! allocates nothing.
//!
//! Executors: serial (everything on the calling thread), or a persistent pool of `W` workers,
//! the calling thread being worker 0. The envs are split into contiguous blocks (a few per
//! worker) that the threads claim one by one, so the calling thread takes over the blocks of a
//! worker the OS has not scheduled yet instead of waiting for it. Every env owns
//! its random stream, so results are bit-identical whatever the worker count. The pool's
//! workers spin briefly between steps (a vector step of cheap envs takes microseconds, less
//! than a thread wake-up) and then park, so they do not hold cores while a learner computes.
//!
//! Autoreset follows Gymnasium 1.x ([`AutoresetMode`]). Env `i` of a vector reset with seed `s`
//! is seeded `s + i`, as Gymnasium's `make_vec`.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::env::{Env, EnvSpec, ResetOptions};
use crate::error::{EnvError, Result};
use crate::registry;
use crate::space::Action;

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
            "next_step" => Ok(Self::NextStep),
            "same_step" => Ok(Self::SameStep),
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

/// The results of the last vector call, one row per env.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Batch {
    /// Observations, `num_envs * obs_len`, row `i` for env `i`.
    pub obs: Vec<f32>,
    /// Rewards.
    pub reward: Vec<f64>,
    /// Terminated flags.
    pub terminated: Vec<bool>,
    /// Truncated flags.
    pub truncated: Vec<bool>,
    /// `SameStep` only: terminal observations of envs reset this step (else empty).
    pub final_obs: Vec<f32>,
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
    fn new(num_envs: usize, obs_len: usize, mode: AutoresetMode) -> Self {
        let same_step = mode == AutoresetMode::SameStep;
        Self {
            obs: vec![0.0; num_envs * obs_len],
            reward: vec![0.0; num_envs],
            terminated: vec![false; num_envs],
            truncated: vec![false; num_envs],
            final_obs: if same_step { vec![0.0; num_envs * obs_len] } else { Vec::new() },
            has_final_obs: vec![false; num_envs],
            episode_return: vec![0.0; num_envs],
            episode_length: vec![0; num_envs],
            episode_done: vec![false; num_envs],
        }
    }

    /// Copies all rows of `chunk` into this batch starting at row `start`.
    fn copy_rows_from(&mut self, chunk: &Batch, start: usize, obs_len: usize) {
        let n = chunk.reward.len();
        let rows = start..start + n;
        self.obs[start * obs_len..(start + n) * obs_len].copy_from_slice(&chunk.obs);
        self.reward[rows.clone()].copy_from_slice(&chunk.reward);
        self.terminated[rows.clone()].copy_from_slice(&chunk.terminated);
        self.truncated[rows.clone()].copy_from_slice(&chunk.truncated);
        if !chunk.final_obs.is_empty() {
            self.final_obs[start * obs_len..(start + n) * obs_len].copy_from_slice(&chunk.final_obs);
        }
        self.has_final_obs[rows.clone()].copy_from_slice(&chunk.has_final_obs);
        self.episode_return[rows.clone()].copy_from_slice(&chunk.episode_return);
        self.episode_length[rows.clone()].copy_from_slice(&chunk.episode_length);
        self.episode_done[rows].copy_from_slice(&chunk.episode_done);
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Command {
    Step,
    Reset,
}

/// A contiguous run of envs and everything needed to step them: the unit of work of a worker.
struct Chunk {
    envs: Vec<Box<dyn Env>>,
    obs_len: usize,
    action_len: usize,
    mode: AutoresetMode,
    /// NextStep: the env's last step ended its episode; its next step is a reset.
    needs_reset: Vec<bool>,
    running_return: Vec<f64>,
    running_length: Vec<u64>,
    // Inputs of the next command.
    command: Command,
    int_actions: Vec<i64>,
    float_actions: Vec<f32>,
    actions_are_int: bool,
    seeds: Vec<Option<u64>>,
    reset_mask: Vec<bool>,
    options: ResetOptions,
    // Outputs.
    out: Batch,
    result: Result<()>,
}

impl Chunk {
    fn new(envs: Vec<Box<dyn Env>>, spec: &EnvSpec, mode: AutoresetMode) -> Self {
        let n = envs.len();
        let (obs_len, action_len) = (spec.obs_len(), spec.action_len());
        let int = spec.action_space.is_integer();
        Self {
            envs,
            obs_len,
            action_len,
            mode,
            needs_reset: vec![false; n],
            running_return: vec![0.0; n],
            running_length: vec![0; n],
            command: Command::Step,
            int_actions: if int { vec![0; n * action_len] } else { Vec::new() },
            float_actions: if int { Vec::new() } else { vec![0.0; n * action_len] },
            actions_are_int: int,
            seeds: vec![None; n],
            reset_mask: vec![true; n],
            options: ResetOptions::default(),
            out: Batch::new(n, obs_len, mode),
            result: Ok(()),
        }
    }

    fn run(&mut self) {
        self.result = match self.command {
            Command::Step => self.step(),
            Command::Reset => self.reset(),
        };
    }

    fn reset(&mut self) -> Result<()> {
        let ol = self.obs_len;
        for k in 0..self.envs.len() {
            if !self.reset_mask[k] {
                continue;
            }
            self.envs[k].reset(self.seeds[k], &self.options, &mut self.out.obs[k * ol..(k + 1) * ol])?;
            self.needs_reset[k] = false;
            self.running_return[k] = 0.0;
            self.running_length[k] = 0;
            self.out.reward[k] = 0.0;
            self.out.terminated[k] = false;
            self.out.truncated[k] = false;
            self.out.has_final_obs[k] = false;
            self.out.episode_done[k] = false;
        }
        Ok(())
    }

    fn step(&mut self) -> Result<()> {
        let (ol, al) = (self.obs_len, self.action_len);
        let no_options = ResetOptions::default();
        for k in 0..self.envs.len() {
            let obs = &mut self.out.obs[k * ol..(k + 1) * ol];
            self.out.episode_done[k] = false;
            self.out.episode_return[k] = 0.0;
            self.out.episode_length[k] = 0;
            self.out.has_final_obs[k] = false;
            if self.needs_reset[k] {
                // NextStep: this step is the reset; the action is ignored.
                self.envs[k].reset(None, &no_options, obs)?;
                self.needs_reset[k] = false;
                self.out.reward[k] = 0.0;
                self.out.terminated[k] = false;
                self.out.truncated[k] = false;
                continue;
            }
            let action = if self.actions_are_int {
                Action::Int(&self.int_actions[k * al..(k + 1) * al])
            } else {
                Action::Float(&self.float_actions[k * al..(k + 1) * al])
            };
            let step = self.envs[k].step(action, obs)?;
            self.out.reward[k] = step.reward;
            self.out.terminated[k] = step.terminated;
            self.out.truncated[k] = step.truncated;
            self.running_return[k] += step.reward;
            self.running_length[k] += 1;
            if step.terminated || step.truncated {
                self.out.episode_done[k] = true;
                self.out.episode_return[k] = self.running_return[k];
                self.out.episode_length[k] = self.running_length[k];
                self.running_return[k] = 0.0;
                self.running_length[k] = 0;
                match self.mode {
                    AutoresetMode::NextStep => self.needs_reset[k] = true,
                    AutoresetMode::SameStep => {
                        self.out.final_obs[k * ol..(k + 1) * ol].copy_from_slice(obs);
                        self.out.has_final_obs[k] = true;
                        self.envs[k].reset(None, &no_options, obs)?;
                    }
                    AutoresetMode::Disabled => {}
                }
            }
        }
        Ok(())
    }
}

/// Spin iterations of a waiting worker before it yields, and yields before it parks.
const SPINS_BEFORE_YIELD: u32 = 1 << 14;
const YIELDS_BEFORE_PARK: u32 = 16;
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

fn run_caught(chunk: &mut Chunk, worker: usize) {
    if let Err(panic) = catch_unwind(AssertUnwindSafe(|| chunk.run())) {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".into());
        chunk.result = Err(EnvError::Worker { worker, message });
    }
}

/// Claims and runs blocks until none is left. Which thread runs a block does not matter: each
/// env's result depends only on its own state.
fn drain_blocks(blocks: &[Arc<Mutex<Chunk>>], signal: &Signal, worker: usize) {
    loop {
        let b = signal.next_block.fetch_add(1, Ordering::AcqRel);
        let Some(block) = blocks.get(b) else { return };
        run_caught(&mut lock(block), worker);
        signal.blocks_done.fetch_add(1, Ordering::AcqRel);
    }
}

fn worker_loop(worker: usize, blocks: Arc<[Arc<Mutex<Chunk>>]>, signal: Arc<Signal>) {
    let mut seen = 0u64;
    loop {
        let mut waits = 0u32;
        loop {
            if signal.shutdown.load(Ordering::Acquire) {
                return;
            }
            let generation = signal.generation.load(Ordering::Acquire);
            if generation != seen {
                seen = generation;
                break;
            }
            waits = waits.saturating_add(1);
            if waits < SPINS_BEFORE_YIELD {
                std::hint::spin_loop();
            } else if waits < SPINS_BEFORE_YIELD + YIELDS_BEFORE_PARK {
                std::thread::yield_now();
            } else {
                // The caller unparks every worker after bumping the generation, and an unpark
                // that comes first makes this return at once: no wake-up is lost.
                std::thread::park();
            }
        }
        drain_blocks(&blocks, &signal, worker);
    }
}

/// Persistent workers sharing blocks of envs with the calling thread.
struct Pool {
    blocks: Arc<[Arc<Mutex<Chunk>>]>,
    starts: Vec<usize>,
    threads: Vec<JoinHandle<()>>,
    signal: Arc<Signal>,
    gathered: Batch,
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
            blocks.push(Arc::new(Mutex::new(Chunk::new(envs.split_off(start), spec, mode))));
        }
        blocks.reverse();
        starts.reverse();
        let blocks: Arc<[Arc<Mutex<Chunk>>]> = blocks.into();
        let signal = Arc::new(Signal {
            generation: AtomicU64::new(0),
            next_block: AtomicUsize::new(num_blocks),
            blocks_done: AtomicUsize::new(0),
            shutdown: AtomicBool::new(false),
        });
        let mut pool =
            Self { blocks, starts, threads: Vec::new(), signal, gathered: Batch::new(num_envs, spec.obs_len(), mode) };
        // The calling thread is worker 0; spawn the others.
        for w in 1..workers {
            let (blocks, signal) = (Arc::clone(&pool.blocks), Arc::clone(&pool.signal));
            let handle = std::thread::Builder::new()
                .name(format!("keel-env-worker-{w}"))
                .spawn(move || worker_loop(w, blocks, signal))
                .map_err(|e| EnvError::Worker { worker: w, message: format!("cannot spawn: {e}") })?;
            pool.threads.push(handle);
        }
        Ok(pool)
    }

    fn run(&mut self, obs_len: usize) -> Result<()> {
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
        drain_blocks(&self.blocks, &self.signal, 0);
        // Only blocks that a worker claimed and is still running remain.
        let mut waits = 0u32;
        while self.signal.blocks_done.load(Ordering::Acquire) < num_blocks {
            waits = waits.saturating_add(1);
            if waits < 1 << 12 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        let mut first_error = Ok(());
        for (block, &start) in self.blocks.iter().zip(&self.starts) {
            let block = lock(block);
            if let Err(e) = &block.result {
                if first_error.is_ok() {
                    first_error = Err(e.clone());
                }
            }
            self.gathered.copy_rows_from(&block.out, start, obs_len);
        }
        first_error
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

enum Executor {
    Serial(Box<Chunk>),
    Pool(Box<Pool>),
}

/// `num_envs` envs of one spec stepped as one (see the module docs).
pub struct VecEnv {
    spec: EnvSpec,
    num_envs: usize,
    options: VecOptions,
    executor: Executor,
    /// Whether each env's episode has ended (cleared by its reset); guards `Disabled` mode.
    finished: Vec<bool>,
    was_reset: bool,
    episodes_completed: u64,
}

impl VecEnv {
    /// Makes `num_envs` copies of the registered env `id` with config `overrides`.
    pub fn make(id: &str, overrides: &Map<String, Value>, num_envs: usize, options: VecOptions) -> Result<Self> {
        let registration = registry::lookup(id)?;
        let envs = (0..num_envs).map(|_| registration.make(overrides)).collect::<Result<Vec<_>>>()?;
        Self::new(envs, options)
    }

    /// A vector over `envs`, which must share one spec.
    pub fn new(envs: Vec<Box<dyn Env>>, options: VecOptions) -> Result<Self> {
        let Some(first) = envs.first() else {
            return Err(EnvError::BatchShape("a vector env needs at least one env".into()));
        };
        let spec = first.spec().clone();
        if let Some(i) = envs.iter().position(|e| {
            e.spec().observation_space != spec.observation_space || e.spec().action_space != spec.action_space
        }) {
            return Err(EnvError::BatchShape(format!("env {i} has other spaces than env 0")));
        }
        let num_envs = envs.len();
        let mode = options.autoreset_mode;
        let executor = if options.workers == 0 {
            Executor::Serial(Box::new(Chunk::new(envs, &spec, mode)))
        } else {
            Executor::Pool(Box::new(Pool::new(envs, &spec, mode, options.workers.min(num_envs))?))
        };
        Ok(Self {
            spec,
            num_envs,
            options,
            executor,
            finished: vec![false; num_envs],
            was_reset: false,
            episodes_completed: 0,
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

    /// The results of the last `reset` or `step`.
    pub fn batch(&self) -> &Batch {
        match &self.executor {
            Executor::Serial(chunk) => &chunk.out,
            Executor::Pool(pool) => &pool.gathered,
        }
    }

    /// Takes the observation buffer of the last step, leaving a fresh one in its place (the next
    /// step writes every row). Lets a caller, e.g. Python, own the observations without a copy.
    pub fn take_obs(&mut self) -> Vec<f32> {
        let out = match &mut self.executor {
            Executor::Serial(chunk) => &mut chunk.out,
            Executor::Pool(pool) => &mut pool.gathered,
        };
        let fresh = vec![0.0; out.obs.len()];
        std::mem::replace(&mut out.obs, fresh)
    }

    /// Resets every env; env `i` is seeded `seed + i` (none: streams continue).
    pub fn reset(&mut self, seed: Option<u64>) -> Result<()> {
        let seeds = seed.map_or(Seeds::Continue, Seeds::Base);
        self.reset_with(seeds, &ResetOptions::default(), None)
    }

    /// Resets the envs selected by `mask` (all when `None`) with `seeds` and `options`.
    /// Invalid seeds, mask or options are rejected before any env changes.
    pub fn reset_with(&mut self, seeds: Seeds<'_>, options: &ResetOptions, mask: Option<&[bool]>) -> Result<()> {
        let n = self.num_envs;
        if let Seeds::PerEnv(s) = seeds {
            if s.len() != n {
                return Err(EnvError::BatchShape(format!("{} seeds for {n} envs", s.len())));
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
        let seed_of = |i: usize| match seeds {
            Seeds::Continue => None,
            Seeds::Base(s) => Some(s.wrapping_add(i as u64)),
            Seeds::PerEnv(s) => Some(s[i]),
        };
        let selected = |i: usize| mask.is_none_or(|m| m[i]);
        self.for_each_chunk(|chunk, start| {
            chunk.command = Command::Reset;
            chunk.options.clone_from(options);
            for k in 0..chunk.envs.len() {
                chunk.seeds[k] = seed_of(start + k);
                chunk.reset_mask[k] = selected(start + k);
            }
        });
        self.run()?;
        for i in 0..n {
            if selected(i) {
                self.finished[i] = false;
            }
        }
        self.was_reset = true;
        Ok(())
    }

    /// Steps every env with its row of `actions` (`num_envs * action_len` scalars).
    /// The whole batch is validated first: a bad row rejects the call and changes no env.
    pub fn step(&mut self, actions: Action<'_>) -> Result<()> {
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
        self.for_each_chunk(|chunk, start| {
            chunk.command = Command::Step;
            let rows = start * al..(start + chunk.envs.len()) * al;
            match actions {
                Action::Int(a) => chunk.int_actions.copy_from_slice(&a[rows]),
                Action::Float(a) => chunk.float_actions.copy_from_slice(&a[rows]),
            }
        });
        self.run()?;
        let batch = match &self.executor {
            Executor::Serial(chunk) => &chunk.out,
            Executor::Pool(pool) => &pool.gathered,
        };
        let disabled = self.options.autoreset_mode == AutoresetMode::Disabled;
        for (i, &done) in batch.episode_done.iter().enumerate() {
            if done {
                self.episodes_completed += 1;
                // Only `Disabled` keeps finished envs finished until a masked reset.
                self.finished[i] = disabled;
            }
        }
        Ok(())
    }

    /// Sets persistent per-reset parameters on every env. All envs share one parameter type, so
    /// an invalid key or value is rejected by the first env, before any env changes.
    pub fn set_params(&mut self, params: &Map<String, Value>) -> Result<()> {
        let mut result = Ok(());
        self.for_each_chunk(|chunk, _| {
            if result.is_ok() {
                for env in &mut chunk.envs {
                    if let Err(e) = env.set_params(params) {
                        result = Err(e);
                        return;
                    }
                }
            }
        });
        result
    }

    /// A snapshot of every sub-env and of the engine's bookkeeping (pending autoresets, running
    /// episode statistics), or `None` if a sub-env cannot snapshot. Restoring it into a vector
    /// made with the same id, config and options continues exactly where this one stood.
    pub fn snapshot(&mut self) -> Option<Value> {
        let mut envs = Vec::with_capacity(self.num_envs);
        let (mut needs_reset, mut running_return, mut running_length) = (Vec::new(), Vec::new(), Vec::new());
        let mut complete = true;
        self.for_each_chunk(|chunk, _| {
            for env in &chunk.envs {
                match env.snapshot() {
                    Some(s) => envs.push(s),
                    None => complete = false,
                }
            }
            needs_reset.extend_from_slice(&chunk.needs_reset);
            running_return.extend_from_slice(&chunk.running_return);
            running_length.extend_from_slice(&chunk.running_length);
        });
        complete.then(|| {
            serde_json::json!({
                "envs": envs,
                "needs_reset": needs_reset,
                "running_return": running_return,
                "running_length": running_length,
                "finished": self.finished,
                "was_reset": self.was_reset,
                "episodes_completed": self.episodes_completed,
                "obs": self.batch().obs,
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
        let finished: Vec<bool> = field(snapshot, "finished")?;
        let obs: Vec<f32> = field(snapshot, "obs")?;
        let lengths = [envs.len(), needs_reset.len(), running_return.len(), running_length.len(), finished.len()];
        if lengths.iter().any(|&l| l != n) || obs.len() != n * self.spec.obs_len() {
            return Err(EnvError::Snapshot(format!("vector: snapshot is not of {n} envs of this spec")));
        }
        let was_reset: bool = field(snapshot, "was_reset")?;
        let episodes_completed: u64 = field(snapshot, "episodes_completed")?;
        let mut result = Ok(());
        let obs_len = self.spec.obs_len();
        self.for_each_chunk(|chunk, start| {
            for k in 0..chunk.envs.len() {
                if result.is_ok() {
                    result = chunk.envs[k].restore(&envs[start + k]);
                }
                chunk.needs_reset[k] = needs_reset[start + k];
                chunk.running_return[k] = running_return[start + k];
                chunk.running_length[k] = running_length[start + k];
            }
            let rows = start * obs_len..(start + chunk.envs.len()) * obs_len;
            chunk.out.obs.copy_from_slice(&obs[rows]);
        });
        result?;
        if let Executor::Pool(pool) = &mut self.executor {
            pool.gathered.obs.copy_from_slice(&obs);
        }
        self.finished = finished;
        self.was_reset = was_reset;
        self.episodes_completed = episodes_completed;
        Ok(())
    }

    /// The full internal state of env `i`, if the env exposes one.
    pub fn state(&self, i: usize) -> Option<Vec<f64>> {
        match &self.executor {
            Executor::Serial(chunk) => chunk.envs.get(i).and_then(|e| e.state()),
            Executor::Pool(pool) => {
                let b = pool.starts.iter().rposition(|&s| s <= i)?;
                let block = lock(&pool.blocks[b]);
                block.envs.get(i - pool.starts[b]).and_then(|e| e.state())
            }
        }
    }

    fn for_each_chunk(&mut self, mut f: impl FnMut(&mut Chunk, usize)) {
        match &mut self.executor {
            Executor::Serial(chunk) => f(chunk, 0),
            Executor::Pool(pool) => {
                for (block, &start) in pool.blocks.iter().zip(&pool.starts) {
                    f(&mut lock(block), start);
                }
            }
        }
    }

    fn run(&mut self) -> Result<()> {
        let obs_len = self.spec.obs_len();
        match &mut self.executor {
            Executor::Serial(chunk) => {
                run_caught(chunk, 0);
                chunk.result.clone()
            }
            Executor::Pool(pool) => pool.run(obs_len),
        }
    }
}

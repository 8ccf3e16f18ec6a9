//! The sync executor: a persistent pool of worker threads that claim blocks of envs (chunks)
//! one by one, the calling thread being worker 0 (see the module docs of [`super`]).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{Builder, JoinHandle};

use crossbeam::utils::Backoff;

use super::chunk::{Chunk, lock, run_chunk};
use super::rows::SharedBatch;
use super::types::{AutoresetMode, Batch};
use crate::env::{Env, EnvSpec};
use crate::error::{EnvError, Result};

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

/// Runs one claimed block on its rows of the batch, turning a panic into an error.
fn run_block(chunk: &mut Chunk, batch: &SharedBatch) {
    let n = chunk.envs.len();
    // SAFETY: this thread claimed this block through `next_block` (each index is handed out
    // once per command) and blocks cover disjoint rows; see `rows`.
    #[allow(unsafe_code)]
    let mut rows = unsafe { batch.rows(chunk.start, n) };
    run_chunk(chunk, &mut rows);
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
pub(super) fn spawn_worker(
    builder: Builder,
    w: usize,
    workers: usize,
    work: impl FnOnce() + Send + 'static,
) -> Result<JoinHandle<()>> {
    builder.spawn(work).map_err(|e| EnvError::WorkerSpawn { worker: w, workers, cause: e.to_string() })
}

/// Blocks of envs, the shared batch, and the worker threads (none when serial).
pub(super) struct Pool {
    pub(super) blocks: Arc<[Arc<Mutex<Chunk>>]>,
    pub(super) starts: Vec<usize>,
    threads: Vec<JoinHandle<()>>,
    signal: Arc<Signal>,
    pub(super) batch: Arc<SharedBatch>,
    /// Episodes that ended in the last command, over all blocks.
    pub(super) ended: usize,
}

impl Pool {
    pub(super) fn new(
        mut envs: Vec<Box<dyn Env>>,
        spec: &EnvSpec,
        mode: AutoresetMode,
        workers: usize,
    ) -> Result<Self> {
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
    pub(super) fn batch(&self) -> &Batch {
        // SAFETY: commands run in `run(&mut self)`, which returns only after every block is
        // done (acquired); `&self` keeps the next from starting while the reference lives.
        #[allow(unsafe_code)]
        unsafe {
            self.batch.batch()
        }
    }

    /// Runs the command every block holds; the first error (in env order) is returned.
    pub(super) fn run(&mut self) -> Result<()> {
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
        stop_workers(&self.signal.shutdown, &mut self.threads);
    }
}

/// Raises `shutdown`, wakes every worker of `threads` (each sees the flag before it parks
/// again) and joins them.
pub(super) fn stop_workers(shutdown: &AtomicBool, threads: &mut Vec<JoinHandle<()>>) {
    shutdown.store(true, Ordering::SeqCst);
    for t in threads.iter() {
        t.thread().unpark();
    }
    for t in threads.drain(..) {
        let _ = t.join();
    }
}

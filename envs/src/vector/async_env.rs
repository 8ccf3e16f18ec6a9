//! EnvPool-style async stepping: [`AsyncVecEnv`].
//!
//! `send(actions, env_ids)` hands actions for some envs to the workers and returns at once;
//! `recv()` blocks until `batch_size` envs have finished their step (or reset) and returns those
//! rows with their env ids, the first finished first. With `batch_size < num_envs` the caller
//! computes the next actions for one batch while the workers step the others.
//!
//! Every env is a one-env [`Chunk`], so steps, resets, autoresets (`NextStep`; `SameStep`
//! without a sampler) and episode statistics are the sync engine's own code, and an env's
//! trajectory is bit-identical to sync stepping for the same seeds and actions, whatever the
//! worker count and the order in which envs finish. `Disabled` autoreset is refused (there is no
//! masked reset here: `async_reset` resets every env).
//!
//! Executors: `workers = 0` runs the sent envs on the calling thread inside `recv`, in the order
//! they were sent (deterministic batches); `workers = W >= 1` spawns `W` threads and the caller
//! never steps, so its own work between `recv` and `send` overlaps with stepping.
//!
//! Memory: a ring of env ids (the queue, `num_envs` long: an env is in flight at most once),
//! one staging row per worker, and output blocks of `batch_size` rows, one per `recv`. A worker
//! steps an env into its staging row, then claims the next output position `p`, copies the row
//! into row `p mod batch_size` of the block of sequence `p / batch_size` and counts it in. The
//! blocks of the next `K = ceil(num_envs / batch_size) + 1` sequences sit in a table (sequence
//! `s` at entry `s mod K`): results not yet received are at most `num_envs` (each is an env in
//! flight), so the positions being written lie in `[received, received + num_envs)`, within `K`
//! sequences. `recv` takes the block of the sequence it waits for out of the table and puts a
//! free block in its place (for sequence `s + K`, out of reach until then), so a received block
//! is never written again while it is held: by the caller until its next `recv`, or for as long
//! as a [`HeldBatch`] of it lives ([`AsyncVecEnv::hold_last`], how Python hands out views that
//! do not change). Blocks come back when nothing holds them; a new one is allocated only when
//! every spare block is still held, so the steady state allocates nothing.
//!
//! Failures: an env error or panic poisons the vector (every call fails with
//! [`EnvError::Poisoned`]) until `async_reset` succeeds, as in the sync engine. Bad calls (ids
//! out of range or repeated, an env sent twice before `recv`, `recv` with fewer than
//! `batch_size` envs in flight, wrong action counts) fail with a clear error and change nothing.

use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use crossbeam::sync::{Parker, Unparker};
use crossbeam::utils::Backoff;

use serde_json::{Map, Value};

use super::rows::SharedBatch;
use super::{
    AutoresetMode, Batch, BatchView, Chunk, Command, EnvFactory, OnMade, OptionsFor, Seeds, VecEnv, VecOptions,
    check_memory, check_reset_counts, common_spec, lock, make_envs, poison_cause, run_chunk,
};
use crate::env::{Env, EnvSpec};
use crate::error::{EnvError, Result};
use crate::obs::ObsRef;
use crate::registry;
use crate::sampler::{EpisodeEnd, ResetSampler};
use crate::space::Action;

/// State shared by the caller and the workers.
struct Shared {
    /// One chunk per env: env `i` is `envs[i]`, its pending command and action inside.
    envs: Box<[Mutex<Chunk>]>,
    /// Ring of env ids to run, written by the caller at position `queued`, claimed by workers
    /// at position `claimed` (both monotonic).
    queue: Box<[AtomicUsize]>,
    queued: AtomicU64,
    claimed: AtomicU64,
    /// Tasks run to the end (failed ones included).
    finished: AtomicU64,
    /// The output block of each sequence in reach, sequence `s` at entry `s mod K` (module
    /// docs); the caller owns the blocks and replaces an entry only when its sequence has been
    /// received.
    table: Box<[AtomicPtr<SharedBatch>]>,
    /// The env of each output position, `K * batch_size` of them (position `p` at `p mod`).
    out_ids: Box<[AtomicUsize]>,
    /// Next output position.
    next_slot: AtomicU64,
    /// Rows written into the block of each table entry.
    filled: Box<[AtomicUsize]>,
    batch_size: usize,
    slots: usize,
    /// The first env failure, as the error that poisons the vector.
    failure: Mutex<Option<EnvError>>,
    failed: AtomicBool,
    parked_workers: AtomicUsize,
    /// Wakes the caller parked in `recv` (an unpark before the park makes the park return).
    caller: Unparker,
    shutdown: AtomicBool,
}

impl Shared {
    fn has_work(&self) -> bool {
        self.claimed.load(Ordering::SeqCst) < self.queued.load(Ordering::SeqCst)
    }

    /// Claims the next queued env, if any.
    fn claim(&self) -> Option<usize> {
        loop {
            let c = self.claimed.load(Ordering::Acquire);
            if c >= self.queued.load(Ordering::Acquire) {
                return None;
            }
            // Read before claiming: the entry cannot be overwritten while position `c` is
            // unclaimed (that would put `num_envs + 1` envs in flight), and a lost race fails
            // the exchange below.
            let id = self.queue[(c % self.queue.len() as u64) as usize].load(Ordering::Relaxed);
            if self.claimed.compare_exchange_weak(c, c + 1, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
                return Some(id);
            }
        }
    }

    /// Runs env `id`'s command into `stage` (a one-row batch only this thread uses), then
    /// publishes the row in the next output slot.
    fn run_task(&self, id: usize, stage: &SharedBatch) {
        let mut chunk = lock(&self.envs[id]);
        // SAFETY: `stage` is the calling thread's own one-row batch; nothing else touches it.
        #[allow(unsafe_code)]
        let mut rows = unsafe { stage.rows(0, 1) };
        run_chunk(&mut chunk, &mut rows);
        if let Err(err) = &chunk.result {
            let poison = poison_cause(err, id);
            drop(chunk);
            self.fail(poison);
            return;
        }
        drop(chunk);
        let p = self.next_slot.fetch_add(1, Ordering::AcqRel);
        let slot = (p % self.slots as u64) as usize;
        let (entry, row) = (slot / self.batch_size, slot % self.batch_size);
        // The caller set this entry for `p`'s sequence before it published the task that took
        // the position before `p`'s claim (the `next_slot` and `queued` chains order them).
        let block = self.table[entry].load(Ordering::Acquire);
        // SAFETY: the caller keeps every block alive until the workers are joined, and hands
        // the block of a table entry to no one until its `batch_size` rows are counted in;
        // row `row` of it is position `p`'s, this thread's alone (module docs).
        #[allow(unsafe_code)]
        let mut out = unsafe { (*block).rows(row, 1) };
        out.copy_from(&rows);
        self.out_ids[slot].store(id, Ordering::Relaxed);
        // Publishes the row (the caller acquires `filled`).
        let filled = self.filled[entry].fetch_add(1, Ordering::SeqCst) + 1;
        self.finished.fetch_add(1, Ordering::SeqCst);
        if filled == self.batch_size {
            self.wake_caller();
        }
    }

    /// Records a task's failure (the first one poisons the vector) and counts the task as
    /// finished, so that the caller stops waiting for it.
    fn fail(&self, poison: EnvError) {
        let mut failure = self.failure.lock().unwrap_or_else(PoisonError::into_inner);
        failure.get_or_insert(poison);
        drop(failure);
        self.failed.store(true, Ordering::SeqCst);
        self.finished.fetch_add(1, Ordering::SeqCst);
        self.wake_caller();
    }

    /// [`Shared::run_task`], with a panic that escaped the env's own guard in [`run_chunk`] (a
    /// panic payload whose drop panics) made a failure of env `id`: the task counts as finished
    /// and the thread goes on, so neither a worker dies nor the caller waits forever.
    fn run_guarded(&self, id: usize, stage: &SharedBatch) {
        let escaped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.run_task(id, stage)));
        if let Err(payload) = escaped {
            // Its drop may panic again: leak it.
            std::mem::forget(payload);
            lock(&self.envs[id]).panicked[0] = true;
            let cause = EnvError::EnvPanicked { index: id, message: "a panic escaped the env's guard".into() };
            self.fail(poison_cause(&cause, id));
        }
    }

    fn wake_caller(&self) {
        self.caller.unpark();
    }
}

fn worker_loop(shared: Arc<Shared>, stage: SharedBatch) {
    loop {
        // An async worker is idle only when every env waits for the caller, who then needs the
        // core more than a spinning worker does: spin briefly, yield, then park.
        let backoff = Backoff::new();
        let id = loop {
            if shared.shutdown.load(Ordering::Acquire) {
                return;
            }
            if let Some(id) = shared.claim() {
                break id;
            }
            if !backoff.is_completed() {
                backoff.snooze();
            } else {
                // Announce first, then look again: a `send` that published before the
                // announcement is seen here, one after it sees the announcement and unparks.
                shared.parked_workers.fetch_add(1, Ordering::SeqCst);
                if !shared.has_work() && !shared.shutdown.load(Ordering::SeqCst) {
                    std::thread::park();
                }
                shared.parked_workers.fetch_sub(1, Ordering::SeqCst);
            }
        };
        shared.run_guarded(id, &stage);
    }
}

/// `num_envs` envs of one spec stepped asynchronously, EnvPool style (see the module docs).
pub struct AsyncVecEnv {
    spec: EnvSpec,
    num_envs: usize,
    batch_size: usize,
    blocks: usize,
    options: VecOptions,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    /// Serial only: the calling thread's staging row.
    stage: Option<SharedBatch>,
    in_flight: Vec<bool>,
    in_flight_count: usize,
    /// Scratch for the duplicate check of `send`.
    marked: Vec<bool>,
    /// Tasks published (the caller's copy of `Shared::queued`).
    sent: u64,
    /// Results received.
    received: u64,
    /// Env ids of the last received batch.
    ids: Vec<usize>,
    /// The blocks of the table's entries (owned here; the table holds their addresses).
    table: Vec<Arc<SharedBatch>>,
    /// The block of the last received batch.
    held: Option<Arc<SharedBatch>>,
    /// Blocks out of the table: free, or held by a [`HeldBatch`].
    spare: Vec<Arc<SharedBatch>>,
    was_reset: bool,
    episodes_completed: u64,
    sampler: Option<Box<dyn ResetSampler>>,
    poisoned: Option<EnvError>,
    /// Makes the env that replaces one that panicked, at the next `async_reset` (`None`: envs
    /// given by value, which cannot be replaced).
    factory: Option<EnvFactory>,
    /// Where the caller waits in `recv` for the workers (`Shared::caller` unparks it).
    parker: Parker,
}

impl AsyncVecEnv {
    /// Makes `num_envs` copies of the registered env `id` with config `overrides`, returned
    /// `batch_size` at a time. Shapes are checked, and memory too, before any env is made.
    pub fn make(
        id: &str,
        overrides: &Map<String, Value>,
        num_envs: usize,
        batch_size: usize,
        options: VecOptions,
    ) -> Result<Self> {
        Self::make_watched(id, overrides, num_envs, batch_size, options, &mut |_| Ok(()))
    }

    /// [`AsyncVecEnv::make`], calling `on_made` with the number of envs made after each one:
    /// an error from it stops the construction (the envs made so far are dropped) and is
    /// returned (see [`VecEnv::make_watched`]).
    pub fn make_watched(
        id: &str,
        overrides: &Map<String, Value>,
        num_envs: usize,
        batch_size: usize,
        options: VecOptions,
        on_made: OnMade<'_>,
    ) -> Result<Self> {
        check_shape(num_envs, batch_size, options)?;
        let registration = registry::lookup(id)?;
        let spec = registration.spec_for(overrides)?;
        let row = VecEnv::row_bytes(&spec, options);
        let per_env = u128::from(registration.memory_estimate(overrides)?) + row;
        let slots = num_slots(num_envs, batch_size) as u128;
        let bytes = (num_envs as u128) * per_env + slots * row;
        check_memory(&format!("{id} async vector"), num_envs, bytes)?;
        let overrides = overrides.clone();
        let factory: EnvFactory = Arc::new(move || registration.make(&overrides));
        let mut venv = Self::new(make_envs(num_envs, &factory, on_made)?, batch_size, options)?;
        venv.factory = Some(factory);
        Ok(venv)
    }

    /// An async vector over `envs`, which must share one spec.
    pub fn new(envs: Vec<Box<dyn Env>>, batch_size: usize, options: VecOptions) -> Result<Self> {
        let num_envs = envs.len();
        check_shape(num_envs, batch_size, options)?;
        let spec = common_spec(&envs)?;
        let mode = options.autoreset_mode;
        let chunks: Vec<Mutex<Chunk>> =
            envs.into_iter().enumerate().map(|(i, env)| Mutex::new(Chunk::new(vec![env], i, &spec, mode))).collect();
        let slots = num_slots(num_envs, batch_size);
        let blocks = slots / batch_size;
        let stage = || Batch::new(1, &spec, mode).map(|b| SharedBatch::new(b, 1));
        let table = (0..blocks).map(|_| new_block(batch_size, &spec, mode)).collect::<Result<Vec<_>>>()?;
        let parker = Parker::new();
        let shared = Arc::new(Shared {
            envs: chunks.into(),
            queue: (0..num_envs).map(|_| AtomicUsize::new(0)).collect(),
            queued: AtomicU64::new(0),
            claimed: AtomicU64::new(0),
            finished: AtomicU64::new(0),
            table: table.iter().map(|b| AtomicPtr::new(Arc::as_ptr(b).cast_mut())).collect(),
            out_ids: (0..slots).map(|_| AtomicUsize::new(0)).collect(),
            next_slot: AtomicU64::new(0),
            filled: (0..blocks).map(|_| AtomicUsize::new(0)).collect(),
            batch_size,
            slots,
            failure: Mutex::new(None),
            failed: AtomicBool::new(false),
            parked_workers: AtomicUsize::new(0),
            caller: parker.unparker().clone(),
            shutdown: AtomicBool::new(false),
        });
        let workers = options.workers.min(num_envs);
        let mut venv = Self {
            spec: spec.clone(),
            num_envs,
            batch_size,
            blocks,
            options,
            shared,
            threads: Vec::with_capacity(workers),
            stage: if workers == 0 { Some(stage()?) } else { None },
            in_flight: vec![false; num_envs],
            in_flight_count: 0,
            marked: vec![false; num_envs],
            sent: 0,
            received: 0,
            ids: vec![0; batch_size],
            table,
            held: None,
            spare: Vec::new(),
            was_reset: false,
            episodes_completed: 0,
            sampler: None,
            poisoned: None,
            factory: None,
            parker,
        };
        for w in 0..workers {
            let (shared, stage) = (Arc::clone(&venv.shared), stage()?);
            let builder = std::thread::Builder::new().name(format!("keel-async-worker-{w}"));
            venv.threads.push(super::spawn_worker(builder, w, workers, move || worker_loop(shared, stage))?);
        }
        Ok(venv)
    }

    /// The spec of each sub-env.
    pub fn spec(&self) -> &EnvSpec {
        &self.spec
    }

    /// Number of sub-envs.
    pub fn num_envs(&self) -> usize {
        self.num_envs
    }

    /// Rows of every `recv`.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// The executor and autoreset options.
    pub fn options(&self) -> VecOptions {
        self.options
    }

    /// Envs sent (or reset) whose results have not been received yet.
    pub fn in_flight(&self) -> usize {
        self.in_flight_count
    }

    /// Whether env `id` is in flight.
    pub fn is_in_flight(&self, id: usize) -> bool {
        self.in_flight.get(id).copied().unwrap_or(false)
    }

    /// Episodes completed (in received batches) since construction.
    pub fn episodes_completed(&self) -> u64 {
        self.episodes_completed
    }

    /// The error that poisoned the vector, if an env failed.
    pub fn poisoned(&self) -> Option<&EnvError> {
        self.poisoned.as_ref()
    }

    fn usable(&self) -> Result<()> {
        match &self.poisoned {
            None => Ok(()),
            Some(cause) => Err(cause.clone()),
        }
    }

    /// Installs `sampler` (or removes it): it chooses the options of `async_reset`s given none
    /// and of every autoreset, and hears every episode's end, on the calling thread in the order
    /// `recv` returns the rows (so with workers, in the order envs finish). `NextStep` only, and
    /// only while no env is in flight.
    pub fn set_sampler(&mut self, sampler: Option<Box<dyn ResetSampler>>) -> Result<()> {
        if sampler.is_some() && self.options.autoreset_mode != AutoresetMode::NextStep {
            return Err(EnvError::AsyncUsage("a reset sampler needs autoreset_mode next_step".into()));
        }
        if self.in_flight_count > 0 {
            return Err(EnvError::AsyncUsage(format!(
                "cannot change the sampler with {} envs in flight: recv them first",
                self.in_flight_count
            )));
        }
        let mut sampler = sampler;
        if let Some(s) = &mut sampler {
            s.attach(&self.spec, self.num_envs)?;
        }
        for chunk in self.shared.envs.iter() {
            lock(chunk).with_sampler = sampler.is_some();
        }
        self.sampler = sampler;
        Ok(())
    }

    /// The installed sampler.
    pub fn sampler(&self) -> Option<&dyn ResetSampler> {
        self.sampler.as_deref()
    }

    /// Resets every env (env `i` seeded as [`Seeds`] says, options as [`OptionsFor`] says) and
    /// queues the results for `recv`, env 0 first. Envs still in flight finish their step first
    /// and their results are dropped. Clears a poisoned vector.
    pub fn async_reset(&mut self, seeds: Seeds<'_>, options: OptionsFor<'_>) -> Result<()> {
        let n = self.num_envs;
        check_reset_counts(seeds, options, n)?;
        self.drain();
        let shared = &*self.shared;
        // An env that panicked is not reset but replaced (its state may be torn), as the sync
        // vector does; without a factory the vector stays poisoned.
        for chunk in shared.envs.iter() {
            lock(chunk).replace_panicked(self.factory.as_ref(), &self.spec)?;
        }
        for i in 0..n {
            let chosen = options.of(i, self.sampler.as_mut());
            let mut chunk = lock(&shared.envs[i]);
            chunk.command = Command::Reset;
            chunk.reset_mask[0] = true;
            chunk.seeds[0] = seeds.of(i);
            chunk.pending[0] = chosen;
        }
        // No task runs now (drained): start the output ring afresh.
        shared.next_slot.store(0, Ordering::SeqCst);
        for f in shared.filled.iter() {
            f.store(0, Ordering::SeqCst);
        }
        *shared.failure.lock().unwrap_or_else(PoisonError::into_inner) = None;
        shared.failed.store(false, Ordering::SeqCst);
        self.received = 0;
        self.spare.extend(self.held.take());
        self.poisoned = None;
        self.was_reset = true;
        self.in_flight.fill(false);
        self.in_flight_count = 0;
        for i in 0..n {
            self.publish(i);
        }
        self.in_flight_count = n;
        self.wake_workers();
        Ok(())
    }

    /// Waits until every task sent has run (serial: runs them); their results are dropped.
    fn drain(&mut self) {
        let shared = &*self.shared;
        if let Some(stage) = &self.stage {
            while let Some(id) = shared.claim() {
                shared.run_guarded(id, stage);
            }
        }
        let backoff = Backoff::new();
        while shared.finished.load(Ordering::SeqCst) < self.sent {
            backoff.snooze();
        }
    }

    /// Queues env `id` (its command and action already in its chunk).
    fn publish(&mut self, id: usize) {
        let shared = &*self.shared;
        let w = self.sent;
        shared.queue[(w % self.num_envs as u64) as usize].store(id, Ordering::Relaxed);
        self.sent = w + 1;
        shared.queued.store(w + 1, Ordering::SeqCst);
        self.in_flight[id] = true;
    }

    fn wake_workers(&self) {
        if self.shared.parked_workers.load(Ordering::SeqCst) > 0 {
            for t in &self.threads {
                t.thread().unpark();
            }
        }
    }

    /// Hands env `env_ids[j]` its row `j` of `actions` (`env_ids.len() * action_len` scalars of
    /// the action space's type) and returns at once. Ids out of range or repeated, an env
    /// already in flight, or actions of the wrong count or outside the space reject the whole
    /// call, changing nothing.
    pub fn send(&mut self, actions: Action<'_>, env_ids: &[usize]) -> Result<()> {
        self.usable()?;
        if !self.was_reset {
            return Err(EnvError::ResetNeeded);
        }
        let n = self.num_envs;
        if env_ids.is_empty() {
            return Err(EnvError::AsyncUsage("send needs at least one env id".into()));
        }
        let mut bad = None;
        for &id in env_ids {
            bad = if id >= n {
                Some(format!("env id {id} out of range for {n} envs"))
            } else if self.marked[id] {
                Some(format!("env id {id} appears twice in one send"))
            } else if self.in_flight[id] {
                Some(format!("env {id} is already in flight: recv its result before sending it again"))
            } else {
                self.marked[id] = true;
                None
            };
            if bad.is_some() {
                break;
            }
        }
        for &id in env_ids.iter().filter(|&&id| id < n) {
            self.marked[id] = false;
        }
        if let Some(why) = bad {
            return Err(EnvError::AsyncUsage(why));
        }
        self.spec.action_space.check_batch(actions, env_ids.len())?;
        let al = self.spec.action_len();
        for (j, &id) in env_ids.iter().enumerate() {
            {
                // Not in flight, so no worker holds it.
                let mut chunk = lock(&self.shared.envs[id]);
                chunk.command = Command::Step;
                chunk.actions.fill(actions, j * al..(j + 1) * al);
            }
            self.publish(id);
            // Wake a parked worker as soon as there is work, not after the whole batch.
            self.wake_workers();
        }
        self.in_flight_count += env_ids.len();
        Ok(())
    }

    /// Waits for the next `batch_size` results and returns them, the first finished first
    /// (serial: in the order sent). The view stays valid until the next `recv`; row `k` is
    /// env `env_ids[k]`. An env failure poisons the vector and is returned here.
    pub fn recv(&mut self) -> Result<BatchView<'_>> {
        self.usable()?;
        if !self.was_reset {
            return Err(EnvError::ResetNeeded);
        }
        let b = self.batch_size;
        if self.in_flight_count < b {
            return Err(EnvError::AsyncUsage(format!(
                "recv needs batch_size = {b} envs in flight, {} are: send actions first",
                self.in_flight_count
            )));
        }
        let entry = ((self.received / b as u64) % self.blocks as u64) as usize;
        self.wait_block(entry)?;
        // The entry's next sequence is `K` further on, out of reach until this `recv` returns
        // (module docs): it gets a block nothing holds before any new task is published.
        let fresh = self.free_block()?;
        let shared = &*self.shared;
        let start = entry * b;
        for k in 0..b {
            let id = shared.out_ids[start + k].load(Ordering::Relaxed);
            self.ids[k] = id;
            self.in_flight[id] = false;
        }
        self.in_flight_count -= b;
        shared.table[entry].store(Arc::as_ptr(&fresh).cast_mut(), Ordering::Release);
        shared.filled[entry].store(0, Ordering::Relaxed);
        let received = std::mem::replace(&mut self.table[entry], fresh);
        self.spare.extend(self.held.take());
        self.received += b as u64;
        let held = &**self.held.insert(received);
        // SAFETY: the block's `b` rows were all written (acquired in `wait_block`), and it is
        // out of the table, so no worker writes it again (module docs).
        #[allow(unsafe_code)]
        let view = unsafe { held.view(0, b, &self.ids) };
        self.episodes_completed += view.episode_done.iter().filter(|&&d| d).count() as u64;
        if let Some(sampler) = self.sampler.as_mut() {
            report_and_resample(sampler.as_mut(), &shared.envs, &view);
        }
        Ok(view)
    }

    /// `send` then `recv`.
    pub fn step(&mut self, actions: Action<'_>, env_ids: &[usize]) -> Result<BatchView<'_>> {
        self.send(actions, env_ids)?;
        self.recv()
    }

    /// The batch the last `recv` returned (none since the last reset).
    pub fn last_batch(&self) -> Option<BatchView<'_>> {
        let held = self.held.as_deref()?;
        // SAFETY: as in `recv`: the held block is complete and out of the workers' reach.
        #[allow(unsafe_code)]
        Some(unsafe { held.view(0, self.batch_size, &self.ids) })
    }

    /// The batch the last `recv` returned, held: its rows stay as they are for as long as the
    /// [`HeldBatch`] lives, through any number of later `recv`s and resets (its block is not
    /// reused until it is dropped). Makes no copy. None since the last reset.
    pub fn hold_last(&self) -> Option<HeldBatch> {
        self.held.as_ref().map(|block| HeldBatch { block: Arc::clone(block), rows: self.batch_size })
    }

    /// A block nothing holds, from the spares, or a new one if every spare is held.
    fn free_block(&mut self) -> Result<Arc<SharedBatch>> {
        // `get_mut` succeeds only on the last reference, and acquires the drops of the others.
        match self.spare.iter_mut().position(|b| Arc::get_mut(b).is_some()) {
            Some(i) => Ok(self.spare.swap_remove(i)),
            None => new_block(self.batch_size, &self.spec, self.options.autoreset_mode),
        }
    }

    /// Waits until the block of table entry `block` is full (serial: runs queued envs until
    /// it is).
    fn wait_block(&mut self, block: usize) -> Result<()> {
        let b = self.batch_size;
        let shared = &*self.shared;
        let done = || shared.filled[block].load(Ordering::Acquire) >= b || shared.failed.load(Ordering::Acquire);
        if let Some(stage) = &self.stage {
            while !done() {
                let Some(id) = shared.claim() else { break };
                shared.run_guarded(id, stage);
            }
        } else {
            let backoff = Backoff::new();
            while !done() {
                if backoff.is_completed() {
                    // A worker unparks the caller after it fills a block or fails, and an
                    // unpark that comes before this park makes it return at once.
                    self.parker.park();
                } else {
                    backoff.snooze();
                }
            }
        }
        if shared.failed.load(Ordering::Acquire) {
            let failure = shared.failure.lock().unwrap_or_else(PoisonError::into_inner).clone();
            let err = failure.unwrap_or(EnvError::Poisoned { index: 0, cause: "an env failed".into() });
            self.poisoned = Some(err.clone());
            return Err(err);
        }
        if shared.filled[block].load(Ordering::Acquire) < b {
            // Unreachable while `in_flight_count >= b`; an error, not a hang, if it is not.
            return Err(EnvError::AsyncUsage("recv: fewer results than batch_size were sent".into()));
        }
        Ok(())
    }
}

/// A received batch held by its owner: no worker writes it while this lives. From
/// [`AsyncVecEnv::hold_last`].
pub struct HeldBatch {
    block: Arc<SharedBatch>,
    rows: usize,
}

impl HeldBatch {
    /// The observations, one row per env of the batch (in the batch's order).
    pub fn obs(&self) -> ObsRef<'_> {
        // SAFETY: the block was complete when it was received, and the vector writes no block
        // that something else still holds (module docs).
        #[allow(unsafe_code)]
        let view = unsafe { self.block.view(0, self.rows, &[]) };
        view.obs
    }
}

/// One output block of `batch_size` rows.
fn new_block(batch_size: usize, spec: &EnvSpec, mode: AutoresetMode) -> Result<Arc<SharedBatch>> {
    Ok(Arc::new(SharedBatch::new(Batch::new(batch_size, spec, mode)?, batch_size)))
}

/// Tells `sampler` how the episodes of `view` ended and chooses the ended envs' next options
/// (used by their autoreset, the next time they are sent).
fn report_and_resample(sampler: &mut dyn ResetSampler, envs: &[Mutex<Chunk>], view: &BatchView<'_>) {
    for k in (0..view.len()).filter(|&k| view.episode_done[k]) {
        let id = view.env_id(k);
        // Received, so no worker holds it.
        let mut chunk = lock(&envs[id]);
        sampler.report(&EpisodeEnd {
            env_index: id,
            options: &chunk.episode_options[0],
            episode_return: view.episode_return[k],
            length: view.episode_length[k],
            terminated: view.terminated[k],
            truncated: view.truncated[k],
            extras_mean: &chunk.ended_extras_mean,
        });
        chunk.pending[0] = Some(sampler.sample(id));
    }
}

impl Drop for AsyncVecEnv {
    fn drop(&mut self) {
        super::pool::stop_workers(&self.shared.shutdown, &mut self.threads);
    }
}

/// Output slots: `K = ceil(num_envs / batch_size) + 1` blocks of `batch_size` (module docs).
fn num_slots(num_envs: usize, batch_size: usize) -> usize {
    (num_envs.div_ceil(batch_size) + 1) * batch_size
}

fn check_shape(num_envs: usize, batch_size: usize, options: VecOptions) -> Result<()> {
    let invalid = |field: &str, message: String| EnvError::InvalidField {
        context: "async vector".into(),
        field: field.into(),
        message,
    };
    if num_envs == 0 {
        return Err(invalid("num_envs", "must be at least 1".into()));
    }
    if batch_size == 0 || batch_size > num_envs {
        return Err(invalid("batch_size", format!("must be 1 to num_envs = {num_envs}, got {batch_size}")));
    }
    if options.autoreset_mode == AutoresetMode::Disabled {
        return Err(invalid(
            "autoreset_mode",
            "async stepping supports next_step and same_step; disabled needs masked resets, which it has not".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bits(obs: ObsRef<'_>) -> Vec<u64> {
        obs.iter_f64().map(f64::to_bits).collect()
    }

    /// Receives and sends back `rounds` batches of CartPole actions.
    fn run(venv: &mut AsyncVecEnv, rounds: usize, mut each: impl FnMut(&AsyncVecEnv, usize)) {
        for t in 0..rounds {
            let ids = match venv.recv() {
                Ok(view) => view.env_ids.to_vec(),
                Err(err) => panic!("recv: {err}"),
            };
            each(venv, t);
            let actions = vec![(t % 2) as i64; ids.len()];
            assert!(venv.send(Action::Int(&actions), &ids).is_ok());
        }
    }

    /// An env whose panic escapes its guard (and that panics on every call after, reset
    /// included) fails its batch naming it on every worker count, with no thread left waiting;
    /// the next `async_reset` replaces it with a fresh env and stepping goes on.
    #[test]
    fn a_panic_that_escapes_fails_its_batch_and_the_env_is_replaced_at_reset() {
        let _ = crate::testing::register_test_envs();
        let config = serde_json::json!({"panic_on": 3, "panic_escapes": true, "panic_tears": true});
        let Value::Object(overrides) = config else { panic!("config") };
        for workers in [0, 1, 2] {
            let options = VecOptions { workers, autoreset_mode: AutoresetMode::NextStep };
            let made = AsyncVecEnv::make("keel-test/BytePattern-v0", &overrides, 4, 4, options);
            let Ok(mut venv) = made else { panic!("make") };
            for round in 0..2 {
                assert!(venv.async_reset(Seeds::Base(round), OptionsFor::Sampler).is_ok(), "{workers} workers");
                let ids = venv.recv().map(|v| v.env_ids.to_vec()).unwrap_or_else(|e| panic!("recv: {e}"));
                let actions: Vec<i64> = ids.iter().map(|&i| if i == 2 { 3 } else { 0 }).collect();
                assert!(venv.send(Action::Int(&actions), &ids).is_ok());
                let err = venv.recv().err().map(|e| e.to_string()).unwrap_or_default();
                assert!(err.contains("sub-env 2") && err.contains("panic"), "{workers} workers: {err}");
            }
            // Replaced at the reset: the torn env would panic again on any call.
            assert!(venv.async_reset(Seeds::Base(9), OptionsFor::Sampler).is_ok());
            for _ in 0..3 {
                let ids = venv.recv().map(|v| v.env_ids.to_vec()).unwrap_or_else(|e| panic!("{workers} workers: {e}"));
                assert!(venv.send(Action::Int(&vec![0; ids.len()]), &ids).is_ok());
            }
        }
    }

    #[test]
    fn a_held_batch_never_changes_and_blocks_let_go_of_are_reused() {
        for workers in [0, 2] {
            let options = VecOptions { workers, autoreset_mode: AutoresetMode::NextStep };
            let Ok(mut venv) = AsyncVecEnv::make("keel/CartPole-v1", &Map::new(), 4, 2, options) else {
                panic!("make")
            };
            assert!(venv.async_reset(Seeds::Base(3), OptionsFor::Sampler).is_ok());
            let mut held = Vec::new();
            run(&mut venv, 40, |venv, t| {
                if t % 8 == 0 {
                    let Some(batch) = venv.hold_last() else { panic!("nothing received") };
                    let at_recv = bits(batch.obs());
                    held.push((batch, at_recv));
                }
            });
            assert!(venv.async_reset(Seeds::Base(4), OptionsFor::Sampler).is_ok());
            run(&mut venv, 10, |_, _| {});
            for (batch, at_recv) in &held {
                assert_eq!(&bits(batch.obs()), at_recv, "workers = {workers}");
            }
            // Once let go of, the held blocks serve later batches: no block is added.
            drop(held);
            let blocks = venv.table.len() + venv.spare.len();
            run(&mut venv, 40, |_, _| {});
            assert_eq!(venv.table.len() + venv.spare.len(), blocks, "workers = {workers}");
        }
    }
}

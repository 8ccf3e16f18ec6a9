//! The one batch the workers write in place.
//!
//! Every vector call fills one [`Batch`] allocated at construction. The envs are split into
//! contiguous blocks; during a command each block is claimed by exactly one thread, which writes
//! only that block's rows. Splitting one buffer among threads that persist across calls is what
//! safe Rust cannot express (scoped threads would cost a spawn per step, more than a CartPole
//! vector step takes), so this module holds the engine's only `unsafe`: raw column pointers
//! taken once, turned into disjoint row slices while a command runs.
//!
//! The protocol that makes it sound, kept by `super::Pool`:
//! - the batch's vectors are never resized after construction (their buffers never move);
//! - [`SharedBatch::rows`] is called only for a block the calling thread has claimed, and blocks
//!   are disjoint, so no two live `Rows` overlap;
//! - [`SharedBatch::batch`] and [`SharedBatch::batch_mut`] are used only between commands, when
//!   no `Rows` is alive (the caller waits until every block is done, with acquire ordering);
//!   both are `unsafe fn`s whose callers say why no command is running.
//!
//! The observations and the terminal observations of a batch form one typed pair
//! ([`ObsRows`]): one element type for both by construction, so copying a row from one to the
//! other has no case of mismatched types to get wrong.
#![allow(unsafe_code)]

use std::cell::UnsafeCell;

use super::{Batch, BatchView};
use crate::obs::{ObsBuf, ObsMut, ObsRef, convert};

/// A raw column: base pointer and elements per env row.
#[derive(Clone, Copy)]
struct Column<T> {
    base: *mut T,
    width: usize,
}

impl<T> Column<T> {
    fn of(values: &mut [T], num_envs: usize) -> Self {
        Self { base: values.as_mut_ptr(), width: values.len() / num_envs.max(1) }
    }

    /// # Safety
    /// Rows `start..start + n` are in bounds and nothing writes them while the slice lives.
    unsafe fn rows_ref<'a>(self, start: usize, n: usize) -> &'a [T] {
        // SAFETY: as `rows`, read-only.
        unsafe { std::slice::from_raw_parts(self.base.add(start * self.width), n * self.width) }
    }

    /// # Safety
    /// Rows `start..start + n` are in bounds and no other live slice overlaps them.
    unsafe fn rows<'a>(self, start: usize, n: usize) -> &'a mut [T] {
        // SAFETY: in bounds and unaliased by the caller's contract; `base` stays valid because
        // the column's vector is never resized.
        unsafe { std::slice::from_raw_parts_mut(self.base.add(start * self.width), n * self.width) }
    }
}

/// An element type of observations, to take a typed vector out of an [`ObsBuf`] and back.
trait Elem: Copy + Default {
    /// The vector if `buf` holds this type, else `buf` back.
    fn unwrap(buf: ObsBuf) -> Result<Vec<Self>, ObsBuf>;
    fn wrap(values: Vec<Self>) -> ObsBuf;
}

macro_rules! elem {
    ($t:ty, $variant:ident) => {
        impl Elem for $t {
            fn unwrap(buf: ObsBuf) -> Result<Vec<Self>, ObsBuf> {
                match buf {
                    ObsBuf::$variant(v) => Ok(v),
                    other => Err(other),
                }
            }
            fn wrap(values: Vec<Self>) -> ObsBuf {
                ObsBuf::$variant(values)
            }
        }
    };
}
elem!(f32, F32);
elem!(f64, F64);
elem!(u8, U8);

/// The column of `final_obs` as element type `T`: the terminal observations take the
/// observations' type (`Batch::new` gives them that type already; any other buffer is replaced
/// by zeros of it, as long).
fn paired<T: Elem>(final_obs: &mut ObsBuf, num_envs: usize) -> Column<T> {
    let mut values = T::unwrap(std::mem::take(final_obs)).unwrap_or_else(|other| vec![T::default(); other.len()]);
    let column = Column::of(&mut values, num_envs);
    // Moving the vector moves its handle, not its buffer: the column stays valid.
    *final_obs = T::wrap(values);
    column
}

/// The observation and terminal-observation columns, of one element type by construction.
#[derive(Clone, Copy)]
enum ObsColumns {
    F32(Column<f32>, Column<f32>),
    F64(Column<f64>, Column<f64>),
    U8(Column<u8>, Column<u8>),
}

impl ObsColumns {
    fn of(obs: &mut ObsBuf, final_obs: &mut ObsBuf, num_envs: usize) -> Self {
        match obs {
            ObsBuf::F32(o) => ObsColumns::F32(Column::of(o, num_envs), paired(final_obs, num_envs)),
            ObsBuf::F64(o) => ObsColumns::F64(Column::of(o, num_envs), paired(final_obs, num_envs)),
            ObsBuf::U8(o) => ObsColumns::U8(Column::of(o, num_envs), paired(final_obs, num_envs)),
        }
    }

    /// # Safety
    /// As [`Column::rows`], for both columns.
    unsafe fn rows<'a>(self, start: usize, n: usize) -> ObsRows<'a> {
        // SAFETY: forwarded contract.
        unsafe {
            match self {
                ObsColumns::F32(o, f) => ObsRows::F32(ObsPair::new(o, f, start, n)),
                ObsColumns::F64(o, f) => ObsRows::F64(ObsPair::new(o, f, start, n)),
                ObsColumns::U8(o, f) => ObsRows::U8(ObsPair::new(o, f, start, n)),
            }
        }
    }
}

/// The observation rows of one block and their terminal-observation rows, of one type.
pub(super) struct ObsPair<'a, T> {
    obs: &'a mut [T],
    final_obs: &'a mut [T],
    /// Elements per observation row (the terminal rows have as many, or none at all).
    width: usize,
}

impl<T: Copy> ObsPair<'_, T> {
    /// # Safety
    /// As [`Column::rows`], for both columns.
    unsafe fn new(obs: Column<T>, final_obs: Column<T>, start: usize, n: usize) -> Self {
        // SAFETY: forwarded contract.
        unsafe { Self { obs: obs.rows(start, n), final_obs: final_obs.rows(start, n), width: obs.width } }
    }

    fn keep_final(&mut self, k: usize) {
        let r = k * self.width..(k + 1) * self.width;
        self.final_obs[r.clone()].copy_from_slice(&self.obs[r]);
    }

    fn copy_from(&mut self, from: &ObsPair<'_, T>, with_final: bool) {
        self.obs.copy_from_slice(from.obs);
        if with_final {
            self.final_obs.copy_from_slice(from.final_obs);
        }
    }
}

/// The observation rows of one block, with their terminal-observation rows.
pub(super) enum ObsRows<'a> {
    F32(ObsPair<'a, f32>),
    F64(ObsPair<'a, f64>),
    U8(ObsPair<'a, u8>),
}

impl ObsRows<'_> {
    /// Row `k` of the block.
    #[inline(always)]
    pub(super) fn row(&mut self, k: usize) -> ObsMut<'_> {
        fn of<'p, T>(p: &'p mut ObsPair<'_, T>, k: usize) -> &'p mut [T] {
            let w = p.width;
            &mut p.obs[k * w..(k + 1) * w]
        }
        match self {
            ObsRows::F32(p) => ObsMut::F32(of(p, k)),
            ObsRows::F64(p) => ObsMut::F64(of(p, k)),
            ObsRows::U8(p) => ObsMut::U8(of(p, k)),
        }
    }

    /// Copies observation row `k` into terminal-observation row `k` (`SameStep` batches only,
    /// whose terminal rows exist).
    pub(super) fn keep_final(&mut self, k: usize) {
        match self {
            ObsRows::F32(p) => p.keep_final(k),
            ObsRows::F64(p) => p.keep_final(k),
            ObsRows::U8(p) => p.keep_final(k),
        }
    }

    /// Copies all of `from` (rows of a batch of the same spec, as many as these) in, the
    /// terminal observations too if `with_final`. A batch of another element type has other
    /// values, not the same ones: they are converted (the async hand-over copies between
    /// batches made from one spec, where this never happens).
    fn copy_from(&mut self, from: &ObsRows<'_>, with_final: bool) {
        match (self, from) {
            (ObsRows::F32(a), ObsRows::F32(b)) => a.copy_from(b, with_final),
            (ObsRows::F64(a), ObsRows::F64(b)) => a.copy_from(b, with_final),
            (ObsRows::U8(a), ObsRows::U8(b)) => a.copy_from(b, with_final),
            (to, from) => {
                convert(to.obs_mut(), from.obs_ref());
                if with_final {
                    convert(to.final_mut(), from.final_ref());
                }
            }
        }
    }

    fn obs_ref(&self) -> ObsRef<'_> {
        match self {
            ObsRows::F32(p) => ObsRef::F32(p.obs),
            ObsRows::F64(p) => ObsRef::F64(p.obs),
            ObsRows::U8(p) => ObsRef::U8(p.obs),
        }
    }

    fn final_ref(&self) -> ObsRef<'_> {
        match self {
            ObsRows::F32(p) => ObsRef::F32(p.final_obs),
            ObsRows::F64(p) => ObsRef::F64(p.final_obs),
            ObsRows::U8(p) => ObsRef::U8(p.final_obs),
        }
    }

    fn obs_mut(&mut self) -> ObsMut<'_> {
        match self {
            ObsRows::F32(p) => ObsMut::F32(p.obs),
            ObsRows::F64(p) => ObsMut::F64(p.obs),
            ObsRows::U8(p) => ObsMut::U8(p.obs),
        }
    }

    fn final_mut(&mut self) -> ObsMut<'_> {
        match self {
            ObsRows::F32(p) => ObsMut::F32(p.final_obs),
            ObsRows::F64(p) => ObsMut::F64(p.final_obs),
            ObsRows::U8(p) => ObsMut::U8(p.final_obs),
        }
    }
}

/// The rows of one block in every column of the batch.
pub(super) struct Rows<'a> {
    /// Observations and, in `SameStep` batches, terminal observations.
    pub(super) obs: ObsRows<'a>,
    pub(super) reward: &'a mut [f64],
    pub(super) terminated: &'a mut [bool],
    pub(super) truncated: &'a mut [bool],
    pub(super) extras: &'a mut [f64],
    pub(super) final_extras: &'a mut [f64],
    pub(super) has_final_obs: &'a mut [bool],
    pub(super) episode_return: &'a mut [f64],
    pub(super) episode_length: &'a mut [u64],
    pub(super) episode_done: &'a mut [bool],
}

impl Rows<'_> {
    /// Copies every column of `from` (rows of a batch of the same spec and mode, as many as
    /// these) in: the async pool's hand-over from a worker's staging row to an output slot.
    pub(super) fn copy_from(&mut self, from: &Rows<'_>) {
        // Terminal observations are read only where `has_final_obs` is set.
        let with_final = from.has_final_obs.iter().any(|&f| f);
        self.obs.copy_from(&from.obs, with_final);
        self.reward.copy_from_slice(from.reward);
        self.terminated.copy_from_slice(from.terminated);
        self.truncated.copy_from_slice(from.truncated);
        self.extras.copy_from_slice(from.extras);
        if with_final {
            self.final_extras.copy_from_slice(from.final_extras);
        }
        self.has_final_obs.copy_from_slice(from.has_final_obs);
        self.episode_return.copy_from_slice(from.episode_return);
        self.episode_length.copy_from_slice(from.episode_length);
        self.episode_done.copy_from_slice(from.episode_done);
    }
}

#[derive(Clone, Copy)]
struct Columns {
    obs: ObsColumns,
    reward: Column<f64>,
    terminated: Column<bool>,
    truncated: Column<bool>,
    extras: Column<f64>,
    final_extras: Column<f64>,
    has_final_obs: Column<bool>,
    episode_return: Column<f64>,
    episode_length: Column<u64>,
    episode_done: Column<bool>,
}

/// The batch, shared by the calling thread and the workers (see the module docs).
pub(super) struct SharedBatch {
    batch: UnsafeCell<Batch>,
    columns: Columns,
    num_envs: usize,
}

// SAFETY: the batch is plain data; concurrent access follows the protocol in the module docs
// (disjoint rows during a command, whole-batch access only between commands).
unsafe impl Sync for SharedBatch {}
// SAFETY: the raw pointers point into the owned batch, which moves with it.
unsafe impl Send for SharedBatch {}

impl SharedBatch {
    pub(super) fn new(mut batch: Batch, num_envs: usize) -> Self {
        let columns = Columns {
            obs: ObsColumns::of(&mut batch.obs, &mut batch.final_obs, num_envs),
            reward: Column::of(&mut batch.reward, num_envs),
            terminated: Column::of(&mut batch.terminated, num_envs),
            truncated: Column::of(&mut batch.truncated, num_envs),
            extras: Column::of(&mut batch.extras, num_envs),
            final_extras: Column::of(&mut batch.final_extras, num_envs),
            has_final_obs: Column::of(&mut batch.has_final_obs, num_envs),
            episode_return: Column::of(&mut batch.episode_return, num_envs),
            episode_length: Column::of(&mut batch.episode_length, num_envs),
            episode_done: Column::of(&mut batch.episode_done, num_envs),
        };
        // Moving `batch` into the cell moves the vectors' handles, not their buffers.
        Self { batch: UnsafeCell::new(batch), columns, num_envs }
    }

    /// Rows `start..start + n` of every column.
    ///
    /// # Safety
    /// Called only by the thread that claimed this block during a command; blocks are disjoint
    /// and no `&Batch` is alive (module docs).
    pub(super) unsafe fn rows(&self, start: usize, n: usize) -> Rows<'_> {
        debug_assert!(start + n <= self.num_envs);
        let c = self.columns;
        // SAFETY: forwarded contract; every column has `num_envs` rows.
        unsafe {
            Rows {
                obs: c.obs.rows(start, n),
                reward: c.reward.rows(start, n),
                terminated: c.terminated.rows(start, n),
                truncated: c.truncated.rows(start, n),
                extras: c.extras.rows(start, n),
                final_extras: c.final_extras.rows(start, n),
                has_final_obs: c.has_final_obs.rows(start, n),
                episode_return: c.episode_return.rows(start, n),
                episode_length: c.episode_length.rows(start, n),
                episode_done: c.episode_done.rows(start, n),
            }
        }
    }

    /// Rows `start..start + n` of every column, read-only, in a [`BatchView`] whose `env_ids`
    /// are `env_ids`.
    ///
    /// # Safety
    /// The rows were completely written (and the writes acquired) and no thread writes them
    /// while the view lives; other rows may be written meanwhile.
    pub(super) unsafe fn view<'a>(&'a self, start: usize, n: usize, env_ids: &'a [usize]) -> BatchView<'a> {
        debug_assert!(start + n <= self.num_envs);
        let c = self.columns;
        // SAFETY: forwarded contract; every column has `num_envs` rows, and shared slices of
        // these rows alias no live `&mut`.
        unsafe {
            let (obs, final_obs) = match c.obs {
                ObsColumns::F32(o, f) => (ObsRef::F32(o.rows_ref(start, n)), ObsRef::F32(f.rows_ref(start, n))),
                ObsColumns::F64(o, f) => (ObsRef::F64(o.rows_ref(start, n)), ObsRef::F64(f.rows_ref(start, n))),
                ObsColumns::U8(o, f) => (ObsRef::U8(o.rows_ref(start, n)), ObsRef::U8(f.rows_ref(start, n))),
            };
            BatchView {
                obs,
                reward: c.reward.rows_ref(start, n),
                terminated: c.terminated.rows_ref(start, n),
                truncated: c.truncated.rows_ref(start, n),
                extras: c.extras.rows_ref(start, n),
                final_obs,
                final_extras: c.final_extras.rows_ref(start, n),
                has_final_obs: c.has_final_obs.rows_ref(start, n),
                episode_return: c.episode_return.rows_ref(start, n),
                episode_length: c.episode_length.rows_ref(start, n),
                episode_done: c.episode_done.rows_ref(start, n),
                env_ids,
            }
        }
    }

    /// The whole batch, read-only.
    ///
    /// # Safety
    /// No command may run while the reference lives: no thread holds a `Rows` of this batch or
    /// writes its rows, from before the call (every write of the last command acquired) until
    /// the reference is dropped. For a sync pool, whose commands take `&mut` of the owner and
    /// finish before returning, a `&self` of the owner proves it; an async output ring, whose
    /// workers write while the caller holds `&self`, has no such proof (use [`Self::view`] of
    /// the rows it owns).
    pub(super) unsafe fn batch(&self) -> &Batch {
        // SAFETY: forwarded contract: nothing writes the batch while the reference lives.
        unsafe { &*self.batch.get() }
    }

    /// The whole batch, writable. Callers write elements only: a resized vector would
    /// invalidate the column pointers.
    ///
    /// # Safety
    /// Only between commands, and no other reference to the batch may be alive.
    #[allow(clippy::mut_from_ref)] // the cell is the point: exclusivity is the caller's contract
    pub(super) unsafe fn batch_mut(&self) -> &mut Batch {
        // SAFETY: forwarded contract.
        unsafe { &mut *self.batch.get() }
    }
}

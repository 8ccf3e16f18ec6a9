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
//!   no `Rows` is alive (the caller waits until every block is done, with acquire ordering).
#![allow(unsafe_code)]

use std::cell::UnsafeCell;

use super::{Batch, BatchView};
use crate::obs::{ObsBuf, ObsMut, ObsRef};

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

#[derive(Clone, Copy)]
enum ObsColumn {
    F32(Column<f32>),
    F64(Column<f64>),
    U8(Column<u8>),
}

impl ObsColumn {
    fn of(buf: &mut ObsBuf, num_envs: usize) -> Self {
        match buf {
            ObsBuf::F32(v) => ObsColumn::F32(Column::of(v, num_envs)),
            ObsBuf::F64(v) => ObsColumn::F64(Column::of(v, num_envs)),
            ObsBuf::U8(v) => ObsColumn::U8(Column::of(v, num_envs)),
        }
    }

    /// # Safety
    /// As [`Column::rows`].
    unsafe fn rows<'a>(self, start: usize, n: usize) -> ObsRows<'a> {
        // SAFETY: forwarded contract.
        unsafe {
            match self {
                ObsColumn::F32(c) => ObsRows::F32(c.rows(start, n), c.width),
                ObsColumn::F64(c) => ObsRows::F64(c.rows(start, n), c.width),
                ObsColumn::U8(c) => ObsRows::U8(c.rows(start, n), c.width),
            }
        }
    }
}

/// The observation rows of one block.
pub(super) enum ObsRows<'a> {
    F32(&'a mut [f32], usize),
    F64(&'a mut [f64], usize),
    U8(&'a mut [u8], usize),
}

impl ObsRows<'_> {
    /// Row `k` of the block.
    #[inline(always)]
    pub(super) fn row(&mut self, k: usize) -> ObsMut<'_> {
        match self {
            ObsRows::F32(v, w) => ObsMut::F32(&mut v[k * *w..(k + 1) * *w]),
            ObsRows::F64(v, w) => ObsMut::F64(&mut v[k * *w..(k + 1) * *w]),
            ObsRows::U8(v, w) => ObsMut::U8(&mut v[k * *w..(k + 1) * *w]),
        }
    }

    /// Copies row `k` into row `k` of `to` (same type and width).
    pub(super) fn copy_row_to(&self, k: usize, to: &mut ObsRows<'_>) {
        match (self, to) {
            (ObsRows::F32(a, w), ObsRows::F32(b, _)) => b[k * w..(k + 1) * w].copy_from_slice(&a[k * w..(k + 1) * w]),
            (ObsRows::F64(a, w), ObsRows::F64(b, _)) => b[k * w..(k + 1) * w].copy_from_slice(&a[k * w..(k + 1) * w]),
            (ObsRows::U8(a, w), ObsRows::U8(b, _)) => b[k * w..(k + 1) * w].copy_from_slice(&a[k * w..(k + 1) * w]),
            _ => {}
        }
    }
}

impl ObsRows<'_> {
    /// Copies all of `from` (same type and length) in.
    fn copy_from(&mut self, from: &ObsRows<'_>) {
        match (self, from) {
            (ObsRows::F32(a, _), ObsRows::F32(b, _)) => a.copy_from_slice(b),
            (ObsRows::F64(a, _), ObsRows::F64(b, _)) => a.copy_from_slice(b),
            (ObsRows::U8(a, _), ObsRows::U8(b, _)) => a.copy_from_slice(b),
            _ => {}
        }
    }
}

/// The rows of one block in every column of the batch.
pub(super) struct Rows<'a> {
    pub(super) obs: ObsRows<'a>,
    pub(super) reward: &'a mut [f64],
    pub(super) terminated: &'a mut [bool],
    pub(super) truncated: &'a mut [bool],
    pub(super) extras: &'a mut [f64],
    pub(super) final_obs: ObsRows<'a>,
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
        self.obs.copy_from(&from.obs);
        self.reward.copy_from_slice(from.reward);
        self.terminated.copy_from_slice(from.terminated);
        self.truncated.copy_from_slice(from.truncated);
        self.extras.copy_from_slice(from.extras);
        // Terminal observations are read only where `has_final_obs` is set.
        if from.has_final_obs.iter().any(|&f| f) {
            self.final_obs.copy_from(&from.final_obs);
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
    obs: ObsColumn,
    reward: Column<f64>,
    terminated: Column<bool>,
    truncated: Column<bool>,
    extras: Column<f64>,
    final_obs: ObsColumn,
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
            obs: ObsColumn::of(&mut batch.obs, num_envs),
            reward: Column::of(&mut batch.reward, num_envs),
            terminated: Column::of(&mut batch.terminated, num_envs),
            truncated: Column::of(&mut batch.truncated, num_envs),
            extras: Column::of(&mut batch.extras, num_envs),
            final_obs: ObsColumn::of(&mut batch.final_obs, num_envs),
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
                final_obs: c.final_obs.rows(start, n),
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
            let obs = |o: ObsColumn| match o {
                ObsColumn::F32(c) => ObsRef::F32(c.rows_ref(start, n)),
                ObsColumn::F64(c) => ObsRef::F64(c.rows_ref(start, n)),
                ObsColumn::U8(c) => ObsRef::U8(c.rows_ref(start, n)),
            };
            BatchView {
                obs: obs(c.obs),
                reward: c.reward.rows_ref(start, n),
                terminated: c.terminated.rows_ref(start, n),
                truncated: c.truncated.rows_ref(start, n),
                extras: c.extras.rows_ref(start, n),
                final_obs: obs(c.final_obs),
                final_extras: c.final_extras.rows_ref(start, n),
                has_final_obs: c.has_final_obs.rows_ref(start, n),
                episode_return: c.episode_return.rows_ref(start, n),
                episode_length: c.episode_length.rows_ref(start, n),
                episode_done: c.episode_done.rows_ref(start, n),
                env_ids,
            }
        }
    }

    /// The whole batch, read-only. The owning `Pool` calls it only from its own `&self`
    /// methods, and its commands take `&mut self` and finish before returning, so no command
    /// (no `Rows`) is running; workers never call it.
    pub(super) fn batch(&self) -> &Batch {
        // SAFETY: only called between commands (module docs), so no `Rows` is alive.
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

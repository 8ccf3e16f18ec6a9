//! # keel-python
//!
//! The pyo3 extension module `keel._core`, built by maturin, behind `import keel`. It holds two
//! cores that the pure-Python layer (`python/keel/`) dresses as Gymnasium classes:
//!
//! - [`EnvCore`]: one Rust env. `step` returns exactly Gymnasium's 5-tuple (a fresh array of the
//!   observation space's dtype and shape, a Python `float`, two Python `bool`s and a new `dict`
//!   holding the env's per-step extras), so the Python class can bind it as its `step` with no
//!   Python frame in between.
//! - [`VecCore`]: the Rust vector engine. `step` releases the GIL while the worker pool steps
//!   (unless the previous step took under 5 µs, when the hand-off would cost more than the step).
//!   Observations come in the space's dtype and shape `(num_envs, *obs_shape)`: with
//!   `copy=False` as a read-only numpy view of the engine's own batch buffer (the same address
//!   every step, rewritten by the next step: nothing is copied), with `copy=True` (Gymnasium's
//!   default) as a fresh array. The info dict (per-step extras, episode statistics, final
//!   observations and infos) is built here too; `step_into` checks buffers the caller owns,
//!   then steps and copies into them.
//! - [`AsyncVecCore`]: the async engine (EnvPool's `send`/`recv`). With `copy=False` each
//!   `recv`'s observations are a read-only view of that `recv`'s own block, held by a
//!   [`HeldRows`] that is the array's base: the engine writes no block a view still holds, so
//!   the view never changes.
//!
//! Errors become Python exceptions deriving from `ValueError` (`keel.KeelError` and its
//! subclasses); no input reaches a panic.

mod actions;
mod async_vector;
mod env;
mod errors;
mod infos;
mod sync_vector;

use std::sync::{Mutex, MutexGuard, PoisonError};

use pyo3::prelude::*;

pub use async_vector::{AsyncVecCore, HeldRows};
pub use env::EnvCore;
use errors::{
    ActionError, ClosedError, ConfigError, DataMissingError, InUseError, KeelError, PoisonedError, ResetNeededError,
    UnknownEnvError, to_py,
};
pub use sync_vector::VecCore;

pub(crate) fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn exclusive<T>(m: &mut Mutex<T>) -> &mut T {
    m.get_mut().unwrap_or_else(PoisonError::into_inner)
}

/// Every registered env: `(id, description, max_episode_steps, reward_threshold)`, without
/// building any env; an env whose data is missing is listed (its spec, and so its threshold, is
/// unknown: `make` raises the error that says how to install the data).
#[pyfunction]
fn env_registrations() -> Vec<(&'static str, &'static str, Option<u64>, Option<f64>)> {
    // An Atari spec loads its ROM (about 0.2 s of ALE set-up each, 104 games: `import keel`
    // took over 10 s of CPU) and has no reward threshold: skip building it.
    let threshold = |r: &keel_envs::registry::Registration| {
        if r.description.starts_with("Atari 2600") {
            return None;
        }
        r.spec().ok().and_then(|s| s.reward_threshold)
    };
    keel_envs::registry::entries().iter().map(|r| (r.id, r.description, r.max_episode_steps, threshold(r))).collect()
}

/// Ids of every registered env.
#[pyfunction]
fn env_ids() -> Vec<&'static str> {
    keel_envs::registry::ids()
}

/// One-line description of every registered env, by id.
#[pyfunction]
fn env_descriptions() -> Vec<(&'static str, &'static str)> {
    keel_envs::registry::entries().iter().map(|r| (r.id, r.description)).collect()
}

/// Registers Keel's test envs (`keel-test/...`, e.g. a uint8 image env) for test suites.
#[pyfunction]
fn register_test_envs() -> PyResult<()> {
    keel_envs::testing::register_test_envs().map_err(to_py)
}

/// The `keel._core` module.
#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    // The families outside keel-envs' defaults (the humanoid, the differentiable-physics
    // family) join the registry first.
    keel_envs::humanoid::register().map_err(to_py)?;
    keel_envs::diff::register().map_err(to_py)?;
    #[cfg(feature = "atari")]
    keel_envs::atari::register().map_err(to_py)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(env_ids, m)?)?;
    m.add_function(wrap_pyfunction!(env_descriptions, m)?)?;
    m.add_function(wrap_pyfunction!(env_registrations, m)?)?;
    m.add_function(wrap_pyfunction!(register_test_envs, m)?)?;
    m.add_class::<EnvCore>()?;
    m.add_class::<VecCore>()?;
    m.add_class::<AsyncVecCore>()?;
    m.add_class::<HeldRows>()?;
    m.add("KeelError", py.get_type::<KeelError>())?;
    m.add("UnknownEnvError", py.get_type::<UnknownEnvError>())?;
    m.add("ConfigError", py.get_type::<ConfigError>())?;
    m.add("ActionError", py.get_type::<ActionError>())?;
    m.add("ResetNeededError", py.get_type::<ResetNeededError>())?;
    m.add("DataMissingError", py.get_type::<DataMissingError>())?;
    m.add("PoisonedError", py.get_type::<PoisonedError>())?;
    m.add("ClosedError", py.get_type::<ClosedError>())?;
    m.add("InUseError", py.get_type::<InUseError>())?;
    Ok(())
}

//! # keel-python
//!
//! The pyo3 extension module `keel._core`, built by maturin, behind `import keel`. The
//! Gymnasium-compatible env classes, vector env and Stable-Baselines3 adapter arrive with the
//! Python-access issue; for now the module exposes the registry, so the build, the wheel and the
//! import path are proven from the start.

use pyo3::prelude::*;

/// Ids of every registered env.
#[pyfunction]
fn env_ids() -> Vec<&'static str> {
    keel_envs::registry::ids()
}

/// The `keel._core` module.
#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(env_ids, m)?)?;
    Ok(())
}

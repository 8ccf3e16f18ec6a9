//! [`AsyncVecCore`]: the async vector engine (EnvPool's `send`/`recv`) behind
//! `keel.AsyncVectorEnv`, and [`HeldRows`], the base of the views it hands out.

use std::sync::Mutex;
use std::time::Instant;

use keel_envs::vector::{AsyncVecEnv, HeldBatch};
use keel_envs::{EnvError, ObsRef};
use numpy::{IntoPyArray, PyArray1, PyReadonlyArrayDyn};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::actions::{ActionReader, describe};
use crate::errors::{
    ActionError, KeelError, ResetNeededError, in_use, make_interruptibly, parse_map, parse_options, seeds_of, to_py,
    vec_options,
};
use crate::infos::{BatchLayout, flag_array, obs_ref_array, step_infos, view};
use crate::{exclusive, locked};

/// The Rust async vector engine, EnvPool style: `send` actions for some envs, `recv` the first
/// `batch_size` that finished, with their ids in `info["env_id"]`.
#[pyclass(module = "keel._core")]
pub struct AsyncVecCore {
    /// See [`EnvCore::env`] for the `Mutex`.
    venv: Mutex<AsyncVecEnv>,
    actions: ActionReader,
    batch_size: usize,
    layout: BatchLayout,
    /// Env ids of the current `send`, and of the last `recv` (`send` without ids uses them).
    ids: Vec<usize>,
    last_ids: Vec<usize>,
}

/// The rows of one received async batch, held for as long as a numpy view of them lives: the
/// engine writes no row of a held batch (a new `recv` fills another block).
#[pyclass(module = "keel._core", frozen)]
pub struct HeldRows {
    rows: HeldBatch,
}

/// A read-only numpy view of the last received batch's observations in `shape`, whose base
/// holds the batch: it never changes, however many `recv`s follow.
pub(crate) fn held_view<'py>(py: Python<'py>, venv: &AsyncVecEnv, shape: &[usize]) -> PyResult<Bound<'py, PyAny>> {
    let rows = venv.hold_last().ok_or_else(|| KeelError::new_err("no batch received since the last reset"))?;
    let owner = Bound::new(py, HeldRows { rows })?;
    let held = owner.get();
    let owner = owner.clone().into_any();
    match held.rows.obs() {
        ObsRef::F32(v) => view(v, shape, owner),
        ObsRef::F64(v) => view(v, shape, owner),
        ObsRef::U8(v) => view(v, shape, owner),
    }
}

/// `env_id` as a list of sub-env indices: an int, a sequence or an integer numpy array;
/// negative or non-integer ids are refused.
pub(crate) fn read_env_ids(obj: &Bound<'_, PyAny>, out: &mut Vec<usize>) -> PyResult<()> {
    out.clear();
    let bad = |what: String| ActionError::new_err(format!("env_id: {what}"));
    let push = |out: &mut Vec<usize>, v: i64| -> PyResult<()> {
        out.push(usize::try_from(v).map_err(|_| bad(format!("negative id {v}")))?);
        Ok(())
    };
    if let Ok(a) = obj.extract::<PyReadonlyArrayDyn<'_, i32>>() {
        return a.as_array().iter().try_for_each(|&v| push(out, i64::from(v)));
    }
    if let Ok(a) = obj.extract::<PyReadonlyArrayDyn<'_, i64>>() {
        return a.as_array().iter().try_for_each(|&v| push(out, v));
    }
    if let Ok(v) = obj.extract::<i64>() {
        return push(out, v);
    }
    let is_int_array = obj
        .getattr("dtype")
        .and_then(|d| d.getattr("kind"))
        .is_ok_and(|k| k.to_string() == "i" || k.to_string() == "u");
    let values: Vec<i64> = if is_int_array {
        obj.call_method1("astype", ("int64",))?.call_method0("ravel")?.extract()?
    } else {
        obj.extract().map_err(|_| bad(format!("expected integer ids, got {}", describe(obj))))?
    };
    values.into_iter().try_for_each(|v| push(out, v))
}

impl AsyncVecCore {
    /// `(obs, rewards, terminations, truncations, infos)` of the last received batch.
    fn received<'py>(this: &Bound<'py, Self>) -> PyResult<Bound<'py, PyTuple>> {
        let py = this.py();
        let mut core = this.try_borrow_mut().map_err(|_| in_use())?;
        let core = &mut *core;
        let venv = locked(&core.venv);
        let Some(batch) = venv.last_batch() else {
            return Err(KeelError::new_err("no batch received since the last reset"));
        };
        let obs = if core.layout.copy {
            obs_ref_array(py, batch.obs, 0..core.batch_size, core.layout.obs_len, &core.layout.batch_shape)?
        } else {
            held_view(py, &venv, &core.layout.batch_shape)?
        };
        let rewards = PyArray1::from_slice(py, batch.reward);
        let terminations = flag_array(py, batch.terminated);
        let truncations = flag_array(py, batch.truncated);
        let names = venv.spec().extras.as_slice();
        let infos =
            step_infos(py, names, &batch, &mut core.layout.episode_start, core.layout.obs_len, &core.layout.shape)?;
        let ids: Vec<i32> = batch.env_ids.iter().map(|&i| i32::try_from(i).unwrap_or(i32::MAX)).collect();
        infos.set_item(intern!(py, "env_id"), ids.into_pyarray(py))?;
        core.last_ids.clear();
        core.last_ids.extend_from_slice(batch.env_ids);
        (obs, rewards, terminations, truncations, infos).into_pyobject(py)
    }
}

#[pymethods]
impl AsyncVecCore {
    /// `num_envs` copies of `env_id`, received `batch_size` at a time, on `workers` threads
    /// (0: stepped inside `recv` on the calling thread, in the order sent).
    #[new]
    #[pyo3(signature = (env_id, num_envs, batch_size, workers, autoreset_mode, config_json=None, copy=true))]
    #[allow(clippy::too_many_arguments)] // the Python signature
    fn new(
        py: Python<'_>,
        env_id: &str,
        num_envs: usize,
        batch_size: usize,
        workers: usize,
        autoreset_mode: &str,
        config_json: Option<&str>,
        copy: bool,
    ) -> PyResult<Self> {
        let options = vec_options(workers, autoreset_mode)?;
        let config = parse_map(config_json, "config")?;
        let venv = make_interruptibly(py, |on_made| {
            AsyncVecEnv::make_watched(env_id, &config, num_envs, batch_size, options, on_made)
        })?;
        let spec = venv.spec();
        let (actions, layout) =
            (ActionReader::new(&spec.action_space), BatchLayout::new(spec, batch_size, num_envs, copy));
        Ok(Self {
            venv: Mutex::new(venv),
            actions,
            batch_size,
            layout,
            ids: Vec::with_capacity(num_envs),
            last_ids: Vec::with_capacity(batch_size),
        })
    }

    /// The sub-env spec as JSON.
    fn spec_json(&self) -> PyResult<String> {
        serde_json::to_string(locked(&self.venv).spec()).map_err(|e| KeelError::new_err(e.to_string()))
    }

    /// Envs in flight (sent or reset, not yet received).
    fn in_flight(&self) -> usize {
        locked(&self.venv).in_flight()
    }

    /// Resets every env (`seeds`: one per env, or `None` to continue their streams) and queues
    /// the results for `recv`, env 0 first.
    #[pyo3(signature = (seeds=None, options_json=None))]
    fn async_reset(this: &Bound<'_, Self>, seeds: Option<Vec<u64>>, options_json: Option<&str>) -> PyResult<()> {
        let py = this.py();
        let options = parse_options(options_json)?;
        let mut core = this.try_borrow_mut().map_err(|_| in_use())?;
        let core = &mut *core;
        let (seeds, options) = (seeds_of(&seeds), options.options_for());
        let venv = exclusive(&mut core.venv);
        py.detach(|| venv.async_reset(seeds, options)).map_err(to_py)?;
        core.layout.episode_start.fill(Instant::now());
        core.last_ids.clear();
        Ok(())
    }

    /// Hands `actions` (one row per id) to the envs `env_id` (default: those of the last
    /// `recv`) and returns at once.
    #[pyo3(signature = (actions, env_id=None))]
    fn send(this: &Bound<'_, Self>, actions: &Bound<'_, PyAny>, env_id: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let mut core = this.try_borrow_mut().map_err(|_| in_use())?;
        let core = &mut *core;
        let mut ids = std::mem::take(&mut core.ids);
        match env_id {
            Some(obj) if !obj.is_none() => read_env_ids(obj, &mut ids)?,
            _ => {
                if core.last_ids.is_empty() {
                    core.ids = ids;
                    return Err(ActionError::new_err(
                        "send(actions) without env_id sends to the envs of the last recv, and there is none since the reset: pass env_id",
                    ));
                }
                ids.clear();
                ids.extend_from_slice(&core.last_ids);
            }
        }
        let result = core
            .actions
            .read(actions, Some(ids.len()))
            .and_then(|a| exclusive(&mut core.venv).send(a, &ids).map_err(|e| async_error(e, "send")));
        core.ids = ids;
        result
    }

    /// Waits for the next `batch_size` results: `(obs, rewards, terminations, truncations,
    /// infos)` with the rows' env ids in `infos["env_id"]`.
    fn recv<'py>(this: &Bound<'py, Self>) -> PyResult<Bound<'py, PyTuple>> {
        let py = this.py();
        {
            let mut core = this.try_borrow_mut().map_err(|_| in_use())?;
            let venv = exclusive(&mut core.venv);
            py.detach(|| venv.recv().map(|_| ())).map_err(|e| async_error(e, "recv"))?;
        }
        Self::received(this)
    }

    /// `send(actions, env_id)` then `recv()`.
    #[pyo3(signature = (actions, env_id=None))]
    fn step<'py>(
        this: &Bound<'py, Self>,
        actions: &Bound<'py, PyAny>,
        env_id: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        Self::send(this, actions, env_id)?;
        Self::recv(this)
    }
}

/// An async vector's error in `call`: before the first reset, it names the resets to call
/// (the engine's own message speaks of `step`).
pub(crate) fn async_error(err: EnvError, call: &str) -> PyErr {
    match err {
        EnvError::ResetNeeded => {
            ResetNeededError::new_err(format!("{call}() before the first reset: call reset() or async_reset() first"))
        }
        other => to_py(other),
    }
}

//! [`VecCore`]: the sync vector engine behind `keel.VectorEnv`.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use keel_envs::space::DType;
use keel_envs::{Action, ObsBuf, VecEnv};
use numpy::{
    Element, PyArray1, PyArrayDyn, PyArrayMethods, PyReadwriteArrayDyn, PyUntypedArray, PyUntypedArrayMethods,
};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use serde_json::Value;

use crate::actions::{ActionReader, describe, tuple};
use crate::errors::{
    ActionError, ConfigError, KeelError, in_use, make_interruptibly, parse_map, parse_options, seeds_of, to_py,
    vec_options,
};
use crate::infos::{BatchLayout, extras_infos, flag_array, obs_array, step_infos, view};
use crate::{exclusive, locked};

/// The Rust vector engine (see the module docs).
#[pyclass(module = "keel._core")]
pub struct VecCore {
    /// See [`EnvCore::env`] for the `Mutex`.
    venv: Mutex<VecEnv>,
    actions: ActionReader,
    num_envs: usize,
    layout: BatchLayout,
    /// How long the last vector step took, to decide whether the next releases the GIL.
    last_step: Duration,
}

/// Steps shorter than this keep the GIL: handing it over and back costs more than they take,
/// and no other thread could do anything useful in between.
pub(crate) const GIL_RELEASE_ABOVE: Duration = Duration::from_micros(5);

/// Steps the vector, releasing the GIL unless the previous step was shorter than
/// [`GIL_RELEASE_ABOVE`] (a handful of cheap envs); records this step's duration.
pub(crate) fn step_releasing_gil(
    py: Python<'_>,
    venv: &mut VecEnv,
    actions: Action<'_>,
    last_step: &mut Duration,
) -> PyResult<()> {
    let start = Instant::now();
    let result = if *last_step > GIL_RELEASE_ABOVE { py.detach(|| venv.step(actions)) } else { venv.step(actions) };
    *last_step = start.elapsed();
    result.map_err(to_py)
}

impl VecCore {
    /// The observations of the last call: a view of the engine's buffer or a copy.
    fn observations<'py>(this: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let py = this.py();
        let core = core_ref(this)?;
        let venv = locked(&core.venv);
        let obs = &venv.batch().obs;
        if core.layout.copy {
            return obs_array(py, obs, 0..core.num_envs, core.layout.obs_len, &core.layout.batch_shape);
        }
        let owner = this.clone().into_any();
        match obs {
            ObsBuf::F32(v) => view(v, &core.layout.batch_shape, owner),
            ObsBuf::F64(v) => view(v, &core.layout.batch_shape, owner),
            ObsBuf::U8(v) => view(v, &core.layout.batch_shape, owner),
        }
    }
}

#[pymethods]
impl VecCore {
    /// `num_envs` copies of `env_id` on `workers` threads (0: serial) with the given autoreset
    /// mode (`next_step`, `same_step`, `disabled`); `copy=False` hands out views of the engine's
    /// observation buffer instead of fresh arrays.
    #[new]
    #[pyo3(signature = (env_id, num_envs, workers, autoreset_mode, config_json=None, copy=true))]
    fn new(
        py: Python<'_>,
        env_id: &str,
        num_envs: usize,
        workers: usize,
        autoreset_mode: &str,
        config_json: Option<&str>,
        copy: bool,
    ) -> PyResult<Self> {
        let options = vec_options(workers, autoreset_mode)?;
        let config = parse_map(config_json, "config")?;
        let venv = make_interruptibly(py, |on_made| VecEnv::make_watched(env_id, &config, num_envs, options, on_made))?;
        let spec = venv.spec();
        let (actions, layout) =
            (ActionReader::new(&spec.action_space), BatchLayout::new(spec, num_envs, num_envs, copy));
        // Start by releasing the GIL; the first step's duration decides for the next one.
        Ok(Self { venv: Mutex::new(venv), actions, num_envs, layout, last_step: Duration::MAX })
    }

    /// The sub-env spec as JSON.
    fn spec_json(&self) -> PyResult<String> {
        serde_json::to_string(locked(&self.venv).spec()).map_err(|e| KeelError::new_err(e.to_string()))
    }

    /// Resets the envs selected by `mask` (all when `None`). `seeds`: `None` (continue), or one
    /// seed per env; `options_json`: one mapping for all envs or a list of one per env. Returns
    /// `(obs, infos)`.
    #[pyo3(signature = (seeds=None, options_json=None, mask=None))]
    fn reset<'py>(
        this: &Bound<'py, Self>,
        seeds: Option<Vec<u64>>,
        options_json: Option<&str>,
        mask: Option<Vec<bool>>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let py = this.py();
        let options = parse_options(options_json)?;
        {
            let mut core = core_mut(this)?;
            let (seeds, options) = (seeds_of(&seeds), options.options_for());
            let venv = exclusive(&mut core.venv);
            py.detach(|| venv.reset_with(seeds, options, mask.as_deref())).map_err(to_py)?;
            let now = Instant::now();
            for (i, start) in core.layout.episode_start.iter_mut().enumerate() {
                if mask.as_ref().is_none_or(|m| m[i]) {
                    *start = now;
                }
            }
        }
        let obs = Self::observations(this)?;
        let core = core_ref(this)?;
        let venv = locked(&core.venv);
        let infos = extras_infos(py, venv.spec().extras.as_slice(), &venv.batch().extras, core.num_envs)?;
        (obs, infos).into_pyobject(py)
    }

    /// One vector step: `(obs, rewards, terminations, truncations, infos)`.
    fn step<'py>(this: &Bound<'py, Self>, actions: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyTuple>> {
        let py = this.py();
        {
            let mut core = core_mut(this)?;
            let core = &mut *core;
            let actions = core.actions.read(actions, Some(core.num_envs))?;
            step_releasing_gil(py, exclusive(&mut core.venv), actions, &mut core.last_step)?;
        }
        let obs = Self::observations(this)?;
        let mut core = core_mut(this)?;
        let core = &mut *core;
        let venv = locked(&core.venv);
        let batch = venv.batch();
        let rewards = PyArray1::from_slice(py, &batch.reward);
        let terminations = flag_array(py, &batch.terminated);
        let truncations = flag_array(py, &batch.truncated);
        let infos = step_infos(
            py,
            venv.spec().extras.as_slice(),
            &batch.view(),
            &mut core.layout.episode_start,
            core.layout.obs_len,
            &core.layout.shape,
        )?;
        (obs, rewards, terminations, truncations, infos).into_pyobject(py)
    }

    /// One vector step written into caller-owned arrays: `obs` of the observation dtype and
    /// shape `(num_envs, *obs_shape)`, `rewards` float64 `(num_envs,)`, `terminations` and
    /// `truncations` bool `(num_envs,)`, each C-contiguous, writable and sharing no memory with
    /// another. Every buffer is checked before the envs step, so a wrong one is an error that
    /// changes nothing. Returns the info dict. One copy per buffer, no allocation.
    fn step_into<'py>(
        this: &Bound<'py, Self>,
        actions: &Bound<'py, PyAny>,
        obs: &Bound<'py, PyAny>,
        rewards: &Bound<'py, PyAny>,
        terminations: &Bound<'py, PyAny>,
        truncations: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = this.py();
        let mut core = core_mut(this)?;
        let this = &mut *core;
        let n = this.num_envs;
        let dtype = locked(&this.venv).batch().obs.dtype();
        let earlier = [("obs", obs), ("rewards", rewards), ("terminations", terminations)];
        let mut obs_out = match dtype {
            DType::Float32 => ObsOut::F32(out_buffer(obs, "obs", &this.layout.batch_shape, &earlier[..0])?),
            DType::Float64 => ObsOut::F64(out_buffer(obs, "obs", &this.layout.batch_shape, &earlier[..0])?),
            DType::Uint8 => ObsOut::U8(out_buffer(obs, "obs", &this.layout.batch_shape, &earlier[..0])?),
        };
        let mut rewards_out = out_buffer::<f64>(rewards, "rewards", &[n], &earlier[..1])?;
        let mut terminations_out = out_buffer::<bool>(terminations, "terminations", &[n], &earlier[..2])?;
        let mut truncations_out = out_buffer::<bool>(truncations, "truncations", &[n], &earlier)?;
        let actions = this.actions.read(actions, Some(n))?;
        let venv = exclusive(&mut this.venv);
        step_releasing_gil(py, venv, actions, &mut this.last_step)?;
        let batch = venv.batch();
        match (&mut obs_out, &batch.obs) {
            (ObsOut::F32(out), ObsBuf::F32(v)) => fill(out, v)?,
            (ObsOut::F64(out), ObsBuf::F64(v)) => fill(out, v)?,
            (ObsOut::U8(out), ObsBuf::U8(v)) => fill(out, v)?,
            _ => return Err(KeelError::new_err("the observation dtype changed during a step")),
        }
        fill(&mut rewards_out, &batch.reward)?;
        fill(&mut terminations_out, &batch.terminated)?;
        fill(&mut truncations_out, &batch.truncated)?;
        let extras = venv.spec().extras.clone();
        step_infos(py, &extras, &batch.view(), &mut this.layout.episode_start, this.layout.obs_len, &this.layout.shape)
            .map(Bound::into_any)
    }

    /// Sets persistent per-reset parameters (JSON object) on the sub-envs `indices` (all when
    /// `None`).
    #[pyo3(signature = (params_json, indices=None))]
    fn set_params(this: &Bound<'_, Self>, params_json: &str, indices: Option<Vec<usize>>) -> PyResult<()> {
        let params = parse_map(Some(params_json), "params")?;
        let mut core = core_mut(this)?;
        let venv = exclusive(&mut core.venv);
        match indices {
            None => venv.set_params(&params),
            Some(indices) => venv.set_params_of(&indices, &params),
        }
        .map_err(to_py)
    }

    /// The persistent per-reset parameters of sub-env `index`, as JSON.
    fn params_json(this: &Bound<'_, Self>, index: usize) -> PyResult<String> {
        locked(&core_ref(this)?.venv).params_of(index).map(|p| p.to_string()).map_err(to_py)
    }

    /// A snapshot of every sub-env and of the engine's bookkeeping as JSON, or `None` if a
    /// sub-env cannot snapshot.
    fn snapshot_json(this: &Bound<'_, Self>) -> PyResult<Option<String>> {
        let mut core = core_mut(this)?;
        exclusive(&mut core.venv)
            .snapshot()
            .map(|s| serde_json::to_string(&s))
            .transpose()
            .map_err(|e| KeelError::new_err(e.to_string()))
    }

    /// Restores a `snapshot_json` of a vector made with the same id, config and options.
    fn restore_json(this: &Bound<'_, Self>, snapshot: &str) -> PyResult<()> {
        let value: Value =
            serde_json::from_str(snapshot).map_err(|e| ConfigError::new_err(format!("snapshot: {e}")))?;
        let mut core = core_mut(this)?;
        exclusive(&mut core.venv).restore(&value).map_err(to_py)
    }

    /// The full internal state of sub-env `index`, or `None`.
    fn state(this: &Bound<'_, Self>, index: usize) -> PyResult<Option<Vec<f64>>> {
        let core = core_ref(this)?;
        if index >= core.num_envs {
            return Err(ActionError::new_err(format!("sub-env index {index} out of range for {} envs", core.num_envs)));
        }
        Ok(locked(&core.venv).state(index))
    }
}

pub(crate) fn core_mut<'py>(this: &Bound<'py, VecCore>) -> PyResult<PyRefMut<'py, VecCore>> {
    this.try_borrow_mut().map_err(|_| in_use())
}

pub(crate) fn core_ref<'py>(this: &Bound<'py, VecCore>) -> PyResult<PyRef<'py, VecCore>> {
    this.try_borrow().map_err(|_| in_use())
}

/// The observation buffer of `step_into`, borrowed writable in the batch's dtype.
pub(crate) enum ObsOut<'py> {
    F32(PyReadwriteArrayDyn<'py, f32>),
    F64(PyReadwriteArrayDyn<'py, f64>),
    U8(PyReadwriteArrayDyn<'py, u8>),
}

/// `obj` borrowed as a writable C-contiguous array of `T` and exactly `shape`, or an error naming
/// the buffer (`name`) and what is wrong; `earlier` are the buffers borrowed before it, which it
/// must not overlap.
pub(crate) fn out_buffer<'py, T: Element>(
    obj: &Bound<'py, PyAny>,
    name: &str,
    shape: &[usize],
    earlier: &[(&str, &Bound<'py, PyAny>)],
) -> PyResult<PyReadwriteArrayDyn<'py, T>> {
    let py = obj.py();
    let want = T::get_dtype(py);
    let bad = |what: String| ActionError::new_err(format!("output buffer `{name}` {what}"));
    let Ok(untyped) = obj.cast::<PyUntypedArray>() else {
        return Err(bad(format!(
            "must be a numpy array of dtype {want} and shape {}, got {}",
            tuple(shape),
            describe(obj)
        )));
    };
    let Ok(array) = obj.cast::<PyArrayDyn<T>>() else {
        return Err(bad(format!("must be of dtype {want}, got dtype {}", untyped.dtype())));
    };
    if untyped.shape() != shape {
        return Err(bad(format!("has shape {} where {} is needed", tuple(untyped.shape()), tuple(shape))));
    }
    if !untyped.is_c_contiguous() {
        return Err(bad("must be C-contiguous".into()));
    }
    // numpy's borrow tracking refuses a read-only array and one overlapping a buffer borrowed
    // before it; only then is it worth finding out which.
    array.try_readwrite().map_err(|_| {
        let writeable = obj
            .getattr(intern!(py, "flags"))
            .and_then(|f| f.getattr(intern!(py, "writeable")))
            .and_then(|w| w.is_truthy())
            .unwrap_or(false);
        if !writeable {
            return bad("is read-only (its writeable flag is off): pass a writable array".into());
        }
        let overlaps = |other: &Bound<'py, PyAny>| {
            py.import(intern!(py, "numpy"))
                .and_then(|np| np.getattr(intern!(py, "may_share_memory")))
                .and_then(|f| f.call1((obj, other)))
                .and_then(|r| r.is_truthy())
                .unwrap_or(false)
        };
        match earlier.iter().find(|entry| overlaps(entry.1)) {
            Some((other, _)) => bad(format!("shares memory with `{other}`: pass a separate array for each output")),
            None => bad("is borrowed elsewhere and cannot be written".into()),
        }
    })
}

/// Copies `values` into an output buffer checked by [`out_buffer`] (C-contiguous, as many
/// elements as `values`).
pub(crate) fn fill<T: Element + Copy>(out: &mut PyReadwriteArrayDyn<'_, T>, values: &[T]) -> PyResult<()> {
    let slice = out.as_slice_mut().map_err(|e| KeelError::new_err(format!("output buffer: {e}")))?;
    slice.copy_from_slice(values);
    Ok(())
}

//! What the cores hand back besides scalars: observation arrays (new, or read-only views of the
//! engine's memory) and Gymnasium's info dicts (per-step extras, episode statistics, final
//! observations).

use std::time::Instant;

use keel_envs::EnvSpec;
use keel_envs::space::Space;
use keel_envs::vector::BatchView;
use keel_envs::{ObsBuf, ObsRef};
use numpy::ndarray::{ArrayViewD, IxDyn};
use numpy::{Element, IntoPyArray, PyArray1, PyArrayDyn};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::errors::KeelError;

/// The shape of one observation: the Box's shape, `(n,)` for the flat discrete rows.
pub(crate) fn obs_shape(space: &Space) -> Vec<usize> {
    match space {
        Space::Box(b) => b.shape.clone(),
        other => vec![other.flat_len()],
    }
}

/// A new numpy array holding `values` in shape `shape`.
pub(crate) fn new_array<'py, T: Element + Copy>(
    py: Python<'py>,
    values: &[T],
    shape: &[usize],
) -> PyResult<Bound<'py, PyAny>> {
    let array = numpy::ndarray::ArrayD::from_shape_vec(IxDyn(shape), values.to_vec())
        .map_err(|e| KeelError::new_err(e.to_string()))?;
    Ok(array.into_pyarray(py).into_any())
}

/// `buf` (or rows `rows` of it, of `width` values each) as a new array of shape `shape`.
pub(crate) fn obs_array<'py>(
    py: Python<'py>,
    buf: &ObsBuf,
    rows: std::ops::Range<usize>,
    width: usize,
    shape: &[usize],
) -> PyResult<Bound<'py, PyAny>> {
    obs_ref_array(py, buf.as_ref(), rows, width, shape)
}

/// As [`obs_array`], from borrowed rows.
pub(crate) fn obs_ref_array<'py>(
    py: Python<'py>,
    buf: ObsRef<'_>,
    rows: std::ops::Range<usize>,
    width: usize,
    shape: &[usize],
) -> PyResult<Bound<'py, PyAny>> {
    let r = rows.start * width..rows.end * width;
    match buf {
        ObsRef::F32(v) => new_array(py, &v[r], shape),
        ObsRef::F64(v) => new_array(py, &v[r], shape),
        ObsRef::U8(v) => new_array(py, &v[r], shape),
    }
}

/// A dict of per-step extras for one env: `{name: float}`.
pub(crate) fn extras_dict<'py>(py: Python<'py>, names: &[String], values: &[f64]) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    for (name, value) in names.iter().zip(values) {
        dict.set_item(name, value)?;
    }
    Ok(dict)
}

pub(crate) fn flag_array<'py>(py: Python<'py>, values: &[bool]) -> Bound<'py, PyArray1<bool>> {
    PyArray1::from_slice(py, values)
}

/// A read-only numpy view of `values` in `shape`, kept alive by `owner`.
pub(crate) fn view<'py, T: Element>(
    values: &[T],
    shape: &[usize],
    owner: Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let view = ArrayViewD::from_shape(IxDyn(shape), values).map_err(|e| KeelError::new_err(e.to_string()))?;
    // SAFETY: `values` lies in memory `owner` keeps allocated at the same address: the sync
    // engine's batch buffer (allocated once, written in place) inside the `VecCore`, or a held
    // async block inside a `HeldRows`. numpy keeps `owner` alive as the array's base for as long
    // as the array exists.
    #[allow(unsafe_code)]
    let array = unsafe { PyArrayDyn::borrow_from_array(&view, owner) };
    array.call_method1(intern!(array.py(), "setflags"), (false,))?;
    Ok(array.into_any())
}

/// The per-step extras as Gymnasium's vector infos: `infos[name]` an array over envs and
/// `infos["_" + name]` its mask (every env has every extra).
pub(crate) fn extras_infos<'py>(
    py: Python<'py>,
    names: &[String],
    extras: &[f64],
    num_envs: usize,
) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    let e = names.len();
    if e > 0 {
        let everyone = vec![true; num_envs];
        for (j, name) in names.iter().enumerate() {
            let column: Vec<f64> = (0..num_envs).map(|i| extras[i * e + j]).collect();
            dict.set_item(name, column.into_pyarray(py))?;
            dict.set_item(format!("_{name}"), flag_array(py, &everyone))?;
        }
    }
    Ok(dict)
}

/// The info dict of a vector step, as Gymnasium writes it: the per-step extras; when an episode
/// ended, `episode` (`r`, `l`, `t` arrays, as `RecordEpisodeStatistics`) with mask `_episode`,
/// and in same-step mode `final_obs` (an object array) and `final_info` (the terminal step's
/// extras) with their masks.
pub(crate) fn step_infos<'py>(
    py: Python<'py>,
    names: &[String],
    batch: &BatchView<'_>,
    episode_start: &mut [Instant],
    obs_len: usize,
    shape: &[usize],
) -> PyResult<Bound<'py, PyDict>> {
    let n = batch.len();
    let dict = extras_infos(py, names, batch.extras, n)?;
    if !batch.episode_done.iter().any(|&d| d) {
        return Ok(dict);
    }
    let now = Instant::now();
    let (mut r, mut l, mut t) = (vec![0.0f64; n], vec![0i64; n], vec![0.0f64; n]);
    for i in (0..n).filter(|&i| batch.episode_done[i]) {
        r[i] = batch.episode_return[i];
        l[i] = i64::try_from(batch.episode_length[i]).unwrap_or(i64::MAX);
        let env = batch.env_id(i);
        t[i] = now.duration_since(episode_start[env]).as_secs_f64();
        episode_start[env] = now;
    }
    let episode = PyDict::new(py);
    episode.set_item(intern!(py, "r"), r.into_pyarray(py))?;
    episode.set_item(intern!(py, "l"), l.into_pyarray(py))?;
    episode.set_item(intern!(py, "t"), t.into_pyarray(py))?;
    dict.set_item(intern!(py, "episode"), episode)?;
    dict.set_item(intern!(py, "_episode"), flag_array(py, batch.episode_done))?;
    if batch.has_final_obs.iter().any(|&f| f) {
        let objects: Vec<Py<PyAny>> = (0..n)
            .map(|i| {
                if batch.has_final_obs[i] {
                    obs_ref_array(py, batch.final_obs, i..i + 1, obs_len, shape).map(Bound::unbind)
                } else {
                    Ok(py.None())
                }
            })
            .collect::<PyResult<_>>()?;
        dict.set_item(intern!(py, "final_obs"), PyArray1::from_vec(py, objects))?;
        dict.set_item(intern!(py, "_final_obs"), flag_array(py, batch.has_final_obs))?;
        let final_info = extras_infos(py, names, batch.final_extras, n)?;
        if !names.is_empty() {
            for name in names {
                final_info.set_item(format!("_{name}"), flag_array(py, batch.has_final_obs))?;
            }
        }
        dict.set_item(intern!(py, "final_info"), final_info)?;
        dict.set_item(intern!(py, "_final_info"), flag_array(py, batch.has_final_obs))?;
    }
    Ok(dict)
}

/// The layout of the batches a vector core hands out, and the episode clocks of its envs.
pub(crate) struct BatchLayout {
    /// Values in one observation.
    pub(crate) obs_len: usize,
    /// `(rows, *obs_shape)`: `num_envs` rows (sync) or `batch_size` (async).
    pub(crate) batch_shape: Vec<usize>,
    /// `obs_shape` of one env.
    pub(crate) shape: Vec<usize>,
    /// Hand out fresh arrays (true) or views of the engine's memory (false).
    pub(crate) copy: bool,
    /// When each sub-env's current episode started, for the `t` of the episode statistics.
    pub(crate) episode_start: Vec<Instant>,
}

impl BatchLayout {
    /// Batches of `rows` observations of `spec` from `num_envs` envs.
    pub(crate) fn new(spec: &EnvSpec, rows: usize, num_envs: usize, copy: bool) -> Self {
        let (obs_len, shape) = (spec.obs_len(), obs_shape(&spec.observation_space));
        let batch_shape = std::iter::once(rows).chain(shape.iter().copied()).collect();
        Self { obs_len, batch_shape, shape, copy, episode_start: vec![Instant::now(); num_envs] }
    }
}

//! # keel-python
//!
//! The pyo3 extension module `keel._core`, built by maturin, behind `import keel`. It holds two
//! cores that the pure-Python layer (`python/keel/`) dresses as Gymnasium classes:
//!
//! - [`EnvCore`]: one Rust env. `step` returns exactly Gymnasium's 5-tuple (a fresh float32
//!   array, a Python `float`, two Python `bool`s and a new `dict`), so the Python class can bind
//!   it as its `step` with no Python frame in between.
//! - [`VecCore`]: the Rust vector engine. `step` releases the GIL while the worker pool steps
//!   (unless the previous step took under 5 µs, when the hand-off would cost more than the step),
//!   then hands the observation buffer itself to numpy (the engine takes a fresh one), so the
//!   observations reach Python without being copied; the info dict (episode statistics, final
//!   observations) is built here too, only on steps where an episode ended; `step_into` instead copies into buffers the
//!   caller owns, for loops that reuse their arrays.
//!
//! Errors become Python exceptions deriving from `ValueError` (`keel.KeelError` and its
//! subclasses); no input reaches a panic.

use keel_envs::space::Space;
use keel_envs::vector::{AutoresetMode, Batch, Seeds, VecOptions};
use keel_envs::{Action, Env, EnvError, ResetOptions, VecEnv};
use numpy::{
    IntoPyArray, PyArray1, PyArrayDyn, PyArrayMethods, PyReadonlyArrayDyn, PyReadwriteArrayDyn, PyUntypedArrayMethods,
};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use pyo3::{create_exception, intern};
use serde_json::{Map, Value};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn exclusive<T>(m: &mut Mutex<T>) -> &mut T {
    m.get_mut().unwrap_or_else(PoisonError::into_inner)
}

create_exception!(_core, KeelError, PyValueError, "Any error raised by Keel's Rust core.");
create_exception!(_core, UnknownEnvError, KeelError, "No env is registered under this id.");
create_exception!(_core, ConfigError, KeelError, "A config or reset option key is unknown or its value invalid.");
create_exception!(_core, ActionError, KeelError, "An action is not in the action space.");
create_exception!(_core, ResetNeededError, KeelError, "step() before reset(), or a finished sub-env stepped.");

fn to_py(err: EnvError) -> PyErr {
    let message = err.to_string();
    match err {
        EnvError::UnknownEnv { .. } => UnknownEnvError::new_err(message),
        EnvError::UnknownField { .. }
        | EnvError::InvalidField { .. }
        | EnvError::InvalidState(_)
        | EnvError::Snapshot(_)
        | EnvError::InvalidPolicy(_) => ConfigError::new_err(message),
        EnvError::InvalidAction(_) | EnvError::BatchShape(_) => ActionError::new_err(message),
        EnvError::ResetNeeded | EnvError::StepAfterDone { .. } => ResetNeededError::new_err(message),
        EnvError::Worker { .. } | EnvError::InvalidModel(_) | EnvError::DataMissing(_) | EnvError::Control(_) => {
            KeelError::new_err(message)
        }
    }
}

fn parse_map(json: Option<&str>, what: &str) -> PyResult<Map<String, Value>> {
    match json {
        None => Ok(Map::new()),
        Some(text) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => Ok(map),
            Ok(other) => Err(ConfigError::new_err(format!("{what} must be a mapping, got {other}"))),
            Err(e) => Err(ConfigError::new_err(format!("{what} is not valid JSON: {e}"))),
        },
    }
}

fn parse_options(json: Option<&str>) -> PyResult<ResetOptions> {
    let map = parse_map(json, "reset options")?;
    serde_json::from_value(Value::Object(map)).map_err(|e| ConfigError::new_err(format!("reset options: {e}")))
}

/// Reads one action (or a batch, `rows` rows) of the given space from any Python object:
/// numpy arrays of any numeric dtype, Python ints/floats, or sequences.
struct ActionReader {
    is_integer: bool,
    width: usize,
    ints: Vec<i64>,
    floats: Vec<f32>,
}

impl ActionReader {
    fn new(space: &Space) -> Self {
        Self { is_integer: space.is_integer(), width: space.flat_len(), ints: Vec::new(), floats: Vec::new() }
    }

    fn read(&mut self, obj: &Bound<'_, PyAny>, rows: usize) -> PyResult<Action<'_>> {
        let want = rows * self.width;
        if self.is_integer {
            self.ints.clear();
            // Contiguous int64 arrays, the common case, are copied without numpy's borrow tracking.
            if let Some(values) = obj.cast::<PyArrayDyn<i64>>().ok().and_then(|a| a.to_vec().ok()) {
                self.ints.extend_from_slice(&values);
            } else if let Ok(array) = obj.extract::<PyReadonlyArrayDyn<'_, i64>>() {
                self.ints.extend(array.as_array().iter().copied());
            } else if let Ok(value) = obj.extract::<i64>() {
                self.ints.push(value);
            } else {
                // Other integer dtypes and sequences; floats are refused, not truncated.
                let array = obj.call_method0("__array__").ok().filter(|a| {
                    a.getattr("dtype")
                        .and_then(|d| d.getattr("kind"))
                        .is_ok_and(|k| k.to_string() == "i" || k.to_string() == "u")
                });
                let values: Vec<i64> = match array {
                    Some(a) => a.call_method1("astype", ("int64",))?.call_method0("ravel")?.extract()?,
                    None => obj.extract().map_err(|_| {
                        ActionError::new_err(format!(
                            "expected integer action(s) for a discrete space, got {}",
                            describe(obj)
                        ))
                    })?,
                };
                self.ints.extend(values);
            }
            if self.ints.len() != want {
                return Err(ActionError::new_err(format!("expected {want} integer value(s), got {}", self.ints.len())));
            }
            Ok(Action::Int(&self.ints))
        } else {
            self.floats.clear();
            if let Some(values) = obj.cast::<PyArrayDyn<f32>>().ok().and_then(|a| a.to_vec().ok()) {
                self.floats.extend_from_slice(&values);
            } else if let Ok(array) = obj.extract::<PyReadonlyArrayDyn<'_, f32>>() {
                self.floats.extend(array.as_array().iter().copied());
            } else if let Ok(array) = obj.extract::<PyReadonlyArrayDyn<'_, f64>>() {
                self.floats.extend(array.as_array().iter().map(|&x| x as f32));
            } else if let Ok(value) = obj.extract::<f64>() {
                self.floats.push(value as f32);
            } else {
                let values: Vec<f64> = obj.extract().map_err(|_| {
                    ActionError::new_err(format!("expected float action(s) for a Box space, got {}", describe(obj)))
                })?;
                self.floats.extend(values.iter().map(|&x| x as f32));
            }
            if self.floats.len() != want {
                return Err(ActionError::new_err(format!("expected {want} float value(s), got {}", self.floats.len())));
            }
            Ok(Action::Float(&self.floats))
        }
    }
}

fn describe(obj: &Bound<'_, PyAny>) -> String {
    let type_name = obj.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into());
    match obj.getattr("dtype") {
        Ok(dtype) => format!("{type_name} of dtype {dtype}"),
        Err(_) => type_name,
    }
}

/// One Rust env (see the module docs).
#[pyclass(module = "keel._core")]
pub struct EnvCore {
    /// A `Mutex` only to make the class `Sync` as pyo3 requires; `&mut self` methods reach the
    /// env through `get_mut`, which does not lock.
    env: Mutex<Box<dyn Env>>,
    actions: ActionReader,
    obs_len: usize,
}

#[pymethods]
impl EnvCore {
    /// Makes env `env_id` with config overrides given as a JSON object.
    #[new]
    #[pyo3(signature = (env_id, config_json=None))]
    fn new(env_id: &str, config_json: Option<&str>) -> PyResult<Self> {
        let env = keel_envs::make(env_id, &parse_map(config_json, "config")?).map_err(to_py)?;
        let actions = ActionReader::new(&env.spec().action_space);
        let obs_len = env.spec().obs_len();
        Ok(Self { env: Mutex::new(env), actions, obs_len })
    }

    /// The env's spec as JSON (id, spaces, episode cap, reward threshold).
    fn spec_json(&self) -> PyResult<String> {
        serde_json::to_string(locked(&self.env).spec()).map_err(|e| KeelError::new_err(e.to_string()))
    }

    /// Starts an episode; returns the first observation (a new float32 array).
    #[pyo3(signature = (seed=None, options_json=None))]
    fn reset<'py>(
        &mut self,
        py: Python<'py>,
        seed: Option<u64>,
        options_json: Option<&str>,
    ) -> PyResult<Bound<'py, PyArray1<f32>>> {
        let options = parse_options(options_json)?;
        let mut obs = vec![0.0f32; self.obs_len];
        exclusive(&mut self.env).reset(seed, &options, &mut obs).map_err(to_py)?;
        Ok(obs.into_pyarray(py))
    }

    /// One step: `(obs, reward, terminated, truncated, info)` with a new array and a new dict.
    fn step<'py>(&mut self, py: Python<'py>, action: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyTuple>> {
        let action = self.actions.read(action, 1)?;
        let mut obs = vec![0.0f32; self.obs_len];
        let step = exclusive(&mut self.env).step(action, &mut obs).map_err(to_py)?;
        (obs.into_pyarray(py), step.reward, step.terminated, step.truncated, PyDict::new(py)).into_pyobject(py)
    }

    /// The full internal state, or `None` if the env has none.
    fn state(&self) -> Option<Vec<f64>> {
        locked(&self.env).state()
    }

    /// Sets persistent per-reset parameters (JSON object).
    fn set_params(&mut self, params_json: &str) -> PyResult<()> {
        exclusive(&mut self.env).set_params(&parse_map(Some(params_json), "params")?).map_err(to_py)
    }

    /// The persistent per-reset parameters, as JSON.
    fn params_json(&self) -> String {
        locked(&self.env).params().to_string()
    }
}

/// The Rust vector engine (see the module docs).
#[pyclass(module = "keel._core")]
pub struct VecCore {
    /// See [`EnvCore::env`] for the `Mutex`.
    venv: Mutex<VecEnv>,
    actions: ActionReader,
    num_envs: usize,
    obs_len: usize,
    /// When each sub-env's current episode started, for the `t` of the episode statistics.
    episode_start: Vec<Instant>,
    /// How long the last vector step took, to decide whether the next releases the GIL.
    last_step: Duration,
}

/// Steps shorter than this keep the GIL: handing it over and back costs more than they take,
/// and no other thread could do anything useful in between.
const GIL_RELEASE_ABOVE: Duration = Duration::from_micros(5);

/// Steps the vector, releasing the GIL unless the previous step was shorter than
/// [`GIL_RELEASE_ABOVE`] (a handful of cheap envs); records this step's duration.
fn step_releasing_gil(
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

/// A `(rows, cols)` matrix over `data`, without copying it.
fn obs_matrix(data: Vec<f32>, rows: usize, cols: usize) -> PyResult<numpy::ndarray::Array2<f32>> {
    numpy::ndarray::Array2::from_shape_vec((rows, cols), data).map_err(|e| KeelError::new_err(e.to_string()))
}

fn flag_array<'py>(py: Python<'py>, values: &[bool]) -> Bound<'py, PyArray1<bool>> {
    PyArray1::from_slice(py, values)
}

#[pymethods]
impl VecCore {
    /// `num_envs` copies of `env_id` on `workers` threads (0: serial) with the given autoreset
    /// mode (`next_step`, `same_step`, `disabled`).
    #[new]
    #[pyo3(signature = (env_id, num_envs, workers, autoreset_mode, config_json=None))]
    fn new(
        env_id: &str,
        num_envs: usize,
        workers: usize,
        autoreset_mode: &str,
        config_json: Option<&str>,
    ) -> PyResult<Self> {
        let autoreset_mode: AutoresetMode = autoreset_mode.parse().map_err(ConfigError::new_err)?;
        let options = VecOptions { workers, autoreset_mode };
        let venv = VecEnv::make(env_id, &parse_map(config_json, "config")?, num_envs, options).map_err(to_py)?;
        let actions = ActionReader::new(&venv.spec().action_space);
        let obs_len = venv.spec().obs_len();
        let episode_start = vec![Instant::now(); num_envs];
        // Start by releasing the GIL; the first step's duration decides for the next one.
        Ok(Self { venv: Mutex::new(venv), actions, num_envs, obs_len, episode_start, last_step: Duration::MAX })
    }

    /// The sub-env spec as JSON.
    fn spec_json(&self) -> PyResult<String> {
        serde_json::to_string(locked(&self.venv).spec()).map_err(|e| KeelError::new_err(e.to_string()))
    }

    /// Resets the envs selected by `mask` (all when `None`). `seeds`: `None` (continue), or one
    /// seed per env. Returns the observations (a new `(num_envs, obs_len)` array).
    #[pyo3(signature = (seeds=None, options_json=None, mask=None))]
    fn reset<'py>(
        &mut self,
        py: Python<'py>,
        seeds: Option<Vec<u64>>,
        options_json: Option<&str>,
        mask: Option<Vec<bool>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let options = parse_options(options_json)?;
        let seeds = match &seeds {
            Some(s) => Seeds::PerEnv(s),
            None => Seeds::Continue,
        };
        let venv = exclusive(&mut self.venv);
        py.detach(|| venv.reset_with(seeds, &options, mask.as_deref())).map_err(to_py)?;
        let now = Instant::now();
        for (i, start) in self.episode_start.iter_mut().enumerate() {
            if mask.as_ref().is_none_or(|m| m[i]) {
                *start = now;
            }
        }
        // A masked reset leaves other rows as they were: copy rather than hand the buffer over.
        let obs = obs_matrix(venv.batch().obs.clone(), self.num_envs, self.obs_len)?;
        Ok(obs.into_pyarray(py).into_any())
    }

    /// One vector step: `(obs, rewards, terminations, truncations, infos)`.
    fn step<'py>(&mut self, py: Python<'py>, actions: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyTuple>> {
        let actions = self.actions.read(actions, self.num_envs)?;
        let venv = exclusive(&mut self.venv);
        step_releasing_gil(py, venv, actions, &mut self.last_step)?;
        // Hand the filled buffer to numpy and give the engine a fresh one: no copy of the data.
        let obs = obs_matrix(venv.take_obs(), self.num_envs, self.obs_len)?.into_pyarray(py);
        let batch = venv.batch();
        let rewards = PyArray1::from_slice(py, &batch.reward);
        let terminations = flag_array(py, &batch.terminated);
        let truncations = flag_array(py, &batch.truncated);
        let infos = infos(py, batch, &mut self.episode_start, self.obs_len)?;
        (obs, rewards, terminations, truncations, infos).into_pyobject(py)
    }

    /// One vector step written into caller-owned arrays (`obs` float32 `(num_envs, obs_len)`,
    /// `rewards` float64, `terminations` and `truncations` bool, all C-contiguous); returns the
    /// info dict. One copy per buffer, no allocation.
    fn step_into<'py>(
        &mut self,
        py: Python<'py>,
        actions: &Bound<'py, PyAny>,
        mut obs: PyReadwriteArrayDyn<'py, f32>,
        mut rewards: PyReadwriteArrayDyn<'py, f64>,
        mut terminations: PyReadwriteArrayDyn<'py, bool>,
        mut truncations: PyReadwriteArrayDyn<'py, bool>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let n = self.num_envs;
        let sizes = [
            (obs.len(), n * self.obs_len, "obs"),
            (rewards.len(), n, "rewards"),
            (terminations.len(), n, "terminations"),
            (truncations.len(), n, "truncations"),
        ];
        for (got, want, name) in sizes {
            if got != want {
                return Err(ActionError::new_err(format!("output buffer `{name}` has {got} elements, needs {want}")));
            }
        }
        let not_contiguous = |name: &str| ActionError::new_err(format!("output buffer `{name}` must be C-contiguous"));
        let actions = self.actions.read(actions, n)?;
        let venv = exclusive(&mut self.venv);
        step_releasing_gil(py, venv, actions, &mut self.last_step)?;
        let batch = venv.batch();
        obs.as_slice_mut().map_err(|_| not_contiguous("obs"))?.copy_from_slice(&batch.obs);
        rewards.as_slice_mut().map_err(|_| not_contiguous("rewards"))?.copy_from_slice(&batch.reward);
        terminations.as_slice_mut().map_err(|_| not_contiguous("terminations"))?.copy_from_slice(&batch.terminated);
        truncations.as_slice_mut().map_err(|_| not_contiguous("truncations"))?.copy_from_slice(&batch.truncated);
        infos(py, batch, &mut self.episode_start, self.obs_len).map(Bound::into_any)
    }

    /// Sets persistent per-reset parameters on every sub-env (JSON object).
    fn set_params(&mut self, params_json: &str) -> PyResult<()> {
        exclusive(&mut self.venv).set_params(&parse_map(Some(params_json), "params")?).map_err(to_py)
    }

    /// The full internal state of sub-env `index`, or `None`.
    fn state(&self, index: usize) -> Option<Vec<f64>> {
        locked(&self.venv).state(index)
    }
}

/// The info dict of a vector step, as Gymnasium writes it: empty unless an episode ended; then
/// `episode` (`r`, `l`, `t` arrays, as `RecordEpisodeStatistics`) with mask `_episode`, and in
/// same-step mode `final_obs` (an object array) and `final_info` with their masks.
fn infos<'py>(
    py: Python<'py>,
    batch: &Batch,
    episode_start: &mut [Instant],
    obs_len: usize,
) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    if !batch.episode_done.iter().any(|&d| d) {
        return Ok(dict);
    }
    let n = batch.episode_done.len();
    let now = Instant::now();
    let (mut r, mut l, mut t) = (vec![0.0f64; n], vec![0i64; n], vec![0.0f64; n]);
    for i in (0..n).filter(|&i| batch.episode_done[i]) {
        r[i] = batch.episode_return[i];
        l[i] = i64::try_from(batch.episode_length[i]).unwrap_or(i64::MAX);
        t[i] = now.duration_since(episode_start[i]).as_secs_f64();
        episode_start[i] = now;
    }
    let episode = PyDict::new(py);
    episode.set_item(intern!(py, "r"), r.into_pyarray(py))?;
    episode.set_item(intern!(py, "l"), l.into_pyarray(py))?;
    episode.set_item(intern!(py, "t"), t.into_pyarray(py))?;
    dict.set_item(intern!(py, "episode"), episode)?;
    dict.set_item(intern!(py, "_episode"), flag_array(py, &batch.episode_done))?;
    if batch.has_final_obs.iter().any(|&f| f) {
        let objects: Vec<Py<PyAny>> = (0..n)
            .map(|i| {
                if batch.has_final_obs[i] {
                    PyArray1::from_slice(py, &batch.final_obs[i * obs_len..(i + 1) * obs_len]).into_any().unbind()
                } else {
                    py.None()
                }
            })
            .collect();
        dict.set_item(intern!(py, "final_obs"), PyArray1::from_vec(py, objects))?;
        dict.set_item(intern!(py, "_final_obs"), flag_array(py, &batch.has_final_obs))?;
        dict.set_item(intern!(py, "final_info"), PyDict::new(py))?;
        dict.set_item(intern!(py, "_final_info"), flag_array(py, &batch.has_final_obs))?;
    }
    Ok(dict)
}

/// Ids of every registered env.
#[pyfunction]
fn env_ids() -> Vec<&'static str> {
    keel_envs::registry::ids()
}

/// One-line description of every registered env, by id.
#[pyfunction]
fn env_descriptions() -> Vec<(&'static str, &'static str)> {
    keel_envs::REGISTRY.iter().map(|r| (r.id, r.description)).collect()
}

/// The `keel._core` module.
#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(env_ids, m)?)?;
    m.add_function(wrap_pyfunction!(env_descriptions, m)?)?;
    m.add_class::<EnvCore>()?;
    m.add_class::<VecCore>()?;
    m.add("KeelError", py.get_type::<KeelError>())?;
    m.add("UnknownEnvError", py.get_type::<UnknownEnvError>())?;
    m.add("ConfigError", py.get_type::<ConfigError>())?;
    m.add("ActionError", py.get_type::<ActionError>())?;
    m.add("ResetNeededError", py.get_type::<ResetNeededError>())?;
    Ok(())
}

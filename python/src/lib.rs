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

use keel_envs::space::{DType, Space};
use keel_envs::vector::{AsyncVecEnv, AutoresetMode, BatchView, HeldBatch, OptionsFor, Seeds, VecOptions};
use keel_envs::{Action, Env, EnvError, ObsBuf, ObsRef, ResetOptions, VecEnv};
use numpy::ndarray::{ArrayViewD, IxDyn};
use numpy::{
    Element, IntoPyArray, PyArray1, PyArrayDyn, PyArrayMethods, PyReadonlyArrayDyn, PyReadwriteArrayDyn,
    PyUntypedArray, PyUntypedArrayMethods,
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
create_exception!(_core, DataMissingError, KeelError, "Data the env needs is not installed; the message says how to get it.");
create_exception!(_core, PoisonedError, KeelError, "A sub-env failed mid-step; the vector env needs a full reset.");
create_exception!(_core, ClosedError, KeelError, "The env was closed.");
create_exception!(_core, InUseError, KeelError, "The env is in use by another thread (envs are not shared between threads).");

fn to_py(err: EnvError) -> PyErr {
    let message = err.to_string();
    match err {
        EnvError::UnknownEnv { .. } => UnknownEnvError::new_err(message),
        EnvError::UnknownField { .. }
        | EnvError::InvalidField { .. }
        | EnvError::InvalidState(_)
        | EnvError::Snapshot(_)
        | EnvError::InvalidPolicy(_)
        | EnvError::WorkerSpawn { .. } => ConfigError::new_err(message),
        EnvError::InvalidAction(_) | EnvError::BatchShape(_) | EnvError::AsyncUsage(_) => ActionError::new_err(message),
        EnvError::ResetNeeded | EnvError::StepAfterDone { .. } => ResetNeededError::new_err(message),
        EnvError::DataMissing(_) => DataMissingError::new_err(message),
        EnvError::Poisoned { .. } | EnvError::EnvPanicked { .. } => PoisonedError::new_err(message),
        EnvError::InvalidModel(_) | EnvError::Control(_) | EnvError::NonFiniteObservation(_) => {
            KeelError::new_err(message)
        }
    }
}

fn parse_json(json: Option<&str>, what: &str) -> PyResult<Value> {
    match json {
        None => Ok(Value::Object(Map::new())),
        Some(text) => serde_json::from_str(text).map_err(|e| ConfigError::new_err(format!("{what} is not valid JSON: {e}"))),
    }
}

fn parse_map(json: Option<&str>, what: &str) -> PyResult<Map<String, Value>> {
    match parse_json(json, what)? {
        Value::Object(map) => Ok(map),
        other => Err(ConfigError::new_err(format!("{what} must be a mapping, got {other}"))),
    }
}

fn options_from(value: Value, what: &str) -> PyResult<ResetOptions> {
    if !value.is_object() {
        return Err(ConfigError::new_err(format!("{what} must be a mapping, got {value}")));
    }
    serde_json::from_value(value).map_err(|e| ConfigError::new_err(format!("{what}: {e}")))
}

/// Reset options: one mapping for every env, or (vector only) a list of one mapping per env.
enum ParsedOptions {
    All(ResetOptions),
    PerEnv(Vec<ResetOptions>),
}

impl ParsedOptions {
    /// The engine's form: empty options leave the choice to the reset sampler.
    fn options_for(&self) -> OptionsFor<'_> {
        match self {
            ParsedOptions::All(o) if o.is_empty() => OptionsFor::Sampler,
            ParsedOptions::All(o) => OptionsFor::All(o),
            ParsedOptions::PerEnv(o) => OptionsFor::PerEnv(o),
        }
    }
}

/// Seeds one per env, or `None` to continue every env's stream.
fn seeds_of(seeds: &Option<Vec<u64>>) -> Seeds<'_> {
    match seeds {
        Some(s) => Seeds::PerEnv(s),
        None => Seeds::Continue,
    }
}

fn parse_options(json: Option<&str>) -> PyResult<ParsedOptions> {
    match parse_json(json, "reset options")? {
        Value::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, v)| options_from(v, &format!("reset options of sub-env {i}")))
            .collect::<PyResult<Vec<_>>>()
            .map(ParsedOptions::PerEnv),
        other => options_from(other, "reset options").map(ParsedOptions::All),
    }
}

/// Reads one action (or a batch of `rows` rows) of the given space from any Python object:
/// numpy arrays of any numeric dtype, Python ints/floats, or sequences, into the space's type.
struct ActionReader {
    kind: ActionKind,
    /// The space as Gymnasium prints it, for errors.
    space: String,
    width: usize,
    /// Shape of one action: the Box's shape, `()` for Discrete, `(k,)` for MultiDiscrete.
    shape: Vec<usize>,
    ints: Vec<i64>,
    floats: Vec<f32>,
    doubles: Vec<f64>,
}

#[derive(Clone, Copy, PartialEq)]
enum ActionKind {
    Int,
    F32,
    F64,
}

impl ActionReader {
    fn new(space: &Space) -> Self {
        let kind = match space.box_dtype() {
            None => ActionKind::Int,
            Some(DType::Float64) => ActionKind::F64,
            Some(_) => ActionKind::F32,
        };
        let shape = match space {
            Space::Box(b) => b.shape.clone(),
            Space::Discrete(_) => Vec::new(),
            Space::MultiDiscrete(m) => vec![m.nvec.len()],
        };
        let described = space.describe();
        Self {
            kind,
            space: described,
            width: space.flat_len(),
            shape,
            ints: Vec::new(),
            floats: Vec::new(),
            doubles: Vec::new(),
        }
    }

    /// Reads one action (`batch: None`) or a batch of `n` (`Some(n)`), whose shape must be the
    /// action's shape, or `(n, *shape)`, as Gymnasium's spaces require.
    fn read(&mut self, obj: &Bound<'_, PyAny>, batch: Option<usize>) -> PyResult<Action<'_>> {
        let expected: Vec<usize> = batch.into_iter().chain(self.shape.iter().copied()).collect();
        let got = shape_of(obj)?;
        if got != expected {
            let what = if batch.is_some() { "batch of actions" } else { "action" };
            return Err(ActionError::new_err(format!(
                "{what} of shape {} where {} is expected",
                tuple(&got),
                tuple(&expected)
            )));
        }
        let want = batch.unwrap_or(1) * self.width;
        match self.kind {
            ActionKind::Int => {
                self.ints.clear();
                // Contiguous int64 arrays, the common case, are copied without numpy's borrow tracking.
                if let Some(values) = obj.cast::<PyArrayDyn<i64>>().ok().and_then(|a| a.to_vec().ok()) {
                    self.ints.extend_from_slice(&values);
                } else if let Ok(array) = obj.extract::<PyReadonlyArrayDyn<'_, i64>>() {
                    self.ints.extend(array.as_array().iter().copied());
                } else if let Ok(value) = obj.extract::<i64>() {
                    self.ints.push(value);
                } else {
                    read_other_ints(obj, &self.space, &mut self.ints)?;
                }
                if self.ints.len() != want {
                    return Err(ActionError::new_err(format!(
                        "expected {want} integer value(s), got {}",
                        self.ints.len()
                    )));
                }
                Ok(Action::Int(&self.ints))
            }
            ActionKind::F32 => {
                self.floats.clear();
                read_floats(obj, &mut self.floats).map_err(|e| e.into_py_err(&self.space))?;
                if self.floats.len() != want {
                    return Err(ActionError::new_err(format!("expected {want} float value(s), got {}", self.floats.len())));
                }
                Ok(Action::Float(&self.floats))
            }
            ActionKind::F64 => {
                self.doubles.clear();
                read_floats(obj, &mut self.doubles).map_err(|e| e.into_py_err(&self.space))?;
                if self.doubles.len() != want {
                    return Err(ActionError::new_err(format!("expected {want} float value(s), got {}", self.doubles.len())));
                }
                Ok(Action::Float64(&self.doubles))
            }
        }
    }
}

/// `(a, b)` as Python writes a shape.
fn tuple(shape: &[usize]) -> String {
    match shape {
        [one] => format!("({one},)"),
        _ => format!("({})", shape.iter().map(usize::to_string).collect::<Vec<_>>().join(", ")),
    }
}

/// The shape of a numpy array (no call into Python), of a number (`()`), or of anything else
/// as `numpy.shape` sees it.
fn shape_of(obj: &Bound<'_, PyAny>) -> PyResult<Vec<usize>> {
    if let Ok(array) = obj.cast::<PyUntypedArray>() {
        return Ok(array.shape().to_vec());
    }
    if obj.is_instance_of::<pyo3::types::PyInt>() || obj.is_instance_of::<pyo3::types::PyFloat>() {
        return Ok(Vec::new());
    }
    let py = obj.py();
    let shape = py.import(intern!(py, "numpy"))?.getattr(intern!(py, "shape"))?.call1((obj,));
    let shape = shape.map_err(|_| ActionError::new_err(format!("expected numeric action(s), got {}", describe(obj))))?;
    shape.extract().map_err(|_| ActionError::new_err(format!("expected numeric action(s), got {}", describe(obj))))
}

/// Integers for a discrete space from anything but a Python int or an int64 array: other
/// integer dtypes and sequences. Floats are refused, not truncated, and a value beyond int64 is
/// named (not wrapped round, nor reported as its type).
fn read_other_ints(obj: &Bound<'_, PyAny>, space: &str, out: &mut Vec<i64>) -> PyResult<()> {
    let py = obj.py();
    let outside = |value: &dyn std::fmt::Display| {
        ActionError::new_err(format!("action {value} is outside the action space {space}"))
    };
    if obj.is_instance_of::<pyo3::types::PyInt>() {
        // A Python int that `extract::<i64>` refused: beyond int64.
        return Err(outside(&obj.str()?));
    }
    let not_integers =
        || ActionError::new_err(format!("expected integer action(s) for {space}, got {}", describe(obj)));
    let array =
        py.import(intern!(py, "numpy"))?.getattr(intern!(py, "asarray"))?.call1((obj,)).map_err(|_| not_integers())?;
    let kind = array.getattr(intern!(py, "dtype"))?.getattr(intern!(py, "kind"))?.to_string();
    match kind.as_str() {
        "i" | "u" => {
            if kind == "u" && array.getattr(intern!(py, "size"))?.extract::<usize>()? > 0 {
                // uint64 values above int64's range would wrap to negatives in the conversion.
                let max = array.call_method0(intern!(py, "max"))?;
                if max.extract::<i64>().is_err() {
                    return Err(outside(&max.str()?));
                }
            }
            let values: Vec<i64> =
                array.call_method1(intern!(py, "astype"), ("int64",))?.call_method0(intern!(py, "ravel"))?.extract()?;
            out.extend(values);
            Ok(())
        }
        // Python ints in a sequence that numpy could not fit in int64 (or mixed objects).
        "O" => {
            let items = array.call_method0(intern!(py, "ravel"))?.call_method0(intern!(py, "tolist"))?;
            for item in items.try_iter()? {
                let item = item?;
                if !item.is_instance_of::<pyo3::types::PyInt>() {
                    return Err(not_integers());
                }
                out.push(item.extract::<i64>().map_err(|_| outside(&item))?);
            }
            Ok(())
        }
        _ => Err(not_integers()),
    }
}

/// A float that [`read_floats`] could not take.
enum FloatError {
    /// Not a number or a sequence of numbers.
    NotFloats(String),
    /// A finite float64 beyond float32's range, for a float32 space.
    Overflows(f64),
}

impl FloatError {
    fn into_py_err(self, space: &str) -> PyErr {
        match self {
            FloatError::NotFloats(what) => {
                ActionError::new_err(format!("expected float action(s) for {space}, got {what}"))
            }
            FloatError::Overflows(x) => ActionError::new_err(format!(
                "action value {x:e} does not fit the float32 of the action space {space} (largest {:e})",
                f32::MAX
            )),
        }
    }
}

/// Where [`read_floats`] puts values: float32 arrays go in without a detour through f64, and
/// float64 values keep every digit in a float64 buffer.
trait FloatSink {
    fn push_f64(&mut self, x: f64) -> Result<(), FloatError>;
    fn extend_f32(&mut self, values: &[f32]);
}

impl FloatSink for Vec<f32> {
    fn push_f64(&mut self, x: f64) -> Result<(), FloatError> {
        let y = x as f32;
        // A finite value that rounds to infinity is an overflow, not the infinity the env
        // would otherwise report.
        if y.is_infinite() && x.is_finite() {
            return Err(FloatError::Overflows(x));
        }
        self.push(y);
        Ok(())
    }
    fn extend_f32(&mut self, values: &[f32]) {
        self.extend_from_slice(values);
    }
}

impl FloatSink for Vec<f64> {
    fn push_f64(&mut self, x: f64) -> Result<(), FloatError> {
        self.push(x);
        Ok(())
    }
    fn extend_f32(&mut self, values: &[f32]) {
        self.extend(values.iter().map(|&x| f64::from(x)));
    }
}

/// Reads floats from a numpy array, a Python number or a sequence into `out`.
fn read_floats(obj: &Bound<'_, PyAny>, out: &mut impl FloatSink) -> Result<(), FloatError> {
    if let Some(values) = obj.cast::<PyArrayDyn<f32>>().ok().and_then(|a| a.to_vec().ok()) {
        out.extend_f32(&values);
    } else if let Ok(array) = obj.extract::<PyReadonlyArrayDyn<'_, f64>>() {
        array.as_array().iter().try_for_each(|&x| out.push_f64(x))?;
    } else if let Ok(array) = obj.extract::<PyReadonlyArrayDyn<'_, f32>>() {
        array.as_array().iter().for_each(|&x| out.extend_f32(&[x]));
    } else if let Ok(value) = obj.extract::<f64>() {
        out.push_f64(value)?;
    } else {
        // Sequences, nested ones included, and arrays of other dtypes, through numpy.
        let py = obj.py();
        let not_floats = |_| FloatError::NotFloats(describe(obj));
        let array = py
            .import(intern!(py, "numpy"))
            .and_then(|np| np.getattr(intern!(py, "asarray")))
            .and_then(|asarray| asarray.call1((obj, intern!(py, "float64"))))
            .map_err(not_floats)?;
        let array = array.extract::<PyReadonlyArrayDyn<'_, f64>>().map_err(|_| FloatError::NotFloats(describe(obj)))?;
        array.as_array().iter().try_for_each(|&x| out.push_f64(x))?;
    }
    Ok(())
}

fn describe(obj: &Bound<'_, PyAny>) -> String {
    let type_name = obj.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into());
    match obj.getattr("dtype") {
        Ok(dtype) => format!("{type_name} of dtype {dtype}"),
        Err(_) => type_name,
    }
}

/// The shape of one observation: the Box's shape, `(n,)` for the flat discrete rows.
fn obs_shape(space: &Space) -> Vec<usize> {
    match space {
        Space::Box(b) => b.shape.clone(),
        other => vec![other.flat_len()],
    }
}

/// A new numpy array holding `values` in shape `shape`.
fn new_array<'py, T: Element + Copy>(py: Python<'py>, values: &[T], shape: &[usize]) -> PyResult<Bound<'py, PyAny>> {
    let array = numpy::ndarray::ArrayD::from_shape_vec(IxDyn(shape), values.to_vec())
        .map_err(|e| KeelError::new_err(e.to_string()))?;
    Ok(array.into_pyarray(py).into_any())
}

/// `buf` (or rows `rows` of it, of `width` values each) as a new array of shape `shape`.
fn obs_array<'py>(
    py: Python<'py>,
    buf: &ObsBuf,
    rows: std::ops::Range<usize>,
    width: usize,
    shape: &[usize],
) -> PyResult<Bound<'py, PyAny>> {
    obs_ref_array(py, buf.as_ref(), rows, width, shape)
}

/// As [`obs_array`], from borrowed rows.
fn obs_ref_array<'py>(
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
fn extras_dict<'py>(py: Python<'py>, names: &[String], values: &[f64]) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    for (name, value) in names.iter().zip(values) {
        dict.set_item(name, value)?;
    }
    Ok(dict)
}

/// One Rust env (see the module docs).
#[pyclass(module = "keel._core")]
pub struct EnvCore {
    /// A `Mutex` only to make the class `Sync` as pyo3 requires; `&mut self` methods reach the
    /// env through `get_mut`, which does not lock.
    env: Mutex<Box<dyn Env>>,
    actions: ActionReader,
    obs: ObsBuf,
    shape: Vec<usize>,
    extra_names: Vec<String>,
    extras: Vec<f64>,
}

impl EnvCore {
    fn info<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        if self.extras.is_empty() {
            return Ok(PyDict::new(py));
        }
        exclusive(&mut self.env).write_extras(&mut self.extras);
        extras_dict(py, &self.extra_names, &self.extras)
    }
}

#[pymethods]
impl EnvCore {
    /// Makes env `env_id` with config overrides given as a JSON object.
    #[new]
    #[pyo3(signature = (env_id, config_json=None))]
    fn new(env_id: &str, config_json: Option<&str>) -> PyResult<Self> {
        let env = keel_envs::make(env_id, &parse_map(config_json, "config")?).map_err(to_py)?;
        let spec = env.spec();
        let actions = ActionReader::new(&spec.action_space);
        let (obs, shape) = (spec.obs_buffer(1), obs_shape(&spec.observation_space));
        let (extra_names, extras) = (spec.extras.clone(), vec![0.0; spec.extras_len()]);
        Ok(Self { env: Mutex::new(env), actions, obs, shape, extra_names, extras })
    }

    /// The env's spec as JSON (id, spaces, episode cap, reward threshold, extras).
    fn spec_json(&self) -> PyResult<String> {
        serde_json::to_string(locked(&self.env).spec()).map_err(|e| KeelError::new_err(e.to_string()))
    }

    /// Starts an episode; returns `(obs, info)` with a new array in the space's dtype and shape.
    #[pyo3(signature = (seed=None, options_json=None))]
    fn reset<'py>(
        &mut self,
        py: Python<'py>,
        seed: Option<u64>,
        options_json: Option<&str>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let ParsedOptions::All(options) = parse_options(options_json)? else {
            return Err(ConfigError::new_err("reset options of a single env must be a mapping"));
        };
        exclusive(&mut self.env).reset(seed, &options, self.obs.as_mut()).map_err(to_py)?;
        let obs = obs_array(py, &self.obs, 0..1, self.obs.len(), &self.shape)?;
        let info = self.info(py)?;
        (obs, info).into_pyobject(py)
    }

    /// One step: `(obs, reward, terminated, truncated, info)` with a new array and a new dict.
    fn step<'py>(&mut self, py: Python<'py>, action: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyTuple>> {
        let action = self.actions.read(action, None)?;
        let step = exclusive(&mut self.env).step(action, self.obs.as_mut()).map_err(to_py)?;
        let obs = obs_array(py, &self.obs, 0..1, self.obs.len(), &self.shape)?;
        let info = self.info(py)?;
        (obs, step.reward, step.terminated, step.truncated, info).into_pyobject(py)
    }

    /// The full internal state, or `None` if the env has none.
    fn state(&self) -> Option<Vec<f64>> {
        locked(&self.env).state()
    }

    /// Everything that determines the env's future (state, random stream, counters,
    /// parameters) as JSON, or `None` if the env cannot snapshot.
    fn snapshot_json(&self) -> PyResult<Option<String>> {
        locked(&self.env)
            .snapshot()
            .map(|s| serde_json::to_string(&s))
            .transpose()
            .map_err(|e| KeelError::new_err(e.to_string()))
    }

    /// Restores a `snapshot_json` of an env made with the same config.
    fn restore_json(&mut self, snapshot: &str) -> PyResult<()> {
        let value: Value = serde_json::from_str(snapshot).map_err(|e| ConfigError::new_err(format!("snapshot: {e}")))?;
        exclusive(&mut self.env).restore(&value).map_err(to_py)
    }

    /// Sets persistent per-reset parameters (JSON object).
    fn set_params(&mut self, params_json: &str) -> PyResult<()> {
        exclusive(&mut self.env).set_params(&parse_map(Some(params_json), "params")?).map_err(to_py)
    }

    /// The persistent per-reset parameters, as JSON.
    fn params_json(&self) -> String {
        locked(&self.env).params().to_string()
    }

    /// A picture of the current state as a new `(height, width, 3)` uint8 array, or `None` for
    /// an env that does not draw itself.
    fn render<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        match exclusive(&mut self.env).render().map_err(to_py)? {
            Some(frame) => new_array(py, &frame.rgb, &[frame.height, frame.width, 3]).map(Some),
            None => Ok(None),
        }
    }

    /// Whether the env draws itself (`render_mode="rgb_array"`). An env that does not answers
    /// `render()` with nothing at any time; one that does refuses before its first reset.
    fn renders(&mut self) -> bool {
        !matches!(exclusive(&mut self.env).render(), Ok(None))
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
    /// `(num_envs, *obs_shape)`.
    batch_shape: Vec<usize>,
    /// `obs_shape` of one env.
    shape: Vec<usize>,
    /// Hand out fresh arrays (true) or views of the engine's buffer (false).
    copy: bool,
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
fn step_releasing_gil(py: Python<'_>, venv: &mut VecEnv, actions: Action<'_>, last_step: &mut Duration) -> PyResult<()> {
    let start = Instant::now();
    let result = if *last_step > GIL_RELEASE_ABOVE { py.detach(|| venv.step(actions)) } else { venv.step(actions) };
    *last_step = start.elapsed();
    result.map_err(to_py)
}

fn flag_array<'py>(py: Python<'py>, values: &[bool]) -> Bound<'py, PyArray1<bool>> {
    PyArray1::from_slice(py, values)
}

/// A read-only numpy view of `values` in `shape`, kept alive by `owner`.
fn view<'py, T: Element>(values: &[T], shape: &[usize], owner: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
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

impl VecCore {
    /// The observations of the last call: a view of the engine's buffer or a copy.
    fn observations<'py>(this: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let py = this.py();
        let core = core_ref(this)?;
        let venv = locked(&core.venv);
        let obs = &venv.batch().obs;
        if core.copy {
            return obs_array(py, obs, 0..core.num_envs, core.obs_len, &core.batch_shape);
        }
        let owner = this.clone().into_any();
        match obs {
            ObsBuf::F32(v) => view(v, &core.batch_shape, owner),
            ObsBuf::F64(v) => view(v, &core.batch_shape, owner),
            ObsBuf::U8(v) => view(v, &core.batch_shape, owner),
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
        env_id: &str,
        num_envs: usize,
        workers: usize,
        autoreset_mode: &str,
        config_json: Option<&str>,
        copy: bool,
    ) -> PyResult<Self> {
        let autoreset_mode: AutoresetMode = autoreset_mode.parse().map_err(ConfigError::new_err)?;
        let options = VecOptions { workers, autoreset_mode };
        let venv = VecEnv::make(env_id, &parse_map(config_json, "config")?, num_envs, options).map_err(to_py)?;
        let spec = venv.spec();
        let actions = ActionReader::new(&spec.action_space);
        let (obs_len, shape) = (spec.obs_len(), obs_shape(&spec.observation_space));
        let batch_shape: Vec<usize> = std::iter::once(num_envs).chain(shape.iter().copied()).collect();
        let episode_start = vec![Instant::now(); num_envs];
        // Start by releasing the GIL; the first step's duration decides for the next one.
        Ok(Self {
            venv: Mutex::new(venv),
            actions,
            num_envs,
            obs_len,
            batch_shape,
            shape,
            copy,
            episode_start,
            last_step: Duration::MAX,
        })
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
            for (i, start) in core.episode_start.iter_mut().enumerate() {
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
        let infos =
            step_infos(py, venv.spec().extras.as_slice(), &batch.view(), &mut core.episode_start, core.obs_len, &core.shape)?;
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
            DType::Float32 => ObsOut::F32(out_buffer(obs, "obs", &this.batch_shape, &earlier[..0])?),
            DType::Float64 => ObsOut::F64(out_buffer(obs, "obs", &this.batch_shape, &earlier[..0])?),
            DType::Uint8 => ObsOut::U8(out_buffer(obs, "obs", &this.batch_shape, &earlier[..0])?),
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
        step_infos(py, &extras, &batch.view(), &mut this.episode_start, this.obs_len, &this.shape).map(Bound::into_any)
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

/// The Rust async vector engine, EnvPool style: `send` actions for some envs, `recv` the first
/// `batch_size` that finished, with their ids in `info["env_id"]`.
#[pyclass(module = "keel._core")]
pub struct AsyncVecCore {
    /// See [`EnvCore::env`] for the `Mutex`.
    venv: Mutex<AsyncVecEnv>,
    actions: ActionReader,
    batch_size: usize,
    obs_len: usize,
    /// `(batch_size, *obs_shape)`.
    batch_shape: Vec<usize>,
    /// `obs_shape` of one env.
    shape: Vec<usize>,
    /// Hand out fresh arrays (true) or views of each `recv`'s held block (false).
    copy: bool,
    /// When each sub-env's current episode started, for the `t` of the episode statistics.
    episode_start: Vec<Instant>,
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
fn held_view<'py>(py: Python<'py>, venv: &AsyncVecEnv, shape: &[usize]) -> PyResult<Bound<'py, PyAny>> {
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
fn read_env_ids(obj: &Bound<'_, PyAny>, out: &mut Vec<usize>) -> PyResult<()> {
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
        let obs = if core.copy {
            obs_ref_array(py, batch.obs, 0..core.batch_size, core.obs_len, &core.batch_shape)?
        } else {
            held_view(py, &venv, &core.batch_shape)?
        };
        let rewards = PyArray1::from_slice(py, batch.reward);
        let terminations = flag_array(py, batch.terminated);
        let truncations = flag_array(py, batch.truncated);
        let names = venv.spec().extras.as_slice();
        let infos = step_infos(py, names, &batch, &mut core.episode_start, core.obs_len, &core.shape)?;
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
    fn new(
        env_id: &str,
        num_envs: usize,
        batch_size: usize,
        workers: usize,
        autoreset_mode: &str,
        config_json: Option<&str>,
        copy: bool,
    ) -> PyResult<Self> {
        let autoreset_mode: AutoresetMode = autoreset_mode.parse().map_err(ConfigError::new_err)?;
        let options = VecOptions { workers, autoreset_mode };
        let config = parse_map(config_json, "config")?;
        let venv = AsyncVecEnv::make(env_id, &config, num_envs, batch_size, options).map_err(to_py)?;
        let spec = venv.spec();
        let actions = ActionReader::new(&spec.action_space);
        let (obs_len, shape) = (spec.obs_len(), obs_shape(&spec.observation_space));
        let batch_shape: Vec<usize> = std::iter::once(batch_size).chain(shape.iter().copied()).collect();
        Ok(Self {
            venv: Mutex::new(venv),
            actions,
            batch_size,
            obs_len,
            batch_shape,
            shape,
            copy,
            episode_start: vec![Instant::now(); num_envs],
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
        core.episode_start.fill(Instant::now());
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
fn async_error(err: EnvError, call: &str) -> PyErr {
    match err {
        EnvError::ResetNeeded => {
            ResetNeededError::new_err(format!("{call}() before the first reset: call reset() or async_reset() first"))
        }
        other => to_py(other),
    }
}

/// The error of a second thread reaching a vector env while a step (which releases the GIL)
/// is in progress on it.
fn in_use() -> PyErr {
    InUseError::new_err(
        "this vector env is in use by another thread (a step releases the GIL): Keel vector envs are not \
         shared between threads; give each thread its own",
    )
}

fn core_mut<'py>(this: &Bound<'py, VecCore>) -> PyResult<PyRefMut<'py, VecCore>> {
    this.try_borrow_mut().map_err(|_| in_use())
}

fn core_ref<'py>(this: &Bound<'py, VecCore>) -> PyResult<PyRef<'py, VecCore>> {
    this.try_borrow().map_err(|_| in_use())
}

/// The observation buffer of `step_into`, borrowed writable in the batch's dtype.
enum ObsOut<'py> {
    F32(PyReadwriteArrayDyn<'py, f32>),
    F64(PyReadwriteArrayDyn<'py, f64>),
    U8(PyReadwriteArrayDyn<'py, u8>),
}

/// `obj` borrowed as a writable C-contiguous array of `T` and exactly `shape`, or an error naming
/// the buffer (`name`) and what is wrong; `earlier` are the buffers borrowed before it, which it
/// must not overlap.
fn out_buffer<'py, T: Element>(
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
fn fill<T: Element + Copy>(out: &mut PyReadwriteArrayDyn<'_, T>, values: &[T]) -> PyResult<()> {
    let slice = out.as_slice_mut().map_err(|e| KeelError::new_err(format!("output buffer: {e}")))?;
    slice.copy_from_slice(values);
    Ok(())
}

/// The per-step extras as Gymnasium's vector infos: `infos[name]` an array over envs and
/// `infos["_" + name]` its mask (every env has every extra).
fn extras_infos<'py>(py: Python<'py>, names: &[String], extras: &[f64], num_envs: usize) -> PyResult<Bound<'py, PyDict>> {
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
fn step_infos<'py>(
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

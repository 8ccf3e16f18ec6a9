//! Actions from Python: numpy arrays of any numeric dtype, Python numbers and sequences, read
//! into the action space's type without a detour where none is needed.

use keel_envs::Action;
use keel_envs::space::{DType, Space};
use numpy::{PyArrayDyn, PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::intern;
use pyo3::prelude::*;

use crate::errors::ActionError;

/// Reads one action (or a batch of `rows` rows) of the given space from any Python object:
/// numpy arrays of any numeric dtype, Python ints/floats, or sequences, into the space's type.
pub(crate) struct ActionReader {
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
pub(crate) enum ActionKind {
    Int,
    F32,
    F64,
}

impl ActionReader {
    pub(crate) fn new(space: &Space) -> Self {
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
    pub(crate) fn read(&mut self, obj: &Bound<'_, PyAny>, batch: Option<usize>) -> PyResult<Action<'_>> {
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
                    return Err(ActionError::new_err(format!(
                        "expected {want} float value(s), got {}",
                        self.floats.len()
                    )));
                }
                Ok(Action::Float(&self.floats))
            }
            ActionKind::F64 => {
                self.doubles.clear();
                read_floats(obj, &mut self.doubles).map_err(|e| e.into_py_err(&self.space))?;
                if self.doubles.len() != want {
                    return Err(ActionError::new_err(format!(
                        "expected {want} float value(s), got {}",
                        self.doubles.len()
                    )));
                }
                Ok(Action::Float64(&self.doubles))
            }
        }
    }
}

/// `(a, b)` as Python writes a shape.
pub(crate) fn tuple(shape: &[usize]) -> String {
    match shape {
        [one] => format!("({one},)"),
        _ => format!("({})", shape.iter().map(usize::to_string).collect::<Vec<_>>().join(", ")),
    }
}

/// The shape of a numpy array (no call into Python), of a number (`()`), or of anything else
/// as `numpy.shape` sees it.
pub(crate) fn shape_of(obj: &Bound<'_, PyAny>) -> PyResult<Vec<usize>> {
    if let Ok(array) = obj.cast::<PyUntypedArray>() {
        return Ok(array.shape().to_vec());
    }
    if obj.is_instance_of::<pyo3::types::PyInt>() || obj.is_instance_of::<pyo3::types::PyFloat>() {
        return Ok(Vec::new());
    }
    let py = obj.py();
    let shape = py.import(intern!(py, "numpy"))?.getattr(intern!(py, "shape"))?.call1((obj,));
    let shape =
        shape.map_err(|_| ActionError::new_err(format!("expected numeric action(s), got {}", describe(obj))))?;
    shape.extract().map_err(|_| ActionError::new_err(format!("expected numeric action(s), got {}", describe(obj))))
}

/// Integers for a discrete space from anything but a Python int or an int64 array: other
/// integer dtypes and sequences. Floats are refused, not truncated, and a value beyond int64 is
/// named (not wrapped round, nor reported as its type).
pub(crate) fn read_other_ints(obj: &Bound<'_, PyAny>, space: &str, out: &mut Vec<i64>) -> PyResult<()> {
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
pub(crate) enum FloatError {
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
pub(crate) trait FloatSink {
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
pub(crate) fn read_floats(obj: &Bound<'_, PyAny>, out: &mut impl FloatSink) -> Result<(), FloatError> {
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

pub(crate) fn describe(obj: &Bound<'_, PyAny>) -> String {
    let type_name = obj.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into());
    match obj.getattr("dtype") {
        Ok(dtype) => format!("{type_name} of dtype {dtype}"),
        Err(_) => type_name,
    }
}

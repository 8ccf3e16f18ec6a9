//! Errors and parsing: the Python exceptions, the engine's errors turned into them, and the
//! JSON configs, reset options and seeds the Python layer hands over.

use keel_envs::vector::{AutoresetMode, OnMade, OptionsFor, Seeds, VecOptions};
use keel_envs::{EnvError, ResetOptions};
use pyo3::create_exception;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use serde_json::{Map, Value};

create_exception!(_core, KeelError, PyValueError, "Any error raised by Keel's Rust core.");
create_exception!(_core, UnknownEnvError, KeelError, "No env is registered under this id.");
create_exception!(_core, ConfigError, KeelError, "A config or reset option key is unknown or its value invalid.");
create_exception!(_core, ActionError, KeelError, "An action is not in the action space.");
create_exception!(_core, ResetNeededError, KeelError, "step() before reset(), or a finished sub-env stepped.");
create_exception!(
    _core,
    DataMissingError,
    KeelError,
    "Data the env needs is not installed; the message says how to get it."
);
create_exception!(_core, PoisonedError, KeelError, "A sub-env failed mid-step; the vector env needs a full reset.");
create_exception!(_core, ClosedError, KeelError, "The env was closed.");
create_exception!(
    _core,
    InUseError,
    KeelError,
    "The env is in use by another thread (envs are not shared between threads)."
);

pub(crate) fn to_py(err: EnvError) -> PyErr {
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
        EnvError::InvalidModel(_) | EnvError::Control(_) | EnvError::NonFiniteObservation(_) | EnvError::Stopped(_) => {
            KeelError::new_err(message)
        }
    }
}

/// The error of a second thread reaching a vector env while a step (which releases the GIL)
/// is in progress on it.
pub(crate) fn in_use() -> PyErr {
    InUseError::new_err(
        "this vector env is in use by another thread (a step releases the GIL): Keel vector envs are not \
         shared between threads; give each thread its own",
    )
}

pub(crate) fn parse_json(json: Option<&str>, what: &str) -> PyResult<Value> {
    match json {
        None => Ok(Value::Object(Map::new())),
        Some(text) => {
            serde_json::from_str(text).map_err(|e| ConfigError::new_err(format!("{what} is not valid JSON: {e}")))
        }
    }
}

pub(crate) fn parse_map(json: Option<&str>, what: &str) -> PyResult<Map<String, Value>> {
    match parse_json(json, what)? {
        Value::Object(map) => Ok(map),
        other => Err(ConfigError::new_err(format!("{what} must be a mapping, got {other}"))),
    }
}

pub(crate) fn options_from(value: Value, what: &str) -> PyResult<ResetOptions> {
    if !value.is_object() {
        return Err(ConfigError::new_err(format!("{what} must be a mapping, got {value}")));
    }
    serde_json::from_value(value).map_err(|e| ConfigError::new_err(format!("{what}: {e}")))
}

/// Reset options: one mapping for every env, or (vector only) a list of one mapping per env.
pub(crate) enum ParsedOptions {
    All(ResetOptions),
    PerEnv(Vec<ResetOptions>),
}

impl ParsedOptions {
    /// The engine's form: empty options leave the choice to the reset sampler.
    pub(crate) fn options_for(&self) -> OptionsFor<'_> {
        match self {
            ParsedOptions::All(o) if o.is_empty() => OptionsFor::Sampler,
            ParsedOptions::All(o) => OptionsFor::All(o),
            ParsedOptions::PerEnv(o) => OptionsFor::PerEnv(o),
        }
    }
}

/// Seeds one per env, or `None` to continue every env's stream.
pub(crate) fn seeds_of(seeds: &Option<Vec<u64>>) -> Seeds<'_> {
    match seeds {
        Some(s) => Seeds::PerEnv(s),
        None => Seeds::Continue,
    }
}

pub(crate) fn parse_options(json: Option<&str>) -> PyResult<ParsedOptions> {
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

/// Runs `make`, a vector construction, with the GIL released, checking Python's signals (with
/// the GIL) after each env it makes: a signal whose handler raises (Ctrl-C's
/// `KeyboardInterrupt`) stops the construction there, what was made is dropped, and the
/// handler's exception is returned.
pub(crate) fn make_interruptibly<T: Send>(
    py: Python<'_>,
    make: impl for<'a> FnOnce(OnMade<'a>) -> keel_envs::Result<T> + Send,
) -> PyResult<T> {
    let mut raised: Option<PyErr> = None;
    let made = py.detach(|| {
        make(&mut |_| {
            Python::attach(|py| py.check_signals()).map_err(|err| {
                let message = err.to_string();
                raised = Some(err);
                EnvError::Stopped(message)
            })
        })
    });
    match raised {
        Some(err) => Err(err),
        None => made.map_err(to_py),
    }
}

/// The executor options of a vector core: `workers` threads and the autoreset mode's name.
pub(crate) fn vec_options(workers: usize, autoreset_mode: &str) -> PyResult<VecOptions> {
    let autoreset_mode: AutoresetMode = autoreset_mode.parse().map_err(ConfigError::new_err)?;
    Ok(VecOptions { workers, autoreset_mode })
}

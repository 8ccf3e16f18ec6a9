//! [`EnvCore`]: one Rust env behind `keel.KeelEnv`.

use std::sync::Mutex;

use keel_envs::{Env, ObsBuf};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use serde_json::Value;

use crate::actions::ActionReader;
use crate::errors::{ConfigError, KeelError, ParsedOptions, parse_map, parse_options, to_py};
use crate::infos::{extras_dict, new_array, obs_array, obs_shape};
use crate::{exclusive, locked};

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
        let value: Value =
            serde_json::from_str(snapshot).map_err(|e| ConfigError::new_err(format!("snapshot: {e}")))?;
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

//! Classic control, numerically equal to Gymnasium 1.x (golden tests in `envs/tests/golden.rs`,
//! data from `scripts/golden_classic.py`).

pub mod acrobot;
pub mod cartpole;
pub mod mountain_car;
pub mod mountain_car_continuous;
pub mod pendulum;

pub use acrobot::Acrobot;
pub use cartpole::CartPole;
pub use mountain_car::MountainCar;
pub use mountain_car_continuous::MountainCarContinuous;
pub use pendulum::Pendulum;

use serde::{Deserialize, Serialize};

use crate::config::{FieldError, Validate, ordered};
use crate::env::ResetOptions;
use crate::error::{EnvError, Result};

/// Per-reset parameters shared by the classic envs whose start is uniform in `[low, high]`
/// (Gymnasium's reset options `low` / `high`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UniformStart {
    /// Lower bound of each randomised state variable at reset.
    pub low: f64,
    /// Upper bound of each randomised state variable at reset.
    pub high: f64,
}

impl Default for UniformStart {
    fn default() -> Self {
        Self { low: -0.05, high: 0.05 }
    }
}

impl Validate for UniformStart {
    fn validate(&self) -> Result<(), FieldError> {
        ordered("low/high", self.low, self.high)
    }
}

/// The `state` reset option as a fixed-size array, checked for length and finiteness.
pub(crate) fn explicit_state<const N: usize>(options: &ResetOptions) -> Result<Option<[f64; N]>> {
    let Some(state) = &options.state else { return Ok(None) };
    let array: [f64; N] = state
        .as_slice()
        .try_into()
        .map_err(|_| EnvError::InvalidState(format!("expected {N} values, got {}", state.len())))?;
    if let Some(k) = array.iter().position(|v| !v.is_finite()) {
        return Err(EnvError::InvalidState(format!("element {k} is {}", array[k])));
    }
    // Observations are float32: a state beyond its range could only be observed as infinity.
    if let Some(k) = array.iter().position(|v| v.abs() > f64::from(f32::MAX)) {
        return Err(EnvError::InvalidState(format!("element {k} = {} is beyond float32's range", array[k])));
    }
    Ok(Some(array))
}

/// Implements the parameter half of [`crate::Env`] for an env with a `params` field.
macro_rules! params_methods {
    ($params:ty) => {
        fn set_params(&mut self, params: &serde_json::Map<String, serde_json::Value>) -> crate::Result<()> {
            let context = format!("{} reset parameters", Self::ID);
            self.params = crate::config::overlay(&self.params, params, &context)?.into_owned();
            Ok(())
        }

        fn params(&self) -> serde_json::Value {
            serde_json::to_value(&self.params).unwrap_or(serde_json::Value::Null)
        }
    };
}
pub(crate) use params_methods;

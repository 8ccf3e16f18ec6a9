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

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::config::{FieldError, Validate, ordered, overlay};
use crate::env::ResetOptions;
use crate::error::Result;
use crate::rng::EnvRng;

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

impl UniformStart {
    /// `N` values drawn uniform in `[low, high]`, one after another.
    pub(crate) fn draw<const N: usize>(&self, rng: &mut EnvRng) -> [f64; N] {
        std::array::from_fn(|_| rng.uniform(self.low, self.high))
    }

    /// `[x, 0]`: a position uniform in `[low, high]`, at rest (the mountain cars' start).
    pub(crate) fn draw_at_rest(&self, rng: &mut EnvRng) -> [f64; 2] {
        [rng.uniform(self.low, self.high), 0.0]
    }
}

/// The `state` reset option as a fixed-size array, checked for length and finiteness.
pub(crate) fn explicit_state<const N: usize>(options: &ResetOptions) -> Result<Option<[f64; N]>> {
    // Observations are float32: a state beyond its range could only be observed as infinity.
    let limit = f64::from(f32::MAX);
    let Some(state) = options.checked_state(N, limit, "float32's range, in which the env is observed")? else {
        return Ok(None);
    };
    let mut array = [0.0; N];
    array.copy_from_slice(state);
    Ok(Some(array))
}

/// A classic env's reset up to its start state: the reset options' parameters over the env's
/// own `params` (`id` names them in errors), then the `state` option if given (checked by
/// [`explicit_state`]), else `draw` from the parameters with `rng` reseeded by `seed`. Every
/// refusal comes before the reseed, so a refused reset leaves the random stream as it was.
pub(crate) fn start_state<P: Validate, const N: usize>(
    id: &str,
    params: &P,
    rng: &mut EnvRng,
    seed: Option<u64>,
    options: &ResetOptions,
    draw: impl FnOnce(&P, &mut EnvRng) -> [f64; N],
) -> Result<[f64; N]> {
    // The context is formatted only for overrides, so a plain reset allocates nothing.
    let params = if options.params.is_empty() {
        Cow::Borrowed(params)
    } else {
        overlay(params, &options.params, &format!("{id} reset options"))?
    };
    let explicit = explicit_state::<N>(options)?;
    rng.reseed(seed);
    Ok(match explicit {
        Some(state) => state,
        None => draw(&params, rng),
    })
}

/// Writes a state into a float32 observation, element by element.
pub(crate) fn write_state_obs(state: &[f64], obs: &mut [f32]) {
    for (o, s) in obs.iter_mut().zip(state) {
        *o = *s as f32;
    }
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

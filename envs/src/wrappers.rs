//! Wrappers users expect from Gymnasium: [`TimeLimit`], [`ClipAction`], [`RescaleAction`].
//!
//! Wrappers are generic over the env they wrap, so a wrapped env is still one static call per
//! step; they also wrap `Box<dyn Env>`.

use serde_json::{Map, Value};

use crate::env::{Env, EnvSpec, ResetOptions, Step};
use crate::error::{EnvError, Result};
use crate::obs::ObsMut;
use crate::space::{Action, BoxSpace, DType, Space};

/// Reset-option / parameter key of the episode cap.
pub const MAX_EPISODE_STEPS: &str = "max_episode_steps";

/// Truncates episodes after `max_episode_steps` steps (Gymnasium's `TimeLimit`).
///
/// Every env made through the registry is wrapped in it, so it is also where a non-finite
/// observation becomes an error ([`EnvError::NonFiniteObservation`]) unless the step
/// terminated the episode (the controlgym envs document divergence as termination).
///
/// The cap is a per-reset parameter: `set_params({"max_episode_steps": n})` changes it for every
/// later episode, and the same key in reset options changes it for one episode (`null` removes
/// the cap). A curriculum can lengthen episodes without rebuilding the env.
pub struct TimeLimit<E> {
    inner: E,
    spec: EnvSpec,
    episode_cap: Option<u64>,
    elapsed: u64,
}

impl<E: Env> TimeLimit<E> {
    /// Wraps `inner`, cutting episodes at `max_episode_steps` (none: never).
    pub fn new(inner: E, max_episode_steps: Option<u64>) -> Self {
        let mut spec = inner.spec().clone();
        spec.max_episode_steps = max_episode_steps;
        Self { inner, spec, episode_cap: max_episode_steps, elapsed: 0 }
    }

    /// The wrapped env.
    pub fn inner(&self) -> &E {
        &self.inner
    }

    /// Steps taken in the current episode.
    pub fn elapsed_steps(&self) -> u64 {
        self.elapsed
    }
}

/// An episode cap: a positive integer, or `null` or `"none"` (TOML has no null) for no cap.
pub(crate) fn parse_cap(value: &Value) -> Result<Option<u64>> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) if s == "none" => Ok(None),
        v => match v.as_u64() {
            Some(n) if n > 0 => Ok(Some(n)),
            _ => Err(EnvError::InvalidField {
                context: "TimeLimit".into(),
                field: MAX_EPISODE_STEPS.into(),
                message: format!("must be a positive integer, or null / \"none\" for no cap, got {v}"),
            }),
        },
    }
}

impl<E: Env> Env for TimeLimit<E> {
    fn spec(&self) -> &EnvSpec {
        &self.spec
    }

    fn reset(&mut self, seed: Option<u64>, options: &ResetOptions, obs: ObsMut<'_>) -> Result<()> {
        let (cap, inner_options);
        let options = match options.params.get(MAX_EPISODE_STEPS) {
            Some(value) => {
                cap = parse_cap(value)?;
                let mut rest = options.clone();
                rest.params.remove(MAX_EPISODE_STEPS);
                inner_options = rest;
                &inner_options
            }
            None => {
                cap = self.spec.max_episode_steps;
                options
            }
        };
        let mut obs = obs;
        self.inner.reset(seed, options, obs.reborrow())?;
        self.episode_cap = cap;
        self.elapsed = 0;
        if let Some((k, value)) = obs.first_non_finite() {
            return Err(EnvError::NonFiniteObservation(format!(
                "{}: element {k} of the first observation is {value}: the initial state is out of the observation's range",
                self.spec.id
            )));
        }
        Ok(())
    }

    #[inline]
    fn step(&mut self, action: Action<'_>, obs: ObsMut<'_>) -> Result<Step> {
        let mut obs = obs;
        let mut step = self.inner.step(action, obs.reborrow())?;
        if !step.terminated {
            if let Some((k, value)) = obs.first_non_finite() {
                return Err(EnvError::NonFiniteObservation(format!(
                    "{}: element {k} of the observation is {value}: the state has left the observation's range; reset the env",
                    self.spec.id
                )));
            }
        }
        self.elapsed += 1;
        if let Some(cap) = self.episode_cap {
            step.truncated |= self.elapsed >= cap;
        }
        Ok(step)
    }

    fn write_extras(&self, out: &mut [f64]) {
        self.inner.write_extras(out)
    }

    fn episode_count(&self) -> crate::env::EpisodeCount {
        self.inner.episode_count()
    }

    fn state(&self) -> Option<Vec<f64>> {
        self.inner.state()
    }

    fn render(&mut self) -> Result<Option<&crate::env::Frame>> {
        self.inner.render()
    }

    fn set_params(&mut self, params: &Map<String, Value>) -> Result<()> {
        match params.get(MAX_EPISODE_STEPS) {
            Some(value) => {
                let cap = parse_cap(value)?;
                let mut rest = params.clone();
                rest.remove(MAX_EPISODE_STEPS);
                self.inner.set_params(&rest)?;
                self.spec.max_episode_steps = cap;
            }
            None => self.inner.set_params(params)?,
        }
        Ok(())
    }

    fn params(&self) -> Value {
        let mut params = self.inner.params();
        if let Value::Object(map) = &mut params {
            map.insert(MAX_EPISODE_STEPS.into(), self.spec.max_episode_steps.into());
        }
        params
    }

    fn snapshot(&self) -> Option<Value> {
        Some(serde_json::json!({
            "inner": self.inner.snapshot()?,
            "elapsed": self.elapsed,
            "episode_cap": self.episode_cap,
            "max_episode_steps": self.spec.max_episode_steps,
        }))
    }

    fn restore(&mut self, snapshot: &Value) -> Result<()> {
        let bad = |what: &str| EnvError::Snapshot(format!("TimeLimit: bad or missing `{what}`"));
        let elapsed = snapshot.get("elapsed").and_then(Value::as_u64).ok_or_else(|| bad("elapsed"))?;
        let cap = |key: &str| match snapshot.get(key) {
            Some(Value::Null) => Ok(None),
            Some(v) => v.as_u64().map(Some).ok_or_else(|| bad(key)),
            None => Err(bad(key)),
        };
        let (episode_cap, max_episode_steps) = (cap("episode_cap")?, cap("max_episode_steps")?);
        self.inner.restore(snapshot.get("inner").ok_or_else(|| bad("inner"))?)?;
        self.elapsed = elapsed;
        self.episode_cap = episode_cap;
        self.spec.max_episode_steps = max_episode_steps;
        Ok(())
    }
}

fn box_action_space(spec: &EnvSpec, wrapper: &str) -> Result<BoxSpace> {
    match &spec.action_space {
        Space::Box(b) if b.low.iter().chain(&b.high).all(|v| v.is_finite()) => Ok(b.clone()),
        Space::Box(_) => Err(EnvError::InvalidField {
            context: wrapper.into(),
            field: "action_space".into(),
            message: "needs finite Box bounds".into(),
        }),
        other => Err(EnvError::InvalidField {
            context: wrapper.into(),
            field: "action_space".into(),
            message: format!("needs a Box action space, got {}", other.describe()),
        }),
    }
}

/// Clips Box actions into the env's bounds before stepping (Gymnasium's `ClipAction`); the
/// wrapped action space is unbounded. Non-finite actions are still rejected.
pub struct ClipAction<E> {
    inner: E,
    spec: EnvSpec,
    bounds: BoxSpace,
    scratch: ActionScratch,
}

impl<E: Env> ClipAction<E> {
    /// Wraps `inner`, which must have a finite Box action space.
    pub fn new(inner: E) -> Result<Self> {
        let bounds = box_action_space(inner.spec(), "ClipAction")?;
        let mut spec = inner.spec().clone();
        let unbounded = f64::from(f32::MAX);
        spec.action_space = Space::Box(BoxSpace {
            low: vec![-unbounded; bounds.len()],
            high: vec![unbounded; bounds.len()],
            ..bounds.clone()
        });
        let scratch = ActionScratch::new(&bounds);
        Ok(Self { inner, spec, bounds, scratch })
    }
}

/// Affinely maps Box actions from `[min, max]` onto the env's bounds (Gymnasium's
/// `RescaleAction`), e.g. so a policy acting in `[-1, 1]` drives a `[-2, 2]` torque.
pub struct RescaleAction<E> {
    inner: E,
    spec: EnvSpec,
    bounds: BoxSpace,
    min: f64,
    max: f64,
    scratch: ActionScratch,
}

impl<E: Env> RescaleAction<E> {
    /// Wraps `inner` (finite Box action space) so that it takes actions in `[min, max]`.
    pub fn new(inner: E, min: f64, max: f64) -> Result<Self> {
        let bounds = box_action_space(inner.spec(), "RescaleAction")?;
        if !(min.is_finite() && max.is_finite() && min < max) {
            return Err(EnvError::InvalidField {
                context: "RescaleAction".into(),
                field: "min/max".into(),
                message: format!("needs finite min < max, got [{min}, {max}]"),
            });
        }
        let mut spec = inner.spec().clone();
        spec.action_space =
            Space::Box(BoxSpace { low: vec![min; bounds.len()], high: vec![max; bounds.len()], ..bounds.clone() });
        let scratch = ActionScratch::new(&bounds);
        Ok(Self { inner, spec, bounds, min, max, scratch })
    }
}

/// The transformed action of a Box-action wrapper, computed in `f64` and handed on in the
/// wrapped env's dtype.
struct ActionScratch {
    values: Vec<f64>,
    narrowed: Vec<f32>,
    dtype: DType,
}

impl ActionScratch {
    fn new(bounds: &BoxSpace) -> Self {
        Self { values: vec![0.0; bounds.len()], narrowed: vec![0.0; bounds.len()], dtype: bounds.dtype }
    }

    /// Reads `action` (checked against `space`) as `f64` into a buffer the caller maps in place.
    fn read(&mut self, space: &Space, action: Action<'_>) -> Result<&mut [f64]> {
        space.box_action_f64(action, &mut self.values)?;
        Ok(&mut self.values)
    }

    fn action(&mut self) -> Action<'_> {
        match self.dtype {
            DType::Float64 => Action::Float64(&self.values),
            _ => {
                self.narrowed.iter_mut().zip(&self.values).for_each(|(o, &v)| *o = v as f32);
                Action::Float(&self.narrowed)
            }
        }
    }
}

/// The Env methods a Box-action transform forwards unchanged.
macro_rules! forward_except_step {
    () => {
        fn spec(&self) -> &EnvSpec {
            &self.spec
        }
        fn reset(&mut self, seed: Option<u64>, options: &ResetOptions, obs: ObsMut<'_>) -> Result<()> {
            self.inner.reset(seed, options, obs)
        }
        fn write_extras(&self, out: &mut [f64]) {
            self.inner.write_extras(out)
        }
        fn episode_count(&self) -> crate::env::EpisodeCount {
            self.inner.episode_count()
        }
        fn state(&self) -> Option<Vec<f64>> {
            self.inner.state()
        }

        fn render(&mut self) -> Result<Option<&crate::env::Frame>> {
            self.inner.render()
        }
        fn set_params(&mut self, params: &Map<String, Value>) -> Result<()> {
            self.inner.set_params(params)
        }
        fn params(&self) -> Value {
            self.inner.params()
        }
        fn snapshot(&self) -> Option<Value> {
            self.inner.snapshot()
        }
        fn restore(&mut self, snapshot: &Value) -> Result<()> {
            self.inner.restore(snapshot)
        }
    };
}

impl<E: Env> Env for ClipAction<E> {
    forward_except_step!();

    fn step(&mut self, action: Action<'_>, obs: ObsMut<'_>) -> Result<Step> {
        let values = self.scratch.read(&self.spec.action_space, action)?;
        for (k, v) in values.iter_mut().enumerate() {
            *v = v.clamp(self.bounds.low_at(k), self.bounds.high_at(k));
        }
        self.inner.step(self.scratch.action(), obs)
    }
}

impl<E: Env> Env for RescaleAction<E> {
    forward_except_step!();

    fn step(&mut self, action: Action<'_>, obs: ObsMut<'_>) -> Result<Step> {
        let values = self.scratch.read(&self.spec.action_space, action)?;
        let span = self.max - self.min;
        for (k, v) in values.iter_mut().enumerate() {
            let (lo, hi) = (self.bounds.low_at(k), self.bounds.high_at(k));
            *v = lo + (hi - lo) * ((*v - self.min) / span);
        }
        self.inner.step(self.scratch.action(), obs)
    }
}

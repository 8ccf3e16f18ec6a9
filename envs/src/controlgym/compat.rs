//! What the controlgym envs (the PDEs and the linear systems) share: the choice of conventions,
//! and the pieces of `reset` / `step` whose meaning depends on it.

use serde::{Deserialize, Serialize};

use crate::config::{FieldError, positive};
use crate::env::Step;
use crate::error::{EnvError, Result};
use crate::space::Action;

/// Which conventions an env follows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compat {
    /// Gymnasium conventions and physically correct numerics (the default).
    #[default]
    Keel,
    /// controlgym 1.0.0 number for number, its quirks included.
    Controlgym,
}

/// Checks the `state` reset option: `n` finite values.
pub(crate) fn check_explicit_state(state: &[f64], n: usize) -> Result<()> {
    if state.len() != n {
        return Err(EnvError::InvalidState(format!("expected {n} values, got {}", state.len())));
    }
    match state.iter().position(|v| !v.is_finite()) {
        Some(k) => Err(EnvError::InvalidState(format!("element {k} is {}", state[k]))),
        None => Ok(()),
    }
}

/// The float action as `f64` into `out`, clipped to `±action_limit` in the default mode
/// (controlgym never clips). `Float64` actions keep every digit; `Float` ones widen exactly.
/// `started` is false before the first reset.
pub(crate) fn read_action(
    space: &crate::space::Space,
    action: Action<'_>,
    started: bool,
    compat: Compat,
    action_limit: Option<f64>,
    out: &mut [f64],
) -> Result<()> {
    space.check_action(action)?;
    if !started {
        return Err(EnvError::ResetNeeded);
    }
    space.box_action_f64(action, out)?;
    if let (Compat::Keel, Some(l)) = (compat, action_limit) {
        out.iter_mut().for_each(|a| *a = a.clamp(-l, l));
    }
    Ok(())
}

/// Names of the per-step extras of the controlgym envs: the two terms of the cost (`reward =
/// -(state_cost + action_cost)`), the Euclidean norm of the state after the step, which
/// shows divergence long before the reward limit ends an episode, and `diverged`: 1 on the step
/// an episode ends because the state diverged (left `state_limit`, or stopped being finite), a
/// safety violation; else 0.
pub(crate) const EXTRAS: [&str; 4] = ["state_cost", "action_cost", "state_norm", "diverged"];

/// A named group of settings of a controlgym env.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// controlgym's settings: no action bound, no divergence limit (the default).
    #[default]
    None,
    /// The benchmark setting: finite action bounds and a divergence limit on the state, derived
    /// from the system wherever `action_limit` / `state_limit` are not given (each env's module
    /// docs say how). Leaving the limit ends the episode as `terminated` (a safety violation,
    /// the `diverged` extra), and its last reward carries the cost of the steps it did not play,
    /// each charged the cost of the step that diverged, so that diverging never pays.
    Benchmark,
}

/// How many times the typical initial state's norm the state may grow before the benchmark
/// preset ends the episode as diverged.
pub const DIVERGENCE_FACTOR: f64 = 100.0;

/// What [`step_result`] needs to judge divergence: `state_limit` on the state's norm, and
/// whether the episode's remaining cost is charged at divergence (the benchmark preset).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Divergence {
    pub state_limit: Option<f64>,
    pub penalise: bool,
}

impl Divergence {
    /// Whether `state` diverged: not finite, or its norm beyond the limit.
    pub fn diverged(&self, state: &[f64]) -> bool {
        let sq: f64 = state.iter().map(|x| x * x).sum();
        !sq.is_finite() || self.state_limit.is_some_and(|l| sq.sqrt() > l)
    }
}

/// [`EXTRAS`] as the spec's list.
pub(crate) fn extras() -> Vec<String> {
    EXTRAS.iter().map(|s| s.to_string()).collect()
}

/// The box of a controlgym space: `±limit` (unbounded when absent), float64 as controlgym's.
pub(crate) fn float64_box(limit: Option<f64>, len: usize) -> crate::space::Space {
    let bound = vec![limit.unwrap_or(f64::INFINITY); len];
    crate::space::Space::Box(crate::space::BoxSpace::symmetric(&bound).with_dtype(crate::space::DType::Float64))
}

/// The flags of a step: controlgym's (`terminated` at the time limit, `truncated` when the
/// reward leaves `±reward_limit` or is NaN), or Gymnasium's (`terminated` when the reward leaves
/// its range or the state is no longer finite; the time limit is `make`'s `TimeLimit`).
///
/// `diverged` says whether the new state diverged ([`Divergence::diverged`]); with
/// `divergence.penalise` a diverged step's reward also carries the remaining `n_steps − steps`
/// steps, each at this step's reward. Returns the step and whether it diverged (the extra).
pub(crate) fn step_result(
    compat: Compat,
    reward: f64,
    reward_limit: Option<f64>,
    steps: u64,
    n_steps: u64,
    divergence: Divergence,
    diverged: impl FnOnce() -> bool,
) -> (Step, bool) {
    let limit = reward_limit.unwrap_or(f64::INFINITY);
    let in_range = -limit <= reward && reward <= limit;
    match compat {
        Compat::Controlgym => (Step { reward, terminated: steps >= n_steps, truncated: !in_range }, false),
        Compat::Keel => {
            let diverged = diverged();
            let mut reward = reward;
            if diverged && divergence.penalise {
                reward += reward * n_steps.saturating_sub(steps) as f64;
            }
            (Step { reward, terminated: !in_range || diverged, truncated: false }, diverged)
        }
    }
}

/// `Err` unless `value` is a finite variance (>= 0).
pub(crate) fn variance(field: &'static str, value: f64) -> Result<(), FieldError> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(FieldError::new(field, format!("is a variance: must be finite and >= 0, got {value}")))
    }
}

/// `Err` unless each of the optional limits (action, observation, reward) is absent or positive.
pub(crate) fn limits(
    action: Option<f64>,
    observation: Option<f64>,
    reward: Option<f64>,
    state: Option<f64>,
) -> Result<(), FieldError> {
    for (field, value) in
        [("action_limit", action), ("observation_limit", observation), ("reward_limit", reward), ("state_limit", state)]
    {
        if let Some(v) = value {
            positive(field, v)?;
        }
    }
    Ok(())
}

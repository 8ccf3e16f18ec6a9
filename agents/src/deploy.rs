//! Deploying the policy to envs that respond to it (`deploy_every`): repeated retraining with
//! function approximation, for performative RL.
//!
//! The policy's action probabilities in every state (Discrete observations and actions) become
//! the envs' `learner_policy` per-reset parameter; an env such as `keel/PerformativeGrid-v0`
//! then changes its rewards and transitions in response.

use serde_json::{Map, Value};

use crate::error::{AgentError, Result};

/// The name of the per-reset parameter a deployment sets.
pub const LEARNER_POLICY: &str = "learner_policy";

/// The per-reset parameters that deploy `table` (action probabilities, row-major states x
/// `actions`), and the table as deployed. Rows are renormalised in float64 so each sums to 1
/// (probabilities from a float32 softmax do not quite).
pub fn policy_params(table: &[f64], actions: usize) -> Result<(Map<String, Value>, Vec<f64>)> {
    if actions == 0 || table.len() % actions != 0 {
        return Err(AgentError::Config(format!("a policy table of {} values is not rows of {actions}", table.len())));
    }
    let rows: Vec<Vec<f64>> = table
        .chunks_exact(actions)
        .map(|row| {
            let total: f64 = row.iter().sum();
            row.iter().map(|p| p / total).collect()
        })
        .collect();
    let mut params = Map::new();
    params.insert(LEARNER_POLICY.into(), serde_json::to_value(&rows).map_err(|e| AgentError::Config(e.to_string()))?);
    Ok((params, rows.concat()))
}

/// `‖new − old‖ / ‖old‖` (Euclidean norms).
pub fn relative_change(new: &[f64], old: &[f64]) -> f64 {
    let diff: f64 = new.iter().zip(old).map(|(a, b)| (a - b).powi(2)).sum::<f64>().sqrt();
    diff / old.iter().map(|v| v * v).sum::<f64>().sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_renormalised_and_shifts_are_relative() {
        let (params, flat) = policy_params(&[1.0, 3.0, 0.5, 0.5], 2).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(flat, vec![0.25, 0.75, 0.5, 0.5]);
        assert_eq!(params[LEARNER_POLICY], serde_json::json!([[0.25, 0.75], [0.5, 0.5]]));
        assert!(policy_params(&[1.0, 2.0, 3.0], 2).is_err());
        assert_eq!(relative_change(&[3.0, 4.0], &[0.0, 5.0]), (9.0f64 + 1.0).sqrt() / 5.0);
    }
}

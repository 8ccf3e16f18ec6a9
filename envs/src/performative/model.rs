//! The learner's view of the world under one deployment: a tabular reward `R(s, a)` and
//! transition `P(s' | s, a)`, exact (induced by A2's response) or estimated from samples, and the
//! discounted occupancy measure of a policy in it.

use super::response::Response;
use super::world::{GOAL, GridWorld, NO_INTERVENTION, NUM_ACTIONS, NUM_STATES};
use crate::error::{EnvError, Result};

/// A tabular MDP model on the grid's 64 states and the learner's 4 actions.
#[derive(Clone, Debug, PartialEq)]
pub struct TabularModel {
    /// `R(s, a)`, row-major `64 x 4` (index `s * 4 + a`).
    pub reward: Vec<f64>,
    /// `P(s' | s, a)`, row-major `(64 * 4) x 64` (index `(s * 4 + a) * 64 + s'`).
    pub transition: Vec<f64>,
}

impl TabularModel {
    /// The model the learner faces when A2 plays `response`: A2 forces move `a2 < 4` with
    /// probability `π2(a2 | s)` and lets the learner's move through otherwise; the reward is the
    /// true grid's reward of the cell entered. The goal is absorbing with reward 0.
    pub fn induced(world: &GridWorld, response: &Response) -> Self {
        let mut reward = vec![0.0; NUM_STATES * NUM_ACTIONS];
        let mut transition = vec![0.0; NUM_STATES * NUM_ACTIONS * NUM_STATES];
        for (s, pi2) in response.iter().enumerate() {
            for a in 0..NUM_ACTIONS {
                let row = s * NUM_ACTIONS + a;
                let p = &mut transition[row * NUM_STATES..(row + 1) * NUM_STATES];
                if s == GOAL {
                    p[GOAL] = 1.0;
                    continue;
                }
                let mut r = 0.0;
                for (a2, &weight) in pi2.iter().enumerate() {
                    let cell = world.next[s][if a2 == NO_INTERVENTION { a } else { a2 }];
                    p[cell] += weight;
                    r += weight * world.cell_reward[cell];
                }
                reward[row] = r;
            }
        }
        Self { reward, transition }
    }

    /// Checks shapes, finiteness, and that every transition row is a distribution.
    pub fn check(&self) -> Result<()> {
        let rows = NUM_STATES * NUM_ACTIONS;
        if self.reward.len() != rows || self.transition.len() != rows * NUM_STATES {
            return Err(EnvError::InvalidModel(format!(
                "expected {rows} rewards and {rows} x {NUM_STATES} transitions, got {} and {}",
                self.reward.len(),
                self.transition.len()
            )));
        }
        if let Some(k) = self.reward.iter().position(|r| !r.is_finite()) {
            return Err(EnvError::InvalidModel(format!("reward of (s={}, a={}) is {}", k / 4, k % 4, self.reward[k])));
        }
        for (row, p) in self.transition.chunks_exact(NUM_STATES).enumerate() {
            let total: f64 = p.iter().sum();
            if p.iter().any(|x| !x.is_finite() || *x < 0.0) || (total - 1.0).abs() > 1e-9 {
                return Err(EnvError::InvalidModel(format!(
                    "transition row (s={}, a={}) is not a distribution (sums to {total})",
                    row / NUM_ACTIONS,
                    row % NUM_ACTIONS
                )));
            }
        }
        Ok(())
    }

    /// The discounted occupancy measure `d(s, a) = Σ_t γ^t Pr(s_t = s, a_t = a)` of `policy`
    /// from `start`, excluding the goal (whose row is 0), found as the paper does: Jacobi sweeps
    /// of `d(s, a) = π(a|s) (ρ(s) + γ Σ d(s', a') P(s | s', a'))` from 0, stopped when no entry
    /// moves by `tolerance` (the paper: 1e-5). Row-major `64 x 4`.
    pub fn occupancy(&self, policy: &[f64], start: &[f64; NUM_STATES], gamma: f64, tolerance: f64) -> Vec<f64> {
        let mut d = vec![0.0; NUM_STATES * NUM_ACTIONS];
        let mut inflow = [0.0; NUM_STATES];
        // γ < 1 makes each sweep a contraction; the cap only guards against a caller's bad γ.
        for _ in 0..100_000 {
            inflow.fill(0.0);
            for (row, &mass) in d.iter().enumerate() {
                if mass != 0.0 {
                    let p = &self.transition[row * NUM_STATES..(row + 1) * NUM_STATES];
                    for (into, &prob) in inflow.iter_mut().zip(p) {
                        *into += mass * prob;
                    }
                }
            }
            let mut change: f64 = 0.0;
            for s in 0..GOAL {
                let arriving = start[s] + gamma * inflow[s];
                for a in 0..NUM_ACTIONS {
                    let k = s * NUM_ACTIONS + a;
                    let updated = policy[k] * arriving;
                    change = change.max((updated - d[k]).abs());
                    d[k] = updated;
                }
            }
            if change < tolerance {
                break;
            }
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::super::response::Population;
    use super::*;

    fn world() -> &'static GridWorld {
        GridWorld::paper().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn without_interventions_the_learner_moves_as_it_chooses() {
        let mut response = [[0.0; 5]; NUM_STATES];
        for row in &mut response {
            row[NO_INTERVENTION] = 1.0;
        }
        let model = TabularModel::induced(world(), &response);
        assert!(model.check().is_ok());
        // From (7,6), "right" enters the goal for +1.
        let row = (GOAL - 1) * NUM_ACTIONS + 1;
        assert_eq!(model.transition[row * NUM_STATES + GOAL], 1.0);
        assert_eq!(model.reward[row], 1.0);
        // The goal absorbs with reward 0.
        assert_eq!(model.reward[GOAL * NUM_ACTIONS], 0.0);
        assert_eq!(model.transition[GOAL * NUM_ACTIONS * NUM_STATES + GOAL], 1.0);
    }

    #[test]
    fn occupancy_is_consistent_with_the_flow_equations() {
        let w = world();
        let policy = &w.stored_initial_policy;
        let response = Population::new(w, 50, 0.9, -0.05, 1e-5).respond(policy, 10.0);
        let model = TabularModel::induced(w, &response);
        let d = model.occupancy(policy, &w.start, 0.9, 1e-12);
        // Σ_a d(s, a) = ρ(s) + γ Σ d P(s | ·) for every s except the goal.
        for s in 0..GOAL {
            let inflow: f64 = (0..NUM_STATES * NUM_ACTIONS).map(|k| d[k] * model.transition[k * NUM_STATES + s]).sum();
            let out: f64 = d[s * 4..s * 4 + 4].iter().sum();
            assert!((out - w.start[s] - 0.9 * inflow).abs() < 1e-10, "state {s}");
        }
        // The goal is absorbing and excluded, so the total is below 1 / (1 - γ).
        let total: f64 = d.iter().sum();
        assert!(total > 5.0 && total < 10.0, "{total}");
    }

    #[test]
    fn malformed_models_are_rejected() {
        let response = [[0.2; 5]; NUM_STATES];
        let mut model = TabularModel::induced(world(), &response);
        model.transition[3] += 0.5;
        let err = model.check().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("(s=0, a=0)"), "{err}");
        model.transition.pop();
        assert!(model.check().is_err());
    }
}

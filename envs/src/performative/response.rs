//! The responding population A2: followers that best-respond to the learner's policy on their
//! own perturbed grids, averaged and softened into one Boltzmann response.
//!
//! Follower `k` pays `grid_k[s'] + C·1[it intervenes]` on each transition and, against a fixed
//! learner policy π1, computes its optimal values by Jacobi value iteration from 0, stopped when
//! no value moves by the tolerance (1e-5 in the paper; each follower stops on its own). Its
//! Q-values are averaged over the population and the response is `softmax(β · Q̄(s, ·))`.
//!
//! The paper's code spends about 25 s of CPU per response in Python loops. Here the learner's
//! policy enters a forced move not at all (the responder overrides it) and the free move through
//! one expectation, so a sweep over one follower is 64 states x 9 lookups: a whole response of
//! 50 followers takes about a millisecond.

use super::world::{GOAL, GridWorld, NO_INTERVENTION, NUM_ACTIONS, NUM_RESPONSES, NUM_STATES};

/// The population's averaged Q-values `Q̄(s, a2)` against one learner policy.
pub type ResponseValues = [[f64; NUM_RESPONSES]; NUM_STATES];

/// A2's policy `π2(a2 | s)`: one distribution over the 5 responses per state.
pub type Response = [[f64; NUM_RESPONSES]; NUM_STATES];

/// The followers and the constants of their best responses.
#[derive(Clone, Debug)]
pub struct Population<'w> {
    world: &'w GridWorld,
    /// How many of the world's followers respond (the first ones).
    followers: usize,
    /// Discount γ of the followers' values.
    gamma: f64,
    /// Cost C added to a follower's reward whenever it intervenes (negative).
    intervention_cost: f64,
    /// Value-iteration stopping tolerance (max-norm change of one sweep).
    tolerance: f64,
}

impl<'w> Population<'w> {
    /// The first `followers` followers of `world`. Arguments are checked by the env's config.
    pub fn new(world: &'w GridWorld, followers: usize, gamma: f64, intervention_cost: f64, tolerance: f64) -> Self {
        Self { world, followers: followers.min(world.follower_rewards.len()), gamma, intervention_cost, tolerance }
    }

    /// `Q̄(s, a2)` against the learner policy `policy` (row-major `64 x 4`, already checked);
    /// `Q̄(GOAL, ·) = 0`.
    pub fn mean_q(&self, policy: &[f64]) -> ResponseValues {
        let mut total = [[0.0; NUM_RESPONSES]; NUM_STATES];
        let mut arrive = [0.0; NUM_STATES];
        for rewards in &self.world.follower_rewards[..self.followers] {
            let values = self.best_response_values(rewards, policy, &mut arrive);
            // The value of entering each cell under the converged values.
            for (cell, value) in arrive.iter_mut().enumerate() {
                *value = rewards[cell] + self.gamma * values[cell];
            }
            for (s, sums) in total.iter_mut().enumerate().take(GOAL) {
                let q = self.q_row(s, policy, &arrive);
                for (t, v) in sums.iter_mut().zip(q) {
                    *t += v;
                }
            }
        }
        let scale = 1.0 / self.followers.max(1) as f64;
        for row in &mut total {
            for v in row.iter_mut() {
                *v *= scale;
            }
        }
        total
    }

    /// One follower's Q-values at `s`, given the value of entering each cell.
    #[inline]
    fn q_row(&self, s: usize, policy: &[f64], arrive: &[f64; NUM_STATES]) -> [f64; NUM_RESPONSES] {
        let next = &self.world.next[s];
        let pi = &policy[s * NUM_ACTIONS..(s + 1) * NUM_ACTIONS];
        let mut q = [0.0; NUM_RESPONSES];
        for a in 0..NUM_ACTIONS {
            // A forced move goes where the follower says, whatever the learner chose.
            q[a] = arrive[next[a]] + self.intervention_cost;
            q[NO_INTERVENTION] += pi[a] * arrive[next[a]];
        }
        q
    }

    /// One follower's optimal values against `policy` (Jacobi sweeps from 0). `arrive` is scratch.
    fn best_response_values(
        &self,
        rewards: &[f64; NUM_STATES],
        policy: &[f64],
        arrive: &mut [f64; NUM_STATES],
    ) -> [f64; NUM_STATES] {
        let mut values = [0.0; NUM_STATES];
        // γ < 1 makes each sweep a contraction; the cap only guards against a caller's bad γ.
        for _ in 0..100_000 {
            for (cell, value) in arrive.iter_mut().enumerate() {
                *value = rewards[cell] + self.gamma * values[cell];
            }
            let mut change: f64 = 0.0;
            let mut updated = [0.0; NUM_STATES];
            for (s, slot) in updated.iter_mut().enumerate().take(GOAL) {
                *slot = self.q_row(s, policy, arrive).into_iter().fold(f64::NEG_INFINITY, f64::max);
                change = change.max((*slot - values[s]).abs());
            }
            values = updated;
            if change < self.tolerance {
                break;
            }
        }
        values
    }

    /// A2's Boltzmann response `softmax(β · Q̄(s, ·))` to `policy`; uniform at the goal.
    pub fn respond(&self, policy: &[f64], beta: f64) -> Response {
        let q = self.mean_q(policy);
        let mut response = [[1.0 / NUM_RESPONSES as f64; NUM_RESPONSES]; NUM_STATES];
        for (row, q_row) in response.iter_mut().zip(&q).take(GOAL) {
            // Shifting by the maximum changes nothing mathematically and cannot overflow.
            let top = q_row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let weights = q_row.map(|v| (beta * (v - top)).exp());
            let total: f64 = weights.iter().sum();
            *row = weights.map(|w| w / total);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn population(followers: usize) -> Population<'static> {
        let world = GridWorld::paper().unwrap_or_else(|e| panic!("{e}"));
        Population::new(world, followers, 0.9, -0.05, 1e-5)
    }

    fn initial_policy() -> Vec<f64> {
        GridWorld::paper().map(|w| w.stored_initial_policy.clone()).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn responses_are_distributions_and_uniform_at_the_goal() {
        let response = population(50).respond(&initial_policy(), 10.0);
        for row in &response {
            assert!(row.iter().all(|p| p.is_finite() && *p >= 0.0));
            assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        }
        assert_eq!(response[GOAL], [0.2; 5]);
    }

    #[test]
    fn beta_sets_how_sharp_the_response_is() {
        let policy = initial_policy();
        let pop = population(50);
        let flat = pop.respond(&policy, 0.0);
        assert!(flat.iter().all(|row| row.iter().all(|&p| (p - 0.2).abs() < 1e-15)));
        // A huge β does not overflow: it becomes an argmax (split between exact ties, such as
        // two forced moves off the same corner).
        let sharp = pop.respond(&policy, 1e6);
        assert!(sharp.iter().flatten().all(|p| p.is_finite()));
        assert!(sharp.iter().take(GOAL).all(|row| row.iter().any(|&p| p > 0.49)));
    }

    #[test]
    fn a_forced_move_ignores_the_learner() {
        // Forcing "right" next to the goal pays every follower +1 - C, whatever the learner does.
        let q = population(50).mean_q(&initial_policy());
        assert!((q[GOAL - 1][1] - (1.0 - 0.05)).abs() < 1e-12, "{:?}", q[GOAL - 1]);
        assert_eq!(q[GOAL], [0.0; NUM_RESPONSES]);
    }
}

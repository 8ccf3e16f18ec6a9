//! Finite samples: `m` trajectories in the deployed environment, and the plug-in model built
//! from them.
//!
//! Each trajectory starts from ρ, draws the learner's action from its policy and lets the env
//! (A2's response included) move; it stops at the goal or after `horizon` steps (100 in the
//! paper). A visited pair `(s, a)` gets the mean observed reward and the empirical next-state
//! frequencies. An unvisited pair gets, as in the paper's code, a pessimistic reward (the mean of
//! the grid's distinct non-goal rewards, -0.1767) and a uniform transition over the distinct cells
//! the four moves reach from `s` (`s` itself included on a border). The goal absorbs with reward 0.

use keel_envs::performative::{GOAL, GridWorld, NUM_ACTIONS, NUM_STATES, PerformativeGrid, TabularModel, sample_index};
use keel_envs::{Action, Env, ObsMut, ResetOptions};
use rand::RngExt;
use rand_pcg::Pcg64;

use super::PerformativeError;
use super::occupancy_program::NUM_PAIRS;

/// Visit counts, next-state counts and reward sums of sampled transitions.
#[derive(Clone, Debug)]
pub struct SampleCounts {
    visits: Vec<u32>,
    next: Vec<u32>,
    reward_sum: Vec<f64>,
}

impl Default for SampleCounts {
    fn default() -> Self {
        Self { visits: vec![0; NUM_PAIRS], next: vec![0; NUM_PAIRS * NUM_STATES], reward_sum: vec![0.0; NUM_PAIRS] }
    }
}

impl SampleCounts {
    /// Records one transition `(s, a) -> s'` with reward `r`.
    pub fn record(&mut self, state: usize, action: usize, reward: f64, next: usize) {
        let pair = state * NUM_ACTIONS + action;
        self.visits[pair] += 1;
        self.next[pair * NUM_STATES + next] += 1;
        self.reward_sum[pair] += reward;
    }

    /// Number of recorded transitions.
    pub fn transitions(&self) -> u64 {
        self.visits.iter().map(|&v| u64::from(v)).sum()
    }

    /// The plug-in model (see the module docs).
    pub fn model(&self, world: &GridWorld) -> TabularModel {
        let rewards = world.non_goal_rewards();
        let pessimistic = rewards.iter().sum::<f64>() / rewards.len().max(1) as f64;
        let mut reward = vec![0.0; NUM_PAIRS];
        let mut transition = vec![0.0; NUM_PAIRS * NUM_STATES];
        for pair in 0..NUM_PAIRS {
            let state = pair / NUM_ACTIONS;
            let row = &mut transition[pair * NUM_STATES..(pair + 1) * NUM_STATES];
            let visits = self.visits[pair];
            if state == GOAL {
                row[GOAL] = 1.0;
            } else if visits > 0 {
                reward[pair] = self.reward_sum[pair] / f64::from(visits);
                let counts = &self.next[pair * NUM_STATES..(pair + 1) * NUM_STATES];
                for (p, &c) in row.iter_mut().zip(counts) {
                    *p = f64::from(c) / f64::from(visits);
                }
            } else {
                reward[pair] = pessimistic;
                let mut reachable: Vec<usize> = world.next[state].to_vec();
                reachable.sort_unstable();
                reachable.dedup();
                for &cell in &reachable {
                    row[cell] = 1.0 / reachable.len() as f64;
                }
            }
        }
        TabularModel { reward, transition }
    }
}

/// Plays `trajectories` episodes of at most `horizon` steps in `env` (continuing its random
/// stream), the learner drawing from `policy` (row-major `64 x 4`, checked by the caller) with
/// `rng`, and counts what happened.
pub fn sample(
    env: &mut PerformativeGrid,
    policy: &[f64],
    trajectories: usize,
    horizon: usize,
    rng: &mut Pcg64,
) -> Result<SampleCounts, PerformativeError> {
    let mut counts = SampleCounts::default();
    let mut obs = [0.0f32];
    for _ in 0..trajectories {
        env.reset(None, &ResetOptions::default(), ObsMut::F32(&mut obs))?;
        let mut state = obs[0] as usize;
        for _ in 0..horizon {
            let pi = &policy[state * NUM_ACTIONS..(state + 1) * NUM_ACTIONS];
            let action = sample_index(pi, rng.random::<f64>()).unwrap_or(0);
            let step = env.step(Action::Int(&[action as i64]), ObsMut::F32(&mut obs))?;
            let next = obs[0] as usize;
            counts.record(state, action, step.reward, next);
            state = next;
            if step.terminated {
                break;
            }
        }
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_envs::Registered;
    use keel_envs::performative::PerformativeGridConfig;
    use rand::SeedableRng;

    #[test]
    fn plug_in_model_approaches_the_exact_one() {
        let mut env = PerformativeGrid::new(PerformativeGridConfig::default()).unwrap_or_else(|e| panic!("{e}"));
        let policy = env.deployed_policy().to_vec();
        let mut obs = [0.0f32];
        env.reset(Some(3), &ResetOptions::default(), ObsMut::F32(&mut obs)).unwrap_or_else(|e| panic!("{e}"));
        let mut rng = Pcg64::seed_from_u64(4);
        let counts = sample(&mut env, &policy, 2000, 100, &mut rng).unwrap_or_else(|e| panic!("{e}"));
        let estimate = counts.model(env.world());
        assert!(estimate.check().is_ok());
        // The greedy action of a start cell is visited often: its estimate is close.
        let pair = NUM_ACTIONS + 3; // cell 1, "down" (the initial policy's choice there).
        assert!(counts.visits[pair] > 500, "{}", counts.visits[pair]);
        let exact = env.model();
        let row = |m: &TabularModel| m.transition[pair * NUM_STATES..(pair + 1) * NUM_STATES].to_vec();
        let error = row(&estimate).iter().zip(row(exact)).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(error < 0.05, "{error}");
        assert!((estimate.reward[pair] - exact.reward[pair]).abs() < 0.05);
    }

    #[test]
    fn unvisited_pairs_are_pessimistic_and_uniform() {
        let world = GridWorld::paper().unwrap_or_else(|e| panic!("{e}"));
        let model = SampleCounts::default().model(world);
        assert!((model.reward[0] - (-0.5 - 0.02 - 0.01) / 3.0).abs() < 1e-15);
        // Cell 0 (a corner): left and up stay, right and down move: three distinct cells.
        let row = &model.transition[..NUM_STATES];
        assert_eq!((row[0], row[1], row[8]), (1.0 / 3.0, 1.0 / 3.0, 1.0 / 3.0));
        assert_eq!(model.reward[GOAL * NUM_ACTIONS], 0.0);
    }
}

//! The paper's static grid-world: cell rewards, moves, start distribution, the followers' perturbed
//! grids and the initial learner policy.
//!
//! The 50 perturbed grids were drawn by the paper's code from NumPy's `default_rng(k)`;
//! reproducing NumPy's generator is not worth it, so they are loaded from `paper_grid.json`
//! (written by `scripts/golden_performative.py`, which draws them with NumPy as the original does).

use std::sync::OnceLock;

use serde::Deserialize;

use crate::error::{EnvError, Result};

/// Side of the square grid.
pub const SIDE: usize = 8;
/// Number of cells (states), `s = SIDE * row + col`, row 0 at the top.
pub const NUM_STATES: usize = SIDE * SIDE;
/// The learner's actions: 0 = left, 1 = right, 2 = up, 3 = down.
pub const NUM_ACTIONS: usize = 4;
/// The responder's actions: 0..=3 force that move, 4 = no intervention.
pub const NUM_RESPONSES: usize = NUM_ACTIONS + 1;
/// The responder's "let the learner move" action.
pub const NO_INTERVENTION: usize = NUM_ACTIONS;
/// The goal cell (bottom right): absorbing, terminal, +1 paid on entering it.
pub const GOAL: usize = NUM_STATES - 1;
/// Number of followers in the paper's population.
pub const PAPER_FOLLOWERS: usize = 50;

/// `(row, col)` step of each move.
const MOVES: [(isize, isize); NUM_ACTIONS] = [(0, -1), (0, 1), (-1, 0), (1, 0)];

/// The cell reached from `state` by `action`; a move off the grid stays in place.
pub fn step_cell(state: usize, action: usize) -> usize {
    let (row, col) = ((state / SIDE) as isize, (state % SIDE) as isize);
    let (dr, dc) = MOVES[action];
    let (r, c) = (row + dr, col + dc);
    if (0..SIDE as isize).contains(&r) && (0..SIDE as isize).contains(&c) {
        r as usize * SIDE + c as usize
    } else {
        state
    }
}

/// The static data of the paper's grid-world.
#[derive(Clone, Debug)]
pub struct GridWorld {
    /// Reward of entering each cell on the true grid (the learner's reward).
    pub cell_reward: [f64; NUM_STATES],
    /// Each follower's perturbed copy of `cell_reward`.
    pub follower_rewards: Vec<[f64; NUM_STATES]>,
    /// Start distribution ρ: uniform over the top row and the left column.
    pub start: [f64; NUM_STATES],
    /// `next[s][a]`: the cell reached from `s` by move `a`.
    pub next: [[usize; NUM_ACTIONS]; NUM_STATES],
    /// The paper's initial learner policy, as stored in the fixture (row-major `64 x 4`).
    pub stored_initial_policy: Vec<f64>,
}

/// The fixture's layout.
#[derive(Deserialize)]
struct Fixture {
    grid: Vec<Vec<f64>>,
    initial_states: Vec<usize>,
    perturbed_grids: Vec<Vec<Vec<f64>>>,
    initial_policy: Vec<Vec<f64>>,
}

fn flatten_grid(grid: &[Vec<f64>], what: &str) -> std::result::Result<[f64; NUM_STATES], String> {
    let flat: Vec<f64> = grid.iter().flatten().copied().collect();
    if grid.len() != SIDE || grid.iter().any(|row| row.len() != SIDE) {
        return Err(format!("{what} is not {SIDE} x {SIDE}"));
    }
    flat.try_into().map_err(|_| format!("{what} is not {SIDE} x {SIDE}"))
}

fn parse_fixture() -> std::result::Result<GridWorld, String> {
    let fixture: Fixture =
        serde_json::from_str(include_str!("paper_grid.json")).map_err(|e| format!("paper_grid.json: {e}"))?;
    let cell_reward = flatten_grid(&fixture.grid, "grid")?;
    let follower_rewards = fixture
        .perturbed_grids
        .iter()
        .enumerate()
        .map(|(k, g)| flatten_grid(g, &format!("perturbed grid {k}")))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let mut start = [0.0; NUM_STATES];
    for &s in &fixture.initial_states {
        *start.get_mut(s).ok_or_else(|| format!("initial state {s} is outside the grid"))? =
            1.0 / fixture.initial_states.len() as f64;
    }
    let stored_initial_policy: Vec<f64> = fixture.initial_policy.iter().flatten().copied().collect();
    if stored_initial_policy.len() != NUM_STATES * NUM_ACTIONS {
        return Err("initial_policy is not 64 x 4".into());
    }
    let next = std::array::from_fn(|s| std::array::from_fn(|a| step_cell(s, a)));
    Ok(GridWorld { cell_reward, follower_rewards, start, next, stored_initial_policy })
}

impl GridWorld {
    /// The paper's grid-world, parsed once from the committed fixture.
    pub fn paper() -> Result<&'static GridWorld> {
        static WORLD: OnceLock<std::result::Result<GridWorld, String>> = OnceLock::new();
        WORLD.get_or_init(parse_fixture).as_ref().map_err(|e| EnvError::InvalidModel(format!("corrupt fixture: {e}")))
    }

    /// The distinct rewards of non-goal cells on the true grid (`-0.5, -0.02, -0.01`).
    pub fn non_goal_rewards(&self) -> Vec<f64> {
        let mut values: Vec<f64> =
            self.cell_reward.iter().enumerate().filter(|&(s, _)| s != GOAL).map(|(_, &r)| r).collect();
        values.sort_by(f64::total_cmp);
        values.dedup();
        values
    }

    /// The paper's initial learner policy: ε-greedy (ε = 0.1, ties to the first action) on the
    /// optimal Q-values of the true grid without interventions, found by Jacobi value iteration
    /// from 0 stopped when no value moves by `tolerance` (the paper: 1e-5). Row-major `64 x 4`.
    pub fn initial_policy(&self, gamma: f64, tolerance: f64) -> Vec<f64> {
        const EPSILON: f64 = 0.1;
        let q = |values: &[f64; NUM_STATES], s: usize, a: usize| {
            if s == GOAL { 0.0 } else { self.cell_reward[self.next[s][a]] + gamma * values[self.next[s][a]] }
        };
        let mut values = [0.0; NUM_STATES];
        loop {
            let updated: [f64; NUM_STATES] =
                std::array::from_fn(|s| (0..NUM_ACTIONS).map(|a| q(&values, s, a)).fold(f64::NEG_INFINITY, f64::max));
            let change = updated.iter().zip(&values).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            values = updated;
            if change < tolerance {
                break;
            }
        }
        let mut policy = vec![EPSILON / (NUM_ACTIONS - 1) as f64; NUM_STATES * NUM_ACTIONS];
        for s in 0..NUM_STATES {
            // First index among ties, as numpy's argmax.
            let greedy =
                (0..NUM_ACTIONS).fold(0, |best, a| if q(&values, s, a) > q(&values, s, best) { a } else { best });
            policy[s * NUM_ACTIONS + greedy] = 1.0 - EPSILON;
        }
        policy
    }
}

/// Inverse-CDF draw from a discrete distribution: the index `i` with
/// `Σ_{j<i} p_j <= u < Σ_{j<=i} p_j` for `u` uniform in `[0, 1)`; the last positive one if
/// rounding leaves `u` beyond the total.
pub fn sample_index(probabilities: &[f64], u: f64) -> Option<usize> {
    let mut acc = 0.0;
    for (i, &p) in probabilities.iter().enumerate() {
        acc += p;
        if u < acc {
            return Some(i);
        }
    }
    probabilities.iter().rposition(|&p| p > 0.0)
}

/// Checks that `policy` is a row-major `64 x 4` table of probability distributions (finite,
/// non-negative, each row summing to 1 within 1e-6), naming the first offending state.
pub fn check_policy(policy: &[f64]) -> Result<()> {
    if policy.len() != NUM_STATES * NUM_ACTIONS {
        return Err(EnvError::InvalidPolicy(format!(
            "expected {NUM_STATES} x {NUM_ACTIONS} = {} probabilities, got {}",
            NUM_STATES * NUM_ACTIONS,
            policy.len()
        )));
    }
    for (s, row) in policy.chunks_exact(NUM_ACTIONS).enumerate() {
        if let Some(p) = row.iter().find(|p| !p.is_finite() || **p < 0.0) {
            return Err(EnvError::InvalidPolicy(format!("state {s} has probability {p} (row {row:?})")));
        }
        let total: f64 = row.iter().sum();
        if (total - 1.0).abs() > 1e-6 {
            return Err(EnvError::InvalidPolicy(format!(
                "state {s}: probabilities sum to {total}, not 1 (row {row:?})"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn world() -> &'static GridWorld {
        GridWorld::paper().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn fixture_has_the_papers_layout() {
        let w = world();
        assert_eq!(w.follower_rewards.len(), PAPER_FOLLOWERS);
        assert_eq!(w.cell_reward[GOAL], 1.0);
        assert_eq!(w.cell_reward[SIDE + 4], -0.5);
        assert!(w.follower_rewards.iter().all(|g| g[GOAL] == 1.0));
        let changed: Vec<usize> =
            w.follower_rewards.iter().map(|g| g.iter().zip(&w.cell_reward).filter(|(a, b)| a != b).count()).collect();
        // The paper's perturbation redraws 4 to 16 cells per grid (mean 9.3).
        assert_eq!((changed.iter().min(), changed.iter().max()), (Some(&4), Some(&16)));
        assert!((w.start.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert_eq!(w.start.iter().filter(|&&p| p > 0.0).count(), 15);
        assert_eq!(w.non_goal_rewards(), vec![-0.5, -0.02, -0.01]);
    }

    #[test]
    fn moves_stay_on_the_grid() {
        assert_eq!(step_cell(0, 0), 0);
        assert_eq!(step_cell(0, 2), 0);
        assert_eq!(step_cell(0, 1), 1);
        assert_eq!(step_cell(0, 3), SIDE);
        assert_eq!(step_cell(GOAL, 1), GOAL);
    }

    #[test]
    fn initial_policy_equals_the_papers() {
        let w = world();
        assert_eq!(w.initial_policy(0.9, 1e-5), w.stored_initial_policy);
        assert!(check_policy(&w.stored_initial_policy).is_ok());
    }

    #[test]
    fn policies_that_are_not_distributions_are_rejected() {
        let mut policy = world().stored_initial_policy.clone();
        policy[4 * 5] += 0.5;
        let err = check_policy(&policy).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("state 5") && err.contains("sum to 1.5"), "{err}");
        policy[4 * 5] = -0.5;
        assert!(check_policy(&policy).is_err());
        policy[4 * 5] = f64::NAN;
        assert!(check_policy(&policy).is_err());
        assert!(check_policy(&policy[..8]).is_err());
    }
}

//! The learner's problems on occupancy measures, as conic programs solved by Clarabel.
//!
//! Variables `x = vec(d)`, row-major (`s * 4 + a`). The flow constraints of a model `(R, P)`
//! with start `ρ` and discount `γ`, one row per non-goal state `s`,
//! `Σ_a d(s, a) - γ Σ_{s', a'} P(s | s', a') d(s', a') = ρ(s)`, are a zero cone; there is none
//! for the goal, whose occupancy comes out at 0 because it pays nothing (as in the paper).
//!
//! | problem | objective (minimised) | cones |
//! |---|---|---|
//! | RPO, L2 | `λ/2 ‖d‖² - R·d` | flow = 0, `d >= 0` |
//! | RPO, entropy | `-R·d - λ Σ t` over `(d, t)` | flow = 0, `(t_i, d_i, 1)` in the exponential cone, i.e. `t_i <= -d_i log d_i` |
//! | RGA projection | `½ ‖d‖² - target·d` | flow = 0, `d >= 0` |
//!
//! Clarabel's exponential cone is `{(x, y, z) : y e^{x/y} <= z}`; with `(x, y, z) = (t, d, 1)`
//! it reads `t <= d log(1/d)`. Constraints are written `A x + s = b`, `s` in the cone.

use clarabel::algebra::CscMatrix;
use clarabel::solver::{
    DefaultSettings, DefaultSolver, ExponentialConeT, IPSolver, NonnegativeConeT, SolverStatus, SupportedConeT,
    ZeroConeT,
};
use keel_envs::performative::{GOAL, NUM_ACTIONS, NUM_STATES, TabularModel};

use super::PerformativeError;

/// Number of occupancy variables `d(s, a)`.
pub const NUM_PAIRS: usize = NUM_STATES * NUM_ACTIONS;

/// The regulariser of repeated policy optimisation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Regulariser {
    /// `-(λ/2) ‖d‖²` (the paper's Fig. 2).
    L2,
    /// `λ Σ -d log d` (the paper's `--freg ER`), through exponential cones.
    Entropy,
}

/// What a round's learner must solve, on one model.
#[derive(Clone, Copy, Debug)]
pub struct FlowProblem<'m> {
    /// The model `(R, P)` of this round (checked by the caller).
    pub model: &'m TabularModel,
    /// Start distribution ρ.
    pub start: &'m [f64; NUM_STATES],
    /// Discount γ.
    pub gamma: f64,
}

/// `R·d - (λ/2) ‖d‖²`: the L2-regularised objective RPO maximises.
pub fn l2_objective(reward: &[f64], d: &[f64], lambda: f64) -> f64 {
    reward.iter().zip(d).map(|(r, x)| r * x - 0.5 * lambda * x * x).sum()
}

/// Column-wise builder of a sparse constraint matrix.
struct Columns {
    colptr: Vec<usize>,
    rowval: Vec<usize>,
    nzval: Vec<f64>,
}

impl Columns {
    fn new() -> Self {
        Self { colptr: vec![0], rowval: Vec::new(), nzval: Vec::new() }
    }
    fn push(&mut self, row: usize, value: f64) {
        self.rowval.push(row);
        self.nzval.push(value);
    }
    fn end_column(&mut self) {
        self.colptr.push(self.rowval.len());
    }
    fn build(self, rows: usize) -> CscMatrix<f64> {
        let cols = self.colptr.len() - 1;
        CscMatrix::new(rows, cols, self.colptr, self.rowval, self.nzval)
    }
}

impl FlowProblem<'_> {
    /// The flow-constraint entries of variable column `(s', a')`: rows `0..GOAL`.
    fn push_flow_column(&self, columns: &mut Columns, pair: usize) {
        let from = pair / NUM_ACTIONS;
        let p = &self.model.transition[pair * NUM_STATES..(pair + 1) * NUM_STATES];
        for (s, &prob) in p.iter().enumerate().take(GOAL) {
            let coefficient = f64::from(u8::from(s == from)) - self.gamma * prob;
            if coefficient != 0.0 {
                columns.push(s, coefficient);
            }
        }
    }

    /// `A`, `b` and the cones of "flow = ρ, d >= 0" over the 256 occupancy variables.
    fn polytope(&self) -> (CscMatrix<f64>, Vec<f64>, Vec<SupportedConeT<f64>>) {
        let mut columns = Columns::new();
        for pair in 0..NUM_PAIRS {
            self.push_flow_column(&mut columns, pair);
            columns.push(GOAL + pair, -1.0);
            columns.end_column();
        }
        let mut b = self.start[..GOAL].to_vec();
        b.resize(GOAL + NUM_PAIRS, 0.0);
        (columns.build(GOAL + NUM_PAIRS), b, vec![ZeroConeT(GOAL), NonnegativeConeT(NUM_PAIRS)])
    }

    /// Repeated policy optimisation: the occupancy measure maximising `R·d - (λ/2)‖d‖²` or
    /// `R·d + λ Σ -d log d` over the flow polytope.
    pub fn optimise(&self, lambda: f64, regulariser: Regulariser) -> Result<Vec<f64>, PerformativeError> {
        let reward = &self.model.reward;
        match regulariser {
            Regulariser::L2 => {
                let (a, b, cones) = self.polytope();
                let q: Vec<f64> = reward.iter().map(|r| -r).collect();
                solve(&diagonal(NUM_PAIRS, lambda), &q, &a, &b, &cones, "RPO (L2)")
            }
            Regulariser::Entropy => {
                // Variables (d, t); rows: flow, then one (t_i, d_i, 1) triple per pair.
                let mut columns = Columns::new();
                for pair in 0..NUM_PAIRS {
                    self.push_flow_column(&mut columns, pair);
                    columns.push(GOAL + 3 * pair + 1, -1.0);
                    columns.end_column();
                }
                for pair in 0..NUM_PAIRS {
                    columns.push(GOAL + 3 * pair, -1.0);
                    columns.end_column();
                }
                let a = columns.build(GOAL + 3 * NUM_PAIRS);
                let mut b = self.start[..GOAL].to_vec();
                for _ in 0..NUM_PAIRS {
                    b.extend_from_slice(&[0.0, 0.0, 1.0]);
                }
                let mut cones = vec![ZeroConeT(GOAL)];
                cones.extend((0..NUM_PAIRS).map(|_| ExponentialConeT()));
                let mut q: Vec<f64> = reward.iter().map(|r| -r).collect();
                q.resize(2 * NUM_PAIRS, -lambda);
                let mut x = solve(&diagonal(2 * NUM_PAIRS, 0.0), &q, &a, &b, &cones, "RPO (entropy)")?;
                x.truncate(NUM_PAIRS);
                Ok(x)
            }
        }
    }

    /// Repeated gradient ascent's step: the Euclidean projection of `target` onto the flow
    /// polytope.
    pub fn project(&self, target: &[f64]) -> Result<Vec<f64>, PerformativeError> {
        let (a, b, cones) = self.polytope();
        let q: Vec<f64> = target.iter().map(|t| -t).collect();
        solve(&diagonal(NUM_PAIRS, 1.0), &q, &a, &b, &cones, "RGA projection")
    }
}

/// `value * I` as an upper-triangular CSC matrix (empty when `value` is 0: an LP).
fn diagonal(n: usize, value: f64) -> CscMatrix<f64> {
    if value == 0.0 {
        return CscMatrix::new(n, n, vec![0; n + 1], Vec::new(), Vec::new());
    }
    CscMatrix::new(n, n, (0..=n).collect(), (0..n).collect(), vec![value; n])
}

fn solve(
    p: &CscMatrix<f64>,
    q: &[f64],
    a: &CscMatrix<f64>,
    b: &[f64],
    cones: &[SupportedConeT<f64>],
    problem: &'static str,
) -> Result<Vec<f64>, PerformativeError> {
    let settings = DefaultSettings { verbose: false, ..DefaultSettings::default() };
    let mut solver = DefaultSolver::new(p, q, a, b, cones, settings).map_err(|e| PerformativeError::Solve {
        problem,
        status: "rejected".into(),
        detail: e.to_string(),
    })?;
    solver.solve();
    let status = solver.solution.status;
    match status {
        SolverStatus::Solved | SolverStatus::AlmostSolved => Ok(solver.solution.x.clone()),
        _ => Err(PerformativeError::Solve { problem, status: format!("{status:?}"), detail: explain(status).into() }),
    }
}

fn explain(status: SolverStatus) -> &'static str {
    match status {
        SolverStatus::PrimalInfeasible | SolverStatus::AlmostPrimalInfeasible => {
            "no non-negative occupancy measure satisfies the flow constraints; with γ < 1 and \
             transition rows that are distributions this cannot happen"
        }
        SolverStatus::DualInfeasible | SolverStatus::AlmostDualInfeasible => {
            "the objective is unbounded over the flow constraints"
        }
        SolverStatus::MaxIterations | SolverStatus::MaxTime | SolverStatus::InsufficientProgress => {
            "the interior-point method did not converge"
        }
        _ => "numerical failure",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_envs::Registered;
    use keel_envs::performative::{GridWorld, PerformativeGrid, PerformativeGridConfig};

    fn paper_env() -> PerformativeGrid {
        PerformativeGrid::new(PerformativeGridConfig::default()).unwrap_or_else(|e| panic!("{e}"))
    }

    fn flow_residual(problem: &FlowProblem<'_>, d: &[f64]) -> f64 {
        (0..GOAL)
            .map(|s| {
                let out: f64 = d[s * 4..s * 4 + 4].iter().sum();
                let inflow: f64 =
                    (0..NUM_PAIRS).map(|k| d[k] * problem.model.transition[k * NUM_STATES + s]).sum::<f64>();
                (out - problem.start[s] - problem.gamma * inflow).abs()
            })
            .fold(0.0, f64::max)
    }

    #[test]
    fn rpo_solutions_are_feasible_and_optimal() {
        let env = paper_env();
        let problem = FlowProblem { model: env.model(), start: &env.world().start, gamma: 0.9 };
        let d = problem.optimise(1.0, Regulariser::L2).unwrap_or_else(|e| panic!("{e}"));
        assert!(flow_residual(&problem, &d) < 1e-7);
        assert!(d.iter().all(|&x| x > -1e-9));
        // Better than the deployed policy's own occupancy, which is feasible too.
        let own = env.occupancy(env.deployed_policy()).unwrap_or_else(|e| panic!("{e}"));
        let reward = &env.model().reward;
        assert!(l2_objective(reward, &d, 1.0) > l2_objective(reward, &own, 1.0));
        // RGA with η λ = 1 projects R itself: the same point as RPO with λ = 1.
        let projected = problem.project(reward).unwrap_or_else(|e| panic!("{e}"));
        let gap = d.iter().zip(&projected).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(gap < 1e-6, "{gap}");
    }

    #[test]
    fn entropy_regularised_rpo_spreads_the_policy() {
        let env = paper_env();
        let problem = FlowProblem { model: env.model(), start: &env.world().start, gamma: 0.9 };
        let d = problem.optimise(0.5, Regulariser::Entropy).unwrap_or_else(|e| panic!("{e}"));
        assert!(flow_residual(&problem, &d) < 1e-6);
        // Entropy keeps every pair of a visited state positive.
        assert!(d[..GOAL * 4].iter().all(|&x| x > 0.0));
    }

    #[test]
    fn an_infeasible_program_is_a_named_error() {
        // γ = 1 with every move a self-loop: mass that starts in the top row can never leave.
        let world = GridWorld::paper().unwrap_or_else(|e| panic!("{e}"));
        let mut transition = vec![0.0; NUM_PAIRS * NUM_STATES];
        for pair in 0..NUM_PAIRS {
            transition[pair * NUM_STATES + pair / NUM_ACTIONS] = 1.0;
        }
        let model = TabularModel { reward: vec![0.0; NUM_PAIRS], transition };
        let problem = FlowProblem { model: &model, start: &world.start, gamma: 1.0 };
        let err = problem.optimise(1.0, Regulariser::L2).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("Infeasible") && err.contains("flow constraints"), "{err}");
    }
}

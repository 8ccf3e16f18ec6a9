//! Repeated retraining: deploy, let the environment respond, retrain on what it became, repeat.
//!
//! One round `t`:
//! 1. the learner solves its problem on the current model `(R_t, P_t)` (exact, or estimated
//!    from `m` fresh trajectories): RPO's regularised optimum, or RGA's projected gradient step
//!    `d_{t+1} = Proj((1 - ηλ) d_t + η R_t)`;
//! 2. records `‖d_{t+1} - d_t‖₂ / ‖d_t‖₂` and, for RGA, the suboptimality gap
//!    `max(0, (OPT_t - f_t(d_{t+1})) / |OPT_t|)` with `f_t(d) = R_t·d - (λ/2)‖d‖²` and `OPT_t`
//!    RPO's optimum on the same model;
//! 3. turns `d_{t+1}` into a policy and deploys it; A2 responds, giving `(R_{t+1}, P_{t+1})`.
//!
//! `d_0` is the occupancy measure of the paper's initial policy in the first model.
//!
//! **Small occupancies.** `π(a|s) = d(s,a) / Σ_a d(s,a)` (negative solver noise clipped to 0),
//! and the uniform policy where that total is at most [`RepeatedConfig::min_state_occupancy`]:
//! by default 0, the paper's rule ("uniform only if all four entries are 0"). The paper's solver
//! (SCS) returns exact zeros; Clarabel, an interior-point method, returns about 1e-11 per entry
//! (4e-10 for the λ = 0 linear program) where the optimum is 0. A threshold cannot tell that noise
//! from real mass: with β = 200 genuine state occupancies go down to 5e-11, and a threshold of
//! 1e-9 turns that run's convergence (1.7e-10 at round 49) into a 2-cycle at 2.5e-2. With 0 (or
//! 1e-11) every exact configuration of the paper's Fig. 2 follows the validated reference port.

use keel_envs::performative::{NUM_ACTIONS, PerformativeGrid, PerformativeGridConfig, TabularModel, check_policy};
use keel_envs::{Env, ObsMut, Registered, ResetOptions};
use rand::SeedableRng;
use rand_pcg::Pcg64;
use serde::{Deserialize, Serialize};

use super::PerformativeError;
use super::estimate::sample;
use super::occupancy_program::{FlowProblem, Regulariser, l2_objective};

/// Which learner retrains each round.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "name")]
pub enum Method {
    /// Repeated policy optimisation: the regularised optimum of each round's model.
    Rpo,
    /// Repeated gradient ascent: one projected gradient step of size `eta` per round.
    Rga {
        /// Step size η.
        eta: f64,
    },
}

/// Everything that defines one run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RepeatedConfig {
    /// The learner (default RPO).
    pub method: Method,
    /// Regularisation strength λ >= 0 (default 1).
    pub lambda: f64,
    /// Regulariser of RPO (default L2; RGA is defined for L2 only).
    pub regulariser: Regulariser,
    /// Rounds of deploy-and-retrain (default 1000, the paper's).
    pub rounds: usize,
    /// Trajectories per round for the finite-sample versions; `None`: the exact model.
    pub samples: Option<usize>,
    /// Step cap of a sampled trajectory (default 100, the paper's).
    pub horizon: usize,
    /// Seed of the sampled trajectories (environment and learner streams).
    pub seed: u64,
    /// Whether RGA records the suboptimality gap (one more solve per round; default true).
    pub record_gap: bool,
    /// Total occupancy at or below which a state's policy is uniform (default 0: see the
    /// module docs).
    pub min_state_occupancy: f64,
    /// The environment: β, γ, followers, tolerance.
    pub env: PerformativeGridConfig,
}

impl Default for RepeatedConfig {
    fn default() -> Self {
        Self {
            method: Method::Rpo,
            lambda: 1.0,
            regulariser: Regulariser::L2,
            rounds: 1000,
            samples: None,
            horizon: 100,
            seed: 0,
            record_gap: true,
            min_state_occupancy: 0.0,
            env: PerformativeGridConfig::default(),
        }
    }
}

fn invalid(field: &'static str, message: String) -> PerformativeError {
    PerformativeError::InvalidSetting { field, message }
}

impl RepeatedConfig {
    /// Checks every setting, naming the first bad one.
    pub fn validate(&self) -> Result<(), PerformativeError> {
        if !(self.lambda.is_finite() && self.lambda >= 0.0) {
            return Err(invalid("lambda", format!("must be finite and >= 0, got {}", self.lambda)));
        }
        if let Method::Rga { eta } = self.method {
            if !(eta.is_finite() && eta > 0.0) {
                return Err(invalid("eta", format!("must be finite and > 0, got {eta}")));
            }
            if self.regulariser != Regulariser::L2 {
                return Err(invalid("regulariser", "RGA is defined for the L2 regulariser only".into()));
            }
        }
        if self.rounds == 0 {
            return Err(invalid("rounds", "must be at least 1".into()));
        }
        if self.samples == Some(0) {
            return Err(invalid("samples", "must be at least 1 trajectory per round".into()));
        }
        if self.horizon == 0 {
            return Err(invalid("horizon", "must be at least 1 step".into()));
        }
        if !(self.min_state_occupancy.is_finite() && self.min_state_occupancy >= 0.0) {
            return Err(invalid(
                "min_state_occupancy",
                format!("must be finite and >= 0, got {}", self.min_state_occupancy),
            ));
        }
        keel_envs::config::checked(self.env.clone(), "environment").map(|_| ())?;
        Ok(())
    }
}

/// What one run records, round by round.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// `‖d_{t+1} - d_t‖₂ / ‖d_t‖₂` of each round.
    pub distance: Vec<f64>,
    /// RGA's suboptimality gap of each round (empty when not recorded).
    pub gap: Vec<f64>,
    /// The last occupancy measure, row-major `64 x 4`.
    pub final_occupancy: Vec<f64>,
}

/// The policy of an occupancy measure (see the module docs for the small-occupancy rule).
pub fn policy_from_occupancy(d: &[f64], min_state_occupancy: f64) -> Vec<f64> {
    let mut policy = vec![1.0 / NUM_ACTIONS as f64; d.len()];
    for (row, out) in d.chunks_exact(NUM_ACTIONS).zip(policy.chunks_exact_mut(NUM_ACTIONS)) {
        // Solver noise may leave a slightly negative entry; a probability cannot be.
        let clean = row.iter().map(|x| x.max(0.0));
        let total: f64 = clean.clone().sum();
        if total > min_state_occupancy {
            for (p, x) in out.iter_mut().zip(clean) {
                *p = x / total;
            }
        }
    }
    policy
}

fn norm(x: impl Iterator<Item = f64>) -> f64 {
    x.map(|v| v * v).sum::<f64>().sqrt()
}

/// The learner's state across rounds: the env (with its deployment) and the sampling streams.
struct Learner {
    env: PerformativeGrid,
    rng: Pcg64,
}

impl Learner {
    /// This round's model: exact, or estimated from fresh trajectories.
    fn model(&mut self, config: &RepeatedConfig, policy: &[f64]) -> Result<TabularModel, PerformativeError> {
        match config.samples {
            None => Ok(self.env.model().clone()),
            Some(m) => Ok(sample(&mut self.env, policy, m, config.horizon, &mut self.rng)?.model(self.env.world())),
        }
    }
}

/// Runs `config` (validated first); `on_round` is called after each round with its index.
pub fn run(config: &RepeatedConfig, on_round: &mut dyn FnMut(usize)) -> Result<RunRecord, PerformativeError> {
    config.validate()?;
    let env = PerformativeGrid::new(config.env.clone())?;
    // Distinct streams for the env (A2, starts) and the learner's action draws.
    let mut learner = Learner { env, rng: Pcg64::seed_from_u64(config.seed ^ 0x5EED_1EA2_4E12_0000) };
    learner.env.reset(Some(config.seed), &ResetOptions::default(), ObsMut::F32(&mut [0.0]))?;
    let world = learner.env.world();
    let (gamma, tolerance) = (config.env.gamma, config.env.tolerance);

    let mut policy = learner.env.deployed_policy().to_vec();
    let mut model = learner.model(config, &policy)?;
    let mut d = model.occupancy(&policy, &world.start, gamma, tolerance);
    let mut record = RunRecord::default();
    for round in 0..config.rounds {
        let at_round = |e: PerformativeError| PerformativeError::AtRound { round, cause: Box::new(e) };
        let problem = FlowProblem { model: &model, start: &world.start, gamma };
        let next = match config.method {
            Method::Rpo => problem.optimise(config.lambda, config.regulariser),
            Method::Rga { eta } => {
                let target: Vec<f64> =
                    d.iter().zip(&model.reward).map(|(x, r)| (1.0 - eta * config.lambda) * x + eta * r).collect();
                problem.project(&target)
            }
        }
        .map_err(at_round)?;
        let scale = norm(d.iter().copied());
        record.distance.push(norm(next.iter().zip(&d).map(|(a, b)| a - b)) / scale);
        if matches!(config.method, Method::Rga { .. }) && config.record_gap {
            let optimum = problem.optimise(config.lambda, Regulariser::L2).map_err(at_round)?;
            let best = l2_objective(&model.reward, &optimum, config.lambda);
            let reached = l2_objective(&model.reward, &next, config.lambda);
            record.gap.push(((best - reached) / best.abs()).max(0.0));
        }
        d = next;
        policy = policy_from_occupancy(&d, config.min_state_occupancy);
        check_policy(&policy).map_err(|e| at_round(e.into()))?;
        learner.env.deploy(&policy).map_err(|e| at_round(e.into()))?;
        model = learner.model(config, &policy).map_err(at_round)?;
        on_round(round);
    }
    record.final_occupancy = d;
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_occupancies_give_uniform_rows() {
        let d = [0.0, 0.0, 0.0, 0.0, 1e-12, 3e-12, 0.0, 0.0, 0.2, -1e-13, 0.6, 0.0];
        let policy = policy_from_occupancy(&d, 1e-9);
        assert_eq!(&policy[..8], &[0.25; 8]);
        assert!((policy[8] - 0.25).abs() < 1e-15 && policy[9] == 0.0 && (policy[10] - 0.75).abs() < 1e-15);
    }

    #[test]
    fn bad_settings_are_named() {
        let err = |config: RepeatedConfig| config.validate().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err(RepeatedConfig { lambda: -1.0, ..Default::default() }).contains("lambda"));
        assert!(err(RepeatedConfig { method: Method::Rga { eta: 0.0 }, ..Default::default() }).contains("eta"));
        let negative_beta = PerformativeGridConfig { beta: -0.5, ..Default::default() };
        assert!(err(RepeatedConfig { env: negative_beta, ..Default::default() }).contains("beta"));
        assert!(err(RepeatedConfig { samples: Some(0), ..Default::default() }).contains("samples"));
        let rga_entropy = RepeatedConfig {
            method: Method::Rga { eta: 1.0 },
            regulariser: Regulariser::Entropy,
            ..Default::default()
        };
        assert!(err(rga_entropy).contains("L2"));
    }
}

//! # Performative RL: repeated retraining on occupancy measures
//!
//! The learners of Mandal, Triantafyllou & Radanovic, "Performative Reinforcement Learning"
//! (ICML 2023), on the env `keel/PerformativeGrid-v0`
//! ([`keel_envs::performative::PerformativeGrid`]):
//!
//! - **RPO**, repeated policy optimisation: each round, the occupancy measure that maximises
//!   `R·d - (λ/2)‖d‖²` (or, as an option, `R·d + λ Σ -d log d`) in the model the last
//!   deployment induced;
//! - **RGA**, repeated gradient ascent: one projected gradient step of size η per round;
//! - their **finite-sample** versions: the model is estimated each round from `m` trajectories
//!   played in the deployed env.
//!
//! [`repeated::run`] runs one configuration and records, per round, `‖d_{t+1} - d_t‖ / ‖d_t‖`
//! and RGA's suboptimality gap; [`occupancy_program`] holds the conic programs (solved by
//! Clarabel) and [`estimate`] the sampling and plug-in model.
//!
//! **Why here.** These are learners: they choose and deploy policies. They live in
//! `keel-agents` beside the other algorithms, above `keel-envs` in the dependency order, so the
//! env crate stays free of a solver; they need no tensors, so none of this touches libtorch.

pub mod estimate;
pub mod occupancy_program;
pub mod repeated;

use keel_envs::EnvError;
use thiserror::Error;

pub use occupancy_program::{FlowProblem, Regulariser};
pub use repeated::{Method, RepeatedConfig, RunRecord, policy_from_occupancy, run};

/// What can go wrong in a performative-RL run.
#[derive(Debug, Error)]
pub enum PerformativeError {
    /// The environment rejected a config, policy or model.
    #[error(transparent)]
    Env(#[from] EnvError),
    /// A setting of the run out of its range.
    #[error("invalid `{field}`: {message}")]
    InvalidSetting {
        /// The setting's name.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// The convex solver did not return a solution.
    #[error("{problem}: the solver stopped with status {status}: {detail}")]
    Solve {
        /// Which program.
        problem: &'static str,
        /// Clarabel's status.
        status: String,
        /// What the status means here.
        detail: String,
    },
    /// An error in a given round.
    #[error("round {round}: {cause}")]
    AtRound {
        /// The round (from 0).
        round: usize,
        /// What went wrong (in the message, so not also the error's source).
        cause: Box<PerformativeError>,
    },
}

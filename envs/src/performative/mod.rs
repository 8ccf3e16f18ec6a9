//! # PerformativeGrid
//!
//! ## Description
//! The grid-world of performative reinforcement learning (Mandal, Triantafyllou & Radanovic,
//! "Performative Reinforcement Learning", ICML 2023, arXiv 2207.00046): the policy a learner
//! deploys changes the environment it is trained in. A learner A1 and a responding population A2
//! steer one shared actor on an 8x8 grid. A2 is 50 followers, each with its own perturbed copy of
//! the grid's rewards and a cost of 0.05 per intervention; against the deployed learner policy
//! π1 each follower computes its best response, their Q-values are averaged, and A2 plays
//! `π2(· | s) = softmax(β · Q̄(s, ·))` over "force left / right / up / down" and "let A1 move".
//! Deploying a new π1 ([`PerformativeGrid::deploy`], or the `learner_policy` parameter) makes A2
//! respond anew, which changes both A1's rewards and its transitions.
//!
//! Grid (reward paid on entering a cell; `.` -0.01, `F` -0.02, `H` -0.5, `G` +1):
//! ```text
//! . . . . . . . .
//! . . F . H . . .
//! . . . H . . F .
//! . F . . . H . F
//! . . . H . . F .
//! . H H . F . H .
//! . H . . H . H .
//! . . . H . F . G
//! ```
//!
//! ## Observation space
//! `Discrete(64)`: the cell `8 * row + col`, row 0 at the top.
//!
//! ## Action space
//! `Discrete(4)`: 0 left, 1 right, 2 up, 3 down. A move off the grid stays in place. At each step
//! A2 draws its action from `π2(· | s)`; if it intervenes its move is taken instead of A1's.
//!
//! ## Reward
//! The true grid's reward of the cell entered (staying in place pays the own cell again); +1 for
//! entering the goal. A1 never pays the intervention cost.
//!
//! ## Starting state
//! Uniform over the 15 cells of the top row and the left column (ρ), or an exact cell through the
//! `state` reset option (`[cell]`, any cell but the goal).
//!
//! ## Episode end
//! Terminated on entering the goal (cell 63; stepping on from there gives reward 0 and stays).
//! Truncated after 100 steps (registry `TimeLimit`, the paper's trajectory cap).
//!
//! ## Config and parameters
//! [`PerformativeGridConfig`]: β, γ, intervention cost, number of followers, value-iteration
//! tolerance. Parameter (persistent, [`crate::Env::set_params`]): `learner_policy`, the deployed
//! π1 as 64 rows of 4 probabilities (`null`: the paper's initial ε-greedy policy). It is not
//! accepted as a one-reset option, since a deployment changes every later episode.
//!
//! ## Exact model
//! [`PerformativeGrid::model`] is the reward `R(s, a)` and transition `P(s' | s, a)` that the
//! current response induces ([`TabularModel`]), and [`TabularModel::occupancy`] the discounted
//! occupancy measure of a policy in it: what the model-based repeated-retraining algorithms of
//! `keel_agents::performative` optimise over.
//!
//! ## Version history
//! - v0: the ICML 2023 code's grid-world (50 followers drawn with NumPy seeds 0..49, ε = 0.3).
//!
//! ```
//! use keel_envs::performative::{PerformativeGrid, PerformativeGridConfig};
//! use keel_envs::{Action, Env, ObsMut, Registered, ResetOptions};
//!
//! let mut env = PerformativeGrid::new(PerformativeGridConfig::default())?;
//! let mut obs = [0.0f32];
//! env.reset(Some(0), &ResetOptions::default(), ObsMut::F32(&mut obs))?;
//! env.step(Action::Int(&[3]), ObsMut::F32(&mut obs))?;
//! // Deploy "always go right": A2 responds and the model changes.
//! let right: Vec<f64> = (0..64).flat_map(|_| [0.0, 1.0, 0.0, 0.0]).collect();
//! let before = env.model().clone();
//! env.deploy(&right)?;
//! assert_ne!(env.model(), &before);
//! # Ok::<(), keel_envs::EnvError>(())
//! ```

pub mod grid;
pub mod model;
pub mod response;
pub mod world;

pub use grid::{PerformativeGrid, PerformativeGridConfig, PerformativeGridParams};
pub use model::TabularModel;
pub use response::{Population, Response};
pub use world::{GOAL, GridWorld, NUM_ACTIONS, NUM_RESPONSES, NUM_STATES, check_policy, sample_index};

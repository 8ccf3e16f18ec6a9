//! # keel-agents
//!
//! Agents that train on libtorch tensors through [`tch`] (CPU or CUDA):
//!
//! - [`ppo`]: PPO and D-PPO, the trainer behind `keel train` (checkpoints, exact resume), with its
//!   shared pieces, each tested on its own: [`policy`] (networks, distributions), [`gae`],
//!   [`normalize`] (running statistics), [`adam`] (an optimiser whose state can be saved),
//!   [`tensorboard`] (event files);
//! - [`performative`]: the repeated-retraining learners of performative RL (convex programs on
//!   occupancy measures, no tensors);
//! - [`threads`]: the libtorch thread policy.
//!
//! TD learning with target networks and imitation through differentiable physics come with their
//! own issues. The toolchain is tch 0.24.0 against torch 2.11.0, rpath-linked.
//!
//! ## Threads
//!
//! libtorch keeps its own OpenMP pool. Left to itself it starts one thread per core and fights
//! the environment worker pool for the same cores: on the 2-core development machine 200 Adam
//! steps of a small MLP took 46 s unmanaged and 1.2 s with one intra-op thread. Every entry point
//! that uses libtorch therefore calls [`threads::configure`] first, which sets the intra-op and
//! inter-op counts explicitly (default 1, overridable with `KEEL_TORCH_THREADS`).

pub mod adam;
pub mod error;
pub mod gae;
pub mod normalize;
pub mod performative;
pub mod policy;
pub mod ppo;
pub mod tensorboard;
pub mod threads;

pub use error::{AgentError, Result};
pub use ppo::{PpoConfig, Trainer};

pub use tch;

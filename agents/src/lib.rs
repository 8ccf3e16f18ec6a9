//! # keel-agents
//!
//! Agents that train on libtorch tensors through [`tch`] (CPU or CUDA):
//!
//! - one file per algorithm: [`ppo`] (PPO and D-PPO), [`dqn`] (DQN: double Q, Polyak or
//!   periodic targets), [`ild`] (imitation via differentiable physics, with BC and analytic
//!   policy gradients on the same rollouts); each implements [`algorithm::Algorithm`]
//!   and is registered in [`registry`], which `keel train --algo` chooses from; [`run::Run`]
//!   is a run of any of them, its algorithm type erased;
//! - the trainer core every algorithm plugs into, one module per concern:
//!   - [`trainer`]: [`trainer::Trainer`], which builds the envs and the reset sampler, seeds,
//!     runs iterations, checks for divergence, deploys, checkpoints, resumes exactly, evaluates;
//!   - [`config`]: [`config::RunConfig`], the settings every algorithm's config shares
//!     (flattened into each), and config resolution (TOML files, `key=value` overrides, the
//!     resolved `config.toml`);
//!   - [`collect`]: the training envs as an algorithm sees them (stepping with network outputs,
//!     episodes, per-step extras); [`encode`]: observation upload in the space's dtype,
//!     normalisation and one-hot input, action decoding; [`rollout`]: on-policy storage;
//!   - [`checkpoint`]: named tensors (parameters, optimiser state by optimiser name) and JSON
//!     state, written atomically, non-finite values refused; [`deploy`]: `deploy_every`;
//!     [`eval`]: evaluation episodes with a step cap;
//!   - [`run_dir`]: the run folder (`config.toml`, `metrics.csv`, TensorBoard, `summary.json`);
//!     [`training`]: the training loop of `keel train` (stop, divergence, checkpoint cadence);
//! - building blocks, each tested on its own: [`policy`] (networks, distributions), [`history`]
//!   (the 1-D CNN history encoder and its pretraining on clips), [`gae`],
//!   [`normalize`] (running statistics), [`adam`] (an optimiser whose state can be saved),
//!   [`tensorboard`] (event files);
//! - [`performative`]: the repeated-retraining learners of performative RL (convex programs on
//!   occupancy measures, no tensors);
//! - [`td`]: linear TD(0) and PFPE (TD with a target period k) with their spectral analysis,
//!   on Baird's counterexample (no tensors); [`td_net`]: the same with a neural value network;
//! - [`threads`]: the libtorch thread policy.
//!
//! Reset samplers (curricula) come from keel-curricula, through a config's `[sampler]` table or
//! [`trainer::Trainer::with_sampler`]. Expert demonstrations of any run are recorded by
//! [`recorder`] (`keel demo`) in the file format of [`demo`]. The toolchain is tch 0.24.0 against torch 2.11.0, rpath-linked.
//!
//! ## Threads
//!
//! libtorch keeps its own OpenMP pool. Left to itself it starts one thread per core and fights
//! the environment worker pool for the same cores: on the 2-core development machine 200 Adam
//! steps of a small MLP took 46 s unmanaged and 1.2 s with one intra-op thread. Every entry point
//! that uses libtorch therefore calls [`threads::configure`] first, which sets the intra-op and
//! inter-op counts explicitly (default 1, overridable with `KEEL_TORCH_THREADS`).

pub mod adam;
pub mod algorithm;
pub mod checkpoint;
pub mod collect;
pub mod config;
pub mod demo;
pub mod deploy;
pub mod dqn;
pub mod encode;
pub mod error;
pub mod eval;
pub mod gae;
pub mod history;
pub mod ild;
pub mod normalize;
pub mod performative;
pub mod policy;
pub mod ppo;
pub mod recorder;
pub mod registry;
pub mod rollout;
pub mod run;
pub mod run_dir;
pub mod td;
pub mod td_net;
pub mod tensorboard;
pub mod threads;
pub mod trainer;
pub mod training;

pub use config::RunConfig;
pub use dqn::{DqnConfig, DqnTrainer};
pub use error::{AgentError, Result};
pub use ppo::{PpoConfig, PpoTrainer};

pub use tch;

//! # keel-envs
//!
//! Keel's environments and the machinery around them, with Gymnasium 1.x semantics:
//!
//! - [`space`]: `Box`, `Discrete`, `MultiDiscrete`, with `contains`, seeded `sample` and action
//!   checks;
//! - [`env`]: the single-env [`Env`] trait, [`EnvSpec`], [`ResetOptions`] (an explicit initial
//!   `state` and per-reset parameters);
//! - [`config`]: typed configs built from defaults plus key/value overrides, validated once;
//! - [`registry`]: `make(id, overrides)` over every env under a versioned id;
//! - [`vector`]: the [`VecEnv`] engine (serial or worker pool, three autoreset modes, episode
//!   statistics, preallocated batch buffers);
//! - [`wrappers`]: `TimeLimit`, `ClipAction`, `RescaleAction`;
//! - [`testing`]: the conformance checks every registered env passes;
//! - env families: [`classic`] control, [`performative`] RL's responsive grid-world, [`pde`] (the
//!   ten controlgym PDEs), [`linear`] (the industrial linear systems);
//! - [`control`]: zero / LQR / LQG baselines for the envs with a linear model;
//! - [`compat`]: the default-vs-controlgym conventions the PDE and linear envs share.
//!
//! This crate needs neither libtorch nor Python.
//!
//! ```
//! use keel_envs::{Action, ResetOptions, VecEnv, VecOptions, make};
//! use serde_json::Map;
//!
//! let mut env = make("keel/CartPole-v1", &Map::new())?;
//! let mut obs = vec![0.0f32; env.spec().obs_len()];
//! env.reset(Some(42), &ResetOptions::default(), &mut obs)?;
//! let step = env.step(Action::Int(&[1]), &mut obs)?;
//! assert_eq!(step.reward, 1.0);
//!
//! let mut vec = VecEnv::make("keel/Pendulum-v1", &Map::new(), 8, VecOptions::default())?;
//! vec.reset(Some(0))?;
//! vec.step(Action::Float(&[0.5; 8]))?;
//! assert_eq!(vec.batch().obs.len(), 8 * 3);
//! # Ok::<(), keel_envs::EnvError>(())
//! ```

pub mod classic;
pub mod compat;
pub mod config;
pub mod control;
pub mod env;
pub mod error;
pub mod linear;
pub mod pde;
pub mod performative;
pub mod registry;
pub mod rng;
mod snapshot;
pub mod space;
pub mod testing;
pub mod vector;
pub mod wrappers;

/// The README's Rust examples, compiled and run as doctests.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

pub use env::{Env, EnvSpec, ResetOptions, Step};
pub use error::{EnvError, Result};
pub use registry::{REGISTRY, make};
pub use space::{Action, OwnedAction, Space};
pub use vector::{AutoresetMode, Batch, Seeds, VecEnv, VecOptions};

//! # keel-envs
//!
//! Keel's environments and the machinery around them, with Gymnasium 1.x semantics:
//!
//! - [`space`]: `Box`, `Discrete`, `MultiDiscrete`, with `contains`, seeded `sample` and action
//!   checks in the space's dtype;
//! - [`obs`]: observation buffers in the space's element type (`f32`, `f64`, `u8`);
//! - [`env`]: the single-env [`Env`] trait, [`EnvSpec`] (spaces, per-step extras), [`ResetOptions`]
//!   (an explicit initial `state` and per-reset parameters), and [`Registered`];
//! - [`config`]: typed configs built from defaults plus key/value overrides, validated once;
//! - [`registry`]: `make(id, overrides)` over every env under a versioned id; open to families in
//!   other crates ([`registry::register`]);
//! - [`vector`]: the [`VecEnv`] engine (serial or worker pool, three autoreset modes, per-env
//!   reset options, episode statistics, one preallocated batch written in place);
//! - [`sampler`]: the [`ResetSampler`] hook through which curricula choose each reset;
//! - [`wrappers`]: `TimeLimit`, `ClipAction`, `RescaleAction`;
//! - [`testing`]: the conformance checks every registered env passes;
//! - env families, one folder each: [`classic`] control, [`performative`] RL's responsive
//!   grid-world, [`controlgym`] (the ten PDEs in [`controlgym::pde`], the industrial linear
//!   systems in [`controlgym::linear`], and the conventions they share);
//! - `humanoid` (cargo feature `humanoid`): the DeepMimic humanoid tracking motion clips on
//!   rapier3d (`keel/HumanoidTrack-v1`), registered by `humanoid::register()`;
//! - `diff` (cargo feature `diff`): the differentiable-physics family (`keel/DiffPendulum-v0`,
//!   ...), the f64 path of keel-physics' smooth systems, registered by `diff::register()`;
//! - [`atari`] (cargo feature `atari`, GPL-2.0 ALE): `keel/<Game>-v5` for every Atari 2600 game
//!   of ALE 0.12.1, with Gymnasium's, CleanRL's and EnvPool's preprocessing as presets;
//! - [`baird`]: Baird's star counterexample, the off-policy TD test (`keel/Baird-v0`);
//! - [`baselines`]: zero / LQR / LQG controllers for the envs with a linear model.
//!
//! This crate needs neither libtorch nor Python.
//!
//! ```
//! use keel_envs::{Action, ResetOptions, VecEnv, VecOptions, make};
//! use serde_json::Map;
//!
//! let mut env = make("keel/CartPole-v1", &Map::new())?;
//! let mut obs = env.spec().obs_buffer(1);
//! env.reset(Some(42), &ResetOptions::default(), obs.as_mut())?;
//! let step = env.step(Action::Int(&[1]), obs.as_mut())?;
//! assert_eq!(step.reward, 1.0);
//!
//! let mut vec = VecEnv::make("keel/Pendulum-v1", &Map::new(), 8, VecOptions::default())?;
//! vec.reset(Some(0))?;
//! vec.step(Action::Float(&[0.5; 8]))?;
//! assert_eq!(vec.batch().obs.len(), 8 * 3);
//! # Ok::<(), keel_envs::EnvError>(())
//! ```

#[cfg(feature = "atari")]
pub mod atari;
pub mod baird;
pub mod baselines;
pub mod classic;
pub mod config;
pub mod controlgym;
#[cfg(feature = "diff")]
pub mod diff;
pub mod env;
pub mod error;
#[cfg(feature = "humanoid")]
pub mod humanoid;
pub mod memory;
pub mod obs;
pub mod performative;
pub mod registry;
pub mod rng;
pub mod sampler;
mod snapshot;
pub mod space;
pub mod testing;
pub mod vector;
pub mod wrappers;

/// The Rust guide's examples (docs/rust.md), compiled and run as doctests.
#[doc = include_str!("../../docs/rust.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

pub use env::{Env, EnvSpec, EpisodeCount, Frame, Registered, ResetOptions, Step};
pub use error::{EnvError, Result};
pub use obs::{ObsBuf, ObsMut, ObsRef};
pub use registry::make;
pub use sampler::{EpisodeEnd, ResetSampler};
pub use space::{Action, OwnedAction, Space};
pub use vector::{AutoresetMode, Batch, Seeds, VecEnv, VecOptions};

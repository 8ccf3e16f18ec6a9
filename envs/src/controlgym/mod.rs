//! # controlgym: safety-critical control of PDEs and industrial linear systems
//!
//! The control suite of controlgym 1.0.0 (Zhang et al., *Controlgym: Large-Scale Control
//! Environments for Benchmarking Reinforcement Learning Algorithms*, arXiv:2311.18736) as one
//! family: [`pde`] holds the ten PDE envs, [`linear`] `keel/Linear-v0` (toy and the 36 COMPleib
//! systems), and [`compat`] the choice between Keel's Gymnasium conventions and controlgym's own,
//! with the pieces of `reset` / `step` that depend on it. Spaces are float64, as controlgym's, and
//! every env reports its cost terms and state norm as per-step extras. LQR / LQG baselines for
//! the envs with a linear model are in [`crate::baselines`].

pub mod compat;
pub mod linear;
pub mod pde;

pub use compat::{Compat, Preset};

//! # keel-physics
//!
//! Physics for Keel's humanoid environments: the DeepMimic humanoid as an articulated body on
//! `rapier3d` (a reduced-coordinate multibody with implicit PD actuation), and its motion clips
//! with forward kinematics. It sits at the bottom of the dependency chain (`physics <- envs`),
//! so it depends on no other Keel crate.
//!
//! - [`data`]: where the model and clips are (fetched by `scripts/setup.sh`, never committed).
//! - [`model`]: the humanoid as data (bodies, joints, gains), its generalised coordinates,
//!   forward kinematics and mirroring.
//! - [`humanoid`]: the simulated humanoid: states in and out, PD targets, steps, contacts,
//!   snapshots.
//! - [`diff`]: smooth planar systems (pendulum ... hopper) on f64 and, with the feature `diff`,
//!   on batched libtorch tensors for differentiable rollouts.
//! - [`motion`]: DeepMimic clips: loading, interpolation, looping, finite-difference velocities,
//!   mirroring.
//! - [`perturb`]: noise on a start state (SkillMimic-V2's perturbed starts), uniform or as the
//!   official code draws it.
//! - [`render`]: a software viewer: the humanoid's shapes, a ghost of the reference, the ground.
//!
//! ```no_run
//! use std::sync::Arc;
//! use keel_physics::{ClipLibrary, DataDir, Humanoid, HumanoidConfig, HumanoidModel};
//!
//! # fn main() -> keel_physics::Result<()> {
//! let data = DataDir::locate()?;
//! let model = Arc::new(HumanoidModel::load(&data)?);
//! let clips = ClipLibrary::load(&data, &model)?;
//! let walk = clips.get("walk")?;
//! let mut humanoid = Humanoid::new(Arc::clone(&model), HumanoidConfig::default())?;
//! humanoid.set_state(&walk.pose_at(0.0)?, &walk.velocity_at(0.0)?)?;
//! for control_step in 1..=30 {
//!     humanoid.set_targets(&walk.pose_at(control_step as f64 / 30.0)?[7..])?;
//!     for _ in 0..4 {
//!         humanoid.step()?; // 120 Hz physics under a 30 Hz policy
//!     }
//! }
//! println!("root height {:.3} m", humanoid.pose()[1]);
//! # Ok(())
//! # }
//! ```

pub mod data;
pub mod diff;
mod error;
pub mod humanoid;
pub mod model;
pub mod motion;
pub mod perturb;
pub mod render;

/// The vector and quaternion types of poses and body states.
pub use glam;

pub use data::DataDir;
pub use error::{PhysicsError, Result};
pub use humanoid::{Humanoid, HumanoidConfig, Snapshot};
pub use model::{BodyState, HumanoidModel};
pub use motion::{Clip, ClipLibrary};
pub use perturb::{Noise, Perturbation};

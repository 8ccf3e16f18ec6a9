//! # keel-physics
//!
//! Physics for Keel's humanoid environments: articulated rigid bodies on `rapier3d` (multibody
//! joints, PD-controlled actuators), motion clips and their retargeting, and, behind the `diff`
//! feature, differentiable dynamics on libtorch tensors for imitation through differentiable
//! physics. It sits at the bottom of the dependency chain (`physics <- envs`), so it depends on
//! no other Keel crate.
//!
//! Nothing lives here yet: the humanoid tracking issue fills it. The crate exists so that the
//! workspace layout, and the direction of its dependencies, are fixed from the start.

//! Start-state perturbations: uniform noise on a humanoid state, as SkillMimic-V2's
//! ε-neighbourhood state initialisation draws it (the official code's `randn·2−1` is read as
//! the uniform `U(−m, m)` it was meant to be).
//!
//! Shared by the humanoid env (its own perturbed starts, `keel eval --perturb`) and the
//! transition-field sampler of keel-curricula, so both perturb the same way.

use glam::{DQuat, DVec3};
use serde::{Deserialize, Serialize};

use crate::model::{HumanoidModel, Joint, quat, wxyz};

/// Magnitudes of the uniform noise on a start state; all 0 (the default) leaves it as it is.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Perturbation {
    /// The root is raised by `U(0, root_height)`, m (never lowered, so no start is under the
    /// ground).
    pub root_height: f64,
    /// The root is turned by `U(−r, r)` rad about each world axis.
    pub root_rotation: f64,
    /// `U(−v, v)` is added to each coordinate of the root's linear (m/s) and angular (rad/s)
    /// velocity.
    pub root_velocity: f64,
    /// Each joint is turned by `U(−j, j)` rad about each of its axes (hinges are kept within
    /// their limits).
    pub joint_position: f64,
    /// `U(−w, w)` rad/s is added to each joint velocity coordinate.
    pub joint_velocity: f64,
}

impl Default for Perturbation {
    fn default() -> Self {
        Self { root_height: 0.0, root_rotation: 0.0, root_velocity: 0.0, joint_position: 0.0, joint_velocity: 0.0 }
    }
}

impl Perturbation {
    /// SkillMimic-V2's magnitudes for a non-getup skill (noise weight 0.1 on every part).
    pub fn skillmimic() -> Self {
        Self { root_height: 0.1, root_rotation: 0.1, root_velocity: 0.1, joint_position: 0.1, joint_velocity: 0.1 }
    }

    /// Every magnitude multiplied by `k`.
    pub fn scaled(&self, k: f64) -> Self {
        Self {
            root_height: self.root_height * k,
            root_rotation: self.root_rotation * k,
            root_velocity: self.root_velocity * k,
            joint_position: self.joint_position * k,
            joint_velocity: self.joint_velocity * k,
        }
    }

    /// Whether every magnitude is 0.
    pub fn is_zero(&self) -> bool {
        self.fields().iter().all(|(_, v)| *v == 0.0)
    }

    fn fields(&self) -> [(&'static str, f64); 5] {
        [
            ("root_height", self.root_height),
            ("root_rotation", self.root_rotation),
            ("root_velocity", self.root_velocity),
            ("joint_position", self.joint_position),
            ("joint_velocity", self.joint_velocity),
        ]
    }

    /// Checks the magnitudes (finite, ≥ 0, rotations at most π, the rest at most 100); the
    /// error is `(field, message)`.
    pub fn check(&self) -> std::result::Result<(), (&'static str, String)> {
        for (name, value) in self.fields() {
            let max = if name.ends_with("rotation") || name == "joint_position" { std::f64::consts::PI } else { 100.0 };
            if !(value.is_finite() && (0.0..=max).contains(&value)) {
                return Err((name, format!("must be in [0, {max}], got {value}")));
            }
        }
        Ok(())
    }

    /// Perturbs `pose` and `velocity` (the model's layouts) in place; `uniform` draws from
    /// `[0, 1)`. The draws are taken in a fixed order, so a seeded source gives a fixed result.
    pub fn apply(
        &self,
        model: &HumanoidModel,
        pose: &mut [f64],
        velocity: &mut [f64],
        uniform: &mut dyn FnMut() -> f64,
    ) {
        let mut sym = |m: f64| m * (2.0 * uniform() - 1.0);
        pose[1] += 0.5 * (sym(self.root_height) + self.root_height);
        let turn = DVec3::new(sym(self.root_rotation), sym(self.root_rotation), sym(self.root_rotation));
        let root = DQuat::from_rotation_x(turn.x) * DQuat::from_rotation_y(turn.y) * DQuat::from_rotation_z(turn.z);
        let q = (root * quat(&pose[3..7])).normalize();
        pose[3..7].copy_from_slice(&wxyz(q));
        for v in &mut velocity[..6] {
            *v += sym(self.root_velocity);
        }
        for body in model.bodies() {
            let p = body.pose_offset;
            match body.joint {
                Joint::Spherical => {
                    let n = DVec3::new(sym(self.joint_position), sym(self.joint_position), sym(self.joint_position));
                    let q = (DQuat::from_scaled_axis(n) * quat(&pose[p..p + 4])).normalize();
                    pose[p..p + 4].copy_from_slice(&wxyz(q));
                }
                Joint::Revolute { limits: [lo, hi], .. } => {
                    pose[p] = (pose[p] + sym(self.joint_position)).clamp(lo, hi);
                }
                Joint::Free | Joint::Fixed => {}
            }
        }
        for v in &mut velocity[6..] {
            *v += sym(self.joint_velocity);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magnitudes_are_checked_naming_the_field() {
        assert!(Perturbation::skillmimic().check().is_ok());
        let bad = Perturbation { joint_velocity: -1.0, ..Perturbation::default() };
        assert_eq!(bad.check().err().map(|e| e.0), Some("joint_velocity"));
        let bad = Perturbation { root_rotation: 4.0, ..Perturbation::default() };
        assert_eq!(bad.check().err().map(|e| e.0), Some("root_rotation"));
        assert!(Perturbation::default().is_zero() && !Perturbation::skillmimic().is_zero());
        assert_eq!(Perturbation::skillmimic().scaled(2.0).root_height, 0.2);
    }
}

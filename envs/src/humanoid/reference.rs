//! Moves of the reference: onto a start off the clip, and onto the character at a new cycle.

use super::*;

/// A move of the reference onto the start: a yaw about the vertical through `from` (the
/// reference root at the start), then a horizontal shift onto `to` (the start's root).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub(super) struct Align {
    pub(super) yaw: f64,
    pub(super) from: [f64; 3],
    pub(super) to: [f64; 3],
}

impl Align {
    /// The move that puts the root of `reference` (a pose) on the root of `start`.
    pub(super) fn between(reference: &[f64], start: &[f64]) -> Self {
        let yaw = |q: &[f64]| {
            let facing = quat(q).normalize() * DVec3::X;
            f64::atan2(-facing.z, facing.x)
        };
        Self {
            yaw: yaw(&start[3..7]) - yaw(&reference[3..7]),
            from: [reference[0], reference[1], reference[2]],
            to: [start[0], start[1], start[2]],
        }
    }

    pub(super) fn pose(&self, pose: &mut [f64]) {
        let r = DQuat::from_rotation_y(self.yaw);
        let d = r * DVec3::new(pose[0] - self.from[0], 0.0, pose[2] - self.from[2]);
        pose[0] = self.to[0] + d.x;
        pose[2] = self.to[2] + d.z;
        let q = (r * quat(&pose[3..7])).normalize();
        pose[3..7].copy_from_slice(&wxyz(q));
    }

    pub(super) fn velocity(&self, velocity: &mut [f64]) {
        let r = DQuat::from_rotation_y(self.yaw);
        for k in [0, 3] {
            let v = r * DVec3::from_slice(&velocity[k..k + 3]);
            velocity[k..k + 3].copy_from_slice(&v.to_array());
        }
    }
}

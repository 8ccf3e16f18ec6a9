//! The similarity `S` of two humanoid states, and the masked steps it implies.
//!
//! SkillMimic-V2 compares states after *heading alignment*: each state is seen from its own root,
//! turned so that the root faces +x, with heights kept. `S` is then the product of
//! `exp(-w · difference)` over
//!
//! | term | difference | weight (graph / field) |
//! |---|---|---|
//! | `position` | mean over bodies and axes of the squared difference of the aligned body positions | 10 / 1 |
//! | `velocity` | the same for the aligned body linear velocities | 0.1 / 0.1 |
//! | `rotation` | mean over joints of the squared rotation angle between them (hinges: angle difference) | 10 / 1 |
//! | `root_rotation` | squared angle between the roots with their headings removed (tilt) | 0 / 1 |
//! | `root_height` | squared difference of the root heights | 5 / 1 |
//!
//! The "graph" weights are the official code's for locomotion and getup skills in the trajectory
//! graph search, the "field" weights those of its noisy-start search (§1.2 and §1.4 of the
//! research notes). `S(a, a) = 1` and `S` does not change when either state is turned about the
//! vertical or moved on the ground. The code's quirk of squaring only the reference in the noisy
//! search is not copied: every difference is `mean((a − b)²)`.
//!
//! [`masked_steps`] turns a similarity into the number of steps whose reward is masked after a
//! start that is off the reference: `0` above 0.5, else `min(−⌊log₁₀ S⌋, 10)`.

use keel_physics::glam::{DQuat, DVec3};
use keel_physics::model::{Joint, quat};
use keel_physics::{BodyState, Clip, HumanoidModel};
use serde::{Deserialize, Serialize};

use keel_envs::config::FieldError;

/// The weights of the terms of `S` (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimilarityWeights {
    /// Aligned body positions.
    pub position: f64,
    /// Aligned body linear velocities.
    pub velocity: f64,
    /// Joint rotations.
    pub rotation: f64,
    /// Root tilt (the root's rotation without its heading).
    pub root_rotation: f64,
    /// Root height.
    pub root_height: f64,
}

impl Default for SimilarityWeights {
    fn default() -> Self {
        Self::graph()
    }
}

impl SimilarityWeights {
    /// The official code's weights for the trajectory-graph search (locomotion and getup).
    pub fn graph() -> Self {
        Self { position: 10.0, velocity: 0.1, rotation: 10.0, root_rotation: 0.0, root_height: 5.0 }
    }

    /// The official code's weights for re-anchoring a noisy start (locomotion and getup).
    pub fn field() -> Self {
        Self { position: 1.0, velocity: 0.1, rotation: 1.0, root_rotation: 1.0, root_height: 1.0 }
    }

    /// Checks that every weight is finite and ≥ 0; `field` prefixes the error's field.
    pub fn validate(&self, field: &'static str) -> Result<(), FieldError> {
        for (name, w) in [
            ("position", self.position),
            ("velocity", self.velocity),
            ("rotation", self.rotation),
            ("root_rotation", self.root_rotation),
            ("root_height", self.root_height),
        ] {
            if !(w.is_finite() && w >= 0.0) {
                return Err(FieldError::new(field, format!("`{name}` must be finite and ≥ 0, got {w}")));
            }
        }
        Ok(())
    }
}

/// A state seen from its own root, heading removed: what [`similarity`] compares.
#[derive(Clone, Debug, PartialEq)]
pub struct Features {
    /// Body positions relative to the root on the ground (heights kept), heading frame.
    positions: Vec<DVec3>,
    /// Body linear velocities, heading frame.
    velocities: Vec<DVec3>,
    /// The root's rotation with its heading removed.
    root: DQuat,
    /// Ball-joint rotations (local, so already heading-free).
    balls: Vec<DQuat>,
    /// Hinge angles.
    hinges: Vec<f64>,
    /// Root height.
    height: f64,
}

/// The rotation about +y (up) that turns +x onto the facing direction of `root`.
pub fn heading(root: DQuat) -> f64 {
    let facing = root * DVec3::X;
    f64::atan2(-facing.z, facing.x)
}

impl Features {
    /// The features of a state; `bodies` is scratch of one [`BodyState`] per body.
    pub fn new(
        model: &HumanoidModel,
        pose: &[f64],
        velocity: &[f64],
        bodies: &mut [BodyState],
    ) -> keel_physics::Result<Self> {
        model.write_body_states(pose, Some(velocity), bodies)?;
        let root_rotation = quat(&pose[3..7]).normalize();
        let unturn = DQuat::from_rotation_y(-heading(root_rotation));
        let ground = DVec3::new(pose[0], 0.0, pose[2]);
        let mut balls = Vec::new();
        let mut hinges = Vec::new();
        for body in model.bodies() {
            let p = body.pose_offset;
            match body.joint {
                Joint::Spherical => balls.push(quat(&pose[p..p + 4]).normalize()),
                Joint::Revolute { .. } => hinges.push(pose[p]),
                Joint::Free | Joint::Fixed => {}
            }
        }
        Ok(Self {
            positions: bodies.iter().map(|b| unturn * (DVec3::from(b.position) - ground)).collect(),
            velocities: bodies.iter().map(|b| unturn * DVec3::from(b.linvel)).collect(),
            root: (unturn * root_rotation).normalize(),
            balls,
            hinges,
            height: pose[1],
        })
    }
}

/// The angle of the rotation between two unit quaternions, in `[0, π]`.
fn angle(a: DQuat, b: DQuat) -> f64 {
    // θ/2 = atan2(|xyz|, |w|) of a⁻¹b, whichever sign the quaternions carry; exact at 0.
    let d = a.inverse() * b;
    2.0 * f64::atan2(DVec3::new(d.x, d.y, d.z).length(), d.w.abs())
}

/// `S(a, b)` with weights `w` (see the module docs); in `(0, 1]`, 1 for equal states.
pub fn similarity(a: &Features, b: &Features, w: &SimilarityWeights) -> f64 {
    let mean_sq = |x: &[DVec3], y: &[DVec3]| {
        x.iter().zip(y).map(|(p, q)| (*p - *q).length_squared()).sum::<f64>() / (3 * x.len().max(1)) as f64
    };
    let position = mean_sq(&a.positions, &b.positions);
    let velocity = mean_sq(&a.velocities, &b.velocities);
    let joints = a.balls.len() + a.hinges.len();
    let rotation = (a.balls.iter().zip(&b.balls).map(|(p, q)| angle(*p, *q).powi(2)).sum::<f64>()
        + a.hinges.iter().zip(&b.hinges).map(|(p, q)| (p - q).powi(2)).sum::<f64>())
        / joints.max(1) as f64;
    let root = angle(a.root, b.root).powi(2);
    let height = (a.height - b.height).powi(2);
    (-(w.position * position
        + w.velocity * velocity
        + w.rotation * rotation
        + w.root_rotation * root
        + w.root_height * height))
        .exp()
}

/// Masked steps after a start whose similarity to its reference is `s`: 0 if `s > 0.5`, else
/// `min(−⌊log₁₀ s⌋, 10)` (10 for `s ≤ 0` or NaN).
pub fn masked_steps(s: f64) -> u32 {
    if s > 0.5 {
        0
    } else if s > 0.0 {
        (-s.log10().floor()).clamp(0.0, 10.0) as u32
    } else {
        10
    }
}

/// The features of every frame of a clip, and each frame's time.
#[derive(Clone, Debug)]
pub struct ClipFrames {
    /// The clip's name.
    pub name: String,
    /// Time of each frame, s.
    pub times: Vec<f64>,
    /// Features of each frame.
    pub features: Vec<Features>,
}

impl ClipFrames {
    /// The frames of `clip` that an episode can start from: all but the last (for a looping
    /// clip the last frame is the first of the next cycle; for another, the episode's end).
    pub fn new(clip: &Clip) -> keel_physics::Result<Self> {
        let model = clip.model();
        let mut bodies = vec![BodyState::default(); model.bodies().len()];
        let mut velocity = vec![0.0; model.velocity_len()];
        let count = clip.num_frames() - 1;
        let (mut times, mut features) = (Vec::with_capacity(count), Vec::with_capacity(count));
        for i in 0..count {
            let t = clip.frame_time(i).unwrap_or_default();
            let pose = clip.pose_at(t)?;
            clip.write_velocity_at(t, &mut velocity)?;
            times.push(t);
            features.push(Features::new(model, &pose, &velocity, &mut bodies)?);
        }
        Ok(Self { name: clip.name().to_owned(), times, features })
    }

    /// Start frames.
    pub fn len(&self) -> usize {
        self.times.len()
    }

    /// Whether there are no start frames.
    pub fn is_empty(&self) -> bool {
        self.times.is_empty()
    }

    /// The frame most similar to `x` and its similarity (the first one on ties).
    pub fn most_similar(&self, x: &Features, w: &SimilarityWeights) -> (usize, f64) {
        let mut best = (0, f64::NEG_INFINITY);
        for (i, f) in self.features.iter().enumerate() {
            let s = similarity(x, f, w);
            if s > best.1 {
                best = (i, s);
            }
        }
        best
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;
    use std::sync::Arc;

    use keel_physics::model::wxyz;
    use keel_physics::{ClipLibrary, DataDir};

    /// The model and clips, or `None` where the humanoid data is not installed (a failure
    /// under `KEEL_REQUIRE_HUMANOID_DATA=1`).
    pub(crate) fn library() -> Option<(Arc<HumanoidModel>, ClipLibrary)> {
        let loaded = DataDir::locate().and_then(|data| {
            let model = Arc::new(HumanoidModel::load(&data)?);
            let clips = ClipLibrary::load(&data, &model)?;
            Ok((model, clips))
        });
        match loaded {
            Ok(found) => Some(found),
            Err(why) => {
                keel_envs::testing::Data::Humanoid.skip("the humanoid's clips", why);
                None
            }
        }
    }

    fn features(model: &HumanoidModel, pose: &[f64], velocity: &[f64]) -> Features {
        let mut bodies = vec![BodyState::default(); model.bodies().len()];
        Features::new(model, pose, velocity, &mut bodies).unwrap()
    }

    /// The state turned by `yaw` about the vertical through the origin and moved by `shift`
    /// on the ground.
    fn moved(pose: &[f64], velocity: &[f64], yaw: f64, shift: [f64; 2]) -> (Vec<f64>, Vec<f64>) {
        let r = DQuat::from_rotation_y(yaw);
        let (mut p, mut v) = (pose.to_vec(), velocity.to_vec());
        let root = r * DVec3::from_slice(&p[0..3]);
        p[0] = root.x + shift[0];
        p[1] = root.y;
        p[2] = root.z + shift[1];
        let q = wxyz(r * quat(&p[3..7]));
        p[3..7].copy_from_slice(&q);
        for k in [0, 3] {
            let turned = r * DVec3::from_slice(&v[k..k + 3]);
            v[k..k + 3].copy_from_slice(&turned.to_array());
        }
        (p, v)
    }

    #[test]
    fn a_state_is_fully_similar_to_itself_and_to_itself_turned_and_moved() {
        let Some((model, clips)) = library() else { return };
        for name in ["walk", "run", "backflip"] {
            let clip = clips.get(name).unwrap();
            let t = 0.4 * clip.duration();
            let (pose, velocity) = (clip.pose_at(t).unwrap(), clip.velocity_at(t).unwrap());
            let a = features(&model, &pose, &velocity);
            for w in [SimilarityWeights::graph(), SimilarityWeights::field()] {
                assert_eq!(similarity(&a, &a, &w), 1.0, "{name}");
                for (yaw, shift) in [(0.7, [0.0, 0.0]), (0.0, [3.0, -2.0]), (-2.5, [-10.0, 4.5])] {
                    let (p, v) = moved(&pose, &velocity, yaw, shift);
                    let b = features(&model, &p, &v);
                    let s = similarity(&a, &b, &w);
                    assert!((1.0 - s).abs() < 1e-9, "{name}: yaw {yaw}, shift {shift:?}: S = {s}");
                }
            }
            // Not everything is similar: a state half a clip later, and one lifted or tilted.
            let later = clip.pose_at(t + 0.5 * clip.duration()).unwrap();
            let b = features(&model, &later, &clip.velocity_at(t + 0.5 * clip.duration()).unwrap());
            assert!(similarity(&a, &b, &SimilarityWeights::graph()) < 0.9, "{name}");
            let mut lifted = pose.clone();
            lifted[1] += 0.3;
            let b = features(&model, &lifted, &velocity);
            assert!(similarity(&a, &b, &SimilarityWeights::graph()) < 0.9, "{name}");
            let mut tilted = pose.clone();
            tilted[3..7].copy_from_slice(&wxyz(DQuat::from_rotation_z(0.5) * quat(&pose[3..7])));
            let b = features(&model, &tilted, &velocity);
            assert!(similarity(&a, &b, &SimilarityWeights::field()) < 0.9, "{name}");
        }
    }

    #[test]
    fn masked_steps_follow_the_official_formula() {
        for (s, n) in [
            (1.0, 0),
            (0.51, 0),
            (0.5, 1),
            (0.3, 1),
            (0.1, 1),
            (0.05, 2),
            (0.01, 2),
            (0.009, 3),
            (1e-4, 4),
            (1e-12, 10),
            (0.0, 10),
            (f64::NAN, 10),
        ] {
            assert_eq!(masked_steps(s), n, "S = {s}");
        }
    }

    #[test]
    fn weights_are_checked_naming_the_field() {
        assert!(SimilarityWeights::graph().validate("w").is_ok());
        let bad = SimilarityWeights { velocity: -1.0, ..SimilarityWeights::field() };
        let err = bad.validate("stf.weights").err().unwrap();
        assert!(err.field == "stf.weights" && err.message.contains("velocity"), "{err:?}");
    }
}

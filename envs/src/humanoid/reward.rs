//! The tracking reward: the five DeepMimic terms of a simulated state against the reference.

use super::*;

/// How the `end_effector` and `com` terms measure their errors; the other three are the same
/// in both forms (see the module docs' *Reward*).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RewardForm {
    /// DeepMimic's C++ (`SceneImitate.cpp`), the form its results come from: end-effector
    /// joints relative to the root in each character's heading frame (heights above the
    /// ground), summed, scale 10; the centre of mass on velocity, `0.1·‖Δv‖²`, scale 10.
    /// Version 1's default.
    Deepmimic,
    /// pybullet's port (`humanoid_stable_pd.py`): end-effector shape centres in world
    /// coordinates, averaged, scale 40; the centre of mass on position, scale 10. Version 0.
    Pybullet,
}

impl RewardForm {
    /// Scales `k` of the terms' `exp(-k·err)`, in [`TERMS`](super::TERMS) order.
    fn scales(self) -> [f64; 5] {
        match self {
            Self::Deepmimic => [2.0, 0.1, 10.0, 5.0, 10.0],
            Self::Pybullet => [2.0, 0.1, 40.0, 5.0, 10.0],
        }
    }
}

/// DeepMimic's joint weights by body name (bodies not listed weigh 0).
pub(super) const JOINT_WEIGHTS: [(&str, f64); 13] = [
    ("root", 0.20833),
    ("chest", 0.10416),
    ("neck", 0.0625),
    ("right_hip", 0.10416),
    ("right_knee", 0.0625),
    ("right_ankle", 0.041666),
    ("right_shoulder", 0.0625),
    ("right_elbow", 0.041666),
    ("left_hip", 0.10416),
    ("left_knee", 0.0625),
    ("left_ankle", 0.041666),
    ("left_shoulder", 0.0625),
    ("left_elbow", 0.041666),
];

/// The end effectors of the `end_effector` term.
pub(super) const END_EFFECTORS: [&str; 4] = ["right_ankle", "left_ankle", "right_wrist", "left_wrist"];

/// The pieces of the model the env reads every step, gathered once.
pub(super) struct Layout {
    /// Joint weight of each body.
    pub(super) weights: Vec<f64>,
    /// Bodies of the `end_effector` term.
    pub(super) end_effectors: Vec<usize>,
    /// Whether each body may touch the ground.
    pub(super) may_touch: Vec<bool>,
    /// Mass of each body over the total.
    pub(super) mass_fraction: Vec<f64>,
}

impl Layout {
    pub(super) fn new(model: &HumanoidModel, contact_bodies: &[String]) -> Result<Self> {
        let index = |name: &str, field: &str| {
            model.body_index(name).ok_or_else(|| EnvError::InvalidField {
                context: format!("{} config", HumanoidTrack::ID),
                field: field.into(),
                message: format!(
                    "no body `{name}`; bodies: {}",
                    model.bodies().iter().map(|b| b.name.as_str()).collect::<Vec<_>>().join(", ")
                ),
            })
        };
        let mut weights = vec![0.0; model.bodies().len()];
        for (name, w) in JOINT_WEIGHTS {
            weights[index(name, "model")?] = w;
        }
        let end_effectors = END_EFFECTORS.iter().map(|name| index(name, "model")).collect::<Result<_>>()?;
        let mut may_touch = vec![false; model.bodies().len()];
        for name in contact_bodies {
            may_touch[index(name, "contact_bodies")?] = true;
        }
        let mass_fraction = model.bodies().iter().map(|b| b.mass / model.mass()).collect();
        Ok(Self { weights, end_effectors, may_touch, mass_fraction })
    }
}

/// One side of a comparison: a state in generalised coordinates and its body states.
pub(super) struct Side {
    pub(super) pose: Vec<f64>,
    pub(super) velocity: Vec<f64>,
    pub(super) bodies: Vec<BodyState>,
}

impl Side {
    pub(super) fn new(model: &HumanoidModel) -> Self {
        Self {
            pose: model.zero_pose(),
            velocity: vec![0.0; model.velocity_len()],
            bodies: vec![BodyState::default(); model.bodies().len()],
        }
    }

    /// The mass-weighted mean of `f(body, its state, its centre of mass in world axes relative
    /// to its origin)` over the bodies.
    fn mass_weighted(&self, model: &HumanoidModel, layout: &Layout, f: impl Fn(&BodyState, DVec3) -> DVec3) -> DVec3 {
        (model.bodies().iter().zip(&self.bodies).zip(&layout.mass_fraction))
            .map(|((body, state), m)| f(state, quat(&state.rotation) * DVec3::from(body.com)) * *m)
            .sum()
    }

    /// The centre of mass.
    pub(super) fn com(&self, model: &HumanoidModel, layout: &Layout) -> DVec3 {
        self.mass_weighted(model, layout, |state, arm| DVec3::from(state.position) + arm)
    }

    /// The velocity of the centre of mass.
    pub(super) fn com_velocity(&self, model: &HumanoidModel, layout: &Layout) -> DVec3 {
        self.mass_weighted(model, layout, |state, arm| DVec3::from(state.linvel) + DVec3::from(state.angvel).cross(arm))
    }

    /// Body `i`'s origin relative to the root in the root's heading frame, its height above
    /// the ground kept as it is (DeepMimic's end-effector measure).
    pub(super) fn heading_relative(&self, i: usize) -> DVec3 {
        let root = &self.bodies[0];
        let p = DVec3::from(self.bodies[i].position);
        let offset = DVec3::new(p.x - root.position[0], p.y, p.z - root.position[2]);
        inverse_heading(quat(&root.rotation)) * offset
    }

    /// Where body `i`'s collision shape is centred.
    pub(super) fn shape_centre(&self, model: &HumanoidModel, i: usize) -> DVec3 {
        let state = &self.bodies[i];
        DVec3::from(state.position) + quat(&state.rotation) * DVec3::from(model.bodies()[i].shape_origin)
    }
}

/// The five reward terms (unweighted, each in `[0, 1]`) of a simulated state against a
/// reference, and the mean body distance, m. Equal states give `[1; 5]` and 0.
pub(super) fn tracking_terms(
    model: &HumanoidModel,
    layout: &Layout,
    form: RewardForm,
    sim: &Side,
    reference: &Side,
) -> ([f64; 5], f64) {
    let (mut pose_err, mut vel_err) = (0.0, 0.0);
    for (i, body) in model.bodies().iter().enumerate() {
        let w = layout.weights[i];
        let (p, o) = (body.pose_offset, body.velocity_offset);
        let (angle2, vel2) = match body.joint {
            Joint::Free => {
                let d = angle(&reference.pose[p + 3..p + 7], &sim.pose[p + 3..p + 7]);
                let dw = DVec3::from_slice(&reference.velocity[o + 3..o + 6])
                    - DVec3::from_slice(&sim.velocity[o + 3..o + 6]);
                (d * d, dw.length_squared())
            }
            Joint::Spherical => {
                let d = angle(&reference.pose[p..p + 4], &sim.pose[p..p + 4]);
                let dw = DVec3::from_slice(&reference.velocity[o..o + 3]) - DVec3::from_slice(&sim.velocity[o..o + 3]);
                (d * d, dw.length_squared())
            }
            Joint::Revolute { .. } => {
                ((reference.pose[p] - sim.pose[p]).powi(2), (reference.velocity[o] - sim.velocity[o]).powi(2))
            }
            Joint::Fixed => (0.0, 0.0),
        };
        pose_err += w * angle2;
        vel_err += w * vel2;
    }
    let end_err = match form {
        RewardForm::Deepmimic => (layout.end_effectors.iter())
            .map(|&i| (reference.heading_relative(i) - sim.heading_relative(i)).length_squared())
            .sum::<f64>(),
        RewardForm::Pybullet => {
            (layout.end_effectors.iter())
                .map(|&i| (reference.shape_centre(model, i) - sim.shape_centre(model, i)).length_squared())
                .sum::<f64>()
                / layout.end_effectors.len().max(1) as f64
        }
    };
    let root_err = {
        let dp = DVec3::from_slice(&reference.pose[0..3]) - DVec3::from_slice(&sim.pose[0..3]);
        let rot = angle(&reference.pose[3..7], &sim.pose[3..7]);
        let dv = DVec3::from_slice(&reference.velocity[0..3]) - DVec3::from_slice(&sim.velocity[0..3]);
        let dw = DVec3::from_slice(&reference.velocity[3..6]) - DVec3::from_slice(&sim.velocity[3..6]);
        dp.length_squared() + 0.1 * rot * rot + 0.01 * dv.length_squared() + 0.001 * dw.length_squared()
    };
    let com_err = match form {
        RewardForm::Deepmimic => {
            0.1 * (reference.com_velocity(model, layout) - sim.com_velocity(model, layout)).length_squared()
        }
        RewardForm::Pybullet => (reference.com(model, layout) - sim.com(model, layout)).length_squared(),
    };
    let errors = [pose_err, vel_err, end_err, root_err, com_err];
    let mut terms = [0.0; 5];
    for ((t, e), k) in terms.iter_mut().zip(errors).zip(form.scales()) {
        *t = (-k * e).exp();
    }
    let distance = sim
        .bodies
        .iter()
        .zip(&reference.bodies)
        .map(|(a, b)| (DVec3::from(a.position) - DVec3::from(b.position)).length())
        .sum::<f64>()
        / sim.bodies.len() as f64;
    (terms, distance)
}

/// The rotation angle from quaternion `b` to `a` (both `w, x, y, z`), in `[0, π]`.
pub(super) fn angle(a: &[f64], b: &[f64]) -> f64 {
    rotation_vector(quat(a).normalize() * quat(b).normalize().inverse()).length()
}

//! The DeepMimic humanoid as data: bodies, joints, shapes, masses and PD gains read from the
//! model files, the layout of its generalised coordinates, and forward kinematics.
//!
//! # Model
//!
//! 15 bodies in DeepMimic's (and pybullet's link) order: `root`, `chest`, `neck`, `right_hip`,
//! `right_knee`, `right_ankle`, `right_shoulder`, `right_elbow`, `right_wrist`, `left_hip`, ...,
//! `left_wrist`. The root is free; 8 joints are spherical, the knees and elbows revolute (about
//! the parent's z axis, with the URDF's limits) and the wrists fixed: 28 actuated degrees of
//! freedom. The URDF is at 4 times the simulated size and is scaled by [`SCALE`], as pybullet
//! loads it; masses are the URDF's (45 kg in all). Inertias follow from each body's collision
//! shape at its mass, as in DeepMimic (the URDF's placeholder inertias of 0.1 are not used).
//! PD gains and torque limits are DeepMimic's, read from the pybullet sources
//! (see [`crate::data`]). The world is y-up; the character faces +x and its right side is +z.
//!
//! # Generalised coordinates
//!
//! A **pose** (43 numbers) is laid out as a DeepMimic clip frame without its duration: root
//! position (3), root rotation (quaternion `w, x, y, z`), then for each joint in body order a
//! quaternion (spherical) or an angle in radians (revolute); fixed joints take no slot.
//! A **velocity** (34 numbers) has the root's linear velocity (of its frame origin) and angular
//! velocity, both in world axes, then 3 numbers per spherical joint (the angular velocity of the
//! body relative to its parent, in the parent's axes) and 1 per revolute joint.
//! **Targets** (36 numbers) are the joint part of a pose: `pose[7..]`.
//!
//! The body frame of each body has its origin at the joint that carries it; [`BodyState`] gives
//! that frame's pose and the velocity of its origin.

mod gains;
mod urdf;

use glam::{DQuat, DVec3};

use crate::data::{self, DataDir};
use crate::error::{PhysicsError, Result, check_len};

/// The scale pybullet loads the DeepMimic URDF at (`globalScaling=0.25`).
pub const SCALE: f64 = 0.25;

/// The largest coordinate, in metres, a pose may put the root at (the world's extent).
pub const MAX_ABS_POSITION: f64 = 1e4;

/// The largest speed, in m/s or rad/s, a velocity may hold; beyond it a step is a divergence.
pub const MAX_ABS_VELOCITY: f64 = 1e3;

/// How a body hangs from its parent.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Joint {
    /// The root: free in translation and rotation.
    Free,
    /// A ball joint, actuated about 3 axes.
    Spherical,
    /// A hinge about `axis` (a unit vector in the parent's frame), actuated, with limits in
    /// radians.
    Revolute {
        /// The hinge axis.
        axis: [f64; 3],
        /// Lower and upper angle.
        limits: [f64; 2],
    },
    /// Welded to the parent.
    Fixed,
}

impl Joint {
    /// Numbers this joint takes in a pose.
    pub fn pose_width(&self) -> usize {
        match self {
            Joint::Free => 7,
            Joint::Spherical => 4,
            Joint::Revolute { .. } => 1,
            Joint::Fixed => 0,
        }
    }

    /// Numbers this joint takes in a velocity.
    pub fn velocity_width(&self) -> usize {
        match self {
            Joint::Free => 6,
            Joint::Spherical => 3,
            Joint::Revolute { .. } => 1,
            Joint::Fixed => 0,
        }
    }
}

/// A collision shape, centred on its origin.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Shape {
    /// A ball.
    Sphere {
        /// Radius, metres.
        radius: f64,
    },
    /// A segment from `-half_length` to `half_length` along the shape's z axis, swept by `radius`.
    Capsule {
        /// Radius, metres.
        radius: f64,
        /// Half the segment's length, metres.
        half_length: f64,
    },
    /// A box.
    Box {
        /// Half its size along x, y and z, metres.
        half_extents: [f64; 3],
    },
}

/// A joint's PD controller.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pd {
    /// Stiffness, N·m/rad.
    pub kp: f64,
    /// Damping, N·m·s/rad.
    pub kd: f64,
    /// The largest PD torque, position and damping terms together, about each axis, N·m.
    pub max_torque: f64,
}

/// One rigid body of the model.
#[derive(Clone, Debug, PartialEq)]
pub struct Body {
    /// Its name in the URDF (`right_knee`).
    pub name: String,
    /// Index of its parent body (`None` for the root).
    pub parent: Option<usize>,
    /// The joint that carries it.
    pub joint: Joint,
    /// The joint's position in the parent's frame, metres: the origin of this body's frame.
    pub origin: [f64; 3],
    /// Mass, kg.
    pub mass: f64,
    /// Centre of mass in the body frame, metres.
    pub com: [f64; 3],
    /// Collision shape.
    pub shape: Shape,
    /// The shape's centre in the body frame, metres.
    pub shape_origin: [f64; 3],
    /// The shape's rotation in the body frame (`w, x, y, z`).
    pub shape_rotation: [f64; 4],
    /// PD gains and torque limit of an actuated joint.
    pub pd: Option<Pd>,
    /// Where the joint's slot starts in a pose.
    pub pose_offset: usize,
    /// Where the joint's slot starts in a velocity.
    pub velocity_offset: usize,
}

/// The state of one body's frame, in world axes.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct BodyState {
    /// Position of the frame's origin (the joint carrying the body), metres.
    pub position: [f64; 3],
    /// Rotation (`w, x, y, z`).
    pub rotation: [f64; 4],
    /// Linear velocity of the frame's origin, m/s.
    pub linvel: [f64; 3],
    /// Angular velocity, rad/s.
    pub angvel: [f64; 3],
}

/// The humanoid model; see the [module docs](self).
#[derive(Clone, Debug, PartialEq)]
pub struct HumanoidModel {
    bodies: Vec<Body>,
    pose_len: usize,
    velocity_len: usize,
}

impl HumanoidModel {
    /// Reads the model from the data files: the URDF, then DeepMimic's gains and torque limits.
    pub fn load(data: &DataDir) -> Result<Self> {
        let bad = |path: std::path::PathBuf| move |why: String| PhysicsError::BadFile { path, why };
        let mut model = Self::from_urdf(&data::read(&data.urdf())?).map_err(bad(data.urdf()))?;
        let gains = data::read(&data.gains_source())?;
        let limits = data::read(&data.torque_limits_source())?;
        let widths = gains::list(&gains, "_jointDofCounts").map_err(bad(data.gains_source()))?;
        let ours: Vec<f64> = model.actuated().map(|b| b.joint.pose_width() as f64).collect();
        if widths != ours {
            return Err(bad(data.gains_source())(format!("joint slot widths {widths:?}, the URDF's {ours:?}")));
        }
        let kp = model.per_joint(&gains, "_kpOrg").map_err(bad(data.gains_source()))?;
        let kd = model.per_joint(&gains, "_kdOrg").map_err(bad(data.gains_source()))?;
        let max = model.per_joint(&limits, "maxForces").map_err(bad(data.torque_limits_source()))?;
        let actuated: Vec<usize> = (0..model.bodies.len()).filter(|&i| model.is_actuated(i)).collect();
        for (k, i) in actuated.into_iter().enumerate() {
            model.bodies[i].pd = Some(Pd { kp: kp[k], kd: kd[k], max_torque: max[k] });
        }
        Ok(model)
    }

    /// The bodies and joints of a URDF (without PD gains), scaled by [`SCALE`].
    fn from_urdf(text: &str) -> std::result::Result<Self, String> {
        let urdf = urdf::parse(text)?;
        let joint_of = |link: &str| urdf.joints.iter().find(|j| j.child == link);
        let mut links: Vec<&urdf::Link> = urdf.links.iter().collect();
        let roots: Vec<_> = links.iter().filter(|l| joint_of(&l.name).is_none()).map(|l| l.name.clone()).collect();
        let [root] = &roots[..] else { return Err(format!("{} root links ({roots:?}), expected 1", roots.len())) };
        let mut root = root.clone();
        // pybullet's `base`: a massless link welded to the real root at its origin.
        let carried: Vec<_> = urdf.joints.iter().filter(|j| j.parent == root).collect();
        if let [weld] = &carried[..] {
            let base = links.iter().position(|l| l.name == root).unwrap_or(0);
            if links[base].mass < 1e-3 && weld.kind == "fixed" && weld.origin == DVec3::ZERO {
                links.remove(base);
                root = weld.child.clone();
            }
        }
        let mut bodies: Vec<Body> = Vec::new();
        let (mut pose_len, mut velocity_len) = (0, 0);
        for link in links {
            let at = |why: String| format!("link `{}`: {why}", link.name);
            let carrier = joint_of(&link.name).filter(|_| link.name != root);
            let (parent, joint, origin) = match carrier {
                None if !bodies.is_empty() => return Err(at("the root link must come first".into())),
                None => (None, Joint::Free, DVec3::ZERO),
                Some(j) => {
                    let parent = bodies.iter().position(|b| b.name == j.parent);
                    let parent =
                        parent.ok_or_else(|| at(format!("its parent `{}` is not listed before it", j.parent)))?;
                    if j.rpy != DVec3::ZERO {
                        return Err(at(format!(
                            "joint `{}` has a rotated origin (rpy {}), unsupported",
                            j.name, j.rpy
                        )));
                    }
                    let joint = match j.kind.as_str() {
                        "spherical" => Joint::Spherical,
                        "fixed" => Joint::Fixed,
                        "revolute" => {
                            let axis = j.axis.try_normalize().ok_or_else(|| at("zero revolute axis".into()))?;
                            let limits = j.limit.ok_or_else(|| at(format!("revolute `{}` without <limit>", j.name)))?;
                            Joint::Revolute { axis: axis.to_array(), limits }
                        }
                        other => return Err(at(format!("joint `{}` of unsupported type `{other}`", j.name))),
                    };
                    (Some(parent), joint, j.origin * SCALE)
                }
            };
            let (geometry, shape_origin, rpy) = link.collision.ok_or_else(|| at("no <collision>".into()))?;
            if (link.com - shape_origin).length() > 1e-9 {
                return Err(at("centre of mass away from the collision shape's centre, unsupported".into()));
            }
            let shape = match geometry {
                urdf::Geometry::Sphere { radius } => Shape::Sphere { radius: radius * SCALE },
                urdf::Geometry::Capsule { radius, length } => {
                    Shape::Capsule { radius: radius * SCALE, half_length: 0.5 * length * SCALE }
                }
                urdf::Geometry::Box { size } => Shape::Box { half_extents: (0.5 * size * SCALE).to_array() },
            };
            let rotation = DQuat::from_euler(glam::EulerRot::ZYX, rpy.z, rpy.y, rpy.x);
            bodies.push(Body {
                name: link.name.clone(),
                parent,
                joint,
                origin: origin.to_array(),
                mass: link.mass,
                com: (link.com * SCALE).to_array(),
                shape,
                shape_origin: (shape_origin * SCALE).to_array(),
                shape_rotation: wxyz(rotation),
                pd: None,
                pose_offset: pose_len,
                velocity_offset: velocity_len,
            });
            pose_len += joint.pose_width();
            velocity_len += joint.velocity_width();
        }
        Ok(Self { bodies, pose_len, velocity_len })
    }

    fn is_actuated(&self, body: usize) -> bool {
        matches!(self.bodies[body].joint, Joint::Spherical | Joint::Revolute { .. })
    }

    /// The bodies whose joints are actuated, in order.
    fn actuated(&self) -> impl Iterator<Item = &Body> {
        (0..self.bodies.len()).filter(|&i| self.is_actuated(i)).map(|i| &self.bodies[i])
    }

    /// One value per actuated joint from a pybullet list in pose layout.
    fn per_joint(&self, source: &str, name: &str) -> std::result::Result<Vec<f64>, String> {
        let slots: Vec<_> = self.actuated().map(|b| (b.name.as_str(), b.pose_offset, b.joint.pose_width())).collect();
        gains::per_joint(&gains::list(source, name)?, name, self.pose_len, &slots)
    }

    /// The bodies, parents before children.
    pub fn bodies(&self) -> &[Body] {
        &self.bodies
    }

    /// The index of the body of that name.
    pub fn body_index(&self, name: &str) -> Option<usize> {
        self.bodies.iter().position(|b| b.name == name)
    }

    /// Numbers in a pose (43).
    pub fn pose_len(&self) -> usize {
        self.pose_len
    }

    /// Numbers in a velocity (34).
    pub fn velocity_len(&self) -> usize {
        self.velocity_len
    }

    /// Numbers in a target vector, the joint part of a pose (36).
    pub fn targets_len(&self) -> usize {
        self.pose_len - Joint::Free.pose_width()
    }

    /// Actuated degrees of freedom (28).
    pub fn actuated_dofs(&self) -> usize {
        self.velocity_len - Joint::Free.velocity_width()
    }

    /// Total mass, kg.
    pub fn mass(&self) -> f64 {
        self.bodies.iter().map(|b| b.mass).sum()
    }

    /// The name of pose coordinate `index`: `root.y`, `chest.qx`, `right_knee`.
    pub fn pose_coordinate(&self, index: usize) -> String {
        self.coordinate(
            index,
            |b| (b.pose_offset, b.joint.pose_width()),
            &["x", "y", "z", "qw", "qx", "qy", "qz"],
            &["qw", "qx", "qy", "qz"],
        )
    }

    /// The name of velocity coordinate `index`: `root.vx`, `chest.wz`, `right_knee`.
    pub fn velocity_coordinate(&self, index: usize) -> String {
        self.coordinate(
            index,
            |b| (b.velocity_offset, b.joint.velocity_width()),
            &["vx", "vy", "vz", "wx", "wy", "wz"],
            &["wx", "wy", "wz"],
        )
    }

    fn coordinate(&self, index: usize, slot: impl Fn(&Body) -> (usize, usize), root: &[&str], ball: &[&str]) -> String {
        for body in &self.bodies {
            let (offset, width) = slot(body);
            if (offset..offset + width).contains(&index) {
                return match body.joint {
                    Joint::Free => format!("{}.{}", body.name, root[index - offset]),
                    Joint::Spherical => format!("{}.{}", body.name, ball[index - offset]),
                    _ => body.name.clone(),
                };
            }
        }
        format!("beyond the last coordinate ({index})")
    }

    /// The zero pose (every joint at rest) with the root at [`Self::standing_height`].
    pub fn zero_pose(&self) -> Vec<f64> {
        let mut pose = vec![0.0; self.pose_len];
        for body in &self.bodies {
            match body.joint {
                Joint::Free => {
                    pose[body.pose_offset + 1] = self.standing_height();
                    pose[body.pose_offset + 3] = 1.0;
                }
                Joint::Spherical => pose[body.pose_offset] = 1.0,
                _ => {}
            }
        }
        pose
    }

    /// The root height at which the zero pose's lowest point (the soles) touches `y = 0`.
    pub fn standing_height(&self) -> f64 {
        let mut pose = vec![0.0; self.pose_len];
        for body in &self.bodies {
            let slot = body.pose_offset + if body.joint == Joint::Free { 3 } else { 0 };
            if matches!(body.joint, Joint::Free | Joint::Spherical) {
                pose[slot] = 1.0;
            }
        }
        let mut states = vec![BodyState::default(); self.bodies.len()];
        self.fill_states(&pose, None, &mut states);
        -self.lowest_point(&states)
    }

    /// The height of the lowest point of any body's collision shape, m, for the body states
    /// of a pose, one per body as [`Self::write_body_states`] gives them.
    pub fn lowest_point(&self, states: &[BodyState]) -> f64 {
        let lowest = self.bodies.iter().zip(states).map(|(body, state)| {
            let frame = quat(&state.rotation);
            let centre = DVec3::from(state.position) + frame * DVec3::from(body.shape_origin);
            let axes = frame * quat(&body.shape_rotation);
            match body.shape {
                Shape::Sphere { radius } => centre.y - radius,
                Shape::Capsule { radius, half_length } => {
                    let tip = axes * DVec3::new(0.0, 0.0, half_length);
                    centre.y - tip.y.abs() - radius
                }
                Shape::Box { half_extents } => {
                    let h = DVec3::from(half_extents);
                    let reach: f64 = (0..3).map(|k| (axes * (DVec3::AXES[k] * h[k])).y.abs()).sum();
                    centre.y - reach
                }
            }
        });
        lowest.fold(f64::INFINITY, f64::min)
    }

    /// Checks a pose: its length, finite numbers, the root within [`MAX_ABS_POSITION`], no zero
    /// quaternion. Quaternions need not be normalised (they are normalised where used).
    pub fn check_pose(&self, pose: &[f64]) -> Result<()> {
        self.check_joints(pose, "pose", 0)
    }

    /// Checks a target vector (the joint part of a pose) as [`Self::check_pose`] does.
    pub fn check_targets(&self, targets: &[f64]) -> Result<()> {
        self.check_joints(targets, "targets", Joint::Free.pose_width())
    }

    fn check_joints(&self, values: &[f64], what: &'static str, skip: usize) -> Result<()> {
        check_len(what, self.pose_len - skip, values.len())?;
        let bad = |index: usize, why: &'static str| PhysicsError::BadValue {
            what,
            index,
            coordinate: self.pose_coordinate(index + skip),
            value: values[index],
            why,
        };
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(bad(i, "not finite"));
        }
        for body in &self.bodies {
            let Some(offset) = body.pose_offset.checked_sub(skip) else { continue };
            match body.joint {
                Joint::Free => {
                    if let Some(k) = (0..3).find(|&k| values[offset + k].abs() > MAX_ABS_POSITION) {
                        return Err(bad(offset + k, "beyond the world's extent (1e4 m)"));
                    }
                    if quat_norm(&values[offset + 3..offset + 7]) < 1e-6 {
                        return Err(bad(offset + 3, "zero quaternion"));
                    }
                }
                Joint::Spherical if quat_norm(&values[offset..offset + 4]) < 1e-6 => {
                    return Err(bad(offset, "zero quaternion"));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Checks a velocity: its length and finite numbers within [`MAX_ABS_VELOCITY`].
    pub fn check_velocity(&self, velocity: &[f64]) -> Result<()> {
        self.check_speeds(velocity, "velocity", 0)
    }

    /// Checks target joint velocities (the joint part of a velocity) as [`Self::check_velocity`]
    /// does.
    pub fn check_joint_velocities(&self, velocities: &[f64]) -> Result<()> {
        self.check_speeds(velocities, "target velocities", Joint::Free.velocity_width())
    }

    fn check_speeds(&self, values: &[f64], what: &'static str, skip: usize) -> Result<()> {
        check_len(what, self.velocity_len - skip, values.len())?;
        match values.iter().position(|&v| beyond(v, MAX_ABS_VELOCITY)) {
            None => Ok(()),
            Some(index) => Err(PhysicsError::BadValue {
                what,
                index,
                coordinate: self.velocity_coordinate(index + skip),
                value: values[index],
                why: if values[index].is_finite() { "beyond 1e3 m/s or rad/s" } else { "not finite" },
            }),
        }
    }

    /// Forward kinematics: every body's state for a pose and, if given, a velocity (zero
    /// otherwise).
    pub fn body_states(&self, pose: &[f64], velocity: Option<&[f64]>) -> Result<Vec<BodyState>> {
        let mut out = vec![BodyState::default(); self.bodies.len()];
        self.write_body_states(pose, velocity, &mut out)?;
        Ok(out)
    }

    /// [`Self::body_states`] into `out` (one per body).
    pub fn write_body_states(&self, pose: &[f64], velocity: Option<&[f64]>, out: &mut [BodyState]) -> Result<()> {
        self.check_pose(pose)?;
        if let Some(velocity) = velocity {
            self.check_velocity(velocity)?;
        }
        check_len("body states", self.bodies.len(), out.len())?;
        self.fill_states(pose, velocity, out);
        Ok(())
    }

    /// Forward kinematics on checked input.
    fn fill_states(&self, pose: &[f64], velocity: Option<&[f64]>, out: &mut [BodyState]) {
        let vel = |offset: usize, k: usize| velocity.map_or(0.0, |v| v[offset + k]);
        let vec3 = |offset: usize| DVec3::new(vel(offset, 0), vel(offset, 1), vel(offset, 2));
        for (i, body) in self.bodies.iter().enumerate() {
            let (p, o) = (body.pose_offset, body.velocity_offset);
            let (position, rotation, linvel, angvel) = match (body.joint, body.parent) {
                (Joint::Free, _) | (_, None) => {
                    let rotation = quat(&pose[p + 3..p + 7]).normalize();
                    (DVec3::new(pose[p], pose[p + 1], pose[p + 2]), rotation, vec3(o), vec3(o + 3))
                }
                (joint, Some(parent)) => {
                    let up = &out[parent];
                    let (up_position, up_rotation) = (DVec3::from(up.position), quat(&up.rotation));
                    let (up_linvel, up_angvel) = (DVec3::from(up.linvel), DVec3::from(up.angvel));
                    let (local, relative) = match joint {
                        Joint::Spherical => (quat(&pose[p..p + 4]).normalize(), vec3(o)),
                        Joint::Revolute { axis, .. } => {
                            let axis = DVec3::from(axis);
                            (DQuat::from_axis_angle(axis, pose[p]), axis * vel(o, 0))
                        }
                        _ => (DQuat::IDENTITY, DVec3::ZERO),
                    };
                    let position = up_position + up_rotation * DVec3::from(body.origin);
                    let linvel = up_linvel + up_angvel.cross(position - up_position);
                    (position, up_rotation * local, linvel, up_angvel + up_rotation * relative)
                }
            };
            out[i] = BodyState {
                position: position.to_array(),
                rotation: wxyz(rotation),
                linvel: linvel.to_array(),
                angvel: angvel.to_array(),
            };
        }
    }

    /// The pose mirrored left to right: reflected through the character's sagittal plane
    /// (`z -> -z`), with each `left_*` joint taking its `right_*` partner's rotation and back.
    pub fn mirror_pose(&self, pose: &[f64], out: &mut [f64]) -> Result<()> {
        self.check_pose(pose)?;
        check_len("mirrored pose", self.pose_len, out.len())?;
        self.mirror(pose, out, false)
    }

    /// A velocity mirrored as [`Self::mirror_pose`] mirrors a pose.
    pub fn mirror_velocity(&self, velocity: &[f64], out: &mut [f64]) -> Result<()> {
        self.check_velocity(velocity)?;
        check_len("mirrored velocity", self.velocity_len, out.len())?;
        self.mirror(velocity, out, true)
    }

    /// Mirrors a checked pose or velocity: positions and linear velocities are vectors (z flips),
    /// rotations reflect to `(w, -x, -y, z)`, angular velocities are pseudovectors (x and y flip).
    fn mirror(&self, values: &[f64], out: &mut [f64], velocity: bool) -> Result<()> {
        for (body, partner, sign) in self.mirror_pairs()? {
            let (body, partner) = (&self.bodies[body], &self.bodies[partner]);
            let (from, to) = match velocity {
                false => (body.pose_offset, partner.pose_offset),
                true => (body.velocity_offset, partner.velocity_offset),
            };
            let v = &values[from..];
            let image = match (body.joint, velocity) {
                (Joint::Free, false) => vec![v[0], v[1], -v[2], v[3], -v[4], -v[5], v[6]],
                (Joint::Free, true) => vec![v[0], v[1], -v[2], -v[3], -v[4], v[5]],
                (Joint::Spherical, false) => vec![v[0], -v[1], -v[2], v[3]],
                (Joint::Spherical, true) => vec![-v[0], -v[1], v[2]],
                (Joint::Revolute { .. }, _) => vec![sign * v[0]],
                (Joint::Fixed, _) => vec![],
            };
            out[to..to + image.len()].copy_from_slice(&image);
        }
        Ok(())
    }

    /// `(body, partner, sign)` for each body: its left/right partner (itself on the midline) and,
    /// for hinges, the sign that maps its angle onto the partner's. An error if the model is not
    /// mirror-symmetric.
    fn mirror_pairs(&self) -> Result<Vec<(usize, usize, f64)>> {
        let asymmetric = |why: String| PhysicsError::Config(format!("the model is not mirror-symmetric: {why}"));
        let reflect = |v: [f64; 3]| DVec3::new(v[0], v[1], -v[2]);
        let mut pairs = Vec::with_capacity(self.bodies.len());
        for (i, body) in self.bodies.iter().enumerate() {
            let (name, partner_name) = (&body.name, self.mirror_name(i));
            let j = self
                .body_index(&partner_name)
                .ok_or_else(|| asymmetric(format!("`{name}` has no `{partner_name}`")))?;
            let partner = &self.bodies[j];
            let mirrored_parent =
                body.parent.map(|p| self.mirror_name(p)) == partner.parent.map(|p| self.bodies[p].name.clone());
            if (reflect(body.origin) - DVec3::from(partner.origin)).length() > 1e-9 || !mirrored_parent {
                return Err(asymmetric(format!("`{name}` and `{partner_name}` are not placed as mirror images")));
            }
            let sign = match (body.joint, partner.joint) {
                (Joint::Revolute { axis: a, .. }, Joint::Revolute { axis: b, .. }) => {
                    // A rotation about `a` reflects to one about `-reflect(a)`.
                    let d = (-reflect(a)).dot(DVec3::from(b));
                    if (d.abs() - 1.0).abs() > 1e-9 {
                        return Err(asymmetric(format!(
                            "the hinges of `{name}` and `{partner_name}` are not mirror images"
                        )));
                    }
                    d.signum()
                }
                (a, b) if std::mem::discriminant(&a) == std::mem::discriminant(&b) => 1.0,
                _ => return Err(asymmetric(format!("`{name}` and `{partner_name}` have different joints"))),
            };
            pairs.push((i, j, sign));
        }
        Ok(pairs)
    }

    /// The name of a body's left/right partner.
    fn mirror_name(&self, body: usize) -> String {
        let name = &self.bodies[body].name;
        match (name.strip_prefix("left_"), name.strip_prefix("right_")) {
            (Some(rest), _) => format!("right_{rest}"),
            (_, Some(rest)) => format!("left_{rest}"),
            _ => name.clone(),
        }
    }
}

/// A quaternion from `w, x, y, z`.
pub fn quat(wxyz: &[f64]) -> DQuat {
    DQuat::from_xyzw(wxyz[1], wxyz[2], wxyz[3], wxyz[0])
}

/// `w, x, y, z` of a quaternion.
pub fn wxyz(q: DQuat) -> [f64; 4] {
    [q.w, q.x, q.y, q.z]
}

/// Whether `value` is NaN or beyond `±max`.
pub(crate) fn beyond(value: f64, max: f64) -> bool {
    value.is_nan() || value.abs() > max
}

fn quat_norm(wxyz: &[f64]) -> f64 {
    wxyz.iter().map(|v| v * v).sum::<f64>().sqrt()
}

/// The rotation vector (axis times angle, the angle in `[0, π]`) of a unit quaternion.
pub fn rotation_vector(q: DQuat) -> DVec3 {
    if q.w < 0.0 { (-q).to_scaled_axis() } else { q.to_scaled_axis() }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn rotation_vectors_take_the_short_way() {
        let q = DQuat::from_axis_angle(DVec3::Y, 0.3);
        assert!((rotation_vector(q) - DVec3::new(0.0, 0.3, 0.0)).length() < 1e-15);
        assert!((rotation_vector(-q) - DVec3::new(0.0, 0.3, 0.0)).length() < 1e-15);
        assert_eq!(rotation_vector(DQuat::IDENTITY), DVec3::ZERO);
    }
}

//! The humanoid simulated on rapier3d: one reduced-coordinate multibody with a free root on a
//! ground plane, in a world of its own.
//!
//! # Actuation: implicit PD
//!
//! Each actuated degree of freedom is a joint spring (`MultibodyJoint::set_spring`, stiffness
//! `kp`) with joint damping `kd` (`Multibody::damping_mut`), which rapier integrates implicitly in
//! its joint-space solve: backward-Euler PD, stable at one substep of 1/120 s with DeepMimic's
//! gains. (Explicit PD torques diverge there: `kd·dt/I` is about 67 for a foot, where stability
//! needs less than 2; they hold a stance only near 2 kHz.) The spring's rest position is re-based
//! before every physics step: rapier's ball-joint coordinates integrate the angular velocity and
//! drift away from any rotation parameter, so the rest position is the current coordinate plus the
//! rotation vector from the current joint rotation to the target (springs aimed at the targets'
//! own rotation vectors track the walk 4 times worse). Target velocities are zero, as in
//! DeepMimic's PD, unless given ([`Humanoid::set_targets_with_velocities`]).
//!
//! ## The torque limit applies to the whole PD torque
//!
//! Per degree of freedom, with `q` and `v` the coordinate and velocity at the start of a step of
//! length `h` (a substep), `v⁺` the velocity at its end, `e` the error to the target and `w` the
//! target velocity, rapier's spring with rest `r` applies
//!
//! ```text
//! τ = kp·(r − q − h·v⁺) − kd·v⁺ = P − c·v⁺,    P = kp·(r − q),    c = kd + kp·h,
//! ```
//!
//! and `r = q + e + (kd/kp)·w` gives the stable PD of Tan et al. that DeepMimic uses,
//! `τ = kp·(e − h·v⁺) + kd·(w − v⁺)`. DeepMimic and pybullet clamp that whole torque, P and D
//! together, to `±max_torque`. Here the torque is predicted for the step with `v⁺ = v`,
//! `τ̂ = kp·e + kd·w − c·v`; where `τ̂` is beyond the limit, the rest position is chosen so that
//! the prediction is the limit: `P = clamp(τ̂) + c·v`, i.e. `r = q + (clamp(τ̂) + c·v)/kp`
//! (within the limit, `r` is the unclamped rest and the PD as it was; the clamp is per axis, as
//! pybullet clips each degree of freedom's torque). The
//! torque rapier applies is then `clamp(τ̂) − c·(v⁺ − v)`: the clamped torque less the implicit
//! term that opposes the step's own change of velocity, which is what keeps the PD stable. It
//! stays within the limit whenever the joint's velocity changes in the direction of its torque,
//! as it does for a joint that its own torque drives; a joint whose velocity other forces change
//! against its torque (a load beyond its limit, a joint limit or the ground stopping it) resists
//! by `c·|v⁺ − v|` beyond it, the implicit damper's share of the stop. Clamping the
//! spring term alone would leave `kd·v` unbounded and cap every joint's speed near
//! `max_torque / c`, below `max_torque / kd` (3 rad/s for a knee), which the clips exceed.
//! [`Humanoid::joint_torques`] reports the torques of the last step. The prediction is exact for
//! one substep (the default); with more, the later substeps' springs see the coordinate moved.
//!
//! # Determinism and snapshots
//!
//! A humanoid built from the same model and config, given the same states, targets and steps,
//! produces the same bits. [`Humanoid::snapshot`] holds the whole rapier world (bodies,
//! colliders, joints, islands, broad and narrow phase with their warm-start data) plus the
//! targets and step count; [`Humanoid::restore`] continues from it bit for bit. The world is
//! not shared and rapier's `parallel` feature is off: an env steps one humanoid on one thread.
//!
//! # The root's frame inside rapier
//!
//! rapier integrates a free root's linear velocity as the motion of its frame's origin but
//! treats it in the dynamics as the velocity of its centre of mass, so the root body is placed
//! in rapier with its frame at its centre of mass; poses and velocities here use the model's
//! frame (the root joint), converted on the way in and out.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use glam::{DQuat, DVec3};
use rapier3d::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{PhysicsError, Result, check_len};
use crate::model::{self, BodyState, HumanoidModel, Joint, MAX_ABS_POSITION, MAX_ABS_VELOCITY, Shape, beyond};

const HUMANOID: Group = Group::GROUP_1;
const GROUND: Group = Group::GROUP_2;

/// Settings of a humanoid's world. Unknown fields are rejected when read from JSON or TOML.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HumanoidConfig {
    /// Physics step, s (default: 1/120, as SkillMimic and PHC simulate).
    pub dt: f64,
    /// rapier substeps per step (`num_solver_iterations`; default: 1). Implicit PD needs no
    /// more; each substep costs a full joint-space factorisation.
    pub substeps: usize,
    /// Solver sweeps per substep for contacts and joint limits (`num_internal_pgs_iterations`;
    /// default: 4).
    pub pgs_iterations: usize,
    /// Gravity, m/s², pulling along -y (default: 9.8, pybullet's DeepMimic).
    pub gravity: f64,
    /// Friction coefficient of the bodies and the ground (default: 0.9, pybullet's DeepMimic).
    pub friction: f64,
    /// Extra inertia on each actuated degree of freedom, kg·m² (default: 0).
    pub armature: f64,
    /// Weld the root to the world where each state puts it (default: false), e.g. to test joint
    /// tracking without balance. The root's velocity is then always zero.
    pub pin_root: bool,
}

impl Default for HumanoidConfig {
    fn default() -> Self {
        Self {
            dt: 1.0 / 120.0,
            substeps: 1,
            pgs_iterations: 4,
            gravity: 9.8,
            friction: 0.9,
            armature: 0.0,
            pin_root: false,
        }
    }
}

impl HumanoidConfig {
    /// Checks every field's range.
    pub fn validate(&self) -> Result<()> {
        let bad = |why: String| Err(PhysicsError::Config(why));
        if !(self.dt > 0.0 && self.dt <= 0.1) {
            return bad(format!("dt = {}: must be in (0, 0.1] s", self.dt));
        }
        if !(1..=64).contains(&self.substeps) {
            return bad(format!("substeps = {}: must be in 1..=64", self.substeps));
        }
        if !(1..=64).contains(&self.pgs_iterations) {
            return bad(format!("pgs_iterations = {}: must be in 1..=64", self.pgs_iterations));
        }
        for (name, value, max) in
            [("gravity", self.gravity, 100.0), ("friction", self.friction, 10.0), ("armature", self.armature, 10.0)]
        {
            if !(0.0..=max).contains(&value) {
                return bad(format!("{name} = {value}: must be in [0, {max}]"));
            }
        }
        Ok(())
    }
}

/// The humanoid and its world; see the [module docs](self).
pub struct Humanoid {
    model: Arc<HumanoidModel>,
    config: HumanoidConfig,
    world: PhysicsWorld,
    /// The rigid body of each body: its own, or its carrier's when welded (see [`Self::carriers`]).
    bodies: Vec<RigidBodyHandle>,
    colliders: Vec<ColliderHandle>,
    ground: ColliderHandle,
    /// Multibody link id of each body (its carrier's when welded).
    links: Vec<usize>,
    /// Each body's carrier and its origin in the carrier's frame. A body on a fixed joint is
    /// welded into its nearest jointed ancestor (its collider and mass join that rigid body), so
    /// the multibody has one link per jointed body: rapier's joint-space dynamics cost grows with
    /// links × degrees of freedom, and a welded link adds cost without freedom. Every other body
    /// carries itself at offset zero.
    carriers: Vec<(usize, DVec3)>,
    multibody: MultibodyIndex,
    /// The root's centre of mass in its frame.
    root_com: DVec3,
    /// Joint targets, the joint part of a pose, quaternions normalised.
    targets: Vec<f64>,
    /// Target joint velocities, the joint part of a velocity.
    target_velocities: Vec<f64>,
    steps: u64,
    diverged: bool,
    /// Identifies the model and config in snapshots.
    fingerprint: u64,
}

/// What a snapshot serialises.
#[derive(Serialize, Deserialize)]
struct Saved<W> {
    fingerprint: u64,
    world: W,
    targets: Vec<f64>,
    target_velocities: Vec<f64>,
    steps: u64,
    diverged: bool,
}

/// A humanoid's whole state, from [`Humanoid::snapshot`]. It serialises (serde) as one base64
/// string, so a JSON env checkpoint can hold it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    bytes: Vec<u8>,
}

impl Snapshot {
    /// The snapshot's binary form.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// A snapshot from its binary form (checked when restored).
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self { bytes }
    }
}

impl Serialize for Snapshot {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_str(&BASE64.encode(&self.bytes))
    }
}

impl<'de> Deserialize<'de> for Snapshot {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        BASE64.decode(text).map(Self::from_bytes).map_err(serde::de::Error::custom)
    }
}

impl Humanoid {
    /// A humanoid standing in the zero pose, its soles on the ground, holding that pose.
    pub fn new(model: Arc<HumanoidModel>, config: HumanoidConfig) -> Result<Self> {
        config.validate()?;
        let mut world = PhysicsWorld::new();
        world.gravity = Vector::new(0.0, -config.gravity as f32, 0.0);
        let params = &mut world.integration_parameters;
        params.dt = config.dt as f32;
        params.num_solver_iterations = config.substeps;
        params.num_internal_pgs_iterations = config.pgs_iterations;
        let groups = |member, filter| InteractionGroups::new(member, filter, InteractionTestMode::And);
        let friction = config.friction as f32;
        let plane = ColliderBuilder::new(SharedShape::halfspace(Vector::Y));
        let (_, ground) = world
            .insert(RigidBodyBuilder::fixed(), plane.friction(friction).collision_groups(groups(GROUND, HUMANOID)));

        let root_com = DVec3::from(model.bodies()[0].com);
        let (mut bodies, mut colliders, mut carriers) = (Vec::new(), Vec::new(), Vec::<(usize, DVec3)>::new());
        for (i, body) in model.bodies().iter().enumerate() {
            // Fixed joints carry no rotation, so a welded body's frame is its carrier's, moved.
            // Not onto the root, whose rapier frame must stay at its own centre of mass.
            let welded = match body.parent {
                Some(parent) if body.joint == Joint::Fixed => {
                    let (carrier, offset) = carriers[parent];
                    (carrier != 0).then(|| (carrier, offset + DVec3::from(body.origin)))
                }
                _ => None,
            };
            if let Some((carrier, offset)) = welded {
                let shape_pose =
                    rapier_pose(offset + DVec3::from(body.shape_origin), model::quat(&body.shape_rotation));
                let collider = collider_of(body, friction).position(shape_pose).collision_groups(groups(HUMANOID, GROUND));
                colliders.push(world.colliders.insert_with_parent(collider, bodies[carrier], &mut world.bodies));
                bodies.push(bodies[carrier]);
                carriers.push((carrier, offset));
                continue;
            }
            carriers.push((i, DVec3::ZERO));
            // Every body frame is the model's, except the root's (at its centre of mass).
            let shift = if i == 0 { root_com } else { DVec3::ZERO };
            let builder =
                if i == 0 && config.pin_root { RigidBodyBuilder::fixed() } else { RigidBodyBuilder::dynamic() };
            let shape_pose = rapier_pose(DVec3::from(body.shape_origin) - shift, model::quat(&body.shape_rotation));
            let collider = collider_of(body, friction).position(shape_pose).collision_groups(groups(HUMANOID, GROUND));
            let (handle, collider) = world.insert(builder.can_sleep(false), collider);
            if let Some(parent) = body.parent {
                let parent_shift = if parent == 0 { root_com } else { DVec3::ZERO };
                let anchor = (DVec3::from(body.origin) - parent_shift).as_vec3();
                let joint: GenericJoint = match body.joint {
                    Joint::Spherical => SphericalJointBuilder::new().local_anchor1(anchor).into(),
                    Joint::Revolute { axis, limits } => RevoluteJointBuilder::new(DVec3::from(axis).as_vec3())
                        .local_anchor1(anchor)
                        .limits([limits[0] as f32, limits[1] as f32])
                        .into(),
                    Joint::Fixed => FixedJointBuilder::new().local_anchor1(anchor).into(),
                    Joint::Free => {
                        return Err(PhysicsError::Config(format!("`{}`: a free joint below the root", body.name)));
                    }
                };
                world
                    .insert_multibody_joint(bodies[parent], handle, joint)
                    .ok_or_else(|| PhysicsError::Config(format!("`{}`: rapier refused its joint", body.name)))?;
            }
            bodies.push(handle);
            colliders.push(collider);
        }

        let link = |handle: &RigidBodyHandle| world.multibody_joints.rigid_body_link(*handle).copied();
        let ids: Vec<_> = bodies
            .iter()
            .map(link)
            .collect::<Option<_>>()
            .ok_or_else(|| PhysicsError::Config("a body outside the multibody".into()))?;
        let multibody = ids[0].multibody;
        let links = ids.iter().map(|id| id.id).collect();
        let fingerprint = fnv1a(format!("{model:?} {config:?}").as_bytes());
        let mut humanoid = Self {
            model: Arc::clone(&model),
            config,
            world,
            bodies,
            colliders,
            ground,
            links,
            carriers,
            multibody,
            root_com,
            targets: Vec::new(),
            target_velocities: vec![0.0; model.actuated_dofs()],
            steps: 0,
            diverged: false,
            fingerprint,
        };
        humanoid.set_state(&model.zero_pose(), &vec![0.0; model.velocity_len()])?;
        humanoid.set_gains();
        Ok(humanoid)
    }

    /// Joint damping and armature: `kd` and the configured armature on each actuated degree of
    /// freedom, nothing on the root's.
    fn set_gains(&mut self) {
        let armature = self.config.armature as f32;
        let Self { world, model, links, multibody, .. } = self;
        let Some(mb) = world.multibody_joints.get_multibody_mut(*multibody) else { return };
        mb.damping_mut().fill(0.0);
        mb.armature_mut().fill(0.0);
        for (body, &link) in model.bodies().iter().zip(links.iter()) {
            let (Some(pd), Some(link)) = (body.pd, mb.link(link)) else { continue };
            let (start, ndofs) = (link.assembly_id(), link.joint().ndofs());
            for dof in start..start + ndofs {
                mb.damping_mut()[dof] = pd.kd as f32;
                mb.armature_mut()[dof] = armature;
            }
        }
    }

    /// The model.
    pub fn model(&self) -> &Arc<HumanoidModel> {
        &self.model
    }

    /// The config.
    pub fn config(&self) -> &HumanoidConfig {
        &self.config
    }

    /// Physics steps taken since the humanoid was made (a snapshot restores it).
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Puts the humanoid in a pose with a velocity (generalised coordinates, see
    /// [`crate::model`]), runs rapier's forward kinematics, and sets the targets to the pose's
    /// joints. With a pinned root the root's velocity is ignored.
    pub fn set_state(&mut self, pose: &[f64], velocity: &[f64]) -> Result<()> {
        self.model.check_pose(pose)?;
        self.model.check_velocity(velocity)?;
        let Self { world, model, bodies, links, carriers, multibody, root_com, config, .. } = self;
        let PhysicsWorld { bodies: rigid_bodies, multibody_joints, .. } = world;
        let root_rotation = model::quat(&pose[3..7]).normalize();
        let root_frame = DVec3::new(pose[0], pose[1], pose[2]) + root_rotation * *root_com;
        rigid_bodies[bodies[0]].set_position(rapier_pose(root_frame, root_rotation), true);
        let mb = multibody_mut(multibody_joints, *multibody)?;
        for (i, (body, &link)) in model.bodies().iter().zip(links.iter()).enumerate().skip(1) {
            // A welded body's link is its carrier's, which must keep its displacement.
            let Some(link) = mb.link_mut(link).filter(|_| carriers[i].0 == i) else { continue };
            // A fresh joint: coordinates at zero, then displaced to the pose.
            link.joint = MultibodyJoint::new(link.joint.data, link.joint.kinematic);
            let p = body.pose_offset;
            match body.joint {
                Joint::Spherical => {
                    let rotation = model::rotation_vector(model::quat(&pose[p..p + 4]).normalize()).as_vec3();
                    link.joint.apply_displacement(&rotation.to_array());
                }
                Joint::Revolute { .. } => link.joint.apply_displacement(&[pose[p] as f32]),
                Joint::Free | Joint::Fixed => {}
            }
        }
        let mut qdot = mb.generalized_velocity_mut();
        qdot.fill(0.0);
        let mut next = 0;
        for body in model.bodies() {
            let v = &velocity[body.velocity_offset..body.velocity_offset + body.joint.velocity_width()];
            let values = match body.joint {
                Joint::Free if config.pin_root => continue,
                Joint::Free => {
                    let angvel = DVec3::new(v[3], v[4], v[5]);
                    let com_velocity = DVec3::new(v[0], v[1], v[2]) + angvel.cross(root_rotation * *root_com);
                    [com_velocity.to_array(), angvel.to_array()].concat()
                }
                _ => v.to_vec(),
            };
            for (k, value) in values.iter().enumerate() {
                qdot[next + k] = *value as f32;
            }
            next += values.len();
        }
        mb.forward_kinematics(rigid_bodies, true);
        mb.update_rigid_bodies(rigid_bodies, true);
        self.targets = pose[7..].to_vec();
        normalise_quaternions(&self.model, &mut self.targets);
        self.target_velocities.fill(0.0);
        self.diverged = false;
        self.sync_body_velocities()
    }

    /// Writes each link's velocity from the generalised velocities into its rigid body, so
    /// that rapier's bodies agree with the multibody before the next step and in snapshots.
    fn sync_body_velocities(&mut self) -> Result<()> {
        let velocities = self.link_velocities()?;
        for (i, (&handle, (linvel, angvel))) in self.bodies.iter().zip(velocities).enumerate() {
            if self.carriers[i].0 != i {
                continue;
            }
            let body = &mut self.world.bodies[handle];
            body.set_linvel(linvel.as_vec3(), true);
            body.set_angvel(angvel.as_vec3(), true);
        }
        Ok(())
    }

    /// The centre-of-mass velocity and angular velocity of each body's rigid body (its
    /// carrier's when welded), from its Jacobian.
    fn link_velocities(&self) -> Result<Vec<(DVec3, DVec3)>> {
        let mb = self.multibody()?;
        let qdot = mb.generalized_velocity();
        let mut velocities: Vec<(DVec3, DVec3)> = Vec::with_capacity(self.links.len());
        for (i, &link) in self.links.iter().enumerate() {
            let carrier = self.carriers[i].0;
            if carrier != i {
                velocities.push(velocities[carrier]);
                continue;
            }
            let jacobian = mb.body_jacobian(link);
            let mut v = [0.0f64; 6];
            for (row, value) in v.iter_mut().enumerate() {
                *value = (0..qdot.len()).map(|c| f64::from(jacobian[(row, c)]) * f64::from(qdot[c])).sum();
            }
            velocities.push((DVec3::new(v[0], v[1], v[2]), DVec3::new(v[3], v[4], v[5])));
        }
        Ok(velocities)
    }

    /// The current pose (see [`crate::model`]).
    pub fn pose(&self) -> Vec<f64> {
        let mut pose = vec![0.0; self.model.pose_len()];
        let _ = self.write_pose(&mut pose);
        pose
    }

    /// [`Self::pose`] into `out` (of length `model.pose_len()`).
    pub fn write_pose(&self, out: &mut [f64]) -> Result<()> {
        check_len("pose", self.model.pose_len(), out.len())?;
        let mb = self.multibody()?;
        for (body, &link) in self.model.bodies().iter().zip(self.links.iter()) {
            let (Some(link), p) = (mb.link(link), body.pose_offset) else { continue };
            match body.joint {
                Joint::Free => {
                    let frame = link.local_to_world();
                    let rotation = frame.rotation.as_dquat();
                    let origin = frame.translation.as_dvec3() - rotation * self.root_com;
                    out[p..p + 3].copy_from_slice(&origin.to_array());
                    out[p + 3..p + 7].copy_from_slice(&model::wxyz(rotation));
                }
                Joint::Spherical => out[p..p + 4].copy_from_slice(&model::wxyz(link.joint.joint_rot().as_dquat())),
                Joint::Revolute { .. } => out[p] = f64::from(link.joint.coords()[3]),
                Joint::Fixed => {}
            }
        }
        Ok(())
    }

    /// The current velocity (see [`crate::model`]).
    pub fn velocity(&self) -> Vec<f64> {
        let mut velocity = vec![0.0; self.model.velocity_len()];
        let _ = self.write_velocity(&mut velocity);
        velocity
    }

    /// [`Self::velocity`] into `out` (of length `model.velocity_len()`).
    pub fn write_velocity(&self, out: &mut [f64]) -> Result<()> {
        check_len("velocity", self.model.velocity_len(), out.len())?;
        let mb = self.multibody()?;
        let qdot = mb.generalized_velocity();
        let mut next = 0;
        for (body, &link) in self.model.bodies().iter().zip(self.links.iter()) {
            let (o, width) = (body.velocity_offset, body.joint.velocity_width());
            match body.joint {
                Joint::Free if self.config.pin_root => out[o..o + width].fill(0.0),
                Joint::Free => {
                    let Some(link) = mb.link(link) else { continue };
                    let rotation = link.local_to_world().rotation.as_dquat();
                    let angvel = DVec3::new(f64::from(qdot[3]), f64::from(qdot[4]), f64::from(qdot[5]));
                    let com_velocity = DVec3::new(f64::from(qdot[0]), f64::from(qdot[1]), f64::from(qdot[2]));
                    let linvel = com_velocity - angvel.cross(rotation * self.root_com);
                    out[o..o + 3].copy_from_slice(&linvel.to_array());
                    out[o + 3..o + 6].copy_from_slice(&angvel.to_array());
                    next += width;
                }
                _ => {
                    for k in 0..width {
                        out[o + k] = f64::from(qdot[next + k]);
                    }
                    next += width;
                }
            }
        }
        Ok(())
    }

    /// Every body's state, through rapier's kinematics.
    pub fn body_states(&self) -> Vec<BodyState> {
        let mut states = vec![BodyState::default(); self.model.bodies().len()];
        let _ = self.write_body_states(&mut states);
        states
    }

    /// [`Self::body_states`] into `out` (one per body).
    pub fn write_body_states(&self, out: &mut [BodyState]) -> Result<()> {
        check_len("body states", self.bodies.len(), out.len())?;
        let (mb, velocities) = (self.multibody()?, self.link_velocities()?);
        for (i, &link) in self.links.iter().enumerate() {
            let Some(link) = mb.link(link) else { continue };
            let frame = link.local_to_world();
            let rotation = frame.rotation.as_dquat();
            let translation = frame.translation.as_dvec3();
            let (origin, com) = if i == 0 {
                (translation - rotation * self.root_com, translation)
            } else {
                // The rigid body's centre of mass, which a welded body's mass has moved.
                let local_com = self.world.bodies[self.bodies[i]].local_center_of_mass().as_dvec3();
                (translation + rotation * self.carriers[i].1, translation + rotation * local_com)
            };
            let (com_velocity, angvel) = velocities[i];
            out[i] = BodyState {
                position: origin.to_array(),
                rotation: model::wxyz(rotation),
                linvel: (com_velocity + angvel.cross(origin - com)).to_array(),
                angvel: angvel.to_array(),
            };
        }
        Ok(())
    }

    /// Whether each body touches the ground, as the last step found (after [`Self::set_state`],
    /// the new pose's contacts show after the next step).
    pub fn ground_contacts(&self) -> Vec<bool> {
        let mut contacts = vec![false; self.colliders.len()];
        let _ = self.write_ground_contacts(&mut contacts);
        contacts
    }

    /// [`Self::ground_contacts`] into `out` (one per body).
    pub fn write_ground_contacts(&self, out: &mut [bool]) -> Result<()> {
        check_len("ground contacts", self.colliders.len(), out.len())?;
        for (touching, &collider) in out.iter_mut().zip(&self.colliders) {
            let pair = self.world.narrow_phase.contact_pair(collider, self.ground);
            *touching = pair.is_some_and(|pair| pair.has_any_active_contact());
        }
        Ok(())
    }

    /// The joint targets (the joint part of a pose, quaternions normalised).
    pub fn targets(&self) -> &[f64] {
        &self.targets
    }

    /// The target joint velocities (the joint part of a velocity).
    pub fn target_velocities(&self) -> &[f64] {
        &self.target_velocities
    }

    /// Sets the PD targets, with zero target velocities (DeepMimic's PD): the joint part of a
    /// pose (`model.targets_len()` numbers: a quaternion per spherical joint, an angle per
    /// revolute joint). They hold until the next call or [`Self::set_state`].
    pub fn set_targets(&mut self, targets: &[f64]) -> Result<()> {
        self.model.check_targets(targets)?;
        self.targets.copy_from_slice(targets);
        normalise_quaternions(&self.model, &mut self.targets);
        self.target_velocities.fill(0.0);
        Ok(())
    }

    /// Sets PD targets and target joint velocities (the joint part of a velocity,
    /// `model.actuated_dofs()` numbers), as for following a moving reference:
    /// `τ = kp·(q* − q) + kd·(q̇* − q̇)`, the torque limit applying to the whole of it.
    pub fn set_targets_with_velocities(&mut self, targets: &[f64], velocities: &[f64]) -> Result<()> {
        self.model.check_targets(targets)?;
        self.model.check_joint_velocities(velocities)?;
        self.set_targets(targets)?;
        self.target_velocities.copy_from_slice(velocities);
        Ok(())
    }

    /// One physics step of `config.dt`. After a divergence (non-finite state, a speed beyond
    /// [`MAX_ABS_VELOCITY`], the root beyond [`MAX_ABS_POSITION`]) it is an error, and stays one
    /// until [`Self::set_state`] or [`Self::restore`].
    pub fn step(&mut self) -> Result<()> {
        if self.diverged {
            return Err(PhysicsError::Diverged { step: self.steps, why: "diverged earlier".into() });
        }
        self.rebase_springs()?;
        self.world.step();
        self.steps += 1;
        if let Some(why) = self.divergence() {
            self.diverged = true;
            return Err(PhysicsError::Diverged { step: self.steps, why });
        }
        Ok(())
    }

    /// Sets each actuated joint's springs so that the PD torque predicted for the step is
    /// within the torque limit (see the [module docs](self#the-torque-limit-applies-to-the-whole-pd-torque)).
    fn rebase_springs(&mut self) -> Result<()> {
        // rapier's substep, over which its springs are implicit.
        let h = self.config.dt / self.config.substeps as f64;
        let Self { world, model, links, multibody, targets, target_velocities, .. } = self;
        let mb = multibody_mut(&mut world.multibody_joints, *multibody)?;
        for (body, &link) in model.bodies().iter().zip(links.iter()) {
            let (Some(pd), Some(start)) = (body.pd, mb.link(link).map(|link| link.assembly_id())) else { continue };
            let width = body.joint.velocity_width();
            let mut speed = [0.0f64; 3];
            let qdot = mb.generalized_velocity();
            for (axis, s) in speed.iter_mut().take(width).enumerate() {
                *s = f64::from(qdot[start + axis]);
            }
            let Some(link) = mb.link_mut(link) else { continue };
            let t = body.pose_offset - Joint::Free.pose_width();
            let v = body.velocity_offset - Joint::Free.velocity_width();
            let coords = link.joint.coords();
            let error = match body.joint {
                Joint::Spherical => {
                    let current = link.joint.joint_rot().as_dquat();
                    model::rotation_vector(model::quat(&targets[t..t + 4]) * current.inverse()).to_array()
                }
                Joint::Revolute { .. } => [targets[t] - f64::from(coords[3]), 0.0, 0.0],
                Joint::Free | Joint::Fixed => continue,
            };
            let c = pd.kd + pd.kp * h;
            for (axis, e) in error.iter().take(width).enumerate() {
                // `kd·q̇*` enters as a shift of the spring's rest position by `kd/kp·q̇*`.
                let offset = e + pd.kd / pd.kp * target_velocities[v + axis];
                let predicted = pd.kp * offset - c * speed[axis];
                let offset = if predicted.abs() <= pd.max_torque {
                    offset
                } else {
                    (predicted.clamp(-pd.max_torque, pd.max_torque) + c * speed[axis]) / pd.kp
                };
                let rest = f64::from(coords[3 + axis]) + offset;
                link.joint.set_spring(3 + axis, pd.kp as f32, rest as f32);
            }
        }
        Ok(())
    }

    /// The PD torque on each actuated degree of freedom over the last physics step (the joint
    /// part of a velocity's layout, `model.actuated_dofs()` numbers), N·m: `kp·(rest − q) −
    /// kd·q̇` at the step's end, which is the implicit spring and damper's torque over the step
    /// (over its last substep when there are several). Joint limits and contacts are not
    /// included. Before the first step after [`Self::new`] or [`Self::set_state`] it holds no
    /// meaning.
    pub fn joint_torques(&self) -> Vec<f64> {
        let mut torques = vec![0.0; self.model.actuated_dofs()];
        let _ = self.write_joint_torques(&mut torques);
        torques
    }

    /// [`Self::joint_torques`] into `out` (of length `model.actuated_dofs()`).
    pub fn write_joint_torques(&self, out: &mut [f64]) -> Result<()> {
        check_len("joint torques", self.model.actuated_dofs(), out.len())?;
        let mb = self.multibody()?;
        let qdot = mb.generalized_velocity();
        for (body, &link) in self.model.bodies().iter().zip(self.links.iter()) {
            let (Some(pd), Some(link)) = (body.pd, mb.link(link)) else { continue };
            let (start, v) = (link.assembly_id(), body.velocity_offset - Joint::Free.velocity_width());
            let coords = link.joint.coords();
            for axis in 0..body.joint.velocity_width() {
                let (_, rest) = link.joint.spring(3 + axis);
                let stretch = f64::from(rest) - f64::from(coords[3 + axis]);
                out[v + axis] = pd.kp * stretch - pd.kd * f64::from(qdot[start + axis]);
            }
        }
        Ok(())
    }

    /// Why the state is out of range, if it is.
    fn divergence(&self) -> Option<String> {
        if !self.world.quarantine().is_empty() {
            return Some("rapier quarantined a non-finite body".into());
        }
        let Ok(mb) = self.multibody() else { return Some("the multibody is gone".into()) };
        let qdot = mb.generalized_velocity();
        if let Some(i) = (0..qdot.len()).find(|&i| beyond(f64::from(qdot[i]), MAX_ABS_VELOCITY)) {
            return Some(format!("a generalised velocity of {} (beyond 1e3)", qdot[i]));
        }
        let root = mb.link(0).map(|link| link.local_to_world().translation.as_dvec3());
        match root {
            Some(p) if !beyond(p.abs().max_element(), MAX_ABS_POSITION) => None,
            other => Some(format!("the root at {other:?}")),
        }
    }

    /// The whole state; see the [module docs](self).
    pub fn snapshot(&self) -> Snapshot {
        let saved = Saved {
            fingerprint: self.fingerprint,
            world: &self.world,
            targets: self.targets.clone(),
            target_velocities: self.target_velocities.clone(),
            steps: self.steps,
            diverged: self.diverged,
        };
        // Serialising plain data into a vector cannot fail.
        Snapshot { bytes: postcard::to_allocvec(&saved).unwrap_or_default() }
    }

    /// Restores a [`Self::snapshot`] of a humanoid with the same model and config. A snapshot
    /// that is malformed or from another model or config is an error and changes nothing; one
    /// that decodes is trusted to be what [`Self::snapshot`] wrote.
    pub fn restore(&mut self, snapshot: &Snapshot) -> Result<()> {
        let saved: Saved<PhysicsWorld> =
            postcard::from_bytes(&snapshot.bytes).map_err(|e| PhysicsError::Snapshot(format!("malformed: {e}")))?;
        if saved.fingerprint != self.fingerprint {
            return Err(PhysicsError::Snapshot("made by a humanoid with another model or config".into()));
        }
        let complete = self.bodies.iter().all(|&h| saved.world.bodies.contains(h))
            && saved
                .world
                .multibody_joints
                .get_multibody(self.multibody)
                .is_some_and(|mb| mb.num_links() == self.carriers.iter().enumerate().filter(|(i, c)| c.0 == *i).count())
            && saved.targets.len() == self.targets.len()
            && saved.target_velocities.len() == self.target_velocities.len();
        if !complete {
            return Err(PhysicsError::Snapshot("its world does not hold this humanoid".into()));
        }
        self.world = saved.world;
        self.targets = saved.targets;
        self.target_velocities = saved.target_velocities;
        self.steps = saved.steps;
        self.diverged = saved.diverged;
        Ok(())
    }

    fn multibody(&self) -> Result<&Multibody> {
        self.world
            .multibody_joints
            .get_multibody(self.multibody)
            .ok_or_else(|| PhysicsError::Config("the humanoid's multibody is missing".into()))
    }
}

fn multibody_mut(joints: &mut MultibodyJointSet, index: MultibodyIndex) -> Result<&mut Multibody> {
    joints.get_multibody_mut(index).ok_or_else(|| PhysicsError::Config("the humanoid's multibody is missing".into()))
}

/// A body's collider, its shape at the origin, with the body's mass.
fn collider_of(body: &model::Body, friction: f32) -> ColliderBuilder {
    let collider = match body.shape {
        Shape::Sphere { radius } => ColliderBuilder::ball(radius as f32),
        Shape::Capsule { radius, half_length } => ColliderBuilder::capsule_z(half_length as f32, radius as f32),
        Shape::Box { half_extents: [x, y, z] } => ColliderBuilder::cuboid(x as f32, y as f32, z as f32),
    };
    collider.mass(body.mass as f32).friction(friction)
}

/// A rapier pose from an f64 translation and rotation.
fn rapier_pose(translation: DVec3, rotation: DQuat) -> Pose {
    Pose::from_parts(translation.as_vec3(), rotation.as_quat().normalize())
}

/// Normalises the quaternions of a target vector (checked: none is zero).
fn normalise_quaternions(model: &HumanoidModel, targets: &mut [f64]) {
    for body in model.bodies().iter().filter(|b| b.joint == Joint::Spherical) {
        let t = body.pose_offset - Joint::Free.pose_width();
        let q = model::wxyz(model::quat(&targets[t..t + 4]).normalize());
        targets[t..t + 4].copy_from_slice(&q);
    }
}

/// FNV-1a, 64 bits.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

//! # HumanoidTrack
//!
//! ## Description
//! The DeepMimic humanoid (15 bodies, 28 actuated degrees of freedom, 45 kg; see
//! [`keel_physics::model`]) simulated on rapier3d with implicit PD actuation, tracking a motion
//! clip (DeepMimic's 15 `humanoid3d_*.txt` clips, [`keel_physics::motion`]). The policy sets PD
//! targets at `control_hz` (30 Hz) over physics at `physics_hz` (120 Hz); it is rewarded for
//! staying close to the clip's pose, velocities, end effectors, root and centre of mass, as in
//! DeepMimic (Peng et al. 2018). Built behind keel-envs' `humanoid` feature (the command line
//! and the Python module turn it on) and registered by [`register`].
//!
//! ## Observation space
//! `Box((227 + 135·future_frames + 226·history_len,), float32)`, unbounded. Everything is in the
//! *heading frame*: the root's position on the ground, rotated so that the root faces +x (its yaw
//! removed).
//!
//! | index | what |
//! |---|---|
//! | 0 | root height, m |
//! | 1 + 15·b .. +3 | body `b`'s position relative to the root, m |
//! | +3 .. +9 | body `b`'s rotation: the first two columns of its rotation matrix |
//! | +9 .. +12 | body `b`'s linear velocity, m/s |
//! | +12 .. +15 | body `b`'s angular velocity, rad/s |
//! | 226 | clip phase in `[0, 1]` |
//! | then, per future frame `k` | the reference's body positions (3) and rotations (6), `k` control steps ahead |
//! | then, per history frame `j` | the agent's own state `(history_len - j)·history_stride` steps ago: indices 0..226 of that step's observation |
//!
//! Bodies are in the model's order (`root`, `chest`, `neck`, `right_hip`, ...).
//!
//! **History** (`history_len` > 0; SkillMimic-V2's history encoding, humanoid.md §1.6): the
//! last `history_len` *frames* of the agent's own simulated state, one every `history_stride`
//! policy steps, oldest first, so the block ends with the frame `history_stride` steps before
//! the current one. A frame is the proprioceptive head of the observation of that step (root
//! height and every body's position, rotation and velocities in that step's heading frame,
//! 226 numbers; not the reference, not the phase). At a reset every slot holds the reset's own
//! frame (the first frame repeated), so the block is defined from the first step. The frames
//! live in a ring buffer of `history_len · history_stride` frames allocated once; snapshots
//! carry it.
//!
//! ## Action space
//! `Box(-1, 1, (28,), float32)`: PD targets scaled to joint ranges, in the model's joint order.
//! A ball joint takes 3 numbers, a rotation vector in units of `ball_range` rad; a knee or elbow
//! takes 1, mapped linearly onto its limits (`-1` the lower, `+1` the upper). With
//! `residual_actions` the targets are offsets from the clip's current pose instead (ball: the
//! rotation vector applied on top of the reference rotation; hinge: half the range per unit).
//! Hinge targets are clamped to the joint's limits; finite actions outside `[-1, 1]` are taken
//! as they are (they aim beyond the range), NaN or infinite ones are errors.
//!
//! ## Reward
//! DeepMimic's weighted sum (the pybullet code form, weights normalised to sum to 1):
//! `0.5·r_pose + 0.05·r_vel + 0.15·r_end + 0.2·r_root + 0.1·r_com`, each term `exp(-k·err)`:
//!
//! | term | error | k |
//! |---|---|---|
//! | `pose` | Σ_j w_j · angle(q̂_j q_j⁻¹)², root rotation included | 2 |
//! | `velocity` | Σ_j w_j · ‖v̂_j − v_j‖² over joint velocities and the root's angular velocity | 0.1 |
//! | `end_effector` | mean over the feet and hands of ‖p̂ − p‖² (shape centres) | 40 |
//! | `root` | ‖Δp‖² + 0.1·angle² + 0.01·‖Δv‖² + 0.001·‖Δω‖² | 5 |
//! | `com` | ‖Δ centre of mass‖² | 10 |
//!
//! Joint weights `w_j` are DeepMimic's (root 0.208, chest and hips 0.104, neck, knees and
//! shoulders 0.0625, ankles and elbows 0.042). The reward is 1 exactly when the simulated state
//! equals the reference. On a step that ends in a fall it is 0.
//!
//! ## Per-step extras
//! `reward_pose`, `reward_velocity`, `reward_end_effector`, `reward_root`, `reward_com` (each
//! term in `[0, 1]`, unweighted, so a user can reweight them), `tracking_error` (mean distance
//! of the bodies from the reference's, m), `clip_time` (the reference time, s), `fell`
//! (1 on the step that ended in a fall), `masked` (1 on a masked step) and `tracking_reward`
//! (the step's tracking reward before a masked step's substitution).
//!
//! ## Masked steps
//! The reset parameter `masked_steps` masks an episode's first steps (SkillMimic-V2's "buffer"
//! steps after a start off the reference): their reward is the running mean (weight 0.05) of this
//! env's unmasked rewards on the same clip, a neutral reward while the state converges onto the
//! reference (the official code uses the mean over the envs tracking the clip at that step; a
//! single env has only its own history). A fall still pays 0.
//!
//! ## Starting state
//! Reference state initialisation: the clip's pose and velocity at `start_time` (uniform over
//! the clip when not set). Per-reset parameters (persistent with `set_params`, or for one reset
//! as reset options): `clip` (a name from `keel clips`), `start_time` (s, or `null` for random),
//! and the perturbation hook `pose_noise` (std of Gaussian noise added to every joint angle,
//! rad) and `velocity_noise` (std of noise on every velocity coordinate); `perturbation`
//! (noise on root height, rotation and velocities and on every joint, [`keel_physics::Perturbation`],
//! its `noise` field `"uniform"` or `"official"` (SkillMimic-V2's code as it runs); the config's
//! `perturbation` is its default);
//! `align_reference` (the reference turned about the vertical and shifted on the ground so that
//! its root at the start time lies on the start's root, for starts off the clip); and
//! `masked_steps` (see above). The `state` reset
//! option sets the start exactly: `[clip time, pose (43), velocity (34)]`, the layout of
//! [`Env::state`] (a pose of the wrong length or with a bad value is an error naming it).
//! Every start, drawn or given, is lifted so that no body reaches more than 5 mm (rapier's
//! contact tolerance) under the ground, its lowest point then on the ground, as DeepMimic lifts
//! its character at a reset (frames of the `run` put a foot centimetres under it); the reference
//! is not moved, and [`Env::state`] reports the lifted start.
//!
//! ## Episode end
//! Terminated when a body other than the `contact_bodies` (the feet) touches the ground, or the
//! simulation diverges (reward 0 on that step). Truncated at the end of a clip that does not
//! loop, and by the registered cap of `episode_seconds · control_hz` steps (300: 10 s).
//!
//! ## Config
//! See [`HumanoidTrackConfig`]; the model and clips are read from `data_dir` (default: where
//! `scripts/setup.sh` puts them).
//!
//! ## Version history
//! - v0: DeepMimic's humanoid, reward and early termination, on rapier3d 0.36.1 at 120 Hz.
//!
//! ## Source
//! X. B. Peng, P. Abbeel, S. Levine, M. van de Panne, "DeepMimic: Example-Guided Deep
//! Reinforcement Learning of Physics-Based Character Skills", SIGGRAPH 2018; the reward's code
//! form is pybullet's `humanoid_stable_pd.py`.

use std::borrow::Cow;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use keel_physics::glam::{DQuat, DVec3};
use keel_physics::model::{Joint, quat, rotation_vector, wxyz};
use keel_physics::render::Renderer;
use keel_physics::{
    BodyState, ClipLibrary, DataDir, Humanoid, HumanoidConfig, HumanoidModel, Perturbation, PhysicsError,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::{FieldError, Validate, overlay, positive};
use crate::env::{Env, EnvSpec, Frame, Registered, ResetOptions, Step};
use crate::error::{EnvError, Result};
use crate::obs::ObsMut;
use crate::registry;
use crate::rng::EnvRng;
use crate::space::{Action, BoxSpace, Space};

/// Registers the humanoid family (`keel/HumanoidTrack-v0`); calling it again is harmless.
pub fn register() -> Result<()> {
    registry::register(registry::entry::<HumanoidTrack>())
}

/// Names of the reward terms, in the order of [`RewardWeights`] and of the extras.
pub const TERMS: [&str; 5] = ["pose", "velocity", "end_effector", "root", "com"];

/// Scales `k` of the terms' `exp(-k·err)` (pybullet's DeepMimic).
const SCALES: [f64; 5] = [2.0, 0.1, 40.0, 5.0, 10.0];

/// DeepMimic's joint weights by body name (bodies not listed weigh 0).
const JOINT_WEIGHTS: [(&str, f64); 13] = [
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
const END_EFFECTORS: [&str; 4] = ["right_ankle", "left_ankle", "right_wrist", "left_wrist"];

/// How far a start may reach under the ground before the reset lifts it, m: rapier's contact
/// tolerance (`normalized_allowed_linear_error`, 5 mm), a penetration it leaves as it is and
/// rests bodies within, so a state recorded from a running episode restarts exactly.
const GROUND_SLOP: f64 = 5e-3;

/// Observation numbers per body: position, rotation (two columns), linear and angular velocity.
const PER_BODY: usize = 3 + 6 + 3 + 3;
/// Observation numbers per body and future frame: position and rotation.
const PER_FUTURE_BODY: usize = 3 + 6;

/// Weights of the reward terms; they are normalised to sum to 1.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RewardWeights {
    /// Joint rotations (default 0.5).
    pub pose: f64,
    /// Joint velocities (default 0.05).
    pub velocity: f64,
    /// Feet and hands positions (default 0.15).
    pub end_effector: f64,
    /// Root position, rotation and velocities (default 0.2).
    pub root: f64,
    /// Centre of mass (default 0.1).
    pub com: f64,
}

impl Default for RewardWeights {
    fn default() -> Self {
        Self { pose: 0.5, velocity: 0.05, end_effector: 0.15, root: 0.2, com: 0.1 }
    }
}

impl RewardWeights {
    fn as_array(&self) -> [f64; 5] {
        [self.pose, self.velocity, self.end_effector, self.root, self.com]
    }
}

/// Construction config of [`HumanoidTrack`]. Unknown fields are rejected.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HumanoidTrackConfig {
    /// The clip of every reset unless a reset parameter says otherwise (default `walk`).
    pub clip: String,
    /// Physics steps per second (default 120).
    pub physics_hz: f64,
    /// Policy steps per second (default 30); `physics_hz / control_hz` must be a whole number
    /// of physics steps per policy step, at most 64.
    pub control_hz: f64,
    /// Episode cap in seconds of simulated time (default 10, so 300 policy steps).
    pub episode_seconds: f64,
    /// Future reference frames in the observation, one policy step apart (default 0).
    pub future_frames: usize,
    /// Actions are offsets from the clip's pose instead of absolute targets (default false).
    pub residual_actions: bool,
    /// Rotation, rad, of a ball-joint action of 1 about an axis (default π/2).
    pub ball_range: f64,
    /// The bodies allowed to touch the ground (default the feet: `right_ankle`, `left_ankle`).
    pub contact_bodies: Vec<String>,
    /// Weights of the reward terms.
    pub reward_weights: RewardWeights,
    /// rapier's solver sweeps per step for contacts and limits (default 4).
    pub pgs_iterations: usize,
    /// Width and height of `render` frames, pixels (default `[320, 240]`).
    pub render_size: [usize; 2],
    /// The folder holding `pybullet_data/` and `pybullet_envs/` (default: the Keel cache, where
    /// `scripts/setup.sh` puts them).
    pub data_dir: Option<String>,
    /// Noise on every start the env draws itself (the default of the `perturbation` reset
    /// parameter; default none), uniform or as SkillMimic-V2's code draws it (its `noise`
    /// field). `keel eval --perturb` sets it.
    pub perturbation: Perturbation,
    /// Align the reference to every start (the default of the `align_reference` reset parameter;
    /// default false).
    pub align_reference: bool,
    /// Frames of the agent's own past state appended to the observation (default 0: none;
    /// at most 120). See the module docs' *History*.
    pub history_len: usize,
    /// Policy steps between two history frames (default 1: every step; 1..=30);
    /// `history_len · history_stride` steps are remembered, at most 600.
    pub history_stride: usize,
}

impl Default for HumanoidTrackConfig {
    fn default() -> Self {
        Self {
            clip: "walk".into(),
            physics_hz: 120.0,
            control_hz: 30.0,
            episode_seconds: 10.0,
            future_frames: 0,
            residual_actions: false,
            ball_range: std::f64::consts::FRAC_PI_2,
            contact_bodies: vec!["right_ankle".into(), "left_ankle".into()],
            reward_weights: RewardWeights::default(),
            pgs_iterations: 4,
            render_size: [320, 240],
            data_dir: None,
            perturbation: Perturbation::default(),
            align_reference: false,
            history_len: 0,
            history_stride: 1,
        }
    }
}

impl HumanoidTrackConfig {
    /// Physics steps per policy step.
    pub fn substeps(&self) -> usize {
        (self.physics_hz / self.control_hz).round() as usize
    }

    /// Policy steps the history remembers: `history_len · history_stride`.
    pub fn history_span(&self) -> usize {
        self.history_len * self.history_stride
    }
}

/// Numbers in one history frame of a model of `bodies` bodies: the root height and each body's
/// position, rotation and velocities (the observation's proprioceptive head).
pub fn history_frame_len(bodies: usize) -> usize {
    1 + bodies * PER_BODY
}

impl Validate for HumanoidTrackConfig {
    fn validate(&self) -> Result<(), FieldError> {
        if self.clip.is_empty() {
            return Err(FieldError::new("clip", "must name a clip (`keel clips` lists them)"));
        }
        positive("physics_hz", self.physics_hz)?;
        if self.physics_hz > 10_000.0 {
            return Err(FieldError::new("physics_hz", format!("must be at most 10000, got {}", self.physics_hz)));
        }
        positive("control_hz", self.control_hz)?;
        let ratio = self.physics_hz / self.control_hz;
        if !(ratio >= 0.5 && (ratio - ratio.round()).abs() < 1e-9 && ratio.round() <= 64.0) {
            return Err(FieldError::new(
                "control_hz",
                format!(
                    "physics_hz / control_hz must be a whole number in 1..=64, got {} / {}",
                    self.physics_hz, self.control_hz
                ),
            ));
        }
        positive("episode_seconds", self.episode_seconds)?;
        if self.episode_seconds > 1e6 {
            return Err(FieldError::new(
                "episode_seconds",
                format!("must be at most 1e6, got {}", self.episode_seconds),
            ));
        }
        if self.history_len > 120 {
            return Err(FieldError::new("history_len", format!("must be at most 120 frames, got {}", self.history_len)));
        }
        if !(1..=30).contains(&self.history_stride) {
            return Err(FieldError::new(
                "history_stride",
                format!("must be in 1..=30 policy steps, got {}", self.history_stride),
            ));
        }
        if self.history_span() > 600 {
            return Err(FieldError::new(
                "history_len",
                format!(
                    "history_len · history_stride must be at most 600 steps, got {} · {} = {}",
                    self.history_len,
                    self.history_stride,
                    self.history_span()
                ),
            ));
        }
        if self.future_frames > 16 {
            return Err(FieldError::new("future_frames", format!("must be at most 16, got {}", self.future_frames)));
        }
        positive("ball_range", self.ball_range)?;
        if self.ball_range > std::f64::consts::PI {
            return Err(FieldError::new("ball_range", format!("must be at most π, got {}", self.ball_range)));
        }
        let w = self.reward_weights.as_array();
        if w.iter().any(|x| !(x.is_finite() && *x >= 0.0)) || w.iter().sum::<f64>() <= 0.0 {
            return Err(FieldError::new("reward_weights", format!("must be finite, ≥ 0 and not all 0, got {w:?}")));
        }
        if !(1..=64).contains(&self.pgs_iterations) {
            return Err(FieldError::new("pgs_iterations", format!("must be in 1..=64, got {}", self.pgs_iterations)));
        }
        let [width, height] = self.render_size;
        if !(16..=4096).contains(&width) || !(16..=4096).contains(&height) {
            return Err(FieldError::new(
                "render_size",
                format!("each side must be in 16..=4096, got {:?}", self.render_size),
            ));
        }
        self.perturbation.check().map_err(|(field, message)| FieldError::new("perturbation", format!("`{field}` {message}")))

    }
}

/// Per-reset parameters (see the module docs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HumanoidTrackParams {
    /// The clip to track.
    pub clip: String,
    /// Clip time to start at, s; `None`: uniform over the clip.
    pub start_time: Option<f64>,
    /// Std of Gaussian noise on every joint angle of the start pose, rad.
    pub pose_noise: f64,
    /// Std of Gaussian noise on every coordinate of the start velocity.
    pub velocity_noise: f64,
    /// Noise on a start the env draws itself ([`Perturbation`]).
    pub perturbation: Perturbation,
    /// Move the reference (yaw about the vertical and a horizontal shift, held for the
    /// episode) so that its root at the start time lies on the start state's root: what a
    /// start off the reference (perturbed, or the state of another clip) tracks.
    pub align_reference: bool,
    /// The episode's first `masked_steps` steps are masked: their reward is the substitute
    /// (see the module docs), not the tracking reward. At most 100.
    pub masked_steps: u32,
}

impl Default for HumanoidTrackParams {
    fn default() -> Self {
        Self {
            clip: "walk".into(),
            start_time: None,
            pose_noise: 0.0,
            velocity_noise: 0.0,
            perturbation: Perturbation::default(),
            align_reference: false,
            masked_steps: 0,
        }
    }
}

impl Validate for HumanoidTrackParams {
    fn validate(&self) -> Result<(), FieldError> {
        if let Some(t) = self.start_time {
            if !(t.is_finite() && t >= 0.0) {
                return Err(FieldError::new("start_time", format!("must be finite and ≥ 0 s, or null, got {t}")));
            }
        }
        for (field, value, max) in [("pose_noise", self.pose_noise, 1.0), ("velocity_noise", self.velocity_noise, 10.0)]
        {
            if !(value.is_finite() && (0.0..=max).contains(&value)) {
                return Err(FieldError::new(field, format!("must be in [0, {max}], got {value}")));
            }
        }
        if self.masked_steps > 100 {
            return Err(FieldError::new("masked_steps", format!("must be at most 100, got {}", self.masked_steps)));
        }
        self.perturbation.check().map_err(|(field, message)| FieldError::new("perturbation", format!("`{field}` {message}")))
    }
}

/// The model and clips of one data folder, read once per process.
struct Assets {
    root: std::path::PathBuf,
    model: Arc<HumanoidModel>,
    clips: ClipLibrary,
}

static ASSETS: LazyLock<Mutex<Vec<Arc<Assets>>>> = LazyLock::new(|| Mutex::new(Vec::new()));

fn assets(dir: Option<&str>) -> Result<Arc<Assets>> {
    let data = match dir {
        Some(dir) => DataDir::at(dir),
        None => DataDir::locate(),
    }
    .map_err(physics_error)?;
    let mut cache = ASSETS.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(found) = cache.iter().find(|a| a.root == data.root()) {
        return Ok(Arc::clone(found));
    }
    let model = Arc::new(HumanoidModel::load(&data).map_err(physics_error)?);
    let clips = ClipLibrary::load(&data, &model).map_err(physics_error)?;
    let loaded = Arc::new(Assets { root: data.root().to_owned(), model, clips });
    cache.push(Arc::clone(&loaded));
    Ok(loaded)
}

/// A keel-physics error as an env error.
fn physics_error(err: PhysicsError) -> EnvError {
    match err {
        PhysicsError::DataMissing(why) => EnvError::DataMissing(why),
        PhysicsError::BadFile { .. } => EnvError::DataMissing(format!("{err}; reinstall with `bash scripts/setup.sh`")),
        PhysicsError::UnknownClip { .. } => EnvError::InvalidField {
            context: format!("{} clip", HumanoidTrack::ID),
            field: "clip".into(),
            message: err.to_string(),
        },
        PhysicsError::Config(_) => EnvError::InvalidModel(err.to_string()),
        _ => EnvError::InvalidState(err.to_string()),
    }
}

/// The pieces of the model the env reads every step, gathered once.
struct Layout {
    /// Joint weight of each body.
    weights: Vec<f64>,
    /// Bodies of the `end_effector` term.
    end_effectors: Vec<usize>,
    /// Whether each body may touch the ground.
    may_touch: Vec<bool>,
    /// Mass of each body over the total.
    mass_fraction: Vec<f64>,
}

impl Layout {
    fn new(model: &HumanoidModel, contact_bodies: &[String]) -> Result<Self> {
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
struct Side {
    pose: Vec<f64>,
    velocity: Vec<f64>,
    bodies: Vec<BodyState>,
}

impl Side {
    fn new(model: &HumanoidModel) -> Self {
        Self {
            pose: model.zero_pose(),
            velocity: vec![0.0; model.velocity_len()],
            bodies: vec![BodyState::default(); model.bodies().len()],
        }
    }

    /// The centre of mass.
    fn com(&self, model: &HumanoidModel, layout: &Layout) -> DVec3 {
        model
            .bodies()
            .iter()
            .zip(&self.bodies)
            .zip(&layout.mass_fraction)
            .map(|((body, state), m)| {
                (DVec3::from(state.position) + quat(&state.rotation) * DVec3::from(body.com)) * *m
            })
            .sum()
    }

    /// Where body `i`'s collision shape is centred.
    fn shape_centre(&self, model: &HumanoidModel, i: usize) -> DVec3 {
        let state = &self.bodies[i];
        DVec3::from(state.position) + quat(&state.rotation) * DVec3::from(model.bodies()[i].shape_origin)
    }
}

/// The five reward terms (unweighted, each in `[0, 1]`) of a simulated state against a
/// reference, and the mean body distance, m. Equal states give `[1; 5]` and 0.
fn tracking_terms(model: &HumanoidModel, layout: &Layout, sim: &Side, reference: &Side) -> ([f64; 5], f64) {
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
    let end_err = layout
        .end_effectors
        .iter()
        .map(|&i| (reference.shape_centre(model, i) - sim.shape_centre(model, i)).length_squared())
        .sum::<f64>()
        / layout.end_effectors.len().max(1) as f64;
    let root_err = {
        let dp = DVec3::from_slice(&reference.pose[0..3]) - DVec3::from_slice(&sim.pose[0..3]);
        let rot = angle(&reference.pose[3..7], &sim.pose[3..7]);
        let dv = DVec3::from_slice(&reference.velocity[0..3]) - DVec3::from_slice(&sim.velocity[0..3]);
        let dw = DVec3::from_slice(&reference.velocity[3..6]) - DVec3::from_slice(&sim.velocity[3..6]);
        dp.length_squared() + 0.1 * rot * rot + 0.01 * dv.length_squared() + 0.001 * dw.length_squared()
    };
    let com_err = (reference.com(model, layout) - sim.com(model, layout)).length_squared();
    let errors = [pose_err, vel_err, end_err, root_err, com_err];
    let mut terms = [0.0; 5];
    for ((t, e), k) in terms.iter_mut().zip(errors).zip(SCALES) {
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
fn angle(a: &[f64], b: &[f64]) -> f64 {
    rotation_vector(quat(a).normalize() * quat(b).normalize().inverse()).length()
}

/// Writes `v` at `obs[*k..*k + 3]` as `f32` and moves `k` past it.
fn put_vec3(obs: &mut [f32], k: &mut usize, v: DVec3) {
    obs[*k..*k + 3].copy_from_slice(&[v.x as f32, v.y as f32, v.z as f32]);
    *k += 3;
}

/// The inverse of the heading rotation (yaw about +y) of a root rotation; the character faces +x.
fn inverse_heading(root: DQuat) -> DQuat {
    let facing = root * DVec3::X;
    DQuat::from_rotation_y(-f64::atan2(-facing.z, facing.x))
}

/// A move of the reference onto the start: a yaw about the vertical through `from` (the
/// reference root at the start), then a horizontal shift onto `to` (the start's root).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
struct Align {
    yaw: f64,
    from: [f64; 3],
    to: [f64; 3],
}

impl Align {
    /// The move that puts the root of `reference` (a pose) on the root of `start`.
    fn between(reference: &[f64], start: &[f64]) -> Self {
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

    fn pose(&self, pose: &mut [f64]) {
        let r = DQuat::from_rotation_y(self.yaw);
        let d = r * DVec3::new(pose[0] - self.from[0], 0.0, pose[2] - self.from[2]);
        pose[0] = self.to[0] + d.x;
        pose[2] = self.to[2] + d.z;
        let q = (r * quat(&pose[3..7])).normalize();
        pose[3..7].copy_from_slice(&wxyz(q));
    }

    fn velocity(&self, velocity: &mut [f64]) {
        let r = DQuat::from_rotation_y(self.yaw);
        for k in [0, 3] {
            let v = r * DVec3::from_slice(&velocity[k..k + 3]);
            velocity[k..k + 3].copy_from_slice(&v.to_array());
        }
    }
}

/// What the env saves in a snapshot besides the humanoid.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Episode {
    clip: usize,
    time: f64,
    started: bool,
    /// The state the last reset set, reported by `state()` until the first step.
    set_state: Option<Vec<f64>>,
    terms: [f64; 5],
    tracking_error: f64,
    fell: bool,
    /// How the reference is moved onto the start (`align_reference`).
    #[serde(default)]
    align: Option<Align>,
    /// Masked steps still to come.
    #[serde(default)]
    masked_left: u32,
    /// The last step was masked.
    #[serde(default)]
    masked: bool,
    /// The tracking reward of the last step, before any substitution.
    #[serde(default)]
    raw_reward: f64,
}

impl Episode {
    fn new(clip: usize, time: f64, started: bool) -> Self {
        Self {
            clip,
            time,
            started,
            set_state: None,
            terms: [0.0; 5],
            tracking_error: 0.0,
            fell: false,
            align: None,
            masked_left: 0,
            masked: false,
            raw_reward: 0.0,
        }
    }
}

/// The agent's past frames: a ring of `history_len · history_stride` frames, allocated once.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct History {
    /// `span` frames of `frame_len` numbers; `head` is the oldest, where the next one goes.
    frames: Vec<f32>,
    head: usize,
    /// The next observation fills every slot with its own frame (set by a reset).
    #[serde(skip)]
    fill: bool,
}

impl History {
    fn new(span: usize, frame_len: usize) -> Self {
        Self { frames: vec![0.0; span * frame_len], head: 0, fill: true }
    }

    /// Writes the block of `len` frames, one every `stride` steps and oldest first, into `out`
    /// (`len · frame.len()` numbers), then remembers `frame`, the current step's. After a reset
    /// every slot is `frame` first.
    fn write_and_push(&mut self, frame: &[f32], len: usize, stride: usize, out: &mut [f32]) {
        let d = frame.len();
        let span = len * stride;
        if span == 0 {
            return;
        }
        if self.fill {
            for slot in self.frames.chunks_exact_mut(d) {
                slot.copy_from_slice(frame);
            }
            self.head = 0;
            self.fill = false;
        }
        for (j, block) in out.chunks_exact_mut(d).enumerate() {
            // Frame `age` steps back sits `age` slots before the head (the next slot to write).
            let age = (len - j) * stride;
            let slot = (self.head + span - age) % span;
            block.copy_from_slice(&self.frames[slot * d..(slot + 1) * d]);
        }
        self.frames[self.head * d..(self.head + 1) * d].copy_from_slice(frame);
        self.head = (self.head + 1) % span;
    }
}

/// The DeepMimic tracking env (see the module docs).
pub struct HumanoidTrack {
    config: HumanoidTrackConfig,
    spec: EnvSpec,
    assets: Arc<Assets>,
    layout: Layout,
    humanoid: Humanoid,
    /// The world as built: every reset starts from it, so that no contact or solver cache of
    /// an earlier episode reaches the next (same seed, same episode, whatever came before).
    fresh: keel_physics::Snapshot,
    rng: EnvRng,
    params: HumanoidTrackParams,
    episode: Episode,
    /// Per clip, the running mean of this env's unmasked rewards: the reward of a masked step.
    substitute: Vec<f64>,
    /// The agent's past frames (`history_len` > 0).
    history: History,
    /// Numbers per history frame.
    frame_len: usize,
    weights: [f64; 5],
    substeps: usize,
    control_dt: f64,
    // Scratch buffers, allocated once.
    sim: Side,
    reference: Side,
    future: Side,
    targets: Vec<f64>,
    contacts: Vec<bool>,
    renderer: Option<Renderer>,
    frame: Frame,
}

impl Registered for HumanoidTrack {
    const ID: &'static str = "keel/HumanoidTrack-v0";
    const DESCRIPTION: &'static str =
        "DeepMimic humanoid on rapier3d tracking a motion clip (needs scripts/setup.sh's data)";
    const MAX_EPISODE_STEPS: Option<u64> = Some(300);
    type Config = HumanoidTrackConfig;

    fn spec(config: &HumanoidTrackConfig) -> Result<EnvSpec> {
        let assets = assets(config.data_dir.as_deref())?;
        let model = &assets.model;
        let bodies = model.bodies().len();
        let obs_len = 1
            + bodies * PER_BODY
            + 1
            + config.future_frames * bodies * PER_FUTURE_BODY
            + config.history_len * history_frame_len(bodies);
        let n = model.actuated_dofs();
        let mut extras: Vec<String> = TERMS.iter().map(|t| format!("reward_{t}")).collect();
        extras.extend(
            ["tracking_error", "clip_time", "fell", "masked", "tracking_reward"].map(String::from),
        );
        Ok(EnvSpec {
            id: Self::ID.into(),
            observation_space: Space::Box(BoxSpace::vector(
                vec![f64::NEG_INFINITY; obs_len],
                vec![f64::INFINITY; obs_len],
            )),
            action_space: Space::Box(BoxSpace::vector(vec![-1.0; n], vec![1.0; n])),
            max_episode_steps: Self::episode_cap(config),
            reward_threshold: None,
            state_len: Some(1 + model.pose_len() + model.velocity_len()),
            extras,
        })
    }

    fn new(config: HumanoidTrackConfig) -> Result<Self> {
        let spec = <Self as Registered>::spec(&config)?;
        let assets = assets(config.data_dir.as_deref())?;
        let model = Arc::clone(&assets.model);
        let clip = clip_index(&assets, &config.clip)?;
        let layout = Layout::new(&model, &config.contact_bodies)?;
        let physics = HumanoidConfig {
            dt: 1.0 / config.physics_hz,
            pgs_iterations: config.pgs_iterations,
            ..HumanoidConfig::default()
        };
        let humanoid = Humanoid::new(Arc::clone(&model), physics).map_err(physics_error)?;
        let fresh = humanoid.snapshot();
        let w = config.reward_weights.as_array();
        let total: f64 = w.iter().sum();
        let params = HumanoidTrackParams {
            clip: config.clip.clone(),
            perturbation: config.perturbation,
            align_reference: config.align_reference,
            ..HumanoidTrackParams::default()
        };
        let substitute = vec![f64::NAN; assets.clips.clips().len()];
        let frame_len = history_frame_len(model.bodies().len());
        Ok(Self {
            history: History::new(config.history_span(), frame_len),
            frame_len,
            spec,
            layout,
            humanoid,
            fresh,
            rng: EnvRng::default(),
            params,
            episode: Episode::new(clip, 0.0, false),
            substitute,
            weights: w.map(|x| x / total),
            substeps: config.substeps(),
            control_dt: 1.0 / config.control_hz,
            sim: Side::new(&model),
            reference: Side::new(&model),
            future: Side::new(&model),
            targets: vec![0.0; model.targets_len()],
            contacts: vec![false; model.bodies().len()],
            renderer: None,
            frame: Frame::default(),
            assets,
            config,
        })
    }

    fn episode_cap(config: &HumanoidTrackConfig) -> Option<u64> {
        Some(((config.episode_seconds * config.control_hz).round() as u64).max(1))
    }

    fn memory_estimate(config: &HumanoidTrackConfig) -> u64 {
        // A rapier world of 16 bodies, its multibody and scratch buffers, and the history ring.
        256 * 1024 + (config.history_span() * history_frame_len(16) * 4) as u64
    }
}

fn clip_index(assets: &Assets, name: &str) -> Result<usize> {
    assets.clips.get(name).map_err(physics_error)?;
    Ok(assets.clips.clips().iter().position(|c| c.name() == name).unwrap_or(0))
}

/// A standard normal draw (Box–Muller).
fn normal(rng: &mut EnvRng) -> f64 {
    let u1 = 1.0 - rng.uniform(0.0, 1.0);
    let u2 = rng.uniform(0.0, 1.0);
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

impl HumanoidTrack {
    /// The validated config.
    pub fn config(&self) -> &HumanoidTrackConfig {
        &self.config
    }

    /// The simulated humanoid.
    pub fn humanoid(&self) -> &Humanoid {
        &self.humanoid
    }

    /// The clip being tracked.
    pub fn clip(&self) -> &keel_physics::Clip {
        &self.assets.clips.clips()[self.episode.clip]
    }

    /// The reference time, s.
    pub fn clip_time(&self) -> f64 {
        self.episode.time
    }

    /// The unweighted reward terms of the last reset or step, in [`TERMS`] order.
    pub fn reward_terms(&self) -> [f64; 5] {
        self.episode.terms
    }

    /// Reads the simulated state, samples the reference at the current time and scores them.
    fn score(&mut self) -> Result<()> {
        let model = &self.assets.model;
        let clip = &self.assets.clips.clips()[self.episode.clip];
        self.humanoid.write_pose(&mut self.sim.pose).map_err(physics_error)?;
        self.humanoid.write_velocity(&mut self.sim.velocity).map_err(physics_error)?;
        self.humanoid.write_body_states(&mut self.sim.bodies).map_err(physics_error)?;
        clip.write_pose_at(self.episode.time, &mut self.reference.pose).map_err(physics_error)?;
        clip.write_velocity_at(self.episode.time, &mut self.reference.velocity).map_err(physics_error)?;
        if let Some(align) = &self.episode.align {
            align.pose(&mut self.reference.pose);
            align.velocity(&mut self.reference.velocity);
        }
        model
            .write_body_states(&self.reference.pose, Some(&self.reference.velocity), &mut self.reference.bodies)
            .map_err(physics_error)?;
        let (terms, distance) = tracking_terms(model, &self.layout, &self.sim, &self.reference);
        self.episode.terms = terms;
        self.episode.tracking_error = distance;
        Ok(())
    }

    /// The weighted reward of the current terms.
    fn reward(&self) -> f64 {
        self.episode.terms.iter().zip(self.weights).map(|(t, w)| t * w).sum()
    }

    /// Writes the observation of the current (scored) state.
    fn write_obs(&mut self, obs: &mut [f32]) -> Result<()> {
        let root = &self.sim.bodies[0];
        let root_position = DVec3::from(root.position);
        let heading = inverse_heading(quat(&root.rotation));
        obs[0] = root_position.y as f32;
        let mut k = 1;
        let mut put = |obs: &mut [f32], v: DVec3| put_vec3(obs, &mut k, v);
        for b in &self.sim.bodies {
            let rotation = heading * quat(&b.rotation);
            put(obs, heading * (DVec3::from(b.position) - root_position));
            put(obs, rotation * DVec3::X);
            put(obs, rotation * DVec3::Y);
            put(obs, heading * DVec3::from(b.linvel));
            put(obs, heading * DVec3::from(b.angvel));
        }
        let clip = &self.assets.clips.clips()[self.episode.clip];
        let phase = self.episode.time / clip.duration();
        obs[k] = if clip.looping() { phase.rem_euclid(1.0) } else { phase.clamp(0.0, 1.0) } as f32;
        k += 1;
        for frame in 1..=self.config.future_frames {
            let t = self.episode.time + frame as f64 * self.control_dt;
            clip.write_pose_at(t, &mut self.future.pose).map_err(physics_error)?;
            if let Some(align) = &self.episode.align {
                align.pose(&mut self.future.pose);
            }
            self.assets
                .model
                .write_body_states(&self.future.pose, None, &mut self.future.bodies)
                .map_err(physics_error)?;
            let mut put = |obs: &mut [f32], v: DVec3| put_vec3(obs, &mut k, v);
            for b in &self.future.bodies {
                let rotation = heading * quat(&b.rotation);
                put(obs, heading * (DVec3::from(b.position) - root_position));
                put(obs, rotation * DVec3::X);
                put(obs, rotation * DVec3::Y);
            }
        }
        let (head, rest) = obs.split_at_mut(self.frame_len);
        let block = &mut rest[k - self.frame_len..];
        self.history.write_and_push(head, self.config.history_len, self.config.history_stride, block);
        Ok(())
    }

    /// The PD targets of an action (checked: finite, of the right length).
    fn write_targets(&mut self, action: &[f32]) -> Result<()> {
        let model = &self.assets.model;
        if self.config.residual_actions {
            let clip = &self.assets.clips.clips()[self.episode.clip];
            clip.write_pose_at(self.episode.time + self.control_dt, &mut self.future.pose).map_err(physics_error)?;
        }
        let free = Joint::Free.pose_width();
        let mut a = 0;
        for body in model.bodies() {
            let t = body.pose_offset.wrapping_sub(free);
            match body.joint {
                Joint::Spherical => {
                    let v = DVec3::new(f64::from(action[a]), f64::from(action[a + 1]), f64::from(action[a + 2]));
                    let mut q = DQuat::from_scaled_axis(v * self.config.ball_range);
                    if self.config.residual_actions {
                        q = q * quat(&self.future.pose[body.pose_offset..body.pose_offset + 4]).normalize();
                    }
                    self.targets[t..t + 4].copy_from_slice(&wxyz(q));
                    a += 3;
                }
                Joint::Revolute { limits: [lo, hi], .. } => {
                    let (mid, half) = ((lo + hi) / 2.0, (hi - lo) / 2.0);
                    let base = if self.config.residual_actions { self.future.pose[body.pose_offset] } else { mid };
                    self.targets[t] = (base + f64::from(action[a]) * half).clamp(lo, hi);
                    a += 1;
                }
                Joint::Free | Joint::Fixed => {}
            }
        }
        self.humanoid.set_targets(&self.targets).map_err(physics_error)
    }

    /// Checks an explicit start state: `[time, pose, velocity]`.
    fn check_state(&self, state: &[f64]) -> Result<()> {
        let model = &self.assets.model;
        let want = 1 + model.pose_len() + model.velocity_len();
        if state.len() != want {
            return Err(EnvError::InvalidState(format!(
                "expected {want} values (clip time, pose ({}), velocity ({})), got {}",
                model.pose_len(),
                model.velocity_len(),
                state.len()
            )));
        }
        if !(state[0].is_finite() && state[0] >= 0.0) {
            return Err(EnvError::InvalidState(format!(
                "the clip time (state[0]) must be finite and ≥ 0, got {}",
                state[0]
            )));
        }
        let (pose, velocity) = state[1..].split_at(model.pose_len());
        model.check_pose(pose).map_err(|e| EnvError::InvalidState(format!("pose: {e}")))?;
        model.check_velocity(velocity).map_err(|e| EnvError::InvalidState(format!("velocity: {e}")))?;
        Ok(())
    }

    /// Adds the perturbation hook's noise to the start state in `reference`.
    fn perturb(&mut self, pose_noise: f64, velocity_noise: f64) {
        if pose_noise > 0.0 {
            for body in self.assets.model.bodies() {
                let p = body.pose_offset;
                match body.joint {
                    Joint::Spherical => {
                        let n = DVec3::new(normal(&mut self.rng), normal(&mut self.rng), normal(&mut self.rng))
                            * pose_noise;
                        let q = DQuat::from_scaled_axis(n) * quat(&self.sim.pose[p..p + 4]).normalize();
                        self.sim.pose[p..p + 4].copy_from_slice(&wxyz(q));
                    }
                    Joint::Revolute { limits: [lo, hi], .. } => {
                        self.sim.pose[p] = (self.sim.pose[p] + normal(&mut self.rng) * pose_noise).clamp(lo, hi);
                    }
                    Joint::Free | Joint::Fixed => {}
                }
            }
        }
        if velocity_noise > 0.0 {
            for v in &mut self.sim.velocity {
                *v += normal(&mut self.rng) * velocity_noise;
            }
        }
    }

    /// Lifts the start in `sim` so that no body is under the ground, as DeepMimic does at a
    /// reset: some clip frames (the `run`'s among them) and perturbed starts put a foot a few
    /// centimetres into it, which rapier would resolve with a jolt. Penetrations within
    /// [`GROUND_SLOP`] are left as they are.
    fn lift_start(&mut self) -> Result<()> {
        let model = &self.assets.model;
        model.write_body_states(&self.sim.pose, None, &mut self.sim.bodies).map_err(physics_error)?;
        let lowest = model.lowest_point(&self.sim.bodies);
        if lowest < -GROUND_SLOP {
            self.sim.pose[1] -= lowest;
        }
        Ok(())
    }

    fn extras_array(&self) -> [f64; 10] {
        let [a, b, c, d, e] = self.episode.terms;
        let flag = |b: bool| f64::from(u8::from(b));
        let ep = &self.episode;
        [a, b, c, d, e, ep.tracking_error, ep.time, flag(ep.fell), flag(ep.masked), ep.raw_reward]
    }
}

impl Env for HumanoidTrack {
    fn spec(&self) -> &EnvSpec {
        &self.spec
    }

    fn reset(&mut self, seed: Option<u64>, options: &ResetOptions, obs: ObsMut<'_>) -> Result<()> {
        let obs = obs.f32(self.spec.obs_len())?;
        let context = format!("{} reset options", Self::ID);
        let params: Cow<'_, HumanoidTrackParams> = overlay(&self.params, &options.params, &context)?;
        let clip_id = clip_index(&self.assets, &params.clip)?;
        if let Some(state) = &options.state {
            self.check_state(state)?;
        }
        let (start_time, pose_noise, velocity_noise) = (params.start_time, params.pose_noise, params.velocity_noise);
        let (perturbation, align_reference, masked_steps) =
            (params.perturbation, params.align_reference, params.masked_steps);
        drop(params);
        self.rng.reseed(seed);
        let clip = &self.assets.clips.clips()[clip_id];
        let pose_len = self.assets.model.pose_len();
        let state = match &options.state {
            Some(state) => {
                self.sim.pose.copy_from_slice(&state[1..1 + pose_len]);
                self.sim.velocity.copy_from_slice(&state[1 + pose_len..]);
                state[0]
            }
            None => {
                let span = if clip.looping() { clip.duration() } else { (clip.duration() - self.control_dt).max(0.0) };
                let time = match start_time {
                    Some(t) => t,
                    None => self.rng.uniform(0.0, span),
                };
                clip.write_pose_at(time, &mut self.sim.pose).map_err(physics_error)?;
                clip.write_velocity_at(time, &mut self.sim.velocity).map_err(physics_error)?;
                self.perturb(pose_noise, velocity_noise);
                if !perturbation.is_zero() {
                    let rng = &mut self.rng;
                    perturbation.apply(&self.assets.model, &mut self.sim.pose, &mut self.sim.velocity, &mut || {
                        rng.uniform(0.0, 1.0)
                    });
                }
                time
            }
        };
        self.lift_start()?;
        let align = if align_reference {
            let clip = &self.assets.clips.clips()[clip_id];
            clip.write_pose_at(state, &mut self.reference.pose).map_err(physics_error)?;
            Some(Align::between(&self.reference.pose, &self.sim.pose))
        } else {
            None
        };
        self.humanoid.restore(&self.fresh).map_err(physics_error)?;
        self.humanoid.set_state(&self.sim.pose, &self.sim.velocity).map_err(physics_error)?;
        let mut reported = Vec::with_capacity(1 + pose_len + self.sim.velocity.len());
        reported.push(state);
        reported.extend_from_slice(&self.sim.pose);
        reported.extend_from_slice(&self.sim.velocity);
        self.episode = Episode {
            set_state: Some(reported),
            align,
            masked_left: masked_steps,
            ..Episode::new(clip_id, state, true)
        };
        self.history.fill = true;
        self.score()?;
        self.write_obs(obs)
    }

    fn step(&mut self, action: Action<'_>, obs: ObsMut<'_>) -> Result<Step> {
        let obs = obs.f32(self.spec.obs_len())?;
        let action = self.spec.action_space.box_action(action)?;
        if !self.episode.started {
            return Err(EnvError::ResetNeeded);
        }
        self.write_targets(action)?;
        let mut fell = false;
        let mut diverged = false;
        for _ in 0..self.substeps {
            match self.humanoid.step() {
                Ok(()) => {}
                Err(PhysicsError::Diverged { .. }) => {
                    diverged = true;
                    break;
                }
                Err(e) => return Err(physics_error(e)),
            }
            self.humanoid.write_ground_contacts(&mut self.contacts).map_err(physics_error)?;
            fell |= self.contacts.iter().zip(&self.layout.may_touch).any(|(touch, may)| *touch && !may);
        }
        self.episode.time += self.control_dt;
        self.episode.set_state = None;
        if diverged {
            // The state is not finite: the observation is the reference's, the episode over.
            let model = &self.assets.model;
            let clip = &self.assets.clips.clips()[self.episode.clip];
            clip.write_pose_at(self.episode.time, &mut self.sim.pose).map_err(physics_error)?;
            model.write_body_states(&self.sim.pose, None, &mut self.sim.bodies).map_err(physics_error)?;
            self.episode.terms = [0.0; 5];
            self.episode.fell = true;
            self.episode.raw_reward = 0.0;
            self.episode.masked = self.episode.masked_left > 0;
            self.write_obs(obs)?;
            return Ok(Step { reward: 0.0, terminated: true, truncated: false });
        }
        self.score()?;
        self.episode.fell = fell;
        self.write_obs(obs)?;
        let clip = self.clip();
        let truncated = !fell && !clip.looping() && self.episode.time >= clip.duration() - 1e-9;
        let raw = if fell { 0.0 } else { self.reward() };
        self.episode.raw_reward = raw;
        let substitute = &mut self.substitute[self.episode.clip];
        let reward = if self.episode.masked_left > 0 {
            // A masked step: the policy is still finding its way onto the reference, so it gets
            // what this clip usually pays (a fall still pays nothing).
            self.episode.masked_left -= 1;
            self.episode.masked = true;
            if fell || substitute.is_nan() { raw } else { *substitute }
        } else {
            self.episode.masked = false;
            *substitute = if substitute.is_nan() { raw } else { 0.95 * *substitute + 0.05 * raw };
            raw
        };
        Ok(Step { reward, terminated: fell, truncated })
    }

    fn write_extras(&self, out: &mut [f64]) {
        for (o, v) in out.iter_mut().zip(self.extras_array()) {
            *o = v;
        }
    }

    /// Draws the simulated humanoid and, as a translucent ghost, the reference into an RGB
    /// frame of `render_size`, the camera following the root.
    fn render(&mut self) -> Result<Option<&Frame>> {
        if !self.episode.started {
            return Err(EnvError::ResetNeeded);
        }
        let [width, height] = self.config.render_size;
        let renderer = self.renderer.get_or_insert_with(|| Renderer::new(width, height));
        renderer.draw(&self.assets.model, &self.sim.bodies, Some(&self.reference.bodies));
        let drawn = renderer.frame();
        self.frame.width = drawn.width;
        self.frame.height = drawn.height;
        self.frame.rgb.clone_from(&drawn.rgb);
        Ok(Some(&self.frame))
    }

    fn state(&self) -> Option<Vec<f64>> {
        if !self.episode.started {
            return None;
        }
        if let Some(state) = &self.episode.set_state {
            return Some(state.clone());
        }
        let mut state = vec![self.episode.time];
        state.extend(self.humanoid.pose());
        state.extend(self.humanoid.velocity());
        Some(state)
    }

    fn set_params(&mut self, params: &Map<String, Value>) -> Result<()> {
        let context = format!("{} reset parameters", Self::ID);
        let next = overlay(&self.params, params, &context)?.into_owned();
        clip_index(&self.assets, &next.clip)?;
        self.params = next;
        Ok(())
    }

    fn params(&self) -> Value {
        serde_json::to_value(&self.params).unwrap_or(Value::Null)
    }

    fn snapshot(&self) -> Option<Value> {
        let mut map = Map::new();
        map.insert("humanoid".into(), serde_json::to_value(self.humanoid.snapshot()).ok()?);
        map.insert("rng".into(), serde_json::to_value(&self.rng).ok()?);
        map.insert("params".into(), serde_json::to_value(&self.params).ok()?);
        map.insert("episode".into(), serde_json::to_value(&self.episode).ok()?);
        map.insert("substitute".into(), serde_json::to_value(&self.substitute).ok()?);
        if self.config.history_len > 0 {
            map.insert("history".into(), serde_json::to_value(&self.history).ok()?);
        }
        Some(Value::Object(map))
    }

    fn restore(&mut self, snapshot: &Value) -> Result<()> {
        let field = |name: &str| {
            snapshot.get(name).cloned().ok_or_else(|| EnvError::Snapshot(format!("{}: no `{name}`", Self::ID)))
        };
        let bad = |name: &str, e: serde_json::Error| EnvError::Snapshot(format!("{}: `{name}`: {e}", Self::ID));
        let humanoid: keel_physics::Snapshot =
            serde_json::from_value(field("humanoid")?).map_err(|e| bad("humanoid", e))?;
        let rng: EnvRng = serde_json::from_value(field("rng")?).map_err(|e| bad("rng", e))?;
        let params: HumanoidTrackParams = serde_json::from_value(field("params")?).map_err(|e| bad("params", e))?;
        let episode: Episode = serde_json::from_value(field("episode")?).map_err(|e| bad("episode", e))?;
        let substitute: Vec<f64> = match snapshot.get("substitute") {
            // NaN (no reward seen yet) is saved as null.
            Some(Value::Array(values)) => values.iter().map(|v| v.as_f64().unwrap_or(f64::NAN)).collect(),
            _ => vec![f64::NAN; self.substitute.len()],
        };
        if substitute.len() != self.substitute.len() {
            return Err(EnvError::Snapshot(format!("{}: `substitute` has {} clips", Self::ID, substitute.len())));
        }
        let history = if self.config.history_len > 0 {
            let mut history: History = serde_json::from_value(field("history")?).map_err(|e| bad("history", e))?;
            let span = self.config.history_span();
            if history.frames.len() != self.history.frames.len() || history.head >= span {
                return Err(EnvError::Snapshot(format!(
                    "{}: `history` holds {} numbers (head {}), this config's holds {} ({span} frames of {})",
                    Self::ID,
                    history.frames.len(),
                    history.head,
                    self.history.frames.len(),
                    self.frame_len
                )));
            }
            history.fill = false;
            Some(history)
        } else {
            None
        };
        clip_index(&self.assets, &params.clip)?;
        if episode.clip >= self.assets.clips.clips().len() {
            return Err(EnvError::Snapshot(format!("{}: clip index {} out of range", Self::ID, episode.clip)));
        }
        self.humanoid.restore(&humanoid).map_err(|e| EnvError::Snapshot(format!("{}: {e}", Self::ID)))?;
        self.rng = rng;
        self.params = params;
        self.episode = episode;
        self.substitute = substitute;
        if let Some(history) = history {
            // Into the buffer allocated at construction.
            self.history.frames.copy_from_slice(&history.frames);
            self.history.head = history.head;
            self.history.fill = false;
        }
        if self.episode.started {
            let (terms, error, fell) = (self.episode.terms, self.episode.tracking_error, self.episode.fell);
            self.score()?;
            (self.episode.terms, self.episode.tracking_error, self.episode.fell) = (terms, error, fell);
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The env with its data, or `None` (a note, or a failure under
    /// `KEEL_REQUIRE_HUMANOID_DATA=1`) where the data is not installed.
    fn env(overrides: &[(&str, Value)]) -> Option<Box<dyn Env>> {
        register().unwrap();
        let map: Map<String, Value> = overrides.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
        let env = registry::make(HumanoidTrack::ID, &map);
        if crate::testing::Data::Humanoid.missing(HumanoidTrack::ID, &env) { None } else { Some(env.unwrap()) }
    }

    #[test]
    fn the_reward_is_1_with_every_term_1_when_the_state_equals_the_reference() {
        let Ok(assets) = assets(None) else { return };
        let model = &assets.model;
        let layout = Layout::new(model, &["right_ankle".into(), "left_ankle".into()]).unwrap();
        for name in ["walk", "run", "backflip"] {
            let clip = assets.clips.get(name).unwrap();
            let mut reference = Side::new(model);
            let t = 0.37 * clip.duration();
            clip.write_pose_at(t, &mut reference.pose).unwrap();
            clip.write_velocity_at(t, &mut reference.velocity).unwrap();
            model.write_body_states(&reference.pose, Some(&reference.velocity), &mut reference.bodies).unwrap();
            // Exactly the reference.
            let (terms, distance) = tracking_terms(model, &layout, &reference, &reference);
            assert_eq!(terms, [1.0; 5], "{name}");
            assert_eq!(distance, 0.0);
            // The reference written into rapier and read back (f32 inside rapier).
            let mut humanoid = Humanoid::new(Arc::clone(model), HumanoidConfig::default()).unwrap();
            humanoid.set_state(&reference.pose, &reference.velocity).unwrap();
            let mut sim = Side::new(model);
            humanoid.write_pose(&mut sim.pose).unwrap();
            humanoid.write_velocity(&mut sim.velocity).unwrap();
            humanoid.write_body_states(&mut sim.bodies).unwrap();
            let (terms, distance) = tracking_terms(model, &layout, &sim, &reference);
            for (term, value) in TERMS.iter().zip(terms) {
                assert!((1.0 - value) < 1e-5, "{name}: {term} = {value}");
            }
            assert!(distance < 1e-5, "{name}: {distance}");
            // A state off the reference scores below 1 in every term it touches.
            sim.pose[8] += 0.3; // the chest's x
            sim.velocity[3] += 1.0; // the root's angular velocity
            model.write_body_states(&sim.pose, Some(&sim.velocity), &mut sim.bodies).unwrap();
            let (terms, _) = tracking_terms(model, &layout, &sim, &reference);
            assert!(terms.iter().all(|t| *t < 0.9999), "{name}: {terms:?}");
        }
    }

    #[test]
    fn a_reset_on_the_reference_scores_1_and_reports_every_term() {
        let Some(mut env) = env(&[("clip", "walk".into())]) else { return };
        let mut obs = env.spec().obs_buffer(1);
        let mut options = ResetOptions::default();
        options.params.insert("start_time".into(), 0.5.into());
        env.reset(Some(1), &options, obs.as_mut()).unwrap();
        let mut extras = vec![0.0; env.spec().extras_len()];
        env.write_extras(&mut extras);
        assert_eq!(
            env.spec().extras[..6],
            ["reward_pose", "reward_velocity", "reward_end_effector", "reward_root", "reward_com", "tracking_error"]
        );
        for (name, value) in env.spec().extras.iter().zip(&extras).take(5) {
            assert!((1.0 - value).abs() < 1e-5, "{name} = {value}");
        }
        assert!(extras[5] < 1e-5 && (extras[6] - 0.5).abs() < 1e-12, "{extras:?}");
        // Observation: the root height, the root at the origin of the heading frame, the phase.
        let o = obs.as_f32().unwrap();
        assert_eq!(o.len(), 227);
        assert!((0.6..1.0).contains(&o[0]), "root height {}", o[0]);
        assert_eq!(&o[1..4], &[0.0, 0.0, 0.0]);
        let walk_duration = o[226];
        assert!(walk_duration > 0.0 && walk_duration < 1.0);
    }

    #[test]
    fn holding_the_reference_pose_tracks_it_and_a_fall_terminates_with_reward_0() {
        let Some(mut env) = env(&[("clip", "walk".into()), ("residual_actions", true.into())]) else { return };
        let mut obs = env.spec().obs_buffer(1);
        let mut options = ResetOptions::default();
        options.params.insert("start_time".into(), 0.0.into());
        env.reset(Some(2), &options, obs.as_mut()).unwrap();
        let zeros = vec![0.0f32; 28];
        // Zero residuals: PD towards the clip. It tracks for a few steps with a high reward.
        let mut rewards = Vec::new();
        for _ in 0..6 {
            let step = env.step(Action::Float(&zeros), obs.as_mut()).unwrap();
            assert!(!step.terminated);
            rewards.push(step.reward);
        }
        assert!(rewards.iter().all(|r| *r > 0.5), "{rewards:?}");
        // Full-range flailing brings the humanoid down: terminated, reward 0, `fell` = 1.
        let flail: Vec<f32> = (0..28).map(|i| if i % 2 == 0 { 1.0 } else { -1.0 }).collect();
        let mut ended = None;
        for t in 0..300 {
            let step = env.step(Action::Float(&flail), obs.as_mut()).unwrap();
            if step.terminated {
                ended = Some((t, step));
                break;
            }
        }
        let (_, step) = ended.expect("flailing never fell");
        assert_eq!(step.reward, 0.0);
        let mut extras = vec![0.0; env.spec().extras_len()];
        env.write_extras(&mut extras);
        assert_eq!(extras[7], 1.0);
    }

    #[test]
    fn a_seeded_reset_repeats_its_episode_whatever_came_before() {
        let (Some(mut a), Some(mut b)) = (env(&[]), env(&[])) else { return };
        let (mut oa, mut ob) = (a.spec().obs_buffer(1), b.spec().obs_buffer(1));
        a.reset(Some(9), &ResetOptions::default(), oa.as_mut()).unwrap();
        for _ in 0..20 {
            a.step(Action::Float(&[0.3; 28]), oa.as_mut()).unwrap();
        }
        a.reset(Some(7), &ResetOptions::default(), oa.as_mut()).unwrap();
        b.reset(Some(7), &ResetOptions::default(), ob.as_mut()).unwrap();
        for t in 0..5 {
            let (sa, sb) = (
                a.step(Action::Float(&[0.1; 28]), oa.as_mut()).unwrap(),
                b.step(Action::Float(&[0.1; 28]), ob.as_mut()).unwrap(),
            );
            assert_eq!((sa, &oa), (sb, &ob), "step {t}");
        }
    }

    #[test]
    fn a_clip_that_does_not_loop_truncates_at_its_end() {
        let Some(mut env) = env(&[
            ("clip", "getup_faceup".into()),
            (
                "contact_bodies",
                serde_json::json!([
                    "root",
                    "chest",
                    "neck",
                    "right_hip",
                    "right_knee",
                    "right_ankle",
                    "right_shoulder",
                    "right_elbow",
                    "right_wrist",
                    "left_hip",
                    "left_knee",
                    "left_ankle",
                    "left_shoulder",
                    "left_elbow",
                    "left_wrist"
                ]),
            ),
            ("residual_actions", true.into()),
        ]) else {
            return;
        };
        let mut obs = env.spec().obs_buffer(1);
        let mut options = ResetOptions::default();
        options.params.insert("start_time".into(), 0.0.into());
        env.reset(Some(3), &options, obs.as_mut()).unwrap();
        let zeros = vec![0.0f32; 28];
        let mut steps = 0;
        loop {
            let step = env.step(Action::Float(&zeros), obs.as_mut()).unwrap();
            steps += 1;
            assert!(!step.terminated);
            if step.truncated {
                break;
            }
            assert!(steps < 10_000);
        }
        let mut extras = vec![0.0; env.spec().extras_len()];
        env.write_extras(&mut extras);
        let duration = extras[6];
        assert!((steps as f64 / 30.0 - duration).abs() < 1e-9, "{steps} steps, clip time {duration}");
    }

    #[test]
    fn bad_input_is_a_clear_error_naming_the_value_and_the_env_stays_usable() {
        let Some(mut env) = env(&[]) else { return };
        let mut obs = env.spec().obs_buffer(1);
        env.reset(Some(4), &ResetOptions::default(), obs.as_mut()).unwrap();
        let before = (env.state(), obs.clone());
        // An unknown clip, as a reset option, a parameter and a config value.
        let mut options = ResetOptions::default();
        options.params.insert("clip".into(), "moonwalk".into());
        let err = env.reset(None, &options, obs.as_mut()).unwrap_err().to_string();
        assert!(err.contains("`moonwalk`") && err.contains("walk") && err.contains("clip"), "{err}");
        let mut params = Map::new();
        params.insert("clip".into(), "moonwalk".into());
        assert!(env.set_params(&params).unwrap_err().to_string().contains("moonwalk"));
        let err = registry::make(HumanoidTrack::ID, &params).err().unwrap().to_string();
        assert!(err.contains("moonwalk"), "{err}");
        // NaN actions.
        let mut nan = vec![0.0f32; 28];
        nan[5] = f32::NAN;
        let err = env.step(Action::Float(&nan), obs.as_mut()).unwrap_err().to_string();
        assert!(err.contains("NaN") || err.contains("nan") || err.contains("finite"), "{err}");
        // A start pose of the wrong length, and one with a NaN inside.
        let mut state = before.0.clone().unwrap();
        state.pop();
        let err = env.reset(None, &ResetOptions::with_state(state), obs.as_mut()).unwrap_err().to_string();
        assert!(err.contains("expected 78") && err.contains("got 77"), "{err}");
        let mut state = before.0.clone().unwrap();
        state[1 + 9] = f64::NAN;
        let err = env.reset(None, &ResetOptions::with_state(state), obs.as_mut()).unwrap_err().to_string();
        assert!(err.contains("NaN") && err.contains("chest"), "{err}");
        // Bad parameters name the field.
        let mut options = ResetOptions::default();
        options.params.insert("pose_noise".into(), (-1.0).into());
        assert!(env.reset(None, &options, obs.as_mut()).unwrap_err().to_string().contains("pose_noise"));
        // Nothing changed, and the env steps on.
        assert_eq!((env.state(), obs.clone()), before);
        env.step(Action::Float(&[0.0; 28]), obs.as_mut()).unwrap();
    }

    #[test]
    fn bad_configs_name_the_field() {
        for (key, value) in [
            ("control_hz", serde_json::json!(50.0)),
            ("physics_hz", serde_json::json!(-1.0)),
            ("ball_range", serde_json::json!(0.0)),
            ("contact_bodies", serde_json::json!(["tail"])),
            ("render_size", serde_json::json!([1, 1])),
            ("history_len", serde_json::json!(121)),
            ("history_stride", serde_json::json!(0)),
            ("history_stride", serde_json::json!(31)),
        ] {
            let mut overrides = Map::new();
            overrides.insert(key.into(), value);
            register().unwrap();
            match registry::make(HumanoidTrack::ID, &overrides) {
                Err(EnvError::DataMissing(_)) => return,
                Err(e) => assert!(e.to_string().contains(key), "{key}: {e}"),
                Ok(_) => panic!("{key} accepted"),
            }
        }
    }

    /// The start state at 0.2 s of the clip for seed 5, clean and then with `noise` added to the
    /// reset params; returns both and the options with the noise in them.
    fn clean_and_noisy_starts(
        env: &mut dyn Env,
        noise: &[(&str, Value)],
    ) -> (Vec<f64>, Vec<f64>, ResetOptions) {
        let mut obs = env.spec().obs_buffer(1);
        let mut options = ResetOptions::default();
        options.params.insert("start_time".into(), 0.2.into());
        env.reset(Some(5), &options, obs.as_mut()).unwrap();
        let clean = env.state().unwrap();
        for (key, value) in noise {
            options.params.insert((*key).into(), value.clone());
        }
        env.reset(Some(5), &options, obs.as_mut()).unwrap();
        (clean, env.state().unwrap(), options)
    }

    #[test]
    fn the_perturbation_hook_moves_the_start_state() {
        let Some(mut env) = env(&[]) else { return };
        let noise = [("pose_noise", 0.1.into()), ("velocity_noise", 0.5.into())];
        let (clean, noisy, _) = clean_and_noisy_starts(env.as_mut(), &noise);
        assert_eq!(clean[0], noisy[0]);
        assert!(clean[8..].iter().zip(&noisy[8..]).filter(|(a, b)| a != b).count() > 50);
        let mut extras = vec![0.0; env.spec().extras_len()];
        env.write_extras(&mut extras);
        assert!(extras[0] < 0.99, "pose term {}", extras[0]);
    }

    #[test]
    fn masked_steps_pay_the_substitute_and_report_it() {
        let Some(mut env) = env(&[("residual_actions", true.into())]) else { return };
        let mut obs = env.spec().obs_buffer(1);
        let zeros = [0.0f32; 28];
        let names = env.spec().extras.clone();
        let at = |n: &str| names.iter().position(|e| e == n).unwrap();
        let mut extras = vec![0.0; env.spec().extras_len()];
        // An unmasked episode teaches the env what `walk` pays.
        let mut options = ResetOptions::default();
        options.params.insert("start_time".into(), 0.1.into());
        env.reset(Some(1), &options, obs.as_mut()).unwrap();
        let mut paid = Vec::new();
        for _ in 0..4 {
            paid.push(env.step(Action::Float(&zeros), obs.as_mut()).unwrap().reward);
            env.write_extras(&mut extras);
            assert_eq!(extras[at("masked")], 0.0);
            assert_eq!(extras[at("tracking_reward")], *paid.last().unwrap());
        }
        // A masked episode from a state far off the reference: the first 3 steps pay the
        // running mean of the unmasked ones, not their own tracking reward; then the env pays
        // its tracking reward again.
        let mut expected = paid[0];
        for r in &paid[1..] {
            expected = 0.95 * expected + 0.05 * r;
        }
        options.params.insert("start_time".into(), 0.6.into());
        options.params.insert("masked_steps".into(), 3.into());
        options.params.insert("pose_noise".into(), 0.4.into());
        env.reset(Some(2), &options, obs.as_mut()).unwrap();
        for k in 0..5 {
            let step = env.step(Action::Float(&zeros), obs.as_mut()).unwrap();
            env.write_extras(&mut extras);
            if k < 3 {
                assert_eq!(extras[at("masked")], 1.0, "step {k}");
                assert!((step.reward - expected).abs() < 1e-12, "step {k}: {} vs {expected}", step.reward);
                assert_ne!(step.reward, extras[at("tracking_reward")]);
            } else {
                assert_eq!(extras[at("masked")], 0.0, "step {k}");
                assert_eq!(step.reward, extras[at("tracking_reward")]);
            }
        }
        options.params.insert("masked_steps".into(), 101.into());
        assert!(env.reset(None, &options, obs.as_mut()).unwrap_err().to_string().contains("masked_steps"));
    }

    #[test]
    fn an_aligned_reference_follows_a_start_turned_and_moved_off_the_clip() {
        let Some(mut env) = env(&[]) else { return };
        let mut obs = env.spec().obs_buffer(1);
        let mut options = ResetOptions::default();
        options.params.insert("start_time".into(), 0.3.into());
        env.reset(Some(1), &options, obs.as_mut()).unwrap();
        let mut state = env.state().unwrap();
        // The start turned by 1 rad about the vertical and moved 2 m on the ground.
        let r = DQuat::from_rotation_y(1.0);
        let root = r * DVec3::new(state[1], state[2], state[3]);
        (state[1], state[2], state[3]) = (root.x + 2.0, root.y, root.z - 1.0);
        let q = wxyz(r * quat(&state[4..8]));
        state[4..8].copy_from_slice(&q);
        for k in [1 + 43, 1 + 43 + 3] {
            let v = r * DVec3::from_slice(&state[k..k + 3]);
            state[k..k + 3].copy_from_slice(&v.to_array());
        }
        let mut extras = vec![0.0; env.spec().extras_len()];
        let mut moved = ResetOptions::with_state(state);
        env.reset(Some(1), &moved, obs.as_mut()).unwrap();
        env.write_extras(&mut extras);
        assert!(extras[3] < 0.5 && extras[5] > 1.0, "off the reference without alignment: {extras:?}");
        moved.params.insert("align_reference".into(), true.into());
        env.reset(Some(1), &moved, obs.as_mut()).unwrap();
        env.write_extras(&mut extras);
        for (name, value) in env.spec().extras.iter().zip(&extras).take(5) {
            assert!((1.0 - value).abs() < 1e-5, "{name} = {value}");
        }
        assert!(extras[5] < 1e-5, "tracking error {}", extras[5]);
    }

    #[test]
    fn the_uniform_perturbation_moves_the_start_within_its_magnitudes() {
        let Some(mut env) = env(&[]) else { return };
        let noise = [("perturbation", serde_json::to_value(Perturbation::skillmimic()).unwrap())];
        let (clean, noisy, mut options) = clean_and_noisy_starts(env.as_mut(), &noise);
        let mut obs = env.spec().obs_buffer(1);
        let lift = noisy[2] - clean[2];
        assert!((0.0..=0.1).contains(&lift), "root lifted by {lift}");
        let dv: Vec<f64> = clean[44..].iter().zip(&noisy[44..]).map(|(a, b)| (a - b).abs()).collect();
        assert!(dv.iter().all(|d| *d <= 0.1 + 1e-12) && dv.iter().any(|d| *d > 0.0), "{dv:?}");
        let bad = serde_json::json!({"joint_position": -0.1});
        options.params.insert("perturbation".into(), bad);
        assert!(env.reset(None, &options, obs.as_mut()).unwrap_err().to_string().contains("joint_position"));
    }

    #[test]
    fn the_official_perturbation_draws_the_codes_normal_noise() {
        let Some(mut env) = env(&[]) else { return };
        let mut obs = env.spec().obs_buffer(1);
        let mut options = ResetOptions::default();
        options.params.insert("start_time".into(), 0.2.into());
        env.reset(Some(1), &options, obs.as_mut()).unwrap();
        let clean = env.state().unwrap();
        let noise = Perturbation { joint_velocity: 0.1, ..Perturbation::skillmimic_official().scaled(0.0) };
        options.params.insert("perturbation".into(), serde_json::to_value(noise).unwrap());
        let mut deltas = Vec::new();
        for seed in 0..200 {
            env.reset(Some(seed), &options, obs.as_mut()).unwrap();
            let noisy = env.state().unwrap();
            deltas.extend(clean[50..].iter().zip(&noisy[50..]).map(|(a, b)| b - a));
            let moved = clean[..50].iter().zip(&noisy[..50]).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            assert!(moved < 1e-12, "only the joint velocities move, not the rest by {moved}");
        }
        let n = deltas.len() as f64;
        let mean = deltas.iter().sum::<f64>() / n;
        let std = (deltas.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
        // `(randn·2 − 1)·0.1`: mean −0.1, std 0.2 (5600 draws: standard errors 0.003 and 0.002).
        assert!((mean + 0.1).abs() < 0.015 && (std - 0.2).abs() < 0.01, "mean {mean}, std {std}");
        let bad = serde_json::json!({"noise": "gaussian"});
        options.params.insert("perturbation".into(), bad);
        let e = env.reset(None, &options, obs.as_mut()).unwrap_err().to_string();
        assert!(e.contains("perturbation") && e.contains("unknown variant `gaussian`"), "{e}");
    }

    #[test]
    fn a_start_under_the_ground_is_lifted_onto_it_and_one_above_is_left_as_it_is() {
        let (Ok(assets), Some(mut env)) = (assets(None), env(&[])) else { return };
        let model = &assets.model;
        let mut obs = env.spec().obs_buffer(1);
        let mut bodies = vec![BodyState::default(); model.bodies().len()];
        let (mut lifted, mut deepest) = (0, ("", 0.0f64));
        for clip in assets.clips.clips() {
            let (before, mut clip_deepest) = (lifted, 0.0f64);
            for i in 0..clip.num_frames() {
                let t = clip.frame_time(i).unwrap();
                let mut options = ResetOptions::default();
                options.params.insert("clip".into(), clip.name().into());
                options.params.insert("start_time".into(), t.into());
                env.reset(Some(1), &options, obs.as_mut()).unwrap();
                let start = env.state().unwrap();
                let pose = clip.pose_at(t).unwrap();
                model.write_body_states(&pose, None, &mut bodies).unwrap();
                let under = model.lowest_point(&bodies);
                model.write_body_states(&start[1..44], None, &mut bodies).unwrap();
                let lowest = model.lowest_point(&bodies);
                if under < -GROUND_SLOP {
                    // Lifted straight up until its lowest point is on the ground.
                    assert!(lowest.abs() < 1e-9, "{} at {t}: lowest point {lowest} m", clip.name());
                    assert!((start[2] - pose[1] + under).abs() < 1e-12, "{} at {t}", clip.name());
                    assert_eq!((start[1], &start[3..44]), (pose[0], &pose[2..]), "{} at {t}", clip.name());
                    lifted += 1;
                    clip_deepest = clip_deepest.min(under);
                    if under < deepest.1 {
                        deepest = (clip.name(), under);
                    }
                } else {
                    assert_eq!(start[1..44], pose[..], "{} at {t}", clip.name());
                }
            }
            let frames = clip.num_frames();
            eprintln!("{}: {} of {frames} frames lifted, by up to {:.4} m", clip.name(), lifted - before, -clip_deepest);
        }
        eprintln!("{lifted} clip frames lifted; the deepest {:.4} m under the ground ({})", deepest.1, deepest.0);
        // The `run` puts a foot centimetres under the ground.
        assert!(deepest.1 < -0.01, "{deepest:?}");
        // A start given as a state is lifted too; one within the slop restarts exactly.
        let run = assets.clips.get("run").unwrap();
        let worst = (0..run.num_frames())
            .map(|i| run.frame_time(i).unwrap())
            .map(|t| {
                model.write_body_states(&run.pose_at(t).unwrap(), None, &mut bodies).unwrap();
                (t, model.lowest_point(&bodies))
            })
            .fold((0.0, f64::INFINITY), |a, b| if b.1 < a.1 { b } else { a });
        let mut state = vec![worst.0];
        state.extend(run.pose_at(worst.0).unwrap());
        state.extend(run.velocity_at(worst.0).unwrap());
        let mut options = ResetOptions::with_state(state.clone());
        options.params.insert("clip".into(), "run".into());
        env.reset(Some(1), &options, obs.as_mut()).unwrap();
        let start = env.state().unwrap();
        assert!((start[2] - state[2] + worst.1).abs() < 1e-12, "{} vs {}", start[2], state[2]);
        state[2] -= worst.1 + 0.5 * GROUND_SLOP;
        env.reset(Some(1), &ResetOptions { state: Some(state.clone()), params: options.params }, obs.as_mut())
            .unwrap();
        assert_eq!(env.state().unwrap(), state);
    }

    #[test]
    fn the_history_block_holds_the_previous_frames_at_the_stride() {
        let (len, stride) = (3usize, 2usize);
        let overrides = [("history_len", len.into()), ("history_stride", stride.into()), ("residual_actions", true.into())];
        let Some(mut env) = env(&overrides) else { return };
        let d = history_frame_len(15);
        let base = 227;
        assert_eq!(env.spec().obs_len(), base + len * d);
        let mut obs = env.spec().obs_buffer(1);
        // Small random offsets from the clip, so that the episode runs long enough to test.
        let actions: Vec<Vec<f32>> = crate::testing::action_sequence(&env.spec().action_space, 3, 40)
            .into_iter()
            .map(|a| match a {
                crate::space::OwnedAction::Floats(v) => v.into_iter().map(|x| 0.2 * x).collect(),
                other => panic!("{other:?}"),
            })
            .collect();
        for episode in 0..2 {
            env.reset(Some(11 + episode), &ResetOptions::default(), obs.as_mut()).unwrap();
            // heads[t]: the proprioceptive head of the observation t steps into the episode.
            let mut heads: Vec<Vec<f32>> = Vec::new();
            for (t, action) in actions.iter().enumerate() {
                let o = obs.as_f32().unwrap();
                heads.push(o[..d].to_vec());
                for j in 0..len {
                    // Frame (len - j)·stride steps back, the reset's frame before the start.
                    let back = t.saturating_sub((len - j) * stride);
                    let block = &o[base + j * d..base + (j + 1) * d];
                    assert_eq!(block, heads[back].as_slice(), "episode {episode}, step {t}, slot {j}");
                }
                let step = env.step(Action::Float(action), obs.as_mut()).unwrap();
                if step.terminated || step.truncated {
                    break;
                }
            }
            assert!(heads.len() > 2 * len * stride, "the episode was too short to test: {}", heads.len());
            // The frames differ from one another: the block is not one frame repeated.
            assert_ne!(heads[0], heads[len * stride]);
        }
    }

    /// HumanoidTrack with a strided history on by default: the conformance suite's fixture.
    struct WithHistory(HumanoidTrack);

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    #[serde(transparent)]
    struct WithHistoryConfig(HumanoidTrackConfig);

    impl Default for WithHistoryConfig {
        fn default() -> Self {
            Self(HumanoidTrackConfig { history_len: 3, history_stride: 2, ..HumanoidTrackConfig::default() })
        }
    }

    impl Validate for WithHistoryConfig {
        fn validate(&self) -> Result<(), FieldError> {
            self.0.validate()
        }
    }

    impl Registered for WithHistory {
        const ID: &'static str = "keel-test/HumanoidTrackHistory-v0";
        const DESCRIPTION: &'static str = "HumanoidTrack-v0 with history_len 3, history_stride 2 (tests)";
        const MAX_EPISODE_STEPS: Option<u64> = HumanoidTrack::MAX_EPISODE_STEPS;
        type Config = WithHistoryConfig;
        fn spec(config: &WithHistoryConfig) -> Result<EnvSpec> {
            <HumanoidTrack as Registered>::spec(&config.0)
        }
        fn new(config: WithHistoryConfig) -> Result<Self> {
            HumanoidTrack::new(config.0).map(Self)
        }
        fn episode_cap(config: &WithHistoryConfig) -> Option<u64> {
            HumanoidTrack::episode_cap(&config.0)
        }
    }

    impl Env for WithHistory {
        fn spec(&self) -> &EnvSpec {
            Env::spec(&self.0)
        }
        fn reset(&mut self, seed: Option<u64>, options: &ResetOptions, obs: ObsMut<'_>) -> Result<()> {
            self.0.reset(seed, options, obs)
        }
        fn step(&mut self, action: Action<'_>, obs: ObsMut<'_>) -> Result<Step> {
            self.0.step(action, obs)
        }
        fn write_extras(&self, out: &mut [f64]) {
            self.0.write_extras(out);
        }
        fn state(&self) -> Option<Vec<f64>> {
            self.0.state()
        }
        fn set_params(&mut self, params: &Map<String, Value>) -> Result<()> {
            self.0.set_params(params)
        }
        fn params(&self) -> Value {
            self.0.params()
        }
        fn snapshot(&self) -> Option<Value> {
            self.0.snapshot()
        }
        fn restore(&mut self, snapshot: &Value) -> Result<()> {
            self.0.restore(snapshot)
        }
    }

    #[test]
    fn the_conformance_suite_passes_with_the_history_on() {
        if env(&[]).is_none() {
            return;
        }
        registry::register(registry::entry::<WithHistory>()).unwrap();
        let failures: Vec<String> = crate::testing::CHECKS
            .iter()
            .filter_map(|(name, check)| check(WithHistory::ID).err().map(|e| format!("{name}: {e}")))
            .collect();
        assert!(failures.is_empty(), "{}", failures.join("\n"));
        // A snapshot of the env without history does not restore into one with it.
        let (Some(plain), Some(mut with)) = (env(&[]), env(&[("history_len", 2.into())])) else { return };
        let mut obs = with.spec().obs_buffer(1);
        with.reset(Some(1), &ResetOptions::default(), obs.as_mut()).unwrap();
        let mut plain = plain;
        let mut plain_obs = plain.spec().obs_buffer(1);
        plain.reset(Some(1), &ResetOptions::default(), plain_obs.as_mut()).unwrap();
        let err = with.restore(&plain.snapshot().unwrap()).unwrap_err().to_string();
        assert!(err.contains("history"), "{err}");
    }

    #[test]
    fn renders_the_humanoid_and_its_ghost() {
        let Some(mut env) = env(&[]) else { return };
        let mut obs = env.spec().obs_buffer(1);
        assert!(matches!(env.render(), Err(EnvError::ResetNeeded)));
        env.reset(Some(6), &ResetOptions::default(), obs.as_mut()).unwrap();
        let frame = env.render().unwrap().unwrap();
        assert_eq!((frame.width, frame.height, frame.rgb.len()), (320, 240, 320 * 240 * 3));
        let distinct: std::collections::HashSet<&[u8]> = frame.rgb.chunks(3).collect();
        assert!(distinct.len() > 8, "{} colours", distinct.len());
    }
}

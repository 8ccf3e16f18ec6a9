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
//! DeepMimic's weighted sum (weights normalised to sum to 1):
//! `0.5·r_pose + 0.05·r_vel + 0.15·r_end + 0.2·r_root + 0.1·r_com`, each term `exp(-k·err)`.
//! `reward_form = "deepmimic"` (the default) is DeepMimic's C++ (`SceneImitate.cpp`), the
//! code its paper's results came from; `"pybullet"` is pybullet's port
//! (`humanoid_stable_pd.py`), version 0's reward, which differs in two terms:
//!
//! | term | error (`deepmimic`) | k | `pybullet` instead |
//! |---|---|---|---|
//! | `pose` | Σ_j w_j · angle(q̂_j q_j⁻¹)², root rotation included | 2 | same |
//! | `velocity` | Σ_j w_j · ‖v̂_j − v_j‖² over joint velocities and the root's angular velocity | 0.1 | same |
//! | `end_effector` | Σ over the ankles and wrists of ‖ê − e‖², `e` the joint's offset from the root on the ground, in the root's heading frame, its height above the ground | 10 | mean of ‖p̂ − p‖² over the shape centres in world coordinates, k 40 |
//! | `root` | ‖Δp‖² + 0.1·angle² + 0.01·‖Δv‖² + 0.001·‖Δω‖² | 5 | same |
//! | `com` | 0.1·‖Δ velocity of the centre of mass‖² | 10 | ‖Δ centre of mass‖² |
//!
//! With `sync_root_each_cycle` (default true), at each new cycle of a looping clip the
//! reference's root is moved on the ground onto the character's (DeepMimic's
//! `SyncKinCharNewCycle`), so the root and position terms measure the current cycle's
//! tracking, not the distance lost over the earlier ones.
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
//! simulation diverges (reward 0 on that step), or, with `termination_distance` set, when the
//! mean distance of the bodies from the reference's exceeds it (MimicKit's pose termination;
//! that step keeps its reward). Truncated at the end of a clip that does not
//! loop, and by the registered cap of `episode_seconds · control_hz` steps (300: 10 s).
//!
//! ## Config
//! See [`HumanoidTrackConfig`]; the model and clips are read from `data_dir` (default: where
//! `scripts/setup.sh` puts them).
//!
//! ## Version history
//! - v1: DeepMimic's C++ reward form and per-cycle root sync (both the defaults), the total PD
//!   torque clamped (not only its spring part), starts lifted out of the ground, optional pose
//!   termination. Version 0's reward is `reward_form = "pybullet"` with
//!   `sync_root_each_cycle = false`.
//! - v0 (replaced by v1): DeepMimic's humanoid, pybullet's reward form and early termination,
//!   on rapier3d 0.36.1 at 120 Hz.
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

mod config;
mod observation;
mod reference;
mod reward;
#[cfg(test)]
mod tests;

pub use config::{HumanoidTrackConfig, HumanoidTrackParams, RewardWeights, history_frame_len};
use observation::{History, inverse_heading, put_vec3};
use reference::Align;
pub use reward::RewardForm;
use reward::{Layout, Side, tracking_terms};

/// Registers the humanoid family (`keel/HumanoidTrack-v1`); calling it again is harmless.
pub fn register() -> Result<()> {
    registry::register(registry::entry::<HumanoidTrack>())
}

/// Names of the reward terms, in the order of [`RewardWeights`] and of the extras.
pub const TERMS: [&str; 5] = ["pose", "velocity", "end_effector", "root", "com"];

/// How far a start may reach under the ground before the reset lifts it, m: rapier's contact
/// tolerance (`normalized_allowed_linear_error`, 5 mm), a penetration it leaves as it is and
/// rests bodies within, so a state recorded from a running episode restarts exactly.
const GROUND_SLOP: f64 = 5e-3;

/// Observation numbers per body: position, rotation (two columns), linear and angular velocity.
const PER_BODY: usize = 3 + 6 + 3 + 3;
/// Observation numbers per body and future frame: position and rotation.
const PER_FUTURE_BODY: usize = 3 + 6;

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
    /// The horizontal shift (x, z) the per-cycle sync has added to the reference's root.
    #[serde(default)]
    root_shift: [f64; 2],
    /// The clip cycle the reference was last synced in.
    #[serde(default)]
    cycle: i64,
    /// The last step ended the episode on `termination_distance`.
    #[serde(default)]
    deviated: bool,
}

/// The cycle of a looping clip that time `t` lies in (0 for a clip that does not loop).
fn cycle_index(clip: &keel_physics::Clip, t: f64) -> i64 {
    if clip.looping() && clip.duration() > 0.0 { (t / clip.duration()).floor() as i64 } else { 0 }
}

impl Episode {
    /// Moves a reference pose as this episode does: onto the start (`align_reference`), then
    /// by the per-cycle root shift.
    fn move_reference(&self, pose: &mut [f64]) {
        if let Some(align) = &self.align {
            align.pose(pose);
        }
        pose[0] += self.root_shift[0];
        pose[2] += self.root_shift[1];
    }

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
            root_shift: [0.0; 2],
            cycle: 0,
            deviated: false,
        }
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
    const ID: &'static str = "keel/HumanoidTrack-v1";
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
        extras.extend(["tracking_error", "clip_time", "fell", "masked", "tracking_reward"].map(String::from));
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
            align.velocity(&mut self.reference.velocity);
        }
        self.episode.move_reference(&mut self.reference.pose);
        let cycle = cycle_index(clip, self.episode.time);
        if self.config.sync_root_each_cycle && cycle != self.episode.cycle {
            // A new cycle: the reference's root continues from where the character is.
            self.episode.cycle = cycle;
            for (shift, k) in self.episode.root_shift.iter_mut().zip([0, 2]) {
                let d = self.sim.pose[k] - self.reference.pose[k];
                *shift += d;
                self.reference.pose[k] += d;
            }
        }
        model
            .write_body_states(&self.reference.pose, Some(&self.reference.velocity), &mut self.reference.bodies)
            .map_err(physics_error)?;
        let (terms, distance) =
            tracking_terms(model, &self.layout, self.config.reward_form, &self.sim, &self.reference);
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
            self.episode.move_reference(&mut self.future.pose);
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
            cycle: cycle_index(&self.assets.clips.clips()[clip_id], state),
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
        self.episode.deviated =
            !fell && self.config.termination_distance.is_some_and(|d| self.episode.tracking_error > d);
        self.write_obs(obs)?;
        let clip = self.clip();
        let ended = fell || self.episode.deviated;
        let truncated = !ended && !clip.looping() && self.episode.time >= clip.duration() - 1e-9;
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
        Ok(Step { reward, terminated: ended, truncated })
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

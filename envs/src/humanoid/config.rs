//! The construction config, the per-reset parameters and their checks.

use super::*;

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
    pub(super) fn as_array(&self) -> [f64; 5] {
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
    /// How the end-effector and centre-of-mass terms measure their errors (default
    /// `deepmimic`, DeepMimic's C++; `pybullet` is version 0's form). See [`RewardForm`].
    pub reward_form: RewardForm,
    /// At each new cycle of a looping clip, move the reference's root on the ground onto the
    /// character's (DeepMimic's `SyncKinCharNewCycle`; default true). Without it the reference
    /// walks on by its own cycle offsets, and a character that lags a few centimetres a
    /// cycle is soon scored against a body a metre away.
    pub sync_root_each_cycle: bool,
    /// End the episode (terminated) when the mean distance of the bodies from the reference's
    /// exceeds this, m (MimicKit's pose termination; default: none).
    pub termination_distance: Option<f64>,
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
            reward_form: RewardForm::Deepmimic,
            sync_root_each_cycle: true,
            termination_distance: None,
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
            return Err(FieldError::new(
                "history_len",
                format!("must be at most 120 frames, got {}", self.history_len),
            ));
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
        if let Some(d) = self.termination_distance {
            if !(d.is_finite() && d > 0.0) {
                return Err(FieldError::new(
                    "termination_distance",
                    format!("must be finite and > 0 m, or null, got {d}"),
                ));
            }
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
        self.perturbation
            .check()
            .map_err(|(field, message)| FieldError::new("perturbation", format!("`{field}` {message}")))
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
        self.perturbation
            .check()
            .map_err(|(field, message)| FieldError::new("perturbation", format!("`{field}` {message}")))
    }
}

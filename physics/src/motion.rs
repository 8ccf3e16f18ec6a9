//! DeepMimic motion clips (`humanoid3d_*.txt`): loading, sampling at any time, looping,
//! finite-difference velocities and mirroring.
//!
//! A clip file is JSON: `"Loop"` is `"wrap"` (a cycle to repeat) or `"none"`, and `"Frames"`
//! holds one row per frame: its duration in seconds (the time to the next frame; the last row's
//! is unused), then a pose in the model's layout ([`crate::model`]). Frame `i` is at the sum of
//! the durations before it; the clip lasts until its last frame.
//!
//! - **Sampling**: between frames, positions and hinge angles are interpolated linearly and
//!   rotations by slerp.
//! - **Velocities** are finite differences over each frame interval (constant within it), as
//!   DeepMimic computes them: the root's linear velocity and every angular velocity from
//!   consecutive frames, in the axes of [`crate::model`].
//! - **Looping**: a `wrap` clip repeats forever (and backwards in time); each cycle starts where
//!   the previous one ended: the root is shifted by the horizontal offset from the first to the
//!   last frame once per cycle (DeepMimic's cycle offset; heights are not accumulated). A `none`
//!   clip holds its first pose before time 0 and its last after its end, with zero velocity.
//! - **Mirroring** swaps left and right ([`crate::model::HumanoidModel::mirror_pose`]).

use std::path::Path;
use std::sync::Arc;

use glam::DVec3;
use serde::Deserialize;

use crate::data::{self, DataDir};
use crate::error::{PhysicsError, Result, check_len};
use crate::model::{self, BodyState, HumanoidModel, Joint};

/// The 15 clips of the pybullet 3.2.7 wheel (`humanoid3d_<name>.txt`).
pub const CLIP_NAMES: [&str; 15] = [
    "backflip",
    "cartwheel",
    "crawl",
    "dance_a",
    "dance_b",
    "getup_facedown",
    "getup_faceup",
    "jump",
    "kick",
    "punch",
    "roll",
    "run",
    "spin",
    "spinkick",
    "walk",
];

/// A clip file's content (other keys, such as `RightJoints`, are ignored).
#[derive(Deserialize)]
struct ClipFile {
    #[serde(rename = "Loop")]
    looping: String,
    #[serde(rename = "Frames")]
    frames: Vec<Vec<f64>>,
}

/// One motion clip; see the [module docs](self).
#[derive(Clone, Debug, PartialEq)]
pub struct Clip {
    name: String,
    model: Arc<HumanoidModel>,
    looping: bool,
    /// Time of each frame, s.
    times: Vec<f64>,
    /// One pose per frame, quaternions normalised.
    poses: Vec<f64>,
    /// One velocity per frame interval.
    velocities: Vec<f64>,
    /// Root shift per cycle.
    cycle_offset: DVec3,
}

impl Clip {
    /// Reads a clip file; `name` is what the clip will be called.
    pub fn load(path: &Path, name: &str, model: &Arc<HumanoidModel>) -> Result<Self> {
        Self::parse(name, &data::read(path)?, model).map_err(|why| PhysicsError::BadFile { path: path.to_owned(), why })
    }

    /// Parses a clip file's text; the error names the frame and coordinate at fault.
    pub fn parse(name: &str, text: &str, model: &Arc<HumanoidModel>) -> std::result::Result<Self, String> {
        let file: ClipFile = serde_json::from_str(text).map_err(|e| format!("not a DeepMimic clip: {e}"))?;
        let looping = match file.looping.as_str() {
            "wrap" => true,
            "none" => false,
            other => return Err(format!("\"Loop\" is \"{other}\", expected \"wrap\" or \"none\"")),
        };
        if file.frames.len() < 2 {
            return Err(format!("{} frames, at least 2 needed", file.frames.len()));
        }
        let width = 1 + model.pose_len();
        let (mut times, mut poses) =
            (Vec::with_capacity(file.frames.len()), Vec::with_capacity(file.frames.len() * model.pose_len()));
        let mut time = 0.0;
        for (i, frame) in file.frames.iter().enumerate() {
            if frame.len() != width {
                return Err(format!("frame {i} has {} numbers, expected {width}", frame.len()));
            }
            if !(frame[0] >= 0.0 && frame[0].is_finite()) {
                return Err(format!("frame {i} lasts {} s", frame[0]));
            }
            model.check_pose(&frame[1..]).map_err(|e| format!("frame {i}: {e}"))?;
            times.push(time);
            time += frame[0];
            poses.extend_from_slice(&frame[1..]);
        }
        if times.last().is_none_or(|&end| end <= 0.0) {
            return Err("the clip lasts 0 s".into());
        }
        Ok(Self::from_frames(name.to_owned(), model, looping, times, poses))
    }

    /// A clip from frame times and poses (checked), with its velocities and cycle offset.
    fn from_frames(
        name: String,
        model: &Arc<HumanoidModel>,
        looping: bool,
        times: Vec<f64>,
        mut poses: Vec<f64>,
    ) -> Self {
        let (pose_len, velocity_len) = (model.pose_len(), model.velocity_len());
        for pose in poses.chunks_exact_mut(pose_len) {
            for body in model.bodies().iter().filter(|b| matches!(b.joint, Joint::Free | Joint::Spherical)) {
                let q = body.pose_offset + if body.joint == Joint::Free { 3 } else { 0 };
                let unit = model::wxyz(model::quat(&pose[q..q + 4]).normalize());
                pose[q..q + 4].copy_from_slice(&unit);
            }
        }
        let mut velocities = vec![0.0; (times.len() - 1) * velocity_len];
        for (i, velocity) in velocities.chunks_exact_mut(velocity_len).enumerate() {
            let dt = times[i + 1] - times[i];
            if dt > 0.0 {
                let (from, to) =
                    (&poses[i * pose_len..(i + 1) * pose_len], &poses[(i + 1) * pose_len..(i + 2) * pose_len]);
                difference(model, from, to, dt, velocity);
            }
        }
        let cycle_offset = if looping {
            let last = (times.len() - 1) * pose_len;
            DVec3::new(poses[last] - poses[0], 0.0, poses[last + 2] - poses[2])
        } else {
            DVec3::ZERO
        };
        Self { name, model: Arc::clone(model), looping, times, poses, velocities, cycle_offset }
    }

    /// The clip's name (`walk`; `walk_mirrored` for its mirror image).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The model the clip's poses are for.
    pub fn model(&self) -> &Arc<HumanoidModel> {
        &self.model
    }

    /// Whether the clip repeats (`"Loop": "wrap"`).
    pub fn looping(&self) -> bool {
        self.looping
    }

    /// Time from the first frame to the last, s.
    pub fn duration(&self) -> f64 {
        self.times[self.times.len() - 1]
    }

    /// Number of frames.
    pub fn num_frames(&self) -> usize {
        self.times.len()
    }

    /// Frames per second: frame intervals over the duration.
    pub fn fps(&self) -> f64 {
        (self.num_frames() - 1) as f64 / self.duration()
    }

    /// The time of frame `i`, s.
    pub fn frame_time(&self, i: usize) -> Option<f64> {
        self.times.get(i).copied()
    }

    /// The pose of frame `i` (quaternions normalised).
    pub fn frame(&self, i: usize) -> Option<&[f64]> {
        let n = self.model.pose_len();
        self.poses.get(i * n..(i + 1) * n)
    }

    /// How far the root moves horizontally per cycle (zero for a clip that does not loop).
    pub fn cycle_offset(&self) -> [f64; 3] {
        self.cycle_offset.to_array()
    }

    /// The pose at time `t`, s.
    pub fn pose_at(&self, t: f64) -> Result<Vec<f64>> {
        let mut pose = vec![0.0; self.model.pose_len()];
        self.write_pose_at(t, &mut pose)?;
        Ok(pose)
    }

    /// [`Self::pose_at`] into `out` (of length `model.pose_len()`).
    pub fn write_pose_at(&self, t: f64, out: &mut [f64]) -> Result<()> {
        let (i, alpha, cycles) = self.locate(t)?;
        let n = self.model.pose_len();
        check_len("pose", n, out.len())?;
        let (from, to) = (&self.poses[i * n..(i + 1) * n], &self.poses[(i + 1) * n..(i + 2) * n]);
        let slerp = |k: usize, out: &mut [f64]| {
            let q = model::quat(&from[k..k + 4]).slerp(model::quat(&to[k..k + 4]), alpha);
            out[k..k + 4].copy_from_slice(&model::wxyz(q));
        };
        for body in self.model.bodies() {
            let p = body.pose_offset;
            match body.joint {
                Joint::Free => {
                    for k in 0..3 {
                        out[p + k] = from[p + k] + alpha * (to[p + k] - from[p + k]) + cycles * self.cycle_offset[k];
                    }
                    slerp(p + 3, out);
                }
                Joint::Spherical => slerp(p, out),
                Joint::Revolute { .. } => out[p] = from[p] + alpha * (to[p] - from[p]),
                Joint::Fixed => {}
            }
        }
        Ok(())
    }

    /// The velocity at time `t`, s: the finite difference over the frame interval holding `t`.
    pub fn velocity_at(&self, t: f64) -> Result<Vec<f64>> {
        let mut velocity = vec![0.0; self.model.velocity_len()];
        self.write_velocity_at(t, &mut velocity)?;
        Ok(velocity)
    }

    /// [`Self::velocity_at`] into `out` (of length `model.velocity_len()`).
    pub fn write_velocity_at(&self, t: f64, out: &mut [f64]) -> Result<()> {
        let (i, _, _) = self.locate(t)?;
        let n = self.model.velocity_len();
        check_len("velocity", n, out.len())?;
        if !self.looping && !(0.0..=self.duration()).contains(&t) {
            out.fill(0.0);
        } else {
            out.copy_from_slice(&self.velocities[i * n..(i + 1) * n]);
        }
        Ok(())
    }

    /// Every body's state at time `t` (forward kinematics of [`Self::pose_at`] and
    /// [`Self::velocity_at`]).
    pub fn body_states_at(&self, t: f64) -> Result<Vec<BodyState>> {
        self.model.body_states(&self.pose_at(t)?, Some(&self.velocity_at(t)?))
    }

    /// The frame interval holding `t`, the fraction of it elapsed, and the number of whole
    /// cycles before it.
    fn locate(&self, t: f64) -> Result<(usize, f64, f64)> {
        if !t.is_finite() {
            return Err(PhysicsError::BadTime { clip: self.name.clone(), value: t });
        }
        let duration = self.duration();
        let (cycles, local) = if self.looping {
            let cycles = (t / duration).floor();
            (cycles, (t - cycles * duration).clamp(0.0, duration))
        } else {
            (0.0, t.clamp(0.0, duration))
        };
        let last = self.times.len() - 2;
        let i = self.times.partition_point(|&start| start <= local).saturating_sub(1).min(last);
        let span = self.times[i + 1] - self.times[i];
        let alpha = if span > 0.0 { ((local - self.times[i]) / span).clamp(0.0, 1.0) } else { 0.0 };
        Ok((i, alpha, cycles))
    }

    /// The clip with left and right swapped, named `<name>_mirrored`.
    pub fn mirrored(&self) -> Result<Self> {
        let n = self.model.pose_len();
        let mut poses = vec![0.0; self.poses.len()];
        for (from, to) in self.poses.chunks_exact(n).zip(poses.chunks_exact_mut(n)) {
            self.model.mirror_pose(from, to)?;
        }
        Ok(Self::from_frames(format!("{}_mirrored", self.name), &self.model, self.looping, self.times.clone(), poses))
    }
}

/// The finite-difference velocity from pose `from` to pose `to`, `dt` s later.
fn difference(model: &HumanoidModel, from: &[f64], to: &[f64], dt: f64, out: &mut [f64]) {
    let angular =
        |k: usize| model::rotation_vector(model::quat(&to[k..k + 4]) * model::quat(&from[k..k + 4]).inverse()) / dt;
    for body in model.bodies() {
        let (p, o) = (body.pose_offset, body.velocity_offset);
        match body.joint {
            Joint::Free => {
                let linear = (DVec3::from_slice(&to[p..p + 3]) - DVec3::from_slice(&from[p..p + 3])) / dt;
                out[o..o + 3].copy_from_slice(&linear.to_array());
                out[o + 3..o + 6].copy_from_slice(&angular(p + 3).to_array());
            }
            Joint::Spherical => out[o..o + 3].copy_from_slice(&angular(p).to_array()),
            Joint::Revolute { .. } => out[o] = (to[p] - from[p]) / dt,
            Joint::Fixed => {}
        }
    }
}

/// The 15 DeepMimic clips.
#[derive(Clone, Debug)]
pub struct ClipLibrary {
    clips: Vec<Clip>,
}

impl ClipLibrary {
    /// Loads every clip of [`CLIP_NAMES`] from the data.
    pub fn load(data: &DataDir, model: &Arc<HumanoidModel>) -> Result<Self> {
        let clips = CLIP_NAMES.iter().map(|name| Clip::load(&data.clip(name), name, model)).collect::<Result<_>>()?;
        Ok(Self { clips })
    }

    /// A library of the given clips.
    pub fn from_clips(clips: Vec<Clip>) -> Self {
        Self { clips }
    }

    /// The clip of that name, or [`PhysicsError::UnknownClip`] listing the names there are.
    pub fn get(&self, name: &str) -> Result<&Clip> {
        self.clips.iter().find(|clip| clip.name == name).ok_or_else(|| PhysicsError::UnknownClip {
            name: name.to_owned(),
            known: self.clips.iter().map(|clip| clip.name.as_str()).collect::<Vec<_>>().join(", "),
        })
    }

    /// Every clip.
    pub fn clips(&self) -> &[Clip] {
        &self.clips
    }
}

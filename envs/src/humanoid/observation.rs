//! The observation's pieces: heading-frame vectors and the ring of past frames.

use super::*;

/// Writes `v` at `obs[*k..*k + 3]` as `f32` and moves `k` past it.
pub(super) fn put_vec3(obs: &mut [f32], k: &mut usize, v: DVec3) {
    obs[*k..*k + 3].copy_from_slice(&[v.x as f32, v.y as f32, v.z as f32]);
    *k += 3;
}

/// The inverse of the heading rotation (yaw about +y) of a root rotation; the character faces +x.
pub(super) fn inverse_heading(root: DQuat) -> DQuat {
    let facing = root * DVec3::X;
    DQuat::from_rotation_y(-f64::atan2(-facing.z, facing.x))
}

/// The agent's past frames: a ring of `history_len · history_stride` frames, allocated once.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct History {
    /// `span` frames of `frame_len` numbers; `head` is the oldest, where the next one goes.
    pub(super) frames: Vec<f32>,
    pub(super) head: usize,
    /// The next observation fills every slot with its own frame (set by a reset).
    #[serde(skip)]
    pub(super) fill: bool,
}

impl History {
    pub(super) fn new(span: usize, frame_len: usize) -> Self {
        Self { frames: vec![0.0; span * frame_len], head: 0, fill: true }
    }

    /// Writes the block of `len` frames, one every `stride` steps and oldest first, into `out`
    /// (`len · frame.len()` numbers), then remembers `frame`, the current step's. After a reset
    /// every slot is `frame` first.
    pub(super) fn write_and_push(&mut self, frame: &[f32], len: usize, stride: usize, out: &mut [f32]) {
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

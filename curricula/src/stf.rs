//! The state transition field (STF): perturbed starts, re-anchored to the reference.
//!
//! With probability `perturb_prob` a reset takes the reference state it sampled, perturbs it with
//! uniform noise ([`keel_physics::Perturbation`]: root height and rotation, root velocities, joint
//! positions and velocities; SkillMimic-V2's magnitudes by default), then searches the **same
//! clip** for the frame most similar to the noisy state (`S` with the "field" weights, see
//! [`crate::similarity`]). The episode starts from the noisy state and tracks the clip from that
//! frame, the reference moved onto the start (`align_reference`); its first
//! [`masked_steps`](crate::similarity::masked_steps)`(S)` steps are masked. Every perturbed state
//! so gets one target frame to flow to: the field.

use keel_physics::{BodyState, Clip, Perturbation};
use serde::{Deserialize, Serialize};

use keel_envs::config::FieldError;

use crate::similarity::{ClipFrames, Features, SimilarityWeights, masked_steps};

/// Settings of the transition field.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StfConfig {
    /// Probability that a reset is perturbed, in [0, 1] (default 0.1, the official scripts').
    pub perturb_prob: f64,
    /// The noise (default SkillMimic-V2's 0.1 on every part, drawn as its code draws it:
    /// [`Perturbation::skillmimic_official`]).
    pub perturbation: Perturbation,
    /// Weights of `S` in the re-anchoring search (default the "field" weights).
    pub weights: SimilarityWeights,
}

impl Default for StfConfig {
    fn default() -> Self {
        Self {
            perturb_prob: 0.1,
            perturbation: Perturbation::skillmimic_official(),
            weights: SimilarityWeights::field(),
        }
    }
}

impl StfConfig {
    /// Checks the settings; the error names the field (prefixed `stf.`).
    pub fn validate(&self) -> Result<(), FieldError> {
        if !(0.0..=1.0).contains(&self.perturb_prob) {
            return Err(FieldError::new(
                "stf.perturb_prob",
                format!("is a probability, must be in [0, 1], got {}", self.perturb_prob),
            ));
        }
        self.perturbation
            .check()
            .map_err(|(field, message)| FieldError::new("stf.perturbation", format!("`{field}` {message}")))?;
        self.weights.validate("stf.weights")
    }
}

/// A perturbed start and where it flows to.
#[derive(Clone, Debug, PartialEq)]
pub struct Anchored {
    /// The noisy pose.
    pub pose: Vec<f64>,
    /// The noisy velocity.
    pub velocity: Vec<f64>,
    /// The frame of the same clip most similar to it.
    pub frame: usize,
    /// That similarity.
    pub similarity: f64,
    /// Steps to mask.
    pub masked_steps: u32,
}

/// Perturbs frame `frame` of `clip` with `perturbation` (uniform numbers from `uniform`) and
/// re-anchors the noisy state to the most similar frame of `frames` (the same clip's).
pub fn perturb_and_anchor(
    clip: &Clip,
    frames: &ClipFrames,
    frame: usize,
    perturbation: &Perturbation,
    weights: &SimilarityWeights,
    uniform: &mut dyn FnMut() -> f64,
) -> keel_physics::Result<Anchored> {
    let model = clip.model();
    let t = frames.times[frame];
    let mut pose = clip.pose_at(t)?;
    let mut velocity = clip.velocity_at(t)?;
    perturbation.apply(model, &mut pose, &mut velocity, uniform);
    let mut bodies = vec![BodyState::default(); model.bodies().len()];
    let features = Features::new(model, &pose, &velocity, &mut bodies)?;
    let (anchor, similarity) = frames.most_similar(&features, weights);
    Ok(Anchored { pose, velocity, frame: anchor, similarity, masked_steps: masked_steps(similarity) })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};
    use rand_pcg::Pcg32;

    use crate::similarity::tests::library;

    #[test]
    fn small_noise_re_anchors_to_the_frame_it_came_from_and_large_noise_masks_steps() {
        let Some((_, clips)) = library() else { return };
        let mut rng = Pcg32::seed_from_u64(3);
        let weights = SimilarityWeights::field();
        for name in ["walk", "run"] {
            let clip = clips.get(name).unwrap();
            let frames = ClipFrames::new(clip).unwrap();
            let small = Perturbation::skillmimic().scaled(0.05);
            for f in 0..frames.len() {
                let a = perturb_and_anchor(clip, &frames, f, &small, &weights, &mut || rng.random()).unwrap();
                assert_eq!(a.frame, f, "{name}: frame {f} re-anchored to {} (S = {})", a.frame, a.similarity);
                assert!(a.similarity > 0.5 && a.masked_steps == 0, "{name}: {}", a.similarity);
            }
            // No noise: the frame itself with S = 1.
            let none = Perturbation::default();
            let a = perturb_and_anchor(clip, &frames, 4, &none, &weights, &mut || rng.random()).unwrap();
            assert_eq!((a.frame, a.similarity, a.masked_steps), (4, 1.0, 0));
            // Large noise: less similar, so steps are masked.
            let large = Perturbation::skillmimic().scaled(10.0);
            let masked: u32 = (0..frames.len())
                .map(|f| perturb_and_anchor(clip, &frames, f, &large, &weights, &mut || rng.random()).unwrap())
                .map(|a| a.masked_steps)
                .sum();
            assert!(masked > 0, "{name}");
        }
    }

    #[test]
    fn settings_are_validated_naming_the_field() {
        let bad = |c: StfConfig| c.validate().err().map(|e| e.field);
        assert_eq!(bad(StfConfig::default()), None);
        assert_eq!(bad(StfConfig { perturb_prob: 1.2, ..Default::default() }), Some("stf.perturb_prob"));
        let p = Perturbation { joint_position: -0.1, ..Perturbation::skillmimic() };
        assert_eq!(bad(StfConfig { perturbation: p, ..Default::default() }), Some("stf.perturbation"));
    }
}

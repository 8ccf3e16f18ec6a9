//! Adaptive trajectory sampling (ATS): start more episodes where the policy fails.
//!
//! A table over tasks (clips) and start points (frames), generic: any env whose reset parameters
//! pick a task and a start point can use it. Each cell keeps a running return `R̄`, folded as the
//! official code does: an episode that started there with mean reward `R` sets
//! `R̄ ← (R̄ + R) / 2`. Every `update_steps` reported env steps the weights are recomputed:
//!
//! ```text
//! frame:  p(t | c) = (1 − α)/L_c + α · softmax_t(−R̄[c][t] / frame_temperature)
//! clip:   p(c)     = (1 − α)/N   + α · softmax_c(−mean_t R̄[c][t] / clip_temperature)
//! ```
//!
//! with the code's temperatures 0.1 (frames) and 0.2 (clips), each clip its own class. The
//! uniform floor `(1 − α)/L` keeps every start alive: α = 0.8 by default, not the code's 1, which
//! lets a failing frame (`R̄ = 0`, rewards in `[0, 1]`) starve a solved one by e¹⁰ ≈ 22 000.
//! Before the first update every start is equally likely.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use keel_envs::config::FieldError;

/// Settings of adaptive trajectory sampling.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AtsConfig {
    /// Weight of the adaptive part against the uniform floor, in [0, 1] (default 0.8; the
    /// official scripts use 1, which removes the floor).
    pub alpha: f64,
    /// Softmax temperature over a clip's frames (default 0.1).
    pub frame_temperature: f64,
    /// Softmax temperature over clips (default 0.2).
    pub clip_temperature: f64,
    /// Reported env steps between two updates of the weights (default: 5 × the start frames of
    /// all clips, the official interval).
    pub update_steps: Option<u64>,
}

impl Default for AtsConfig {
    fn default() -> Self {
        Self { alpha: 0.8, frame_temperature: 0.1, clip_temperature: 0.2, update_steps: None }
    }
}

impl AtsConfig {
    /// Checks the settings; the error names the field (prefixed `ats.`).
    pub fn validate(&self) -> Result<(), FieldError> {
        if !(0.0..=1.0).contains(&self.alpha) {
            return Err(FieldError::new("ats.alpha", format!("must be in [0, 1], got {}", self.alpha)));
        }
        for (field, t) in
            [("ats.frame_temperature", self.frame_temperature), ("ats.clip_temperature", self.clip_temperature)]
        {
            if !(t.is_finite() && t > 0.0) {
                return Err(FieldError::new(field, format!("must be finite and > 0, got {t}")));
            }
        }
        if self.update_steps == Some(0) {
            return Err(FieldError::new("ats.update_steps", "must be at least 1"));
        }
        Ok(())
    }
}

/// The ATS table (see the module docs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ats {
    config: AtsConfig,
    /// `R̄[clip][frame]`.
    returns: Vec<Vec<f64>>,
    /// Episodes reported per cell.
    visits: Vec<Vec<u64>>,
    /// `p(frame | clip)`.
    frame_weights: Vec<Vec<f64>>,
    /// `p(clip)`.
    clip_weights: Vec<f64>,
    /// Whether episodes may start in each clip (clips reachable only otherwise, e.g. through a
    /// trajectory graph, weigh 0).
    starts: Vec<bool>,
    /// Steps reported since the last update.
    pending_steps: u64,
    /// Updates so far.
    updates: u64,
}

/// `(1 − α)/n + α · softmax(−x / temperature)`.
fn floored_softmax(x: &[f64], temperature: f64, alpha: f64) -> Vec<f64> {
    let n = x.len() as f64;
    let lowest = x.iter().copied().fold(f64::INFINITY, f64::min);
    // Shifted by the smallest value, so the largest exponent is 0.
    let e: Vec<f64> = x.iter().map(|v| (-(v - lowest) / temperature).exp()).collect();
    let total: f64 = e.iter().sum();
    e.iter().map(|v| (1.0 - alpha) / n + alpha * v / total).collect()
}

impl Ats {
    /// A table over clips of `frames[c]` start frames each (every count ≥ 1), uniform.
    pub fn new(config: AtsConfig, frames: &[usize]) -> Self {
        Self::with_starts(config, frames, &vec![true; frames.len()])
    }

    /// [`Ats::new`] where episodes start only in the clips with `starts[c]` (at least one);
    /// the others keep statistics but weigh 0.
    pub fn with_starts(config: AtsConfig, frames: &[usize], starts: &[bool]) -> Self {
        let n = starts.iter().filter(|s| **s).count().max(1) as f64;
        Self {
            returns: frames.iter().map(|&l| vec![0.0; l]).collect(),
            visits: frames.iter().map(|&l| vec![0; l]).collect(),
            frame_weights: frames.iter().map(|&l| vec![1.0 / l.max(1) as f64; l]).collect(),
            clip_weights: starts.iter().map(|&s| if s { 1.0 / n } else { 0.0 }).collect(),
            starts: starts.to_vec(),
            pending_steps: 0,
            updates: 0,
            config,
        }
    }

    fn interval(&self) -> u64 {
        self.config.update_steps.unwrap_or_else(|| 5 * self.returns.iter().map(|r| r.len() as u64).sum::<u64>())
    }

    /// An episode that started at (`clip`, `frame`) ended after `steps` steps with mean reward
    /// `mean_reward`; updates the weights when `update_steps` steps have been reported.
    pub fn record(&mut self, clip: usize, frame: usize, mean_reward: f64, steps: u64) {
        let Some(r) = self.returns.get_mut(clip).and_then(|c| c.get_mut(frame)) else { return };
        let value = if mean_reward.is_finite() { mean_reward } else { 0.0 };
        *r = 0.5 * (*r + value);
        self.visits[clip][frame] += 1;
        self.pending_steps += steps;
        if self.pending_steps >= self.interval() {
            self.pending_steps = 0;
            self.update();
        }
    }

    /// Recomputes the weights from the running returns.
    pub fn update(&mut self) {
        let (alpha, c) = (self.config.alpha, &self.config);
        self.frame_weights = self.returns.iter().map(|r| floored_softmax(r, c.frame_temperature, alpha)).collect();
        let means: Vec<f64> = self
            .returns
            .iter()
            .zip(&self.starts)
            .filter(|(_, s)| **s)
            .map(|(r, _)| r.iter().sum::<f64>() / r.len().max(1) as f64)
            .collect();
        let mut weights = floored_softmax(&means, c.clip_temperature, alpha).into_iter();
        self.clip_weights =
            self.starts.iter().map(|&s| if s { weights.next().unwrap_or(0.0) } else { 0.0 }).collect();
        self.updates += 1;
    }

    /// `p(clip)`.
    pub fn clip_weights(&self) -> &[f64] {
        &self.clip_weights
    }

    /// `p(frame | clip)`.
    pub fn frame_weights(&self, clip: usize) -> &[f64] {
        &self.frame_weights[clip]
    }

    /// The running return of each frame of `clip`.
    pub fn returns(&self, clip: usize) -> &[f64] {
        &self.returns[clip]
    }

    /// Updates so far.
    pub fn updates(&self) -> u64 {
        self.updates
    }

    /// A (clip, frame) drawn from the weights with two uniform numbers in `[0, 1)`.
    pub fn draw(&self, u_clip: f64, u_frame: f64) -> (usize, usize) {
        let clip = pick(&self.clip_weights, u_clip);
        (clip, pick(&self.frame_weights[clip], u_frame))
    }

    /// The sampling distribution, for the run folder: per clip its weight, and per frame its
    /// weight, running return and visits.
    pub fn distribution(&self, names: &[String]) -> Value {
        let clips: Vec<Value> = names
            .iter()
            .enumerate()
            .map(|(c, name)| {
                json!({
                    "clip": name,
                    "weight": self.clip_weights[c],
                    "frame_weights": self.frame_weights[c],
                    "returns": self.returns[c],
                    "visits": self.visits[c],
                })
            })
            .collect();
        json!({"updates": self.updates, "alpha": self.config.alpha, "clips": clips})
    }

    /// Checks that a restored table fits clips of `frames` start frames.
    pub fn fits(&self, frames: &[usize]) -> bool {
        self.returns.len() == frames.len()
            && self.returns.iter().zip(frames).all(|(r, &l)| r.len() == l)
            && self.frame_weights.iter().zip(frames).all(|(w, &l)| w.len() == l)
            && self.clip_weights.len() == frames.len()
            && self.starts.len() == frames.len()
    }
}

/// The index whose cumulative weight first passes `u · total`.
fn pick(weights: &[f64], u: f64) -> usize {
    let total: f64 = weights.iter().sum();
    let mut target = u * total;
    for (i, w) in weights.iter().enumerate() {
        if target < *w {
            return i;
        }
        target -= w;
    }
    weights.len().saturating_sub(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(alpha: f64) -> Ats {
        let mut ats = Ats::new(AtsConfig { alpha, update_steps: Some(1), ..AtsConfig::default() }, &[10, 4]);
        // Clip 0: frames 0..5 solved (mean reward 0.9), frames 5..10 failing (0.1); clip 1 solved.
        for _ in 0..20 {
            for f in 0..10 {
                ats.record(0, f, if f < 5 { 0.9 } else { 0.1 }, 1);
            }
            for f in 0..4 {
                ats.record(1, f, 0.9, 1);
            }
        }
        ats
    }

    #[test]
    fn weights_sum_to_1_favour_failing_starts_and_keep_the_floor() {
        for alpha in [0.0, 0.5, 0.8, 1.0] {
            let ats = table(alpha);
            assert!((ats.clip_weights().iter().sum::<f64>() - 1.0).abs() < 1e-12);
            for c in 0..2 {
                let w = ats.frame_weights(c);
                assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-12, "alpha {alpha}");
                let floor = (1.0 - alpha) / w.len() as f64;
                assert!(w.iter().all(|p| *p >= floor - 1e-15), "alpha {alpha}: {w:?}");
            }
            let (w, clips) = (ats.frame_weights(0), ats.clip_weights());
            if alpha > 0.0 {
                assert!(w[7] > w[2], "alpha {alpha}: a failing frame is likelier than a solved one");
                assert!(clips[0] > clips[1], "alpha {alpha}: the clip that fails more is likelier");
            } else {
                assert!(w.iter().all(|p| (p - 0.1).abs() < 1e-12), "alpha 0 is uniform");
            }
        }
        // The code's temperatures: at alpha = 1, a gap of 0.8 in return is e^8 in weight.
        let ats = table(1.0);
        let ratio = ats.frame_weights(0)[7] / ats.frame_weights(0)[2];
        let gap = ats.returns(0)[2] - ats.returns(0)[7];
        assert!((ratio - (gap / 0.1).exp()).abs() / ratio < 1e-9, "{ratio}");
        // At the default alpha, a solved frame keeps at least its floor of 0.2/10.
        let ats = table(0.8);
        assert!(ats.frame_weights(0)[2] >= 0.02 - 1e-15 && ats.frame_weights(0)[2] < 0.021);
    }

    #[test]
    fn the_running_return_halves_towards_each_episode_and_updates_wait_for_the_interval() {
        let mut ats = Ats::new(AtsConfig { update_steps: Some(100), ..AtsConfig::default() }, &[3]);
        ats.record(0, 1, 1.0, 30);
        assert_eq!(ats.returns(0), &[0.0, 0.5, 0.0]);
        ats.record(0, 1, 0.0, 30);
        assert_eq!(ats.returns(0), &[0.0, 0.25, 0.0]);
        assert_eq!((ats.updates(), ats.frame_weights(0)[0]), (0, 1.0 / 3.0), "no update before 100 steps");
        ats.record(0, 2, 1.0, 40);
        assert_eq!(ats.updates(), 1);
        assert!(ats.frame_weights(0)[0] > ats.frame_weights(0)[2]);
        // Out-of-range cells and NaN returns change nothing harmful.
        ats.record(5, 0, 1.0, 1);
        ats.record(0, 9, 1.0, 1);
        ats.record(0, 0, f64::NAN, 1);
        assert!(ats.returns(0).iter().all(|r| r.is_finite()));
    }

    #[test]
    fn draws_follow_the_weights() {
        let ats = table(0.8);
        let n = 20_000;
        let mut counts = [0usize; 10];
        let mut clip0 = 0;
        for k in 0..n {
            let u = (k as f64 + 0.5) / n as f64;
            // A low-discrepancy pair covers both axes evenly.
            let v = (k as f64 * 0.618_033_988_749_895).fract();
            let (c, f) = ats.draw(u, v);
            if c == 0 {
                clip0 += 1;
                counts[f] += 1;
            }
        }
        assert!((clip0 as f64 / n as f64 - ats.clip_weights()[0]).abs() < 0.01);
        for (f, count) in counts.iter().enumerate() {
            let p = *count as f64 / clip0 as f64;
            assert!((p - ats.frame_weights(0)[f]).abs() < 0.02, "frame {f}: {p}");
        }
    }

    #[test]
    fn a_clip_without_starts_is_never_drawn_but_keeps_its_statistics() {
        let config = AtsConfig { update_steps: Some(1), ..AtsConfig::default() };
        let mut ats = Ats::with_starts(config, &[4, 3], &[true, false]);
        assert_eq!(ats.clip_weights(), &[1.0, 0.0]);
        ats.record(1, 0, 0.0, 1);
        ats.record(0, 0, 1.0, 1);
        assert_eq!(ats.clip_weights(), &[1.0, 0.0], "a failing non-start clip stays at 0");
        assert_eq!(ats.returns(1)[0], 0.0);
        assert!((0..100).all(|k| ats.draw(k as f64 / 100.0, 0.5).0 == 0));
    }

    #[test]
    fn settings_are_validated_naming_the_field() {
        let bad = |c: AtsConfig| c.validate().err().map(|e| e.field);
        assert_eq!(bad(AtsConfig::default()), None);
        assert_eq!(bad(AtsConfig { alpha: 1.5, ..Default::default() }), Some("ats.alpha"));
        assert_eq!(bad(AtsConfig { alpha: -0.1, ..Default::default() }), Some("ats.alpha"));
        assert_eq!(bad(AtsConfig { frame_temperature: 0.0, ..Default::default() }), Some("ats.frame_temperature"));
        assert_eq!(bad(AtsConfig { update_steps: Some(0), ..Default::default() }), Some("ats.update_steps"));
    }
}

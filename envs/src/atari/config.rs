//! The config of `keel/<Game>-v5`, and the settings it resolves to once its preset has filled
//! the keys left unset.

use keel_ale_sys::SCREEN_WIDTH;
use serde::{Deserialize, Serialize};

use crate::config::{FieldError, Validate};

/// Which library's preprocessing an env reproduces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// Gymnasium's `AtariPreprocessing` + `FrameStackObservation`.
    Gymnasium,
    /// CleanRL's `ppo_atari.py` (SB3's Atari wrappers + Gymnasium's resize, grayscale, stack).
    Cleanrl,
    /// EnvPool's Atari env.
    Envpool,
}

/// Colour of the observation without a preset (Gymnasium's `obs_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ObsType {
    /// 210×160×3.
    Rgb,
    /// 210×160, ALE's grayscale palette.
    Grayscale,
}

/// Construction config of `keel/<Game>-v5`. Every key is optional: unset keys take the value
/// of the `preset` (see the module docs).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AtariConfig {
    /// `gymnasium`, `cleanrl` or `envpool`; unset: plain `ALE/<Game>-v5`.
    pub preset: Option<Preset>,
    /// `rgb` or `grayscale` (no preset only; default `rgb`).
    pub obs_type: Option<ObsType>,
    /// Probability that ALE repeats the previous action at a frame (0.25; `cleanrl`, `envpool`: 0).
    pub repeat_action_probability: Option<f64>,
    /// Frames ALE emulates per call of the base env (4; presets: 1).
    pub frameskip: Option<u32>,
    /// All 18 actions instead of the game's minimal set (false).
    pub full_action_space: Option<bool>,
    /// Frames after which a game is truncated, 0 for none (108,000; `cleanrl`: 400,000).
    pub max_num_frames_per_episode: Option<u32>,
    /// Game mode (ALE's default when unset); must be one of the game's modes.
    pub mode: Option<u32>,
    /// Game difficulty (ALE's default when unset); must be one of the game's difficulties.
    pub difficulty: Option<u32>,
    /// Largest number of no-op frames at reset, 0 for none (presets: 30).
    pub noop_max: Option<u32>,
    /// Agent-level frame skip with max-pooling of the last two frames (presets: 4).
    pub frame_skip: Option<u32>,
    /// Side of the square observation after the `INTER_AREA` resize (presets: 84).
    pub screen_size: Option<u32>,
    /// A lost life terminates the episode (`cleanrl`: true; others false).
    pub terminal_on_life_loss: Option<bool>,
    /// Grayscale observations (presets: true).
    pub grayscale_obs: Option<bool>,
    /// Frames stacked in an observation (presets: 4).
    pub stack_size: Option<u32>,
    /// Press FIRE at reset for games that have it (`cleanrl`, `envpool`: true).
    pub fire_reset: Option<bool>,
    /// Reward is the sign of the score change (`cleanrl`: true).
    pub clip_reward: Option<bool>,
}

/// The settings a config resolves to once the preset has filled its gaps.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Settings {
    pub(super) preset: Option<Preset>,
    pub(super) obs_type: ObsType,
    pub(super) repeat_action_probability: f32,
    pub(super) frameskip: u32,
    pub(super) full_action_space: bool,
    pub(super) max_num_frames_per_episode: u32,
    pub(super) mode: Option<u32>,
    pub(super) difficulty: Option<u32>,
    pub(super) noop_max: u32,
    pub(super) frame_skip: u32,
    pub(super) screen_size: usize,
    pub(super) terminal_on_life_loss: bool,
    pub(super) grayscale_obs: bool,
    pub(super) stack_size: usize,
    /// Asked for (`Some(true)`), refused, or left to the game (`None`: FIRE if it has one).
    pub(super) fire_reset: Option<bool>,
    pub(super) clip_reward: bool,
}

/// Keys only a preset's pipeline has.
const PIPELINE_KEYS: [&str; 8] = [
    "noop_max",
    "frame_skip",
    "screen_size",
    "terminal_on_life_loss",
    "grayscale_obs",
    "stack_size",
    "fire_reset",
    "clip_reward",
];

impl AtariConfig {
    fn pipeline_key_set(&self) -> Option<&'static str> {
        let set = [
            self.noop_max.is_some(),
            self.frame_skip.is_some(),
            self.screen_size.is_some(),
            self.terminal_on_life_loss.is_some(),
            self.grayscale_obs.is_some(),
            self.stack_size.is_some(),
            self.fire_reset.is_some(),
            self.clip_reward.is_some(),
        ];
        set.iter().position(|&s| s).map(|i| PIPELINE_KEYS[i])
    }

    pub(super) fn settings(&self) -> std::result::Result<Settings, FieldError> {
        let preset = self.preset;
        let (rap, frameskip, max_frames) = match preset {
            None => (0.25, 4, 108_000),
            Some(Preset::Gymnasium) => (0.25, 1, 108_000),
            Some(Preset::Cleanrl) => (0.0, 1, 400_000),
            Some(Preset::Envpool) => (0.0, 1, 108_000),
        };
        let on = preset.is_some();
        let s = Settings {
            preset,
            obs_type: self.obs_type.unwrap_or(ObsType::Rgb),
            repeat_action_probability: self.repeat_action_probability.unwrap_or(rap) as f32,
            frameskip: self.frameskip.unwrap_or(frameskip),
            full_action_space: self.full_action_space.unwrap_or(false),
            max_num_frames_per_episode: self.max_num_frames_per_episode.unwrap_or(max_frames),
            mode: self.mode,
            difficulty: self.difficulty,
            noop_max: self.noop_max.unwrap_or(if on { 30 } else { 0 }),
            frame_skip: self.frame_skip.unwrap_or(if on { 4 } else { 1 }),
            screen_size: self.screen_size.unwrap_or(84) as usize,
            terminal_on_life_loss: self.terminal_on_life_loss.unwrap_or(preset == Some(Preset::Cleanrl)),
            grayscale_obs: self.grayscale_obs.unwrap_or(true),
            stack_size: self.stack_size.unwrap_or(4) as usize,
            fire_reset: match preset {
                Some(Preset::Gymnasium) | None => Some(self.fire_reset.unwrap_or(false)),
                Some(_) => self.fire_reset.filter(|&f| !f).or(self.fire_reset.map(|_| true)),
            },
            clip_reward: self.clip_reward.unwrap_or(preset == Some(Preset::Cleanrl)),
        };
        if let Some(p) = self.repeat_action_probability
            && !(0.0..=1.0).contains(&p)
        {
            return Err(FieldError::new("repeat_action_probability", format!("must be in [0, 1], got {p}")));
        }
        if s.frameskip == 0 || s.frameskip > 1000 {
            return Err(FieldError::new("frameskip", format!("must be 1 to 1000, got {}", s.frameskip)));
        }
        if preset.is_none() {
            if let Some(key) = self.pipeline_key_set() {
                return Err(FieldError::new(
                    key,
                    "belongs to a preset's preprocessing; set preset=gymnasium, cleanrl or envpool",
                ));
            }
            return Ok(s);
        }
        if self.obs_type.is_some() {
            return Err(FieldError::new("obs_type", "applies without a preset only; presets use grayscale_obs"));
        }
        if s.frame_skip == 0 || s.frame_skip > 1000 {
            return Err(FieldError::new("frame_skip", format!("must be 1 to 1000, got {}", s.frame_skip)));
        }
        if s.frame_skip > 1 && s.frameskip > 1 && preset == Some(Preset::Gymnasium) {
            // AtariPreprocessing refuses a base env that skips frames itself.
            return Err(FieldError::new("frameskip", "must be 1 when frame_skip > 1 (AtariPreprocessing's rule)"));
        }
        if !(1..=SCREEN_WIDTH).contains(&s.screen_size) {
            return Err(FieldError::new("screen_size", format!("must be 1 to {SCREEN_WIDTH}, got {}", s.screen_size)));
        }
        if !(1..=64).contains(&s.stack_size) {
            return Err(FieldError::new("stack_size", format!("must be 1 to 64, got {}", s.stack_size)));
        }
        if s.noop_max > 100_000 {
            return Err(FieldError::new("noop_max", format!("must be at most 100000, got {}", s.noop_max)));
        }
        if preset == Some(Preset::Gymnasium) && s.fire_reset == Some(true) {
            return Err(FieldError::new(
                "fire_reset",
                "AtariPreprocessing has no fire reset; use preset=cleanrl or envpool",
            ));
        }
        if preset == Some(Preset::Envpool) && s.noop_max == 0 {
            return Err(FieldError::new("noop_max", "EnvPool draws 1..=noop_max no-ops; it must be at least 1"));
        }
        Ok(s)
    }
}

impl Validate for AtariConfig {
    fn validate(&self) -> std::result::Result<(), FieldError> {
        self.settings().map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_fill_gaps_and_keys_override_them() {
        let mut c = AtariConfig { preset: Some(Preset::Cleanrl), ..AtariConfig::default() };
        let s = c.settings().ok();
        assert_eq!(
            s.map(|s| (s.repeat_action_probability, s.terminal_on_life_loss, s.clip_reward, s.fire_reset)),
            Some((0.0, true, true, None))
        );
        c.clip_reward = Some(false);
        c.noop_max = Some(7);
        assert_eq!(c.settings().ok().map(|s| (s.clip_reward, s.noop_max)), Some((false, 7)));
        let plain = AtariConfig::default().settings().ok();
        assert_eq!(
            plain.map(|s| (s.frameskip, s.repeat_action_probability, s.max_num_frames_per_episode)),
            Some((4, 0.25, 108_000))
        );
    }

    #[test]
    fn keys_outside_the_pipeline_are_named() {
        let c = AtariConfig { noop_max: Some(30), ..AtariConfig::default() };
        assert_eq!(c.settings().err().map(|e| e.field), Some("noop_max"));
        let c = AtariConfig { preset: Some(Preset::Gymnasium), frameskip: Some(4), ..AtariConfig::default() };
        assert_eq!(c.settings().err().map(|e| e.field), Some("frameskip"));
        let c = AtariConfig { repeat_action_probability: Some(1.5), ..AtariConfig::default() };
        assert_eq!(c.settings().err().map(|e| e.field), Some("repeat_action_probability"));
        let c = AtariConfig { preset: Some(Preset::Gymnasium), screen_size: Some(0), ..AtariConfig::default() };
        assert_eq!(c.settings().err().map(|e| e.field), Some("screen_size"));
    }
}

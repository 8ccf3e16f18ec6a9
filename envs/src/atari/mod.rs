//! The Atari 2600 games: `keel/<Game>-v5` for every ROM of ale-py 0.12.1, through ALE 0.12.1
//! ([`keel_ale_sys`], cargo feature `atari`, GPL-2.0), with observations as `uint8` from the
//! emulator to the batch.
//!
//! ## Description
//!
//! Without a preset, `keel/<Game>-v5` is Gymnasium's `ALE/<Game>-v5`: the RGB screen
//! (210×160×3), a frame skip of 4 done inside ALE, sticky actions with probability 0.25, the
//! minimal action set, a cap of 108,000 frames reported as truncation. The presets add the
//! preprocessing of the three libraries people train with, each reproducing that library's
//! choices (see `../shared/research/atari.md` §2 for the checklist they follow):
//!
//! | `preset` | what it reproduces |
//! |---|---|
//! | (none) | `gymnasium.make("ALE/<Game>-v5")` |
//! | `gymnasium` | `FrameStackObservation(AtariPreprocessing(gymnasium.make("ALE/<Game>-v5", frameskip=1)), 4)` |
//! | `cleanrl` | CleanRL `ppo_atari.py`: `<Game>NoFrameskip-v4` + SB3's `NoopResetEnv`, `MaxAndSkipEnv`, `EpisodicLifeEnv`, `FireResetEnv`, `ClipRewardEnv`, then `ResizeObservation(84)`, `GrayscaleObservation`, `FrameStackObservation(4)` |
//! | `envpool` | `envpool.make("<Game>-v5")` with its defaults |
//!
//! ## Observation
//!
//! `uint8`. No preset: `(210, 160, 3)` (`obs_type="rgb"`) or `(210, 160)` (`"grayscale"`).
//! Presets: `(stack_size, screen_size, screen_size)` when `grayscale_obs`, else
//! `(stack_size, screen_size, screen_size, 3)` (`envpool`: `(3 * stack_size, screen_size,
//! screen_size)`, as EnvPool lays it out).
//!
//! ## Actions
//!
//! `Discrete(n)`: index into the game's minimal action set (all 18 with
//! `full_action_space=true`). An index outside the set is an `InvalidAction` error.
//!
//! ## Reward
//!
//! The change of the game score over the step (summed over skipped frames); its sign with
//! `clip_reward`. The unclipped reward is the extra `raw_reward`.
//!
//! ## Starting state
//!
//! ALE's deterministic game start, then `1..=noop_max` no-op frames drawn uniformly
//! (`envpool`: EnvPool's `0..noop_max` draw), then FIRE with `fire_reset`. The reset option
//! `noops` (an integer) fixes the number of no-ops of one reset (golden tests use it to replay
//! a reference run).
//!
//! ## Episode end
//!
//! Termination: game over, and a lost life with `terminal_on_life_loss` (in the `gymnasium`
//! preset the next reset then starts a new game, as Gymnasium's `AtariPreprocessing`; in
//! `cleanrl` and `envpool` the game continues, as SB3's `EpisodicLifeEnv` and EnvPool's
//! `episodic_life`). Truncation: `max_num_frames_per_episode` frames (`envpool`: that many
//! frames divided by `frame_skip`, counted in agent steps as EnvPool does).
//!
//! Episode statistics (the vector engine's returns and lengths) count whole games: the
//! unclipped score across every life, and the agent steps of the game.
//!
//! ## Extras
//!
//! `lives`, `raw_reward` (unclipped reward of the step), `frame_number` (ALE frames since the
//! game started).
//!
//! ## Config
//!
//! Gymnasium's names (`repeat_action_probability`, `frameskip`, `full_action_space`,
//! `max_num_frames_per_episode`, `mode`, `difficulty`, `obs_type`) and `AtariPreprocessing`'s
//! (`noop_max`, `frame_skip`, `screen_size`, `terminal_on_life_loss`, `grayscale_obs`), plus
//! `stack_size`, `fire_reset`, `clip_reward` and `preset`. Keys left unset take the preset's
//! value; keys that a preset's pipeline does not have are errors naming them.
//!
//! ## ROMs
//!
//! Read from `$KEEL_ALE_ROMS` (set by `scripts/env.sh`; `scripts/setup.sh` unpacks them from
//! the ale-py 0.12.1 wheel and checks them), else from the folder the build saw.
//!
//! ## Version history
//!
//! * v5: first version, matching ale-py 0.12.1's `ALE/<Game>-v5`.

mod palette;
mod resize;

pub use resize::AreaResize;

use std::marker::PhantomData;
use std::path::PathBuf;

use keel_ale_sys::{Ale, SCREEN_HEIGHT, SCREEN_WIDTH};
use rand::RngExt;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::{FieldError, Validate};
use crate::env::{Env, EnvSpec, EpisodeCount, Registered, ResetOptions, Step};
use crate::error::{EnvError, Result};
use crate::obs::ObsMut;
use crate::registry;
use crate::rng::EnvRng;
use crate::space::{Action, BoxSpace, DType, Discrete, Space};

/// ALE's code for FIRE.
const FIRE: i32 = 1;
const SCREEN: usize = SCREEN_HEIGHT * SCREEN_WIDTH;

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
struct Settings {
    preset: Option<Preset>,
    obs_type: ObsType,
    repeat_action_probability: f32,
    frameskip: u32,
    full_action_space: bool,
    max_num_frames_per_episode: u32,
    mode: Option<u32>,
    difficulty: Option<u32>,
    noop_max: u32,
    frame_skip: u32,
    screen_size: usize,
    terminal_on_life_loss: bool,
    grayscale_obs: bool,
    stack_size: usize,
    /// Asked for (`Some(true)`), refused, or left to the game (`None`: FIRE if it has one).
    fire_reset: Option<bool>,
    clip_reward: bool,
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

    fn settings(&self) -> std::result::Result<Settings, FieldError> {
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
                return Err(FieldError::new(key, "belongs to a preset's preprocessing; set preset=gymnasium, cleanrl or envpool"));
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
            return Err(FieldError::new("fire_reset", "AtariPreprocessing has no fire reset; use preset=cleanrl or envpool"));
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

/// Where the ROMs are: `$KEEL_ALE_ROMS`, else the folder `scripts/env.sh` pointed the build at.
/// An empty value counts as unset (it would otherwise name the working folder).
pub fn rom_dir() -> Option<PathBuf> {
    std::env::var_os("KEEL_ALE_ROMS")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .or_else(|| option_env!("KEEL_ALE_ROMS").filter(|dir| !dir.is_empty()).map(PathBuf::from))
}

/// The ROM file of `rom` (e.g. `pong`), or a `DataMissing` error saying how to get it.
fn rom_path(rom: &str) -> Result<PathBuf> {
    rom_path_in(rom_dir(), rom)
}

fn rom_path_in(dir: Option<PathBuf>, rom: &str) -> Result<PathBuf> {
    let how = "run `bash scripts/setup.sh` (it unpacks the ROMs of the ale-py 0.12.1 wheel into \
               ~/.cache/keel/ale-roms-0.12.1) and `source scripts/env.sh`, or point KEEL_ALE_ROMS at a folder holding";
    let Some(dir) = dir.filter(|dir| !dir.as_os_str().is_empty()) else {
        return Err(EnvError::DataMissing(format!(
            "no Atari ROM folder: KEEL_ALE_ROMS is not set (or empty); {how} {rom}.bin"
        )));
    };
    let path = dir.join(format!("{rom}.bin"));
    if !path.is_file() {
        return Err(EnvError::DataMissing(format!("ROM {} not found; {how} {rom}.bin", path.display())));
    }
    check_md5(&dir, rom, &path)?;
    Ok(path)
}

/// Where the ROM folder has the `md5.json` that ships with ale-py's ROMs (setup.sh writes it),
/// `rom`'s file must have the MD5 it lists: another game's file, or a damaged one, under the name
/// would otherwise run under the wrong id. A folder without `md5.json` is the user's to vouch for.
fn check_md5(dir: &std::path::Path, rom: &str, path: &std::path::Path) -> Result<()> {
    use md5::{Digest, Md5};
    let sums_path = dir.join("md5.json");
    let Ok(text) = std::fs::read_to_string(&sums_path) else { return Ok(()) };
    let sums: std::collections::BTreeMap<String, String> = serde_json::from_str(&text).map_err(|e| {
        EnvError::DataMissing(format!("{} is not a JSON table of ROM names to MD5 sums: {e}", sums_path.display()))
    })?;
    let Some(want) = sums.get(&format!("{rom}.bin")) else { return Ok(()) };
    let bytes = std::fs::read(path)
        .map_err(|e| EnvError::DataMissing(format!("ROM {} cannot be read: {e}", path.display())))?;
    let got: String = Md5::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
    if !got.eq_ignore_ascii_case(want) {
        return Err(EnvError::DataMissing(format!(
            "ROM {} is not {rom}'s: its MD5 is {got}, {} lists {want}; reinstall the ROMs with `bash \
             scripts/setup.sh`",
            path.display(),
            sums_path.display()
        )));
    }
    Ok(())
}

fn ale_error(id: &str, message: String) -> EnvError {
    EnvError::DataMissing(format!("{id}: ALE: {message}"))
}

fn invalid(id: &str, field: &str, message: String) -> EnvError {
    EnvError::InvalidField { context: format!("{id} config"), field: field.into(), message }
}

/// An emulator with the game loaded and the settings applied, and its action set.
fn load(id: &str, rom: &str, s: &Settings, seed: i32) -> Result<(Ale, Vec<i32>)> {
    let path = rom_path(rom)?;
    let mut ale = Ale::new().map_err(|e| ale_error(id, e))?;
    ale.set_float("repeat_action_probability", s.repeat_action_probability).map_err(|e| ale_error(id, e))?;
    let max_frames = if s.preset == Some(Preset::Envpool) { 0 } else { s.max_num_frames_per_episode };
    ale.set_int("max_num_frames_per_episode", max_frames as i32).map_err(|e| ale_error(id, e))?;
    ale.set_int("random_seed", seed).map_err(|e| ale_error(id, e))?;
    ale.load_rom(&path).map_err(|e| ale_error(id, e))?;
    if let Some(mode) = s.mode {
        let modes = ale.modes();
        if !modes.contains(&mode) {
            return Err(invalid(id, "mode", format!("{mode} is not a mode of this game; its modes: {modes:?}")));
        }
        ale.set_mode(mode).map_err(|e| ale_error(id, e))?;
    }
    if let Some(difficulty) = s.difficulty {
        let all = ale.difficulties();
        if !all.contains(&difficulty) {
            return Err(invalid(id, "difficulty", format!("{difficulty} is not a difficulty of this game; its difficulties: {all:?}")));
        }
        ale.set_difficulty(difficulty).map_err(|e| ale_error(id, e))?;
    }
    let actions = ale.action_set(s.full_action_space);
    Ok((ale, actions))
}

/// The observation shape of settings `s`.
fn obs_shape(s: &Settings) -> Vec<usize> {
    let (k, side) = (s.stack_size, s.screen_size);
    match (s.preset, s.grayscale_obs) {
        (None, _) if s.obs_type == ObsType::Grayscale => vec![SCREEN_HEIGHT, SCREEN_WIDTH],
        (None, _) => vec![SCREEN_HEIGHT, SCREEN_WIDTH, 3],
        (Some(_), true) => vec![k, side, side],
        (Some(Preset::Envpool), false) => vec![3 * k, side, side],
        (Some(_), false) => vec![k, side, side, 3],
    }
}

/// Copies the screen (RGB when `channels` is 3, else ALE's grayscale) into `out`, which the
/// env sized for it at construction.
#[inline]
fn screen(ale: &mut Ale, channels: usize, out: &mut [u8]) {
    // Only a buffer of the wrong size fails, and every caller passes one sized for the screen.
    let _ = if channels == 3 { ale.screen_rgb(out) } else { ale.screen_grayscale(out) };
}

fn spec_of(id: &str, s: &Settings, actions: usize) -> EnvSpec {
    let shape = obs_shape(s);
    let len: usize = shape.iter().product();
    let mut space = BoxSpace::vector(vec![0.0; len], vec![255.0; len]).with_dtype(DType::Uint8);
    space.shape = shape;
    EnvSpec {
        id: id.into(),
        observation_space: Space::Box(space),
        action_space: Space::Discrete(Discrete { n: actions as i64, start: 0 }),
        max_episode_steps: None,
        reward_threshold: None,
        state_len: None,
        extras: vec!["lives".into(), "raw_reward".into(), "frame_number".into()],
    }
}

/// One Atari game with the preprocessing its settings ask for (the type behind every
/// `keel/<Game>-v5`; see the module docs).
pub struct AtariEnv {
    spec: EnvSpec,
    s: Settings,
    rom: &'static str,
    ale: Ale,
    /// ALE codes of the action indices.
    actions: Vec<i32>,
    fire_reset: bool,
    rng: EnvRng,
    ale_seeded: bool,
    started: bool,
    /// Channels of a grabbed screen (1 gray, 3 RGB).
    channels: usize,
    /// The two frames of the max-pool, screen-sized. Gray frames are kept as ALE's palette
    /// indices (`palette` maps them), so that the gray levels, the max-pool and the resize are
    /// one pass; RGB frames as RGB.
    pool: [Vec<u8>; 2],
    /// ALE's grayscale palette of the game: the gray level of each palette index.
    palette: [u8; 256],
    /// The screen-sized observation before resizing (`cleanrl`: RGB; `gymnasium` and
    /// `envpool`: the max-pooled gray levels).
    frame: Vec<u8>,
    /// Resized frame (`cleanrl`: RGB before the grayscale).
    small: Vec<u8>,
    /// One stack slot after resize (and grayscale).
    slot: Vec<u8>,
    /// The stacked observation, oldest frame first.
    stack: Vec<u8>,
    resize: Option<AreaResize>,
    lives: i32,
    /// The last step ended the game (not only a life): the next reset starts a new one.
    was_real_done: bool,
    /// Agent steps since the game started (`envpool`'s elapsed steps).
    elapsed: u64,
    game_return: f64,
    game_length: u64,
    count: EpisodeCount,
    raw_reward: f64,
    /// Lives and episode frame number after the last reset or step (the extras).
    lives_now: i32,
    frame_number: i32,
}

impl AtariEnv {
    /// The spec of game `rom` under `id` with `config` (loads the ROM to learn its action set).
    pub fn spec_for(id: &str, rom: &str, config: &AtariConfig) -> Result<EnvSpec> {
        let s = config.settings().map_err(|e| invalid(id, e.field, e.message))?;
        let (_, actions) = load(id, rom, &s, 0)?;
        Ok(spec_of(id, &s, actions.len()))
    }

    /// Game `rom` (a ROM file name without `.bin`, e.g. `pong`) under `id`, built from `config`.
    pub fn new(id: &str, rom: &'static str, config: &AtariConfig) -> Result<Self> {
        let s = config.settings().map_err(|e| invalid(id, e.field, e.message))?;
        let (mut ale, actions) = load(id, rom, &s, 0)?;
        let palette = ale.grayscale_palette();
        let has_fire = actions.len() >= 3 && actions[1] == FIRE;
        let fire_reset = match s.fire_reset {
            Some(true) if !has_fire => {
                return Err(invalid(id, "fire_reset", "this game has no FIRE action at index 1".into()));
            }
            Some(f) => f,
            None => has_fire,
        };
        let spec = spec_of(id, &s, actions.len());
        let grab_rgb = match s.preset {
            None => s.obs_type == ObsType::Rgb,
            Some(Preset::Cleanrl) => true,
            Some(_) => !s.grayscale_obs,
        };
        let channels = if grab_rgb { 3 } else { 1 };
        let side = s.screen_size;
        let resize = s.preset.map(|_| AreaResize::new(SCREEN_HEIGHT, SCREEN_WIDTH, channels, side, side));
        let slot_len = side * side * if s.grayscale_obs { 1 } else { 3 };
        let on = s.preset.is_some();
        Ok(Self {
            spec,
            s,
            rom,
            ale,
            actions,
            fire_reset,
            rng: EnvRng::default(),
            ale_seeded: false,
            started: false,
            channels,
            pool: [vec![0; SCREEN * channels], vec![0; SCREEN * channels]],
            palette,
            frame: vec![0; if on { SCREEN * channels } else { 0 }],
            small: vec![0; if on { side * side * channels } else { 0 }],
            slot: vec![0; if on { slot_len } else { 0 }],
            stack: vec![0; if on { slot_len * s.stack_size } else { 0 }],
            resize,
            lives: 0,
            was_real_done: true,
            elapsed: 0,
            game_return: 0.0,
            game_length: 0,
            count: EpisodeCount::Engine,
            raw_reward: 0.0,
            lives_now: 0,
            frame_number: 0,
        })
    }

    /// The ALE action codes of the action indices.
    pub fn action_codes(&self) -> &[i32] {
        &self.actions
    }

    // ---- the base env: Gymnasium's AtariEnv --------------------------------------------------

    /// `AtariEnv.reset`: with a seed (or on the first reset), reseeds ALE and reloads the ROM;
    /// then ALE's game reset.
    fn base_reset(&mut self, seed: Option<u64>) -> Result<()> {
        if seed.is_some() || !self.ale_seeded {
            let ale_seed = (self.rng.reseed(seed).random::<u32>() >> 1) as i32;
            let id = self.spec.id.clone();
            let (mut ale, _) = load(&id, self.rom, &self.s, ale_seed)?;
            self.palette = ale.grayscale_palette();
            self.ale = ale;
            self.ale_seeded = true;
        }
        self.ale.reset_game();
        self.game_return = 0.0;
        self.game_length = 0;
        self.elapsed = 0;
        Ok(())
    }

    /// `AtariEnv.step` with ALE action code `code`: (reward, terminated, truncated).
    #[inline]
    fn base_step(&mut self, code: i32) -> (f64, bool, bool) {
        let mut reward = 0;
        for _ in 0..self.s.frameskip {
            reward += self.ale.act(code, 1.0);
        }
        let reward = f64::from(reward);
        self.game_return += reward;
        (reward, self.ale.game_over(false), self.ale.game_truncated())
    }

    /// Copies the screen into max-pool buffer `slot` (palette indices when gray).
    #[inline]
    fn grab(&mut self, slot: usize) {
        let out = &mut self.pool[slot];
        // Only a buffer of the wrong size fails, and the pool is sized for the screen.
        let _ = if self.channels == 3 { self.ale.screen_rgb(out) } else { self.ale.screen_indices(out) };
    }

    fn draw_noops(&mut self, low: u32, high: u32) -> u32 {
        if high < low { 0 } else { self.rng.reseed(None).random_range(low..=high) }
    }

    /// Writes `slot` as the newest frame of the stack (`fill`: as every frame), then the stack
    /// into `out`.
    fn push(&mut self, fill: bool, out: &mut [u8]) {
        let n = self.slot.len();
        if fill {
            for chunk in self.stack.chunks_exact_mut(n) {
                chunk.copy_from_slice(&self.slot);
            }
        } else {
            self.stack.copy_within(n.., 0);
            let len = self.stack.len();
            self.stack[len - n..].copy_from_slice(&self.slot);
        }
        out.copy_from_slice(&self.stack);
    }

    // ---- no preset ---------------------------------------------------------------------------

    fn raw_obs(&mut self, out: &mut [u8]) {
        screen(&mut self.ale, self.channels, out);
    }

    // ---- gymnasium: AtariPreprocessing + FrameStackObservation -------------------------------

    fn gym_reset(&mut self, seed: Option<u64>, noops: Option<u32>, out: &mut [u8]) -> Result<()> {
        self.base_reset(seed)?;
        let n = noops.unwrap_or_else(|| self.draw_noops(1, self.s.noop_max));
        let noop = self.actions[0];
        for _ in 0..n {
            let (_, terminated, truncated) = self.base_step(noop);
            if terminated || truncated {
                self.base_reset(seed)?;
            }
        }
        self.lives = self.ale.lives();
        self.grab(0);
        // Gymnasium starts its second frame buffer black: palette index 0, gray 0 (a test checks).
        self.pool[1].fill(0);
        self.gym_obs(true, out);
        Ok(())
    }

    fn gym_step(&mut self, code: i32, out: &mut [u8]) -> (f64, bool, bool) {
        let (mut total, mut terminated, mut truncated) = (0.0, false, false);
        let skip = self.s.frame_skip;
        for t in 0..skip {
            let (r, term, trunc) = self.base_step(code);
            total += r;
            (terminated, truncated) = (term, trunc);
            if self.s.terminal_on_life_loss {
                let lives = self.ale.lives();
                terminated |= lives < self.lives;
                self.lives = lives;
            }
            if terminated || truncated {
                break;
            }
            if skip >= 2 && t == skip - 2 {
                self.grab(1);
            } else if t == skip - 1 {
                self.grab(0);
            }
        }
        self.was_real_done = true;
        self.gym_obs(false, out);
        (total, terminated, truncated)
    }

    fn gym_obs(&mut self, fill: bool, out: &mut [u8]) {
        self.pooled_slot(self.s.frame_skip > 1);
        if self.channels == 3 {
            self.slot.copy_from_slice(&self.small);
        }
        self.push(fill, out);
    }

    /// The newest frame from the max-pool buffers (`maxpool`: the max of both, else the first),
    /// resized: into `slot` when gray (gray levels, max-pool and resize in one pass), into
    /// `small` when RGB.
    fn pooled_slot(&mut self, maxpool: bool) {
        let Some(r) = self.resize.as_mut() else { return };
        let [a, b] = &mut self.pool;
        if self.channels == 1 {
            palette::gray_max(&self.palette, a, maxpool.then_some(&b[..]), &mut self.frame);
            r.run(&self.frame, &mut self.slot);
            return;
        }
        if maxpool {
            a.iter_mut().zip(b.iter()).for_each(|(x, &y)| *x = (*x).max(y));
        }
        r.run(a, &mut self.small);
    }

    // ---- cleanrl: SB3's Atari wrappers, then Gymnasium's resize, grayscale, stack -------------

    /// `NoopResetEnv.reset` (under `MaxAndSkipEnv`): leaves the screen in `frame`.
    fn sb3_noop_reset(&mut self, seed: Option<u64>, noops: Option<u32>) -> Result<()> {
        self.base_reset(seed)?;
        let n = noops.unwrap_or_else(|| self.draw_noops(1, self.s.noop_max));
        let noop = self.actions[0];
        for _ in 0..n {
            let (_, terminated, truncated) = self.base_step(noop);
            if terminated || truncated {
                self.base_reset(seed)?;
            }
        }
        screen(&mut self.ale, self.channels, &mut self.frame);
        // MaxAndSkipEnv's buffers live on across resets (a seed starts them afresh).
        if seed.is_some() {
            self.pool[0].fill(0);
            self.pool[1].fill(0);
        }
        Ok(())
    }

    /// `MaxAndSkipEnv.step`: the max of the last two frames in `frame`.
    fn sb3_skip_step(&mut self, code: i32) -> (f64, bool, bool) {
        let (mut total, mut terminated, mut truncated) = (0.0, false, false);
        let skip = self.s.frame_skip;
        for i in 0..skip {
            let (r, term, trunc) = self.base_step(code);
            (terminated, truncated) = (term, trunc);
            if skip >= 2 && i == skip - 2 {
                self.grab(0);
            }
            if i == skip - 1 {
                self.grab(1);
            }
            total += r;
            if terminated || truncated {
                break;
            }
        }
        let [a, b] = &self.pool;
        self.frame.iter_mut().zip(a.iter().zip(b.iter())).for_each(|(f, (&x, &y))| *f = x.max(y));
        (total, terminated, truncated)
    }

    /// `EpisodicLifeEnv.step` (a plain pass-through without `terminal_on_life_loss`).
    fn sb3_life_step(&mut self, code: i32) -> (f64, bool, bool) {
        let (r, mut terminated, truncated) = self.sb3_skip_step(code);
        self.was_real_done = terminated || truncated;
        if self.s.terminal_on_life_loss {
            let lives = self.ale.lives();
            if 0 < lives && lives < self.lives {
                terminated = true;
            }
            self.lives = lives;
        }
        (r, terminated, truncated)
    }

    /// `EpisodicLifeEnv.reset`.
    fn sb3_life_reset(&mut self, seed: Option<u64>, noops: Option<u32>) -> Result<()> {
        if self.was_real_done || seed.is_some() || !self.s.terminal_on_life_loss {
            self.sb3_noop_reset(seed, noops)?;
        } else {
            let (_, terminated, truncated) = self.sb3_skip_step(self.actions[0]);
            if terminated || truncated {
                self.sb3_noop_reset(None, noops)?;
            }
        }
        self.lives = self.ale.lives();
        Ok(())
    }

    /// `FireResetEnv.reset` over `EpisodicLifeEnv`.
    fn sb3_reset(&mut self, seed: Option<u64>, noops: Option<u32>, out: &mut [u8]) -> Result<()> {
        self.sb3_life_reset(seed, noops)?;
        if self.fire_reset {
            let (_, terminated, truncated) = self.sb3_life_step(self.actions[1]);
            if terminated || truncated {
                self.sb3_life_reset(None, noops)?;
            }
            let (_, terminated, truncated) = self.sb3_life_step(self.actions[2]);
            if terminated || truncated {
                // FireResetEnv resets but returns the observation of the step.
                let kept = std::mem::take(&mut self.frame);
                self.frame = vec![0; kept.len()];
                self.sb3_life_reset(None, noops)?;
                self.frame = kept;
            }
        }
        self.sb3_obs(true, out);
        Ok(())
    }

    /// `ResizeObservation` (RGB, `INTER_AREA`), `GrayscaleObservation` (Gymnasium 1.x weights,
    /// truncated), `FrameStackObservation`.
    fn sb3_obs(&mut self, fill: bool, out: &mut [u8]) {
        if let Some(r) = self.resize.as_mut() {
            r.run(&self.frame, &mut self.small);
        }
        if self.s.grayscale_obs {
            for (g, px) in self.slot.iter_mut().zip(self.small.chunks_exact(3)) {
                let v = f64::from(px[0]) * 0.2125 + f64::from(px[1]) * 0.7154 + f64::from(px[2]) * 0.0721;
                *g = v as u8;
            }
        } else {
            self.slot.copy_from_slice(&self.small);
        }
        self.push(fill, out);
    }

    // ---- envpool -----------------------------------------------------------------------------

    fn envpool_cap(&self) -> u64 {
        match self.s.max_num_frames_per_episode {
            0 => u64::MAX,
            frames => u64::from(frames / self.s.frame_skip.max(1)).max(1),
        }
    }

    fn envpool_reset(&mut self, seed: Option<u64>, noops: Option<u32>, out: &mut [u8]) -> Result<()> {
        let mut fill = false;
        let force = seed.is_some() || !self.started;
        if force || !self.s.terminal_on_life_loss || self.ale.game_over(true) || self.elapsed >= self.envpool_cap() {
            self.base_reset(seed)?;
            fill = true;
        }
        // EnvPool draws before its game reset; the draw comes after here so that a seeded reset
        // draws from the new stream (ALE does not use this stream, so nothing else changes).
        let fire = u32::from(self.fire_reset);
        let mut noop = match noops {
            Some(n) => n,
            None => (self.draw_noops(0, self.s.noop_max - 1) + 1).saturating_sub(fire),
        };
        while noop > 0 {
            noop -= 1;
            self.game_return += f64::from(self.ale.act(0, 1.0));
            if self.ale.game_over(true) {
                self.base_reset(None)?;
                fill = true;
            }
        }
        if self.fire_reset {
            self.game_return += f64::from(self.ale.act(FIRE, 1.0));
        }
        self.grab(0);
        self.envpool_obs(fill, false, out);
        self.lives = self.ale.lives();
        Ok(())
    }

    fn envpool_step(&mut self, code: i32, out: &mut [u8]) -> (f64, bool, bool) {
        let mut reward = 0;
        let mut done = false;
        let skip = self.s.frame_skip;
        let pooled = skip.min(2);
        let mut skip_id = skip;
        while skip_id > 0 && !done {
            reward += self.ale.act(code, 1.0);
            done = self.ale.game_over(true);
            if skip_id <= pooled {
                self.grab((pooled - skip_id) as usize);
            }
            skip_id -= 1;
        }
        let reward = f64::from(reward);
        self.game_return += reward;
        self.envpool_obs(false, skip > 1 && skip_id == 0, out);
        self.elapsed += 1;
        let truncated = self.elapsed >= self.envpool_cap();
        let game_over = self.ale.game_over(true);
        let lives = self.ale.lives();
        let life_lost = self.s.terminal_on_life_loss && 0 < lives && lives < self.lives;
        self.lives = lives;
        self.was_real_done = game_over || truncated;
        (reward, (game_over || life_lost) && !truncated, truncated)
    }

    fn envpool_obs(&mut self, fill: bool, maxpool: bool, out: &mut [u8]) {
        self.pooled_slot(maxpool);
        if self.channels == 3 {
            // EnvPool stacks RGB channel-first: (3, side, side) per frame.
            let plane = self.s.screen_size * self.s.screen_size;
            for (p, px) in self.small.chunks_exact(3).enumerate() {
                for c in 0..3 {
                    self.slot[c * plane + p] = px[c];
                }
            }
        }
        self.push(fill, out);
    }

    // ---- shared ------------------------------------------------------------------------------

    fn noops_option(&self, options: &ResetOptions) -> Result<Option<u32>> {
        if options.state.is_some() {
            return Err(EnvError::InvalidState(format!("{} has no explicit initial state", self.spec.id)));
        }
        let mut noops = None;
        for (key, value) in &options.params {
            if key != "noops" {
                return Err(EnvError::UnknownField {
                    context: format!("{} reset options", self.spec.id),
                    field: key.clone(),
                    known: "noops".into(),
                });
            }
            let n = value.as_u64().filter(|&n| n <= 100_000).ok_or_else(|| EnvError::InvalidField {
                context: format!("{} reset options", self.spec.id),
                field: "noops".into(),
                message: format!("must be an integer from 0 to 100000, got {value}"),
            })?;
            noops = Some(n as u32);
        }
        Ok(noops)
    }
}

impl Env for AtariEnv {
    fn spec(&self) -> &EnvSpec {
        &self.spec
    }

    fn reset(&mut self, seed: Option<u64>, options: &ResetOptions, obs: ObsMut<'_>) -> Result<()> {
        let out = obs.u8(self.spec.obs_len())?;
        let noops = self.noops_option(options)?;
        if seed.is_some() {
            self.was_real_done = true;
        }
        match self.s.preset {
            None => {
                self.base_reset(seed)?;
                self.raw_obs(out);
            }
            Some(Preset::Gymnasium) => self.gym_reset(seed, noops, out)?,
            Some(Preset::Cleanrl) => self.sb3_reset(seed, noops, out)?,
            Some(Preset::Envpool) => self.envpool_reset(seed, noops, out)?,
        }
        self.started = true;
        self.raw_reward = 0.0;
        self.count = EpisodeCount::Engine;
        self.lives_now = self.ale.lives();
        self.frame_number = self.ale.episode_frame_number();
        Ok(())
    }

    fn step(&mut self, action: Action<'_>, obs: ObsMut<'_>) -> Result<Step> {
        let out = obs.u8(self.spec.obs_len())?;
        let a = self.spec.action_space.discrete_action(action)?;
        if !self.started {
            return Err(EnvError::ResetNeeded);
        }
        let code = self.actions[a as usize];
        let (reward, terminated, truncated) = match self.s.preset {
            None => {
                let step = self.base_step(code);
                self.raw_obs(out);
                step
            }
            Some(Preset::Gymnasium) => self.gym_step(code, out),
            Some(Preset::Cleanrl) => {
                let step = self.sb3_life_step(code);
                self.sb3_obs(false, out);
                step
            }
            Some(Preset::Envpool) => self.envpool_step(code, out),
        };
        self.game_length += 1;
        self.raw_reward = reward;
        self.lives_now = self.ale.lives();
        self.frame_number = self.ale.episode_frame_number();
        self.count = if !(terminated || truncated) {
            EpisodeCount::Engine
        } else if self.was_real_done || self.s.preset.is_none() {
            EpisodeCount::Ended { episode_return: self.game_return, length: self.game_length }
        } else {
            EpisodeCount::Continues
        };
        let reward = match self.s.clip_reward {
            true if reward > 0.0 => 1.0,
            true if reward < 0.0 => -1.0,
            true => 0.0,
            false => reward,
        };
        Ok(Step { reward, terminated, truncated })
    }

    fn write_extras(&self, out: &mut [f64]) {
        out[0] = f64::from(self.lives_now);
        out[1] = self.raw_reward;
        out[2] = f64::from(self.frame_number);
    }

    fn episode_count(&self) -> EpisodeCount {
        self.count
    }

    fn set_params(&mut self, params: &Map<String, Value>) -> Result<()> {
        match params.keys().next() {
            None => Ok(()),
            Some(key) => Err(EnvError::UnknownField {
                context: format!("{} parameters", self.spec.id),
                field: key.clone(),
                known: "(none)".into(),
            }),
        }
    }

    fn params(&self) -> Value {
        Value::Object(Map::new())
    }
}

/// A game: its ROM file name and its id.
pub trait Game: Send + 'static {
    /// ROM file name without `.bin` (ALE's snake-case name).
    const ROM: &'static str;
    /// `keel/<Game>-v5`.
    const ID: &'static str;
    /// One line for `keel list`.
    const DESCRIPTION: &'static str;
}

/// `keel/<Game>-v5` for game `G`: an [`AtariEnv`] under the game's id.
pub struct Atari<G: Game> {
    env: AtariEnv,
    _game: PhantomData<G>,
}

impl<G: Game> Atari<G> {
    /// The env inside.
    pub fn inner(&self) -> &AtariEnv {
        &self.env
    }
}

impl<G: Game> Registered for Atari<G> {
    const ID: &'static str = G::ID;
    const DESCRIPTION: &'static str = G::DESCRIPTION;
    const MAX_EPISODE_STEPS: Option<u64> = None;
    type Config = AtariConfig;

    fn spec(config: &AtariConfig) -> Result<EnvSpec> {
        AtariEnv::spec_for(G::ID, G::ROM, config)
    }

    fn new(config: AtariConfig) -> Result<Self> {
        Ok(Self { env: AtariEnv::new(G::ID, G::ROM, &config)?, _game: PhantomData })
    }

    fn memory_estimate(config: &AtariConfig) -> u64 {
        // The emulator (console, cartridge, TIA frame buffers) plus Keel's frame buffers.
        // Per observation byte: the bounds of its space, two float64 per byte as `spec_of`
        // allocates them, held by the env and by its time-limit wrapper (32 bytes), and the
        // frames (the stack, the row it is copied into, the pooled screen: 3). Measured: 164 MB
        // per env of a vector at stack_size 64, screen_size 160, RGB (4.69 MB observations).
        let obs = config.settings().map_or(0, |s| obs_shape(&s).iter().product::<usize>() as u64);
        (2 << 20) + 8 * SCREEN as u64 + 35 * obs
    }
}

impl<G: Game> Env for Atari<G> {
    fn spec(&self) -> &EnvSpec {
        self.env.spec()
    }
    fn reset(&mut self, seed: Option<u64>, options: &ResetOptions, obs: ObsMut<'_>) -> Result<()> {
        self.env.reset(seed, options, obs)
    }
    fn step(&mut self, action: Action<'_>, obs: ObsMut<'_>) -> Result<Step> {
        self.env.step(action, obs)
    }
    fn write_extras(&self, out: &mut [f64]) {
        self.env.write_extras(out)
    }
    fn episode_count(&self) -> EpisodeCount {
        self.env.episode_count()
    }
    fn set_params(&mut self, params: &Map<String, Value>) -> Result<()> {
        self.env.set_params(params)
    }
    fn params(&self) -> Value {
        self.env.params()
    }
}

macro_rules! games {
    ($($name:ident => $rom:literal,)+) => {
        /// One marker type per game of ale-py 0.12.1 (ids follow ale-py: `rom.title()` without
        /// underscores). The wheel's four multiplayer-only ROMs (combat, joust, maze_craze,
        /// warlords) are not games of ALE's single-agent interface and have no id.
        pub mod games {
            $(
                #[doc = concat!("`keel/", stringify!($name), "-v5` (ROM `", $rom, ".bin`).")]
                pub struct $name;
                impl super::Game for $name {
                    const ROM: &'static str = $rom;
                    const ID: &'static str = concat!("keel/", stringify!($name), "-v5");
                    const DESCRIPTION: &'static str =
                        concat!("Atari 2600 ", stringify!($name), " (ALE 0.12.1; preset= gymnasium, cleanrl, envpool)");
                }
            )+
        }

        /// The registry lines of every game.
        pub fn entries() -> Vec<registry::Registration> {
            vec![$(registry::entry::<Atari<games::$name>>()),+]
        }

        /// Every game's ROM name, in id order.
        pub const ROMS: &[&str] = &[$($rom),+];
    };
}

games! {
    Adventure => "adventure",
    AirRaid => "air_raid",
    Alien => "alien",
    Amidar => "amidar",
    Assault => "assault",
    Asterix => "asterix",
    Asteroids => "asteroids",
    Atlantis => "atlantis",
    Atlantis2 => "atlantis2",
    Backgammon => "backgammon",
    BankHeist => "bank_heist",
    BasicMath => "basic_math",
    BattleZone => "battle_zone",
    BeamRider => "beam_rider",
    Berzerk => "berzerk",
    Blackjack => "blackjack",
    Bowling => "bowling",
    Boxing => "boxing",
    Breakout => "breakout",
    Carnival => "carnival",
    Casino => "casino",
    Centipede => "centipede",
    ChopperCommand => "chopper_command",
    CrazyClimber => "crazy_climber",
    Crossbow => "crossbow",
    Darkchambers => "darkchambers",
    Defender => "defender",
    DemonAttack => "demon_attack",
    DonkeyKong => "donkey_kong",
    DoubleDunk => "double_dunk",
    Earthworld => "earthworld",
    ElevatorAction => "elevator_action",
    Enduro => "enduro",
    Entombed => "entombed",
    Et => "et",
    FishingDerby => "fishing_derby",
    FlagCapture => "flag_capture",
    Freeway => "freeway",
    Frogger => "frogger",
    Frostbite => "frostbite",
    Galaxian => "galaxian",
    Gopher => "gopher",
    Gravitar => "gravitar",
    Hangman => "hangman",
    HauntedHouse => "haunted_house",
    Hero => "hero",
    HumanCannonball => "human_cannonball",
    IceHockey => "ice_hockey",
    Jamesbond => "jamesbond",
    JourneyEscape => "journey_escape",
    Kaboom => "kaboom",
    Kangaroo => "kangaroo",
    KeystoneKapers => "keystone_kapers",
    KingKong => "king_kong",
    Klax => "klax",
    Koolaid => "koolaid",
    Krull => "krull",
    KungFuMaster => "kung_fu_master",
    LaserGates => "laser_gates",
    LostLuggage => "lost_luggage",
    MarioBros => "mario_bros",
    MiniatureGolf => "miniature_golf",
    MontezumaRevenge => "montezuma_revenge",
    MrDo => "mr_do",
    MsPacman => "ms_pacman",
    NameThisGame => "name_this_game",
    Othello => "othello",
    Pacman => "pacman",
    Phoenix => "phoenix",
    Pitfall => "pitfall",
    Pitfall2 => "pitfall2",
    Pong => "pong",
    Pooyan => "pooyan",
    PrivateEye => "private_eye",
    Qbert => "qbert",
    Riverraid => "riverraid",
    RoadRunner => "road_runner",
    Robotank => "robotank",
    Seaquest => "seaquest",
    SirLancelot => "sir_lancelot",
    Skiing => "skiing",
    Solaris => "solaris",
    SpaceInvaders => "space_invaders",
    SpaceWar => "space_war",
    StarGunner => "star_gunner",
    Superman => "superman",
    Surround => "surround",
    Tennis => "tennis",
    Tetris => "tetris",
    TicTacToe3D => "tic_tac_toe_3d",
    TimePilot => "time_pilot",
    Trondead => "trondead",
    Turmoil => "turmoil",
    Tutankham => "tutankham",
    UpNDown => "up_n_down",
    Venture => "venture",
    VideoCheckers => "video_checkers",
    VideoChess => "video_chess",
    VideoCube => "video_cube",
    VideoPinball => "video_pinball",
    WizardOfWor => "wizard_of_wor",
    WordZapper => "word_zapper",
    YarsRevenge => "yars_revenge",
    Zaxxon => "zaxxon",
}

/// Registers `keel/<Game>-v5` for every game (the command line and the Python module call it at
/// start-up; calling it again is harmless).
pub fn register() -> Result<()> {
    entries().into_iter().try_for_each(registry::register)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn palette_indices_through_the_gray_table_are_ales_grayscale_screen() {
        assert!(rom_dir().is_some(), "no ROM folder: run scripts/setup.sh and source scripts/env.sh");
        let s = AtariConfig { repeat_action_probability: Some(0.0), ..AtariConfig::default() }.settings().ok();
        for rom in ["pong", "breakout", "space_invaders"] {
            let Some(Ok((mut ale, actions))) = s.as_ref().map(|s| load("test", rom, s, 3)) else { panic!("cannot load {rom}") };
            let palette = ale.grayscale_palette();
            // The pools start black: index 0 must be gray 0 (Gymnasium's zeroed buffer).
            assert_eq!(palette[0], 0, "{rom}");
            let (mut indices, mut gray, mut mapped) = (vec![0u8; SCREEN], vec![0u8; SCREEN], vec![0u8; SCREEN]);
            for t in 0..300 {
                ale.act(actions[t * 7 % actions.len()], 1.0);
                assert!(ale.screen_indices(&mut indices).is_ok() && ale.screen_grayscale(&mut gray).is_ok());
                palette::gray_max(&palette, &indices, None, &mut mapped);
                assert_eq!(mapped, gray, "{rom}, frame {t}");
            }
        }
    }

    /// A ROM whose content is not the one `md5.json` lists (another game's) is refused under
    /// its name; the listed content, and a folder without `md5.json`, are taken.
    #[test]
    fn a_rom_of_other_content_than_its_md5_is_refused() {
        let dir = std::env::temp_dir().join(format!("keel-rom-md5-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.join("pong.bin"), b"breakout's bytes").unwrap_or_else(|e| panic!("{e}"));
        assert!(rom_path_in(Some(dir.clone()), "pong").is_ok(), "no md5.json: the user's folder");
        // md5.json lists the MD5 of other bytes than the file holds.
        let listed: String = {
            use md5::{Digest, Md5};
            Md5::digest(b"pong's bytes").iter().map(|b| format!("{b:02x}")).collect()
        };
        std::fs::write(dir.join("md5.json"), format!("{{\"pong.bin\": \"{listed}\"}}")).unwrap_or_else(|e| panic!("{e}"));
        let err = rom_path_in(Some(dir.clone()), "pong").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("is not pong's") && err.contains(&listed), "{err}");
        std::fs::write(dir.join("pong.bin"), b"pong's bytes").unwrap_or_else(|e| panic!("{e}"));
        assert!(rom_path_in(Some(dir.clone()), "pong").is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_missing_rom_says_how_to_get_it() {
        // An empty folder name is no folder: not the working folder, whatever it holds.
        for dir in [None, Some(PathBuf::new()), Some(std::env::temp_dir().join("keel-no-roms-here"))] {
            let empty = dir.as_ref().is_some_and(|d| d.as_os_str().is_empty());
            let err = rom_path_in(dir, "pong").err().map(|e| e.to_string()).unwrap_or_default();
            assert!(err.contains("missing data") && err.contains("scripts/setup.sh") && err.contains("pong.bin"), "{err}");
            // Never looked up in the working folder, where a `pong.bin` may be anything.
            assert!(!empty || err.contains("not set (or empty)"), "{err}");
        }
    }

    #[test]
    fn presets_fill_gaps_and_keys_override_them() {
        let mut c = AtariConfig { preset: Some(Preset::Cleanrl), ..AtariConfig::default() };
        let s = c.settings().ok();
        assert_eq!(s.map(|s| (s.repeat_action_probability, s.terminal_on_life_loss, s.clip_reward, s.fire_reset)), Some((0.0, true, true, None)));
        c.clip_reward = Some(false);
        c.noop_max = Some(7);
        assert_eq!(c.settings().ok().map(|s| (s.clip_reward, s.noop_max)), Some((false, 7)));
        let plain = AtariConfig::default().settings().ok();
        assert_eq!(plain.map(|s| (s.frameskip, s.repeat_action_probability, s.max_num_frames_per_episode)), Some((4, 0.25, 108_000)));
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

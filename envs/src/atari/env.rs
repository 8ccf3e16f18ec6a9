//! [`AtariEnv`]: one game with the preprocessing its settings ask for (see the module docs of
//! [`super`]).

use keel_ale_sys::{Ale, SCREEN_HEIGHT, SCREEN_WIDTH};
use rand::RngExt;
use serde_json::{Map, Value};

use super::config::{AtariConfig, ObsType, Preset, Settings};
use super::palette;
use super::resize::AreaResize;
use super::rom::rom_path;
use crate::env::{Env, EnvSpec, EpisodeCount, ResetOptions, Step};
use crate::error::{EnvError, Result};
use crate::obs::ObsMut;
use crate::rng::EnvRng;
use crate::space::{Action, BoxSpace, DType, Discrete, Space};

/// ALE's code for FIRE.
const FIRE: i32 = 1;

pub(super) const SCREEN: usize = SCREEN_HEIGHT * SCREEN_WIDTH;

fn ale_error(id: &str, message: String) -> EnvError {
    EnvError::DataMissing(format!("{id}: ALE: {message}"))
}

pub(super) fn invalid(id: &str, field: &str, message: String) -> EnvError {
    EnvError::InvalidField { context: format!("{id} config"), field: field.into(), message }
}

/// An emulator with the game loaded and the settings applied, and its action set.
pub(super) fn load(id: &str, rom: &str, s: &Settings, seed: i32) -> Result<(Ale, Vec<i32>)> {
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
            return Err(invalid(
                id,
                "difficulty",
                format!("{difficulty} is not a difficulty of this game; its difficulties: {all:?}"),
            ));
        }
        ale.set_difficulty(difficulty).map_err(|e| ale_error(id, e))?;
    }
    let actions = ale.action_set(s.full_action_space);
    Ok((ale, actions))
}

/// The observation shape of settings `s`.
pub(super) fn obs_shape(s: &Settings) -> Vec<usize> {
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

pub(super) fn spec_of(id: &str, s: &Settings, actions: usize) -> EnvSpec {
    // Scalar bounds: per-element ones would cost 16 bytes per observation byte, in every env.
    let space = BoxSpace::uniform(0.0, 255.0, obs_shape(s), DType::Uint8);
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

/// The lengths of an env's frame buffers, as its settings make them: what [`AtariEnv::new`]
/// allocates, and what the memory estimate counts.
pub(super) struct FrameSizes {
    /// Channels of a grabbed screen (1 gray, 3 RGB).
    pub(super) channels: usize,
    /// Each of the two max-pool frames.
    pub(super) pool: usize,
    /// The screen-sized observation before resizing (presets only).
    pub(super) frame: usize,
    /// The resized frame (presets only).
    pub(super) small: usize,
    /// One stack slot (presets only).
    pub(super) slot: usize,
    /// The stacked observation (presets only).
    pub(super) stack: usize,
}

impl FrameSizes {
    pub(super) fn of(s: &Settings) -> Self {
        let grab_rgb = match s.preset {
            None => s.obs_type == ObsType::Rgb,
            Some(Preset::Cleanrl) => true,
            Some(_) => !s.grayscale_obs,
        };
        let channels = if grab_rgb { 3 } else { 1 };
        let side = s.screen_size;
        let slot = side * side * if s.grayscale_obs { 1 } else { 3 };
        // Without a preset the screen goes straight from the pool to the observation.
        let on = usize::from(s.preset.is_some());
        Self {
            channels,
            pool: SCREEN * channels,
            frame: on * SCREEN * channels,
            small: on * side * side * channels,
            slot: on * slot,
            stack: on * slot * s.stack_size,
        }
    }

    /// Bytes of all the frame buffers.
    pub(super) fn total(&self) -> usize {
        2 * self.pool + self.frame + self.small + self.slot + self.stack
    }

    /// Bytes of the frame buffers and of the resize tables of settings `s`.
    pub(super) fn heap_bytes(s: &Settings) -> usize {
        let sizes = Self::of(s);
        let side = s.screen_size;
        // The tables depend on the sizes only: made here as the env makes them, then dropped.
        let resize = s
            .preset
            .map_or(0, |_| AreaResize::new(SCREEN_HEIGHT, SCREEN_WIDTH, sizes.channels, side, side).heap_bytes());
        sizes.total() + resize
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
        let sizes = FrameSizes::of(&s);
        let channels = sizes.channels;
        let side = s.screen_size;
        let resize = s.preset.map(|_| AreaResize::new(SCREEN_HEIGHT, SCREEN_WIDTH, channels, side, side));
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
            pool: [vec![0; sizes.pool], vec![0; sizes.pool]],
            palette,
            frame: vec![0; sizes.frame],
            small: vec![0; sizes.small],
            slot: vec![0; sizes.slot],
            stack: vec![0; sizes.stack],
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::atari::rom_dir;

    #[test]
    fn palette_indices_through_the_gray_table_are_ales_grayscale_screen() {
        assert!(rom_dir().is_some(), "no ROM folder: run scripts/setup.sh and source scripts/env.sh");
        let s = AtariConfig { repeat_action_probability: Some(0.0), ..AtariConfig::default() }.settings().ok();
        for rom in ["pong", "breakout", "space_invaders"] {
            let Some(Ok((mut ale, actions))) = s.as_ref().map(|s| load("test", rom, s, 3)) else {
                panic!("cannot load {rom}")
            };
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
}

//! # keel-ale-sys
//!
//! The Arcade Learning Environment 0.12.1 (the emulator and per-game reward / terminal / lives
//! logic that Gymnasium's `ALE/<Game>-v5` runs), compiled from the ale-py source package by
//! `build.rs`, behind a C shim (`shim/keel_ale.cpp`) so that no C++ type or exception crosses
//! into Rust. [`Ale`] is the safe handle over one emulator.
//!
//! ALE is GPL-2.0-only: a binary that links this crate is GPL-2.0. Keel's `atari` cargo
//! feature is the only way it enters a build.

#![allow(unsafe_code)]

use std::ffi::{CString, c_char, c_int, c_uint};
use std::path::Path;

/// The ALE version this crate compiles.
pub const ALE_VERSION: &str = "0.12.1";

/// Height of an Atari 2600 screen in pixels.
pub const SCREEN_HEIGHT: usize = 210;
/// Width of an Atari 2600 screen in pixels.
pub const SCREEN_WIDTH: usize = 160;

#[repr(C)]
struct RawAle {
    _private: [u8; 0],
}

unsafe extern "C" {
    fn keel_ale_new(err: *mut c_char, err_len: usize) -> *mut RawAle;
    fn keel_ale_free(h: *mut RawAle);
    fn keel_ale_is_supported_rom(path: *const c_char, err: *mut c_char, err_len: usize) -> c_int;
    fn keel_ale_set_int(h: *mut RawAle, key: *const c_char, value: c_int, err: *mut c_char, len: usize) -> c_int;
    fn keel_ale_set_float(h: *mut RawAle, key: *const c_char, value: f32, err: *mut c_char, len: usize) -> c_int;
    fn keel_ale_set_bool(h: *mut RawAle, key: *const c_char, value: c_int, err: *mut c_char, len: usize) -> c_int;
    fn keel_ale_load_rom(h: *mut RawAle, path: *const c_char, err: *mut c_char, len: usize) -> c_int;
    fn keel_ale_set_mode(h: *mut RawAle, mode: c_uint, err: *mut c_char, len: usize) -> c_int;
    fn keel_ale_set_difficulty(h: *mut RawAle, difficulty: c_uint, err: *mut c_char, len: usize) -> c_int;
    fn keel_ale_action_set(h: *mut RawAle, full: c_int, out: *mut c_int, cap: usize) -> usize;
    fn keel_ale_modes(h: *mut RawAle, out: *mut c_uint, cap: usize) -> usize;
    fn keel_ale_difficulties(h: *mut RawAle, out: *mut c_uint, cap: usize) -> usize;
    fn keel_ale_act(h: *mut RawAle, action: c_int, paddle_strength: f32) -> c_int;
    fn keel_ale_reset_game(h: *mut RawAle);
    fn keel_ale_game_over(h: *mut RawAle, with_truncation: c_int) -> c_int;
    fn keel_ale_game_truncated(h: *mut RawAle) -> c_int;
    fn keel_ale_lives(h: *mut RawAle) -> c_int;
    fn keel_ale_episode_frame_number(h: *mut RawAle) -> c_int;
    fn keel_ale_screen_height(h: *mut RawAle) -> usize;
    fn keel_ale_screen_width(h: *mut RawAle) -> usize;
    fn keel_ale_screen_grayscale(h: *mut RawAle, out: *mut u8);
    fn keel_ale_screen_rgb(h: *mut RawAle, out: *mut u8);
    fn keel_ale_screen_indices(h: *mut RawAle, out: *mut u8);
    fn keel_ale_grayscale_palette(h: *mut RawAle, out: *mut u8);
    fn keel_ale_ram(h: *mut RawAle, out: *mut u8, cap: usize) -> usize;
}

const ERR_LEN: usize = 512;

/// Runs a fallible shim call with an error buffer and turns its status into a `Result`.
fn checked(f: impl FnOnce(*mut c_char, usize) -> c_int) -> Result<(), String> {
    let mut buf = [0 as c_char; ERR_LEN];
    if f(buf.as_mut_ptr(), ERR_LEN) == 0 {
        return Ok(());
    }
    let bytes: Vec<u8> = buf.iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect();
    Err(String::from_utf8_lossy(&bytes).into_owned())
}

fn c_string(s: &str) -> Result<CString, String> {
    CString::new(s).map_err(|_| format!("{s:?} contains a NUL byte"))
}

fn c_path(path: &Path) -> Result<CString, String> {
    let s = path.to_str().ok_or_else(|| format!("{} is not valid UTF-8", path.display()))?;
    c_string(s)
}

/// Whether ALE recognises the ROM at `path` (by its MD5) as one of its supported games.
pub fn is_supported_rom(path: &Path) -> Result<bool, String> {
    let path = c_path(path)?;
    let mut supported = 0;
    // SAFETY: `path` is a valid NUL-terminated string for the duration of the call.
    checked(|err, len| {
        supported = unsafe { keel_ale_is_supported_rom(path.as_ptr(), err, len) };
        if supported < 0 { -1 } else { 0 }
    })?;
    Ok(supported == 1)
}

/// One Atari emulator with its game logic (an `ale::ALEInterface`).
pub struct Ale {
    raw: *mut RawAle,
}

// SAFETY: an ALEInterface holds no thread-local state; one handle is used by one thread at a
// time (`&mut self` for every call that touches it).
unsafe impl Send for Ale {}

impl Drop for Ale {
    fn drop(&mut self) {
        // SAFETY: `raw` came from `keel_ale_new` and is freed once.
        unsafe { keel_ale_free(self.raw) }
    }
}

impl Ale {
    /// A new emulator with ALE's default settings and no ROM loaded.
    pub fn new() -> Result<Self, String> {
        let mut raw = std::ptr::null_mut();
        // SAFETY: the shim catches every C++ exception and returns null on failure.
        checked(|err, len| {
            raw = unsafe { keel_ale_new(err, len) };
            if raw.is_null() { -1 } else { 0 }
        })?;
        Ok(Self { raw })
    }

    /// Sets an integer setting (takes effect at the next [`Ale::load_rom`]).
    pub fn set_int(&mut self, key: &str, value: i32) -> Result<(), String> {
        let key = c_string(key)?;
        // SAFETY: valid handle and string.
        checked(|err, len| unsafe { keel_ale_set_int(self.raw, key.as_ptr(), value, err, len) })
    }

    /// Sets a float setting (takes effect at the next [`Ale::load_rom`]).
    pub fn set_float(&mut self, key: &str, value: f32) -> Result<(), String> {
        let key = c_string(key)?;
        // SAFETY: valid handle and string.
        checked(|err, len| unsafe { keel_ale_set_float(self.raw, key.as_ptr(), value, err, len) })
    }

    /// Sets a boolean setting (takes effect at the next [`Ale::load_rom`]).
    pub fn set_bool(&mut self, key: &str, value: bool) -> Result<(), String> {
        let key = c_string(key)?;
        // SAFETY: valid handle and string.
        checked(|err, len| unsafe { keel_ale_set_bool(self.raw, key.as_ptr(), c_int::from(value), err, len) })
    }

    /// Loads the ROM at `path` and resets the console. The ROM must be one ALE supports
    /// ([`is_supported_rom`]), which this checks first: ALE itself ends the process on an
    /// unknown ROM.
    pub fn load_rom(&mut self, path: &Path) -> Result<(), String> {
        if !path.is_file() {
            return Err(format!("no ROM file at {}", path.display()));
        }
        if !is_supported_rom(path)? {
            return Err(format!("{} is not a ROM ALE {ALE_VERSION} supports (unknown MD5)", path.display()));
        }
        let path = c_path(path)?;
        // SAFETY: valid handle and string.
        checked(|err, len| unsafe { keel_ale_load_rom(self.raw, path.as_ptr(), err, len) })
    }

    /// Selects a game mode (one of [`Ale::modes`]); takes effect at the next reset.
    pub fn set_mode(&mut self, mode: u32) -> Result<(), String> {
        // SAFETY: valid handle.
        checked(|err, len| unsafe { keel_ale_set_mode(self.raw, mode, err, len) })
    }

    /// Selects a difficulty (one of [`Ale::difficulties`]); takes effect at the next reset.
    pub fn set_difficulty(&mut self, difficulty: u32) -> Result<(), String> {
        // SAFETY: valid handle.
        checked(|err, len| unsafe { keel_ale_set_difficulty(self.raw, difficulty, err, len) })
    }

    /// The minimal action set of the loaded game (`full`: all 18 legal actions), as ALE codes.
    pub fn action_set(&mut self, full: bool) -> Vec<i32> {
        let mut out = [0 as c_int; 32];
        // SAFETY: `out` holds 32 slots and the shim writes at most `cap`.
        let n = unsafe { keel_ale_action_set(self.raw, c_int::from(full), out.as_mut_ptr(), out.len()) };
        out[..n.min(out.len())].to_vec()
    }

    /// The game modes of the loaded game.
    pub fn modes(&mut self) -> Vec<u32> {
        let mut out = [0 as c_uint; 256];
        // SAFETY: `out` holds 256 slots and the shim writes at most `cap`.
        let n = unsafe { keel_ale_modes(self.raw, out.as_mut_ptr(), out.len()) };
        out[..n.min(out.len())].to_vec()
    }

    /// The difficulties of the loaded game.
    pub fn difficulties(&mut self) -> Vec<u32> {
        let mut out = [0 as c_uint; 256];
        // SAFETY: `out` holds 256 slots and the shim writes at most `cap`.
        let n = unsafe { keel_ale_difficulties(self.raw, out.as_mut_ptr(), out.len()) };
        out[..n.min(out.len())].to_vec()
    }

    /// Emulates one frame with ALE action code `action` (sticky actions apply inside) and
    /// returns its reward.
    #[inline]
    pub fn act(&mut self, action: i32, paddle_strength: f32) -> i32 {
        // SAFETY: valid handle; ALE accepts any code of its `Action` enum, which callers check.
        unsafe { keel_ale_act(self.raw, action, paddle_strength) }
    }

    /// Resets the game (not the whole console): ALE's deterministic start sequence.
    pub fn reset_game(&mut self) {
        // SAFETY: valid handle.
        unsafe { keel_ale_reset_game(self.raw) }
    }

    /// Whether the game is over (`with_truncation`: or the frame cap is reached).
    #[inline]
    pub fn game_over(&mut self, with_truncation: bool) -> bool {
        // SAFETY: valid handle.
        unsafe { keel_ale_game_over(self.raw, c_int::from(with_truncation)) != 0 }
    }

    /// Whether the episode reached `max_num_frames_per_episode`.
    #[inline]
    pub fn game_truncated(&mut self) -> bool {
        // SAFETY: valid handle.
        unsafe { keel_ale_game_truncated(self.raw) != 0 }
    }

    /// Lives left.
    #[inline]
    pub fn lives(&mut self) -> i32 {
        // SAFETY: valid handle.
        unsafe { keel_ale_lives(self.raw) }
    }

    /// Frames since the start of the episode.
    #[inline]
    pub fn episode_frame_number(&mut self) -> i32 {
        // SAFETY: valid handle.
        unsafe { keel_ale_episode_frame_number(self.raw) }
    }

    /// Screen (height, width).
    pub fn screen_size(&mut self) -> (usize, usize) {
        // SAFETY: valid handle.
        unsafe { (keel_ale_screen_height(self.raw), keel_ale_screen_width(self.raw)) }
    }

    /// Writes the screen through ALE's grayscale palette into `out` (height × width bytes).
    #[inline]
    pub fn screen_grayscale(&mut self, out: &mut [u8]) -> Result<(), String> {
        let (h, w) = self.screen_size();
        if out.len() != h * w {
            return Err(format!("grayscale buffer of {} bytes for a {h}x{w} screen", out.len()));
        }
        // SAFETY: `out` holds exactly height × width bytes.
        unsafe { keel_ale_screen_grayscale(self.raw, out.as_mut_ptr()) };
        Ok(())
    }

    /// Writes the screen in RGB into `out` (height × width × 3 bytes, interleaved).
    #[inline]
    pub fn screen_rgb(&mut self, out: &mut [u8]) -> Result<(), String> {
        let (h, w) = self.screen_size();
        if out.len() != h * w * 3 {
            return Err(format!("RGB buffer of {} bytes for a {h}x{w} screen", out.len()));
        }
        // SAFETY: `out` holds exactly height × width × 3 bytes.
        unsafe { keel_ale_screen_rgb(self.raw, out.as_mut_ptr()) };
        Ok(())
    }

    /// Writes the screen's palette indices into `out` (height × width bytes): the raw screen,
    /// which [`Self::grayscale_palette`] maps to what [`Self::screen_grayscale`] gives.
    #[inline]
    pub fn screen_indices(&mut self, out: &mut [u8]) -> Result<(), String> {
        let (h, w) = self.screen_size();
        if out.len() != h * w {
            return Err(format!("index buffer of {} bytes for a {h}x{w} screen", out.len()));
        }
        // SAFETY: `out` holds exactly height × width bytes.
        unsafe { keel_ale_screen_indices(self.raw, out.as_mut_ptr()) };
        Ok(())
    }

    /// ALE's grayscale palette of the loaded game: the gray level of each palette index.
    pub fn grayscale_palette(&mut self) -> [u8; 256] {
        let mut out = [0u8; 256];
        // SAFETY: valid handle; `out` holds the 256 entries the shim writes.
        unsafe { keel_ale_grayscale_palette(self.raw, out.as_mut_ptr()) };
        out
    }

    /// The console's RAM (128 bytes).
    pub fn ram(&mut self) -> [u8; 128] {
        let mut out = [0u8; 128];
        // SAFETY: valid handle; the shim writes at most `out.len()` bytes.
        unsafe { keel_ale_ram(self.raw, out.as_mut_ptr(), out.len()) };
        out
    }
}

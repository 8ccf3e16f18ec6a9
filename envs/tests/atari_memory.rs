//! The memory estimate of an Atari env covers what the env really allocates. A test binary of
//! its own, with one test, so that the heap grows with this test's envs only.
#![cfg(all(feature = "atari", target_os = "linux", target_env = "gnu"))]

use keel_envs::atari;
use keel_envs::{Env, ObsBuf, ResetOptions, make, registry};
use serde_json::{Map, Value, json};

/// glibc's `struct mallinfo2`: the heap's counters, in bytes.
#[repr(C)]
#[derive(Default)]
struct MallInfo2 {
    arena: usize,
    ordblks: usize,
    smblks: usize,
    hblks: usize,
    hblkhd: usize,
    usmblks: usize,
    fsmblks: usize,
    uordblks: usize,
    fordblks: usize,
    keepcost: usize,
}

#[allow(unsafe_code)]
unsafe extern "C" {
    fn mallinfo2() -> MallInfo2;
}

/// Bytes the process has allocated from the heap and not freed, the emulator's C++ allocations
/// included (Rust's allocator is glibc's malloc here): unlike the resident size, not lowered by
/// memory that an earlier env freed and a later one reuses.
fn allocated_bytes() -> u64 {
    // SAFETY: mallinfo2 takes no arguments, only reads the allocator's counters, and returns
    // the struct by value.
    #[allow(unsafe_code)]
    let info = unsafe { mallinfo2() };
    (info.uordblks + info.hblkhd) as u64
}

/// Envs of the largest observation (stack 64 of 160x160 RGB: 4.9 MB), of a preset's usual one
/// and of the plain RGB screen, each made and reset `ENVS` times: what the heap grows by per env
/// stays within the estimate, and the estimate is not more than a quarter above it (the bounds of
/// the observation space once cost 32 bytes per observation byte, ten times the frames).
#[test]
fn the_memory_estimate_covers_what_an_env_allocates() {
    assert!(atari::register().is_ok());
    assert!(atari::rom_dir().is_some(), "no ROM folder: run scripts/setup.sh and source scripts/env.sh");
    const ENVS: usize = 6;
    let id = "keel/Pong-v5";
    let configs = [
        json!({"preset": "gymnasium", "stack_size": 64, "screen_size": 160, "grayscale_obs": false}),
        json!({"preset": "envpool"}),
        json!({}),
    ];
    for config in configs {
        let Value::Object(overrides) = config else { panic!("config") };
        let registration = registry::lookup(id).unwrap_or_else(|e| panic!("{e}"));
        let estimate = registration.memory_estimate(&overrides).unwrap_or_else(|e| panic!("{e}"));
        let spec = registration.spec_for(&overrides).unwrap_or_else(|e| panic!("{e}"));
        // The rows the envs write into belong to the vector (counted beside the estimate):
        // allocated and touched before the measurement starts.
        let mut rows: Vec<ObsBuf> = (0..ENVS).map(|_| spec.obs_buffer(1)).collect();
        for row in &mut rows {
            if let ObsBuf::U8(v) = row {
                v.fill(1);
            }
        }
        let before = allocated_bytes();
        let mut envs: Vec<Box<dyn Env>> = Vec::new();
        for row in &mut rows {
            let mut env = make(id, &overrides).unwrap_or_else(|e| panic!("{e}"));
            env.reset(Some(1), &ResetOptions::default(), row.as_mut()).unwrap_or_else(|e| panic!("{e}"));
            envs.push(env);
        }
        let per_env = allocated_bytes().saturating_sub(before) / ENVS as u64;
        eprintln!("{overrides:?}: measured {per_env} bytes per env, estimate {estimate}");
        assert!(per_env <= estimate, "{overrides:?}: {per_env} bytes measured per env, {estimate} estimated");
        assert!(
            estimate <= per_env + per_env / 4,
            "{overrides:?}: {estimate} estimated for {per_env} bytes measured per env"
        );
        drop(envs);
    }
}

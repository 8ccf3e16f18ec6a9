//! Golden tests of the Atari envs against the libraries they reproduce (fixtures made by
//! `scripts/golden_atari.py` with ale-py 0.12.1, gymnasium 1.4.0, Stable-Baselines3 2.9.2 and
//! opencv-python-headless): with sticky actions off, every observation, reward, flag and lives
//! count of 500 steps equals the reference's, and the resize equals OpenCV's `INTER_AREA`.
#![cfg(feature = "atari")]

use keel_envs::atari::{self, AreaResize};
use keel_envs::{Action, ResetOptions, make};
use serde_json::{Map, Value, json};

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/atari/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn splitmix(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The fixtures' checksum of a byte image: sum of `byte * splitmix64(index)` mod 2^64.
fn checksum(bytes: &[u8]) -> String {
    let total = bytes
        .iter()
        .enumerate()
        .fold(0u64, |acc, (i, &b)| acc.wrapping_add(u64::from(b).wrapping_mul(splitmix(i as u64))));
    format!("{total:016x}")
}

/// The fixtures' test image: bytes of a 64-bit LCG.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed;
    (0..len)
        .map(|_| {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            ((x >> 33) & 0xFF) as u8
        })
        .collect()
}

fn as_u64(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not an integer: {v}"))
}

fn reset_options(reset: &Value) -> ResetOptions {
    let mut options = ResetOptions::default();
    let noops = reset["noops"].as_array().cloned().unwrap_or_default();
    assert!(noops.len() <= 1, "a reset that drew no-ops twice: {reset}");
    if let Some(n) = noops.first() {
        options.params.insert("noops".into(), n.clone());
    }
    options
}

fn replay(name: &str) {
    assert!(atari::register().is_ok());
    let data = fixture(name);
    let config: Map<String, Value> = data["config"].as_object().cloned().unwrap_or_default();
    let id = data["id"].as_str().unwrap_or_default();
    let mut env = make(id, &config).unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut obs = env.spec().obs_buffer(1);
    let mut extras = vec![0.0; env.spec().extras_len()];
    let resets = data["resets"].as_array().cloned().unwrap_or_default();
    let mut next_reset = resets.iter();
    let mut check_reset =
        |env: &mut Box<dyn keel_envs::Env>, seed: Option<u64>, obs: &mut keel_envs::ObsBuf, t: usize| {
            let reset = next_reset.next().unwrap_or_else(|| panic!("{name}: no reset recorded for step {t}"));
            assert_eq!(as_u64(&reset["step"]) as usize, t, "{name}: reset at another step");
            env.reset(seed, &reset_options(reset), obs.as_mut()).unwrap_or_else(|e| panic!("{name}: reset: {e}"));
            let bytes = match &*obs {
                keel_envs::ObsBuf::U8(v) => v.clone(),
                other => panic!("{name}: observation of {:?}", other.dtype()),
            };
            assert_eq!(
                checksum(&bytes),
                reset["obs"].as_str().unwrap_or_default(),
                "{name}: observation of the reset at step {t}"
            );
            let mut ex = vec![0.0; env.spec().extras_len()];
            env.write_extras(&mut ex);
            assert_eq!(ex[0], reset["lives"].as_f64().unwrap_or(-1.0), "{name}: lives at the reset of step {t}");
        };
    check_reset(&mut env, Some(as_u64(&data["seed"])), &mut obs, 0);
    let steps = data["steps"].as_array().cloned().unwrap_or_default();
    assert_eq!(steps.len(), 500);
    let mut ended_games = 0;
    for (t, step) in steps.iter().enumerate() {
        if step.is_null() {
            check_reset(&mut env, None, &mut obs, t);
            continue;
        }
        let action = step["action"].as_i64().unwrap_or(-1);
        let s = env.step(Action::Int(&[action]), obs.as_mut()).unwrap_or_else(|e| panic!("{name}: step {t}: {e}"));
        env.write_extras(&mut extras);
        let got = json!({
            "reward": s.reward,
            "terminated": s.terminated,
            "truncated": s.truncated,
            "lives": extras[0],
        });
        let want = json!({
            "reward": step["reward"],
            "terminated": step["terminated"],
            "truncated": step["truncated"],
            "lives": step["lives"].as_f64(),
        });
        assert_eq!(got, want, "{name}: step {t}");
        let bytes = match &obs {
            keel_envs::ObsBuf::U8(v) => v.as_slice(),
            _ => &[],
        };
        assert_eq!(checksum(bytes), step["obs"].as_str().unwrap_or_default(), "{name}: observation of step {t}");
        ended_games += usize::from(s.terminated || s.truncated);
    }
    eprintln!("{name}: 500 steps equal, {} resets, {ended_games} episode ends", resets.len());
}

#[test]
fn gymnasium_preset_equals_atari_preprocessing_on_pong() {
    replay("gymnasium_pong.json");
}

#[test]
fn gymnasium_preset_equals_atari_preprocessing_on_breakout() {
    replay("gymnasium_breakout.json");
}

#[test]
fn cleanrl_preset_equals_sb3_wrappers_on_pong() {
    replay("cleanrl_pong.json");
}

#[test]
fn cleanrl_preset_equals_sb3_wrappers_on_breakout() {
    replay("cleanrl_breakout.json");
}

#[test]
fn resize_equals_opencv_inter_area_byte_for_byte() {
    let data = fixture("resize.json");
    let cases = data["cases"].as_array().cloned().unwrap_or_default();
    assert!(cases.len() >= 4);
    for case in cases {
        let [h, w, c, oh, ow, seed] =
            ["height", "width", "channels", "out_height", "out_width", "seed"].map(|k| as_u64(&case[k]));
        let (h, w, c, oh, ow) = (h as usize, w as usize, c as usize, oh as usize, ow as usize);
        let src = pattern(h * w * c, seed);
        assert_eq!(checksum(&src), case["input"].as_str().unwrap_or_default(), "test image generator differs: {case}");
        let mut resize = AreaResize::new(h, w, c, oh, ow);
        let mut dst = vec![0u8; resize.output_len()];
        resize.run(&src, &mut dst);
        assert_eq!(checksum(&dst), case["output"].as_str().unwrap_or_default(), "{case}");
    }
}

/// `h = splitmix(h ^ x)`, the fixture's fold.
fn fold(h: u64, x: u64) -> u64 {
    splitmix(h ^ x)
}

/// Keel's build of ALE (from the sdist, with its TIA scanline loop rewritten for AVX-512) runs
/// every ROM exactly as ale-py's wheel: each frame's screen, RAM and reward, folded into one
/// digest per game (`emulator.json`).
#[test]
fn the_emulator_equals_ale_py_on_every_rom() {
    use keel_ale_sys::Ale;
    let f = fixture("emulator.json");
    let frames = as_u64(&f["frames"]);
    let seed = as_u64(&f["seed"]) as i32;
    let Some(games) = f["games"].as_object() else { panic!("no games in emulator.json") };
    let dir =
        atari::rom_dir().unwrap_or_else(|| panic!("no ROM folder: run scripts/setup.sh and source scripts/env.sh"));
    assert_eq!(games.len(), atari::ROMS.len(), "the fixture covers every ROM Keel registers");
    let mut weights: Vec<u64> = Vec::new();
    let sum = |weights: &[u64], bytes: &[u8]| {
        bytes.iter().zip(weights).fold(0u64, |acc, (&b, &w)| acc.wrapping_add(u64::from(b).wrapping_mul(w)))
    };
    let mut mismatches = Vec::new();
    for (rom, want) in games {
        let mut ale = Ale::new().unwrap_or_else(|e| panic!("{e}"));
        let setup = ale
            .set_int("random_seed", seed)
            .and_then(|()| ale.set_float("repeat_action_probability", 0.0))
            .and_then(|()| ale.load_rom(&dir.join(format!("{rom}.bin"))));
        assert!(setup.is_ok(), "{rom}: {setup:?}");
        let legal = ale.action_set(true);
        // Most screens are 210x160; a few games are taller.
        let (h, w) = ale.screen_size();
        let mut screen = vec![0u8; h * w];
        while weights.len() < screen.len() {
            weights.push(splitmix(weights.len() as u64));
        }
        let (mut state, mut digest, mut total, mut resets, mut action) = (12345u32, 0u64, 0i64, 0u64, 0);
        for frame in 0..frames {
            if frame % 4 == 0 {
                state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
                action = legal[(state >> 16) as usize % legal.len()];
            }
            let reward = ale.act(action, 1.0);
            total += i64::from(reward);
            assert!(ale.screen_indices(&mut screen).is_ok());
            for x in [sum(&weights, &screen), sum(&weights, &ale.ram()), i64::from(reward) as u64] {
                digest = fold(digest, x);
            }
            if ale.game_over(true) {
                ale.reset_game();
                resets += 1;
            }
        }
        let got = json!({"digest": format!("{digest:016x}"), "reward": total, "resets": resets});
        if &got != want {
            mismatches.push(format!("{rom}: keel {got}, ale-py {want}"));
        }
    }
    assert!(mismatches.is_empty(), "{} of {} games differ:\n{}", mismatches.len(), games.len(), mismatches.join("\n"));
}

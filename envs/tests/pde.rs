//! PDE envs beyond the golden data: Gymnasium conventions of the default mode, physics of the
//! default numerics, controlgym's overflow behaviour in compat mode, and large grids.

use keel_envs::{Action, ObsMut, ResetOptions, make};
use serde_json::{Map, Value, json};

fn config(pairs: &[(&str, Value)]) -> Map<String, Value> {
    pairs.iter().map(|(k, v)| ((*k).to_string(), v.clone())).collect()
}

#[test]
fn default_mode_fixes_controlgym_conventions() {
    // The observation returned by `step` is of the new state; the time limit is `truncated`.
    let overrides = config(&[("sensor_noise_cov", json!(0)), ("n_state", json!(64)), ("n_steps", json!(3))]);
    let mut env = make("keel/Burgers-v0", &overrides).unwrap_or_else(|e| panic!("{e}"));
    let mut obs = vec![0.0f64; env.spec().obs_len()];
    env.reset(Some(1), &ResetOptions::default(), ObsMut::F64(&mut obs)).unwrap_or_else(|e| panic!("{e}"));
    let mut last = None;
    for _ in 0..3 {
        last = Some(env.step(Action::Float(&[0.1; 8]), ObsMut::F64(&mut obs)).unwrap_or_else(|e| panic!("{e}")));
        let state = env.state().unwrap_or_default();
        let stride = 64 / 10;
        for (j, o) in obs.iter().enumerate() {
            assert_eq!(*o, state[j * stride]);
        }
    }
    let last = last.unwrap_or_default();
    assert!(last.truncated && !last.terminated);
    // A diverging state terminates the episode.
    let mut env = make("keel/Fisher-v0", &config(&[("n_state", json!(64))])).unwrap_or_else(|e| panic!("{e}"));
    env.reset(Some(0), &ResetOptions::with_state(vec![-100.0; 64]), ObsMut::F64(&mut obs)).unwrap_or_else(|e| panic!("{e}"));
    let mut ended = false;
    for _ in 0..20 {
        let s = env.step(Action::Float(&[0.0; 8]), ObsMut::F64(&mut obs)).unwrap_or_else(|e| panic!("{e}"));
        if s.terminated {
            ended = true;
            break;
        }
    }
    assert!(ended, "Fisher from -100 should blow up and terminate");
}

/// `u_t = −u_xxx + 6 u u_x` carries the soliton `−(a/2) sech²(√a (x − x₀ − a t) / 2)` to the
/// right at speed `a`. On a domain long enough for the periodic images not to matter, the default
/// mode (complex ETDRK4 coefficients, 1000 substeps per step) keeps it on the exact solution to
/// ~1e-12; controlgym's numerics (real-part coefficients, 999 substeps) are off by ~2e-4.
#[test]
fn kdv_soliton_travels_at_its_speed_in_the_default_mode() {
    let (n, length, a, steps) = (512usize, 40.0f64, 2.0f64, 20usize);
    let soliton = |shift: f64| -> Vec<f64> {
        (0..n)
            .map(|i| {
                let d = i as f64 * length / n as f64 - length / 2.0 - shift;
                -0.5 * a / (0.5 * a.sqrt() * d).cosh().powi(2)
            })
            .collect()
    };
    let error_after = |compat: &str| -> f64 {
        let overrides = config(&[
            ("sensor_noise_cov", json!(0)),
            ("n_state", json!(n)),
            ("domain_length", json!(length)),
            ("compat", json!(compat)),
        ]);
        let mut env = make("keel/KortewegDeVries-v0", &overrides).unwrap_or_else(|e| panic!("{e}"));
        let mut obs = vec![0.0f64; 10];
        env.reset(Some(0), &ResetOptions::with_state(soliton(0.0)), ObsMut::F64(&mut obs)).unwrap_or_else(|e| panic!("{e}"));
        for _ in 0..steps {
            env.step(Action::Float(&[0.0; 8]), ObsMut::F64(&mut obs)).unwrap_or_else(|e| panic!("{e}"));
        }
        let exact = soliton(a * 0.01 * steps as f64);
        let state = env.state().unwrap_or_default();
        state.iter().zip(&exact).map(|(s, e)| (s - e).abs()).fold(0.0, f64::max)
    };
    let (keel, controlgym) = (error_after("keel"), error_after("controlgym"));
    eprintln!("soliton error after {steps} steps: default {keel:.1e}, controlgym-compat {controlgym:.1e}");
    assert!(keel < 1e-9, "default mode off by {keel}");
    assert!(controlgym > 1e-5, "compat mode should keep controlgym's error, got {controlgym}");
}

/// controlgym (under its warnings-as-errors filter) stops integrating at the last finite
/// substep when a step overflows; compat mode does the same, the default mode terminates.
#[test]
fn overflow_in_compat_mode_keeps_the_last_finite_state() {
    let overrides = config(&[("n_state", json!(64)), ("compat", json!("controlgym")), ("sensor_noise_cov", json!(0))]);
    let mut env = make("keel/Fisher-v0", &overrides).unwrap_or_else(|e| panic!("{e}"));
    let mut obs = vec![0.0f64; 10];
    env.reset(Some(0), &ResetOptions::with_state(vec![-100.0; 64]), ObsMut::F64(&mut obs)).unwrap_or_else(|e| panic!("{e}"));
    for t in 0..5 {
        env.step(Action::Float(&[0.0; 8]), ObsMut::F64(&mut obs)).unwrap_or_else(|e| panic!("{e}"));
        let state = env.state().unwrap_or_default();
        assert!(state.iter().all(|x| x.is_finite()), "step {t}: compat state became non-finite");
    }
}

/// Large grids work and stay O(n log n): one Burgers step at n_state = 16384.
#[test]
fn sixteen_thousand_grid_points() {
    let overrides = config(&[("n_state", json!(16384)), ("sensor_noise_cov", json!(0))]);
    let mut env = make("keel/Burgers-v0", &overrides).unwrap_or_else(|e| panic!("{e}"));
    let mut obs = vec![0.0f64; 10];
    env.reset(Some(0), &ResetOptions::default(), ObsMut::F64(&mut obs)).unwrap_or_else(|e| panic!("{e}"));
    let step = env.step(Action::Float(&[0.1; 8]), ObsMut::F64(&mut obs)).unwrap_or_else(|e| panic!("{e}"));
    assert!(step.reward.is_finite() && !step.terminated);
    assert_eq!(env.state().map(|s| s.len()), Some(16384));
}

#[test]
fn a_snapshot_of_another_size_is_an_error_not_a_panic() {
    let small = make("keel/Burgers-v0", &config(&[("n_state", json!(64))])).unwrap_or_else(|e| panic!("{e}"));
    let mut big = make("keel/Burgers-v0", &Map::new()).unwrap_or_else(|e| panic!("{e}"));
    let mut obs = vec![0.0f64; big.spec().obs_len()];
    big.reset(Some(0), &ResetOptions::default(), ObsMut::F64(&mut obs)).unwrap_or_else(|e| panic!("{e}"));
    let mut small = small;
    let mut small_obs = vec![0.0f64; small.spec().obs_len()];
    small.reset(Some(0), &ResetOptions::default(), ObsMut::F64(&mut small_obs)).unwrap_or_else(|e| panic!("{e}"));
    let snapshot = small.snapshot().unwrap_or_default();
    let err = big.restore(&snapshot).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("n_state = 256") && err.contains("64 values"), "{err}");
    // The env is unchanged and still steps.
    assert!(big.step(Action::Float(&[0.0; 8]), ObsMut::F64(&mut obs)).is_ok());
}

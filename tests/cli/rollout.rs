//! `keel rollout`: trajectories equal to the peers' (Gymnasium, controlgym) and to the env
//! stepped in-process.

use std::path::Path;
use std::process::Output;

use serde_json::Value;

use crate::common::{keel, read_json, scratch, stderr};

/// `keel rollout --env ENV EXTRA... --init-state STATE --actions ACTIONS --out OUT`.
fn rollout(env: &str, extra: &[&str], state: &Path, actions: &Path, out: &Path) -> Output {
    let mut args = vec!["rollout", "--env", env];
    args.extend_from_slice(extra);
    let paths = [state, actions, out].map(|p| p.to_str().unwrap_or_default().to_string());
    args.extend(["--init-state", &paths[0], "--actions", &paths[1], "--out", &paths[2]]);
    keel(&args)
}

#[test]
fn rollout_of_cartpole_equals_gymnasium() {
    let fixture =
        read_json(&Path::new(env!("CARGO_MANIFEST_DIR")).join("envs/tests/fixtures/classic/CartPole-v1.json"));
    let dir = scratch("rollout");
    let cases = fixture["cases"].as_array().cloned().unwrap_or_default();
    assert!(!cases.is_empty());
    for (c, case) in cases.iter().enumerate() {
        let (state, actions, out) = (
            dir.join(format!("state{c}.json")),
            dir.join(format!("actions{c}.json")),
            dir.join(format!("out{c}.json")),
        );
        std::fs::write(&state, case["initial_state"].to_string()).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(&actions, case["actions"].to_string()).unwrap_or_else(|e| panic!("{e}"));
        let run = rollout("keel/CartPole-v1", &["--seed", "3"], &state, &actions, &out);
        assert!(run.status.success(), "{}", stderr(&run));
        let got = read_json(&out);
        let (steps, want) = (
            got["steps"].as_array().cloned().unwrap_or_default(),
            case["steps"].as_array().cloned().unwrap_or_default(),
        );
        assert_eq!(steps.len(), want.len(), "case {c}: number of steps");
        assert_eq!(got["reset"]["state"], case["initial_state"], "case {c}: initial state");
        for (t, (s, w)) in steps.iter().zip(&want).enumerate() {
            for key in ["terminated", "truncated", "reward"] {
                assert_eq!(s[key], w[key], "case {c} step {t}: {key}");
            }
            let pairs = s["obs"].as_array().into_iter().flatten().zip(w["obs"].as_array().into_iter().flatten());
            for (a, b) in pairs {
                let (a, b) = (a.as_f64().unwrap_or(f64::NAN), b.as_f64().unwrap_or(f64::NAN));
                assert!((a - b).abs() <= 1e-6 + 1e-6 * b.abs(), "case {c} step {t}: obs {a} vs {b}");
            }
            let pairs = s["state"].as_array().into_iter().flatten().zip(w["state"].as_array().into_iter().flatten());
            for (a, b) in pairs {
                let (a, b) = (a.as_f64().unwrap_or(f64::NAN), b.as_f64().unwrap_or(f64::NAN));
                assert!((a - b).abs() <= 1e-12 * (1.0 + b.abs()), "case {c} step {t}: state {a} vs {b}");
            }
        }
    }
}

/// Float64 envs take their actions and give their observations with every digit: the
/// trajectory `keel rollout` writes equals the env stepped in-process with float64 actions.
#[test]
fn rollout_keeps_float64_actions_and_observations_exact() {
    use keel_envs::{Action, ResetOptions};
    let dir = scratch("rollout-f64");
    let (state, actions, out) = (dir.join("x0.json"), dir.join("a.json"), dir.join("t.json"));
    let sets = ["--set", "n_state=64", "--set", "process_noise_cov=0", "--set", "sensor_noise_cov=0"];
    let x0: Vec<f64> = (0..64).map(|i| 0.1 * (f64::from(i) * 0.3).sin() + 1e-13 * f64::from(i)).collect();
    let plan: Vec<Vec<f64>> =
        (0..5).map(|t| (0..8).map(|k| 0.123_456_789_012_345 * f64::from(t - k) + 1e-14).collect()).collect();
    std::fs::write(&state, serde_json::to_string(&x0).unwrap_or_default()).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&actions, serde_json::to_string(&plan).unwrap_or_default()).unwrap_or_else(|e| panic!("{e}"));
    let run = rollout("keel/Burgers-v0", &[&sets[..], &["--seed", "2"]].concat(), &state, &actions, &out);
    assert!(run.status.success(), "{}", stderr(&run));
    let got = read_json(&out);

    let mut config = serde_json::Map::new();
    for pair in sets.chunks(2) {
        let (k, v) = keel_envs::config::parse_key_value(pair[1]).unwrap_or_else(|e| panic!("{e}"));
        config.insert(k, v);
    }
    let mut env = keel_envs::make("keel/Burgers-v0", &config).unwrap_or_else(|e| panic!("{e}"));
    let mut obs = env.spec().obs_buffer(1);
    env.reset(Some(2), &ResetOptions::with_state(x0), obs.as_mut()).unwrap_or_else(|e| panic!("{e}"));
    let numbers = |v: &Value| -> Vec<f64> { v.as_array().into_iter().flatten().filter_map(Value::as_f64).collect() };
    assert_eq!(numbers(&got["reset"]["obs"]), obs.to_f64_vec());
    for (t, a) in plan.iter().enumerate() {
        env.step(Action::Float64(a), obs.as_mut()).unwrap_or_else(|e| panic!("{e}"));
        let step = &got["steps"][t];
        assert_eq!(numbers(&step["obs"]), obs.to_f64_vec(), "step {t}: observation");
        assert_eq!(numbers(&step["state"]), env.state().unwrap_or_default(), "step {t}: state");
    }
    // Rounding the actions to float32 would have changed the trajectory.
    let mut rounded = keel_envs::make("keel/Burgers-v0", &config).unwrap_or_else(|e| panic!("{e}"));
    let x0: Vec<f64> = serde_json::from_str(&std::fs::read_to_string(&state).unwrap_or_default()).unwrap_or_default();
    rounded.reset(Some(2), &ResetOptions::with_state(x0), obs.as_mut()).unwrap_or_else(|e| panic!("{e}"));
    let a32: Vec<f32> = plan[0].iter().map(|&x| x as f32).collect();
    rounded.step(Action::Float(&a32), obs.as_mut()).unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(numbers(&got["steps"][0]["state"]), rounded.state().unwrap_or_default());
}

fn fixture(name: &str) -> Value {
    read_json(&Path::new(env!("CARGO_MANIFEST_DIR")).join("envs/tests/fixtures/controlgym").join(name))
}

/// The command: `keel rollout --env keel/Burgers-v0 --set compat=controlgym --set
/// process_noise_cov=0 --set sensor_noise_cov=0 --init-state x0.json --actions a.json --out t.json`
/// reproduces controlgym 1.0.0 (default size, 20 recorded steps).
#[test]
fn rollout_of_burgers_in_compat_mode_reproduces_controlgym() {
    let case = fixture("burgers_default.json");
    let dir = scratch("burgers");
    let (x0, actions, out) = (dir.join("x0.json"), dir.join("a.json"), dir.join("t.json"));
    std::fs::write(&x0, case["initial_state"].to_string()).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&actions, case["actions"].to_string()).unwrap_or_else(|e| panic!("{e}"));
    let sets = ["--set", "compat=controlgym", "--set", "process_noise_cov=0", "--set", "sensor_noise_cov=0"];
    let run = rollout("keel/Burgers-v0", &sets, &x0, &actions, &out);
    assert!(run.status.success(), "{}", stderr(&run));
    let got = read_json(&out);
    let (steps, want) =
        (got["steps"].as_array().cloned().unwrap_or_default(), case["steps"].as_array().cloned().unwrap_or_default());
    assert_eq!(steps.len(), want.len());
    let number = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    for (t, (s, w)) in steps.iter().zip(&want).enumerate() {
        let (r, wr) = (number(&s["reward"]), number(&w["reward"]));
        assert!((r - wr).abs() <= 1e-9 * wr.abs(), "step {t}: reward {r} vs {wr}");
        assert_eq!((&s["terminated"], &s["truncated"]), (&w["terminated"], &w["truncated"]), "step {t}");
        if let Some(state) = w["state"].as_array() {
            let scale = state.iter().map(|v| number(v).abs()).fold(0.0, f64::max);
            for (a, b) in s["state"].as_array().into_iter().flatten().zip(state) {
                assert!((number(a) - number(b)).abs() <= 1e-9 * scale, "step {t}: state {a} vs {b}");
            }
        }
    }
}

/// A differentiable env's start state from `--init-state` is refused when a component is beyond
/// the family's limit or not finite, naming the element, before any step; one at the limit plays.
#[test]
fn rollout_of_a_differentiable_env_refuses_an_absurd_start_state() {
    let dir = scratch("rollout-diff-start");
    let (state, actions, out) = (dir.join("x0.json"), dir.join("a.json"), dir.join("t.json"));
    std::fs::write(&actions, "[[0.5], [0.5]]").unwrap_or_else(|e| panic!("{e}"));
    for (x0, needle) in [("[3.0, 1e30]", "element 1 = 1e30 is beyond 1e6"), ("[1e300, 0.0]", "element 0 = 1e300")] {
        std::fs::write(&state, x0).unwrap_or_else(|e| panic!("{e}"));
        let run = rollout("keel/DiffPendulum-v0", &[], &state, &actions, &out);
        let err = stderr(&run);
        assert!(!run.status.success() && err.contains(needle) && !err.contains("panicked"), "{x0}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{x0}: {err}");
        assert!(!out.exists(), "{x0}: a refused rollout wrote {}", out.display());
    }
    std::fs::write(&state, "[1e6, 0.0]").unwrap_or_else(|e| panic!("{e}"));
    let run = rollout("keel/DiffPendulum-v0", &[], &state, &actions, &out);
    assert!(run.status.success(), "{}", stderr(&run));
    assert_eq!(read_json(&out)["steps"].as_array().map(Vec::len), Some(2));
}

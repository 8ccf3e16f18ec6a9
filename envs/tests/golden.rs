//! Golden tests: Keel's classic-control envs replay trajectories recorded from Gymnasium 1.4
//! (`scripts/golden_classic.py`) from the same initial states with the same actions.
//!
//! Tolerances: observations are float32 in both, compared to `1e-6 + 1e-6 |x|`; rewards and the
//! float64 internal state to `1e-9 (1 + |x|)` (both sides do the same float64 arithmetic in the
//! same order, so in practice they agree to the last bit); flags exactly.

use std::path::PathBuf;

use keel_envs::{Action, Env, ResetOptions, make, ObsMut};
use serde::Deserialize;
use serde_json::{Map, Value};

#[derive(Deserialize)]
struct Fixture {
    keel_id: String,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    initial_state: Vec<f64>,
    initial_obs: Vec<f64>,
    actions: Vec<Value>,
    steps: Vec<Recorded>,
}

#[derive(Deserialize)]
struct Recorded {
    obs: Vec<f64>,
    reward: f64,
    terminated: bool,
    truncated: bool,
    state: Vec<f64>,
}

fn fixtures() -> Vec<(PathBuf, Fixture)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/classic");
    let mut out = Vec::new();
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries.flatten() {
        let path = entry.path();
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let fixture = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        out.push((path, fixture));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn close_f32(keel: f32, gym: f64) -> bool {
    (f64::from(keel) - gym).abs() <= 1e-6 + 1e-6 * gym.abs()
}

fn close_f64(keel: f64, gym: f64) -> bool {
    (keel - gym).abs() <= 1e-9 * (1.0 + gym.abs())
}

fn step(env: &mut dyn Env, action: &Value, obs: &mut [f32]) -> keel_envs::Step {
    let result = match action {
        Value::Number(n) => env.step(Action::Int(&[n.as_i64().unwrap_or(-1)]), ObsMut::F32(obs)),
        Value::Array(values) => {
            let floats: Vec<f32> = values.iter().map(|v| v.as_f64().unwrap_or(f64::NAN) as f32).collect();
            env.step(Action::Float(&floats), ObsMut::F32(obs))
        }
        other => panic!("unexpected action {other}"),
    };
    result.unwrap_or_else(|e| panic!("step failed: {e}"))
}

#[test]
fn classic_control_matches_gymnasium() {
    let fixtures = fixtures();
    assert_eq!(fixtures.len(), 5, "one fixture per classic env");
    let mut checked_steps = 0;
    for (path, fixture) in &fixtures {
        for (c, case) in fixture.cases.iter().enumerate() {
            let here = |t: usize| format!("{} case {c} step {t}", path.display());
            let mut env = make(&fixture.keel_id, &Map::new()).unwrap_or_else(|e| panic!("{e}"));
            let mut obs = vec![0.0f32; env.spec().obs_len()];
            let options = ResetOptions::with_state(case.initial_state.clone());
            env.reset(Some(0), &options, ObsMut::F32(&mut obs)).unwrap_or_else(|e| panic!("{}: {e}", here(0)));
            for (k, (&o, &g)) in obs.iter().zip(&case.initial_obs).enumerate() {
                assert!(close_f32(o, g), "{}: initial obs[{k}] {o} vs {g}", here(0));
            }
            for (t, (action, rec)) in case.actions.iter().zip(&case.steps).enumerate() {
                let s = step(env.as_mut(), action, &mut obs);
                for (k, (&o, &g)) in obs.iter().zip(&rec.obs).enumerate() {
                    assert!(close_f32(o, g), "{}: obs[{k}] {o} vs gymnasium {g}", here(t + 1));
                }
                assert!(close_f64(s.reward, rec.reward), "{}: reward {} vs {}", here(t + 1), s.reward, rec.reward);
                assert_eq!((s.terminated, s.truncated), (rec.terminated, rec.truncated), "{}: flags", here(t + 1));
                let state = env.state().unwrap_or_default();
                for (k, (&x, &g)) in state.iter().zip(&rec.state).enumerate() {
                    assert!(close_f64(x, g), "{}: state[{k}] {x} vs {g}", here(t + 1));
                }
                checked_steps += 1;
            }
        }
    }
    assert!(checked_steps > 2000, "only {checked_steps} steps checked");
}

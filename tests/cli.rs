//! The `keel` command line, run as a user runs it (and without `LD_LIBRARY_PATH`, which proves
//! the libtorch rpath).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn keel(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(args)
        .env_remove("LD_LIBRARY_PATH")
        .env_remove("KEEL_TORCH_THREADS")
        .output()
        .unwrap_or_else(|e| panic!("cannot run keel: {e}"))
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("keel-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    dir
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
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
        let run = keel(&[
            "rollout",
            "--env",
            "keel/CartPole-v1",
            "--seed",
            "3",
            "--init-state",
            state.to_str().unwrap_or_default(),
            "--actions",
            actions.to_str().unwrap_or_default(),
            "--out",
            out.to_str().unwrap_or_default(),
        ]);
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

#[test]
fn list_shows_every_env() {
    let out = keel(&["list"]);
    assert!(out.status.success(), "{}", stderr(&out));
    for id in keel_envs::registry::ids() {
        assert!(stdout(&out).contains(id), "{id} missing from keel list");
    }
    let json = keel(&["list", "--json"]);
    let parsed: Value = serde_json::from_str(&stdout(&json)).unwrap_or(Value::Null);
    assert_eq!(parsed.as_array().map(Vec::len), Some(keel_envs::registry::ids().len()));
}

#[test]
fn user_errors_are_clear_and_not_panics() {
    let dir = scratch("errors");
    let actions = dir.join("actions.json");
    let out = dir.join("out.json");
    std::fs::write(&actions, "[0, 1, 7]").unwrap_or_else(|e| panic!("{e}"));
    let (a, o) = (actions.to_str().unwrap_or_default(), out.to_str().unwrap_or_default());
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["rollout", "--env", "keel/CartPole-v9", "--actions", a, "--out", o], "unknown environment id"),
        (vec!["rollout", "--env", "keel/CartPole-v1", "--set", "gravityy=1", "--actions", a, "--out", o], "gravityy"),
        (vec!["rollout", "--env", "keel/CartPole-v1", "--set", "tau=-1", "--actions", a, "--out", o], "tau"),
        (vec!["rollout", "--env", "keel/CartPole-v1", "--actions", a, "--out", o], "action 2"),
        (vec!["rollout", "--env", "keel/CartPole-v1", "--actions", "/nonexistent.json", "--out", o], "nonexistent"),
        (vec!["bench", "--env", "keel/CartPole-v1", "--num-envs", "0"], "must be positive"),
    ];
    for (args, needle) in cases {
        let run = keel(&args);
        assert!(!run.status.success(), "{args:?} succeeded");
        assert!(stderr(&run).contains(needle), "{args:?}: stderr lacks `{needle}`: {}", stderr(&run));
        assert!(!stderr(&run).contains("panicked"), "{args:?} panicked: {}", stderr(&run));
    }
}

#[test]
fn libtorch_links_without_ld_library_path() {
    let out = keel(&["doctor"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("sum([1, 2, 3]) = 6"), "{}", stdout(&out));
    assert!(stdout(&out).contains("libtorch intra-op threads: 1"), "{}", stdout(&out));
}

#[test]
fn bench_prints_a_rate() {
    let out = keel(&[
        "bench",
        "--env",
        "keel/Pendulum-v1",
        "--num-envs",
        "4",
        "--workers",
        "2",
        "--steps",
        "100",
        "--repeats",
        "1",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("| keel/Pendulum-v1 |"), "{}", stdout(&out));
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
    let run = keel(&[
        "rollout",
        "--env",
        "keel/Burgers-v0",
        "--set",
        "compat=controlgym",
        "--set",
        "process_noise_cov=0",
        "--set",
        "sensor_noise_cov=0",
        "--init-state",
        x0.to_str().unwrap_or_default(),
        "--actions",
        actions.to_str().unwrap_or_default(),
        "--out",
        out.to_str().unwrap_or_default(),
    ]);
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

/// `keel baseline --env keel/Linear-v0 --set system=he1 --controller lqr --episodes 3` runs and
/// reports a finite cost and a checked Riccati solution (needs controlgym's data: setup.sh).
#[test]
fn baseline_lqr_on_he1() {
    let out = scratch("baseline").join("he1.json");
    let run = keel(&[
        "baseline",
        "--env",
        "keel/Linear-v0",
        "--set",
        "system=he1",
        "--controller",
        "lqr",
        "--episodes",
        "3",
        "--out",
        out.to_str().unwrap_or_default(),
    ]);
    if stderr(&run).contains("missing data") && std::env::var("KEEL_REQUIRE_CONTROLGYM_DATA").as_deref() != Ok("1") {
        eprintln!("skipped: {}", stderr(&run));
        return;
    }
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(stdout(&run).contains("episodic cost"), "{}", stdout(&run));
    let report = read_json(&out);
    assert_eq!(report["episodes"].as_array().map(Vec::len), Some(3));
    assert!(report["mean_cost"].as_f64().is_some_and(f64::is_finite));
    assert!(report["riccati_residual"].as_f64().is_some_and(|r| r < 1e-8));
}

#[test]
fn baseline_errors_name_the_cause() {
    let out = scratch("baseline-errors").join("x.json");
    let o = out.to_str().unwrap_or_default();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["baseline", "--env", "keel/Schrodinger-v0", "--controller", "lqr", "--episodes", "1", "--out", o],
            "stabilis",
        ),
        (vec!["baseline", "--env", "keel/Burgers-v0", "--controller", "lqr", "--out", o], "no linear model"),
        (
            vec!["baseline", "--env", "keel/Burgers-v0", "--set", "n_state=63", "--controller", "zero", "--out", o],
            "n_state",
        ),
    ];
    for (args, needle) in cases {
        let run = keel(&args);
        assert!(!run.status.success(), "{args:?} succeeded");
        assert!(stderr(&run).contains(needle), "{args:?}: stderr lacks `{needle}`: {}", stderr(&run));
        assert!(!stderr(&run).contains("panicked"), "{args:?} panicked: {}", stderr(&run));
    }
}

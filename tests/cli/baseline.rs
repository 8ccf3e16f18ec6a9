//! `keel baseline`: LQR on controlgym's `he1`, where it writes, and its errors.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use keel_envs::testing::Data;

use crate::common::{assert_clear_errors, installed, keel, keel_in, read_json, scratch, stderr, stdout};

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
    if !installed(Data::Controlgym, "keel/Linear-v0", serde_json::json!({"system": "he1"})) {
        return;
    }
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(stdout(&run).contains("episodic cost"), "{}", stdout(&run));
    let report = read_json(&out);
    assert_eq!(report["episodes"].as_array().map(Vec::len), Some(3));
    assert!(report["mean_cost"].as_f64().is_some_and(f64::is_finite));
    assert!(report["riccati_residual"].as_f64().is_some_and(|r| r < 1e-8));
}

/// Without `--out`, `keel baseline` prints its result and writes nothing (it used to leave a
/// `baseline.json` in the working directory).
#[test]
fn baseline_writes_only_where_told() {
    let dir = scratch("baseline-cwd");
    let run = keel_in(
        &dir,
        &["baseline", "--env", "keel/Burgers-v0", "--set", "n_state=64", "--controller", "zero", "--episodes", "1"],
    );
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(stdout(&run).contains("episodic cost"), "{}", stdout(&run));
    assert_eq!(std::fs::read_dir(&dir).map(Iterator::count).ok(), Some(0), "files written into the working directory");
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
    assert_clear_errors(&cases);
}

/// Ctrl-C stops `keel baseline` inside an episode, however long the user made it: one episode
/// of a trillion steps ends with status 130 after the first SIGINT and writes nothing.
#[test]
fn baseline_stops_on_ctrl_c_inside_one_endless_episode() {
    let dir = scratch("baseline-long-episode");
    let out = dir.join("b.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(["baseline", "--env", "keel/Pendulum-v1", "--controller", "zero", "--episodes", "1"])
        .args(["--set", "max_episode_steps=1000000000000", "--out", out.to_str().unwrap_or_default()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run keel: {e}"));
    std::thread::sleep(Duration::from_secs(2));
    let sent = Command::new("kill").args(["-INT", &child.id().to_string()]).status();
    assert!(sent.is_ok_and(|s| s.success()), "cannot send SIGINT");
    // Waits for the exit; a keel that ignores the first Ctrl-C is ended here, and the test fails.
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            _ if Instant::now() > deadline => break None,
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    if status.is_none() {
        let _ = child.kill();
    }
    let err = child.wait_with_output().map(|o| stderr(&o)).unwrap_or_default();
    assert_eq!(status.and_then(|s| s.code()), Some(130), "still running 60 s after Ctrl-C, or: {err}");
    assert!(err.contains("interrupted by Ctrl-C"), "{err}");
    assert!(!out.exists(), "an interrupted baseline wrote {}", out.display());
    let _ = std::fs::remove_dir_all(&dir);
}

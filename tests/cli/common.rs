//! Helpers every command's tests share: running `keel` as a user runs it, reading its output,
//! scratch folders, and the assertions for refused input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use keel_envs::testing::Data;
use serde_json::Value;

/// `keel ARGS` run in the system's temporary folder.
pub fn keel(args: &[&str]) -> Output {
    keel_in(&std::env::temp_dir(), args)
}

/// `keel ARGS` run in the working directory `cwd`.
pub fn keel_in(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keel"))
        .current_dir(cwd)
        .args(args)
        .env_remove("LD_LIBRARY_PATH")
        .env_remove("KEEL_TORCH_THREADS")
        .output()
        .unwrap_or_else(|e| panic!("cannot run keel: {e}"))
}

/// Whether env `id`'s data is installed: checked by making the env, not by reading a command's
/// error, so that no other failure passes for missing data. Where it is missing the test skips,
/// or fails where the test command requires the data ([`Data`]).
pub fn installed(data: Data, id: &str, config: Value) -> bool {
    keel_envs::humanoid::register().unwrap_or_else(|e| panic!("{e}"));
    let config = serde_json::from_value(config).unwrap_or_else(|e| panic!("{e}"));
    !data.missing(id, &keel_envs::make(id, &config))
}

/// A run's standard output, as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A run's standard error, as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Trains `config` (plus `extra` arguments) straight for 3 iterations in `runs/straight`, and
/// stopped after one then resumed in `runs/stopped`, each in its own process; returns both
/// runs' metrics lines without the speed column.
pub fn straight_and_resumed(dir: &Path, config: &str, extra: &[&str]) -> (Vec<String>, Vec<String>) {
    let straight_args = ["--total-timesteps", "768", "--num-envs", "2", "--set", "num_steps=128", "--quiet"];
    for (run, stop) in [("runs/straight", &[][..]), ("runs/stopped", &["--max-iterations", "1"][..])] {
        let _ = std::fs::remove_dir_all(dir.join(run));
        let args = [&["train", "--config", config, "--run-dir", run][..], stop, &straight_args, extra].concat();
        let trained = keel_in(dir, &args);
        assert!(trained.status.success(), "{config} {run}: {}", stderr(&trained));
    }
    let resumed = keel_in(dir, &["train", "--resume", "runs/stopped", "--quiet"]);
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    let without_speed = |run: &str| {
        let text = std::fs::read_to_string(dir.join(run).join("metrics.csv")).unwrap_or_default();
        text.lines().map(|l| l.rsplit_once(',').map_or(l, |(rest, _)| rest).to_string()).collect::<Vec<_>>()
    };
    (without_speed("runs/straight"), without_speed("runs/stopped"))
}

/// A folder of this test process for the test `name`.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("keel-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    dir
}

/// The JSON file at `path`; a test fails where it is missing or not JSON.
pub fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Each command fails with a one-line error containing its needle, and none panics.
pub fn assert_clear_errors(cases: &[(Vec<&str>, &str)]) {
    for (args, needle) in cases {
        let run = keel(args);
        assert!(!run.status.success(), "{args:?} succeeded");
        assert!(stderr(&run).contains(needle), "{args:?}: stderr lacks `{needle}`: {}", stderr(&run));
        assert!(!stderr(&run).contains("panicked"), "{args:?} panicked: {}", stderr(&run));
    }
}

/// Each command fails with exactly one line on stderr, containing its needle, and prints
/// nothing on stdout (no work was done before the error).
pub fn assert_refused_up_front(cases: &[(Vec<&str>, &str)]) {
    for (args, needle) in cases {
        let run = keel(args);
        let err = stderr(&run);
        assert!(!run.status.success(), "{args:?} succeeded");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: not one line: {err}");
        assert!(err.contains(needle), "{args:?}: stderr lacks `{needle}`: {err}");
        assert!(stdout(&run).is_empty(), "{args:?}: worked before failing: {}", stdout(&run));
    }
}

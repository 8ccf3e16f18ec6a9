//! Bad input across commands: clear one-line errors naming the cause, before any work (sizes
//! beyond memory, output paths, non-finite values).

use crate::common::{assert_clear_errors, assert_refused_up_front, scratch};

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
    assert_clear_errors(&cases);
}

/// Sizes beyond the memory are one-line errors with the number, before anything is allocated:
/// the env's own sizes, the vector, bench's pre-drawn actions, the networks and the rollout,
/// and counts of records kept in memory.
#[test]
fn sizes_beyond_memory_are_one_line_errors() {
    let dir = scratch("sizes");
    let actions = dir.join("a.json");
    std::fs::write(&actions, "[]").unwrap_or_else(|e| panic!("{e}"));
    let (a, o) = (actions.to_str().unwrap_or_default(), dir.join("t.json"));
    let o = o.to_str().unwrap_or_default();
    let run = |name: &str| dir.join(name).to_str().unwrap_or_default().to_string();
    let (wide, long) = (run("wide"), run("long"));
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["rollout", "--env", "keel/Burgers-v0", "--set", "n_state=1000000000000", "--actions", a, "--out", o],
            "n_state = 1000000000000 needs about",
        ),
        (
            vec!["bench", "--num-envs", "100000000", "--steps", "1", "--repeats", "1"],
            "num_envs = 100000000 needs about",
        ),
        (vec!["train", "--set", "hidden_sizes=[1000000000]", "--run-dir", &wide], "hidden_sizes = 1000000000 needs"),
        (
            vec!["train", "--set", "num_steps=1000000000", "--total-timesteps", "100000000000", "--run-dir", &long],
            "num_steps = 1000000000 needs",
        ),
        (vec!["performative", "--iters", "1000000000000000"], "--iters = 1000000000000000 needs"),
        (
            vec!["train", "--algo", "dqn", "--set", "buffer_size=100000000000", "--run-dir", &wide],
            "buffer_size = 100000000000 needs",
        ),
        (
            vec!["baseline", "--env", "keel/Burgers-v0", "--controller", "zero", "--episodes", "1000000000000000000"],
            "--episodes = 1000000000000000000 needs",
        ),
    ];
    assert_refused_up_front(&cases);
}

/// Every output path is checked before any work: a folder that does not exist or takes no
/// files, a folder where a file is due, a file where a folder is due, a plot that is not PNG.
#[test]
fn output_paths_are_checked_before_any_work() {
    let dir = scratch("outputs");
    let actions = dir.join("a.json");
    std::fs::write(&actions, "[0]").unwrap_or_else(|e| panic!("{e}"));
    let file = dir.join("a_file");
    std::fs::write(&file, "x").unwrap_or_else(|e| panic!("{e}"));
    let (a, d, f) =
        (actions.to_str().unwrap_or_default(), dir.to_str().unwrap_or_default(), file.to_str().unwrap_or_default());
    let under_file = format!("{f}/run");
    let txt = dir.join("curves.txt");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["performative", "figure2", "--out-dir", "/proc/keel"],
            "--out-dir /proc/keel: cannot create files in /proc",
        ),
        (vec!["performative", "figure2", "--out-dir", f], "is not a folder"),
        (vec!["performative", "--out", "/proc/keel/p.json"], "--out /proc/keel/p.json: /proc/keel does not exist"),
        (vec!["bench", "--env", "keel/CartPole-v1", "--json", "/proc/keel/b.json"], "--json /proc/keel/b.json"),
        (vec!["bench", "--env", "keel/CartPole-v1", "--json", d], "is a folder"),
        (
            vec!["baseline", "--env", "keel/Burgers-v0", "--controller", "zero", "--out", "/proc/keel/b.json"],
            "--out /proc/keel/b.json",
        ),
        (vec!["train", "--run-dir", "/proc/keel"], "--run-dir /proc/keel: cannot create files in /proc"),
        (vec!["train", "--run-dir", &under_file], "is not a folder"),
        (vec!["rollout", "--env", "keel/CartPole-v1", "--actions", a, "--out", d], "is a folder"),
        (vec!["plot", d, "--out", "/proc/keel.png"], "--out /proc/keel.png: cannot create files in /proc"),
        (vec!["td", "baird", "--out", "/proc/keel/td.json"], "--out /proc/keel/td.json"),
        (vec!["plot", d, "--out", txt.to_str().unwrap_or_default()], "give a file name ending in .png"),
    ];
    assert_refused_up_front(&cases);
}

/// Values that are not finite, nulls, unparsable lists and TOML syntax errors name the field and
/// say what is wrong, in one line.
#[test]
fn non_finite_and_null_values_name_the_field() {
    let dir = scratch("values");
    let actions = dir.join("a.json");
    std::fs::write(&actions, "[0]").unwrap_or_else(|e| panic!("{e}"));
    let nan_toml = dir.join("nan.toml");
    std::fs::write(&nan_toml, "[env_config]\ngravity = nan\n").unwrap_or_else(|e| panic!("{e}"));
    let broken_toml = dir.join("broken.toml");
    std::fs::write(&broken_toml, "learning_rate = 0.1\nnum_envs = = 2\n").unwrap_or_else(|e| panic!("{e}"));
    let (a, o) = (actions.to_str().unwrap_or_default(), dir.join("t.json"));
    let o = o.to_str().unwrap_or_default();
    let r = dir.join("run");
    let r = r.to_str().unwrap_or_default();
    let rollout =
        |set: &'static str| vec!["rollout", "--env", "keel/CartPole-v1", "--set", set, "--actions", a, "--out", o];
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (rollout("gravity=1e400"), "--set gravity=1e400: the value is not a finite number"),
        (rollout("gravity=nan"), "--set gravity=nan: the value is not a finite number"),
        (rollout("gravity=-inf"), "not a finite number"),
        (rollout("gravity=null"), "invalid `gravity`: null is not allowed"),
        (rollout("high=[1e400]"), "numbers must be finite"),
        (vec!["train", "--set", "learning_rate=null", "--run-dir", r], "invalid `learning_rate`: null is not allowed"),
        (vec!["train", "--set", "learning_rate=inf", "--run-dir", r], "--set learning_rate=inf"),
        (
            vec!["train", "--config", nan_toml.to_str().unwrap_or_default(), "--run-dir", r],
            "`env_config.gravity` = NaN is not finite",
        ),
        (
            vec!["train", "--config", broken_toml.to_str().unwrap_or_default(), "--run-dir", r],
            "not valid TOML at line 2",
        ),
        (vec!["train", "--set", "num_minibatches=3", "--run-dir", r], "`num_minibatches`: 3 does not divide the batch"),
        (vec!["train", "--set", "num_minibatches=512", "--run-dir", r], "too few to normalise advantages"),
    ];
    assert_refused_up_front(&cases);
}

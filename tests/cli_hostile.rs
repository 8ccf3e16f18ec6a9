//! Hostile input to the `keel` command line, as a careless user gives it: sizes that would run
//! for hours, outputs that are inputs, sweep specs that escape their folder or race two trainings
//! into one, runs that are not what a report or a plot takes them for, and negative numbers where
//! a flag expects a size. Each is one clear error (or a warning naming what was skipped), and
//! long work stops on Ctrl-C with status 130, leaving no half-written output.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn keel(args: &[&str]) -> Output {
    keel_os(&args.iter().map(std::ffi::OsStr::new).collect::<Vec<_>>())
}

fn keel_os(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keel"))
        .current_dir(std::env::temp_dir())
        .args(args)
        .env("KEEL_TORCH_THREADS", "1")
        .output()
        .unwrap_or_else(|e| panic!("cannot run keel: {e}"))
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("keel-hostile-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    dir
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

fn arg(path: &Path) -> &str {
    path.to_str().unwrap_or_default()
}

/// The command fails with one `error:` line that contains every needle, and no panic.
fn assert_error(args: &[&str], needles: &[&str]) {
    let run = keel(args);
    let err = stderr(&run);
    assert!(!run.status.success(), "{args:?} succeeded");
    assert_eq!(run.status.code(), Some(1), "{args:?}: {err}");
    assert_eq!(err.trim().lines().count(), 1, "{args:?}: not one line: {err}");
    for needle in needles {
        assert!(err.contains(needle), "{args:?}: stderr lacks `{needle}`: {err}");
    }
}

/// Starts `keel ARGS`, sends SIGINT after `after`, and returns its exit status code and stderr.
fn interrupted(args: &[&str], after: Duration) -> (Option<i32>, String) {
    let child = Command::new(env!("CARGO_BIN_EXE_keel"))
        .current_dir(std::env::temp_dir())
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run keel: {e}"));
    std::thread::sleep(after);
    let sent = Command::new("kill").args(["-INT", &child.id().to_string()]).status();
    assert!(sent.is_ok_and(|s| s.success()), "cannot send SIGINT");
    let started = Instant::now();
    let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    assert!(started.elapsed() < Duration::from_secs(30), "{args:?} took {:?} to stop", started.elapsed());
    (out.status.code(), stderr(&out))
}

/// Names of the files in `dir`.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(Result::ok).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn rollout_refuses_an_out_that_is_one_of_its_inputs() {
    let dir = scratch("rollout");
    let actions = dir.join("a.json");
    let state = dir.join("s.json");
    write(&actions, "[0, 1]");
    write(&state, "[0.01, 0, 0, 0]");
    let cart = ["rollout", "--env", "keel/CartPole-v1"];
    // The same file by another spelling is the same file.
    let dotted = dir.join(".").join("a.json");
    for out in [&actions, &dotted] {
        assert_error(&[&cart[..], &["--actions", arg(&actions), "--out", arg(out)]].concat(), &["--out", "--actions"]);
    }
    let args = [&cart[..], &["--actions", arg(&actions), "--init-state", arg(&state), "--out", arg(&state)]].concat();
    assert_error(&args, &["--out", "--init-state"]);
    assert_eq!(std::fs::read_to_string(&actions).ok().as_deref(), Some("[0, 1]"));
    assert_eq!(std::fs::read_to_string(&state).ok().as_deref(), Some("[0.01, 0, 0, 0]"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn absurd_sizes_of_long_jobs_are_refused_naming_the_flag_and_the_limit() {
    let dir = scratch("sizes");
    let st = dir.join("st");
    let gif = dir.join("r.gif");
    let cdr = "keel/ConvectionDiffusionReaction-v0";
    assert_error(
        &["baseline", "--env", cdr, "--controller", "lqr", "--set", "n_state=3000"],
        &["n_state=3000", "1024"],
    );
    assert_error(
        &["baseline", "--env", cdr, "--controller", "lqg", "--set", "n_state=3000"],
        &["n_state=3000", "1024"],
    );
    assert_error(&["performative", "--samples", "1000000000000", "--iters", "2"], &["--samples", "1000000"]);
    assert_error(
        &["performative", "--samples", "1000", "--iters", "100000", "--seeds", "1000"],
        &["--samples", "--iters", "--seeds", "10000000000"],
    );
    let seeds = ["td", "stability", "--k", "1,2,3,4,5", "--lr", "0.1,0.2,0.3", "--seeds", "10000", "--out", arg(&st)];
    assert_error(&seeds, &["--seeds 10000", "150000 runs", "100000"]);
    let steps = ["td", "stability", "--lr", "0.1", "--seeds", "100", "--steps", "1000000000", "--out", arg(&st)];
    assert_error(&steps, &["--steps 1000000000", "100000000000"]);
    let render = ["render", "--clip", "walk", "--size", "4096x4096", "--seconds", "600", "--out", arg(&gif)];
    assert_error(&render, &["4096x4096", "4294967296", "--size"]);
    assert!(listing(&dir).is_empty(), "refused work wrote {:?}", listing(&dir));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn td_stability_stops_on_ctrl_c_with_status_130_and_writes_nothing() {
    let dir = scratch("td-ctrl-c");
    let out = dir.join("st");
    // About a million updates a run, thousands of runs: far more than the time before the signal.
    let args = [
        "td",
        "stability",
        "--k",
        "1,10",
        "--lr",
        "0.001",
        "--seeds",
        "5000",
        "--steps",
        "1000000",
        "--out",
        arg(&out),
    ];
    let (code, err) = interrupted(&args, Duration::from_secs(2));
    assert_eq!(code, Some(130), "{err}");
    assert!(err.contains("interrupted by Ctrl-C") && err.contains("stopped after"), "{err}");
    assert!(!out.join("runs.csv").exists() && !out.join("cells.csv").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Whether the humanoid's clips are installed (else the render tests skip, unless the test
/// command requires the data: `keel_envs::testing::Data`).
fn clips_installed() -> bool {
    keel_envs::humanoid::register().unwrap_or_else(|e| panic!("{e}"));
    let env = keel_envs::make("keel/HumanoidTrack-v1", &serde_json::Map::new());
    !keel_envs::testing::Data::Humanoid.missing("keel render", &env)
}

#[test]
fn an_interrupted_render_leaves_neither_a_partial_gif_nor_a_temporary_file() {
    if !clips_installed() {
        return;
    }
    let dir = scratch("render");
    let gif = dir.join("walk.gif");
    write(&gif, "the user's own file");
    let args = ["render", "--clip", "walk", "--size", "1024x1024", "--seconds", "60", "--out", arg(&gif)];
    let (code, err) = interrupted(&args, Duration::from_secs(3));
    assert_eq!(code, Some(130), "{err}");
    assert!(err.contains("interrupted by Ctrl-C"), "{err}");
    assert_eq!(std::fs::read_to_string(&gif).ok().as_deref(), Some("the user's own file"));
    assert_eq!(listing(&dir), ["walk.gif"]);
    // A finished render replaces it with a whole GIF.
    let done = keel(&["render", "--clip", "walk", "--seconds", "0.2", "--size", "64x48", "--out", arg(&gif)]);
    assert!(done.status.success(), "{}", stderr(&done));
    assert_eq!(std::fs::read(&gif).ok().map(|b| b[..6].to_vec()), Some(b"GIF89a".to_vec()));
    assert_eq!(listing(&dir), ["walk.gif"]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn negative_numbers_get_range_errors_not_unknown_flags() {
    let gif = std::env::temp_dir().join("keel-hostile-never.gif");
    for size in ["-5x10", "-5x-5", "10x-5"] {
        let run = keel(&["render", "--clip", "walk", "--size", size, "--out", arg(&gif)]);
        let err = stderr(&run);
        assert!(!run.status.success() && !err.contains("unexpected argument"), "{size}: {err}");
        assert!(err.contains("--size") && err.contains("16..=4096"), "{size}: {err}");
    }
    assert!(!gif.exists());
    for (flag, value) in [("--threshold", "-1"), ("--recovery-seconds", "-2")] {
        let run = keel(&["eval", "--run", "/nonexistent-keel-run", "--perturb", "1", flag, value]);
        let err = stderr(&run);
        assert!(!run.status.success() && !err.contains("unexpected argument"), "{flag}: {err}");
        assert!(err.contains(flag) && err.contains(value), "{flag}: {err}");
    }
}

#[test]
fn baseline_controllers_need_a_box_action_space() {
    for controller in ["zero", "lqr"] {
        assert_error(
            &["baseline", "--env", "keel/CartPole-v1", "--controller", controller],
            &["Box action space", "Discrete(2)", controller],
        );
    }
}

/// A sweep spec of one CartPole env with `env_extra` in its `[[envs]]` table and `head` above.
fn spec(dir: &Path, name: &str, head: &str, env_extra: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    let text = format!("total_timesteps = 128\n{head}\n[[envs]]\nid = \"keel/CartPole-v1\"\n{env_extra}\n");
    write(&path, &text);
    path
}

#[test]
fn sweep_specs_that_escape_their_folder_or_race_runs_are_refused() {
    let dir = scratch("sweep");
    let out = dir.join("out");
    let plain = "algorithms = [\"ppo\"]\nseeds = [0]";
    let cases: Vec<(PathBuf, Vec<&str>)> = vec![
        (spec(&dir, "escape", plain, "name = \"../../x\""), vec!["../../x", "plain folder name"]),
        (spec(&dir, "slash", plain, "name = \"a/b\""), vec!["a/b", "plain folder name"]),
        (spec(&dir, "dotdot", plain, "name = \"..\""), vec!["\"..\"", "plain folder name"]),
        (spec(&dir, "seeds", "algorithms = [\"ppo\"]\nseeds = [0, 1, 0]", ""), vec!["`seeds` names 0 twice"]),
        (spec(&dir, "algos", "algorithms = [\"ppo\", \"dqn\", \"ppo\"]\nseeds = [0]", ""), vec!["`ppo` twice"]),
        (
            spec(&dir, "grid", &format!("{plain}\ngrid = {{ learning_rate = [0.1, 0.1] }}"), ""),
            vec!["grid.learning_rate"],
        ),
        (spec(&dir, "nan", plain, "reference = [nan, 1.0]"), vec!["reference = [NaN, 1]", "finite"]),
        (spec(&dir, "equal", plain, "reference = [1.0, 1.0]"), vec!["reference = [1, 1]", "low below high"]),
        (spec(&dir, "reversed", plain, "reference = [5.0, 1.0]"), vec!["reference = [5, 1]", "low below high"]),
    ];
    for (path, needles) in &cases {
        assert_error(&["sweep", arg(path), "--out", arg(&out), "--dry-run"], needles);
        assert_error(&["sweep", arg(path), "--out", arg(&out)], needles);
    }
    assert!(!out.exists(), "a refused sweep created {}", out.display());
    assert!(!dir.parent().unwrap_or(&dir).join("x").exists());
    // A `--out` that is not UTF-8 would reach the runs as another, lossily decoded folder.
    let ok = spec(&dir, "ok", plain, "");
    let mut bytes = dir.as_os_str().as_bytes().to_vec();
    bytes.extend_from_slice(b"/out\xff");
    let odd = std::ffi::OsStr::from_bytes(&bytes);
    let run = keel_os(&["sweep".as_ref(), ok.as_os_str(), "--out".as_ref(), odd]);
    assert!(!run.status.success(), "a non-UTF-8 --out was accepted");
    assert!(stderr(&run).contains("not valid UTF-8"), "{}", stderr(&run));
    assert_eq!(listing(&dir).iter().filter(|n| n.starts_with("out")).count(), 0, "{:?}", listing(&dir));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A finished run folder as `keel train` leaves it: `config.toml`, `metrics.csv` (with
/// `returns` as its episodic returns) and `summary.json`.
fn fake_run(dir: &Path, env_id: &str, algo: &str, seed: u64, returns: &[&str]) {
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{e}"));
    write(&dir.join("config.toml"), &format!("algo = \"{algo}\"\nenv_id = \"{env_id}\"\nseed = {seed}\n"));
    let mut metrics = String::from("iteration,global_step,episodic_return\n");
    for (i, r) in returns.iter().enumerate() {
        metrics.push_str(&format!("{},{},{r}\n", i + 1, 64 * (i + 1)));
    }
    write(&dir.join("metrics.csv"), &metrics);
    let summary = serde_json::json!({
        "status": "completed", "message": null, "env_id": env_id, "algo": algo, "seed": seed,
        "global_step": 64 * returns.len(), "iterations": returns.len(), "episodes": 10,
        "final_return_mean": 20.0 + seed as f64, "final_return_std": 1.0, "wall_time_s": 1.0, "sps": 100.0,
        "last_checkpoint": null,
    });
    write(&dir.join("summary.json"), &summary.to_string());
}

#[test]
fn report_skips_a_run_whose_summary_names_another_env() {
    let dir = scratch("report");
    let trial = |seed: u64| {
        serde_json::json!({
            "name": format!("cartpole_ppo_s{seed}"), "algo": "ppo", "env_id": "keel/CartPole-v1", "env": "cartpole",
            "variant": "", "seed": seed, "sets": [], "total_timesteps": 128,
        })
    };
    let sweep = serde_json::json!({
        "spec": {
            "algorithms": ["ppo"], "envs": [{ "id": "keel/CartPole-v1", "name": "cartpole", "config": {} }],
            "seeds": [0, 1], "total_timesteps": 128, "jobs": null, "cpus_per_run": 1, "set": {}, "grid": {},
            "scheduler": null,
        },
        "trials": [trial(0), trial(1)],
    });
    write(&dir.join("sweep.json"), &sweep.to_string());
    fake_run(&dir.join("runs/cartpole_ppo_s0"), "keel/CartPole-v1", "ppo", 0, &["10", "20"]);
    // Seed 1's folder holds a Pendulum run (copied in by hand).
    fake_run(&dir.join("runs/cartpole_ppo_s1"), "keel/Pendulum-v1", "ppo", 1, &["-900", "-800"]);
    let run = keel(&["report", arg(&dir), "--reps", "10", "--baseline-episodes", "1"]);
    let err = stderr(&run);
    assert!(run.status.success(), "{err}");
    assert!(err.contains("cartpole_ppo_s1") && err.contains("keel/Pendulum-v1"), "no warning naming it: {err}");
    let report = std::fs::read_to_string(dir.join("report.md")).unwrap_or_default();
    assert!(report.contains("1 of 2 runs finished"), "{report}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn plot_refuses_empty_metrics_and_the_same_run_twice() {
    let dir = scratch("plot");
    let (good, nan, header) = (dir.join("good"), dir.join("nan"), dir.join("header"));
    fake_run(&good, "keel/CartPole-v1", "ppo", 0, &["10", "20", "30"]);
    fake_run(&nan, "keel/CartPole-v1", "ppo", 1, &["nan", "NaN", ""]);
    fake_run(&header, "keel/CartPole-v1", "ppo", 2, &[]);
    let png = dir.join("p.png");
    assert_error(&["plot", arg(&nan), "--out", arg(&png)], &["episodic_return", "no finite value"]);
    assert_error(&["plot", arg(&good), arg(&header), "--out", arg(&png)], &["episodic_return", "no rows"]);
    let again = good.join("..").join("good");
    assert_error(&["plot", arg(&good), arg(&again), "--out", arg(&png)], &["same run folder"]);
    assert!(!png.exists(), "a refused plot was written");
    let drawn = keel(&["plot", arg(&good), "--out", arg(&png)]);
    assert!(drawn.status.success() && png.exists(), "{}", stderr(&drawn));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn report_does_not_solve_riccati_equations_beyond_the_baseline_limit() {
    let dir = scratch("report-large");
    let id = "keel/ConvectionDiffusionReaction-v0";
    let sweep = serde_json::json!({
        "spec": {
            "algorithms": ["ppo"], "envs": [{ "id": id, "name": "cdr", "config": { "n_state": 3000 } }],
            "seeds": [0], "total_timesteps": 128, "jobs": null, "cpus_per_run": 1, "set": {}, "grid": {},
            "scheduler": null,
        },
        "trials": [{
            "name": "cdr_ppo_s0", "algo": "ppo", "env_id": id, "env": "cdr", "variant": "", "seed": 0,
            "sets": ["env_config.n_state=3000"], "total_timesteps": 128,
        }],
    });
    write(&dir.join("sweep.json"), &sweep.to_string());
    fake_run(&dir.join("runs/cdr_ppo_s0"), id, "ppo", 0, &["-10", "-5"]);
    let started = Instant::now();
    let run = keel(&["report", arg(&dir), "--reps", "10", "--baseline-episodes", "1"]);
    let err = stderr(&run);
    assert!(run.status.success(), "{err}");
    // The Riccati solves of 3000 states take many minutes; the report takes seconds.
    assert!(started.elapsed() < Duration::from_secs(60), "took {:?}", started.elapsed());
    assert!(err.contains("3000 states") && err.contains("min–max"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn baseline_stops_on_ctrl_c_with_status_130_and_writes_nothing() {
    let dir = scratch("baseline-ctrl-c");
    let out = dir.join("b.json");
    // A million episodes of 1000 steps: far more than the time before the signal.
    let args =
        ["baseline", "--env", "keel/Linear-v0", "--controller", "zero", "--episodes", "1000000", "--out", arg(&out)];
    let (code, err) = interrupted(&args, Duration::from_secs(2));
    assert_eq!(code, Some(130), "{err}");
    assert!(err.contains("interrupted by Ctrl-C"), "{err}");
    assert!(listing(&dir).is_empty(), "{:?}", listing(&dir));
    let _ = std::fs::remove_dir_all(&dir);
}

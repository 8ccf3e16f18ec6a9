//! The `keel` command line, run as a user runs it (and without `LD_LIBRARY_PATH`, which proves
//! the libtorch rpath).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use keel_envs::testing::Data;
use serde_json::Value;

fn keel(args: &[&str]) -> Output {
    keel_in(&std::env::temp_dir(), args)
}

/// `keel ARGS` run in the working directory `cwd`.
fn keel_in(cwd: &Path, args: &[&str]) -> Output {
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
fn installed(data: Data, id: &str, config: Value) -> bool {
    keel_envs::humanoid::register().unwrap_or_else(|e| panic!("{e}"));
    let config = serde_json::from_value(config).unwrap_or_else(|e| panic!("{e}"));
    !data.missing(id, &keel_envs::make(id, &config))
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Trains `config` (plus `extra` arguments) straight for 3 iterations in `runs/straight`, and
/// stopped after one then resumed in `runs/stopped`, each in its own process; returns both
/// runs' metrics lines without the speed column.
fn straight_and_resumed(dir: &Path, config: &str, extra: &[&str]) -> (Vec<String>, Vec<String>) {
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

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("keel-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    dir
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

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

#[test]
fn list_shows_every_env() {
    // The command line registers the humanoid and differentiable-physics families at start-up;
    // so does this test.
    assert!(keel_envs::humanoid::register().is_ok());
    keel_envs::diff::register().unwrap_or_else(|e| panic!("{e}"));
    assert!(keel_envs::registry::ids().contains(&"keel/DiffHopper-v0"));
    // The binary registers the Atari games at start-up in the `atari` build; so does this test.
    #[cfg(feature = "atari")]
    assert!(keel_envs::atari::register().is_ok());
    let out = keel(&["list"]);
    assert!(out.status.success(), "{}", stderr(&out));
    for id in keel_envs::registry::ids() {
        assert!(stdout(&out).contains(id), "{id} missing from keel list");
    }
    let json = keel(&["list", "--json"]);
    let parsed: Value = serde_json::from_str(&stdout(&json)).unwrap_or(Value::Null);
    assert_eq!(parsed.as_array().map(Vec::len), Some(keel_envs::registry::ids().len()));
    let entry = |id: &str| parsed.as_array().into_iter().flatten().find(|e| e["id"] == id).cloned();
    let burgers = entry("keel/Burgers-v0").unwrap_or_default();
    assert_eq!(burgers["extras"], serde_json::json!(["state_cost", "action_cost", "state_norm", "diverged"]));
    assert_eq!(burgers["spec"]["observation_space"]["dtype"], "float64");
    assert_eq!(entry("keel/CartPole-v1").unwrap_or_default()["extras"], serde_json::json!([]));
    let humanoid = entry("keel/HumanoidTrack-v0").unwrap_or_default();
    assert_eq!(humanoid["extras"][0], "reward_pose", "{humanoid}");
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

/// Each command fails with a one-line error containing its needle, and none panics.
fn assert_clear_errors(cases: &[(Vec<&str>, &str)]) {
    for (args, needle) in cases {
        let run = keel(args);
        assert!(!run.status.success(), "{args:?} succeeded");
        assert!(stderr(&run).contains(needle), "{args:?}: stderr lacks `{needle}`: {}", stderr(&run));
        assert!(!stderr(&run).contains("panicked"), "{args:?} panicked: {}", stderr(&run));
    }
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
    assert_clear_errors(&cases);
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

#[test]
fn train_stop_resume_eval_plot() {
    let dir = scratch("train");
    let run = dir.join("run");
    let _ = std::fs::remove_dir_all(&run);
    let r = run.to_str().unwrap_or_default();
    let common =
        ["--env", "keel/CartPole-v1", "--total-timesteps", "1280", "--set", "num_steps=64", "--set", "num_envs=2"];
    let mut args = vec!["train", "--run-dir", r, "--quiet", "--max-iterations", "4"];
    args.extend_from_slice(&common);
    let first = keel(&args);
    assert!(first.status.success(), "{}", stderr(&first));
    let summary = read_json(&run.join("summary.json"));
    assert_eq!(summary["status"], "stopped");
    assert_eq!(summary["iterations"], 4);
    // The same folder cannot be reused by accident.
    let again = keel(&args);
    assert!(!again.status.success() && stderr(&again).contains("--resume"), "{}", stderr(&again));
    let resumed = keel(&["train", "--resume", r, "--quiet"]);
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    let summary = read_json(&run.join("summary.json"));
    assert_eq!(summary["status"], "completed");
    assert_eq!(summary["iterations"], 10);
    assert!(summary["final_return_mean"].as_f64().is_some_and(f64::is_finite));
    let metrics = std::fs::read_to_string(run.join("metrics.csv")).unwrap_or_default();
    assert_eq!(metrics.lines().count(), 11, "header + one row per iteration");
    assert!(run.join("learning_curve.png").exists());
    assert!(
        std::fs::read_dir(&run)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("events.out.tfevents"))
    );

    let eval = keel(&["eval", "--run", r, "--episodes", "3", "--deterministic"]);
    assert!(eval.status.success() && stdout(&eval).contains("return"), "{}", stderr(&eval));
    assert_eq!(read_json(&run.join("eval.json"))["episodes"], 3);

    let png = dir.join("curves.png");
    let plot = keel(&["plot", r, "--out", png.to_str().unwrap_or_default(), "--metric", "surrogate_variance"]);
    assert!(plot.status.success(), "{}", stderr(&plot));
    assert!(png.exists());
}

/// A run folder is the run's alone: a new run refuses a folder with the user's files (and leaves
/// them), a second `keel train --resume` is refused while the first trains in it, and Ctrl-C
/// ends the run with a valid summary and exit status 130, as shells expect.
#[test]
fn run_folders_are_not_shared_and_ctrl_c_exits_130() {
    let dir = scratch("run-folder-guard");
    let mine = dir.join("mine");
    std::fs::create_dir_all(&mine).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(mine.join("metrics.csv"), "my own data\n").unwrap_or_else(|e| panic!("{e}"));
    let m = mine.to_str().unwrap_or_default();
    let refused = keel(&["train", "--run-dir", m, "--total-timesteps", "512", "--quiet"]);
    assert!(!refused.status.success() && stderr(&refused).contains("not empty"), "{}", stderr(&refused));
    assert_eq!(std::fs::read_to_string(mine.join("metrics.csv")).unwrap_or_default(), "my own data\n");
    assert!(!mine.join("config.toml").exists());

    let bc = keel(&["train", "--algo", "bc", "--env", "keel/DiffPendulum-v0", "--total-timesteps", "10"]);
    assert!(!bc.status.success() && stderr(&bc).contains("--set iterations=N"), "{}", stderr(&bc));

    let run = dir.join("long");
    let _ = std::fs::remove_dir_all(&run);
    let r = run.to_str().unwrap_or_default();
    let mut child = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(["train", "--run-dir", r, "--total-timesteps", "100000000", "--quiet"])
        .args(["--set", "num_steps=64", "--set", "checkpoint_every=1"])
        .env_remove("LD_LIBRARY_PATH")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run keel: {e}"));
    let started = std::time::Instant::now();
    while !run.join("checkpoints").join("latest").exists() {
        assert!(started.elapsed().as_secs() < 120, "no checkpoint after 120 s");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let second = keel(&["train", "--resume", r, "--quiet"]);
    assert!(!second.status.success() && stderr(&second).contains("is in use"), "{}", stderr(&second));
    let interrupt = Command::new("kill").args(["-INT", &child.id().to_string()]).status();
    assert!(interrupt.is_ok_and(|s| s.success()));
    let status = child.wait().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(status.code(), Some(130));
    assert_eq!(read_json(&run.join("summary.json"))["status"], "interrupted");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `keel eval --max-episode-steps N` cuts episodes at N steps and reports the truncation (the
/// default cap, for envs without one, is tested in agents/tests/ppo.rs: a run folder cannot
/// hold a config without a cap, which `keel train` refuses with a clear error).
#[test]
fn eval_caps_episodes_and_reports_truncation() {
    let dir = scratch("eval-cap");
    let run = dir.join("run");
    let r = run.to_str().unwrap_or_default();
    let small = ["--set", "num_steps=32", "--set", "num_minibatches=2", "--total-timesteps", "256", "--quiet"];
    let train = keel(&[&["train", "--env", "keel/Pendulum-v1", "--run-dir", r], &small[..]].concat());
    assert!(train.status.success(), "{}", stderr(&train));
    let eval = keel(&["eval", "--run", r, "--episodes", "3", "--max-episode-steps", "40"]);
    assert!(eval.status.success(), "{}", stderr(&eval));
    assert!(stdout(&eval).contains("3 truncated at 40 steps"), "{}", stdout(&eval));
    let report = read_json(&run.join("eval.json"));
    assert_eq!(report["lengths"], serde_json::json!([40, 40, 40]));
    assert_eq!((report["step_cap"].as_u64(), report["truncated"].as_u64()), (Some(40), Some(3)));
    let uncapped = dir.join("uncapped");
    let refused = keel(
        &[
            &["train", "--env", "keel/Pendulum-v1", "--set", "env_config.max_episode_steps=null"],
            &["--run-dir", uncapped.to_str().unwrap_or_default()][..],
            &small[..],
        ]
        .concat(),
    );
    assert!(
        !refused.status.success() && stderr(&refused).contains("max_episode_steps` is null"),
        "{}",
        stderr(&refused)
    );
    assert!(!stderr(&refused).contains("panicked"));
}

/// A run whose checkpoint holds a NaN is refused by `--resume` and `eval` with one line naming
/// the tensor, not a libtorch panic.
#[test]
fn a_nan_checkpoint_is_a_clear_error_for_resume_and_eval() {
    use keel_agents::tch::Tensor;
    let dir = scratch("nan-checkpoint");
    let run = dir.join("run");
    let r = run.to_str().unwrap_or_default();
    let common = ["--total-timesteps", "512", "--set", "num_steps=64", "--set", "num_envs=2", "--quiet"];
    let first = keel(&[&["train", "--run-dir", r, "--max-iterations", "1"], &common[..]].concat());
    assert!(first.status.success(), "{}", stderr(&first));
    let stem = std::fs::read_to_string(run.join("checkpoints/latest")).unwrap_or_default();
    let path = run.join("checkpoints").join(format!("{}.safetensors", stem.trim()));
    let mut tensors = Tensor::read_safetensors(&path).unwrap_or_else(|e| panic!("{e}"));
    for (name, t) in &mut tensors {
        if name == "actor.head.bias" {
            let _ = t.fill_(f64::NAN);
        }
    }
    Tensor::write_safetensors(&tensors, &path).unwrap_or_else(|e| panic!("{e}"));
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["train", "--resume", r, "--quiet"], "actor.head.bias"),
        (vec!["eval", "--run", r, "--episodes", "1"], "actor.head.bias"),
    ];
    assert_clear_errors(&cases);
    for (args, _) in &cases {
        assert_eq!(stderr(&keel(args)).trim().lines().count(), 1, "{args:?}");
    }
}

/// A `[sampler]` table in a config file reaches the run (its resolved config keeps it) and a
/// stopped run with it resumes to completion.
#[test]
fn train_with_a_sampler_table_and_resume() {
    let dir = scratch("sampler");
    let config = dir.join("sampler.toml");
    std::fs::write(
        &config,
        "[sampler]\nkind = \"uniform_start_state\"\nlow = [-0.1, -0.1, -0.1, -0.1]\nhigh = [0.1, 0.1, 0.1, 0.1]\n\
         [sampler.adapt]\nsuccess_return = 50.0\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let run = dir.join("run");
    let r = run.to_str().unwrap_or_default();
    let c = config.to_str().unwrap_or_default();
    let args = ["train", "--config", c, "--run-dir", r, "--total-timesteps", "512", "--set", "num_steps=64", "--quiet"];
    let first = keel(&[&args[..], &["--max-iterations", "1"]].concat());
    assert!(first.status.success(), "{}", stderr(&first));
    let saved = std::fs::read_to_string(run.join("config.toml")).unwrap_or_default();
    assert!(saved.contains("[sampler]") && saved.contains("uniform_start_state"), "{saved}");
    let resumed = keel(&["train", "--resume", r, "--quiet"]);
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    assert_eq!(read_json(&run.join("summary.json"))["status"], "completed");
    let bad = keel(&["train", "--set", "sampler.scale=0.5", "--run-dir", dir.join("bad").to_str().unwrap_or_default()]);
    assert!(!bad.status.success() && stderr(&bad).contains("give the whole table"), "{}", stderr(&bad));
}

#[test]
fn train_rejects_bad_config_before_training() {
    let dir = scratch("badtrain");
    for (flag, needle) in
        [("learning_rte=1", "learning_rte"), ("num_envs=x", "num_envs"), ("dppo.drop_rate=2", "dppo.drop_rate")]
    {
        let run = dir.join(flag.replace(['=', '.'], "_"));
        let out = keel(&["train", "--set", flag, "--run-dir", run.to_str().unwrap_or_default(), "--quiet"]);
        assert!(!out.status.success(), "{flag} accepted");
        assert!(stderr(&out).contains(needle), "{flag}: {}", stderr(&out));
        assert!(!run.join("metrics.csv").exists(), "{flag}: training started");
    }
    let out = keel(&["train", "--algo", "sac", "--quiet", "--run-dir", dir.join("sac").to_str().unwrap_or_default()]);
    assert!(
        !out.status.success() && stderr(&out).contains("unknown algorithm `sac`; registered algorithms: ppo, dppo"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn performative_rpo_prints_and_writes_the_papers_first_rounds() {
    let out = scratch("performative").join("rpo.json");
    let run = keel(&[
        "performative",
        "--method",
        "rpo",
        "--lambda",
        "1",
        "--beta",
        "10",
        "--iters",
        "5",
        "--out",
        out.to_str().unwrap_or_default(),
    ]);
    assert!(run.status.success(), "{}", stderr(&run));
    // The paper's code gives 0.6961, 0.1597, 0.02826, 7.087e-3, 2.861e-3.
    for printed in ["6.960909e-1", "1.596952e-1", "2.826167e-2", "7.087035e-3", "2.861003e-3"] {
        assert!(stdout(&run).contains(printed), "{printed} not printed: {}", stdout(&run));
    }
    let written = read_json(&out);
    let distance: Vec<f64> = written["distance"].as_array().into_iter().flatten().filter_map(Value::as_f64).collect();
    assert_eq!(distance.len(), 5);
    assert!((distance[0] - 0.6960909).abs() < 1e-6, "{distance:?}");
    assert_eq!(written["config"]["env"]["beta"], 10.0);
}

#[test]
fn performative_sampled_runs_do_not_depend_on_the_worker_count() {
    let dir = scratch("performative-workers");
    let mut written = Vec::new();
    for workers in ["1", "2"] {
        let out = dir.join(format!("w{workers}.json"));
        let run = keel(&[
            "performative",
            "--method",
            "rga",
            "--eta",
            "0.5",
            "--beta",
            "5",
            "--samples",
            "30",
            "--seeds",
            "3",
            "--iters",
            "4",
            "--workers",
            workers,
            "--out",
            out.to_str().unwrap_or_default(),
        ]);
        assert!(run.status.success(), "{}", stderr(&run));
        written.push(read_json(&out));
    }
    assert_eq!(written[0]["distance"], written[1]["distance"]);
    assert_eq!(written[0]["distance"].as_array().map(Vec::len), Some(3));
    assert_eq!(written[0]["gap"][2].as_array().map(Vec::len), Some(4));
}

#[test]
fn performative_bad_input_is_named() {
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["performative", "--lambda", "-1", "--iters", "2"], "lambda"),
        (vec!["performative", "--beta", "-2", "--iters", "2"], "beta"),
        (vec!["performative", "--method", "rga", "--eta", "0", "--iters", "2"], "eta"),
        (vec!["performative", "--eta", "1", "--iters", "2"], "--method rga"),
        (vec!["performative", "--seeds", "3", "--iters", "2"], "--samples"),
        (vec!["performative", "--method", "rga", "--regulariser", "entropy", "--iters", "2"], "L2"),
        (vec!["performative", "--followers", "51", "--iters", "2"], "followers"),
    ];
    assert_clear_errors(&cases);
}

#[test]
fn figure2_writes_six_panels_and_their_data() {
    let dir = scratch("figure2");
    let run = keel(&[
        "performative",
        "figure2",
        "--out-dir",
        dir.to_str().unwrap_or_default(),
        "--iters",
        "3",
        "--seeds",
        "2",
    ]);
    assert!(run.status.success(), "{}", stderr(&run));
    for png in [
        "fig2a_rpo_lambda.png",
        "fig2b_rpo_beta.png",
        "fig2c_rga_distance.png",
        "fig2d_rga_gap.png",
        "fig2e_rpo_samples.png",
        "fig2f_rga_samples.png",
    ] {
        let bytes = std::fs::read(dir.join(png)).unwrap_or_else(|e| panic!("{png}: {e}"));
        assert_eq!(&bytes[1..4], b"PNG", "{png}");
    }
    let data = read_json(&dir.join("figure2.json"));
    let panels = data["panels"].as_array().cloned().unwrap_or_default();
    assert_eq!(panels.len(), 6);
    // (a) and (b) share (λ = 1, β = 10): 5 + 4 + 5 exact runs and 2 x 6 x 2 sampled ones.
    assert_eq!(data["runs"], 14 + 24);
    assert_eq!(panels[4]["curves"][0]["runs"].as_array().map(Vec::len), Some(2));
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

/// Each command fails with exactly one line on stderr, containing its needle, and prints
/// nothing on stdout (no work was done before the error).
fn assert_refused_up_front(cases: &[(Vec<&str>, &str)]) {
    for (args, needle) in cases {
        let run = keel(args);
        let err = stderr(&run);
        assert!(!run.status.success(), "{args:?} succeeded");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: not one line: {err}");
        assert!(err.contains(needle), "{args:?}: stderr lacks `{needle}`: {err}");
        assert!(stdout(&run).is_empty(), "{args:?}: worked before failing: {}", stdout(&run));
    }
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

/// The env id and the algorithm may come from their flags, from `env_id` / `algo` in
/// `--config`, or from `--set`: each is honoured, and two different values are an error naming
/// both places.
#[test]
fn train_takes_the_env_and_algorithm_from_one_place() {
    let dir = scratch("env-algo");
    let config = dir.join("pendulum_dppo.toml");
    std::fs::write(&config, "env_id = \"keel/Pendulum-v1\"\nalgo = \"dppo\"\n").unwrap_or_else(|e| panic!("{e}"));
    let c = config.to_str().unwrap_or_default();
    let run = dir.join("run");
    let r = run.to_str().unwrap_or_default();
    let tiny = ["--total-timesteps", "64", "--set", "num_steps=32", "--set", "num_envs=2", "--quiet"];
    let trained = keel(&[&["train", "--config", c, "--run-dir", r], &tiny[..]].concat());
    assert!(trained.status.success(), "{}", stderr(&trained));
    let saved = std::fs::read_to_string(run.join("config.toml")).unwrap_or_default();
    assert!(saved.contains("env_id = \"keel/Pendulum-v1\"") && saved.contains("algo = \"dppo\""), "{saved}");
    // The same values twice are fine; different ones are not.
    let same = dir.join("same");
    let same = same.to_str().unwrap_or_default();
    let both = ["train", "--config", c, "--env", "keel/Pendulum-v1", "--algo", "dppo", "--run-dir", same];
    let again = keel(&[&both[..], &tiny[..]].concat());
    assert!(again.status.success(), "{}", stderr(&again));
    let other = dir.join("other");
    let o = other.to_str().unwrap_or_default();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["train", "--config", c, "--env", "keel/CartPole-v1", "--run-dir", o], "`env_id` is given twice"),
        (vec!["train", "--config", c, "--algo", "ppo", "--run-dir", o], "\"dppo\" by"),
        (
            vec!["train", "--env", "keel/CartPole-v1", "--set", "env_id=keel/Pendulum-v1", "--run-dir", o],
            "--set env_id",
        ),
        (vec!["train", "--algo", "ppo", "--set", "algo=dppo", "--run-dir", o], "`algo` is given twice"),
        (vec!["train", "--set", "env_id=5", "--run-dir", o], "`env_id` must be a string"),
        (vec!["train", "--resume", r, "--algo", "ppo"], "--algo"),
    ];
    assert_clear_errors(&cases);
    assert!(!other.exists(), "a refused run left a folder");
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

/// A damaged checkpoint is "not a valid checkpoint", with the file and the reason, in one line,
/// for `eval` and `--resume` alike (an empty step count used to panic inside libtorch).
#[test]
fn damaged_checkpoints_are_named_invalid() {
    use keel_agents::tch::Tensor;
    let dir = scratch("damaged");
    let run = dir.join("run");
    let r = run.to_str().unwrap_or_default();
    let first = keel(&[
        "train",
        "--run-dir",
        r,
        "--total-timesteps",
        "128",
        "--set",
        "num_steps=32",
        "--set",
        "num_envs=2",
        "--quiet",
        "--max-iterations",
        "1",
    ]);
    assert!(first.status.success(), "{}", stderr(&first));
    let path = run.join("checkpoints/iter_000001.safetensors");
    let mut tensors = Tensor::read_safetensors(&path).unwrap_or_else(|e| panic!("{e}"));
    for (name, t) in &mut tensors {
        if name == "adam.steps" {
            *t = Tensor::from_slice::<i64>(&[]);
        }
    }
    Tensor::write_safetensors(&tensors, &path).unwrap_or_else(|e| panic!("{e}"));
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["eval", "--run", r, "--episodes", "1"],
            "iter_000001.safetensors is not a valid checkpoint: `adam.steps`",
        ),
        (vec!["train", "--resume", r, "--quiet"], "is not a valid checkpoint: `adam.steps` should be one int64"),
    ];
    assert_refused_up_front(&cases);
    std::fs::write(&path, [0xffu8; 64]).unwrap_or_else(|e| panic!("{e}"));
    assert_refused_up_front(&[(vec!["eval", "--run", r], "its tensors do not parse as safetensors")]);
    std::fs::write(run.join("checkpoints/latest"), "../../../etc/passwd").unwrap_or_else(|e| panic!("{e}"));
    assert_refused_up_front(&[(vec!["eval", "--run", r], "where a checkpoint name is iter_NNNNNN")]);
}

#[test]
fn td_critical_gives_the_reference_periods() {
    for (alpha, want) in [("0.01", "77"), ("0.1", "9")] {
        let out = keel(&["td", "critical", "--alpha", alpha]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(stdout(&out).trim(), want, "α = {alpha}");
    }
}

/// `cells.csv` of a stability sweep as (k, lr) → divergence rate.
fn divergence_rates(dir: &Path) -> Vec<(String, String, f64)> {
    let text = std::fs::read_to_string(dir.join("cells.csv")).unwrap_or_else(|e| panic!("{e}"));
    text.lines()
        .skip(1)
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            (f[0].to_string(), f[1].to_string(), f[4].parse().unwrap_or(f64::NAN))
        })
        .collect()
}

#[test]
fn td_stability_maps_baird_td_diverging_and_pfpe_converging() {
    let dir = scratch("stability-baird");
    let out_dir = dir.join("map");
    let out_str = out_dir.to_str().unwrap_or_default();
    let args = ["td", "stability", "--k", "1,100", "--lr", "0.01", "--seeds", "3", "--steps", "30000", "--out", out_str];
    let out = keel(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let rates = divergence_rates(&out_dir);
    assert_eq!(rates, vec![("1".into(), "0.01".into(), 1.0), ("100".into(), "0.01".into(), 0.0)]);
    let runs = std::fs::read_to_string(out_dir.join("runs.csv")).unwrap_or_default();
    assert_eq!(runs.lines().count(), 1 + 2 * 3, "{runs}");
    let png = std::fs::read(out_dir.join("stability.png")).unwrap_or_default();
    assert!(png.starts_with(b"\x89PNG"), "no heat map");
    // The same seeds give the same map.
    let again = keel(&args);
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(std::fs::read_to_string(out_dir.join("runs.csv")).unwrap_or_default(), runs);
}

#[test]
fn td_stability_of_dqn_writes_run_folders_and_resumes() {
    let dir = scratch("stability-dqn");
    let out_dir = dir.join("map");
    let out_str = out_dir.to_str().unwrap_or_default();
    let args = [
        "td", "stability", "--env", "keel/CartPole-v1", "--k", "1,50", "--lr", "0.001", "--seeds", "1",
        "--steps", "1500", "--set", "learning_starts=500", "--set", "iteration_steps=500", "--set",
        "batch_size=32", "--set", "train_frequency=1", "--out", out_str,
    ];
    let out = keel(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    for run in ["k1_lr0.001_s1", "k50_lr0.001_s1"] {
        let summary = read_json(&out_dir.join("runs").join(run).join("summary.json"));
        assert_eq!(summary["status"], "completed", "{run}");
        assert_eq!(summary["global_step"], 1500, "{run}");
    }
    let config = std::fs::read_to_string(out_dir.join("runs/k50_lr0.001_s1/config.toml")).unwrap_or_default();
    assert!(config.contains("target_network_frequency = 50") && config.contains("learning_rate = 0.001"), "{config}");
    let runs = std::fs::read_to_string(out_dir.join("runs.csv")).unwrap_or_default();
    // A second call reuses the finished runs instead of training again.
    let metrics = out_dir.join("runs/k1_lr0.001_s1/metrics.csv");
    let before = std::fs::metadata(&metrics).and_then(|m| m.modified()).ok();
    let again = keel(&args);
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(std::fs::metadata(&metrics).and_then(|m| m.modified()).ok(), before, "the finished run trained again");
    assert_eq!(std::fs::read_to_string(out_dir.join("runs.csv")).unwrap_or_default(), runs);
}

#[test]
fn td_stability_refuses_bad_input_before_running() {
    let dir = scratch("stability-bad");
    let out_dir = dir.join("map");
    let out_str = out_dir.to_str().unwrap_or_default();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--k", "0,10", "--lr", "0.01"], "--k 0"),
        (vec!["--lr", "0"], "--lr 0"),
        (vec!["--lr", "-0.1"], "--lr -0.1"),
        (vec!["--lr", "0.01", "--seeds", "0"], "--seeds 0"),
        (vec!["--lr", "0.01", "--momentum", "1"], "momentum"),
        (vec!["--lr", "0.01", "--set", "gamma=0.5"], "--set"),
        (vec!["--lr", "0.01", "--diverge-above", "nan"], "--diverge-above"),
        (vec!["--lr", "0.01", "--model", "mlp", "--expected"], "--expected"),
        (vec!["--lr", "0.01", "--model", "mlp", "--momentum", "-0.5"], "momentum"),
        (vec!["--env", "keel/CartPole-v1", "--lr", "0.01", "--model", "mlp"], "--model"),
        (vec!["--env", "keel/Nope-v0", "--lr", "0.01"], "keel/Nope-v0"),
        (vec!["--env", "keel/Pendulum-v1", "--lr", "0.01"], "Discrete"),
        (vec!["--env", "keel/CartPole-v1", "--lr", "0.01", "--set", "buffer_size=10"], "buffer_size"),
        (vec!["--env", "keel/CartPole-v1", "--lr", "0.01", "--set", "seed=3"], "--set seed"),
    ];
    for (extra, needle) in cases {
        let mut args = vec!["td", "stability", "--out", out_str];
        args.extend(extra.iter().copied());
        let out = keel(&args);
        let err = stderr(&out);
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(err.contains(needle) && !err.contains("panicked"), "{args:?}: {err}");
        assert!(!out_dir.join("runs.csv").exists(), "{args:?} wrote results");
    }
}

/// The SkillMimic-V2 curricula end to end: `keel curricula stg` builds the graph; each of the
/// walk configs (RSI only, +STF, +STF+ATS, +STF+ATS+STG) trains a tiny budget with
/// `keel train --config`; ATS writes its distribution each iteration, `keel plot --sampling` draws
/// it; `keel eval --perturb` measures recovery; bad curricula settings stop the run before it
/// trains. Needs the humanoid data (setup.sh).
#[test]
fn humanoid_curricula_train_end_to_end_and_refuse_bad_settings() {
    let dir = scratch("curricula");
    let configs = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    std::fs::create_dir_all(dir.join("runs")).unwrap_or_else(|e| panic!("{e}"));
    if !installed(Data::Humanoid, "keel/HumanoidTrack-v0", serde_json::json!({})) {
        return;
    }
    let graph = keel_in(&dir, &["curricula", "stg", "--clips", "walk,run", "--out", "runs/stg_walk_run.json"]);
    assert!(graph.status.success(), "{}", stderr(&graph));
    assert!(stdout(&graph).contains("62 frames"), "{}", stdout(&graph));
    let tiny = ["--total-timesteps", "256", "--num-envs", "2", "--set", "num_steps=128", "--quiet"];
    for name in ["walk", "walk_stf", "walk_stf_ats", "walk_stf_ats_stg"] {
        let config = configs.join(format!("ppo_humanoid_{name}.toml"));
        let run_dir = format!("runs/{name}");
        let mut args = vec!["train", "--config", config.to_str().unwrap_or_default(), "--run-dir", &run_dir];
        args.extend_from_slice(&tiny);
        let run = keel_in(&dir, &args);
        assert!(run.status.success(), "{name}: {}", stderr(&run));
        assert!(dir.join(&run_dir).join("summary.json").exists(), "{name}");
    }
    // ATS logged its frame weights each iteration; the heat map draws them.
    let log = std::fs::read_to_string(dir.join("runs/walk_stf_ats/sampling.jsonl")).unwrap_or_default();
    let first: Value = serde_json::from_str(log.lines().next().unwrap_or_default()).unwrap_or_default();
    let weights = first["distribution"]["clips"][0]["frame_weights"].as_array().cloned().unwrap_or_default();
    assert_eq!(weights.len(), 38, "{first}");
    let total: f64 = weights.iter().filter_map(Value::as_f64).sum();
    assert!((total - 1.0).abs() < 1e-9, "{total}");
    let plot = keel_in(&dir, &["plot", "runs/walk_stf_ats", "--sampling", "--out", "ats.png"]);
    assert!(plot.status.success() && dir.join("ats.png").exists(), "{}", stderr(&plot));
    // Recovery from perturbed starts.
    let eval = keel_in(&dir, &["eval", "--run", "runs/walk_stf", "--perturb", "2", "--episodes", "3"]);
    assert!(eval.status.success(), "{}", stderr(&eval));
    let report = read_json(&dir.join("runs/walk_stf/robustness_2.json"));
    assert_eq!(report["episodes"], 3, "{report}");
    assert!(report["success_rate"].as_f64().is_some_and(|r| (0.0..=1.0).contains(&r)), "{report}");
    let bad = keel_in(&dir, &["eval", "--run", "runs/walk_stf", "--perturb", "-1"]);
    assert!(!bad.status.success() && stderr(&bad).contains("--perturb"), "{}", stderr(&bad));
    // A stopped run resumes exactly, sampler included: the same metrics (but speed) and the
    // same sampling distributions as a straight run.
    let stg_config = configs.join("ppo_humanoid_walk_stf_ats_stg.toml");
    let (a, b) = straight_and_resumed(&dir, stg_config.to_str().unwrap_or_default(), &[]);
    assert_eq!(a.len(), 4, "{a:?}");
    assert_eq!(a, b, "a resumed run differs from a straight one");
    let sampling = |run: &str| std::fs::read_to_string(dir.join(run).join("sampling.jsonl")).unwrap_or_default();
    assert_eq!(sampling("runs/straight"), sampling("runs/stopped"));
    assert_eq!(sampling("runs/straight").lines().count(), 3);
    // Bad settings: a clear error naming the value, before anything is trained.
    let stg = configs.join("ppo_humanoid_walk_stf_ats_stg.toml");
    let stg = stg.to_str().unwrap_or_default();
    let refused = |extra: &[&str], expect: &[&str]| {
        let mut args = vec!["train", "--config", stg, "--run-dir", "runs/refused"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&tiny);
        let run = keel_in(&dir, &args);
        let err = stderr(&run);
        assert!(!run.status.success(), "{extra:?} accepted");
        assert!(expect.iter().all(|e| err.contains(e)), "{extra:?}: {err}");
        assert!(!dir.join("runs/refused/checkpoints").exists(), "{extra:?}: trained anyway");
        let _ = std::fs::remove_dir_all(dir.join("runs/refused"));
    };
    let other = keel_in(&dir, &["curricula", "stg", "--clips", "walk,jump", "--out", "runs/stg_walk_jump.json"]);
    assert!(other.status.success(), "{}", stderr(&other));
    refused(&["--set", "sampler.stg.file=runs/stg_walk_jump.json"], &["[walk, jump]", "[walk, run]"]);
    refused(&["--set", "sampler.ats.alpha=1.5"], &["ats.alpha", "1.5"]);
    refused(&["--set", "sampler.stf.perturb_prob=1.2"], &["stf.perturb_prob", "1.2"]);
    refused(&["--set", "sampler.stg.switch_prob=2"], &["stg.switch_prob", "2"]);
}

/// `configs/ppo_atari.toml` and `configs/dppo_atari.toml` train the Nature CNN on Breakout for a
/// few hundred steps, with the Atari frames as bytes; the networks-only checkpoint evaluates but
/// does not resume (the games cannot snapshot).
#[cfg(feature = "atari")]
#[test]
fn train_atari_with_the_nature_cnn() {
    let dir = scratch("atari");
    for name in ["ppo_atari", "dppo_atari"] {
        let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs").join(format!("{name}.toml"));
        let c = config.to_str().unwrap_or_default();
        let run = dir.join(name);
        let r = run.to_str().unwrap_or_default();
        let tiny = ["--total-timesteps", "256", "--set", "num_steps=32", "--quiet"];
        let trained = keel(&[&["train", "--config", c, "--run-dir", r], &tiny[..]].concat());
        assert!(trained.status.success(), "{name}: {}", stderr(&trained));
        let summary = read_json(&run.join("summary.json"));
        assert_eq!((summary["status"].as_str(), summary["global_step"].as_u64()), (Some("completed"), Some(256)));
        let saved = std::fs::read_to_string(run.join("config.toml")).unwrap_or_default();
        assert!(saved.contains("network = \"nature_cnn\"") && saved.contains("preset = \"cleanrl\""), "{saved}");
        let metrics = std::fs::read_to_string(run.join("metrics.csv")).unwrap_or_default();
        let header: Vec<&str> = metrics.lines().next().unwrap_or_default().split(',').collect();
        let row: Vec<&str> = metrics.lines().nth(1).unwrap_or_default().split(',').collect();
        let column = |n: &str| header.iter().position(|h| *h == n).and_then(|k| row.get(k)?.parse::<f64>().ok());
        assert!(column("surrogate_variance").is_some_and(f64::is_finite), "{metrics}");
        let kept = column("kept_fraction").unwrap_or(f64::NAN);
        assert!(if name == "dppo_atari" { kept < 1.0 } else { kept == 1.0 }, "{name}: kept {kept}");
    }
    let r = dir.join("ppo_atari");
    let r = r.to_str().unwrap_or_default();
    let eval = keel(&["eval", "--run", r, "--episodes", "1", "--max-episode-steps", "200"]);
    assert!(eval.status.success(), "{}", stderr(&eval));
    let resumed = keel(&["train", "--resume", r, "--total-timesteps", "512", "--quiet"]);
    assert!(!resumed.status.success() && stderr(&resumed).contains("cannot resume"), "{}", stderr(&resumed));
    // The network needs images: on CartPole it is a clear error.
    let cartpole = dir.join("cartpole");
    let bad = keel(&[
        "train",
        "--env",
        "keel/CartPole-v1",
        "--set",
        "network=nature_cnn",
        "--run-dir",
        cartpole.to_str().unwrap_or_default(),
    ]);
    assert!(!bad.status.success() && stderr(&bad).contains("(C, H, W)"), "{}", stderr(&bad));
}

/// The history observation and its 1-D CNN encoder end to end: `configs/ppo_humanoid_walk_history.toml`
/// (encoder trained with the policy) and `..._pretrained.toml` (pretrained on the clips, frozen)
/// train two iterations each and evaluate; a stopped run resumes to the same metrics as a
/// straight one; an encoder that does not fit the env's history is refused before training.
/// Needs the humanoid data (setup.sh).
#[test]
fn humanoid_history_encoder_trains_resumes_and_refuses_a_mismatch() {
    let dir = scratch("history");
    let configs = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    let trained = configs.join("ppo_humanoid_walk_history.toml");
    let trained = trained.to_str().unwrap_or_default();
    let pretrained = configs.join("ppo_humanoid_walk_history_pretrained.toml");
    let pretrained = pretrained.to_str().unwrap_or_default();
    let tiny = ["--total-timesteps", "512", "--num-envs", "2", "--set", "num_steps=128", "--quiet"];
    let fast = ["--set", "history_encoder.pretrain.epochs=5"];
    let mut args = vec!["train", "--config", trained, "--run-dir", "runs/trained"];
    args.extend_from_slice(&tiny);
    if !installed(Data::Humanoid, "keel/HumanoidTrack-v0", serde_json::json!({})) {
        return;
    }
    let run = keel_in(&dir, &args);
    assert!(run.status.success(), "{}", stderr(&run));
    let mut args = vec!["train", "--config", pretrained, "--run-dir", "runs/pretrained"];
    args.extend_from_slice(&tiny);
    args.extend_from_slice(&fast);
    let run = keel_in(&dir, &args);
    assert!(run.status.success(), "{}", stderr(&run));
    for name in ["trained", "pretrained"] {
        let summary = read_json(&dir.join("runs").join(name).join("summary.json"));
        assert_eq!(summary["global_step"], 512, "{name}: {summary}");
        let eval = keel_in(&dir, &["eval", "--run", &format!("runs/{name}"), "--episodes", "1"]);
        assert!(eval.status.success(), "{name}: {}", stderr(&eval));
    }
    // Straight and stopped-then-resumed, each in its own process: the same metrics (but speed).
    for (config, extra) in [(trained, &[][..]), (pretrained, &fast[..])] {
        let (a, b) = straight_and_resumed(&dir, config, extra);
        assert_eq!(a.len(), 4, "{a:?}");
        assert_eq!(a, b, "{config}: a resumed run differs from a straight one");
    }
    // An encoder whose frames are not the env's history: refused, naming both, before training.
    let mut args = vec!["train", "--config", trained, "--run-dir", "runs/refused", "--set", "env_config.history_len=4"];
    args.extend_from_slice(&tiny);
    let run = keel_in(&dir, &args);
    let err = stderr(&run);
    assert!(!run.status.success() && err.contains("history_encoder.frames") && err.contains("history_len = 4"), "{err}");
    assert!(!dir.join("runs/refused/checkpoints").exists());
}

//! `keel train`: stop and resume, run folders, configs, samplers, checkpoints (NaN or damaged),
//! and the Atari networks.

use std::path::Path;
use std::process::Command;

use crate::common::{assert_clear_errors, assert_refused_up_front, keel, read_json, scratch, stderr, stdout};

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

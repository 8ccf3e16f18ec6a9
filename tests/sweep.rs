//! `keel sweep` and `keel report` run as a user runs them: the smoke sweep of the test command,
//! killed and resumed, then reported; bad specs and folders give clear errors.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn keel(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(args)
        .env("KEEL_TORCH_THREADS", "1")
        .output()
        .unwrap_or_else(|e| panic!("cannot run keel: {e}"))
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("keel-sweep-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    dir
}

fn status(run: &Path) -> Option<String> {
    let text = std::fs::read_to_string(run.join("summary.json")).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    v["status"].as_str().map(str::to_string)
}

fn completed(out: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(out.join("runs"))
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .filter(|p| status(p).as_deref() == Some("completed"))
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    names.sort();
    names
}

#[test]
fn smoke_sweep_resumes_after_a_kill_and_reports() {
    let out = scratch("smoke");
    let spec = Path::new(ROOT).join("configs/sweeps/smoke.toml");
    let out_arg = out.display().to_string();
    // First attempt, in its own process group, killed (with its runs) once a run has finished.
    let mut child = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(["sweep", &spec.display().to_string(), "--out", &out_arg])
        .env("KEEL_TORCH_THREADS", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let start = Instant::now();
    while completed(&out).is_empty() && start.elapsed() < Duration::from_secs(300) {
        if child.try_wait().ok().flatten().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", child.id())]).status();
    let _ = child.wait();
    let before = completed(&out);
    assert!(!before.is_empty() && before.len() < 12, "killed too late or too early: {before:?}");
    let first = &before[0];
    let stamp = std::fs::metadata(out.join("runs").join(first).join("summary.json")).and_then(|m| m.modified()).ok();

    let again = keel(&["sweep", &spec.display().to_string(), "--out", &out_arg]);
    let log = text(&again);
    assert!(again.status.success(), "{log}");
    assert!(log.contains(&format!("12 runs (2 envs × 2 algorithms × 1 variants × 3 seeds): {} done", before.len())), "{log}");
    assert_eq!(completed(&out).len(), 12, "{log}");
    // Completed runs were skipped, not run again.
    let after = std::fs::metadata(out.join("runs").join(first).join("summary.json")).and_then(|m| m.modified()).ok();
    assert_eq!(stamp, after);
    assert!(log.contains("ETA"), "{log}");
    // Each run is an ordinary run folder.
    let run = out.join("runs").join("toy_ppo_s0");
    for file in ["config.toml", "metrics.csv", "summary.json", "learning_curve.png"] {
        assert!(run.join(file).exists(), "{file} missing in {}", run.display());
    }

    let report = keel(&["report", &out_arg, "--reps", "500"]);
    let log = text(&report);
    assert!(report.status.success(), "{log}");
    let md = std::fs::read_to_string(out.join("report.md")).unwrap_or_default();
    for needle in ["| toy | ppo | 3 |", "| cartpole | dppo | 3 |", "IQM", "optimality gap", "| ppo | dppo |", "/ (R_lq", "diverged episodes", "worst seed"] {
        assert!(md.contains(needle), "report.md lacks {needle:?}:\n{md}");
    }
    for png in ["performance_profile.png", "iqm_vs_steps.png"] {
        let bytes = std::fs::read(out.join(png)).unwrap_or_default();
        assert!(bytes.starts_with(b"\x89PNG"), "{png}");
    }
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn bad_specs_and_folders_are_clear_errors() {
    let dir = scratch("bad");
    let base = "seeds = [0]\ntotal_timesteps = 2048\n";
    let cases = [
        ("algorithms = [\"sac\"]\n[[envs]]\nid = \"keel/CartPole-v1\"\n", "unknown algorithm `sac`"),
        ("algorithms = [\"ppo\"]\n[[envs]]\nid = \"keel/Nope-v0\"\n", "keel/Nope-v0"),
        ("algorithms = [\"ppo\"]\nseedz = 3\n[[envs]]\nid = \"keel/CartPole-v1\"\n", "seedz"),
        ("algorithms = [\"ppo\"]\n[[envs]]\nid = \"keel/CartPole-v1\"\nconfig = { gravty = 9.8 }\n", "gravty"),
        ("algorithms = [\"ppo\"]\nset = { lerning_rate = 0.1 }\n[[envs]]\nid = \"keel/CartPole-v1\"\n", "lerning_rate"),
        ("algorithms = []\n[[envs]]\nid = \"keel/CartPole-v1\"\n", "at least one"),
    ];
    for (i, (spec, needle)) in cases.iter().enumerate() {
        let path = dir.join(format!("bad{i}.toml"));
        std::fs::write(&path, format!("{base}{spec}")).unwrap_or_else(|e| panic!("{e}"));
        let out = keel(&["sweep", &path.display().to_string(), "--out", &dir.join(format!("out{i}")).display().to_string()]);
        let log = text(&out);
        assert!(!out.status.success() && log.contains(needle) && !log.contains("panicked"), "{spec}: {log}");
        assert!(!dir.join(format!("out{i}")).join("runs").exists(), "{spec}: runs started");
    }
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap_or_else(|e| panic!("{e}"));
    let out = keel(&["report", &empty.display().to_string()]);
    let log = text(&out);
    assert!(!out.status.success() && log.contains("holds no sweep"), "{log}");
    // A sweep whose runs never finished.
    let path = dir.join("ok.toml");
    std::fs::write(&path, format!("{base}algorithms = [\"ppo\"]\n[[envs]]\nid = \"keel/CartPole-v1\"\n")).unwrap_or_else(|e| panic!("{e}"));
    let listed = keel(&["sweep", &path.display().to_string(), "--out", &empty.display().to_string(), "--dry-run"]);
    assert!(listed.status.success(), "{}", text(&listed));
    let none = dir.join("none");
    std::fs::create_dir_all(none.join("runs")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(none.join("sweep.json"), r#"{"spec": {"algorithms": ["ppo"], "envs": [{"id": "keel/CartPole-v1"}], "seeds": [0]}, "trials": []}"#)
        .unwrap_or_else(|e| panic!("{e}"));
    let out = keel(&["report", &none.display().to_string()]);
    let log = text(&out);
    assert!(!out.status.success() && log.contains("has finished"), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

//! `keel sweep --ray`: the smoke sweep through Ray Tune on a two-node local cluster
//! (`ray.cluster_utils.Cluster`) lands trials on both nodes and gives the same results as the
//! local sweep; with no cluster to reach it says so at once.
//!
//! Needs the Ray venv of scripts/setup.sh; without it these tests skip, unless
//! KEEL_REQUIRE_RAY=1 (the test command sets it), when a missing Ray is a failure.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn ray_python() -> Option<PathBuf> {
    let python = match std::env::var_os("KEEL_RAY_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => {
            let cache = std::env::var_os("KEEL_CACHE")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/keel")))?;
            cache.join("ray-venv/bin/python")
        }
    };
    if python.exists() {
        return Some(python);
    }
    assert!(std::env::var("KEEL_REQUIRE_RAY").as_deref() != Ok("1"), "Ray venv missing: {}", python.display());
    eprintln!("skipped: no Ray venv at {} (run scripts/setup.sh)", python.display());
    None
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("keel-ray-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    dir
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn summaries(out: &Path) -> Vec<(String, Value)> {
    let mut all: Vec<(String, Value)> = std::fs::read_dir(out.join("runs"))
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|p| {
            let text = std::fs::read_to_string(p.join("summary.json")).ok()?;
            Some((p.file_name()?.to_string_lossy().into_owned(), serde_json::from_str(&text).ok()?))
        })
        .collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all
}

#[test]
fn two_node_cluster_runs_the_smoke_sweep_like_a_local_one() {
    let Some(python) = ray_python() else { return };
    let dir = scratch("cluster");
    let spec = Path::new(ROOT).join("configs/sweeps/smoke.toml").display().to_string();
    let (local, remote) = (dir.join("local"), dir.join("ray"));
    let keel = env!("CARGO_BIN_EXE_keel");
    let out = Command::new(keel)
        .args(["sweep", &spec, "--out", &local.display().to_string()])
        .env("KEEL_TORCH_THREADS", "1")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(out.status.success(), "{}", text(&out));
    let out = Command::new(&python)
        .arg(Path::new(ROOT).join("scripts/ray_cluster.py"))
        .args(["--nodes", "2", "--cpus-per-node", "1", "--", keel, "sweep", &spec])
        .args(["--out", &remote.display().to_string(), "--ray", "{address}"])
        .env("KEEL_RAY_PYTHON", &python)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    let nodes: std::collections::BTreeSet<String> = std::fs::read_dir(remote.join("ray/nodes"))
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .filter_map(|t| serde_json::from_str::<Value>(&t).ok())
        .filter_map(|v| v["node_id"].as_str().map(str::to_string))
        .collect();
    assert_eq!(nodes.len(), 2, "trials ran on {nodes:?}\n{log}");
    let (a, b) = (summaries(&local), summaries(&remote));
    assert_eq!(a.len(), 12);
    assert_eq!(a.iter().map(|x| &x.0).collect::<Vec<_>>(), b.iter().map(|x| &x.0).collect::<Vec<_>>());
    for ((name, x), (_, y)) in a.iter().zip(&b) {
        assert_eq!(y["status"], "completed", "{name}");
        for key in ["global_step", "episodes", "final_return_mean", "final_return_std"] {
            assert_eq!(x[key], y[key], "{name}: {key}");
        }
    }
    let report = Command::new(keel).args(["report", &remote.display().to_string(), "--reps", "200"]).output();
    assert!(report.is_ok_and(|o| o.status.success()));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn no_reachable_cluster_is_a_clear_error_without_a_hang() {
    let Some(python) = ray_python() else { return };
    let dir = scratch("none");
    let spec = Path::new(ROOT).join("configs/sweeps/smoke.toml").display().to_string();
    for (address, needle) in [("127.0.0.1:9", "no Ray cluster answers at 127.0.0.1:9"), ("auto", "no Ray cluster runs on this machine")] {
        let start = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_keel"))
            .args(["sweep", &spec, "--out", &dir.join("out").display().to_string(), "--ray", address])
            .env("KEEL_RAY_PYTHON", &python)
            .env_remove("RAY_ADDRESS")
            .env("TMPDIR", &dir)
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        let log = text(&out);
        assert!(!out.status.success() && log.contains(needle), "{address}: {log}");
        assert!(start.elapsed() < Duration::from_secs(60), "{address}: took {:?}", start.elapsed());
        assert!(!log.contains("Traceback") && !log.contains("panicked"), "{log}");
        // One `error:` line: the driver's, not repeated by `keel`.
        assert_eq!(String::from_utf8_lossy(&out.stderr).matches("error:").count(), 1, "{address}: {log}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

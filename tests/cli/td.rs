//! `keel td`: the critical periods and the stability maps (linear TD and DQN) with their refusals.

use std::path::Path;

use crate::common::{keel, read_json, scratch, stderr, stdout};

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
    let args =
        ["td", "stability", "--k", "1,100", "--lr", "0.01", "--seeds", "3", "--steps", "30000", "--out", out_str];
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
        "td",
        "stability",
        "--env",
        "keel/CartPole-v1",
        "--k",
        "1,50",
        "--lr",
        "0.001",
        "--seeds",
        "1",
        "--steps",
        "1500",
        "--set",
        "learning_starts=500",
        "--set",
        "iteration_steps=500",
        "--set",
        "batch_size=32",
        "--set",
        "train_frequency=1",
        "--out",
        out_str,
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

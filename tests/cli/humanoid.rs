//! The humanoid end to end: the SkillMimic-V2 curricula (`keel curricula`, `keel train`, `keel
//! plot --sampling`, `keel eval --perturb`) and the history encoder. Need the humanoid data
//! (setup.sh).

use std::path::Path;

use keel_envs::testing::Data;
use serde_json::Value;

use crate::common::{installed, keel_in, read_json, scratch, stderr, stdout, straight_and_resumed};

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
    if !installed(Data::Humanoid, "keel/HumanoidTrack-v1", serde_json::json!({})) {
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
    if !installed(Data::Humanoid, "keel/HumanoidTrack-v1", serde_json::json!({})) {
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
    assert!(
        !run.status.success() && err.contains("history_encoder.frames") && err.contains("history_len = 4"),
        "{err}"
    );
    assert!(!dir.join("runs/refused/checkpoints").exists());
}

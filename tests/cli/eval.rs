//! `keel eval`: the episode cap and its report.

use crate::common::{keel, read_json, scratch, stderr, stdout};

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

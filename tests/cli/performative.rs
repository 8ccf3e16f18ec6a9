//! `keel performative`: the paper's first rounds, worker-count independence, figure 2 and its
//! refusals.

use serde_json::Value;

use crate::common::{assert_clear_errors, keel, read_json, scratch, stderr, stdout};

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

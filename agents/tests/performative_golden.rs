//! Golden test: the first rounds of the paper's own code, and the qualitative shapes of its
//! Fig. 2. Short runs: the whole file takes a few seconds.
//!
//! The reference rounds are in `tests/fixtures/performative_paper_rounds.json`, written by
//! `python3 scripts/golden_performative_rounds.py`, which runs the paper's code (its ICML 2023
//! repository at 278db45, unmodified; cvxpy 1.9.3 and SCS 3.3.1 at eps 1e-5, installed from PyPI
//! into their own venv). Keel solves the same programs with Clarabel, an interior-point method,
//! where the paper used SCS: they agree to about 1e-4 relative while the change between rounds is
//! well above SCS's tolerance (the first five RPO rounds, the first four RGA rounds).

use std::path::PathBuf;

use keel_agents::performative::{Method, RepeatedConfig, RunRecord, run};
use keel_envs::performative::PerformativeGridConfig;
use serde::Deserialize;

/// One run of the paper's code, as the fixture holds it.
#[derive(Deserialize)]
struct PaperRun {
    method: String,
    lambda: f64,
    beta: f64,
    eta: Option<f64>,
    distance: Vec<f64>,
    #[serde(default)]
    gap: Vec<f64>,
}

#[derive(Deserialize)]
struct Fixture {
    runs: Vec<PaperRun>,
}

/// The paper's run of `method` (`rpo` or `rga`).
fn paper(method: &str) -> PaperRun {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/performative_paper_rounds.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let fixture: Fixture = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    fixture.runs.into_iter().find(|r| r.method == method).unwrap_or_else(|| panic!("no {method} run in the fixture"))
}

fn exact(method: Method, lambda: f64, beta: f64, rounds: usize) -> RunRecord {
    let config = RepeatedConfig {
        method,
        lambda,
        rounds,
        env: PerformativeGridConfig { beta, ..Default::default() },
        ..Default::default()
    };
    run(&config, &mut |_| {}).unwrap_or_else(|e| panic!("{e}"))
}

fn assert_relative(got: &[f64], want: &[f64], tolerance: f64) {
    for (t, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(((g - w) / w).abs() < tolerance, "round {t}: got {g:e}, the paper's code gave {w:e}\n{got:?}");
    }
}

#[test]
fn rpo_first_rounds_match_the_papers_code() {
    let reference = paper("rpo");
    assert!(reference.distance.len() >= 5, "the fixture holds {} rounds", reference.distance.len());
    let record = exact(Method::Rpo, reference.lambda, reference.beta, 5);
    assert_relative(&record.distance, &reference.distance[..5], 1e-3);
}

#[test]
fn rga_first_rounds_match_the_papers_code() {
    let reference = paper("rga");
    assert!(reference.distance.len() >= 4, "the fixture holds {} rounds", reference.distance.len());
    let eta = reference.eta.unwrap_or_else(|| panic!("the RGA run has no eta"));
    let record = exact(Method::Rga { eta }, reference.lambda, reference.beta, 4);
    assert_relative(&record.distance, &reference.distance[..4], 1e-3);
    // With ηλ = 1 the step lands on RPO's optimum: the gap is solver noise, in the paper's code
    // (SCS) as in Keel's (Clarabel).
    assert!(record.gap.iter().chain(&reference.gap).all(|&g| g < 1e-6), "{:?} {:?}", record.gap, reference.gap);
    let rpo = exact(Method::Rpo, reference.lambda, reference.beta, 4);
    assert_relative(&record.distance, &rpo.distance, 1e-5);
}

#[test]
fn smoother_responses_converge_faster() {
    let smooth = exact(Method::Rpo, 1.0, 0.1, 4);
    let sharp = exact(Method::Rpo, 1.0, 10.0, 4);
    assert!(smooth.distance[3] < 1e-3 * sharp.distance[3], "{:?} vs {:?}", smooth.distance, sharp.distance);
}

#[test]
fn too_large_a_step_does_not_converge() {
    let unstable = exact(Method::Rga { eta: 2.0 }, 1.0, 5.0, 10);
    assert!(unstable.distance.iter().all(|&x| x > 0.5), "{:?}", unstable.distance);
    assert!(unstable.gap[9] > 0.1, "{:?}", unstable.gap);
}

#[test]
fn more_samples_lower_the_plateau() {
    let plateau = |samples: usize| {
        let config = RepeatedConfig {
            rounds: 8,
            samples: Some(samples),
            seed: 1,
            env: PerformativeGridConfig { beta: 5.0, ..Default::default() },
            ..Default::default()
        };
        let record = run(&config, &mut |_| {}).unwrap_or_else(|e| panic!("{e}"));
        record.distance[4..].iter().sum::<f64>() / 4.0
    };
    let (few, many) = (plateau(20), plateau(500));
    assert!(few > 1.5 * many, "m = 20: {few}, m = 500: {many}");
}

#[test]
fn the_sharpest_response_converges_under_the_papers_zero_rule() {
    // β = 200 has genuine state occupancies of 1e-10: treating them as empty (uniform policy)
    // locks the run into a 2-cycle; the paper's rule (uniform only at exactly 0) converges.
    let converged = exact(Method::Rpo, 1.0, 200.0, 50);
    assert!(converged.distance[49] < 1e-8, "{:?}", &converged.distance[40..]);
    let config = RepeatedConfig {
        rounds: 30,
        min_state_occupancy: 1e-9,
        env: PerformativeGridConfig { beta: 200.0, ..Default::default() },
        ..Default::default()
    };
    let cycling = run(&config, &mut |_| {}).unwrap_or_else(|e| panic!("{e}"));
    assert!(cycling.distance[29] > 1e-2, "{:?}", &cycling.distance[20..]);
}

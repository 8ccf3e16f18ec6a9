//! Golden test: the first rounds of the paper's own code (ICML 2023 repository at 278db45,
//! unmodified, cvxpy 1.9.3 + SCS 3.3.1 at eps 1e-5), and the qualitative shapes of its Fig. 2.
//! Short runs: the whole file takes a few seconds.

use keel_agents::performative::{Method, RepeatedConfig, RunRecord, run};
use keel_envs::performative::PerformativeGridConfig;

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
    let record = exact(Method::Rpo, 1.0, 10.0, 5);
    assert_relative(&record.distance, &[6.960909e-01, 1.596954e-01, 2.826176e-02, 7.086800e-03, 2.861003e-03], 1e-3);
}

#[test]
fn rga_first_rounds_match_the_papers_code() {
    let record = exact(Method::Rga { eta: 1.0 }, 1.0, 5.0, 4);
    assert_relative(&record.distance, &[7.296990e-01, 1.185850e-01, 1.150812e-02, 6.785179e-04], 1e-3);
    // With ηλ = 1 the step lands on RPO's optimum: the gap is solver noise.
    assert!(record.gap.iter().all(|&g| g < 1e-6), "{:?}", record.gap);
    let rpo = exact(Method::Rpo, 1.0, 5.0, 4);
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

//! Linear TD / PFPE on Baird's star against the reference figures of the research notes
//! (agents.md §3.3, computed there by an independent f64 implementation).

// A failed step is a failed test: unwrap says where.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use keel_agents::td::{self, LinearProblem, TdConfig};
use keel_envs::baird::BairdConfig;

fn baird() -> LinearProblem {
    LinearProblem::baird(&BairdConfig::default())
}

fn expected(k: u64, steps: u64) -> td::TdRun {
    let config = TdConfig { target_period: k, alpha: 0.01, steps, expected: true, ..TdConfig::default() };
    td::run_expected(&config, &BairdConfig::default()).unwrap()
}

#[test]
fn expected_td_diverges_and_pfpe_with_k_100_converges() {
    let td = expected(1, 100_000);
    let at = td.exceeded_1e20_at.expect("TD never exceeded 1e20");
    assert!(at <= 100_000, "{at}");
    let pfpe = expected(100, 100_000);
    assert_eq!(pfpe.steps_done, 100_000);
    assert!(pfpe.final_norm < 1e-5, "k = 100: ‖Φw‖ = {:e}", pfpe.final_norm);
    // §3.3's trajectory at 10⁵ updates: TD 9.5e105, k = 100 4.0e-7.
    assert!((td.final_norm / 9.5e105 - 1.0).abs() < 0.01, "TD: {:e}", td.final_norm);
    assert!((pfpe.final_norm / 4.0e-7 - 1.0).abs() < 0.02, "k = 100: {:e}", pfpe.final_norm);
}

#[test]
fn spectral_radii_agree_with_the_reference_to_four_decimals() {
    let problem = baird();
    // Per-step ρ of expected TD (§3.3 table).
    for (alpha, rho) in [(0.001, 1.000239), (0.005, 1.001196), (0.01, 1.002393), (0.05, 1.011963), (0.1, 1.023925), (0.2, 1.047850)] {
        let got = problem.period_radius(alpha, 0.0, 1);
        assert!((got - rho).abs() < 5e-5, "α = {alpha}: ρ = {got}, reference {rho}");
    }
    // ρ(M_k) at α = 0.01 (§3.3).
    for (k, rho) in [(1, 1.0024), (10, 1.0189), (50, 1.0161), (100, 0.9798), (1000, 0.9898)] {
        let got = problem.period_radius(0.01, 0.0, k);
        assert!((got - rho).abs() < 5e-5, "k = {k}: ρ(M_k) = {got}, reference {rho}");
    }
    // k → ∞: the FPE map γΣ⁺Σ' on the value subspace has ρ = γ.
    assert!((problem.period_radius(0.01, 0.0, 20_000) - 0.99).abs() < 5e-5);
}

#[test]
fn critical_periods_match_the_reference() {
    let problem = baird();
    for (alpha, k) in [(0.001, 766), (0.005, 154), (0.01, 77), (0.05, 16), (0.1, 9), (0.2, 5)] {
        assert_eq!(td::critical_period(&problem, alpha, 0.0, 10_000).unwrap(), Some(k), "α = {alpha}");
    }
}

#[test]
fn sampled_td_explodes_and_pfpe_stays_bounded_over_five_seeds() {
    for seed in 0..5 {
        let run = |k| {
            let config = TdConfig { target_period: k, alpha: 0.01, steps: 20_000, seed, ..TdConfig::default() };
            td::run_sampled(&config, &BairdConfig::default()).unwrap().final_norm
        };
        let (td, pfpe) = (run(1), run(100));
        assert!(td > 1e15, "seed {seed}: sampled TD ‖Φw‖ = {td:e}");
        assert!(pfpe < 50.0, "seed {seed}: sampled k = 100 ‖Φw‖ = {pfpe:e}");
    }
}

#[test]
fn bad_input_is_refused_before_running() {
    let problem = baird();
    for alpha in [0.0, -0.01, f64::NAN] {
        let err = td::critical_period(&problem, alpha, 0.0, 10).unwrap_err().to_string();
        assert!(err.contains("alpha"), "{err}");
    }
    let k0 = TdConfig { target_period: 0, ..TdConfig::default() };
    let err = td::run_sampled(&k0, &BairdConfig::default()).unwrap_err().to_string();
    assert!(err.contains("target_period"), "{err}");
}

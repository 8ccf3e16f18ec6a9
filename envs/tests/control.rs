//! Baseline controllers through the env API: LQR's Riccati solution is checked (residual,
//! closed-loop stability), it beats doing nothing, and designs that cannot exist are clear errors.

use keel_envs::baselines::{Controller, Lqr, linear_model, run_episode};
use keel_envs::{EnvError, make};
use keel_envs::testing::Data;
use serde_json::{Map, Value, json};

fn config(pairs: &[(&str, Value)]) -> Map<String, Value> {
    pairs.iter().map(|(k, v)| ((*k).to_string(), v.clone())).collect()
}

/// Mean episodic cost of `controller` over 3 seeded episodes, or `None` without the env's data.
fn mean_cost(id: &str, overrides: &Map<String, Value>, controller: &str) -> Option<f64> {
    let design = Controller::design(controller, id, overrides);
    if Data::Controlgym.missing(id, &design) {
        return None;
    }
    let design = design.unwrap_or_else(|e| panic!("{id} {controller}: {e}"));
    let mut env = make(id, overrides).unwrap_or_else(|e| panic!("{id}: {e}"));
    let costs: Vec<f64> = (0..3)
        .map(|seed| run_episode(env.as_mut(), &design, seed, u64::MAX).unwrap_or_else(|e| panic!("{id}: {e}")).cost)
        .collect();
    Some(costs.iter().sum::<f64>() / 3.0)
}

fn check_lqr(id: &str, overrides: Map<String, Value>) {
    let model = linear_model(id, &overrides);
    if Data::Controlgym.missing(id, &model) {
        return;
    }
    let model = model.unwrap_or_else(|e| panic!("{id}: {e}"));
    let lqr = Lqr::new(&model).unwrap_or_else(|e| panic!("{id}: {e}"));
    let riccati = &lqr.riccati;
    eprintln!(
        "{id} {overrides:?}: residual {:.1e}, closed-loop radius {:.4}",
        riccati.residual, riccati.spectral_radius
    );
    assert!(riccati.residual < 1e-8, "{id}: residual {}", riccati.residual);
    assert!(riccati.spectral_radius < 1.0);
    // Recompute the residual here from P alone.
    let (a, b, q, r, s, p) = (&model.a, &model.b, &model.q, &model.r, &model.s, &riccati.p);
    let gram = r + b.transpose() * p * b;
    let cross = b.transpose() * p * a + s.transpose();
    let solved = gram.lu().solve(&cross).unwrap_or_else(|| panic!("{id}: singular"));
    let image = a.transpose() * p * a - cross.transpose() * solved + q;
    let residual = (&image - p).norm() / p.norm().max(1.0);
    assert!(residual < 1e-8, "{id}: recomputed residual {residual}");
    let lqr_cost = mean_cost(id, &overrides, "lqr").unwrap_or(f64::NAN);
    let zero_cost = mean_cost(id, &overrides, "zero").unwrap_or(f64::NAN);
    eprintln!("{id}: mean cost LQR {lqr_cost:.4}, zero {zero_cost:.4}");
    assert!(lqr_cost.is_finite() && lqr_cost < zero_cost, "{id}: LQR {lqr_cost} vs zero {zero_cost}");
}

#[test]
fn lqr_on_convection_diffusion_reaction() {
    check_lqr("keel/ConvectionDiffusionReaction-v0", Map::new());
}

#[test]
fn lqr_on_he1() {
    check_lqr("keel/Linear-v0", config(&[("system", json!("he1"))]));
}

#[test]
fn lqr_on_toy() {
    check_lqr("keel/Linear-v0", config(&[("system", json!("toy"))]));
}

#[test]
fn lqg_runs_on_he1_and_on_a_noisy_pde() {
    let he1 = config(&[("system", json!("he1"))]);
    if let Some(cost) = mean_cost("keel/Linear-v0", &he1, "lqg") {
        assert!(cost.is_finite(), "he1 LQG cost {cost}");
    }
    let cdr = config(&[("process_noise_cov", json!(1e-4)), ("n_state", json!(64))]);
    let lqg = mean_cost("keel/ConvectionDiffusionReaction-v0", &cdr, "lqg").unwrap_or(f64::NAN);
    let zero = mean_cost("keel/ConvectionDiffusionReaction-v0", &cdr, "zero").unwrap_or(f64::NAN);
    assert!(lqg.is_finite() && lqg < zero, "LQG {lqg} vs zero {zero}");
}

#[test]
fn impossible_designs_are_errors_naming_the_cause() {
    // Schrödinger's unactuated modes stay on the unit circle: no stabilising solution.
    let err = Controller::design("lqr", "keel/Schrodinger-v0", &config(&[("n_state", json!(64))])).err();
    assert!(matches!(&err, Some(EnvError::Control(m)) if m.contains("stabilis")), "{err:?}");
    // Wave at its default size: every actuator is 10 of the 100 points wide, so the undamped
    // modes 10, 20, 30, 40, 50 (where a 10-point top-hat has no Fourier content) cannot be
    // moved and stay on the unit circle. (controlgym's scipy call returns a gain here anyway.)
    let err = Controller::design("lqr", "keel/Wave-v0", &Map::new()).err();
    assert!(matches!(&err, Some(EnvError::Control(m)) if m.contains("stabilis")), "{err:?}");
    // LQG without sensor noise.
    let err =
        Controller::design("lqg", "keel/ConvectionDiffusionReaction-v0", &config(&[("sensor_noise_cov", json!(0))]))
            .err();
    assert!(matches!(&err, Some(EnvError::Control(m)) if m.contains("sensor noise")), "{err:?}");
    // No linear model.
    let err = Controller::design("lqr", "keel/Burgers-v0", &Map::new()).err();
    assert!(matches!(&err, Some(EnvError::Control(m)) if m.contains("no linear model")), "{err:?}");
    let err = Controller::design("pid", "keel/Wave-v0", &Map::new()).err();
    assert!(matches!(&err, Some(EnvError::Control(m)) if m.contains("unknown controller")), "{err:?}");
}

#[test]
fn bad_configs_are_rejected_naming_the_field() {
    let cases: Vec<(&str, Map<String, Value>, &str)> = vec![
        ("keel/Burgers-v0", config(&[("n_state", json!(255))]), "n_state"),
        ("keel/Burgers-v0", config(&[("control_sup_width", json!(0.2))]), "control_sup_width"),
        ("keel/Wave-v0", config(&[("n_action", json!(20)), ("control_sup_width", json!(0.1))]), "control_sup_width"),
        ("keel/Fisher-v0", config(&[("process_noise_cov", json!(-1.0))]), "process_noise_cov"),
        ("keel/KuramotoSivashinsky-v0", config(&[("sensor_noise_cov", json!(-0.5))]), "sensor_noise_cov"),
        ("keel/KortewegDeVries-v0", config(&[("integration_time", json!(3e-5))]), "integration_time"),
        ("keel/Wave-v0", config(&[("integration_time", json!(0.01))]), "integration_time"),
        ("keel/Linear-v0", config(&[("system", json!("he9"))]), "system"),
        ("keel/Linear-v0", config(&[("noise_cov", json!(-0.1))]), "noise_cov"),
    ];
    for (id, overrides, field) in cases {
        match make(id, &overrides) {
            Err(EnvError::InvalidField { field: got, message, .. }) => {
                assert_eq!(got, field, "{id} {overrides:?}: {message}");
            }
            Err(other) => panic!("{id} {overrides:?}: expected an invalid `{field}`, got {other}"),
            Ok(_) => panic!("{id} {overrides:?}: accepted"),
        }
    }
}

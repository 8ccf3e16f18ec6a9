//! `preset = "benchmark"` on the controlgym envs: finite action bounds and a divergence limit
//! derived from the system; divergence ends the episode, is flagged in the `diverged` extra and
//! never pays; the default stays controlgym's (unbounded).

use keel_envs::baselines::{Controller, run_episode};
use keel_envs::space::{Action, Space};
use keel_envs::testing::Data;
use keel_envs::{Env, ResetOptions, make};
use serde_json::{Map, Value, json};

const PDES: [&str; 10] = [
    "keel/AllenCahn-v0",
    "keel/Burgers-v0",
    "keel/CahnHilliard-v0",
    "keel/ConvectionDiffusionReaction-v0",
    "keel/Fisher-v0",
    "keel/GinzburgLandau-v0",
    "keel/KortewegDeVries-v0",
    "keel/KuramotoSivashinsky-v0",
    "keel/Schrodinger-v0",
    "keel/Wave-v0",
];

fn config(pairs: &[(&str, Value)]) -> Map<String, Value> {
    pairs.iter().map(|(k, v)| ((*k).to_string(), v.clone())).collect()
}

fn action_bound(env: &dyn Env) -> f64 {
    match &env.spec().action_space {
        Space::Box(b) => b.high.iter().fold(f64::NEG_INFINITY, |m, &h| m.max(h)),
        other => panic!("{other:?}"),
    }
}

/// `env`, or `None` where the controlgym data is not installed (never under the test command).
fn make_or_skip(id: &str, overrides: &Map<String, Value>) -> Option<Box<dyn Env>> {
    let env = make(id, overrides);
    if Data::Controlgym.missing(id, &env) { None } else { Some(env.unwrap_or_else(|e| panic!("{id}: {e}"))) }
}

/// Plays constant actions `value` (clipped by the env) for a whole episode: (return, steps,
/// terminated, diverged extra at the end).
fn constant_episode(env: &mut dyn Env, value: f64) -> (f64, u64, bool, f64) {
    let spec = env.spec().clone();
    let mut obs = spec.obs_buffer(1);
    env.reset(Some(3), &ResetOptions::default(), obs.as_mut()).unwrap_or_else(|e| panic!("{e}"));
    let action = vec![value; spec.action_len()];
    let mut extras = vec![0.0; spec.extras.len()];
    let (mut ret, mut steps) = (0.0, 0);
    loop {
        let step = env.step(Action::Float64(&action), obs.as_mut()).unwrap_or_else(|e| panic!("{}: {e}", spec.id));
        ret += step.reward;
        steps += 1;
        env.write_extras(&mut extras);
        assert!(step.reward.is_finite(), "{}: reward {} at step {steps}", spec.id, step.reward);
        if step.terminated || step.truncated || steps >= spec.max_episode_steps.unwrap_or(1000) {
            return (ret, steps, step.terminated, extras[3]);
        }
    }
}

#[test]
fn every_control_env_has_finite_bounds_under_the_preset_and_none_by_default() {
    let benchmark = config(&[("preset", json!("benchmark"))]);
    for id in PDES.iter().copied().chain(["keel/Linear-v0"]) {
        let Some(default) = make_or_skip(id, &Map::new()) else { continue };
        assert_eq!(action_bound(default.as_ref()), f64::INFINITY, "{id}");
        let Some(mut env) = make_or_skip(id, &benchmark) else { continue };
        let bound = action_bound(env.as_ref());
        assert!(bound.is_finite() && bound > 0.0, "{id}: {bound}");
        assert_eq!(env.spec().extras.last().map(String::as_str), Some("diverged"), "{id}");
        // Full-scale constant input: whatever happens, rewards stay finite and divergence ends it.
        let (ret, steps, terminated, diverged) = constant_episode(env.as_mut(), bound);
        eprintln!("{id}: bound {bound:.3e}, constant input: return {ret:.3e} in {steps} steps, diverged {diverged}");
        assert!(ret.is_finite(), "{id}");
        assert_eq!(terminated, diverged == 1.0, "{id}: terminated {terminated}, diverged extra {diverged}");
    }
}

#[test]
fn he1_without_input_diverges_and_lqr_does_not() {
    let he1 = config(&[("system", json!("he1")), ("preset", json!("benchmark"))]);
    let Some(mut env) = make_or_skip("keel/Linear-v0", &he1) else { return };
    let (ret, steps, terminated, diverged) = constant_episode(env.as_mut(), 0.0);
    assert!(terminated && diverged == 1.0 && steps < 1000, "he1 zero input: {steps} steps");
    let lqr = Controller::design("lqr", "keel/Linear-v0", &he1).unwrap_or_else(|e| panic!("{e}"));
    for seed in 0..3 {
        let episode = run_episode(env.as_mut(), &lqr, seed, u64::MAX).unwrap_or_else(|e| panic!("{e}"));
        assert!(!episode.terminated && episode.steps == 1000, "LQR diverged at step {}", episode.steps);
        // Diverging early never costs less than a full episode of the optimal controller.
        assert!(-ret > episode.cost, "zero input {} vs LQR {}", -ret, episode.cost);
    }
}

#[test]
fn explicit_limits_win_over_the_preset_and_are_validated() {
    let given = config(&[("preset", json!("benchmark")), ("action_limit", json!(2.5)), ("state_limit", json!(7.0))]);
    let Some(env) = make_or_skip("keel/Linear-v0", &given) else { return };
    assert_eq!(action_bound(env.as_ref()), 2.5);
    let bad = make("keel/Burgers-v0", &config(&[("state_limit", json!(-1.0))])).err().map(|e| e.to_string());
    assert!(bad.as_deref().is_some_and(|e| e.contains("state_limit")), "{bad:?}");
    let bad = make("keel/Burgers-v0", &config(&[("preset", json!("fast"))])).err().map(|e| e.to_string());
    assert!(bad.as_deref().is_some_and(|e| e.contains("preset")), "{bad:?}");
}

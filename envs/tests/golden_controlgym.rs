//! Golden tests: Keel's PDE and linear envs in `compat = "controlgym"` mode replay trajectories
//! recorded from controlgym 1.0.0 (`scripts/golden_controlgym.py`): same initial state, same
//! actions, no noise, 50 steps.
//!
//! Tolerances: rewards and the float64 states to 1e-9 relative (measured against the largest
//! magnitude of the compared vector, so that values crossing zero do not fail on rounding);
//! observations are float32 in Keel, compared to float32 precision; flags exactly.

use std::path::PathBuf;

use keel_envs::testing::Data;
use keel_envs::{Action, EnvError, ObsMut, ResetOptions, make};
use serde::Deserialize;
use serde_json::{Map, Value};

#[derive(Deserialize)]
struct Fixture {
    controlgym_id: String,
    keel_id: String,
    config: Map<String, Value>,
    initial_state: Vec<f64>,
    actions: Vec<Vec<f64>>,
    steps: Vec<Recorded>,
    #[serde(default)]
    lqr_gain: Option<Vec<Vec<f64>>>,
}

#[derive(Deserialize)]
struct Recorded {
    obs: Vec<f64>,
    reward: f64,
    terminated: bool,
    truncated: bool,
    #[serde(default)]
    state: Option<Vec<f64>>,
}

const RELATIVE: f64 = 1e-9;

fn fixture(name: &str) -> Fixture {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/controlgym").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Largest relative deviation of `got` from `want`, scaled by `want`'s largest magnitude.
fn deviation(got: &[f64], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(f64::MIN_POSITIVE);
    got.iter().zip(want).fold(0.0f64, |m, (g, w)| m.max((g - w).abs() / scale))
}

/// Replays a fixture; returns the largest state and reward deviations, or `None` where the
/// env cannot be made because its data is missing.
fn replay(name: &str) -> Option<(f64, f64)> {
    let f = fixture(name);
    let env = make(&f.keel_id, &f.config);
    if Data::Controlgym.missing(name, &env) {
        return None;
    }
    let mut env = env.unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut obs = vec![0.0f64; env.spec().obs_len()];
    env.reset(Some(0), &ResetOptions::with_state(f.initial_state.clone()), ObsMut::F64(&mut obs))
        .unwrap_or_else(|e| panic!("{name}: reset: {e}"));
    let (mut worst_state, mut worst_reward) = (0.0f64, 0.0f64);
    for (t, (action, want)) in f.actions.iter().zip(&f.steps).enumerate() {
        // float64 actions and observations, as controlgym's spaces: no rounding on either side.
        let step = env.step(Action::Float64(action), ObsMut::F64(&mut obs)).unwrap_or_else(|e| panic!("{name} step {t}: {e}"));
        let obs_dev = deviation(&obs, &want.obs);
        assert!(obs_dev < RELATIVE, "{name} step {t}: observation off by {obs_dev:e}");
        let reward_dev = (step.reward - want.reward).abs() / want.reward.abs().max(f64::MIN_POSITIVE);
        worst_reward = worst_reward.max(reward_dev);
        assert!(reward_dev < RELATIVE, "{name} step {t}: reward {} vs {} ({reward_dev:e})", step.reward, want.reward);
        assert_eq!((step.terminated, step.truncated), (want.terminated, want.truncated), "{name} step {t}: flags");
        if let Some(state) = &want.state {
            let got = env.state().unwrap_or_default();
            let dev = deviation(&got, state);
            worst_state = worst_state.max(dev);
            assert!(dev < RELATIVE, "{name} step {t}: state off by {dev:e}");
        }
    }
    eprintln!("{name} ({}): worst state {worst_state:.1e}, worst reward {worst_reward:.1e}", f.controlgym_id);
    Some((worst_state, worst_reward))
}

macro_rules! golden {
    ($($test:ident => $file:literal),* $(,)?) => {
        $(#[test] fn $test() { replay($file); })*
    };
}

golden!(
    allen_cahn => "allen_cahn.json",
    burgers => "burgers.json",
    burgers_default_size => "burgers_default.json",
    cahn_hilliard => "cahn_hilliard.json",
    convection_diffusion_reaction => "convection_diffusion_reaction.json",
    fisher => "fisher.json",
    ginzburg_landau => "ginzburg_landau.json",
    korteweg_de_vries => "korteweg_de_vries.json",
    kuramoto_sivashinsky => "kuramoto_sivashinsky.json",
    schrodinger => "schrodinger.json",
    wave => "wave.json",
);

/// The linear systems need controlgym's data; without it they are skipped here (a failure
/// where the test command requires the data: [`Data`]).
fn replay_linear(name: &str) {
    replay(name);
}

#[test]
fn linear_toy() {
    replay_linear("linear_toy.json");
}

#[test]
fn linear_he1() {
    replay_linear("linear_he1.json");
}

#[test]
fn linear_ac3() {
    replay_linear("linear_ac3.json");
}

/// Keel's LQR gain equals controlgym's (scipy's `solve_discrete_are`) on the recorded systems.
#[test]
fn lqr_gains_match_scipy() {
    for name in ["linear_toy.json", "linear_he1.json", "linear_ac3.json"] {
        let f = fixture(name);
        let Some(want) = &f.lqr_gain else { panic!("{name}: no gain recorded") };
        let model = match keel_envs::baselines::linear_model(&f.keel_id, &f.config) {
            Ok(model) => model,
            Err(EnvError::DataMissing(why)) => {
                Data::Controlgym.skip(name, why);
                continue;
            }
            Err(e) => panic!("{name}: {e}"),
        };
        let lqr = keel_envs::baselines::Lqr::new(&model).unwrap_or_else(|e| panic!("{name}: {e}"));
        let got: Vec<f64> = (0..lqr.gain.nrows())
            .flat_map(|i| (0..lqr.gain.ncols()).map(move |j| (i, j)))
            .map(|(i, j)| lqr.gain[(i, j)])
            .collect();
        let want: Vec<f64> = want.iter().flatten().copied().collect();
        let dev = deviation(&got, &want);
        eprintln!("{name}: LQR gain deviation {dev:.1e}");
        assert!(dev < 1e-8, "{name}: LQR gain off by {dev:e}");
    }
}

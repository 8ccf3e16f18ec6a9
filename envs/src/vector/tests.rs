//! Engine tests that need a purpose-built env or sampler; the checks every env passes are in
//! `crate::testing`.

use super::*;
use crate::testing::{BytePatternConfig, register_test_envs};
use rand::SeedableRng;
use rand_pcg::Pcg32;

fn bytes_vec(num_envs: usize, workers: usize, config: Value) -> VecEnv {
    let _ = register_test_envs();
    let Value::Object(overrides) = config else { panic!("config must be an object") };
    let options = VecOptions { workers, autoreset_mode: AutoresetMode::NextStep };
    match VecEnv::make("keel-test/BytePattern-v0", &overrides, num_envs, options) {
        Ok(v) => v,
        Err(e) => panic!("make: {e}"),
    }
}

#[test]
fn byte_observations_stay_bytes_at_a_fixed_address() {
    let mut venv = bytes_vec(3, 2, serde_json::json!({}));
    assert!(venv.reset(Some(0)).is_ok());
    let ObsBuf::U8(first) = &venv.batch().obs else { panic!("not u8") };
    let address = first.as_ptr();
    assert_eq!(first.len(), 3 * 24);
    for _ in 0..12 {
        assert!(venv.step(Action::Int(&[1, 2, 3])).is_ok());
        let ObsBuf::U8(obs) = &venv.batch().obs else { panic!("not u8") };
        assert_eq!(obs.as_ptr(), address);
    }
    assert_eq!(venv.batch().extras.len(), 3);
}

#[test]
fn a_panicking_env_poisons_the_vector_until_a_full_reset() {
    for workers in [0, 2] {
        let mut venv = bytes_vec(4, workers, serde_json::json!({"panic_on": 3}));
        assert!(venv.reset(Some(0)).is_ok());
        let err = venv.step(Action::Int(&[0, 0, 3, 0])).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("sub-env 2") && err.contains("panic"), "{err}");
        let again = venv.step(Action::Int(&[0; 4])).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(again.contains("unusable until reset") && again.contains("sub-env 2"), "{again}");
        assert!(venv.reset_with(Seeds::Continue, OptionsFor::Sampler, Some(&[true, false, false, false])).is_err());
        assert!(venv.set_params(&Map::new()).is_err());
        assert!(venv.reset(Some(1)).is_ok());
        assert!(venv.step(Action::Int(&[0; 4])).is_ok());
    }
}

/// A start-state sampler for CartPole: env `i`'s start is drawn from the sampler's own stream,
/// and the spread narrows after every failed episode (a toy curriculum).
struct StartStates {
    rng: Pcg32,
    spread: f64,
}

impl ResetSampler for StartStates {
    fn sample(&mut self, _env_index: usize) -> ResetOptions {
        use rand::RngExt;
        let spread = self.spread;
        ResetOptions::with_state((0..4).map(|_| self.rng.random_range(-spread..spread)).collect())
    }

    fn report(&mut self, episode: &EpisodeEnd<'_>) {
        assert!(episode.options.state.is_some(), "the sampler's options are reported back");
        if episode.terminated {
            self.spread *= 0.9;
        }
    }

    fn snapshot(&self) -> Value {
        serde_json::json!({"rng": self.rng, "spread": self.spread})
    }

    fn restore(&mut self, snapshot: &Value) -> Result<()> {
        let bad = |e: serde_json::Error| EnvError::Snapshot(e.to_string());
        self.rng = serde_json::from_value(snapshot["rng"].clone()).map_err(bad)?;
        self.spread = serde_json::from_value(snapshot["spread"].clone()).map_err(bad)?;
        Ok(())
    }
}

fn sampled_run(workers: usize, mode: AutoresetMode, steps: usize) -> Vec<Batch> {
    let options = VecOptions { workers, autoreset_mode: mode };
    let Ok(mut venv) = VecEnv::make("keel/CartPole-v1", &Map::new(), 6, options) else { panic!("make") };
    let sampler = StartStates { rng: Pcg32::seed_from_u64(9), spread: 0.2 };
    assert!(venv.set_sampler(Some(Box::new(sampler))).is_ok());
    assert!(venv.reset(Some(4)).is_ok());
    let mut batches = vec![venv.batch().clone()];
    for t in 0..steps {
        let actions: Vec<i64> = (0..6).map(|i| ((t * 7 + i * 3) % 5 % 2) as i64).collect();
        assert!(venv.step(Action::Int(&actions)).is_ok());
        batches.push(venv.batch().clone());
    }
    batches
}

#[test]
fn a_start_state_sampler_gives_the_same_run_on_every_worker_count() {
    for mode in [AutoresetMode::NextStep, AutoresetMode::SameStep] {
        let serial = sampled_run(0, mode, 200);
        assert!(serial.iter().any(|b| b.episode_done.iter().any(|&d| d)), "episodes must end");
        for workers in 1..=3 {
            assert!(sampled_run(workers, mode, 200) == serial, "{workers} workers, {mode:?}");
        }
    }
}

#[test]
fn the_sampler_chooses_every_start_and_its_state_survives_a_snapshot() {
    let options = VecOptions { workers: 2, autoreset_mode: AutoresetMode::NextStep };
    let make = || {
        let Ok(mut venv) = VecEnv::make("keel/CartPole-v1", &Map::new(), 4, options) else { panic!("make") };
        let sampler = StartStates { rng: Pcg32::seed_from_u64(1), spread: 0.1 };
        assert!(venv.set_sampler(Some(Box::new(sampler))).is_ok());
        venv
    };
    let mut venv = make();
    assert!(venv.reset(Some(0)).is_ok());
    // Every start lies inside the sampler's spread, not CartPole's default ±0.05 only by chance.
    for i in 0..4 {
        let state = venv.state(i).unwrap_or_default();
        assert!(state.iter().all(|v| v.abs() < 0.1));
    }
    let step = |v: &mut VecEnv, t: usize| {
        let actions: Vec<i64> = (0..4).map(|i| ((t + i) % 3 % 2) as i64).collect();
        assert!(v.step(Action::Int(&actions)).is_ok());
        v.batch().clone()
    };
    for t in 0..60 {
        step(&mut venv, t);
    }
    let Some(snapshot) = venv.snapshot() else { panic!("snapshot") };
    let mut resumed = make();
    assert!(resumed.restore(&snapshot).is_ok());
    for t in 60..300 {
        assert!(step(&mut venv, t) == step(&mut resumed, t), "step {t}");
    }
    assert_eq!(venv.sampler().map(|s| s.snapshot()), resumed.sampler().map(|s| s.snapshot()));
    // A snapshot with a sampler state needs a sampler to restore into.
    let Ok(mut bare) = VecEnv::make("keel/CartPole-v1", &Map::new(), 4, options) else { panic!("make") };
    assert!(bare.restore(&snapshot).is_err());
}

#[test]
fn per_env_options_and_params_reach_only_their_env() {
    let Ok(mut venv) = VecEnv::make("keel/CartPole-v1", &Map::new(), 3, VecOptions::default()) else { panic!() };
    let options: Vec<ResetOptions> =
        (0..3).map(|i| ResetOptions::with_state(vec![0.01 * i as f64, 0.0, 0.0, 0.0])).collect();
    assert!(venv.reset_with(Seeds::Base(0), OptionsFor::PerEnv(&options), None).is_ok());
    for (i, o) in options.iter().enumerate() {
        assert_eq!(venv.state(i), o.state);
    }
    assert!(venv.reset_with(Seeds::Base(0), OptionsFor::PerEnv(&options[..2]), None).is_err());
    let mut params = Map::new();
    params.insert("high".into(), serde_json::json!(0.2));
    assert!(venv.set_params_of(&[1], &params).is_ok());
    assert_eq!(venv.params_of(1).ok().map(|p| p["high"].clone()), Some(serde_json::json!(0.2)));
    assert_eq!(venv.params_of(0).ok().map(|p| p["high"].clone()), Some(serde_json::json!(0.05)));
    assert!(venv.set_params_of(&[7], &params).is_err());
    assert!(venv.params_of(3).is_err());
    let _ = BytePatternConfig::default();
}

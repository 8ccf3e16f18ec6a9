//! DQN on the trainer core: it learns CartPole in a short seeded run, resumes exactly, and
//! refuses bad configs naming the field.

// A failed step is a failed test: unwrap says where.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Mutex;

use keel_agents::dqn::{DqnConfig, DqnTrainer};
use keel_agents::registry::lookup;
use keel_curricula::{AdaptScale, SamplerConfig, UniformStartStateConfig};
use serde_json::{Value, json};

/// libtorch's generator is global: runs that must be reproducible take turns.
static TORCH_RNG: Mutex<()> = Mutex::new(());

fn small() -> DqnConfig {
    DqnConfig {
        total_timesteps: 4000,
        learning_starts: 500,
        buffer_size: 2000,
        batch_size: 64,
        train_frequency: 2,
        target_network_frequency: 100,
        iteration_steps: 500,
        ..DqnConfig::default()
    }
}

#[test]
fn learns_cartpole_in_a_short_seeded_run() {
    let _turn = TORCH_RNG.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let config = {
        let mut c = DqnConfig {
            total_timesteps: 25_000,
            learning_rate: 1e-3,
            learning_starts: 1000,
            buffer_size: 10_000,
            train_frequency: 2,
            target_network_frequency: 250,
            exploration_fraction: 0.4,
            iteration_steps: 1000,
            ..DqnConfig::default()
        };
        c.run.seed = 3;
        c
    };
    let mut trainer = DqnTrainer::new(config).unwrap();
    while !trainer.finished() {
        trainer.iteration_step().unwrap();
    }
    let episodes = trainer.episodes();
    let last: Vec<f64> = episodes.iter().rev().take(10).map(|e| e.episode_return).collect();
    let mean = last.iter().sum::<f64>() / last.len() as f64;
    assert!(mean > 100.0, "mean return of the last 10 episodes: {mean} ({last:?})");
}

/// A DQN run with the core's observation normalisation and a reset sampler (both from the
/// shared run settings, as every algorithm has them).
fn normalized_with_sampler() -> DqnConfig {
    let mut config = small();
    config.run.normalize_obs = true;
    config.run.sampler = Some(SamplerConfig::UniformStartState(UniformStartStateConfig {
        low: vec![-0.05; 4],
        high: vec![0.05; 4],
        seed: None,
        scale: 0.5,
        adapt: Some(AdaptScale { success_return: 30.0, step: 0.1, min_scale: 0.1 }),
    }));
    config
}

#[test]
fn resume_continues_exactly() {
    let _turn = TORCH_RNG.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    for (name, config) in [("plain", small()), ("normalized-sampler", normalized_with_sampler())] {
        let dir = std::env::temp_dir().join(format!("keel-dqn-resume-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut straight = DqnTrainer::new(config.clone()).unwrap();
        for _ in 0..6 {
            straight.iteration_step().unwrap();
        }
        let mut first = DqnTrainer::new(config.clone()).unwrap();
        for _ in 0..3 {
            first.iteration_step().unwrap();
        }
        first.save_checkpoint(&dir).unwrap();
        drop(first);
        let mut resumed = DqnTrainer::new(config.clone()).unwrap();
        assert_eq!(resumed.load_checkpoint(&dir).unwrap(), 3);
        for _ in 0..3 {
            resumed.iteration_step().unwrap();
        }
        for ((param, a), (_, b)) in straight.parameters().iter().zip(resumed.parameters()) {
            assert!(a.equal(&b), "{name}: parameter {param} differs after resume");
        }
        assert_eq!(straight.episodes(), resumed.episodes(), "{name}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// The run settings reach DQN: the encoder normalises its input and the sampler chooses its
/// starts, so the run differs from a plain one and the sampler hears every episode.
#[test]
fn normalisation_and_samplers_apply_to_dqn() {
    let _turn = TORCH_RNG.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut plain = DqnTrainer::new(small()).unwrap();
    let mut shaped = DqnTrainer::new(normalized_with_sampler()).unwrap();
    for _ in 0..2 {
        plain.iteration_step().unwrap();
        shaped.iteration_step().unwrap();
    }
    assert!(shaped.envs().encoder().normalizer().is_some());
    assert!(plain.envs().encoder().normalizer().is_none());
    let heard = shaped.envs().vector().sampler().map(|s| s.snapshot()).unwrap_or(Value::Null);
    assert_eq!(heard["episodes"].as_u64(), Some(shaped.episode_count()), "{heard}");
    assert_ne!(plain.episodes(), shaped.episodes());
}

#[test]
fn bad_configs_are_refused_naming_the_field() {
    let dqn = lookup("dqn").unwrap();
    for (key, value, field) in [
        ("buffer_size", json!(32), "buffer_size"),
        ("target_network_frequency", json!(0), "target_network_frequency"),
        ("learning_rate", json!(0.0), "learning_rate"),
        ("learning_rate", json!(-1e-3), "learning_rate"),
        ("tau", json!(0.0), "tau"),
    ] {
        let overrides: Vec<(String, Value)> = vec![(key.into(), value)];
        let err = dqn.build(&overrides).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains(field), "{key}: {err}");
    }
    let continuous = vec![("env_id".to_string(), json!("keel/Pendulum-v1"))];
    let err = dqn.build(&continuous).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("Discrete"), "{err}");
}

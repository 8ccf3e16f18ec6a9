//! PPO / D-PPO trainer: learning, the D-PPO identity, exact resume, config errors.

use keel_agents::ppo::{Algo, PpoConfig, Trainer};
use serde_json::{Value, json};

fn small(algo: Algo) -> PpoConfig {
    PpoConfig {
        algo,
        num_envs: 2,
        num_steps: 32,
        total_timesteps: 2 * 32 * 8,
        checkpoint_every: 1000,
        ..PpoConfig::default()
    }
}

/// libtorch's random generator is global to the process: tests that compare runs bit for bit
/// must not interleave with other runs.
static TORCH_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn exclusive() -> std::sync::MutexGuard<'static, ()> {
    TORCH_RNG.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn trainer(config: PpoConfig) -> Trainer {
    Trainer::new(config).unwrap_or_else(|e| panic!("{e}"))
}

fn run(t: &mut Trainer, iterations: usize) {
    for _ in 0..iterations {
        t.iteration_step().unwrap_or_else(|e| panic!("{e}"));
    }
}

fn same_parameters(a: &Trainer, b: &Trainer) -> bool {
    a.parameters().iter().zip(b.parameters().iter()).all(|((na, ta), (nb, tb))| na == nb && ta.equal(tb))
}

#[test]
fn dppo_with_zero_drop_rate_is_ppo_bit_for_bit() {
    let _guard = exclusive();
    let mut ppo = trainer(small(Algo::Ppo));
    let mut config = small(Algo::Dppo);
    config.dppo.drop_rate = 0.0;
    let mut dppo = trainer(config);
    run(&mut ppo, 4);
    run(&mut dppo, 4);
    assert!(same_parameters(&ppo, &dppo));
    // And a positive drop rate does change the update.
    let mut config = small(Algo::Dppo);
    config.dppo.drop_rate = 0.3;
    let mut dropping = trainer(config);
    run(&mut dropping, 4);
    assert!(!same_parameters(&ppo, &dropping));
}

#[test]
fn resume_continues_exactly() {
    let _guard = exclusive();
    for config in [
        small(Algo::Ppo),
        PpoConfig {
            env_id: "keel/Pendulum-v1".into(),
            normalize_obs: true,
            normalize_reward: true,
            ent_coef: 0.0,
            ..small(Algo::Ppo)
        },
    ] {
        let mut straight = trainer(config.clone());
        run(&mut straight, 6);
        let dir = std::env::temp_dir().join(format!(
            "keel-resume-{}-{}",
            std::process::id(),
            config.env_id.replace('/', "_")
        ));
        let mut first = trainer(config.clone());
        run(&mut first, 3);
        first.save_checkpoint(&dir).unwrap_or_else(|e| panic!("{e}"));
        drop(first);
        let mut resumed = trainer(config.clone());
        assert_eq!(resumed.load_checkpoint(&dir).unwrap_or_else(|e| panic!("{e}")), 3);
        run(&mut resumed, 3);
        assert!(same_parameters(&straight, &resumed), "{}: parameters differ after resume", config.env_id);
        assert_eq!(straight.episodes(), resumed.episodes());
        assert_eq!(straight.global_step(), resumed.global_step());
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn learns_cartpole() {
    let _guard = exclusive();
    let config = PpoConfig { total_timesteps: 40_000, seed: 3, ..PpoConfig::default() };
    let mut t = trainer(config);
    while !t.finished() {
        t.iteration_step().unwrap_or_else(|e| panic!("{e}"));
    }
    let last: Vec<f64> = t.episodes().iter().rev().take(50).map(|e| e.episode_return).collect();
    let mean = last.iter().sum::<f64>() / last.len() as f64;
    // A random policy scores about 22; 40k steps of PPO get well past 100.
    assert!(mean > 100.0, "mean return of the last 50 episodes: {mean}");
}

#[test]
fn bad_config_is_rejected_naming_the_field() {
    let _guard = exclusive();
    let base = PpoConfig::default();
    let cases: Vec<(&str, Value, &str)> = vec![
        ("learning_rte", json!(1e-3), "learning_rte"),
        ("learning_rate", json!("fast"), "learning_rate"),
        ("learning_rate", json!(-1.0), "learning_rate"),
        ("num_envs", json!(0), "num_envs"),
        ("dppo.drop_rat", json!(0.1), "dppo.drop_rat"),
        ("dppo.drop_rate", json!(1.5), "dppo.drop_rate"),
        ("device", json!("tpu"), "device"),
    ];
    for (key, value, needle) in cases {
        let err = base.with_overrides(&[(key.to_string(), value)]).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains(needle), "{key}: error `{err}` does not name {needle}");
    }
    let bad_env = PpoConfig {
        env_config: serde_json::from_value(json!({"gravityy": 1.0})).unwrap_or_default(),
        ..small(Algo::Ppo)
    };
    let err = Trainer::new(bad_env).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("gravityy"), "{err}");
    let toml = PpoConfig::toml_overrides("num_envs = 8\n[dppo]\ndrop_rate = 0.2\n[env_config]\ngravity = 9.81\n");
    let config = base.with_overrides(&toml.unwrap_or_default()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((config.num_envs, config.dppo.drop_rate), (8, 0.2));
    assert_eq!(config.env_config.get("gravity"), Some(&json!(9.81)));
}

#[test]
fn deploying_in_the_performative_grid_changes_the_envs() {
    let _guard = exclusive();
    let config = PpoConfig {
        env_id: "keel/PerformativeGrid-v0".into(),
        num_envs: 2,
        num_steps: 64,
        total_timesteps: 2 * 64 * 4,
        deploy_every: 2,
        ..PpoConfig::default()
    };
    let mut t = trainer(config.clone());
    let first = t.iteration_step().unwrap_or_else(|e| panic!("{e}"));
    assert!(first.policy_shift.is_nan(), "no deployment at iteration 1");
    let second = t.iteration_step().unwrap_or_else(|e| panic!("{e}"));
    assert!(second.policy_shift.is_nan(), "the first deployment has no predecessor");
    let table = t.policy_table().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(table.len(), 64 * 4);
    for row in table.chunks(4) {
        assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-5);
    }
    run(&mut t, 2);
    // Deploying needs Discrete observations and actions.
    let err = Trainer::new(PpoConfig { deploy_every: 5, ..PpoConfig { env_id: "keel/Pendulum-v1".into(), ..config } })
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("deploy_every"), "{err}");
}

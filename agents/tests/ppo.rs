//! PPO / D-PPO on the trainer core: learning, the D-PPO identity, exact resume (with a reset
//! sampler, across worker counts, on float64 envs), per-step extras, deployments, evaluation,
//! config and checkpoint errors, sizes beyond memory, damaged checkpoints.

use keel_agents::eval::{DEFAULT_STEP_CAP, EvalOptions};
use keel_agents::ppo::{Algo, PpoConfig, PpoTrainer};
use keel_agents::tch::Tensor;
use keel_curricula::{AdaptScale, SamplerConfig, UniformStartState, UniformStartStateConfig};
use serde_json::{Map, Value, json};

fn small(algo: Algo) -> PpoConfig {
    {
        let mut c = PpoConfig { algo, num_steps: 32, total_timesteps: 2 * 32 * 8, ..PpoConfig::default() };
        c.run.num_envs = 2;
        c.run.checkpoint_every = 1000;
        c
    }
}

/// libtorch's random generator is global to the process: tests that compare runs bit for bit
/// must not interleave with other runs.
static TORCH_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn exclusive() -> std::sync::MutexGuard<'static, ()> {
    TORCH_RNG.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn trainer(config: PpoConfig) -> PpoTrainer {
    PpoTrainer::new(config).unwrap_or_else(|e| panic!("{e}"))
}

fn run(t: &mut PpoTrainer, iterations: usize) {
    for _ in 0..iterations {
        t.iteration_step().unwrap_or_else(|e| panic!("{e}"));
    }
}

fn same_parameters(a: &PpoTrainer, b: &PpoTrainer) -> bool {
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
        {
            let mut c = PpoConfig { normalize_reward: true, ent_coef: 0.0, ..small(Algo::Ppo) };
            c.run.env_id = "keel/Pendulum-v1".into();
            c.run.normalize_obs = true;
            c
        },
        {
            let mut c = tracking_learner();
            c.run.env_id = "keel/Pendulum-v1".into();
            c
        },
    ] {
        let mut straight = trainer(config.clone());
        run(&mut straight, 6);
        let dir = std::env::temp_dir().join(format!(
            "keel-resume-{}-{}",
            std::process::id(),
            config.run.env_id.replace('/', "_")
        ));
        let mut first = trainer(config.clone());
        run(&mut first, 3);
        first.save_checkpoint(&dir).unwrap_or_else(|e| panic!("{e}"));
        drop(first);
        let mut resumed = trainer(config.clone());
        assert_eq!(resumed.load_checkpoint(&dir).unwrap_or_else(|e| panic!("{e}")), 3);
        run(&mut resumed, 3);
        assert!(same_parameters(&straight, &resumed), "{}: parameters differ after resume", config.run.env_id);
        assert_eq!(straight.episodes(), resumed.episodes());
        assert_eq!(straight.global_step(), resumed.global_step());
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// PPO with the humanoid tracking settings: standardised value targets, separate gradient
/// bounds, a KL-adaptive learning rate and a fixed action std.
fn tracking_learner() -> PpoConfig {
    PpoConfig {
        normalize_value: true,
        critic_max_grad_norm: Some(0.05),
        clip_vloss: false,
        anneal_lr: false,
        kl_adaptive_lr: Some(1e-4),
        learn_log_std: false,
        init_log_std: -1.0,
        ent_coef: 0.0,
        ..small(Algo::Ppo)
    }
}

fn log_std(t: &PpoTrainer) -> Tensor {
    let found = t.parameters().into_iter().find(|(name, _)| name == "log_std");
    found.map(|(_, t)| t).unwrap_or_else(|| panic!("no log_std"))
}

/// Each learner option does what it says, and changes the update against plain PPO.
#[test]
fn tracking_learner_options_hold_what_they_say() {
    let _guard = exclusive();
    let pendulum = |mut c: PpoConfig| {
        c.run.env_id = "keel/Pendulum-v1".into();
        c
    };
    let mut plain = trainer(pendulum(PpoConfig { init_log_std: -1.0, ent_coef: 0.0, ..small(Algo::Ppo) }));
    run(&mut plain, 3);
    // Learned std moves; a fixed one stays at its initial value.
    assert!(!log_std(&plain).equal(&Tensor::full(
        [1, 1],
        -1.0,
        (keel_agents::tch::Kind::Float, keel_agents::tch::Device::Cpu)
    )));
    let mut fixed = trainer(pendulum(PpoConfig { learn_log_std: false, ..plain.config().clone() }));
    run(&mut fixed, 3);
    assert_eq!(log_std(&fixed).double_value(&[0, 0]), -1.0);
    // The adaptive schedule moves the learning rate away from its start.
    let mut adaptive =
        trainer(pendulum(PpoConfig { anneal_lr: false, kl_adaptive_lr: Some(1e-4), ..plain.config().clone() }));
    let rates: Vec<f64> = (0..3)
        .map(|_| {
            adaptive.iteration_step().unwrap_or_else(|e| panic!("{e}")).metric("learning_rate").unwrap_or(f64::NAN)
        })
        .collect();
    assert!(rates.iter().any(|&lr| lr != plain.config().learning_rate), "{rates:?}");
    assert!(rates.iter().all(|&lr| (1e-6..=1e-2).contains(&lr)), "{rates:?}");
    // Value normalisation and a separate critic bound each change the update.
    for changed in [
        PpoConfig { normalize_value: true, ..plain.config().clone() },
        PpoConfig { critic_max_grad_norm: Some(1e-3), ..plain.config().clone() },
    ] {
        let mut other = trainer(changed);
        run(&mut other, 3);
        assert!(!same_parameters(&plain, &other));
    }
    // A critic bound as large as the global one leaves the actor's step as the actor's own
    // bound makes it: with both huge, nothing is clipped and the run is plain PPO's.
    let huge = PpoConfig { max_grad_norm: 1e30, ..plain.config().clone() };
    let mut unclipped = trainer(huge.clone());
    run(&mut unclipped, 3);
    let mut split = trainer(PpoConfig { critic_max_grad_norm: Some(1e30), ..huge });
    run(&mut split, 3);
    assert!(same_parameters(&unclipped, &split));
}

#[test]
fn learns_cartpole() {
    let _guard = exclusive();
    let config = {
        let mut c = PpoConfig { total_timesteps: 40_000, ..PpoConfig::default() };
        c.run.seed = 3;
        c
    };
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
        // Coefficients beyond float32 used to panic inside libtorch (a clamp bound it cannot hold).
        ("clip_coef", json!(1e308), "`clip_coef`: 1e308 is beyond float32's range"),
        ("obs_clip", json!(1e300), "`obs_clip`: 1e300 is beyond float32's range"),
        ("init_log_std", json!(100.0), "`init_log_std`: must be in [-80, 80]"),
        ("kl_adaptive_lr", json!(0.01), "set anneal_lr = false"),
        ("critic_max_grad_norm", json!(-1.0), "critic_max_grad_norm"),
    ];
    for (key, value, needle) in cases {
        let err = base.with_overrides(&[(key.to_string(), value)]).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains(needle), "{key}: error `{err}` does not name {needle}");
    }
    // Minibatches that do not divide the default batch of 4 x 128, or of one sample (too few to
    // normalise advantages).
    for (n, needle) in [(3, "3 does not divide the batch num_envs * num_steps = 512"), (512, "minibatches of 1")] {
        let err = base.with_overrides(&[("num_minibatches".into(), json!(n))]).err().map(|e| e.to_string());
        let err = err.unwrap_or_default();
        assert!(err.contains("`num_minibatches`") && err.contains(needle), "{n}: {err}");
    }
    let shared_torso = [("network".to_string(), json!("nature_cnn")), ("critic_max_grad_norm".to_string(), json!(1.0))];
    let err = base.with_overrides(&shared_torso).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("`critic_max_grad_norm`") && err.contains("shared"), "{err}");
    let unnormalised = [("num_minibatches".to_string(), json!(512)), ("norm_adv".to_string(), json!(false))];
    assert!(base.with_overrides(&unnormalised).is_ok());
    let bad_env = {
        let mut c = small(Algo::Ppo);
        c.run.env_config = serde_json::from_value(json!({"gravityy": 1.0})).unwrap_or_default();
        c
    };
    let err = PpoTrainer::new(bad_env).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("gravityy"), "{err}");
    let toml = PpoConfig::toml_overrides("num_envs = 8\n[dppo]\ndrop_rate = 0.2\n[env_config]\ngravity = 9.81\n");
    let config = base.with_overrides(&toml.unwrap_or_default()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((config.run.num_envs, config.dppo.drop_rate), (8, 0.2));
    assert_eq!(config.run.env_config.get("gravity"), Some(&json!(9.81)));
}

#[test]
fn deploying_in_the_performative_grid_changes_the_envs() {
    let _guard = exclusive();
    let config = {
        let mut c = PpoConfig { num_steps: 64, total_timesteps: 2 * 64 * 4, ..PpoConfig::default() };
        c.run.env_id = "keel/PerformativeGrid-v0".into();
        c.run.num_envs = 2;
        c.run.deploy_every = 2;
        c
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
    // Evaluation plays the trained policy in a world that responds to it: deployed first.
    let (env, _) = t.eval_env(None).unwrap_or_else(|e| panic!("{e}"));
    let deployed: Vec<f64> =
        serde_json::from_value::<Vec<Vec<f64>>>(env.params()["learner_policy"].clone()).unwrap_or_default().concat();
    let table = t.policy_table().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(deployed.len(), table.len());
    assert!(deployed.iter().zip(&table).all(|(a, b)| (a - b).abs() < 1e-6));
    let fresh = keel_envs::make("keel/PerformativeGrid-v0", &Map::new()).unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(env.params()["learner_policy"], fresh.params()["learner_policy"]);
    let options = EvalOptions { episodes: 2, deterministic: false, seed: 0, max_episode_steps: None };
    assert!(t.evaluate(&options).is_ok_and(|e| e.deployed && e.episodes.len() == 2));
    // Deploying needs Discrete observations and actions.
    let err = PpoTrainer::new({
        let mut c = PpoConfig {
            ..{
                let mut c = config;
                c.run.env_id = "keel/Pendulum-v1".into();
                c
            }
        };
        c.run.deploy_every = 5;
        c
    })
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    assert!(err.contains("deploy_every"), "{err}");
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("keel-ppo-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// CartPole starts drawn from a box by keel-curricula's sampler, the box widening after
/// episodes of 30 steps or more and narrowing after shorter ones.
fn start_states(seed: Option<u64>) -> UniformStartStateConfig {
    UniformStartStateConfig {
        low: vec![-0.2, -0.05, -0.05, -0.05],
        high: vec![0.2, 0.05, 0.05, 0.05],
        seed,
        scale: 0.5,
        adapt: Some(AdaptScale { success_return: 30.0, step: 0.1, min_scale: 0.1 }),
    }
}

fn with_sampler(workers: usize) -> PpoConfig {
    {
        let mut c = PpoConfig { total_timesteps: 4 * 32 * 8, ..small(Algo::Ppo) };
        c.run.num_envs = 4;
        c.run.env_workers = workers;
        c.run.sampler = Some(SamplerConfig::UniformStartState(start_states(None)));
        c
    }
}

fn sampler_state(t: &PpoTrainer) -> Value {
    t.envs().vector().sampler().map(|s| s.snapshot()).unwrap_or(Value::Null)
}

/// The bar: a sampler that sets a per-env start state is exercised at every worker count
/// with identical results, and survives resume exactly (here even onto another worker count).
#[test]
fn a_start_state_sampler_is_worker_count_independent_and_resumes_exactly() {
    let _guard = exclusive();
    let mut runs: Vec<PpoTrainer> = [0, 1, 2]
        .into_iter()
        .map(|workers| {
            let mut t = trainer(with_sampler(workers));
            run(&mut t, 6);
            t
        })
        .collect();
    for other in &runs[1..] {
        assert!(same_parameters(&runs[0], other), "parameters depend on the worker count");
        assert_eq!(runs[0].episodes(), other.episodes());
        assert_eq!(sampler_state(&runs[0]), sampler_state(other));
    }
    // The sampler acted: it heard every episode, moved its box, and changed the run.
    let state = sampler_state(&runs[0]);
    assert_eq!(state["episodes"].as_u64(), Some(runs[0].episode_count()));
    assert_ne!(state["scale"].as_f64(), Some(0.5));
    let mut plain = trainer({
        let mut c = with_sampler(0);
        c.run.sampler = None;
        c
    });
    run(&mut plain, 6);
    assert_ne!(plain.episodes(), runs[0].episodes());

    let dir = scratch("sampler-resume");
    let mut first = trainer(with_sampler(2));
    run(&mut first, 3);
    first.save_checkpoint(&dir).unwrap_or_else(|e| panic!("{e}"));
    drop(first);
    let mut resumed = trainer(with_sampler(0));
    assert_eq!(resumed.load_checkpoint(&dir).unwrap_or_else(|e| panic!("{e}")), 3);
    run(&mut resumed, 3);
    let straight = runs.swap_remove(0);
    assert!(same_parameters(&straight, &resumed), "parameters differ after resume");
    assert_eq!(straight.episodes(), resumed.episodes());
    assert_eq!(straight.global_step(), resumed.global_step());
    assert_eq!(sampler_state(&straight), sampler_state(&resumed));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A sampler given through the API is the same as the config's `[sampler]` table.
#[test]
fn a_sampler_from_the_api_equals_the_config_table() {
    let _guard = exclusive();
    let table = {
        let mut c = with_sampler(0);
        c.run.sampler = Some(SamplerConfig::UniformStartState(start_states(Some(9))));
        c
    };
    let mut from_table = trainer(table);
    let sampler = UniformStartState::new(start_states(Some(9)), 0);
    let mut from_api = PpoTrainer::with_sampler(
        {
            let mut c = with_sampler(0);
            c.run.sampler = None;
            c
        },
        Some(Box::new(sampler)),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    run(&mut from_table, 2);
    run(&mut from_api, 2);
    assert!(same_parameters(&from_table, &from_api));
    assert_eq!(from_table.episodes(), from_api.episodes());
    // A sampler for another state size is refused when the trainer is built.
    let err = PpoTrainer::new({
        let mut c = with_sampler(0);
        c.run.env_id = "keel/Pendulum-v1".into();
        c
    })
    .err();
    assert!(err.is_some_and(|e| e.to_string().contains("state of keel/Pendulum-v1 has 2")));
}

/// controlgym envs observe and act in float64: training, checkpoints and resume work on them.
#[test]
fn float64_envs_train_and_resume_exactly() {
    let _guard = exclusive();
    let config = {
        let mut c = PpoConfig { normalize_reward: true, init_log_std: -2.0, ent_coef: 0.0, ..small(Algo::Ppo) };
        c.run.env_id = "keel/ConvectionDiffusionReaction-v0".into();
        c.run.normalize_obs = true;
        c
    };
    let mut straight = trainer(config.clone());
    run(&mut straight, 4);
    let dir = scratch("float64-resume");
    let mut first = trainer(config.clone());
    run(&mut first, 2);
    first.save_checkpoint(&dir).unwrap_or_else(|e| panic!("{e}"));
    let mut resumed = trainer(config);
    resumed.load_checkpoint(&dir).unwrap_or_else(|e| panic!("{e}"));
    run(&mut resumed, 2);
    assert!(same_parameters(&straight, &resumed));
    assert_eq!(straight.episodes(), resumed.episodes());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Each iteration reports the mean of every per-step extra over its steps. controlgym's reward
/// is minus the sum of the two cost extras, so over one whole episode per env the mean return
/// is minus the episode length times the mean summed costs: this catches a step's extras taken
/// from the reset that follows it.
#[test]
fn per_step_extras_are_averaged_over_the_iteration() {
    let _guard = exclusive();
    let config = {
        let mut c = PpoConfig {
            num_steps: 100,
            total_timesteps: 2 * 100 * 2,
            num_minibatches: 2,
            init_log_std: -2.0,
            ..PpoConfig::default()
        };
        c.run.env_id = "keel/ConvectionDiffusionReaction-v0".into();
        c.run.num_envs = 2;
        c
    };
    let mut t = trainer(config);
    let columns: Vec<String> = t.columns().into_iter().map(|(name, _)| name).collect();
    assert!(columns.contains(&"extras/state_norm".to_string()), "{columns:?}");
    let stats = t.iteration_step().unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = stats.extras.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["state_cost", "action_cost", "state_norm", "diverged"]);
    assert_eq!(stats.episodes, 2, "one 100-step episode per env");
    let costs = stats.extras[0].1 + stats.extras[1].1;
    let want = -100.0 * costs;
    assert!((stats.episodic_return - want).abs() <= 1e-9 * want.abs(), "{} vs {want}", stats.episodic_return);
    assert!(stats.extras[2].1 > 0.0);
}

/// A checkpoint with a NaN is refused with an error naming the tensor, not a libtorch panic.
#[test]
fn a_checkpoint_holding_nan_is_refused_naming_the_tensor() {
    let _guard = exclusive();
    let dir = scratch("nan");
    let mut t = trainer(small(Algo::Ppo));
    run(&mut t, 1);
    let path = t.save_checkpoint(&dir).unwrap_or_else(|e| panic!("{e}"));
    let mut tensors = Tensor::read_safetensors(&path).unwrap_or_else(|e| panic!("{e}"));
    let poisoned = tensors.iter_mut().find(|(name, _)| name == "critic.l1.weight").map(|(_, t)| t);
    let _ = poisoned.unwrap_or_else(|| panic!("no critic.l1.weight")).fill_(f64::NAN);
    Tensor::write_safetensors(&tensors, &path).unwrap_or_else(|e| panic!("{e}"));
    let err = trainer(small(Algo::Ppo)).load_checkpoint(&dir).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("critic.l1.weight") && err.contains("NaN"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Networks and rollouts beyond the memory are refused before anything is allocated, naming
/// the field and the number.
#[test]
fn sizes_beyond_memory_are_refused_before_allocating() {
    let _guard = exclusive();
    let wide = PpoConfig { hidden_sizes: vec![1_000_000_000], ..small(Algo::Ppo) };
    let err = PpoTrainer::new(wide).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("`hidden_sizes`") && err.contains("hidden_sizes = 1000000000 needs about"), "{err}");
    let long = PpoConfig { num_steps: 1 << 40, total_timesteps: 1 << 42, num_minibatches: 2, ..small(Algo::Ppo) };
    let err = PpoTrainer::new(long).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("`num_steps`") && err.contains("needs about"), "{err}");
    let overflow = PpoConfig { num_steps: usize::MAX / 2, ..small(Algo::Ppo) };
    let err = PpoTrainer::new(overflow).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("num_steps"), "{err}");
}

/// Named tensors, as a checkpoint holds them.
type Tensors = Vec<(String, Tensor)>;

/// One way to damage a checkpoint: what, how, and what the error must say.
type Damage<'a> = (&'static str, Box<dyn Fn() + 'a>, &'static str);

/// A damaged checkpoint is refused as not a valid checkpoint, naming the file and what is wrong
/// with it, never a libtorch panic or a silent conversion.
#[test]
fn damaged_checkpoints_are_refused_with_the_file_and_the_reason() {
    let _guard = exclusive();
    let dir = scratch("damaged");
    let mut t = trainer(small(Algo::Ppo));
    run(&mut t, 1);
    let path = t.save_checkpoint(&dir).unwrap_or_else(|e| panic!("{e}"));
    let original = std::fs::read(&path).unwrap_or_else(|e| panic!("{e}"));
    let json = path.with_extension("json");
    let state = std::fs::read(&json).unwrap_or_else(|e| panic!("{e}"));
    let with = |change: &dyn Fn(&mut Tensors)| {
        let mut tensors = Tensor::read_safetensors(&path).unwrap_or_else(|e| panic!("{e}"));
        change(&mut tensors);
        Tensor::write_safetensors(&tensors, &path).unwrap_or_else(|e| panic!("{e}"));
    };
    let replace = |name: &'static str, value: Tensor| {
        move |tensors: &mut Tensors| {
            let slot = tensors.iter_mut().find(|(n, _)| n == name).map(|(_, t)| t);
            *slot.unwrap_or_else(|| panic!("no {name}")) = value.shallow_clone();
        }
    };
    let cases: Vec<Damage> = vec![
        ("random bytes", Box::new(|| std::fs::write(&path, [7u8; 300]).unwrap_or_default()), "do not parse"),
        ("no tensors", Box::new(|| std::fs::write(&path, []).unwrap_or_default()), "do not parse"),
        (
            "empty step count",
            Box::new(|| with(&replace("adam.steps", Tensor::from_slice::<i64>(&[])))),
            "`adam.steps` should be one int64",
        ),
        (
            "float step count",
            Box::new(|| with(&replace("adam.steps", Tensor::from_slice(&[3.5f32])))),
            "`adam.steps` should be one int64",
        ),
        (
            "integer weights",
            Box::new(|| with(&replace("actor.head.bias", Tensor::from_slice(&[0i32, 0])))),
            "`actor.head.bias` is Int in the checkpoint",
        ),
        (
            "negative second moment",
            Box::new(|| {
                with(&|tensors| {
                    for (name, t) in tensors.iter_mut() {
                        if name.starts_with("adam.exp_avg_sq") {
                            let _ = t.fill_(-1.0);
                        }
                    }
                })
            }),
            "holds negative values",
        ),
        (
            "no optimiser",
            Box::new(|| with(&|tensors| tensors.retain(|(n, _)| !n.starts_with("adam")))),
            "lacks `adam.steps` (state of the optimiser `adam`)",
        ),
        (
            "a stranger's latest",
            Box::new(|| std::fs::write(dir.join("latest"), "../../etc/passwd").unwrap_or_default()),
            "where a checkpoint name is iter_NNNNNN",
        ),
        (
            "a garbage env snapshot",
            Box::new(|| {
                let mut value: Value = serde_json::from_slice(&state).unwrap_or_default();
                value["envs"] = json!({"garbage": true});
                std::fs::write(&json, value.to_string()).unwrap_or_default();
            }),
            "iter_000001.json is not a valid checkpoint",
        ),
    ];
    for (what, damage, needle) in cases {
        std::fs::write(&path, &original).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(&json, &state).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.join("latest"), "iter_000001").unwrap_or_else(|e| panic!("{e}"));
        damage();
        let err = trainer(small(Algo::Ppo)).load_checkpoint(&dir).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("is not a valid checkpoint") && err.contains(needle), "{what}: {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Evaluation episodes end at a step cap: the env's own, else 10000 steps (an env made without
/// an episode limit would otherwise never end), or the caller's.
#[test]
fn evaluation_caps_episodes_and_reports_truncation() {
    let _guard = exclusive();
    let mut uncapped = Map::new();
    uncapped.insert("max_episode_steps".into(), Value::Null);
    let config = {
        let mut c = small(Algo::Ppo);
        c.run.env_id = "keel/Pendulum-v1".into();
        c.run.env_config = uncapped;
        c
    };
    let mut t = trainer(config);
    let options = EvalOptions { episodes: 2, deterministic: true, seed: 5, max_episode_steps: None };
    let e = t.evaluate(&options).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(e.step_cap, DEFAULT_STEP_CAP);
    assert!(e.episodes.iter().all(|ep| ep.length == DEFAULT_STEP_CAP && ep.truncated), "{e:?}");
    let e = t.evaluate(&EvalOptions { max_episode_steps: Some(25), ..options }).unwrap_or_else(|e| panic!("{e}"));
    assert!(e.episodes.iter().all(|ep| ep.length == 25 && ep.truncated) && e.truncated() == 2);
    let mut cartpole = trainer(small(Algo::Ppo));
    let e = cartpole.evaluate(&options).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(e.step_cap, 500);
    assert!(!e.deployed);
}

/// A checkpoint holds the latest episodes, not every episode of the run, so it stays the same
/// size however long the run; the episode count survives a resume.
#[test]
fn checkpoints_keep_a_bounded_window_of_episodes() {
    let _guard = exclusive();
    let mut config = small(Algo::Ppo);
    // Episodes of 2 steps: 256 of them in 8 iterations of 2 x 32 steps.
    config.run.env_config.insert("max_episode_steps".into(), json!(2));
    let mut t = trainer(config.clone());
    let mut reported = 0;
    while !t.finished() {
        reported += t.iteration_step().unwrap_or_else(|e| panic!("{e}")).episodes;
    }
    assert_eq!((t.episode_count(), reported), (256, 256));
    let window = keel_agents::collect::RECENT_EPISODES;
    assert_eq!(t.episodes().len(), window);
    assert_eq!(t.episodes().last().map(|e| e.global_step), Some(t.global_step()));
    let dir = scratch("bounded-episodes");
    t.save_checkpoint(&dir).unwrap_or_else(|e| panic!("{e}"));
    let json = std::fs::read_to_string(dir.join("iter_000008.json")).unwrap_or_else(|e| panic!("{e}"));
    let state: Value = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(state["episodes"].as_array().map(Vec::len), Some(window));
    let mut resumed = trainer(config);
    resumed.load_checkpoint(&dir).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((resumed.episode_count(), resumed.episodes()), (256, t.episodes()));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A checkpoint that contradicts its name or the run it is loaded into is refused, naming the
/// file: another algorithm's, an iteration other than its name's, a `global_step` that is not
/// its iterations' steps.
#[test]
fn contradictory_checkpoints_are_refused() {
    let _guard = exclusive();
    let mut t = trainer(small(Algo::Ppo));
    run(&mut t, 2);
    let dir = scratch("contradictions");
    t.save_checkpoint(&dir).unwrap_or_else(|e| panic!("{e}"));
    let err =
        |config: PpoConfig| trainer(config).load_checkpoint(&dir).err().map(|e| e.to_string()).unwrap_or_default();
    let other = err(small(Algo::Dppo));
    assert!(other.contains("iter_000002.json") && other.contains("`ppo` run"), "{other}");
    assert!(err(small(Algo::Ppo)).is_empty());
    let json = dir.join("iter_000002.json");
    let original = std::fs::read_to_string(&json).unwrap_or_else(|e| panic!("{e}"));
    let mut state: Value = serde_json::from_str(&original).unwrap_or_else(|e| panic!("{e}"));
    state["iteration"] = json!(3);
    std::fs::write(&json, state.to_string()).unwrap_or_else(|e| panic!("{e}"));
    assert!(err(small(Algo::Ppo)).contains("iteration 3"), "{}", err(small(Algo::Ppo)));
    state["iteration"] = json!(2);
    state["global_step"] = json!(5);
    std::fs::write(&json, state.to_string()).unwrap_or_else(|e| panic!("{e}"));
    assert!(err(small(Algo::Ppo)).contains("global_step 5"), "{}", err(small(Algo::Ppo)));
    let _ = std::fs::remove_dir_all(&dir);
}

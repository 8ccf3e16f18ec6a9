//! The history encoder on `keel/HumanoidTrack-v1` with a history observation: trained with the
//! policy, or pretrained on the clips and frozen; exact resume either way; the config checks
//! against the env. Needs the humanoid data (scripts/setup.sh); skipped with a note without it,
//! unless `KEEL_REQUIRE_HUMANOID_DATA=1`.

use keel_agents::history::{HistoryEncoderConfig, PretrainConfig};
use keel_agents::ppo::{Algo, PpoConfig, PpoTrainer};
use keel_agents::tch::Tensor;
use serde_json::{Map, Value, json};

const ENV: &str = "keel/HumanoidTrack-v1";

/// libtorch's random generator is global to the process: runs compared bit for bit must not
/// interleave.
static TORCH_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn exclusive() -> std::sync::MutexGuard<'static, ()> {
    TORCH_RNG.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Whether the humanoid's data is here (registering the family first).
fn available() -> bool {
    keel_envs::humanoid::register().unwrap_or_else(|e| panic!("{e}"));
    !keel_envs::testing::Data::Humanoid.missing(ENV, &keel_envs::make(ENV, &Map::new()))
}

fn env_config(history_len: usize) -> Map<String, Value> {
    let mut c = Map::new();
    c.insert("residual_actions".into(), true.into());
    c.insert("history_len".into(), history_len.into());
    c.insert("history_stride".into(), 2.into());
    c
}

fn config(pretrain: Option<PretrainConfig>) -> PpoConfig {
    {
        let mut c = PpoConfig {
            algo: Algo::Ppo,
            num_steps: 32,
            num_minibatches: 2,
            update_epochs: 2,
            total_timesteps: 2 * 32 * 4,
            hidden_sizes: vec![32],
            init_log_std: -1.6,
            history_encoder: Some(HistoryEncoderConfig {
                frames: 4,
                channels: vec![16, 8],
                kernel_sizes: vec![2, 2],
                output_dim: 4,
                pretrain,
                ..HistoryEncoderConfig::default()
            }),
            ..PpoConfig::default()
        };
        c.run.env_id = ENV.into();
        c.run.env_config = env_config(4);
        c.run.num_envs = 2;
        c.run.normalize_obs = true;
        c.run.checkpoint_every = 1000;
        c
    }
}

fn trainer(config: PpoConfig) -> PpoTrainer {
    PpoTrainer::new(config).unwrap_or_else(|e| panic!("{e}"))
}

fn run(t: &mut PpoTrainer, iterations: usize) {
    for _ in 0..iterations {
        t.iteration_step().unwrap_or_else(|e| panic!("{e}"));
    }
}

fn parameter(t: &PpoTrainer, name: &str) -> Tensor {
    t.parameters().into_iter().find(|(n, _)| n == name).map(|(_, v)| v.copy()).unwrap_or_else(|| panic!("{name}"))
}

/// Trains `config` 1 iteration, saves a checkpoint and trains 1 more; a trainer rebuilt from
/// the config and the checkpoint trains its 1 more to every parameter, episode and step equal.
/// Returns the first trainer and its parameters before training.
///
/// (The continued run, not a second straight one, is the reference: two constructions in one
/// process after other libtorch work can differ in the last bit of an orthogonal init, which
/// says nothing about resuming; `tests/cli/humanoid.rs` compares straight and resumed runs, each in its
/// own process.)
fn continued_and_resumed(config: PpoConfig, name: &str) -> (PpoTrainer, Vec<(String, Tensor)>) {
    let dir = std::env::temp_dir().join(format!("keel-history-{}-{name}", std::process::id()));
    let mut first = trainer(config.clone());
    let initial: Vec<(String, Tensor)> = first.parameters().into_iter().map(|(n, t)| (n, t.copy())).collect();
    run(&mut first, 1);
    first.save_checkpoint(&dir).unwrap_or_else(|e| panic!("{e}"));
    run(&mut first, 1);
    let mut resumed = trainer(config);
    assert_eq!(resumed.load_checkpoint(&dir).unwrap_or_else(|e| panic!("{e}")), 1);
    run(&mut resumed, 1);
    for ((na, ta), (nb, tb)) in first.parameters().iter().zip(resumed.parameters().iter()) {
        assert_eq!(na, nb);
        assert!(ta.equal(tb), "{name}: `{na}` differs after resume");
    }
    assert_eq!(first.episodes(), resumed.episodes());
    assert_eq!(first.global_step(), resumed.global_step());
    let _ = std::fs::remove_dir_all(&dir);
    (first, initial)
}

fn changed(trainer: &PpoTrainer, initial: &[(String, Tensor)], name: &str) -> bool {
    let before = initial.iter().find(|(n, _)| n == name).map(|(_, t)| t).unwrap_or_else(|| panic!("{name}"));
    !parameter(trainer, name).equal(before)
}

#[test]
fn an_encoder_trained_with_the_policy_learns_and_resumes_exactly() {
    if !available() {
        return;
    }
    let _guard = exclusive();
    let (trained, initial) = continued_and_resumed(config(None), "trained");
    // The encoder is in the network and gets gradients: its weights moved, as the MLPs' did.
    assert!(changed(&trained, &initial, "history.conv0.weight"));
    assert!(changed(&trained, &initial, "history.dense.weight"));
    assert!(changed(&trained, &initial, "actor.l0.weight"));
    // The MLPs read 227 numbers besides the slice, plus the 4-number encoding.
    assert_eq!(parameter(&trained, "actor.l0.weight").size(), [32, 227 + 4]);
    assert_eq!(parameter(&trained, "history.conv0.weight").size(), [16, 226, 2]);
    // Its standardisation is the identity (the running normaliser covers the slice).
    assert!(
        parameter(&trained, "history.inv_std")
            .equal(&Tensor::ones([226], (keel_agents::tch::Kind::Float, keel_agents::tch::Device::Cpu)))
    );
}

#[test]
fn a_pretrained_encoder_is_frozen_and_resumes_exactly() {
    if !available() {
        return;
    }
    let _guard = exclusive();
    let pretrain = PretrainConfig { clips: vec!["walk".into(), "run".into()], epochs: 30, ..PretrainConfig::default() };
    let config = config(Some(pretrain));
    let (trained, initial) = continued_and_resumed(config.clone(), "pretrained");
    // Frozen: the encoder is exactly as pretraining left it; the MLPs trained.
    for name in ["history.conv0.weight", "history.conv1.bias", "history.dense.weight", "history.mean"] {
        assert!(!changed(&trained, &initial, name), "{name} moved");
    }
    assert!(changed(&trained, &initial, "actor.l0.weight"));
    // Pretraining learned the next frame: far better than before, and than copying the frame.
    let report = trained.algorithm().pretrain_report().cloned().unwrap_or_else(|| panic!("no report"));
    assert!(report.final_loss < 0.5 * report.initial_loss, "{report:?}");
    assert!(report.final_loss < report.copy_loss, "{report:?}");
    // walk (38 steps of the loop) and run: every step but each clip's last is a sample.
    assert!(report.samples > 50, "{report:?}");
    // It keeps the clip frames' statistics (the root height's mean is that of a walk and a run).
    let mean = Vec::<f32>::try_from(&parameter(&trained, "history.mean")).unwrap_or_default();
    assert!((0.6..1.0).contains(&mean[0]), "{}", mean[0]);
}

#[test]
fn the_encoder_table_is_checked_against_the_env() {
    if !available() {
        return;
    }
    // Building a trainer seeds libtorch's global generator: not while another test trains.
    let _guard = exclusive();
    let error = |c: PpoConfig| PpoTrainer::new(c).err().map(|e| e.to_string()).unwrap_or_default();
    // No history observation.
    let mut c = config(None);
    c.run.env_config.remove("history_len");
    let err = error(c);
    assert!(err.contains("history_len") && err.contains("history_encoder"), "{err}");
    // Frames that are not the env's.
    let mut c = config(None);
    c.run.env_config = env_config(6);
    let err = error(c);
    assert!(err.contains("history_encoder.frames") && err.contains("history_len = 6"), "{err}");
    // Frames of another size.
    let mut c = config(None);
    if let Some(h) = &mut c.history_encoder {
        h.frame_dim = 200;
    }
    let err = error(c);
    assert!(err.contains("history_encoder.frame_dim") && err.contains("226"), "{err}");
    // An env without a history option.
    let c = {
        let mut c = config(None);
        c.run.env_id = "keel/CartPole-v1".into();
        c.run.env_config = Map::new();
        c
    };
    let err = error(c);
    assert!(err.contains("history_encoder"), "{err}");
    // The Nature CNN takes none; bad fields are named.
    let c = {
        let mut c = PpoConfig { network: keel_agents::ppo::Network::NatureCnn, ..config(None) };
        c.run.normalize_obs = false;
        c
    };
    assert!(error(c).contains("history_encoder"));
    let overrides = [("history_encoder".to_string(), json!({"frames": 4, "kernel_sizes": [3, 3, 3]}))];
    let err = config(None).with_overrides(&overrides).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("history_encoder.kernel_sizes"), "{err}");
    let pretrain = PretrainConfig { clips: vec!["moonwalk".into()], epochs: 1, ..PretrainConfig::default() };
    let err = error(config(Some(pretrain)));
    assert!(err.contains("moonwalk"), "{err}");
}

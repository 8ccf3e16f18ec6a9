//! Training from Rust, as docs/training.md shows it: PPO on CartPole with start states drawn by a
//! reset sampler, then a checkpoint and an evaluation.
//! `cargo run --release -p keel-agents --example train`

use keel_agents::eval::EvalOptions;
use keel_agents::{PpoConfig, PpoTrainer};
use keel_curricula::{UniformStartState, UniformStartStateConfig};

fn main() -> keel_agents::Result<()> {
    // Defaults, then overrides as `keel train` applies them (TOML or key/value pairs).
    let overrides = PpoConfig::toml_overrides("total_timesteps = 8192\nnum_envs = 4\nenv_workers = 2")?;
    let config = PpoConfig::default().with_overrides(&overrides)?;
    // A reset sampler given directly (a `[sampler]` table in the config does the same).
    let starts = UniformStartStateConfig {
        low: vec![-0.5, -0.1, -0.1, -0.1],
        high: vec![0.5, 0.1, 0.1, 0.1],
        ..Default::default()
    };
    let mut trainer = PpoTrainer::with_sampler(config, Some(Box::new(UniformStartState::new(starts, 7))))?;
    while !trainer.finished() {
        let stats = trainer.iteration_step()?;
        println!("{} {:.1} {:?}", stats.iteration, stats.episodic_return, stats.metric("approx_kl"));
    }
    let dir = std::env::temp_dir().join("keel-example-checkpoints");
    trainer.save_checkpoint(&dir)?;
    let options = EvalOptions { episodes: 5, deterministic: true, seed: 100, max_episode_steps: None };
    println!("{:?}", trainer.evaluate(&options)?.returns());
    Ok(())
}

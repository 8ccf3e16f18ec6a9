//! `keel demo`: episodes of a trained policy from a run folder, written as an expert
//! demonstration (safetensors: states, observations, actions, rewards; see
//! `keel_agents::demo`), what `keel train --algo ild` and `--algo bc` learn from.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;
use keel_agents::recorder::DemoOptions;
use keel_agents::run_dir::RunDir;

/// Arguments of `keel demo`.
#[derive(Args)]
pub struct DemoArgs {
    /// Run folder (from `keel train`); its latest checkpoint plays.
    #[arg(long, value_name = "DIR")]
    run: PathBuf,
    /// Episodes to record.
    #[arg(long, default_value_t = 1, allow_negative_numbers = true)]
    episodes: usize,
    /// Steps per episode (every episode must last that long).
    #[arg(long, default_value_t = 128, allow_negative_numbers = true)]
    steps: usize,
    /// Seed of the first episode (episode k gets seed + k).
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    seed: u64,
    /// Sample the policy instead of playing its mode.
    #[arg(long)]
    sample: bool,
    /// Where to write the demo (.safetensors).
    #[arg(long, value_name = "FILE.safetensors")]
    out: PathBuf,
}

/// Runs `keel demo`.
pub fn run(args: &DemoArgs) -> Result<()> {
    if args.episodes == 0 {
        bail!("--episodes must be positive");
    }
    if args.steps == 0 {
        bail!("--steps must be positive");
    }
    // Four float32 values per step and element is a generous bound of what is kept.
    let cells = args.episodes as u128 * args.steps as u128;
    keel_envs::memory::check("--episodes x --steps", cells, cells * 4096)
        .map_err(|e| anyhow::anyhow!("{}", e.message))?;
    crate::checks::output_file(&args.out, "--out")?;
    let mut run = crate::train::reopen(&RunDir::new(&args.run), &[])?;
    let options =
        DemoOptions { episodes: args.episodes, steps: args.steps, seed: args.seed, deterministic: !args.sample };
    let demo = run.demonstrate(&options)?;
    demo.write(&args.out)?;
    out!(
        "keel demo: {} episode(s) of {} steps of {} ({}), mean return {:.2}{}",
        args.episodes,
        args.steps,
        demo.env_id,
        if args.sample { "sampled" } else { "deterministic" },
        demo.mean_return(),
        if demo.states.is_some() { "" } else { "; the env exposes no state, so the demo has none" }
    );
    out!("demo: {}", args.out.display());
    Ok(())
}

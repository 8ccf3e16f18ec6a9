//! `keel td`: linear TD(0) and PFPE (TD with a target copy refreshed every k updates) on
//! Baird's star counterexample, the critical target period of the expected update, and the
//! stability map (`stability`, in [`crate::stability`]).

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};
use keel_agents::td::{self, LinearProblem, TdConfig};
use keel_envs::baird::BairdConfig;

/// Arguments of `keel td`.
#[derive(Args)]
pub struct TdArgs {
    #[command(subcommand)]
    command: TdCommand,
}

#[derive(Subcommand)]
enum TdCommand {
    /// Run TD (k = 1) or PFPE (k > 1) on keel/Baird-v0 from Sutton & Barto's initial weights;
    /// writes ‖Φw‖ over time and ρ(M_k) as JSON.
    Baird(BairdArgs),
    /// Print the smallest target period k with ρ(M_k) < 1 on Baird's star (expected updates).
    Critical(CriticalArgs),
    /// Sweep target period × learning rate over seeds (linear TD on keel/Baird-v0, DQN on other
    /// envs): divergence rate and final value per cell, as CSV and a PNG heat map.
    Stability(crate::stability::StabilityArgs),
}

#[derive(Args)]
struct BairdArgs {
    /// Target period k (1 = TD(0)).
    #[arg(long, default_value_t = 1)]
    k: u64,
    /// Step size α.
    #[arg(long, default_value_t = 0.01, allow_negative_numbers = true)]
    alpha: f64,
    /// Number of updates.
    #[arg(long, default_value_t = 100_000)]
    steps: u64,
    /// Expected updates (the whole state distribution) instead of sampled transitions.
    #[arg(long)]
    expected: bool,
    /// Heavy-ball momentum β in [0, 1).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    momentum: f64,
    /// Seed of the sampled transitions.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output JSON file.
    #[arg(long, value_name = "FILE.json")]
    out: PathBuf,
}

#[derive(Args)]
struct CriticalArgs {
    /// Step size α.
    #[arg(long, allow_negative_numbers = true)]
    alpha: f64,
    /// Heavy-ball momentum β in [0, 1).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    momentum: f64,
    /// Largest k searched.
    #[arg(long, default_value_t = 1_000_000)]
    max_k: u64,
}

/// Runs `keel td`.
pub fn run(args: &TdArgs) -> Result<()> {
    let env = BairdConfig::default();
    match &args.command {
        TdCommand::Baird(a) => {
            crate::checks::output_file(&a.out, "--out")?;
            let config = TdConfig {
                target_period: a.k,
                alpha: a.alpha,
                momentum: a.momentum,
                steps: a.steps,
                expected: a.expected,
                seed: a.seed,
                record_every: 0,
            };
            config.validate()?;
            let run = if a.expected { td::run_expected(&config, &env)? } else { td::run_sampled(&config, &env)? };
            if !(run.rho_period.is_finite() && run.rho_td.is_finite()) {
                anyhow::bail!(
                    "--alpha {:e}: the iteration matrix overflows (its spectral radius is not finite)",
                    a.alpha
                );
            }
            crate::write_atomically(&a.out, serde_json::to_string_pretty(&run)?.as_bytes())?;
            out!(
                "k = {}, α = {}: ‖Φw‖ = {:.4e} after {} updates; ρ(M_k) = {:.6}, ρ(TD) = {:.6}",
                a.k,
                a.alpha,
                run.final_norm,
                run.steps_done,
                run.rho_period,
                run.rho_td
            );
        }
        TdCommand::Stability(a) => crate::stability::run(a)?,
        TdCommand::Critical(a) => {
            let problem = LinearProblem::baird(&env);
            match td::critical_period(&problem, a.alpha, a.momentum, a.max_k)? {
                Some(k) => out!("{k}"),
                None => anyhow::bail!("no k ≤ {} has ρ(M_k) < 1 at α = {}", a.max_k, a.alpha),
            }
        }
    }
    Ok(())
}

//! `keel baseline`: run a model-based controller (zero, LQR, LQG) for some episodes and report
//! the episodic cost (minus the return).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use keel_envs::baselines::{Controller, run_episode_until};
use keel_envs::space::DType;
use serde::Serialize;
use serde_json::{Map, Value};

/// The controllers `keel baseline` knows.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ControllerName {
    /// No input: the uncontrolled cost.
    Zero,
    /// Full-state linear–quadratic regulator (discrete Riccati equation).
    Lqr,
    /// LQR on a steady-state Kalman estimate from the observations.
    Lqg,
}

impl ControllerName {
    fn as_str(self) -> &'static str {
        match self {
            ControllerName::Zero => "zero",
            ControllerName::Lqr => "lqr",
            ControllerName::Lqg => "lqg",
        }
    }
}

/// Arguments of `keel baseline`.
#[derive(Args)]
pub struct BaselineArgs {
    /// Environment id: keel/Linear-v0, keel/ConvectionDiffusionReaction-v0, keel/Wave-v0,
    /// keel/Schrodinger-v0 (any env for `zero`).
    #[arg(long)]
    env: String,
    /// Config override `key=value` (repeatable), e.g. `system=he1`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Which controller.
    #[arg(long, value_enum)]
    controller: ControllerName,
    /// Number of episodes, seeded `seed`, `seed + 1`, ... (wrapping at 2^64).
    #[arg(long, default_value_t = 10, allow_negative_numbers = true)]
    episodes: u64,
    /// Seed of the first episode.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    seed: u64,
    /// Also write the results as JSON to this file (without it, nothing is written).
    #[arg(long, value_name = "FILE.json")]
    out: Option<PathBuf>,
}

#[derive(Serialize)]
struct EpisodeRecord {
    seed: u64,
    cost: f64,
    steps: u64,
    terminated: bool,
}

#[derive(Serialize)]
struct Report {
    env: String,
    config: Map<String, Value>,
    controller: &'static str,
    episodes: Vec<EpisodeRecord>,
    mean_cost: f64,
    std_cost: f64,
    /// Relative residual of the Riccati solution behind the gain (LQR, LQG).
    #[serde(skip_serializing_if = "Option::is_none")]
    riccati_residual: Option<f64>,
    /// Spectral radius of the closed loop A + BK (LQR, LQG).
    #[serde(skip_serializing_if = "Option::is_none")]
    closed_loop_spectral_radius: Option<f64>,
}

/// Most states of a model-based design: LQR and LQG solve dense n × n Riccati equations
/// (iterations of O(n³) work): 5 s at 512 states, tens of seconds at this size, many minutes at
/// 3000.
pub const MAX_MODEL_STATES: usize = 1024;

/// Refuses a model of more than [`MAX_MODEL_STATES`] states, naming the `--set` that sized it.
fn check_model_size(states: usize, set: &[String]) -> Result<()> {
    if states > MAX_MODEL_STATES {
        let given = set.iter().find(|s| s.trim_start().starts_with("n_state"));
        let given = given.map_or(String::new(), |s| format!("--set {s}: "));
        bail!(
            "{given}the model has {states} states; LQR and LQG solve dense Riccati equations of at most {MAX_MODEL_STATES} states"
        );
    }
    Ok(())
}

/// Runs `keel baseline`.
pub fn run(args: &BaselineArgs) -> Result<()> {
    if args.episodes == 0 {
        bail!("--episodes must be positive");
    }
    if let Some(path) = &args.out {
        crate::checks::output_file(path, "--out")?;
    }
    let record = std::mem::size_of::<EpisodeRecord>() as u128;
    keel_envs::memory::check("--episodes", u128::from(args.episodes), u128::from(args.episodes) * record)
        .map_err(|e| anyhow::anyhow!("{}", e.message))?;
    let config = crate::overrides_from(&args.set)?;
    let name = args.controller.as_str();
    let mut env = keel_envs::make(&args.env, &config)?;
    let spec = env.spec().clone();
    if !matches!(spec.action_space.box_dtype(), Some(DType::Float32 | DType::Float64)) {
        bail!(
            "--controller {name}: the controllers give real-valued inputs and need a Box action space of floats; \
             {} has {}",
            args.env,
            spec.action_space.describe()
        );
    }
    // An env without a model gets the design's own error below, whatever its size.
    if !matches!(args.controller, ControllerName::Zero) && keel_envs::baselines::MODELLED.contains(&args.env.as_str()) {
        check_model_size(spec.state_len.unwrap_or(0), &args.set)?;
    }
    let controller =
        Controller::design(name, &args.env, &config).with_context(|| format!("{name} for {}", args.env))?;
    let riccati = match &controller {
        Controller::Zero => None,
        Controller::Lqr(lqr) | Controller::Lqg { lqr, .. } => Some(&lqr.riccati),
    };
    let Some(max_steps) = spec.max_episode_steps else {
        bail!("{} has no time limit, so an episode may never end; give one with --set max_episode_steps=N", args.env);
    };
    crate::interrupt::install();
    let bar = indicatif::ProgressBar::new(args.episodes);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} episodes  [{elapsed_precise} < {eta_precise}]")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut episodes = Vec::new();
    for k in 0..args.episodes {
        crate::interrupt::check()?;
        let seed = args.seed.wrapping_add(k);
        let e = run_episode_until(env.as_mut(), &controller, seed, max_steps, crate::interrupt::requested)
            .with_context(|| format!("episode {k}"))?;
        // Ctrl-C during an episode (its cap may be any length) ends it there.
        crate::interrupt::check()?;
        episodes.push(EpisodeRecord { seed, cost: e.cost, steps: e.steps, terminated: e.terminated });
        bar.inc(1);
    }
    bar.finish_and_clear();
    let costs: Vec<f64> = episodes.iter().map(|e| e.cost).collect();
    let (mean, std) = crate::mean_std(&costs);
    let steps = episodes.first().map_or(0, |e| e.steps);
    let diverged = episodes.iter().filter(|e| e.terminated).count();
    let settings = if args.set.is_empty() { String::new() } else { format!(" ({})", args.set.join(", ")) };
    out!(
        "{}{settings}, {name}: episodic cost {mean:.6e} ± {std:.3e} (mean ± std over {} episodes of {steps} steps{})",
        args.env,
        episodes.len(),
        if diverged > 0 { format!(", {diverged} diverged") } else { String::new() }
    );
    if let Some(r) = riccati {
        out!("Riccati residual {:.2e}, closed-loop spectral radius {:.6}", r.residual, r.spectral_radius);
    }
    let report = Report {
        env: args.env.clone(),
        config,
        controller: name,
        episodes,
        mean_cost: mean,
        std_cost: std,
        riccati_residual: riccati.map(|r| r.residual),
        closed_loop_spectral_radius: riccati.map(|r| r.spectral_radius),
    };
    if let Some(path) = &args.out {
        crate::write_atomically(path, serde_json::to_string_pretty(&report)?.as_bytes())?;
        out!("wrote {}", path.display());
    }
    Ok(())
}

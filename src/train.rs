//! `keel train` and `keel eval`: PPO / D-PPO runs and their run folders.
//!
//! A run folder holds `config.toml` (the resolved config), `metrics.csv` (one row per
//! iteration), TensorBoard event files, `checkpoints/` (`iter_NNNNNN.safetensors` + `.json`,
//! `latest`), `summary.json` and `learning_curve.png`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use keel_agents::ppo::{Algo, Episode, IterationStats, PpoConfig, Trainer};
use keel_agents::tensorboard::EventWriter;
use serde::Serialize;
use serde_json::Value;

/// Default configs per env, embedded so `keel train --env ID` works from anywhere.
const FAMILY_CONFIGS: &[(&str, &str)] = &[
    ("keel/CartPole-v1", include_str!("../configs/ppo_cartpole.toml")),
    ("keel/Acrobot-v1", include_str!("../configs/ppo_acrobot.toml")),
    ("keel/Pendulum-v1", include_str!("../configs/ppo_pendulum.toml")),
    ("keel/MountainCarContinuous-v0", include_str!("../configs/ppo_mountaincar_continuous.toml")),
    ("keel/ConvectionDiffusionReaction-v0", include_str!("../configs/ppo_cdr.toml")),
    ("keel/PerformativeGrid-v0", include_str!("../configs/ppo_performative.toml")),
];

/// Arguments of `keel train`.
#[derive(Args)]
pub struct TrainArgs {
    /// `ppo` or `dppo`.
    #[arg(long, default_value = "ppo")]
    algo: String,
    /// Environment id (default keel/CartPole-v1).
    #[arg(long)]
    env: Option<String>,
    /// TOML file of config fields, applied over the env's defaults (see configs/).
    #[arg(long, value_name = "FILE.toml")]
    config: Option<PathBuf>,
    /// Config override `key=value` (repeatable; dotted keys for tables: dppo.drop_rate=0.2,
    /// env_config.gravity=9.81).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Environment steps to train for.
    #[arg(long)]
    total_timesteps: Option<u64>,
    /// Parallel envs.
    #[arg(long)]
    num_envs: Option<usize>,
    /// cpu, cuda or auto.
    #[arg(long)]
    device: Option<String>,
    /// Run folder (default runs/<env>_<algo>_s<seed>).
    #[arg(long, value_name = "DIR")]
    run_dir: Option<PathBuf>,
    /// Continue the stopped run in DIR from its latest checkpoint (other flags are ignored).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["env", "config", "set", "seed", "num_envs", "run_dir"])]
    resume: Option<PathBuf>,
    /// Stop after this many iterations in this session (checkpoint written; continue with --resume).
    #[arg(long, value_name = "N")]
    max_iterations: Option<u64>,
    /// No progress bar (for logs and CI).
    #[arg(long)]
    quiet: bool,
}

/// Arguments of `keel eval`.
#[derive(Args)]
pub struct EvalArgs {
    /// Run folder.
    #[arg(long, value_name = "DIR")]
    run: PathBuf,
    /// Episodes to play.
    #[arg(long, default_value_t = 10)]
    episodes: usize,
    /// Play the policy's mode instead of sampling.
    #[arg(long)]
    deterministic: bool,
    /// Seed of the first episode (episode k gets seed + k).
    #[arg(long, default_value_t = 1_000_000)]
    seed: u64,
}

/// `summary.json`.
#[derive(Serialize)]
struct Summary {
    status: String,
    message: Option<String>,
    env_id: String,
    algo: Algo,
    seed: u64,
    global_step: u64,
    iterations: u64,
    episodes: usize,
    /// Mean return of the last 100 training episodes.
    final_return_mean: f64,
    /// Standard deviation of those returns.
    final_return_std: f64,
    wall_time_s: f64,
    sps: f64,
    last_checkpoint: Option<String>,
}

fn final_returns(episodes: &[Episode]) -> (f64, f64) {
    let last: Vec<f64> = episodes.iter().rev().take(100).map(|e| e.episode_return).collect();
    crate::mean_std(&last)
}

/// The config of a new run: defaults, the env's family config, `--config`, `--set`, flags.
fn resolve_config(args: &TrainArgs) -> Result<PpoConfig> {
    let env_id = args.env.clone().unwrap_or_else(|| "keel/CartPole-v1".into());
    keel_envs::registry::lookup(&env_id)?;
    let mut overrides: Vec<(String, Value)> = Vec::new();
    if let Some((_, text)) = FAMILY_CONFIGS.iter().find(|(id, _)| *id == env_id) {
        overrides.extend(PpoConfig::toml_overrides(text)?);
    }
    if let Some(path) = &args.config {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        overrides.extend(PpoConfig::toml_overrides(&text).with_context(|| format!("in {}", path.display()))?);
    }
    overrides.push(("env_id".into(), Value::String(env_id)));
    for pair in &args.set {
        overrides.push(keel_envs::config::parse_key_value(pair).map_err(anyhow::Error::msg)?);
    }
    let algo = match args.algo.as_str() {
        "ppo" | "dppo" => args.algo.clone(),
        other => bail!("--algo must be ppo or dppo, got {other:?}"),
    };
    overrides.push(("algo".into(), Value::String(algo)));
    if let Some(seed) = args.seed {
        overrides.push(("seed".into(), seed.into()));
    }
    if let Some(steps) = args.total_timesteps {
        overrides.push(("total_timesteps".into(), steps.into()));
    }
    if let Some(n) = args.num_envs {
        overrides.push(("num_envs".into(), n.into()));
    }
    if let Some(device) = &args.device {
        overrides.push(("device".into(), Value::String(device.clone())));
    }
    Ok(PpoConfig::default().with_overrides(&overrides)?)
}

fn default_run_dir(config: &PpoConfig) -> PathBuf {
    let name = config.env_id.trim_start_matches("keel/").to_lowercase();
    let algo = match config.algo {
        Algo::Ppo => "ppo",
        Algo::Dppo => "dppo",
    };
    PathBuf::from("runs").join(format!("{name}_{algo}_s{}", config.seed))
}

const METRICS_HEADER: &str = "iteration,global_step,episodic_return,episodic_length,episodes,learning_rate,value_loss,\
policy_loss,entropy,old_approx_kl,approx_kl,clipfrac,explained_variance,surrogate_variance,deviation_variance,kept_fraction,\
policy_shift,sps";

fn metrics_row(s: &IterationStats, sps: f64) -> String {
    format!(
        "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{:.1}",
        s.iteration,
        s.global_step,
        s.episodic_return,
        s.episodic_length,
        s.episodes,
        s.learning_rate,
        s.value_loss,
        s.policy_loss,
        s.entropy,
        s.old_approx_kl,
        s.approx_kl,
        s.clipfrac,
        s.explained_variance,
        s.surrogate_variance,
        s.deviation_variance,
        s.kept_fraction,
        s.policy_shift,
        sps
    )
}

/// Keeps the header and the rows of iterations up to `iteration` (a resumed run rewrites the rest).
fn truncate_metrics(path: &Path, iteration: u64) -> Result<()> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut kept = vec![METRICS_HEADER.to_string()];
    for line in text.lines().skip(1) {
        let it: u64 = line.split(',').next().and_then(|v| v.parse().ok()).unwrap_or(u64::MAX);
        if it <= iteration {
            kept.push(line.to_string());
        }
    }
    std::fs::write(path, kept.join("\n") + "\n").with_context(|| format!("writing {}", path.display()))
}

fn write_summary(dir: &Path, summary: &Summary) -> Result<()> {
    crate::rollout::write_atomically(&dir.join("summary.json"), serde_json::to_string_pretty(summary)?.as_bytes())
}

/// Runs `keel train`.
pub fn run(args: &TrainArgs) -> Result<()> {
    let (config, dir, resuming) = match &args.resume {
        Some(dir) => {
            let path = dir.join("config.toml");
            let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            let mut overrides = PpoConfig::toml_overrides(&text)?;
            if let Some(steps) = args.total_timesteps {
                overrides.push(("total_timesteps".into(), steps.into()));
            }
            (PpoConfig::default().with_overrides(&overrides)?, dir.clone(), true)
        }
        None => {
            let config = resolve_config(args)?;
            let dir = args.run_dir.clone().unwrap_or_else(|| default_run_dir(&config));
            (config, dir, false)
        }
    };
    let checkpoints = dir.join("checkpoints");
    if !resuming && checkpoints.join(keel_agents::ppo::LATEST).exists() {
        bail!("{} already holds a run; use --resume {0} to continue it or choose another --run-dir", dir.display());
    }
    std::fs::create_dir_all(&checkpoints).with_context(|| format!("creating {}", checkpoints.display()))?;
    let mut trainer = Trainer::new(config.clone())?;
    let metrics_path = dir.join("metrics.csv");
    if resuming {
        let iteration = trainer.load_checkpoint(&checkpoints)?;
        truncate_metrics(&metrics_path, iteration)?;
        eprintln!("keel train: resumed {} at iteration {iteration}", dir.display());
    } else {
        crate::rollout::write_atomically(&dir.join("config.toml"), config.to_toml()?.as_bytes())?;
        std::fs::write(&metrics_path, format!("{METRICS_HEADER}\n"))?;
    }
    let mut metrics = std::fs::OpenOptions::new().append(true).open(&metrics_path)?;
    let mut events = EventWriter::create(&dir).context("creating the TensorBoard event file")?;

    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = Arc::clone(&stop);
        // First Ctrl-C: finish the iteration, checkpoint, summarise. Second: leave at once.
        let _ = ctrlc::set_handler(move || {
            if stop.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
        });
    }

    let total = config.num_iterations();
    let bar = if args.quiet { indicatif::ProgressBar::hidden() } else { indicatif::ProgressBar::new(total) };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} it  {msg}  [{elapsed_precise} < {eta_precise}]")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_position(trainer.iteration());
    let started = Instant::now();
    let first_step = trainer.global_step();
    let mut last_checkpoint: Option<PathBuf> = None;
    let mut session_iterations = 0u64;
    let (status, message) = loop {
        if trainer.finished() {
            break ("completed", None);
        }
        if stop.load(Ordering::SeqCst) {
            break ("interrupted", Some("stopped by Ctrl-C; continue with --resume".to_string()));
        }
        if args.max_iterations.is_some_and(|m| session_iterations >= m) {
            break ("stopped", Some(format!("stopped after {session_iterations} iterations; continue with --resume")));
        }
        let stats = match trainer.iteration_step() {
            Ok(stats) => stats,
            Err(keel_agents::AgentError::Diverged { iteration, what }) => {
                let kept = last_checkpoint.as_ref().map_or("none".to_string(), |p| p.display().to_string());
                break (
                    "diverged",
                    Some(format!("diverged at iteration {iteration} ({what}); last good checkpoint: {kept}")),
                );
            }
            Err(e) => return Err(e.into()),
        };
        session_iterations += 1;
        let sps = (trainer.global_step() - first_step) as f64 / started.elapsed().as_secs_f64().max(1e-9);
        writeln!(metrics, "{}", metrics_row(&stats, sps))?;
        events.scalars(
            stats.global_step,
            &[
                ("charts/episodic_return", stats.episodic_return),
                ("charts/episodic_length", stats.episodic_length),
                ("charts/learning_rate", stats.learning_rate),
                ("charts/SPS", sps),
                ("losses/value_loss", stats.value_loss),
                ("losses/policy_loss", stats.policy_loss),
                ("losses/entropy", stats.entropy),
                ("losses/approx_kl", stats.approx_kl),
                ("losses/clipfrac", stats.clipfrac),
                ("losses/explained_variance", stats.explained_variance),
                ("losses/surrogate_variance", stats.surrogate_variance),
                ("losses/deviation_variance", stats.deviation_variance),
                ("losses/kept_fraction", stats.kept_fraction),
            ],
        )?;
        let (recent, _) = final_returns(trainer.episodes());
        bar.set_position(trainer.iteration());
        bar.set_message(format!("{:.0} SPS  return(100) {recent:.1}", sps));
        if trainer.iteration() % config.checkpoint_every == 0 {
            last_checkpoint = Some(trainer.save_checkpoint(&checkpoints)?);
        }
    };
    bar.finish_and_clear();
    metrics.flush()?;
    events.flush()?;
    if status != "diverged" {
        last_checkpoint = Some(trainer.save_checkpoint(&checkpoints)?);
    }
    let wall = started.elapsed().as_secs_f64();
    let (mean, std) = final_returns(trainer.episodes());
    let summary = Summary {
        status: status.into(),
        message: message.clone(),
        env_id: config.env_id.clone(),
        algo: config.algo,
        seed: config.seed,
        global_step: trainer.global_step(),
        iterations: trainer.iteration(),
        episodes: trainer.episodes().len(),
        final_return_mean: mean,
        final_return_std: std,
        wall_time_s: wall,
        sps: (trainer.global_step() - first_step) as f64 / wall.max(1e-9),
        last_checkpoint: last_checkpoint.map(|p| p.display().to_string()),
    };
    write_summary(&dir, &summary)?;
    if let Err(e) = crate::learning_curves::learning_curve(&dir) {
        eprintln!("keel train: no plot: {e:#}");
    }
    out!(
        "keel train: {status}: {} steps, final_return_mean {mean:.2} ± {std:.2} (last 100 episodes), {:.0} SPS",
        summary.global_step,
        summary.sps
    );
    out!("run folder: {}", dir.display());
    out!("learning curve: {}", dir.join("learning_curve.png").display());
    match (status, message) {
        ("diverged", Some(m)) => bail!(m),
        _ => Ok(()),
    }
}

/// Runs `keel eval`.
pub fn eval(args: &EvalArgs) -> Result<()> {
    if args.episodes == 0 {
        bail!("--episodes must be positive");
    }
    let path = args.run.join("config.toml");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let config = PpoConfig::default().with_overrides(&PpoConfig::toml_overrides(&text)?)?;
    let mut trainer = Trainer::new(config)?;
    trainer.load_checkpoint(&args.run.join("checkpoints"))?;
    let returns = trainer.evaluate(args.episodes, args.deterministic, args.seed)?;
    let (mean, std) = crate::mean_std(&returns);
    out!(
        "keel eval: {} episodes ({}): return {mean:.2} ± {std:.2}",
        returns.len(),
        if args.deterministic { "deterministic" } else { "sampled" }
    );
    let report = serde_json::json!({
        "episodes": returns.len(),
        "deterministic": args.deterministic,
        "seed": args.seed,
        "iteration": trainer.iteration(),
        "return_mean": mean,
        "return_std": std,
        "returns": returns,
    });
    crate::rollout::write_atomically(&args.run.join("eval.json"), serde_json::to_string_pretty(&report)?.as_bytes())
}

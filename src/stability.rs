//! `keel td stability`: where target-network TD stops being stable. Sweeps target period k ×
//! learning rate over seeds and reports, per cell, the divergence rate and the final value:
//!
//! - on `keel/Baird-v0`, linear TD / PFPE (sampled updates, or `--expected`) from Sutton &
//!   Barto's initial weights; a run diverges when ‖Φw‖ ends above `--diverge-above` (default
//!   1e6) or stops being finite; the final value is ‖Φw‖. With `--model mlp`, the neural
//!   version ([`keel_agents::td_net`]: a 2 × 32 ReLU value network, batches of 500 off-policy
//!   transitions, SGD with `--momentum`), judged the same way on ‖V‖;
//! - on any other env, DQN (`keel train --algo dqn` with `target_network_frequency = k` and
//!   `learning_rate = lr`, over the algorithm's config for the env, `--config` and `--set`), each
//!   run in its own run folder under `OUT/runs/`; a run diverges when its loss stops being finite
//!   or its mean Q-value leaves ±`--diverge-above` (default 10 / (1 − γ): ten times the largest
//!   discounted return of rewards in [−1, 1]); the final value is the mean return of the last
//!   100 training episodes.
//!
//! Writes `OUT/runs.csv` (one row per run), `OUT/cells.csv` (one row per cell: runs, divergence
//! rate, median / min / max final value, and ρ(M_k) on Baird) and `OUT/stability.png` (a heat
//! map). Finished runs are kept: run the same command again after an interruption and only the
//! missing runs train.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use keel_agents::config::toml_overrides;
use keel_agents::registry as algorithms;
use keel_agents::run_dir::RunDir;
use keel_agents::td::{self, LinearProblem, TdConfig};
use keel_agents::td_net::{self, NeuralTdConfig};
use keel_agents::training::{TrainOptions, train};
use keel_envs::baird::{Baird, BairdConfig};
use keel_envs::{Registered, registry};
use serde_json::Value;

use crate::chart::HeatMap;

/// Arguments of `keel td stability`.
#[derive(Args)]
pub struct StabilityArgs {
    /// Environment: keel/Baird-v0 (linear TD / PFPE) or an env with Discrete actions (DQN).
    #[arg(long, default_value = Baird::ID)]
    env: String,
    /// Target periods k, comma-separated (1 = TD with no target network).
    #[arg(long, value_delimiter = ',', default_value = "1,10,100,1000", allow_negative_numbers = true)]
    k: Vec<u64>,
    /// Learning rates (step sizes α on Baird), comma-separated.
    #[arg(long, value_delimiter = ',', allow_negative_numbers = true, required = true)]
    lr: Vec<f64>,
    /// Seeds per cell: 1..=N.
    #[arg(long, default_value_t = 3, allow_negative_numbers = true)]
    seeds: u64,
    /// Updates per run on Baird (default 100000); env steps per run for DQN (default: the
    /// config's total_timesteps).
    #[arg(long, allow_negative_numbers = true)]
    steps: Option<u64>,
    /// Baird: expected updates (deterministic; every seed gives the same run).
    #[arg(long)]
    expected: bool,
    /// Baird: heavy-ball momentum β in [0, 1).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    momentum: f64,
    /// Baird: the value function, linear weights or a 2 × 32 ReLU network (SGD, batches of 500;
    /// default 50000 steps).
    #[arg(long, value_enum, default_value_t = Model::Linear)]
    model: Model,
    /// DQN: TOML file of config fields over the algorithm's defaults for the env.
    #[arg(long, value_name = "FILE.toml")]
    config: Option<PathBuf>,
    /// DQN: config override `key=value` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Divergence threshold: of ‖Φw‖ on Baird (default 1e6), of |mean Q| for DQN (default
    /// 10 / (1 − γ)).
    #[arg(long, allow_negative_numbers = true)]
    diverge_above: Option<f64>,
    /// Output folder.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

/// The value function of a Baird sweep.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Model {
    /// Linear weights on Baird's features (`keel td baird`).
    Linear,
    /// A ReLU network on the same features ([`keel_agents::td_net`]).
    Mlp,
}

/// One run of the sweep.
struct Outcome {
    k: u64,
    lr: f64,
    seed: u64,
    diverged: bool,
    final_value: f64,
    /// DQN: the largest |mean Q-value| of any iteration (NaN on Baird).
    peak_q: f64,
    /// `completed` / `diverged` for DQN; `ok` / `diverged` on Baird.
    status: String,
}

/// The measure a sweep reports per run.
enum Sweep {
    Baird { problem: LinearProblem, env: BairdConfig, steps: u64, threshold: f64 },
    BairdNet { env: BairdConfig, steps: u64, threshold: f64 },
    Dqn { overrides: Vec<(String, Value)>, threshold: f64 },
}

/// Runs `keel td stability`.
pub fn run(args: &StabilityArgs) -> Result<()> {
    if args.k.is_empty() || args.lr.is_empty() {
        bail!("--k and --lr need at least one value each");
    }
    if let Some(&k) = args.k.iter().find(|&&k| k == 0) {
        bail!("--k {k}: a target period must be at least 1 (1 is TD)");
    }
    for &lr in &args.lr {
        td::check_alpha(lr).map_err(|_| anyhow::anyhow!("--lr {lr}: a learning rate must be finite and > 0"))?;
    }
    if args.seeds == 0 || args.seeds > 10_000 {
        bail!("--seeds {}: must lie in 1..=10000", args.seeds);
    }
    if args.steps == Some(0) {
        bail!("--steps must be positive");
    }
    if let Some(t) = args.diverge_above
        && !(t.is_finite() && t > 0.0)
    {
        bail!("--diverge-above {t}: must be finite and > 0");
    }
    check_size(args)?;
    crate::checks::output_folder(&args.out, "--out")?;
    let sweep = prepare(args)?;
    std::fs::create_dir_all(args.out.join("runs")).with_context(|| format!("creating {}", args.out.display()))?;

    let mut outcomes = Vec::new();
    let total = args.k.len() * args.lr.len() * args.seeds as usize;
    crate::interrupt::install();
    for &k in &args.k {
        for &lr in &args.lr {
            for seed in 1..=args.seeds {
                stop_if_interrupted(&sweep, outcomes.len(), total)?;
                let outcome = match &sweep {
                    Sweep::Baird { problem: _, env, steps, threshold } => {
                        baird_run(args, env, k, lr, seed, *steps, *threshold)?
                    }
                    Sweep::BairdNet { env, steps, threshold } => {
                        let config = net_config(args, k, lr, seed, *steps);
                        let run = td_net::run(&config, env)?;
                        judge(k, lr, seed, run.steps_done == *steps, run.final_norm, *threshold)
                    }
                    Sweep::Dqn { overrides, threshold } => dqn_run(args, overrides, k, lr, seed, *threshold)?,
                };
                eprintln!(
                    "keel td stability: [{}/{total}] k = {k}, lr = {lr}, seed {seed}: {} (final {:.4e})",
                    outcomes.len() + 1,
                    outcome.status,
                    outcome.final_value
                );
                // A run that Ctrl-C cut short is not an outcome.
                stop_if_interrupted(&sweep, outcomes.len(), total)?;
                outcomes.push(outcome);
            }
        }
    }
    report(args, &sweep, &outcomes)
}

/// After Ctrl-C: says what was kept and returns [`crate::interrupt::Interrupted`].
fn stop_if_interrupted(sweep: &Sweep, done: usize, total: usize) -> Result<()> {
    if crate::interrupt::requested() {
        let kept = match sweep {
            Sweep::Dqn { .. } => "; finished runs are kept: run the same command again to go on",
            Sweep::Baird { .. } | Sweep::BairdNet { .. } => "; no table or map written",
        };
        eprintln!("keel td stability: stopped after {done} of {total} runs{kept}");
        return Err(crate::interrupt::Interrupted.into());
    }
    Ok(())
}

/// Most runs of one sweep (`--k` values × `--lr` values × `--seeds`).
const MAX_RUNS: u128 = 100_000;

/// Most updates of a Baird sweep in all (runs × `--steps`): about a day of sampled updates.
const MAX_BAIRD_UPDATES: u128 = 100_000_000_000;

/// Refuses a sweep too large to finish: more than [`MAX_RUNS`] runs, or on Baird more than
/// [`MAX_BAIRD_UPDATES`] updates in all, naming the flags that multiply.
fn check_size(args: &StabilityArgs) -> Result<()> {
    let runs = args.k.len() as u128 * args.lr.len() as u128 * u128::from(args.seeds);
    let product = format!("{} --k values × {} --lr values × --seeds {}", args.k.len(), args.lr.len(), args.seeds);
    if runs > MAX_RUNS {
        bail!("{product} = {runs} runs; one sweep runs at most {MAX_RUNS}");
    }
    if args.env == Baird::ID {
        let default = if args.model == Model::Mlp { 50_000 } else { 100_000 };
        let steps = args.steps.unwrap_or(default);
        let updates = runs * u128::from(steps);
        if updates > MAX_BAIRD_UPDATES {
            bail!(
                "{product} = {runs} runs of --steps {steps} = {updates} updates; one sweep makes at most {MAX_BAIRD_UPDATES}"
            );
        }
    }
    Ok(())
}

/// Checks everything a sweep needs before its first run: the env, and for DQN a config that
/// builds with every (k, lr) of the sweep.
fn prepare(args: &StabilityArgs) -> Result<Sweep> {
    if args.env == Baird::ID {
        if args.config.is_some() || !args.set.is_empty() {
            bail!("--config and --set configure DQN runs; keel/Baird-v0 runs linear TD (use --momentum, --expected)");
        }
        let env = BairdConfig::default();
        let threshold = args.diverge_above.unwrap_or(1e6);
        if args.model == Model::Mlp {
            if args.expected {
                bail!("--expected: the network learns from sampled batches (use --model linear)");
            }
            let steps = args.steps.unwrap_or(50_000);
            for &k in &args.k {
                for &lr in &args.lr {
                    net_config(args, k, lr, 1, steps).validate()?;
                }
            }
            return Ok(Sweep::BairdNet { env, steps, threshold });
        }
        let steps = args.steps.unwrap_or(100_000);
        for &k in &args.k {
            for &lr in &args.lr {
                cell_config(args, k, lr, 1, steps).validate()?;
            }
        }
        return Ok(Sweep::Baird { problem: LinearProblem::baird(&env), env, steps, threshold });
    }
    if args.model == Model::Mlp || args.expected || args.momentum != 0.0 {
        bail!("--model, --expected and --momentum are for keel/Baird-v0; DQN takes --config and --set");
    }
    registry::lookup(&args.env)?;
    let dqn = algorithms::lookup("dqn")?;
    let mut overrides = Vec::new();
    if let Some(text) = dqn.env_defaults(&args.env) {
        overrides.extend(toml_overrides(text)?);
    }
    if let Some(path) = &args.config {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        overrides.extend(toml_overrides(&text).with_context(|| format!("{}", path.display()))?);
    }
    for pair in &args.set {
        let (key, value) = crate::checks::parse_set(pair)?;
        if matches!(key.as_str(), "env_id" | "algo" | "seed" | "learning_rate" | "target_network_frequency") {
            bail!("--set {key}: the sweep sets it (use --env, --lr, --k, --seeds)");
        }
        overrides.push((key, value));
    }
    overrides.push(("env_id".into(), Value::String(args.env.clone())));
    if let Some(steps) = args.steps {
        overrides.push(("total_timesteps".into(), steps.into()));
    }
    // Build (and drop) the first cell's run, so a bad config fails before any training.
    let probe = dqn.build(&dqn_overrides(&overrides, args.k[0], args.lr[0], 1))?;
    let gamma = probe_gamma(&probe.config_toml()?);
    let threshold = args.diverge_above.unwrap_or(10.0 / (1.0 - gamma).max(1e-6));
    Ok(Sweep::Dqn { overrides, threshold })
}

/// γ of a resolved DQN config (0.99 if it cannot be read).
fn probe_gamma(config_toml: &str) -> f64 {
    let fields = toml_overrides(config_toml).unwrap_or_default();
    fields.iter().rev().find(|(key, _)| key == "gamma").and_then(|(_, v)| v.as_f64()).unwrap_or(0.99)
}

fn cell_config(args: &StabilityArgs, k: u64, lr: f64, seed: u64, steps: u64) -> TdConfig {
    TdConfig {
        target_period: k,
        alpha: lr,
        momentum: args.momentum,
        steps,
        expected: args.expected,
        seed,
        record_every: 0,
    }
}

fn net_config(args: &StabilityArgs, k: u64, lr: f64, seed: u64, steps: u64) -> NeuralTdConfig {
    NeuralTdConfig {
        target_period: k,
        learning_rate: lr,
        momentum: args.momentum,
        steps,
        seed,
        ..NeuralTdConfig::default()
    }
}

/// A Baird run's outcome: diverged if it stopped early (non-finite) or ended above `threshold`.
fn judge(k: u64, lr: f64, seed: u64, finished: bool, final_norm: f64, threshold: f64) -> Outcome {
    let final_value = if finished { final_norm } else { f64::INFINITY };
    let diverged = !final_value.is_finite() || final_value > threshold;
    let status = if diverged { "diverged" } else { "ok" };
    Outcome { k, lr, seed, diverged, final_value, peak_q: f64::NAN, status: status.into() }
}

fn baird_run(
    args: &StabilityArgs,
    env: &BairdConfig,
    k: u64,
    lr: f64,
    seed: u64,
    steps: u64,
    threshold: f64,
) -> Result<Outcome> {
    let config = cell_config(args, k, lr, seed, steps);
    let run = if args.expected { td::run_expected(&config, env)? } else { td::run_sampled(&config, env)? };
    Ok(judge(k, lr, seed, run.steps_done == steps, run.final_norm, threshold))
}

fn dqn_overrides(base: &[(String, Value)], k: u64, lr: f64, seed: u64) -> Vec<(String, Value)> {
    let mut all = base.to_vec();
    all.push(("target_network_frequency".into(), k.into()));
    all.push(("learning_rate".into(), lr.into()));
    all.push(("seed".into(), seed.into()));
    all
}

fn run_name(k: u64, lr: f64, seed: u64) -> String {
    format!("k{k}_lr{lr}_s{seed}")
}

fn dqn_run(
    args: &StabilityArgs,
    base: &[(String, Value)],
    k: u64,
    lr: f64,
    seed: u64,
    threshold: f64,
) -> Result<Outcome> {
    let dir = RunDir::new(args.out.join("runs").join(run_name(k, lr, seed)));
    let summary_path = dir.path().join("summary.json");
    let finished = std::fs::read_to_string(&summary_path)
        .ok()
        .and_then(|text| serde_json::from_str::<Value>(&text).ok())
        .filter(|s| matches!(s["status"].as_str(), Some("completed" | "diverged")));
    let (status, final_return) = match finished {
        Some(summary) => (
            summary["status"].as_str().unwrap_or_default().to_string(),
            summary["final_return_mean"].as_f64().unwrap_or(f64::NAN),
        ),
        None => {
            if dir.path().exists() {
                std::fs::remove_dir_all(dir.path())
                    .with_context(|| format!("removing the unfinished run {}", dir.path().display()))?;
            }
            let mut run = algorithms::lookup("dqn")?.build(&dqn_overrides(base, k, lr, seed))?;
            dir.start(&run.config_toml()?)?;
            let options = TrainOptions { stop: Some(crate::interrupt::flag()), ..TrainOptions::default() };
            let summary = train(run.as_mut(), &dir, options, &mut |_| {})?;
            (summary.status, summary.final_return_mean)
        }
    };
    let q_max = largest_abs(&dir.path().join("metrics.csv"), "q_values")?;
    let diverged = status == "diverged" || q_max > threshold;
    Ok(Outcome { k, lr, seed, diverged, final_value: final_return, peak_q: q_max, status })
}

/// The largest |value| of a column of a `metrics.csv` (NaN cells skipped).
fn largest_abs(path: &Path, column: &str) -> Result<f64> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let Some(index) = header.split(',').position(|c| c == column) else {
        bail!("{}: no `{column}` column", path.display());
    };
    Ok(lines
        .filter_map(|line| line.split(',').nth(index)?.parse::<f64>().ok())
        .map(f64::abs)
        .filter(|v| !v.is_nan())
        .fold(0.0, f64::max))
}

/// The median of finite values (NaN if none).
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// Writes `runs.csv`, `cells.csv` and `stability.png`, and prints the cells.
fn report(args: &StabilityArgs, sweep: &Sweep, outcomes: &[Outcome]) -> Result<()> {
    let mut runs = String::from("k,lr,seed,status,diverged,final,peak_abs_q\n");
    for o in outcomes {
        let (k, lr, seed, diverged) = (o.k, o.lr, o.seed, u8::from(o.diverged));
        let _ = writeln!(runs, "{k},{lr},{seed},{},{diverged},{},{}", o.status, o.final_value, o.peak_q);
    }
    crate::write_atomically(&args.out.join("runs.csv"), runs.as_bytes())?;

    let baird = !matches!(sweep, Sweep::Dqn { .. });
    let measure = match sweep {
        Sweep::Baird { .. } => "‖Φw‖",
        Sweep::BairdNet { .. } => "‖V‖",
        Sweep::Dqn { .. } => "return",
    };
    let mut cells = String::from("k,lr,runs,diverged,divergence_rate,final_median,final_min,final_max");
    // The last column: ρ(M_k) for linear Baird, the median peak |mean Q| for DQN.
    let (extra_csv, extra_md) = match sweep {
        Sweep::Baird { .. } => (",rho_period", " ρ(M_k) |"),
        Sweep::Dqn { .. } => (",peak_abs_q_median", " median peak \\|Q\\| |"),
        Sweep::BairdNet { .. } => ("", ""),
    };
    let _ = writeln!(cells, "{extra_csv}");
    out!("| k | lr | divergence rate | median final {measure} | min | max |{extra_md}");
    out!("|---:|---:|---:|---:|---:|---:|{}", if extra_md.is_empty() { "" } else { "---:|" });
    let mut shade = Vec::new();
    let mut text = Vec::new();
    let all_finals: Vec<f64> = outcomes.iter().map(|o| o.final_value).filter(|v| v.is_finite()).collect();
    let (low, high) = all_finals.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &v| (l.min(v), h.max(v)));
    for &k in &args.k {
        let (mut shade_row, mut text_row) = (Vec::new(), Vec::new());
        for &lr in &args.lr {
            let cell: Vec<&Outcome> = outcomes.iter().filter(|o| o.k == k && o.lr == lr).collect();
            let diverged = cell.iter().filter(|o| o.diverged).count();
            let rate = diverged as f64 / cell.len().max(1) as f64;
            let mut finals: Vec<f64> = cell.iter().map(|o| o.final_value).collect();
            let mid = median(&mut finals);
            let (min, max) = (finals.first().copied().unwrap_or(f64::NAN), finals.last().copied().unwrap_or(f64::NAN));
            let rho = match sweep {
                Sweep::Baird { problem, .. } => Some(problem.period_radius(lr, args.momentum, k)),
                Sweep::BairdNet { .. } | Sweep::Dqn { .. } => None,
            };
            let peak_q = median(&mut cell.iter().map(|o| o.peak_q).collect::<Vec<_>>());
            let extra = match sweep {
                Sweep::Baird { .. } => rho.map(|r| (format!(",{r}"), format!(" {r:.6} |"))),
                Sweep::Dqn { .. } => Some((format!(",{peak_q}"), format!(" {peak_q:.1} |"))),
                Sweep::BairdNet { .. } => None,
            }
            .unwrap_or_default();
            let _ = writeln!(cells, "{k},{lr},{},{diverged},{rate},{mid},{min},{max}{}", cell.len(), extra.0);
            out!(
                "| {k} | {lr} | {rate:.2} ({diverged}/{}) | {mid:.4e} | {min:.4e} | {max:.4e} |{}",
                cell.len(),
                extra.1
            );
            if baird {
                shade_row.push(rate);
                let rho_line = rho.map(|r| format!("\nρ(M_k) {r:.4}")).unwrap_or_default();
                text_row.push(format!("diverged {diverged}/{}\n{measure} {mid:.2e}{rho_line}", cell.len()));
            } else {
                // Returns: high is good, so the best cell is blue and the worst red.
                let t = if high > low { 1.0 - (mid - low) / (high - low) } else { 0.0 };
                shade_row.push(if mid.is_finite() { t } else { f64::NAN });
                text_row.push(format!("return {mid:.1}\npeak |Q| {peak_q:.0}\ndiverged {diverged}/{}", cell.len()));
            }
        }
        shade.push(shade_row);
        text.push(text_row);
    }
    crate::write_atomically(&args.out.join("cells.csv"), cells.as_bytes())?;
    let (title, scale) = if baird {
        let kind = match (args.model, args.expected) {
            (Model::Mlp, _) => format!("2×32 ReLU network, momentum {}", args.momentum),
            (Model::Linear, true) => "expected, linear".to_string(),
            (Model::Linear, false) => "sampled, linear".to_string(),
        };
        (
            format!("Baird's star, TD / PFPE ({kind}): divergence over {} seeds", args.seeds),
            ("no run diverged".to_string(), "every run diverged".to_string()),
        )
    } else {
        (
            format!("DQN on {}: median last-100 return over {} seeds", args.env, args.seeds),
            (format!("best {high:.0}"), format!("worst {low:.0}")),
        )
    };
    let map = HeatMap {
        title,
        row_label: "target period k".into(),
        column_label: if baird { "step size α".into() } else { "learning rate".into() },
        rows: args.k.iter().map(|k| format!("k = {k}")).collect(),
        columns: args.lr.iter().map(|lr| format!("{lr}")).collect(),
        shade,
        text,
        scale,
    };
    map.write_png(&args.out.join("stability.png"))?;
    out!("wrote {}/runs.csv, cells.csv, stability.png", args.out.display());
    Ok(())
}

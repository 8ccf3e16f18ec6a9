//! `keel performative`: repeated retraining in the performative grid-world
//! (`keel/PerformativeGrid-v0`), one configuration over seeds, or the paper's whole Figure 2.
//!
//! Runs are independent and each is deterministic, so they are spread over `--workers` threads
//! by a shared job counter and gathered back in job order: results do not depend on the worker
//! count.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use keel_agents::performative::{Method, PerformativeError, Regulariser, RepeatedConfig, RunRecord, run};
use keel_envs::performative::PerformativeGridConfig;
use serde::Serialize;
use serde_json::{Value, json};

use crate::chart::{Chart, Series};

/// Arguments of `keel performative`.
#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct PerformativeArgs {
    #[command(subcommand)]
    command: Option<PerformativeCommand>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum PerformativeCommand {
    /// Run the six panels of the paper's Figure 2 and write one PNG per panel plus figure2.json.
    Figure2(Figure2Args),
}

/// The learner, as named on the command line.
#[derive(Clone, Copy, ValueEnum)]
enum MethodName {
    /// Repeated policy optimisation.
    Rpo,
    /// Repeated gradient ascent.
    Rga,
}

/// The regulariser, as named on the command line.
#[derive(Clone, Copy, ValueEnum)]
enum RegulariserName {
    /// -(λ/2) ‖d‖².
    L2,
    /// λ Σ -d log d (RPO only).
    Entropy,
}

/// One configuration, exact or over seeds.
#[derive(Args)]
struct RunArgs {
    /// Learner: rpo (repeated policy optimisation) or rga (repeated gradient ascent).
    #[arg(long, value_enum, default_value = "rpo")]
    method: MethodName,
    /// Regularisation strength λ >= 0.
    #[arg(long = "lambda", default_value_t = 1.0, allow_negative_numbers = true)]
    lambda: f64,
    /// Inverse temperature β >= 0 of the population's softmax response.
    #[arg(long, default_value_t = 10.0, allow_negative_numbers = true)]
    beta: f64,
    /// RGA's step size η > 0 (default 1; rga only).
    #[arg(long, allow_negative_numbers = true)]
    eta: Option<f64>,
    /// RPO's regulariser: l2 or entropy.
    #[arg(long, value_enum, default_value = "l2")]
    regulariser: RegulariserName,
    /// Trajectories per round (the finite-sample version); omitted: the exact model.
    #[arg(long, allow_negative_numbers = true)]
    samples: Option<usize>,
    /// Rounds of deploy-and-retrain (the paper: 1000).
    #[arg(long, default_value_t = 1000, allow_negative_numbers = true)]
    iters: usize,
    /// Number of seeds 0..K of a finite-sample run.
    #[arg(long, default_value_t = 1, allow_negative_numbers = true)]
    seeds: usize,
    /// Worker threads (seeds run in parallel); default: one per core.
    #[arg(long, allow_negative_numbers = true)]
    workers: Option<usize>,
    /// Responding followers, the first of the paper's 50.
    #[arg(long, default_value_t = 50, allow_negative_numbers = true)]
    followers: usize,
    /// Total occupancy of a state at or below which its policy is uniform (0: only states with
    /// no mass at all, the paper's rule).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    min_state_occupancy: f64,
    /// Write the results as JSON to this file.
    #[arg(long, value_name = "FILE.json")]
    out: Option<PathBuf>,
}

/// `keel performative figure2`.
#[derive(Args)]
struct Figure2Args {
    /// Directory for the six PNGs and figure2.json (created if missing).
    #[arg(long)]
    out_dir: PathBuf,
    /// Rounds per run (the paper: 1000).
    #[arg(long, default_value_t = 1000, allow_negative_numbers = true)]
    iters: usize,
    /// Seeds of each finite-sample configuration (the paper: 20).
    #[arg(long, default_value_t = 20, allow_negative_numbers = true)]
    seeds: usize,
    /// Worker threads; default: one per core.
    #[arg(long, allow_negative_numbers = true)]
    workers: Option<usize>,
}

fn default_workers(workers: Option<usize>) -> usize {
    workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())).max(1)
}

fn progress_bar(total_rounds: u64) -> Result<ProgressBar> {
    let bar = ProgressBar::new(total_rounds);
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} rounds, {per_sec}, eta {eta}")
            .map_err(|e| anyhow!("{e}"))?
            .progress_chars("=> "),
    );
    Ok(bar)
}

/// Runs every config on `workers` threads; results come back in input order, whatever the
/// worker count. Jobs are started in `order` (longest first balances the load). The first
/// failure stops the jobs not yet started.
fn run_all(configs: &[RepeatedConfig], order: &[usize], workers: usize, bar: &ProgressBar) -> Result<Vec<RunRecord>> {
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let finished: Vec<(usize, Result<RunRecord, PerformativeError>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers.min(configs.len()).max(1))
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    while !failed.load(Ordering::Relaxed) {
                        let Some(&job) = order.get(next.fetch_add(1, Ordering::Relaxed)) else { break };
                        let result = run(&configs[job], &mut |_| bar.inc(1));
                        failed.fetch_or(result.is_err(), Ordering::Relaxed);
                        done.push((job, result));
                    }
                    done
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap_or_default()).collect()
    });
    let mut slots: Vec<Option<RunRecord>> = vec![None; configs.len()];
    for (job, result) in finished {
        let record = result.with_context(|| format!("run {}", describe(&configs[job])))?;
        slots[job] = Some(record);
    }
    slots
        .into_iter()
        .enumerate()
        .map(|(job, slot)| {
            slot.ok_or_else(|| anyhow!("run {} did not finish (a worker panicked)", describe(&configs[job])))
        })
        .collect()
}

fn describe(config: &RepeatedConfig) -> String {
    let method = match config.method {
        Method::Rpo => "RPO".to_string(),
        Method::Rga { eta } => format!("RGA η={eta}"),
    };
    let samples = config.samples.map_or("exact".into(), |m| format!("m={m} seed={}", config.seed));
    format!("{method} λ={} β={} {samples}", config.lambda, config.env.beta)
}

/// Per-round mean and sample standard deviation (n - 1, as the paper) over runs.
fn mean_std(runs: &[&[f64]]) -> (Vec<f64>, Vec<f64>) {
    let len = runs.iter().map(|r| r.len()).min().unwrap_or(0);
    let n = runs.len() as f64;
    (0..len)
        .map(|t| {
            let mean = runs.iter().map(|r| r[t]).sum::<f64>() / n;
            let var =
                if runs.len() > 1 { runs.iter().map(|r| (r[t] - mean).powi(2)).sum::<f64>() / (n - 1.0) } else { 0.0 };
            (mean, var.sqrt())
        })
        .unzip()
}

/// Runs `keel performative` (or its `figure2` subcommand).
pub fn run_command(args: &PerformativeArgs) -> Result<()> {
    match &args.command {
        Some(PerformativeCommand::Figure2(figure)) => figure2(figure),
        None => run_one(&args.run),
    }
}

/// Most trajectories per round of a finite-sample run: each is up to 100 steps, so a round of
/// this many is 10^8 steps (seconds), and the per-pair visit counts stay far from overflowing.
const MAX_SAMPLES: usize = 1_000_000;

/// Most trajectories of a whole finite-sample command (samples × rounds × seeds): up to 10^12
/// env steps, hours of sampling.
const MAX_TRAJECTORIES: u128 = 10_000_000_000;

fn config_from(args: &RunArgs) -> Result<RepeatedConfig> {
    let method = match (args.method, args.eta) {
        (MethodName::Rpo, Some(_)) => bail!("--eta is RGA's step size: use it with --method rga"),
        (MethodName::Rpo, None) => Method::Rpo,
        (MethodName::Rga, eta) => Method::Rga { eta: eta.unwrap_or(1.0) },
    };
    if args.samples.is_none() && args.seeds > 1 {
        bail!("--seeds {} needs --samples: the exact model is deterministic", args.seeds);
    }
    if args.seeds == 0 {
        bail!("--seeds must be at least 1");
    }
    if let Some(m) = args.samples.filter(|&m| m > MAX_SAMPLES) {
        bail!("--samples {m}: at most {MAX_SAMPLES} trajectories per round (the paper's largest is 1000)");
    }
    if let Some(m) = args.samples {
        let total = (m as u128) * (args.iters as u128) * (args.seeds as u128);
        if total > MAX_TRAJECTORIES {
            bail!(
                "--samples {m} × --iters {} × --seeds {} = {total} trajectories; at most {MAX_TRAJECTORIES} in one run",
                args.iters,
                args.seeds
            );
        }
    }
    let config = RepeatedConfig {
        method,
        lambda: args.lambda,
        regulariser: match args.regulariser {
            RegulariserName::L2 => Regulariser::L2,
            RegulariserName::Entropy => Regulariser::Entropy,
        },
        rounds: args.iters,
        samples: args.samples,
        min_state_occupancy: args.min_state_occupancy,
        env: PerformativeGridConfig { beta: args.beta, followers: args.followers, ..Default::default() },
        ..Default::default()
    };
    config.validate()?;
    Ok(config)
}

fn print_rounds(distance: &[f64], gap: &[f64]) {
    let shown: Vec<usize> = if distance.len() <= 20 {
        (0..distance.len()).collect()
    } else {
        (0..10).chain(distance.len() - 3..distance.len()).collect()
    };
    out!("{:>6}  {:>14}{}", "round", "distance", if gap.is_empty() { "" } else { "  suboptimality gap" });
    for (k, &t) in shown.iter().enumerate() {
        if k > 0 && t != shown[k - 1] + 1 {
            out!("{:>6}", "...");
        }
        match gap.get(t) {
            Some(g) => out!("{t:>6}  {:>14.6e}  {g:>18.6e}", distance[t]),
            None => out!("{t:>6}  {:>14.6e}", distance[t]),
        }
    }
}

/// Checks that `runs` runs of `rounds` rounds can keep their records (a distance and a gap per
/// round) in memory.
fn check_rounds(runs: usize, rounds: usize) -> Result<()> {
    let bytes = 16 * (runs as u128) * (rounds as u128);
    keel_envs::memory::check("--iters", rounds as u128, bytes).map_err(|e| anyhow!("{}", e.message))?;
    Ok(())
}

fn run_one(args: &RunArgs) -> Result<()> {
    if let Some(path) = &args.out {
        crate::checks::output_file(path, "--out")?;
    }
    let base = config_from(args)?;
    check_rounds(args.seeds, base.rounds)?;
    let configs: Vec<RepeatedConfig> =
        (0..args.seeds as u64).map(|seed| RepeatedConfig { seed, ..base.clone() }).collect();
    let bar = progress_bar((configs.len() * base.rounds) as u64)?;
    let start = Instant::now();
    let order: Vec<usize> = (0..configs.len()).collect();
    let records = run_all(&configs, &order, default_workers(args.workers), &bar)?;
    bar.finish_and_clear();
    let seconds = start.elapsed().as_secs_f64();
    out!("keel performative: {} x {} rounds in {seconds:.1} s", describe(&base), base.rounds);
    let output = if base.samples.is_none() {
        let record = &records[0];
        print_rounds(&record.distance, &record.gap);
        json!({
            "config": base, "seconds": seconds, "distance": record.distance, "gap": record.gap,
            "final_occupancy": record.final_occupancy,
        })
    } else {
        let distances: Vec<&[f64]> = records.iter().map(|r| r.distance.as_slice()).collect();
        let gaps: Vec<&[f64]> = records.iter().map(|r| r.gap.as_slice()).collect();
        let (mean, std) = mean_std(&distances);
        let (mean_gap, _) = mean_std(&gaps);
        out!("mean over {} seeds:", records.len());
        print_rounds(&mean, &mean_gap);
        json!({
            "config": base, "seconds": seconds, "seeds": (0..args.seeds).collect::<Vec<_>>(),
            "distance": distances, "gap": gaps, "distance_mean": mean, "distance_std": std,
        })
    };
    if let Some(path) = &args.out {
        crate::write_atomically(path, serde_json::to_string(&output)?.as_bytes())?;
        out!("wrote {}", path.display());
    }
    Ok(())
}

/// What a panel shows of each run.
#[derive(Clone, Copy, Serialize)]
#[serde(rename_all = "snake_case")]
enum Metric {
    Distance,
    Gap,
}

/// One line of a panel: a configuration over its seeds (job indices).
struct Curve {
    label: String,
    jobs: Vec<usize>,
}

struct Panel {
    id: &'static str,
    file: &'static str,
    title: &'static str,
    metric: Metric,
    log_y: bool,
    curves: Vec<Curve>,
}

/// The distinct configurations of a figure; panels refer to them by index.
#[derive(Default)]
struct Jobs {
    configs: Vec<RepeatedConfig>,
    index: HashMap<String, usize>,
}

impl Jobs {
    fn add(&mut self, config: RepeatedConfig) -> Result<usize> {
        let key = serde_json::to_string(&config)?;
        if let Some(&i) = self.index.get(&key) {
            return Ok(i);
        }
        self.configs.push(config);
        self.index.insert(key, self.configs.len() - 1);
        Ok(self.configs.len() - 1)
    }
}

fn figure2(args: &Figure2Args) -> Result<()> {
    if args.seeds == 0 || args.iters == 0 {
        bail!("--seeds and --iters must be at least 1");
    }
    crate::checks::output_folder(&args.out_dir, "--out-dir")?;
    check_rounds(args.seeds.saturating_mul(12).saturating_add(14), args.iters)?;
    let base = RepeatedConfig { rounds: args.iters, ..Default::default() };
    let env = |beta: f64| PerformativeGridConfig { beta, ..Default::default() };
    let mut jobs = Jobs::default();
    let mut exact_curve =
        |label: String, config: RepeatedConfig| -> Result<Curve> { Ok(Curve { label, jobs: vec![jobs.add(config)?] }) };
    let lambdas = [0.0, 0.2, 0.5, 1.0, 5.0];
    let betas = [0.1, 1.0, 5.0, 10.0, 200.0];
    let etas = [0.05, 0.1, 0.2, 1.0, 2.0];
    let samples = [20, 50, 100, 200, 500, 1000];
    let rga = |eta: f64| RepeatedConfig { method: Method::Rga { eta }, env: env(5.0), ..base.clone() };
    let panel_a = lambdas
        .iter()
        .map(|&lambda| exact_curve(format!("λ = {lambda}"), RepeatedConfig { lambda, env: env(10.0), ..base.clone() }))
        .collect::<Result<Vec<_>>>()?;
    let panel_b = betas
        .iter()
        .map(|&beta| exact_curve(format!("β = {beta}"), RepeatedConfig { env: env(beta), ..base.clone() }))
        .collect::<Result<Vec<_>>>()?;
    let panel_c = etas.iter().map(|&eta| exact_curve(format!("η = {eta}"), rga(eta))).collect::<Result<Vec<_>>>()?;
    let panel_d = panel_c.iter().map(|c| Curve { label: c.label.clone(), jobs: c.jobs.clone() }).collect();
    let mut sampled_curves = |method: Method| -> Result<Vec<Curve>> {
        samples
            .iter()
            .map(|&m| {
                let jobs = (0..args.seeds as u64)
                    .map(|seed| {
                        // The gap is not plotted in (f): skip its extra solve.
                        let config = RepeatedConfig {
                            method,
                            samples: Some(m),
                            seed,
                            record_gap: false,
                            env: env(5.0),
                            ..base.clone()
                        };
                        jobs.add(config)
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(Curve { label: format!("m = {m}"), jobs })
            })
            .collect()
    };
    let panel_e = sampled_curves(Method::Rpo)?;
    let panel_f = sampled_curves(Method::Rga { eta: 1.0 })?;
    let panels = vec![
        Panel {
            id: "a",
            file: "fig2a_rpo_lambda.png",
            title: "(a) RPO, β = 10: regularisation λ",
            metric: Metric::Distance,
            log_y: true,
            curves: panel_a,
        },
        Panel {
            id: "b",
            file: "fig2b_rpo_beta.png",
            title: "(b) RPO, λ = 1: response smoothness β",
            metric: Metric::Distance,
            log_y: true,
            curves: panel_b,
        },
        Panel {
            id: "c",
            file: "fig2c_rga_distance.png",
            title: "(c) RGA, λ = 1, β = 5: step size η",
            metric: Metric::Distance,
            log_y: true,
            curves: panel_c,
        },
        Panel {
            id: "d",
            file: "fig2d_rga_gap.png",
            title: "(d) RGA, λ = 1, β = 5: suboptimality gap",
            metric: Metric::Gap,
            log_y: true,
            curves: panel_d,
        },
        Panel {
            id: "e",
            file: "fig2e_rpo_samples.png",
            title: "(e) RPO, finite samples: trajectories m",
            metric: Metric::Distance,
            log_y: false,
            curves: panel_e,
        },
        Panel {
            id: "f",
            file: "fig2f_rga_samples.png",
            title: "(f) RGA η = 1, finite samples: trajectories m",
            metric: Metric::Distance,
            log_y: false,
            curves: panel_f,
        },
    ];

    // Longest runs first (sampling cost grows with m; RGA solves twice), so no worker idles at the end.
    let cost = |c: &RepeatedConfig| {
        let solves = if matches!(c.method, Method::Rga { .. }) && c.record_gap { 2.0 } else { 1.0 };
        solves + c.samples.map_or(0.0, |m| m as f64 / 400.0)
    };
    let mut order: Vec<usize> = (0..jobs.configs.len()).collect();
    order.sort_by(|&a, &b| cost(&jobs.configs[b]).total_cmp(&cost(&jobs.configs[a])));
    let workers = default_workers(args.workers);
    out!(
        "keel performative figure2: {} runs x {} rounds on {workers} workers ({} seeds per finite-sample curve)",
        jobs.configs.len(),
        args.iters,
        args.seeds
    );
    let bar = progress_bar((jobs.configs.len() * args.iters) as u64)?;
    let start = Instant::now();
    let records = run_all(&jobs.configs, &order, workers, &bar)?;
    bar.finish_and_clear();
    let seconds = start.elapsed().as_secs_f64();
    out!("ran in {seconds:.1} s");

    std::fs::create_dir_all(&args.out_dir).with_context(|| format!("creating {}", args.out_dir.display()))?;
    let mut panels_json = Vec::new();
    for panel in &panels {
        let mut series = Vec::new();
        let mut curves_json = Vec::new();
        for curve in &panel.curves {
            let runs: Vec<&[f64]> = curve
                .jobs
                .iter()
                .map(|&j| match panel.metric {
                    Metric::Distance => records[j].distance.as_slice(),
                    Metric::Gap => records[j].gap.as_slice(),
                })
                .collect();
            let (mean, std) = mean_std(&runs);
            let last = mean.last().copied().unwrap_or(f64::NAN);
            out!(
                "  ({}) {:<10} round 0: {:.3e}  round {}: {last:.3e}",
                panel.id,
                curve.label,
                mean.first().copied().unwrap_or(f64::NAN),
                mean.len().saturating_sub(1)
            );
            let band = (runs.len() > 1).then(|| std.clone());
            series.push(Series { label: curve.label.clone(), y: mean.clone(), band });
            let config =
                curve.jobs.first().map(|&j| serde_json::to_value(&jobs.configs[j])).transpose()?.unwrap_or(Value::Null);
            curves_json.push(json!({"label": curve.label, "config": config, "runs": runs, "mean": mean, "std": std}));
        }
        let y_label = match panel.metric {
            Metric::Distance => "‖d_{t+1} − d_t‖ / ‖d_t‖",
            Metric::Gap => "suboptimality gap",
        };
        let chart = Chart {
            title: panel.title.into(),
            x_label: "round t".into(),
            y_label: y_label.into(),
            log_y: panel.log_y,
            series,
        };
        chart.write_png(&args.out_dir.join(panel.file), 900, 600)?;
        panels_json.push(json!({
            "panel": panel.id, "file": panel.file, "title": panel.title, "metric": panel.metric,
            "log_y": panel.log_y, "curves": curves_json,
        }));
    }
    let output = json!({
        "iters": args.iters, "seeds": args.seeds, "workers": workers, "seconds": seconds, "runs": jobs.configs.len(),
        "panels": panels_json,
    });
    let path = args.out_dir.join("figure2.json");
    crate::write_atomically(&path, serde_json::to_string(&output)?.as_bytes())?;
    out!("wrote {} and six PNGs to {}", path.display(), args.out_dir.display());
    Ok(())
}

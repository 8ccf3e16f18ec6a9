//! `keel report DIR`: the statistics of a `keel sweep` folder, as `DIR/report.md` with tables
//! and PNG plots beside it.
//!
//! - per env and method (algorithm and hyperparameter variant): the final return (mean of the
//!   last 100 training episodes) over seeds, its worst case across seeds, and the fraction of
//!   episodes that diverged (the control envs' `diverged` extra);
//! - normalised scores: for the envs with a linear model (`keel/Linear-v0` and the three linear
//!   PDEs) `(R − R_zero) / (R_ref − R_zero)`, with the zero-input and the LQG (LQR where the
//!   observation is the whole state) returns of `keel baseline`'s controllers on the same env
//!   config; for other envs min–max against the env's `reference = [low, high]` in the sweep
//!   spec, else against the lowest and highest final return in the sweep;
//! - aggregated over envs: median, IQM, mean and optimality gap with stratified-bootstrap 95 %
//!   intervals, the probability of improvement of each method over each other, the run-score
//!   performance profile (`performance_profile.png`) and the IQM against env steps
//!   (`iqm_vs_steps.png`); see [`crate::stats`].

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use keel_envs::baselines::{Controller, run_episode};
use serde_json::{Map, Value};

use crate::chart::{Chart, Series};
use crate::stats::{self, Aggregate, Matrix};
use crate::sweep::{SweepFile, Trial};

/// Arguments of `keel report`.
#[derive(Args)]
pub struct ReportArgs {
    /// A `keel sweep` output folder.
    dir: PathBuf,
    /// Bootstrap resamples of the confidence intervals.
    #[arg(long, default_value_t = 2000, allow_negative_numbers = true)]
    reps: usize,
    /// Episodes of each baseline controller (zero, LQR/LQG) per env: the initial states are
    /// random, so fewer than ~100 leave the normaliser noisy.
    #[arg(long, default_value_t = 100, allow_negative_numbers = true)]
    baseline_episodes: u64,
}

/// One finished run.
struct RunResult {
    trial: Trial,
    final_return: f64,
    diverged_fraction: f64,
    /// (global step, episodic return) per iteration.
    curve: Vec<(f64, f64)>,
}

fn read_run(dir: &Path, trial: &Trial) -> Result<Option<RunResult>> {
    let Ok(text) = std::fs::read_to_string(dir.join("summary.json")) else { return Ok(None) };
    let summary: Value = serde_json::from_str(&text).with_context(|| format!("{}/summary.json", dir.display()))?;
    if !matches!(summary["status"].as_str(), Some("completed" | "diverged")) {
        return Ok(None);
    }
    // A folder holding another run (copied or moved in by hand) would be counted as this one.
    let seed = summary["seed"].as_u64();
    for (field, found, expected) in [
        ("env_id", summary["env_id"].as_str().map(str::to_string), trial.env_id.clone()),
        ("algo", summary["algo"].as_str().map(str::to_string), trial.algo.clone()),
        ("seed", seed.map(|s| s.to_string()), trial.seed.to_string()),
    ] {
        if found.as_deref() != Some(expected.as_str()) {
            let found = found.map_or_else(|| "nothing".to_string(), |f| format!("`{f}`"));
            eprintln!(
                "keel report: warning: skipping {}: its summary.json gives {field} {found}, the sweep `{expected}`",
                dir.display()
            );
            return Ok(None);
        }
    }
    let final_return = summary["final_return_mean"].as_f64().unwrap_or(f64::NAN);
    let metrics = std::fs::read_to_string(dir.join("metrics.csv")).unwrap_or_default();
    let mut lines = metrics.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name);
    let (step, ret, episodes, diverged) =
        (col("global_step"), col("episodic_return"), col("episodes"), col("extras/diverged"));
    let (mut curve, mut finished, mut diverged_episodes, mut last_step) = (Vec::new(), 0.0, 0.0, 0.0);
    for line in lines {
        let row: Vec<f64> = line.split(',').map(|v| v.parse().unwrap_or(f64::NAN)).collect();
        let get = |c: Option<usize>| c.and_then(|c| row.get(c).copied()).unwrap_or(f64::NAN);
        let s = get(step);
        if let (Some(_), Some(_)) = (episodes, diverged) {
            // The extra is a mean over the iteration's steps: times its steps, the episodes that diverged.
            finished += get(episodes);
            diverged_episodes += (get(diverged) * (s - last_step)).round();
        }
        last_step = s;
        curve.push((s, get(ret)));
    }
    let diverged_fraction = if diverged.is_some() && finished > 0.0 { diverged_episodes / finished } else { f64::NAN };
    Ok(Some(RunResult { trial: trial.clone(), final_return, diverged_fraction, curve }))
}

/// How an env's returns become scores.
#[derive(Clone, Debug)]
struct Normaliser {
    low: f64,
    high: f64,
    how: String,
}

impl Normaliser {
    fn score(&self, r: f64) -> f64 {
        (r - self.low) / (self.high - self.low)
    }
}

/// Mean return of `controller` on `env_id` with `config` over `episodes` seeds.
fn baseline_return(env_id: &str, config: &Map<String, Value>, controller: &str, episodes: u64) -> Result<f64> {
    let design = Controller::design(controller, env_id, config)?;
    let mut env = keel_envs::make(env_id, config)?;
    // An env without a time limit could hold still under zero input forever.
    let cap = env.spec().max_episode_steps.unwrap_or(100_000);
    let mut total = 0.0;
    for seed in 0..episodes {
        total -= run_episode(env.as_mut(), &design, 1_000_000 + seed, cap)?.cost;
    }
    Ok(total / episodes as f64)
}

fn normaliser(file: &SweepFile, env: &str, results: &[&RunResult], episodes: u64) -> Normaliser {
    let entry = file.spec.envs.iter().find(|e| e.name.clone().unwrap_or_default() == env || crate::sweep::env_label(e) == env);
    if let Some(entry) = entry {
        if let Some([low, high]) = entry.reference {
            return Normaliser { low, high, how: format!("min–max against the reference [{low}, {high}]") };
        }
        let config: Map<String, Value> = entry.config.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let spec = keel_envs::registry::lookup(&entry.id).and_then(|r| r.make(&config)).map(|e| e.spec().clone());
        let states = spec.as_ref().ok().and_then(|s| s.state_len).unwrap_or(0);
        // Beyond `keel baseline`'s limit the Riccati solves would take many minutes: min–max instead.
        if states > crate::baseline::MAX_MODEL_STATES {
            eprintln!(
                "keel report: {env}: {states} states, more than LQR/LQG solve ({}): normalised min–max instead",
                crate::baseline::MAX_MODEL_STATES
            );
        } else if keel_envs::baselines::linear_model(&entry.id, &config).is_ok() {
            let partial = spec.as_ref().is_ok_and(|s| s.state_len.is_some_and(|n| s.obs_len() < n));
            let first = if partial { "lqg" } else { "lqr" };
            let zero = baseline_return(&entry.id, &config, "zero", episodes);
            let reference =
                baseline_return(&entry.id, &config, first, episodes).map(|r| (first, r)).or_else(|_| {
                    baseline_return(&entry.id, &config, "lqr", episodes).map(|r| ("lqr", r))
                });
            if let (Ok(zero), Ok((name, best))) = (zero, reference) {
                if best > zero {
                    return Normaliser {
                        low: zero,
                        high: best,
                        how: format!("(R − R_zero) / (R_{name} − R_zero), R_zero = {zero:.4e}, R_{name} = {best:.4e}"),
                    };
                }
            }
        }
    }
    let finite = results.iter().map(|r| r.final_return).filter(|v| v.is_finite());
    let (low, high) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| (l.min(v), h.max(v)));
    let high = if high > low { high } else { low + 1.0 };
    // No linear model: still say what doing nothing scores, so "better than no control" can be read off.
    let zero = entry
        .map(|e| (e.id.clone(), e.config.iter().map(|(k, v)| (k.clone(), v.clone())).collect::<Map<String, Value>>()))
        .and_then(|(id, config)| baseline_return(&id, &config, "zero", episodes).ok())
        .map_or(String::new(), |z| {
            format!(" (zero input: R_zero = {z:.4e}, normalised {:.3})", (z - low) / (high - low))
        });
    Normaliser { low, high, how: format!("min–max over this sweep's final returns [{low:.4e}, {high:.4e}]{zero}") }
}

/// Runs `keel report`.
pub fn run(args: &ReportArgs) -> Result<()> {
    if args.reps == 0 {
        bail!("--reps must be positive");
    }
    if args.baseline_episodes == 0 {
        bail!("--baseline-episodes must be positive");
    }
    let sweep_path = args.dir.join("sweep.json");
    let text = std::fs::read_to_string(&sweep_path).map_err(|_| {
        anyhow::anyhow!(
            "{} holds no sweep (no sweep.json): run `keel sweep SPEC.toml --out {0}` first",
            args.dir.display()
        )
    })?;
    let file: SweepFile = serde_json::from_str(&text).with_context(|| format!("{} is not a sweep file", sweep_path.display()))?;
    let mut results = Vec::new();
    for trial in &file.trials {
        if let Some(r) = read_run(&args.dir.join("runs").join(&trial.name), trial)? {
            results.push(r);
        }
    }
    if results.is_empty() {
        bail!(
            "{}: none of its {} runs has finished (no completed summary.json under {}); run or resume the sweep first",
            args.dir.display(),
            file.trials.len(),
            args.dir.join("runs").display()
        );
    }
    crate::checks::output_file(&args.dir.join("report.md"), "DIR")?;
    let envs: Vec<String> = {
        let mut v: Vec<String> = Vec::new();
        for t in &file.trials {
            if !v.contains(&t.env) {
                v.push(t.env.clone());
            }
        }
        v.into_iter().filter(|e| results.iter().any(|r| &r.trial.env == e)).collect()
    };
    let methods: Vec<String> = {
        let mut v: Vec<String> = Vec::new();
        for t in &file.trials {
            if !v.contains(&t.method()) {
                v.push(t.method());
            }
        }
        v
    };
    let mut norms = BTreeMap::new();
    for env in &envs {
        let on_env: Vec<&RunResult> = results.iter().filter(|r| &r.trial.env == env).collect();
        norms.insert(env.clone(), normaliser(&file, env, &on_env, args.baseline_episodes));
    }
    let mut md = String::new();
    let _ = writeln!(md, "# Benchmark report\n\nSweep: `{}`; {} of {} runs finished.\n", args.dir.display(), results.len(), file.trials.len());
    let _ = writeln!(md, "## Final return per env and method\n\nFinal return: mean of the last 100 training episodes of a run; mean ± std over seeds, the worst seed, the fraction of training episodes that diverged (state limit left; a safety violation), and the normalised score.\n");
    let _ = writeln!(md, "| env | method | seeds | final return | worst seed | diverged episodes | normalised score |\n|---|---|---|---|---|---|---|");
    // Score matrices: runs (seeds, in order) × envs, per method; only complete columns.
    let mut matrices: BTreeMap<String, Matrix> = BTreeMap::new();
    let mut complete = true;
    for method in &methods {
        let mut columns: Vec<Vec<f64>> = Vec::new();
        for env in &envs {
            let runs: Vec<&RunResult> =
                results.iter().filter(|r| &r.trial.env == env && &r.trial.method() == method).collect();
            if runs.is_empty() {
                complete = false;
                continue;
            }
            let returns: Vec<f64> = runs.iter().map(|r| r.final_return).collect();
            let (mean, std) = crate::mean_std(&returns);
            let worst = returns.iter().copied().fold(f64::INFINITY, f64::min);
            let div: Vec<f64> = runs.iter().map(|r| r.diverged_fraction).filter(|v| v.is_finite()).collect();
            let diverged = if div.is_empty() { "–".to_string() } else { format!("{:.1} %", 100.0 * crate::mean_std(&div).0) };
            let scores: Vec<f64> = returns.iter().map(|&r| norms[env].score(r)).collect();
            let _ = writeln!(
                md,
                "| {env} | {method} | {} | {mean:.4e} ± {std:.2e} | {worst:.4e} | {diverged} | {:.3} |",
                runs.len(),
                crate::mean_std(&scores).0
            );
            columns.push(scores);
        }
        let runs = columns.iter().map(Vec::len).min().unwrap_or(0);
        if columns.iter().any(|c| c.len() != runs) {
            complete = false;
        }
        let matrix: Matrix = (0..runs).map(|i| columns.iter().map(|c| c[i]).collect()).collect();
        if runs > 0 && columns.len() == envs.len() {
            matrices.insert(method.clone(), matrix);
        }
    }
    let _ = writeln!(md, "\n## Normalisation\n");
    for (env, n) in &norms {
        let _ = writeln!(md, "- {env}: {}", n.how);
    }
    let _ = writeln!(
        md,
        "\n## Aggregates over envs (normalised scores)\n\nPoint estimate and 95 % stratified-bootstrap interval ({} resamples; runs resampled within each env), as rliable.{}\n",
        args.reps,
        if complete { "" } else { " Methods without a finished run on every env, or with unequal seed counts, are left out or cut to the smallest seed count." }
    );
    let names: Vec<&str> = Aggregate::ALL.iter().map(|a| a.name()).collect();
    let _ = writeln!(md, "| method | {} |\n|---|---|---|---|---|", names.join(" | "));
    for (method, m) in &matrices {
        let cells: Vec<String> = Aggregate::ALL
            .iter()
            .map(|&a| {
                let i = stats::interval(m, a, args.reps, 7);
                format!("{:.3} [{:.3}, {:.3}]", i.point, i.low, i.high)
            })
            .collect();
        let _ = writeln!(md, "| {method} | {} |", cells.join(" | "));
    }
    if matrices.len() > 1 {
        let _ = writeln!(md, "\n## Probability of improvement\n\nP(X > Y): a run of X scores above a run of Y on an env (ties ½), averaged over envs, with its 95 % interval.\n");
        let _ = writeln!(md, "| X | Y | P(X > Y) |\n|---|---|---|");
        for (x, mx) in &matrices {
            for (y, my) in &matrices {
                if x != y {
                    let i = stats::probability_of_improvement_interval(mx, my, args.reps, 11);
                    let _ = writeln!(md, "| {x} | {y} | {:.3} [{:.3}, {:.3}] |", i.point, i.low, i.high);
                }
            }
        }
    }
    // Performance profile over τ in [τ_min, τ_max], 41 points.
    let all: Vec<f64> = matrices.values().flatten().flatten().copied().filter(|v| v.is_finite()).collect();
    let (lo, hi) = all.iter().fold((0.0f64, 1.0f64), |(l, h), &v| (l.min(v), h.max(v)));
    let taus: Vec<f64> = (0..=40).map(|i| lo + (hi - lo) * i as f64 / 40.0).collect();
    let profile = Chart {
        title: "Run-score performance profile".into(),
        x_label: format!("threshold τ = {lo:.2} + {:.3} × x", (hi - lo) / 40.0),
        y_label: "fraction of runs with score > τ".into(),
        log_y: false,
        series: matrices
            .iter()
            .map(|(m, s)| Series { label: m.clone(), y: stats::performance_profile(s, &taus), band: None })
            .collect(),
    };
    let profile_path = args.dir.join("performance_profile.png");
    profile.write_png(&profile_path, 900, 560)?;
    // IQM against env steps: at 20 fractions of each run, the score of its episodic return then.
    let points = 20usize;
    let mut iqm_series = Vec::new();
    let mut steps_at_end = 0.0f64;
    for method in matrices.keys() {
        let mut y = Vec::new();
        let mut band = Vec::new();
        for k in 1..=points {
            let mut scores = Vec::new();
            for r in results.iter().filter(|r| &r.trial.method() == method) {
                let finite: Vec<&(f64, f64)> = r.curve.iter().filter(|(_, v)| v.is_finite()).collect();
                if finite.is_empty() {
                    continue;
                }
                let idx = ((k * finite.len()) / points).clamp(1, finite.len()) - 1;
                steps_at_end = steps_at_end.max(r.curve.last().map_or(0.0, |c| c.0));
                scores.push(norms[&r.trial.env].score(finite[idx].1));
            }
            if scores.is_empty() {
                y.push(f64::NAN);
                band.push(0.0);
            } else {
                y.push(stats::iqm(scores));
                band.push(0.0);
            }
        }
        iqm_series.push(Series { label: method.clone(), y, band: Some(band) });
    }
    let curves = Chart {
        title: "IQM of normalised episodic return".into(),
        x_label: format!("env steps = (x + 1) × {:.0}", steps_at_end / points as f64),
        y_label: "IQM normalised score".into(),
        log_y: false,
        series: iqm_series,
    };
    let curves_path = args.dir.join("iqm_vs_steps.png");
    curves.write_png(&curves_path, 900, 560)?;
    let _ = writeln!(md, "\n## Plots\n\n![performance profile](performance_profile.png)\n\n![IQM against env steps](iqm_vs_steps.png)");
    let report_path = args.dir.join("report.md");
    crate::write_atomically(&report_path, md.as_bytes())?;
    out!("{md}");
    out!("report: {}", report_path.display());
    Ok(())
}

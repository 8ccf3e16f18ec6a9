//! Learning curves: `learning_curve.png` of a run, and `keel plot` over several runs (mean and
//! spread across the seeds of each configuration).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::chart::{Chart, Series};

/// Arguments of `keel plot`.
#[derive(Args)]
pub struct PlotArgs {
    /// Run folders; runs with the same env and algorithm are one curve (mean ± std over seeds).
    #[arg(required = true)]
    runs: Vec<PathBuf>,
    /// Column of metrics.csv to plot (episodic_return, surrogate_variance, kept_fraction, ...).
    #[arg(long, default_value = "episodic_return")]
    metric: String,
    /// Output PNG.
    #[arg(long, default_value = "learning_curves.png")]
    out: PathBuf,
    /// Moving-average window over iterations (episodic returns are noisy).
    #[arg(long, default_value_t = 10, allow_negative_numbers = true)]
    smooth: usize,
    /// Instead of curves: the reset sampler's start distribution over training (the run's
    /// sampling.jsonl, e.g. adaptive trajectory sampling's frame weights) as a heat map of
    /// start frames × iterations, for the first clip of the one run given.
    #[arg(long)]
    sampling: bool,
}

/// One column of a run's metrics.csv, by iteration, and the run's batch size.
fn read_metric(dir: &Path, metric: &str) -> Result<(Vec<f64>, u64)> {
    let path = dir.join("metrics.csv");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let Some(column) = header.iter().position(|h| *h == metric) else {
        bail!("{}: no column `{metric}` (columns: {})", path.display(), header.join(", "));
    };
    let step_column = header.iter().position(|h| *h == "global_step");
    let (mut values, mut steps) = (Vec::new(), Vec::new());
    for line in lines {
        let fields: Vec<&str> = line.split(',').collect();
        values.push(fields.get(column).and_then(|v| v.parse::<f64>().ok()).unwrap_or(f64::NAN));
        if let Some(c) = step_column {
            steps.push(fields.get(c).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0));
        }
    }
    let batch = match steps.as_slice() {
        [first, ..] => *first,
        [] => 0,
    };
    Ok((values, batch))
}

/// Mean of the finite values in a trailing window (episodes do not end every iteration).
fn smooth(values: &[f64], window: usize) -> Vec<f64> {
    (0..values.len())
        .map(|i| {
            let start = (i + 1).saturating_sub(window.max(1));
            let finite: Vec<f64> = values[start..=i].iter().copied().filter(|v| v.is_finite()).collect();
            if finite.is_empty() { f64::NAN } else { finite.iter().sum::<f64>() / finite.len() as f64 }
        })
        .collect()
}

fn run_label(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join("config.toml")).unwrap_or_default();
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{key} = ")).map(|v| v.trim_matches('"').to_string()))
            .unwrap_or_else(|| "?".into())
    };
    format!("{} {}", field("algo"), field("env_id").trim_start_matches("keel/"))
}

/// The chart of `metric` over `runs`; with `require_values`, a run without a finite value of it
/// is an error (a training run's own curve is drawn even before its first episode ends).
fn chart(runs: &[PathBuf], metric: &str, window: usize, title: String, require_values: bool) -> Result<Chart> {
    let mut groups: BTreeMap<String, Vec<Vec<f64>>> = BTreeMap::new();
    let mut batch = 0;
    for dir in runs {
        let (values, b) = read_metric(dir, metric)?;
        // An empty curve would draw an empty chart that looks like a plot.
        if require_values && !values.iter().any(|v| v.is_finite()) {
            let what = if values.is_empty() { "no rows" } else { "no finite value" };
            bail!("{}/metrics.csv: `{metric}` has {what}; nothing to plot", dir.display());
        }
        batch = b;
        groups.entry(run_label(dir)).or_default().push(smooth(&values, window));
    }
    let series = groups
        .into_iter()
        .map(|(label, curves)| {
            let len = curves.iter().map(Vec::len).min().unwrap_or(0);
            let (mut mean, mut spread) = (Vec::with_capacity(len), Vec::with_capacity(len));
            for t in 0..len {
                let at: Vec<f64> = curves.iter().map(|c| c[t]).filter(|v| v.is_finite()).collect();
                let (m, std) = crate::mean_std(&at);
                mean.push(m);
                // No finite value at this iteration: no band either.
                spread.push(if at.is_empty() { 0.0 } else { std });
            }
            let label = if curves.len() > 1 { format!("{label} ({} seeds)", curves.len()) } else { label };
            Series { label, y: mean, band: (curves.len() > 1).then_some(spread) }
        })
        .collect();
    Ok(Chart {
        title,
        x_label: format!("iteration ({batch} env steps each)"),
        y_label: metric.replace('_', " "),
        log_y: false,
        series,
    })
}

/// Writes `dir/learning_curve.png` (episodic return, smoothed over 10 iterations).
pub fn learning_curve(dir: &Path) -> Result<()> {
    let title = format!("{} learning curve", run_label(dir));
    let chart = chart(&[dir.to_path_buf()], "episodic_return", 10, title, false)?;
    chart.write_png(&dir.join("learning_curve.png"), 900, 560)
}

/// Runs `keel plot`.
pub fn run(args: &PlotArgs) -> Result<()> {
    crate::checks::output_png(&args.out, "--out")?;
    if args.sampling {
        let [run] = args.runs.as_slice() else { bail!("--sampling draws one run, got {}", args.runs.len()) };
        crate::sampling::heat_map(run)?.write_png(&args.out)?;
        out!("keel plot: wrote {}", args.out.display());
        return Ok(());
    }
    // The same run twice would count as two seeds.
    let mut seen: Vec<(PathBuf, &PathBuf)> = Vec::new();
    for run in &args.runs {
        let resolved = std::fs::canonicalize(run).with_context(|| format!("run folder {}", run.display()))?;
        if let Some((_, first)) = seen.iter().find(|(p, _)| *p == resolved) {
            bail!("{} and {} are the same run folder; give each run once", first.display(), run.display());
        }
        seen.push((resolved, run));
    }
    let title = format!("{} ({} runs)", args.metric.replace('_', " "), args.runs.len());
    chart(&args.runs, &args.metric, args.smooth, title, true)?.write_png(&args.out, 1000, 620)?;
    out!("keel plot: wrote {}", args.out.display());
    Ok(())
}

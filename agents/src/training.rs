//! The training loop every algorithm shares: iterations until the run is complete, stopped
//! (iteration limit), interrupted (a stop flag, Ctrl-C on the command line) or diverged; a
//! metrics row per iteration; checkpoints every `checkpoint_every` iterations and at the end; a
//! `summary.json` however it ended.
//!
//! A diverged run (non-finite loss or parameters) writes no further checkpoint: the last one
//! written is the last good one, and the summary names it.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crate::collect::Episode;
use crate::error::{AgentError, Result};
use crate::run::Run;
use crate::run_dir::{RunDir, Summary, mean_std};

/// How long a session trains.
#[derive(Clone, Copy, Debug, Default)]
pub struct TrainOptions<'a> {
    /// Stop after this many iterations in this session (a checkpoint is written; continue with
    /// `--resume`).
    pub max_iterations: Option<u64>,
    /// Finish the current iteration, checkpoint and stop when this becomes true.
    pub stop: Option<&'a AtomicBool>,
}

/// What the loop reports after each iteration.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    /// Iterations done.
    pub iteration: u64,
    /// Env steps per second in this session.
    pub sps: f64,
    /// Mean return of the last 100 training episodes.
    pub recent_return: f64,
}

/// Mean and standard deviation of the returns of the last 100 training episodes.
pub fn final_returns(episodes: &[Episode]) -> (f64, f64) {
    let last: Vec<f64> =
        episodes.iter().rev().take(crate::collect::RECENT_EPISODES).map(|e| e.episode_return).collect();
    mean_std(&last)
}

/// Trains `run` in `dir` (started, or resumed: the run's iteration says which rows of
/// `metrics.csv` to keep) until it ends, calling `on_progress` after each iteration; writes
/// `summary.json` and returns it. A divergence ends the loop with status `diverged`; other
/// errors are returned.
pub fn train(
    run: &mut dyn Run,
    dir: &RunDir,
    options: TrainOptions<'_>,
    on_progress: &mut dyn FnMut(Progress),
) -> Result<Summary> {
    let checkpoint_every = run.settings().checkpoint_every;
    let mut metrics = dir.metrics(&run.columns(), run.iteration())?;
    let started = Instant::now();
    let first_step = run.global_step();
    let mut last_checkpoint: Option<PathBuf> = None;
    let mut session_iterations = 0u64;
    let mut sampling = SamplingLog::open(dir, run.iteration())?;
    let (status, message) = loop {
        if run.finished() {
            break ("completed", None);
        }
        if options.stop.is_some_and(|s| s.load(Ordering::SeqCst)) {
            break ("interrupted", Some("stopped by Ctrl-C; continue with --resume".to_string()));
        }
        if options.max_iterations.is_some_and(|m| session_iterations >= m) {
            break ("stopped", Some(format!("stopped after {session_iterations} iterations; continue with --resume")));
        }
        let stats = match run.iteration_step() {
            Ok(stats) => stats,
            Err(AgentError::Diverged { iteration, what }) => {
                let kept = last_checkpoint.as_ref().map_or("none".to_string(), |p| p.display().to_string());
                break (
                    "diverged",
                    Some(format!("diverged at iteration {iteration} ({what}); last good checkpoint: {kept}")),
                );
            }
            Err(e) => return Err(e),
        };
        session_iterations += 1;
        let sps = (run.global_step() - first_step) as f64 / started.elapsed().as_secs_f64().max(1e-9);
        let mut row = stats.row();
        row.push((sps * 10.0).round() / 10.0);
        metrics.record(stats.global_step, &row)?;
        if let Some(distribution) = run.sampler_distribution() {
            sampling.record(run.iteration(), stats.global_step, distribution)?;
        }
        on_progress(Progress { iteration: run.iteration(), sps, recent_return: final_returns(run.episodes()).0 });
        if run.iteration() % checkpoint_every == 0 {
            last_checkpoint = Some(run.save_checkpoint(&dir.checkpoints())?);
        }
    };
    metrics.flush()?;
    if status != "diverged" {
        last_checkpoint = Some(run.save_checkpoint(&dir.checkpoints())?);
    }
    let wall = started.elapsed().as_secs_f64();
    let (mean, std) = final_returns(run.episodes());
    let settings = run.settings();
    let summary = Summary {
        status: status.into(),
        message,
        env_id: settings.env_id.to_string(),
        algo: settings.algo.to_string(),
        seed: settings.seed,
        global_step: run.global_step(),
        iterations: run.iteration(),
        episodes: run.episode_count() as usize,
        final_return_mean: mean,
        final_return_std: std,
        wall_time_s: wall,
        sps: (run.global_step() - first_step) as f64 / wall.max(1e-9),
        last_checkpoint: last_checkpoint.map(|p| p.display().to_string()),
    };
    dir.write_summary(&summary)?;
    Ok(summary)
}

/// `sampling.jsonl` in a run folder: one line per iteration with the reset sampler's
/// distribution (`{"iteration", "global_step", "distribution"}`), for `keel plot --sampling`.
struct SamplingLog {
    path: PathBuf,
    file: Option<std::fs::File>,
}

impl SamplingLog {
    /// Opens the log, keeping only the lines up to `iteration` (a resumed run rewrites the rest).
    fn open(dir: &RunDir, iteration: u64) -> Result<Self> {
        let path = dir.path().join("sampling.jsonl");
        if path.exists() {
            let text = std::fs::read_to_string(&path).map_err(|e| AgentError::io(path.display().to_string(), e))?;
            let kept: String = text
                .lines()
                .filter(|line| {
                    serde_json::from_str::<serde_json::Value>(line)
                        .ok()
                        .and_then(|v| v["iteration"].as_u64())
                        .is_some_and(|i| i <= iteration)
                })
                .map(|line| format!("{line}\n"))
                .collect();
            std::fs::write(&path, kept).map_err(|e| AgentError::io(path.display().to_string(), e))?;
        }
        Ok(Self { path, file: None })
    }

    fn record(&mut self, iteration: u64, global_step: u64, distribution: serde_json::Value) -> Result<()> {
        use std::io::Write as _;
        if self.file.is_none() {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .map_err(|e| AgentError::io(self.path.display().to_string(), e))?;
            self.file = Some(file);
        }
        let line =
            serde_json::json!({"iteration": iteration, "global_step": global_step, "distribution": distribution});
        if let Some(file) = &mut self.file {
            writeln!(file, "{line}").map_err(|e| AgentError::io(self.path.display().to_string(), e))?;
        }
        Ok(())
    }
}

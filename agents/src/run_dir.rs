//! The run folder every training run writes, whatever its algorithm:
//!
//! - `config.toml`: the resolved config (its `algo` key says which algorithm);
//! - `metrics.csv`: one row per iteration (the columns of [`crate::algorithm::Run::columns`]
//!   and `sps`), and the same scalars in TensorBoard event files (`events.out.tfevents.*`);
//! - `checkpoints/`: `iter_NNNNNN.{safetensors,json}` and `latest` ([`crate::checkpoint`]);
//! - `summary.json`: how the run ended ([`Summary`]);
//! - `learning_curve.png`, drawn by the command line.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::checkpoint::{LATEST, write_atomically};
use crate::error::{AgentError, Result};
use crate::tensorboard::EventWriter;

/// A run folder (see the module docs).
#[derive(Clone, Debug)]
pub struct RunDir {
    path: PathBuf,
}

/// `summary.json`: how a run ended.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Summary {
    /// `completed`, `stopped` (iteration limit), `interrupted` (Ctrl-C) or `diverged`.
    pub status: String,
    /// What to do next, or what went wrong.
    pub message: Option<String>,
    /// Environment id.
    pub env_id: String,
    /// Algorithm.
    pub algo: String,
    /// Seed.
    pub seed: u64,
    /// Env steps done.
    pub global_step: u64,
    /// Iterations done.
    pub iterations: u64,
    /// Training episodes finished.
    pub episodes: usize,
    /// Mean return of the last 100 training episodes.
    pub final_return_mean: f64,
    /// Standard deviation of those returns.
    pub final_return_std: f64,
    /// Seconds this session trained.
    pub wall_time_s: f64,
    /// Env steps per second in this session.
    pub sps: f64,
    /// The newest checkpoint.
    pub last_checkpoint: Option<String>,
}

/// Mean and population standard deviation (NaN, NaN for no values).
pub fn mean_std(values: &[f64]) -> (f64, f64) {
    if values.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

impl RunDir {
    /// The run folder at `path` (nothing is created yet).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The checkpoint folder.
    pub fn checkpoints(&self) -> PathBuf {
        self.path.join("checkpoints")
    }

    /// Whether a run has checkpointed here.
    pub fn holds_run(&self) -> bool {
        self.checkpoints().join(LATEST).exists()
    }

    /// Starts a new run here: refuses a folder that holds one, creates the folders and writes
    /// `config.toml`.
    pub fn start(&self, config_toml: &str) -> Result<()> {
        if self.holds_run() {
            return Err(AgentError::Config(format!(
                "{} already holds a run; use --resume {0} to continue it or choose another --run-dir",
                self.path.display()
            )));
        }
        let checkpoints = self.checkpoints();
        std::fs::create_dir_all(&checkpoints)
            .map_err(|e| AgentError::io(format!("creating {}", checkpoints.display()), e))?;
        write_atomically(&self.path.join("config.toml"), config_toml.as_bytes())
    }

    /// The run's `config.toml`.
    pub fn config(&self) -> Result<String> {
        let path = self.path.join("config.toml");
        std::fs::read_to_string(&path).map_err(|e| AgentError::io(format!("reading {}", path.display()), e))
    }

    /// Opens the metrics of a run at `iteration` (0 for a new run): `metrics.csv` keeps its rows
    /// up to that iteration (a resumed run rewrites the rest) under a header of `columns` and
    /// `sps`; a new TensorBoard event file is started.
    pub fn metrics(&self, columns: &[(String, Option<String>)], iteration: u64) -> Result<MetricsLog> {
        let path = self.path.join("metrics.csv");
        let mut names: Vec<String> = columns.iter().map(|(n, _)| n.clone()).collect();
        names.push("sps".into());
        let mut kept = vec![names.join(",")];
        let old = std::fs::read_to_string(&path).unwrap_or_default();
        for line in old.lines().skip(1) {
            let it: u64 = line.split(',').next().and_then(|v| v.parse::<f64>().ok()).map_or(u64::MAX, |v| v as u64);
            if it <= iteration {
                kept.push(line.to_string());
            }
        }
        write_atomically(&path, (kept.join("\n") + "\n").as_bytes())?;
        let csv = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|e| AgentError::io(format!("opening {}", path.display()), e))?;
        let events = EventWriter::create(&self.path)
            .map_err(|e| AgentError::io(format!("creating a TensorBoard event file in {}", self.path.display()), e))?;
        let mut tags: Vec<Option<String>> = columns.iter().map(|(_, t)| t.clone()).collect();
        tags.push(Some("charts/SPS".into()));
        Ok(MetricsLog { csv, events, tags, path })
    }

    /// Writes `summary.json` (atomically).
    pub fn write_summary(&self, summary: &Summary) -> Result<()> {
        let text = serde_json::to_string_pretty(summary).map_err(|e| AgentError::Config(e.to_string()))?;
        write_atomically(&self.path.join("summary.json"), text.as_bytes())
    }
}

/// Appends one row per iteration to `metrics.csv` and the same scalars to TensorBoard.
pub struct MetricsLog {
    csv: File,
    events: EventWriter,
    tags: Vec<Option<String>>,
    path: PathBuf,
}

impl MetricsLog {
    /// Records one iteration's values (the columns' order, then `sps`) at env step `step`.
    pub fn record(&mut self, step: u64, values: &[f64]) -> Result<()> {
        let row: Vec<String> = values.iter().map(f64::to_string).collect();
        writeln!(self.csv, "{}", row.join(","))
            .map_err(|e| AgentError::io(format!("writing {}", self.path.display()), e))?;
        let scalars: Vec<(&str, f64)> =
            self.tags.iter().zip(values).filter_map(|(tag, &v)| tag.as_deref().map(|t| (t, v))).collect();
        self.events.scalars(step, &scalars).map_err(|e| AgentError::io("writing TensorBoard events", e))
    }

    /// Flushes both files.
    pub fn flush(&mut self) -> Result<()> {
        self.csv.flush().map_err(|e| AgentError::io(format!("writing {}", self.path.display()), e))?;
        self.events.flush().map_err(|e| AgentError::io("writing TensorBoard events", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_keep_rows_up_to_the_resumed_iteration() {
        let dir = RunDir::new(std::env::temp_dir().join(format!("keel-run-dir-{}", std::process::id())));
        let _ = std::fs::remove_dir_all(dir.path());
        dir.start("algo = \"ppo\"\n").unwrap_or_else(|e| panic!("{e}"));
        let columns = vec![("iteration".to_string(), None), ("loss".to_string(), Some("losses/loss".to_string()))];
        let mut log = dir.metrics(&columns, 0).unwrap_or_else(|e| panic!("{e}"));
        for it in 1..=4 {
            log.record(it * 10, &[it as f64, 0.5, 100.0]).unwrap_or_else(|e| panic!("{e}"));
        }
        log.flush().unwrap_or_else(|e| panic!("{e}"));
        drop(log);
        let log = dir.metrics(&columns, 2);
        assert!(log.is_ok());
        let text = std::fs::read_to_string(dir.path().join("metrics.csv")).unwrap_or_default();
        assert_eq!(text, "iteration,loss,sps\n1,0.5,100\n2,0.5,100\n");
        std::fs::write(dir.checkpoints().join(LATEST), "iter_000002").unwrap_or_else(|e| panic!("{e}"));
        let again = dir.start("algo = \"ppo\"\n").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(again.contains("--resume"), "{again}");
        let _ = std::fs::remove_dir_all(dir.path());
    }
}

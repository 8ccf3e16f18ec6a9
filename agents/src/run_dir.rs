//! The run folder every training run writes, whatever its algorithm:
//!
//! - `config.toml`: the resolved config (its `algo` key says which algorithm);
//! - `metrics.csv`: one row per iteration (the columns of [`crate::run::Run::columns`]
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

/// The lock file of a run folder ([`RunDir::lock`]).
pub const LOCK_FILE: &str = ".keel.lock";

/// A run folder held by this process ([`RunDir::lock`]); dropping it releases the folder.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
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

    /// Takes the run folder for this process (creating it if needed): an advisory lock on
    /// `.keel.lock` inside it, held until the returned [`RunLock`] is dropped (or the process
    /// ends, however it ends). A folder another process holds is an error saying so: two
    /// trainings in one folder would mix their metrics and checkpoints.
    pub fn lock(&self) -> Result<RunLock> {
        std::fs::create_dir_all(&self.path)
            .map_err(|e| AgentError::io(format!("creating {}", self.path.display()), e))?;
        let path = self.path.join(LOCK_FILE);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| AgentError::io(format!("opening {}", path.display()), e))?;
        match file.try_lock() {
            Ok(()) => Ok(RunLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(AgentError::Config(format!(
                "{} is in use: another keel process is training in it (it holds {}); wait for it to end or stop it",
                self.path.display(),
                path.display()
            ))),
            Err(std::fs::TryLockError::Error(e)) => Err(AgentError::io(format!("locking {}", path.display()), e)),
        }
    }

    /// Starts a new run here: refuses a folder that holds anything but its lock file (a run, or
    /// files of the user's, which a run would overwrite), creates the folders and writes
    /// `config.toml`.
    pub fn start(&self, config_toml: &str) -> Result<()> {
        if self.holds_run() {
            return Err(AgentError::Config(format!(
                "{} already holds a run; use --resume {0} to continue it or choose another --run-dir",
                self.path.display()
            )));
        }
        if let Some(name) = self.first_entry()? {
            let what = if name == "config.toml" {
                "a run that never checkpointed (config.toml, no checkpoints/latest), which cannot be resumed"
                    .to_string()
            } else {
                format!("files a run would overwrite or mix with (`{name}`)")
            };
            return Err(AgentError::Config(format!(
                "{} is not empty: it holds {what}; choose a new or empty --run-dir, or remove it",
                self.path.display()
            )));
        }
        let checkpoints = self.checkpoints();
        std::fs::create_dir_all(&checkpoints)
            .map_err(|e| AgentError::io(format!("creating {}", checkpoints.display()), e))?;
        write_atomically(&self.path.join("config.toml"), config_toml.as_bytes())
    }

    /// The name of some entry of the folder other than its lock file (`None`: empty or absent).
    fn first_entry(&self) -> Result<Option<String>> {
        let entries = match std::fs::read_dir(&self.path) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(AgentError::io(format!("reading {}", self.path.display()), e)),
        };
        let mut names: Vec<String> = entries
            .filter_map(|entry| entry.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .filter(|name| name != LOCK_FILE)
            .collect();
        names.sort();
        Ok(names.into_iter().next())
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

    /// A folder with the user's files, or a run without a checkpoint, is refused and left as it
    /// was; a folder with only its lock file is a fresh start.
    #[test]
    fn a_new_run_refuses_a_folder_that_holds_anything() {
        let dir = RunDir::new(std::env::temp_dir().join(format!("keel-run-dir-busy-{}", std::process::id())));
        let _ = std::fs::remove_dir_all(dir.path());
        std::fs::create_dir_all(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.path().join("notes.txt"), "mine").unwrap_or_else(|e| panic!("{e}"));
        let err = dir.start("algo = \"ppo\"\n").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("not empty") && err.contains("notes.txt"), "{err}");
        assert!(!dir.path().join("config.toml").exists());
        assert_eq!(std::fs::read_to_string(dir.path().join("notes.txt")).ok().as_deref(), Some("mine"));
        std::fs::remove_file(dir.path().join("notes.txt")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.path().join("config.toml"), "algo = \"dqn\"\n").unwrap_or_else(|e| panic!("{e}"));
        let err = dir.start("algo = \"ppo\"\n").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("never checkpointed"), "{err}");
        std::fs::remove_file(dir.path().join("config.toml")).unwrap_or_else(|e| panic!("{e}"));
        let lock = dir.lock().unwrap_or_else(|e| panic!("{e}"));
        assert!(dir.start("algo = \"ppo\"\n").is_ok());
        drop(lock);
        let _ = std::fs::remove_dir_all(dir.path());
    }

    /// A folder is held by one process at a time: a second lock fails while the first is held
    /// (file locks are per open file, so two opens in one process show it), then succeeds.
    #[test]
    fn a_run_folder_is_locked_while_in_use() {
        let dir = RunDir::new(std::env::temp_dir().join(format!("keel-run-dir-lock-{}", std::process::id())));
        let _ = std::fs::remove_dir_all(dir.path());
        let held = dir.lock().unwrap_or_else(|e| panic!("{e}"));
        let err = dir.lock().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("is in use"), "{err}");
        drop(held);
        assert!(dir.lock().is_ok());
        let _ = std::fs::remove_dir_all(dir.path());
    }
}

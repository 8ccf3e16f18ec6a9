//! `keel sweep SPEC.toml --out DIR`: a grid of algorithms × envs (with config overrides) × seeds ×
//! hyperparameter overrides, each an ordinary `keel train` run folder under `DIR/runs/`.
//!
//! Every run is a `keel train` child process (this same program) with a CPU budget
//! (`cpus_per_run`: libtorch's threads through `KEEL_TORCH_THREADS` and the env workers), and at
//! most `jobs` of them at once. The sweep is resumable: a run whose `summary.json` says
//! `completed` or `diverged` is skipped, one with a checkpoint continues with `keel train
//! --resume`, one that never checkpointed starts again. `DIR/sweep.json` lists the runs (what
//! `keel report` reads); each run's output goes to `DIR/logs/<run>.log`.
//!
//! With `--ray auto|HOST:PORT` the same trials run through Ray Tune instead: the driver
//! `scripts/ray_sweep.py` (built into this program, run with the Ray venv's Python) makes each
//! trial a Tune trial of `cpus_per_run` CPUs that runs `keel train` on its node and reports every
//! metrics row; Keel writes no scheduler of its own. `scheduler = "asha"` in the spec hands the
//! trials to Tune's ASHA.
//!
//! The spec (unknown keys are errors naming the key):
//!
//! ```toml
//! algorithms = ["ppo", "dppo"]
//! seeds = [0, 1, 2]
//! total_timesteps = 4096
//! jobs = 2            # runs at once (default: the number of CPUs / cpus_per_run)
//! cpus_per_run = 1    # libtorch threads and env workers of each run
//! set = { num_envs = 4 }                            # config keys for every run
//! grid = { learning_rate = [3e-4, 1e-3] }            # hyperparameters: every combination
//!
//! [[envs]]
//! id = "keel/Linear-v0"
//! name = "toy"                                       # label in run names and the report
//! config = { system = "toy", preset = "benchmark" }  # env_config keys
//! # reference = [0.0, 500.0]                         # report's min–max, for envs without LQR
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Arguments of `keel sweep`.
#[derive(Args)]
pub struct SweepArgs {
    /// The sweep spec (TOML; see configs/sweeps/).
    spec: PathBuf,
    /// Output folder: run folders under DIR/runs, DIR/sweep.json, logs under DIR/logs.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Runs at once (overrides the spec's `jobs`).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    jobs: Option<usize>,
    /// Run the trials on a Ray cluster through Ray Tune: `auto` (the cluster this machine
    /// belongs to) or its address HOST:PORT. Needs the Ray venv of scripts/setup.sh
    /// (scripts/ray_venv.sh; or KEEL_RAY_PYTHON), and DIR on a file system every node sees.
    #[arg(long, value_name = "auto|ADDRESS")]
    ray: Option<String>,
    /// Only list the runs (and which would be skipped or resumed), run nothing.
    #[arg(long)]
    dry_run: bool,
}

/// One env of a sweep spec.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EnvEntry {
    /// Registered env id.
    pub id: String,
    /// Label in run names and reports (default: the id without `keel/`, lower case).
    pub name: Option<String>,
    /// `env_config` keys of every run on it.
    #[serde(default)]
    pub config: BTreeMap<String, Value>,
    /// `[low, high]` returns that `keel report` normalises to 0 and 1 (envs without a linear
    /// model; default: the lowest and highest final return of the sweep).
    pub reference: Option<[f64; 2]>,
}

/// A sweep spec (see the module docs).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// Registered algorithm names.
    pub algorithms: Vec<String>,
    /// The envs.
    pub envs: Vec<EnvEntry>,
    /// Seeds.
    pub seeds: Vec<u64>,
    /// Env steps of every run (default: each algorithm's config for the env).
    pub total_timesteps: Option<u64>,
    /// Runs at once.
    pub jobs: Option<usize>,
    /// CPUs of each run (libtorch threads and env workers; default 1).
    #[serde(default = "one")]
    pub cpus_per_run: usize,
    /// Config keys for every run.
    #[serde(default)]
    pub set: BTreeMap<String, Value>,
    /// Hyperparameter grid: config key → values; every combination is a variant.
    #[serde(default)]
    pub grid: BTreeMap<String, Vec<Value>>,
    /// With `--ray`: Tune's trial scheduler, `fifo` (default: every trial runs to the end) or
    /// `asha` (asynchronous successive halving on the episodic return, for hyperparameter
    /// searches: weak trials stop early, their runs stay resumable).
    pub scheduler: Option<String>,
}

fn one() -> usize {
    1
}

/// One run of a sweep, as `DIR/sweep.json` lists it.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct Trial {
    /// Run folder name under `DIR/runs/`.
    pub name: String,
    /// Algorithm.
    pub algo: String,
    /// Env id.
    pub env_id: String,
    /// Env label.
    pub env: String,
    /// Hyperparameter variant label (empty without a grid).
    pub variant: String,
    /// Seed.
    pub seed: u64,
    /// `--set` overrides of the run (`key=json`), in order.
    pub sets: Vec<String>,
    /// `--total-timesteps`, if the spec gives it.
    pub total_timesteps: Option<u64>,
}

impl Trial {
    /// The label reports compare: the algorithm and its variant.
    pub fn method(&self) -> String {
        if self.variant.is_empty() { self.algo.clone() } else { format!("{}[{}]", self.algo, self.variant) }
    }

    /// `keel train` arguments of a new run into `dir`.
    pub fn train_args(&self, dir: &Path) -> Vec<String> {
        let mut args = vec!["train".into(), "--algo".into(), self.algo.clone(), "--env".into(), self.env_id.clone()];
        args.extend(["--seed".into(), self.seed.to_string()]);
        if let Some(steps) = self.total_timesteps {
            args.extend(["--total-timesteps".into(), steps.to_string()]);
        }
        for set in &self.sets {
            args.extend(["--set".into(), set.clone()]);
        }
        args.extend(["--run-dir".into(), dir.display().to_string(), "--quiet".into()]);
        args
    }
}

/// `DIR/sweep.json`.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct SweepFile {
    /// The spec as given.
    pub spec: Spec,
    /// Every run.
    pub trials: Vec<Trial>,
}

/// Reads and checks a spec: known keys, algorithms and env ids, at least one of each.
pub fn read_spec(path: &Path) -> Result<Spec> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let spec: Spec = toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.message()))?;
    let context = path.display();
    if spec.algorithms.is_empty() || spec.envs.is_empty() || spec.seeds.is_empty() {
        bail!("{context}: `algorithms`, `envs` and `seeds` must each name at least one");
    }
    for name in &spec.algorithms {
        keel_agents::registry::lookup(name).with_context(|| format!("{context}: `algorithms`"))?;
    }
    for env in &spec.envs {
        keel_envs::registry::lookup(&env.id).with_context(|| format!("{context}: `envs`"))?;
    }
    if spec.cpus_per_run == 0 {
        bail!("{context}: `cpus_per_run` must be at least 1");
    }
    if spec.jobs == Some(0) {
        bail!("{context}: `jobs` must be at least 1");
    }
    if let Some(s) = spec.scheduler.as_deref().filter(|s| !matches!(*s, "fifo" | "asha")) {
        bail!("{context}: `scheduler` must be \"fifo\" or \"asha\", got {s:?}");
    }
    if spec.total_timesteps == Some(0) {
        bail!("{context}: `total_timesteps` must be at least 1");
    }
    for (key, values) in &spec.grid {
        if values.is_empty() {
            bail!("{context}: `grid.{key}` has no values");
        }
    }
    // Two equal seeds or algorithms would be one run folder, trained twice at once.
    if let Some(seed) = first_repeat(&spec.seeds) {
        bail!("{context}: `seeds` names {seed} twice; each seed is one run folder");
    }
    if let Some(algo) = first_repeat(&spec.algorithms) {
        bail!("{context}: `algorithms` names `{algo}` twice; each algorithm is one run folder");
    }
    for (key, values) in &spec.grid {
        if let Some(value) = first_repeat(values) {
            bail!("{context}: `grid.{key}` names {value} twice; each value is one run folder");
        }
    }
    let mut labels = std::collections::BTreeSet::new();
    for env in &spec.envs {
        let label = env_label(env);
        check_label(&label).with_context(|| format!("{context}: env {}", env.id))?;
        if !labels.insert(label) {
            bail!("{context}: two envs are labelled `{}`; give them distinct `name`s", env_label(env));
        }
        if let Some([low, high]) = env.reference
            && !(low.is_finite() && high.is_finite() && low < high)
        {
            bail!(
                "{context}: env {}: `reference = [{low}, {high}]` must be two finite returns, low below high",
                env.id
            );
        }
    }
    Ok(spec)
}

/// The first value given twice in `values`, if any.
fn first_repeat<T: PartialEq>(values: &[T]) -> Option<&T> {
    values.iter().enumerate().find(|&(i, v)| values[..i].contains(v)).map(|(_, v)| v)
}

/// Checks that an env label can be the start of a run folder's name: one plain name (no path
/// separators, no `.` or `..`, no control characters), so every run stays under `DIR/runs/`.
fn check_label(label: &str) -> Result<()> {
    let plain = !label.is_empty()
        && label != "."
        && label != ".."
        && !label.contains(['/', '\\'])
        && !label.chars().any(char::is_control);
    if !plain {
        bail!("`name = {label:?}` must be a plain folder name: no `/`, `\\`, `.`, `..` or control characters");
    }
    Ok(())
}

/// The label of an env in run names and reports.
pub fn env_label(env: &EnvEntry) -> String {
    env.name.clone().unwrap_or_else(|| env.id.trim_start_matches("keel/").to_lowercase())
}

fn short(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Every run of the spec: envs × algorithms × grid variants × seeds.
pub fn trials(spec: &Spec) -> Vec<Trial> {
    let mut variants: Vec<Vec<(String, Value)>> = vec![Vec::new()];
    for (key, values) in &spec.grid {
        variants = variants
            .into_iter()
            .flat_map(|v| {
                values.iter().map(move |value| {
                    let mut v = v.clone();
                    v.push((key.clone(), value.clone()));
                    v
                })
            })
            .collect();
    }
    let mut out = Vec::new();
    for env in &spec.envs {
        let label = env_label(env);
        for algo in &spec.algorithms {
            for variant in &variants {
                let variant_label: Vec<String> = variant.iter().map(|(k, v)| format!("{k}={}", short(v))).collect();
                for &seed in &spec.seeds {
                    let mut sets: Vec<String> = Vec::new();
                    for (k, v) in &env.config {
                        sets.push(format!("env_config.{k}={v}"));
                    }
                    let workers = spec.cpus_per_run;
                    sets.push(format!("env_workers={workers}"));
                    for (k, v) in spec.set.iter().chain(variant.iter().map(|(k, v)| (k, v))) {
                        sets.push(format!("{k}={v}"));
                    }
                    let mut name = format!("{label}_{algo}");
                    for part in &variant_label {
                        name.push('_');
                        name.push_str(&part.replace(['/', ' ', '"'], "-"));
                    }
                    name.push_str(&format!("_s{seed}"));
                    out.push(Trial {
                        name,
                        algo: algo.clone(),
                        env_id: env.id.clone(),
                        env: label.clone(),
                        variant: variant_label.join(","),
                        seed,
                        sets,
                        total_timesteps: spec.total_timesteps,
                    });
                }
            }
        }
    }
    out
}

/// Where a run folder stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Not started (or started without a checkpoint): start it.
    New,
    /// Checkpointed but not finished: `--resume` it.
    Partial,
    /// Finished (`completed` or `diverged`): skip it.
    Done,
}

/// The state of the run folder `dir`.
pub fn state(dir: &Path) -> State {
    let summary = std::fs::read_to_string(dir.join("summary.json")).ok();
    let status = summary
        .and_then(|s| serde_json::from_str::<Value>(&s).ok())
        .and_then(|v| v.get("status").and_then(Value::as_str).map(str::to_string));
    if matches!(status.as_deref(), Some("completed" | "diverged")) {
        State::Done
    } else if keel_agents::run_dir::RunDir::new(dir).holds_run() {
        State::Partial
    } else {
        State::New
    }
}

/// Checks every variant of the sweep once, with its first seed, by resolving its config and
/// building it (envs and networks, nothing written): unknown config keys and bad values are
/// reported, naming the run, before any run starts.
pub fn check_configs(trials: &[Trial], out: &Path) -> Result<()> {
    let mut seen = std::collections::BTreeSet::new();
    for trial in trials {
        if !seen.insert((trial.env.clone(), trial.method())) {
            continue;
        }
        let args = trial.train_args(&out.join("runs").join(&trial.name));
        crate::train::check_new_run(&args[1..])
            .with_context(|| format!("run {} ({} on {})", trial.name, trial.method(), trial.env_id))?;
    }
    Ok(())
}

fn format_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

/// Runs `keel sweep`.
pub fn run(args: &SweepArgs) -> Result<()> {
    let spec = read_spec(&args.spec)?;
    crate::checks::utf8_path(&args.out, "--out")?;
    crate::checks::output_folder(&args.out, "--out")?;
    let trials = trials(&spec);
    if let Some(name) = first_repeat(&trials.iter().map(|t| &t.name).collect::<Vec<_>>()) {
        bail!(
            "{}: two runs would share the folder `{name}`; make the env names and grid values distinct",
            args.spec.display()
        );
    }
    let runs = args.out.join("runs");
    let sweep_file = args.out.join("sweep.json");
    if let Ok(text) = std::fs::read_to_string(&sweep_file) {
        let old: SweepFile =
            serde_json::from_str(&text).with_context(|| format!("{} is not a sweep file", sweep_file.display()))?;
        let names: Vec<&str> = trials.iter().map(|t| t.name.as_str()).collect();
        if let Some(t) = old.trials.iter().find(|t| names.contains(&t.name.as_str()) && !trials.contains(t)) {
            bail!(
                "{} holds a different sweep (run {} was made with other settings); choose another --out",
                args.out.display(),
                t.name
            );
        }
    }
    let states: Vec<State> = trials.iter().map(|t| state(&runs.join(&t.name))).collect();
    if states.iter().any(|s| *s != State::Done) {
        check_configs(&trials, &args.out)?;
    }
    let count = |s: State| states.iter().filter(|&&x| x == s).count();
    eprintln!(
        "keel sweep: {} runs ({} envs × {} algorithms × {} variants × {} seeds): {} done, {} to resume, {} to start",
        trials.len(),
        spec.envs.len(),
        spec.algorithms.len(),
        trials.len() / (spec.envs.len() * spec.algorithms.len() * spec.seeds.len()).max(1),
        spec.seeds.len(),
        count(State::Done),
        count(State::Partial),
        count(State::New)
    );
    if args.dry_run {
        for (t, s) in trials.iter().zip(&states) {
            out!("{:<8} {}  keel {}", format!("{s:?}").to_lowercase(), t.name, t.train_args(&runs.join(&t.name)).join(" "));
        }
        return Ok(());
    }
    std::fs::create_dir_all(args.out.join("logs")).with_context(|| format!("creating {}", args.out.display()))?;
    std::fs::create_dir_all(&runs)?;
    let file = SweepFile { spec: spec.clone(), trials: trials.clone() };
    crate::write_atomically(&sweep_file, serde_json::to_string_pretty(&file)?.as_bytes())?;
    let program = std::env::current_exe().context("locating the keel program")?;
    if let Some(address) = &args.ray {
        return run_on_ray(&spec, &trials, &args.out, &program, address, args.jobs.or(spec.jobs));
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let jobs = args.jobs.or(spec.jobs).unwrap_or((cpus / spec.cpus_per_run).max(1)).max(1);
    let queue: Mutex<VecDeque<(usize, State)>> =
        Mutex::new(trials.iter().enumerate().map(|(i, _)| (i, states[i])).filter(|(_, s)| *s != State::Done).collect());
    let pending = queue.lock().map(|q| q.len()).unwrap_or(0);
    let started = Instant::now();
    let progress = Mutex::new((0usize, Vec::<String>::new()));
    let skipped = count(State::Done);
    std::thread::scope(|scope| {
        for _ in 0..jobs.min(pending) {
            scope.spawn(|| {
                loop {
                    let Some((i, st)) = queue.lock().ok().and_then(|mut q| q.pop_front()) else { break };
                    let trial = &trials[i];
                    let dir = runs.join(&trial.name);
                    let result = run_one(&program, trial, &dir, st, spec.cpus_per_run, &args.out);
                    let Ok(mut p) = progress.lock() else { break };
                    p.0 += 1;
                    let finished = p.0;
                    let line = match &result {
                        Ok(summary) => summary.clone(),
                        Err(e) => {
                            p.1.push(format!("{}: {e:#}", trial.name));
                            format!("FAILED: {e:#}")
                        }
                    };
                    let elapsed = started.elapsed();
                    let eta = elapsed.mul_f64((pending - finished) as f64 / finished as f64);
                    eprintln!(
                        "keel sweep: [{}/{}] {} {line}  (elapsed {}, ETA {})",
                        skipped + finished,
                        trials.len(),
                        trial.name,
                        format_duration(elapsed),
                        format_duration(eta)
                    );
                }
            });
        }
    });
    let failures = progress.into_inner().map(|p| p.1).unwrap_or_default();
    if !failures.is_empty() {
        bail!("{} of {} runs failed (logs in {}):\n{}", failures.len(), trials.len(), args.out.join("logs").display(), failures.join("\n"));
    }
    out!("keel sweep: {} runs done in {}", trials.len(), args.out.display());
    out!("report: keel report {}", args.out.display());
    Ok(())
}

/// Runs (or resumes) one trial; returns a one-line summary.
fn run_one(program: &Path, trial: &Trial, dir: &Path, state: State, cpus: usize, out: &Path) -> Result<String> {
    let args = match state {
        State::Partial => {
            let mut args = vec!["train".to_string(), "--resume".into(), dir.display().to_string(), "--quiet".into()];
            if let Some(steps) = trial.total_timesteps {
                args.extend(["--total-timesteps".into(), steps.to_string()]);
            }
            args
        }
        _ => {
            if dir.exists() {
                std::fs::remove_dir_all(dir).with_context(|| format!("clearing {}", dir.display()))?;
            }
            trial.train_args(dir)
        }
    };
    let log_path = out.join("logs").join(format!("{}.log", trial.name));
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("opening {}", log_path.display()))?;
    let status = Command::new(program)
        .args(&args)
        .env("KEEL_TORCH_THREADS", cpus.to_string())
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .status()
        .with_context(|| format!("running {}", program.display()))?;
    let summary: Value = std::fs::read_to_string(dir.join("summary.json"))
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or(Value::Null);
    let run_status = summary.get("status").and_then(Value::as_str).unwrap_or("");
    if !status.success() && run_status != "diverged" {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        let last = text.lines().filter(|l| !l.trim().is_empty()).last().unwrap_or("").to_string();
        bail!("keel train exited with {status}: {last}");
    }
    let ret = summary.get("final_return_mean").and_then(Value::as_f64).unwrap_or(f64::NAN);
    let wall = summary.get("wall_time_s").and_then(Value::as_f64).unwrap_or(f64::NAN);
    Ok(format!("{}{run_status}, return {ret:.4}, {wall:.1} s", if state == State::Partial { "resumed, " } else { "" }))
}

/// The Python that drives `--ray`: `KEEL_RAY_PYTHON`, else the Ray venv of scripts/setup.sh.
fn ray_python() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("KEEL_RAY_PYTHON") {
        return Ok(PathBuf::from(p));
    }
    let cache = std::env::var_os("KEEL_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/keel")))
        .context("neither KEEL_CACHE nor HOME is set")?;
    let python = cache.join("ray-venv/bin/python");
    if !python.exists() {
        bail!(
            "--ray: Ray is not installed ({} is missing); run scripts/setup.sh (or bash scripts/ray_venv.sh), or set KEEL_RAY_PYTHON",
            python.display()
        );
    }
    Ok(python)
}

/// Runs the trials through Ray Tune: writes `DIR/ray/trials.json` and the driver
/// (`scripts/ray_sweep.py`, built into this program) and runs it with the Ray venv's Python.
fn run_on_ray(spec: &Spec, trials: &[Trial], out: &Path, program: &Path, address: &str, jobs: Option<usize>) -> Result<()> {
    let python = ray_python()?;
    let out = std::fs::canonicalize(out).with_context(|| format!("resolving {}", out.display()))?;
    let ray_dir = out.join("ray");
    std::fs::create_dir_all(&ray_dir)?;
    let runs = out.join("runs");
    let plan: Vec<Value> = trials
        .iter()
        .map(|t| {
            let dir = runs.join(&t.name);
            let mut resume = vec!["train".to_string(), "--resume".into(), dir.display().to_string(), "--quiet".into()];
            if let Some(steps) = t.total_timesteps {
                resume.extend(["--total-timesteps".into(), steps.to_string()]);
            }
            serde_json::json!({ "name": t.name, "args": t.train_args(&dir), "resume_args": resume })
        })
        .collect();
    let file = serde_json::json!({
        "trials": plan,
        "cpus_per_run": spec.cpus_per_run,
        "jobs": jobs,
        "scheduler": spec.scheduler.clone().unwrap_or_else(|| "fifo".into()),
    });
    crate::write_atomically(&ray_dir.join("trials.json"), serde_json::to_string_pretty(&file)?.as_bytes())?;
    let driver = ray_dir.join("driver.py");
    crate::write_atomically(&driver, include_str!("../scripts/ray_sweep.py").as_bytes())?;
    let status = Command::new(&python)
        .arg(&driver)
        .args(["--out", &out.display().to_string(), "--keel", &program.display().to_string(), "--address", address])
        .stdin(Stdio::null())
        .status()
        .with_context(|| format!("running {}", python.display()))?;
    // Exit status 2: the driver refused (no cluster, no Ray) and said why in one `error:` line.
    if status.code() == Some(2) {
        return Err(crate::AlreadyReported.into());
    }
    if !status.success() {
        bail!("the Ray sweep did not finish ({status}); see the message above");
    }
    out!("report: keel report {}", out.display());
    Ok(())
}

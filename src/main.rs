//! `keel`: the command line of Keel.
//!
//! - `keel list`: every registered env with its spaces (and, with `--json`, extras and config).
//! - `keel rollout`: replay a JSON list of actions in one env and write the trajectory as JSON.
//! - `keel bench`: env-steps per second of the vector engine.
//! - `keel train`: train any registered algorithm (`--algo`) into a run folder; `--resume`.
//! - `keel eval`: episodes of a run's latest checkpoint, each with a step cap.
//! - `keel demo`: episodes of a run's policy as an expert demonstration (safetensors).
//! - `keel plot`: learning curves of runs, averaged over seeds.
//! - `keel performative`: repeated retraining in the performative grid-world; `figure2`
//!   reproduces the ICML'23 paper's Figure 2.
//! - `keel baseline`: zero / LQR / LQG controllers on the envs with a linear model.
//! - `keel td`: linear TD / PFPE on Baird's counterexample; `critical` finds the smallest
//!   stable target period; `stability` maps divergence over target period × learning rate.
//! - `keel clips`: the humanoid's motion clips; `keel render`: a clip or a trained run as an
//!   animated GIF.
//! - `keel curricula stg`: a stitched trajectory graph over clips, for the motion-tracking sampler.
//! - `keel sweep`: algorithms × envs × seeds × hyperparameters as parallel, resumable runs.
//! - `keel report`: rliable-style statistics, safety figures and plots of a sweep folder.
//! - `keel doctor`: the libtorch build, its thread policy and CUDA devices.

/// `println!` that stops quietly when stdout is closed (`keel list | head`) instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

mod baseline;
mod bench;
mod chart;
mod checks;
mod curricula;
mod demo;
mod humanoid;
mod interrupt;
mod learning_curves;
mod performative;
mod report;
mod robustness;
mod rollout;
mod sampling;
mod stability;
mod stats;
mod sweep;
mod td;
mod train;

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};
use serde_json::{Map, Value};

#[derive(Parser)]
#[command(name = "keel", version, about = "Keel: fast RL and control environments, agents on libtorch")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List registered environments: id, spaces, episode cap, description.
    List {
        /// Print JSON (id, description, spec with spaces and episode cap, per-step extras, default
        /// config) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Replay actions from a JSON file in one env and write the trajectory as JSON.
    Rollout(rollout::RolloutArgs),
    /// Measure env-steps per second of the vector engine.
    Bench(bench::BenchArgs),
    /// Train an agent (--algo ppo | dppo | dqn | ild | bc | apg); writes a run folder (config, metrics, checkpoints,
    /// summary, plot).
    Train(train::TrainArgs),
    /// Evaluate a run's latest checkpoint: mean ± std return over episodes.
    Eval(train::EvalArgs),
    /// Record episodes of a run's policy (states, observations, actions, rewards) as an expert
    /// demonstration for `keel train --algo ild | bc --demo FILE`.
    Demo(demo::DemoArgs),
    /// Overlay learning curves of runs (mean and spread across seeds) into a PNG.
    Plot(learning_curves::PlotArgs),
    /// Performative RL: repeated retraining (RPO / RGA, exact or finite-sample) in
    /// keel/PerformativeGrid-v0; `figure2` runs the paper's Figure 2.
    Performative(performative::PerformativeArgs),
    /// Run a model-based controller (zero, LQR, LQG) and report the episodic cost.
    Baseline(baseline::BaselineArgs),
    /// Target-network TD: linear TD / PFPE on Baird's counterexample (`baird`, `critical`) and
    /// stability maps of target period × learning rate (`stability`).
    Td(td::TdArgs),
    /// List the humanoid's motion clips: frames, fps, length, looping.
    Clips,
    /// Draw a motion clip (played kinematically) or a trained humanoid run into an animated GIF.
    Render(humanoid::RenderArgs),
    /// Offline parts of the curricula: `stg` builds a stitched trajectory graph over clips.
    Curricula(curricula::CurriculaArgs),
    /// Run a grid of algorithms × envs × seeds × hyperparameters as parallel, resumable
    /// `keel train` runs into DIR (see configs/sweeps/).
    Sweep(sweep::SweepArgs),
    /// Statistics of a sweep folder: final returns, normalised IQM / median / mean / optimality
    /// gap with bootstrap intervals, probability of improvement, safety figures, plots, report.md.
    Report(report::ReportArgs),
    /// Report the libtorch build: version, thread policy, CUDA devices.
    Doctor,
}

/// `--set key=value` pairs as a config map (values parse as JSON, else as strings).
pub fn overrides_from(pairs: &[String]) -> Result<Map<String, Value>> {
    let mut map = Map::new();
    for pair in pairs {
        let (key, value) = checks::parse_set(pair)?;
        map.insert(key, value);
    }
    Ok(map)
}

pub use keel_agents::checkpoint::write_atomically;
pub use keel_agents::run_dir::mean_std;

fn list(json: bool) -> Result<()> {
    if json {
        let mut entries = Vec::new();
        for r in keel_envs::registry::entries() {
            // An env whose data is not installed is listed with the reason instead of a spec.
            let (spec, extras) = match r.spec() {
                Ok(spec) => (serde_json::to_value(&spec)?, serde_json::to_value(&spec.extras)?),
                Err(keel_envs::EnvError::DataMissing(why)) => (serde_json::json!({ "unavailable": why }), Value::Null),
                Err(e) => return Err(e.into()),
            };
            entries.push(serde_json::json!({
                "id": r.id,
                "description": r.description,
                "spec": spec,
                "extras": extras,
                "default_config": r.default_config(),
            }));
        }
        out!("{}", serde_json::to_string_pretty(&entries)?);
        return Ok(());
    }
    out!("{:<32} {:<28} {:<22} {:>9}  description", "id", "observation space", "action space", "max steps");
    for r in keel_envs::registry::entries() {
        let spec = match r.spec() {
            Ok(spec) => spec,
            Err(keel_envs::EnvError::DataMissing(_)) => {
                out!(
                    "{:<32} {:<28} {:<22} {:>9}  {} (data not installed: run scripts/setup.sh)",
                    r.id,
                    "-",
                    "-",
                    "-",
                    r.description
                );
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let steps = spec.max_episode_steps.map_or("-".to_string(), |n| n.to_string());
        out!(
            "{:<32} {:<28} {:<22} {:>9}  {}",
            r.id,
            spec.observation_space.describe(),
            spec.action_space.describe(),
            steps,
            r.description
        );
    }
    Ok(())
}

fn doctor() {
    keel_agents::threads::configure();
    let tch = keel_agents::tch::Cuda::is_available();
    out!("libtorch intra-op threads: {} (set KEEL_TORCH_THREADS to change)", keel_agents::tch::get_num_threads());
    out!("CUDA available: {tch}");
    out!("CUDA devices: {}", keel_agents::tch::Cuda::device_count());
    out!("cuDNN available: {}", keel_agents::tch::Cuda::cudnn_is_available());
    let t = keel_agents::tch::Tensor::from_slice(&[1.0f32, 2.0, 3.0]);
    out!("tensor check: sum([1, 2, 3]) = {}", t.sum(keel_agents::tch::Kind::Float).double_value(&[]));
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Families outside keel-envs' defaults join the registry before anything looks an id up.
    let registered = keel_envs::humanoid::register().and_then(|()| keel_envs::diff::register());
    #[cfg(feature = "atari")]
    let registered = registered.and_then(|()| keel_envs::atari::register());
    if let Err(e) = registered {
        eprintln!("error: {e:#}");
        return ExitCode::FAILURE;
    }
    let result = match cli.command {
        Command::List { json } => list(json),
        Command::Rollout(args) => rollout::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Train(args) => train::run(&args),
        Command::Eval(args) => train::eval(&args),
        Command::Demo(args) => demo::run(&args),
        Command::Plot(args) => learning_curves::run(&args),
        Command::Performative(args) => performative::run_command(&args),
        Command::Baseline(args) => baseline::run(&args),
        Command::Td(args) => td::run(&args),
        Command::Clips => humanoid::clips(),
        Command::Render(args) => humanoid::render(&args),
        Command::Curricula(args) => curricula::run(&args),
        Command::Sweep(args) => sweep::run(&args),
        Command::Report(args) => report::run(&args),
        Command::Doctor => {
            doctor();
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is::<AlreadyReported>() => ExitCode::FAILURE,
        Err(e) if e.is::<interrupt::Interrupted>() => {
            eprintln!("keel: {e}");
            ExitCode::from(interrupt::EXIT_STATUS)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A failure whose `error:` line a child process (the Ray driver) has already printed: `keel`
/// exits with failure without saying it a second time.
#[derive(Debug)]
pub struct AlreadyReported;

impl std::fmt::Display for AlreadyReported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("reported above")
    }
}

impl std::error::Error for AlreadyReported {}

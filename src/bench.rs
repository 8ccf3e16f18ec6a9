//! `keel bench`: env-steps per second of the vector engine, as a median over repeats.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Result, anyhow, bail};
use clap::Args;
use keel_envs::space::{DType, OwnedAction};
use keel_envs::{AutoresetMode, VecEnv, VecOptions};
use rand::SeedableRng;
use serde::Serialize;
use serde_json::{Map, Value};

/// Arguments of `keel bench`.
#[derive(Args)]
pub struct BenchArgs {
    /// Environment id; omitted: every registered env, printed as a table.
    #[arg(long)]
    env: Option<String>,
    /// Number of envs in the vector.
    #[arg(long, default_value_t = 256, allow_negative_numbers = true)]
    num_envs: usize,
    /// Worker threads (0: serial on the calling thread); default: one per core.
    #[arg(long, allow_negative_numbers = true)]
    workers: Option<usize>,
    /// Vector steps per repeat (each is `num_envs` env-steps).
    #[arg(long, default_value_t = 10_000, allow_negative_numbers = true)]
    steps: usize,
    /// Timed repeats; the median is reported.
    #[arg(long, default_value_t = 5, allow_negative_numbers = true)]
    repeats: usize,
    /// Config override `key=value` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Autoreset mode: next_step, same_step (disabled cannot run unattended).
    #[arg(long, default_value = "next_step")]
    autoreset: AutoresetMode,
    /// Also write the results as JSON to this file.
    #[arg(long, value_name = "FILE.json")]
    json: Option<PathBuf>,
}

/// One benchmark result.
#[derive(Serialize)]
struct Measurement {
    env: String,
    num_envs: usize,
    workers: usize,
    batch_steps: usize,
    repeats: usize,
    median_env_steps_per_s: f64,
    min_env_steps_per_s: f64,
    max_env_steps_per_s: f64,
}

/// Bytes the bench holds per env: the env itself, its rows of the batch (observations, rewards,
/// flags, extras), and its share of the pre-drawn action batches.
fn bytes_per_env(id: &str, config: &Map<String, Value>) -> Result<u128> {
    let registration = keel_envs::registry::lookup(id)?;
    let spec = registration.spec_for(config)?;
    let rows = 8 * (2 * spec.observation_space.flat_len() + spec.extras.len() + 4);
    let actions = ACTION_BATCHES * 8 * spec.action_space.flat_len();
    Ok(u128::from(registration.memory_estimate(config)?) + (rows + actions) as u128)
}

/// Pre-drawn action batches, cycled, so sampling is not timed.
const ACTION_BATCHES: usize = 16;

fn measure(id: &str, args: &BenchArgs, workers: usize) -> Result<Measurement> {
    let config = crate::overrides_from(&args.set)?;
    // The envs, the batch and the action table together, before anything is allocated.
    let bytes = (args.num_envs as u128).saturating_mul(bytes_per_env(id, &config)?);
    keel_envs::memory::check("num_envs", args.num_envs as u128, bytes)
        .map_err(|e| anyhow!("{id}: --num-envs: {} (envs and {ACTION_BATCHES} pre-drawn action batches)", e.message))?;
    let options = VecOptions { workers, autoreset_mode: args.autoreset };
    let mut venv = VecEnv::make(id, &config, args.num_envs, options)?;
    let space = venv.spec().action_space.clone();
    // Batches of actions in the action space's type.
    let mut rng = rand_pcg::Pcg64::seed_from_u64(0);
    let len = args.num_envs * space.flat_len();
    let batches: Vec<OwnedAction> = (0..ACTION_BATCHES)
        .map(|_| {
            let (mut ints, mut floats, mut doubles) = (Vec::new(), Vec::new(), Vec::new());
            match space.box_dtype() {
                None => ints.try_reserve_exact(len),
                Some(DType::Float64) => doubles.try_reserve_exact(len),
                Some(_) => floats.try_reserve_exact(len),
            }
            .map_err(|_| anyhow!("{id}: --num-envs {}: no memory for the action batches", args.num_envs))?;
            for _ in 0..args.num_envs {
                match space.sample(&mut rng) {
                    OwnedAction::Scalar(v) => ints.push(v),
                    OwnedAction::Ints(v) => ints.extend(v),
                    OwnedAction::Floats(v) => floats.extend(v),
                    OwnedAction::Floats64(v) => doubles.extend(v),
                }
            }
            Ok(match space.box_dtype() {
                None => OwnedAction::Ints(ints),
                Some(DType::Float64) => OwnedAction::Floats64(doubles),
                Some(_) => OwnedAction::Floats(floats),
            })
        })
        .collect::<Result<_>>()?;
    let action = |k: usize| batches[k % batches.len()].as_action();
    venv.reset(Some(0))?;
    for k in 0..(args.steps / 10).max(1) {
        venv.step(action(k))?;
    }
    let mut rates = Vec::with_capacity(args.repeats);
    for _ in 0..args.repeats {
        let start = Instant::now();
        for k in 0..args.steps {
            venv.step(action(k))?;
        }
        let seconds = start.elapsed().as_secs_f64();
        rates.push(args.steps as f64 * args.num_envs as f64 / seconds);
    }
    rates.sort_by(f64::total_cmp);
    Ok(Measurement {
        env: id.into(),
        num_envs: args.num_envs,
        workers,
        batch_steps: args.steps,
        repeats: args.repeats,
        median_env_steps_per_s: rates[rates.len() / 2],
        min_env_steps_per_s: rates[0],
        max_env_steps_per_s: rates[rates.len() - 1],
    })
}

/// A rate with a unit that keeps three significant digits: 38.3M, 4.06k, 812.
fn millions(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2}M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.2}k", x / 1e3)
    } else {
        format!("{x:.1}")
    }
}

/// Runs `keel bench`.
pub fn run(args: &BenchArgs) -> Result<()> {
    if args.num_envs == 0 || args.steps == 0 || args.repeats == 0 {
        bail!("--num-envs, --steps and --repeats must be positive");
    }
    let total = (args.steps as u128) * (args.num_envs as u128) * (args.repeats as u128);
    if total > u128::from(u64::MAX) {
        bail!("--steps x --num-envs x --repeats = {total} env-steps: more than 2^64, a run that never ends");
    }
    if args.autoreset == AutoresetMode::Disabled {
        bail!("--autoreset disabled needs someone to reset finished envs; use next_step or same_step");
    }
    let workers = args.workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let ids: Vec<&str> = match &args.env {
        Some(id) => vec![id.as_str()],
        None => keel_envs::registry::ids(),
    };
    if let Some(path) = &args.json {
        crate::checks::output_file(path, "--json")?;
    }
    let mut results = Vec::new();
    for id in ids {
        let m = measure(id, args, workers)?;
        // The header comes with the first result, so an error before it is the only output.
        if results.is_empty() {
            out!(
                "keel bench: {} envs, {workers} workers, {} autoreset, median of {} x {} batch steps",
                args.num_envs,
                serde_json::to_value(args.autoreset)?.as_str().unwrap_or("?"),
                args.repeats,
                args.steps
            );
            out!();
            out!("| env | env-steps/s (median) | min | max | ns per env-step |");
            out!("|---|---:|---:|---:|---:|");
        }
        out!(
            "| {} | {} | {} | {} | {:.1} |",
            m.env,
            millions(m.median_env_steps_per_s),
            millions(m.min_env_steps_per_s),
            millions(m.max_env_steps_per_s),
            1e9 / m.median_env_steps_per_s
        );
        results.push(m);
    }
    if let Some(path) = &args.json {
        crate::write_atomically(path, serde_json::to_string_pretty(&results)?.as_bytes())?;
    }
    Ok(())
}

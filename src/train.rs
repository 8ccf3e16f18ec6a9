//! `keel train` and `keel eval`: runs of any registered algorithm (`--algo`), in run folders
//! (see `keel_agents::run_dir`: `config.toml`, `metrics.csv`, TensorBoard event files,
//! `checkpoints/`, `summary.json`, and `learning_curve.png`, drawn here).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use keel_agents::config::{algo_of, toml_overrides};
use keel_agents::eval::EvalOptions;
use keel_agents::registry;
use keel_agents::run::Run;
use keel_agents::run_dir::RunDir;
use keel_agents::training::{TrainOptions, train};
use serde_json::Value;

/// Arguments of `keel train`.
#[derive(Args)]
pub struct TrainArgs {
    /// Algorithm: ppo, dppo, dqn, ild, bc or apg (an unknown name lists the registered ones);
    /// default: the config file's `algo`, else ppo.
    #[arg(long)]
    algo: Option<String>,
    /// Environment id; default: the config file's `env_id`, else keel/CartPole-v1.
    #[arg(long)]
    env: Option<String>,
    /// TOML file of config fields, applied over the algorithm's defaults for the env (see configs/).
    #[arg(long, value_name = "FILE.toml")]
    config: Option<PathBuf>,
    /// Config override `key=value` (repeatable; dotted keys for tables: dppo.drop_rate=0.2,
    /// env_config.gravity=9.81, sampler.scale=0.5).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Seed.
    #[arg(long, allow_negative_numbers = true)]
    seed: Option<u64>,
    /// Environment steps to train for.
    #[arg(long, allow_negative_numbers = true)]
    total_timesteps: Option<u64>,
    /// Parallel envs.
    #[arg(long, allow_negative_numbers = true)]
    num_envs: Option<usize>,
    /// cpu, cuda or auto.
    #[arg(long)]
    device: Option<String>,
    /// Expert demonstration for `--algo ild` / `bc` (from `keel demo`; the `demo` config field).
    #[arg(long, value_name = "FILE.safetensors")]
    demo: Option<PathBuf>,
    /// Run folder (default runs/<env>_<algo>_s<seed>).
    #[arg(long, value_name = "DIR")]
    run_dir: Option<PathBuf>,
    /// Continue the stopped run in DIR from its latest checkpoint (with its own config and
    /// algorithm; only --total-timesteps may change it).
    #[arg(
        long,
        value_name = "DIR",
        conflicts_with_all = ["algo", "env", "config", "set", "seed", "num_envs", "device", "run_dir", "demo"]
    )]
    resume: Option<PathBuf>,
    /// Stop after this many iterations in this session (checkpoint written; continue with --resume).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    max_iterations: Option<u64>,
    /// No progress bar (for logs and CI).
    #[arg(long)]
    quiet: bool,
}

/// Arguments of `keel eval`.
#[derive(Args)]
pub struct EvalArgs {
    /// Run folder.
    #[arg(long, value_name = "DIR")]
    run: PathBuf,
    /// Episodes to play.
    #[arg(long, default_value_t = 10, allow_negative_numbers = true)]
    episodes: usize,
    /// Play the policy's mode instead of sampling.
    #[arg(long)]
    deterministic: bool,
    /// Seed of the first episode (episode k gets seed + k).
    #[arg(long, default_value_t = 1_000_000, allow_negative_numbers = true)]
    seed: u64,
    /// Episode cap (default: the env's episode cap, else 10000 steps); episodes cut by it count
    /// as truncated.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    max_episode_steps: Option<u64>,
    /// Humanoid runs: recovery from perturbed starts, the noise SCALE times the transition
    /// field's training magnitudes (writes robustness_<SCALE>.json; see `keel eval --help`).
    #[arg(long, value_name = "SCALE", conflicts_with = "max_episode_steps", allow_negative_numbers = true)]
    perturb: Option<f64>,
    /// With --perturb: largest tracking error (mean body distance, m) at the end of the
    /// recovery window that counts as recovered.
    #[arg(long, default_value_t = 0.15, requires = "perturb", allow_negative_numbers = true)]
    threshold: f64,
    /// With --perturb: the recovery window, s.
    #[arg(long, default_value_t = 2.0, requires = "perturb", allow_negative_numbers = true)]
    recovery_seconds: f64,
    /// With --perturb: how the noise is drawn: `official` (SkillMimic-V2's code as it runs,
    /// `(N(0,1)·2 − 1)·m`) or `uniform` (`U(−m, m)`).
    #[arg(long, value_enum, default_value = "official", requires = "perturb")]
    perturb_noise: PerturbNoise,
}

/// How `keel eval --perturb` draws its noise ([`keel_physics::Noise`]).
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum PerturbNoise {
    /// SkillMimic-V2's code as it runs.
    Official,
    /// Uniform within the magnitudes.
    Uniform,
}

/// The one value of `key` (`env_id` or `algo`) among the places a new run names it (its flag,
/// `--config`, `--set`), each given as (place, value): every place is honoured, and two different
/// values are an error naming both.
fn chosen(key: &str, mentions: &[(String, Value)]) -> Result<Option<String>> {
    let mut found: Option<(&str, &str)> = None;
    for (place, value) in mentions {
        let Some(text) = value.as_str() else { bail!("{place}: `{key}` must be a string, got {value}") };
        match found {
            Some((first, other)) if other != text => {
                bail!("`{key}` is given twice, {other:?} by {first} and {text:?} by {place}: give it once");
            }
            Some(_) => {}
            None => found = Some((place, text)),
        }
    }
    Ok(found.map(|(_, text)| text.to_string()))
}

/// The algorithm and the overrides of a new run, later wins: the algorithm's file for the env
/// (configs/, embedded), `--config`, the env id, `--set`, then the flags. The env id and the
/// algorithm may be given by their flags, by `env_id` / `algo` in `--config`, or by `--set`;
/// see [`chosen`].
fn resolve(args: &TrainArgs) -> Result<(registry::Registration, Vec<(String, Value)>)> {
    let file: Vec<(String, Value)> = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            toml_overrides(&text).with_context(|| format!("{}", path.display()))?
        }
        None => Vec::new(),
    };
    let sets = args.set.iter().map(|pair| crate::checks::parse_set(pair)).collect::<Result<Vec<_>>>()?;
    let file_name = args.config.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
    let pick = |key: &str, flag: &str, given: &Option<String>| {
        let mut mentions: Vec<(String, Value)> =
            given.iter().map(|v| (flag.to_string(), Value::String(v.clone()))).collect();
        mentions.extend(file.iter().filter(|(k, _)| k == key).map(|(_, v)| (file_name.clone(), v.clone())));
        mentions.extend(sets.iter().filter(|(k, _)| k == key).map(|(_, v)| (format!("--set {key}"), v.clone())));
        chosen(key, &mentions)
    };
    let env_id = pick("env_id", "--env", &args.env)?.unwrap_or_else(|| "keel/CartPole-v1".into());
    let algo = registry::lookup(&pick("algo", "--algo", &args.algo)?.unwrap_or_else(|| "ppo".into()))?;
    keel_envs::registry::lookup(&env_id)?;
    let mut overrides: Vec<(String, Value)> = Vec::new();
    if let Some(text) = algo.env_defaults(&env_id) {
        overrides.extend(toml_overrides(text)?);
    }
    overrides.extend(file);
    overrides.push(("env_id".into(), Value::String(env_id)));
    overrides.extend(sets);
    if let Some(seed) = args.seed {
        overrides.push(("seed".into(), seed.into()));
    }
    if let Some(steps) = args.total_timesteps {
        overrides.push((total_timesteps_key(&algo)?.into(), steps.into()));
    }
    if let Some(n) = args.num_envs {
        overrides.push(("num_envs".into(), n.into()));
    }
    if let Some(device) = &args.device {
        overrides.push(("device".into(), Value::String(device.clone())));
    }
    if let Some(demo) = &args.demo {
        // Absolute, so that `--resume` and `keel eval` find it from any directory.
        let path = std::path::absolute(demo).unwrap_or_else(|_| demo.clone());
        overrides.push(("demo".into(), Value::String(path.display().to_string())));
    }
    Ok((algo, overrides))
}

/// The config key `--total-timesteps` sets for `algo`, or an error saying which key sets the
/// length of its runs instead.
fn total_timesteps_key(algo: &registry::Registration) -> Result<&'static str> {
    if algo.run_length != "total_timesteps" {
        bail!(
            "--total-timesteps does not apply to --algo {}: its run length is `{}` (gradient steps); give --set {}=N",
            algo.name,
            algo.run_length,
            algo.run_length
        );
    }
    Ok("total_timesteps")
}

/// The run of a run folder, rebuilt from its `config.toml` (plus `extra` overrides) and
/// restored from its latest checkpoint.
pub fn reopen(dir: &RunDir, extra: &[(String, Value)]) -> Result<Box<dyn Run>> {
    let text = dir.config()?;
    let mut overrides = toml_overrides(&text)?;
    overrides.extend_from_slice(extra);
    reopen_with(dir, overrides)
}

/// [`reopen`] with the run's config already resolved into `overrides` (and changed).
pub fn reopen_with(dir: &RunDir, overrides: Vec<(String, Value)>) -> Result<Box<dyn Run>> {
    let text = dir.config()?;
    let algo = registry::lookup(&algo_of(&text).with_context(|| format!("{}", dir.path().display()))?)?;
    let mut run = algo.build(&overrides)?;
    run.load_checkpoint(&dir.checkpoints())?;
    Ok(run)
}

/// Plays `options.episodes` episodes of the latest checkpoint of the run in `dir`, calling `watch`
/// after every reset and step (`keel render --run`).
pub fn play_run(
    dir: &std::path::Path,
    options: &EvalOptions,
    watch: &mut dyn FnMut(&mut dyn keel_envs::Env, Option<&keel_envs::Step>) -> bool,
) -> Result<keel_agents::eval::Evaluation> {
    let mut run = reopen(&RunDir::new(dir), &[])?;
    Ok(run.evaluate_watched(options, watch)?)
}

/// Runs `keel train`.
pub fn run(args: &TrainArgs) -> Result<()> {
    // The run folder stays this process's until it returns (or ends, however it ends).
    let lock: Option<keel_agents::run_dir::RunLock>;
    let (mut run, dir) = match &args.resume {
        Some(path) => {
            let dir = RunDir::new(path);
            if !dir.path().join("config.toml").is_file() {
                bail!("--resume {}: no run there (no config.toml)", path.display());
            }
            lock = Some(dir.lock()?);
            let extra: Vec<(String, Value)> = match args.total_timesteps {
                Some(steps) => {
                    let algo = registry::lookup(&algo_of(&dir.config()?)?)?;
                    vec![(total_timesteps_key(&algo)?.to_string(), steps.into())]
                }
                None => Vec::new(),
            };
            let run = reopen(&dir, &extra)?;
            crate::checks::output_folder(path, "--resume")?;
            eprintln!("keel train: resumed {} at iteration {}", path.display(), run.iteration());
            (run, dir)
        }
        None => {
            if let Some(path) = &args.run_dir {
                crate::checks::output_folder(path, "--run-dir")?;
            }
            let (algo, overrides) = resolve(args)?;
            let run = algo.build(&overrides)?;
            let s = run.settings();
            let name = format!("{}_{}_s{}", s.env_id.trim_start_matches("keel/").to_lowercase(), s.algo, s.seed);
            let dir = RunDir::new(args.run_dir.clone().unwrap_or_else(|| PathBuf::from("runs").join(name)));
            crate::checks::output_folder(dir.path(), "--run-dir")?;
            lock = Some(dir.lock()?);
            dir.start(&run.config_toml()?)?;
            (run, dir)
        }
    };

    // First Ctrl-C: finish the iteration, checkpoint, summarise. Second: leave at once.
    crate::interrupt::install();
    let total = run.settings().num_iterations();
    let bar = if args.quiet { indicatif::ProgressBar::hidden() } else { indicatif::ProgressBar::new(total) };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} it  {msg}  [{elapsed_precise} < {eta_precise}]")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_position(run.iteration());
    let options = TrainOptions { max_iterations: args.max_iterations, stop: Some(crate::interrupt::flag()) };
    let summary = train(run.as_mut(), &dir, options, &mut |p| {
        bar.set_position(p.iteration);
        bar.set_message(format!("{:.0} SPS  return(100) {:.1}", p.sps, p.recent_return));
    })?;
    bar.finish_and_clear();
    if let Err(e) = crate::learning_curves::learning_curve(dir.path()) {
        eprintln!("keel train: no plot: {e:#}");
    }
    out!(
        "keel train: {}: {} steps, final_return_mean {:.2} ± {:.2} (last 100 episodes), {:.0} SPS",
        summary.status,
        summary.global_step,
        summary.final_return_mean,
        summary.final_return_std,
        summary.sps
    );
    out!("run folder: {}", dir.path().display());
    out!("learning curve: {}", dir.path().join("learning_curve.png").display());
    drop(lock);
    match (summary.status.as_str(), summary.message) {
        ("diverged", Some(m)) => bail!(m),
        // Exit status 130, as shells expect, so `keel train && next` does not go on.
        ("interrupted", _) => Err(crate::interrupt::Interrupted.into()),
        _ => Ok(()),
    }
}

/// Runs `keel eval`.
pub fn eval(args: &EvalArgs) -> Result<()> {
    if args.episodes == 0 {
        bail!("--episodes must be positive");
    }
    if args.max_episode_steps == Some(0) {
        bail!("--max-episode-steps must be positive");
    }
    if let Some(scale) = args.perturb {
        let options = EvalOptions {
            episodes: args.episodes,
            deterministic: args.deterministic,
            seed: args.seed,
            max_episode_steps: None,
        };
        let noise = match args.perturb_noise {
            PerturbNoise::Official => keel_physics::Noise::Official,
            PerturbNoise::Uniform => keel_physics::Noise::Uniform,
        };
        crate::robustness::evaluate(&args.run, scale, noise, args.threshold, args.recovery_seconds, options)?;
        return Ok(());
    }
    // Each episode's record is kept for eval.json.
    let record = std::mem::size_of::<keel_agents::eval::EvalEpisode>() as u128;
    keel_envs::memory::check("--episodes", args.episodes as u128, args.episodes as u128 * record)
        .map_err(|e| anyhow::anyhow!("{}", e.message))?;
    let dir = RunDir::new(&args.run);
    let mut run = reopen(&dir, &[])?;
    crate::checks::output_file(&args.run.join("eval.json"), "--run")?;
    let options = EvalOptions {
        episodes: args.episodes,
        deterministic: args.deterministic,
        seed: args.seed,
        max_episode_steps: args.max_episode_steps,
    };
    let evaluation = run.evaluate(&options)?;
    let returns = evaluation.returns();
    let (mean, std) = crate::mean_std(&returns);
    let truncated = evaluation.truncated();
    out!(
        "keel eval: {} episodes ({}{}): return {mean:.2} ± {std:.2}{}",
        returns.len(),
        if args.deterministic { "deterministic" } else { "sampled" },
        if evaluation.deployed { ", policy deployed" } else { "" },
        if truncated > 0 { format!("; {truncated} truncated at {} steps", evaluation.step_cap) } else { String::new() }
    );
    let extras = evaluation.extras_mean();
    if !extras.is_empty() {
        let listed: Vec<String> = extras.iter().map(|(name, v)| format!("{name} {v:.4}")).collect();
        out!("keel eval: per-step extras, mean over every step: {}", listed.join(", "));
    }
    let report = serde_json::json!({
        "episodes": returns.len(),
        "deterministic": args.deterministic,
        "seed": args.seed,
        "iteration": run.iteration(),
        "step_cap": evaluation.step_cap,
        "deployed": evaluation.deployed,
        "truncated": truncated,
        "return_mean": mean,
        "return_std": std,
        "returns": returns,
        "lengths": evaluation.episodes.iter().map(|e| e.length).collect::<Vec<_>>(),
        "extras_mean": extras.iter().map(|(name, v)| (name.clone(), Value::from(*v))).collect::<serde_json::Map<String, Value>>(),
    });
    crate::write_atomically(&args.run.join("eval.json"), serde_json::to_string_pretty(&report)?.as_bytes())?;
    Ok(())
}

/// Checks that `keel train ARGS` (a new run; `ARGS` without `train`) resolves its config and
/// builds, without writing or training anything.
pub fn check_new_run(args: &[String]) -> Result<()> {
    #[derive(clap::Parser)]
    struct Wrap {
        #[command(flatten)]
        train: TrainArgs,
    }
    use clap::Parser as _;
    let wrap = Wrap::try_parse_from(std::iter::once("keel train".to_string()).chain(args.iter().cloned()))
        .map_err(|e| anyhow::anyhow!("{}", e.to_string().lines().next().unwrap_or("bad arguments")))?;
    let (algo, overrides) = resolve(&wrap.train)?;
    algo.build(&overrides)?;
    Ok(())
}

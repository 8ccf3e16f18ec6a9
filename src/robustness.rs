//! `keel eval --perturb SCALE`: recovery from perturbed starts (the SkillMimic-V2 robustness
//! study).
//!
//! Every episode starts from the reference at a random clip time, perturbed with noise of
//! `SCALE` times the transition field's training magnitudes
//! ([`keel_physics::Perturbation::skillmimic`]: 0.1 on root height, rotation and velocities and
//! on every joint), drawn as SkillMimic-V2's code draws it (`--perturb-noise official`, the
//! default) or uniformly (`uniform`), the reference moved onto the start. An episode lasts the recovery window
//! (`--recovery-seconds`, 2 s). It is a **recovery** if the humanoid has not fallen by then and
//! its tracking error (mean body distance from the reference, m) at the end of the window is at
//! most `--threshold`. The same seeds give every run the same starts.

use std::path::Path;

use anyhow::{Result, bail};
use keel_agents::eval::EvalOptions;
use keel_agents::run_dir::RunDir;
use keel_physics::Perturbation;
use serde_json::{Value, json};

/// What `keel eval --perturb` measures.
pub struct Recovery {
    /// Episodes played.
    pub episodes: usize,
    /// Episodes that recovered.
    pub recovered: usize,
    /// Episodes that fell within the window.
    pub fell: usize,
    /// Mean over episodes of the mean tracking error over their steps, m.
    pub tracking_error: f64,
    /// Mean over the episodes that did not fall of the tracking error at the window's end, m.
    pub final_error: f64,
}

/// Plays `episodes` perturbed episodes of the run in `run` (see the module docs) and writes
/// `robustness_<SCALE>.json` into it.
pub fn evaluate(
    run: &Path,
    scale: f64,
    noise: keel_physics::Noise,
    threshold: f64,
    seconds: f64,
    options: EvalOptions,
) -> Result<Recovery> {
    if !(scale.is_finite() && (0.0..=30.0).contains(&scale)) {
        bail!("--perturb: the scale must be in [0, 30], got {scale}");
    }
    if !(threshold.is_finite() && threshold > 0.0) {
        bail!("--threshold must be finite and > 0 m, got {threshold}");
    }
    if !(seconds.is_finite() && seconds > 0.0 && seconds <= 60.0) {
        bail!("--recovery-seconds must be in (0, 60], got {seconds}");
    }
    let dir = RunDir::new(run);
    let text = dir.config()?;
    let mut overrides = keel_agents::config::toml_overrides(&text)?;
    let env_id = overrides.iter().find(|(k, _)| k == "env_id").and_then(|(_, v)| v.as_str()).unwrap_or_default();
    if env_id != keel_curricula::motion::ENV_ID {
        bail!("--perturb needs a run on {}, this one is on {env_id:?}", keel_curricula::motion::ENV_ID);
    }
    let perturbation = Perturbation::skillmimic().with_noise(noise).scaled(scale);
    perturbation.check().map_err(|(field, why)| anyhow::anyhow!("--perturb: `{field}` {why}"))?;
    let mut env_config =
        overrides.iter().find(|(k, _)| k == "env_config").and_then(|(_, v)| v.as_object().cloned()).unwrap_or_default();
    let control_hz = env_config.get("control_hz").and_then(Value::as_f64).unwrap_or(30.0);
    env_config.insert("perturbation".into(), serde_json::to_value(perturbation)?);
    env_config.insert("align_reference".into(), true.into());
    overrides.retain(|(k, _)| k != "env_config");
    overrides.push(("env_config".into(), Value::Object(env_config)));
    let mut run_obj = crate::train::reopen_with(&dir, overrides)?;
    let window = ((seconds * control_hz).round() as u64).max(1);
    let options = EvalOptions { max_episode_steps: Some(window), ..options };
    let (mut error_sum, mut steps, mut last_error, mut fell_now) = (0.0, 0u64, 0.0, false);
    let mut per_episode: Vec<(bool, bool, f64, f64, u64)> = Vec::new();
    let mut extras = Vec::new();
    let mut watch = |env: &mut dyn keel_envs::Env, step: Option<&keel_envs::Step>| {
        let spec = env.spec();
        let at = |name: &str| spec.extras.iter().position(|e| e == name);
        let (Some(error_at), Some(fell_at)) = (at("tracking_error"), at("fell")) else { return false };
        extras.resize(spec.extras_len(), 0.0);
        env.write_extras(&mut extras);
        match step {
            None => {
                (error_sum, steps, fell_now) = (0.0, 0, false);
            }
            Some(s) => {
                error_sum += extras[error_at];
                steps += 1;
                last_error = extras[error_at];
                fell_now |= extras[fell_at] > 0.5;
                if s.terminated || s.truncated || steps >= window {
                    let recovered = !fell_now && !s.terminated && last_error <= threshold;
                    per_episode.push((
                        recovered,
                        fell_now || s.terminated,
                        error_sum / steps as f64,
                        last_error,
                        steps,
                    ));
                }
            }
        }
        true
    };
    run_obj.evaluate_watched(&options, &mut watch)?;
    if per_episode.is_empty() {
        bail!("no episode finished");
    }
    let n = per_episode.len();
    let standing: Vec<f64> = per_episode.iter().filter(|e| !e.1).map(|e| e.3).collect();
    let result = Recovery {
        episodes: n,
        recovered: per_episode.iter().filter(|e| e.0).count(),
        fell: per_episode.iter().filter(|e| e.1).count(),
        tracking_error: per_episode.iter().map(|e| e.2).sum::<f64>() / n as f64,
        final_error: if standing.is_empty() { f64::NAN } else { standing.iter().sum::<f64>() / standing.len() as f64 },
    };
    let report = json!({
        "perturb_scale": scale,
        "perturbation": perturbation,
        "threshold_m": threshold,
        "recovery_seconds": seconds,
        "window_steps": window,
        "iteration": run_obj.iteration(),
        "global_step": run_obj.global_step(),
        "episodes": n,
        "deterministic": options.deterministic,
        "seed": options.seed,
        "recovered": result.recovered,
        "success_rate": result.recovered as f64 / n as f64,
        "fell": result.fell,
        "survival_s_mean": per_episode.iter().map(|e| e.4 as f64).sum::<f64>() / n as f64 / control_hz,
        "tracking_error_mean_m": result.tracking_error,
        "final_error_mean_m": if result.final_error.is_nan() { Value::Null } else { result.final_error.into() },
    });
    let out = run.join(format!("robustness_{scale}.json"));
    crate::write_atomically(&out, serde_json::to_string_pretty(&report)?.as_bytes())?;
    out!(
        "keel eval --perturb {scale}: {} episodes, recovered {} ({:.1}%), fell {}, tracking error {:.3} m (mean), {} m at {seconds} s: {}",
        result.episodes,
        result.recovered,
        100.0 * result.recovered as f64 / n as f64,
        result.fell,
        result.tracking_error,
        if result.final_error.is_nan() { "-".to_string() } else { format!("{:.3}", result.final_error) },
        out.display()
    );
    Ok(result)
}

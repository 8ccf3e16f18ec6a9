//! Evaluation: episodes of a trained policy on a fresh env, each with a step cap so that an env
//! without an episode limit cannot make it run forever.
//!
//! The env is made with the run's env config; its episode cap is `max_episode_steps` if given,
//! else the env's own (the registered cap, or the run's `env_config.max_episode_steps`), else
//! [`DEFAULT_STEP_CAP`]. An episode cut by the cap is reported as truncated, as Gymnasium's
//! `TimeLimit` does. For a run that deploys its policy (`deploy_every`), the trainer deploys the
//! trained policy to the evaluation env first, so what is evaluated is the policy in the world
//! that responds to it.

use serde::Serialize;
use serde_json::{Map, Value};
use tch::Tensor;

use keel_envs::{Env, ObsBuf, ResetOptions, Step};

use crate::encode::{ActionDecoder, ObsEncoder};
use crate::error::Result;

/// Episode cap of an evaluation when neither the caller nor the env sets one.
pub const DEFAULT_STEP_CAP: u64 = 10_000;

/// What to evaluate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EvalOptions {
    /// Episodes to play; episode `k` is seeded `seed + k` (wrapping at 2^64).
    pub episodes: usize,
    /// Play the policy's mode instead of sampling it.
    pub deterministic: bool,
    /// Seed of the first episode (and of the policy's sampling).
    pub seed: u64,
    /// Episode cap (default: the env's, else [`DEFAULT_STEP_CAP`]).
    pub max_episode_steps: Option<u64>,
}

/// One evaluation episode.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EvalEpisode {
    /// Its seed.
    pub seed: u64,
    /// Undiscounted return.
    pub episode_return: f64,
    /// Steps.
    pub length: u64,
    /// Cut by the episode cap (or another time limit) rather than ended by the MDP.
    pub truncated: bool,
    /// The mean over its steps of each per-step extra, in the env's `spec.extras` order
    /// (empty for an env without extras).
    pub extras_mean: Vec<f64>,
}

/// The result of an evaluation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Evaluation {
    /// Every episode, in order.
    pub episodes: Vec<EvalEpisode>,
    /// The episode cap that applied.
    pub step_cap: u64,
    /// Whether the trained policy was deployed to the env first.
    pub deployed: bool,
    /// The names of the per-step extras (the env's `spec.extras`).
    pub extras: Vec<String>,
}

impl Evaluation {
    /// The episodes' returns.
    pub fn returns(&self) -> Vec<f64> {
        self.episodes.iter().map(|e| e.episode_return).collect()
    }

    /// How many episodes were truncated.
    pub fn truncated(&self) -> usize {
        self.episodes.iter().filter(|e| e.truncated).count()
    }

    /// Each per-step extra averaged over every step of every episode (each episode weighted
    /// by its length), paired with its name.
    pub fn extras_mean(&self) -> Vec<(String, f64)> {
        let steps: u64 = self.episodes.iter().map(|e| e.length).sum();
        (self.extras.iter().enumerate())
            .map(|(k, name)| {
                let total: f64 =
                    self.episodes.iter().map(|e| e.extras_mean.get(k).copied().unwrap_or(0.0) * e.length as f64).sum();
                (name.clone(), if steps > 0 { total / steps as f64 } else { f64::NAN })
            })
            .collect()
    }
}

/// The env config of an evaluation env (the run's, with the episode cap set) and that cap.
pub fn env_config(
    env_id: &str,
    run_config: &Map<String, Value>,
    cap: Option<u64>,
) -> Result<(Map<String, Value>, u64)> {
    let own = keel_envs::registry::lookup(env_id)?.spec_for(run_config)?.max_episode_steps;
    let cap = cap.or(own).unwrap_or(DEFAULT_STEP_CAP).max(1);
    let mut config = run_config.clone();
    config.insert(keel_envs::wrappers::MAX_EPISODE_STEPS.into(), cap.into());
    Ok((config, cap))
}

/// Plays `options.episodes` episodes in `env`, acting with `act` (network input to actions); an
/// episode that reaches `cap` steps is cut there (the env made by [`env_config`] cuts it itself).
pub fn play(
    env: &mut dyn Env,
    options: &EvalOptions,
    cap: u64,
    encoder: &ObsEncoder,
    act: &mut dyn FnMut(&Tensor) -> Tensor,
) -> Result<Vec<EvalEpisode>> {
    play_watched(env, options, cap, encoder, act, &mut |_, _| true)
}

/// [`play`], calling `watch` with the env after every reset (`None`) and step (`Some`); `watch`
/// returning `false` stops the evaluation there (the episodes finished so far are returned).
pub fn play_watched(
    env: &mut dyn Env,
    options: &EvalOptions,
    cap: u64,
    encoder: &ObsEncoder,
    act: &mut dyn FnMut(&Tensor) -> Tensor,
    watch: &mut dyn FnMut(&mut dyn Env, Option<&Step>) -> bool,
) -> Result<Vec<EvalEpisode>> {
    let decoder = ActionDecoder::new(&env.spec().action_space);
    let mut obs: ObsBuf = env.spec().obs_buffer(1);
    let mut extras = vec![0.0; env.spec().extras_len()];
    // Grown as episodes finish: a count a user chose is not reserved up front.
    let mut episodes = Vec::new();
    for k in 0..options.episodes {
        let seed = options.seed.wrapping_add(k as u64);
        env.reset(Some(seed), &ResetOptions::default(), obs.as_mut())?;
        if !watch(env, None) {
            break;
        }
        let mut episode = EvalEpisode {
            seed,
            episode_return: 0.0,
            length: 0,
            truncated: false,
            extras_mean: vec![0.0; extras.len()],
        };
        loop {
            let action = decoder.decode(&act(&encoder.input(&encoder.store(obs.as_ref()))))?;
            let step = env.step(action.as_action(), obs.as_mut())?;
            episode.episode_return += step.reward;
            episode.length += 1;
            env.write_extras(&mut extras);
            // A running mean, so the record stays one number per extra.
            let n = episode.length as f64;
            episode.extras_mean.iter_mut().zip(&extras).for_each(|(m, x)| *m += (x - *m) / n);
            let go_on = watch(env, Some(&step));
            if step.terminated || step.truncated || episode.length >= cap || !go_on {
                episode.truncated = !step.terminated;
                if !go_on {
                    episodes.push(episode);
                    return Ok(episodes);
                }
                break;
            }
        }
        episodes.push(episode);
    }
    Ok(episodes)
}

//! `keel rollout`: replay a JSON list of actions and write the trajectory.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use keel_envs::{Env, ObsBuf, ResetOptions};
use serde::Serialize;
use serde_json::{Map, Value};

/// Arguments of `keel rollout`.
#[derive(Args)]
pub struct RolloutArgs {
    /// Environment id, e.g. keel/CartPole-v1.
    #[arg(long)]
    env: String,
    /// Config override `key=value` (repeatable); `max_episode_steps=N` changes the time limit.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Seed of the reset.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    seed: u64,
    /// JSON file with the initial state: a list of numbers, or an object with key `state`.
    #[arg(long, value_name = "FILE.json")]
    init_state: Option<PathBuf>,
    /// JSON file with the actions: a list whose items are integers (Discrete) or lists of
    /// numbers (Box, MultiDiscrete), read in the action space's type (float64 Boxes keep every
    /// digit).
    #[arg(long, value_name = "FILE.json")]
    actions: PathBuf,
    /// Where to write the trajectory JSON.
    #[arg(long, value_name = "FILE.json")]
    out: PathBuf,
}

#[derive(Serialize)]
struct Record {
    /// The observation, as numbers of the observation space's type.
    obs: Value,
    reward: f64,
    terminated: bool,
    truncated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<Vec<f64>>,
}

#[derive(Serialize)]
struct Trajectory {
    env: String,
    seed: u64,
    config: Map<String, Value>,
    reset: Record,
    steps: Vec<Record>,
    /// Actions left unplayed because the episode ended first.
    unplayed_actions: usize,
}

fn read_json(path: &PathBuf, what: &str) -> Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {what} {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {what} {} as JSON", path.display()))
}

fn parse_state(value: Value) -> Result<Vec<f64>> {
    let list = match value {
        Value::Object(mut map) => map.remove("state").context("initial-state object has no `state` key")?,
        other => other,
    };
    let Value::Array(items) = list else { bail!("initial state must be a list of numbers") };
    items
        .iter()
        .enumerate()
        .map(|(k, v)| v.as_f64().with_context(|| format!("initial state element {k} is not a number: {v}")))
        .collect()
}

/// An observation as a JSON list of numbers of its own type (float64 values keep every digit).
fn obs_json(obs: &ObsBuf) -> Value {
    match obs {
        ObsBuf::F32(v) => Value::from(v.as_slice()),
        ObsBuf::F64(v) => Value::from(v.as_slice()),
        ObsBuf::U8(v) => Value::from(v.as_slice()),
    }
}

/// Runs `keel rollout`.
pub fn run(args: &RolloutArgs) -> Result<()> {
    crate::checks::output_file(&args.out, "--out")?;
    let mut inputs = vec![(args.actions.as_path(), "--actions")];
    inputs.extend(args.init_state.as_deref().map(|p| (p, "--init-state")));
    crate::checks::output_is_not_an_input(&args.out, "--out", &inputs)?;
    let config = crate::overrides_from(&args.set)?;
    let mut env = keel_envs::make(&args.env, &config)?;
    let space = env.spec().action_space.clone();
    let Value::Array(raw_actions) = read_json(&args.actions, "actions")? else {
        bail!("{}: actions must be a JSON list", args.actions.display());
    };
    let actions = raw_actions
        .iter()
        .enumerate()
        .map(|(t, v)| space.parse_action(v).with_context(|| format!("action {t}")))
        .collect::<Result<Vec<_>>>()?;
    let options = match &args.init_state {
        Some(path) => ResetOptions::with_state(parse_state(read_json(path, "initial state")?)?),
        None => ResetOptions::default(),
    };

    let mut obs = env.spec().obs_buffer(1);
    env.reset(Some(args.seed), &options, obs.as_mut())?;
    let reset = Record { obs: obs_json(&obs), reward: 0.0, terminated: false, truncated: false, state: env.state() };
    let mut steps = Vec::with_capacity(actions.len());
    for (t, action) in actions.iter().enumerate() {
        let s = env.step(action.as_action(), obs.as_mut()).with_context(|| format!("action {t}"))?;
        steps.push(Record {
            obs: obs_json(&obs),
            reward: s.reward,
            terminated: s.terminated,
            truncated: s.truncated,
            state: env.state(),
        });
        if s.terminated || s.truncated {
            break;
        }
    }
    let unplayed_actions = actions.len() - steps.len();
    if unplayed_actions > 0 {
        eprintln!("note: the episode ended after {} steps; {unplayed_actions} actions not played", steps.len());
    }
    let trajectory = Trajectory { env: args.env.clone(), seed: args.seed, config, reset, steps, unplayed_actions };
    let text = serde_json::to_string(&trajectory)?;
    crate::write_atomically(&args.out, text.as_bytes())?;
    Ok(())
}

//! Expert demonstrations: episodes of a trained policy, as named tensors in a safetensors file
//! (`keel demo`), and what imitation learners read back.
//!
//! A demo file holds `observations [E, T, O]`, `actions [E, T, A]` and `rewards [E, T]` (float32),
//! `states [E, T, S]` (float64, the env's physical state before each action, for envs that
//! expose one) and `env_id` (its UTF-8 bytes). Every episode is cut or kept at the same `T`
//! steps; an episode that ends earlier is an error (ask for fewer steps).

use std::path::Path;

use tch::{Kind, Tensor};

use keel_envs::{ObsBuf, ObsRef, ResetOptions};

use crate::algorithm::Algorithm;
use crate::encode::{ActionDecoder, ObsEncoder};
use crate::error::{AgentError, Result};
use crate::trainer::Trainer;

/// Episodes of an expert, step-aligned.
#[derive(Debug)]
pub struct Demo {
    /// The env they were played in.
    pub env_id: String,
    /// `[E, T, S]` float64, if the env exposes its state.
    pub states: Option<Tensor>,
    /// `[E, T, O]` float32: the observation before each action.
    pub observations: Tensor,
    /// `[E, T, A]` float32 (Box actions) or `[E, T, 1]` (the integer, as a float).
    pub actions: Tensor,
    /// `[E, T]` float32.
    pub rewards: Tensor,
}

/// What to record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DemoOptions {
    /// Episodes.
    pub episodes: usize,
    /// Steps per episode.
    pub steps: usize,
    /// Seed of the first episode (episode k gets seed + k).
    pub seed: u64,
    /// Play the policy's mode instead of sampling it.
    pub deterministic: bool,
}

impl Demo {
    /// Episodes.
    pub fn episodes(&self) -> i64 {
        self.observations.size()[0]
    }

    /// Steps per episode.
    pub fn steps(&self) -> i64 {
        self.observations.size()[1]
    }

    /// The mean episode return.
    pub fn mean_return(&self) -> f64 {
        self.rewards.sum_dim_intlist(1, false, Kind::Double).mean(Kind::Double).double_value(&[])
    }

    /// Writes the demo to `path` (safetensors).
    pub fn write(&self, path: &Path) -> Result<()> {
        let mut named = vec![
            ("env_id".to_string(), Tensor::from_slice(self.env_id.as_bytes())),
            ("observations".to_string(), self.observations.shallow_clone()),
            ("actions".to_string(), self.actions.shallow_clone()),
            ("rewards".to_string(), self.rewards.shallow_clone()),
        ];
        if let Some(states) = &self.states {
            named.push(("states".to_string(), states.shallow_clone()));
        }
        crate::checkpoint::write_with(path, |tmp| Ok(Tensor::write_safetensors(&named, tmp)?))
    }

    /// Reads a demo written by [`Demo::write`]; a missing tensor or inconsistent shapes are an
    /// error naming the file.
    pub fn read(path: &Path) -> Result<Self> {
        let bad = |why: String| AgentError::Config(format!("demo {}: {why}", path.display()));
        if !path.is_file() {
            return Err(bad("no such file (write one with `keel demo`)".into()));
        }
        let named = Tensor::read_safetensors(path).map_err(|e| bad(format!("not a safetensors file: {e}")))?;
        let take = |name: &str| named.iter().find(|(n, _)| n == name).map(|(_, t)| t.shallow_clone());
        let need = |name: &str| take(name).ok_or_else(|| bad(format!("it has no `{name}` tensor")));
        let bytes = Vec::<u8>::try_from(need("env_id")?.to_kind(Kind::Uint8).flatten(0, -1))
            .map_err(|e| bad(format!("`env_id`: {e}")))?;
        let env_id = String::from_utf8(bytes).map_err(|e| bad(format!("`env_id` is not UTF-8: {e}")))?;
        let observations = need("observations")?.to_kind(Kind::Float);
        let actions = need("actions")?.to_kind(Kind::Float);
        let rewards = need("rewards")?.to_kind(Kind::Float);
        let states = take("states").map(|s| s.to_kind(Kind::Double));
        let (o, a, r) = (observations.size(), actions.size(), rewards.size());
        if o.len() != 3 || a.len() != 3 || r.len() != 2 || o[..2] != a[..2] || o[..2] != r[..] {
            return Err(bad(format!("shapes disagree: observations {o:?}, actions {a:?}, rewards {r:?}")));
        }
        if let Some(s) = &states {
            if s.size().len() != 3 || s.size()[..2] != o[..2] {
                return Err(bad(format!("shapes disagree: states {:?}, observations {o:?}", s.size())));
            }
        }
        if o[0] == 0 || o[1] == 0 {
            return Err(bad("it holds no steps".into()));
        }
        Ok(Self { env_id, states, observations, actions, rewards })
    }
}

/// One raw observation as a float32 row.
fn raw(obs: ObsRef<'_>) -> Tensor {
    match obs {
        ObsRef::F32(v) => Tensor::from_slice(v),
        ObsRef::F64(v) => Tensor::from_slice(v).to_kind(Kind::Float),
        ObsRef::U8(v) => Tensor::from_slice(v).to_kind(Kind::Float),
    }
}

/// Records `options.episodes` episodes of `options.steps` steps of a trainer's policy, in a
/// fresh env of its config (see [`Trainer::eval_env`]).
pub fn record<A: Algorithm>(trainer: &Trainer<A>, options: &DemoOptions) -> Result<Demo> {
    if options.episodes == 0 || options.steps == 0 {
        return Err(AgentError::Config("a demo needs at least one episode of one step".into()));
    }
    let (mut env, _) = trainer.eval_env(Some(options.steps as u64))?;
    let spec = env.spec().clone();
    let encoder: &ObsEncoder = trainer.envs().encoder();
    let decoder = ActionDecoder::new(&spec.action_space);
    let mut obs: ObsBuf = spec.obs_buffer(1);
    let (mut states, mut observations, mut actions, mut rewards) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for k in 0..options.episodes {
        let seed = options.seed.wrapping_add(k as u64);
        env.reset(Some(seed), &ResetOptions::default(), obs.as_mut())?;
        for t in 0..options.steps {
            let stored = encoder.store(obs.as_ref());
            let action = tch::no_grad(|| trainer.algorithm().act(&encoder.input(&stored), options.deterministic));
            if let Some(s) = env.state() {
                states.push(Tensor::from_slice(&s));
            }
            observations.push(raw(obs.as_ref()));
            actions.push(action.to_kind(Kind::Float).view([-1]));
            let step = env.step(decoder.decode(&action)?.as_action(), obs.as_mut())?;
            rewards.push(step.reward as f32);
            if (step.terminated || step.truncated) && t + 1 < options.steps {
                return Err(AgentError::Config(format!(
                    "episode {k} (seed {seed}) ended after {} of {} steps: ask for fewer steps",
                    t + 1,
                    options.steps
                )));
            }
        }
    }
    let (e, t) = (options.episodes as i64, options.steps as i64);
    let shape = |rows: Vec<Tensor>| {
        let stacked = Tensor::stack(&rows, 0);
        let width = stacked.size()[1];
        stacked.view([e, t, width])
    };
    Ok(Demo {
        env_id: spec.id.clone(),
        states: (states.len() == observations.len()).then(|| shape(states)),
        observations: shape(observations),
        actions: shape(actions),
        rewards: Tensor::from_slice(&rewards).view([e, t]),
    })
}

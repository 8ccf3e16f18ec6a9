//! Records expert demonstrations: episodes of a trained policy in a fresh env of its run
//! (`keel demo`), as a [`Demo`] (the file format, [`crate::demo`]).

use tch::{Kind, Tensor};

use keel_envs::{ObsBuf, ObsRef, ResetOptions};

use crate::algorithm::Algorithm;
use crate::demo::Demo;
use crate::encode::{ActionDecoder, ObsEncoder};
use crate::error::{AgentError, Result};
use crate::trainer::Trainer;

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

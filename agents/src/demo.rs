//! The demo file format: episodes of an expert as named tensors in a safetensors file, written
//! by [`crate::recorder`] (`keel demo`) and read back by imitation learners ([`crate::ild`]).
//!
//! A demo file holds `observations [E, T, O]`, `actions [E, T, A]` and `rewards [E, T]` (float32),
//! `states [E, T, S]` (float64, the env's physical state before each action, for envs that
//! expose one) and `env_id` (its UTF-8 bytes). Every episode is cut or kept at the same `T`
//! steps; an episode that ends earlier is an error (ask for fewer steps).

use std::path::Path;

use tch::{Kind, Tensor};

use crate::error::{AgentError, Result};

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

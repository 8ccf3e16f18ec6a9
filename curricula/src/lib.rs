//! # keel-curricula
//!
//! Curricula reshape what an agent trains on. They act only through an environment's reset
//! options (`keel_envs::ResetOptions`: an exact initial state, per-reset parameters), chosen by a
//! [`keel_envs::ResetSampler`] that the vector engine asks at every reset and autoreset and tells
//! how every episode ended. One vector of environments is therefore retargeted between episodes
//! without being rebuilt, the choices do not depend on the engine's worker count, and the
//! sampler's state travels in training checkpoints, so a resumed run continues exactly.
//!
//! - [`start_state`]: [`UniformStartState`], exact initial states drawn uniformly from a box,
//!   optionally widened or narrowed from episode outcomes;
//! - [`SamplerConfig`]: the `[sampler]` table of a training config, which names a sampler and
//!   its settings and builds it.
//!
//! Trajectory graphs, transition fields and adaptive clip sampling come with the humanoid issue.

pub mod start_state;

use serde::{Deserialize, Serialize};

use keel_envs::ResetSampler;
use keel_envs::config::FieldError;

pub use start_state::{AdaptScale, UniformStartState, UniformStartStateConfig};

/// A sampler and its settings, as the `[sampler]` table of a training config names it:
/// `kind = "uniform_start_state"` plus that sampler's fields.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SamplerConfig {
    /// [`UniformStartState`].
    UniformStartState(UniformStartStateConfig),
}

impl SamplerConfig {
    /// Checks the settings; the error names the field.
    pub fn validate(&self) -> Result<(), FieldError> {
        match self {
            SamplerConfig::UniformStartState(c) => c.validate(),
        }
    }

    /// The sampler, its random stream seeded with the config's `seed` or else `default_seed`.
    pub fn build(&self, default_seed: u64) -> Box<dyn ResetSampler> {
        match self {
            SamplerConfig::UniformStartState(c) => Box::new(UniformStartState::new(c.clone(), default_seed)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_kind_names_the_sampler_and_unknown_fields_are_rejected() {
        let config: SamplerConfig =
            serde_json::from_value(json!({"kind": "uniform_start_state", "low": [0.0], "high": [1.0]}))
                .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(&config, SamplerConfig::UniformStartState(c) if c.high == [1.0]));
        let back = serde_json::to_value(&config).unwrap_or_default();
        assert_eq!(back["kind"], "uniform_start_state");
        let typo = serde_json::from_value::<SamplerConfig>(json!({"kind": "uniform_start_state", "lo": [0.0]}));
        assert!(typo.err().is_some_and(|e| e.to_string().contains("lo")));
        let unknown = serde_json::from_value::<SamplerConfig>(json!({"kind": "teleport"}));
        assert!(unknown.err().is_some_and(|e| e.to_string().contains("teleport")));
    }
}

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
//!   optionally widened or narrowed from episode outcomes (CartPole's start-state curriculum);
//! - SkillMimic-V2's trajectory augmentations for the humanoid: [`similarity`] (the state
//!   similarity `S` and the masked steps it implies), [`stf`] (perturbed starts re-anchored to
//!   the reference), [`ats`] (adaptive choice of clip and start frame, a generic table), [`stg`]
//!   (the stitched trajectory graph, built offline), composed by [`motion`]'s
//!   [`MotionTracking`] sampler;
//! - [`SamplerConfig`]: the `[sampler]` table of a training config, which names a sampler and
//!   its settings and builds it.

pub mod ats;
pub mod motion;
pub mod similarity;
pub mod start_state;
pub mod stf;
pub mod stg;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use keel_envs::config::FieldError;
use keel_envs::{EnvError, ResetSampler};

pub use motion::{MotionTracking, MotionTrackingConfig};
pub use start_state::{AdaptScale, UniformStartState, UniformStartStateConfig};

/// What can go wrong when building a curriculum.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum CurriculumError {
    /// A setting out of its range, or naming something that does not exist.
    #[error("sampler: invalid `{field}`: {message}")]
    Field {
        /// The setting.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// The humanoid data is missing or unreadable.
    #[error("sampler: {0}")]
    Data(String),
    /// A trajectory graph file that is damaged or built for other clips.
    #[error("trajectory graph: {0}")]
    Graph(String),
    /// A file that cannot be read or written.
    #[error("{0}")]
    Io(String),
}

impl From<CurriculumError> for EnvError {
    fn from(err: CurriculumError) -> Self {
        match err {
            CurriculumError::Field { field, message } => {
                EnvError::InvalidField { context: "sampler".into(), field, message }
            }
            CurriculumError::Data(why) => EnvError::DataMissing(why),
            other => EnvError::InvalidField { context: "sampler".into(), field: "stg.file".into(), message: other.to_string() },
        }
    }
}

/// A sampler and its settings, as the `[sampler]` table of a training config names it:
/// `kind = "uniform_start_state"` plus that sampler's fields.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SamplerConfig {
    /// [`UniformStartState`].
    UniformStartState(UniformStartStateConfig),
    /// [`MotionTracking`]: STF, ATS and STG for `keel/HumanoidTrack-v1`.
    MotionTracking(MotionTrackingConfig),
}

impl SamplerConfig {
    /// Checks the settings; the error names the field.
    pub fn validate(&self) -> Result<(), FieldError> {
        match self {
            SamplerConfig::UniformStartState(c) => c.validate(),
            SamplerConfig::MotionTracking(c) => c.validate(),
        }
    }

    /// The sampler, its random stream seeded with the config's `seed` or else `default_seed`;
    /// an error where it needs data or files that are missing or do not fit (an STG file built
    /// for other clips), so a run fails before it trains.
    pub fn build(&self, default_seed: u64) -> Result<Box<dyn ResetSampler>, CurriculumError> {
        Ok(match self {
            SamplerConfig::UniformStartState(c) => Box::new(UniformStartState::new(c.clone(), default_seed)),
            SamplerConfig::MotionTracking(c) => Box::new(MotionTracking::new(c.clone(), default_seed)?),
        })
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

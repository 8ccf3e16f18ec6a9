//! The registry: every env under its versioned id, made from a typed, validated config.
//!
//! `make("keel/CartPole-v1", &overrides)` builds the env's `Config` from its defaults plus the
//! overrides (unknown keys and invalid values are errors naming the field) and wraps it in a
//! [`TimeLimit`] with the registered episode cap. The reserved key `max_episode_steps` changes
//! that cap (`null` removes it), as Gymnasium's `make(id, max_episode_steps=...)`.

use serde_json::{Map, Value};

use crate::config::{Validate, overlay};
use crate::env::{Env, EnvSpec};
use crate::error::{EnvError, Result};
use crate::performative::PerformativeGrid;
use crate::wrappers::{MAX_EPISODE_STEPS, TimeLimit};
use crate::{classic, linear, pde};

/// An env that has a place in the registry.
pub trait Registered: Env + Sized + 'static {
    /// Versioned id, `keel/<Name>-v<N>`.
    const ID: &'static str;
    /// One line for `keel list`.
    const DESCRIPTION: &'static str;
    /// Default episode cap applied by `make`.
    const MAX_EPISODE_STEPS: Option<u64>;
    /// Construction config.
    type Config: Validate;
    /// Builds the env from a validated config.
    fn new(config: Self::Config) -> Result<Self>;
    /// Episode cap `make` applies for this config (envs whose episode length is a config key
    /// override this; the default is [`Self::MAX_EPISODE_STEPS`]).
    fn episode_cap(_config: &Self::Config) -> Option<u64> {
        Self::MAX_EPISODE_STEPS
    }
}

/// Builds an env from config overrides and an episode-cap override (`None`: the registered cap).
type MakeFn = fn(&Map<String, Value>, Option<Option<u64>>) -> Result<Box<dyn Env>>;

/// One registry line.
pub struct Registration {
    /// Versioned id.
    pub id: &'static str,
    /// One-line description.
    pub description: &'static str,
    make: MakeFn,
    default_config: fn() -> Value,
}

impl Registration {
    /// Makes the env with config `overrides` (see the module docs).
    pub fn make(&self, overrides: &Map<String, Value>) -> Result<Box<dyn Env>> {
        let mut cap_override = None;
        let config_overrides;
        let overrides = match overrides.get(MAX_EPISODE_STEPS) {
            Some(value) => {
                cap_override = Some(match value {
                    Value::Null => None,
                    v => Some(v.as_u64().filter(|&n| n > 0).ok_or_else(|| EnvError::InvalidField {
                        context: format!("{} config", self.id),
                        field: MAX_EPISODE_STEPS.into(),
                        message: format!("must be a positive integer or null, got {v}"),
                    })?),
                });
                let mut rest = overrides.clone();
                rest.remove(MAX_EPISODE_STEPS);
                config_overrides = rest;
                &config_overrides
            }
            None => overrides,
        };
        (self.make)(overrides, cap_override)
    }

    /// The default construction config, as JSON.
    pub fn default_config(&self) -> Value {
        (self.default_config)()
    }

    /// The spec of the env made with default config.
    pub fn spec(&self) -> Result<EnvSpec> {
        Ok(self.make(&Map::new())?.spec().clone())
    }
}

/// `cap`: `None` keeps the registered episode cap, `Some(c)` replaces it.
fn make_registered<E: Registered>(overrides: &Map<String, Value>, cap: Option<Option<u64>>) -> Result<Box<dyn Env>> {
    let config = overlay(&E::Config::default(), overrides, &format!("{} config", E::ID))?.into_owned();
    let registered_cap = E::episode_cap(&config);
    let env = E::new(config)?;
    Ok(Box::new(TimeLimit::new(env, cap.unwrap_or(registered_cap))))
}

fn default_config<E: Registered>() -> Value {
    serde_json::to_value(E::Config::default()).unwrap_or(Value::Null)
}

const fn entry<E: Registered>() -> Registration {
    Registration {
        id: E::ID,
        description: E::DESCRIPTION,
        make: make_registered::<E>,
        default_config: default_config::<E>,
    }
}

/// Every registered env, in `keel list` order.
pub static REGISTRY: &[Registration] = &[
    entry::<classic::CartPole>(),
    entry::<classic::Acrobot>(),
    entry::<classic::MountainCar>(),
    entry::<classic::MountainCarContinuous>(),
    entry::<classic::Pendulum>(),
    entry::<PerformativeGrid>(),
    entry::<pde::AllenCahn>(),
    entry::<pde::Burgers>(),
    entry::<pde::CahnHilliard>(),
    entry::<pde::ConvectionDiffusionReaction>(),
    entry::<pde::Fisher>(),
    entry::<pde::GinzburgLandau>(),
    entry::<pde::KortewegDeVries>(),
    entry::<pde::KuramotoSivashinsky>(),
    entry::<pde::Schrodinger>(),
    entry::<pde::Wave>(),
    entry::<linear::Linear>(),
];

/// The registry line of `id`, or an error listing the known ids.
pub fn lookup(id: &str) -> Result<&'static Registration> {
    REGISTRY.iter().find(|r| r.id == id).ok_or_else(|| EnvError::UnknownEnv { id: id.into(), known: ids().join(", ") })
}

/// Every registered id.
pub fn ids() -> Vec<&'static str> {
    REGISTRY.iter().map(|r| r.id).collect()
}

/// Makes the env registered as `id` with config `overrides` (see the module docs).
pub fn make(id: &str, overrides: &Map<String, Value>) -> Result<Box<dyn Env>> {
    lookup(id)?.make(overrides)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_id_lists_known_ones() {
        let err = make("keel/CartPole-v9", &Map::new()).err();
        assert!(matches!(&err, Some(EnvError::UnknownEnv { known, .. }) if known.contains("keel/CartPole-v1")));
    }

    #[test]
    fn config_overrides_are_typed_and_validated() {
        let mut overrides = Map::new();
        overrides.insert("gravity".into(), 3.7.into());
        assert!(make("keel/CartPole-v1", &overrides).is_ok());
        overrides.insert("gravityy".into(), 3.7.into());
        let err = make("keel/CartPole-v1", &overrides).err();
        assert!(matches!(err, Some(EnvError::UnknownField { field, .. }) if field == "gravityy"));
        let mut bad = Map::new();
        bad.insert("tau".into(), (-1.0).into());
        let err = make("keel/CartPole-v1", &bad).err();
        assert!(matches!(err, Some(EnvError::InvalidField { field, .. }) if field == "tau"));
    }

    #[test]
    fn max_episode_steps_overrides_the_cap() {
        let mut overrides = Map::new();
        overrides.insert(MAX_EPISODE_STEPS.into(), 7.into());
        let env = make("keel/Pendulum-v1", &overrides);
        assert_eq!(env.map(|e| e.spec().max_episode_steps).ok(), Some(Some(7)));
        overrides.insert(MAX_EPISODE_STEPS.into(), Value::Null);
        let env = make("keel/Pendulum-v1", &overrides);
        assert_eq!(env.map(|e| e.spec().max_episode_steps).ok(), Some(None));
        overrides.insert(MAX_EPISODE_STEPS.into(), 0.into());
        assert!(make("keel/Pendulum-v1", &overrides).is_err());
    }

    #[test]
    fn ids_are_versioned_and_unique() {
        let ids = ids();
        for id in &ids {
            assert!(id.starts_with("keel/") && id.rsplit_once("-v").is_some(), "{id}");
            assert_eq!(ids.iter().filter(|x| *x == id).count(), 1);
        }
    }
}

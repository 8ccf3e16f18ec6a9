//! The registry: every env under its versioned id, made from a typed, validated config.
//!
//! `make("keel/CartPole-v1", &overrides)` builds the env's `Config` from its defaults plus the
//! overrides (unknown keys and invalid values are errors naming the field) and wraps it in a
//! [`TimeLimit`] with the registered episode cap. The reserved key `max_episode_steps` changes
//! that cap (`null` removes it), as Gymnasium's `make(id, max_episode_steps=...)`.
//!
//! The registry is open: it starts with this crate's families, and a family that lives in
//! another crate or behind a cargo feature (Atari, the humanoid) adds its ids with [`register`]
//! (its crate calls it from its own `register()` function, which the command line and the
//! Python module call at start-up). This crate therefore depends on no family outside it.

use std::sync::{LazyLock, PoisonError, RwLock};

use serde_json::{Map, Value};

use crate::config::overlay;
use crate::env::{Env, EnvSpec, Registered};
use crate::error::{EnvError, Result};
use crate::performative::PerformativeGrid;
use crate::wrappers::{MAX_EPISODE_STEPS, TimeLimit};
use crate::classic;
use crate::controlgym::{linear, pde};

/// Builds an env from config overrides and an episode-cap override (`None`: the registered cap).
type MakeFn = fn(&Map<String, Value>, Option<Option<u64>>) -> Result<Box<dyn Env>>;

/// Builds the spec from config overrides, without building the env.
type SpecFn = fn(&Map<String, Value>, Option<Option<u64>>) -> Result<EnvSpec>;

/// One registry line; [`entry`] makes it from a [`Registered`] env.
#[derive(Clone, Copy)]
pub struct Registration {
    /// Versioned id.
    pub id: &'static str,
    /// One-line description.
    pub description: &'static str,
    /// The episode cap of the default config.
    pub max_episode_steps: Option<u64>,
    make: MakeFn,
    spec: SpecFn,
    memory: fn(&Map<String, Value>) -> Result<u64>,
    default_config: fn() -> Value,
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration").field("id", &self.id).finish_non_exhaustive()
    }
}

/// Config overrides without the reserved cap key, and the cap override (`None`: the
/// registered cap; `Some(None)`: no cap).
type SplitCap<'a> = (std::borrow::Cow<'a, Map<String, Value>>, Option<Option<u64>>);

/// Splits the reserved `max_episode_steps` key from config overrides.
fn split_cap<'a>(id: &str, overrides: &'a Map<String, Value>) -> Result<SplitCap<'a>> {
    let Some(value) = overrides.get(MAX_EPISODE_STEPS) else {
        return Ok((std::borrow::Cow::Borrowed(overrides), None));
    };
    let cap = crate::wrappers::parse_cap(value).map_err(|_| EnvError::InvalidField {
        context: format!("{id} config"),
        field: MAX_EPISODE_STEPS.into(),
        message: format!("must be a positive integer, or null / \"none\" for no cap, got {value}"),
    })?;
    let mut rest = overrides.clone();
    rest.remove(MAX_EPISODE_STEPS);
    Ok((std::borrow::Cow::Owned(rest), Some(cap)))
}

impl Registration {
    /// Makes the env with config `overrides` (see the module docs).
    pub fn make(&self, overrides: &Map<String, Value>) -> Result<Box<dyn Env>> {
        let (overrides, cap) = split_cap(self.id, overrides)?;
        (self.make)(&overrides, cap)
    }

    /// The spec of the env `make` would build with `overrides`, without building it.
    pub fn spec_for(&self, overrides: &Map<String, Value>) -> Result<EnvSpec> {
        let (overrides, cap) = split_cap(self.id, overrides)?;
        (self.spec)(&overrides, cap)
    }

    /// The spec of the env made with the default config.
    pub fn spec(&self) -> Result<EnvSpec> {
        self.spec_for(&Map::new())
    }

    /// Roughly how many bytes one env made with `overrides` holds.
    pub fn memory_estimate(&self, overrides: &Map<String, Value>) -> Result<u64> {
        let (overrides, _) = split_cap(self.id, overrides)?;
        (self.memory)(&overrides)
    }

    /// The default construction config, as JSON.
    pub fn default_config(&self) -> Value {
        (self.default_config)()
    }
}

fn config_of<E: Registered>(overrides: &Map<String, Value>) -> Result<E::Config> {
    Ok(overlay(&E::Config::default(), overrides, &format!("{} config", E::ID))?.into_owned())
}

/// `cap`: `None` keeps the registered episode cap, `Some(c)` replaces it.
fn make_registered<E: Registered>(overrides: &Map<String, Value>, cap: Option<Option<u64>>) -> Result<Box<dyn Env>> {
    let config = config_of::<E>(overrides)?;
    let registered_cap = E::episode_cap(&config);
    let env = E::new(config)?;
    Ok(Box::new(TimeLimit::new(env, cap.unwrap_or(registered_cap))))
}

fn spec_registered<E: Registered>(overrides: &Map<String, Value>, cap: Option<Option<u64>>) -> Result<EnvSpec> {
    let config = config_of::<E>(overrides)?;
    let mut spec = <E as Registered>::spec(&config)?;
    spec.max_episode_steps = cap.unwrap_or(E::episode_cap(&config));
    Ok(spec)
}

fn memory_registered<E: Registered>(overrides: &Map<String, Value>) -> Result<u64> {
    Ok(E::memory_estimate(&config_of::<E>(overrides)?))
}

fn default_config<E: Registered>() -> Value {
    serde_json::to_value(E::Config::default()).unwrap_or(Value::Null)
}

/// The registry line of env type `E`.
pub fn entry<E: Registered>() -> Registration {
    Registration {
        id: E::ID,
        description: E::DESCRIPTION,
        max_episode_steps: E::episode_cap(&E::Config::default()),
        make: make_registered::<E>,
        spec: spec_registered::<E>,
        memory: memory_registered::<E>,
        default_config: default_config::<E>,
    }
}

/// The families of this crate, in `keel list` order.
fn builtin() -> Vec<Registration> {
    vec![
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
        entry::<crate::baird::Baird>(),
    ]
}

static REGISTRY: LazyLock<RwLock<Vec<Registration>>> = LazyLock::new(|| RwLock::new(builtin()));

/// Adds `registration` to the registry. Registering the same id twice is an error, unless it
/// is the same registration again (so a family's `register()` may be called more than once).
pub fn register(registration: Registration) -> Result<()> {
    let mut registry = REGISTRY.write().unwrap_or_else(PoisonError::into_inner);
    match registry.iter().find(|r| r.id == registration.id) {
        Some(existing) if std::ptr::fn_addr_eq(existing.make, registration.make) => Ok(()),
        Some(_) => Err(EnvError::InvalidField {
            context: "registry".into(),
            field: registration.id.into(),
            message: "another env is already registered under this id".into(),
        }),
        None => {
            registry.push(registration);
            Ok(())
        }
    }
}

/// Every registry line, in `keel list` order (this crate's families first).
pub fn entries() -> Vec<Registration> {
    REGISTRY.read().unwrap_or_else(PoisonError::into_inner).clone()
}

/// The registry line of `id`, or an error listing the known ids.
pub fn lookup(id: &str) -> Result<Registration> {
    let registry = REGISTRY.read().unwrap_or_else(PoisonError::into_inner);
    registry.iter().find(|r| r.id == id).copied().ok_or_else(|| EnvError::UnknownEnv {
        id: id.into(),
        known: registry.iter().map(|r| r.id).collect::<Vec<_>>().join(", "),
    })
}

/// Every registered id.
pub fn ids() -> Vec<&'static str> {
    entries().iter().map(|r| r.id).collect()
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
        overrides.insert(MAX_EPISODE_STEPS.into(), "none".into());
        let env = make("keel/Pendulum-v1", &overrides);
        assert_eq!(env.map(|e| e.spec().max_episode_steps).ok(), Some(None));
        overrides.insert(MAX_EPISODE_STEPS.into(), 0.into());
        assert!(make("keel/Pendulum-v1", &overrides).is_err());
    }

    #[test]
    fn specs_come_without_building_and_match_the_env() {
        for r in entries() {
            // Without its data, keel/Linear-v0 gives the same DataMissing error both ways.
            let spec = r.spec();
            let made = r.make(&Map::new()).map(|e| e.spec().clone());
            assert_eq!(spec, made, "{}", r.id);
        }
    }

    #[test]
    fn ids_are_versioned_and_unique() {
        let ids = ids();
        for id in &ids {
            // `keel-test/`: fixtures that other tests of this process may have registered.
            let namespaced = id.starts_with("keel/") || id.starts_with("keel-test/");
            assert!(namespaced && id.rsplit_once("-v").is_some(), "{id}");
            assert_eq!(ids.iter().filter(|x| *x == id).count(), 1);
        }
    }
}

//! The algorithms `keel train --algo` knows: each registered under a name, with how to build a
//! run of it from config overrides and its config file per env. The registry imports the
//! algorithms; they do not import it.

use serde_json::Value;

use crate::algorithm::Algorithm;
use crate::config::apply_overrides;
use crate::dqn::Dqn;
use crate::error::{AgentError, Result};
use crate::ild::Ild;
use crate::ppo::Ppo;
use crate::run::Run;
use crate::trainer::Trainer;
use crate::{dqn, ppo};

/// Resolves a config from an algorithm's defaults for a registered name and overrides, and
/// builds the run.
pub type BuildFn = fn(&'static str, &[(String, Value)]) -> Result<Box<dyn Run>>;

/// A registered algorithm: its name and how to build a run of it.
#[derive(Clone, Copy)]
pub struct Registration {
    /// The name `--algo` takes (and a config's `algo` key holds).
    pub name: &'static str,
    /// One line for listings.
    pub description: &'static str,
    /// The config key that sets the length of a run (`total_timesteps`, or `iterations` for
    /// the learners through differentiable physics).
    pub run_length: &'static str,
    build: BuildFn,
    env_defaults: fn(&str) -> Option<&'static str>,
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration").field("name", &self.name).finish_non_exhaustive()
    }
}

impl Registration {
    /// Algorithm `A` registered as `name`: a run's config is `A`'s defaults for `name` with the
    /// overrides applied (later wins); `env_defaults` gives its config file (TOML) for an env, if
    /// it has one.
    pub fn of<A: Algorithm>(
        name: &'static str,
        description: &'static str,
        env_defaults: fn(&str) -> Option<&'static str>,
    ) -> Self {
        Self { name, description, run_length: A::RUN_LENGTH, build: build::<A>, env_defaults }
    }

    /// Resolves the config and builds the run (envs made, networks initialised). The
    /// `algo` key is set to this registration's name.
    pub fn build(&self, overrides: &[(String, Value)]) -> Result<Box<dyn Run>> {
        let mut all = overrides.to_vec();
        all.push(("algo".into(), Value::String(self.name.into())));
        (self.build)(self.name, &all)
    }

    /// The algorithm's config file for `env_id` (TOML), if it has one.
    pub fn env_defaults(&self, env_id: &str) -> Option<&'static str> {
        (self.env_defaults)(env_id)
    }
}

/// A run of algorithm `A` registered as `algo`: its defaults for that name, then the overrides.
fn build<A: Algorithm>(algo: &'static str, overrides: &[(String, Value)]) -> Result<Box<dyn Run>> {
    let config = apply_overrides(&A::defaults(algo)?, overrides)?;
    Ok(Box::new(Trainer::<A>::new(config)?))
}

fn no_env_defaults(_env_id: &str) -> Option<&'static str> {
    None
}

/// Every registered algorithm.
pub fn algorithms() -> Vec<Registration> {
    vec![
        Registration::of::<Ppo>("ppo", "PPO, as CleanRL's ppo.py", ppo::env_defaults),
        Registration::of::<Ppo>("dppo", "D-PPO: PPO with variance-limiting sample dropout", ppo::env_defaults),
        Registration::of::<Dqn>("dqn", "DQN, as CleanRL's dqn.py", dqn::env_defaults),
        Registration::of::<Ild>(
            "ild",
            "ILD: imitation from one demo via differentiable physics (keel/Diff*-v0)",
            no_env_defaults,
        ),
        Registration::of::<Ild>(
            "bc",
            "Behavioural cloning from a demo (ILD's warm-up alone; keel/Diff*-v0)",
            no_env_defaults,
        ),
        Registration::of::<Ild>(
            "apg",
            "Analytic policy gradient on the true reward through differentiable physics (keel/Diff*-v0)",
            no_env_defaults,
        ),
    ]
}

/// The algorithm registered as `name`, or an error listing the registered ones.
pub fn lookup(name: &str) -> Result<Registration> {
    let all = algorithms();
    all.iter().find(|r| r.name == name).copied().ok_or_else(|| {
        let known: Vec<&str> = all.iter().map(|r| r.name).collect();
        AgentError::Config(format!("unknown algorithm `{name}`; registered algorithms: {}", known.join(", ")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_lists_the_known_algorithms() {
        assert_eq!(lookup("dppo").map(|r| r.name).ok(), Some("dppo"));
        let err = lookup("sac").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("`sac`") && err.contains("ppo, dppo"), "{err}");
        assert!(lookup("ppo").is_ok_and(|r| r.env_defaults("keel/CartPole-v1").is_some()));
    }
}

//! Training configs: the settings every algorithm's config shares, and how a config is resolved
//! from defaults, TOML files and `key=value` overrides.
//!
//! Each algorithm has its own config struct (serde, `Default` from its reference implementation,
//! a doc comment on every field) with one [`RunConfig`] flattened into it: the settings every run
//! has (env, seed, envs, device, checkpoints, deployments, reset sampler, observation
//! normalisation), declared once, validated once by [`checked`], and read by the trainer core
//! through [`TrainConfig`] ([`RunSettings`] adds what the algorithm derives: run length, steps
//! per iteration). Resolution, later wins: the config's
//! `Default`, then layers of overrides (the algorithm's file for the env, `--config FILE.toml`,
//! `--set key=value`, flags), each a dotted key and a JSON value, applied by [`with_overrides`].
//! An unknown key or a value of the wrong type stops before training, naming the key; the
//! resolved config is what a run folder's `config.toml` holds ([`to_toml`]).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tch::Device;

use keel_curricula::SamplerConfig;
use keel_envs::config::{FieldError, Validate};

use crate::error::{AgentError, Result};

/// Config keys whose value is one table set as a whole: `env_config` (free-form: the env
/// validates its own fields), `sampler` (a `[sampler]` table names its kind) and
/// `history_encoder` (absent by default, so given whole; its fields can be set one by one
/// afterwards).
pub const WHOLE_TABLES: [&str; 3] = ["env_config", "sampler", "history_encoder"];

/// The settings every training run has, whatever its algorithm: one table, flattened into each
/// algorithm's config (its keys sit at the top level of a config file beside the algorithm's
/// own), read by the trainer core. Each algorithm's `Default` chooses its own values for it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunConfig {
    /// Environment id (default `keel/CartPole-v1`).
    pub env_id: String,
    /// Config overrides of the environment (a table of its config fields).
    pub env_config: Map<String, Value>,
    /// Seed of the networks, the sampling and the envs (env `i` gets `seed + i`) (default 1).
    pub seed: u64,
    /// Parallel envs (default 4).
    pub num_envs: usize,
    /// Env worker threads (0: serial, the default: small vectors gain nothing from threads).
    pub env_workers: usize,
    /// `cpu`, `cuda` or `auto` (default `cpu`).
    pub device: String,
    /// Write a checkpoint every this many iterations (default 25), and at the end.
    pub checkpoint_every: u64,
    /// Deploy the current policy to the envs every this many iterations (0: never, the default).
    /// For envs whose dynamics respond to the deployed policy (`keel/PerformativeGrid-v0`): the
    /// policy's action probabilities in every state are set as the envs' `learner_policy`, and
    /// the followers respond (repeated retraining with function approximation). Needs Discrete
    /// observations and actions and an algorithm with a policy over them.
    pub deploy_every: u64,
    /// Reset sampler of the training envs (a `[sampler]` table naming its `kind`; default: none,
    /// the envs' own random starts). See keel-curricula.
    pub sampler: Option<SamplerConfig>,
    /// Normalise the networks' observations with running statistics of the training envs'
    /// (default false).
    pub normalize_obs: bool,
    /// Clip of normalised observations (default 10).
    pub obs_clip: f64,
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            env_id: "keel/CartPole-v1".into(),
            env_config: Map::new(),
            seed: 1,
            num_envs: 4,
            env_workers: 0,
            device: "cpu".into(),
            checkpoint_every: 25,
            deploy_every: 0,
            sampler: None,
            normalize_obs: false,
            obs_clip: 10.0,
        }
    }
}

impl Validate for RunConfig {
    fn validate(&self) -> Result<(), FieldError> {
        if self.num_envs == 0 {
            return Err(FieldError::new("num_envs", "must be at least 1"));
        }
        if self.checkpoint_every == 0 {
            return Err(FieldError::new("checkpoint_every", "must be at least 1"));
        }
        if !["cpu", "cuda", "auto"].contains(&self.device.as_str()) {
            return Err(FieldError::new("device", format!("must be cpu, cuda or auto, got {:?}", self.device)));
        }
        float32("obs_clip", self.obs_clip)?;
        keel_envs::config::positive("obs_clip", self.obs_clip)?;
        if let Some(sampler) = &self.sampler {
            sampler.validate().map_err(|e| FieldError::new("sampler", format!("`{}`: {}", e.field, e.message)))?;
        }
        Ok(())
    }
}

/// What the trainer core reads of a config: the [`RunConfig`] and what the algorithm derives
/// from its own fields.
#[derive(Clone, Copy, Debug)]
pub struct RunSettings<'a> {
    /// The registered algorithm name (`ppo`, `dppo`, ...).
    pub algo: &'a str,
    /// Environment id.
    pub env_id: &'a str,
    /// Config overrides of the environment.
    pub env_config: &'a Map<String, Value>,
    /// Seed of the networks, the sampling and the envs (env `i` gets `seed + i`).
    pub seed: u64,
    /// Training envs the core builds.
    pub num_envs: usize,
    /// Env worker threads (0: serial).
    pub env_workers: usize,
    /// `cpu`, `cuda` or `auto`.
    pub device: &'a str,
    /// Iterations of the whole run.
    pub num_iterations: u64,
    /// Environment steps one iteration takes, over all envs.
    pub steps_per_iteration: u64,
    /// Iterations between checkpoints.
    pub checkpoint_every: u64,
    /// Iterations between deployments of the policy to the envs (0: never).
    pub deploy_every: u64,
    /// The reset sampler the envs use, if any.
    pub sampler: Option<&'a SamplerConfig>,
    /// Clip of normalised observations, when observations are normalised with running
    /// statistics.
    pub obs_normalization: Option<f64>,
    /// Trailing observation numbers the networks get raw, whatever `obs_normalization` (a
    /// pretrained history encoder's slice, which it standardises itself; 0: none).
    pub raw_obs_tail: usize,
}

impl RunSettings<'_> {
    /// Iterations of the whole run.
    pub fn num_iterations(&self) -> u64 {
        self.num_iterations
    }
}

/// `Err` naming `field` (whose value is `value`) when `bytes`, what the config's sizes need,
/// exceed the available memory: checked before anything is allocated.
pub fn check_memory(field: &'static str, value: u128, bytes: u128) -> Result<()> {
    keel_envs::memory::check(field, value, bytes)
        .map_err(|e| AgentError::Config(format!("training config: invalid `{}`: {}", e.field, e.message)))
}

/// `Err` naming `field` unless `value` is a finite float32 (networks and their losses compute in
/// float32: a coefficient beyond its range would become infinite there, or make libtorch fail).
pub fn float32(field: &'static str, value: f64) -> Result<(), FieldError> {
    if !value.is_finite() {
        Err(FieldError::new(field, format!("must be finite, got {value}")))
    } else if value.abs() > f64::from(f32::MAX) {
        Err(FieldError::new(field, format!("{value:e} is beyond float32's range, in which the networks compute")))
    } else {
        Ok(())
    }
}

/// Parameters (weights and biases) of an MLP `input -> hidden... -> output`.
pub fn mlp_parameters(input: usize, hidden: &[i64], output: usize) -> u128 {
    let widths: Vec<u128> = std::iter::once(input as u128)
        .chain(hidden.iter().map(|&h| h.max(1) as u128))
        .chain([output as u128])
        .collect();
    widths.windows(2).map(|w| w[0] * w[1] + w[1]).sum()
}

/// An algorithm's config: serde, `Default`, its own fields validated, with a flattened
/// [`RunConfig`] that the core validates and reads.
pub trait TrainConfig: Validate + Serialize + DeserializeOwned + Clone + Send + 'static {
    /// The settings every run has.
    fn run(&self) -> &RunConfig;
    /// The registered algorithm name this config runs (`ppo`, `dppo`, `dqn`, ...).
    fn algo(&self) -> &'static str;
    /// Environment steps one iteration takes, over all training envs.
    fn steps_per_iteration(&self) -> u64;
    /// Iterations of the whole run.
    fn num_iterations(&self) -> u64;
    /// Training envs the core builds (default `num_envs`).
    fn training_envs(&self) -> usize {
        self.run().num_envs
    }
    /// Trailing observation numbers the networks get raw, whatever `normalize_obs` (default 0).
    fn raw_obs_tail(&self) -> usize {
        0
    }

    /// The settings the trainer core reads.
    fn settings(&self) -> RunSettings<'_> {
        let run = self.run();
        RunSettings {
            algo: self.algo(),
            env_id: &run.env_id,
            env_config: &run.env_config,
            seed: run.seed,
            num_envs: self.training_envs(),
            env_workers: run.env_workers,
            device: &run.device,
            num_iterations: self.num_iterations(),
            steps_per_iteration: self.steps_per_iteration(),
            checkpoint_every: run.checkpoint_every,
            deploy_every: run.deploy_every,
            sampler: run.sampler.as_ref(),
            obs_normalization: run.normalize_obs.then_some(run.obs_clip),
            raw_obs_tail: self.raw_obs_tail(),
        }
    }
}

/// `config` if both the shared settings and its own fields validate (in that order, each once),
/// else an error naming the field.
pub fn checked<C: TrainConfig>(config: C) -> Result<C> {
    let invalid = |e: FieldError| AgentError::Config(format!("training config: invalid `{}`: {}", e.field, e.message));
    config.run().validate().map_err(invalid)?;
    config.validate().map_err(invalid)?;
    Ok(config)
}

/// `base` with `overrides` applied in order, then checked. Keys are field names, with dots for
/// nested fields (`dppo.drop_rate`, `env_config.gravity`, `sampler.scale`); values are JSON.
/// Under `env_config` any key is accepted (the env checks its own config); elsewhere an unknown
/// key or a value of the wrong type is an error naming the key.
pub fn with_overrides<C: TrainConfig>(base: &C, overrides: &[(String, Value)]) -> Result<C> {
    checked(apply_overrides(base, overrides)?)
}

/// [`with_overrides`] without the final check: for callers that hand the config to
/// [`crate::trainer::Trainer::new`], which checks it (once).
pub fn apply_overrides<C: TrainConfig>(base: &C, overrides: &[(String, Value)]) -> Result<C> {
    let mut json = serde_json::to_value(base).map_err(|e| AgentError::Config(e.to_string()))?;
    for (key, value) in overrides {
        let mut node = &mut json;
        let parts: Vec<&str> = key.split('.').collect();
        for (depth, part) in parts.iter().enumerate() {
            let free_form = depth > 0 && parts[0] == "env_config";
            let here = parts[..depth].join(".");
            let map = match node {
                Value::Object(map) => map,
                Value::Null if WHOLE_TABLES.contains(&here.as_str()) => {
                    return Err(AgentError::Config(format!(
                        "training config: `{key}`: `{here}` is not set; give the whole table (a [{here}] table in a \
                         config file, or --set '{here}={{...}}')"
                    )));
                }
                _ => return Err(AgentError::Config(format!("training config: `{key}`: `{here}` is not a table"))),
            };
            if !map.contains_key(*part) && !free_form {
                let known: Vec<&str> = map.keys().map(String::as_str).collect();
                return Err(AgentError::Config(format!(
                    "training config: unknown field `{key}`; known fields here: {}",
                    known.join(", ")
                )));
            }
            if depth == parts.len() - 1 {
                map.insert((*part).to_string(), value.clone());
                break;
            }
            node = map.entry((*part).to_string()).or_insert_with(|| Value::Object(Map::new()));
        }
        // Deserialise after each key so a type error names the key that caused it.
        if let Err(e) = serde_json::from_value::<C>(json.clone()) {
            let why =
                if value.is_null() { "null is not allowed here; give a value".to_string() } else { e.to_string() };
            return Err(AgentError::Config(format!("training config: invalid `{key}`: {why}")));
        }
    }
    serde_json::from_value(json).map_err(|e| AgentError::Config(e.to_string()))
}

/// A TOML document as a table; a syntax error is one line saying where (line, column) and what.
fn parse_toml(text: &str) -> Result<toml::Table> {
    text.parse::<toml::Table>().map_err(|e| {
        let what = e.message().trim().replace('\n', "; ");
        let place = e.span().and_then(|span| text.get(..span.start)).map_or(String::new(), |before| {
            let line = before.matches('\n').count() + 1;
            let column = before.chars().rev().take_while(|&c| c != '\n').count() + 1;
            format!(" at line {line}, column {column}")
        });
        AgentError::Config(format!("not valid TOML{place}: {what}"))
    })
}

/// The dotted key and value of the first float in `value` that is NaN or infinite (TOML allows
/// `nan` and `inf`; a config holds finite numbers only).
fn first_non_finite(prefix: &str, value: &toml::Value) -> Option<(String, f64)> {
    match value {
        toml::Value::Float(x) if !x.is_finite() => Some((prefix.to_string(), *x)),
        toml::Value::Table(table) => table.iter().find_map(|(k, v)| {
            first_non_finite(&if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") }, v)
        }),
        toml::Value::Array(items) => {
            items.iter().enumerate().find_map(|(i, v)| first_non_finite(&format!("{prefix}[{i}]"), v))
        }
        _ => None,
    }
}

/// The overrides a TOML document makes, as dotted keys: tables become prefixes, except the
/// [`WHOLE_TABLES`], which stay one value each. A NaN or infinite number is an error naming its
/// key.
pub fn toml_overrides(text: &str) -> Result<Vec<(String, Value)>> {
    let table = parse_toml(text)?;
    if let Some((key, x)) = first_non_finite("", &toml::Value::Table(table.clone())) {
        return Err(AgentError::Config(format!("training config: `{key}` = {x} is not finite")));
    }
    let json = serde_json::to_value(table).map_err(|e| AgentError::Config(e.to_string()))?;
    let mut out = Vec::new();
    fn walk(prefix: &str, value: &Value, out: &mut Vec<(String, Value)>) {
        match value {
            Value::Object(map) if !WHOLE_TABLES.contains(&prefix) => {
                for (k, v) in map {
                    let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                    walk(&key, v, out);
                }
            }
            other => out.push((prefix.to_string(), other.clone())),
        }
    }
    walk("", &json, &mut out);
    Ok(out)
}

/// A config as TOML (what a run folder's `config.toml` holds). TOML has no null, so an
/// `env_config` value of null (`max_episode_steps = null`: no episode cap) is an error naming
/// the key.
pub fn to_toml<C: Serialize>(config: &C) -> Result<String> {
    let json = serde_json::to_value(config).map_err(|e| AgentError::Config(e.to_string()))?;
    fn first_null(prefix: &str, value: &Value) -> Option<String> {
        match value {
            Value::Null => Some(prefix.to_string()),
            Value::Object(map) => map.iter().find_map(|(k, v)| first_null(&format!("{prefix}.{k}"), v)),
            Value::Array(items) => items.iter().enumerate().find_map(|(i, v)| first_null(&format!("{prefix}[{i}]"), v)),
            _ => None,
        }
    }
    if let Some(key) = json.get("env_config").and_then(|v| first_null("env_config", v)) {
        return Err(AgentError::Config(format!(
            "training config: `{key}` is null, which a run folder's config.toml cannot hold; give a number \
             (for max_episode_steps, \"none\" means no cap)"
        )));
    }
    toml::to_string_pretty(config).map_err(|e| AgentError::Config(format!("config to TOML: {e}")))
}

/// The `algo` key of a TOML config (which algorithm a run folder's config belongs to).
pub fn algo_of(text: &str) -> Result<String> {
    let table = parse_toml(text)?;
    match table.get("algo") {
        Some(toml::Value::String(name)) => Ok(name.clone()),
        _ => Err(AgentError::Config("the config names no algorithm (`algo = \"...\"`)".into())),
    }
}

/// The libtorch device a `device` setting asks for.
pub fn torch_device(device: &str) -> Result<Device> {
    match device {
        "cpu" => Ok(Device::Cpu),
        "cuda" if tch::Cuda::is_available() => Ok(Device::Cuda(0)),
        "cuda" => Err(AgentError::Config("device = \"cuda\" but libtorch sees no CUDA device".into())),
        "auto" => Ok(Device::cuda_if_available()),
        other => Err(AgentError::Config(format!("device must be cpu, cuda or auto, got {other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    /// A config with the shared settings and one table of its own.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct Demo {
        #[serde(flatten)]
        run: RunConfig,
        rate: f64,
        inner: Inner,
    }

    #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct Inner {
        depth: u32,
    }

    impl Default for Demo {
        fn default() -> Self {
            Self { run: RunConfig::default(), rate: 1.0, inner: Inner::default() }
        }
    }

    impl Validate for Demo {
        fn validate(&self) -> Result<(), FieldError> {
            keel_envs::config::positive("rate", self.rate)
        }
    }

    impl TrainConfig for Demo {
        fn run(&self) -> &RunConfig {
            &self.run
        }
        fn algo(&self) -> &'static str {
            "demo"
        }
        fn steps_per_iteration(&self) -> u64 {
            5
        }
        fn num_iterations(&self) -> u64 {
            2
        }
    }

    /// The flattened run settings are top-level keys: set, typo-checked and written as such.
    #[test]
    fn run_settings_are_flat_keys() {
        let config =
            with_overrides(&Demo::default(), &[("seed".into(), json!(7)), ("normalize_obs".into(), json!(true))])
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((config.run.seed, config.settings().obs_normalization), (7, Some(10.0)));
        let text = to_toml(&config).unwrap_or_default();
        assert!(text.starts_with("env_id = ") && text.contains("\nseed = 7\n") && !text.contains("[run]"), "{text}");
        assert!(error(&[("sed", json!(1))]).contains("unknown field `sed`"));
        assert!(error(&[("num_envs", json!(0))]).contains("invalid `num_envs`"));
        assert!(error(&[("obs_clip", json!(-1.0))]).contains("invalid `obs_clip`"));
        // Straight from serde (a config file read without the override walk) unknown keys fail too.
        assert!(serde_json::from_value::<Demo>(json!({"seed": 1, "bogus": 2})).is_err());
    }

    fn error(overrides: &[(&str, Value)]) -> String {
        let overrides: Vec<(String, Value)> = overrides.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        with_overrides(&Demo::default(), &overrides).err().map(|e| e.to_string()).unwrap_or_default()
    }

    #[test]
    fn overrides_apply_in_order_and_errors_name_the_key() {
        let layers = toml_overrides("rate = 2.0\n[inner]\ndepth = 3\n[env_config]\ngravity = 9.81\n")
            .unwrap_or_else(|e| panic!("{e}"));
        let mut overrides = layers.clone();
        overrides.push(("rate".into(), json!(4.0)));
        let config = with_overrides(&Demo::default(), &overrides).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((config.rate, config.inner.depth), (4.0, 3));
        assert_eq!(config.run.env_config.get("gravity"), Some(&json!(9.81)));
        assert!(error(&[("rat", json!(1.0))]).contains("unknown field `rat`"));
        assert!(error(&[("inner.dept", json!(1))]).contains("inner.dept"));
        assert!(error(&[("rate", json!("fast"))]).contains("invalid `rate`"));
        assert!(error(&[("rate", json!(-1.0))]).contains("invalid `rate`"));
        assert!(error(&[("device", json!("tpu"))]).contains("invalid `device`"));
        assert!(error(&[("rate.x", json!(1))]).contains("not a table"));
    }

    #[test]
    fn the_sampler_table_is_set_whole_and_validated() {
        let text = "[sampler]\nkind = \"uniform_start_state\"\nlow = [0.0]\nhigh = [1.0]\n";
        let overrides = toml_overrides(text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(overrides.len(), 1, "{overrides:?}");
        let mut config = with_overrides(&Demo::default(), &overrides).unwrap_or_else(|e| panic!("{e}"));
        assert!(config.run.sampler.is_some());
        // Once set, its fields can be overridden one by one, and typos are named.
        config = with_overrides(&config, &[("sampler.scale".into(), json!(0.5))]).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(&config.run.sampler, Some(SamplerConfig::UniformStartState(s)) if s.scale == 0.5));
        let typo = with_overrides(&config, &[("sampler.scal".into(), json!(0.5))]).err().map(|e| e.to_string());
        assert!(typo.unwrap_or_default().contains("sampler.scal"));
        let bad = with_overrides(&config, &[("sampler.scale".into(), json!(2.0))]).err().map(|e| e.to_string());
        assert!(bad.unwrap_or_default().contains("scale"));
        // Unset, it must be given whole.
        assert!(error(&[("sampler.scale", json!(0.5))]).contains("give the whole table"));
    }

    /// TOML's `nan` and `inf` and a null are refused naming the key, and a TOML syntax error is
    /// one line saying where.
    #[test]
    fn non_finite_numbers_nulls_and_bad_toml_are_named() {
        let err = |text: &str| toml_overrides(text).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err("rate = nan\n").contains("`rate` = NaN is not finite"), "{}", err("rate = nan\n"));
        assert!(err("[env_config]\ngravity = -inf\n").contains("`env_config.gravity` = -inf is not finite"));
        assert!(err("[inner]\nlist = [1.0, inf]\n").contains("`inner.list[1]`"));
        let syntax = err("rate = 1\nrate = = 2\n");
        assert!(syntax.contains("line 2") && !syntax.contains('\n'), "{syntax}");
        let null = error(&[("rate", Value::Null)]);
        assert!(null.contains("`rate`") && null.contains("null is not allowed"), "{null}");
        assert!(algo_of("algo = \n").err().map(|e| e.to_string()).unwrap_or_default().contains("line 1"));
    }

    #[test]
    fn toml_round_trip_and_algo_key() {
        let config = Demo { rate: 0.25, ..Demo::default() };
        let text = to_toml(&config).unwrap_or_default();
        let back = with_overrides(&Demo::default(), &toml_overrides(&text).unwrap_or_default());
        assert_eq!(back.ok(), Some(config));
        assert_eq!(algo_of("algo = \"dppo\"\nseed = 1\n").ok().as_deref(), Some("dppo"));
        assert!(algo_of("seed = 1\n").is_err());
        let mut uncapped = Demo::default();
        uncapped.run.env_config.insert("max_episode_steps".into(), Value::Null);
        let err = to_toml(&uncapped).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("`env_config.max_episode_steps` is null"), "{err}");
    }
}

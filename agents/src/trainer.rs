//! The trainer core every algorithm plugs into.
//!
//! [`Trainer`] builds the training envs from the config (a vector in `SameStep` autoreset mode,
//! with the config's reset sampler or one given through the API), seeds libtorch, and has the
//! algorithm build its networks. Each [`Trainer::iteration_step`] reseeds libtorch from the run
//! seed and the iteration number, lets the algorithm collect and learn, checks that the networks
//! stayed finite, deploys the policy when `deploy_every` says so, and reports the iteration: the
//! episodes that ended, the algorithm's metrics, the mean of each per-step extra.
//!
//! Runs are reproducible bit for bit on CPU from their seed, resumed or not: a checkpoint holds
//! the networks, every optimiser's state, the observation statistics, the algorithm's own state,
//! and a snapshot of every env and of the sampler. libtorch's random generator is global to the
//! process, so two trainers stepping concurrently in one process perturb each other's sampling:
//! run one trainer per process when that matters.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tch::{Device, Tensor};

use keel_envs::{AutoresetMode, Env, ResetSampler, Space, VecEnv, VecOptions};

use crate::algorithm::{Algorithm, Schedule};
use crate::collect::{Envs, Episode};
use crate::config::TrainConfig;
use crate::encode::ObsEncoder;
use crate::error::{AgentError, Result};
use crate::eval::{EvalOptions, Evaluation};
use crate::normalize::ObsNormalizer;
use crate::{checkpoint, deploy, eval};

/// Mixes a run seed and an iteration into one seed (SplitMix64 finaliser), so the randomness of
/// an iteration depends on where the run is, not on how it got there (what `--resume` needs).
pub fn iteration_seed(seed: u64, iteration: u64) -> u64 {
    let mut z = seed.wrapping_add(iteration.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The seed of libtorch's generator for a run seed (libtorch takes a non-negative `i64`).
fn torch_seed(seed: u64) -> i64 {
    (seed >> 1) as i64
}

/// The reset sampler's stream of a run seed, unless the sampler config sets its own seed.
const SAMPLER_STREAM: u64 = u64::MAX;

/// What one iteration measured.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct IterationStats {
    /// Iteration number (1-based).
    pub iteration: u64,
    /// Env steps so far.
    pub global_step: u64,
    /// Mean return of episodes finished in this iteration (NaN if none).
    pub episodic_return: f64,
    /// Mean length of those episodes (NaN if none).
    pub episodic_length: f64,
    /// Episodes finished in this iteration.
    pub episodes: u64,
    /// On a deployment iteration, `‖π_new − π_old‖ / ‖π_old‖` of the deployed policy tables
    /// (NaN otherwise, and at the first deployment).
    pub policy_shift: f64,
    /// The algorithm's metrics, by name.
    pub metrics: Vec<(&'static str, f64)>,
    /// The mean of each per-step extra over the steps of this iteration (`extras/<name>`).
    pub extras: Vec<(String, f64)>,
}

impl IterationStats {
    /// The algorithm metric `name`.
    pub fn metric(&self, name: &str) -> Option<f64> {
        self.metrics.iter().find(|(n, _)| *n == name).map(|&(_, v)| v)
    }

    /// The values in the order of [`Trainer::columns`].
    pub fn row(&self) -> Vec<f64> {
        let mut row = vec![
            self.iteration as f64,
            self.global_step as f64,
            self.episodic_return,
            self.episodic_length,
            self.episodes as f64,
        ];
        row.extend(self.metrics.iter().map(|&(_, v)| v));
        row.push(self.policy_shift);
        row.extend(self.extras.iter().map(|(_, v)| *v));
        row
    }
}

/// The non-tensor part of a checkpoint.
#[derive(Serialize, Deserialize)]
struct TrainerState {
    algo: String,
    iteration: u64,
    global_step: u64,
    done: Vec<bool>,
    obs_normalizer: Option<ObsNormalizer>,
    /// The latest episodes ([`crate::collect::RECENT_EPISODES`] at most).
    episodes: Vec<Episode>,
    /// Episodes since the start of the run (absent in checkpoints that held every episode).
    #[serde(default)]
    episode_count: Option<u64>,
    envs: Value,
    deployed: Option<Vec<f64>>,
    algorithm: Value,
}

/// The trainer: the training envs, an algorithm, and everything around them (module docs).
pub struct Trainer<A: Algorithm> {
    config: A::Config,
    envs: Envs,
    algorithm: A,
    /// The policy table last deployed (`deploy_every`), row-major states x actions.
    deployed: Option<Vec<f64>>,
    iteration: u64,
    /// The checkpoint loaded, if it held no env state (training cannot continue from it).
    unresumable: Option<PathBuf>,
}

impl<A: Algorithm> Trainer<A> {
    /// Builds the envs (with the config's reset sampler, if it names one), the networks and the
    /// optimisers from a config, which is checked first.
    pub fn new(config: A::Config) -> Result<Self> {
        let settings = config.settings();
        let seed = iteration_seed(settings.seed, SAMPLER_STREAM);
        let sampler = settings.sampler.map(|s| s.build(seed)).transpose().map_err(keel_envs::EnvError::from)?;
        Self::with_sampler(config, sampler)
    }

    /// As [`Trainer::new`], with `sampler` choosing the envs' resets instead of the config's.
    /// To resume such a run, build it again with the same kind of sampler before
    /// [`Trainer::load_checkpoint`], which restores the sampler's state.
    pub fn with_sampler(config: A::Config, sampler: Option<Box<dyn ResetSampler>>) -> Result<Self> {
        let config = crate::config::checked(config)?;
        crate::threads::configure();
        let s = config.settings();
        let device = crate::config::torch_device(s.device)?;
        let options = VecOptions { workers: s.env_workers, autoreset_mode: AutoresetMode::SameStep };
        let mut venv = VecEnv::make(s.env_id, s.env_config, s.num_envs, options)?;
        venv.set_sampler(sampler)?;
        let generator = crate::threads::torch_generator();
        tch::manual_seed(torch_seed(s.seed));
        let spec = venv.spec().clone();
        let mut encoder =
            ObsEncoder::new(&spec.observation_space, s.obs_normalization, device).with_raw_tail(s.raw_obs_tail);
        let algorithm = A::new(&config, &spec, encoder.input_width(), device)?;
        drop(generator);
        if s.deploy_every > 0 {
            let probe = Tensor::zeros([1, encoder.input_width() as i64], (tch::Kind::Float, device));
            let deployable = matches!(spec.observation_space, Space::Discrete(_))
                && matches!(spec.action_space, Space::Discrete(_))
                && algorithm.action_probabilities(&probe).is_some();
            if !deployable {
                return Err(AgentError::Config(format!(
                    "training config: invalid `deploy_every`: deploying needs Discrete observations and actions \
                     and a policy over them ({}: {} observations, {} actions, algorithm {})",
                    s.env_id,
                    spec.observation_space.describe(),
                    spec.action_space.describe(),
                    s.algo
                )));
            }
        }
        venv.reset(Some(s.seed))?;
        // The first observations count for the running statistics, as after a wrapper's reset.
        encoder.update(venv.batch().obs.as_ref());
        Ok(Self { envs: Envs::new(venv, encoder), algorithm, deployed: None, iteration: 0, config, unresumable: None })
    }

    /// The run's config.
    pub fn config(&self) -> &A::Config {
        &self.config
    }

    /// The algorithm (its networks).
    pub fn algorithm(&self) -> &A {
        &self.algorithm
    }

    /// The training envs.
    pub fn envs(&self) -> &Envs {
        &self.envs
    }

    /// Iterations done.
    pub fn iteration(&self) -> u64 {
        self.iteration
    }

    /// Env steps done.
    pub fn global_step(&self) -> u64 {
        self.envs.global_step()
    }

    /// The latest finished training episodes (see [`Envs::episodes`]).
    pub fn episodes(&self) -> &[Episode] {
        self.envs.episodes()
    }

    /// Training episodes finished since the start of the run.
    pub fn episode_count(&self) -> u64 {
        self.envs.episode_count()
    }

    /// Iterations of the whole run.
    pub fn num_iterations(&self) -> u64 {
        self.config.settings().num_iterations()
    }

    /// Whether the run has done all its iterations.
    pub fn finished(&self) -> bool {
        self.iteration >= self.num_iterations()
    }

    /// Every network parameter by name (for comparisons and export).
    pub fn parameters(&self) -> Vec<(String, Tensor)> {
        self.algorithm.parameters()
    }

    /// Names and TensorBoard tags of the values of [`IterationStats::row`].
    pub fn columns(&self) -> Vec<(String, Option<String>)> {
        let chart = |name: &str| (name.to_string(), Some(format!("charts/{name}")));
        let mut columns = vec![
            ("iteration".to_string(), None),
            ("global_step".to_string(), None),
            chart("episodic_return"),
            chart("episodic_length"),
            ("episodes".to_string(), None),
        ];
        columns.extend(self.algorithm.metrics().iter().map(|m| (m.name.to_string(), Some(m.tag.to_string()))));
        columns.push(chart("policy_shift"));
        for name in &self.envs.spec().extras {
            columns.push((format!("extras/{name}"), Some(format!("extras/{name}"))));
        }
        columns
    }

    /// Runs one iteration of the algorithm (see the module docs).
    pub fn iteration_step(&mut self) -> Result<IterationStats> {
        let settings = self.config.settings();
        if let Some(path) = &self.unresumable {
            return Err(AgentError::Checkpoint(format!(
                "{}: the checkpoint holds no env state ({} cannot snapshot), so training cannot resume from it; its \
                 networks can still be evaluated",
                path.display(),
                settings.env_id
            )));
        }
        let (seed, deploy_every, iterations) = (settings.seed, settings.deploy_every, settings.num_iterations());
        self.iteration += 1;
        let iteration = self.iteration;
        let generator = crate::threads::torch_generator();
        tch::manual_seed(torch_seed(iteration_seed(seed, iteration)));
        self.envs.take_iteration_episodes();
        self.envs.take_extras_means();
        let values = self.algorithm.iterate(&mut self.envs, Schedule { iteration, iterations })?;
        drop(generator);
        let parameters = self.algorithm.parameters();
        if let Some(name) = checkpoint::first_non_finite(&parameters) {
            return Err(AgentError::Diverged { iteration, what: format!("parameter `{name}` is not finite") });
        }
        let policy_shift = if deploy_every > 0 && iteration % deploy_every == 0 { self.deploy()? } else { f64::NAN };
        let means = self.envs.take_extras_means();
        let extras = self.envs.spec().extras.iter().cloned().zip(means).collect();
        let finished = self.envs.take_iteration_episodes();
        let mean = |f: fn(&Episode) -> f64| {
            if finished.is_empty() { f64::NAN } else { finished.iter().map(f).sum::<f64>() / finished.len() as f64 }
        };
        Ok(IterationStats {
            iteration,
            global_step: self.envs.global_step(),
            episodic_return: mean(|e| e.episode_return),
            episodic_length: mean(|e| e.length as f64),
            episodes: finished.len() as u64,
            policy_shift,
            metrics: self.algorithm.metrics().iter().map(|m| m.name).zip(values).collect(),
            extras,
        })
    }

    /// The current policy's action probabilities in every state, row-major (Discrete
    /// observations and actions).
    pub fn policy_table(&self) -> Result<Vec<f64>> {
        let Space::Discrete(d) = &self.envs.spec().observation_space else {
            return Err(AgentError::Config("policy tables need Discrete observations".into()));
        };
        let states: Vec<f32> = (0..d.n.max(1)).map(|k| (d.start + k) as f32).collect();
        let encoder = self.envs.encoder();
        let input = encoder.input(&encoder.store(keel_envs::ObsRef::F32(&states)));
        let probs = tch::no_grad(|| self.algorithm.action_probabilities(&input))
            .ok_or_else(|| AgentError::Config("this algorithm has no policy table".into()))?;
        let table = Vec::<f32>::try_from(&probs.to_device(Device::Cpu).flatten(0, -1))?;
        Ok(table.into_iter().map(f64::from).collect())
    }

    fn action_count(&self) -> usize {
        match &self.envs.spec().action_space {
            Space::Discrete(d) => d.n.max(1) as usize,
            _ => 1,
        }
    }

    /// Deploys the current policy to every env (see `deploy_every`); returns the relative change
    /// from the previous deployment (NaN for the first).
    fn deploy(&mut self) -> Result<f64> {
        let (params, table) = deploy::policy_params(&self.policy_table()?, self.action_count())?;
        self.envs.vector_mut().set_params(&params)?;
        let shift = self.deployed.as_ref().map_or(f64::NAN, |old| deploy::relative_change(&table, old));
        self.deployed = Some(table);
        Ok(shift)
    }

    /// Writes `dir/iter_NNNNNN.{safetensors,json}` and points `dir/latest` at them (see
    /// [`checkpoint`]).
    pub fn save_checkpoint(&mut self, dir: &Path) -> Result<PathBuf> {
        // An env that cannot snapshot (the Atari games, so far) still gets its networks saved,
        // for evaluation and export; resuming such a checkpoint is refused (load_checkpoint).
        let envs = self.envs.vector_mut().snapshot().unwrap_or(Value::Null);
        let (global_step, done, episodes, episode_count) = self.envs.counters();
        let state = TrainerState {
            algo: self.config.settings().algo.to_string(),
            iteration: self.iteration,
            global_step,
            done: done.to_vec(),
            obs_normalizer: self.envs.encoder().normalizer().cloned(),
            episodes: episodes.to_vec(),
            episode_count: Some(episode_count),
            envs,
            deployed: self.deployed.clone(),
            algorithm: self.algorithm.state()?,
        };
        checkpoint::save(dir, &format!("iter_{:06}", self.iteration), &self.algorithm.tensors(), &state)
    }

    /// Restores the checkpoint named by `dir/latest` into a trainer built from the same config
    /// (and the same kind of reset sampler); returns its iteration. A checkpoint with non-finite
    /// tensors is refused, naming the tensor.
    pub fn load_checkpoint(&mut self, dir: &Path) -> Result<u64> {
        let loaded: checkpoint::Loaded<TrainerState> = checkpoint::load(dir)?;
        let state = loaded.state;
        let json_path = dir.join(format!("{}.json", loaded.stem));
        // A checkpoint must agree with its own name and with the run it is loaded into.
        let settings = self.config.settings();
        if state.algo != settings.algo {
            return Err(checkpoint::invalid(
                &json_path,
                format_args!("it was written by a `{}` run, this run is `{}`", state.algo, settings.algo),
            ));
        }
        let named = loaded.stem.strip_prefix("iter_").and_then(|n| n.parse::<u64>().ok());
        if named != Some(state.iteration) {
            return Err(checkpoint::invalid(
                &json_path,
                format_args!("it says iteration {}, its name {}", state.iteration, loaded.stem),
            ));
        }
        let expected_step = state.iteration.checked_mul(settings.steps_per_iteration);
        if expected_step != Some(state.global_step) {
            return Err(checkpoint::invalid(
                &json_path,
                format_args!(
                    "it says global_step {} after {} iterations of {} steps",
                    state.global_step, state.iteration, settings.steps_per_iteration
                ),
            ));
        }
        if state.done.len() != self.envs.num_envs() {
            return Err(checkpoint::invalid(
                &json_path,
                format_args!("it holds {} envs, this config has {}", state.done.len(), self.envs.num_envs()),
            ));
        }
        // The algorithm says what is wrong; the file it is wrong in is said here.
        let in_file = |path: PathBuf| {
            move |e: AgentError| match e {
                AgentError::Checkpoint(why) => checkpoint::invalid(&path, why),
                other => other,
            }
        };
        let tensors_path = dir.join(format!("{}.safetensors", loaded.stem));
        self.algorithm.load_tensors(&loaded.tensors).map_err(in_file(tensors_path))?;
        self.algorithm.load_state(&state.algorithm).map_err(in_file(json_path.clone()))?;
        self.envs.encoder_mut().set_normalizer(state.obs_normalizer).map_err(|e| checkpoint::invalid(&json_path, e))?;
        if state.envs.is_null() {
            // Networks only: fine to evaluate, not to continue training (iteration_step refuses).
            self.unresumable = Some(json_path.clone());
        } else {
            self.envs.vector_mut().restore(&state.envs).map_err(|e| checkpoint::invalid(&json_path, e))?;
        }
        let episode_count = state.episode_count.unwrap_or(state.episodes.len() as u64);
        self.envs.restore_counters(state.global_step, state.done, state.episodes, episode_count);
        self.iteration = state.iteration;
        self.deployed = state.deployed;
        Ok(self.iteration)
    }

    /// The env an evaluation plays in: a fresh env of the run's config with the episode cap of
    /// [`eval::env_config`], and, for a run that deploys its policy, the current policy deployed.
    pub fn eval_env(&self, max_episode_steps: Option<u64>) -> Result<(Box<dyn Env>, u64)> {
        let s = self.config.settings();
        let (config, cap) = eval::env_config(s.env_id, s.env_config, max_episode_steps)?;
        let mut env = keel_envs::make(s.env_id, &config)?;
        if s.deploy_every > 0 {
            let (params, _) = deploy::policy_params(&self.policy_table()?, self.action_count())?;
            env.set_params(&params)?;
        }
        Ok((env, cap))
    }

    /// Episodes of the current policy on a fresh env (see [`crate::eval`]). Observation
    /// statistics are used, not updated.
    pub fn evaluate(&mut self, options: &EvalOptions) -> Result<Evaluation> {
        self.evaluate_watched(options, &mut |_, _| true)
    }

    /// [`Self::evaluate`], calling `watch` after every reset and step (see
    /// [`eval::play_watched`]): e.g. to draw each frame.
    pub fn evaluate_watched(
        &mut self,
        options: &EvalOptions,
        watch: &mut dyn FnMut(&mut dyn Env, Option<&keel_envs::Step>) -> bool,
    ) -> Result<Evaluation> {
        let (mut env, cap) = self.eval_env(options.max_episode_steps)?;
        let generator = crate::threads::torch_generator();
        tch::manual_seed(torch_seed(iteration_seed(options.seed, 0)));
        let algorithm = &self.algorithm;
        let mut act = |input: &Tensor| tch::no_grad(|| algorithm.act(input, options.deterministic));
        let episodes = eval::play_watched(env.as_mut(), options, cap, self.envs.encoder(), &mut act, watch)?;
        drop(generator);
        Ok(Evaluation {
            episodes,
            step_cap: cap,
            deployed: self.config.settings().deploy_every > 0,
            extras: env.spec().extras.clone(),
        })
    }
}

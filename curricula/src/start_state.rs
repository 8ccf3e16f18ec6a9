//! Exact start states drawn uniformly from a box.
//!
//! [`UniformStartState`] gives every reset of every sub-env an exact initial state
//! (`ResetOptions::with_state`), each dimension drawn uniformly from `[low, high]`, in the
//! layout of the env's `state` (CartPole: `x, x_dot, theta, theta_dot`). The draws come from the
//! sampler's own seeded PCG stream, in the order the engine asks (env order, on the calling
//! thread), so they do not depend on the worker count.
//!
//! **Scale.** The box actually drawn from is centred on the middle of `[low, high]` with its
//! half-widths multiplied by `scale` (in `(0, 1]`; 1, the default, is the whole box). With
//! `adapt`, every finished episode moves the scale: a return of at least `success_return`
//! multiplies it by `1 + step` (up to 1), a lower one by `1 - step` (down to `min_scale`). A
//! start-state curriculum in its simplest form: the starts spread out while the agent copes with
//! them and gather near the centre while it does not.

use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg32;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use keel_envs::config::{FieldError, ordered};
use keel_envs::{EnvError, EnvSpec, EpisodeEnd, ResetOptions, ResetSampler};

/// Settings of [`UniformStartState`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UniformStartStateConfig {
    /// Lowest value of each state dimension, in the layout of the env's `state`.
    pub low: Vec<f64>,
    /// Highest value of each state dimension.
    pub high: Vec<f64>,
    /// Seed of the sampler's random stream (default: derived from the training run's seed).
    pub seed: Option<u64>,
    /// Fraction of the box's half-widths drawn from, around its centre, in (0, 1] (default 1:
    /// the whole box). With `adapt`, the starting value.
    pub scale: f64,
    /// Move `scale` with episode outcomes (default: a fixed box).
    pub adapt: Option<AdaptScale>,
}

impl Default for UniformStartStateConfig {
    fn default() -> Self {
        Self { low: Vec::new(), high: Vec::new(), seed: None, scale: 1.0, adapt: None }
    }
}

/// How [`UniformStartState`] widens and narrows its box.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdaptScale {
    /// An episode whose return reaches this is a success (default 0).
    pub success_return: f64,
    /// Relative change per episode: a success multiplies the scale by `1 + step` (at most 1), a
    /// failure by `1 - step`, in (0, 1) (default 0.05).
    pub step: f64,
    /// Smallest scale, in (0, 1] (default 0.05).
    pub min_scale: f64,
}

impl Default for AdaptScale {
    fn default() -> Self {
        Self { success_return: 0.0, step: 0.05, min_scale: 0.05 }
    }
}

impl UniformStartStateConfig {
    /// Checks the settings; the error names the field.
    pub fn validate(&self) -> Result<(), FieldError> {
        if self.low.is_empty() || self.low.len() != self.high.len() {
            return Err(FieldError::new(
                "low",
                format!(
                    "low and high need one value per state dimension, got {} and {}",
                    self.low.len(),
                    self.high.len()
                ),
            ));
        }
        for (&lo, &hi) in self.low.iter().zip(&self.high) {
            ordered("high", lo, hi)?;
        }
        if !(self.scale > 0.0 && self.scale <= 1.0) {
            return Err(FieldError::new("scale", format!("must be in (0, 1], got {}", self.scale)));
        }
        if let Some(adapt) = &self.adapt {
            keel_envs::config::finite("adapt.success_return", adapt.success_return)?;
            if !(adapt.step > 0.0 && adapt.step < 1.0) {
                return Err(FieldError::new("adapt.step", format!("must be in (0, 1), got {}", adapt.step)));
            }
            if !(adapt.min_scale > 0.0 && adapt.min_scale <= 1.0) {
                return Err(FieldError::new("adapt.min_scale", format!("must be in (0, 1], got {}", adapt.min_scale)));
            }
        }
        Ok(())
    }
}

/// Exact start states drawn uniformly from a box (see the module docs).
#[derive(Clone, Debug)]
pub struct UniformStartState {
    config: UniformStartStateConfig,
    rng: Pcg32,
    scale: f64,
    episodes: u64,
    successes: u64,
}

/// What [`UniformStartState::snapshot`] holds.
#[derive(Serialize, Deserialize)]
struct Saved {
    rng: Pcg32,
    scale: f64,
    episodes: u64,
    successes: u64,
}

impl UniformStartState {
    /// A sampler over `config`'s box, seeded with `config.seed` or else `default_seed`. The
    /// config is expected to be valid ([`UniformStartStateConfig::validate`]).
    pub fn new(config: UniformStartStateConfig, default_seed: u64) -> Self {
        let rng = Pcg32::seed_from_u64(config.seed.unwrap_or(default_seed));
        let scale = config.scale;
        Self { config, rng, scale, episodes: 0, successes: 0 }
    }

    /// The current fraction of the box's half-widths drawn from.
    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// Episodes reported so far, and how many of them were successes (with `adapt`).
    pub fn outcomes(&self) -> (u64, u64) {
        (self.episodes, self.successes)
    }

    /// The next start state.
    pub fn draw(&mut self) -> Vec<f64> {
        let c = &self.config;
        c.low
            .iter()
            .zip(&c.high)
            .map(|(&lo, &hi)| {
                let (centre, half) = (0.5 * (lo + hi), 0.5 * (hi - lo));
                let u: f64 = self.rng.random();
                // Clamped: a scale of 1 and u near 1 must not round past `hi`.
                (centre + self.scale * half * (2.0 * u - 1.0)).clamp(lo, hi)
            })
            .collect()
    }
}

impl ResetSampler for UniformStartState {
    fn attach(&mut self, spec: &EnvSpec, _num_envs: usize) -> keel_envs::Result<()> {
        let dims = self.config.low.len();
        match spec.state_len {
            Some(n) if n == dims => Ok(()),
            Some(n) => Err(EnvError::InvalidField {
                context: "uniform_start_state sampler".into(),
                field: "low".into(),
                message: format!("{dims} state dimensions given, but the state of {} has {n}", spec.id),
            }),
            None => Err(EnvError::InvalidField {
                context: "uniform_start_state sampler".into(),
                field: "low".into(),
                message: format!("{} does not expose its state, so it cannot start from a given one", spec.id),
            }),
        }
    }

    fn sample(&mut self, _env_index: usize) -> ResetOptions {
        ResetOptions::with_state(self.draw())
    }

    fn report(&mut self, episode: &EpisodeEnd<'_>) {
        self.episodes += 1;
        let Some(adapt) = &self.config.adapt else { return };
        if episode.episode_return >= adapt.success_return {
            self.successes += 1;
            self.scale = (self.scale * (1.0 + adapt.step)).min(1.0);
        } else {
            self.scale = (self.scale * (1.0 - adapt.step)).max(adapt.min_scale);
        }
    }

    fn snapshot(&self) -> Value {
        let saved =
            Saved { rng: self.rng.clone(), scale: self.scale, episodes: self.episodes, successes: self.successes };
        serde_json::to_value(saved).unwrap_or(Value::Null)
    }

    fn restore(&mut self, snapshot: &Value) -> keel_envs::Result<()> {
        let saved: Saved = serde_json::from_value(snapshot.clone())
            .map_err(|e| EnvError::Snapshot(format!("uniform_start_state sampler: {e}")))?;
        if !(saved.scale > 0.0 && saved.scale <= 1.0) {
            return Err(EnvError::Snapshot(format!(
                "uniform_start_state sampler: scale {} outside (0, 1]",
                saved.scale
            )));
        }
        self.rng = saved.rng;
        self.scale = saved.scale;
        self.episodes = saved.episodes;
        self.successes = saved.successes;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_envs::{Action, VecEnv, VecOptions};
    use serde_json::Map;

    fn cartpole_box() -> UniformStartStateConfig {
        UniformStartStateConfig {
            low: vec![-0.5, -0.1, -0.05, -0.1],
            high: vec![0.5, 0.1, 0.05, 0.1],
            ..Default::default()
        }
    }

    fn end(episode_return: f64) -> EpisodeEnd<'static> {
        static OPTIONS: std::sync::LazyLock<ResetOptions> = std::sync::LazyLock::new(ResetOptions::default);
        EpisodeEnd {
            env_index: 0,
            options: &OPTIONS,
            episode_return,
            length: 1,
            terminated: true,
            truncated: false,
            extras_mean: &[],
        }
    }

    #[test]
    fn same_seed_same_draws_other_seed_other_draws() {
        let draws = |seed| {
            let mut s = UniformStartState::new(cartpole_box(), seed);
            (0..20).map(|i| s.sample(i).state.unwrap_or_default()).collect::<Vec<_>>()
        };
        assert_eq!(draws(3), draws(3));
        assert_ne!(draws(3), draws(4));
        // The config's own seed wins over the default.
        let mut own = UniformStartState::new(UniformStartStateConfig { seed: Some(3), ..cartpole_box() }, 99);
        assert_eq!(own.draw(), draws(3)[0]);
    }

    #[test]
    fn draws_stay_in_the_scaled_box_and_fill_it() {
        let config = cartpole_box();
        let mut full = UniformStartState::new(config.clone(), 0);
        let mut narrow = UniformStartState::new(UniformStartStateConfig { scale: 0.1, ..config.clone() }, 0);
        let (mut lowest, mut highest) = (vec![f64::INFINITY; 4], vec![f64::NEG_INFINITY; 4]);
        for _ in 0..2000 {
            let x = full.draw();
            for k in 0..4 {
                assert!(x[k] >= config.low[k] && x[k] <= config.high[k], "{x:?}");
                lowest[k] = lowest[k].min(x[k]);
                highest[k] = highest[k].max(x[k]);
            }
            let y = narrow.draw();
            for k in 0..4 {
                assert!(y[k].abs() <= 0.1 * config.high[k] + 1e-15, "{y:?}");
            }
        }
        for k in 0..4 {
            let width = config.high[k] - config.low[k];
            assert!(lowest[k] < config.low[k] + 0.01 * width && highest[k] > config.high[k] - 0.01 * width);
        }
    }

    #[test]
    fn outcomes_widen_and_narrow_the_box_within_limits() {
        let adapt = AdaptScale { success_return: 100.0, step: 0.5, min_scale: 0.2 };
        let mut s =
            UniformStartState::new(UniformStartStateConfig { scale: 0.5, adapt: Some(adapt), ..cartpole_box() }, 0);
        s.report(&end(150.0));
        assert_eq!(s.scale(), 0.75);
        s.report(&end(150.0));
        assert_eq!(s.scale(), 1.0, "capped at the whole box");
        for _ in 0..10 {
            s.report(&end(10.0));
        }
        assert_eq!(s.scale(), 0.2, "floored at min_scale");
        assert_eq!(s.outcomes(), (12, 2));
        // Without `adapt` the box stays.
        let mut fixed = UniformStartState::new(cartpole_box(), 0);
        fixed.report(&end(1e9));
        assert_eq!(fixed.scale(), 1.0);
    }

    #[test]
    fn restore_continues_exactly_and_rejects_garbage() {
        let config = UniformStartStateConfig { adapt: Some(AdaptScale::default()), ..cartpole_box() };
        let mut a = UniformStartState::new(config.clone(), 7);
        for i in 0..5 {
            a.sample(i);
            a.report(&end(if i % 2 == 0 { 1.0 } else { -1.0 }));
        }
        let saved = a.snapshot();
        let mut b = UniformStartState::new(config, 12345);
        b.restore(&saved).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(b.scale(), a.scale());
        for i in 0..10 {
            assert_eq!(a.sample(i), b.sample(i));
        }
        assert!(b.restore(&serde_json::json!({"rng": 1})).is_err());
        assert_eq!(b.draw(), a.draw(), "a rejected snapshot changes nothing");
    }

    #[test]
    fn settings_are_validated_naming_the_field() {
        let bad = |c: UniformStartStateConfig| c.validate().err().map(|e| e.field);
        assert_eq!(bad(cartpole_box()), None);
        assert_eq!(bad(UniformStartStateConfig { high: vec![0.0], ..cartpole_box() }), Some("low"));
        assert_eq!(bad(UniformStartStateConfig { low: vec![1.0, 0.0, 0.0, 0.0], ..cartpole_box() }), Some("high"));
        assert_eq!(bad(UniformStartStateConfig { scale: 0.0, ..cartpole_box() }), Some("scale"));
        let adapt = |a| UniformStartStateConfig { adapt: Some(a), ..cartpole_box() };
        assert_eq!(bad(adapt(AdaptScale { step: 1.0, ..Default::default() })), Some("adapt.step"));
        assert_eq!(bad(adapt(AdaptScale { min_scale: 0.0, ..Default::default() })), Some("adapt.min_scale"));
    }

    /// In a real vector: every env starts from the sampler's state, in env order, whatever the
    /// worker count; a sampler for another state size is refused at installation.
    #[test]
    fn a_vector_starts_each_env_from_its_draw_at_every_worker_count() {
        let mut expected = UniformStartState::new(cartpole_box(), 5);
        let want: Vec<Vec<f64>> = (0..6).map(|_| expected.draw()).collect();
        let mut runs = Vec::new();
        for workers in [0, 1, 2] {
            let options = VecOptions { workers, ..VecOptions::default() };
            let mut venv = VecEnv::make("keel/CartPole-v1", &Map::new(), 6, options).unwrap_or_else(|e| panic!("{e}"));
            venv.set_sampler(Some(Box::new(UniformStartState::new(cartpole_box(), 5))))
                .unwrap_or_else(|e| panic!("{e}"));
            venv.reset(Some(0)).unwrap_or_else(|e| panic!("{e}"));
            let starts: Vec<Vec<f64>> = (0..6).map(|i| venv.state(i).unwrap_or_default()).collect();
            assert_eq!(starts, want, "workers = {workers}");
            for _ in 0..200 {
                venv.step(Action::Int(&[0; 6])).unwrap_or_else(|e| panic!("{e}"));
            }
            runs.push((0..6).map(|i| venv.state(i).unwrap_or_default()).collect::<Vec<_>>());
        }
        assert!(runs.windows(2).all(|w| w[0] == w[1]));
        let mut pendulum =
            VecEnv::make("keel/Pendulum-v1", &Map::new(), 2, VecOptions::default()).unwrap_or_else(|e| panic!("{e}"));
        let err = pendulum.set_sampler(Some(Box::new(UniformStartState::new(cartpole_box(), 0)))).err();
        assert!(err.is_some_and(|e| e.to_string().contains("state of keel/Pendulum-v1 has 2")));
    }
}

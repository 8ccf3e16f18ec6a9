//! Neural TD and PFPE on Baird's star: the nonlinear experiment of Fellows, Smith & Whiteson
//! (ICML 2023) in spirit, on the data of the linear one ([`crate::td`]).
//!
//! A value network `V_ω` (default 2 × 32 ReLU, PyTorch's default initialisation) reads Baird's
//! features φ(s). Every step draws a batch (default 500) of off-policy transitions: s uniform
//! over the 7 states (the behaviour policy's stationary distribution), the behaviour action
//! (`dashed` with probability 6/7, to an upper state uniformly; `solid` to the lower state), and
//! the importance ratio ρ of the target policy (always `solid`): 0 for `dashed`, 7 for `solid`.
//! One SGD step (with optional heavy-ball momentum, PyTorch's `SGD(momentum=β)`) follows the
//! semi-gradient of
//!
//! ```text
//! L(ω) = ½ · mean_i ρ_i · (r_i + γ V_ω̄(s'_i) − V_ω(s_i))²
//! ```
//!
//! with the target weights ω̄ copied from ω every `k` steps (`k = 1`: TD(0), the target is the
//! current network). Rewards are 0, so the true value is 0 and ‖V‖ = (Σ_s V(s)²)^½ measures the
//! error, as ‖Φw‖ does for linear weights. Batches come from a PCG stream of the seed and the
//! network from libtorch's generator seeded with it, so a seed gives one run.

use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg64;
use serde::{Deserialize, Serialize};
use tch::nn::{self, Module, OptimizerConfig};
use tch::{Device, Kind, Tensor};

use keel_envs::baird::{self, BairdConfig};

use crate::error::{AgentError, Result};

/// One neural TD / PFPE run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NeuralTdConfig {
    /// Target period `k` (1 = TD(0)).
    pub target_period: u64,
    /// SGD learning rate (default 1e-3).
    pub learning_rate: f64,
    /// Heavy-ball momentum β in [0, 1) (default 0).
    pub momentum: f64,
    /// SGD steps (default 50000: 500 target updates at k = 100).
    pub steps: u64,
    /// Transitions per step (default 500).
    pub batch_size: usize,
    /// Hidden layer widths (default [32, 32]).
    pub hidden_sizes: Vec<i64>,
    /// Seed of the network and the batches.
    pub seed: u64,
    /// Record ‖V‖ every this many steps (0: about 1000 points over the run).
    pub record_every: u64,
}

impl Default for NeuralTdConfig {
    fn default() -> Self {
        Self {
            target_period: 1,
            learning_rate: 1e-3,
            momentum: 0.0,
            steps: 50_000,
            batch_size: 500,
            hidden_sizes: vec![32, 32],
            seed: 0,
            record_every: 0,
        }
    }
}

fn invalid(field: &str, message: String) -> AgentError {
    AgentError::Config(format!("neural td: `{field}` {message}"))
}

impl NeuralTdConfig {
    /// Every field in range, or an error naming the first that is not.
    pub fn validate(&self) -> Result<()> {
        if self.target_period == 0 {
            return Err(invalid("target_period", "(k) must be at least 1 (1 is TD(0)), got 0".into()));
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0 && self.learning_rate <= f64::from(f32::MAX)) {
            return Err(invalid("learning_rate", format!("must be finite and > 0, got {}", self.learning_rate)));
        }
        crate::td::check_momentum(self.momentum)?;
        if self.steps == 0 {
            return Err(invalid("steps", "must be at least 1".into()));
        }
        if !(1..=1_000_000).contains(&self.batch_size) {
            return Err(invalid("batch_size", format!("must lie in 1..=1000000, got {}", self.batch_size)));
        }
        if self.hidden_sizes.is_empty() || self.hidden_sizes.iter().any(|&h| !(1..=4096).contains(&h)) {
            return Err(invalid("hidden_sizes", format!("needs widths in 1..=4096, got {:?}", self.hidden_sizes)));
        }
        Ok(())
    }

    fn record_every(&self) -> u64 {
        if self.record_every > 0 { self.record_every } else { (self.steps / 1000).max(1) }
    }
}

/// What a run did.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NeuralTdRun {
    /// The run's config.
    pub config: NeuralTdConfig,
    /// `(steps done, ‖V‖)`, starting with the initial network.
    pub norms: Vec<(u64, f64)>,
    /// ‖V‖ after the last step done.
    pub final_norm: f64,
    /// Steps done: `steps`, or fewer if the network stopped being finite.
    pub steps_done: u64,
    /// Target refreshes done.
    pub target_updates: u64,
}

/// An MLP value network with PyTorch's default initialisation.
fn value_network(path: &nn::Path, hidden: &[i64]) -> nn::Sequential {
    let mut net = nn::seq();
    let mut width = baird::FEATURES as i64;
    for (i, &h) in hidden.iter().enumerate() {
        net = net.add(nn::linear(path / format!("l{i}"), width, h, Default::default())).add_fn(|x| x.relu());
        width = h;
    }
    net.add(nn::linear(path / format!("l{}", hidden.len()), width, 1, Default::default()))
}

/// Neural TD / PFPE on Baird's star (see the module docs), on the CPU.
pub fn run(config: &NeuralTdConfig, env: &BairdConfig) -> Result<NeuralTdRun> {
    config.validate()?;
    crate::threads::configure();
    let device = Device::Cpu;
    let (online, net, mut target, target_net) = {
        let _generator = crate::threads::torch_generator();
        tch::manual_seed(config.seed as i64);
        let online = nn::VarStore::new(device);
        let net = value_network(&online.root(), &config.hidden_sizes);
        let target = nn::VarStore::new(device);
        let target_net = value_network(&target.root(), &config.hidden_sizes);
        (online, net, target, target_net)
    };
    let mut optimiser = nn::Sgd { momentum: config.momentum, ..Default::default() }
        .build(&online, config.learning_rate)
        .map_err(|e| AgentError::Config(format!("neural td: building SGD: {e}")))?;

    let features: Vec<f32> = (0..baird::STATES).flat_map(|s| baird::features(s).map(|x| x as f32)).collect();
    let phi = Tensor::from_slice(&features).view([baird::STATES as i64, baird::FEATURES as i64]);
    let norm = |net: &nn::Sequential| tch::no_grad(|| net.forward(&phi).norm().double_value(&[]));
    let solid_ratio = 1.0 / (1.0 - env.behaviour_dashed);

    let n = config.batch_size;
    let (mut states, mut next_states, mut ratios) = (vec![0i64; n], vec![0i64; n], vec![0f32; n]);
    let mut rng = Pcg64::seed_from_u64(config.seed ^ 0x0bad_5eed);
    let mut result = NeuralTdRun {
        config: config.clone(),
        norms: vec![(0, norm(&net))],
        final_norm: norm(&net),
        steps_done: 0,
        target_updates: 0,
    };
    for step in 0..config.steps {
        if step % config.target_period == 0 {
            target.copy(&online).map_err(|e| AgentError::Config(format!("neural td: target copy: {e}")))?;
            result.target_updates += 1;
        }
        for i in 0..n {
            states[i] = rng.random_range(0..baird::STATES) as i64;
            let dashed = rng.random::<f64>() < env.behaviour_dashed;
            next_states[i] = if dashed { rng.random_range(0..baird::LOWER) as i64 } else { baird::LOWER as i64 };
            ratios[i] = if dashed { 0.0 } else { solid_ratio as f32 };
        }
        let s = phi.index_select(0, &Tensor::from_slice(&states));
        let s_next = phi.index_select(0, &Tensor::from_slice(&next_states));
        let rho = Tensor::from_slice(&ratios);
        // With k = 1 the target network equals the online one, refreshed above every step.
        let td_target = tch::no_grad(|| target_net.forward(&s_next).squeeze_dim(-1) * env.gamma);
        let error = td_target - net.forward(&s).squeeze_dim(-1);
        let loss = (rho * error.square()).mean(Kind::Float) * 0.5;
        optimiser.backward_step(&loss);
        let value_norm = norm(&net);
        if !value_norm.is_finite() {
            break;
        }
        let done = step + 1;
        result.steps_done = done;
        result.final_norm = value_norm;
        if done % config.record_every() == 0 || done == config.steps {
            result.norms.push((done, value_norm));
        }
    }
    Ok(result)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn short(k: u64, seed: u64) -> NeuralTdConfig {
        NeuralTdConfig { target_period: k, steps: 200, batch_size: 64, seed, ..NeuralTdConfig::default() }
    }

    #[test]
    fn a_seed_gives_one_run_and_seeds_differ() {
        let env = BairdConfig::default();
        let a = run(&short(10, 3), &env).unwrap();
        let b = run(&short(10, 3), &env).unwrap();
        let c = run(&short(10, 4), &env).unwrap();
        assert_eq!(a.norms, b.norms);
        assert_ne!(a.norms, c.norms);
        assert_eq!(a.target_updates, 20);
        assert_eq!(a.steps_done, 200);
    }

    #[test]
    fn pfpe_with_a_held_target_converges_as_fitted_evaluation_does() {
        // Zero rewards: each period regresses every state's value onto γ·V̄(s7), so once the
        // fits are good ‖V‖ falls by about γ per period: 400 periods take it below 10%.
        let env = BairdConfig::default();
        let config = NeuralTdConfig { target_period: 50, steps: 20_000, learning_rate: 1e-2, ..short(50, 1) };
        let result = run(&config, &env).unwrap();
        let start = result.norms[0].1;
        assert_eq!(result.steps_done, 20_000);
        assert!(result.final_norm < 0.1 * start, "{start} -> {}", result.final_norm);
    }

    #[test]
    fn bad_configs_name_the_field() {
        let env = BairdConfig::default();
        let cases = [
            (NeuralTdConfig { target_period: 0, ..short(1, 0) }, "target_period"),
            (NeuralTdConfig { learning_rate: 0.0, ..short(1, 0) }, "learning_rate"),
            (NeuralTdConfig { learning_rate: f64::INFINITY, ..short(1, 0) }, "learning_rate"),
            (NeuralTdConfig { momentum: 1.0, ..short(1, 0) }, "momentum"),
            (NeuralTdConfig { steps: 0, ..short(1, 0) }, "steps"),
            (NeuralTdConfig { batch_size: 0, ..short(1, 0) }, "batch_size"),
            (NeuralTdConfig { hidden_sizes: vec![], ..short(1, 0) }, "hidden_sizes"),
        ];
        for (config, field) in cases {
            let err = run(&config, &env).unwrap_err().to_string();
            assert!(err.contains(field), "{err}");
        }
    }
}

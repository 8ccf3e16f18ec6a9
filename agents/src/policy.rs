//! Actor-critic networks with CleanRL's initialisation, and the two action distributions.
//!
//! Separate actor and critic MLPs (tanh), orthogonal weights with gains √2 on hidden layers,
//! 0.01 on the actor head and 1 on the critic head, zero biases. Discrete actions: a categorical
//! over logits. Box actions: a diagonal Gaussian with a state-independent, trainable log-std
//! (initialised to 0); log-probabilities and entropies are summed over action dimensions.

use tch::{Kind, Tensor, nn, nn::Module};

use keel_envs::Space;

use crate::error::{AgentError, Result};

/// An MLP with tanh between layers.
#[derive(Debug)]
pub struct Mlp {
    layers: Vec<nn::Linear>,
}

fn orthogonal(gain: f64) -> nn::LinearConfig {
    nn::LinearConfig { ws_init: nn::Init::Orthogonal { gain }, bs_init: Some(nn::Init::Const(0.0)), bias: true }
}

impl Mlp {
    /// `input -> hidden... -> output`, hidden gains √2, output gain `head_gain`.
    pub fn new(path: &nn::Path, input: i64, hidden: &[i64], output: i64, head_gain: f64) -> Self {
        let mut layers = Vec::with_capacity(hidden.len() + 1);
        let mut width = input;
        for (k, &h) in hidden.iter().enumerate() {
            layers.push(nn::linear(path / format!("l{k}"), width, h, orthogonal(2f64.sqrt())));
            width = h;
        }
        layers.push(nn::linear(path / "head", width, output, orthogonal(head_gain)));
        Self { layers }
    }
}

impl Module for Mlp {
    fn forward(&self, xs: &Tensor) -> Tensor {
        let last = self.layers.len() - 1;
        let mut x = xs.shallow_clone();
        for (k, layer) in self.layers.iter().enumerate() {
            // One fused libtorch call (addmm) instead of nn::Linear's matmul, transpose and add.
            x = x.linear(&layer.ws, layer.bs.as_ref());
            if k < last {
                x = x.tanh();
            }
        }
        x
    }
}

/// The action head. Actions are indices `0..n` (categorical) or unbounded reals (Gaussian);
/// `encode::ActionDecoder` turns them into the env's actions.
#[derive(Debug)]
pub enum Head {
    /// Categorical over `n` actions.
    Categorical {
        /// Number of actions.
        n: i64,
    },
    /// Diagonal Gaussian with a trainable log-std.
    Gaussian {
        /// `[1, act_dim]` log standard deviation.
        log_std: Tensor,
    },
}

/// Actor and critic.
#[derive(Debug)]
pub struct ActorCritic {
    /// Policy network: logits or Gaussian means.
    pub actor: Mlp,
    /// Value network.
    pub critic: Mlp,
    /// Action distribution.
    pub head: Head,
}

/// A sampled batch of actions with their log-probabilities.
pub struct Sample {
    /// `[N]` (int64) for categorical, `[N, act_dim]` (float) for Gaussian.
    pub action: Tensor,
    /// `[N]`.
    pub log_prob: Tensor,
}

impl ActorCritic {
    /// Networks taking rows of `input` floats (see `encode::ObsEncoder::input_width`) for an
    /// env with this action space.
    pub fn new(root: &nn::Path, input: i64, action: &Space, hidden: &[i64], init_log_std: f64) -> Result<Self> {
        let (out, head) = match action {
            Space::Discrete(d) => (d.n, Head::Categorical { n: d.n }),
            Space::Box(b) => {
                let dim = b.len() as i64;
                let log_std = root.var("log_std", &[1, dim], nn::Init::Const(init_log_std));
                (dim, Head::Gaussian { log_std })
            }
            Space::MultiDiscrete(_) => {
                return Err(AgentError::Config(
                    "PPO supports Discrete and Box action spaces, not MultiDiscrete".into(),
                ));
            }
        };
        Ok(Self {
            actor: Mlp::new(&(root / "actor"), input, hidden, out, 0.01),
            critic: Mlp::new(&(root / "critic"), input, hidden, 1, 1.0),
            head,
        })
    }

    /// State values, `[N]`.
    pub fn value(&self, obs: &Tensor) -> Tensor {
        self.critic.forward(obs).squeeze_dim(-1)
    }

    /// Samples actions (the distribution's mode if `deterministic`).
    pub fn sample(&self, obs: &Tensor, deterministic: bool) -> Sample {
        let out = self.actor.forward(obs);
        match &self.head {
            Head::Categorical { .. } => {
                let log_probs = out.log_softmax(-1, Kind::Float);
                let action = if deterministic {
                    out.argmax(-1, false)
                } else {
                    log_probs.exp().multinomial(1, true).squeeze_dim(-1)
                };
                let log_prob = log_probs.gather(-1, &action.unsqueeze(-1), false).squeeze_dim(-1);
                Sample { action, log_prob }
            }
            Head::Gaussian { log_std, .. } => {
                let std = log_std.exp().expand_as(&out);
                let action = if deterministic { out.shallow_clone() } else { &out + &std * out.randn_like() };
                let log_prob = gaussian_log_prob(&out, log_std, &action);
                Sample { action, log_prob }
            }
        }
    }

    /// Log-probabilities and entropies of given actions, `[N]` each (with gradients).
    pub fn evaluate(&self, obs: &Tensor, action: &Tensor) -> (Tensor, Tensor) {
        let out = self.actor.forward(obs);
        match &self.head {
            Head::Categorical { .. } => {
                let log_probs = out.log_softmax(-1, Kind::Float);
                let log_prob = log_probs.gather(-1, &action.unsqueeze(-1), false).squeeze_dim(-1);
                let entropy = -(log_probs.exp() * &log_probs).sum_dim_intlist(-1, false, Kind::Float);
                (log_prob, entropy)
            }
            Head::Gaussian { log_std, .. } => {
                let log_prob = gaussian_log_prob(&out, log_std, action);
                let per_dim = log_std + 0.5 + 0.5 * (2.0 * std::f64::consts::PI).ln();
                let entropy = per_dim.sum_dim_intlist(-1, false, Kind::Float).expand([out.size()[0]], false);
                (log_prob, entropy)
            }
        }
    }
}

fn gaussian_log_prob(mean: &Tensor, log_std: &Tensor, action: &Tensor) -> Tensor {
    let var = (log_std * 2.0).exp();
    let per_dim: Tensor = -(action - mean).square() / (var * 2.0) - log_std - 0.5 * (2.0 * std::f64::consts::PI).ln();
    per_dim.sum_dim_intlist(-1, false, Kind::Float)
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_envs::space::{BoxSpace, Discrete};
    use tch::Device;

    #[test]
    fn gaussian_log_prob_and_entropy_match_closed_forms() {
        crate::threads::configure();
        let vs = nn::VarStore::new(Device::Cpu);
        let act = Space::Box(BoxSpace::symmetric(&[2.0; 2]));
        let ac = ActorCritic::new(&vs.root(), 3, &act, &[8], 0.0).unwrap_or_else(|e| panic!("{e}"));
        let x = Tensor::zeros([1, 3], (Kind::Float, Device::Cpu));
        let mean = ac.actor.forward(&x);
        let a = &mean + 1.0; // one std away in each of 2 dims (std = 1)
        let (lp, ent) = ac.evaluate(&x, &a);
        let want_lp = 2.0 * (-0.5 - 0.5 * (2.0 * std::f64::consts::PI).ln());
        let want_ent = 2.0 * (0.5 + 0.5 * (2.0 * std::f64::consts::PI).ln());
        assert!((lp.double_value(&[0]) - want_lp).abs() < 1e-5);
        assert!((ent.double_value(&[0]) - want_ent).abs() < 1e-5);
    }

    #[test]
    fn categorical_starts_near_uniform() {
        crate::threads::configure();
        let vs = nn::VarStore::new(Device::Cpu);
        let act = Space::Discrete(Discrete { n: 2, start: 0 });
        let ac = ActorCritic::new(&vs.root(), 4, &act, &[64, 64], 0.0).unwrap_or_else(|e| panic!("{e}"));
        let x = Tensor::randn([16, 4], (Kind::Float, Device::Cpu));
        let (_, ent) = ac.evaluate(&x, &Tensor::zeros([16], (Kind::Int64, Device::Cpu)));
        // Head gain 0.01: logits near 0, entropy near ln 2.
        assert!((ent.mean(Kind::Float).double_value(&[]) - 2f64.ln()).abs() < 1e-3);
    }
}

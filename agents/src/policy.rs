//! Actor-critic networks with CleanRL's initialisation, and the two action distributions.
//!
//! Two bodies ([`Network`]): separate actor and critic MLPs (tanh), CleanRL's `ppo.py`; or the
//! Nature CNN (Mnih et al. 2015) shared by a linear actor and critic head, CleanRL's
//! `ppo_atari.py`. The CNN takes frames `(C, H, W)` as they were stored (bytes for Atari) and
//! scales them to [0, 1] itself, on the device. Orthogonal weights with gains √2 on hidden
//! layers, 0.01 on the actor head and 1 on the critic head, zero biases. Discrete actions: a
//! categorical over logits. Box actions: a diagonal Gaussian with a state-independent, trainable
//! log-std (initialised to 0); log-probabilities and entropies are summed over action dimensions.

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor, nn, nn::Module};

use keel_envs::Space;

use crate::error::{AgentError, Result};
use crate::history::HistoryEncoder;

/// The nonlinearity between an [`Mlp`]'s layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// tanh (CleanRL's PPO).
    Tanh,
    /// ReLU (CleanRL's DQN).
    Relu,
    /// SiLU / swish (ILD's policy).
    Silu,
}

/// How an [`Mlp`]'s layers are initialised.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// Orthogonal weights (gain √2 on hidden layers, `head_gain` on the last), zero biases:
    /// CleanRL's PPO.
    Orthogonal {
        /// Gain of the output layer.
        head_gain: f64,
    },
    /// PyTorch's `nn.Linear` default (Kaiming-uniform weights, uniform biases).
    Torch,
}

/// An MLP `input -> hidden... -> output` with one [`Activation`] between layers (none after the
/// last). Its parameters are named `l0`, `l1`, ... for the hidden layers and `head` for the
/// output layer.
#[derive(Debug)]
pub struct Mlp {
    layers: Vec<nn::Linear>,
    activation: Activation,
}

fn orthogonal(gain: f64) -> nn::LinearConfig {
    nn::LinearConfig { ws_init: nn::Init::Orthogonal { gain }, bs_init: Some(nn::Init::Const(0.0)), bias: true }
}

impl Mlp {
    /// CleanRL's PPO body: tanh, orthogonal with hidden gains √2 and output gain `head_gain`.
    pub fn new(path: &nn::Path, input: i64, hidden: &[i64], output: i64, head_gain: f64) -> Self {
        Self::with(path, input, hidden, output, Activation::Tanh, Init::Orthogonal { head_gain })
    }

    /// An MLP with the given activation and initialisation.
    pub fn with(path: &nn::Path, input: i64, hidden: &[i64], output: i64, activation: Activation, init: Init) -> Self {
        let config = |gain: f64| match init {
            Init::Orthogonal { .. } => orthogonal(gain),
            Init::Torch => nn::LinearConfig::default(),
        };
        let head_gain = match init {
            Init::Orthogonal { head_gain } => head_gain,
            Init::Torch => 1.0,
        };
        let mut layers = Vec::with_capacity(hidden.len() + 1);
        let mut width = input;
        for (k, &h) in hidden.iter().enumerate() {
            layers.push(nn::linear(path / format!("l{k}"), width, h, config(2f64.sqrt())));
            width = h;
        }
        layers.push(nn::linear(path / "head", width, output, config(head_gain)));
        Self { layers, activation }
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
                x = match self.activation {
                    Activation::Tanh => x.tanh(),
                    Activation::Relu => x.relu(),
                    Activation::Silu => x.silu(),
                };
            }
        }
        x
    }
}

/// Which body the actor and critic have.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Network {
    /// Separate tanh MLPs of `hidden_sizes` for actor and critic (CleanRL `ppo.py`).
    #[default]
    Mlp,
    /// The Nature CNN (conv 32×8×8/4, 64×4×4/2, 64×3×3/1, dense 512, ReLU) shared by a linear
    /// actor and critic (CleanRL `ppo_atari.py`); needs image observations `(C, H, W)`.
    NatureCnn,
}

/// The Nature CNN's torso: `[N, C·H·W]` pixels in 0..=255 (any element type) to `[N, 512]`.
#[derive(Debug)]
pub struct NatureCnn {
    convs: [nn::Conv2D; 3],
    dense: nn::Linear,
    /// `[C, H, W]` of one observation.
    shape: [i64; 3],
}

/// Kernel and stride of the three convolutions, with their output channels.
const NATURE_CONVS: [(i64, i64, i64); 3] = [(32, 8, 4), (64, 4, 2), (64, 3, 1)];

/// Width of the Nature CNN's output.
pub const NATURE_FEATURES: i64 = 512;

impl NatureCnn {
    /// The spatial size after the three convolutions of a `side` input (`None`: too small).
    pub fn conv_output(side: i64) -> Option<i64> {
        NATURE_CONVS.iter().try_fold(side, |s, &(_, k, stride)| (s >= k).then(|| (s - k) / stride + 1))
    }

    /// A Nature CNN over observations of `shape` `[C, H, W]` (each side at least 36).
    pub fn new(path: &nn::Path, shape: [i64; 3]) -> Result<Self> {
        let [c, h, w] = shape;
        let (Some(oh), Some(ow)) = (Self::conv_output(h), Self::conv_output(w)) else {
            return Err(AgentError::Config(format!(
                "network = \"nature_cnn\" needs frames of at least 36x36, got {h}x{w}"
            )));
        };
        let gain = 2f64.sqrt();
        let mut channels = c;
        let convs = NATURE_CONVS.map(|(out, k, stride)| {
            let config = nn::ConvConfig { stride, bs_init: nn::Init::Const(0.0), ..Default::default() };
            let conv = nn::conv2d(path / format!("conv{out}_{k}"), channels, out, k, config);
            // tch's orthogonal init returns a matrix; the kernel gets it reshaped, as PyTorch's
            // `orthogonal_` does (rows = output channels).
            let q = nn::init(nn::Init::Orthogonal { gain }, &[out, channels * k * k], path.device());
            tch::no_grad(|| conv.ws.view([out, channels * k * k]).copy_(&q));
            channels = out;
            conv
        });
        let flat = channels * oh * ow;
        let dense = nn::linear(path / "dense", flat, NATURE_FEATURES, orthogonal(gain));
        Ok(Self { convs, dense, shape })
    }
}

impl Module for NatureCnn {
    fn forward(&self, xs: &Tensor) -> Tensor {
        let [c, h, w] = self.shape;
        // Frames arrive as stored (bytes for Atari): scaled here, on the device, not by the envs.
        let mut x = xs.to_kind(Kind::Float).view([-1, c, h, w]) / 255.0;
        for conv in &self.convs {
            x = x.apply(conv).relu();
        }
        x.flatten(1, -1).linear(&self.dense.ws, self.dense.bs.as_ref()).relu()
    }
}

/// What the actor and critic read observations through.
#[derive(Debug)]
enum Body {
    /// Separate MLPs, behind an optional history encoder shared by both.
    Separate { actor: Mlp, critic: Mlp, history: Option<HistoryEncoder> },
    /// One torso, two linear heads.
    Shared { torso: NatureCnn, actor: nn::Linear, critic: nn::Linear },
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
    body: Body,
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
    /// Separate MLPs taking rows of `input` floats (see `encode::ObsEncoder::input_width`) for
    /// an env with this action space.
    pub fn new(root: &nn::Path, input: i64, action: &Space, hidden: &[i64], init_log_std: f64) -> Result<Self> {
        let (out, head) = Self::head(root, action, init_log_std)?;
        let actor = Mlp::new(&(root / "actor"), input, hidden, out, 0.01);
        let critic = Mlp::new(&(root / "critic"), input, hidden, 1, 1.0);
        Ok(Self { body: Body::Separate { actor, critic, history: None }, head })
    }

    /// These MLPs behind `encoder`: observations go through [`HistoryEncoder::input`] first
    /// (the MLPs' `input` must be its output width). The Nature CNN takes no history encoder.
    pub fn with_history(mut self, encoder: HistoryEncoder) -> Result<Self> {
        match &mut self.body {
            Body::Separate { history, .. } => {
                *history = Some(encoder);
                Ok(self)
            }
            Body::Shared { .. } => {
                Err(AgentError::Config("training config: `history_encoder` needs network = \"mlp\"".into()))
            }
        }
    }

    /// What the MLPs read: the observation, or with a history encoder its encoded form.
    fn mlp_input(history: &Option<HistoryEncoder>, obs: &Tensor) -> Tensor {
        match history {
            Some(h) => h.input(obs),
            None => obs.shallow_clone(),
        }
    }

    /// The Nature CNN on observations of `observation` space (a Box of shape `(C, H, W)`) with
    /// linear actor and critic heads.
    pub fn nature_cnn(root: &nn::Path, observation: &Space, action: &Space, init_log_std: f64) -> Result<Self> {
        let shape = match observation {
            Space::Box(b) if b.shape.len() == 3 => [b.shape[0] as i64, b.shape[1] as i64, b.shape[2] as i64],
            other => {
                return Err(AgentError::Config(format!(
                    "training config: invalid `network`: \"nature_cnn\" needs image observations of shape \
                     (C, H, W), the env has {}",
                    other.describe()
                )));
            }
        };
        let (out, head) = Self::head(root, action, init_log_std)?;
        let torso = NatureCnn::new(&(root / "torso"), shape)?;
        let actor = nn::linear(root / "actor", NATURE_FEATURES, out, orthogonal(0.01));
        let critic = nn::linear(root / "critic", NATURE_FEATURES, 1, orthogonal(1.0));
        Ok(Self { body: Body::Shared { torso, actor, critic }, head })
    }

    /// Outputs of the actor for `action` and its distribution head.
    fn head(root: &nn::Path, action: &Space, init_log_std: f64) -> Result<(i64, Head)> {
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
        Ok((out, head))
    }

    /// Holds a Gaussian head's log-std where it is: no gradient reaches it, so no optimiser
    /// moves it (it is still saved and loaded with the other variables). Categorical heads
    /// have none.
    pub fn freeze_log_std(&self) {
        if let Head::Gaussian { log_std } = &self.head {
            let _ = log_std.set_requires_grad(false);
        }
    }

    /// Actor outputs (logits or Gaussian means) and state values `[N]`, the torso run once.
    pub fn forward(&self, obs: &Tensor) -> (Tensor, Tensor) {
        match &self.body {
            Body::Separate { actor, critic, history } => {
                let x = Self::mlp_input(history, obs);
                (actor.forward(&x), critic.forward(&x).squeeze_dim(-1))
            }
            Body::Shared { torso, actor, critic } => {
                let features = torso.forward(obs);
                (features.apply(actor), features.apply(critic).squeeze_dim(-1))
            }
        }
    }

    /// Actor outputs: logits (categorical) or means (Gaussian).
    pub fn policy_output(&self, obs: &Tensor) -> Tensor {
        match &self.body {
            Body::Separate { actor, history, .. } => actor.forward(&Self::mlp_input(history, obs)),
            Body::Shared { torso, actor, .. } => torso.forward(obs).apply(actor),
        }
    }

    /// State values, `[N]`.
    pub fn value(&self, obs: &Tensor) -> Tensor {
        match &self.body {
            Body::Separate { critic, history, .. } => critic.forward(&Self::mlp_input(history, obs)).squeeze_dim(-1),
            Body::Shared { torso, critic, .. } => torso.forward(obs).apply(critic).squeeze_dim(-1),
        }
    }

    /// Samples actions (the distribution's mode if `deterministic`).
    pub fn sample(&self, obs: &Tensor, deterministic: bool) -> Sample {
        self.sample_from(self.policy_output(obs), deterministic)
    }

    /// Samples actions and the state values in one pass.
    pub fn sample_and_value(&self, obs: &Tensor, deterministic: bool) -> (Sample, Tensor) {
        let (out, value) = self.forward(obs);
        (self.sample_from(out, deterministic), value)
    }

    fn sample_from(&self, out: Tensor, deterministic: bool) -> Sample {
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
        self.evaluate_output(&self.policy_output(obs), action)
    }

    /// [`Self::evaluate`] and the state values, `[N]` each, in one pass.
    pub fn evaluate_and_value(&self, obs: &Tensor, action: &Tensor) -> (Tensor, Tensor, Tensor) {
        let (out, value) = self.forward(obs);
        let (log_prob, entropy) = self.evaluate_output(&out, action);
        (log_prob, entropy, value)
    }

    fn evaluate_output(&self, out: &Tensor, action: &Tensor) -> (Tensor, Tensor) {
        let out = out.shallow_clone();
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
    use keel_envs::space::{BoxSpace, DType, Discrete};
    use tch::Device;

    #[test]
    fn gaussian_log_prob_and_entropy_match_closed_forms() {
        crate::threads::configure();
        let vs = nn::VarStore::new(Device::Cpu);
        let act = Space::Box(BoxSpace::symmetric(&[2.0; 2]));
        let ac = ActorCritic::new(&vs.root(), 3, &act, &[8], 0.0).unwrap_or_else(|e| panic!("{e}"));
        let x = Tensor::zeros([1, 3], (Kind::Float, Device::Cpu));
        let mean = ac.policy_output(&x);
        let a = &mean + 1.0; // one std away in each of 2 dims (std = 1)
        let (lp, ent) = ac.evaluate(&x, &a);
        let want_lp = 2.0 * (-0.5 - 0.5 * (2.0 * std::f64::consts::PI).ln());
        let want_ent = 2.0 * (0.5 + 0.5 * (2.0 * std::f64::consts::PI).ln());
        assert!((lp.double_value(&[0]) - want_lp).abs() < 1e-5);
        assert!((ent.double_value(&[0]) - want_ent).abs() < 1e-5);
    }

    fn frames(shape: &[usize]) -> Space {
        let n: usize = shape.iter().product();
        let b = BoxSpace { low: vec![0.0; n], high: vec![255.0; n], shape: shape.to_vec(), dtype: DType::Uint8 };
        Space::Box(b)
    }

    #[test]
    fn nature_cnn_gives_one_logit_row_and_one_value_per_frame_stack() {
        crate::threads::configure();
        let vs = nn::VarStore::new(Device::Cpu);
        let act = Space::Discrete(Discrete { n: 4, start: 0 });
        let ac =
            ActorCritic::nature_cnn(&vs.root(), &frames(&[4, 84, 84]), &act, 0.0).unwrap_or_else(|e| panic!("{e}"));
        // Bytes as the envs give them, [N, 4*84*84].
        let x = Tensor::randint(256, [5, 4 * 84 * 84], (Kind::Uint8, Device::Cpu));
        let (logits, value) = ac.forward(&x);
        assert_eq!((logits.size(), value.size()), (vec![5, 4], vec![5]));
        let (sample, value2) = ac.sample_and_value(&x, false);
        assert_eq!((sample.action.size(), sample.log_prob.size()), (vec![5], vec![5]));
        assert!(value.equal(&value2) && value.equal(&ac.value(&x)));
        let (lp, ent, v) = ac.evaluate_and_value(&x, &sample.action);
        assert_eq!((lp.size(), ent.size(), v.size()), (vec![5], vec![5], vec![5]));
        // CleanRL's Agent: 3 convs, a 3136 -> 512 dense layer, heads of 512 -> 4 and 512 -> 1.
        let count: i64 = vs.trainable_variables().iter().map(|t| t.numel() as i64).sum();
        let want =
            (4 * 32 * 64 + 32) + (32 * 64 * 16 + 64) + (64 * 64 * 9 + 64) + (3136 * 512 + 512) + (512 * 4 + 4) + 513;
        assert_eq!(count, want);
        // Pixels are scaled by 1/255: a frame of bytes 255 is the layers applied to ones.
        let vars = vs.variables();
        let var = |name: &str| vars.get(name).map(Tensor::shallow_clone).unwrap_or_else(|| panic!("{name}"));
        let mut y = Tensor::ones([1, 4, 84, 84], (Kind::Float, Device::Cpu));
        for (name, stride) in [("torso.conv32_8", 4), ("torso.conv64_4", 2), ("torso.conv64_3", 1)] {
            let (w, b) = (var(&format!("{name}.weight")), var(&format!("{name}.bias")));
            y = y.conv2d(&w, Some(&b), [stride, stride], [0, 0], [1, 1], 1).relu();
        }
        let features = y.flatten(1, -1).linear(&var("torso.dense.weight"), Some(&var("torso.dense.bias"))).relu();
        let want = features.linear(&var("actor.weight"), Some(&var("actor.bias")));
        let white = Tensor::full([1, 4 * 84 * 84], 255, (Kind::Uint8, Device::Cpu));
        assert!(ac.forward(&white).0.allclose(&want, 1e-5, 1e-6, false));
        let (logits_f, _) = ac.forward(&x.to_kind(Kind::Float));
        assert!(logits.allclose(&logits_f, 1e-6, 1e-6, false));
        // Head gain 0.01: near-uniform policy at the start.
        let entropy = ent.mean(Kind::Float).double_value(&[]);
        assert!((entropy - 4f64.ln()).abs() < 1e-2, "{entropy}");
    }

    #[test]
    fn nature_cnn_conv_kernels_are_orthogonal_and_refuses_non_images() {
        crate::threads::configure();
        let vs = nn::VarStore::new(Device::Cpu);
        let act = Space::Discrete(Discrete { n: 2, start: 0 });
        assert!(ActorCritic::nature_cnn(&vs.root(), &frames(&[4, 84, 84]), &act, 0.0).is_ok());
        for (name, w) in vs.variables() {
            if w.dim() == 4 {
                // Rows (output channels) orthonormal times gain sqrt 2: W W^T = 2 I.
                let m = w.view([w.size()[0], -1]);
                let gram = m.matmul(&m.tr());
                let eye = Tensor::eye(w.size()[0], (Kind::Float, Device::Cpu)) * 2.0;
                assert!(gram.allclose(&eye, 1e-4, 1e-4, false), "{name}");
            }
        }
        let err = |space: &Space| ActorCritic::nature_cnn(&vs.root(), space, &act, 0.0).err().map(|e| e.to_string());
        assert!(err(&frames(&[4])).unwrap_or_default().contains("nature_cnn"));
        assert!(err(&frames(&[4, 20, 84])).unwrap_or_default().contains("36x36"));
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

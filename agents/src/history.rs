//! The history encoder: a 1-D CNN over the agent's past frames (SkillMimic-V2's historical
//! encoding, research notes humanoid.md §1.6), in front of PPO's actor and critic MLPs.
//!
//! The observation ends with a *history slice* of `frames` frames of `frame_dim` numbers, oldest
//! first (`keel/HumanoidTrack-v1` with `history_len`; the env's module docs give the layout). The
//! encoder reads that slice as a `frame_dim`-channel signal over `frames` time steps:
//!
//! `standardise -> Conv1d(frame_dim -> c1, k1) -> ReLU -> ... -> Conv1d(.. -> cn, kn) -> ReLU
//!  -> flatten -> Linear -> output_dim`
//!
//! (valid convolutions, stride 1), and its `output_dim` numbers replace the slice in the network
//! input: `[observation without the slice, encoding]` goes to the MLPs. One encoder is shared by
//! the actor and the critic. Orthogonal weights (gain √2, rows = output channels), zero biases.
//!
//! Two ways to train it:
//! - **with the policy** (default): its weights are trainable and get the PPO loss's gradients
//!   (policy and value), like any layer. The slice is normalised with the rest of the
//!   observation when `normalize_obs` is on; the standardisation is the identity.
//! - **pretrained and frozen** (`[history_encoder.pretrain]`): before training, on the
//!   reference clips, as SkillMimic-V2 does (a next-frame predictor; see [`pretrain`]); then
//!   its weights are fixed (not in the optimiser) and the slice reaches it *raw* (the running
//!   normaliser does not touch it, [`crate::config::RunSettings::raw_obs_tail`]): it
//!   standardises the frames itself with per-number mean and standard deviation of the clip
//!   frames, fixed at pretraining, so what it sees in training is what it learned on.
//!
//! Either way the encoder's weights and statistics are variables of the policy's `VarStore`
//! (`history.*`), saved in every checkpoint: `--resume` restores them exactly.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tch::{Device, Kind, Tensor, nn};

use keel_envs::config::FieldError;
use keel_envs::{Env, EnvSpec, ResetOptions, Space};

use crate::adam::Adam;
use crate::error::{AgentError, Result};

/// Pretraining of the history encoder on reference clips (see [`pretrain`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PretrainConfig {
    /// The clips to pretrain on (names from `keel clips`; default `["walk"]`).
    pub clips: Vec<String>,
    /// Passes over the clip frames (default 200; SkillMimic-V2: 1000).
    pub epochs: usize,
    /// Samples per Adam step (default 64).
    pub batch_size: usize,
    /// Adam learning rate (default 1e-3, SkillMimic-V2's).
    pub learning_rate: f64,
    /// Hidden widths of the next-frame predictor, ReLU (default [512, 256], SkillMimic-V2's).
    pub hidden_sizes: Vec<i64>,
}

impl Default for PretrainConfig {
    fn default() -> Self {
        Self {
            clips: vec!["walk".into()],
            epochs: 200,
            batch_size: 64,
            learning_rate: 1e-3,
            hidden_sizes: vec![512, 256],
        }
    }
}

/// The `[history_encoder]` table of a PPO config (see the module docs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HistoryEncoderConfig {
    /// Frames in the observation's history slice; must be the env's `history_len` (default 8).
    pub frames: usize,
    /// Numbers per frame; must be the env's (226 for `keel/HumanoidTrack-v1`, the default).
    pub frame_dim: usize,
    /// Output channels of each convolution (default [64, 32]; SkillMimic-V2: [128, 64, 32]).
    pub channels: Vec<i64>,
    /// Kernel size of each convolution, one per entry of `channels` (default [3, 3]). The
    /// frames left after them, `frames - Σ(k - 1)`, must be at least 1.
    pub kernel_sizes: Vec<i64>,
    /// Numbers the encoder gives the MLPs in place of the slice (default 16; SkillMimic-V2: 3).
    pub output_dim: i64,
    /// Pretrain on clips, then freeze (default: none, trained with the policy).
    pub pretrain: Option<PretrainConfig>,
}

impl Default for HistoryEncoderConfig {
    fn default() -> Self {
        Self {
            frames: 8,
            frame_dim: 226,
            channels: vec![64, 32],
            kernel_sizes: vec![3, 3],
            output_dim: 16,
            pretrain: None,
        }
    }
}

impl HistoryEncoderConfig {
    /// Numbers of the history slice: `frames · frame_dim`.
    pub fn slice_len(&self) -> usize {
        self.frames * self.frame_dim
    }

    /// Frames left after the convolutions.
    fn conv_frames(&self) -> i64 {
        self.frames as i64 - self.kernel_sizes.iter().map(|k| k - 1).sum::<i64>()
    }

    /// Checks the table; errors name the field as `history_encoder.<field>`.
    pub fn validate(&self) -> Result<(), FieldError> {
        let bad = |field: &'static str, message: String| Err(FieldError::new(field, message));
        if !(1..=600).contains(&self.frames) {
            return bad("history_encoder.frames", format!("must be in 1..=600, got {}", self.frames));
        }
        if !(1..=100_000).contains(&self.frame_dim) {
            return bad("history_encoder.frame_dim", format!("must be in 1..=100000, got {}", self.frame_dim));
        }
        if self.channels.is_empty() || self.channels.iter().any(|c| !(1..=4096).contains(c)) {
            return bad(
                "history_encoder.channels",
                format!("must be 1 or more widths in 1..=4096, got {:?}", self.channels),
            );
        }
        if self.kernel_sizes.len() != self.channels.len() {
            return bad(
                "history_encoder.kernel_sizes",
                format!(
                    "must give one kernel size per entry of channels ({}), got {:?}",
                    self.channels.len(),
                    self.kernel_sizes
                ),
            );
        }
        if self.kernel_sizes.iter().any(|&k| k < 1) || self.conv_frames() < 1 {
            return bad(
                "history_encoder.kernel_sizes",
                format!(
                    "each must be at least 1 and leave at least one of the {} frames (frames - Σ(k - 1) ≥ 1), got {:?}",
                    self.frames, self.kernel_sizes
                ),
            );
        }
        if !(1..=4096).contains(&self.output_dim) {
            return bad("history_encoder.output_dim", format!("must be in 1..=4096, got {}", self.output_dim));
        }
        if let Some(p) = &self.pretrain {
            if p.clips.is_empty() {
                return bad("history_encoder.pretrain.clips", "must name at least one clip".into());
            }
            if !(1..=100_000).contains(&p.epochs) {
                return bad("history_encoder.pretrain.epochs", format!("must be in 1..=100000, got {}", p.epochs));
            }
            if p.batch_size < 1 {
                return bad("history_encoder.pretrain.batch_size", "must be at least 1".into());
            }
            if !(p.learning_rate.is_finite() && p.learning_rate > 0.0 && p.learning_rate <= 1.0) {
                return bad(
                    "history_encoder.pretrain.learning_rate",
                    format!("must be in (0, 1], got {}", p.learning_rate),
                );
            }
            if p.hidden_sizes.iter().any(|h| !(1..=8192).contains(h)) {
                return bad(
                    "history_encoder.pretrain.hidden_sizes",
                    format!("widths must be in 1..=8192, got {:?}", p.hidden_sizes),
                );
            }
        }
        Ok(())
    }

    /// Checks the table against the env the run trains on: a flat observation that ends with
    /// a history slice of `frames` frames of `frame_dim` numbers, and the env's own
    /// `history_len` (its config key) equal to `frames`. The errors say what to set.
    pub fn check_env(&self, env_id: &str, env_config: &Map<String, Value>, spec: &EnvSpec) -> Result<()> {
        let invalid = |field: &str, why: String| {
            Err(AgentError::Config(format!("training config: invalid `history_encoder.{field}`: {why}")))
        };
        let width = match &spec.observation_space {
            Space::Box(b) if b.shape.len() == 1 => b.len(),
            other => {
                return Err(AgentError::Config(format!(
                    "training config: `history_encoder` needs flat (1-D Box) observations, {env_id} has {}",
                    other.describe()
                )));
            }
        };
        let registration = keel_envs::registry::lookup(env_id)?;
        if registration.default_config().get("history_len").is_none() {
            return Err(AgentError::Config(format!(
                "training config: `history_encoder` needs a history observation, and {env_id} has no `history_len` \
                 option (keel/HumanoidTrack-v1 has)"
            )));
        }
        let history_len = env_config.get("history_len").and_then(Value::as_u64).unwrap_or(0) as usize;
        if history_len == 0 {
            return Err(AgentError::Config(format!(
                "training config: `history_encoder` needs the env's history observation: set env_config.history_len = \
                 {} (the encoder's frames)",
                self.frames
            )));
        }
        if history_len != self.frames {
            return invalid(
                "frames",
                format!("{} frames, but env_config.history_len = {history_len}; make them equal", self.frames),
            );
        }
        // The env's frame size: what its observation grows by per history frame.
        let mut without = env_config.clone();
        without.insert("history_len".into(), 0.into());
        let base = registration.spec_for(&without)?.obs_len();
        let env_frame = width.saturating_sub(base) / history_len;
        if env_frame != self.frame_dim || base + history_len * env_frame != width {
            return invalid(
                "frame_dim",
                format!("{} numbers per frame, but {env_id}'s history frames hold {env_frame}", self.frame_dim),
            );
        }
        Ok(())
    }
}

/// Orthogonal init of a `[out, in·k]` matrix, gain √2, shaped as a kernel `[out, in, k]`.
fn orthogonal_kernel(out: i64, input: i64, k: i64, device: Device) -> Tensor {
    nn::init(nn::Init::Orthogonal { gain: 2f64.sqrt() }, &[out, input * k], device).view([out, input, k])
}

/// The 1-D CNN (see the module docs).
#[derive(Debug)]
pub struct HistoryEncoder {
    /// `(weight [out, in, k], bias [out])` per convolution.
    convs: Vec<(Tensor, Tensor)>,
    dense: (Tensor, Tensor),
    /// Standardisation of each frame number: `(x - mean) · inv_std`, `[frame_dim]` each.
    mean: Tensor,
    inv_std: Tensor,
    frames: i64,
    frame_dim: i64,
}

impl HistoryEncoder {
    /// An encoder under `path` (variables `conv<k>.weight`, `conv<k>.bias`, `dense.*`, `mean`,
    /// `inv_std`); trainable or fixed. Fixed variables are kept out of the optimiser but saved
    /// with the rest.
    pub fn new(path: &nn::Path, config: &HistoryEncoderConfig, trainable: bool) -> Self {
        let device = path.device();
        // `<sub>.<name>` (tch names variables by path, one level per dot).
        let var = |full: &str, init: Tensor| -> Tensor {
            let (sub, name) = full.split_once('.').unwrap_or(("", full));
            let path = if sub.is_empty() { path.clone() } else { path / sub };
            if trainable {
                path.var_copy(name, &init)
            } else {
                let v = path.zeros_no_train(name, &init.size());
                tch::no_grad(|| v.shallow_clone().copy_(&init));
                v
            }
        };
        let mut input = config.frame_dim as i64;
        let mut convs = Vec::new();
        for (k, (&out, &size)) in config.channels.iter().zip(&config.kernel_sizes).enumerate() {
            let w = var(&format!("conv{k}.weight"), orthogonal_kernel(out, input, size, device));
            let b = var(&format!("conv{k}.bias"), Tensor::zeros([out], (Kind::Float, device)));
            convs.push((w, b));
            input = out;
        }
        let flat = input * config.conv_frames();
        let dense_w = nn::init(nn::Init::Orthogonal { gain: 2f64.sqrt() }, &[config.output_dim, flat], device);
        let dense = (
            var("dense.weight", dense_w),
            var("dense.bias", Tensor::zeros([config.output_dim], (Kind::Float, device))),
        );
        // Statistics are never trained: set by pretraining, the identity otherwise.
        let mean = path.zeros_no_train("mean", &[config.frame_dim as i64]);
        let inv_std = path.zeros_no_train("inv_std", &[config.frame_dim as i64]);
        tch::no_grad(|| {
            let _ = inv_std.shallow_clone().fill_(1.0);
        });
        Self { convs, dense, mean, inv_std, frames: config.frames as i64, frame_dim: config.frame_dim as i64 }
    }

    /// Every variable with its name under the encoder's path, for copying pretrained weights.
    fn named(&self) -> Vec<(String, &Tensor)> {
        let mut out = Vec::new();
        for (k, (w, b)) in self.convs.iter().enumerate() {
            out.push((format!("conv{k}.weight"), w));
            out.push((format!("conv{k}.bias"), b));
        }
        out.push(("dense.weight".into(), &self.dense.0));
        out.push(("dense.bias".into(), &self.dense.1));
        out.push(("mean".into(), &self.mean));
        out.push(("inv_std".into(), &self.inv_std));
        out
    }

    /// Copies every variable of `other` (same config) into this encoder.
    pub fn copy_from(&self, other: &HistoryEncoder) {
        tch::no_grad(|| {
            for ((_, mine), (_, theirs)) in self.named().into_iter().zip(other.named()) {
                mine.shallow_clone().copy_(theirs);
            }
        });
    }

    /// Numbers of the history slice.
    pub fn slice_len(&self) -> i64 {
        self.frames * self.frame_dim
    }

    /// The encoding `[N, output_dim]` of history slices `[N, frames · frame_dim]`.
    pub fn encode(&self, history: &Tensor) -> Tensor {
        let x = history.view([-1, self.frames, self.frame_dim]);
        // Frames as time, frame numbers as channels: [N, frame_dim, frames].
        let mut x = ((x - &self.mean) * &self.inv_std).transpose(1, 2);
        for (w, b) in &self.convs {
            x = x.conv1d(w, Some(b), [1], [0], [1], 1).relu();
        }
        x.flatten(1, -1).linear(&self.dense.0, Some(&self.dense.1))
    }

    /// The network input of observations `[N, width]`: the observation without its trailing
    /// history slice, then the slice's encoding: `[N, width - slice + output_dim]`.
    pub fn input(&self, obs: &Tensor) -> Tensor {
        let width = *obs.size().last().unwrap_or(&0);
        let rest = width - self.slice_len();
        let encoding = self.encode(&obs.narrow(-1, rest, self.slice_len()));
        Tensor::cat(&[obs.narrow(-1, 0, rest), encoding], -1)
    }
}

/// What [`pretrain`] measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PretrainReport {
    /// Training samples (history, current frame, next frame).
    pub samples: usize,
    /// Mean squared error of the standardised next frame predicted as the current one (the
    /// baseline a useless encoder and predictor would beat barely).
    pub copy_loss: f64,
    /// Mean squared error of the predictor before pretraining, over every sample.
    pub initial_loss: f64,
    /// The same after pretraining.
    pub final_loss: f64,
}

/// The history window of frame `k` of a clip of `frames`: the frames `(len - j)·stride` steps
/// back, oldest first, the clip's first frame before its start (as the env pads at a reset).
fn window(frames: &[Vec<f32>], k: usize, len: usize, stride: usize, out: &mut Vec<f32>) {
    for j in 0..len {
        out.extend_from_slice(&frames[k.saturating_sub((len - j) * stride)]);
    }
}

/// Pretrains an encoder of `config` (trainable, in its own `VarStore`) on clip frame sequences
/// `clips` (each a list of frames of `frame_dim` numbers, one per policy step), with history
/// frames `stride` steps apart, and returns it with what was measured.
///
/// The objective is SkillMimic-V2's (`ComprehensiveModel` in `state_prediction_ballplay.py`,
/// humanoid.md §1.6): an MLP (`pretrain.hidden_sizes`, ReLU) predicts the **next frame** from
/// the history encoding and the **current frame**, mean squared error, Adam; frames are
/// standardised with their per-number mean and standard deviation over all clip frames (floored
/// at 1e-2 so constant numbers stay 0), and the encoder keeps those statistics. The skill
/// one-hot of the original is left out (the clips are the policy's own; there is no skill
/// label in the observation). Minibatches are drawn by libtorch's generator (seed it first).
pub fn pretrain(
    config: &HistoryEncoderConfig,
    clips: &[Vec<Vec<f32>>],
    stride: usize,
    device: Device,
) -> Result<(nn::VarStore, HistoryEncoder, PretrainReport)> {
    let p = config.pretrain.clone().unwrap_or_default();
    let d = config.frame_dim;
    let (mut hist, mut current, mut next) = (Vec::new(), Vec::new(), Vec::new());
    let mut all = Vec::new();
    for frames in clips {
        if let Some(f) = frames.iter().find(|f| f.len() != d) {
            return Err(AgentError::Config(format!(
                "history encoder pretraining: a clip frame holds {} numbers, history_encoder.frame_dim is {d}",
                f.len()
            )));
        }
        for f in frames {
            all.extend_from_slice(f);
        }
        for k in 0..frames.len().saturating_sub(1) {
            window(frames, k, config.frames, stride, &mut hist);
            current.extend_from_slice(&frames[k]);
            next.extend_from_slice(&frames[k + 1]);
        }
    }
    let n = (current.len() / d.max(1)) as i64;
    if n < 1 {
        return Err(AgentError::Config(
            "history encoder pretraining: the clips give no (frame, next frame) pair; name longer clips".into(),
        ));
    }
    let to = |v: &[f32], cols: usize| Tensor::from_slice(v).view([-1, cols as i64]).to_device(device);
    let all = to(&all, d);
    let mean = all.mean_dim(0, false, Kind::Float);
    let inv_std = all.std_dim(0, false, false).clamp_min(1e-2).reciprocal();
    let standard = |t: &Tensor| (t - &mean) * &inv_std;
    let (hist, current, next) = (to(&hist, config.slice_len()), standard(&to(&current, d)), standard(&to(&next, d)));

    let vs = nn::VarStore::new(device);
    let root = vs.root();
    let encoder = HistoryEncoder::new(&(&root / "history"), config, true);
    tch::no_grad(|| {
        encoder.mean.shallow_clone().copy_(&mean);
        encoder.inv_std.shallow_clone().copy_(&inv_std);
    });
    let mut layers = Vec::new();
    let mut width = config.output_dim + d as i64;
    let widths: Vec<i64> = p.hidden_sizes.iter().copied().chain([d as i64]).collect();
    for (k, &h) in widths.iter().enumerate() {
        let init = nn::LinearConfig { bs_init: Some(nn::Init::Const(0.0)), ..Default::default() };
        layers.push(nn::linear(&root / "predictor" / format!("l{k}"), width, h, init));
        width = h;
    }
    let predict = |hist: &Tensor, current: &Tensor| {
        let mut x = Tensor::cat(&[encoder.encode(hist), current.shallow_clone()], -1);
        for (k, layer) in layers.iter().enumerate() {
            x = x.linear(&layer.ws, layer.bs.as_ref());
            if k + 1 < layers.len() {
                x = x.relu();
            }
        }
        x
    };
    let loss_all = || tch::no_grad(|| (predict(&hist, &current) - &next).square().mean(Kind::Float).double_value(&[]));
    let copy_loss = tch::no_grad(|| (&current - &next).square().mean(Kind::Float).double_value(&[]));
    let initial_loss = loss_all();
    let mut adam = Adam::over("history_pretrain", vs.trainable_variables(), 1e-8);
    let batch = (p.batch_size as i64).min(n);
    for epoch in 0..p.epochs {
        let perm = Tensor::randperm(n, (Kind::Int64, device));
        for start in (0..n).step_by(batch as usize) {
            let idx = perm.narrow(0, start, batch.min(n - start));
            let loss = (predict(&hist.index_select(0, &idx), &current.index_select(0, &idx))
                - next.index_select(0, &idx))
            .square()
            .mean(Kind::Float);
            let value = loss.double_value(&[]);
            if !value.is_finite() {
                return Err(AgentError::Config(format!(
                    "history encoder pretraining diverged (loss {value} in epoch {epoch}); lower \
                     history_encoder.pretrain.learning_rate"
                )));
            }
            adam.zero_grad();
            loss.backward();
            adam.step(p.learning_rate);
        }
    }
    let final_loss = loss_all();
    let report = PretrainReport { samples: n as usize, copy_loss, initial_loss, final_loss };
    Ok((vs, encoder, report))
}

/// The frames of each clip as the env shows them when the humanoid is exactly on the reference:
/// for every policy step of the clip, the first `frame_dim` numbers (the frame the history
/// remembers) of the observation after a reset to that clip time, without noise. Reads the
/// clips through `keel/HumanoidTrack-v1`'s reset parameters `clip` and `start_time`; the clip
/// durations come from the same data folder (`env_config.data_dir`).
pub fn clip_frames(
    env_id: &str,
    env_config: &Map<String, Value>,
    clips: &[String],
    frame_dim: usize,
) -> Result<Vec<Vec<Vec<f32>>>> {
    let mut env: Box<dyn Env> = keel_envs::make(env_id, env_config)?;
    let data = match env_config.get("data_dir").and_then(Value::as_str) {
        Some(dir) => keel_physics::DataDir::at(dir),
        None => keel_physics::DataDir::locate(),
    }
    .map_err(|e| AgentError::Config(format!("history encoder pretraining: {e}")))?;
    let model = keel_physics::HumanoidModel::load(&data)
        .map(std::sync::Arc::new)
        .map_err(|e| AgentError::Config(format!("history encoder pretraining: {e}")))?;
    let library = keel_physics::ClipLibrary::load(&data, &model)
        .map_err(|e| AgentError::Config(format!("history encoder pretraining: {e}")))?;
    let dt = 1.0 / env_config.get("control_hz").and_then(Value::as_f64).unwrap_or(30.0);
    let mut obs = env.spec().obs_buffer(1);
    let mut out = Vec::new();
    for name in clips {
        let clip = library.get(name).map_err(|e| {
            AgentError::Config(format!("training config: invalid `history_encoder.pretrain.clips`: {e}"))
        })?;
        // The start times the env itself draws from: the whole clip if it loops, else up to one
        // step before its end.
        let span = if clip.looping() { clip.duration() } else { (clip.duration() - dt).max(0.0) };
        let steps = (span / dt + 1e-9).floor() as usize + 1;
        let mut frames = Vec::with_capacity(steps);
        for k in 0..steps {
            let mut options = ResetOptions::default();
            options.params.insert("clip".into(), name.clone().into());
            options.params.insert("start_time".into(), json!(k as f64 * dt));
            options.params.insert("perturbation".into(), json!({}));
            options.params.insert("pose_noise".into(), json!(0.0));
            options.params.insert("velocity_noise".into(), json!(0.0));
            env.reset(Some(0), &options, obs.as_mut())?;
            let row =
                obs.as_f32().ok_or_else(|| AgentError::Config(format!("{env_id}: observations are not float32")))?;
            frames.push(row[..frame_dim.min(row.len())].to_vec());
        }
        out.push(frames);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(frames: usize, frame_dim: usize) -> HistoryEncoderConfig {
        HistoryEncoderConfig {
            frames,
            frame_dim,
            channels: vec![8, 4],
            kernel_sizes: vec![3, 2],
            output_dim: 3,
            pretrain: None,
        }
    }

    #[test]
    fn the_encoder_reads_only_the_trailing_slice_and_replaces_it() {
        crate::threads::configure();
        let vs = nn::VarStore::new(Device::Cpu);
        let c = config(5, 4);
        let enc = HistoryEncoder::new(&vs.root(), &c, true);
        let obs = Tensor::randn([6, 7 + 20], (Kind::Float, Device::Cpu));
        let input = enc.input(&obs);
        assert_eq!(input.size(), [6, 7 + 3]);
        assert!(input.narrow(1, 0, 7).equal(&obs.narrow(1, 0, 7)));
        // Changing the rest of the observation leaves the encoding alone; changing an old frame
        // moves it.
        let other = obs.copy();
        let _ = other.narrow(1, 0, 7).fill_(9.0);
        assert!(enc.input(&other).narrow(1, 7, 3).equal(&input.narrow(1, 7, 3)));
        let _ = other.narrow(1, 7, 4).fill_(9.0);
        assert!(!enc.input(&other).narrow(1, 7, 3).allclose(&input.narrow(1, 7, 3), 1e-6, 1e-6, false));
        // Shapes: conv kernels [8, 4, 3] then [4, 8, 2], 5 - 2 - 1 = 2 frames left, dense 8 -> 3.
        let sizes: Vec<Vec<i64>> = enc.convs.iter().map(|(w, _)| w.size()).collect();
        assert_eq!(sizes, [vec![8, 4, 3], vec![4, 8, 2]]);
        assert_eq!(enc.dense.0.size(), [3, 8]);
        // A fixed encoder's variables are saved but not trained.
        let fixed = nn::VarStore::new(Device::Cpu);
        let _ = HistoryEncoder::new(&fixed.root(), &c, false);
        assert!(fixed.trainable_variables().is_empty());
        assert_eq!(fixed.variables().len(), vs.variables().len());
    }

    #[test]
    fn bad_tables_name_the_field() {
        let field = |c: HistoryEncoderConfig| c.validate().err().map(|e| e.field.to_string()).unwrap_or_default();
        assert_eq!(field(HistoryEncoderConfig { frames: 0, ..config(4, 2) }), "history_encoder.frames");
        assert_eq!(
            field(HistoryEncoderConfig { kernel_sizes: vec![3], ..config(4, 2) }),
            "history_encoder.kernel_sizes"
        );
        // 4 frames, kernels 3 and 3 leave 0.
        assert_eq!(
            field(HistoryEncoderConfig { kernel_sizes: vec![3, 3], ..config(4, 2) }),
            "history_encoder.kernel_sizes"
        );
        assert_eq!(field(HistoryEncoderConfig { output_dim: 0, ..config(4, 2) }), "history_encoder.output_dim");
        let p = PretrainConfig { learning_rate: -1.0, ..PretrainConfig::default() };
        assert_eq!(
            field(HistoryEncoderConfig { pretrain: Some(p), ..config(4, 2) }),
            "history_encoder.pretrain.learning_rate"
        );
        assert_eq!(field(config(4, 2)), "");
    }

    #[test]
    fn windows_pad_with_the_first_frame_as_the_env_does() {
        let frames: Vec<Vec<f32>> = (0..6).map(|k| vec![k as f32]).collect();
        let mut out = Vec::new();
        window(&frames, 5, 3, 2, &mut out);
        assert_eq!(out, [0.0, 1.0, 3.0]);
        out.clear();
        window(&frames, 1, 2, 1, &mut out);
        assert_eq!(out, [0.0, 0.0]);
    }

    /// Pretraining on sequences whose next frame depends on the past (a damped oscillator seen
    /// only through its position: the current frame alone cannot tell the velocity) learns the
    /// next frame far better than copying the current one, and than before pretraining.
    #[test]
    fn pretraining_learns_the_next_frame_from_the_history() {
        crate::threads::configure();
        let _generator = crate::threads::torch_generator();
        tch::manual_seed(3);
        let clips: Vec<Vec<Vec<f32>>> = (0..4)
            .map(|c| {
                let (w, phase) = (0.3 + 0.1 * c as f32, c as f32);
                (0..60)
                    .map(|t| {
                        let x = (w * t as f32 + phase).sin();
                        vec![x, 0.5 * x * x, 1.0]
                    })
                    .collect()
            })
            .collect();
        let mut c = config(4, 3);
        c.pretrain =
            Some(PretrainConfig { epochs: 150, batch_size: 32, hidden_sizes: vec![32], ..PretrainConfig::default() });
        let (vs, encoder, report) = pretrain(&c, &clips, 1, Device::Cpu).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(report.samples, 4 * 59);
        assert!(report.final_loss < 0.25 * report.copy_loss, "{report:?}");
        assert!(report.final_loss < 0.05 * report.initial_loss, "{report:?}");
        // The constant third number has standard deviation 0: floored, it stays 0 after
        // standardisation instead of blowing up.
        let inv_std = Vec::<f32>::try_from(&encoder.inv_std).unwrap_or_default();
        assert_eq!(inv_std[2], 100.0);
        // Copied into a fixed encoder: the same encoding, and nothing to train.
        let fixed_vs = nn::VarStore::new(Device::Cpu);
        let fixed = HistoryEncoder::new(&fixed_vs.root(), &c, false);
        fixed.copy_from(&encoder);
        let x = Tensor::randn([5, 12], (Kind::Float, Device::Cpu));
        assert!(fixed.encode(&x).equal(&encoder.encode(&x)));
        assert!(fixed_vs.trainable_variables().is_empty());
        drop(vs);
        // Frames of the wrong size are refused, naming frame_dim.
        let err = pretrain(&config(4, 2), &clips, 1, Device::Cpu).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("frame_dim"), "{err}");
    }
}

//! Running statistics and the observation / reward normalisers of CleanRL's continuous PPO
//! (Gymnasium's `NormalizeObservation` and `NormalizeReward`), saved with checkpoints.
//!
//! One difference from CleanRL: the statistics are shared by all envs of the vector (as SB3's
//! `VecNormalize`), not kept per env; with several envs they converge faster and a single set
//! is what an evaluation needs.

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use keel_envs::ObsRef;

/// Mean and variance of a stream of vectors (Chan et al.'s parallel update), initialised as
/// Gymnasium does: mean 0, variance 1, count 1e-4.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunningMeanStd {
    /// Per-dimension mean.
    pub mean: Vec<f64>,
    /// Per-dimension (population) variance.
    pub var: Vec<f64>,
    /// Number of samples seen (plus the initial 1e-4).
    pub count: f64,
}

impl RunningMeanStd {
    /// Statistics of `dim`-dimensional samples.
    pub fn new(dim: usize) -> Self {
        Self { mean: vec![0.0; dim], var: vec![1.0; dim], count: 1e-4 }
    }

    /// Statistics with no prior: the first batch sets them (count 0, mean 0, variance 0).
    pub fn empty(dim: usize) -> Self {
        Self { mean: vec![0.0; dim], var: vec![0.0; dim], count: 0.0 }
    }

    /// Merges a batch of `rows` samples laid out row by row.
    pub fn update(&mut self, batch: &[f64], rows: usize) {
        self.update_weighted(batch, rows, 1.0);
    }

    /// Merges a batch of `rows` samples laid out row by row, each counted `weight` times (the
    /// same statistics as the batch repeated `weight` times, for whole weights).
    pub fn update_weighted(&mut self, batch: &[f64], rows: usize, weight: f64) {
        if rows == 0 || weight <= 0.0 {
            return;
        }
        let dim = self.mean.len();
        let n = rows as f64 * weight;
        for k in 0..dim {
            let column = (0..rows).map(|r| batch[r * dim + k]);
            let batch_mean = column.clone().sum::<f64>() / rows as f64;
            let batch_var = column.map(|x| (x - batch_mean).powi(2)).sum::<f64>() / rows as f64;
            let delta = batch_mean - self.mean[k];
            let total = self.count + n;
            let m2 = self.var[k] * self.count + batch_var * n + delta * delta * self.count * n / total;
            self.mean[k] += delta * n / total;
            self.var[k] = m2 / total;
        }
        self.count += n;
    }
}

/// Scales rewards by the running standard deviation of the discounted return (not centred), as
/// Gymnasium's `NormalizeReward`, then clips.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RewardNormalizer {
    /// Statistics of the discounted returns.
    pub stats: RunningMeanStd,
    /// Per-env discounted return so far.
    pub returns: Vec<f64>,
    gamma: f64,
    clip: f64,
}

impl RewardNormalizer {
    /// A normaliser for `num_envs` envs.
    pub fn new(num_envs: usize, gamma: f64, clip: f64) -> Self {
        Self { stats: RunningMeanStd::new(1), returns: vec![0.0; num_envs], gamma, clip }
    }

    /// Normalises one step's rewards in place; `terminated` resets the accumulated return.
    pub fn apply(&mut self, rewards: &mut [f64], terminated: &[bool]) {
        for (g, (&r, &t)) in self.returns.iter_mut().zip(rewards.iter().zip(terminated)) {
            *g = *g * self.gamma * if t { 0.0 } else { 1.0 } + r;
        }
        // Gymnasium's wrapper accumulates before resetting; match its order: G = G*γ*(1-term) + r.
        self.stats.update(&self.returns, self.returns.len());
        let scale = (self.stats.var[0] + 1e-8).sqrt();
        for r in rewards.iter_mut() {
            *r = (*r / scale).clamp(-self.clip, self.clip);
        }
    }
}

/// Normalises observations with running statistics, updated with each new batch first (as
/// Gymnasium's `NormalizeObservation`), then clips.
///
/// The statistics live on the host in float64; [`ObsNormalizer::apply`] normalises a tensor of
/// observations of any element type on its own device, in float64, and returns float32: the
/// same numbers, bit for bit, as computing `((x - mean) / sqrt(var + 1e-8)).clamp(-clip, clip)`
/// in float64 on the host.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ObsNormalizer {
    /// Statistics of the raw observations.
    pub stats: RunningMeanStd,
    clip: f64,
}

impl ObsNormalizer {
    /// A normaliser of `dim`-dimensional observations clipped to `[-clip, clip]`.
    pub fn new(dim: usize, clip: f64) -> Self {
        Self { stats: RunningMeanStd::new(dim), clip }
    }

    /// Merges rows of raw observations (any element type) into the statistics.
    pub fn update(&mut self, obs: ObsRef<'_>) {
        let dim = self.stats.mean.len().max(1);
        self.stats.update(&obs.to_f64_vec(), obs.len() / dim);
    }

    /// Normalised observations, float32, `[..., dim]` like `obs` (any element type, any device).
    pub fn apply(&self, obs: &Tensor) -> Tensor {
        let options = (Kind::Double, obs.device());
        let mean = Tensor::from_slice(&self.stats.mean).to_device(options.1);
        let scale: Vec<f64> = self.stats.var.iter().map(|v| (v + 1e-8).sqrt()).collect();
        let scale = Tensor::from_slice(&scale).to_device(options.1);
        ((obs.to_kind(options.0) - mean) / scale).clamp(-self.clip, self.clip).to_kind(Kind::Float)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_stats_match_the_batch_statistics() {
        let data: Vec<f64> = (0..100).map(|i| (i as f64 * 0.37).sin() * 3.0 + 1.0).collect();
        let mut rms = RunningMeanStd::new(1);
        for chunk in data.chunks(7) {
            rms.update(chunk, chunk.len());
        }
        let mean = data.iter().sum::<f64>() / 100.0;
        let var = data.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 100.0;
        // The 1e-4 prior count shifts the estimates by about 1e-6.
        assert!((rms.mean[0] - mean).abs() < 1e-4 && (rms.var[0] - var).abs() < 1e-3, "{rms:?} vs {mean} {var}");
    }

    /// The device path gives exactly the host formula's float32 values, for every element type.
    #[test]
    fn observations_normalise_as_the_host_formula_bit_for_bit() {
        crate::threads::configure();
        let mut norm = ObsNormalizer::new(3, 2.5);
        let rows: Vec<f64> = (0..30).map(|i| (i as f64 * 0.7).sin() * 4.0 + 0.3 * i as f64).collect();
        norm.update(ObsRef::F64(&rows));
        let host =
            |x: f64, k: usize| ((x - norm.stats.mean[k]) / (norm.stats.var[k] + 1e-8).sqrt()).clamp(-2.5, 2.5) as f32;
        let want: Vec<f32> = rows.iter().enumerate().map(|(i, &x)| host(x, i % 3)).collect();
        let got = Vec::<f32>::try_from(&norm.apply(&Tensor::from_slice(&rows).view([10, 3])).flatten(0, -1));
        assert_eq!(got.ok(), Some(want));
        let floats: Vec<f32> = rows.iter().map(|&x| x as f32).collect();
        let want: Vec<f32> = floats.iter().enumerate().map(|(i, &x)| host(f64::from(x), i % 3)).collect();
        let got = Vec::<f32>::try_from(&norm.apply(&Tensor::from_slice(&floats).view([10, 3])).flatten(0, -1));
        assert_eq!(got.ok(), Some(want));
        let bytes: Vec<u8> = (0..30).map(|i| (i * 8) as u8).collect();
        let want: Vec<f32> = bytes.iter().enumerate().map(|(i, &x)| host(f64::from(x), i % 3)).collect();
        let got = Vec::<f32>::try_from(&norm.apply(&Tensor::from_slice(&bytes).view([10, 3])).flatten(0, -1));
        assert_eq!(got.ok(), Some(want));
    }

    #[test]
    fn reward_scale_uses_discounted_returns() {
        let mut norm = RewardNormalizer::new(1, 0.5, 10.0);
        let mut r = [2.0];
        norm.apply(&mut r, &[false]);
        // G = 2; stats after one sample: mean ≈ 2, var ≈ (prior 1e-4 weight) ≈ 4e-4
        assert!(r[0] > 2.0 && r[0] <= 10.0, "{r:?}");
    }
}

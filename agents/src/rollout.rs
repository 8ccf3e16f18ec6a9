//! On-policy rollout storage: what `num_steps` steps of `num_envs` envs produced, laid out
//! `[num_steps, num_envs, ...]` on the training device (CleanRL's storage tensors).
//!
//! Per-step tensors (observations in stored form, actions, log-probabilities, values) stay on the
//! device and are stacked once at the end; per-step host values (rewards, episode starts) are
//! gathered on the host and uploaded once, so a rollout costs one libtorch call per field, not
//! one per step.

use tch::{Device, Tensor};

/// A rollout being collected.
pub struct Rollout {
    num_envs: usize,
    obs: Vec<Tensor>,
    actions: Vec<Tensor>,
    log_probs: Vec<Tensor>,
    values: Vec<Tensor>,
    rewards: Vec<f32>,
    starts: Vec<f32>,
}

/// A collected rollout, every field `[T, N, ...]` on the device.
pub struct RolloutBatch {
    /// Observations in stored form (see `encode`), `[T, N, width]`.
    pub obs: Tensor,
    /// Actions as the policy sampled them, `[T, N]` or `[T, N, dim]`.
    pub actions: Tensor,
    /// Their log-probabilities, `[T, N]`.
    pub log_probs: Tensor,
    /// Rewards (after any shaping the algorithm applied), `[T, N]`, float32.
    pub rewards: Tensor,
    /// 1 where `obs[t]` begins a new episode, `[T, N]`, float32.
    pub starts: Tensor,
    /// Value estimates of `obs[t]`, `[T, N]`.
    pub values: Tensor,
}

impl Rollout {
    /// An empty rollout of `num_steps` steps of `num_envs` envs.
    pub fn new(num_steps: usize, num_envs: usize) -> Self {
        Self {
            num_envs,
            obs: Vec::with_capacity(num_steps),
            actions: Vec::with_capacity(num_steps),
            log_probs: Vec::with_capacity(num_steps),
            values: Vec::with_capacity(num_steps),
            rewards: Vec::with_capacity(num_steps * num_envs),
            starts: Vec::with_capacity(num_steps * num_envs),
        }
    }

    /// Steps recorded so far.
    pub fn len(&self) -> usize {
        self.obs.len()
    }

    /// Whether no step is recorded.
    pub fn is_empty(&self) -> bool {
        self.obs.is_empty()
    }

    /// Records what the policy saw and did at one step: the observations (`[N, width]`, stored
    /// form), which of them begin an episode, the actions, their log-probabilities and values.
    pub fn push(&mut self, obs: &Tensor, starts: &[bool], action: &Tensor, log_prob: &Tensor, value: &Tensor) {
        debug_assert_eq!(starts.len(), self.num_envs);
        self.obs.push(obs.shallow_clone());
        self.starts.extend(starts.iter().map(|&s| f32::from(u8::from(s))));
        self.actions.push(action.shallow_clone());
        self.log_probs.push(log_prob.shallow_clone());
        self.values.push(value.shallow_clone());
    }

    /// Records the rewards of the step last pushed.
    pub fn push_rewards(&mut self, rewards: &[f64]) {
        debug_assert_eq!(rewards.len(), self.num_envs);
        self.rewards.extend(rewards.iter().map(|&r| r as f32));
    }

    /// The rollout as `[T, N, ...]` tensors on `device`.
    pub fn finish(self, device: Device) -> RolloutBatch {
        let (t, n) = (self.obs.len() as i64, self.num_envs as i64);
        RolloutBatch {
            obs: Tensor::stack(&self.obs, 0),
            actions: Tensor::stack(&self.actions, 0),
            log_probs: Tensor::stack(&self.log_probs, 0),
            rewards: Tensor::from_slice(&self.rewards).view([t, n]).to_device(device),
            starts: Tensor::from_slice(&self.starts).view([t, n]).to_device(device),
            values: Tensor::stack(&self.values, 0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    #[test]
    fn steps_become_the_leading_dimension() {
        crate::threads::configure();
        let mut rollout = Rollout::new(3, 2);
        for t in 0..3 {
            let base = 10.0 * t as f32;
            let obs = Tensor::from_slice(&[base, base + 1.0, base + 2.0, base + 3.0]).view([2, 2]);
            let action = Tensor::from_slice(&[t as i64, -(t as i64)]);
            let value = Tensor::from_slice(&[base, -base]);
            rollout.push(&obs, &[t == 0, false], &action, &value.zeros_like(), &value);
            rollout.push_rewards(&[f64::from(t), 0.5]);
        }
        assert_eq!(rollout.len(), 3);
        let batch = rollout.finish(Device::Cpu);
        assert_eq!(batch.obs.size(), [3, 2, 2]);
        assert_eq!(batch.obs.double_value(&[2, 1, 0]), 22.0);
        assert_eq!(batch.actions.size(), [3, 2]);
        assert_eq!(batch.actions.int64_value(&[1, 1]), -1);
        assert_eq!(batch.rewards.kind(), Kind::Float);
        assert_eq!((batch.rewards.double_value(&[2, 0]), batch.rewards.double_value(&[2, 1])), (2.0, 0.5));
        assert_eq!((batch.starts.double_value(&[0, 0]), batch.starts.double_value(&[0, 1])), (1.0, 0.0));
        assert_eq!(batch.values.double_value(&[1, 1]), -10.0);
    }
}

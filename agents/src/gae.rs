//! Generalised advantage estimation (Schulman et al. 2016), as CleanRL computes it.

use tch::Tensor;

/// Advantages and returns of a rollout.
///
/// Shapes: `rewards`, `values`, `dones` are `[T, N]`; `dones[t]` says that `obs[t]` begins a new
/// episode (so no value flows from `t` back to `t - 1`); `next_value` and `next_done` describe
/// the observation after the last step. Returns `(advantages, returns)`, both `[T, N]`.
pub fn gae(
    rewards: &Tensor,
    values: &Tensor,
    dones: &Tensor,
    next_value: &Tensor,
    next_done: &Tensor,
    gamma: f64,
    lambda: f64,
) -> (Tensor, Tensor) {
    let steps = rewards.size()[0];
    let advantages = rewards.zeros_like();
    let mut last = next_value.zeros_like();
    for t in (0..steps).rev() {
        let (nonterminal, next_values) = if t == steps - 1 {
            (1.0 - next_done, next_value.shallow_clone())
        } else {
            (1.0 - dones.get(t + 1), values.get(t + 1))
        };
        let delta = rewards.get(t) + gamma * &next_values * &nonterminal - values.get(t);
        last = delta + gamma * lambda * &nonterminal * &last;
        advantages.get(t).copy_(&last);
    }
    let returns = &advantages + values;
    (advantages, returns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    fn t(v: &[f32], shape: [i64; 2]) -> Tensor {
        Tensor::from_slice(v).view(shape)
    }

    /// Hand-worked: one env, three steps, the episode ends after step 1 (obs 2 is a reset).
    #[test]
    fn matches_hand_computation() {
        let (g, l) = (0.9, 0.5);
        let rewards = t(&[1.0, 2.0, 3.0], [3, 1]);
        let values = t(&[0.5, 1.0, 1.5], [3, 1]);
        let dones = t(&[0.0, 0.0, 1.0], [3, 1]);
        let next_value = Tensor::from_slice(&[2.0f32]);
        let next_done = Tensor::from_slice(&[0.0f32]);
        let (adv, ret) = gae(&rewards, &values, &dones, &next_value, &next_done, g, l);
        // t=2: delta = 3 + 0.9*2 - 1.5 = 3.3; A2 = 3.3
        // t=1: next obs is a reset: delta = 2 - 1 = 1; A1 = 1
        // t=0: delta = 1 + 0.9*1 - 0.5 = 1.4; A0 = 1.4 + 0.45*1 = 1.85
        let want = [1.85f64, 1.0, 3.3];
        for (k, w) in want.iter().enumerate() {
            let got = adv.double_value(&[k as i64, 0]);
            assert!((got - w).abs() < 1e-5, "A[{k}] = {got}, want {w}");
        }
        let diff = (&ret - (&adv + &values)).abs().max().double_value(&[]);
        assert!(diff < 1e-6);
        assert_eq!(adv.kind(), Kind::Float);
    }
}

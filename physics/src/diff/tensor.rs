//! The systems of [`super`] on batched libtorch tensors (feature `diff`): `step(state[B, S],
//! action[B, A]) -> state[B, S]` from differentiable tensor ops on any device and float kind,
//! so that autograd differentiates rollouts through the physics.

use std::ops::{Add, Div, Mul, Neg, Sub};

use tch::{Device, Kind, Tensor};

use super::{Num, System};

/// One column of a batch (shape `[B]`): the [`Num`] the systems compute with on tensors.
pub struct Col(pub Tensor);

impl Clone for Col {
    fn clone(&self) -> Self {
        Col(self.0.shallow_clone())
    }
}

macro_rules! binary {
    ($trait:ident, $method:ident) => {
        impl $trait for Col {
            type Output = Col;
            fn $method(self, other: Col) -> Col {
                Col((&self.0).$method(&other.0))
            }
        }
        impl $trait<f64> for Col {
            type Output = Col;
            fn $method(self, other: f64) -> Col {
                Col((&self.0).$method(other))
            }
        }
    };
}

binary!(Add, add);
binary!(Sub, sub);
binary!(Mul, mul);

impl Div for Col {
    type Output = Col;
    fn div(self, other: Col) -> Col {
        Col(&self.0 / &other.0)
    }
}

impl Neg for Col {
    type Output = Col;
    fn neg(self) -> Col {
        Col(-&self.0)
    }
}

impl Num for Col {
    fn sin(&self) -> Self {
        Col(self.0.sin())
    }
    fn cos(&self) -> Self {
        Col(self.0.cos())
    }
    fn tanh(&self) -> Self {
        Col(self.0.tanh())
    }
    fn softplus(&self) -> Self {
        // As the f64 path: max(x, 0) + ln(1 + e^-|x|), exact at every argument.
        Col(self.0.relu() + (-self.0.abs()).exp().log1p())
    }
    fn sigmoid(&self) -> Self {
        Col(self.0.sigmoid())
    }
    fn sqrt(&self) -> Self {
        Col(self.0.sqrt())
    }
    fn clamp(&self, low: f64, high: f64) -> Self {
        Col(self.0.clamp(low, high))
    }
}

fn columns(batch: &Tensor) -> Vec<Col> {
    batch.unbind(1).into_iter().map(Col).collect()
}

fn stack(cols: Vec<Col>) -> Tensor {
    let cols: Vec<Tensor> = cols.into_iter().map(|c| c.0).collect();
    Tensor::stack(&cols, 1)
}

/// The next states of a batch: `state[B, S]`, `action[B, A]` -> `[B, S]`.
pub fn step<S: System>(system: &S, state: &Tensor, action: &Tensor) -> Tensor {
    stack(system.step(&columns(state), &columns(action)))
}

/// The observations of a batch of states: `[B, S]` -> `[B, O]`.
pub fn observe<S: System>(system: &S, state: &Tensor) -> Tensor {
    stack(system.observe(&columns(state)))
}

/// The rewards of a batch: `[B, S]`, `[B, A]` -> `[B]`.
pub fn reward<S: System>(system: &S, state: &Tensor, action: &Tensor) -> Tensor {
    system.reward(&columns(state), &columns(action)).0
}

/// `count` start states (`[count, S]`) drawn from libtorch's generator, of `kind` on `device`.
pub fn start<S: System>(system: &S, count: i64, kind: Kind, device: Device) -> Tensor {
    let s = S::STATE as i64;
    let nominal = Tensor::from_slice(&system.nominal()).to_kind(kind).to_device(device).view([1, s]);
    let noise = Tensor::from_slice(&system.start_noise()).to_kind(kind).to_device(device).view([1, s]);
    let u = Tensor::rand([count, s], (kind, device)) * 2.0 - 1.0;
    nominal + noise * u
}

/// A fixed-horizon rollout: the states `[B, T + 1, S]` (the start, then after each action) and
/// the rewards `[B, T]` of playing `policy` (states to actions) for `horizon` steps from `start`.
/// Gradients flow through everything (detach inside `policy` to cut them).
pub fn rollout<S: System>(
    system: &S,
    start: &Tensor,
    horizon: usize,
    policy: &mut dyn FnMut(&Tensor) -> Tensor,
) -> (Tensor, Tensor) {
    let mut states = vec![start.shallow_clone()];
    let mut rewards = Vec::with_capacity(horizon);
    for _ in 0..horizon {
        let state = states.last().map(Tensor::shallow_clone).unwrap_or_else(|| start.shallow_clone());
        let action = policy(&state);
        rewards.push(reward(system, &state, &action));
        states.push(step(system, &state, &action));
    }
    let rewards = if rewards.is_empty() {
        Tensor::zeros([start.size()[0], 0], (start.kind(), start.device()))
    } else {
        Tensor::stack(&rewards, 1)
    };
    (Tensor::stack(&states, 1), rewards)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::{Acrobot, CartPole, Hopper, Pendulum, PointMass, Reacher};

    const HORIZON: usize = 6;

    /// A smooth scalar of a short rollout from `s0` under the open-loop `actions` `[T, A]`:
    /// the sum of rewards plus a fixed random projection of every state.
    fn objective<S: System>(system: &S, s0: &Tensor, actions: &Tensor, weights: &Tensor) -> Tensor {
        let mut t = 0;
        let (states, rewards) = rollout(system, s0, HORIZON, &mut |_| {
            let a = actions.get(t).unsqueeze(0);
            t += 1;
            a
        });
        rewards.sum(Kind::Double) + (states * weights).sum(Kind::Double)
    }

    /// Autograd against central finite differences (float64) of the rollout objective with
    /// respect to the start state and every action; returns the relative error.
    fn gradient_error<S: System>(system: &S, s0: &[f64], actions: &[f64]) -> f64 {
        tch::manual_seed(7);
        let opts = (Kind::Double, Device::Cpu);
        let s = S::STATE as i64;
        let weights = Tensor::randn([1, HORIZON as i64 + 1, s], opts);
        let x0 = Tensor::from_slice(s0).view([1, s]).set_requires_grad(true);
        let a0 = Tensor::from_slice(actions).view([HORIZON as i64, S::ACTION as i64]).set_requires_grad(true);
        let value = objective(system, &x0, &a0, &weights);
        let grads = Tensor::run_backward(&[&value], &[&x0, &a0], false, false);
        let analytic: Vec<f64> = grads
            .iter()
            .flat_map(|g| Vec::<f64>::try_from(g.flatten(0, -1)).unwrap_or_default())
            .collect();
        let mut inputs: Vec<f64> = s0.iter().chain(actions).copied().collect();
        let eval = |inputs: &[f64]| -> f64 {
            let x = Tensor::from_slice(&inputs[..S::STATE]).view([1, s]);
            let a = Tensor::from_slice(&inputs[S::STATE..]).view([HORIZON as i64, S::ACTION as i64]);
            objective(system, &x, &a, &weights).double_value(&[])
        };
        let h = 1e-6;
        let mut numeric = Vec::with_capacity(inputs.len());
        for i in 0..inputs.len() {
            let x = inputs[i];
            inputs[i] = x + h;
            let up = eval(&inputs);
            inputs[i] = x - h;
            let down = eval(&inputs);
            inputs[i] = x;
            numeric.push((up - down) / (2.0 * h));
        }
        assert_eq!(analytic.len(), numeric.len());
        let diff: f64 = analytic.iter().zip(&numeric).map(|(a, n)| (a - n).powi(2)).sum::<f64>().sqrt();
        let norm: f64 = numeric.iter().map(|n| n * n).sum::<f64>().sqrt();
        assert!(norm > 1e-8, "{}: the gradient vanishes, the check would be empty", S::NAME);
        diff / norm
    }

    fn check<S: System>(system: &S, s0: &[f64], action: &[f64]) {
        let actions: Vec<f64> = (0..HORIZON).flat_map(|t| action.iter().map(move |a| a * (1.0 - 0.1 * t as f64))).collect();
        let err = gradient_error(system, s0, &actions);
        assert!(err <= 1e-4, "{}: relative gradient error {err:e}", S::NAME);
    }

    #[test]
    fn pendulum_gradients_match_finite_differences() {
        check(&Pendulum::default(), &[2.5, 0.7], &[0.4]);
    }

    #[test]
    fn cartpole_gradients_match_finite_differences() {
        check(&CartPole::default(), &[0.1, -0.2, 0.15, 0.3], &[0.5]);
    }

    #[test]
    fn reacher_gradients_match_finite_differences() {
        check(&Reacher::default(), &[0.3, -0.4, 0.2, 0.1, 0.05, 0.12], &[0.5, -0.3]);
    }

    #[test]
    fn point_mass_gradients_match_finite_differences() {
        check(&PointMass::default(), &[0.4, 0.6, 0.1, -0.1], &[-0.5, 0.2]);
    }

    #[test]
    fn acrobot_gradients_match_finite_differences() {
        check(&Acrobot::default(), &[0.3, -0.2, 0.4, 0.1], &[0.6]);
    }

    #[test]
    fn hopper_gradients_match_finite_differences() {
        // The foot starts slightly in the ground, so the contacts' gradients are exercised.
        check(&Hopper::default(), &[0.0, 0.5, 0.02, -0.003, 0.3, -0.2, 0.1, -0.1], &[0.4, 0.3]);
    }

    /// The tensor path against the f64 path on a batch, step by step, for `steps` steps.
    fn same_as_f64<S: System>(system: &S, steps: usize) {
        tch::manual_seed(3);
        let batch = 5;
        let mut x = start(system, batch, Kind::Double, Device::Cpu);
        let mut scalar: Vec<Vec<f64>> =
            (0..batch).map(|b| Vec::<f64>::try_from(x.get(b)).unwrap_or_default()).collect();
        for _ in 0..steps {
            let a = Tensor::rand([batch, S::ACTION as i64], (Kind::Double, Device::Cpu)) * 2.4 - 1.2;
            let r = reward(system, &x, &a);
            let o = observe(system, &x);
            x = step(system, &x, &a);
            for (b, s) in scalar.iter_mut().enumerate() {
                let act = Vec::<f64>::try_from(a.get(b as i64)).unwrap_or_default();
                let r64 = system.reward(s, &act);
                let o64 = system.observe(s);
                *s = system.step(s, &act);
                let bi = b as i64;
                assert!((r.double_value(&[bi]) - r64).abs() <= 1e-6, "{} reward", S::NAME);
                for (k, v) in o64.iter().enumerate() {
                    assert!((o.double_value(&[bi, k as i64]) - v).abs() <= 1e-6, "{} obs {k}", S::NAME);
                }
                for (k, v) in s.iter().enumerate() {
                    let t = x.double_value(&[bi, k as i64]);
                    assert!((t - v).abs() <= 1e-6 * (1.0 + v.abs()), "{} state {k}: {t} vs {v}", S::NAME);
                }
            }
        }
    }

    #[test]
    fn tensor_path_equals_the_f64_path() {
        same_as_f64(&Pendulum::default(), 128);
        same_as_f64(&CartPole::default(), 128);
        same_as_f64(&Reacher::default(), 128);
        same_as_f64(&PointMass::default(), 128);
        same_as_f64(&Acrobot::default(), 128);
        same_as_f64(&Hopper::default(), 128);
    }

    #[test]
    fn rollouts_have_fixed_horizons() {
        let p = Pendulum::default();
        let s0 = start(&p, 3, Kind::Float, Device::Cpu);
        let (states, rewards) = rollout(&p, &s0, 7, &mut |s| s.narrow(1, 0, 1).zeros_like());
        assert_eq!(states.size(), vec![3, 8, 2]);
        assert_eq!(rewards.size(), vec![3, 7]);
    }
}

//! Smooth planar dynamics written once over [`Num`], so that the same equations run on `f64`
//! (the ordinary Keel envs `keel/Diff*-v0`, no libtorch) and, with the cargo feature `diff`, on
//! batched libtorch tensors whose autograd differentiates whole rollouts ([`tensor`]).
//!
//! Every system takes actions in `[-1, 1]` (clamped, then scaled to its force or torque), starts
//! near one nominal state with a little uniform noise (Brax's convention, which one-demo
//! imitation needs), and has a smooth per-step reward. Termination is replaced by a fixed
//! horizon (128 steps by default, the horizon of imitation via differentiable physics).
//!
//! - [`Pendulum`]: torque-limited swing-up from hanging down (Gymnasium's equations).
//! - [`CartPole`]: continuous-force cart-pole balancing (Gymnasium's constants, Euler).
//! - [`Reacher`]: a 2-link planar arm with damped joint torques, reaching a goal.
//! - [`PointMass`]: a damped 2-D point mass driven to the origin.
//! - [`Acrobot`]: the continuous-torque acrobot (Sutton & Barto's "book" equations, RK4).
//! - [`Hopper`]: a planar two-mass hopper (body and foot on an actuated spring leg) with smooth
//!   penalty contacts and smooth friction, rewarded for moving forward.

mod systems;
#[cfg(feature = "diff")]
pub mod tensor;

use std::ops::{Add, Div, Mul, Neg, Sub};

use serde::{Serialize, de::DeserializeOwned};

pub use systems::{Acrobot, CartPole, Hopper, Pendulum, PointMass, Reacher};

/// A number the dynamics compute with: `f64`, or (feature `diff`) a column of a batch of
/// libtorch tensors. Arithmetic with `f64` constants goes on the right (`x * 2.0`).
pub trait Num:
    Clone
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + Add<f64, Output = Self>
    + Sub<f64, Output = Self>
    + Mul<f64, Output = Self>
{
    /// Sine.
    fn sin(&self) -> Self;
    /// Cosine.
    fn cos(&self) -> Self;
    /// Hyperbolic tangent.
    fn tanh(&self) -> Self;
    /// `ln(1 + e^x)`.
    fn softplus(&self) -> Self;
    /// `1 / (1 + e^-x)`.
    fn sigmoid(&self) -> Self;
    /// Square root (of a positive argument: add an epsilon where it may be 0).
    fn sqrt(&self) -> Self;
    /// Clamped to `[low, high]`.
    fn clamp(&self, low: f64, high: f64) -> Self;
    /// `self * self`.
    fn square(&self) -> Self {
        self.clone() * self.clone()
    }
}

impl Num for f64 {
    fn sin(&self) -> Self {
        f64::sin(*self)
    }
    fn cos(&self) -> Self {
        f64::cos(*self)
    }
    fn tanh(&self) -> Self {
        f64::tanh(*self)
    }
    fn softplus(&self) -> Self {
        self.max(0.0) + (-self.abs()).exp().ln_1p()
    }
    fn sigmoid(&self) -> Self {
        1.0 / (1.0 + (-self).exp())
    }
    fn sqrt(&self) -> Self {
        f64::sqrt(*self)
    }
    fn clamp(&self, low: f64, high: f64) -> Self {
        f64::clamp(*self, low, high)
    }
}

/// A differentiable system: its sizes, its step, its observation and reward, its start.
///
/// The struct itself is the system's config (serde, `Default`); [`System::parameters`] lists
/// its fields, all of which must be finite and positive.
pub trait System: Clone + Default + Serialize + DeserializeOwned + Send + Sync + 'static {
    /// Short name (`pendulum`, ...).
    const NAME: &'static str;
    /// State size.
    const STATE: usize;
    /// Action size (each action in `[-1, 1]`).
    const ACTION: usize;
    /// Observation size.
    const OBS: usize;

    /// The next state after `action` in `state`.
    fn step<N: Num>(&self, state: &[N], action: &[N]) -> Vec<N>;

    /// The observation of `state`.
    fn observe<N: Num>(&self, state: &[N]) -> Vec<N>;

    /// The reward of taking `action` in `state`.
    fn reward<N: Num>(&self, state: &[N], action: &[N]) -> N;

    /// The nominal start state.
    fn nominal(&self) -> Vec<f64>;

    /// Half-width of the uniform start noise of each state component.
    fn start_noise(&self) -> Vec<f64>;

    /// The config's fields by name, each to be finite and positive.
    fn parameters(&self) -> Vec<(&'static str, f64)>;

    /// The first field that is not finite and positive, with the reason.
    fn invalid_field(&self) -> Option<(&'static str, String)> {
        self.parameters()
            .into_iter()
            .find(|(_, v)| !(v.is_finite() && *v > 0.0))
            .map(|(name, v)| (name, format!("must be finite and > 0, got {v}")))
    }

    /// The start state for uniform draws `u` in `[-1, 1]` (one per state component).
    fn start(&self, u: &[f64]) -> Vec<f64> {
        self.nominal().iter().zip(self.start_noise()).zip(u).map(|((x, w), u)| x + w * u).collect()
    }
}

/// Clamps an action to `[-1, 1]`.
pub(crate) fn unit<N: Num>(a: &N) -> N {
    a.clamp(-1.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softplus_and_sigmoid_are_stable_at_large_arguments() {
        assert_eq!(Num::softplus(&1000.0), 1000.0);
        assert!(Num::softplus(&-1000.0) >= 0.0 && Num::softplus(&-1000.0) < 1e-300);
        assert!((Num::softplus(&0.0) - 2f64.ln()).abs() < 1e-15);
        assert!((Num::sigmoid(&0.0) - 0.5).abs() < 1e-15);
    }

    fn starts_within_noise<S: System>() {
        let s = S::default();
        assert_eq!(s.nominal().len(), S::STATE, "{}", S::NAME);
        assert_eq!(s.start_noise().len(), S::STATE, "{}", S::NAME);
        let x = s.start(&vec![1.0; S::STATE]);
        let next = s.step(&x, &vec![0.3; S::ACTION]);
        assert_eq!(next.len(), S::STATE, "{}", S::NAME);
        assert_eq!(s.observe(&x).len(), S::OBS, "{}", S::NAME);
        assert!(next.iter().chain(&x).all(|v| v.is_finite()), "{}", S::NAME);
        assert!(s.invalid_field().is_none(), "{}", S::NAME);
    }

    #[test]
    fn every_system_has_consistent_sizes() {
        starts_within_noise::<Pendulum>();
        starts_within_noise::<CartPole>();
        starts_within_noise::<Reacher>();
        starts_within_noise::<PointMass>();
        starts_within_noise::<Acrobot>();
        starts_within_noise::<Hopper>();
    }

    #[test]
    fn a_non_positive_parameter_is_named() {
        let p = Pendulum { dt: -0.1, ..Pendulum::default() };
        assert_eq!(p.invalid_field().map(|(f, _)| f), Some("dt"));
    }
}

//! Start-state perturbations: noise on a humanoid state, as SkillMimic-V2's ε-neighbourhood
//! state initialisation draws it.
//!
//! The official code draws the root's velocities and the joints' positions and velocities as
//! `(randn·2 − 1)·m`: a normal with mean `−m` and standard deviation `2m`, where the paper
//! describes noise within `±m`. [`Noise`] offers both: `uniform`, `U(−m, m)`, the reading the
//! code was meant to have (the default), and `official`, the code as it runs, which produced the
//! paper's numbers. The root's height (`U(0, m)`) and rotation (`U(−m, m)` per axis) are uniform
//! in the code and in both.
//!
//! Shared by the humanoid env (its own perturbed starts, `keel eval --perturb`) and the
//! transition-field sampler of keel-curricula, so both perturb the same way.

use glam::{DQuat, DVec3};
use serde::{Deserialize, Serialize};

use crate::model::{HumanoidModel, Joint, quat, wxyz};

/// How the noise on the root's velocities and the joints is drawn, for a magnitude `m`; see the
/// [module docs](self). Written `"uniform"` or `"official"` in configs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Noise {
    /// `U(−m, m)`: mean 0, standard deviation `m/√3`.
    #[default]
    Uniform,
    /// `(N(0, 1)·2 − 1)·m`, as SkillMimic-V2's code draws it: mean `−m`, standard deviation `2m`.
    Official,
}

/// Magnitudes of the noise on a start state; all 0 (the default) leaves it as it is.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Perturbation {
    /// The root is raised by `U(0, root_height)`, m (never lowered, so no start is under the
    /// ground).
    pub root_height: f64,
    /// The root is turned by `U(−r, r)` rad about each world axis.
    pub root_rotation: f64,
    /// Noise of magnitude `v` ([`Self::noise`]) is added to each coordinate of the root's linear
    /// (m/s) and angular (rad/s) velocity.
    pub root_velocity: f64,
    /// Each joint is turned by noise of magnitude `j` rad about each of its axes (hinges are
    /// kept within their limits).
    pub joint_position: f64,
    /// Noise of magnitude `w` rad/s is added to each joint velocity coordinate.
    pub joint_velocity: f64,
    /// How the noise on the root's velocities and the joints is drawn (default `uniform`).
    pub noise: Noise,
}

impl Default for Perturbation {
    fn default() -> Self {
        Self {
            root_height: 0.0,
            root_rotation: 0.0,
            root_velocity: 0.0,
            joint_position: 0.0,
            joint_velocity: 0.0,
            noise: Noise::Uniform,
        }
    }
}

impl Perturbation {
    /// SkillMimic-V2's magnitudes for a non-getup skill (noise weight 0.1 on every part), drawn
    /// uniformly.
    pub fn skillmimic() -> Self {
        Self {
            root_height: 0.1,
            root_rotation: 0.1,
            root_velocity: 0.1,
            joint_position: 0.1,
            joint_velocity: 0.1,
            noise: Noise::Uniform,
        }
    }

    /// SkillMimic-V2's magnitudes drawn as its official code draws them ([`Noise::Official`]):
    /// the perturbed starts the paper's numbers came from.
    pub fn skillmimic_official() -> Self {
        Self { noise: Noise::Official, ..Self::skillmimic() }
    }

    /// The same magnitudes drawn as `noise` says.
    pub fn with_noise(&self, noise: Noise) -> Self {
        Self { noise, ..*self }
    }

    /// Every magnitude multiplied by `k`.
    pub fn scaled(&self, k: f64) -> Self {
        Self {
            root_height: self.root_height * k,
            root_rotation: self.root_rotation * k,
            root_velocity: self.root_velocity * k,
            joint_position: self.joint_position * k,
            joint_velocity: self.joint_velocity * k,
            noise: self.noise,
        }
    }

    /// Whether every magnitude is 0.
    pub fn is_zero(&self) -> bool {
        self.fields().iter().all(|(_, v)| *v == 0.0)
    }

    fn fields(&self) -> [(&'static str, f64); 5] {
        [
            ("root_height", self.root_height),
            ("root_rotation", self.root_rotation),
            ("root_velocity", self.root_velocity),
            ("joint_position", self.joint_position),
            ("joint_velocity", self.joint_velocity),
        ]
    }

    /// Checks the magnitudes (finite, ≥ 0, rotations at most π, the rest at most 100); the
    /// error is `(field, message)`.
    pub fn check(&self) -> std::result::Result<(), (&'static str, String)> {
        for (name, value) in self.fields() {
            let max = if name.ends_with("rotation") || name == "joint_position" { std::f64::consts::PI } else { 100.0 };
            if !(value.is_finite() && (0.0..=max).contains(&value)) {
                return Err((name, format!("must be in [0, {max}], got {value}")));
            }
        }
        Ok(())
    }

    /// Perturbs `pose` and `velocity` (the model's layouts) in place; `uniform` draws from
    /// `[0, 1)` (a normal takes two draws, Box–Muller). The draws are taken in a fixed order, so
    /// a seeded source gives a fixed result.
    pub fn apply(
        &self,
        model: &HumanoidModel,
        pose: &mut [f64],
        velocity: &mut [f64],
        uniform: &mut dyn FnMut() -> f64,
    ) {
        // The root's height and rotation are uniform whatever `noise` says (see the module docs).
        let (noise, flat) = (self.noise, Noise::Uniform);
        pose[1] += 0.5 * (symmetric(flat, self.root_height, uniform) + self.root_height);
        let r = self.root_rotation;
        let turn = DVec3::new(symmetric(flat, r, uniform), symmetric(flat, r, uniform), symmetric(flat, r, uniform));
        let root = DQuat::from_rotation_x(turn.x) * DQuat::from_rotation_y(turn.y) * DQuat::from_rotation_z(turn.z);
        let q = (root * quat(&pose[3..7])).normalize();
        pose[3..7].copy_from_slice(&wxyz(q));
        for v in &mut velocity[..6] {
            *v += symmetric(noise, self.root_velocity, uniform);
        }
        let j = self.joint_position;
        for body in model.bodies() {
            let p = body.pose_offset;
            match body.joint {
                Joint::Spherical => {
                    let n = DVec3::new(
                        symmetric(noise, j, uniform),
                        symmetric(noise, j, uniform),
                        symmetric(noise, j, uniform),
                    );
                    let q = (DQuat::from_scaled_axis(n) * quat(&pose[p..p + 4])).normalize();
                    pose[p..p + 4].copy_from_slice(&wxyz(q));
                }
                Joint::Revolute { limits: [lo, hi], .. } => {
                    pose[p] = (pose[p] + symmetric(noise, j, uniform)).clamp(lo, hi);
                }
                Joint::Free | Joint::Fixed => {}
            }
        }
        for v in &mut velocity[6..] {
            *v += symmetric(noise, self.joint_velocity, uniform);
        }
    }
}

/// Noise of magnitude `m` drawn as `noise` says.
fn symmetric(noise: Noise, m: f64, uniform: &mut dyn FnMut() -> f64) -> f64 {
    match noise {
        Noise::Uniform => m * (2.0 * uniform() - 1.0),
        Noise::Official => m * (2.0 * standard_normal(uniform) - 1.0),
    }
}

/// A standard normal from two uniform draws in `[0, 1)` (Box–Muller; `1 − u` keeps the
/// logarithm finite).
fn standard_normal(uniform: &mut dyn FnMut() -> f64) -> f64 {
    let (u, v) = (1.0 - uniform(), uniform());
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn magnitudes_are_checked_naming_the_field() {
        assert!(Perturbation::skillmimic().check().is_ok());
        let bad = Perturbation { joint_velocity: -1.0, ..Perturbation::default() };
        assert_eq!(bad.check().err().map(|e| e.0), Some("joint_velocity"));
        let bad = Perturbation { root_rotation: 4.0, ..Perturbation::default() };
        assert_eq!(bad.check().err().map(|e| e.0), Some("root_rotation"));
        assert!(Perturbation::default().is_zero() && !Perturbation::skillmimic().is_zero());
        assert_eq!(Perturbation::skillmimic().scaled(2.0).root_height, 0.2);
        assert_eq!(Perturbation::skillmimic_official().scaled(2.0).noise, Noise::Official);
    }

    /// Uniform numbers in `[0, 1)` from a fixed 64-bit LCG (Knuth's MMIX constants).
    fn lcg() -> impl FnMut() -> f64 {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        move || {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    fn mean_and_std(noise: Noise, m: f64) -> (f64, f64) {
        let mut uniform = lcg();
        let n = 200_000;
        let draws: Vec<f64> = (0..n).map(|_| symmetric(noise, m, &mut uniform)).collect();
        let mean = draws.iter().sum::<f64>() / n as f64;
        let var = draws.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        (mean, var.sqrt())
    }

    #[test]
    fn uniform_noise_is_centred_within_the_magnitude_and_official_noise_is_the_codes_normal() {
        let (mean, std) = mean_and_std(Noise::Uniform, 0.1);
        assert!(mean.abs() < 1e-3 && (std - 0.1 / 3f64.sqrt()).abs() < 1e-3, "uniform: mean {mean}, std {std}");
        let mut uniform = lcg();
        assert!((0..10_000).all(|_| symmetric(Noise::Uniform, 0.1, &mut uniform).abs() <= 0.1));
        // `(randn·2 − 1)·0.1`: mean −0.1, std 0.2.
        let (mean, std) = mean_and_std(Noise::Official, 0.1);
        assert!((mean + 0.1).abs() < 2e-3 && (std - 0.2).abs() < 2e-3, "official: mean {mean}, std {std}");
    }

    #[test]
    fn the_noise_is_named_in_configs_and_defaults_to_uniform() {
        let p: Perturbation = serde_json::from_str(r#"{"joint_position": 0.1, "noise": "official"}"#).unwrap();
        assert_eq!(p, Perturbation { joint_position: 0.1, noise: Noise::Official, ..Perturbation::default() });
        let p: Perturbation = serde_json::from_str(r#"{"joint_position": 0.1}"#).unwrap();
        assert_eq!(p.noise, Noise::Uniform);
        let e = serde_json::from_str::<Perturbation>(r#"{"noise": "gaussian"}"#).unwrap_err().to_string();
        assert!(e.contains("unknown variant `gaussian`, expected `uniform` or `official`"), "{e}");
        assert_eq!(serde_json::to_value(Noise::Official).unwrap(), "official");
    }
}

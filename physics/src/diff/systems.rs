//! The six systems of [`super`]: their configs (defaults in each `Default`) and equations.

use std::f64::consts::PI;

use serde::{Deserialize, Serialize};

use super::{Num, System, unit};

/// Torque-limited pendulum swing-up (Gymnasium `Pendulum-v1` equations, θ = 0 upright). The
/// reward uses `2(1 − cos θ)` for Gymnasium's `θ²` of the wrapped angle, which it matches near
/// upright and which is smooth everywhere.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Pendulum {
    /// Gravitational acceleration, m/s² (default 10).
    pub g: f64,
    /// Mass, kg (default 1).
    pub m: f64,
    /// Length, m (default 1).
    pub l: f64,
    /// Seconds per step (default 0.05).
    pub dt: f64,
    /// Angular speed limit, rad/s (default 8).
    pub max_speed: f64,
    /// Torque at action 1, N·m (default 2).
    pub max_torque: f64,
}

impl Default for Pendulum {
    fn default() -> Self {
        Self { g: 10.0, m: 1.0, l: 1.0, dt: 0.05, max_speed: 8.0, max_torque: 2.0 }
    }
}

impl System for Pendulum {
    const NAME: &'static str = "pendulum";
    const STATE: usize = 2;
    const ACTION: usize = 1;
    const OBS: usize = 3;

    fn step<N: Num>(&self, s: &[N], a: &[N]) -> Vec<N> {
        let u = unit(&a[0]) * self.max_torque;
        let acc = s[0].sin() * (3.0 * self.g / (2.0 * self.l)) + u * (3.0 / (self.m * self.l * self.l));
        let thdot = (s[1].clone() + acc * self.dt).clamp(-self.max_speed, self.max_speed);
        vec![s[0].clone() + thdot.clone() * self.dt, thdot]
    }

    fn observe<N: Num>(&self, s: &[N]) -> Vec<N> {
        vec![s[0].cos(), s[0].sin(), s[1].clone()]
    }

    fn reward<N: Num>(&self, s: &[N], a: &[N]) -> N {
        let u = unit(&a[0]) * self.max_torque;
        -((-s[0].cos() + 1.0) * 2.0 + s[1].square() * 0.1 + u.square() * 0.001)
    }

    fn nominal(&self) -> Vec<f64> {
        vec![PI, 0.0]
    }

    fn start_noise(&self) -> Vec<f64> {
        vec![0.1, 0.1]
    }

    fn parameters(&self) -> Vec<(&'static str, f64)> {
        vec![
            ("g", self.g),
            ("m", self.m),
            ("l", self.l),
            ("dt", self.dt),
            ("max_speed", self.max_speed),
            ("max_torque", self.max_torque),
        ]
    }
}

/// Cart-pole balancing with a continuous force (Gymnasium `CartPole-v1` constants and Euler
/// step); reward `cos θ − 0.01 x² − 0.001 a²`, so falling costs but never ends the episode.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CartPole {
    /// Gravitational acceleration, m/s² (default 9.8).
    pub gravity: f64,
    /// Cart mass, kg (default 1).
    pub masscart: f64,
    /// Pole mass, kg (default 0.1).
    pub masspole: f64,
    /// Half the pole's length, m (default 0.5).
    pub length: f64,
    /// Force at action 1, N (default 10).
    pub force_mag: f64,
    /// Seconds per step (default 0.02).
    pub tau: f64,
}

impl Default for CartPole {
    fn default() -> Self {
        Self { gravity: 9.8, masscart: 1.0, masspole: 0.1, length: 0.5, force_mag: 10.0, tau: 0.02 }
    }
}

impl System for CartPole {
    const NAME: &'static str = "cartpole";
    const STATE: usize = 4;
    const ACTION: usize = 1;
    const OBS: usize = 5;

    fn step<N: Num>(&self, s: &[N], a: &[N]) -> Vec<N> {
        let (x, xd, th, thd) = (&s[0], &s[1], &s[2], &s[3]);
        let total = self.masscart + self.masspole;
        let pml = self.masspole * self.length;
        let force = unit(&a[0]) * self.force_mag;
        let (sin, cos) = (th.sin(), th.cos());
        let tmp = (force + thd.square() * sin.clone() * pml) * (1.0 / total);
        let thacc = (sin * self.gravity - cos.clone() * tmp.clone())
            / ((-cos.square() * (self.masspole / total) + 4.0 / 3.0) * self.length);
        let xacc = tmp - thacc.clone() * cos * (pml / total);
        vec![
            x.clone() + xd.clone() * self.tau,
            xd.clone() + xacc * self.tau,
            th.clone() + thd.clone() * self.tau,
            thd.clone() + thacc * self.tau,
        ]
    }

    fn observe<N: Num>(&self, s: &[N]) -> Vec<N> {
        vec![s[0].clone(), s[1].clone(), s[2].cos(), s[2].sin(), s[3].clone()]
    }

    fn reward<N: Num>(&self, s: &[N], a: &[N]) -> N {
        s[2].cos() - s[0].square() * 0.01 - unit(&a[0]).square() * 0.001
    }

    fn nominal(&self) -> Vec<f64> {
        vec![0.0; 4]
    }

    fn start_noise(&self) -> Vec<f64> {
        vec![0.05; 4]
    }

    fn parameters(&self) -> Vec<(&'static str, f64)> {
        vec![
            ("gravity", self.gravity),
            ("masscart", self.masscart),
            ("masspole", self.masspole),
            ("length", self.length),
            ("force_mag", self.force_mag),
            ("tau", self.tau),
        ]
    }
}

/// A 2-link planar arm (links 0.1 and 0.11 m, MuJoCo reacher's) whose joints are damped double
/// integrators driven by torques; the goal is part of the state. Reward `−‖tip − goal‖ −
/// 0.01 ‖a‖²`. State `[q1, q2, q̇1, q̇2, goal_x, goal_y]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Reacher {
    /// First link, m (default 0.1).
    pub l1: f64,
    /// Second link, m (default 0.11).
    pub l2: f64,
    /// Angular acceleration at action 1, rad/s² (default 10).
    pub gain: f64,
    /// Joint damping, 1/s (default 1).
    pub damping: f64,
    /// Seconds per step (default 0.05).
    pub dt: f64,
}

impl Default for Reacher {
    fn default() -> Self {
        Self { l1: 0.1, l2: 0.11, gain: 10.0, damping: 1.0, dt: 0.05 }
    }
}

impl Reacher {
    /// The fingertip of joint angles `q1`, `q2`.
    pub fn tip<N: Num>(&self, q1: &N, q2: &N) -> (N, N) {
        let q12 = q1.clone() + q2.clone();
        (q1.cos() * self.l1 + q12.cos() * self.l2, q1.sin() * self.l1 + q12.sin() * self.l2)
    }
}

impl System for Reacher {
    const NAME: &'static str = "reacher";
    const STATE: usize = 6;
    const ACTION: usize = 2;
    const OBS: usize = 10;

    fn step<N: Num>(&self, s: &[N], a: &[N]) -> Vec<N> {
        let v1 = s[2].clone() + (unit(&a[0]) * self.gain - s[2].clone() * self.damping) * self.dt;
        let v2 = s[3].clone() + (unit(&a[1]) * self.gain - s[3].clone() * self.damping) * self.dt;
        vec![s[0].clone() + v1.clone() * self.dt, s[1].clone() + v2.clone() * self.dt, v1, v2, s[4].clone(), s[5].clone()]
    }

    fn observe<N: Num>(&self, s: &[N]) -> Vec<N> {
        let (tx, ty) = self.tip(&s[0], &s[1]);
        vec![
            s[0].cos(),
            s[0].sin(),
            s[1].cos(),
            s[1].sin(),
            s[2].clone(),
            s[3].clone(),
            s[4].clone(),
            s[5].clone(),
            tx - s[4].clone(),
            ty - s[5].clone(),
        ]
    }

    fn reward<N: Num>(&self, s: &[N], a: &[N]) -> N {
        let (tx, ty) = self.tip(&s[0], &s[1]);
        let dist = ((tx - s[4].clone()).square() + (ty - s[5].clone()).square() + 1e-12).sqrt();
        -dist - (unit(&a[0]).square() + unit(&a[1]).square()) * 0.01
    }

    fn nominal(&self) -> Vec<f64> {
        vec![0.0, 0.0, 0.0, 0.0, 0.0, 0.15]
    }

    fn start_noise(&self) -> Vec<f64> {
        vec![0.1, 0.1, 0.005, 0.005, 0.05, 0.05]
    }

    fn parameters(&self) -> Vec<(&'static str, f64)> {
        vec![("l1", self.l1), ("l2", self.l2), ("gain", self.gain), ("damping", self.damping), ("dt", self.dt)]
    }
}

/// A damped 2-D point mass pushed towards the origin: `v' = v + dt (u/m − c v)`,
/// `x' = x + dt v'`; reward `−‖x‖ − 0.01 ‖a‖²`. State `[x, y, vx, vy]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PointMass {
    /// Mass, kg (default 1).
    pub mass: f64,
    /// Force at action 1, N (default 1).
    pub max_force: f64,
    /// Damping, 1/s (default 0.5).
    pub damping: f64,
    /// Seconds per step (default 0.05).
    pub dt: f64,
}

impl Default for PointMass {
    fn default() -> Self {
        Self { mass: 1.0, max_force: 1.0, damping: 0.5, dt: 0.05 }
    }
}

impl System for PointMass {
    const NAME: &'static str = "point_mass";
    const STATE: usize = 4;
    const ACTION: usize = 2;
    const OBS: usize = 4;

    fn step<N: Num>(&self, s: &[N], a: &[N]) -> Vec<N> {
        let acc = |i: usize| unit(&a[i]) * (self.max_force / self.mass) - s[2 + i].clone() * self.damping;
        let vx = s[2].clone() + acc(0) * self.dt;
        let vy = s[3].clone() + acc(1) * self.dt;
        vec![s[0].clone() + vx.clone() * self.dt, s[1].clone() + vy.clone() * self.dt, vx, vy]
    }

    fn observe<N: Num>(&self, s: &[N]) -> Vec<N> {
        s.to_vec()
    }

    fn reward<N: Num>(&self, s: &[N], a: &[N]) -> N {
        -(s[0].square() + s[1].square() + 1e-12).sqrt() - (unit(&a[0]).square() + unit(&a[1]).square()) * 0.01
    }

    fn nominal(&self) -> Vec<f64> {
        vec![0.5, 0.5, 0.0, 0.0]
    }

    fn start_noise(&self) -> Vec<f64> {
        vec![0.1, 0.1, 0.01, 0.01]
    }

    fn parameters(&self) -> Vec<(&'static str, f64)> {
        vec![("mass", self.mass), ("max_force", self.max_force), ("damping", self.damping), ("dt", self.dt)]
    }
}

/// The acrobot with a continuous torque on the second joint (Sutton & Barto's "book" equations
/// as in Gymnasium's `Acrobot-v1`, RK4 over `dt`, θ1 = 0 hanging down). Joint speeds are clamped
/// to Gymnasium's limits (4π, 9π). Reward: the tip's height `−cos θ1 − cos(θ1 + θ2)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Acrobot {
    /// Seconds per step (default 0.2).
    pub dt: f64,
    /// Torque at action 1, N·m (default 1).
    pub max_torque: f64,
    /// Gravitational acceleration, m/s² (default 9.8).
    pub g: f64,
}

impl Default for Acrobot {
    fn default() -> Self {
        Self { dt: 0.2, max_torque: 1.0, g: 9.8 }
    }
}

impl Acrobot {
    /// `[θ̇1, θ̇2, θ̈1, θ̈2]` of `s` under `torque` (unit masses and lengths, centres at 0.5).
    fn derivatives<N: Num>(&self, s: &[N], torque: &N) -> [N; 4] {
        let (m1, m2, l1, lc1, lc2, i1, i2) = (1.0, 1.0, 1.0, 0.5, 0.5, 1.0, 1.0);
        let (t1, t2, d1, d2) = (&s[0], &s[1], &s[2], &s[3]);
        let (c2, s2) = (t2.cos(), t2.sin());
        let dd1 = c2.clone() * (m2 * 2.0 * l1 * lc2) + (m1 * lc1 * lc1 + m2 * (l1 * l1 + lc2 * lc2) + i1 + i2);
        let dd2 = c2 * (m2 * l1 * lc2) + (m2 * lc2 * lc2 + i2);
        let phi2 = (t1.clone() + t2.clone()).sin() * (m2 * lc2 * self.g);
        let phi1 = -(d2.square() * s2.clone()) * (m2 * l1 * lc2) - d2.clone() * d1.clone() * s2.clone() * (2.0 * m2 * l1 * lc2)
            + t1.sin() * ((m1 * lc1 + m2 * l1) * self.g)
            + phi2.clone();
        let ddt2 = (torque.clone() + dd2.clone() / dd1.clone() * phi1.clone() - d1.square() * s2 * (m2 * l1 * lc2) - phi2)
            / (-(dd2.square() / dd1.clone()) + (m2 * lc2 * lc2 + i2));
        let ddt1 = -(dd2 * ddt2.clone() + phi1) / dd1;
        [d1.clone(), d2.clone(), ddt1, ddt2]
    }
}

impl System for Acrobot {
    const NAME: &'static str = "acrobot";
    const STATE: usize = 4;
    const ACTION: usize = 1;
    const OBS: usize = 6;

    fn step<N: Num>(&self, s: &[N], a: &[N]) -> Vec<N> {
        let torque = unit(&a[0]) * self.max_torque;
        let h = self.dt;
        let shift = |k: &[N; 4], by: f64| -> Vec<N> { s.iter().zip(k).map(|(x, d)| x.clone() + d.clone() * by).collect() };
        let k1 = self.derivatives(s, &torque);
        let k2 = self.derivatives(&shift(&k1, h / 2.0), &torque);
        let k3 = self.derivatives(&shift(&k2, h / 2.0), &torque);
        let k4 = self.derivatives(&shift(&k3, h), &torque);
        let mut next: Vec<N> = (0..4)
            .map(|i| {
                s[i].clone() + (k1[i].clone() + k2[i].clone() * 2.0 + k3[i].clone() * 2.0 + k4[i].clone()) * (h / 6.0)
            })
            .collect();
        next[2] = next[2].clamp(-4.0 * PI, 4.0 * PI);
        next[3] = next[3].clamp(-9.0 * PI, 9.0 * PI);
        next
    }

    fn observe<N: Num>(&self, s: &[N]) -> Vec<N> {
        vec![s[0].cos(), s[0].sin(), s[1].cos(), s[1].sin(), s[2].clone(), s[3].clone()]
    }

    fn reward<N: Num>(&self, s: &[N], _a: &[N]) -> N {
        -s[0].cos() - (s[0].clone() + s[1].clone()).cos()
    }

    fn nominal(&self) -> Vec<f64> {
        vec![0.0; 4]
    }

    fn start_noise(&self) -> Vec<f64> {
        vec![0.1; 4]
    }

    fn parameters(&self) -> Vec<(&'static str, f64)> {
        vec![("dt", self.dt), ("max_torque", self.max_torque), ("g", self.g)]
    }
}

/// A planar hopper: a body and a foot (point masses) joined by a spring-damper leg whose rest
/// length the first action sets, and swung by the second action (a force across the leg). Both
/// masses touch the ground through smooth penalty contacts, normal force
/// `k δ softplus(−z/δ) − c ż sigmoid(−z/δ)`, and smooth friction `−μ f_n tanh(v_x/ε)`. Semi-implicit
/// Euler in `substeps` substeps per step. Reward: the body's forward speed `− 0.01 ‖a‖²`.
/// State `[x_b, z_b, x_f, z_f, ẋ_b, ż_b, ẋ_f, ż_f]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Hopper {
    /// Body mass, kg (default 1).
    pub body_mass: f64,
    /// Foot mass, kg (default 0.2).
    pub foot_mass: f64,
    /// Leg rest length at action 0, m (default 0.5).
    pub leg_length: f64,
    /// Rest-length change at action ±1, as a fraction of `leg_length` (default 0.3).
    pub leg_stroke: f64,
    /// Leg stiffness, N/m (default 300).
    pub leg_stiffness: f64,
    /// Leg damping, N·s/m (default 5).
    pub leg_damping: f64,
    /// Swing force across the leg at action ±1, N (default 5).
    pub swing_force: f64,
    /// Ground stiffness, N/m (default 2000).
    pub ground_stiffness: f64,
    /// Ground damping, N·s/m (default 20).
    pub ground_damping: f64,
    /// Contact smoothing length δ, m (default 0.01).
    pub contact_width: f64,
    /// Friction coefficient (default 1).
    pub friction: f64,
    /// Friction smoothing speed ε, m/s (default 0.1).
    pub friction_speed: f64,
    /// Gravitational acceleration, m/s² (default 9.81).
    pub gravity: f64,
    /// Seconds per step (default 0.02).
    pub dt: f64,
    /// Integration substeps per step (default 4).
    pub substeps: f64,
}

impl Default for Hopper {
    fn default() -> Self {
        Self {
            body_mass: 1.0,
            foot_mass: 0.2,
            leg_length: 0.5,
            leg_stroke: 0.3,
            leg_stiffness: 300.0,
            leg_damping: 5.0,
            swing_force: 5.0,
            ground_stiffness: 2000.0,
            ground_damping: 20.0,
            contact_width: 0.01,
            friction: 1.0,
            friction_speed: 0.1,
            gravity: 9.81,
            dt: 0.02,
            substeps: 4.0,
        }
    }
}

impl Hopper {
    /// Ground force `(f_x, f_z)` on a point at height `z` moving at `(vx, vz)`.
    fn ground<N: Num>(&self, z: &N, vx: &N, vz: &N) -> (N, N) {
        let depth = -(z.clone()) * (1.0 / self.contact_width);
        let normal = depth.softplus() * (self.ground_stiffness * self.contact_width)
            - vz.clone() * depth.sigmoid() * self.ground_damping;
        let tangential = -(normal.clone() * (vx.clone() * (1.0 / self.friction_speed)).tanh()) * self.friction;
        (tangential, normal)
    }

    /// One semi-implicit Euler substep of length `h`.
    fn substep<N: Num>(&self, s: &[N], a: &[N], h: f64) -> Vec<N> {
        let (xb, zb, xf, zf, vxb, vzb, vxf, vzf) = (&s[0], &s[1], &s[2], &s[3], &s[4], &s[5], &s[6], &s[7]);
        let dx = xb.clone() - xf.clone();
        let dz = zb.clone() - zf.clone();
        let len = (dx.square() + dz.square() + 1e-12).sqrt();
        let (ex, ez) = (dx / len.clone(), dz / len.clone());
        let rest = (unit(&a[0]) * self.leg_stroke + 1.0) * self.leg_length;
        let closing = (vxb.clone() - vxf.clone()) * ex.clone() + (vzb.clone() - vzf.clone()) * ez.clone();
        let spring = (rest - len) * self.leg_stiffness - closing * self.leg_damping;
        let swing = unit(&a[1]) * self.swing_force;
        // Spring along the leg (body +, foot −); swing across it (foot +, body −).
        let (px, pz) = (ez.clone(), -ex.clone());
        let fx = spring.clone() * ex - swing.clone() * px;
        let fz = spring * ez - swing * pz;
        let (gxb, gzb) = self.ground(zb, vxb, vzb);
        let (gxf, gzf) = self.ground(zf, vxf, vzf);
        let vxb2 = vxb.clone() + (fx.clone() + gxb) * (h / self.body_mass);
        let vzb2 = vzb.clone() + ((fz.clone() + gzb) * (1.0 / self.body_mass) - self.gravity) * h;
        let vxf2 = vxf.clone() + (gxf - fx) * (h / self.foot_mass);
        let vzf2 = vzf.clone() + ((gzf - fz) * (1.0 / self.foot_mass) - self.gravity) * h;
        vec![
            xb.clone() + vxb2.clone() * h,
            zb.clone() + vzb2.clone() * h,
            xf.clone() + vxf2.clone() * h,
            zf.clone() + vzf2.clone() * h,
            vxb2,
            vzb2,
            vxf2,
            vzf2,
        ]
    }
}

impl System for Hopper {
    const NAME: &'static str = "hopper";
    const STATE: usize = 8;
    const ACTION: usize = 2;
    const OBS: usize = 7;

    fn step<N: Num>(&self, s: &[N], a: &[N]) -> Vec<N> {
        let n = self.substeps.round().max(1.0) as usize;
        let h = self.dt / n as f64;
        let mut state = s.to_vec();
        for _ in 0..n {
            state = self.substep(&state, a, h);
        }
        state
    }

    fn observe<N: Num>(&self, s: &[N]) -> Vec<N> {
        // Everything but the absolute horizontal position.
        vec![
            s[1].clone(),
            s[2].clone() - s[0].clone(),
            s[3].clone(),
            s[4].clone(),
            s[5].clone(),
            s[6].clone(),
            s[7].clone(),
        ]
    }

    fn reward<N: Num>(&self, s: &[N], a: &[N]) -> N {
        s[4].clone() - (unit(&a[0]).square() + unit(&a[1]).square()) * 0.01
    }

    fn nominal(&self) -> Vec<f64> {
        vec![0.0, 0.52, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    }

    fn start_noise(&self) -> Vec<f64> {
        vec![0.0, 0.01, 0.01, 0.005, 0.05, 0.05, 0.0, 0.0]
    }

    fn parameters(&self) -> Vec<(&'static str, f64)> {
        vec![
            ("body_mass", self.body_mass),
            ("foot_mass", self.foot_mass),
            ("leg_length", self.leg_length),
            ("leg_stroke", self.leg_stroke),
            ("leg_stiffness", self.leg_stiffness),
            ("leg_damping", self.leg_damping),
            ("swing_force", self.swing_force),
            ("ground_stiffness", self.ground_stiffness),
            ("ground_damping", self.ground_damping),
            ("contact_width", self.contact_width),
            ("friction", self.friction),
            ("friction_speed", self.friction_speed),
            ("gravity", self.gravity),
            ("dt", self.dt),
            ("substeps", self.substeps),
        ]
    }
}

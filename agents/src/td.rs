//! Linear TD(0) and partially fitted policy evaluation (PFPE): semi-gradient TD with a target
//! copy of the weights refreshed every `k` steps (Fellows, Smith & Whiteson, ICML 2023).
//!
//! With a linear value `v = Φw`, a state distribution `d` (`D = diag d`), the target policy's
//! transition matrix `P` and reward `r`, the expected update with target weights `w̄` is
//!
//! ```text
//! g = Φᵀ D (r + γ P Φ w̄ − Φ w) = c + γ Σ' w̄ − Σ w,   Σ = ΦᵀDΦ, Σ' = ΦᵀDPΦ, c = ΦᵀDr
//! m ← β m + g,   w ← w + α m                (β = 0: plain SGD)
//! ```
//!
//! and `w̄ ← w` every `k` steps (`k = 1` is TD(0)). Without momentum one target period maps
//! `w` to `M_k w` (plus a constant), `M_k = A^k + (Σ_{j<k} A^j) αγΣ'` with `A = I − αΣ`; PFPE
//! converges iff ρ(M_k) < 1. With momentum the period map acts on `(w, m)`. Directions in the
//! null space of Φ change no value and keep eigenvalue 1 (weights) or β (momentum), so
//! [`LinearProblem::period_radius`] reports the spectral radius on the value subspace (the
//! quotient by null(Φ)), as agents.md §3.3 does.
//!
//! [`LinearProblem::baird`] is Baird's star (`keel/Baird-v0`, its features and γ);
//! [`run_expected`] iterates the expected update, [`run_sampled`] the importance-sampled one
//! on transitions of the env under its behaviour policy, and [`critical_period`] finds the
//! smallest `k` with ρ(M_k) < 1.

use nalgebra::{DMatrix, DVector};
use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg64;
use serde::{Deserialize, Serialize};
use serde_json::Map;

use keel_envs::baird::{self, Baird, BairdConfig};
use keel_envs::{Action, Registered, ResetOptions, make};

use crate::error::{AgentError, Result};

/// One TD / PFPE run (`keel td baird`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TdConfig {
    /// Target period `k`: the target weights are refreshed every `k` updates (1 = TD(0)).
    pub target_period: u64,
    /// Step size α (> 0).
    pub alpha: f64,
    /// Heavy-ball momentum β in [0, 1) (0 = plain SGD).
    pub momentum: f64,
    /// Number of updates.
    pub steps: u64,
    /// Expected updates (the whole state distribution per step) instead of sampled transitions.
    pub expected: bool,
    /// Seed of the sampled transitions (env and behaviour policy).
    pub seed: u64,
    /// Record ‖Φw‖ every this many updates (0: about 1000 points over the run).
    pub record_every: u64,
}

impl Default for TdConfig {
    fn default() -> Self {
        Self { target_period: 1, alpha: 0.01, momentum: 0.0, steps: 100_000, expected: false, seed: 0, record_every: 0 }
    }
}

fn invalid(field: &str, message: String) -> AgentError {
    AgentError::Config(format!("td: `{field}` {message}"))
}

/// Checks a step size (> 0, finite).
pub fn check_alpha(alpha: f64) -> Result<()> {
    if alpha.is_finite() && alpha > 0.0 { Ok(()) } else { Err(invalid("alpha", format!("must be finite and > 0, got {alpha}"))) }
}

/// Checks a momentum (in [0, 1)).
pub fn check_momentum(momentum: f64) -> Result<()> {
    if (0.0..1.0).contains(&momentum) { Ok(()) } else { Err(invalid("momentum", format!("must lie in [0, 1), got {momentum}"))) }
}

impl TdConfig {
    /// Every field in range, or an error naming the first that is not.
    pub fn validate(&self) -> Result<()> {
        if self.target_period == 0 {
            return Err(invalid("target_period", "(k) must be at least 1 (1 is TD(0)), got 0".into()));
        }
        check_alpha(self.alpha)?;
        check_momentum(self.momentum)?;
        if self.steps == 0 {
            return Err(invalid("steps", "must be at least 1".into()));
        }
        Ok(())
    }

    fn record_every(&self) -> u64 {
        if self.record_every > 0 { self.record_every } else { (self.steps / 1000).max(1) }
    }
}

/// A policy-evaluation problem with linear features (see the module docs).
#[derive(Clone, Debug)]
pub struct LinearProblem {
    /// Features, one row per state.
    pub phi: DMatrix<f64>,
    /// Discount.
    pub gamma: f64,
    /// Σ = ΦᵀDΦ.
    pub sigma: DMatrix<f64>,
    /// Σ' = ΦᵀDPΦ.
    pub sigma_next: DMatrix<f64>,
    /// c = ΦᵀDr.
    pub c: DVector<f64>,
    /// Orthonormal basis of the row space of Φ (features × rank): the value subspace.
    basis: DMatrix<f64>,
}

impl LinearProblem {
    /// The problem of features `phi` (states × features), state distribution `d`, target-policy
    /// transitions `p` (states × states), expected reward `r` per state and discount `gamma`.
    pub fn new(phi: DMatrix<f64>, d: &DVector<f64>, p: &DMatrix<f64>, r: &DVector<f64>, gamma: f64) -> Self {
        let dphi = DMatrix::from_diagonal(d) * &phi;
        let sigma = phi.transpose() * &dphi;
        let sigma_next = dphi.transpose() * p * &phi;
        let c = dphi.transpose() * r;
        let svd = phi.clone().svd(false, true);
        let v_t = svd.v_t.unwrap_or_else(|| DMatrix::identity(phi.ncols(), phi.ncols()));
        let scale = svd.singular_values.max();
        let rows: Vec<usize> = (0..svd.singular_values.len()).filter(|&i| svd.singular_values[i] > 1e-10 * scale).collect();
        let basis = v_t.select_rows(&rows).transpose();
        Self { phi, gamma, sigma, sigma_next, c, basis }
    }

    /// Baird's star with the features and γ of `keel/Baird-v0`: d uniform (the behaviour
    /// policy's stationary distribution), the target policy always `solid`, reward 0.
    pub fn baird(config: &BairdConfig) -> Self {
        let (s, f) = (baird::STATES, baird::FEATURES);
        let phi = DMatrix::from_fn(s, f, |i, j| baird::features(i)[j]);
        let d = DVector::from_element(s, 1.0 / s as f64);
        let p = DMatrix::from_fn(s, s, |_, j| if j == baird::LOWER { 1.0 } else { 0.0 });
        Self::new(phi, &d, &p, &DVector::zeros(s), config.gamma)
    }

    /// Number of weights.
    pub fn features(&self) -> usize {
        self.phi.ncols()
    }

    /// The expected update direction g(w, w̄).
    pub fn expected_direction(&self, w: &DVector<f64>, target: &DVector<f64>) -> DVector<f64> {
        &self.c + self.gamma * (&self.sigma_next * target) - &self.sigma * w
    }

    /// One step of the expected dynamics on `z = (w, m, w̄)` with the target held fixed.
    fn step_matrix(&self, alpha: f64, momentum: f64) -> DMatrix<f64> {
        let n = self.features();
        let eye = DMatrix::<f64>::identity(n, n);
        let g_w = -&self.sigma;
        let g_target = self.gamma * &self.sigma_next;
        let mut t = DMatrix::zeros(3 * n, 3 * n);
        // m' = βm + g;  w' = w + α m';  w̄' = w̄.
        t.view_mut((n, 0), (n, n)).copy_from(&g_w);
        t.view_mut((n, n), (n, n)).copy_from(&(momentum * &eye));
        t.view_mut((n, 2 * n), (n, n)).copy_from(&g_target);
        t.view_mut((0, 0), (n, n)).copy_from(&(&eye + alpha * &g_w));
        t.view_mut((0, n), (n, n)).copy_from(&(alpha * momentum * &eye));
        t.view_mut((0, 2 * n), (n, n)).copy_from(&(alpha * &g_target));
        t.view_mut((2 * n, 2 * n), (n, n)).copy_from(&eye);
        t
    }

    /// ρ of one target period of `k` updates on the value subspace (ρ(M_k) without momentum).
    pub fn period_radius(&self, alpha: f64, momentum: f64, k: u64) -> f64 {
        let mut periods = Periods::new(self, alpha, momentum);
        for _ in 1..k {
            periods.advance();
        }
        periods.radius()
    }

    /// `M_k = A^k + (Σ_{j<k} A^j)·αγΣ'`, the period map of agents.md §3.2 (no momentum).
    pub fn m_k(&self, alpha: f64, k: u64) -> DMatrix<f64> {
        let n = self.features();
        let a = DMatrix::<f64>::identity(n, n) - alpha * &self.sigma;
        let b = alpha * self.gamma * &self.sigma_next;
        let (mut a_k, mut sum) = (DMatrix::identity(n, n), DMatrix::zeros(n, n));
        for _ in 0..k {
            sum += &a_k;
            a_k = &a * a_k;
        }
        a_k + sum * b
    }

    /// ‖Φw‖₂, the size of the value function.
    pub fn value_norm(&self, w: &DVector<f64>) -> f64 {
        (&self.phi * w).norm()
    }
}

/// The largest modulus among the eigenvalues of a square matrix (NaN if the QR iteration does
/// not converge).
pub fn spectral_radius(m: &DMatrix<f64>) -> f64 {
    match eigenvalues(m) {
        Some(values) => values.iter().map(|&(re, im)| re.hypot(im)).fold(0.0, f64::max),
        None => f64::NAN,
    }
}

/// The eigenvalues `(re, im)` of a square matrix: Hessenberg reduction, then the Francis
/// double-shift QR iteration with deflation and exceptional shifts (the textbook eigenvalue-only
/// form). `None` if some eigenvalue takes more than 60 iterations. (nalgebra's Schur iteration
/// stalls on the repeated eigenvalues of Baird's period maps.)
pub fn eigenvalues(m: &DMatrix<f64>) -> Option<Vec<(f64, f64)>> {
    let n = m.nrows();
    if n == 0 {
        return Some(Vec::new());
    }
    let mut a = m.clone().hessenberg().h();
    let mut out = vec![(0.0, 0.0); n];
    let norm: f64 = (0..n).flat_map(|i| (i.saturating_sub(1)..n).map(move |j| (i, j))).map(|(i, j)| a[(i, j)].abs()).sum();
    let mut nn = n - 1;
    let mut shift = 0.0;
    loop {
        let mut its = 0;
        loop {
            // The lowest l with a negligible subdiagonal a[l][l-1] splits the matrix.
            let mut l = nn;
            while l >= 1 {
                let mut s = a[(l - 1, l - 1)].abs() + a[(l, l)].abs();
                if s == 0.0 {
                    s = norm;
                }
                if a[(l, l - 1)].abs() + s == s {
                    a[(l, l - 1)] = 0.0;
                    break;
                }
                l -= 1;
            }
            let mut x = a[(nn, nn)];
            if l == nn {
                out[nn] = (x + shift, 0.0);
                if nn == 0 {
                    return Some(out);
                }
                nn -= 1;
                break;
            }
            let mut y = a[(nn - 1, nn - 1)];
            let mut w = a[(nn, nn - 1)] * a[(nn - 1, nn)];
            if l == nn - 1 {
                // A 2 x 2 block: a real pair or a complex-conjugate pair.
                let p = 0.5 * (y - x);
                let q = p * p + w;
                let z = q.abs().sqrt();
                x += shift;
                if q >= 0.0 {
                    let z = p + z.copysign(p);
                    out[nn - 1] = (x + z, 0.0);
                    out[nn] = (if z != 0.0 { x - w / z } else { x + z }, 0.0);
                } else {
                    out[nn - 1] = (x + p, -z);
                    out[nn] = (x + p, z);
                }
                if nn < 2 {
                    return Some(out);
                }
                nn -= 2;
                break;
            }
            if its == 60 {
                return None;
            }
            if its == 10 || its == 20 {
                shift += x;
                for i in 0..=nn {
                    a[(i, i)] -= x;
                }
                let s = a[(nn, nn - 1)].abs() + a[(nn - 1, nn - 2)].abs();
                x = 0.75 * s;
                y = x;
                w = -0.4375 * s * s;
            }
            its += 1;
            // Two consecutive small subdiagonals: start the double step at row m.
            let mut mm = nn - 2;
            let (mut p, mut q, mut r);
            loop {
                let z = a[(mm, mm)];
                let (r0, s0) = (x - z, y - z);
                p = (r0 * s0 - w) / a[(mm + 1, mm)] + a[(mm, mm + 1)];
                q = a[(mm + 1, mm + 1)] - z - r0 - s0;
                r = a[(mm + 2, mm + 1)];
                let s = p.abs() + q.abs() + r.abs();
                p /= s;
                q /= s;
                r /= s;
                if mm == l {
                    break;
                }
                let u = a[(mm, mm - 1)].abs() * (q.abs() + r.abs());
                let v = p.abs() * (a[(mm - 1, mm - 1)].abs() + z.abs() + a[(mm + 1, mm + 1)].abs());
                if u + v == v {
                    break;
                }
                mm -= 1;
            }
            for i in mm + 2..=nn {
                a[(i, i - 2)] = 0.0;
                if i != mm + 2 {
                    a[(i, i - 3)] = 0.0;
                }
            }
            // The double QR step on rows l..=nn, columns mm..=nn.
            for k in mm..nn {
                let mut xk = 0.0;
                if k != mm {
                    p = a[(k, k - 1)];
                    q = a[(k + 1, k - 1)];
                    r = if k != nn - 1 { a[(k + 2, k - 1)] } else { 0.0 };
                    xk = p.abs() + q.abs() + r.abs();
                    if xk != 0.0 {
                        p /= xk;
                        q /= xk;
                        r /= xk;
                    }
                }
                let s = (p * p + q * q + r * r).sqrt().copysign(p);
                if s == 0.0 {
                    continue;
                }
                if k == mm {
                    if l != mm {
                        a[(k, k - 1)] = -a[(k, k - 1)];
                    }
                } else {
                    a[(k, k - 1)] = -s * xk;
                }
                p += s;
                let (xs, ys, zs) = (p / s, q / s, r / s);
                q /= p;
                r /= p;
                for j in k..=nn {
                    let mut t = a[(k, j)] + q * a[(k + 1, j)];
                    if k != nn - 1 {
                        t += r * a[(k + 2, j)];
                        a[(k + 2, j)] -= t * zs;
                    }
                    a[(k + 1, j)] -= t * ys;
                    a[(k, j)] -= t * xs;
                }
                for i in l..=nn.min(k + 3) {
                    let mut t = xs * a[(i, k)] + ys * a[(i, k + 1)];
                    if k != nn - 1 {
                        t += zs * a[(i, k + 2)];
                        a[(i, k + 2)] -= t * r;
                    }
                    a[(i, k + 1)] -= t * q;
                    a[(i, k)] -= t;
                }
            }
        }
    }
}

/// The period maps for k = 1, 2, ... on the value subspace, one matrix product per k.
/// Without momentum the map acts on `w` (`M_k`, features × features); with momentum on `(w, m)`
/// through the `(w, m, w̄)` step matrix.
struct Periods<'a> {
    problem: &'a LinearProblem,
    /// `A` (no momentum) or the `(w, m, w̄)` step matrix.
    step: DMatrix<f64>,
    /// `step^k`.
    power: DMatrix<f64>,
    /// Without momentum: `Σ_{j<k} A^j` and `B = αγΣ'`.
    sum_and_b: Option<(DMatrix<f64>, DMatrix<f64>)>,
}

impl<'a> Periods<'a> {
    /// At k = 1.
    fn new(problem: &'a LinearProblem, alpha: f64, momentum: f64) -> Self {
        let n = problem.features();
        if momentum == 0.0 {
            let a = DMatrix::<f64>::identity(n, n) - alpha * &problem.sigma;
            let b = alpha * problem.gamma * &problem.sigma_next;
            Self { problem, power: a.clone(), step: a, sum_and_b: Some((DMatrix::identity(n, n), b)) }
        } else {
            let step = problem.step_matrix(alpha, momentum);
            Self { problem, power: step.clone(), step, sum_and_b: None }
        }
    }

    /// From k to k + 1.
    fn advance(&mut self) {
        if let Some((sum, _)) = &mut self.sum_and_b {
            *sum += &self.power;
        }
        self.power = &self.step * &self.power;
    }

    /// ρ of the current period map on the value subspace (the quotient by null(Φ)).
    fn radius(&self) -> f64 {
        let (n, basis) = (self.problem.features(), &self.problem.basis);
        match &self.sum_and_b {
            Some((sum, b)) => spectral_radius(&(basis.transpose() * (&self.power + sum * b) * basis)),
            None => {
                // The period starts with w̄ = w: (w, m) ↦ (w, m, w) ↦ step^k ↦ (w, m).
                let eye = DMatrix::<f64>::identity(n, n);
                let mut embed = DMatrix::zeros(3 * n, 2 * n);
                embed.view_mut((0, 0), (n, n)).copy_from(&eye);
                embed.view_mut((n, n), (n, n)).copy_from(&eye);
                embed.view_mut((2 * n, 0), (n, n)).copy_from(&eye);
                let period = self.power.rows(0, 2 * n) * embed;
                let r = basis.ncols();
                let mut q = DMatrix::zeros(2 * n, 2 * r);
                q.view_mut((0, 0), (n, r)).copy_from(basis);
                q.view_mut((n, r), (n, r)).copy_from(basis);
                spectral_radius(&(q.transpose() * period * q))
            }
        }
    }
}

/// The smallest `k ≤ max_k` with ρ(period map) < 1 on the value subspace, or `None`.
pub fn critical_period(problem: &LinearProblem, alpha: f64, momentum: f64, max_k: u64) -> Result<Option<u64>> {
    check_alpha(alpha)?;
    check_momentum(momentum)?;
    let mut periods = Periods::new(problem, alpha, momentum);
    for k in 1..=max_k {
        if periods.radius() < 1.0 {
            return Ok(Some(k));
        }
        periods.advance();
    }
    Ok(None)
}

/// What a run did: ‖Φw‖ over time and the spectral radii of its update.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TdRun {
    /// Env the run studied.
    pub env: String,
    /// The run's config.
    pub config: TdConfig,
    /// Discount.
    pub gamma: f64,
    /// ρ of one target period on the value subspace (ρ(M_k) without momentum).
    pub rho_period: f64,
    /// ρ of one TD(0) update (k = 1, same α and momentum) on the value subspace.
    pub rho_td: f64,
    /// `(updates done, ‖Φw‖)`, starting with the initial weights.
    pub norms: Vec<(u64, f64)>,
    /// ‖Φw‖ after the last update done.
    pub final_norm: f64,
    /// Updates done: `steps`, or fewer if the weights stopped being finite.
    pub steps_done: u64,
    /// The first update after which ‖Φw‖ exceeded 1e20, if any.
    pub exceeded_1e20_at: Option<u64>,
}

/// Sutton & Barto's initial weights for Baird: `(1, 1, 1, 1, 1, 1, 10, 1)`.
pub fn baird_initial_weights() -> DVector<f64> {
    let mut w = DVector::from_element(baird::FEATURES, 1.0);
    w[baird::FEATURES - 2] = 10.0;
    w
}

/// Weights, momentum and target of a run, and the trace of ‖Φw‖.
struct Learner<'a> {
    problem: &'a LinearProblem,
    config: &'a TdConfig,
    w: DVector<f64>,
    m: DVector<f64>,
    target: DVector<f64>,
    run: TdRun,
}

impl<'a> Learner<'a> {
    fn new(problem: &'a LinearProblem, config: &'a TdConfig, env: &str) -> Self {
        let w = baird_initial_weights();
        let run = TdRun {
            env: env.into(),
            config: config.clone(),
            gamma: problem.gamma,
            rho_period: problem.period_radius(config.alpha, config.momentum, config.target_period),
            rho_td: problem.period_radius(config.alpha, config.momentum, 1),
            norms: vec![(0, problem.value_norm(&w))],
            final_norm: problem.value_norm(&w),
            steps_done: 0,
            exceeded_1e20_at: None,
        };
        Self { problem, config, m: DVector::zeros(w.len()), target: w.clone(), w, run }
    }

    /// Refreshes the target at the start of each period.
    fn sync(&mut self, step: u64) {
        if step % self.config.target_period == 0 {
            self.target.copy_from(&self.w);
        }
    }

    /// Applies direction `g` as update `step` (0-based); false once the weights are not finite.
    fn apply(&mut self, step: u64, g: &DVector<f64>) -> bool {
        self.m = self.config.momentum * &self.m + g;
        self.w.axpy(self.config.alpha, &self.m, 1.0);
        let done = step + 1;
        let norm = self.problem.value_norm(&self.w);
        if norm > 1e20 && self.run.exceeded_1e20_at.is_none() {
            self.run.exceeded_1e20_at = Some(done);
        }
        let finite = norm.is_finite();
        if finite {
            self.run.steps_done = done;
            self.run.final_norm = norm;
        }
        if finite && (done % self.config.record_every() == 0 || done == self.config.steps) {
            self.run.norms.push((done, norm));
        }
        finite
    }
}

/// Expected updates on Baird's star from Sutton & Barto's initial weights.
pub fn run_expected(config: &TdConfig, env_config: &BairdConfig) -> Result<TdRun> {
    config.validate()?;
    let problem = LinearProblem::baird(env_config);
    let mut learner = Learner::new(&problem, config, Baird::ID);
    for step in 0..config.steps {
        learner.sync(step);
        let g = problem.expected_direction(&learner.w, &learner.target);
        if !learner.apply(step, &g) {
            break;
        }
    }
    Ok(learner.run)
}

/// Importance-sampled updates on transitions of `keel/Baird-v0` under its behaviour policy:
/// `g = ρ·(r + γ φ(s')ᵀw̄ − φ(s)ᵀw)·φ(s)`, with φ the observation and ρ the env's
/// `importance_ratio` extra.
pub fn run_sampled(config: &TdConfig, env_config: &BairdConfig) -> Result<TdRun> {
    config.validate()?;
    let overrides = match serde_json::to_value(env_config) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => Map::new(),
    };
    let mut env = make(Baird::ID, &overrides)?;
    let ratio_index = env.spec().extras.iter().position(|e| e == "importance_ratio").unwrap_or(1);
    let problem = LinearProblem::baird(env_config);
    let mut learner = Learner::new(&problem, config, Baird::ID);
    let mut behaviour = Pcg64::seed_from_u64(config.seed ^ 0x5eed_0fbe);
    let mut obs = env.spec().obs_buffer(1);
    env.reset(Some(config.seed), &ResetOptions::default(), obs.as_mut())?;
    let n = problem.features();
    let mut extras = vec![0.0; env.spec().extras_len()];
    let mut g = DVector::zeros(n);
    for step in 0..config.steps {
        learner.sync(step);
        let phi = DVector::from_iterator(n, obs.to_f64_vec());
        let dashed = behaviour.random::<f64>() < env_config.behaviour_dashed;
        let action = if dashed { baird::DASHED } else { baird::SOLID };
        let outcome = env.step(Action::Int(&[action]), obs.as_mut())?;
        env.write_extras(&mut extras);
        let phi_next = DVector::from_iterator(n, obs.to_f64_vec());
        let td_error = outcome.reward + problem.gamma * phi_next.dot(&learner.target) - phi.dot(&learner.w);
        g.copy_from(&phi);
        g *= extras[ratio_index] * td_error;
        if !learner.apply(step, &g) {
            break;
        }
    }
    Ok(learner.run)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn momentum_free_period_map_is_m_k() {
        let problem = LinearProblem::baird(&BairdConfig::default());
        for k in [1, 7, 40] {
            let m = problem.m_k(0.05, k);
            let r = problem.basis.ncols();
            let direct = spectral_radius(&(problem.basis.transpose() * m * &problem.basis));
            let period = problem.period_radius(0.05, 0.0, k);
            assert!((direct - period).abs() < 1e-10, "k = {k}: {direct} vs {period} (rank {r})");
            // The (w, m) map with a vanishing momentum has the same radius.
            let augmented = problem.period_radius(0.05, 1e-12, k);
            assert!((augmented - period).abs() < 1e-6, "k = {k}: {augmented} vs {period}");
        }
    }

    #[test]
    fn eigenvalues_of_known_matrices() {
        // A rotation by 90° scaled by 2 (±2i), a diagonal with repeats, and a companion matrix
        // of (x - 1)(x - 2)(x - 3).
        let rotation = DMatrix::from_row_slice(2, 2, &[0.0, -2.0, 2.0, 0.0]);
        assert!((spectral_radius(&rotation) - 2.0).abs() < 1e-12);
        let repeated = DMatrix::from_diagonal(&DVector::from_vec(vec![0.5, 0.5, 0.5, 0.5, -0.9, 0.5]));
        assert!((spectral_radius(&repeated) - 0.9).abs() < 1e-12);
        let companion = DMatrix::from_row_slice(3, 3, &[6.0, -11.0, 6.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0]);
        let mut values: Vec<f64> = eigenvalues(&companion).unwrap().iter().map(|v| v.0).collect();
        values.sort_by(f64::total_cmp);
        for (v, want) in values.iter().zip([1.0, 2.0, 3.0]) {
            assert!((v - want).abs() < 1e-9, "{values:?}");
        }
    }

    #[test]
    fn baird_sigma_has_the_documented_null_direction() {
        let problem = LinearProblem::baird(&BairdConfig::default());
        assert_eq!(problem.basis.ncols(), 7);
        let null = DVector::from_vec(vec![0.25, 0.25, 0.25, 0.25, 0.25, 0.25, 1.0, -0.5]);
        assert!((&problem.phi * null).norm() < 1e-12);
    }

    #[test]
    fn bad_configs_name_the_field() {
        let cases = [
            (TdConfig { target_period: 0, ..TdConfig::default() }, "target_period"),
            (TdConfig { alpha: 0.0, ..TdConfig::default() }, "alpha"),
            (TdConfig { alpha: -1.0, ..TdConfig::default() }, "alpha"),
            (TdConfig { alpha: f64::NAN, ..TdConfig::default() }, "alpha"),
            (TdConfig { momentum: 1.0, ..TdConfig::default() }, "momentum"),
            (TdConfig { steps: 0, ..TdConfig::default() }, "steps"),
        ];
        for (config, field) in cases {
            let err = run_expected(&config, &BairdConfig::default()).unwrap_err().to_string();
            assert!(err.contains(field), "{err}");
        }
    }
}

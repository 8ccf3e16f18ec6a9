//! The discrete algebraic Riccati equation
//!
//! `P = AᵀPA − (AᵀPB + S)(R + BᵀPB)⁻¹(BᵀPA + Sᵀ) + Q`
//!
//! A first solution comes from the structured doubling algorithm (Chu, Fan & Lin 2005:
//! quadratic convergence, only `n × n` solves) when `R` is positive definite, or from plain
//! Riccati iteration otherwise (two COMPleib systems have a singular `R`); its gain, if it
//! stabilises, starts Newton–Kleinman iteration (Hewer 1971), which converges to *the*
//! stabilising solution even where doubling alone finds another (he1, whose `Q − S R⁻¹Sᵀ` is 0). No general-purpose crate solves the DARE; `nalgebra`
//! gives the dense factorisations. Every solution is checked: its relative residual and the
//! spectral radius of the closed loop `A + BK` (a stabilising solution has it below 1), so a
//! failure is an error that names its cause, never a NaN gain.

use nalgebra::{DMatrix, Schur};

use crate::error::{EnvError, Result};

/// A checked stabilising solution of the DARE.
#[derive(Clone, Debug)]
pub struct Riccati {
    /// The solution `P` (symmetric).
    pub p: DMatrix<f64>,
    /// The optimal gain `K = −(R + BᵀPB)⁻¹(BᵀPA + Sᵀ)` (`u = K x`).
    pub gain: DMatrix<f64>,
    /// `‖Ric(P) − P‖_F / max(1, ‖P‖_F)`.
    pub residual: f64,
    /// Spectral radius of `A + B K`.
    pub spectral_radius: f64,
}

/// Largest residual accepted as a solution.
pub const RESIDUAL_TOLERANCE: f64 = 1e-8;

/// The right-hand side `Ric(P)` and the gain it implies.
fn riccati_map(
    a: &DMatrix<f64>,
    b: &DMatrix<f64>,
    q: &DMatrix<f64>,
    r: &DMatrix<f64>,
    s: &DMatrix<f64>,
    p: &DMatrix<f64>,
) -> Option<(DMatrix<f64>, DMatrix<f64>)> {
    let pb = p * b;
    let gram = r + b.transpose() * &pb;
    let cross = b.transpose() * p * a + s.transpose();
    let solved = gram.lu().solve(&cross)?;
    let next = a.transpose() * p * a - cross.transpose() * &solved + q;
    Some(((&next + next.transpose()) * 0.5, -solved))
}

fn spectral_radius(m: &DMatrix<f64>) -> Option<f64> {
    let schur = Schur::try_new(m.clone(), f64::EPSILON, 10_000)?;
    Some(schur.complex_eigenvalues().iter().fold(0.0f64, |r, l| r.max(l.norm())))
}

/// Structured doubling for `P = ĀᵀPĀ − ĀᵀPG(I + GP)⁻¹... + Q̄` in the `S = 0` form.
fn doubling(a: &DMatrix<f64>, g: &DMatrix<f64>, h: &DMatrix<f64>) -> Option<DMatrix<f64>> {
    let n = a.nrows();
    let identity = DMatrix::<f64>::identity(n, n);
    let (mut a, mut g, mut h) = (a.clone(), g.clone(), h.clone());
    for _ in 0..200 {
        let w = (&identity + &g * &h).lu();
        let wa = w.solve(&a)?;
        let wg = w.solve(&g)?;
        let next_h = &h + a.transpose() * &h * &wa;
        let next_g = &g + &a * wg * a.transpose();
        a = &a * wa;
        let change = (&next_h - &h).norm();
        h = (&next_h + next_h.transpose()) * 0.5;
        g = (&next_g + next_g.transpose()) * 0.5;
        if !h.iter().all(|v| v.is_finite()) {
            return None;
        }
        if change <= 1e-14 * h.norm().max(1.0) {
            return Some(h);
        }
    }
    Some(h)
}

/// `X = Σ_j (Fᵀ)^j M F^j`, the solution of the Stein equation `X = FᵀXF + M` for `ρ(F) < 1`,
/// by doubling (`F ← F²`).
fn stein(f: &DMatrix<f64>, m: &DMatrix<f64>) -> Option<DMatrix<f64>> {
    let (mut x, mut f) = (m.clone(), f.clone());
    for _ in 0..64 {
        let term = f.transpose() * &x * &f;
        x += &term;
        f = &f * &f;
        if !x.iter().all(|v| v.is_finite()) {
            return None;
        }
        if term.norm() <= 1e-17 * x.norm().max(f64::MIN_POSITIVE) || f.norm() < 1e-300 {
            break;
        }
    }
    Some((&x + x.transpose()) * 0.5)
}

/// Newton–Kleinman (Hewer) iteration from a stabilising gain: each step evaluates the gain's
/// cost exactly (a Stein equation) and improves it; converges quadratically to the stabilising
/// solution.
#[allow(clippy::too_many_arguments)]
fn newton(
    a: &DMatrix<f64>,
    b: &DMatrix<f64>,
    q: &DMatrix<f64>,
    r: &DMatrix<f64>,
    s: &DMatrix<f64>,
    mut gain: DMatrix<f64>,
) -> Option<(DMatrix<f64>, DMatrix<f64>)> {
    let mut previous: Option<DMatrix<f64>> = None;
    for _ in 0..60 {
        let closed = a + b * &gain;
        let sk = s * &gain;
        let m = q + gain.transpose() * r * &gain + &sk + sk.transpose();
        let p = stein(&closed, &m)?;
        let (_, next_gain) = riccati_map(a, b, q, r, s, &p)?;
        gain = next_gain;
        if let Some(prev) = &previous {
            if (&p - prev).norm() <= 1e-14 * p.norm().max(1.0) {
                return Some((p, gain));
            }
        }
        previous = Some(p);
    }
    previous.map(|p| (p, gain))
}

fn is_stabilising(a: &DMatrix<f64>, b: &DMatrix<f64>, gain: &DMatrix<f64>) -> bool {
    spectral_radius(&(a + b * gain)).is_some_and(|r| r < 1.0 - 1e-12)
}

/// Solves the DARE for `(A, B, Q, R, S)`; errors say why no stabilising solution was found.
pub fn solve_dare(
    a: &DMatrix<f64>,
    b: &DMatrix<f64>,
    q: &DMatrix<f64>,
    r: &DMatrix<f64>,
    s: &DMatrix<f64>,
) -> Result<Riccati> {
    let n = a.nrows();
    let fail = |why: String| EnvError::Control(format!("no stabilising solution of the Riccati equation: {why}"));
    let r_positive = r.clone().cholesky().filter(|c| {
        let d = c.l_dirty().diagonal();
        let (lo, hi) = d.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), &v| (lo.min(v.abs()), hi.max(v.abs())));
        lo > 1e-7 * hi.max(1e-300)
    });
    // A first solution: doubling where R > 0, else Riccati iteration.
    let (first, regularised) = match &r_positive {
        Some(chol) => {
            // S = 0 form: Ā = A − B R⁻¹Sᵀ, Q̄ = Q − S R⁻¹Sᵀ, G = B R⁻¹Bᵀ.
            let r_inv_st = chol.solve(&s.transpose());
            let r_inv_bt = chol.solve(&b.transpose());
            let a_bar = a - b * &r_inv_st;
            let q_bar = q - s * &r_inv_st;
            let q_bar = (&q_bar + q_bar.transpose()) * 0.5;
            let g = b * &r_inv_bt;
            let g = (&g + g.transpose()) * 0.5;
            // Doubling finds the stabilising solution when (Ā, Q̄) is detectable; where it is not
            // (he1's Q̄ is 0), a slightly positive Q̄ still gives a stabilising gain to start
            // Newton's iteration from.
            let lift = 1e-6 * q_bar.norm().max(r.norm()).max(1e-12);
            let lifted = &q_bar + DMatrix::<f64>::identity(n, n) * lift;
            (doubling(&a_bar, &g, &q_bar), doubling(&a_bar, &g, &lifted))
        }
        None => {
            // Singular R: Riccati iteration from Q, which needs R + BᵀPB invertible only.
            let mut p = (q + q.transpose()) * 0.5;
            let mut ok = true;
            for _ in 0..200_000 {
                let Some((next, _)) = riccati_map(a, b, q, r, s, &p) else {
                    ok = false;
                    break;
                };
                let change = (&next - &p).norm();
                p = next;
                if !p.iter().all(|v| v.is_finite()) {
                    ok = false;
                    break;
                }
                if change <= 1e-15 * p.norm().max(1.0) {
                    break;
                }
            }
            (ok.then_some(p), None)
        }
    };
    let start_gain = [first, regularised]
        .into_iter()
        .flatten()
        .filter_map(|p| riccati_map(a, b, q, r, s, &p).map(|(_, k)| k))
        .find(|k| is_stabilising(a, b, k))
        .ok_or_else(|| {
            fail(
                "no stabilising feedback was found: some mode on or outside the unit circle cannot be moved \
                 by the input (the pair (A, B) is not stabilisable)"
                    .into(),
            )
        })?;
    let (p, _) = newton(a, b, q, r, s, start_gain).ok_or_else(|| fail("Newton's iteration broke down".into()))?;
    let (image, gain) = riccati_map(a, b, q, r, s, &p).ok_or_else(|| fail("R + BᵀPB is singular".into()))?;
    let residual = (&image - &p).norm() / p.norm().max(1.0);
    if !residual.is_finite() || residual > RESIDUAL_TOLERANCE {
        return Err(fail(format!("the best iterate leaves a relative residual of {residual:.2e}")));
    }
    let radius =
        spectral_radius(&(a + b * &gain)).ok_or_else(|| fail("the closed-loop eigenvalues did not converge".into()))?;
    if radius >= 1.0 - 1e-12 {
        return Err(fail(format!(
            "the closed loop A + BK keeps spectral radius {radius:.6} >= 1 (a mode on the unit circle that \
             the input cannot move)"
        )));
    }
    Ok(Riccati { p, gain, residual, spectral_radius: radius })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalar_dare_has_its_closed_form() {
        // p = a²p − a²p²b²/(r + b²p) + q with a = 2, b = 1, q = 1, r = 1:
        // p² − 4p − 1 = 0 → p = 2 + √5.
        let m = |v: f64| DMatrix::from_element(1, 1, v);
        let sol = solve_dare(&m(2.0), &m(1.0), &m(1.0), &m(1.0), &m(0.0)).unwrap_or_else(|e| panic!("{e}"));
        assert!((sol.p[(0, 0)] - (2.0 + 5f64.sqrt())).abs() < 1e-12);
        assert!(sol.spectral_radius < 1.0);
        // The singular-R path agrees where R is tiny but the problem is the same.
        let singular = solve_dare(&m(0.5), &m(1.0), &m(1.0), &m(0.0), &m(0.0)).unwrap_or_else(|e| panic!("{e}"));
        assert!((singular.p[(0, 0)] - 1.0).abs() < 1e-12, "{}", singular.p);
    }

    #[test]
    fn unstabilisable_pair_is_an_error() {
        // An unstable mode the input does not reach.
        let a = DMatrix::from_row_slice(2, 2, &[1.5, 0.0, 0.0, 0.5]);
        let b = DMatrix::from_row_slice(2, 1, &[0.0, 1.0]);
        let q = DMatrix::identity(2, 2);
        let r = DMatrix::identity(1, 1);
        let err = solve_dare(&a, &b, &q, &r, &DMatrix::zeros(2, 1)).err();
        assert!(matches!(err, Some(EnvError::Control(_))), "{err:?}");
    }
}

//! Fourier pseudo-spectral machinery shared by the PDE envs: real FFTs with numpy's conventions,
//! the 3/2-rule dealiased nonlinear term, and the ETDRK4 integrator with Kassam–Trefethen
//! contour-integral coefficients.
//!
//! Conventions (those of `numpy.fft`, which controlgym uses): the forward transform is
//! unnormalised; the inverse divides by the length and ignores the imaginary parts of bin 0 and,
//! for an even length, of the last bin. All buffers are allocated once, at construction.

use std::sync::Arc;

use realfft::num_complex::Complex64;
use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};

/// Forward and inverse real FFT of one length, with their scratch space.
pub(crate) struct RealFft {
    len: usize,
    forward: Arc<dyn RealToComplex<f64>>,
    inverse: Arc<dyn ComplexToReal<f64>>,
    scratch: Vec<Complex64>,
}

impl RealFft {
    pub(crate) fn new(planner: &mut RealFftPlanner<f64>, len: usize) -> Self {
        let forward = planner.plan_fft_forward(len);
        let inverse = planner.plan_fft_inverse(len);
        let scratch_len = forward.get_scratch_len().max(inverse.get_scratch_len());
        Self { len, forward, inverse, scratch: vec![Complex64::default(); scratch_len] }
    }

    /// Number of complex bins, `len / 2 + 1`.
    pub(crate) fn bins(&self) -> usize {
        self.len / 2 + 1
    }

    /// Unnormalised forward transform. `input` is used as scratch and left unspecified.
    pub(crate) fn forward(&mut self, input: &mut [f64], output: &mut [Complex64]) {
        // Lengths are fixed at construction, so the only possible error is a bug here.
        let result = self.forward.process_with_scratch(input, output, &mut self.scratch);
        debug_assert!(result.is_ok(), "{result:?}");
    }

    /// Inverse transform *without* the `1/len` factor. Like numpy, ignores the imaginary parts
    /// of bin 0 and (even lengths) of the last bin. `input` is used as scratch.
    pub(crate) fn inverse_unnormalised(&mut self, input: &mut [Complex64], output: &mut [f64]) {
        input[0].im = 0.0;
        if self.len % 2 == 0 {
            input[self.len / 2].im = 0.0;
        }
        let result = self.inverse.process_with_scratch(input, output, &mut self.scratch);
        debug_assert!(result.is_ok(), "{result:?}");
    }
}

/// Pointwise nonlinearity `g(u)` whose dealiased transform enters the right-hand side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pointwise {
    /// `u²`
    Square,
    /// `u³`
    Cube,
    /// `u (1 - u)`
    Logistic,
}

impl Pointwise {
    #[inline]
    fn apply(self, u: f64) -> f64 {
        match self {
            Pointwise::Square => u * u,
            Pointwise::Cube => u * u * u,
            Pointwise::Logistic => u * (1.0 - u),
        }
    }
}

/// `N(v) = multiplier ⊙ 𝓕[g(ũ)] + forcing`, with `ũ` the state on the 3/2-times finer grid
/// (zero-padded spectrum) and `𝓕` the forward transform truncated back to the coarse bins
/// (the 3/2 rule: the quadratic and cubic products alias no energy into the kept modes).
struct NonlinearTerm {
    padded: RealFft,
    pointwise: Pointwise,
    /// Per coarse bin, the operator applied to the dealiased transform (e.g. `-i k / 2`).
    multiplier: Vec<Complex64>,
    /// Transform of the actuator forcing `B u` (added undealiased, as controlgym does).
    forcing: Vec<Complex64>,
    spectrum: Vec<Complex64>,
    grid: Vec<f64>,
}

/// controlgym's zero-padding factor (`aa_factor`).
const PAD: f64 = 1.5;

impl NonlinearTerm {
    fn eval(&mut self, v: &[Complex64], out: &mut [Complex64]) {
        let bins = v.len();
        self.spectrum[..bins].copy_from_slice(v);
        self.spectrum[bins..].fill(Complex64::default());
        self.padded.inverse_unnormalised(&mut self.spectrum, &mut self.grid);
        // numpy: 1.5 * irfft(v, n = 3N/2), the inverse carrying 1/(3N/2).
        let inverse_scale = 1.0 / self.grid.len() as f64;
        for u in &mut self.grid {
            *u = self.pointwise.apply(PAD * (*u * inverse_scale));
        }
        self.padded.forward(&mut self.grid, &mut self.spectrum);
        for (((o, s), m), f) in out.iter_mut().zip(&self.spectrum).zip(&self.multiplier).zip(&self.forcing) {
            *o = m * (s * (1.0 / PAD)) + f;
        }
    }
}

/// `int(a // b)` as CPython computes it for floats (`(a - fmod(a, b)) / b`, then rounded to the
/// nearest integer): 0.5 // 0.005 is 99 and 0.01 // 1e-5 is 999, where `(a / b).floor()` says
/// 100 and 1000.
pub(crate) fn python_floor_div(a: f64, b: f64) -> f64 {
    let m = a % b;
    let mut div = (a - m) / b;
    if m != 0.0 && ((b < 0.0) != (m < 0.0)) {
        div -= 1.0;
    }
    let mut floor = div.floor();
    if div - floor > 0.5 {
        floor += 1.0;
    }
    floor
}

/// ETDRK4 coefficients `E, E/2, Q, f1, f2, f3` for the linear operator `l` and step `h`
/// (Kassam & Trefethen 2005, contour integrals on circles of radius 1 around `h l`).
///
/// `real_part_only` reproduces controlgym: 32 points on the upper half circle and the real part
/// of the mean, which is exact for a real `l` only. Otherwise 64 points on the whole circle and
/// the complex mean, correct for any `l` (KdV's `l = i k³`).
pub(crate) struct Coefficients<T = Complex64> {
    pub e: Vec<T>,
    pub e2: Vec<T>,
    pub q: Vec<T>,
    pub f1: Vec<T>,
    pub f2: Vec<T>,
    pub f3: Vec<T>,
}

impl Coefficients {
    /// The same coefficients as reals, where every one is real (a real `L`, or controlgym's
    /// real parts with a real `L`): half the multiplications in the integrator's loops.
    fn as_real(&self) -> Option<Coefficients<f64>> {
        let all = [&self.e, &self.e2, &self.q, &self.f1, &self.f2, &self.f3];
        if all.iter().any(|v| v.iter().any(|c| c.im != 0.0)) {
            return None;
        }
        let re = |v: &Vec<Complex64>| v.iter().map(|c| c.re).collect();
        Some(Coefficients {
            e: re(&self.e),
            e2: re(&self.e2),
            q: re(&self.q),
            f1: re(&self.f1),
            f2: re(&self.f2),
            f3: re(&self.f3),
        })
    }
}

/// The coefficients in the cheapest exact form.
enum Scheme {
    Real(Coefficients<f64>),
    Complex(Coefficients),
}

/// The stage vectors of one ETDRK4 step, in Fourier space.
struct Stages {
    v: Vec<Complex64>,
    a: Vec<Complex64>,
    b: Vec<Complex64>,
    c: Vec<Complex64>,
    next: Vec<Complex64>,
    nv: Vec<Complex64>,
    na: Vec<Complex64>,
    nb: Vec<Complex64>,
    nc: Vec<Complex64>,
}

/// `substeps` ETDRK4 steps of `s.v` (Cox & Matthews' scheme). A real coefficient times a complex
/// value is exactly the complex product with a zero imaginary part, so both forms give the same
/// numbers.
fn run_substeps<T>(
    k: &Coefficients<T>,
    term: &mut NonlinearTerm,
    s: &mut Stages,
    substeps: usize,
    stop_on_overflow: bool,
) -> Outcome
where
    T: Copy + std::ops::Mul<Complex64, Output = Complex64>,
{
    for _ in 0..substeps {
        term.eval(&s.v, &mut s.nv);
        for i in 0..s.v.len() {
            s.a[i] = k.e2[i] * s.v[i] + k.q[i] * s.nv[i];
        }
        term.eval(&s.a, &mut s.na);
        for i in 0..s.v.len() {
            s.b[i] = k.e2[i] * s.v[i] + k.q[i] * s.na[i];
        }
        term.eval(&s.b, &mut s.nb);
        for i in 0..s.v.len() {
            s.c[i] = k.e2[i] * s.a[i] + k.q[i] * (s.nb[i] * 2.0 - s.nv[i]);
        }
        term.eval(&s.c, &mut s.nc);
        let mut finite = true;
        for i in 0..s.v.len() {
            let next = k.e[i] * s.v[i] + k.f1[i] * s.nv[i] + k.f2[i] * ((s.na[i] + s.nb[i]) * 2.0) + k.f3[i] * s.nc[i];
            finite &= next.re.is_finite() && next.im.is_finite();
            s.next[i] = next;
        }
        if !finite && stop_on_overflow {
            return Outcome::StoppedOnOverflow;
        }
        std::mem::swap(&mut s.v, &mut s.next);
    }
    Outcome::Completed
}

pub(crate) fn etdrk4_coefficients(l: &[Complex64], h: f64, real_part_only: bool) -> Coefficients {
    let points: Vec<Complex64> = if real_part_only {
        let m = 32;
        (1..=m).map(|j| Complex64::new(0.0, std::f64::consts::PI * (j as f64 - 0.5) / m as f64).exp()).collect()
    } else {
        let m = 64;
        (1..=m).map(|j| Complex64::new(0.0, std::f64::consts::TAU * (j as f64 - 0.5) / m as f64).exp()).collect()
    };
    let n = l.len();
    let mut c = Coefficients {
        e: Vec::with_capacity(n),
        e2: Vec::with_capacity(n),
        q: Vec::with_capacity(n),
        f1: Vec::with_capacity(n),
        f2: Vec::with_capacity(n),
        f3: Vec::with_capacity(n),
    };
    let count = points.len() as f64;
    for &lk in l {
        let hl = lk * h;
        c.e.push(hl.exp());
        c.e2.push((hl / 2.0).exp());
        let (mut q, mut f1, mut f2, mut f3) =
            (Complex64::default(), Complex64::default(), Complex64::default(), Complex64::default());
        for &r in &points {
            let lr = hl + r;
            let (elr, lr2) = (lr.exp(), lr * lr);
            let lr3 = lr2 * lr;
            q += ((lr / 2.0).exp() - 1.0) / lr;
            f1 += (-4.0 - lr + elr * (4.0 - lr * 3.0 + lr2)) / lr3;
            f2 += (2.0 + lr + elr * (-2.0 + lr)) / lr3;
            f3 += (-4.0 - lr * 3.0 - lr2 + elr * (4.0 - lr)) / lr3;
        }
        let finish = |sum: Complex64| {
            let mean = sum / count;
            if real_part_only { Complex64::new(h * mean.re, 0.0) } else { mean * h }
        };
        c.q.push(finish(q));
        c.f1.push(finish(f1));
        c.f2.push(finish(f2));
        c.f3.push(finish(f3));
    }
    c
}

/// What one ETDRK4 sample interval did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Every substep ran.
    Completed,
    /// A substep overflowed; in controlgym-compat mode the state stayed at the last finite
    /// substep and the remaining substeps were skipped (controlgym's `except RuntimeWarning: break`).
    StoppedOnOverflow,
}

/// The ETDRK4 integrator of one semilinear PDE `v' = L v + N(v, u)` in Fourier space.
pub(crate) struct Etdrk4 {
    fft: RealFft,
    scheme: Scheme,
    substeps: usize,
    /// controlgym-compat: stop at the last finite substep on overflow.
    stop_on_overflow: bool,
    term: NonlinearTerm,
    stages: Stages,
    real: Vec<f64>,
}

/// How to build an [`Etdrk4`].
pub(crate) struct Etdrk4Spec<'a> {
    pub n_state: usize,
    /// `L(k)` per rfft bin.
    pub linear: &'a [Complex64],
    /// Operator applied to the dealiased `𝓕[g(ũ)]`, per bin.
    pub multiplier: Vec<Complex64>,
    pub pointwise: Pointwise,
    pub h: f64,
    pub substeps: usize,
    pub controlgym: bool,
}

impl Etdrk4 {
    pub(crate) fn new(spec: Etdrk4Spec<'_>) -> Self {
        let mut planner = RealFftPlanner::<f64>::new();
        let fft = RealFft::new(&mut planner, spec.n_state);
        // n_state is even, so 3 n / 2 is an integer.
        let padded = RealFft::new(&mut planner, spec.n_state * 3 / 2);
        let bins = fft.bins();
        let real_linear = spec.linear.iter().all(|l| l.im == 0.0);
        // controlgym keeps only the real part of the contour means; for a real L that is exact,
        // so Keel's default mode uses the same numbers, and the complex mean only where L is not
        // real (KdV).
        let coefficients = etdrk4_coefficients(spec.linear, spec.h, spec.controlgym || real_linear);
        let zeros = vec![Complex64::default(); bins];
        let term = NonlinearTerm {
            spectrum: padded.forward_output(),
            grid: vec![0.0; padded.len],
            padded,
            pointwise: spec.pointwise,
            multiplier: spec.multiplier,
            forcing: zeros.clone(),
        };
        let scheme = match coefficients.as_real() {
            Some(real) => Scheme::Real(real),
            None => Scheme::Complex(coefficients),
        };
        let stages = Stages {
            v: zeros.clone(),
            a: zeros.clone(),
            b: zeros.clone(),
            c: zeros.clone(),
            next: zeros.clone(),
            nv: zeros.clone(),
            na: zeros.clone(),
            nb: zeros.clone(),
            nc: zeros,
        };
        Self {
            real: vec![0.0; spec.n_state],
            fft,
            scheme,
            substeps: spec.substeps,
            stop_on_overflow: spec.controlgym,
            term,
            stages,
        }
    }

    /// Integrates `state` over one sample interval with the actuator forcing `force` (`B u`,
    /// held constant) and writes the result into `out`.
    pub(crate) fn advance(&mut self, state: &[f64], force: &[f64], out: &mut [f64]) -> Outcome {
        self.real.copy_from_slice(force);
        self.fft.forward(&mut self.real, &mut self.term.forcing);
        self.real.copy_from_slice(state);
        self.fft.forward(&mut self.real, &mut self.stages.v);
        let outcome = match &self.scheme {
            Scheme::Real(k) => run_substeps(k, &mut self.term, &mut self.stages, self.substeps, self.stop_on_overflow),
            Scheme::Complex(k) => {
                run_substeps(k, &mut self.term, &mut self.stages, self.substeps, self.stop_on_overflow)
            }
        };
        self.fft.inverse_unnormalised(&mut self.stages.v, out);
        let scale = 1.0 / out.len() as f64;
        for x in out.iter_mut() {
            *x *= scale;
        }
        outcome
    }
}

/// The exact transition of a linear single-field PDE: each Fourier mode is multiplied by its
/// complex factor `e^{λ(k) T}` (convection–diffusion–reaction).
pub(crate) struct ModalScalar {
    fft: RealFft,
    factor: Vec<Complex64>,
    spectrum: Vec<Complex64>,
    real: Vec<f64>,
}

impl ModalScalar {
    pub(crate) fn new(factor: Vec<Complex64>, n: usize) -> Self {
        let mut planner = RealFftPlanner::<f64>::new();
        let fft = RealFft::new(&mut planner, n);
        Self { spectrum: fft.forward_output(), real: vec![0.0; n], fft, factor }
    }

    /// `out = Re(ifft(factor ⊙ fft(state))) + impulse`.
    pub(crate) fn apply(&mut self, state: &[f64], impulse: &[f64], out: &mut [f64]) {
        self.real.copy_from_slice(state);
        self.fft.forward(&mut self.real, &mut self.spectrum);
        for (s, f) in self.spectrum.iter_mut().zip(&self.factor) {
            *s *= f;
        }
        self.fft.inverse_unnormalised(&mut self.spectrum, out);
        let scale = 1.0 / out.len() as f64;
        for (x, b) in out.iter_mut().zip(impulse) {
            *x = *x * scale + b;
        }
    }
}

/// The exact transition of a linear PDE with two stacked fields `[p; q]` (Wave: `[u; u_t]`,
/// Schrödinger: `[Re ψ; Im ψ]`): per wavenumber a real 2×2 block `[[a, b], [c, d]]` maps
/// `(p̂, q̂)` to `(a p̂ + b q̂, c p̂ + d q̂)`.
pub(crate) struct ModalPair {
    fft: RealFft,
    blocks: Vec<[f64; 4]>,
    p: Vec<Complex64>,
    q: Vec<Complex64>,
    real: Vec<f64>,
}

impl ModalPair {
    /// `blocks[j]` for rfft bin `j` of a field of `n` points.
    pub(crate) fn new(blocks: Vec<[f64; 4]>, n: usize) -> Self {
        let mut planner = RealFftPlanner::<f64>::new();
        let fft = RealFft::new(&mut planner, n);
        Self { p: fft.forward_output(), q: fft.forward_output(), real: vec![0.0; n], fft, blocks }
    }

    /// Applies the transition to the stacked `state` (length `2n`) and adds `impulse`.
    pub(crate) fn apply(&mut self, state: &[f64], impulse: &[f64], out: &mut [f64]) {
        let n = self.real.len();
        self.real.copy_from_slice(&state[..n]);
        self.fft.forward(&mut self.real, &mut self.p);
        self.real.copy_from_slice(&state[n..]);
        self.fft.forward(&mut self.real, &mut self.q);
        for ((p, q), [a, b, c, d]) in self.p.iter_mut().zip(self.q.iter_mut()).zip(&self.blocks) {
            let (p0, q0) = (*p, *q);
            *p = p0 * *a + q0 * *b;
            *q = p0 * *c + q0 * *d;
        }
        let scale = 1.0 / n as f64;
        let (first, second) = out.split_at_mut(n);
        self.fft.inverse_unnormalised(&mut self.p, first);
        self.fft.inverse_unnormalised(&mut self.q, second);
        for (x, b) in out.iter_mut().zip(impulse) {
            *x = *x * scale + b;
        }
    }
}

impl RealFft {
    fn forward_output(&self) -> Vec<Complex64> {
        vec![Complex64::default(); self.bins()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_division_follows_cpython() {
        assert_eq!(python_floor_div(0.5, 0.005), 99.0);
        assert_eq!(python_floor_div(0.01, 1e-5), 999.0);
        assert_eq!(python_floor_div(0.05, 0.001), 50.0);
        assert_eq!(python_floor_div(0.1, 0.01), 10.0);
        assert_eq!(python_floor_div(0.01, 0.001), 10.0);
    }

    #[test]
    fn contour_coefficients_match_closed_forms() {
        // For moderate |hL| the contour means equal the closed forms of Cox & Matthews.
        let h = 0.1;
        let l = [Complex64::new(-3.0, 0.0), Complex64::new(0.0, 2.0)];
        let c = etdrk4_coefficients(&l, h, false);
        for (k, &lk) in l.iter().enumerate() {
            let z = lk * h;
            let q = ((z / 2.0).exp() - 1.0) / lk;
            let f1 = (-4.0 - z + z.exp() * (4.0 - z * 3.0 + z * z)) / (z * z * lk);
            for (got, want) in [(c.q[k], q), (c.f1[k], f1)] {
                assert!((got - want).norm() < 1e-12 * want.norm(), "{k}: {got} vs {want}");
            }
        }
        // controlgym's half-circle real part is right for a real L and wrong for an imaginary one.
        let half = etdrk4_coefficients(&l, h, true);
        assert!((half.q[0] - c.q[0]).norm() < 1e-13);
        assert!((half.q[1] - c.q[1]).norm() > 1e-4);
    }

    #[test]
    fn inverse_ignores_imaginary_edges_like_numpy() {
        let mut planner = RealFftPlanner::<f64>::new();
        let mut fft = RealFft::new(&mut planner, 8);
        let mut x = vec![1.0, 2.0, 0.5, -1.0, 3.0, 0.0, -2.0, 1.5];
        let original = x.clone();
        let mut spectrum = fft.forward_output();
        fft.forward(&mut x, &mut spectrum);
        spectrum[0].im = 7.0;
        spectrum[4].im = -3.0;
        let mut back = vec![0.0; 8];
        fft.inverse_unnormalised(&mut spectrum, &mut back);
        for (b, o) in back.iter().zip(&original) {
            assert!((b / 8.0 - o).abs() < 1e-14);
        }
    }
}

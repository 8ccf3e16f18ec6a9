//! Observation and action spaces, as Gymnasium's `Box`, `Discrete` and `MultiDiscrete`.
//!
//! Observations travel as flat rows of the space's element type ([`crate::obs`]); actions travel
//! as [`Action`]: integers for the discrete spaces, `f32` or `f64` for Box (its `dtype`).

use rand::RngExt;
use serde::{Deserialize, Serialize};

use crate::error::{EnvError, Result};
use crate::obs::ObsRef;

/// Element type of a Box space, as numpy names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    /// `np.float32`
    Float32,
    /// `np.float64`
    Float64,
    /// `np.uint8`
    Uint8,
}

impl DType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::Float32 => 4,
            DType::Float64 => 8,
            DType::Uint8 => 1,
        }
    }

    /// numpy's name of the type.
    pub fn name(self) -> &'static str {
        match self {
            DType::Float32 => "float32",
            DType::Float64 => "float64",
            DType::Uint8 => "uint8",
        }
    }
}

/// A box in R^n: bounds, a shape and an element type.
///
/// Bounds are per element, or *scalar*: one value that holds for every element, as Gymnasium's
/// `Box(0, 255, shape)`. A scalar bound stores one number whatever the shape, so that an image
/// space (an Atari frame stack has millions of elements) costs no memory per element; read
/// bounds through [`BoxSpace::bounds`], [`BoxSpace::low_at`] and [`BoxSpace::high_at`], which
/// see both forms alike.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BoxSpace {
    /// Lower bounds: one per element (row-major over `shape`), or one for every element.
    pub low: Vec<f64>,
    /// Upper bounds: one per element, or one for every element.
    pub high: Vec<f64>,
    /// Shape; the flat length is its product.
    pub shape: Vec<usize>,
    /// Element type.
    pub dtype: DType,
}

impl BoxSpace {
    /// A 1-D float32 box with the given bounds.
    pub fn vector(low: Vec<f64>, high: Vec<f64>) -> Self {
        let n = low.len();
        debug_assert_eq!(n, high.len());
        Self { low, high, shape: vec![n], dtype: DType::Float32 }
    }

    /// A 1-D float32 box with the same bounds `[-b, b]` per element.
    pub fn symmetric(bound: &[f64]) -> Self {
        Self::vector(bound.iter().map(|b| -b).collect(), bound.to_vec())
    }

    /// A box of `shape` whose every element lies in `[low, high]`, with scalar bounds (one
    /// number each, whatever the shape).
    pub fn uniform(low: f64, high: f64, shape: Vec<usize>, dtype: DType) -> Self {
        Self { low: vec![low], high: vec![high], shape, dtype }
    }

    /// Whether the bounds are scalars that hold for every element (see the type's docs).
    pub fn has_scalar_bounds(&self) -> bool {
        self.low.len() == 1 && self.high.len() == 1 && self.len() != 1
    }

    /// The lower bound of element `k`.
    #[inline]
    pub fn low_at(&self, k: usize) -> f64 {
        if self.low.len() == 1 { self.low[0] } else { self.low[k] }
    }

    /// The upper bound of element `k`.
    #[inline]
    pub fn high_at(&self, k: usize) -> f64 {
        if self.high.len() == 1 { self.high[0] } else { self.high[k] }
    }

    /// `(low, high)` of every element, in order, scalar bounds repeated.
    pub fn bounds(&self) -> impl Iterator<Item = (f64, f64)> + '_ {
        (0..self.len()).map(|k| (self.low_at(k), self.high_at(k)))
    }

    /// The same box with element type `dtype`.
    pub fn with_dtype(mut self, dtype: DType) -> Self {
        self.dtype = dtype;
        self
    }

    /// Number of elements (the product of the shape).
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the box has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Integers `start, ..., start + n - 1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Discrete {
    /// Number of values.
    pub n: i64,
    /// Smallest value (Gymnasium's `start`, usually 0).
    pub start: i64,
}

/// A vector of independent discrete choices, element `k` in `0..nvec[k]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MultiDiscrete {
    /// Number of values of each element.
    pub nvec: Vec<i64>,
}

/// A space of observations or actions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Space {
    /// Gymnasium `Box`.
    Box(BoxSpace),
    /// Gymnasium `Discrete`.
    Discrete(Discrete),
    /// Gymnasium `MultiDiscrete`.
    MultiDiscrete(MultiDiscrete),
}

/// One action, or a batch of actions laid out row by row.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Action<'a> {
    /// Values of a `Discrete` (one per env) or `MultiDiscrete` space.
    Int(&'a [i64]),
    /// Values of a `float32` `Box` space.
    Float(&'a [f32]),
    /// Values of a `float64` `Box` space (which also takes `Float`: widening is exact).
    Float64(&'a [f64]),
}

impl Action<'_> {
    /// Number of scalars held.
    pub fn len(&self) -> usize {
        match self {
            Action::Int(v) => v.len(),
            Action::Float(v) => v.len(),
            Action::Float64(v) => v.len(),
        }
    }

    /// Whether no scalar is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Row `i` of a batch whose rows have `width` scalars.
    pub fn row(&self, i: usize, width: usize) -> Action<'_> {
        match self {
            Action::Int(v) => Action::Int(&v[i * width..(i + 1) * width]),
            Action::Float(v) => Action::Float(&v[i * width..(i + 1) * width]),
            Action::Float64(v) => Action::Float64(&v[i * width..(i + 1) * width]),
        }
    }
}

/// Owned action, for samplers and files.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OwnedAction {
    /// A single integer (Discrete).
    Scalar(i64),
    /// Integers (MultiDiscrete).
    Ints(Vec<i64>),
    /// Floats (float32 Box).
    Floats(Vec<f32>),
    /// Doubles (float64 Box). Deserialising never produces this variant (untagged JSON numbers
    /// read as `Floats`): use [`Space::parse_action`] to read an action in the space's type.
    Floats64(Vec<f64>),
}

impl OwnedAction {
    /// Borrow as an [`Action`].
    pub fn as_action(&self) -> Action<'_> {
        match self {
            OwnedAction::Scalar(v) => Action::Int(std::slice::from_ref(v)),
            OwnedAction::Ints(v) => Action::Int(v),
            OwnedAction::Floats(v) => Action::Float(v),
            OwnedAction::Floats64(v) => Action::Float64(v),
        }
    }
}

impl Space {
    /// Number of scalars in one flat element of the space (1 for Discrete).
    pub fn flat_len(&self) -> usize {
        match self {
            Space::Box(b) => b.len(),
            Space::Discrete(_) => 1,
            Space::MultiDiscrete(m) => m.nvec.len(),
        }
    }

    /// Whether elements are integers (Discrete / MultiDiscrete).
    pub fn is_integer(&self) -> bool {
        !matches!(self, Space::Box(_))
    }

    /// Whether the observation row `x` lies in the space.
    pub fn contains(&self, x: ObsRef<'_>) -> bool {
        if x.len() != self.flat_len() {
            return false;
        }
        match self {
            Space::Box(b) => x.iter_f64().zip(b.bounds()).all(|(v, (lo, hi))| {
                // A float32 observation may round just outside a float64 bound.
                let slack = if b.dtype == DType::Float32 { 1e-6 * (1.0 + v.abs()) } else { 0.0 };
                !v.is_nan() && v >= lo - slack && v <= hi + slack
            }),
            Space::Discrete(d) => {
                let v = x.get(0);
                v.fract() == 0.0 && v >= d.start as f64 && v < (d.start + d.n) as f64
            }
            Space::MultiDiscrete(m) => {
                x.iter_f64().zip(&m.nvec).all(|(v, &n)| v.fract() == 0.0 && v >= 0.0 && v < n as f64)
            }
        }
    }

    /// The dtype of a Box space (`None` for the discrete spaces).
    pub fn box_dtype(&self) -> Option<DType> {
        match self {
            Space::Box(b) => Some(b.dtype),
            _ => None,
        }
    }

    /// Checks that `action` is a valid element: right kind and length; in range for discrete
    /// spaces; finite for Box (Box bounds are the env's business: Gymnasium's Pendulum and
    /// MountainCarContinuous clip out-of-range torques themselves).
    #[inline]
    pub fn check_action(&self, action: Action<'_>) -> Result<()> {
        let want = self.flat_len();
        if action.len() != want {
            return Err(EnvError::InvalidAction(format!("expected {want} value(s), got {}", action.len())));
        }
        let not_finite = |k: usize, v: f64| Err(EnvError::InvalidAction(format!("element {k} is {v}")));
        match (self, action) {
            (Space::Box(b), Action::Float(v)) if b.dtype != DType::Uint8 => {
                match v.iter().position(|x| !x.is_finite()) {
                    Some(k) => not_finite(k, f64::from(v[k])),
                    None => Ok(()),
                }
            }
            (Space::Box(b), Action::Float64(v)) if b.dtype == DType::Float64 => {
                match v.iter().position(|x| !x.is_finite()) {
                    Some(k) => not_finite(k, v[k]),
                    None => Ok(()),
                }
            }
            (Space::Box(b), Action::Float64(_) | Action::Float(_)) => Err(EnvError::InvalidAction(format!(
                "this env takes {} actions, got {}",
                b.dtype.name(),
                if matches!(action, Action::Float64(_)) { "float64" } else { "float32" }
            ))),
            (Space::Discrete(d), Action::Int(v)) => {
                if v[0] < d.start || v[0] >= d.start + d.n {
                    Err(EnvError::InvalidAction(format!("{} is outside Discrete({}, start={})", v[0], d.n, d.start)))
                } else {
                    Ok(())
                }
            }
            (Space::MultiDiscrete(m), Action::Int(v)) => {
                match v.iter().zip(&m.nvec).position(|(&a, &n)| a < 0 || a >= n) {
                    Some(k) => {
                        Err(EnvError::InvalidAction(format!("element {k} = {} is outside 0..{}", v[k], m.nvec[k])))
                    }
                    None => Ok(()),
                }
            }
            (Space::Box(_), Action::Int(_)) => {
                Err(EnvError::InvalidAction("this env takes float actions (Box space), got integers".into()))
            }
            (_, Action::Float(_) | Action::Float64(_)) => {
                Err(EnvError::InvalidAction("this env takes integer actions (Discrete space), got floats".into()))
            }
        }
    }

    /// Checks `action` against this space and returns its one integer (Discrete spaces).
    #[inline]
    pub fn discrete_action(&self, action: Action<'_>) -> Result<i64> {
        // The valid case in a few instructions (every env step of a discrete env comes here);
        // anything else takes the full check, which names what is wrong.
        if let (Space::Discrete(d), Action::Int(&[value])) = (self, action) {
            if value >= d.start && value < d.start + d.n {
                return Ok(value);
            }
        }
        self.check_action(action)?;
        match action {
            Action::Int(&[value]) => Ok(value),
            _ => Err(EnvError::InvalidAction("expected one integer".into())),
        }
    }

    /// Checks `action` against this space and returns its floats (float32 Box spaces).
    #[inline]
    pub fn box_action<'a>(&self, action: Action<'a>) -> Result<&'a [f32]> {
        if let (Space::Box(b), Action::Float(values)) = (self, action) {
            if b.dtype == DType::Float32 && values.len() == b.len() && values.iter().all(|x| x.is_finite()) {
                return Ok(values);
            }
        }
        self.check_action(action)?;
        match action {
            Action::Float(values) => Ok(values),
            _ => Err(EnvError::InvalidAction("expected float32 values".into())),
        }
    }

    /// Checks `action` against this space and writes its values as `f64` into `out` (float64
    /// Box spaces take `Float64` as is and `Float` widened, which is exact).
    #[inline]
    pub fn box_action_f64(&self, action: Action<'_>, out: &mut [f64]) -> Result<()> {
        self.check_action(action)?;
        match action {
            Action::Float64(values) if values.len() == out.len() => out.copy_from_slice(values),
            Action::Float(values) if values.len() == out.len() => {
                out.iter_mut().zip(values).for_each(|(o, &v)| *o = f64::from(v));
            }
            _ => return Err(EnvError::InvalidAction(format!("expected {} float values", out.len()))),
        }
        Ok(())
    }

    /// Reads one action of this space from JSON (a number or a list), in the space's type: a
    /// float64 Box keeps every digit.
    pub fn parse_action(&self, value: &serde_json::Value) -> Result<OwnedAction> {
        let bad = |what: &str| EnvError::InvalidAction(format!("expected {what}, got {value}"));
        let list: Vec<&serde_json::Value> = match value {
            serde_json::Value::Array(items) => items.iter().collect(),
            other => vec![other],
        };
        match self {
            Space::Discrete(_) => match list.as_slice() {
                [v] => v.as_i64().map(OwnedAction::Scalar).ok_or_else(|| bad("an integer")),
                _ => Err(bad("one integer")),
            },
            Space::MultiDiscrete(_) => list
                .iter()
                .map(|v| v.as_i64())
                .collect::<Option<Vec<_>>>()
                .map(OwnedAction::Ints)
                .ok_or_else(|| bad("integers")),
            Space::Box(b) => {
                let values =
                    list.iter().map(|v| v.as_f64()).collect::<Option<Vec<_>>>().ok_or_else(|| bad("numbers"))?;
                Ok(match b.dtype {
                    DType::Float64 => OwnedAction::Floats64(values),
                    _ => OwnedAction::Floats(values.iter().map(|&v| v as f32).collect()),
                })
            }
        }
    }

    /// Checks a batch of `rows` actions laid out row by row. The common all-valid case is one
    /// branch-free pass; on failure the error names the first bad row.
    pub fn check_batch(&self, actions: Action<'_>, rows: usize) -> Result<()> {
        let width = self.flat_len();
        let all_valid = actions.len() == rows * width
            && match (self, actions) {
                (Space::Discrete(d), Action::Int(v)) => {
                    v.iter().fold(true, |ok, &a| ok & (a >= d.start) & (a < d.start + d.n))
                }
                (Space::MultiDiscrete(m), Action::Int(v)) => v
                    .chunks_exact(width.max(1))
                    .all(|row| row.iter().zip(&m.nvec).fold(true, |ok, (&a, &n)| ok & (a >= 0) & (a < n))),
                (Space::Box(b), Action::Float(v)) if b.dtype != DType::Uint8 => {
                    v.iter().fold(true, |ok, x| ok & x.is_finite())
                }
                (Space::Box(b), Action::Float64(v)) if b.dtype == DType::Float64 => {
                    v.iter().fold(true, |ok, x| ok & x.is_finite())
                }
                _ => false,
            };
        if all_valid {
            return Ok(());
        }
        if actions.len() != rows * width {
            return Err(EnvError::InvalidAction(format!(
                "expected {rows} x {width} = {} values for the batch, got {}",
                rows * width,
                actions.len()
            )));
        }
        for i in 0..rows {
            self.check_action(actions.row(i, width))
                .map_err(|e| EnvError::InvalidAction(format!("sub-env {i}: {e}")))?;
        }
        Err(EnvError::InvalidAction("invalid batch".into()))
    }

    /// Draws a uniform element (Box: uniform within finite bounds, standard normal along
    /// unbounded directions, as Gymnasium).
    pub fn sample<R: rand::Rng + ?Sized>(&self, rng: &mut R) -> OwnedAction {
        match self {
            Space::Box(b) => {
                let values = b.bounds().map(|(lo, hi)| sample_interval(rng, lo, hi));
                match b.dtype {
                    DType::Float64 => OwnedAction::Floats64(values.collect()),
                    _ => OwnedAction::Floats(values.map(|v| v as f32).collect()),
                }
            }
            Space::Discrete(d) => OwnedAction::Scalar(d.start + rng.random_range(0..d.n.max(1))),
            Space::MultiDiscrete(m) => {
                OwnedAction::Ints(m.nvec.iter().map(|&n| rng.random_range(0..n.max(1))).collect())
            }
        }
    }

    /// A short human description, e.g. `Box(-2, 2, (1,), float32)` or `Discrete(2)`.
    pub fn describe(&self) -> String {
        match self {
            Space::Box(b) => {
                let shape: Vec<String> = b.shape.iter().map(usize::to_string).collect();
                let shape =
                    if shape.len() == 1 { format!("({},)", shape[0]) } else { format!("({})", shape.join(", ")) };
                let dtype = b.dtype.name();
                let same = |v: &[f64]| v.windows(2).all(|w| w[0] == w[1]);
                if !b.is_empty() && same(&b.low) && same(&b.high) {
                    format!("Box({}, {}, {shape}, {dtype})", fmt_bound(b.low[0]), fmt_bound(b.high[0]))
                } else {
                    format!("Box({shape}, {dtype})")
                }
            }
            Space::Discrete(d) if d.start == 0 => format!("Discrete({})", d.n),
            Space::Discrete(d) => format!("Discrete({}, start={})", d.n, d.start),
            Space::MultiDiscrete(m) => format!("MultiDiscrete({:?})", m.nvec),
        }
    }
}

fn fmt_bound(v: f64) -> String {
    if v.abs() >= f64::from(f32::MAX) * 0.99 {
        if v > 0.0 { "inf".into() } else { "-inf".into() }
    } else {
        format!("{v}")
    }
}

fn sample_interval<R: rand::Rng + ?Sized>(rng: &mut R, lo: f64, hi: f64) -> f64 {
    let big = f64::from(f32::MAX) * 0.5;
    let normal = |rng: &mut R| {
        // Box-Muller; only for unbounded directions.
        let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
        let u2: f64 = rng.random();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    };
    match (lo > -big, hi < big) {
        (true, true) => lo + (hi - lo) * rng.random::<f64>(),
        (true, false) => lo - (1.0 - rng.random::<f64>()).ln(),
        (false, true) => hi + (1.0 - rng.random::<f64>()).ln(),
        (false, false) => normal(rng),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn discrete_checks_range_kind_and_length() {
        let s = Space::Discrete(Discrete { n: 3, start: 0 });
        assert!(s.check_action(Action::Int(&[2])).is_ok());
        assert!(s.check_action(Action::Int(&[3])).is_err());
        assert!(s.check_action(Action::Int(&[-1])).is_err());
        assert!(s.check_action(Action::Int(&[0, 1])).is_err());
        assert!(s.check_action(Action::Float(&[0.0])).is_err());
    }

    #[test]
    fn box_rejects_non_finite_and_wrong_length() {
        let s = Space::Box(BoxSpace::symmetric(&[2.0]));
        assert!(s.check_action(Action::Float(&[1.5])).is_ok());
        assert!(s.check_action(Action::Float(&[f32::NAN])).is_err());
        assert!(s.check_action(Action::Float(&[f32::INFINITY])).is_err());
        assert!(s.check_action(Action::Float(&[])).is_err());
        let has = |x: f32| s.contains(ObsRef::F32(&[x]));
        assert!(has(1.0) && !has(2.5) && !has(f32::NAN));
    }

    #[test]
    fn float64_boxes_take_doubles_exactly() {
        let s = Space::Box(BoxSpace::symmetric(&[2.0, 2.0]).with_dtype(DType::Float64));
        let mut out = [0.0; 2];
        let x = 0.1_f64 + 1e-12;
        assert!(s.box_action_f64(Action::Float64(&[x, -x]), &mut out).is_ok());
        assert_eq!(out, [x, -x]);
        assert!(s.box_action_f64(Action::Float(&[0.5, 0.25]), &mut out).is_ok());
        assert_eq!(out, [0.5, 0.25]);
        let f32_box = Space::Box(BoxSpace::symmetric(&[2.0]));
        assert!(f32_box.check_action(Action::Float64(&[0.5])).is_err());
        let parsed = s.parse_action(&serde_json::json!([x, 1.0]));
        assert_eq!(parsed.ok(), Some(OwnedAction::Floats64(vec![x, 1.0])));
    }

    #[test]
    fn samples_are_in_space_and_seeded() {
        let spaces = [
            Space::Box(BoxSpace::vector(vec![-1.0, 0.0], vec![1.0, 5.0])),
            Space::Discrete(Discrete { n: 4, start: 2 }),
            Space::MultiDiscrete(MultiDiscrete { nvec: vec![2, 3] }),
        ];
        for s in &spaces {
            let mut a = rand_pcg::Pcg64::seed_from_u64(1);
            let mut b = rand_pcg::Pcg64::seed_from_u64(1);
            for _ in 0..100 {
                let x = s.sample(&mut a);
                assert_eq!(x, s.sample(&mut b));
                assert!(s.check_action(x.as_action()).is_ok(), "{x:?} not in {s:?}");
            }
        }
    }

    /// A scalar-bounded box holds two numbers whatever its shape, and reads, checks, samples
    /// and describes as the same box with per-element bounds.
    #[test]
    fn scalar_bounds_act_as_per_element_ones_without_their_memory() {
        let shape = vec![4, 84, 84];
        let n: usize = shape.iter().product();
        let scalar = BoxSpace::uniform(0.0, 255.0, shape.clone(), DType::Uint8);
        let full = BoxSpace { low: vec![0.0; n], high: vec![255.0; n], shape, dtype: DType::Uint8 };
        assert_eq!((scalar.low.len(), scalar.high.len()), (1, 1));
        assert!(scalar.has_scalar_bounds() && !full.has_scalar_bounds());
        assert_eq!(scalar.len(), n);
        assert!(scalar.bounds().eq(full.bounds()));
        assert_eq!((scalar.low_at(n - 1), scalar.high_at(n - 1)), (0.0, 255.0));
        let (scalar, full) = (Space::Box(scalar), Space::Box(full));
        assert_eq!(scalar.flat_len(), n);
        assert_eq!(scalar.describe(), full.describe());
        let mut pixels = vec![255u8; n];
        assert!(scalar.contains(ObsRef::U8(&pixels)));
        pixels.pop();
        assert!(!scalar.contains(ObsRef::U8(&pixels)), "a row of another length");
        let floats = Space::Box(BoxSpace::uniform(-1.0, 1.0, vec![2, 3], DType::Float32));
        assert!(
            floats.contains(ObsRef::F32(&[0.5; 6])) && !floats.contains(ObsRef::F32(&[0.5, 0.5, 0.5, 0.5, 0.5, 2.0]))
        );
        let mut rng = rand_pcg::Pcg64::seed_from_u64(3);
        let sampled = floats.sample(&mut rng);
        assert!(floats.check_action(sampled.as_action()).is_ok() && sampled.as_action().len() == 6);
        assert!(floats.box_action(Action::Float(&[0.0; 6])).is_ok());
    }

    #[test]
    fn describes_like_gymnasium() {
        assert_eq!(Space::Discrete(Discrete { n: 2, start: 0 }).describe(), "Discrete(2)");
        assert_eq!(Space::Box(BoxSpace::symmetric(&[2.0])).describe(), "Box(-2, 2, (1,), float32)");
    }
}

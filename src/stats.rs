//! Aggregate statistics of a benchmark, as rliable defines them (Agarwal et al., *Deep RL at the
//! Edge of the Statistical Precipice*, NeurIPS 2021), on score matrices of runs × tasks.
//!
//! Written here rather than called from Python because `keel report` is a Rust command and no
//! Rust crate implements them; every estimate is golden-tested against rliable 1.2.0
//! (`scripts/golden_rliable.py`, fixture `tests/fixtures/rliable.json`).
//!
//! - mean: the mean of the per-task means; median: the median of the per-task means;
//! - IQM: the 25 % trimmed mean of all run × task scores (scipy's `trim_mean`);
//! - optimality gap: `γ − mean(min(score, γ))`, γ = 1;
//! - 95 % intervals: percentile intervals of a stratified bootstrap (runs resampled with
//!   replacement within each task);
//! - probability of improvement of X over Y: the mean over tasks of `P(X > Y) + ½ P(X = Y)`;
//! - performance profile: the fraction of run × task scores above τ.

use rand::RngExt;
use rand::SeedableRng;
use rand_pcg::Pcg64;

/// Scores of one method: `scores[run][task]` (every run has every task).
pub type Matrix = Vec<Vec<f64>>;

/// The aggregates `keel report` gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Aggregate {
    /// Mean of the per-task means.
    Mean,
    /// Median of the per-task means.
    Median,
    /// Interquartile mean of all scores.
    Iqm,
    /// Optimality gap (γ = 1).
    OptimalityGap,
}

impl Aggregate {
    /// All four, in report order.
    pub const ALL: [Aggregate; 4] = [Aggregate::Median, Aggregate::Iqm, Aggregate::Mean, Aggregate::OptimalityGap];

    /// Its name in tables.
    pub fn name(self) -> &'static str {
        match self {
            Aggregate::Mean => "mean",
            Aggregate::Median => "median",
            Aggregate::Iqm => "IQM",
            Aggregate::OptimalityGap => "optimality gap",
        }
    }

    /// Its value on `scores`.
    pub fn of(self, scores: &Matrix) -> f64 {
        match self {
            Aggregate::Mean => mean(&task_means(scores)),
            Aggregate::Median => median(task_means(scores)),
            Aggregate::Iqm => iqm(scores.iter().flatten().copied().collect()),
            Aggregate::OptimalityGap => {
                let all: Vec<f64> = scores.iter().flatten().map(|&s| s.min(1.0)).collect();
                1.0 - mean(&all)
            }
        }
    }
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

fn task_means(scores: &Matrix) -> Vec<f64> {
    let tasks = scores.first().map_or(0, Vec::len);
    (0..tasks).map(|t| scores.iter().map(|run| run[t]).sum::<f64>() / scores.len() as f64).collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// scipy's `trim_mean(v, 0.25)`: drop `⌊n/4⌋` values at each end, average the rest.
pub fn iqm(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let cut = v.len() / 4;
    mean(&v[cut..v.len() - cut])
}

/// numpy's default (linear) percentile of sorted values, `q` in [0, 100].
fn percentile(sorted: &[f64], q: f64) -> f64 {
    let pos = q / 100.0 * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// An estimate with its 95 % stratified-bootstrap interval.
#[derive(Clone, Copy, Debug)]
pub struct Interval {
    /// The point estimate.
    pub point: f64,
    /// 2.5th percentile of the bootstrap estimates.
    pub low: f64,
    /// 97.5th percentile.
    pub high: f64,
}

/// `aggregate` of `scores` with its stratified-bootstrap interval over `reps` resamples
/// (runs drawn with replacement within each task), seeded.
pub fn interval(scores: &Matrix, aggregate: Aggregate, reps: usize, seed: u64) -> Interval {
    let (runs, tasks) = (scores.len(), scores.first().map_or(0, Vec::len));
    let mut rng = Pcg64::seed_from_u64(seed);
    let mut estimates = Vec::with_capacity(reps);
    let mut sample = vec![vec![0.0; tasks]; runs];
    for _ in 0..reps {
        for t in 0..tasks {
            for row in sample.iter_mut() {
                row[t] = scores[rng.random_range(0..runs)][t];
            }
        }
        estimates.push(aggregate.of(&sample));
    }
    estimates.sort_by(f64::total_cmp);
    Interval { point: aggregate.of(scores), low: percentile(&estimates, 2.5), high: percentile(&estimates, 97.5) }
}

/// Probability that a run of X scores above a run of Y on a task (ties count ½), averaged over
/// tasks: the normalised Mann–Whitney U statistic.
pub fn probability_of_improvement(x: &Matrix, y: &Matrix) -> f64 {
    let tasks = x.first().map_or(0, Vec::len);
    let mut total = 0.0;
    for t in 0..tasks {
        let mut wins = 0.0;
        for a in x {
            for b in y {
                wins += if a[t] > b[t] {
                    1.0
                } else if a[t] == b[t] {
                    0.5
                } else {
                    0.0
                };
            }
        }
        total += wins / (x.len() * y.len()) as f64;
    }
    total / tasks as f64
}

/// The probability of improvement with its stratified-bootstrap interval (both methods' runs
/// resampled within each task).
pub fn probability_of_improvement_interval(x: &Matrix, y: &Matrix, reps: usize, seed: u64) -> Interval {
    let tasks = x.first().map_or(0, Vec::len);
    let mut rng = Pcg64::seed_from_u64(seed);
    let resample = |m: &Matrix, rng: &mut Pcg64| -> Matrix {
        let mut out = vec![vec![0.0; tasks]; m.len()];
        for t in 0..tasks {
            for row in out.iter_mut() {
                row[t] = m[rng.random_range(0..m.len())][t];
            }
        }
        out
    };
    let mut estimates: Vec<f64> = (0..reps)
        .map(|_| {
            let (a, b) = (resample(x, &mut rng), resample(y, &mut rng));
            probability_of_improvement(&a, &b)
        })
        .collect();
    estimates.sort_by(f64::total_cmp);
    Interval {
        point: probability_of_improvement(x, y),
        low: percentile(&estimates, 2.5),
        high: percentile(&estimates, 97.5),
    }
}

/// The run-score performance profile: for each τ, the fraction of run × task scores above τ.
pub fn performance_profile(scores: &Matrix, taus: &[f64]) -> Vec<f64> {
    let all: Vec<f64> = scores.iter().flatten().copied().collect();
    taus.iter().map(|&tau| all.iter().filter(|&&s| s > tau).count() as f64 / all.len() as f64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn matrix(v: &Value) -> Matrix {
        v.as_array()
            .map(|rows| {
                rows.iter()
                    .map(|r| r.as_array().map(|r| r.iter().filter_map(Value::as_f64).collect()).unwrap_or_default())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Point estimates equal rliable 1.2.0's; intervals agree within the bootstrap's own noise.
    #[test]
    fn matches_rliable() {
        let golden: Value = serde_json::from_str(include_str!("../tests/fixtures/rliable.json"))
            .unwrap_or_else(|e| panic!("fixture: {e}"));
        let reps = golden["reps"].as_u64().unwrap_or(0) as usize;
        let scores = golden["scores"].as_object().unwrap_or_else(|| panic!("no scores"));
        for (name, value) in scores {
            let m = matrix(value);
            for aggregate in Aggregate::ALL {
                let expected = &golden["aggregates"][name][aggregate.name()];
                let (point, low, high) = (
                    expected["point"].as_f64().unwrap_or(f64::NAN),
                    expected["low"].as_f64().unwrap_or(f64::NAN),
                    expected["high"].as_f64().unwrap_or(f64::NAN),
                );
                let ours = interval(&m, aggregate, reps, 7);
                assert!((ours.point - point).abs() <= 1e-12 * point.abs().max(1.0), "{name} {aggregate:?}: {ours:?} vs {point}");
                // Two independent bootstraps of 2000 draws: endpoints agree to a few % of the spread.
                let tol = 0.1 * (high - low).max(1e-9);
                assert!((ours.low - low).abs() <= tol && (ours.high - high).abs() <= tol, "{name} {aggregate:?}: {ours:?} vs [{low}, {high}]");
            }
            let taus: Vec<f64> = golden["taus"].as_array().map(|t| t.iter().filter_map(Value::as_f64).collect()).unwrap_or_default();
            let profile: Vec<f64> =
                golden["profiles"][name].as_array().map(|t| t.iter().filter_map(Value::as_f64).collect()).unwrap_or_default();
            assert_eq!(performance_profile(&m, &taus), profile, "{name}");
        }
        for pair in golden["probability_of_improvement"].as_array().into_iter().flatten() {
            let (x, y) = (matrix(&scores[pair["x"].as_str().unwrap_or("")]), matrix(&scores[pair["y"].as_str().unwrap_or("")]));
            let ours = probability_of_improvement_interval(&x, &y, reps, 11);
            let point = pair["point"].as_f64().unwrap_or(f64::NAN);
            assert!((ours.point - point).abs() < 1e-12, "{pair}: {ours:?}");
            let (low, high) = (pair["low"].as_f64().unwrap_or(f64::NAN), pair["high"].as_f64().unwrap_or(f64::NAN));
            let tol = 0.1 * (high - low).max(1e-9);
            assert!((ours.low - low).abs() <= tol && (ours.high - high).abs() <= tol, "{pair}: {ours:?}");
        }
    }

    #[test]
    fn iqm_trims_a_quarter_each_side() {
        assert_eq!(iqm(vec![100.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, -50.0]), 3.5);
        assert_eq!(Aggregate::OptimalityGap.of(&vec![vec![0.5, 2.0]]), 0.25);
        assert_eq!(Aggregate::Median.of(&vec![vec![1.0, 5.0, 2.0], vec![3.0, 5.0, 4.0]]), 3.0);
    }
}

//! Statistical parity of Keel's PPO with CleanRL's `ppo.py` on CartPole-v1.
//!
//! **Reference.** `scripts/cleanrl_parity.py` ran CleanRL 1.2.0's `ppo.py` (the PyPI package,
//! unmodified, torch 2.11.0, gym 0.23.1's CartPole-v1) for seeds 1..=20 and recorded, per seed,
//! two statistics of the episodes it logged (`agents/tests/fixtures/cleanrl_ppo_cartpole.json`,
//! with the exact arguments, versions and command):
//! - `final`: the mean return of the last N logged episodes (where training ended up);
//! - `auc`: the mean over W equal windows of global steps of the mean return of the episodes
//!   that ended in each window (the area under the learning curve, per step: how fast it got
//!   there). It varies less across seeds than `final`, so it detects smaller differences.
//!
//! **Keel at equal settings.** This test trains Keel's PPO on `keel/CartPole-v1` (numerically
//! Gymnasium's CartPole, which gym 0.23.1's equals) for seeds 1..=10, with every hyperparameter
//! `ppo.py` resolved (total steps, learning rate and its annealing, envs, steps, GAE, minibatches,
//! epochs, clipping, coefficients, gradient norm) applied by name from the fixture, the same
//! 64-64 tanh actor and critic, and `bootstrap_truncated = false` (CleanRL treats a time-limit cut
//! as a terminal state). The statistics are computed the same way, including `ppo.py`'s logging
//! rule: it logs at most one episode per vector step (the lowest env index), so Keel's episodes
//! are filtered by that rule too. Seeds of the two sides need not match: the two programs draw
//! different random numbers from any seed, so the runs are independent samples either way.
//!
//! **Criteria**, for each statistic (n = 10 Keel runs, m = 20 CleanRL runs):
//! 1. Welch's t-test (means, unequal variances: the two implementations need not have the same
//!    spread) does not reject equal means at level α = 0.01;
//! 2. the difference of means is at most 1.5 standard deviations σ of CleanRL's per-seed values.
//!    Under exact parity the difference has standard deviation σ·√(1/n + 1/m) ≈ 0.39σ, so 1.5σ
//!    is 3.9 of those: it practically never fails by chance, and it bounds the effect size
//!    whatever Keel's own spread (a very noisy Keel could pass criterion 1 alone).
//!
//! Every run is seeded, so the outcome is deterministic for given code: there is no flakiness,
//! but a change that alters Keel's random streams draws a new sample, and under exact parity a
//! new sample fails with probability at most 2% (two tests at α = 0.01). After such a change a
//! failure means: read the printed table before anything else. What the test cannot see: small
//! shifts (the standard error of the difference is 0.39σ, and a shift is caught reliably from
//! about three of those, 1.2σ: about 40 in `final` and 27 in `auc` on the recorded spread), and
//! differences that do not show on CartPole in 100k steps. Measured:
//! half or twice CleanRL's learning rate fails both criteria on both statistics (p < 0.001,
//! shifts from 1.9σ to 3.5σ); `bootstrap_truncated = true` passes (few episodes reach the
//! 500-step limit within 100k steps, so bootstrapping at the cut barely matters here).
//!
//! Runtime: 10 Keel runs of 102,400 steps, about 60 s in release on the 2-core development
//! machine; the CleanRL recording takes about 10 minutes (see docs/results.md).

use std::path::PathBuf;

use keel_agents::ppo::{Episode, PpoConfig, PpoTrainer};
use serde::Deserialize;
use serde_json::{Map, Value};

#[derive(Deserialize)]
struct Fixture {
    env_id: String,
    versions: Map<String, Value>,
    cleanrl_args: Map<String, Value>,
    seeds: Vec<u64>,
    last_episodes: usize,
    windows: usize,
    runs: Vec<Run>,
}

#[derive(Deserialize)]
struct Run {
    seed: u64,
    final_return: f64,
    auc: f64,
}

/// Keel runs (seeds 1..=KEEL_SEEDS): about 6 s each in release.
const KEEL_SEEDS: u64 = 10;
/// Significance level of Welch's test.
const ALPHA: f64 = 0.01;
/// Largest accepted difference of means, in standard deviations of CleanRL's per-seed values.
const MAX_SHIFT: f64 = 1.5;

/// `ppo.py` arguments that are `PpoConfig` fields of the same name and meaning.
const SHARED: [&str; 16] = [
    "total_timesteps",
    "learning_rate",
    "num_envs",
    "num_steps",
    "anneal_lr",
    "gamma",
    "gae_lambda",
    "num_minibatches",
    "update_epochs",
    "norm_adv",
    "clip_coef",
    "clip_vloss",
    "ent_coef",
    "vf_coef",
    "max_grad_norm",
    "target_kl",
];

/// `ppo.py` arguments with no `PpoConfig` field: the environment (mapped to Keel's id), derived
/// sizes (checked), and cuDNN determinism (no effect on CPU).
const NOT_SHARED: [&str; 4] = ["env_id", "batch_size", "minibatch_size", "torch_deterministic"];

fn fixture() -> Fixture {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cleanrl_ppo_cartpole.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Keel's config with CleanRL's resolved arguments.
fn keel_config(fixture: &Fixture) -> PpoConfig {
    for key in fixture.cleanrl_args.keys() {
        assert!(SHARED.contains(&key.as_str()) || NOT_SHARED.contains(&key.as_str()), "unmapped ppo.py argument {key}");
    }
    let mut overrides: Vec<(String, Value)> = SHARED
        .iter()
        .map(|&key| {
            let value = fixture.cleanrl_args.get(key).unwrap_or_else(|| panic!("fixture lacks ppo.py's {key}"));
            (key.to_string(), value.clone())
        })
        .collect();
    overrides.push(("env_id".into(), Value::String(format!("keel/{}", fixture.env_id))));
    overrides.push(("bootstrap_truncated".into(), Value::Bool(false)));
    let config = PpoConfig::default().with_overrides(&overrides).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.hidden_sizes, [64, 64], "ppo.py's Agent: 64-64 tanh actor and critic");
    for (key, keel) in [("batch_size", config.batch_size()), ("minibatch_size", config.minibatch_size())] {
        assert_eq!(fixture.cleanrl_args.get(key).and_then(Value::as_u64), Some(keel as u64), "{key}");
    }
    config
}

/// What `ppo.py` would have logged of these episodes: the first one of each vector step.
fn logged(episodes: &[Episode]) -> Vec<(u64, f64)> {
    let mut out: Vec<(u64, f64)> = Vec::with_capacity(episodes.len());
    for e in episodes {
        if out.last().is_none_or(|&(step, _)| step != e.global_step) {
            out.push((e.global_step, e.episode_return));
        }
    }
    out
}

/// `(final, auc)` of one run, as `scripts/cleanrl_parity.py` defines them.
fn statistics(episodes: &[(u64, f64)], total_timesteps: u64, last: usize, windows: usize) -> (f64, f64) {
    let tail = &episodes[episodes.len().saturating_sub(last)..];
    let final_return = tail.iter().map(|e| e.1).sum::<f64>() / tail.len() as f64;
    let curve: Vec<f64> = (1..=windows)
        .map(|k| {
            let low = (k - 1) as f64 * total_timesteps as f64 / windows as f64;
            let high = k as f64 * total_timesteps as f64 / windows as f64;
            let inside: Vec<f64> =
                episodes.iter().filter(|&&(s, _)| low < s as f64 && s as f64 <= high).map(|e| e.1).collect();
            inside.iter().sum::<f64>() / inside.len() as f64
        })
        .collect();
    (final_return, curve.iter().sum::<f64>() / curve.len() as f64)
}

fn mean_std(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

/// ln Γ(x) for x > 0 (Lanczos, g = 7, nine coefficients: about 15 significant digits).
fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Γ(x) Γ(1 - x) = π / sin(πx).
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let sum = C[1..].iter().enumerate().fold(C[0], |acc, (i, c)| acc + c / (x + i as f64 + 1.0));
    let t = x + G + 0.5;
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + sum.ln()
}

/// The regularised incomplete beta function I_x(a, b), by its continued fraction (modified
/// Lentz), using the symmetry I_x(a, b) = 1 - I_{1-x}(b, a) where the fraction converges slowly.
fn incomplete_beta(a: f64, b: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    if x > (a + 1.0) / (a + b + 2.0) {
        return 1.0 - incomplete_beta(b, a, 1.0 - x);
    }
    let front = (ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln()).exp() / a;
    const TINY: f64 = 1e-300;
    let (mut c, mut d) = (1.0, 1.0 - (a + b) * x / (a + 1.0));
    d = 1.0 / if d.abs() < TINY { TINY } else { d };
    let mut f = d;
    for m in 1..500 {
        let m = f64::from(m);
        // The even step d_{2m}, then the odd step d_{2m+1}.
        for numerator in [
            m * (b - m) * x / ((a + 2.0 * m - 1.0) * (a + 2.0 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2.0 * m) * (a + 2.0 * m + 1.0)),
        ] {
            d = 1.0 + numerator * d;
            d = 1.0 / if d.abs() < TINY { TINY } else { d };
            c = 1.0 + numerator / c;
            c = if c.abs() < TINY { TINY } else { c };
            f *= c * d;
            if (c * d - 1.0).abs() < 1e-15 {
                return front * f;
            }
        }
    }
    front * f
}

/// Two-sided p-value of Student's t with `df` degrees of freedom: P(|T| ≥ |t|).
fn t_two_sided_p(t: f64, df: f64) -> f64 {
    incomplete_beta(df / 2.0, 0.5, df / (df + t * t))
}

/// Welch's t statistic, its Welch–Satterthwaite degrees of freedom and two-sided p-value.
fn welch(a: &[f64], b: &[f64]) -> (f64, f64, f64) {
    let ((ma, sa), (mb, sb)) = (mean_std(a), mean_std(b));
    let (va, vb) = (sa * sa / a.len() as f64, sb * sb / b.len() as f64);
    if va + vb == 0.0 {
        return if ma == mb { (0.0, f64::INFINITY, 1.0) } else { (f64::INFINITY, f64::INFINITY, 0.0) };
    }
    let t = (ma - mb) / (va + vb).sqrt();
    let df = (va + vb).powi(2) / (va * va / (a.len() as f64 - 1.0) + vb * vb / (b.len() as f64 - 1.0));
    (t, df, t_two_sided_p(t, df))
}

#[test]
fn ppo_matches_cleanrl_in_distribution() {
    let fixture = fixture();
    let config = keel_config(&fixture);
    assert_eq!(fixture.versions.get("cleanrl").and_then(Value::as_str), Some("1.2.0"));
    assert_eq!(fixture.runs.iter().map(|r| r.seed).collect::<Vec<_>>(), fixture.seeds);
    assert!(fixture.seeds.len() >= 5, "too few reference seeds for a test");
    let (mut keel_final, mut keel_auc) = (Vec::new(), Vec::new());
    for seed in 1..=KEEL_SEEDS {
        let mut trainer = PpoTrainer::new({
            let mut c = config.clone();
            c.run.seed = seed;
            c
        })
        .unwrap_or_else(|e| panic!("{e}"));
        while !trainer.finished() {
            trainer.iteration_step().unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        }
        assert_eq!(trainer.global_step(), config.total_timesteps);
        let episodes = logged(trainer.episodes());
        let (final_return, auc) = statistics(&episodes, config.total_timesteps, fixture.last_episodes, fixture.windows);
        println!(
            "Keel seed {seed}: {} episodes logged, final return {final_return:.1}, curve area {auc:.1}",
            episodes.len()
        );
        keel_final.push(final_return);
        keel_auc.push(auc);
    }
    let cleanrl_final: Vec<f64> = fixture.runs.iter().map(|r| r.final_return).collect();
    let cleanrl_auc: Vec<f64> = fixture.runs.iter().map(|r| r.auc).collect();
    let mut failures = Vec::new();
    println!("statistic     CleanRL mean ± std   Keel mean ± std      shift/σ     t      df      p");
    for (name, keel, cleanrl) in
        [("final return", &keel_final, &cleanrl_final), ("curve area", &keel_auc, &cleanrl_auc)]
    {
        let ((mc, sc), (mk, sk)) = (mean_std(cleanrl), mean_std(keel));
        let (t, df, p) = welch(keel, cleanrl);
        let shift = (mk - mc) / sc;
        println!("{name:<13} {mc:>7.1} ± {sc:<10.1} {mk:>7.1} ± {sk:<10.1} {shift:>+7.2} {t:>+6.2} {df:>6.1} {p:>6.3}");
        if p < ALPHA {
            failures.push(format!("{name}: Welch's test rejects equal means (p = {p:.4} < {ALPHA})"));
        }
        if shift.abs() > MAX_SHIFT {
            failures.push(format!("{name}: means differ by {shift:+.2} CleanRL standard deviations (> {MAX_SHIFT})"));
        }
    }
    assert!(failures.is_empty(), "Keel's PPO is not at parity with CleanRL's ppo.py:\n{}", failures.join("\n"));
}

/// The t distribution's tail against closed forms: Cauchy (df 1), df 2 and df 4.
#[test]
fn t_tail_matches_closed_forms() {
    for t in [0.0, 0.3, 1.0, 2.0, 4.5, 12.0] {
        let cauchy = 1.0 - 2.0 * f64::atan(t) / std::f64::consts::PI;
        let df2 = 1.0 - t / (2.0 + t * t).sqrt();
        let u = t * t / 4.0;
        let df4 = 1.0 - 0.75 * t / (1.0 + u).sqrt() * (1.0 - t * t / (12.0 * (1.0 + u)));
        for (df, want) in [(1.0, cauchy), (2.0, df2), (4.0, df4)] {
            let got = t_two_sided_p(t, df);
            assert!((got - want).abs() < 1e-12, "t = {t}, df = {df}: {got} vs {want}");
        }
    }
    // Large df: the normal tail, P(|Z| ≥ 1.959964) = 0.05.
    assert!((t_two_sided_p(1.959_963_984_540_054, 1e7) - 0.05).abs() < 1e-6);
    // Welch on identical samples: t = 0, p = 1.
    let (t, _, p) = welch(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0]);
    assert!(t == 0.0 && (p - 1.0).abs() < 1e-12);
}

//! Each env's own random stream.

use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg32;

/// A per-env PCG32 stream (64-bit state, so snapshots serialise to plain JSON numbers) with
/// Gymnasium's seeding rules: `reseed(Some(s))` restarts it from
/// `s`, `reseed(None)` continues it, and a stream never seeded starts from OS entropy.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct EnvRng {
    rng: Option<Pcg32>,
}

impl EnvRng {
    /// Applies a reset's seed and returns the stream to draw from.
    pub fn reseed(&mut self, seed: Option<u64>) -> &mut Pcg32 {
        match seed {
            Some(seed) => self.rng.insert(Pcg32::seed_from_u64(seed)),
            None => self.rng.get_or_insert_with(rand::make_rng),
        }
    }

    /// A uniform draw from `[low, high)` (numpy's `uniform`). Seeds from entropy if needed.
    pub fn uniform(&mut self, low: f64, high: f64) -> f64 {
        let u: f64 = self.reseed(None).random();
        low + (high - low) * u
    }
}

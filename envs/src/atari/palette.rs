//! ALE's grayscale palette and the max-pool of two frames, in one pass over palette indices.
//!
//! Gymnasium's `AtariPreprocessing` and EnvPool take two grayscale screens from ALE and keep the
//! brighter of each pixel. ALE makes a grayscale screen by looking every palette index up in a
//! 256-entry table; doing the two lookups and the max here, on the raw index screens, gives the
//! same bytes without two screen-sized copies in between. On CPUs with AVX-512 VBMI a 256-entry
//! byte table is four registers and 64 pixels are looked up with two permutes, so the pass costs
//! about a microsecond per frame; elsewhere it is a scalar loop.

// The vector path uses `std::arch` intrinsics: the one place in the crate that needs `unsafe`,
// each use checked against the scalar loop by the tests below.
#![allow(unsafe_code)]

/// Writes `max(palette[a[i]], palette[b[i]])` (or `palette[a[i]]` without `b`) into `out[i]`.
/// All slices have the same length.
pub fn gray_max(palette: &[u8; 256], a: &[u8], b: Option<&[u8]>, out: &mut [u8]) {
    assert!(a.len() == out.len() && b.is_none_or(|b| b.len() == out.len()), "screens of different sizes");
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512vbmi") && std::arch::is_x86_feature_detected!("avx512bw") {
            // SAFETY: the CPU has the features the function is compiled for.
            unsafe { vbmi::gray_max(palette, a, b, out) };
            return;
        }
    }
    gray_max_scalar(palette, a, b, out);
}

/// The portable loop (and the reference the vector path is tested against).
fn gray_max_scalar(palette: &[u8; 256], a: &[u8], b: Option<&[u8]>, out: &mut [u8]) {
    match b {
        Some(b) => {
            for ((o, &i), &j) in out.iter_mut().zip(a).zip(b) {
                *o = palette[usize::from(i)].max(palette[usize::from(j)]);
            }
        }
        None => {
            for (o, &i) in out.iter_mut().zip(a) {
                *o = palette[usize::from(i)];
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod vbmi {
    use std::arch::x86_64::*;

    /// The palette as two 128-entry halves, each two 64-byte registers.
    struct Table {
        low: [__m512i; 2],
        high: [__m512i; 2],
    }

    impl Table {
        #[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
        fn new(palette: &[u8; 256]) -> Self {
            // SAFETY: each load reads 64 of the palette's 256 bytes.
            let load = |at: usize| unsafe { _mm512_loadu_si512(palette[at..at + 64].as_ptr().cast()) };
            Self { low: [load(0), load(64)], high: [load(128), load(192)] }
        }

        /// The palette entries of 64 indices: bits 0-6 pick within a half, bit 7 the half.
        #[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
        fn lookup(&self, idx: __m512i) -> __m512i {
            let low = _mm512_permutex2var_epi8(self.low[0], idx, self.low[1]);
            let high = _mm512_permutex2var_epi8(self.high[0], idx, self.high[1]);
            _mm512_mask_blend_epi8(_mm512_movepi8_mask(idx), low, high)
        }
    }

    /// [`super::gray_max`] 64 pixels at a time, the tail by the scalar loop.
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
    pub(super) fn gray_max(palette: &[u8; 256], a: &[u8], b: Option<&[u8]>, out: &mut [u8]) {
        let table = Table::new(palette);
        let whole = out.len() / 64 * 64;
        for at in (0..whole).step_by(64) {
            // SAFETY: `at + 64 <= whole <= len` for `a`, `b` and `out` (equal lengths, checked
            // by the caller).
            unsafe {
                let mut v = table.lookup(_mm512_loadu_si512(a.as_ptr().add(at).cast()));
                if let Some(b) = b {
                    v = _mm512_max_epu8(v, table.lookup(_mm512_loadu_si512(b.as_ptr().add(at).cast())));
                }
                _mm512_storeu_si512(out.as_mut_ptr().add(at).cast(), v);
            }
        }
        super::gray_max_scalar(palette, &a[whole..], b.map(|b| &b[whole..]), &mut out[whole..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed;
        (0..len)
            .map(|_| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (x >> 56) as u8
            })
            .collect()
    }

    #[test]
    fn the_fast_path_equals_the_scalar_loop_on_every_index() {
        let palette: [u8; 256] = std::array::from_fn(|i| noise(256, 9)[i]);
        // 33,600 is a screen; 100 has a tail that is not a multiple of 64.
        for len in [33_600, 100, 63, 0] {
            let (a, b) = (noise(len, 1), noise(len, 2));
            for b in [Some(&b[..]), None] {
                let (mut fast, mut slow) = (vec![0; len], vec![1; len]);
                gray_max(&palette, &a, b, &mut fast);
                gray_max_scalar(&palette, &a, b, &mut slow);
                assert_eq!(fast, slow, "len {len}, pooled {}", b.is_some());
            }
        }
    }
}

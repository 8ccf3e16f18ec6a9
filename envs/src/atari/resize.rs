//! Area-averaging image downscaling with OpenCV's `INTER_AREA` arithmetic, byte for byte.
//!
//! Atari wrappers (Gymnasium's `AtariPreprocessing`, SB3's `WarpFrame`, EnvPool) shrink the
//! 210×160 screen to 84×84 with `cv2.resize(..., interpolation=cv2.INTER_AREA)`. The scales
//! (2.5 and 1.905) are not integers, so OpenCV takes its general area path: each output pixel
//! is a weighted sum of the source pixels its cell covers, with weights computed in `f64`,
//! stored as `f32`, accumulated in `f32` row by row, and rounded half to even. Keel repeats
//! that arithmetic in the same order so that the observations equal OpenCV's (checked against
//! `opencv-python` by the golden tests). No crate offers this exact rounding, hence this file.

/// One source→destination contribution: destination index `di`, source index `si`, weight.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Tap {
    di: usize,
    si: usize,
    alpha: f32,
}

/// The contributions along one axis of `src` pixels shrunk to `dst` pixels (`cn` channels
/// interleaved), in OpenCV's order.
fn taps(src: usize, dst: usize, cn: usize) -> Vec<Tap> {
    let scale = 1.0 / (dst as f64 / src as f64);
    let mut out = Vec::with_capacity(2 * src);
    for dx in 0..dst {
        let fsx1 = dx as f64 * scale;
        let fsx2 = fsx1 + scale;
        let cell = scale.min(src as f64 - fsx1);
        let mut sx1 = fsx1.ceil() as usize;
        let sx2 = (fsx2.floor() as usize).min(src - 1);
        sx1 = sx1.min(sx2);
        if sx1 as f64 - fsx1 > 1e-3 {
            out.push(Tap { di: dx * cn, si: (sx1 - 1) * cn, alpha: ((sx1 as f64 - fsx1) / cell) as f32 });
        }
        for sx in sx1..sx2 {
            out.push(Tap { di: dx * cn, si: sx * cn, alpha: (1.0 / cell) as f32 });
        }
        if fsx2 - sx2 as f64 > 1e-3 {
            out.push(Tap { di: dx * cn, si: sx2 * cn, alpha: ((fsx2 - sx2 as f64).min(1.0).min(cell) / cell) as f32 });
        }
    }
    out
}

/// Source rows whose horizontal sums are computed together, one per SIMD lane.
const LANES: usize = 8;

/// Source pixels per window of the grayscale horizontal pass: 3 covers any shrink by a factor
/// below 2 (160 to 84 pixels: 1.905).
const WINDOW: usize = 3;

/// A precomputed `INTER_AREA` shrink of `height × width × channels` bytes to
/// `out_height × out_width × channels`, with its scratch buffers (no allocation per call).
///
/// Speed without changing a bit: the horizontal sums of [`LANES`] source rows are computed at
/// once, one row per lane, from a pixel-major copy of the rows, so every tap is one vector
/// multiply-add with no gather. The taps are stored densely, `taps_per_output` per output
/// value, padded with zero weights: adding `+0.0` to a non-negative sum leaves it unchanged,
/// so each sum sees OpenCV's operations in OpenCV's order. On CPUs with AVX-512 VBMI the
/// grayscale horizontal pass takes 16 outputs of one row per step instead, with no transposes
/// (`vbmi`): about 6 us per 210×160 → 84×84 frame against 16 us (`--example resize_speed`).
#[derive(Clone, Debug)]
pub struct AreaResize {
    height: usize,
    width: usize,
    channels: usize,
    out_height: usize,
    out_width: usize,
    /// Taps per output value of the horizontal pass (the most any output value has).
    taps_per_output: usize,
    /// Tap `k` of output value `d` at `d * taps_per_output + k`: (source index, weight; 0 for
    /// padding).
    xtaps: Vec<(u32, f32)>,
    /// The same taps for one channel as windows of [`WINDOW`] consecutive source pixels
    /// (first pixel, weights; 0 outside the output's cell): one bounds check per output value
    /// instead of one per tap. Empty unless `channels == 1` and every cell fits a window.
    windows: Vec<(u32, [f32; WINDOW])>,
    ytab: Vec<Tap>,
    /// [`LANES`] source rows as `f32`, pixel-major: value `i` of row `r0 + l` at `[i][l]`.
    block: Vec<[f32; LANES]>,
    /// Their horizontal sums, output-major: value `d` of row `r0 + l` at `[d][l]`.
    tile: Vec<[f32; LANES]>,
    /// The horizontal pass 16 outputs at a time with AVX-512 VBMI (grayscale windows only,
    /// on CPUs that have it; see [`vbmi`]).
    #[cfg(target_arch = "x86_64")]
    vector: Option<vbmi::Horizontal>,
    /// The horizontal sums of every source row, [`Self::hstride`] values per row (the first
    /// `out_width × channels` of each are used).
    hsum: Vec<f32>,
    sum: Vec<f32>,
}

impl AreaResize {
    /// Bytes of the tables and scratch rows this resize holds on the heap (the Atari memory
    /// estimate counts them).
    pub fn heap_bytes(&self) -> usize {
        fn bytes<T>(v: &Vec<T>) -> usize {
            v.capacity() * std::mem::size_of::<T>()
        }
        #[cfg(target_arch = "x86_64")]
        let vector = self.vector.as_ref().map_or(0, vbmi::Horizontal::heap_bytes);
        #[cfg(not(target_arch = "x86_64"))]
        let vector = 0;
        bytes(&self.xtaps)
            + bytes(&self.windows)
            + bytes(&self.ytab)
            + bytes(&self.block)
            + bytes(&self.tile)
            + bytes(&self.hsum)
            + bytes(&self.sum)
            + vector
    }

    /// The resize of `(height, width)` images with `channels` interleaved channels to
    /// `(out_height, out_width)`. Only shrinking (each output size at most the input size) is
    /// supported, which is what the Atari wrappers do.
    pub fn new(height: usize, width: usize, channels: usize, out_height: usize, out_width: usize) -> Self {
        let row = out_width * channels;
        let mut per_column: Vec<Vec<Tap>> = vec![Vec::new(); out_width];
        for t in taps(width, out_width, channels) {
            per_column[t.di / channels].push(t);
        }
        let taps_per_output = per_column.iter().map(Vec::len).max().unwrap_or(0);
        let mut xtaps = Vec::with_capacity(taps_per_output * row);
        for column in &per_column {
            for c in 0..channels {
                for k in 0..taps_per_output {
                    // Padding repeats the last real tap's source with weight 0.
                    let (t, alpha) = match column.get(k) {
                        Some(t) => (t, t.alpha),
                        None => (&column[column.len() - 1], 0.0),
                    };
                    xtaps.push(((t.si + c) as u32, alpha));
                }
            }
        }
        // A window starts at the cell's first pixel, moved left where it would pass the edge;
        // the zero weights it adds before or after the cell's own taps change no sum.
        let fits = channels == 1 && width >= WINDOW && taps_per_output <= WINDOW;
        let windows = if fits {
            per_column
                .iter()
                .map(|column| {
                    let start = column[0].si.min(width - WINDOW);
                    let mut weights = [0.0f32; WINDOW];
                    for t in column {
                        weights[t.si - start] = t.alpha;
                    }
                    (start as u32, weights)
                })
                .collect()
        } else {
            Vec::new()
        };
        let mut resize = Self {
            height,
            width,
            channels,
            out_height,
            out_width,
            taps_per_output,
            xtaps,
            windows,
            ytab: taps(height, out_height, 1),
            block: vec![[0.0; LANES]; width * channels],
            tile: vec![[0.0; LANES]; row],
            #[cfg(target_arch = "x86_64")]
            vector: None,
            hsum: Vec::new(),
            sum: vec![0.0; row],
        };
        #[cfg(target_arch = "x86_64")]
        {
            resize.vector = vbmi::Horizontal::new(&resize.windows, width);
        }
        resize.hsum = vec![0.0; height * resize.hstride()];
        resize
    }

    /// Values per row of `hsum`: the outputs of a row, rounded up to whole vector steps when
    /// the vector pass writes them.
    fn hstride(&self) -> usize {
        #[cfg(target_arch = "x86_64")]
        if let Some(vector) = &self.vector {
            return vector.stride();
        }
        self.out_width * self.channels
    }

    /// Bytes of one input image.
    pub fn input_len(&self) -> usize {
        self.height * self.width * self.channels
    }

    /// Bytes of one output image.
    pub fn output_len(&self) -> usize {
        self.out_height * self.out_width * self.channels
    }

    /// Shrinks `src` into `dst` (lengths as [`Self::input_len`] / [`Self::output_len`]):
    /// horizontal sums of each source row, then the weighted sum of rows, in OpenCV's order.
    pub fn run(&mut self, src: &[u8], dst: &mut [u8]) {
        #[cfg(target_arch = "x86_64")]
        if let Some(vector) = &self.vector {
            vector.run(&src[..self.height * self.width], &mut self.hsum);
            self.vertical(dst);
            return;
        }
        self.horizontal(src);
        self.vertical(dst);
    }

    /// The horizontal sums of every source row into `hsum`, [`LANES`] rows at a time.
    fn horizontal(&mut self, src: &[u8]) {
        let row_in = self.width * self.channels;
        let row_out = self.out_width * self.channels;
        let k_max = self.taps_per_output;
        for r0 in (0..self.height).step_by(LANES) {
            let rows = LANES.min(self.height - r0);
            // Pixel-major: contiguous loads of each row, transposed in registers. Lanes past
            // the last row repeat it and are not stored.
            let r: [&[u8]; LANES] = std::array::from_fn(|l| {
                let y = r0 + l.min(rows - 1);
                &src[y * row_in..(y + 1) * row_in]
            });
            for (i, v) in self.block.iter_mut().enumerate() {
                *v = std::array::from_fn(|l| f32::from(r[l][i]));
            }
            if self.windows.is_empty() {
                for (taps, out) in self.xtaps.chunks_exact(k_max).zip(self.tile.iter_mut()) {
                    let mut acc = [0.0f32; LANES];
                    for &(i, w) in taps {
                        let x = &self.block[i as usize];
                        for l in 0..LANES {
                            acc[l] += x[l] * w;
                        }
                    }
                    *out = acc;
                }
            } else {
                for (&(start, weights), out) in self.windows.iter().zip(self.tile.iter_mut()) {
                    let start = start as usize;
                    let Ok(window) = <&[[f32; LANES]; WINDOW]>::try_from(&self.block[start..start + WINDOW]) else {
                        continue;
                    };
                    let mut acc = [0.0f32; LANES];
                    for (x, w) in window.iter().zip(weights) {
                        for l in 0..LANES {
                            acc[l] += x[l] * w;
                        }
                    }
                    *out = acc;
                }
            }
            // Back to row-major, an 8x8 transpose at a time.
            for (c, chunk) in self.tile.chunks(LANES).enumerate() {
                if let (Ok(square), LANES) = (<&[[f32; LANES]; LANES]>::try_from(chunk), rows) {
                    // The common case, with fixed sizes throughout.
                    for (l, values) in transpose(square).iter().enumerate() {
                        let at = (r0 + l) * row_out + c * LANES;
                        self.hsum[at..at + LANES].copy_from_slice(values);
                    }
                    continue;
                }
                for (j, column) in chunk.iter().enumerate() {
                    for (l, &v) in column.iter().enumerate().take(rows) {
                        self.hsum[(r0 + l) * row_out + c * LANES + j] = v;
                    }
                }
            }
        }
    }

    /// The weighted sums of the rows of `hsum` into `dst`, rounded to bytes.
    fn vertical(&mut self, dst: &mut [u8]) {
        let row_out = self.out_width * self.channels;
        let hstride = self.hstride();
        self.sum.fill(0.0);
        let mut prev_dy = self.ytab.first().map_or(0, |t| t.di);
        for y in &self.ytab {
            let row = &self.hsum[y.si * hstride..y.si * hstride + row_out];
            if y.di != prev_dy {
                let out = &mut dst[prev_dy * row_out..(prev_dy + 1) * row_out];
                for ((o, s), b) in out.iter_mut().zip(self.sum.iter_mut()).zip(row) {
                    *o = saturate_u8(*s);
                    *s = y.alpha * b;
                }
                prev_dy = y.di;
            } else {
                for (s, b) in self.sum.iter_mut().zip(row) {
                    *s += y.alpha * b;
                }
            }
        }
        let out = &mut dst[prev_dy * row_out..(prev_dy + 1) * row_out];
        for (o, s) in out.iter_mut().zip(&self.sum) {
            *o = saturate_u8(*s);
        }
    }
}

/// The grayscale horizontal pass with AVX-512 VBMI: 16 output values of one source row per
/// step, no transposes. Each step loads 64 source bytes, picks each output's `k`-th window pixel
/// with one byte permute, widens them to `f32`, and adds `pixel × weight` to the sums with a
/// multiply and an add (never fused, as the portable loop): every sum sees the same operations
/// in the same order, so the bytes equal OpenCV's as the portable path's do.
// `std::arch` intrinsics, checked against the portable path by the tests below.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod vbmi {
    use super::WINDOW;
    use std::arch::x86_64::*;

    /// Output values per step (one 512-bit register of `f32`).
    const STEP: usize = 16;

    /// One step: where its 64 bytes start in the row, which of them each output's window
    /// pixel `k` is, and the weights (zero in lanes past the last output).
    #[derive(Clone, Debug)]
    struct Step {
        load: usize,
        pick: [[u8; 64]; WINDOW],
        weights: [[f32; STEP]; WINDOW],
    }

    #[derive(Clone, Debug)]
    pub(super) struct Horizontal {
        width: usize,
        steps: Vec<Step>,
    }

    impl Horizontal {
        /// Bytes of its steps on the heap.
        pub(super) fn heap_bytes(&self) -> usize {
            self.steps.capacity() * std::mem::size_of::<Step>()
        }

        /// The vector pass for these windows of `width`-pixel rows, if the CPU has AVX-512
        /// VBMI and every step's windows fit in the 64 bytes it loads.
        pub(super) fn new(windows: &[(u32, [f32; WINDOW])], width: usize) -> Option<Self> {
            let cpu = std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512bw")
                && std::arch::is_x86_feature_detected!("avx512vbmi");
            if !cpu || windows.is_empty() || width < 64 {
                return None;
            }
            let mut steps = Vec::with_capacity(windows.len().div_ceil(STEP));
            for lanes in windows.chunks(STEP) {
                let load = (lanes[0].0 as usize).min(width - 64);
                let mut step = Step { load, pick: [[0; 64]; WINDOW], weights: [[0.0; STEP]; WINDOW] };
                for (i, &(start, weights)) in lanes.iter().enumerate() {
                    for (k, &weight) in weights.iter().enumerate() {
                        let at = (start as usize + k).checked_sub(load).filter(|&at| at < 64)?;
                        step.pick[k][i] = at as u8;
                        step.weights[k][i] = weight;
                    }
                }
                steps.push(step);
            }
            Some(Self { width, steps })
        }

        /// Values per row of the sums it writes (the outputs rounded up to whole steps).
        pub(super) fn stride(&self) -> usize {
            self.steps.len() * STEP
        }

        /// Horizontal sums of every row of `src` into `hsum` (`stride()` values per row).
        pub(super) fn run(&self, src: &[u8], hsum: &mut [f32]) {
            let stride = self.stride();
            assert!(
                src.len().is_multiple_of(self.width) && hsum.len() >= src.len() / self.width * stride,
                "resize buffers"
            );
            for (row, sums) in src.chunks_exact(self.width).zip(hsum.chunks_exact_mut(stride)) {
                // SAFETY: `new` checked the CPU's features.
                unsafe { self.row(row, sums) };
            }
        }

        #[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
        fn row(&self, row: &[u8], sums: &mut [f32]) {
            for (step, out) in self.steps.iter().zip(sums.chunks_exact_mut(STEP)) {
                let bytes = &row[step.load..step.load + 64];
                // SAFETY: `bytes` and each `pick` are 64 bytes, `out` and each weight row 16 floats.
                unsafe {
                    let data = _mm512_loadu_si512(bytes.as_ptr().cast());
                    let mut acc = _mm512_setzero_ps();
                    for k in 0..WINDOW {
                        let pick = _mm512_loadu_si512(step.pick[k].as_ptr().cast());
                        let pixels = _mm512_castsi512_si128(_mm512_permutexvar_epi8(pick, data));
                        let x = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(pixels));
                        acc = _mm512_add_ps(acc, _mm512_mul_ps(x, _mm512_loadu_ps(step.weights[k].as_ptr())));
                    }
                    _mm512_storeu_ps(out.as_mut_ptr(), acc);
                }
            }
        }
    }
}

/// `m` transposed (fixed sizes, so the compiler does it with shuffles).
#[inline]
fn transpose(m: &[[f32; LANES]; LANES]) -> [[f32; LANES]; LANES] {
    std::array::from_fn(|i| std::array::from_fn(|j| m[j][i]))
}

/// OpenCV's `saturate_cast<uchar>(float)`: round half to even, then clamp to 0..=255.
#[inline]
fn saturate_u8(x: f32) -> u8 {
    // Clamping first gives the same byte. Adding 2^23 to a value in 0..=255 rounds it half to
    // even (the default rounding mode) into the low bits of the mantissa: branch-free, so the
    // loops over a row vectorise. NaN gives 0, as a cast would.
    (x.clamp(0.0, 255.0) + 8_388_608.0).to_bits() as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saturation_rounds_half_to_even_and_clamps() {
        for (x, want) in [
            (-3.0, 0),
            (-0.5, 0),
            (0.5, 0),
            (1.5, 2),
            (2.5, 2),
            (2.500_001, 3),
            (254.5, 254),
            (255.5, 255),
            (300.0, 255),
            (f32::NAN, 0),
        ] {
            assert_eq!(saturate_u8(x), want, "{x}");
        }
        for i in 0..=2560 {
            let x = i as f32 / 10.0 - 0.3;
            assert_eq!(saturate_u8(x), x.round_ties_even().clamp(0.0, 255.0) as u8, "{x}");
        }
    }

    #[test]
    fn the_vector_pass_equals_the_portable_one() {
        let mut x = 7u64;
        for (h, w, oh, ow) in [(210, 160, 84, 84), (250, 170, 130, 100), (64, 64, 40, 33)] {
            let src: Vec<u8> = (0..h * w)
                .map(|_| {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    (x >> 56) as u8
                })
                .collect();
            let mut fast = AreaResize::new(h, w, 1, oh, ow);
            let mut portable = fast.clone();
            #[cfg(target_arch = "x86_64")]
            {
                if std::arch::is_x86_feature_detected!("avx512vbmi") {
                    assert!(fast.vector.is_some(), "{h}x{w} -> {oh}x{ow} has no vector pass");
                }
                portable.vector = None;
            }
            let (mut a, mut b) = (vec![0u8; oh * ow], vec![1u8; oh * ow]);
            fast.run(&src, &mut a);
            portable.run(&src, &mut b);
            assert_eq!(a, b, "{h}x{w} -> {oh}x{ow}");
        }
    }

    #[test]
    fn a_constant_image_stays_constant() {
        let mut r = AreaResize::new(210, 160, 1, 84, 84);
        let src = vec![77u8; 210 * 160];
        let mut dst = vec![0u8; 84 * 84];
        r.run(&src, &mut dst);
        assert!(dst.iter().all(|&v| v == 77));
    }

    #[test]
    fn weights_of_each_output_pixel_sum_to_one() {
        for (src, dst) in [(210, 84), (160, 84), (100, 30)] {
            let mut total = vec![0.0f64; dst];
            for t in taps(src, dst, 1) {
                total[t.di] += f64::from(t.alpha);
            }
            assert!(total.iter().all(|s| (s - 1.0).abs() < 1e-5), "{src}->{dst}: {total:?}");
        }
    }

    #[test]
    fn integer_factor_averages_blocks() {
        // 4x4 -> 2x2: each output is the mean of a 2x2 block, rounded half to even.
        let mut r = AreaResize::new(4, 4, 1, 2, 2);
        let src = [0, 2, 10, 10, 0, 0, 10, 11, 1, 1, 200, 200, 1, 2, 200, 200];
        let mut dst = [0u8; 4];
        r.run(&src, &mut dst);
        assert_eq!(dst, [0, 10, 1, 200]);
    }
}

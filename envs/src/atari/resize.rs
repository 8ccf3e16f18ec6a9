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

/// A precomputed `INTER_AREA` shrink of `height × width × channels` bytes to
/// `out_height × out_width × channels`, with its scratch rows (no allocation per call).
#[derive(Clone, Debug)]
pub struct AreaResize {
    height: usize,
    width: usize,
    channels: usize,
    out_height: usize,
    out_width: usize,
    xtab: Vec<Tap>,
    /// The taps of each output column: `(di, start, end)` into `xtab`.
    xgroups: Vec<(usize, usize, usize)>,
    ytab: Vec<Tap>,
    buf: Vec<f32>,
    sum: Vec<f32>,
}

impl AreaResize {
    /// The resize of `(height, width)` images with `channels` interleaved channels to
    /// `(out_height, out_width)`. Only shrinking (each output size at most the input size) is
    /// supported, which is what the Atari wrappers do.
    pub fn new(height: usize, width: usize, channels: usize, out_height: usize, out_width: usize) -> Self {
        let row = out_width * channels;
        let xtab = taps(width, out_width, channels);
        let mut xgroups: Vec<(usize, usize, usize)> = Vec::with_capacity(out_width);
        for (k, t) in xtab.iter().enumerate() {
            match xgroups.last_mut() {
                Some(g) if g.0 == t.di => g.2 = k + 1,
                _ => xgroups.push((t.di, k, k + 1)),
            }
        }
        Self {
            height,
            width,
            channels,
            out_height,
            out_width,
            xtab,
            xgroups,
            ytab: taps(height, out_height, 1),
            buf: vec![0.0; row],
            sum: vec![0.0; row],
        }
    }

    /// Bytes of one input image.
    pub fn input_len(&self) -> usize {
        self.height * self.width * self.channels
    }

    /// Bytes of one output image.
    pub fn output_len(&self) -> usize {
        self.out_height * self.out_width * self.channels
    }

    /// Shrinks `src` into `dst` (lengths as [`Self::input_len`] / [`Self::output_len`]).
    pub fn run(&mut self, src: &[u8], dst: &mut [u8]) {
        let (cn, row_in) = (self.channels, self.width * self.channels);
        let row_out = self.out_width * cn;
        self.sum.fill(0.0);
        let mut prev_dy = self.ytab.first().map_or(0, |t| t.di);
        let mut prev_si = usize::MAX;
        for y in &self.ytab {
            // A source row split between two output rows comes twice in a row: its horizontal
            // sums are the same both times (OpenCV computes them once too).
            if y.si != prev_si {
                prev_si = y.si;
                let line = &src[y.si * row_in..(y.si + 1) * row_in];
                // Each output column sums its taps in OpenCV's order, starting from zero;
                // columns are independent, so the sums of neighbouring columns overlap in the
                // pipeline.
                for &(di, start, end) in &self.xgroups {
                    for c in 0..cn {
                        let mut acc = 0.0f32;
                        for t in &self.xtab[start..end] {
                            acc += f32::from(line[t.si + c]) * t.alpha;
                        }
                        self.buf[di + c] = acc;
                    }
                }
            }
            if y.di != prev_dy {
                let out = &mut dst[prev_dy * row_out..(prev_dy + 1) * row_out];
                for ((o, s), b) in out.iter_mut().zip(self.sum.iter_mut()).zip(&self.buf) {
                    *o = saturate_u8(*s);
                    *s = y.alpha * b;
                }
                prev_dy = y.di;
            } else {
                for (s, b) in self.sum.iter_mut().zip(&self.buf) {
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

/// OpenCV's `saturate_cast<uchar>(float)`: round half to even, then clamp to 0..=255.
#[inline]
fn saturate_u8(x: f32) -> u8 {
    x.round_ties_even().clamp(0.0, 255.0) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

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

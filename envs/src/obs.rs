//! Typed observation buffers: observations travel in their space's element type.
//!
//! A `Box` space of `float32` fills `f32` rows, `uint8` (Atari frames) `u8` rows, `float64`
//! (controlgym's spaces) `f64` rows; `Discrete` and `MultiDiscrete` observations travel as `f32`
//! rows holding the integers. [`ObsBuf`] owns a buffer of one of these types (a single row, or
//! the `num_envs` rows of a vector batch); [`ObsMut`] is the row an env writes into. The engine,
//! the Python bindings and the trainers move the native type without converting it.

use serde::{Deserialize, Serialize};

use crate::error::{EnvError, Result};
use crate::space::{DType, Space};

/// The element type an observation space travels in.
pub fn obs_dtype(space: &Space) -> DType {
    match space {
        Space::Box(b) => b.dtype,
        Space::Discrete(_) | Space::MultiDiscrete(_) => DType::Float32,
    }
}

/// The row an env writes one observation into.
#[derive(Debug)]
pub enum ObsMut<'a> {
    /// `float32` observations (and the integers of discrete spaces).
    F32(&'a mut [f32]),
    /// `float64` observations.
    F64(&'a mut [f64]),
    /// `uint8` observations (images).
    U8(&'a mut [u8]),
}

fn wrong_buffer(want: DType, want_len: usize, got: DType, got_len: usize) -> EnvError {
    EnvError::BatchShape(format!(
        "observation buffer of {got_len} {} values; this env writes {want_len} {} values",
        got.name(),
        want.name()
    ))
}

impl<'a> ObsMut<'a> {
    /// Element type of the buffer.
    pub fn dtype(&self) -> DType {
        match self {
            ObsMut::F32(_) => DType::Float32,
            ObsMut::F64(_) => DType::Float64,
            ObsMut::U8(_) => DType::Uint8,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            ObsMut::F32(v) => v.len(),
            ObsMut::F64(v) => v.len(),
            ObsMut::U8(v) => v.len(),
        }
    }

    /// Whether the buffer holds no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `f32` row of exactly `len` elements, or an error naming what the buffer is.
    #[inline]
    pub fn f32(self, len: usize) -> Result<&'a mut [f32]> {
        match self {
            ObsMut::F32(v) if v.len() == len => Ok(v),
            other => Err(wrong_buffer(DType::Float32, len, other.dtype(), other.len())),
        }
    }

    /// The `f64` row of exactly `len` elements, or an error naming what the buffer is.
    #[inline]
    pub fn f64(self, len: usize) -> Result<&'a mut [f64]> {
        match self {
            ObsMut::F64(v) if v.len() == len => Ok(v),
            other => Err(wrong_buffer(DType::Float64, len, other.dtype(), other.len())),
        }
    }

    /// The `u8` row of exactly `len` elements, or an error naming what the buffer is.
    #[inline]
    pub fn u8(self, len: usize) -> Result<&'a mut [u8]> {
        match self {
            ObsMut::U8(v) if v.len() == len => Ok(v),
            other => Err(wrong_buffer(DType::Uint8, len, other.dtype(), other.len())),
        }
    }

    /// The first element that is NaN or infinite, with its value (`u8` rows have none).
    #[inline]
    pub fn first_non_finite(&self) -> Option<(usize, f64)> {
        // One branch-free pass for the common all-finite case.
        let all_finite = match self {
            ObsMut::F32(v) => v.iter().fold(true, |ok, x| ok & x.is_finite()),
            ObsMut::F64(v) => v.iter().fold(true, |ok, x| ok & x.is_finite()),
            ObsMut::U8(_) => true,
        };
        if all_finite {
            return None;
        }
        match self {
            ObsMut::F32(v) => v.iter().position(|x| !x.is_finite()).map(|k| (k, f64::from(v[k]))),
            ObsMut::F64(v) => v.iter().position(|x| !x.is_finite()).map(|k| (k, v[k])),
            ObsMut::U8(_) => None,
        }
    }

    /// Reborrows the buffer for a shorter lifetime.
    pub fn reborrow(&mut self) -> ObsMut<'_> {
        match self {
            ObsMut::F32(v) => ObsMut::F32(v),
            ObsMut::F64(v) => ObsMut::F64(v),
            ObsMut::U8(v) => ObsMut::U8(v),
        }
    }
}

/// A read-only observation row (or rows) of any element type.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ObsRef<'a> {
    /// `float32` values.
    F32(&'a [f32]),
    /// `float64` values.
    F64(&'a [f64]),
    /// `uint8` values.
    U8(&'a [u8]),
}

impl ObsRef<'_> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            ObsRef::F32(v) => v.len(),
            ObsRef::F64(v) => v.len(),
            ObsRef::U8(v) => v.len(),
        }
    }

    /// Whether no element is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element `i` as `f64` (exact for every type).
    #[inline]
    pub fn get(&self, i: usize) -> f64 {
        match self {
            ObsRef::F32(v) => f64::from(v[i]),
            ObsRef::F64(v) => v[i],
            ObsRef::U8(v) => f64::from(v[i]),
        }
    }

    /// Every element as `f64`.
    pub fn iter_f64(&self) -> impl Iterator<Item = f64> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }

    /// Every element as `f64`, in a new vector.
    pub fn to_f64_vec(&self) -> Vec<f64> {
        self.iter_f64().collect()
    }

    /// Every element as `f32` (rounds `f64`), in a new vector.
    pub fn to_f32_vec(&self) -> Vec<f32> {
        self.iter_f64().map(|x| x as f32).collect()
    }
}

/// Copies `from` into `to` value by value, converting the element type: exactly into a wider
/// type, `float64` to `float32` rounded, floats to `uint8` rounded toward zero and saturated
/// to `0..=255` (NaN to 0). Copies `min(len)` values; the engine calls it with equal lengths.
pub fn convert(to: ObsMut<'_>, from: ObsRef<'_>) {
    let values = from.iter_f64();
    match to {
        ObsMut::F32(t) => t.iter_mut().zip(values).for_each(|(v, x)| *v = x as f32),
        ObsMut::F64(t) => t.iter_mut().zip(values).for_each(|(v, x)| *v = x),
        ObsMut::U8(t) => t.iter_mut().zip(values).for_each(|(v, x)| *v = x as u8),
    }
}

/// An owned buffer of observations in their native element type.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "dtype", content = "data", rename_all = "lowercase")]
pub enum ObsBuf {
    /// `float32` values.
    #[serde(rename = "float32")]
    F32(Vec<f32>),
    /// `float64` values.
    #[serde(rename = "float64")]
    F64(Vec<f64>),
    /// `uint8` values.
    #[serde(rename = "uint8")]
    U8(Vec<u8>),
}

impl Default for ObsBuf {
    fn default() -> Self {
        ObsBuf::F32(Vec::new())
    }
}

impl ObsBuf {
    /// `len` zeros of type `dtype`.
    pub fn zeros(dtype: DType, len: usize) -> Self {
        match dtype {
            DType::Float32 => ObsBuf::F32(vec![0.0; len]),
            DType::Float64 => ObsBuf::F64(vec![0.0; len]),
            DType::Uint8 => ObsBuf::U8(vec![0; len]),
        }
    }

    /// `len` zeros of type `dtype`, or an error if they cannot be allocated (sizes users choose).
    pub fn try_zeros(dtype: DType, len: usize) -> Result<Self> {
        let what = "observation buffer";
        Ok(match dtype {
            DType::Float32 => ObsBuf::F32(crate::memory::try_filled(len, 0.0, what)?),
            DType::Float64 => ObsBuf::F64(crate::memory::try_filled(len, 0.0, what)?),
            DType::Uint8 => ObsBuf::U8(crate::memory::try_filled(len, 0, what)?),
        })
    }

    /// A buffer for `rows` observations of `space`.
    pub fn for_space(space: &Space, rows: usize) -> Self {
        Self::zeros(obs_dtype(space), rows * space.flat_len())
    }

    /// Element type.
    pub fn dtype(&self) -> DType {
        match self {
            ObsBuf::F32(_) => DType::Float32,
            ObsBuf::F64(_) => DType::Float64,
            ObsBuf::U8(_) => DType::Uint8,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.as_ref().len()
    }

    /// Whether no element is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The whole buffer, writable.
    pub fn as_mut(&mut self) -> ObsMut<'_> {
        match self {
            ObsBuf::F32(v) => ObsMut::F32(v),
            ObsBuf::F64(v) => ObsMut::F64(v),
            ObsBuf::U8(v) => ObsMut::U8(v),
        }
    }

    /// The whole buffer, read-only.
    pub fn as_ref(&self) -> ObsRef<'_> {
        match self {
            ObsBuf::F32(v) => ObsRef::F32(v),
            ObsBuf::F64(v) => ObsRef::F64(v),
            ObsBuf::U8(v) => ObsRef::U8(v),
        }
    }

    /// Row `i` of rows of `width` elements.
    pub fn row(&self, i: usize, width: usize) -> ObsRef<'_> {
        let r = i * width..(i + 1) * width;
        match self {
            ObsBuf::F32(v) => ObsRef::F32(&v[r]),
            ObsBuf::F64(v) => ObsRef::F64(&v[r]),
            ObsBuf::U8(v) => ObsRef::U8(&v[r]),
        }
    }

    /// Row `i` of rows of `width` elements, writable.
    pub fn row_mut(&mut self, i: usize, width: usize) -> ObsMut<'_> {
        let r = i * width..(i + 1) * width;
        match self {
            ObsBuf::F32(v) => ObsMut::F32(&mut v[r]),
            ObsBuf::F64(v) => ObsMut::F64(&mut v[r]),
            ObsBuf::U8(v) => ObsMut::U8(&mut v[r]),
        }
    }

    /// Copies row `src` of `from` into row `dst` of this buffer. Rows of another element type
    /// are converted, value by value, as [`convert`] does (a row is never left as it was).
    pub fn copy_row(&mut self, dst: usize, from: &ObsBuf, src: usize, width: usize) {
        let (d, s) = (dst * width..(dst + 1) * width, src * width..(src + 1) * width);
        match (self, from) {
            (ObsBuf::F32(a), ObsBuf::F32(b)) => a[d].copy_from_slice(&b[s]),
            (ObsBuf::F64(a), ObsBuf::F64(b)) => a[d].copy_from_slice(&b[s]),
            (ObsBuf::U8(a), ObsBuf::U8(b)) => a[d].copy_from_slice(&b[s]),
            (to, from) => convert(to.row_mut(dst, width), from.row(src, width)),
        }
    }

    /// The values if the buffer holds `f32`.
    pub fn as_f32(&self) -> Option<&[f32]> {
        match self {
            ObsBuf::F32(v) => Some(v),
            _ => None,
        }
    }

    /// Every element as `f32` (rounds `f64`), in a new vector.
    pub fn to_f32_vec(&self) -> Vec<f32> {
        self.as_ref().to_f32_vec()
    }

    /// Every element as `f64`, in a new vector.
    pub fn to_f64_vec(&self) -> Vec<f64> {
        self.as_ref().to_f64_vec()
    }
}

impl<'a> From<&'a mut [f32]> for ObsMut<'a> {
    fn from(v: &'a mut [f32]) -> Self {
        ObsMut::F32(v)
    }
}

impl<'a> From<&'a mut [f64]> for ObsMut<'a> {
    fn from(v: &'a mut [f64]) -> Self {
        ObsMut::F64(v)
    }
}

impl<'a> From<&'a mut [u8]> for ObsMut<'a> {
    fn from(v: &'a mut [u8]) -> Self {
        ObsMut::U8(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::space::BoxSpace;

    #[test]
    fn typed_rows_check_type_and_length() {
        let mut buf = ObsBuf::zeros(DType::Uint8, 6);
        assert!(buf.row_mut(1, 3).u8(3).is_ok());
        assert!(buf.row_mut(1, 3).u8(4).is_err());
        let err = buf.row_mut(0, 3).f32(3).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("uint8") && err.contains("float32"), "{err}");
        assert_eq!(buf.dtype(), DType::Uint8);
    }

    #[test]
    fn a_row_of_another_type_is_converted_not_skipped() {
        let mut buf = ObsBuf::F32(vec![0.0; 4]);
        buf.copy_row(1, &ObsBuf::U8(vec![1, 2, 3, 4]), 1, 2);
        assert_eq!(buf, ObsBuf::F32(vec![0.0, 0.0, 3.0, 4.0]));
        let mut bytes = ObsBuf::U8(vec![9; 3]);
        bytes.copy_row(0, &ObsBuf::F64(vec![-1.0, 2.7, 300.0]), 0, 3);
        assert_eq!(bytes, ObsBuf::U8(vec![0, 2, 255]));
    }

    #[test]
    fn buffers_follow_the_space() {
        let mut b = BoxSpace::vector(vec![0.0; 4], vec![255.0; 4]);
        b.dtype = DType::Float64;
        assert_eq!(ObsBuf::for_space(&Space::Box(b), 3).dtype(), DType::Float64);
        let buf = ObsBuf::U8(vec![1, 2, 255]);
        assert_eq!(buf.to_f64_vec(), vec![1.0, 2.0, 255.0]);
        let json = serde_json::to_string(&buf).unwrap_or_default();
        assert_eq!(serde_json::from_str::<ObsBuf>(&json).ok(), Some(buf));
    }
}

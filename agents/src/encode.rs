//! Between the envs' typed buffers and the networks' tensors: observation encoding and action
//! decoding.
//!
//! **Observations** ([`ObsEncoder`]) go to the device in two stages. [`ObsEncoder::store`]
//! uploads rows in their native element type (float32, float64, or uint8 frames, which stay bytes
//! until they are on the device) and gives the *stored form*, what rollouts and replay buffers
//! keep: the native values, or, with normalisation, the normalised float32 values (normalised
//! with the statistics of the moment they were observed, as Gymnasium's `NormalizeObservation`
//! does). [`ObsEncoder::input`] turns stored observations into the networks' float32 input: a
//! conversion on the device, or a one-hot row for Discrete observations.
//!
//! **Actions** ([`ActionDecoder`]): network outputs become actions in the action space's type:
//! integers (offset by the space's `start`) for Discrete, float32 for float32 Boxes, float64 for
//! float64 Boxes (controlgym's), clipped to the Box bounds (the Gaussian's samples are not).

use tch::{Device, Kind, Tensor};

use keel_envs::space::DType;
use keel_envs::{ObsRef, OwnedAction, Space};

use crate::error::{AgentError, Result};
use crate::normalize::ObsNormalizer;

/// How stored observations become network input.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Form {
    /// Discrete observations: one-hot over `n` values starting at `start`.
    OneHot { n: i64, start: i64 },
    /// The values themselves, as float32.
    Values,
}

/// Uploads observations and turns them into network input (see the module docs).
#[derive(Clone, Debug)]
pub struct ObsEncoder {
    form: Form,
    /// Elements of one raw observation row.
    width: usize,
    normalizer: Option<ObsNormalizer>,
    /// Trailing numbers stored raw (float32) even when the rest is normalised.
    raw_tail: usize,
    device: Device,
}

impl ObsEncoder {
    /// An encoder for observations of `space` on `device`; `normalize_clip` normalises them with
    /// running statistics, clipped to that bound (ignored for Discrete observations, which are
    /// fed one-hot).
    pub fn new(space: &Space, normalize_clip: Option<f64>, device: Device) -> Self {
        let width = space.flat_len();
        let form = match space {
            Space::Discrete(d) => Form::OneHot { n: d.n.max(1), start: d.start },
            _ => Form::Values,
        };
        let normalizer = match form {
            Form::Values => normalize_clip.map(|clip| ObsNormalizer::new(width, clip)),
            Form::OneHot { .. } => None,
        };
        Self { form, width, normalizer, raw_tail: 0, device }
    }

    /// This encoder with the last `tail` numbers of each row left unnormalised (stored as
    /// float32 values): a pretrained history encoder's slice, which it standardises with fixed
    /// statistics of its own. The running statistics still cover every number.
    pub fn with_raw_tail(mut self, tail: usize) -> Self {
        self.raw_tail = tail.min(self.width);
        self
    }

    /// Width of one row of network input.
    pub fn input_width(&self) -> usize {
        match self.form {
            Form::OneHot { n, .. } => n as usize,
            Form::Values => self.width,
        }
    }

    /// The device observations are uploaded to.
    pub fn device(&self) -> Device {
        self.device
    }

    /// The running statistics, if observations are normalised.
    pub fn normalizer(&self) -> Option<&ObsNormalizer> {
        self.normalizer.as_ref()
    }

    /// Replaces the running statistics (a checkpoint's); they must be of the same kind and size.
    pub fn set_normalizer(&mut self, normalizer: Option<ObsNormalizer>) -> Result<()> {
        match (&self.normalizer, &normalizer) {
            (None, None) => {}
            (Some(_), Some(n)) if n.stats.mean.len() == self.width => {}
            _ => {
                return Err(AgentError::Checkpoint(
                    "the observation statistics do not fit this config (normalize_obs or the env differ)".into(),
                ));
            }
        }
        self.normalizer = normalizer;
        Ok(())
    }

    /// Merges rows of raw observations into the running statistics (nothing without
    /// normalisation).
    pub fn update(&mut self, obs: ObsRef<'_>) {
        if let Some(norm) = &mut self.normalizer {
            norm.update(obs);
        }
    }

    /// Rows of raw observations, uploaded in their element type, in stored form on the device:
    /// `[rows, width]`, native type, or normalised float32 (current statistics, not updated).
    pub fn store(&self, obs: ObsRef<'_>) -> Tensor {
        let rows = (obs.len() / self.width.max(1)) as i64;
        let raw = match obs {
            ObsRef::F32(v) => Tensor::from_slice(v),
            ObsRef::F64(v) => Tensor::from_slice(v),
            ObsRef::U8(v) => Tensor::from_slice(v),
        };
        let raw = raw.view([rows, self.width as i64]).to_device(self.device);
        match &self.normalizer {
            Some(norm) if self.raw_tail > 0 => {
                let (head, tail) = ((self.width - self.raw_tail) as i64, self.raw_tail as i64);
                let normalised = norm.apply(&raw).narrow(1, 0, head);
                Tensor::cat(&[normalised, raw.narrow(1, head, tail).to_kind(Kind::Float)], 1)
            }
            Some(norm) => norm.apply(&raw),
            None => raw,
        }
    }

    /// Network input, float32 `[..., input_width]`, from stored observations `[..., width]`.
    pub fn input(&self, stored: &Tensor) -> Tensor {
        match self.form {
            Form::OneHot { n, start } => {
                (stored.squeeze_dim(-1).to_kind(Kind::Int64) - start).clamp(0, n - 1).one_hot(n).to_kind(Kind::Float)
            }
            Form::Values => stored.to_kind(Kind::Float),
        }
    }
}

/// Turns network outputs into env actions in the action space's type (see the module docs).
#[derive(Clone, Debug, PartialEq)]
pub enum ActionDecoder {
    /// Discrete: one integer per env, offset by `start`.
    Discrete {
        /// Value of the first action.
        start: i64,
    },
    /// MultiDiscrete: the integers as they are.
    Ints,
    /// float32 Box: clipped to the bounds.
    Float32 {
        /// Lower bounds.
        low: Vec<f32>,
        /// Upper bounds.
        high: Vec<f32>,
    },
    /// float64 Box: widened to float64, clipped to the bounds.
    Float64 {
        /// Lower bounds.
        low: Vec<f64>,
        /// Upper bounds.
        high: Vec<f64>,
    },
}

impl ActionDecoder {
    /// The decoder for actions of `space`.
    pub fn new(space: &Space) -> Self {
        match space {
            Space::Discrete(d) => ActionDecoder::Discrete { start: d.start },
            Space::MultiDiscrete(_) => ActionDecoder::Ints,
            Space::Box(b) if b.dtype == DType::Float64 => {
                ActionDecoder::Float64 { low: b.low.clone(), high: b.high.clone() }
            }
            Space::Box(b) => ActionDecoder::Float32 {
                low: b.low.iter().map(|&x| x as f32).collect(),
                high: b.high.iter().map(|&x| x as f32).collect(),
            },
        }
    }

    /// The actions of a batch of network outputs (`[N]` integers, or `[N, dim]` reals).
    pub fn decode(&self, actions: &Tensor) -> Result<OwnedAction> {
        let cpu = actions.to_device(Device::Cpu).flatten(0, -1);
        Ok(match self {
            ActionDecoder::Discrete { start } => {
                let mut ints = Vec::<i64>::try_from(&cpu.to_kind(Kind::Int64))?;
                ints.iter_mut().for_each(|a| *a += start);
                OwnedAction::Ints(ints)
            }
            ActionDecoder::Ints => OwnedAction::Ints(Vec::<i64>::try_from(&cpu.to_kind(Kind::Int64))?),
            ActionDecoder::Float32 { low, high } => {
                let mut floats = Vec::<f32>::try_from(&cpu.to_kind(Kind::Float))?;
                let dim = low.len().max(1);
                for (i, a) in floats.iter_mut().enumerate() {
                    *a = a.clamp(low[i % dim], high[i % dim]);
                }
                OwnedAction::Floats(floats)
            }
            ActionDecoder::Float64 { low, high } => {
                let mut doubles = Vec::<f64>::try_from(&cpu.to_kind(Kind::Double))?;
                let dim = low.len().max(1);
                for (i, a) in doubles.iter_mut().enumerate() {
                    *a = a.clamp(low[i % dim], high[i % dim]);
                }
                OwnedAction::Floats64(doubles)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_envs::space::{BoxSpace, Discrete};

    fn values(t: &Tensor) -> Vec<f64> {
        Vec::<f64>::try_from(&t.to_kind(Kind::Double).flatten(0, -1)).unwrap_or_default()
    }

    #[test]
    fn every_dtype_is_uploaded_as_itself_and_fed_as_float32() {
        crate::threads::configure();
        let space = |dtype| Space::Box(BoxSpace::symmetric(&[300.0; 3]).with_dtype(dtype));
        let f64_row = [0.1, 1.0 + 1e-12, -2.5];
        let cases: [(DType, ObsRef<'_>, Kind); 3] = [
            (DType::Float32, ObsRef::F32(&[0.5, -1.0, 2.0]), Kind::Float),
            (DType::Float64, ObsRef::F64(&f64_row), Kind::Double),
            (DType::Uint8, ObsRef::U8(&[0, 7, 255]), Kind::Uint8),
        ];
        for (dtype, row, kind) in cases {
            let encoder = ObsEncoder::new(&space(dtype), None, Device::Cpu);
            let stored = encoder.store(row);
            assert_eq!((stored.kind(), stored.size()), (kind, vec![1, 3]), "{dtype:?}");
            assert_eq!(values(&stored), row.to_f64_vec(), "{dtype:?}: stored exactly");
            let input = encoder.input(&stored);
            assert_eq!(input.kind(), Kind::Float);
            assert_eq!(values(&input), row.to_f32_vec().iter().map(|&x| f64::from(x)).collect::<Vec<_>>());
        }
    }

    #[test]
    fn normalised_observations_are_stored_as_float32_and_statistics_move_only_on_update() {
        crate::threads::configure();
        let space = Space::Box(BoxSpace::symmetric(&[10.0; 2]).with_dtype(DType::Float64));
        let mut encoder = ObsEncoder::new(&space, Some(5.0), Device::Cpu);
        let rows = [1.0, 2.0, 3.0, 6.0];
        let before = values(&encoder.store(ObsRef::F64(&rows)));
        assert_eq!(before, vec![1.0, 2.0, 3.0, 5.0], "mean 0, variance 1, clipped at 5");
        encoder.update(ObsRef::F64(&rows));
        let after = encoder.store(ObsRef::F64(&rows));
        assert_eq!(after.kind(), Kind::Float);
        let after = values(&after);
        // Mean (2, 4) after the update: the first column becomes -1, +1 in units of its std.
        assert!(after[0] < 0.0 && after[2] > 0.0 && (after[0] + after[2]).abs() < 1e-3, "{after:?}");
        let mut other = ObsEncoder::new(&space, None, Device::Cpu);
        assert!(other.set_normalizer(encoder.normalizer().cloned()).is_err());
    }

    #[test]
    fn a_raw_tail_stays_unnormalised_and_the_rest_is_normalised() {
        crate::threads::configure();
        let space = Space::Box(BoxSpace::symmetric(&[10.0; 3]));
        let mut encoder = ObsEncoder::new(&space, Some(5.0), Device::Cpu).with_raw_tail(1);
        let rows = [1.0f32, 2.0, 3.0, 5.0, 6.0, 7.0];
        encoder.update(ObsRef::F32(&rows));
        let plain = {
            let mut all = ObsEncoder::new(&space, Some(5.0), Device::Cpu);
            all.update(ObsRef::F32(&rows));
            values(&all.store(ObsRef::F32(&rows)))
        };
        let stored = values(&encoder.store(ObsRef::F32(&rows)));
        assert_eq!((stored[2], stored[5]), (3.0, 7.0), "the tail is raw");
        assert_eq!([stored[0], stored[1], stored[3], stored[4]], [plain[0], plain[1], plain[3], plain[4]]);
        assert!(stored[0] < 0.0 && stored[3] > 0.0);
    }

    #[test]
    fn discrete_observations_are_one_hot() {
        crate::threads::configure();
        let encoder = ObsEncoder::new(&Space::Discrete(Discrete { n: 4, start: 10 }), Some(1.0), Device::Cpu);
        assert_eq!(encoder.input_width(), 4);
        assert!(encoder.normalizer().is_none());
        let stored = encoder.store(ObsRef::F32(&[10.0, 13.0, 11.0]));
        assert_eq!(stored.size(), [3, 1]);
        let input = encoder.input(&stored);
        assert_eq!(values(&input), vec![1., 0., 0., 0., 0., 0., 0., 1., 0., 1., 0., 0.]);
        // Stored rollouts `[T, N, 1]` become `[T, N, n]`.
        assert_eq!(encoder.input(&stored.view([3, 1, 1])).size(), [3, 1, 4]);
    }

    #[test]
    fn actions_come_out_in_the_space_type_and_bounds() {
        crate::threads::configure();
        let discrete = ActionDecoder::new(&Space::Discrete(Discrete { n: 3, start: -1 }));
        let got = discrete.decode(&Tensor::from_slice(&[0i64, 2, 1])).ok();
        assert_eq!(got, Some(OwnedAction::Ints(vec![-1, 1, 0])));
        let boxed = BoxSpace::symmetric(&[1.0, 2.0]);
        let out = Tensor::from_slice(&[0.5f32, -3.0, 1.5, 0.25]).view([2, 2]);
        let got = ActionDecoder::new(&Space::Box(boxed.clone())).decode(&out).ok();
        assert_eq!(got, Some(OwnedAction::Floats(vec![0.5, -2.0, 1.0, 0.25])));
        let got = ActionDecoder::new(&Space::Box(boxed.with_dtype(DType::Float64))).decode(&out).ok();
        assert_eq!(got, Some(OwnedAction::Floats64(vec![0.5, -2.0, 1.0, 0.25])));
    }
}

//! Where the humanoid's model and motion clips are.
//!
//! They are not Keel's to ship: `scripts/setup.sh` takes them from the pybullet 3.2.7 wheel (zlib
//! licence; the clips are DeepMimic's, from CMU and SFU motion capture) and unpacks only these
//! files into `$KEEL_CACHE/pybullet-3.2.7/` (default `~/.cache/keel/pybullet-3.2.7/`):
//!
//! | file | holds |
//! |---|---|
//! | `pybullet_data/humanoid/humanoid.urdf` | bodies, masses, shapes, joints, knee and elbow limits |
//! | `pybullet_data/data/motions/humanoid3d_*.txt` | the 15 motion clips |
//! | `pybullet_envs/deep_mimic/env/humanoid_stable_pd.py` | DeepMimic's PD gains (`_kpOrg`, `_kdOrg`) |
//! | `pybullet_envs/deep_mimic/env/pybullet_deep_mimic_env.py` | DeepMimic's torque limits (`maxForces`) |

use std::path::{Path, PathBuf};

use crate::error::{PhysicsError, Result};

/// The folder, under the Keel cache, that the setup unpacks the wheel's files into.
pub const PYBULLET_DIR: &str = "pybullet-3.2.7";

/// A folder holding the humanoid's files, laid out as in the pybullet wheel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// The data under the Keel cache: `$KEEL_CACHE/pybullet-3.2.7` (default
    /// `~/.cache/keel/pybullet-3.2.7`), or [`PhysicsError::DataMissing`] saying how to get it.
    pub fn locate() -> Result<Self> {
        Self::at(keel_cache().join(PYBULLET_DIR))
    }

    /// The data in an explicit folder (one holding `pybullet_data/` and `pybullet_envs/`).
    pub fn at(root: impl Into<PathBuf>) -> Result<Self> {
        let dir = Self { root: root.into() };
        let needed = [dir.urdf(), dir.gains_source(), dir.torque_limits_source(), dir.motions()];
        if let Some(missing) = needed.iter().find(|path| !path.exists()) {
            return Err(PhysicsError::DataMissing(format!(
                "{} not found. The DeepMimic humanoid and its clips come from the pybullet 3.2.7 wheel: \
                 run `bash scripts/setup.sh` (it fetches them into $KEEL_CACHE/{PYBULLET_DIR}), or pass \
                 the folder holding pybullet_data/ and pybullet_envs/ explicitly",
                missing.display()
            )));
        }
        Ok(dir)
    }

    /// The folder itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The humanoid's URDF.
    pub fn urdf(&self) -> PathBuf {
        self.root.join("pybullet_data/humanoid/humanoid.urdf")
    }

    /// The folder of the `humanoid3d_*.txt` clips.
    pub fn motions(&self) -> PathBuf {
        self.root.join("pybullet_data/data/motions")
    }

    /// The clip file of a clip name (`walk` is `humanoid3d_walk.txt`).
    pub fn clip(&self, name: &str) -> PathBuf {
        self.motions().join(format!("humanoid3d_{name}.txt"))
    }

    /// The pybullet file with DeepMimic's PD gains.
    pub fn gains_source(&self) -> PathBuf {
        self.root.join("pybullet_envs/deep_mimic/env/humanoid_stable_pd.py")
    }

    /// The pybullet file with DeepMimic's torque limits.
    pub fn torque_limits_source(&self) -> PathBuf {
        self.root.join("pybullet_envs/deep_mimic/env/pybullet_deep_mimic_env.py")
    }
}

/// `$KEEL_CACHE`, or `~/.cache/keel`.
fn keel_cache() -> PathBuf {
    std::env::var_os("KEEL_CACHE").map(PathBuf::from).unwrap_or_else(|| {
        std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(std::env::temp_dir).join(".cache/keel")
    })
}

/// Reads a data file, naming it in the error.
pub(crate) fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| PhysicsError::BadFile { path: path.to_owned(), why: e.to_string() })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_folder_says_how_to_get_the_data() {
        let err = DataDir::at("/nonexistent/keel-data").unwrap_err().to_string();
        assert!(err.starts_with("missing data: /nonexistent/keel-data/"), "{err}");
        assert!(err.contains("bash scripts/setup.sh"), "{err}");
    }
}

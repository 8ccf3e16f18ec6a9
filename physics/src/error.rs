//! The crate's error type.

use std::path::PathBuf;

/// What can go wrong in keel-physics. Every error names the value, file or coordinate at fault;
/// a call that fails changes nothing (a humanoid keeps its state, a library its clips).
#[derive(Debug, thiserror::Error)]
pub enum PhysicsError {
    /// The humanoid's model or clips are not installed; the message says how to get them.
    #[error("missing data: {0}")]
    DataMissing(String),
    /// A model or clip file that cannot be read or does not have the expected content.
    #[error("{}: {why}", path.display())]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// A pose, velocity or target vector of the wrong length.
    #[error("{what} has {got} values, expected {expected}")]
    WrongLength {
        /// Which vector (`pose`, `velocity`, `targets`).
        what: &'static str,
        /// The length the model needs.
        expected: usize,
        /// The length given.
        got: usize,
    },
    /// A value that the physics cannot take: not finite, out of range, a zero quaternion.
    #[error("{what}[{index}] ({coordinate}) = {value}: {why}")]
    BadValue {
        /// Which vector (`pose`, `velocity`, `targets`).
        what: &'static str,
        /// Index into that vector.
        index: usize,
        /// The coordinate it holds, e.g. `right_knee` or `chest.qx`.
        coordinate: String,
        /// The value given.
        value: f64,
        /// Why it is refused.
        why: &'static str,
    },
    /// A time that a clip cannot be sampled at.
    #[error("clip `{clip}`: time {value} is not finite")]
    BadTime {
        /// The clip.
        clip: String,
        /// The time given.
        value: f64,
    },
    /// A clip name that the library does not hold.
    #[error("unknown clip `{name}`; known: {known}")]
    UnknownClip {
        /// The name asked for.
        name: String,
        /// The names the library holds, comma-separated.
        known: String,
    },
    /// A configuration value out of its range.
    #[error("config: {0}")]
    Config(String),
    /// A snapshot that cannot be restored into this humanoid.
    #[error("snapshot: {0}")]
    Snapshot(String),
    /// The simulation left the finite or physically plausible range; the humanoid refuses to
    /// step until a new state is set.
    #[error("the simulation diverged at step {step}: {why}; set a new state to continue")]
    Diverged {
        /// The step count at which it was detected.
        step: u64,
        /// What was out of range.
        why: String,
    },
}

/// `Result` with [`PhysicsError`].
pub type Result<T> = std::result::Result<T, PhysicsError>;

/// [`PhysicsError::WrongLength`] unless `got == expected`.
pub(crate) fn check_len(what: &'static str, expected: usize, got: usize) -> Result<()> {
    if got == expected { Ok(()) } else { Err(PhysicsError::WrongLength { what, expected, got }) }
}

//! The error type of keel-agents.

use thiserror::Error;

/// What can stop a training or evaluation run.
#[derive(Debug, Error)]
pub enum AgentError {
    /// The environment refused something (bad id, config, action).
    #[error(transparent)]
    Env(#[from] keel_envs::EnvError),
    /// libtorch failed (device, shapes, files). The message holds libtorch's own, so it is not
    /// also given as the error's source (which would print it twice in a chain).
    #[error("libtorch: {0}")]
    Torch(tch::TchError),
    /// A training config field is unknown or invalid.
    #[error("{0}")]
    Config(String),
    /// A run folder or checkpoint could not be read or written.
    #[error("{context}: {cause}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error (in the message, and so not the error's source: a chain would
        /// print it twice).
        cause: std::io::Error,
    },
    /// A checkpoint that cannot be restored: missing or mis-shaped tensors, non-finite values,
    /// another config.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// The loss or the parameters stopped being finite.
    #[error("training diverged at iteration {iteration}: {what}")]
    Diverged {
        /// Iteration where it was detected.
        iteration: u64,
        /// What was not finite.
        what: String,
    },
}

impl AgentError {
    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>, cause: std::io::Error) -> Self {
        Self::Io { context: context.into(), cause }
    }
}

impl From<tch::TchError> for AgentError {
    fn from(e: tch::TchError) -> Self {
        Self::Torch(e)
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = AgentError> = std::result::Result<T, E>;

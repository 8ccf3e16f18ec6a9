//! The one error type of keel-envs.

use thiserror::Error;

/// Everything that can go wrong when making, resetting or stepping an environment.
///
/// Every variant is reachable from user input and says what to fix; none leaves the
/// environment unusable (a rejected action or option changes no state).
#[derive(Debug, Clone, PartialEq, Error)]
pub enum EnvError {
    /// `make` was given an id that is not registered.
    #[error("unknown environment id `{id}`; registered ids: {known}")]
    UnknownEnv {
        /// The id that was asked for.
        id: String,
        /// The registered ids, comma separated.
        known: String,
    },
    /// A config or parameter key the environment does not have.
    #[error("{context}: unknown field `{field}`; known fields: {known}")]
    UnknownField {
        /// Which config (e.g. `keel/CartPole-v1 config`).
        context: String,
        /// The key that was given.
        field: String,
        /// The keys that exist, comma separated.
        known: String,
    },
    /// A config or parameter value that is of the wrong type or out of its range.
    #[error("{context}: invalid `{field}`: {message}")]
    InvalidField {
        /// Which config (e.g. `keel/CartPole-v1 config`).
        context: String,
        /// The offending key.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// An action that is not in the action space (wrong length, kind, range, or not finite).
    #[error("invalid action: {0}")]
    InvalidAction(String),
    /// An initial state (reset option `state`) of the wrong length or with non-finite values.
    #[error("invalid initial state: {0}")]
    InvalidState(String),
    /// An observation that is NaN or infinite where the env does not end the episode: the state
    /// has left the range its observation can represent.
    #[error("non-finite observation: {0}")]
    NonFiniteObservation(String),
    /// A learner policy that is not a table of probability distributions of the right shape.
    #[error("invalid policy: {0}")]
    InvalidPolicy(String),
    /// A tabular model (rewards, transitions) of the wrong shape or whose rows are not
    /// distributions.
    #[error("invalid model: {0}")]
    InvalidModel(String),
    /// `step` before the first `reset`.
    #[error("step() called before reset()")]
    ResetNeeded,
    /// A vector env with autoreset disabled was stepped in a sub-env whose episode has ended.
    #[error("sub-env {index} has finished its episode and autoreset is disabled: reset it first (reset mask)")]
    StepAfterDone {
        /// Index of the finished sub-env.
        index: usize,
    },
    /// A vector env call given buffers or seeds of the wrong size.
    #[error("batch shape mismatch: {0}")]
    BatchShape(String),
    /// A snapshot that cannot be restored (unsupported, or not made by this kind of env).
    #[error("snapshot: {0}")]
    Snapshot(String),
    /// Data an env needs is not installed (the COMPleib systems that controlgym ships); the
    /// message says how to get it.
    #[error("missing data: {0}")]
    DataMissing(String),
    /// A controller cannot be designed for this env (no linear model, no stabilising Riccati
    /// solution, missing noise); the message names the cause.
    #[error("controller: {0}")]
    Control(String),
    /// An environment panicked inside a vector call (a bug in the env, not in the input).
    #[error("sub-env {index} panicked: {message}")]
    EnvPanicked {
        /// Index of the sub-env.
        index: usize,
        /// The panic message.
        message: String,
    },
    /// A vector env whose sub-env failed in the middle of a call: some envs had stepped and
    /// others not, so every call fails until a full reset.
    #[error("the vector env is unusable until reset: sub-env {index} failed: {cause}")]
    Poisoned {
        /// Index of the sub-env that failed.
        index: usize,
        /// What happened.
        cause: String,
    },
    /// A worker thread of a vector env could not be started: the OS refused it (too many
    /// threads for the process or user, too little memory). Nothing was made; fewer workers
    /// may fit.
    #[error("cannot start env worker thread {worker} of {workers}: {cause}; ask for fewer workers")]
    WorkerSpawn {
        /// Index of the worker that could not start.
        worker: usize,
        /// Workers asked for.
        workers: usize,
        /// The OS's reason.
        cause: String,
    },
    /// A call of the async vector API out of order or with bad ids (an env sent twice before
    /// `recv`, `recv` with too few envs in flight, ...); nothing changed.
    #[error("async vector: {0}")]
    AsyncUsage(String),
    /// The caller stopped a long call (the construction of a vector) before its end, e.g. on
    /// Ctrl-C; what it had made is dropped.
    #[error("stopped: {0}")]
    Stopped(String),
}

/// Shorthand for results of this crate.
pub type Result<T, E = EnvError> = std::result::Result<T, E>;

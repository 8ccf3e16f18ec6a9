//! libtorch thread policy (see the crate docs for why it is explicit).

use std::sync::{Mutex, MutexGuard, Once, PoisonError};

/// Environment variable that overrides the libtorch intra-op thread count.
pub const TORCH_THREADS_VAR: &str = "KEEL_TORCH_THREADS";

static CONFIGURE: Once = Once::new();

static TORCH_GENERATOR: Mutex<()> = Mutex::new(());

/// libtorch's default random generator is one per process. Code that seeds it and then draws
/// from it (to initialise a network, to sample actions) holds this guard in between, so that
/// two runs on threads of one process (tests, or a user's) cannot interleave their draws and a
/// seed still gives one run. Functions that take it do not call one another.
pub fn torch_generator() -> MutexGuard<'static, ()> {
    TORCH_GENERATOR.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The intra-op thread count Keel uses: `KEEL_TORCH_THREADS` when it holds a positive integer,
/// else 1. Small RL networks gain nothing from more and lose a lot to contention with the
/// environment workers.
pub fn torch_threads() -> i32 {
    std::env::var(TORCH_THREADS_VAR).ok().and_then(|v| v.trim().parse::<i32>().ok()).filter(|&n| n > 0).unwrap_or(1)
}

/// Sets libtorch's intra-op and inter-op thread counts once per process. Idempotent; call it
/// before the first tensor operation of any entry point.
pub fn configure() {
    CONFIGURE.call_once(|| {
        tch::set_num_threads(torch_threads());
        // The inter-op pool can only be sized before its first use.
        tch::set_num_interop_threads(1);
    });
}

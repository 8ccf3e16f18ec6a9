//! Ctrl-C for the commands whose work can be long (`keel baseline`, `keel performative`, `keel
//! td stability`, `keel render`): the first Ctrl-C asks the work to stop at its next check, which
//! removes what it had half-written and returns [`Interrupted`]; `keel` then exits with status
//! 130, as shells expect of a command ended by SIGINT. A second Ctrl-C leaves at once.
//!
//! `keel train` polls the same flag ([`flag`]): it finishes its iteration and checkpoints before
//! it stops. The handler is installed by the commands that use it, never for the whole program.

use std::sync::atomic::{AtomicBool, Ordering};

/// Set by the first Ctrl-C.
static REQUESTED: AtomicBool = AtomicBool::new(false);

/// The exit status of a command ended by Ctrl-C (128 + SIGINT).
pub const EXIT_STATUS: u8 = 130;

/// The error of work stopped by Ctrl-C; `keel` exits with [`EXIT_STATUS`].
#[derive(Debug)]
pub struct Interrupted;

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("interrupted by Ctrl-C")
    }
}

impl std::error::Error for Interrupted {}

/// Installs the handler (once per process; later calls do nothing).
pub fn install() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        let _ = ctrlc::set_handler(|| {
            if REQUESTED.swap(true, Ordering::SeqCst) {
                std::process::exit(i32::from(EXIT_STATUS));
            }
            // The handler runs on its own thread (not in signal context), so it may print.
            eprintln!("\nkeel: stopping at the next check (Ctrl-C again to leave at once)");
        });
    });
}

/// Whether Ctrl-C was pressed.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::Relaxed)
}

/// The flag itself, for work that polls a stop flag of its own (training).
pub fn flag() -> &'static AtomicBool {
    &REQUESTED
}

/// `Err(Interrupted)` once Ctrl-C was pressed: the check between units of long work.
pub fn check() -> anyhow::Result<()> {
    if requested() { Err(Interrupted.into()) } else { Ok(()) }
}

//! The `keel` command line, run as a user runs it (and without `LD_LIBRARY_PATH`, which proves
//! the libtorch rpath): one test binary, a module per command, helpers in [`common`].

mod common;

mod baseline;
mod bench;
mod doctor;
mod eval;
mod humanoid;
mod list;
mod performative;
mod refusals;
mod rollout;
mod td;
mod train;

//! The `keel` binary links libtorch through keel-agents: embed its directory as an rpath so it
//! runs without `LD_LIBRARY_PATH`, and keep `libtorch_cuda` linked where it exists (see
//! `agents/build.rs`).

use std::path::Path;

fn main() {
    if let Ok(dir) = std::env::var("DEP_KEEL_AGENTS_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
        if Path::new(&dir).join("libtorch_cuda.so").exists() {
            println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
        }
    }
}

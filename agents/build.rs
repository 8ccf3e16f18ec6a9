//! Embed libtorch's library directory as an rpath, so every binary and test that links
//! libtorch runs without `LD_LIBRARY_PATH`, and hand the directory on to dependents. Where the
//! libtorch build has CUDA, link `libtorch_cuda` even though no symbol of it is referenced:
//! `--as-needed` would drop it, and CUDA would then be missing at run time.

use std::path::Path;

fn main() {
    // torch-sys (`links = "tch"`) publishes the directory it linked against.
    if let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
        if Path::new(&dir).join("libtorch_cuda.so").exists() {
            println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
        }
        println!("cargo:libtorch_lib={dir}");
    }
}

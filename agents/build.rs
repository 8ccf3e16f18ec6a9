//! Embed libtorch's library directory as an rpath, so every binary and test that links
//! libtorch runs without `LD_LIBRARY_PATH`, and hand the directory on to dependents.

fn main() {
    // torch-sys (`links = "tch"`) publishes the directory it linked against.
    if let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
        println!("cargo:libtorch_lib={dir}");
    }
}

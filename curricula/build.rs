//! Embed libtorch's directory as an rpath when keel-envs links it (see `envs/build.rs`), so
//! that this crate's tests run without `LD_LIBRARY_PATH`.

fn main() {
    if let Ok(dir) = std::env::var("DEP_KEEL_ENVS_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
}

//! With the feature `diff`, embed libtorch's library directory as an rpath so that the tests
//! that link libtorch run without `LD_LIBRARY_PATH` (as `agents/build.rs`).

fn main() {
    if let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
}

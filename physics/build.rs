//! With the feature `diff`, embed libtorch's library directory as an rpath so that the tests
//! that link libtorch run without `LD_LIBRARY_PATH` (as `agents/build.rs`), and hand the
//! directory on to dependents (`DEP_KEEL_PHYSICS_LIBTORCH_LIB`).

fn main() {
    if let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
        println!("cargo:libtorch_lib={dir}");
    }
}

//! When a feature links keel-physics with libtorch (its `diff` feature, which cargo unifies
//! across the workspace), embed libtorch's directory as an rpath so that this crate's tests run
//! without `LD_LIBRARY_PATH`, and hand it on to dependents (`DEP_KEEL_ENVS_LIBTORCH_LIB`).

fn main() {
    if let Ok(dir) = std::env::var("DEP_KEEL_PHYSICS_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
        println!("cargo:libtorch_lib={dir}");
    }
}

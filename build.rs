//! The `keel` binary links libtorch through keel-agents: embed its directory as an rpath.

fn main() {
    if let Ok(dir) = std::env::var("DEP_KEEL_AGENTS_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg-bins=-Wl,-rpath,{dir}");
        println!("cargo:rustc-link-arg-tests=-Wl,-rpath,{dir}");
    }
}

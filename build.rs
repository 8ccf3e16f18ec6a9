//! The `keel` binary links libtorch through keel-agents: embed its directory as an rpath so it
//! runs without `LD_LIBRARY_PATH`.

fn main() {
    if let Ok(dir) = std::env::var("DEP_KEEL_AGENTS_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
}

//! Compiles ALE 0.12.1 from the unpacked ale-py source package and Keel's C shim over it.
//!
//! `KEEL_ALE_SRC` names the unpacked sdist (the folder holding `src/ale`); `scripts/setup.sh`
//! downloads and checks it, and `scripts/env.sh` exports the variable. ALE needs zlib and
//! threads; SDL stays off (no display, no sound).

use std::path::{Path, PathBuf};

const VERSION: &str = "0.12.1";

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("cpp" | "cxx")))
        .collect();
    files.sort();
    out.extend(files);
}

/// Writes `OUT_DIR/TIA.cxx`: ALE's `TIA.cxx` with the general case of
/// `TIA::updateFrameScanline` (several objects on one stretch of scanline, where Breakout
/// spends 40% of its emulation) replaced by `shim/tia_scanline.inc`, 64 pixels per AVX-512
/// step, when the compiler targets AVX-512 VBMI; Stella's loop stays as the other branch of
/// the `#if`. The result is the same screen and collisions, pixel for pixel.
fn splice_tia(tia: &Path, out: &Path) -> PathBuf {
    println!("cargo:rerun-if-changed=shim/tia_scanline.inc");
    let src = std::fs::read_to_string(tia).unwrap_or_else(|e| panic!("cannot read {}: {e}", tia.display()));
    let ours = std::fs::read_to_string("shim/tia_scanline.inc").unwrap_or_else(|e| panic!("cannot read shim/tia_scanline.inc: {e}"));
    // The span to replace: from the first `default:` of updateFrameScanline to the end of its
    // block, checked to be the per-pixel loop that writes the frame buffer.
    let span = src.find("inline void TIA::updateFrameScanline(").and_then(|f| {
        let start = f + src[f..].find("      default:")?;
        let brk = start + src[start..].find("break;")? + "break;".len();
        let end = brk + src[brk..].find('}')? + 1;
        let body = &src[start..end];
        (body.contains("myCollision |= ourCollisionTable[enabled]") && body.contains("*myFramePointer = myColor"))
            .then_some((start, end))
    });
    let Some((start, end)) = span else {
        panic!("{} is not the TIA.cxx of ALE {VERSION}: its scanline loop was not found", tia.display());
    };
    let patched = format!(
        "#include <immintrin.h>\n{}#if defined(__AVX512BW__) && defined(__AVX512VBMI__)\n{ours}#else\n{}\n#endif{}",
        &src[..start],
        &src[start..end],
        &src[end..]
    );
    let path = out.join("TIA.cxx");
    if let Err(e) = std::fs::write(&path, patched) {
        panic!("cannot write {}: {e}", path.display());
    }
    path
}

fn main() {
    println!("cargo:rerun-if-env-changed=KEEL_ALE_SRC");
    println!("cargo:rerun-if-changed=shim/keel_ale.cpp");
    let Some(root) = std::env::var_os("KEEL_ALE_SRC").map(PathBuf::from) else {
        panic!(
            "KEEL_ALE_SRC is not set: the `atari` feature compiles ALE {VERSION} from the ale-py sdist. \
             Run `bash scripts/setup.sh` (it downloads and checks the sdist) and `source scripts/env.sh`."
        );
    };
    let ale = root.join("src").join("ale");
    let version_txt = std::fs::read_to_string(root.join("version.txt")).unwrap_or_default();
    if version_txt.trim() != VERSION || !ale.join("ale_interface.cpp").is_file() {
        panic!(
            "KEEL_ALE_SRC={} is not the unpacked ale-py {VERSION} sdist (no src/ale/ale_interface.cpp or \
             version.txt != {VERSION}); run `bash scripts/setup.sh`",
            root.display()
        );
    }
    println!("cargo:rerun-if-changed={}", ale.display());

    // ALE's CMake writes version.hpp from version.hpp.in; so does this build, into OUT_DIR.
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default());
    let template = std::fs::read_to_string(ale.join("version.hpp.in")).unwrap_or_default();
    let header = template
        .replace("@ALE_VERSION@", VERSION)
        .replace("@ALE_VERSION_MAJOR@", "0")
        .replace("@ALE_VERSION_MINOR@", "12")
        .replace("@ALE_VERSION_PATCH@", "1")
        .replace("@ALE_VERSION_GIT_SHA@", "sdist");
    if let Err(e) = std::fs::write(out.join("version.hpp"), header) {
        panic!("cannot write version.hpp into {}: {e}", out.display());
    }

    let mut files = vec![ale.join("ale_interface.cpp")];
    for dir in ["common", "emucore", "environment", "games", "games/supported"] {
        sources(&ale.join(dir), &mut files);
    }
    // The TIA compiles from a copy with Keel's vector scanline loop spliced in (see below).
    let tia = ale.join("emucore").join("TIA.cxx");
    files.retain(|f| *f != tia);
    files.push(splice_tia(&tia, &out));
    // The emulator follows the Rust code's CPU target: `.cargo/config.toml` builds for this
    // machine's CPU, and a portable `RUSTFLAGS` build stays portable here too.
    let rustflags = std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    let flags: Vec<&str> = rustflags.split('\x1f').collect();
    let native = flags.iter().enumerate().any(|(i, flag)| {
        *flag == "-Ctarget-cpu=native" || (*flag == "target-cpu=native" && i > 0 && flags[i - 1] == "-C")
    });
    println!("cargo:rerun-if-env-changed=CARGO_ENCODED_RUSTFLAGS");
    let mut build = cc::Build::new();
    if native {
        build.flag_if_supported("-march=native");
    }
    build
        .cpp(true)
        .std("c++17")
        .include(root.join("src"))
        .include(&ale)
        .include(&out)
        .files(&files)
        .file("shim/keel_ale.cpp")
        .flag_if_supported("-w")
        .compile("keel_ale");
    println!("cargo:rustc-link-lib=z");
    println!("cargo:rustc-link-lib=stdc++");
    println!("cargo:rustc-link-lib=pthread");
}

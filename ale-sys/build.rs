//! Compiles ALE 0.12.1 from the unpacked ale-py source package and Keel's C shim over it.
//!
//! `KEEL_ALE_SRC` names the unpacked sdist (the folder holding `src/ale`); `scripts/setup.sh`
//! downloads and checks it, and `scripts/env.sh` exports the variable. ALE needs zlib and
//! threads; SDL stays off (no display, no sound).

use std::path::{Path, PathBuf};

const VERSION: &str = "0.12.1";

/// A file the build needs, as text (a missing one stops the build, naming it).
fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Writes `text` to `path`, stopping the build if it cannot.
fn write(path: &Path, text: &str) -> PathBuf {
    if let Err(e) = std::fs::write(path, text) {
        panic!("cannot write {}: {e}", path.display());
    }
    path.to_path_buf()
}

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
    let src = read(tia);
    let ours = read(Path::new("shim/tia_scanline.inc"));
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
    write(&out.join("TIA.cxx"), &patched)
}

/// Writes `OUT_DIR/M6502Low.cxx` and the opcode files it includes: ALE's 6502 interpreter with
/// three exact speed-ups. `shim/m6502_wait_loop.inc` goes into the taken branch of BNE: a
/// program's busy-wait `LDA abs; BNE *-3` on a TIA or RIOT register (17% of Breakout's
/// instructions) makes the same reads at the same cycles without decoding the loop again.
/// `shim/m6502_execute.inc` replaces the loop of `M6502Low::execute` (GCC and Clang) with
/// threaded dispatch over the same opcode code (`M6502Low_threaded.ins`, `m6502_ops.inc`), and
/// the function is flattened (every call inlined); other compilers keep Stella's `switch`, with
/// the wait loop in it. All three leave every screen, RAM byte and reward as they were (the
/// emulator golden test runs all 104 games against ale-py's wheel).
fn splice_cpu(emucore: &Path, out: &Path) -> PathBuf {
    println!("cargo:rerun-if-changed=shim/m6502_wait_loop.inc");
    println!("cargo:rerun-if-changed=shim/m6502_execute.inc");
    let not_ale = |what: &str| -> ! { panic!("{} is not ALE {VERSION}'s 6502 interpreter: {what}", emucore.display()) };
    let cxx = read(&emucore.join("M6502Low.cxx"));
    let ins = read(&emucore.join("M6502Low.ins"));
    let wait_loop = read(Path::new("shim/m6502_wait_loop.inc"));
    let execute = read(Path::new("shim/m6502_execute.inc"));

    // The wait loop, right after the taken BNE has set PC to its target.
    let bne = ins.find("case 0xD0:").unwrap_or_else(|| not_ale("no BNE case"));
    let taken = ins[bne..].find("PC = address;").map(|i| bne + i + "PC = address;".len());
    let Some(taken) = taken.filter(|&t| ins[bne..t].contains("if(notZ)") && !ins[bne..t].contains("break;")) else {
        not_ale("BNE's taken branch was not found")
    };
    let ins = format!("{}\n{wait_loop}{}", &ins[..taken], &ins[taken..]);

    // The threaded copy: `case 0xNN:` lines become labels, the `break;` that ends each case a jump
    // to the next opcode (the wait loop's own `break;` is indented and stays).
    let mut ops = [false; 256];
    let mut threaded = String::with_capacity(ins.len() + 8192);
    for line in ins.lines() {
        let opcode =
            line.strip_prefix("case 0x").and_then(|h| h.strip_suffix(':')).and_then(|h| u8::from_str_radix(h, 16).ok());
        match (opcode, line) {
            (Some(op), _) => {
                ops[op as usize] = true;
                threaded.push_str(&format!("keel_op_{op:02x}:"));
            }
            (None, "break;") => threaded.push_str("KEEL_NEXT"),
            (None, _) => threaded.push_str(line),
        }
        threaded.push('\n');
    }
    if ops.iter().filter(|&&o| o).count() < 151 {
        not_ale("fewer opcode cases than the 6502's 151 documented ones");
    }
    let table: Vec<String> =
        (0..256).map(|op| if ops[op] { format!("&&keel_op_{op:02x},") } else { "&&keel_op_illegal,".into() }).collect();

    // The loop of execute(): from its comment to the end of the function.
    let start = cxx
        .find("  // Loop until execution is stopped or a fatal error occurs\n")
        .unwrap_or_else(|| not_ale("no execute loop"));
    let end = cxx[start..].find("// - - -").map(|i| start + i).unwrap_or_else(|| not_ale("execute has no end"));
    let include = "#include \"ale/emucore/M6502Low.ins\"";
    if cxx[start..end].matches(include).count() != 1 {
        not_ale("execute does not include M6502Low.ins once");
    }
    let original = cxx[start..end].replace(include, "#include \"M6502Low.ins\"");
    let header = "#include \"ale/emucore/M6502Low.hxx\"\n";
    if !cxx[..start].contains(header) {
        not_ale("M6502Low.cxx does not include its header");
    }
    let signature = "\nbool M6502Low::execute(uint32_t number)\n";
    if cxx[..start].matches(signature).count() != 1 {
        not_ale("M6502Low::execute was not found");
    }
    // `flatten`: GCC leaves most of the 6502's memory reads (System::peek) as calls in a
    // function this large; inlining every call into execute() removes them.
    let head = cxx[..start]
        .replacen(header, &format!("{header}#include \"ale/emucore/M6532.hxx\"\n#include \"ale/emucore/TIA.hxx\"\n"), 1)
        .replacen(signature, &format!("\n#if defined(__GNUC__)\n__attribute__((flatten))\n#endif{signature}"), 1);
    let patched = format!("{head}#if defined(__GNUC__)\n{execute}\n#else\n{original}#endif\n\n{}", &cxx[end..]);
    write(&out.join("M6502Low.ins"), &ins);
    write(&out.join("M6502Low_threaded.ins"), &threaded);
    write(&out.join("m6502_ops.inc"), &(table.join("\n") + "\n"));
    write(&out.join("M6502Low.cxx"), &patched)
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
    write(&out.join("version.hpp"), &header);

    let mut files = vec![ale.join("ale_interface.cpp")];
    for dir in ["common", "emucore", "environment", "games", "games/supported"] {
        sources(&ale.join(dir), &mut files);
    }
    // The TIA and the 6502 compile from copies with Keel's changes spliced in (see above).
    let tia = ale.join("emucore").join("TIA.cxx");
    let cpu = ale.join("emucore").join("M6502Low.cxx");
    files.retain(|f| *f != tia && *f != cpu);
    files.push(splice_tia(&tia, &out));
    files.push(splice_cpu(&ale.join("emucore"), &out));
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

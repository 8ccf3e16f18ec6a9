//! The ROMs: where they are, and the check that a file holds the game its name says.

use std::path::PathBuf;

use crate::error::{EnvError, Result};

/// Where the ROMs are: `$KEEL_ALE_ROMS`, else the folder `scripts/env.sh` pointed the build at.
/// An empty value counts as unset (it would otherwise name the working folder).
pub fn rom_dir() -> Option<PathBuf> {
    std::env::var_os("KEEL_ALE_ROMS")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .or_else(|| option_env!("KEEL_ALE_ROMS").filter(|dir| !dir.is_empty()).map(PathBuf::from))
}

/// The ROM file of `rom` (e.g. `pong`), or a `DataMissing` error saying how to get it.
pub(super) fn rom_path(rom: &str) -> Result<PathBuf> {
    rom_path_in(rom_dir(), rom)
}

fn rom_path_in(dir: Option<PathBuf>, rom: &str) -> Result<PathBuf> {
    let how = "run `bash scripts/setup.sh` (it unpacks the ROMs of the ale-py 0.12.1 wheel into \
               ~/.cache/keel/ale-roms-0.12.1) and `source scripts/env.sh`, or point KEEL_ALE_ROMS at a folder holding";
    let Some(dir) = dir.filter(|dir| !dir.as_os_str().is_empty()) else {
        return Err(EnvError::DataMissing(format!(
            "no Atari ROM folder: KEEL_ALE_ROMS is not set (or empty); {how} {rom}.bin"
        )));
    };
    let path = dir.join(format!("{rom}.bin"));
    if !path.is_file() {
        return Err(EnvError::DataMissing(format!("ROM {} not found; {how} {rom}.bin", path.display())));
    }
    check_md5(&dir, rom, &path)?;
    Ok(path)
}

/// Where the ROM folder has the `md5.json` that ships with ale-py's ROMs (setup.sh writes it),
/// `rom`'s file must have the MD5 it lists: another game's file, or a damaged one, under the name
/// would otherwise run under the wrong id. A folder without `md5.json` is the user's to vouch for.
fn check_md5(dir: &std::path::Path, rom: &str, path: &std::path::Path) -> Result<()> {
    use md5::{Digest, Md5};
    let sums_path = dir.join("md5.json");
    let Ok(text) = std::fs::read_to_string(&sums_path) else { return Ok(()) };
    let sums: std::collections::BTreeMap<String, String> = serde_json::from_str(&text).map_err(|e| {
        EnvError::DataMissing(format!("{} is not a JSON table of ROM names to MD5 sums: {e}", sums_path.display()))
    })?;
    let Some(want) = sums.get(&format!("{rom}.bin")) else { return Ok(()) };
    let bytes = std::fs::read(path)
        .map_err(|e| EnvError::DataMissing(format!("ROM {} cannot be read: {e}", path.display())))?;
    let got: String = Md5::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
    if !got.eq_ignore_ascii_case(want) {
        return Err(EnvError::DataMissing(format!(
            "ROM {} is not {rom}'s: its MD5 is {got}, {} lists {want}; reinstall the ROMs with `bash \
             scripts/setup.sh`",
            path.display(),
            sums_path.display()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ROM whose content is not the one `md5.json` lists (another game's) is refused under
    /// its name; the listed content, and a folder without `md5.json`, are taken.
    #[test]
    fn a_rom_of_other_content_than_its_md5_is_refused() {
        let dir = std::env::temp_dir().join(format!("keel-rom-md5-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.join("pong.bin"), b"breakout's bytes").unwrap_or_else(|e| panic!("{e}"));
        assert!(rom_path_in(Some(dir.clone()), "pong").is_ok(), "no md5.json: the user's folder");
        // md5.json lists the MD5 of other bytes than the file holds.
        let listed: String = {
            use md5::{Digest, Md5};
            Md5::digest(b"pong's bytes").iter().map(|b| format!("{b:02x}")).collect()
        };
        std::fs::write(dir.join("md5.json"), format!("{{\"pong.bin\": \"{listed}\"}}"))
            .unwrap_or_else(|e| panic!("{e}"));
        let err = rom_path_in(Some(dir.clone()), "pong").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("is not pong's") && err.contains(&listed), "{err}");
        std::fs::write(dir.join("pong.bin"), b"pong's bytes").unwrap_or_else(|e| panic!("{e}"));
        assert!(rom_path_in(Some(dir.clone()), "pong").is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_missing_rom_says_how_to_get_it() {
        // An empty folder name is no folder: not the working folder, whatever it holds.
        for dir in [None, Some(PathBuf::new()), Some(std::env::temp_dir().join("keel-no-roms-here"))] {
            let empty = dir.as_ref().is_some_and(|d| d.as_os_str().is_empty());
            let err = rom_path_in(dir, "pong").err().map(|e| e.to_string()).unwrap_or_default();
            assert!(
                err.contains("missing data") && err.contains("scripts/setup.sh") && err.contains("pong.bin"),
                "{err}"
            );
            // Never looked up in the working folder, where a `pong.bin` may be anything.
            assert!(!empty || err.contains("not set (or empty)"), "{err}");
        }
    }
}

//! Checks of what a user hands the command line, made before any work starts: `--set` values
//! (finite numbers, JSON that parses) and output paths (a folder that exists and takes new
//! files), so that a typo fails in a second with one line naming it, not after minutes of
//! computing.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use serde_json::Value;

/// A `--set key=value` pair: the value is JSON when it parses as JSON, else a string (as
/// [`keel_envs::config::parse_key_value`]). A number that is NaN, infinite or beyond float64's
/// range (`nan`, `inf`, `1e400`), and a list or table that is not valid JSON, are errors naming
/// the key, instead of strings that a numeric field then refuses with a type error.
pub fn parse_set(pair: &str) -> Result<(String, Value)> {
    let (key, value) = keel_envs::config::parse_key_value(pair).map_err(anyhow::Error::msg)?;
    if let Value::String(raw) = &value {
        let raw = raw.trim();
        if raw.parse::<f64>().is_ok_and(|x| !x.is_finite()) {
            bail!("--set {key}={raw}: the value is not a finite number");
        }
        if raw.starts_with('[') || raw.starts_with('{') {
            if let Err(e) = serde_json::from_str::<Value>(raw) {
                let hint = if e.to_string().contains("out of range") { "; numbers must be finite" } else { "" };
                bail!("--set {key}={raw}: not valid JSON ({e}){hint}");
            }
        }
    }
    Ok((key, value))
}

/// `path`, or `.` for a bare file name's folder.
fn folder_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Creates and removes a temporary file in `folder`, the way every output is written (a
/// temporary sibling, then a rename).
fn probe(folder: &Path, flag: &str, path: &Path) -> Result<()> {
    let tmp = keel_agents::checkpoint::temporary_sibling(&folder.join("probe"));
    match std::fs::OpenOptions::new().write(true).create_new(true).open(&tmp) {
        Ok(_) => {
            let _ = std::fs::remove_file(&tmp);
            Ok(())
        }
        Err(e) => bail!("{flag} {}: cannot create files in {} ({e})", path.display(), folder.display()),
    }
}

/// Checks that the file `path` (given as `flag`) can be written: not empty, not a folder, in a
/// folder that exists and takes new files.
pub fn output_file(path: &Path, flag: &str) -> Result<()> {
    if path.as_os_str().is_empty() {
        bail!("{flag}: the path is empty");
    }
    if path.is_dir() {
        bail!("{flag} {}: is a folder; give a file name", path.display());
    }
    let folder = folder_of(path);
    if !folder.is_dir() {
        let why = if folder.exists() { "is not a folder" } else { "does not exist" };
        bail!("{flag} {}: {} {why}", path.display(), folder.display());
    }
    probe(&folder, flag, path)
}

/// Checks that the folder `path` (given as `flag`) can hold output: a folder that takes new
/// files, or, if missing, creatable under its nearest existing ancestor (nothing is created).
pub fn output_folder(path: &Path, flag: &str) -> Result<()> {
    if path.as_os_str().is_empty() {
        bail!("{flag}: the path is empty");
    }
    let mut existing = path.to_path_buf();
    while !existing.exists() {
        existing = match existing.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => PathBuf::from("."),
        };
    }
    if !existing.is_dir() {
        bail!("{flag} {}: {} is not a folder", path.display(), existing.display());
    }
    probe(&existing, flag, path)
}

/// Refuses an output `out` (given as `out_flag`) that is one of the command's `inputs` (each with
/// its flag): writing it would replace the input it was read from. Paths are compared after
/// resolving links and `..` (an output that does not exist yet cannot be an input).
pub fn output_is_not_an_input(out: &Path, out_flag: &str, inputs: &[(&Path, &str)]) -> Result<()> {
    let Ok(target) = std::fs::canonicalize(out) else { return Ok(()) };
    for (input, flag) in inputs {
        if std::fs::canonicalize(input).is_ok_and(|p| p == target) {
            bail!(
                "{out_flag} {} is the file given to {flag}: writing it would replace the input; give another {out_flag}",
                out.display()
            );
        }
    }
    Ok(())
}

/// Checks that `path` (given as `flag`) is valid UTF-8: Keel writes it into run arguments and
/// JSON, where other bytes would be replaced and name a different folder.
pub fn utf8_path(path: &Path, flag: &str) -> Result<()> {
    if path.to_str().is_none() {
        bail!("{flag} {}: the path is not valid UTF-8; give a path of UTF-8 characters", path.display());
    }
    Ok(())
}

/// Checks a `.png` output of `flag` (the plots are PNG images).
pub fn output_png(path: &Path, flag: &str) -> Result<()> {
    output_file(path, flag)?;
    if !path.extension().is_some_and(|e| e.eq_ignore_ascii_case("png")) {
        bail!("{flag} {}: the plot is a PNG image; give a file name ending in .png", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(result: Result<impl std::fmt::Debug>) -> String {
        result.err().map(|e| format!("{e:#}")).unwrap_or_default()
    }

    #[test]
    fn non_finite_and_broken_values_name_the_key() {
        for raw in ["1e400", "nan", "-inf", "Infinity"] {
            let e = error(parse_set(&format!("gravity={raw}")));
            assert!(e.contains("gravity") && e.contains("not a finite number"), "{raw}: {e}");
        }
        let e = error(parse_set("low=[1e400, 0]"));
        assert!(e.contains("low") && e.contains("numbers must be finite"), "{e}");
        assert!(error(parse_set("low=[0, ")).contains("not valid JSON"));
        assert_eq!(parse_set("g=9.8").ok(), Some(("g".into(), serde_json::json!(9.8))));
        assert_eq!(parse_set("system=he1").ok(), Some(("system".into(), serde_json::json!("he1"))));
    }

    #[test]
    fn output_paths_are_checked_without_creating_anything() {
        let dir = std::env::temp_dir().join(format!("keel-checks-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let file = dir.join("taken");
        std::fs::write(&file, "x").unwrap_or_else(|e| panic!("{e}"));
        assert!(output_file(&dir.join("out.json"), "--out").is_ok());
        assert!(error(output_file(&dir, "--out")).contains("is a folder"));
        assert!(error(output_file(&dir.join("missing/out.json"), "--out")).contains("does not exist"));
        assert!(error(output_file(&file.join("out.json"), "--out")).contains("is not a folder"));
        assert!(error(output_file(Path::new("/proc/keel/out.json"), "--out")).contains("/proc/keel"));
        assert!(error(output_file(Path::new(""), "--out")).contains("empty"));
        assert!(output_folder(&dir.join("new/deeper"), "--out-dir").is_ok());
        assert!(!dir.join("new").exists(), "a check must not create folders");
        assert!(error(output_folder(&file.join("sub"), "--run-dir")).contains("is not a folder"));
        assert!(error(output_folder(Path::new("/proc/keel"), "--out-dir")).contains("cannot create files in /proc"));
        assert!(error(output_png(&dir.join("curves.txt"), "--out")).contains(".png"));
        let linked = dir.join(".").join("taken");
        let e = error(output_is_not_an_input(&linked, "--out", &[(&dir.join("other"), "--a"), (&file, "--actions")]));
        assert!(e.contains("--out") && e.contains("--actions"), "{e}");
        assert!(output_is_not_an_input(&dir.join("out.json"), "--out", &[(&file, "--actions")]).is_ok());
        assert_eq!(std::fs::read_dir(&dir).map(Iterator::count).ok(), Some(1), "the probes left files");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

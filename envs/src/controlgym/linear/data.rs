//! The continuous-time matrices of the 37 linear systems, read from the controlgym package.
//!
//! The data (36 COMPleib systems, F. Leibfritz 2004, plus controlgym's `toy`) is not Keel's to
//! redistribute, so Keel reads it from an installed controlgym 1.0.0 (`scripts/setup.sh` installs
//! the package, without its dependencies, into the project's Python environment) and converts
//! each MAT-file once into JSON under `$KEEL_CACHE/controlgym-1.0.0/linear/` (default
//! `~/.cache/keel/...`). Later loads read the cache only.
//!
//! Where the MAT-files are looked for, in order:
//! 1. `$KEEL_CONTROLGYM_DIR`: a folder with the `<system>.mat` files, or an installed `controlgym`
//!    package folder;
//! 2. the `controlgym` package in `$VIRTUAL_ENV`, then in `$KEEL_CACHE/venv` (the project venv).

use std::path::{Path, PathBuf};

use nalgebra::DMatrix;
use serde::{Deserialize, Serialize};

use crate::error::{EnvError, Result};

/// Every system id controlgym 1.0.0 ships.
pub const SYSTEMS: [&str; 37] = [
    "toy", "ac1", "ac2", "ac3", "ac4", "ac5", "ac6", "ac7", "ac8", "ac9", "ac10", "bdt1", "bdt2", "cbm", "cdp", "cm1",
    "cm2", "cm3", "cm4", "cm5", "dis1", "dis2", "dlr", "he1", "he2", "he3", "he4", "he5", "he6", "iss", "je1", "je2",
    "lah", "pas", "psm", "rea", "umv",
];

/// The matrix names of one system file.
const NAMES: [&str; 8] = ["A", "B1", "B2", "C", "C1", "D11", "D12", "D21"];

/// One continuous-time system `ẋ = A x + B1 w + B2 u`, `y = C x + D21 w`,
/// `z = C1 x + D11 w + D12 u`.
#[derive(Clone, Debug, PartialEq)]
pub struct SystemData {
    /// State matrix.
    pub a: DMatrix<f64>,
    /// Disturbance input matrix.
    pub b1: DMatrix<f64>,
    /// Control input matrix.
    pub b2: DMatrix<f64>,
    /// Measurement matrix.
    pub c: DMatrix<f64>,
    /// Regulated-output matrix.
    pub c1: DMatrix<f64>,
    /// Disturbance feed-through to the regulated output.
    pub d11: DMatrix<f64>,
    /// Control feed-through to the regulated output.
    pub d12: DMatrix<f64>,
    /// Disturbance feed-through to the measurement (sensor noise).
    pub d21: DMatrix<f64>,
}

/// Cache layout: each matrix as rows.
#[derive(Serialize, Deserialize)]
struct Cached {
    system: String,
    matrices: Vec<(String, Vec<Vec<f64>>)>,
}

fn keel_cache() -> PathBuf {
    std::env::var_os("KEEL_CACHE").map(PathBuf::from).unwrap_or_else(|| {
        std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(std::env::temp_dir).join(".cache/keel")
    })
}

fn cache_root() -> PathBuf {
    keel_cache().join("controlgym-1.0.0/linear")
}

fn how_to_get_it() -> String {
    "the linear systems are read from controlgym 1.0.0's package data: run `bash scripts/setup.sh` \
     (installs it into the project venv), or `pip install --no-deps controlgym==1.0.0` and set \
     KEEL_CONTROLGYM_DIR to the installed `controlgym` folder"
        .into()
}

/// Folders that may hold the `.mat` files.
fn source_candidates() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(dir) = std::env::var_os("KEEL_CONTROLGYM_DIR").map(PathBuf::from) {
        out.push(dir.join("envs/linear_control_src"));
        out.push(dir);
    }
    let venvs = [std::env::var_os("VIRTUAL_ENV").map(PathBuf::from), Some(keel_cache().join("venv"))];
    for venv in venvs.into_iter().flatten() {
        let Ok(entries) = std::fs::read_dir(venv.join("lib")) else { continue };
        for entry in entries.flatten() {
            out.push(entry.path().join("site-packages/controlgym/envs/linear_control_src"));
        }
    }
    out
}

fn find_source() -> Option<PathBuf> {
    source_candidates().into_iter().find(|dir| dir.join("toy.mat").is_file())
}

fn read_mat(path: &Path) -> Result<Vec<(String, DMatrix<f64>)>> {
    let bad = |why: String| EnvError::DataMissing(format!("{}: {why}", path.display()));
    let file = std::fs::File::open(path).map_err(|e| bad(e.to_string()))?;
    let mat = matfile::MatFile::parse(std::io::BufReader::new(file)).map_err(|e| bad(format!("{e:?}")))?;
    let mut out = Vec::new();
    for name in NAMES {
        let array = mat.find_by_name(name).ok_or_else(|| bad(format!("no matrix {name}")))?;
        let size = array.size();
        let (rows, cols) = match size.as_slice() {
            [r, c] => (*r, *c),
            other => return Err(bad(format!("{name} has shape {other:?}"))),
        };
        let values: Vec<f64> = match array.data() {
            matfile::NumericData::Double { real, .. } => real.clone(),
            matfile::NumericData::Single { real, .. } => real.iter().map(|&v| f64::from(v)).collect(),
            matfile::NumericData::Int64 { real, .. } => real.iter().map(|&v| v as f64).collect(),
            matfile::NumericData::Int32 { real, .. } => real.iter().map(|&v| f64::from(v)).collect(),
            matfile::NumericData::UInt8 { real, .. } => real.iter().map(|&v| f64::from(v)).collect(),
            _ => return Err(bad(format!("{name} has an unsupported numeric type"))),
        };
        if values.len() != rows * cols {
            return Err(bad(format!("{name}: {} values for shape {rows}x{cols}", values.len())));
        }
        // MAT-files are column-major.
        out.push((name.to_string(), DMatrix::from_column_slice(rows, cols, &values)));
    }
    Ok(out)
}

fn to_cached(system: &str, matrices: &[(String, DMatrix<f64>)]) -> Cached {
    let rows = |m: &DMatrix<f64>| (0..m.nrows()).map(|i| m.row(i).iter().copied().collect()).collect();
    Cached { system: system.into(), matrices: matrices.iter().map(|(n, m)| (n.clone(), rows(m))).collect() }
}

fn from_cached(cached: Cached) -> Result<SystemData> {
    let get = |name: &str| -> Result<DMatrix<f64>> {
        let (_, rows) = cached
            .matrices
            .iter()
            .find(|(n, _)| n == name)
            .ok_or_else(|| EnvError::DataMissing(format!("cached {}: no matrix {name}", cached.system)))?;
        let ncols = rows.first().map_or(0, Vec::len);
        let flat: Vec<f64> = rows.iter().flatten().copied().collect();
        if flat.len() != rows.len() * ncols {
            return Err(EnvError::DataMissing(format!("cached {}: ragged matrix {name}", cached.system)));
        }
        Ok(DMatrix::from_row_slice(rows.len(), ncols, &flat))
    };
    Ok(SystemData {
        a: get("A")?,
        b1: get("B1")?,
        b2: get("B2")?,
        c: get("C")?,
        c1: get("C1")?,
        d11: get("D11")?,
        d12: get("D12")?,
        d21: get("D21")?,
    })
}

/// Converts every system found in `source` into the cache (atomically per file).
fn convert_all(source: &Path, cache: &Path) -> Result<()> {
    std::fs::create_dir_all(cache).map_err(|e| EnvError::DataMissing(format!("{}: {e}", cache.display())))?;
    for system in SYSTEMS {
        let matrices = read_mat(&source.join(format!("{system}.mat")))?;
        let text = serde_json::to_string(&to_cached(system, &matrices))
            .map_err(|e| EnvError::DataMissing(format!("{system}: {e}")))?;
        let target = cache.join(format!("{system}.json"));
        // A temporary name of this process and this call (threads may convert at once), removed
        // if the write or the rename fails.
        static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = cache.join(format!(".{system}.json.{}.{call}.tmp", std::process::id()));
        let written = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, &target));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(EnvError::DataMissing(format!("{}: {e}", target.display())));
        }
    }
    Ok(())
}

/// The continuous-time matrices of `system` (one of [`SYSTEMS`]).
pub fn load(system: &str) -> Result<SystemData> {
    if !SYSTEMS.contains(&system) {
        return Err(EnvError::DataMissing(format!("unknown system `{system}`; known: {}", SYSTEMS.join(", "))));
    }
    let cache = cache_root();
    let cached_file = cache.join(format!("{system}.json"));
    if !cached_file.is_file() {
        let source = find_source().ok_or_else(|| EnvError::DataMissing(how_to_get_it()))?;
        convert_all(&source, &cache)?;
    }
    let text = std::fs::read_to_string(&cached_file)
        .map_err(|e| EnvError::DataMissing(format!("{}: {e}", cached_file.display())))?;
    let cached: Cached = serde_json::from_str(&text)
        .map_err(|e| EnvError::DataMissing(format!("{}: {e} (delete it to convert again)", cached_file.display())))?;
    from_cached(cached)
}

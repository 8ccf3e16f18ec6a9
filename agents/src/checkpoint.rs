//! Checkpoints: named tensors in a safetensors file and a JSON state beside it, written
//! atomically, with a `latest` file naming the newest.
//!
//! A checkpoint folder holds `iter_NNNNNN.safetensors` (every network parameter under its
//! `VarStore` name, and every optimiser's state under the optimiser's name), `iter_NNNNNN.json`
//! (counters, normalisers, episodes, a snapshot of every env and of the reset sampler, the
//! algorithm's own state) and `latest` (the stem of the newest). Each file is written to a
//! temporary name and renamed, and `latest` last: a crash at any moment leaves the previous
//! checkpoint intact and named.
//!
//! Loading checks every floating-point tensor for NaN and infinity first: a diverged run's
//! checkpoint is refused with an error naming the tensor, instead of failing somewhere inside
//! libtorch later.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;
use tch::{Kind, Tensor, nn};

use crate::error::{AgentError, Result};

/// Name of the file in a checkpoint folder that names the newest checkpoint.
pub const LATEST: &str = "latest";

/// Writes `bytes` to `path` through a temporary file and a rename, so a reader never sees half
/// a file (see [`temporary_sibling`]).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    write_with(path, |tmp| {
        std::fs::write(tmp, bytes).map_err(|e| AgentError::io(format!("writing {}", path.display()), e))
    })
}

/// A fresh temporary path beside `path` (same folder, so a rename is atomic): a hidden name
/// made of the file's name, the process id, a per-process counter and a random number, so
/// neither a user's own file nor another writer's temporary file is ever taken.
pub fn temporary_sibling(path: &Path) -> PathBuf {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let random = std::collections::hash_map::RandomState::new().build_hasher().finish();
    let name = path.file_name().map_or_else(|| "keel".into(), |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".{name}.{}.{count}.{random:016x}.tmp", std::process::id()))
}

/// Reserves a temporary sibling of `path` (created empty, never an existing file), lets `write`
/// fill it, and renames it onto `path`; on any failure the temporary file is removed.
pub(crate) fn write_with(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let tmp = temporary_sibling(path);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map_err(|e| AgentError::io(format!("writing {}", path.display()), e))?;
    let written = write(&tmp).and_then(|()| {
        std::fs::rename(&tmp, path).map_err(|e| AgentError::io(format!("writing {}", path.display()), e))
    });
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Every variable of `vs` by name, sorted by name.
pub fn variables(vs: &nn::VarStore) -> Vec<(String, Tensor)> {
    let mut named: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    named
}

/// Copies the saved tensors into the variables of `vs` by name; a missing or mis-shaped one is
/// an error naming it, found before any variable changes.
pub fn load_variables(vs: &nn::VarStore, saved: &[(String, Tensor)]) -> Result<()> {
    let mut pairs = Vec::new();
    for (name, var) in vs.variables() {
        let saved = saved
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| t)
            .ok_or_else(|| AgentError::Checkpoint(format!("it lacks parameter `{name}`")))?;
        if saved.kind() != var.kind() {
            return Err(AgentError::Checkpoint(format!(
                "parameter `{name}` is {:?} in the checkpoint and {:?} in this config",
                saved.kind(),
                var.kind()
            )));
        }
        if saved.size() != var.size() {
            return Err(AgentError::Checkpoint(format!(
                "parameter `{name}` is {:?} in the checkpoint and {:?} in this config",
                saved.size(),
                var.size()
            )));
        }
        pairs.push((var, saved));
    }
    for (mut var, saved) in pairs {
        tch::no_grad(|| var.copy_(&saved.to_device(var.device())));
    }
    Ok(())
}

/// Whether every element of every floating-point tensor is finite; else the first offender's
/// name.
pub fn first_non_finite(tensors: &[(String, Tensor)]) -> Option<&str> {
    tensors
        .iter()
        .find(|(_, t)| {
            matches!(t.kind(), Kind::Float | Kind::Double | Kind::Half | Kind::BFloat16)
                && t.isfinite().all().int64_value(&[]) == 0
        })
        .map(|(n, _)| n.as_str())
}

/// A checkpoint as read back.
pub struct Loaded<S> {
    /// The stem (`iter_NNNNNN`).
    pub stem: String,
    /// The JSON state.
    pub state: S,
    /// The named tensors, every one finite.
    pub tensors: Vec<(String, Tensor)>,
}

/// Writes checkpoint `stem` into `dir` (see the module docs); returns the tensors' path.
/// Tensor names must be unique.
pub fn save<S: Serialize>(dir: &Path, stem: &str, tensors: &[(String, Tensor)], state: &S) -> Result<PathBuf> {
    let mut names: Vec<&str> = tensors.iter().map(|(n, _)| n.as_str()).collect();
    names.sort_unstable();
    if let Some(pair) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(AgentError::Checkpoint(format!("two tensors named `{}`", pair[0])));
    }
    std::fs::create_dir_all(dir).map_err(|e| AgentError::io(format!("creating {}", dir.display()), e))?;
    let tensors_path = dir.join(format!("{stem}.safetensors"));
    write_with(&tensors_path, |tmp| Ok(Tensor::write_safetensors(tensors, tmp)?))?;
    let json = serde_json::to_vec(state).map_err(|e| AgentError::Checkpoint(e.to_string()))?;
    write_atomically(&dir.join(format!("{stem}.json")), &json)?;
    write_atomically(&dir.join(LATEST), stem.as_bytes())?;
    Ok(tensors_path)
}

/// Whether `stem` is what [`save`]'s callers name checkpoints: `iter_` and digits.
fn is_stem(stem: &str) -> bool {
    stem.strip_prefix("iter_").is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// An error saying that `path` is not a valid checkpoint, and why.
pub fn invalid(path: &Path, why: impl std::fmt::Display) -> AgentError {
    AgentError::Checkpoint(format!("{} is not a valid checkpoint: {why}", path.display()))
}

/// Reads the checkpoint `dir/latest` names. Non-finite tensors are refused (see the module docs),
/// and so is anything that is not a checkpoint, with the file and the reason.
pub fn load<S: DeserializeOwned>(dir: &Path) -> Result<Loaded<S>> {
    let latest = dir.join(LATEST);
    let stem =
        std::fs::read_to_string(&latest).map_err(|e| AgentError::io(format!("reading {}", latest.display()), e))?;
    let stem = stem.trim().to_string();
    if !is_stem(&stem) {
        let shown: String = stem.chars().take(40).collect();
        return Err(invalid(&latest, format_args!("it names {shown:?}, where a checkpoint name is iter_NNNNNN")));
    }
    let json_path = dir.join(format!("{stem}.json"));
    let text = std::fs::read(&json_path).map_err(|e| AgentError::io(format!("reading {}", json_path.display()), e))?;
    let state: S = serde_json::from_slice(&text)
        .map_err(|e| invalid(&json_path, format_args!("its state does not parse ({e})")))?;
    let tensors_path = dir.join(format!("{stem}.safetensors"));
    if let Err(e) = std::fs::metadata(&tensors_path) {
        return Err(AgentError::io(format!("reading {}", tensors_path.display()), e));
    }
    let tensors = Tensor::read_safetensors(&tensors_path).map_err(|e| {
        // libtorch's message repeats the path: keep only the reason after it.
        let message = e.to_string();
        let reason = message.rsplit(": ").next().unwrap_or(&message).to_string();
        invalid(&tensors_path, format_args!("its tensors do not parse as safetensors ({reason})"))
    })?;
    if let Some(name) = first_non_finite(&tensors) {
        return Err(AgentError::Checkpoint(format!(
            "{}: `{name}` holds NaN or infinite values (the run had diverged); to use an earlier checkpoint, \
             write its stem (iter_NNNNNN) into {}",
            tensors_path.display(),
            latest.display()
        )));
    }
    Ok(Loaded { stem, state, tensors })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("keel-checkpoint-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn round_trip_and_latest_names_the_newest() {
        crate::threads::configure();
        let dir = scratch("round-trip");
        let vs = nn::VarStore::new(Device::Cpu);
        let w = vs.root().var_copy("w", &Tensor::from_slice(&[1.0f32, 2.0]));
        save(&dir, "iter_000001", &variables(&vs), &1u64).unwrap_or_else(|e| panic!("{e}"));
        let _ = tch::no_grad(|| w.shallow_clone().fill_(5.0));
        save(&dir, "iter_000002", &variables(&vs), &2u64).unwrap_or_else(|e| panic!("{e}"));
        let _ = tch::no_grad(|| w.shallow_clone().fill_(0.0));
        let loaded: Loaded<u64> = load(&dir).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((loaded.stem.as_str(), loaded.state), ("iter_000002", 2));
        load_variables(&vs, &loaded.tensors).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(w.double_value(&[1]), 5.0);
        assert!(!dir.read_dir().into_iter().flatten().flatten().any(|e| e.path().to_string_lossy().ends_with(".tmp")));
        let other = nn::VarStore::new(Device::Cpu);
        let _ = other.root().var_copy("w", &Tensor::from_slice(&[1.0f32, 2.0, 3.0]));
        assert!(load_variables(&other, &loaded.tensors).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Temporary files are fresh hidden names beside the target: a user's own `<name>.tmp~` or
    /// `<name>.partial` is never touched, and a failed write or rename leaves nothing behind and
    /// says its cause once.
    #[test]
    fn atomic_writes_use_fresh_temporary_files_and_clean_up() {
        let dir = scratch("atomic");
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let target = dir.join("summary.json");
        for own in ["summary.json.tmp~", "summary.json.partial"] {
            std::fs::write(dir.join(own), "mine").unwrap_or_else(|e| panic!("{e}"));
        }
        write_atomically(&target, b"{}").unwrap_or_else(|e| panic!("{e}"));
        write_atomically(&target, b"[]").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(std::fs::read_to_string(&target).ok().as_deref(), Some("[]"));
        for own in ["summary.json.tmp~", "summary.json.partial"] {
            assert_eq!(std::fs::read_to_string(dir.join(own)).ok().as_deref(), Some("mine"), "{own}");
        }
        assert_ne!(temporary_sibling(&target), temporary_sibling(&target));
        assert_eq!(temporary_sibling(&target).parent(), Some(dir.as_path()));
        // The rename fails (a non-empty folder is in the way): no temporary file is left.
        let blocked = dir.join("blocked");
        std::fs::create_dir_all(blocked.join("inside")).unwrap_or_else(|e| panic!("{e}"));
        let err = write_atomically(&blocked, b"x").err().unwrap_or_else(|| panic!("the rename succeeded"));
        assert!(std::error::Error::source(&err).is_none(), "the cause would print twice in a chain");
        let count = dir.read_dir().into_iter().flatten().flatten().count();
        assert_eq!(count, 4, "a temporary file was left: {:?}", dir.read_dir().map(|d| d.count()));
        // The folder is missing: the write fails, naming the file, with its cause said once.
        let err = write_atomically(&dir.join("missing/x.json"), b"x").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("missing/x.json") && err.matches("No such file").count() == 1, "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn non_finite_tensors_and_duplicate_names_are_refused() {
        crate::threads::configure();
        let dir = scratch("nan");
        let good = || ("good".to_string(), Tensor::from_slice(&[1.0f32]));
        let steps = || ("adam.steps".to_string(), Tensor::from_slice(&[3i64]));
        let bad = ("actor.head.weight".to_string(), Tensor::from_slice(&[1.0f32, f32::NAN]));
        save(&dir, "iter_000001", &[good(), steps(), bad], &0u64).unwrap_or_else(|e| panic!("{e}"));
        let err = load::<u64>(&dir).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("actor.head.weight") && err.contains("NaN"), "{err}");
        save(&dir, "iter_000002", &[good(), steps()], &0u64).unwrap_or_else(|e| panic!("{e}"));
        assert!(load::<u64>(&dir).is_ok());
        let twice = save(&dir, "iter_000003", &[good(), good()], &0u64).err().map(|e| e.to_string());
        assert!(twice.unwrap_or_default().contains("two tensors named `good`"));
        assert_eq!(std::fs::read_to_string(dir.join(LATEST)).ok().as_deref(), Some("iter_000002"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}

//! The agent's state directory: one typed, versioned file per kind of state.
//!
//! Each file holds `{"kind": <name>, "version": <n>, "value": …}` and is written atomically:
//! a temporary file, fsync, rename, fsync of the directory — a kill at any instant leaves the
//! old file or the new one, never a torn one. Every kind has its own file name, so two parts of
//! the agent can never read each other's state as their own. A file that does not parse as its
//! kind (another version, damage) is moved aside as `<name>.json.unreadable` and logged, never
//! silently taken for empty.

use std::io::Write;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The version of the file layout; a file of another version is not read.
pub const VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Envelope<T> {
    kind: String,
    version: u32,
    value: T,
}

/// Writes `bytes` to `path` atomically and durably, readable by the agent's user only.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    // A leftover temporary file keeps its mode: start from none.
    let _ = std::fs::remove_file(&tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    // On Windows the state directory's ACL (SYSTEM and Administrators) is what protects it.
    let mut f = options.open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent()
        && let Ok(d) = std::fs::File::open(dir)
    {
        // The rename itself is durable once the directory is.
        let _ = d.sync_all();
    }
    Ok(())
}

/// One kind of state, kept in `<dir>/<name>.json`.
pub struct Kept<T> {
    path: PathBuf,
    name: String,
    _kind: PhantomData<fn() -> T>,
}

impl<T> Clone for Kept<T> {
    fn clone(&self) -> Self {
        Kept {
            path: self.path.clone(),
            name: self.name.clone(),
            _kind: PhantomData,
        }
    }
}

impl<T: Serialize + DeserializeOwned + Default> Kept<T> {
    /// The state `name` in `dir`.
    pub fn new(dir: &Path, name: impl Into<String>) -> Self {
        let name = name.into();
        Kept {
            path: dir.join(format!("{name}.json")),
            name,
            _kind: PhantomData,
        }
    }

    /// What was kept, or the default when nothing was; a file that cannot be read as this kind
    /// is moved aside and logged.
    pub fn load(&self) -> T {
        let Ok(bytes) = std::fs::read(&self.path) else {
            return T::default();
        };
        match serde_json::from_slice::<Envelope<T>>(&bytes) {
            Ok(e) if e.kind == self.name && e.version == VERSION => e.value,
            Ok(e) => self.aside(&format!("kind {} version {}", e.kind, e.version)),
            Err(e) => self.aside(&e.to_string()),
        }
    }

    fn aside(&self, why: &str) -> T {
        let to = self.path.with_extension("json.unreadable");
        tracing::error!(file = %self.path.display(), moved_to = %to.display(), %why, "state file not readable as {}; starting from empty", self.name);
        let _ = std::fs::rename(&self.path, &to);
        T::default()
    }

    /// Keeps `value`, atomically and durably.
    pub fn save(&self, value: &T) -> std::io::Result<()> {
        let envelope = Envelope {
            kind: self.name.clone(),
            version: VERSION,
            value,
        };
        let bytes = serde_json::to_vec_pretty(&envelope).map_err(std::io::Error::other)?;
        write_atomic(&self.path, &bytes)
    }

    /// Keeps `value`; a failure is logged (the state in memory stays right, and is kept again
    /// with the next change).
    pub fn keep(&self, value: &T) {
        if let Err(e) = self.save(value) {
            tracing::error!(file = %self.path.display(), error = %e, "cannot keep state");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn kinds_never_read_each_other_and_damage_is_set_aside() {
        let dir = std::env::temp_dir().join(format!("unyo-state-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let a: Kept<Vec<String>> = Kept::new(&dir, "a");
        a.save(&vec!["x".into()]).unwrap();
        assert_eq!(a.load(), vec!["x".to_string()]);
        // The same file read as another kind is not taken for it.
        std::fs::copy(dir.join("a.json"), dir.join("b.json")).unwrap();
        let b: Kept<Vec<String>> = Kept::new(&dir, "b");
        assert!(b.load().is_empty());
        assert!(dir.join("b.json.unreadable").exists());
        // A torn file (a kill mid-write of an older agent) is set aside, not read as empty.
        std::fs::write(dir.join("a.json"), b"{\"kind\":\"a\",\"vers").unwrap();
        assert!(a.load().is_empty());
        assert!(dir.join("a.json.unreadable").exists());
        assert!(!dir.join("a.json").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! Host facts (the ledger items of requirement R1). On Linux they are read from the host's files
//! beneath a root directory (`--root`, default `/`) so that one machine can stand in for several
//! hosts in tests, one module per source; on Windows through WMI (`windows.rs`).
//!
//! Each fact that cannot be read is reported in `unknown` with the reason; the others are still
//! reported. Lists are sorted by name so that the content hash only changes with the content.

#[cfg(unix)]
mod attached;
#[cfg(unix)]
mod hardware;
#[cfg(unix)]
pub use hardware::filesystems;
#[cfg(unix)]
mod network;
#[cfg(unix)]
mod os;
#[cfg(unix)]
mod packages;
#[cfg(unix)]
mod services;
#[cfg(unix)]
mod timesync;
mod usage;
#[cfg_attr(unix, allow(dead_code))]
mod w32tm;
#[cfg(windows)]
mod windows;
// The rows and their facts are compiled everywhere, so that Linux tests them on recorded rows.
#[cfg_attr(unix, allow(dead_code))]
pub mod wmi;

#[cfg(unix)]
pub use timesync::parse_chrony_tracking;
pub use usage::steady_usage;

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use unyo_crds::server::{ObservedFacts, UnknownFact};

/// Reads the facts of the host beneath `root`.
#[derive(Clone, Debug)]
pub struct Collector {
    root: PathBuf,
}

impl Collector {
    /// A collector for the host whose files are beneath `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Collector { root: root.into() }
    }

    /// Whether this is the running host (root `/`): facts that come from the kernel or running
    /// services rather than files are only read then.
    pub fn is_live(&self) -> bool {
        self.root == Path::new("/")
    }

    /// `path` (absolute on the host) beneath the root.
    pub fn path(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }

    /// Opens a file of the host (beneath the root) for reading.
    pub fn open(&self, path: &str) -> Result<std::io::BufReader<std::fs::File>, String> {
        std::fs::File::open(self.path(path))
            .map(std::io::BufReader::new)
            .map_err(|e| format!("{path}: {e}"))
    }

    /// Reads a small text file of the host, trimmed.
    pub fn read(&self, path: &str) -> Result<String, String> {
        let full = self.path(path);
        std::fs::read_to_string(&full)
            .map(|s| s.trim().to_string())
            .map_err(|e| format!("{path}: {e}"))
    }

    /// Collects every fact through WMI. Blocking: run it on a blocking thread.
    #[cfg(windows)]
    pub fn collect(&self) -> ObservedFacts {
        windows::collect()
    }

    /// Collects every fact. Blocking: run it on a blocking thread.
    #[cfg(unix)]
    pub fn collect(&self) -> ObservedFacts {
        let mut facts = ObservedFacts {
            agent_version: Some(env!("CARGO_PKG_VERSION").to_string()),
            ..Default::default()
        };
        let mut unknown = Unknown::default();
        unknown.note(
            "hostname",
            os::hostname(self).map(|h| facts.hostname = Some(h)),
        );
        unknown.note("os", os::os(self).map(|o| facts.os = Some(o)));
        unknown.note("cpu", hardware::cpu(self).map(|c| facts.cpu = Some(c)));
        unknown.note(
            "memoryBytes",
            hardware::memory_bytes(self).map(|m| facts.memory_bytes = Some(m)),
        );
        unknown.note(
            "hardware",
            attached::identity(self).map(|h| facts.hardware = Some(h)),
        );
        unknown.note("disks", hardware::disks(self).map(|d| facts.disks = d));
        unknown.note(
            "filesystems",
            hardware::filesystems(self).map(|f| facts.filesystems = f),
        );
        unknown.note("nics", network::nics(self).map(|n| facts.nics = n));
        unknown.note(
            "packages",
            packages::packages(self).map(|p| facts.packages = p),
        );
        unknown.note(
            "devices",
            attached::devices(self).map(|d| facts.devices = Some(d)),
        );
        unknown.note(
            "services",
            services::services(self).map(|s| facts.services = s),
        );
        let (sync, sync_unknown) = timesync::time_sync(self);
        facts.time_sync = Some(sync);
        if let Some(reason) = sync_unknown {
            unknown.note("timeSync.synchronized", Err(reason));
        }
        unknown.note(
            "bootTime",
            hardware::boot_time(self).map(|t| facts.boot_time = Some(t)),
        );
        facts.unknown = unknown.0;
        facts
    }
}

/// Facts that could not be read, each with the reason, in the order they were tried.
#[derive(Default)]
struct Unknown(Vec<UnknownFact>);

impl Unknown {
    /// Records `fact` as unknown when reading it failed.
    fn note(&mut self, fact: &str, read: Result<(), String>) {
        if let Err(reason) = read {
            self.0.push(UnknownFact {
                fact: fact.to_string(),
                reason,
            });
        }
    }
}

/// Content hash of the facts: everything but `observedAt` and `hash` themselves.
pub fn content_hash(facts: &ObservedFacts) -> String {
    let mut content = facts.clone();
    content.observed_at = None;
    content.hash = None;
    // Serializing plain data to JSON cannot fail; an empty string would only cost a write.
    let json = serde_json::to_vec(&content).unwrap_or_default();
    hex::encode(&Sha256::digest(&json)[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_ignores_the_observation_time_only() {
        let mut a = ObservedFacts {
            hostname: Some("db01".into()),
            ..Default::default()
        };
        let h = content_hash(&a);
        a.observed_at = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            jiff::Timestamp::UNIX_EPOCH,
        ));
        assert_eq!(content_hash(&a), h);
        a.hostname = Some("db02".into());
        assert_ne!(content_hash(&a), h);
        assert_eq!(h.len(), 32);
    }
}

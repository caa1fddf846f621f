//! The host policy: what this host's administrator lets custom resources make the agent do.
//!
//! The agent runs as root; a BackupPlan, VirusScanSchedule, MonitoringPolicy or PatchBaseline is
//! written by whoever may write it in the namespace. So the host decides: the file
//! `/etc/unyo/agent.yaml` (root-owned, not writable by others; read at start and on SIGHUP)
//! lists where backups may go and come from, where restores may write, where infected files may
//! be moved, which signature mirrors and directories may be loaded, which log files checks may
//! read, which pre/post commands may run and whether patches may be installed and the host
//! rebooted. Without the file, nothing outside the agent's own state directory is written and
//! nothing is installed. Whatever asks for more is refused as a whole — reported with the
//! field and the rule — and nothing of it runs.

use std::path::{Component, Path, PathBuf};

use serde::Deserialize;
use unyo_crds::backup::BackupPlanSpec;
use unyo_crds::monitoring::CheckKind;
use unyo_crds::patch::{PatchOperation, RebootPolicy};
use unyo_crds::server::Refusal;
use unyo_crds::virusscan::{DetectionAction, ScanEngine, VirusScanScheduleSpec};

use crate::checks::Assigned;
use crate::ops::patch::PatchJob;

/// Where the host policy is read from by default.
pub const DEFAULT_PATH: &str = "/etc/unyo/agent.yaml";

/// The rules for backups and restores.
#[derive(Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackupRules {
    /// Repository locations allowed, as prefixes: a directory (`/srv/backup`) or a restic URL
    /// prefix (`sftp:backup01:/srv/restic`).
    #[serde(default)]
    pub repositories: Vec<String>,
    /// Directories (or files) the repository password files may be in.
    #[serde(default)]
    pub password_files: Vec<String>,
    /// Directories that may be backed up.
    #[serde(default)]
    pub sources: Vec<String>,
    /// Directories restores may write into.
    #[serde(default)]
    pub restore_targets: Vec<String>,
    /// Pre/post commands that may run, each exactly as a plan must name it (program and
    /// arguments).
    #[serde(default)]
    pub commands: Vec<Vec<String>>,
    /// Operating-system users a PostgreSQL source may run `pg_basebackup` as (and give a
    /// restored data directory to), e.g. `[postgres]`.
    #[serde(default)]
    pub os_users: Vec<String>,
}

/// The rules for virus scans.
#[derive(Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AntivirusRules {
    /// Actions allowed on detections besides Notify: Quarantine, Rename, Delete.
    #[serde(default)]
    pub actions: Vec<DetectionAction>,
    /// Directories infected files may be moved to.
    #[serde(default)]
    pub quarantine_dirs: Vec<String>,
    /// Signature mirrors allowed, as URL prefixes; https unless an entry is http itself.
    #[serde(default)]
    pub mirrors: Vec<String>,
    /// Local directories signatures may be copied from.
    #[serde(default)]
    pub signature_directories: Vec<String>,
}

/// The rules for log checks.
#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LogRules {
    /// Files or directories LogPattern checks may read (default `/var/log`).
    #[serde(default = "default_logs")]
    pub files: Vec<String>,
}

impl Default for LogRules {
    fn default() -> Self {
        LogRules {
            files: default_logs(),
        }
    }
}

fn default_logs() -> Vec<String> {
    vec!["/var/log".into()]
}

/// The rules for patches.
#[derive(Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PatchRules {
    /// Whether approved patches may be installed (default false: scans only).
    #[serde(default)]
    pub install: bool,
    /// Whether the host may be rebooted after an install that needs it (default false).
    #[serde(default)]
    pub reboot: bool,
}

/// The host policy file.
#[derive(Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HostPolicy {
    /// Backups and restores.
    #[serde(default)]
    pub backup: BackupRules,
    /// Virus scans.
    #[serde(default)]
    pub antivirus: AntivirusRules,
    /// Log checks.
    #[serde(default)]
    pub logs: LogRules,
    /// Patches.
    #[serde(default)]
    pub patches: PatchRules,
    /// The agent's own state directory (not from the file): its `backups`, `restore` and
    /// `quarantine` subdirectories are always allowed.
    #[serde(skip)]
    pub state_dir: PathBuf,
    /// Where the policy came from, for messages.
    #[serde(skip)]
    pub source: String,
}

/// Why a policy file cannot be used.
#[derive(thiserror::Error, Debug)]
pub enum LoadError {
    /// It cannot be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Others may write it, or it is not root's.
    #[error("{path}: {why}; the agent does not use a policy others could have changed")]
    Unsafe {
        /// The file.
        path: String,
        /// What is wrong.
        why: String,
    },
    /// It is not a valid policy.
    #[error("{path}: {why}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        why: String,
    },
}

impl HostPolicy {
    /// The policy with nothing allowed beyond the state directory (no file).
    pub fn defaults(state_dir: &Path) -> HostPolicy {
        HostPolicy {
            state_dir: state_dir.to_path_buf(),
            source: format!(
                "no host policy file: defaults, only {}",
                state_dir.display()
            ),
            ..HostPolicy::default()
        }
    }

    /// Reads the policy at `path`; a missing file gives the defaults. With `check_owner` the
    /// file must belong to root (or the agent's own user) and not be writable by group or
    /// others.
    pub fn load(path: &Path, state_dir: &Path, check_owner: bool) -> Result<HostPolicy, LoadError> {
        let shown = path.display().to_string();
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(HostPolicy::defaults(state_dir));
            }
            Err(source) => {
                return Err(LoadError::Read {
                    path: shown,
                    source,
                });
            }
        };
        owner_ok(&meta, check_owner).map_err(|why| LoadError::Unsafe {
            path: shown.clone(),
            why,
        })?;
        let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
            path: shown.clone(),
            source,
        })?;
        let mut policy: HostPolicy = if text.trim().is_empty() {
            HostPolicy::default()
        } else {
            serde_saphyr::from_str(&text).map_err(|e| LoadError::Invalid {
                path: shown.clone(),
                why: e.to_string(),
            })?
        };
        policy.validate().map_err(|why| LoadError::Invalid {
            path: shown.clone(),
            why,
        })?;
        policy.state_dir = state_dir.to_path_buf();
        policy.source = shown;
        Ok(policy)
    }

    fn validate(&self) -> Result<(), String> {
        let dirs = [
            ("backup.passwordFiles", &self.backup.password_files),
            ("backup.sources", &self.backup.sources),
            ("backup.restoreTargets", &self.backup.restore_targets),
            ("antivirus.quarantineDirs", &self.antivirus.quarantine_dirs),
            (
                "antivirus.signatureDirectories",
                &self.antivirus.signature_directories,
            ),
            ("logs.files", &self.logs.files),
        ];
        for (rule, list) in dirs {
            for entry in list {
                if normal(entry).is_none() {
                    return Err(format!(
                        "{rule}: {entry:?} is not an absolute path without `..`"
                    ));
                }
            }
        }
        for (rule, list) in [
            ("backup.restoreTargets", &self.backup.restore_targets),
            ("antivirus.quarantineDirs", &self.antivirus.quarantine_dirs),
        ] {
            if list
                .iter()
                .any(|e| normal(e).is_some_and(|p| p == Path::new("/")))
            {
                return Err(format!("{rule}: `/` may not be listed"));
            }
        }
        if self
            .backup
            .commands
            .iter()
            .any(|c| c.first().is_none_or(|p| !p.starts_with('/')))
        {
            return Err(
                "backup.commands: each command starts with an absolute program path".into(),
            );
        }
        Ok(())
    }

    fn own(&self, sub: &str) -> String {
        self.state_dir.join(sub).display().to_string()
    }
}

/// On Windows the file's protection is the ACL of its directory (`%ProgramData%\unyo-agent`, writable
/// by Administrators and SYSTEM only, as Windows creates ProgramData's subdirectories); this
/// version of the agent does not read ACLs. A read-only attribute is no protection either way.
#[cfg(windows)]
fn owner_ok(_meta: &std::fs::Metadata, _check: bool) -> Result<(), String> {
    Ok(())
}

#[cfg(unix)]
fn owner_ok(meta: &std::fs::Metadata, check: bool) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    if !check {
        return Ok(());
    }
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != 0 && meta.uid() != me {
        return Err(format!("owned by uid {}, not root", meta.uid()));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!(
            "mode {:o} lets group or others write",
            meta.mode() & 0o777
        ));
    }
    Ok(())
}

/// Whether `p` is a plain absolute Windows drive path (`C:\…`), as it may be handed to
/// `MpCmdRun.exe`: no quotes, wildcards, redirections or control characters.
pub fn drive_path(p: &str) -> bool {
    matches!(p.as_bytes(), [d, b':', b'\\', ..] if d.is_ascii_alphabetic())
        && !p.chars().any(|c| c.is_control() || "\"*?<>|".contains(c))
}

/// `p` as a normal absolute path (`.` and repeated `/` dropped), or None when it is relative or
/// has a `..` component.
pub fn normal(p: &str) -> Option<PathBuf> {
    if !p.starts_with('/') || p.chars().any(char::is_control) {
        return None;
    }
    let mut out = PathBuf::from("/");
    for c in Path::new(p).components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => out.push(n),
            Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// Whether `p` is one of `allowed` or beneath one of them.
pub fn path_allowed<'a>(allowed: impl IntoIterator<Item = &'a String>, p: &str) -> bool {
    let Some(p) = normal(p) else {
        return false;
    };
    allowed
        .into_iter()
        .filter_map(|a| normal(a))
        .any(|a| p.starts_with(&a))
}

/// `p` on the host beneath `root` with every symbolic link of its existing part resolved, as a
/// host path; None when it cannot be resolved (then only the lexical check counts).
pub fn resolved(root: &Path, p: &str) -> Option<String> {
    let p = normal(p)?;
    let full = root.join(p.strip_prefix("/").ok()?);
    let mut existing = full.as_path();
    let mut rest = Vec::new();
    while std::fs::symlink_metadata(existing).is_err() {
        rest.push(existing.file_name()?);
        existing = existing.parent()?;
    }
    let mut real = std::fs::canonicalize(existing).ok()?;
    let root = std::fs::canonicalize(root).ok()?;
    for part in rest.into_iter().rev() {
        real.push(part);
    }
    let inside = real.strip_prefix(&root).ok()?;
    Some(format!("/{}", inside.display()))
}

/// Whether the URL-like `location` begins with `prefix` at a boundary.
fn url_allowed(prefix: &str, location: &str) -> bool {
    match location.strip_prefix(prefix) {
        Some("") => true,
        Some(rest) => prefix.ends_with(['/', ':']) || rest.starts_with(['/', ':', '?']),
        None => false,
    }
}

/// Collects refusals of one object.
struct Judge<'a> {
    kind: &'a str,
    name: &'a str,
    refusals: Vec<Refusal>,
}

impl Judge<'_> {
    fn refuse(&mut self, field: impl Into<String>, rule: &str, message: impl Into<String>) {
        self.refusals.push(Refusal {
            kind: self.kind.to_string(),
            name: self.name.to_string(),
            field: field.into(),
            rule: rule.to_string(),
            message: message.into(),
        });
    }
}

impl HostPolicy {
    /// Whether a path is allowed by `rule`'s list (plus `own`, a subdirectory of the state
    /// directory): lexically, and with its symbolic links resolved beneath `root`.
    fn allows_path(&self, list: &[String], own: Option<&str>, root: &Path, p: &str) -> bool {
        let allowed = self.with_own(list, own);
        path_allowed(&allowed, p)
            && resolved(root, p).is_none_or(|real| path_allowed(&allowed, &real))
    }

    /// A rule's list, with the state directory's subdirectory `own` when the rule has one.
    fn with_own(&self, list: &[String], own: Option<&str>) -> Vec<String> {
        let mut all = list.to_vec();
        all.extend(own.map(|sub| self.own(sub)));
        all
    }

    fn listed(&self, list: &[String], own: Option<&str>) -> String {
        let all = self.with_own(list, own);
        if all.is_empty() {
            "nothing is listed".into()
        } else {
            format!("allowed: {}", all.join(", "))
        }
    }

    fn repository_allowed(&self, root: &Path, location: &str) -> bool {
        if location.starts_with('-') || location.chars().any(|c| c.is_control() || c == ' ') {
            return false;
        }
        let local = location.strip_prefix("local:").unwrap_or(location);
        if local.starts_with('/') {
            return self.allows_path(&self.backup.repositories, Some("backups"), root, local);
        }
        !location.split(['/', ':']).any(|s| s == "..")
            && self
                .backup
                .repositories
                .iter()
                .filter(|r| !r.starts_with('/'))
                .any(|r| url_allowed(r, location))
    }

    /// The refusals of a BackupPlan on this host.
    pub fn judge_backup(&self, name: &str, spec: &BackupPlanSpec, root: &Path) -> Vec<Refusal> {
        let mut j = Judge {
            kind: "BackupPlan",
            name,
            refusals: vec![],
        };
        let repos = [
            ("primary", Some(&spec.repositories.primary)),
            ("secondary", spec.repositories.secondary.as_ref()),
        ];
        for (which, repo) in repos {
            let Some(r) = repo else { continue };
            if !self.repository_allowed(root, &r.location) {
                j.refuse(
                    format!("spec.repositories.{which}.location"),
                    "backup.repositories",
                    format!(
                        "{:?} is not an allowed repository location ({})",
                        r.location,
                        self.listed(&self.backup.repositories, Some("backups"))
                    ),
                );
            }
            if !self.allows_path(&self.backup.password_files, None, root, &r.password_file) {
                j.refuse(
                    format!("spec.repositories.{which}.passwordFile"),
                    "backup.passwordFiles",
                    format!(
                        "{:?} is not in an allowed place for password files ({})",
                        r.password_file,
                        self.listed(&self.backup.password_files, None)
                    ),
                );
            }
        }
        for (i, source) in spec.sources.iter().enumerate() {
            for (k, p) in source.paths.iter().enumerate() {
                if !self.allows_path(&self.backup.sources, None, root, p) {
                    j.refuse(
                        format!("spec.sources[{i}].paths[{k}]"),
                        "backup.sources",
                        format!(
                            "{p:?} may not be backed up on this host ({})",
                            self.listed(&self.backup.sources, None)
                        ),
                    );
                }
            }
            if let Some(pg) = &source.postgresql {
                self.judge_postgres(&mut j, i, pg, root);
            }
            for (field, command) in [
                ("preCommand", &source.pre_command),
                ("postCommand", &source.post_command),
            ] {
                if !command.is_empty() && !self.backup.commands.contains(command) {
                    j.refuse(
                        format!("spec.sources[{i}].{field}"),
                        "backup.commands",
                        format!("{command:?} is not a command this host runs for backups"),
                    );
                }
            }
        }
        j.refusals
    }

    /// A PostgreSQL source: its OS user must be listed, its WAL spool a place that may be
    /// backed up (the agent reads and removes what it ships from there).
    fn judge_postgres(
        &self,
        j: &mut Judge<'_>,
        i: usize,
        pg: &unyo_crds::backup::PostgresSource,
        root: &Path,
    ) {
        let user = pg.os_user();
        if !self.backup.os_users.iter().any(|u| u == user) {
            j.refuse(
                format!("spec.sources[{i}].postgresql.osUser"),
                "backup.osUsers",
                format!("{user:?} is not a user this host runs database backups as"),
            );
        }
        if !self.allows_path(&self.backup.sources, None, root, &pg.wal_spool) {
            j.refuse(
                format!("spec.sources[{i}].postgresql.walSpool"),
                "backup.sources",
                format!(
                    "{:?} may not be read and emptied on this host ({})",
                    pg.wal_spool,
                    self.listed(&self.backup.sources, None)
                ),
            );
        }
    }

    /// Why a restore into `target` is refused, if it is.
    pub fn judge_restore(&self, root: &Path, target: &str) -> Option<Refusal> {
        if self.allows_path(&self.backup.restore_targets, Some("restore"), root, target) {
            return None;
        }
        Some(Refusal {
            kind: "Server".into(),
            name: String::new(),
            field: format!("metadata.annotations[{}]", crate::ops::RESTORE),
            rule: "backup.restoreTargets".into(),
            message: format!(
                "a restore may not write into {target:?} ({})",
                self.listed(&self.backup.restore_targets, Some("restore"))
            ),
        })
    }

    /// The directory infected files are moved to when a schedule names none.
    pub fn default_quarantine(&self) -> String {
        self.own("quarantine")
    }

    fn mirror_allowed(&self, url: &str) -> bool {
        let lower = url.to_ascii_lowercase();
        self.antivirus.mirrors.iter().any(|m| {
            let listed_http = m.to_ascii_lowercase().starts_with("http://");
            (lower.starts_with("https://") || listed_http) && url_allowed(m, url)
        })
    }

    /// The refusals of a VirusScanSchedule on this host.
    pub fn judge_scan(
        &self,
        name: &str,
        spec: &VirusScanScheduleSpec,
        root: &Path,
    ) -> Vec<Refusal> {
        let mut j = Judge {
            kind: "VirusScanSchedule",
            name,
            refusals: vec![],
        };
        if spec.engine == ScanEngine::Defender {
            for (i, p) in spec.paths.iter().enumerate() {
                if !drive_path(p) {
                    j.refuse(
                        format!("spec.paths[{i}]"),
                        "platform",
                        format!("{p:?} is not a drive path (C:\\…) without quotes, wildcards or control characters"),
                    );
                }
            }
        }
        if spec.engine != crate::ops::scans::HOST_ENGINE {
            j.refuse(
                "spec.engine",
                "platform",
                format!(
                    "{:?} does not run on this host: its scan engine is {:?}",
                    spec.engine,
                    crate::ops::scans::HOST_ENGINE
                ),
            );
        }
        for (i, a) in spec.actions.iter().enumerate() {
            if *a != DetectionAction::Notify && !self.antivirus.actions.contains(a) {
                j.refuse(
                    format!("spec.actions[{i}]"),
                    "antivirus.actions",
                    format!("{a:?} is not an action this host takes on detections"),
                );
            }
        }
        if let Some(dir) = &spec.quarantine_dir
            && !self.allows_path(
                &self.antivirus.quarantine_dirs,
                Some("quarantine"),
                root,
                dir,
            )
        {
            j.refuse(
                "spec.quarantineDir",
                "antivirus.quarantineDirs",
                format!(
                    "{dir:?} is not an allowed quarantine directory ({})",
                    self.listed(&self.antivirus.quarantine_dirs, Some("quarantine"))
                ),
            );
        }
        if let Some(url) = &spec.signatures.mirror_url
            && !self.mirror_allowed(url)
        {
            j.refuse(
                "spec.signatures.mirrorUrl",
                "antivirus.mirrors",
                format!(
                    "{url:?} is not an allowed signature mirror (https and listed; {})",
                    self.listed(&self.antivirus.mirrors, None)
                ),
            );
        }
        if let Some(dir) = &spec.signatures.source_directory
            && !self.allows_path(&self.antivirus.signature_directories, None, root, dir)
        {
            j.refuse(
                "spec.signatures.sourceDirectory",
                "antivirus.signatureDirectories",
                format!(
                    "{dir:?} is not an allowed signature directory ({})",
                    self.listed(&self.antivirus.signature_directories, None)
                ),
            );
        }
        j.refusals
    }

    /// The refusals of a PatchBaseline on this host.
    pub fn judge_patches(&self, job: &PatchJob) -> Vec<Refusal> {
        let mut j = Judge {
            kind: "PatchBaseline",
            name: &job.name,
            refusals: vec![],
        };
        if job.spec.operation == PatchOperation::Install && !self.patches.install {
            j.refuse(
                "spec.operation",
                "patches.install",
                "this host does not install patches (operation Install)",
            );
        }
        if job.spec.operation == PatchOperation::Install
            && job.spec.reboot == RebootPolicy::RebootIfNeeded
            && !self.patches.reboot
        {
            j.refuse(
                "spec.reboot",
                "patches.reboot",
                "this host is not rebooted by the agent (RebootIfNeeded)",
            );
        }
        j.refusals
    }

    /// The refusals of a check on this host.
    pub fn judge_check(&self, a: &Assigned, index: usize, root: &Path) -> Vec<Refusal> {
        let mut j = Judge {
            kind: "MonitoringPolicy",
            name: &a.policy,
            refusals: vec![],
        };
        if a.check.kind == CheckKind::LogPattern
            && let Some(p) = &a.check.path
            && !self.allows_path(&self.logs.files, None, root, p)
        {
            j.refuse(
                format!("spec.checks[{index}].path"),
                "logs.files",
                format!(
                    "check {}: {p:?} is not a log file checks may read ({})",
                    a.check.name,
                    self.listed(&self.logs.files, None)
                ),
            );
        }
        j.refusals
    }
}

/// Reads the policy again on every SIGHUP; a file that cannot be used leaves the policy in
/// force as it was (logged and counted). (On Windows the policy is read when the service
/// starts.)
#[cfg(unix)]
pub async fn reload_on_hangup(
    path: PathBuf,
    state_dir: PathBuf,
    tx: tokio::sync::watch::Sender<std::sync::Arc<HostPolicy>>,
    metrics: std::sync::Arc<crate::metrics::Metrics>,
) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hangup) = signal(SignalKind::hangup()) else {
        tracing::error!("cannot install the SIGHUP handler; the host policy is read at start only");
        return std::future::pending().await;
    };
    while hangup.recv().await.is_some() {
        match HostPolicy::load(&path, &state_dir, true) {
            Ok(p) => {
                metrics.policy_load(true);
                tracing::info!(policy = %p.source, "host policy read again");
                tx.send_replace(std::sync::Arc::new(p));
            }
            Err(e) => {
                metrics.policy_load(false);
                tracing::error!(error = %e, "the host policy file cannot be used; the one in force stays");
            }
        }
    }
}

/// The checks `policy` allows, and the refusals of the others (which do not run at all).
pub fn admit_checks(
    policy: &HostPolicy,
    root: &Path,
    checks: Vec<Assigned>,
) -> (Vec<Assigned>, Vec<Refusal>) {
    let (mut kept, mut refusals) = (Vec::new(), Vec::new());
    let mut index: std::collections::HashMap<String, usize> = Default::default();
    for a in checks {
        let i = index.entry(a.policy.clone()).or_default();
        let refused = policy.judge_check(&a, *i, root);
        *i += 1;
        keep(&mut kept, &mut refusals, a, refused);
    }
    (kept, refusals)
}

fn keep<T>(list: &mut Vec<T>, refusals: &mut Vec<Refusal>, item: T, refused: Vec<Refusal>) {
    if refused.is_empty() {
        list.push(item);
    } else {
        refusals.extend(refused);
    }
}

#[cfg(test)]
mod tests;

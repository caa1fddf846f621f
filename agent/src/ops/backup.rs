//! Backups with restic from Debian: full and differential runs, generations and their
//! retention, the copy to the secondary repository.
//!
//! What full and differential mean with restic. Every restic snapshot is complete: restoring any
//! one gives every file as it was at that time, and data is stored once (deduplicated) whatever
//! the type. The types differ in how the run reads the sources and how snapshots are grouped:
//! - a **Full** run reads every file again (`restic backup --force`, no parent) and starts a
//!   new generation;
//! - a **Differential** run is made against the last full (`--parent <full>`): restic reads only
//!   the files changed since that full (by size, time and inode) and the snapshot belongs to the
//!   full's generation.
//!
//! A generation is a full with its differentials, linked by the tag `unyo-generation=<full's
//! short id>`. Retention keeps the newest N generations that hold a full and forgets the
//! snapshots of older ones (`restic forget`, then `restic prune`); the newest generation is never
//! forgotten. Snapshots carry the tags `unyo-plan`, `unyo-rule`, `unyo-type`, `unyo-generation`,
//! `unyo-class` (the information class) and `unyo-label`. To restore, pick any snapshot — the
//! latest differential of a generation restores the state of its run in one step:
//! `restic -r REPO --password-file F restore <snapshot> --target DIR`.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;

/// A restic repository on this host.
#[derive(Clone, Debug)]
pub struct Restic {
    /// Repository location (a path or a restic URL).
    pub repo: String,
    /// The file holding its password (on the host; never in a custom resource).
    pub password_file: PathBuf,
}

/// A snapshot as `restic snapshots --json` lists it.
#[derive(Deserialize, Clone, Debug, PartialEq)]
pub struct Snapshot {
    /// Full id.
    pub id: String,
    /// Short id.
    pub short_id: String,
    /// When it was taken.
    pub time: String,
    /// Its tags.
    #[serde(default)]
    pub tags: Vec<String>,
}

impl Snapshot {
    /// The value of tag `key=…`.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find_map(|t| t.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
    }
}

/// What a backup run produced.
#[derive(Clone, Debug, PartialEq)]
pub struct Made {
    /// The snapshot's short id.
    pub snapshot: String,
    /// Bytes added to the repository.
    pub bytes_added: u64,
    /// Files the run read again (new or changed).
    pub files_read: u64,
}

#[derive(Deserialize)]
struct Summary {
    message_type: String,
    #[serde(default)]
    snapshot_id: Option<String>,
    #[serde(default)]
    data_added: u64,
    #[serde(default)]
    files_new: u64,
    #[serde(default)]
    files_changed: u64,
}

impl Restic {
    fn command(&self) -> Command {
        let mut c = Command::new("restic");
        c.arg("-r")
            .arg(&self.repo)
            .arg("--password-file")
            .arg(&self.password_file)
            .args(["--no-cache", "--quiet"]);
        c
    }

    fn run(&self, args: &[&str]) -> Result<String, String> {
        let out = self
            .command()
            .args(args)
            .output()
            .map_err(|e| format!("running restic (Debian package restic): {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            let err = String::from_utf8_lossy(&out.stderr);
            let lines: Vec<&str> = err
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect();
            let message = if lines.is_empty() {
                "failed".to_string()
            } else {
                lines.join("; ")
            };
            Err(format!(
                "restic {}: {message}",
                args.first().copied().unwrap_or("")
            ))
        }
    }

    /// Opens the repository, creating it when it does not exist yet (a wrong password or an
    /// unreadable repository is an error, never a new repository). A secondary repository is
    /// created with the chunker parameters of `copy_of`, so that copies deduplicate.
    pub fn ensure(&self, copy_of: Option<&Restic>) -> Result<(), String> {
        if !self.password_file.is_file() {
            return Err(format!(
                "password file {} does not exist",
                self.password_file.display()
            ));
        }
        match self.run(&["cat", "config"]) {
            Ok(_) => {
                // Locks left by a restic that was killed with the agent are stale: restic
                // removes only those (a lock of a live process stays).
                let _ = self.run(&["unlock"]);
                Ok(())
            }
            // Only a repository that is not there is created; any other failure is reported.
            Err(e) if e.contains("Is there a repository at the following location") => {
                let mut args = vec!["init".to_string()];
                if let Some(src) = copy_of {
                    args.extend([
                        "--copy-chunker-params".into(),
                        "--from-repo".into(),
                        src.repo.clone(),
                        "--from-password-file".into(),
                        src.password_file.display().to_string(),
                    ]);
                }
                let refs: Vec<&str> = args.iter().map(String::as_str).collect();
                self.run(&refs).map(|_| ())
            }
            Err(e) => Err(e),
        }
    }

    /// Backs up `paths` with `tags`: against `parent` (a differential) or reading every file
    /// (a full).
    pub fn backup(
        &self,
        paths: &[PathBuf],
        excludes: &[String],
        tags: &[String],
        parent: Option<&str>,
    ) -> Result<Made, String> {
        let mut c = self.command();
        c.args(["backup", "--json"]);
        match parent {
            Some(p) => {
                c.args(["--parent", p]);
            }
            None => {
                c.arg("--force");
            }
        }
        for t in tags {
            c.arg("--tag").arg(t);
        }
        for e in excludes {
            c.arg("--exclude").arg(e);
        }
        c.arg("--").args(paths);
        let out = c.output().map_err(|e| format!("running restic: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "restic backup: {}",
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .last()
                    .unwrap_or("failed")
            ));
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        let summary = stdout
            .lines()
            .filter_map(|l| serde_json::from_str::<Summary>(l).ok())
            .find(|s| s.message_type == "summary")
            .ok_or_else(|| "restic backup printed no summary".to_string())?;
        let id = summary
            .snapshot_id
            .ok_or("restic backup made no snapshot")?;
        Ok(Made {
            snapshot: id.chars().take(8).collect(),
            bytes_added: summary.data_added,
            files_read: summary.files_new + summary.files_changed,
        })
    }

    /// The snapshots carrying every tag of `tags`, oldest first.
    pub fn snapshots(&self, tags: &[String]) -> Result<Vec<Snapshot>, String> {
        let mut args = vec!["snapshots".to_string(), "--json".to_string()];
        if !tags.is_empty() {
            args.push("--tag".into());
            args.push(tags.join(","));
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = self.run(&refs)?;
        let mut list: Vec<Snapshot> = serde_json::from_str(out.trim()).unwrap_or_default();
        list.sort_by(|a, b| a.time.cmp(&b.time));
        Ok(list)
    }

    /// Copies a snapshot of `from` into this repository.
    pub fn copy_from(&self, from: &Restic, snapshot: &str) -> Result<(), String> {
        self.run(&[
            "copy",
            "--from-repo",
            &from.repo,
            "--from-password-file",
            &from.password_file.display().to_string(),
            snapshot,
        ])
        .map(|_| ())
    }

    /// Forgets snapshots and prunes the data only they held.
    pub fn forget(&self, ids: &[String]) -> Result<(), String> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut args = vec!["forget", "--prune"];
        args.extend(ids.iter().map(String::as_str));
        self.run(&args).map(|_| ())
    }

    /// `restic check`.
    pub fn check(&self) -> Result<(), String> {
        self.run(&["check"]).map(|_| ())
    }

    /// Restores `snapshot` (optionally only `include`) into `target`.
    pub fn restore(
        &self,
        snapshot: &str,
        target: &Path,
        include: Option<&str>,
    ) -> Result<(), String> {
        let target = target.display().to_string();
        let mut args = vec!["restore", snapshot, "--target", target.as_str()];
        if let Some(i) = include {
            args.extend(["--include", i]);
        }
        self.run(&args).map(|_| ())
    }
}

/// The generations of a plan's snapshots (by their generation tag), oldest first, each with
/// whether it holds a full.
pub fn generations(snaps: &[Snapshot]) -> Vec<(String, Vec<&Snapshot>, bool)> {
    let mut out: Vec<(String, Vec<&Snapshot>, bool)> = Vec::new();
    for s in snaps {
        let Some(g) = s.tag("unyo-generation") else {
            continue;
        };
        let full = s.tag("unyo-type") == Some("Full");
        match out.iter_mut().find(|(id, _, _)| id == g) {
            Some(entry) => {
                entry.1.push(s);
                entry.2 |= full;
            }
            None => out.push((g.to_string(), vec![s], full)),
        }
    }
    out
}

/// The snapshot ids to forget so that the newest `keep` generations with a full remain (never
/// fewer than one): every snapshot of an older generation.
pub fn to_forget(snaps: &[Snapshot], keep: u32) -> Vec<String> {
    let gens = generations(snaps);
    let complete: Vec<&String> = gens.iter().filter(|g| g.2).map(|g| &g.0).collect();
    let keep = keep.max(1) as usize;
    if complete.len() <= keep {
        return vec![];
    }
    let oldest_kept = complete[complete.len() - keep];
    let cut = gens.iter().position(|g| &g.0 == oldest_kept).unwrap_or(0);
    gens[..cut]
        .iter()
        .flat_map(|g| g.1.iter().map(|s| s.id.clone()))
        .collect()
}

/// A path of the host beneath `root` (absolute paths only; restic URLs stay as they are).
pub(crate) fn on_host(root: &Path, p: &str) -> PathBuf {
    if p.starts_with('/') {
        root.join(p.trim_start_matches('/'))
    } else {
        PathBuf::from(p)
    }
}

/// A repository of a plan that is about to be written (and created when absent): one marked
/// `requireMount` only when its path is on a mounted filesystem other than `/`.
fn writable(root: &Path, r: &unyo_crds::backup::BackupRepository) -> Result<Restic, String> {
    if r.require_mount {
        let mounts = std::fs::read_to_string(root.join("proc/mounts"))
            .map_err(|e| format!("repository {}: reading the mounts: {e}", r.location))?;
        match mount_point(&mounts, &r.location) {
            Some(m) if m != "/" => {}
            _ => {
                return Err(format!(
                    "repository {} requires a mounted filesystem (requireMount), but no filesystem is mounted there: it would be written to the root filesystem",
                    r.location
                ));
            }
        }
    }
    Ok(repository(root, r))
}

/// The mount point (of `/proc/mounts`) a host path lies on: the longest that contains it.
fn mount_point(mounts: &str, path: &str) -> Option<String> {
    let path = Path::new(path);
    mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .map(unescape_mount)
        .filter(|m| path.starts_with(m))
        .max_by_key(|m| Path::new(m).components().count())
}

/// A mount point as `/proc/mounts` writes it, with `\040`-style octal escapes undone.
/// (Not procfs's `MountEntry`, which the facts use: its unmangling leaves `\040`, a space, as
/// it is, and a backup disk mounted at a path with a space must be found.)
fn unescape_mount(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) => {
                out.push(
                    d.iter()
                        .fold(0u8, |n, c| n.wrapping_mul(8).wrapping_add(c - b'0')),
                );
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A repository of a plan as restic on this host reaches it.
pub(crate) fn repository(root: &Path, r: &unyo_crds::backup::BackupRepository) -> Restic {
    Restic {
        repo: on_host(root, &r.location).display().to_string(),
        password_file: on_host(root, &r.password_file),
    }
}

/// Runs one rule of a plan (or, with `rule` None, a full backup on request) on the host
/// beneath `root`, updating `state` (the host's backup state under the plan): the sources'
/// pre-commands, the backup unless one failed, then every post-command whatever happened.
pub fn run_rule(
    plan: &str,
    spec: &unyo_crds::backup::BackupPlanSpec,
    rule: Option<&unyo_crds::backup::BackupRule>,
    root: &Path,
    state: &mut unyo_crds::backup::HostBackup,
) {
    use unyo_crds::backup::{BackupType, CommandPhase};
    let started = jiff::Timestamp::now();
    let rule_name = rule.map_or("on-request", |r| r.name.as_str());
    let wanted = rule.map(|r| r.backup_type).unwrap_or(BackupType::Full);
    let sources: Vec<&unyo_crds::backup::BackupSource> = spec
        .sources
        .iter()
        .filter(|s| rule.is_none_or(|r| r.sources.is_empty() || r.sources.contains(&s.name)))
        .collect();
    let mut commands = Vec::new();
    let run = RuleRun {
        plan,
        spec,
        rule_name,
        wanted,
        root,
        started,
    };
    let pre = run_commands(root, &sources, CommandPhase::Pre, &mut commands);
    let mut result = match pre {
        Some(failed) => Err(failed),
        None => back_up(&run, &sources),
    };
    let post = run_commands(root, &sources, CommandPhase::Post, &mut commands);
    if let (Some(failed), Ok(_)) = (post, &result) {
        result = Err(format!("the backup was taken, but {failed}"));
    }
    state.commands = commands;
    record_run(&run, &result, state);
}

/// One run of a rule: what every step of it needs to know.
struct RuleRun<'a> {
    plan: &'a str,
    spec: &'a unyo_crds::backup::BackupPlanSpec,
    rule_name: &'a str,
    wanted: unyo_crds::backup::BackupType,
    root: &'a Path,
    started: jiff::Timestamp,
}

/// Runs the `phase` commands of `sources` in order into `out`; the first failure, in a sentence.
/// Pre-commands stop at the first failure; post-commands all run.
fn run_commands(
    root: &Path,
    sources: &[&unyo_crds::backup::BackupSource],
    phase: unyo_crds::backup::CommandPhase,
    out: &mut Vec<unyo_crds::backup::CommandResult>,
) -> Option<String> {
    use super::command;
    let mut failed = None;
    for s in sources {
        let argv = match phase {
            unyo_crds::backup::CommandPhase::Pre => &s.pre_command,
            unyo_crds::backup::CommandPhase::Post => &s.post_command,
        };
        if argv.is_empty() {
            continue;
        }
        let limit = command::timeout(s.command_timeout.as_deref());
        let r = command::run(root, &s.name, phase, argv, limit);
        let ok = command::succeeded(&r);
        if !ok && failed.is_none() {
            failed = Some(command::failure(&r));
        }
        out.push(r);
        if !ok && phase == unyo_crds::backup::CommandPhase::Pre {
            break;
        }
    }
    failed
}

/// What a backup made: its kind, the snapshot, whether it was copied, and a note.
struct Backed {
    kind: unyo_crds::backup::BackupType,
    made: Made,
    generation: String,
    copied: Option<bool>,
    note: String,
}

/// The backup itself: restic into the primary (the files sources as one snapshot, each
/// PostgreSQL source as a base backup for a full or its shipped WAL for a differential), the
/// copy into the secondary, retention in both.
fn back_up(
    run: &RuleRun<'_>,
    sources: &[&unyo_crds::backup::BackupSource],
) -> Result<Backed, String> {
    let (primary, secondary) = open_repositories(run.root, run.spec)?;
    let plan_tag = format!("unyo-plan={}", run.plan);
    let (kind, parent, generation, note) = kind_and_generation(run, &primary, &plan_tag)?;
    let mut tags = vec![
        plan_tag.clone(),
        format!("unyo-rule={}", run.rule_name),
        format!("unyo-type={kind:?}"),
        format!("unyo-generation={generation}"),
        format!("unyo-class={:?}", run.spec.media.information_class),
    ];
    if let Some(label) = &run.spec.media.label {
        tags.push(format!("unyo-label={}", label.replace(',', " ")));
    }
    let mut made: Vec<Made> = Vec::new();
    let files: Vec<&&unyo_crds::backup::BackupSource> = sources
        .iter()
        .filter(|s| s.source_type == unyo_crds::backup::SourceType::Files)
        .collect();
    if !files.is_empty() {
        let paths: Vec<PathBuf> = files
            .iter()
            .flat_map(|s| s.paths.iter().map(|p| on_host(run.root, p)))
            .collect();
        let excludes: Vec<String> = files
            .iter()
            .flat_map(|s| {
                s.excludes
                    .iter()
                    .map(|e| on_host(run.root, e).display().to_string())
            })
            .collect();
        made.push(primary.backup(&paths, &excludes, &tags, parent.as_deref())?);
    }
    for (source, pg) in sources
        .iter()
        .filter_map(|s| Some((*s, s.postgresql.as_ref()?)))
    {
        let repos = (&primary, None);
        match kind {
            unyo_crds::backup::BackupType::Full => {
                made.push(super::postgres::base_backup(source, pg, &primary, &tags)?)
            }
            unyo_crds::backup::BackupType::Differential => {
                let shipped = super::postgres::ship(run.root, source, pg, repos, &tags)?;
                made.extend(shipped.map(|s| s.made));
            }
        }
    }
    let made = made.into_iter().reduce(|a, b| Made {
        snapshot: b.snapshot,
        bytes_added: a.bytes_added.saturating_add(b.bytes_added),
        files_read: a.files_read.saturating_add(b.files_read),
    });
    let made = made.ok_or("nothing to back up: no files source, and no new WAL in the spool")?;
    let copied = secondary.as_ref().map(|sec| {
        let new = primary.snapshots(&[plan_tag.clone(), format!("unyo-rule={}", run.rule_name)]);
        new.map(|list| {
            list.iter()
                .filter(|s| {
                    s.time
                        .parse::<jiff::Timestamp>()
                        .is_ok_and(|t| t >= run.started)
                })
                .all(|s| sec.copy_from(&primary, &s.short_id).is_ok())
        })
        .unwrap_or(false)
    });
    retain(run.spec, &plan_tag, &primary, secondary.as_ref())?;
    Ok(Backed {
        kind,
        made,
        generation,
        copied,
        note,
    })
}

/// A plan's repositories, opened for writing (created when absent).
fn open_repositories(
    root: &Path,
    spec: &unyo_crds::backup::BackupPlanSpec,
) -> Result<(Restic, Option<Restic>), String> {
    let primary = writable(root, &spec.repositories.primary)?;
    let secondary = match &spec.repositories.secondary {
        Some(r) => Some(writable(root, r)?),
        None => None,
    };
    primary.ensure(None)?;
    if let Some(sec) = &secondary {
        sec.ensure(Some(&primary))?;
    }
    Ok((primary, secondary))
}

/// What this run is (a differential without a full is a full), its parent snapshot, its
/// generation, and a note for the message.
fn kind_and_generation(
    run: &RuleRun<'_>,
    primary: &Restic,
    plan_tag: &str,
) -> Result<
    (
        unyo_crds::backup::BackupType,
        Option<String>,
        String,
        String,
    ),
    String,
> {
    use unyo_crds::backup::BackupType;
    // The last full of the files (a base backup of a database is a full too, of other paths).
    let last_full = primary
        .snapshots(&[plan_tag.to_string(), "unyo-type=Full".into()])?
        .into_iter()
        .rfind(|s| s.tag("unyo-pg").is_none());
    let new_generation = || format!("g{}", run.started.as_millisecond());
    Ok(match (run.wanted, &last_full) {
        (BackupType::Differential, Some(full)) => (
            BackupType::Differential,
            Some(full.short_id.clone()),
            full.tag("unyo-generation")
                .unwrap_or(&full.short_id)
                .to_string(),
            String::new(),
        ),
        (BackupType::Differential, None) if has_only_postgres(run.spec) => {
            let generation = current_generation(primary, plan_tag)?.unwrap_or_else(new_generation);
            (BackupType::Differential, None, generation, String::new())
        }
        (BackupType::Differential, None) => (
            BackupType::Full,
            None,
            new_generation(),
            "no full backup yet, so this run is a full; ".to_string(),
        ),
        (BackupType::Full, _) => (BackupType::Full, None, new_generation(), String::new()),
    })
}

fn has_only_postgres(spec: &unyo_crds::backup::BackupPlanSpec) -> bool {
    spec.sources
        .iter()
        .all(|s| s.source_type == unyo_crds::backup::SourceType::PostgreSQL)
}

/// The generation of the plan's newest full, if it has one.
pub fn current_generation(primary: &Restic, plan_tag: &str) -> Result<Option<String>, String> {
    let full = primary
        .snapshots(&[plan_tag.to_string(), "unyo-type=Full".into()])?
        .pop();
    Ok(full.and_then(|f| f.tag("unyo-generation").map(String::from)))
}

/// Retention by generations, in both repositories.
fn retain(
    spec: &unyo_crds::backup::BackupPlanSpec,
    plan_tag: &str,
    primary: &Restic,
    secondary: Option<&Restic>,
) -> Result<(), String> {
    let keep = spec.retention.generations;
    for repo in std::iter::once(primary).chain(secondary) {
        let forget = to_forget(&repo.snapshots(&[plan_tag.to_string()])?, keep);
        repo.forget(&forget)?;
    }
    Ok(())
}

/// Ships the archived WAL of PostgreSQL source `source` of a plan into its repositories (the
/// journal), tagged with the generation of the plan's newest full.
pub fn ship_journal(
    plan: &str,
    spec: &unyo_crds::backup::BackupPlanSpec,
    source: &str,
    root: &Path,
) -> Result<Option<super::postgres::Shipped>, String> {
    let (s, pg) = super::postgres::pick_source(spec, Some(source))?;
    let (primary, secondary) = open_repositories(root, spec)?;
    let plan_tag = format!("unyo-plan={plan}");
    let generation = current_generation(&primary, &plan_tag)?.unwrap_or_else(|| "g0".into());
    let tags = [
        plan_tag,
        "unyo-rule=journal".to_string(),
        format!("unyo-generation={generation}"),
        format!("unyo-class={:?}", spec.media.information_class),
    ];
    super::postgres::ship(root, s, pg, (&primary, secondary.as_ref()), &tags)
}

/// Records a run's result, the generations held and, after a good run, a repository check.
fn record_run(
    r: &RuleRun<'_>,
    result: &Result<Backed, String>,
    state: &mut unyo_crds::backup::HostBackup,
) {
    let RuleRun {
        plan,
        spec,
        rule_name,
        wanted,
        root,
        started,
    } = *r;
    use jiff::Timestamp;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use unyo_crds::backup::{
        BackupRun, BackupType, RunResult, SnapshotVerification, Verification, VerificationMethod,
    };
    let mut run = BackupRun {
        rule: rule_name.to_string(),
        backup_type: wanted,
        result: RunResult::Failed,
        started_at: Time(started),
        finished_at: Some(Time(Timestamp::now())),
        snapshot: None,
        copied: None,
        bytes_added: None,
        message: None,
    };
    match result {
        Ok(Backed {
            kind,
            made,
            copied,
            note,
            ..
        }) => {
            run.backup_type = *kind;
            run.result = RunResult::Succeeded;
            run.snapshot = Some(made.snapshot.clone());
            run.copied = *copied;
            run.bytes_added = Some(made.bytes_added);
            let copy = match copied {
                Some(true) => ", copied to the secondary repository",
                Some(false) => ", NOT copied to the secondary repository",
                None => "",
            };
            run.message = Some(format!(
                "{note}{} file(s) read, {} bytes added{copy}",
                made.files_read, made.bytes_added
            ));
        }
        Err(e) => run.message = Some(e.clone()),
    }
    if let Ok(b) = result {
        let repos = &spec.repositories;
        let secondary_offsite = repos.secondary.as_ref().is_some_and(|r| r.offsite);
        if repos.primary.offsite || (secondary_offsite && b.copied == Some(true)) {
            state.offsite_copy_at = Some(Time(started));
        }
    }
    match run.backup_type {
        BackupType::Full => state.last_full = Some(run),
        BackupType::Differential => state.last_differential = Some(run),
    }
    let primary = repository(root, &spec.repositories.primary);
    if let Ok(snaps) = primary.snapshots(&[format!("unyo-plan={plan}")]) {
        state.generations = Some(generations(&snaps).iter().filter(|g| g.2).count() as u32);
    }
    let check = spec
        .verification
        .as_ref()
        .is_some_and(|v| v.check_after_run);
    if let (Ok(b), true) = (result, check) {
        let checked = primary.check();
        let at = Time(Timestamp::now());
        let result = if checked.is_ok() {
            RunResult::Succeeded
        } else {
            RunResult::Failed
        };
        state.record_verification(SnapshotVerification {
            snapshot: b.made.snapshot.clone(),
            generation: b.generation.clone(),
            method: VerificationMethod::CheckAfterRun,
            at: at.clone(),
            result,
        });
        state.last_verification = Some(Verification {
            at,
            result,
            message: Some(
                checked
                    .err()
                    .unwrap_or_else(|| "restic check: no errors".into()),
            ),
        });
    }
}

/// Files under `paths` (recursively, sorted), at most `n`, spread evenly.
fn sample_files(paths: &[PathBuf], n: usize) -> Vec<PathBuf> {
    fn walk(p: &Path, out: &mut Vec<PathBuf>) {
        if p.is_file() {
            out.push(p.to_path_buf());
        } else if let Ok(entries) = std::fs::read_dir(p) {
            let mut list: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
            list.sort();
            for e in list {
                walk(&e, out);
            }
        }
    }
    let mut all = Vec::new();
    for p in paths {
        walk(p, &mut all);
    }
    if all.len() <= n {
        return all;
    }
    let step = all.len() as f64 / n as f64;
    (0..n)
        .map(|i| all[(i as f64 * step) as usize].clone())
        .collect()
}

/// The periodic test restore: restores a sample of up to 20 files that have not changed since
/// the latest snapshot of the plan into a temporary directory and compares them byte for byte
/// with the files on the host.
pub fn test_restore(
    plan: &str,
    spec: &unyo_crds::backup::BackupPlanSpec,
    root: &Path,
    state: &mut unyo_crds::backup::HostBackup,
) {
    use jiff::Timestamp;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use unyo_crds::backup::{RunResult, SnapshotVerification, Verification, VerificationMethod};

    let on_host = |p: &str| on_host(root, p);
    let primary = repository(root, &spec.repositories.primary);
    let mut tested: Option<Snapshot> = None;
    let outcome: Result<String, String> = (|| {
        let latest = primary
            .snapshots(&[format!("unyo-plan={plan}")])?
            .pop()
            .ok_or("no snapshot of the plan to restore")?;
        tested = Some(latest.clone());
        let taken: Timestamp = latest
            .time
            .parse()
            .map_err(|e| format!("snapshot time {}: {e}", latest.time))?;
        let paths: Vec<PathBuf> = spec
            .sources
            .iter()
            .flat_map(|s| s.paths.iter().map(|p| on_host(p)))
            .collect();
        let unchanged: Vec<PathBuf> = sample_files(&paths, 200)
            .into_iter()
            .filter(|f| {
                std::fs::metadata(f)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| Timestamp::try_from(t).ok())
                    .is_some_and(|t| t < taken)
            })
            .take(20)
            .collect();
        if unchanged.is_empty() {
            return Err("no file unchanged since the latest snapshot to compare".into());
        }
        let target = std::env::temp_dir().join(format!(
            "unyo-test-restore-{}-{}",
            std::process::id(),
            taken.as_millisecond()
        ));
        let _ = std::fs::remove_dir_all(&target);
        let mut args = vec![
            "restore".to_string(),
            latest.short_id.clone(),
            "--target".into(),
            target.display().to_string(),
        ];
        for f in &unchanged {
            args.push("--include".into());
            args.push(f.display().to_string());
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let restored = primary.run(&refs);
        let compared = restored.and_then(|_| {
            for f in &unchanged {
                let copy = target.join(f.strip_prefix("/").unwrap_or(f));
                let (a, b) = (std::fs::read(f), std::fs::read(&copy));
                match (a, b) {
                    (Ok(a), Ok(b)) if a == b => {}
                    (Ok(_), Ok(_)) => {
                        return Err(format!("{} differs from its restored copy", f.display()));
                    }
                    (_, Err(e)) => return Err(format!("{} was not restored: {e}", f.display())),
                    (Err(e), _) => return Err(format!("{}: {e}", f.display())),
                }
            }
            Ok(format!(
                "restored {} file(s) of snapshot {} and found them identical",
                unchanged.len(),
                latest.short_id
            ))
        });
        let _ = std::fs::remove_dir_all(&target);
        compared
    })();
    let at = Time(Timestamp::now());
    let result = if outcome.is_ok() {
        RunResult::Succeeded
    } else {
        RunResult::Failed
    };
    if let Some(snap) = &tested {
        state.record_verification(SnapshotVerification {
            snapshot: snap.short_id.clone(),
            generation: snap
                .tag("unyo-generation")
                .unwrap_or(&snap.short_id)
                .to_string(),
            method: VerificationMethod::TestRestore,
            at: at.clone(),
            result,
        });
    }
    state.last_verification = Some(Verification {
        at,
        result,
        message: Some(match outcome {
            Ok(m) => m,
            Err(e) => format!("test restore: {e}"),
        }),
    });
}

/// Restores into `target` beneath the host root: with a `generation` (1 = newest), that
/// generation's latest snapshot; without, the snapshot of the newest generation whose last
/// verification in `verified` succeeded. Returns what was restored and why that one.
pub fn restore_generation(
    plan: &str,
    spec: &unyo_crds::backup::BackupPlanSpec,
    root: &Path,
    generation: Option<usize>,
    verified: &[unyo_crds::backup::SnapshotVerification],
    target: &str,
) -> Result<String, String> {
    let primary = repository(root, &spec.repositories.primary);
    let snaps = primary.snapshots(&[format!("unyo-plan={plan}")])?;
    let mut gens: Vec<_> = generations(&snaps).into_iter().filter(|g| g.2).collect();
    gens.reverse();
    let (snapshot, why) = match generation {
        Some(n) => named_generation(plan, &gens, n)?,
        None => verified_generation(plan, &gens, verified)?,
    };
    let dir = on_host(root, target);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{target}: {e}"))?;
    primary.restore(&snapshot, &dir, None)?;
    Ok(format!("restored snapshot {snapshot} into {target}: {why}"))
}

/// Generations with their snapshots, newest first.
type Generations<'a> = [(String, Vec<&'a Snapshot>, bool)];

/// The latest snapshot of the `n`-th newest generation.
fn named_generation(
    plan: &str,
    gens: &Generations<'_>,
    n: usize,
) -> Result<(String, String), String> {
    let Some((id, members, _)) = n.checked_sub(1).and_then(|i| gens.get(i)) else {
        return Err(format!(
            "plan {plan} holds {} generation(s); generation {n} does not exist",
            gens.len()
        ));
    };
    let latest = members
        .iter()
        .max_by(|a, b| a.time.cmp(&b.time))
        .ok_or("an empty generation")?;
    Ok((
        latest.short_id.clone(),
        format!("the latest of generation {id}, the {n}. newest, as asked"),
    ))
}

/// The verified snapshot of the newest generation whose last verification succeeded.
fn verified_generation(
    plan: &str,
    gens: &Generations<'_>,
    verified: &[unyo_crds::backup::SnapshotVerification],
) -> Result<(String, String), String> {
    use unyo_crds::backup::{GenerationView, choose_verified};
    let views: Vec<GenerationView<'_>> = gens
        .iter()
        .map(|(id, members, _)| GenerationView {
            id,
            snapshots: members.iter().map(|m| m.short_id.as_str()).collect(),
        })
        .collect();
    match choose_verified(&views, verified) {
        Ok((v, place, passed_over)) => {
            let mut why = format!(
                "generation {} (the {place}. newest) is the newest whose last verification succeeded ({:?} at {})",
                v.generation, v.method, v.at.0
            );
            if !passed_over.is_empty() {
                why.push_str(&format!("; {}", passed_over.join("; ")));
            }
            Ok((v.snapshot.clone(), why))
        }
        Err(passed_over) if passed_over.is_empty() => {
            Err(format!("plan {plan} holds no generation"))
        }
        Err(passed_over) => Err(format!(
            "no generation of plan {plan} has a successful last verification ({}); name one with --generation N",
            passed_over.join("; ")
        )),
    }
}

/// Sets or clears the immutable attribute of a file with chattr(1).
fn chattr(flag: &str, file: &Path) -> Result<(), String> {
    let out = Command::new("chattr")
        .arg(flag)
        .arg(file)
        .output()
        .map_err(|e| format!("running chattr: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "chattr {flag} {}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The write-protected snapshot of R8: a full backup tagged `unyo-protected=<date>` (outside
/// the generations, so retention never forgets it), whose snapshot file in a local primary
/// repository is made immutable (`chattr +i`), so that neither `restic forget` nor anyone else
/// can remove it while it is locked; the data it references stays because it is referenced.
/// Returns whether it is protected and what happened, honestly when the filesystem or the
/// repository kind does not allow it.
pub fn take_protected(
    plan: &str,
    spec: &unyo_crds::backup::BackupPlanSpec,
    root: &Path,
    date: &str,
) -> Result<(bool, String), String> {
    let primary = writable(root, &spec.repositories.primary)?;
    primary.ensure(None)?;
    let paths: Vec<PathBuf> = spec
        .sources
        .iter()
        .flat_map(|s| s.paths.iter().map(|p| on_host(root, p)))
        .collect();
    let tags = vec![
        format!("unyo-plan={plan}"),
        "unyo-type=Full".to_string(),
        format!("unyo-protected={date}"),
        format!("unyo-class={:?}", spec.media.information_class),
    ];
    let made = primary.backup(&paths, &[], &tags, None)?;
    let full_id = primary
        .snapshots(&[format!("unyo-protected={date}")])?
        .into_iter()
        .find(|s| s.short_id == made.snapshot)
        .map(|s| s.id)
        .ok_or("the protected snapshot is not listed")?;
    if !spec.repositories.primary.location.starts_with('/') {
        return Ok((
            false,
            format!(
                "snapshot {} taken, but NOT write-protected: the repository {} is not a local path",
                made.snapshot, spec.repositories.primary.location
            ),
        ));
    }
    let file = PathBuf::from(&primary.repo)
        .join("snapshots")
        .join(&full_id);
    Ok(match chattr("+i", &file) {
        Ok(()) => (
            true,
            format!(
                "snapshot {} taken and write-protected (chattr +i {})",
                made.snapshot,
                file.display()
            ),
        ),
        Err(e) => (
            false,
            format!(
                "snapshot {} taken, but NOT write-protected: {e}",
                made.snapshot
            ),
        ),
    })
}

/// Unlocks and forgets the protected snapshots older than `keep`.
pub fn expire_protected(
    plan: &str,
    spec: &unyo_crds::backup::BackupPlanSpec,
    root: &Path,
    keep: jiff::SignedDuration,
    now: jiff::Timestamp,
) -> Result<Vec<String>, String> {
    let primary = repository(root, &spec.repositories.primary);
    let old: Vec<Snapshot> = primary
        .snapshots(&[format!("unyo-plan={plan}")])?
        .into_iter()
        .filter(|s| s.tag("unyo-protected").is_some())
        .filter(|s| {
            s.time
                .parse::<jiff::Timestamp>()
                .is_ok_and(|t| now.duration_since(t) > keep)
        })
        .collect();
    for s in &old {
        let file = PathBuf::from(&primary.repo).join("snapshots").join(&s.id);
        if file.exists() {
            chattr("-i", &file)?;
        }
    }
    let ids: Vec<String> = old.iter().map(|s| s.id.clone()).collect();
    primary.forget(&ids)?;
    Ok(old.into_iter().map(|s| s.short_id).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plan of one source `/data` beneath `root` with the given commands.
    fn plan_with(
        root: &Path,
        pre: &[&str],
        post: &[&str],
        timeout: &str,
    ) -> unyo_crds::backup::BackupPlanSpec {
        let d = root.display();
        let argv = |c: &[&str]| -> Vec<String> {
            c.iter()
                .map(|a| a.replace("{root}", &d.to_string()))
                .collect()
        };
        serde_json::from_value(serde_json::json!({
            "sources": [{"name": "db", "paths": ["/data"], "preCommand": argv(pre),
                         "postCommand": argv(post), "commandTimeout": timeout}],
            "repositories": {"primary": {"location": "/primary", "passwordFile": "/pass"}},
            "rules": [{"name": "full", "type": "Full",
                       "schedule": {"calendar": "c", "at": "19:00", "days": "BusinessDays"}}],
            "media": {"informationClass": "ClassI"}
        }))
        .unwrap()
    }

    fn script(root: &Path, name: &str, body: &str) {
        use std::os::unix::fs::PermissionsExt;
        let path = root.join("scripts").join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn a_restore_takes_the_newest_verified_generation_over_a_newer_unverified_one() {
        let (root, _, _) = setup("verified");
        std::fs::create_dir_all(root.join("data")).unwrap();
        std::fs::write(root.join("data/table"), b"verified rows\n").unwrap();
        let mut spec = plan_with(&root, &[], &[], "1m");
        let mut state = unyo_crds::backup::HostBackup::default();
        spec.verification = Some(unyo_crds::backup::BackupVerification {
            check_after_run: true,
            test_restore: None,
        });
        run_rule("db", &spec, spec.rules.first(), &root, &mut state);
        let verified = state.last_full.clone().unwrap().snapshot.unwrap();
        assert_eq!(state.verified.len(), 1);
        // A newer generation, never verified.
        std::thread::sleep(std::time::Duration::from_millis(1100));
        std::fs::write(root.join("data/table"), b"unverified rows\n").unwrap();
        spec.verification = None;
        run_rule("db", &spec, spec.rules.first(), &root, &mut state);
        let newer = state.last_full.clone().unwrap().snapshot.unwrap();
        assert_ne!(newer, verified);
        let said = restore_generation("db", &spec, &root, None, &state.verified, "/r1").unwrap();
        assert!(
            said.starts_with(&format!("restored snapshot {verified} into /r1")),
            "{said}"
        );
        assert!(
            said.contains("(the 2. newest)") && said.contains("was never verified"),
            "{said}"
        );
        let table = |dir: &str| {
            let file = root
                .join(dir)
                .join(root.join("data/table").strip_prefix("/").unwrap());
            std::fs::read_to_string(file).unwrap()
        };
        assert_eq!(table("r1"), "verified rows\n");
        // Named, the newest generation is restored as asked.
        let said = restore_generation("db", &spec, &root, Some(1), &state.verified, "/r2").unwrap();
        assert!(said.contains(&newer), "{said}");
        assert_eq!(table("r2"), "unverified rows\n");
        // With no successful verification at all, nothing is restored and the reason is given.
        let none = restore_generation("db", &spec, &root, None, &[], "/r3").unwrap_err();
        assert!(
            none.contains("no generation of plan db has a successful last verification"),
            "{none}"
        );
        assert!(!root.join("r3").exists());
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn mount_points_are_read_with_their_escapes() {
        let mounts = "/dev/sda1 / ext4 rw 0 0\n/dev/sdb1 /srv/backup\\040disk ext4 rw 0 0\n/dev/sdc1 /srv ext4 rw 0 0\n";
        assert_eq!(
            mount_point(mounts, "/srv/backup disk/primary").as_deref(),
            Some("/srv/backup disk")
        );
        assert_eq!(
            mount_point(mounts, "/srv/backup/primary").as_deref(),
            Some("/srv")
        );
        assert_eq!(mount_point(mounts, "/srvx/primary").as_deref(), Some("/"));
    }

    #[test]
    fn a_repository_that_requires_a_mount_is_never_created_on_the_root_filesystem() {
        use unyo_crds::backup::RunResult;
        let (root, _, _) = setup("mount");
        std::fs::create_dir_all(root.join("data")).unwrap();
        std::fs::create_dir_all(root.join("proc")).unwrap();
        std::fs::write(root.join("data/table"), b"rows\n").unwrap();
        std::fs::write(root.join("proc/mounts"), "/dev/sda1 / ext4 rw 0 0\n").unwrap();
        let mut spec = plan_with(&root, &[], &[], "1m");
        spec.repositories.primary.require_mount = true;
        spec.repositories.primary.offsite = true;
        let mut state = unyo_crds::backup::HostBackup::default();
        run_rule("db", &spec, spec.rules.first(), &root, &mut state);
        let run = state.last_full.clone().unwrap();
        assert_eq!(run.result, RunResult::Failed);
        assert!(
            run.message
                .unwrap()
                .contains("requires a mounted filesystem (requireMount)")
        );
        assert!(!root.join("primary").exists(), "nothing was created");
        assert!(state.offsite_copy_at.is_none());
        // Once a filesystem is mounted there, the repository is created and written.
        std::fs::write(
            root.join("proc/mounts"),
            "/dev/sda1 / ext4 rw 0 0\n/dev/sdb1 /primary ext4 rw 0 0\n",
        )
        .unwrap();
        run_rule("db", &spec, spec.rules.first(), &root, &mut state);
        let run = state.last_full.clone().unwrap();
        assert_eq!(run.result, RunResult::Succeeded, "{:?}", run.message);
        assert!(root.join("primary/config").exists());
        // The primary is marked off site: the run's time is the age of the copy off site.
        assert_eq!(state.offsite_copy_at, Some(run.started_at));
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn pre_and_post_commands_run_around_the_backup_and_a_failure_fails_the_run() {
        use unyo_crds::backup::{CommandPhase, RunResult};
        let (root, _, _) = setup("commands");
        std::fs::create_dir_all(root.join("data")).unwrap();
        std::fs::write(root.join("data/table"), b"rows\n").unwrap();
        // The pre-command writes a dump into the source (it must be in the snapshot); the
        // post-command leaves a mark.
        script(
            &root,
            "dump",
            "echo 'dump of the database' > \"$1/data/dump.sql\"; echo dumped",
        );
        script(&root, "mark", "echo \"$2\" >> \"$1/post-ran\"");
        script(
            &root,
            "fail",
            "echo 'could not reach the database' >&2; exit 3",
        );
        script(&root, "hang", "echo starting; sleep 60");
        let mark = |n: &'static str| vec!["/scripts/mark", "{root}", n];
        let run = |pre: &[&str], post: &[&str], timeout: &str| {
            let spec = plan_with(&root, pre, post, timeout);
            let mut state = unyo_crds::backup::HostBackup::default();
            run_rule("db", &spec, spec.rules.first(), &root, &mut state);
            state
        };

        let ok = run(&["/scripts/dump", "{root}"], &mark("1"), "1m");
        let full = ok.last_full.clone().unwrap();
        assert_eq!(full.result, RunResult::Succeeded, "{:?}", full.message);
        assert_eq!(ok.commands.len(), 2);
        assert_eq!(ok.commands[0].phase, CommandPhase::Pre);
        assert_eq!(ok.commands[0].output.as_deref(), Some("dumped\n"));
        assert_eq!(ok.commands[1].exit_code, Some(0));
        let restored = root.join("restored");
        repository(
            &root,
            &plan_with(&root, &[], &[], "1m").repositories.primary,
        )
        .restore(full.snapshot.as_deref().unwrap(), &restored, None)
        .unwrap();
        let dump = restored.join(root.join("data/dump.sql").strip_prefix("/").unwrap());
        assert_eq!(
            std::fs::read_to_string(dump).unwrap(),
            "dump of the database\n"
        );

        let failed = run(&["/scripts/fail"], &mark("2"), "1m");
        let run2 = failed.last_full.clone().unwrap();
        assert_eq!(run2.result, RunResult::Failed);
        assert_eq!(
            run2.message.as_deref(),
            Some(
                "pre-command /scripts/fail of source db exited with 3: could not reach the database"
            )
        );
        assert!(
            run2.snapshot.is_none(),
            "nothing is backed up after a failed pre-command"
        );

        let started = std::time::Instant::now();
        let hung = run(&["/scripts/hang"], &mark("3"), "1s");
        assert!(started.elapsed() < std::time::Duration::from_secs(30));
        assert!(hung.commands[0].timed_out);
        let message = hung.last_full.unwrap().message.unwrap();
        assert!(
            message.contains("timed out and was stopped: starting"),
            "{message}"
        );

        let post_fails = run(&[], &["/scripts/fail"], "1m");
        let message = post_fails.last_full.unwrap().message.unwrap();
        assert!(
            message.starts_with("the backup was taken, but post-command /scripts/fail"),
            "{message}"
        );

        // The post-command ran after the success, the failing pre-command and the timeout.
        assert_eq!(
            std::fs::read_to_string(root.join("post-ran")).unwrap(),
            "1\n2\n3\n"
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

    fn setup(name: &str) -> (PathBuf, Restic, Restic) {
        let dir = std::env::temp_dir().join(format!("unyo-restic-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data/db")).unwrap();
        std::fs::write(dir.join("pass"), "correct horse battery staple\n").unwrap();
        let primary = Restic {
            repo: dir.join("primary").display().to_string(),
            password_file: dir.join("pass"),
        };
        let secondary = Restic {
            repo: dir.join("secondary").display().to_string(),
            password_file: dir.join("pass"),
        };
        (dir, primary, secondary)
    }

    fn tags(kind: &str, generation: &str) -> Vec<String> {
        vec![
            "unyo-plan=db".into(),
            format!("unyo-type={kind}"),
            format!("unyo-generation={generation}"),
            "unyo-class=ClassI".into(),
        ]
    }

    #[test]
    fn full_differential_copy_restore_and_retention_with_real_restic() {
        let (dir, primary, secondary) = setup("gen");
        primary.ensure(None).unwrap();
        secondary.ensure(Some(&primary)).unwrap();
        let data = dir.join("data");
        let big: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
        std::fs::write(data.join("db/base.dat"), &big).unwrap();
        std::fs::write(data.join("db/journal"), b"one\n").unwrap();
        let full = primary
            .backup(
                std::slice::from_ref(&data),
                &[],
                &tags("Full", "pending"),
                None,
            )
            .unwrap();
        assert!(full.bytes_added > 0);
        assert!(full.files_read >= 2);
        // A differential against the full reads only the changed file.
        std::fs::write(data.join("db/journal"), b"one\ntwo\n").unwrap();
        let diff = primary
            .backup(
                std::slice::from_ref(&data),
                &[],
                &tags("Differential", &full.snapshot),
                Some(&full.snapshot),
            )
            .unwrap();
        assert_eq!(diff.files_read, 1, "{diff:?}");
        assert!(diff.bytes_added < full.bytes_added);
        // The copy in the secondary repository restores byte for byte.
        secondary.copy_from(&primary, &diff.snapshot).unwrap();
        let copied = secondary.snapshots(&["unyo-plan=db".into()]).unwrap();
        assert_eq!(copied.len(), 1);
        let target = dir.join("restore");
        secondary
            .restore(&copied[0].short_id, &target, None)
            .unwrap();
        let restored = target.join(data.strip_prefix("/").unwrap());
        assert_eq!(std::fs::read(restored.join("db/base.dat")).unwrap(), big);
        assert_eq!(
            std::fs::read(restored.join("db/journal")).unwrap(),
            b"one\ntwo\n"
        );
        primary.check().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn test_restore_compares_bytes() {
        let (dir, _, _) = setup("verify");
        let root = dir.join("host");
        std::fs::create_dir_all(root.join("srv/data")).unwrap();
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/pass"), "pw\n").unwrap();
        for i in 0..30 {
            std::fs::write(
                root.join(format!("srv/data/f{i:02}")),
                vec![i as u8; 1000 + i],
            )
            .unwrap();
        }
        let spec: unyo_crds::backup::BackupPlanSpec = serde_json::from_value(serde_json::json!({
            "sources": [{"name": "data", "paths": ["/srv/data"]}],
            "repositories": {"primary": {"location": "/backup/p", "passwordFile": "/etc/pass"}},
            "rules": [{"name": "full", "type": "Full", "schedule": {"calendar": "c", "at": "19:30"}}],
            "media": {"informationClass": "ClassI"},
        }))
        .unwrap();
        let mut state = unyo_crds::backup::HostBackup {
            plan: "p".into(),
            ..Default::default()
        };
        std::thread::sleep(std::time::Duration::from_millis(1100));
        run_rule("p", &spec, None, &root, &mut state);
        assert_eq!(
            state.last_full.as_ref().unwrap().result,
            unyo_crds::backup::RunResult::Succeeded
        );
        test_restore("p", &spec, &root, &mut state);
        let v = state.last_verification.clone().unwrap();
        assert_eq!(v.result, unyo_crds::backup::RunResult::Succeeded, "{v:?}");
        assert!(v.message.unwrap().contains("restored 20 file(s)"));
        // A file changed in place with its old modification time: the comparison fails.
        let f = root.join("srv/data/f00");
        let mtime = std::fs::metadata(&f).unwrap().modified().unwrap();
        std::fs::write(&f, b"silently corrupted").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&f)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        test_restore("p", &spec, &root, &mut state);
        let v = state.last_verification.clone().unwrap();
        assert_eq!(v.result, unyo_crds::backup::RunResult::Failed);
        assert!(
            v.message.unwrap().contains("f00 differs"),
            "{:?}",
            state.last_verification
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn protected_snapshots_cannot_be_forgotten_until_they_expire() {
        let (dir, _, _) = setup("protect");
        let root = dir.join("host");
        std::fs::create_dir_all(root.join("srv/data")).unwrap();
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/pass"), "pw\n").unwrap();
        std::fs::write(root.join("srv/data/a"), b"ledger of 2026-11-24").unwrap();
        let spec: unyo_crds::backup::BackupPlanSpec = serde_json::from_value(serde_json::json!({
            "sources": [{"name": "data", "paths": ["/srv/data"]}],
            "repositories": {"primary": {"location": "/backup/p", "passwordFile": "/etc/pass"}},
            "rules": [{"name": "full", "type": "Full", "schedule": {"calendar": "c", "at": "19:30"}}],
            "media": {"informationClass": "ClassI"},
        }))
        .unwrap();
        let (protected, message) = take_protected("p", &spec, &root, "2026-11-24").unwrap();
        assert!(protected, "{message}");
        let repo = repository(&root, &spec.repositories.primary);
        let snap = repo
            .snapshots(&["unyo-protected=2026-11-24".into()])
            .unwrap()
            .pop()
            .unwrap();
        let file = root.join("backup/p/snapshots").join(&snap.id);
        let attrs = Command::new("lsattr").arg(&file).output().unwrap();
        assert!(
            String::from_utf8_lossy(&attrs.stdout)
                .split_whitespace()
                .next()
                .unwrap()
                .contains('i')
        );
        // Not even root can remove it while it is locked (restic forget would fail the same way,
        // after its retries).
        assert!(std::fs::remove_file(&file).is_err());
        // Retention does not see it as a generation.
        assert!(to_forget(&repo.snapshots(&["unyo-plan=p".into()]).unwrap(), 1).is_empty());
        // Not yet expired, then expired: unlocked and forgotten.
        let now = jiff::Timestamp::now();
        assert!(
            expire_protected("p", &spec, &root, jiff::SignedDuration::from_hours(24), now)
                .unwrap()
                .is_empty()
        );
        let gone = expire_protected(
            "p",
            &spec,
            &root,
            jiff::SignedDuration::ZERO,
            now + jiff::SignedDuration::from_secs(5),
        )
        .unwrap();
        assert_eq!(gone, std::slice::from_ref(&snap.short_id));
        assert!(!file.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Weeks of rules as the scheduler runs them: six weekly fulls (a differential after the
    /// first and the last), with retention 5 — in both repositories — and a wrong password
    /// failing clearly. (Each restic call derives the repository key, so the test keeps runs
    /// few.)
    #[test]
    fn six_generations_keep_five_in_both_repositories() {
        let (dir, _, _) = setup("week");
        let root = dir.join("host");
        std::fs::create_dir_all(root.join("srv/db")).unwrap();
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/pass"), "pw\n").unwrap();
        let spec: unyo_crds::backup::BackupPlanSpec = serde_json::from_value(serde_json::json!({
            "sources": [{"name": "db", "paths": ["/srv/db"]}],
            "repositories": {
                "primary": {"location": "/backup/p", "passwordFile": "/etc/pass"},
                "secondary": {"location": "/backup/s", "passwordFile": "/etc/pass"}
            },
            "rules": [
                {"name": "weekly-full", "type": "Full", "schedule": {"calendar": "c", "at": "19:30"}},
                {"name": "daily-diff", "type": "Differential", "schedule": {"calendar": "c", "at": "19:30"}}
            ],
            "media": {"informationClass": "ClassI"},
        }))
        .unwrap();
        let mut state = unyo_crds::backup::HostBackup {
            plan: "db".into(),
            ..Default::default()
        };
        for week in 0..6 {
            std::fs::write(root.join("srv/db/data"), format!("week {week}")).unwrap();
            run_rule("db", &spec, spec.rules.first(), &root, &mut state);
            assert_eq!(
                state.last_full.as_ref().unwrap().result,
                unyo_crds::backup::RunResult::Succeeded,
                "{:?}",
                state.last_full
            );
            let days = if week == 0 || week == 5 { 1 } else { 0 };
            for day in 0..days {
                std::fs::write(
                    root.join("srv/db/journal"),
                    format!("week {week} day {day}"),
                )
                .unwrap();
                run_rule("db", &spec, spec.rules.get(1), &root, &mut state);
                let d = state.last_differential.as_ref().unwrap();
                assert_eq!(d.result, unyo_crds::backup::RunResult::Succeeded, "{d:?}");
                assert_eq!(d.copied, Some(true));
            }
        }
        assert_eq!(state.generations, Some(5));
        for repo in [
            &spec.repositories.primary,
            spec.repositories.secondary.as_ref().unwrap(),
        ] {
            let snaps = repository(&root, repo)
                .snapshots(&["unyo-plan=db".into()])
                .unwrap();
            assert_eq!(generations(&snaps).len(), 5, "{}", repo.location);
            assert_eq!(
                snaps.len(),
                6,
                "five fulls and the last differential; the first generation is gone"
            );
        }
        // A wrong password: the run fails with a clear message, nothing is created.
        std::fs::write(root.join("etc/pass"), "not the password\n").unwrap();
        run_rule("db", &spec, spec.rules.get(1), &root, &mut state);
        let d = state.last_differential.as_ref().unwrap();
        assert_eq!(d.result, unyo_crds::backup::RunResult::Failed);
        assert!(
            d.message.as_deref().unwrap().contains("wrong password"),
            "{d:?}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn retention_keeps_the_newest_generations() {
        let snap = |id: &str, kind: &str, g: &str, t: &str| Snapshot {
            id: id.into(),
            short_id: id.into(),
            time: t.into(),
            tags: vec![format!("unyo-type={kind}"), format!("unyo-generation={g}")],
        };
        let mut snaps = Vec::new();
        for g in 1..=7 {
            snaps.push(snap(
                &format!("f{g}"),
                "Full",
                &format!("g{g}"),
                &format!("2026-11-{:02}T19:30:00Z", g * 2),
            ));
            snaps.push(snap(
                &format!("d{g}"),
                "Differential",
                &format!("g{g}"),
                &format!("2026-11-{:02}T19:30:00Z", g * 2 + 1),
            ));
        }
        assert_eq!(to_forget(&snaps, 5), ["f1", "d1", "f2", "d2"]);
        assert!(to_forget(&snaps, 7).is_empty());
        // A generation whose full failed (only differentials) does not count as kept.
        snaps.retain(|s| s.id != "f7");
        assert_eq!(to_forget(&snaps, 5), ["f1", "d1"]);
        assert_eq!(
            to_forget(&snaps, 0).len(),
            10,
            "never fewer than one generation"
        );
    }

    #[test]
    fn wrong_password_and_missing_password_file_are_clear() {
        let (dir, primary, _) = setup("pw");
        primary.ensure(None).unwrap();
        std::fs::write(dir.join("wrong"), "nope\n").unwrap();
        let wrong = Restic {
            repo: primary.repo.clone(),
            password_file: dir.join("wrong"),
        };
        let err = wrong.ensure(None).unwrap_err();
        assert!(err.contains("wrong password"), "{err}");
        let missing = Restic {
            repo: primary.repo.clone(),
            password_file: dir.join("absent"),
        };
        assert!(missing.ensure(None).unwrap_err().contains("does not exist"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

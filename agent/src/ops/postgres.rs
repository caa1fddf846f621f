//! PostgreSQL sources: a base backup (`pg_basebackup`) as each full, the WAL the cluster's
//! `archive_command` leaves in a spool shipped into the plan's repositories as the journal, and
//! a restore to any time: the newest base backup before it, the archived WAL after it, and the
//! recovery settings that make PostgreSQL replay up to that time and promote.
//!
//! Snapshots carry, besides the plan's tags, `unyo-pg=<source>` (a base backup, with
//! `unyo-pg-started=<unix seconds>` when it began) or `unyo-type=WAL` and `unyo-wal=<source>`.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use jiff::Timestamp;
use unyo_crds::backup::{BackupPlanSpec, BackupSource, PostgresSource};

use super::backup::{Made, Restic, Snapshot, on_host};

/// The PostgreSQL sources of a plan, with their settings.
pub fn sources(spec: &BackupPlanSpec) -> impl Iterator<Item = (&BackupSource, &PostgresSource)> {
    spec.sources
        .iter()
        .filter_map(|s| Some((s, s.postgresql.as_ref()?)))
}

/// An OS user's uid and gid, from the machine's `/etc/passwd` (the processes run on the
/// machine, whatever `--root` is).
fn ids(user: &str) -> Result<(u32, u32), String> {
    let passwd = std::fs::read_to_string("/etc/passwd").map_err(|e| format!("/etc/passwd: {e}"))?;
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.first() == Some(&user))
        .and_then(|f| Some((f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?)))
        .ok_or_else(|| format!("there is no user {user:?} on this host"))
}

/// Gives `path` and everything beneath it to `uid`:`gid`.
fn chown_tree(path: &Path, uid: u32, gid: u32) -> Result<(), String> {
    let owner = (
        Some(rustix::fs::Uid::from_raw(uid)),
        Some(rustix::fs::Gid::from_raw(gid)),
    );
    let set = |p: &Path| {
        rustix::fs::chownat(
            rustix::fs::CWD,
            p,
            owner.0,
            owner.1,
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|e| format!("{}: {e}", p.display()))
    };
    set(path)?;
    if path.is_dir() && !path.is_symlink() {
        for entry in std::fs::read_dir(path).map_err(|e| format!("{}: {e}", path.display()))? {
            let entry = entry.map_err(|e| e.to_string())?;
            chown_tree(&entry.path(), uid, gid)?;
        }
    }
    Ok(())
}

/// Takes a base backup of `pg` into a new directory owned by its OS user and backs it up into
/// `repo` with `tags`; the directory is removed afterwards.
pub fn base_backup(
    source: &BackupSource,
    pg: &PostgresSource,
    repo: &Restic,
    tags: &[String],
) -> Result<Made, String> {
    let (uid, gid) = ids(pg.os_user())?;
    let started = Timestamp::now();
    let dir = std::env::temp_dir().join(format!(
        "unyo-pg-base-{}-{}",
        source.name,
        started.as_millisecond()
    ));
    std::fs::create_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let result = (|| {
        chown_tree(&dir, uid, gid)?;
        let data = dir.join("data");
        let out = Command::new("pg_basebackup")
            .arg("-D")
            .arg(&data)
            .args(["-X", "fetch", "--checkpoint=fast", "--no-password", "-h"])
            .arg(pg.host.as_deref().unwrap_or("/var/run/postgresql"))
            .arg("-p")
            .arg(pg.port.unwrap_or(5432).to_string())
            .arg("-U")
            .arg(pg.user.as_deref().unwrap_or("postgres"))
            .uid(uid)
            .gid(gid)
            .current_dir(&dir)
            .output()
            .map_err(|e| {
                format!("running pg_basebackup (Debian package postgresql-client): {e}")
            })?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            return Err(format!(
                "pg_basebackup: {}",
                err.trim().lines().last().unwrap_or("failed")
            ));
        }
        let mut tags = tags.to_vec();
        tags.push(format!("unyo-pg={}", source.name));
        tags.push(format!("unyo-pg-started={}", started.as_second()));
        repo.backup(&[data], &[], &tags, None)
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// Whether a spool file is WAL PostgreSQL archived (a segment, a timeline history, a backup
/// history file), by its name.
fn is_wal(name: &str) -> bool {
    // By bytes: a name of other characters (anyone who can write to the spool chooses it)
    // must not be cut inside one.
    let hex = |s: &str| {
        s.as_bytes()
            .get(..24)
            .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
    };
    (name.len() == 24 && hex(name))
        || (name.ends_with(".history") && name.len() == 16)
        || (name.ends_with(".backup") && hex(name))
}

/// What one shipment of the spool carried.
#[derive(Clone, Debug, PartialEq)]
pub struct Shipped {
    /// The snapshot in the primary repository.
    pub made: Made,
    /// How many files.
    pub files: usize,
    /// The newest segment shipped.
    pub last: Option<String>,
}

/// Ships the WAL in the source's spool (beneath `root`) into `repo` (and its copy into
/// `copy`), then removes what was shipped. Nothing in the spool ships nothing.
pub fn ship(
    root: &Path,
    source: &BackupSource,
    pg: &PostgresSource,
    (repo, copy): (&Restic, Option<&Restic>),
    tags: &[String],
) -> Result<Option<Shipped>, String> {
    let spool = on_host(root, &pg.wal_spool);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&spool)
        .map_err(|e| format!("WAL spool {}: {e}", pg.wal_spool))?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(is_wal))
        .collect();
    if files.is_empty() {
        return Ok(None);
    }
    files.sort();
    let mut tags = tags.to_vec();
    tags.extend([
        "unyo-type=WAL".to_string(),
        format!("unyo-wal={}", source.name),
    ]);
    let made = repo.backup(&files, &[], &tags, None)?;
    if let Some(copy) = copy {
        copy.copy_from(repo, &made.snapshot)?;
    }
    for f in &files {
        std::fs::remove_file(f).map_err(|e| format!("{}: {e}", f.display()))?;
    }
    let last = files
        .iter()
        .filter_map(|f| f.file_name()?.to_str())
        .filter(|n| n.len() == 24)
        .max()
        .map(String::from);
    Ok(Some(Shipped {
        made,
        files: files.len(),
        last,
    }))
}

/// The time a snapshot was taken.
fn taken(s: &Snapshot) -> Result<Timestamp, String> {
    s.time
        .parse()
        .map_err(|e| format!("snapshot {} time {}: {e}", s.short_id, s.time))
}

/// The next WAL segment's name (16 MiB segments: 256 a log file).
fn next_segment(name: &str) -> Option<String> {
    let tli = u32::from_str_radix(name.get(0..8)?, 16).ok()?;
    let log = u32::from_str_radix(name.get(8..16)?, 16).ok()?;
    let seg = u32::from_str_radix(name.get(16..24)?, 16).ok()?;
    let (log, seg) = if seg >= 0xFF {
        (log.checked_add(1)?, 0)
    } else {
        (log, seg + 1)
    };
    Some(format!("{tli:08X}{log:08X}{seg:08X}"))
}

/// The first segment a base backup needs, from its `backup_label`.
fn start_segment(label: &str) -> Option<String> {
    let line = label
        .lines()
        .find(|l| l.starts_with("START WAL LOCATION:"))?;
    let file = line.split("(file ").nth(1)?.trim_end_matches(')');
    Some(file.trim().to_string())
}

/// The first segment missing between `start` and the newest in `have`, if one is.
pub fn missing_segment(start: &str, have: &std::collections::BTreeSet<String>) -> Option<String> {
    // Within the base backup's timeline: segments of a later one (after a promotion) follow
    // their history file, not this one's numbering.
    let timeline = start.get(..8)?;
    let last = have
        .iter()
        .filter(|n| n.len() == 24 && n.get(..8) == Some(timeline))
        .max()?;
    let mut s = start.to_string();
    while s.as_str() <= last.as_str() {
        if !have.contains(&s) {
            return Some(s);
        }
        s = next_segment(&s)?;
    }
    None
}

/// What a restore to a time needs to know.
pub struct ToTime<'a> {
    /// The plan.
    pub plan: &'a str,
    /// Its spec.
    pub spec: &'a BackupPlanSpec,
    /// The host's root.
    pub root: &'a Path,
    /// The source (none: the plan's only PostgreSQL source).
    pub source: Option<&'a str>,
    /// The time to recover to.
    pub at: Timestamp,
    /// The data directory to create, beneath the root.
    pub target: &'a str,
}

/// Restores the newest base backup before `at` into `target` with the archived WAL after it,
/// and sets it to recover to `at` and promote; returns what it did.
pub fn restore_to_time(r: &ToTime<'_>) -> Result<String, String> {
    // The path is written into the restored cluster's settings: plain characters only.
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-".contains(c);
    if !r.target.starts_with('/') || !r.target.chars().all(plain) {
        return Err(format!(
            "target {:?}: a data directory restored to a time must be an absolute path of letters, digits, '/', '.', '_' and '-'",
            r.target
        ));
    }
    let (source, pg) = pick_source(r.spec, r.source)?;
    let repo = super::backup::repository(r.root, &r.spec.repositories.primary);
    let plan_tag = format!("unyo-plan={}", r.plan);
    let bases = repo.snapshots(&[plan_tag.clone(), format!("unyo-pg={}", source.name)])?;
    let base = newest_before(&bases, r.at)?.ok_or_else(|| {
        format!(
            "no base backup of source {} was taken before {}",
            source.name, r.at
        )
    })?;
    let began = base
        .tag("unyo-pg-started")
        .and_then(|s| s.parse::<i64>().ok())
        .and_then(|s| Timestamp::from_second(s).ok())
        .map_or_else(|| taken(base), Ok)?;
    let wal = repo.snapshots(&[plan_tag, format!("unyo-wal={}", source.name)])?;
    let wal: Vec<&Snapshot> = wal
        .iter()
        .filter(|s| taken(s).is_ok_and(|t| t >= began))
        .collect();
    let reaches = wal.iter().filter_map(|s| taken(s).ok()).max();
    if reaches.is_none_or(|t| t < r.at) {
        return Err(format!(
            "the archived journal of source {} reaches only to {} — before {}; restore to an earlier time or wait for the next shipment",
            source.name,
            reaches.map_or("the base backup".to_string(), |t| t.to_string()),
            r.at
        ));
    }
    let target = on_host(r.root, r.target);
    let work = PathBuf::from(format!("{}.unyo-restore", target.display()));
    let result = lay_out(&repo, base, &wal, &target, &work, source);
    let _ = std::fs::remove_dir_all(&work);
    let (segments, first, last) = result?;
    configure(&target, pg, r.at)?;
    Ok(format!(
        "restored base backup {} (taken {}) and {segments} WAL segment(s) {first}…{last} into {}; started, PostgreSQL replays the journal to {} and promotes",
        base.short_id, base.time, r.target, r.at
    ))
}

/// The PostgreSQL source named (none: the plan's only one).
pub(crate) fn pick_source<'a>(
    spec: &'a BackupPlanSpec,
    name: Option<&str>,
) -> Result<(&'a BackupSource, &'a PostgresSource), String> {
    let all: Vec<_> = sources(spec).collect();
    match name {
        Some(n) => all
            .into_iter()
            .find(|(s, _)| s.name == n)
            .ok_or_else(|| format!("the plan has no PostgreSQL source {n}")),
        None if all.len() == 1 => Ok(all[0]),
        None if all.is_empty() => {
            Err("the plan has no PostgreSQL source to restore to a time".into())
        }
        None => Err("the plan has several PostgreSQL sources; name one".into()),
    }
}

/// The newest snapshot taken before `at`.
fn newest_before(snaps: &[Snapshot], at: Timestamp) -> Result<Option<&Snapshot>, String> {
    let mut best = None;
    for s in snaps {
        if taken(s)? < at {
            best = Some(s);
        }
    }
    Ok(best)
}

/// Restores the base backup into `target` (which must not exist) and the WAL into
/// `target/unyo-wal`; checks the journal has no gap. Returns the segments' count, first, last.
fn lay_out(
    repo: &Restic,
    base: &Snapshot,
    wal: &[&Snapshot],
    target: &Path,
    work: &Path,
    source: &BackupSource,
) -> Result<(usize, String, String), String> {
    if target.exists() {
        return Err(format!(
            "{} exists; a restore to a time creates a new data directory",
            target.display()
        ));
    }
    let _ = std::fs::remove_dir_all(work);
    repo.restore(&base.short_id, &work.join("base"), None)?;
    let data = find_file(&work.join("base"), "backup_label")
        .and_then(|l| l.parent().map(Path::to_path_buf))
        .ok_or("the base backup holds no backup_label")?;
    let label = std::fs::read_to_string(data.join("backup_label")).map_err(|e| e.to_string())?;
    let start = start_segment(&label).ok_or("backup_label names no start segment")?;
    std::fs::rename(&data, target).map_err(|e| format!("{}: {e}", target.display()))?;
    let archive = target.join("unyo-wal");
    std::fs::create_dir_all(&archive).map_err(|e| e.to_string())?;
    for (i, s) in wal.iter().enumerate() {
        let dir = work.join(format!("wal-{i}"));
        repo.restore(&s.short_id, &dir, None)?;
        collect_wal(&dir, &archive)?;
    }
    let have: std::collections::BTreeSet<String> = std::fs::read_dir(&archive)
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    if let Some(gap) = missing_segment(&start, &have) {
        return Err(format!(
            "WAL segment {gap} of source {} is missing from the archive: the journal cannot be replayed past it",
            source.name
        ));
    }
    let segments: Vec<&String> = have
        .iter()
        .filter(|n| n.len() == 24 && n.as_str() >= start.as_str())
        .collect();
    let last = segments.last().map_or(start.clone(), |s| s.to_string());
    Ok((segments.len(), start, last))
}

/// The first file named `name` beneath `dir`.
fn find_file(dir: &Path, name: &str) -> Option<PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let p = entry.path();
        if p.file_name().is_some_and(|n| n == name) {
            return Some(p);
        }
        if p.is_dir()
            && let Some(found) = find_file(&p, name)
        {
            return Some(found);
        }
    }
    None
}

/// Moves every WAL file beneath `dir` into `archive`.
fn collect_wal(dir: &Path, archive: &Path) -> Result<(), String> {
    for entry in std::fs::read_dir(dir).map_err(|e| e.to_string())?.flatten() {
        let p = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if p.is_dir() {
            collect_wal(&p, archive)?;
        } else if is_wal(&name) {
            std::fs::rename(&p, archive.join(&name)).map_err(|e| format!("{name}: {e}"))?;
        }
    }
    Ok(())
}

/// Makes the restored data directory recover to `at` from its archive and promote, never
/// archive into the live cluster's spool, and belong to the source's OS user.
fn configure(target: &Path, pg: &PostgresSource, at: Timestamp) -> Result<(), String> {
    use std::io::Write;
    let lines = unyo_crds::backup::recovery_settings(&target.display().to_string(), at);
    let settings = format!(
        "\n# unyo backup restore --to-time {at}\n{}\n",
        lines.join("\n")
    );
    let conf = target.join("postgresql.auto.conf");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&conf)
        .map_err(|e| format!("{}: {e}", conf.display()))?;
    f.write_all(settings.as_bytes())
        .map_err(|e| e.to_string())?;
    for stale in ["postmaster.pid", "standby.signal"] {
        let _ = std::fs::remove_file(target.join(stale));
    }
    std::fs::write(target.join("recovery.signal"), b"").map_err(|e| e.to_string())?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(target, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| e.to_string())?;
    let (uid, gid) = ids(pg.os_user())?;
    chown_tree(target, uid, gid)
}

#[cfg(test)]
mod tests;

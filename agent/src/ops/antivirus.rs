//! Virus scans with ClamAV from Debian: signature updates from the configured source into the
//! agent's own database directory, a `clamscan` run over the schedule's paths with its
//! exclusions, the actions on each detection (quarantine with metadata, rename, delete), and the
//! engine and signature versions and times for status.

use std::path::{Path, PathBuf};
use std::process::Command;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde::Serialize;
use unyo_crds::backup::RunResult;
use unyo_crds::virusscan::{DetectionAction, HostAntivirus, ScanRun, VirusScanScheduleSpec};

use super::confined::Confined;

/// Database files ClamAV loads (official containers and unofficial signature files).
const DB_EXTENSIONS: &[&str] = &[
    "cvd", "cld", "cud", "hdb", "hsb", "mdb", "msb", "ndb", "ldb", "cdb", "ign2", "fp", "sfp",
    "yar", "yara", "pdb", "wdb", "ftm", "cfg", "idb",
];

fn is_db_file(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| DB_EXTENSIONS.contains(&e))
}

/// The most detections one host reports in its status.
const MAX_DETECTIONS: usize = unyo_crds::limits::DETECTIONS;

/// A detection found by a scan and what was done about it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Found {
    /// The file where it was found.
    pub path: String,
    /// The signature ClamAV reported.
    pub signature: String,
    /// Each action taken, with its outcome (e.g. `Quarantine: /var/lib/unyo/quarantine/…`).
    pub actions: Vec<String>,
}

/// The outcome of one scan.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The run for status.
    pub run: ScanRun,
    /// The detections, with actions taken.
    pub found: Vec<Found>,
    /// Engine version (`clamscan --version`).
    pub engine_version: Option<String>,
}

/// Copies signature files from `source` into `db` (only new or changed ones); returns how many.
pub fn update_from_directory(source: &Path, db: &Path) -> Result<usize, String> {
    std::fs::create_dir_all(db).map_err(|e| format!("{}: {e}", db.display()))?;
    let entries = std::fs::read_dir(source)
        .map_err(|e| format!("signature source {}: {e}", source.display()))?;
    let mut copied = 0;
    for entry in entries.flatten() {
        let from = entry.path();
        if !from.is_file() || !is_db_file(&from) {
            continue;
        }
        let to = db.join(entry.file_name());
        let changed = match (std::fs::read(&from), std::fs::read(&to)) {
            (Ok(a), Ok(b)) => a != b,
            (Ok(_), Err(_)) => true,
            (Err(e), _) => return Err(format!("{}: {e}", from.display())),
        };
        if changed {
            let tmp = db.join(format!(".{}.tmp", entry.file_name().to_string_lossy()));
            std::fs::copy(&from, &tmp).map_err(|e| format!("{}: {e}", from.display()))?;
            std::fs::rename(&tmp, &to).map_err(|e| format!("{}: {e}", to.display()))?;
            copied += 1;
        }
    }
    Ok(copied)
}

/// Downloads the signature files a mirror lists into `db`: the mirror serves `index.txt`, one
/// file name a line (e.g. `main.cvd`, `daily.cvd`, `local.hdb`), and each file beside it; only
/// database files are taken, only changed ones written. Returns how many changed.
pub async fn update_from_mirror(
    client: &reqwest::Client,
    url: &str,
    db: &Path,
) -> Result<usize, String> {
    std::fs::create_dir_all(db).map_err(|e| format!("{}: {e}", db.display()))?;
    let base = url.trim_end_matches('/');
    let get = |u: String| async move {
        let resp = client
            .get(&u)
            .send()
            .await
            .map_err(|e| format!("GET {u}: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("GET {u}: {}", resp.status()));
        }
        resp.bytes().await.map_err(|e| format!("GET {u}: {e}"))
    };
    let index = get(format!("{base}/index.txt")).await?;
    let mut changed = 0;
    for name in String::from_utf8_lossy(&index).lines().map(str::trim) {
        if name.is_empty() || name.starts_with('#') {
            continue;
        }
        if name.contains('/') || !is_db_file(Path::new(name)) {
            return Err(format!(
                "mirror index lists {name:?}, which is not a signature file name"
            ));
        }
        let bytes = get(format!("{base}/{name}")).await?;
        let to = db.join(name);
        if std::fs::read(&to).ok().as_deref() != Some(&bytes[..]) {
            let tmp = db.join(format!(".{name}.tmp"));
            std::fs::write(&tmp, &bytes).map_err(|e| format!("{}: {e}", tmp.display()))?;
            std::fs::rename(&tmp, &to).map_err(|e| format!("{}: {e}", to.display()))?;
            changed += 1;
        }
    }
    Ok(changed)
}

/// The signature version and time of the database in `db`: for official containers the
/// version and build time `sigtool --info` reports; for unofficial signature files their
/// modification time. The time is that of the newest signature file.
pub fn signature_state(db: &Path) -> (Option<String>, Option<Timestamp>) {
    let Ok(entries) = std::fs::read_dir(db) else {
        return (None, None);
    };
    let mut newest: Option<Timestamp> = None;
    let mut versions = Vec::new();
    for entry in entries.flatten() {
        let p = entry.path();
        if !is_db_file(&p) {
            continue;
        }
        let mtime = entry
            .metadata()
            .ok()
            .and_then(|m| m.modified().ok())
            .and_then(|t| Timestamp::try_from(t).ok());
        let mut when = mtime;
        let name = entry.file_name().to_string_lossy().into_owned();
        if matches!(
            p.extension().and_then(|e| e.to_str()),
            Some("cvd" | "cld" | "cud")
        ) && let Ok(out) = Command::new("sigtool").arg("--info").arg(&p).output()
        {
            let text = String::from_utf8_lossy(&out.stdout);
            let field = |k: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(k).map(|v| v.trim().to_string()))
            };
            if let Some(v) = field("Version:") {
                versions.push(format!("{}:{v}", name.split('.').next().unwrap_or(&name)));
            }
            // "Build time: 24 Nov 2026 08:12 +0000"
            if let Some(b) = field("Build time:")
                && let Ok(t) = jiff::fmt::strtime::parse("%d %b %Y %H:%M %z", &b)
                    .and_then(|t| t.to_timestamp())
            {
                when = Some(t);
            }
        } else {
            versions.push(name);
        }
        if let Some(w) = when {
            newest = Some(newest.map_or(w, |n: Timestamp| n.max(w)));
        }
    }
    versions.sort();
    let version = (!versions.is_empty()).then(|| versions.join(","));
    (version, newest)
}

/// `clamscan --version`, e.g. `ClamAV 1.4.6`.
pub fn engine_version() -> Option<String> {
    let out = Command::new("clamscan").arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split('/').next().map(|s| s.trim().to_string())
}

/// Parses clamscan's output: the `path: Signature FOUND` lines and `Scanned files:`. Only
/// meaningful for files whose names hold no line break: see [`scan`], which never trusts a
/// reported path it did not list itself.
pub fn parse_clamscan(stdout: &str) -> (Vec<(String, String)>, u64) {
    let mut found = Vec::new();
    let mut files = 0;
    for line in stdout.lines() {
        if let Some(rest) = line.strip_suffix(" FOUND")
            && let Some((path, sig)) = rest.rsplit_once(": ")
        {
            found.push((path.to_string(), sig.to_string()));
        } else if let Some(n) = line.strip_prefix("Scanned files:") {
            files = n.trim().parse().unwrap_or(0);
        }
    }
    (found, files)
}

/// An exclusion as a regular expression over host paths: a path is excluded with everything
/// under it; `*` matches within a path component.
fn exclusion_regex(pattern: &str) -> String {
    let escaped: String = pattern
        .chars()
        .map(|c| match c {
            '*' => "[^/]*".to_string(),
            c if r"\.+?()|[]{}^$".contains(c) => format!("\\{c}"),
            c => c.to_string(),
        })
        .collect();
    format!("^{escaped}(/|$)")
}

/// A file the agent listed for a scan: beneath which scan root, and the path relative to it.
#[derive(Clone, Debug)]
struct Listed {
    base: PathBuf,
    relative: PathBuf,
    host_path: String,
}

/// Whether a name can stand on one line of clamscan's file list and output unambiguously.
fn plain_name(p: &Path) -> Option<&str> {
    p.to_str().filter(|s| !s.chars().any(char::is_control))
}

/// The regular files beneath each scan root (not following symbolic links, not entering
/// excluded paths), walked by the agent itself.
fn list_files(roots: &[(PathBuf, String)], excluded: &[regex::Regex]) -> Vec<Listed> {
    let mut out = Vec::new();
    for (base, host) in roots {
        let mut stack = vec![PathBuf::new()];
        while let Some(rel) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(base.join(&rel)) else {
                continue;
            };
            for e in entries.flatten() {
                let (Ok(kind), relative) = (e.file_type(), rel.join(e.file_name())) else {
                    continue;
                };
                let host_path = Path::new(host)
                    .join(&relative)
                    .to_string_lossy()
                    .into_owned();
                if excluded.iter().any(|r| r.is_match(&host_path)) {
                    continue;
                }
                if kind.is_dir() {
                    stack.push(relative);
                } else if kind.is_file() {
                    out.push(Listed {
                        base: base.clone(),
                        relative,
                        host_path,
                    });
                }
            }
        }
    }
    out
}

/// Runs clamscan over `files` and returns the detections as (index into `files`, signature)
/// and how many files it scanned. Names that fit a line go in a file list; any other name is
/// reached through a numbered link in a directory of the agent's own, so no file name can make
/// an output line name another file.
fn clamscan(
    base_args: &[String],
    files: &[Listed],
    work: &Path,
) -> Result<(Vec<(usize, String)>, u64), String> {
    let _ = std::fs::remove_dir_all(work);
    std::fs::create_dir_all(work).map_err(|e| format!("{}: {e}", work.display()))?;
    let mut plain: std::collections::HashMap<String, usize> = Default::default();
    let mut list = String::new();
    let odd = work.join("odd");
    for (i, f) in files.iter().enumerate() {
        let full = f.base.join(&f.relative);
        match plain_name(&full) {
            Some(name) => {
                list.push_str(name);
                list.push('\n');
                plain.insert(name.to_string(), i);
            }
            None => {
                std::fs::create_dir_all(&odd).map_err(|e| e.to_string())?;
                std::os::unix::fs::symlink(&full, odd.join(i.to_string()))
                    .map_err(|e| format!("linking an odd file name: {e}"))?;
            }
        }
    }
    let list_file = work.join("files");
    std::fs::write(&list_file, list).map_err(|e| format!("{}: {e}", list_file.display()))?;
    let mut hits = Vec::new();
    let mut scanned = 0;
    if !plain.is_empty() {
        let mut args = base_args.to_vec();
        args.push(format!("--file-list={}", list_file.display()));
        let (found, n) = run_clamscan(&args)?;
        scanned += n;
        for (path, sig) in found {
            match plain.get(&path) {
                Some(&i) => hits.push((i, sig)),
                None => {
                    tracing::warn!(path = %path.escape_debug(), "clamscan reported a path the agent did not list; ignored")
                }
            }
        }
    }
    if odd.exists() {
        let mut args = base_args.to_vec();
        args.extend(["-r".into(), "--follow-file-symlinks=2".into(), "--".into()]);
        args.push(odd.display().to_string());
        let (found, n) = run_clamscan(&args)?;
        scanned += n;
        for (path, sig) in found {
            let index = path
                .strip_prefix(&format!("{}/", odd.display()))
                .and_then(|n| n.parse::<usize>().ok())
                .filter(|i| *i < files.len());
            match index {
                Some(i) => hits.push((i, sig)),
                None => {
                    tracing::warn!(path = %path.escape_debug(), "clamscan reported a path the agent did not link; ignored")
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(work);
    Ok((hits, scanned))
}

fn run_clamscan(args: &[String]) -> Result<(Vec<(String, String)>, u64), String> {
    let out = Command::new("clamscan")
        .args(args)
        .output()
        .map_err(|e| format!("running clamscan (Debian package clamav): {e}"))?;
    // clamscan exits 0 (clean), 1 (found) or 2 (error).
    if out.status.code() == Some(2) || out.status.code().is_none() {
        return Err(format!(
            "clamscan failed: {}",
            String::from_utf8_lossy(&out.stderr)
                .trim()
                .lines()
                .last()
                .unwrap_or("")
        ));
    }
    Ok(parse_clamscan(&String::from_utf8_lossy(&out.stdout)))
}

/// Applies the actions to one infected file, in order, never following a symbolic link out of
/// its scan root; returns what was done.
fn apply_actions(
    spec: &VirusScanScheduleSpec,
    root: &Path,
    file: &Listed,
    signature: &str,
    now: Timestamp,
) -> Vec<String> {
    let mut done = Vec::new();
    let mut opened = Confined::open(&file.base, &file.relative);
    let mut shown = file.host_path.clone();
    for action in &spec.actions {
        let result = match (action, opened.as_mut()) {
            (DetectionAction::Notify, _) => Ok("Notify: reported".to_string()),
            (_, Err(e)) => Err(std::io::Error::new(e.kind(), e.to_string())),
            (DetectionAction::Rename, Ok(f)) => {
                let suffix = spec
                    .rename_suffix
                    .clone()
                    .unwrap_or_else(|| ".infected".into());
                f.rename_with_suffix(&suffix).map(|_| {
                    shown.push_str(&suffix);
                    format!("Rename: {shown}")
                })
            }
            (DetectionAction::Quarantine, Ok(_)) => {
                let dir = spec.quarantine_dir.clone().unwrap_or_default();
                let taken = std::mem::replace(
                    &mut opened,
                    Err(std::io::Error::other("moved to quarantine")),
                );
                quarantine(taken, root, &dir, &file.host_path, signature, now)
            }
            (DetectionAction::Delete, Ok(_)) => {
                let taken = std::mem::replace(&mut opened, Err(std::io::Error::other("deleted")));
                taken
                    .and_then(Confined::delete)
                    .map(|_| format!("Delete: {shown}"))
            }
        };
        done.push(match result {
            Ok(s) => s,
            Err(e) => format!("{action:?} failed: {e}"),
        });
    }
    done
}

/// Moves the opened file into the quarantine directory (a host path beneath `root`) under a
/// unique name, with a `.json` beside it keeping the original path, signature, time, mode,
/// owner and modification time.
fn quarantine(
    file: std::io::Result<Confined>,
    root: &Path,
    dir: &str,
    host_path: &str,
    signature: &str,
    now: Timestamp,
) -> std::io::Result<String> {
    let file = file?;
    let qdir = root.join(dir.trim_start_matches('/'));
    let base = Path::new(host_path)
        .file_name()
        .map(|n| n.to_string_lossy().replace(|c: char| c.is_control(), "_"))
        .unwrap_or_else(|| "file".into());
    let name = format!("{}-{base}", now.as_millisecond());
    let record = serde_json::json!({
        "originalPath": host_path,
        "signature": signature,
        "quarantinedAt": now.to_string(),
        "mode": format!("{:o}", file.stat.st_mode & 0o7777),
        "uid": file.stat.st_uid,
        "gid": file.stat.st_gid,
        "size": file.stat.st_size,
        "modified": file.stat.st_mtime,
    });
    file.move_into(&qdir, &name)?;
    let to = qdir.join(&name);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o400))?;
    std::fs::write(
        qdir.join(format!("{name}.json")),
        serde_json::to_vec_pretty(&record).unwrap_or_default(),
    )?;
    Ok(format!("Quarantine: {dir}/{name}"))
}

/// Runs one scan of `spec` on the host beneath `root`, with the database in `db`: the agent
/// lists the regular files itself, clamscan reads them, and only files the agent listed are
/// acted on.
pub fn scan(schedule: &str, spec: &VirusScanScheduleSpec, root: &Path, db: &Path) -> Outcome {
    let started = Timestamp::now();
    let fail = |message: String| Outcome {
        run: ScanRun {
            schedule: schedule.to_string(),
            started_at: Time(started),
            finished_at: Some(Time(Timestamp::now())),
            files_scanned: 0,
            detections: 0,
            result: RunResult::Failed,
            message: Some(message),
        },
        found: vec![],
        engine_version: engine_version(),
    };
    let roots: Vec<(PathBuf, String)> = spec
        .paths
        .iter()
        .filter_map(|p| crate::hostpolicy::normal(p))
        .map(|p| {
            (
                root.join(p.strip_prefix("/").unwrap_or(&p)),
                p.display().to_string(),
            )
        })
        .filter(|(full, _)| std::fs::symlink_metadata(full).is_ok_and(|m| m.is_dir()))
        .collect();
    if roots.is_empty() {
        return fail(
            "none of the paths is a directory on this host (symbolic links are not followed)"
                .into(),
        );
    }
    let excluded: Vec<regex::Regex> = spec
        .exclusions
        .iter()
        .filter_map(|e| regex::Regex::new(&exclusion_regex(e)).ok())
        .collect();
    let files = list_files(&roots, &excluded);
    let mut args = vec![
        "-d".to_string(),
        db.display().to_string(),
        "--infected".into(),
        "--stdout".into(),
    ];
    args.push(format!(
        "--detect-pua={}",
        if spec.detect_spyware { "yes" } else { "no" }
    ));
    let work = db.with_file_name(format!("scan-{schedule}"));
    let (hits, scanned) = match clamscan(&args, &files, &work) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let now = Timestamp::now();
    let found: Vec<Found> = hits
        .into_iter()
        .map(|(i, signature)| Found {
            path: files[i].host_path.clone(),
            actions: apply_actions(spec, root, &files[i], &signature, now),
            signature,
        })
        .collect();
    Outcome {
        run: ScanRun {
            schedule: schedule.to_string(),
            started_at: Time(started),
            finished_at: Some(Time(Timestamp::now())),
            files_scanned: scanned,
            detections: u32::try_from(found.len()).unwrap_or(u32::MAX),
            result: RunResult::Succeeded,
            message: Some(format!(
                "{scanned} files scanned, {} detection(s)",
                found.len()
            )),
        },
        found,
        engine_version: engine_version(),
    }
}

/// Whether a process named `clamd` runs (the resident scanner).
pub fn resident_running() -> bool {
    let mut sys = sysinfo::System::new();
    sys.refresh_processes_specifics(
        sysinfo::ProcessesToUpdate::All,
        true,
        sysinfo::ProcessRefreshKind::nothing(),
    );
    sys.processes()
        .values()
        .any(|p| p.name().to_string_lossy() == "clamd")
}

/// The antivirus status of the host after `outcome`.
pub fn host_status(outcome: &Outcome, db: &Path, resident: bool, host: &str) -> HostAntivirus {
    let (version, time) = signature_state(db);
    HostAntivirus {
        engine_version: outcome.engine_version.clone(),
        signature_version: version,
        signature_time: time.map(Time),
        resident_running: Some(resident),
        last_scan: Some(outcome.run.clone()),
        // The newest scan's detections, at most MAX_DETECTIONS (the run's count says how many).
        detections: outcome
            .found
            .iter()
            .take(MAX_DETECTIONS)
            .map(|f| unyo_crds::virusscan::Detection {
                host: host.to_string(),
                path: f.path.clone(),
                signature: f.signature.clone(),
                actions: f.actions.clone(),
                at: outcome.run.started_at.clone(),
            })
            .collect(),
    }
}

/// ClamAV, with its signature database in the agent's state directory (`<state-dir>/clamav`).
pub struct ClamAv {
    /// The signature database.
    pub db: PathBuf,
}

impl super::scans::Engine for ClamAv {
    fn scan(
        &self,
        job: &super::scans::ScanJob,
        host: &crate::facts::Collector,
        server: &str,
    ) -> HostAntivirus {
        let signatures = &job.spec.signatures;
        let (from, updated) = match (&signatures.source_directory, &signatures.mirror_url) {
            (Some(src), _) => (src, update_from_directory(&host.path(src), &self.db)),
            (None, Some(url)) => {
                // The host policy allowed this mirror; a redirect could lead anywhere else.
                let client = reqwest::Client::builder()
                    .timeout(std::time::Duration::from_secs(120))
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .unwrap_or_default();
                let fetched = update_from_mirror(&client, url, &self.db);
                (url, tokio::runtime::Handle::current().block_on(fetched))
            }
            (None, None) => (&job.name, Ok(0)),
        };
        match updated {
            Ok(0) => {}
            Ok(n) => tracing::info!(source = %from, files = n, "signatures updated"),
            Err(e) => tracing::warn!(source = %from, error = %e, "signature update failed"),
        }
        let outcome = scan(&job.name, &job.spec, &host.path("/"), &self.db);
        let resident = !job.spec.resident_check || resident_running();
        host_status(&outcome, &self.db, resident, server)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(actions: Vec<DetectionAction>) -> VirusScanScheduleSpec {
        serde_json::from_value(serde_json::json!({
            "schedule": {"calendar": "c", "at": "12:30"},
            "paths": ["/srv", "/home"],
            "exclusions": ["/srv/backup"],
            "signatures": {"maxAge": "24h"},
            "quarantineDir": "/var/lib/unyo/quarantine",
            "actions": actions,
        }))
        .unwrap()
    }

    /// A host tree with two copies of a test virus (one excluded) and a database that knows it.
    fn host(name: &str) -> (PathBuf, PathBuf) {
        let dir = std::env::temp_dir().join(format!("unyo-av-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let root = dir.join("root");
        for d in ["srv/www", "srv/backup", "home/a", "source"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        let body = b"unyo test virus body, not a real one\n";
        std::fs::write(root.join("srv/www/evil.php"), body).unwrap();
        std::fs::write(root.join("srv/backup/evil.php"), body).unwrap();
        std::fs::write(root.join("home/a/fine.txt"), b"hello\n").unwrap();
        let md5 = Command::new("sigtool")
            .arg("--md5")
            .arg(root.join("srv/www/evil.php"))
            .output()
            .expect("sigtool (Debian package clamav)");
        let line = String::from_utf8_lossy(&md5.stdout).trim().to_string();
        let (hash_size, _) = line.rsplit_once(':').unwrap();
        std::fs::write(
            root.join("source/unyo.hdb"),
            format!("{hash_size}:Unyo.Test.Virus\n"),
        )
        .unwrap();
        (root, dir.join("db"))
    }

    #[test]
    fn scans_detect_and_quarantine_with_real_clamav() {
        let (root, db) = host("quarantine");
        assert_eq!(update_from_directory(&root.join("source"), &db).unwrap(), 1);
        assert_eq!(
            update_from_directory(&root.join("source"), &db).unwrap(),
            0,
            "unchanged"
        );
        let s = spec(vec![DetectionAction::Quarantine, DetectionAction::Notify]);
        let out = scan("daily", &s, &root, &db);
        assert_eq!(
            out.run.result,
            RunResult::Succeeded,
            "{:?}",
            out.run.message
        );
        assert_eq!(
            out.found.len(),
            1,
            "the excluded copy is not scanned: {:?}",
            out.found
        );
        assert_eq!(out.found[0].path, "/srv/www/evil.php");
        assert_eq!(out.found[0].signature, "Unyo.Test.Virus.UNOFFICIAL");
        assert!(out.run.files_scanned >= 2);
        assert!(!root.join("srv/www/evil.php").exists());
        assert!(root.join("srv/backup/evil.php").exists());
        let q: Vec<PathBuf> = std::fs::read_dir(root.join("var/lib/unyo/quarantine"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        let meta = q
            .iter()
            .find(|p| p.extension().is_some_and(|e| e == "json"))
            .unwrap();
        let m: serde_json::Value = serde_json::from_slice(&std::fs::read(meta).unwrap()).unwrap();
        assert_eq!(m["originalPath"], "/srv/www/evil.php");
        assert_eq!(m["signature"], "Unyo.Test.Virus.UNOFFICIAL");
        assert!(out.found[0].actions[0].starts_with("Quarantine: "));
        assert_eq!(out.found[0].actions[1], "Notify: reported");
        let status = host_status(&out, &db, false, "db01");
        assert_eq!(status.signature_version.as_deref(), Some("unyo.hdb"));
        assert!(status.signature_time.is_some());
        assert!(status.engine_version.unwrap().starts_with("ClamAV "));
    }

    #[tokio::test]
    async fn signatures_from_an_http_mirror_are_loaded() {
        let (root, db) = host("mirror");
        // A real HTTP server (Python's http.server) serving the index and the signature file.
        let mirror = root.join("source");
        std::fs::write(mirror.join("index.txt"), "# signatures\nunyo.hdb\n").unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut cmd = Command::new("python3");
        cmd.args([
            "-m",
            "http.server",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--directory",
        ])
        .arg(&mirror);
        let _server = unyo_tests::Running::spawn(cmd, "mirror").unwrap();
        let url = format!("http://127.0.0.1:{port}/");
        let client = reqwest::Client::new();
        let mut changed = Err(String::new());
        for _ in 0..50 {
            changed = update_from_mirror(&client, &url, &db).await;
            if changed.is_ok() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(changed, Ok(1));
        assert_eq!(
            update_from_mirror(&client, &url, &db).await,
            Ok(0),
            "unchanged"
        );
        // The engine really loads what came from the mirror: it detects the test file.
        let out = scan("daily", &spec(vec![DetectionAction::Notify]), &root, &db);
        assert_eq!(out.found.len(), 1, "{:?}", out.run);
        // A mirror listing something that is not a signature file is refused.
        std::fs::write(mirror.join("index.txt"), "../../etc/passwd\n").unwrap();
        let err = update_from_mirror(&client, &url, &db).await.unwrap_err();
        assert!(err.contains("not a signature file name"), "{err}");
    }

    #[test]
    fn rename_then_delete_and_failures() {
        let (root, db) = host("rename");
        update_from_directory(&root.join("source"), &db).unwrap();
        let mut s = spec(vec![DetectionAction::Rename]);
        s.rename_suffix = Some(".virus".into());
        let out = scan("daily", &s, &root, &db);
        assert!(root.join("srv/www/evil.php.virus").exists());
        assert!(out.found[0].actions[0].ends_with("evil.php.virus"));
        // A second scan finds the renamed file again; this time it is deleted.
        let s = spec(vec![DetectionAction::Delete]);
        let out = scan("daily", &s, &root, &db);
        assert_eq!(out.found[0].path, "/srv/www/evil.php.virus");
        assert!(!root.join("srv/www/evil.php.virus").exists());
        // Nothing to scan, or no database: a failed run with the reason.
        let mut s = spec(vec![]);
        s.paths = vec!["/nowhere".into()];
        let out = scan("daily", &s, &root, &db);
        assert_eq!(out.run.result, RunResult::Failed);
        let out = scan("daily", &spec(vec![]), &root, &root.join("no-db"));
        assert_eq!(out.run.result, RunResult::Failed);
        assert!(out.run.message.unwrap().contains("clamscan failed"));
    }

    #[test]
    fn hostile_names_and_links_never_touch_other_files() {
        let (root, db) = host("hostile");
        update_from_directory(&root.join("source"), &db).unwrap();
        let body = std::fs::read(root.join("srv/www/evil.php")).unwrap();
        // The victims: a file outside the scanned tree and one inside it, both clean.
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/passwd"), "root:x:0:0\n").unwrap();
        std::fs::write(root.join("srv/www/index.html"), "<html>\n").unwrap();
        // An infected file whose path, printed by clamscan, reads as `<...>/x` and then a line
        // naming each victim.
        for victim in [root.join("etc/passwd"), root.join("srv/www/index.html")] {
            let dir = root
                .join("srv/www")
                .join(format!("x\n{}", victim.parent().unwrap().display()));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(victim.file_name().unwrap()), &body).unwrap();
        }
        // A link inside the tree to an infected file outside it.
        std::fs::create_dir_all(root.join("outside")).unwrap();
        std::fs::write(root.join("outside/keep.php"), &body).unwrap();
        std::os::unix::fs::symlink(root.join("outside/keep.php"), root.join("srv/www/link.php"))
            .unwrap();
        let out = scan("daily", &spec(vec![DetectionAction::Delete]), &root, &db);
        assert_eq!(
            out.run.result,
            RunResult::Succeeded,
            "{:?}",
            out.run.message
        );
        assert_eq!(
            std::fs::read_to_string(root.join("etc/passwd")).unwrap(),
            "root:x:0:0\n"
        );
        assert_eq!(
            std::fs::read_to_string(root.join("srv/www/index.html")).unwrap(),
            "<html>\n"
        );
        assert!(
            root.join("outside/keep.php").exists(),
            "a link was followed out of the tree"
        );
        assert!(std::fs::symlink_metadata(root.join("srv/www/link.php")).is_ok());
        // The hostile files themselves are found under their true names and deleted.
        let mut paths: Vec<&str> = out.found.iter().map(|f| f.path.as_str()).collect();
        paths.sort();
        assert_eq!(paths.len(), 3, "{paths:?}");
        assert!(
            paths.iter().filter(|p| p.contains("/x\n")).count() == 2,
            "{paths:?}"
        );
        assert!(
            out.found
                .iter()
                .all(|f| f.actions[0].starts_with("Delete: ")),
            "{:?}",
            out.found
        );
    }

    #[test]
    fn clamscan_output_and_exclusions() {
        let (found, files) = parse_clamscan(
            "/srv/a: Eicar-Signature FOUND\n/srv/b c: X.Y.UNOFFICIAL FOUND\n\n----------- SCAN SUMMARY -----------\nScanned files: 7\n",
        );
        assert_eq!(
            found,
            [
                ("/srv/a".into(), "Eicar-Signature".into()),
                ("/srv/b c".into(), "X.Y.UNOFFICIAL".into())
            ]
        );
        assert_eq!(files, 7);
        assert_eq!(exclusion_regex("/srv/backup"), "^/srv/backup(/|$)");
        assert_eq!(exclusion_regex("/var/*.log"), r"^/var/[^/]*\.log(/|$)");
    }
}

//! Patches: the host's available updates (a scan, which never changes the host), the state of
//! each patch under every PatchBaseline selecting the server, and — for a baseline with
//! operation Install, only while its maintenance window is open and only after a clean scan —
//! the install of the approved missing patches, one version at a time, through the host's
//! [`Source`]: apt on Linux, the Windows Update Agent on Windows.
//!
//! What is approved is the controller's judgement, read from the baseline's
//! `status.candidates` (judgement Apply): it alone sees the staging servers' evidence.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use unyo_crds::calendar::OperationCalendarSpec;
use unyo_crds::patch::{
    AvailableUpdate, HostPatch, HostPatchState, Judgement, PatchBaselineSpec, PatchCandidate,
    PatchOperation, PatchScan, PatchState, RebootPolicy, RejectedAction,
};
use unyo_crds::patching::{check_window, counts, is_rejected, version_cmp};

use crate::report::Reporter;

/// The Server annotation that asks for a patch scan now; a new value runs one.
pub use unyo_crds::names::annotations::PATCH_SCAN_NOW;

/// Where this host's patches come from and how they go in: apt on Linux, the Windows Update
/// Agent on Windows. Every method blocks (the agent calls them on blocking threads).
pub trait Source: Send + Sync + 'static {
    /// A scan: refreshes what the sources offer, then lists the available updates, what is
    /// installed (with install times) and whether a reboot is pending. Never changes what is
    /// installed; a failure is in `scan.succeeded` and `scan.message`.
    fn scan(&self) -> HostPackages;
    /// What is installed and on offer now, without refreshing the sources (after installs).
    fn reread(&self) -> HostPackages;
    /// Installs `package` at `version` (never one of `blocked`, each `package=version`); a
    /// sentence on what was done, or the source's error.
    fn install(&self, package: &str, version: &str, blocked: &[String]) -> Result<String, String>;
    /// Asks the host to restart for installed patches (in about a minute); what it did, or
    /// why it did not.
    fn reboot(&self) -> Result<String, String>;
}

/// A PatchBaseline selecting this host, with what the controller approved and its window's
/// calendar.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct PatchJob {
    /// The PatchBaseline.
    pub name: String,
    /// Its spec.
    pub spec: PatchBaselineSpec,
    /// Its candidates judged Apply.
    pub approved: Vec<PatchCandidate>,
    /// The OperationCalendar its maintenance window names, when it exists.
    pub calendar: Option<OperationCalendarSpec>,
}

/// What the host has: the scan plus installed versions and their install times.
#[derive(Clone, Debug, Default)]
pub struct HostPackages {
    /// The last scan.
    pub scan: PatchScan,
    /// Installed package → version.
    pub installed: BTreeMap<String, String>,
    /// (package, version) → when it was installed.
    pub installed_at: BTreeMap<(String, String), Timestamp>,
}

/// A failed install: the version, the message, and the window it failed in.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Failure {
    /// Version that failed.
    pub version: String,
    /// apt's or dpkg's message.
    pub message: String,
    /// Opening of the window the attempt was made in.
    pub window: Timestamp,
}

fn host_patch(
    package: &str,
    version: &str,
    state: PatchState,
    c: Option<&PatchCandidate>,
) -> HostPatch {
    HostPatch {
        package: package.to_string(),
        version: version.to_string(),
        state,
        classification: c.and_then(|c| c.classification),
        severity: c.and_then(|c| c.severity),
        released_at: c.and_then(|c| c.released_at.clone()),
        installed_at: None,
        message: None,
    }
}

/// Each patch's state on this host under `job`: Missing for an approved version newer than the
/// installed one (Failed after a failed install of it), Rejected for a rejected update on offer
/// (or a rejected version installed), Installed or InstalledPendingReboot when an approved
/// version is in, NotApplicable for an approved package the host does not have. Updates that
/// are not approved yet are not listed (they are in the scan).
pub fn evaluate(
    job: &PatchJob,
    host: &HostPackages,
    failures: &BTreeMap<String, Failure>,
) -> Vec<HostPatch> {
    let mut approved: BTreeMap<&str, Vec<&PatchCandidate>> = BTreeMap::new();
    for c in &job.approved {
        approved.entry(c.package.as_str()).or_default().push(c);
    }
    let available: BTreeMap<&str, &AvailableUpdate> = host
        .scan
        .available
        .iter()
        .map(|u| (u.package.as_str(), u))
        .collect();
    let mut packages: Vec<&str> = approved.keys().copied().collect();
    packages.extend(available.keys().copied());
    packages.extend(
        host.installed
            .iter()
            .filter(|(p, v)| is_rejected_version(&job.spec, p, v))
            .map(|(p, _)| p.as_str()),
    );
    packages.sort();
    packages.dedup();
    let mut out = Vec::new();
    for package in packages {
        let versions = approved.get(package).cloned().unwrap_or_default();
        let offered = available.get(package);
        let Some(installed) = host.installed.get(package) else {
            out.extend(not_installed(job, package, &versions, offered, failures));
            continue;
        };
        let newer = versions
            .iter()
            .filter(|c| version_cmp(&c.version, installed).is_gt())
            .max_by(|a, b| version_cmp(&a.version, &b.version));
        if let Some(c) = newer {
            let mut p = host_patch(package, &c.version, PatchState::Missing, Some(c));
            if !failed(&mut p, failures)
                && offered.is_none_or(|u| version_cmp(&u.version, &c.version).is_lt())
            {
                p.message = Some("approved, but this host's sources do not offer it".into());
            }
            out.push(p);
        } else if let Some(u) = offered.filter(|u| is_rejected(&job.spec, package, &u.version)) {
            out.push(rejected_offer(package, u));
        } else if let Some(c) = versions
            .iter()
            .filter(|c| version_cmp(&c.version, installed).is_le())
            .max_by(|a, b| version_cmp(&a.version, &b.version))
        {
            let reboot = host.scan.reboot_packages.iter().any(|r| r == package);
            let state = if reboot {
                PatchState::InstalledPendingReboot
            } else {
                PatchState::Installed
            };
            let mut p = host_patch(package, installed, state, Some(c));
            p.installed_at = host
                .installed_at
                .get(&(package.to_string(), installed.clone()))
                .copied()
                .map(Time);
            out.push(p);
        } else if is_rejected_version(&job.spec, package, installed) {
            let mut p = host_patch(package, installed, PatchState::Rejected, None);
            p.message = Some("installed, but this version is rejected by the baseline".into());
            out.push(p);
        }
    }
    out
}

/// Whether the rejected list names exactly this version (a name-only entry rejects updates, not
/// what is installed).
/// The state of a package the host does not have. A Windows update is offered while it is
/// not installed: approved, it is Missing; rejected, Rejected. An approved Debian package the
/// host lacks is NotApplicable (apt only offers upgrades of installed packages). An install
/// that failed or was cut short can leave the package not (fully) installed: that is the
/// failure, not "not applicable".
fn not_installed(
    job: &PatchJob,
    package: &str,
    versions: &[&PatchCandidate],
    offered: Option<&&AvailableUpdate>,
    failures: &BTreeMap<String, Failure>,
) -> Option<HostPatch> {
    let approved = versions
        .iter()
        .max_by(|a, b| version_cmp(&a.version, &b.version));
    let mut p = match (approved, offered) {
        (Some(c), Some(u)) if version_cmp(&u.version, &c.version).is_ge() => {
            host_patch(package, &c.version, PatchState::Missing, Some(c))
        }
        (Some(c), _) => {
            let mut p = host_patch(package, &c.version, PatchState::NotApplicable, Some(c));
            p.message = Some("the package is not installed on this host".into());
            p
        }
        (None, Some(u)) if is_rejected(&job.spec, package, &u.version) => {
            return Some(rejected_offer(package, u));
        }
        (None, _) => return None,
    };
    failed(&mut p, failures);
    Some(p)
}

/// An update on offer that the baseline rejects: reported, never installed.
fn rejected_offer(package: &str, u: &AvailableUpdate) -> HostPatch {
    let mut p = host_patch(package, &u.version, PatchState::Rejected, None);
    p.classification = Some(u.classification);
    p.severity = u.severity;
    p.released_at = u.released_at.clone();
    p.message = Some("rejected by the baseline; not installed".into());
    p
}

fn is_rejected_version(spec: &PatchBaselineSpec, package: &str, version: &str) -> bool {
    spec.rejected_patches
        .iter()
        .any(|e| e.split_once('=') == Some((package, version)))
}

/// Marks `p` Failed, with the message, when an install of its version failed (or was cut
/// short); whether it did.
fn failed(p: &mut HostPatch, failures: &BTreeMap<String, Failure>) -> bool {
    let Some(f) = failures.get(&p.package).filter(|f| f.version == p.version) else {
        return false;
    };
    p.state = PatchState::Failed;
    p.message = Some(f.message.clone());
    true
}

/// Why nothing is installed now, or None when installs may run (operation Install, window open
/// at `now`, clean scan); with the window opening when it is open.
pub fn install_gate(
    job: &PatchJob,
    scan: &PatchScan,
    now: Timestamp,
) -> (Result<Timestamp, String>, Option<Timestamp>) {
    if job.spec.operation != PatchOperation::Install {
        return (
            Err("operation Scan: patches are reported, never installed".into()),
            None,
        );
    }
    let Some(window) = &job.spec.maintenance_window else {
        return (
            Err("no maintenanceWindow; nothing is installed".into()),
            None,
        );
    };
    let checked = match check_window(window, job.calendar.as_ref()) {
        Ok(c) => c,
        Err(e) => return (Err(format!("{e}; nothing is installed")), None),
    };
    let next = checked.next_open(now);
    if !scan.succeeded {
        return (
            Err("the last scan failed; nothing is installed until one succeeds".into()),
            next,
        );
    }
    match checked.open_at(now) {
        Some((open, _)) => (Ok(open), next),
        None => (
            Err(match next {
                Some(t) => format!("waits for the maintenance window opening at {t}"),
                None => "the maintenance window never opens".into(),
            }),
            next,
        ),
    }
}

fn state_of(
    job: &PatchJob,
    host: &HostPackages,
    patches: Vec<HostPatch>,
    message: Option<String>,
) -> HostPatchState {
    HostPatchState {
        baseline: job.name.clone(),
        scanned_at: host.scan.scanned_at.clone(),
        counts: counts(&patches),
        patches,
        message,
    }
}

fn failures_file(baseline: &str) -> String {
    format!("patch-failures-{baseline}")
}

/// The scheduler's job that makes the patch scan due every `interval` (its due time kept in
/// the state directory like every job's): the patch loop scans again when it fires.
pub fn scan_job(interval: Duration, due: watch::Sender<u64>) -> crate::schedule::Job {
    let every =
        jiff::SignedDuration::try_from(interval).unwrap_or(jiff::SignedDuration::from_hours(6));
    let due = std::sync::Arc::new(due);
    crate::schedule::Job {
        key: "patch-scan".into(),
        lane: "apt".into(),
        missed: unyo_crds::common::MissedRuns::RunOnce,
        next_after: std::sync::Arc::new(move |t| Ok(t.checked_add(every).ok())),
        run: std::sync::Arc::new(move |_| {
            due.send_modify(|n| *n = n.wrapping_add(1));
            Box::pin(async {})
        }),
    }
}

/// Scans on start, every `interval` and on request; re-evaluates on every change of the
/// baselines; installs in open windows. Runs until shutdown.
pub async fn run_patches(
    mut jobs: watch::Receiver<Vec<PatchJob>>,
    mut scan_now: watch::Receiver<Option<String>>,
    mut scan_due: watch::Receiver<u64>,
    source: Arc<dyn Source>,
    state_dir: PathBuf,
    reporter: Reporter,
) {
    let mut host: Option<HostPackages> = None;
    // (baseline, package, version, window opening) tried already: one attempt per window.
    let mut attempted = std::collections::BTreeSet::new();
    loop {
        let current = jobs.borrow_and_update().clone();
        if current.is_empty() {
            record_patches(&reporter, None, vec![]).await;
            tokio::select! {
                changed = jobs.changed() => if changed.is_err() { break },
                changed = scan_now.changed() => if changed.is_err() { break },
                changed = scan_due.changed() => if changed.is_err() { break },
            }
            continue;
        }
        if host.is_none() {
            let s = source.clone();
            host = tokio::task::spawn_blocking(move || s.scan()).await.ok();
            if let Some(h) = &host {
                tracing::info!(
                    available = h.scan.available.len(),
                    succeeded = h.scan.succeeded,
                    "patch scan"
                );
            }
        }
        let Some(h) = host.clone() else {
            // The scan itself broke (a panic on its thread): try again later, not at once.
            tracing::error!("the patch scan did not finish; trying again in a minute");
            tokio::time::sleep(Duration::from_secs(60)).await;
            continue;
        };
        let now = Timestamp::now();
        let mut states = Vec::new();
        let mut wake: Option<Timestamp> = None;
        let mut changed_host = false;
        for job in &current {
            let kept: crate::state::Kept<BTreeMap<String, Failure>> =
                crate::state::Kept::new(&state_dir, failures_file(&job.name));
            let mut failures = kept.load();
            let (gate, next) = install_gate(job, &h.scan, now);
            if let Some(n) = next {
                wake = Some(wake.map_or(n, |w| w.min(n)));
            }
            let patches = evaluate(job, &h, &failures);
            let message = match gate {
                Err(why) => Some(why),
                Ok(open) => {
                    let tried = install_approved(
                        job,
                        &patches,
                        open,
                        (&mut failures, &kept),
                        &mut attempted,
                        &source,
                        &reporter,
                    )
                    .await;
                    changed_host |= tried;
                    kept.keep(&failures);
                    Some("maintenance window open: approved missing patches are installed".into())
                }
            };
            // Without an install (else the host is read again below) the patches stand as evaluated.
            states.push(state_of(job, &h, patches, message));
        }
        if changed_host {
            let rescanned = reread(&source).await;
            reboot_if_asked(&current, &rescanned, &source, &reporter).await;
            host = Some(rescanned);
            continue;
        }
        record_patches(&reporter, Some(h.scan.clone()), states).await;
        // Until a window opens, the jobs change, or a scan is asked for or due (the
        // scheduler's job `patch-scan` keeps that time).
        let until_window = wake.map(|t| {
            Duration::from_millis((t.as_millisecond() - now.as_millisecond()).max(0) as u64 + 200)
        });
        tokio::select! {
            _ = tokio::time::sleep(until_window.unwrap_or(Duration::MAX)), if until_window.is_some() => {}
            changed = jobs.changed() => if changed.is_err() { break },
            changed = scan_now.changed() => {
                if changed.is_err() { break }
                host = None;
            }
            changed = scan_due.changed() => {
                if changed.is_err() { break }
                host = None;
            }
        }
    }
}

/// Installs the approved missing patches of `job` (and failed ones again, in a later window),
/// each version once per window; records results in `failures` and as Events. Returns whether
/// anything was tried.
async fn install_approved(
    job: &PatchJob,
    patches: &[HostPatch],
    open: Timestamp,
    (failures, kept): (
        &mut BTreeMap<String, Failure>,
        &crate::state::Kept<BTreeMap<String, Failure>>,
    ),
    attempted: &mut std::collections::BTreeSet<(String, String, String, Timestamp)>,
    source: &Arc<dyn Source>,
    reporter: &Reporter,
) -> bool {
    let todo = patches.iter().filter(|p| match p.state {
        PatchState::Missing => true,
        PatchState::Failed => failures.get(&p.package).is_some_and(|f| f.window < open),
        _ => false,
    });
    let todo: Vec<&HostPatch> = todo.collect();
    let blocked = match job.spec.rejected_action {
        RejectedAction::BlockEntirely => job.spec.rejected_patches.clone(),
        RejectedAction::AllowAsDependency => vec![],
    };
    let mut tried = false;
    for p in todo {
        if !attempted.insert((job.name.clone(), p.package.clone(), p.version.clone(), open)) {
            continue;
        }
        tried = true;
        // Kept before apt runs: if the agent stops during the install, it is reported as
        // interrupted and not tried again in this window.
        failures.insert(
            p.package.clone(),
            Failure {
                version: p.version.clone(),
                message: "interrupted: the agent stopped during this install (on Linux, dpkg may need `dpkg --configure -a`)".into(),
                window: open,
            },
        );
        kept.keep(failures);
        let (a, pkg, ver, bl) = (
            source.clone(),
            p.package.clone(),
            p.version.clone(),
            blocked.clone(),
        );
        let result = tokio::task::spawn_blocking(move || a.install(&pkg, &ver, &bl))
            .await
            .unwrap_or_else(|e| Err(e.to_string()));
        match result {
            Ok(m) => {
                failures.remove(&p.package);
                reporter
                    .note("PatchInstalled", &format!("{}: {m}", job.name), false)
                    .await;
            }
            Err(e) => {
                tracing::warn!(package = %p.package, version = %p.version, error = %e, "install failed");
                let what = format!("{}: {}={}: {e}", job.name, p.package, p.version);
                reporter.note("PatchFailed", &what, true).await;
                failures.insert(
                    p.package.clone(),
                    Failure {
                        version: p.version.clone(),
                        message: e,
                        window: open,
                    },
                );
            }
        }
    }
    tried
}

async fn reread(source: &Arc<dyn Source>) -> HostPackages {
    let s = source.clone();
    tokio::task::spawn_blocking(move || s.reread())
        .await
        .unwrap_or_default()
}

/// With reboot policy RebootIfNeeded a host that waits for a reboot after installs is rebooted
/// (the live host only; a host beneath another root is only reported).
async fn reboot_if_asked(
    jobs: &[PatchJob],
    host: &HostPackages,
    source: &Arc<dyn Source>,
    reporter: &Reporter,
) {
    let wanted = jobs
        .iter()
        .any(|j| j.spec.reboot == RebootPolicy::RebootIfNeeded);
    if !wanted || !host.scan.reboot_required {
        return;
    }
    let s = source.clone();
    let done = tokio::task::spawn_blocking(move || s.reboot())
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
    match done {
        Ok(what) => reporter.note("RebootScheduled", &what, true).await,
        Err(why) => reporter.note("RebootRequired", &why, true).await,
    }
}

/// The approved candidates of a baseline's status.
pub fn approved(candidates: &[PatchCandidate]) -> Vec<PatchCandidate> {
    candidates
        .iter()
        .filter(|c| c.judgement == Judgement::Apply)
        .cloned()
        .collect()
}

/// The last patch scan and the state under each baseline: this host's part of
/// `status.operations.patchScan` and `.patches`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(transparent)]
pub struct PatchesSlot(
    pub  (
        Option<unyo_crds::patch::PatchScan>,
        Vec<unyo_crds::patch::HostPatchState>,
    ),
);

impl crate::report::Slot for PatchesSlot {
    const FILE: &'static str = "host-patches";
    fn fill(&self, into: &mut unyo_crds::server::OperationResults) {
        into.patch_scan = self.0.0.clone();
        into.patches = self.0.1.clone();
    }
}

/// Records the last scan (none: the one before stands, while there are baselines) and the
/// state under each baseline; written only when they changed.
async fn record_patches(
    reporter: &Reporter,
    scan: Option<unyo_crds::patch::PatchScan>,
    states: Vec<unyo_crds::patch::HostPatchState>,
) {
    reporter
        .update::<PatchesSlot>(|slot| {
            let scan = match scan {
                Some(s) => Some(s),
                None if states.is_empty() => None,
                None => slot.0.0.take(),
            };
            slot.0 = (scan, states);
            vec![]
        })
        .await;
}

/// Patches: the PatchBaselines that select this host.
pub struct Patches {
    /// apt beneath the host's root, or the Windows Update Agent.
    pub source: Arc<dyn Source>,
    /// The state directory (failures kept per baseline).
    pub state_dir: PathBuf,
    /// Where results go.
    pub reporter: Reporter,
    /// Where the patch scan's due time is kept.
    pub scheduler: crate::schedule::Scheduler,
    /// How often the host is scanned for updates.
    pub interval: Duration,
}

impl crate::ops::operation::Operation for Patches {
    type Resource = unyo_crds::PatchBaseline;
    type Job = PatchJob;
    type Slot = PatchesSlot;
    const NAME: &'static str = "patches";
    const REQUESTS: &'static [&'static str] = &[PATCH_SCAN_NOW];

    fn jobs(
        server: &unyo_crds::Server,
        all: &[Self::Resource],
        calendars: &[unyo_crds::OperationCalendar],
    ) -> Vec<PatchJob> {
        use kube::ResourceExt;
        unyo_crds::selection::patch_baselines_for(server, all)
            .into_iter()
            .map(|b| PatchJob {
                name: b.name_any(),
                spec: b.spec.clone(),
                approved: approved(
                    b.status
                        .as_ref()
                        .map(|s| s.candidates.as_slice())
                        .unwrap_or_default(),
                ),
                calendar: b.spec.maintenance_window.as_ref().and_then(|w| {
                    calendars
                        .iter()
                        .find(|c| c.name_any() == w.schedule.calendar)
                        .map(|c| c.spec.clone())
                }),
            })
            .collect()
    }

    fn admit(
        policy: &crate::hostpolicy::HostPolicy,
        _root: &std::path::Path,
        job: PatchJob,
    ) -> Result<PatchJob, Vec<unyo_crds::server::Refusal>> {
        let refused = policy.judge_patches(&job);
        if refused.is_empty() {
            Ok(job)
        } else {
            Err(refused)
        }
    }

    fn run(
        self,
        jobs: watch::Receiver<Vec<PatchJob>>,
        mut requests: crate::ops::operation::Requests,
    ) -> futures::future::BoxFuture<'static, ()> {
        let scan_now = crate::ops::operation::request(&mut requests, PATCH_SCAN_NOW);
        let (due_tx, due_rx) = watch::channel(0u64);
        self.scheduler
            .set("patches", vec![scan_job(self.interval, due_tx)]);
        Box::pin(run_patches(
            jobs,
            scan_now,
            due_rx,
            self.source,
            self.state_dir,
            self.reporter,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::apt::Apt;
    use unyo_crds::patch::{PatchClassification, PatchSeverity};
    use unyo_tests::aptlab::{self, Archive, Deb};

    /// A file-based apt world: a security archive released 10 days ago and an updates archive
    /// released yesterday, and a host root with the old versions installed.
    fn lab(name: &str) -> (PathBuf, PathBuf, Vec<PathBuf>) {
        let lab = std::env::temp_dir().join(format!("unyo-patch-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&lab);
        let reboot = "#!/bin/sh\nset -e\nmkdir -p \"$DPKG_ROOT/run\"\ntouch \"$DPKG_ROOT/run/reboot-required\"\necho kern >> \"$DPKG_ROOT/run/reboot-required.pkgs\"\n";
        let deb = Deb::new;
        let archives = vec![
            Archive {
                dir: "security",
                origin: "Debian",
                label: "Debian-Security",
                suite: "bookworm-security",
                date: aptlab::days_ago(10),
                debs: vec![
                    deb("alpha", "1.0"),
                    Deb {
                        urgency: Some("high"),
                        ..deb("alpha", "1.1")
                    },
                    deb("kern", "1.0"),
                    Deb {
                        postinst: Some(reboot),
                        urgency: Some("medium"),
                        ..deb("kern", "2.0")
                    },
                ],
            },
            Archive {
                dir: "updates",
                origin: "Debian",
                label: "Debian",
                suite: "bookworm-updates",
                date: aptlab::days_ago(1),
                debs: vec![
                    Deb {
                        file: Some(("/usr/share/common/shared.txt", "beta's")),
                        ..deb("beta", "1.0")
                    },
                    Deb {
                        file: Some(("/usr/share/common/shared.txt", "beta's")),
                        ..deb("beta", "2.0")
                    },
                    deb("gamma", "1.0"),
                    // Ships a file beta owns: dpkg refuses to unpack it.
                    Deb {
                        file: Some(("/usr/share/common/shared.txt", "gamma's")),
                        ..deb("gamma", "2.0")
                    },
                    deb("delta", "1.0"),
                    Deb {
                        depends: Some("beta (>= 2.0)"),
                        ..deb("delta", "2.0")
                    },
                ],
            },
        ];
        let dirs = aptlab::build_archives(&lab, &archives).unwrap();
        let root = lab.join("host");
        let old: Vec<PathBuf> = [
            ("security", "alpha"),
            ("security", "kern"),
            ("updates", "beta"),
            ("updates", "gamma"),
            ("updates", "delta"),
        ]
        .iter()
        .map(|(d, p)| aptlab::deb_file(&lab, d, p, "1.0"))
        .collect();
        let sources: Vec<String> = dirs.iter().map(|d| aptlab::source_line(d)).collect();
        aptlab::host_root(&root, &sources, &old).unwrap();
        (lab, root, dirs)
    }

    fn candidate(package: &str, version: &str) -> PatchCandidate {
        PatchCandidate {
            package: package.into(),
            version: version.into(),
            classification: None,
            severity: None,
            released_at: None,
            judgement: Judgement::Apply,
            reason: "test".into(),
            needed_by: vec![],
            staging: vec![],
        }
    }

    fn job(approved: &[(&str, &str)], rejected: &[&str]) -> PatchJob {
        let spec: PatchBaselineSpec = serde_json::from_value(serde_json::json!({
            "operation": "Install",
            "rejectedPatches": rejected,
        }))
        .unwrap();
        PatchJob {
            name: "staging".into(),
            spec,
            approved: approved.iter().map(|(p, v)| candidate(p, v)).collect(),
            calendar: None,
        }
    }

    fn state<'a>(patches: &'a [HostPatch], package: &str) -> &'a HostPatch {
        patches.iter().find(|p| p.package == package).unwrap()
    }

    fn dpkg_status_of_this_machine() -> Vec<u8> {
        std::fs::read("/var/lib/dpkg/status").unwrap_or_default()
    }

    #[test]
    fn scan_classify_install_reject_fail_and_reboot_with_real_apt() {
        let machine_before = dpkg_status_of_this_machine();
        let (lab, root, _) = lab("install");
        let apt = Apt::new(&root, &lab.join("state")).unwrap();
        let host = Source::scan(&apt);
        assert!(host.scan.succeeded, "{:?}", host.scan.message);
        let by = |p: &str| host.scan.available.iter().find(|u| u.package == p).unwrap();
        assert_eq!(host.scan.available.len(), 5, "{:?}", host.scan.available);
        let alpha = by("alpha");
        assert_eq!(
            (alpha.installed_version.as_str(), alpha.version.as_str()),
            ("1.0", "1.1")
        );
        assert_eq!(alpha.classification, PatchClassification::Security);
        assert_eq!(alpha.severity, Some(PatchSeverity::Important));
        assert_eq!(alpha.archive, "Debian/bookworm-security");
        let released = alpha.released_at.as_ref().unwrap().0;
        let age = Timestamp::now().duration_since(released).as_hours();
        assert!((239..=241).contains(&age), "released {released}");
        let beta = by("beta");
        assert_eq!(beta.classification, PatchClassification::Bugfix);
        assert_eq!(beta.severity, None);

        // Scan only: nothing changed on the host.
        assert_eq!(
            aptlab::installed_version(&root, "alpha").as_deref(),
            Some("1.0")
        );

        let j = job(
            &[
                ("alpha", "1.1"),
                ("delta", "2.0"),
                ("gamma", "2.0"),
                ("kern", "2.0"),
                ("zeta", "1.0"),
            ],
            &["beta=2.0"],
        );
        let before = evaluate(&j, &host, &BTreeMap::new());
        assert_eq!(state(&before, "alpha").state, PatchState::Missing);
        assert_eq!(state(&before, "beta").state, PatchState::Rejected);
        assert_eq!(state(&before, "zeta").state, PatchState::NotApplicable);
        assert_eq!(counts(&before).missing, 4);

        let blocked = vec!["beta=2.0".to_string()];
        assert_eq!(
            apt.install("alpha", "1.1", &blocked).unwrap(),
            "installed alpha=1.1"
        );
        // delta 2.0 needs beta 2.0, which is rejected: not even planned, nothing changes.
        let err = apt.install("delta", "2.0", &blocked).unwrap_err();
        assert!(
            err.contains("without a rejected patch") && err.contains("beta"),
            "{err}"
        );
        assert_eq!(
            aptlab::installed_version(&root, "delta").as_deref(),
            Some("1.0")
        );
        assert_eq!(
            aptlab::installed_version(&root, "beta").as_deref(),
            Some("1.0")
        );
        // gamma 2.0 fails in dpkg; the old version stays.
        let err = apt.install("gamma", "2.0", &blocked).unwrap_err();
        assert!(err.contains("trying to overwrite"), "{err}");
        assert_eq!(
            aptlab::installed_version(&root, "gamma").as_deref(),
            Some("1.0")
        );
        apt.install("kern", "2.0", &blocked).unwrap();

        let after = Source::scan(&apt);
        assert!(after.scan.reboot_required);
        assert_eq!(after.scan.reboot_packages, vec!["kern".to_string()]);
        let failures: BTreeMap<String, Failure> = [(
            "gamma".to_string(),
            Failure {
                version: "2.0".into(),
                message: err.clone(),
                window: Timestamp::now(),
            },
        )]
        .into();
        let now = evaluate(&j, &after, &failures);
        let a = state(&now, "alpha");
        assert_eq!(
            (a.state, a.version.as_str()),
            (PatchState::Installed, "1.1")
        );
        let installed_at = a.installed_at.as_ref().unwrap().0;
        assert!(Timestamp::now().duration_since(installed_at).as_secs() < 120);
        assert_eq!(
            state(&now, "kern").state,
            PatchState::InstalledPendingReboot
        );
        let g = state(&now, "gamma");
        assert_eq!(g.state, PatchState::Failed);
        assert!(
            g.message
                .as_deref()
                .unwrap()
                .contains("trying to overwrite")
        );
        assert_eq!(state(&now, "delta").state, PatchState::Missing);

        // With AllowAsDependency the rejected beta 2.0 may come in under delta.
        apt.install("delta", "2.0", &[]).unwrap();
        assert_eq!(
            aptlab::installed_version(&root, "beta").as_deref(),
            Some("2.0")
        );

        assert_eq!(
            dpkg_status_of_this_machine(),
            machine_before,
            "the machine itself changed"
        );
        let _ = std::fs::remove_dir_all(&lab);
    }

    #[test]
    fn an_unreachable_source_fails_the_scan_with_its_name() {
        let (lab, root, dirs) = lab("unreachable");
        let mut sources = vec![aptlab::source_line(&dirs[0])];
        sources.push("deb [trusted=yes] http://127.0.0.1:9/debian bookworm main".into());
        aptlab::host_root(&root, &sources, &[]).unwrap();
        let apt = Apt::new(&root, &lab.join("state")).unwrap();
        let host = Source::scan(&apt);
        assert!(!host.scan.succeeded);
        let msg = host.scan.message.clone().unwrap();
        assert!(msg.contains("127.0.0.1:9"), "{msg}");
        let mut j = job(&[("alpha", "1.1")], &[]);
        j.spec.maintenance_window = Some(
            serde_json::from_value(serde_json::json!({
                "schedule": {"calendar": "ops", "cron": "* * * * *"}, "duration": "1h"
            }))
            .unwrap(),
        );
        j.calendar =
            Some(serde_json::from_value(serde_json::json!({"timeZone": "Asia/Tokyo", "businessHours": {"start": "08:00", "end": "19:00"}})).unwrap());
        let (gate, _) = install_gate(&j, &host.scan, Timestamp::now());
        assert!(gate.unwrap_err().contains("the last scan failed"));
        let _ = std::fs::remove_dir_all(&lab);
    }

    #[test]
    fn installs_only_in_an_open_window_of_an_install_baseline() {
        let scan = PatchScan {
            succeeded: true,
            ..Default::default()
        };
        let mut j = job(&[], &[]);
        let cal: OperationCalendarSpec =
            serde_json::from_value(serde_json::json!({"timeZone": "Asia/Tokyo", "businessHours": {"start": "08:00", "end": "19:00"}})).unwrap();
        let window = |at: &str| {
            serde_json::from_value(serde_json::json!({
                "schedule": {"calendar": "ops", "at": at}, "duration": "3h"
            }))
            .unwrap()
        };
        let t: Timestamp = "2026-11-24T12:00:00Z".parse().unwrap(); // 21:00 in Tokyo
        j.spec.maintenance_window = Some(window("20:00"));
        let (gate, _) = install_gate(&j, &scan, t);
        assert!(
            gate.unwrap_err()
                .contains("OperationCalendar ops does not exist")
        );
        j.calendar = Some(cal);
        let (gate, _) = install_gate(&j, &scan, t);
        assert_eq!(gate.unwrap(), "2026-11-24T11:00:00Z".parse().unwrap());
        j.spec.maintenance_window = Some(window("22:00"));
        let (gate, next) = install_gate(&j, &scan, t);
        assert!(
            gate.unwrap_err()
                .contains("waits for the maintenance window")
        );
        assert_eq!(next, Some("2026-11-24T13:00:00Z".parse().unwrap()));
        j.spec.operation = PatchOperation::Scan;
        let (gate, _) = install_gate(&j, &scan, t);
        assert!(gate.unwrap_err().contains("never installed"));
    }
}

//! Virus scans: the VirusScanSchedules that select this host, at their fire times and on
//! request, on one lane. The engine — ClamAV on Linux, Microsoft Defender on Windows — is behind
//! [`Engine`].

use std::sync::Arc;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use unyo_crds::calendar::OperationCalendarSpec;
use unyo_crds::server::RequestState;
use unyo_crds::virusscan::{HostAntivirus, ScanEngine, VirusScanScheduleSpec};

use super::{SCAN_NOW, answer, first_fire, operation, run_of};
use crate::facts::Collector;
use crate::report::Reporter;
use crate::schedule::{Job, Scheduler};

/// A VirusScanSchedule this host runs, with its calendar.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ScanJob {
    /// The VirusScanSchedule.
    pub name: String,
    /// Its spec.
    pub spec: VirusScanScheduleSpec,
    /// The OperationCalendar its schedule names, when it exists.
    pub calendar: Option<OperationCalendarSpec>,
}

/// The next fire time of a job after `after`.
pub fn next_fire(job: &ScanJob, after: Timestamp) -> Result<Option<Timestamp>, String> {
    first_fire(
        &format!("VirusScanSchedule {}", job.name),
        job.calendar.as_ref(),
        &job.spec.schedule,
        "spec.schedule",
        after,
    )
}

/// The lane of virus scans (one signature database, one scanner at a time).
const SCAN_LANE: &str = "antivirus";

/// Keeps the scheduler's scan jobs those of the schedules this host runs, and runs every scan
/// on request, on the scan lane.
pub async fn run_scans(
    mut jobs: watch::Receiver<Vec<ScanJob>>,
    mut scan_now: watch::Receiver<Option<String>>,
    scanner: Scanner,
    scheduler: Scheduler,
) {
    loop {
        let current = jobs.borrow_and_update().clone();
        let scheduled = current.iter().map(|job| {
            let (j, s) = (Arc::new(job.clone()), scanner.clone());
            let sched_job = job.clone();
            Job {
                key: format!("scan/{}", job.name),
                lane: SCAN_LANE.into(),
                missed: job.spec.schedule.missed_runs.unwrap_or_default(),
                next_after: Arc::new(move |t| next_fire(&sched_job, t)),
                run: run_of(move || {
                    let (j, s) = (j.clone(), s.clone());
                    async move {
                        let _ = run_one(&j, &s).await;
                    }
                }),
            }
        });
        scheduler.set("scans", scheduled.collect());
        tokio::select! {
            changed = jobs.changed() => if changed.is_err() { break },
            changed = scan_now.changed() => {
                if changed.is_err() {
                    break;
                }
                let asked = scan_now.borrow_and_update().clone();
                if let Some(reason) = asked {
                    tracing::info!(%reason, "scan requested");
                    // The jobs as they are now: the request may come with a new schedule.
                    let latest = jobs.borrow().clone();
                    let s = scanner.clone();
                    scheduler.submit(SCAN_LANE, "scan-now", run_of(move || {
                        let (latest, reason, s) = (latest.clone(), reason.clone(), s.clone());
                        async move { scan_all_now(&latest, &reason, &s).await }
                    }));
                }
            }
        }
    }
}

/// The scan engine of this platform.
#[cfg(unix)]
pub const HOST_ENGINE: ScanEngine = ScanEngine::ClamAV;
/// The scan engine of this platform.
#[cfg(windows)]
pub const HOST_ENGINE: ScanEngine = ScanEngine::Defender;

/// A virus scanner on this host.
pub trait Engine: Send + Sync + 'static {
    /// Brings the signatures up to date as `job` asks, scans, and returns this host's
    /// antivirus state after it (the detections found, the signatures, the resident scanner).
    /// Blocking: it runs on a blocking thread.
    fn scan(&self, job: &ScanJob, host: &Collector, server: &str) -> HostAntivirus;
}

/// What a scan needs of the host: its root, the engine, the Server's name and the reporter.
#[derive(Clone)]
pub struct Scanner {
    /// The host.
    pub host: Collector,
    /// The scanner.
    pub engine: Arc<dyn Engine>,
    /// The Server.
    pub server: String,
    /// Where results go.
    pub reporter: Reporter,
}

/// Every scan now, answered in the Server's status.
async fn scan_all_now(jobs: &[ScanJob], reason: &str, s: &Scanner) {
    let reporter = &s.reporter;
    reporter
        .request(SCAN_NOW, reason, RequestState::Running, "scanning")
        .await;
    let mut said = Vec::new();
    for job in jobs {
        said.push(run_one(job, s).await);
    }
    let failed = said.iter().any(|(ok, _)| !ok);
    let state = if failed {
        RequestState::Failed
    } else {
        RequestState::Succeeded
    };
    let text: Vec<String> = said.into_iter().map(|(_, m)| m).collect();
    answer(reporter, SCAN_NOW, reason, state, &text.join("; ")).await;
}

/// Runs one scan; whether it ran, and what it found, in a sentence.
async fn run_one(job: &ScanJob, s: &Scanner) -> (bool, String) {
    let (engine, host, server) = (s.engine.clone(), s.host.clone(), s.server.clone());
    let name = job.name.clone();
    let job = job.clone();
    let done = tokio::task::spawn_blocking(move || engine.scan(&job, &host, &server)).await;
    let reporter = &s.reporter;
    match done {
        Ok(status) => {
            let mut said = (false, format!("{name}: no scan result"));
            if let Some(run) = &status.last_scan {
                tracing::info!(
                    schedule = %name,
                    files = run.files_scanned,
                    detections = run.detections,
                    result = ?run.result,
                    "scan finished"
                );
                let ok = run.result == unyo_crds::backup::RunResult::Succeeded;
                said = (
                    ok,
                    format!("{name}: {}", run.message.clone().unwrap_or_default()),
                );
            }
            record_scan(reporter, status, &name).await;
            said
        }
        Err(e) => {
            tracing::error!(error = %e, "the scan task failed");
            (false, format!("{name}: the scan task failed"))
        }
    }
}

/// This host's antivirus state: its part of `status.operations.antivirus`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(transparent)]
pub struct AntivirusSlot(pub Option<unyo_crds::virusscan::HostAntivirus>);

impl crate::report::Slot for AntivirusSlot {
    const FILE: &'static str = "antivirus";
    fn fill(&self, into: &mut unyo_crds::server::OperationResults) {
        into.antivirus = self.0.clone();
    }
}

/// Records the antivirus state after a scan, and an Event for each detection.
async fn record_scan(
    reporter: &Reporter,
    status: unyo_crds::virusscan::HostAntivirus,
    schedule: &str,
) {
    let notes = status
        .detections
        .iter()
        .map(|d| crate::report::JournalEntry {
            policy: schedule.to_string(),
            check: format!("virus:{}", d.path),
            state: unyo_crds::server::CheckState::Critical,
            since: d.at.0,
            value: None,
            message: format!("{} in {} ({})", d.signature, d.path, d.actions.join("; ")),
            reason: Some("VirusDetected".into()),
        })
        .collect();
    reporter
        .update::<AntivirusSlot>(|slot| {
            slot.0 = Some(status);
            notes
        })
        .await;
}

/// Virus scans: the VirusScanSchedules that select this host.
pub struct Scans {
    /// What a scan needs of the host.
    pub scanner: Scanner,
    /// Where its runs are queued.
    pub scheduler: Scheduler,
}

impl operation::Operation for Scans {
    type Resource = unyo_crds::VirusScanSchedule;
    type Job = ScanJob;
    type Slot = AntivirusSlot;
    const NAME: &'static str = "scans";
    const REQUESTS: &'static [&'static str] = &[SCAN_NOW];

    fn jobs(
        server: &unyo_crds::Server,
        all: &[Self::Resource],
        calendars: &[unyo_crds::OperationCalendar],
    ) -> Vec<ScanJob> {
        use kube::ResourceExt;
        unyo_crds::selection::virus_scan_schedules_for(server, all)
            .into_iter()
            .map(|s| ScanJob {
                name: s.name_any(),
                spec: s.spec.clone(),
                calendar: calendars
                    .iter()
                    .find(|c| c.name_any() == s.spec.schedule.calendar)
                    .map(|c| c.spec.clone()),
            })
            .collect()
    }

    fn admit(
        policy: &crate::hostpolicy::HostPolicy,
        root: &std::path::Path,
        mut job: ScanJob,
    ) -> Result<ScanJob, Vec<unyo_crds::server::Refusal>> {
        let refused = policy.judge_scan(&job.name, &job.spec, root);
        if !refused.is_empty() {
            return Err(refused);
        }
        if job.spec.engine == ScanEngine::ClamAV {
            job.spec
                .quarantine_dir
                .get_or_insert_with(|| policy.default_quarantine());
        }
        Ok(job)
    }

    fn run(
        self,
        jobs: watch::Receiver<Vec<ScanJob>>,
        mut requests: operation::Requests,
    ) -> futures::future::BoxFuture<'static, ()> {
        let scan_now = operation::request(&mut requests, SCAN_NOW);
        Box::pin(run_scans(jobs, scan_now, self.scanner, self.scheduler))
    }
}

//! What this host has to do: its own Server (watched by name), and the MonitoringPolicies and
//! OperationCalendars of its namespace, turned into the list of checks it runs with the
//! selection function the controller shares. The last assignment is kept in the state
//! directory so that checks go on after a restart while the API server is unreachable.

use std::path::PathBuf;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use tokio::sync::watch;
use unyo_crds::common::parse_duration;
use unyo_crds::selection::{monitoring_policies_for, virus_scan_schedules_for};
use unyo_crds::{
    BackupPlan, MonitoringPolicy, OperationCalendar, PatchBaseline, Server, VirusScanSchedule,
};

use crate::checks::Assigned;
use crate::ops::patch::{PATCH_SCAN_NOW, PatchJob};
use crate::ops::{BACKUP_NOW, BackupJob, RESTORE, SCAN_NOW, ScanJob};
use crate::report::Reporter;

/// What the host allows, and where its paths are.
pub struct HostRules {
    /// The host policy in force.
    pub policy: watch::Receiver<std::sync::Arc<crate::hostpolicy::HostPolicy>>,
    /// The host's root (`--root`).
    pub root: PathBuf,
}

/// Where the assignment goes.
pub struct Outputs {
    /// The checks to run.
    pub checks: watch::Sender<Vec<Assigned>>,
    /// The scans to run.
    pub scans: watch::Sender<Vec<ScanJob>>,
    /// A new value of the scan-now annotation.
    pub scan_now: watch::Sender<Option<String>>,
    /// The backup plans to run.
    pub backups: watch::Sender<Vec<BackupJob>>,
    /// A new value of the backup-now annotation.
    pub backup_now: watch::Sender<Option<String>>,
    /// A new value of the restore annotation.
    pub restore: watch::Sender<Option<String>>,
    /// The patch baselines to follow.
    pub patches: watch::Sender<Vec<PatchJob>>,
    /// A new value of the patch-scan-now annotation.
    pub patch_scan_now: watch::Sender<Option<String>>,
}

/// The PatchBaselines that select `server`, with what the controller approved and the calendar
/// of their maintenance windows.
pub fn patch_jobs(
    server: &Server,
    baselines: &[PatchBaseline],
    calendars: &[OperationCalendar],
) -> Vec<PatchJob> {
    unyo_crds::selection::patch_baselines_for(server, baselines)
        .into_iter()
        .map(|b| PatchJob {
            name: b.name_any(),
            spec: b.spec.clone(),
            approved: crate::ops::patch::approved(
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

/// The BackupPlans that select `server`, with the calendars their rules name.
pub fn backup_jobs(
    server: &Server,
    plans: &[BackupPlan],
    calendars: &[OperationCalendar],
) -> Vec<BackupJob> {
    unyo_crds::selection::backup_plans_for(server, plans)
        .into_iter()
        .map(|p| BackupJob {
            name: p.name_any(),
            spec: p.spec.clone(),
            calendars: calendars
                .iter()
                .filter(|c| {
                    p.spec
                        .rules
                        .iter()
                        .any(|r| r.schedule.calendar == c.name_any())
                })
                .map(|c| (c.name_any(), c.spec.clone()))
                .collect(),
        })
        .collect()
}

/// The scans of the VirusScanSchedules that select `server`, with their calendars.
pub fn scan_jobs(
    server: &Server,
    schedules: &[VirusScanSchedule],
    calendars: &[OperationCalendar],
) -> Vec<ScanJob> {
    virus_scan_schedules_for(server, schedules)
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

/// Default sampling interval of a policy that names none.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);

/// The checks of the policies that select `server`.
pub fn assignment(server: &Server, policies: &[MonitoringPolicy]) -> Vec<Assigned> {
    monitoring_policies_for(server, policies)
        .into_iter()
        .flat_map(|p| {
            let interval = parse_duration(&p.spec.interval).unwrap_or(DEFAULT_INTERVAL);
            let name = p.name_any();
            p.spec.checks.iter().map(move |c| Assigned {
                policy: name.clone(),
                interval_ms: u64::try_from(interval.as_millis()).unwrap_or(u64::MAX),
                check: c.clone(),
            })
        })
        .collect()
}

/// The assignment's kinds of state in the state directory (what to run after a restart while
/// the API server is unreachable), under names of their own.
pub mod kept {
    use std::path::Path;

    use crate::checks::Assigned;
    use crate::ops::patch::PatchJob;
    use crate::ops::{BackupJob, ScanJob};
    use crate::state::Kept;

    /// The checks assigned.
    pub fn checks(dir: &Path) -> Kept<Vec<Assigned>> {
        Kept::new(dir, "assigned-checks")
    }
    /// The scans assigned.
    pub fn scans(dir: &Path) -> Kept<Vec<ScanJob>> {
        Kept::new(dir, "assigned-scans")
    }
    /// The backup plans assigned.
    pub fn backups(dir: &Path) -> Kept<Vec<BackupJob>> {
        Kept::new(dir, "assigned-backups")
    }
    /// The patch baselines assigned.
    pub fn patches(dir: &Path) -> Kept<Vec<PatchJob>> {
        Kept::new(dir, "assigned-patches")
    }
    /// The last value of an on-request annotation that was handled.
    pub fn handled(dir: &Path, annotation: &str) -> Kept<String> {
        Kept::new(
            dir,
            format!("handled-{}", annotation.trim_start_matches("unyo.dev/")),
        )
    }
}

/// Watches the Server, policies and calendars, and publishes the assignment on every change.
pub async fn run(
    client: Client,
    namespace: String,
    server: String,
    state_dir: PathBuf,
    mut rules: HostRules,
    tx: Outputs,
    reporter: Reporter,
) {
    let servers: Api<Server> = Api::namespaced(client.clone(), &namespace);
    let policies: Api<MonitoringPolicy> = Api::namespaced(client.clone(), &namespace);
    let calendars: Api<OperationCalendar> = Api::namespaced(client.clone(), &namespace);
    let scans: Api<VirusScanSchedule> = Api::namespaced(client.clone(), &namespace);
    let plans: Api<BackupPlan> = Api::namespaced(client.clone(), &namespace);
    let baselines: Api<PatchBaseline> = Api::namespaced(client, &namespace);
    let (server_store, server_writer) = reflector::store::<Server>();
    let (policy_store, policy_writer) = reflector::store::<MonitoringPolicy>();
    let (calendar_store, calendar_writer) = reflector::store::<OperationCalendar>();
    let (scan_store, scan_writer) = reflector::store::<VirusScanSchedule>();
    let (plan_store, plan_writer) = reflector::store::<BackupPlan>();
    let (baseline_store, baseline_writer) = reflector::store::<PatchBaseline>();
    let own = watcher::Config::default().fields(&format!("metadata.name={server}"));
    let streams = futures::stream::select_all([
        watcher(servers, own)
            .default_backoff()
            .reflect(server_writer)
            .map(|e| e.map(|_| ()))
            .boxed(),
        watcher(policies, watcher::Config::default())
            .default_backoff()
            .reflect(policy_writer)
            .map(|e| e.map(|_| ()))
            .boxed(),
        watcher(calendars, watcher::Config::default())
            .default_backoff()
            .reflect(calendar_writer)
            .map(|e| e.map(|_| ()))
            .boxed(),
        watcher(scans, watcher::Config::default())
            .default_backoff()
            .reflect(scan_writer)
            .map(|e| e.map(|_| ()))
            .boxed(),
        watcher(plans, watcher::Config::default())
            .default_backoff()
            .reflect(plan_writer)
            .map(|e| e.map(|_| ()))
            .boxed(),
        watcher(baselines, watcher::Config::default())
            .default_backoff()
            .reflect(baseline_writer)
            .map(|e| e.map(|_| ()))
            .boxed(),
    ]);
    let mut reported_facts_adopted = false;
    futures::pin_mut!(streams);
    loop {
        tokio::select! {
            event = streams.next() => match event {
                None => break,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "watch failed; retrying");
                    continue;
                }
                Some(Ok(())) => {}
            },
            changed = rules.policy.changed() => if changed.is_err() { break },
        }
        let policy = rules.policy.borrow_and_update().clone();
        publish(
            &server_store,
            &policy_store,
            &calendar_store,
            &scan_store,
            &plan_store,
            &baseline_store,
            &server,
            &state_dir,
            (&policy, &rules.root),
            &tx,
            &reporter,
            &mut reported_facts_adopted,
        )
        .await;
    }
}

fn replace_if_changed<T: PartialEq>(tx: &watch::Sender<T>, next: T) {
    tx.send_if_modified(|current| {
        if *current == next {
            false
        } else {
            *current = next;
            true
        }
    });
}

#[allow(clippy::too_many_arguments)]
async fn publish(
    servers: &Store<Server>,
    policies: &Store<MonitoringPolicy>,
    calendars: &Store<OperationCalendar>,
    scans: &Store<VirusScanSchedule>,
    plans: &Store<BackupPlan>,
    baselines: &Store<PatchBaseline>,
    name: &str,
    state_dir: &std::path::Path,
    (policy, root): (&crate::hostpolicy::HostPolicy, &std::path::Path),
    tx: &Outputs,
    reporter: &Reporter,
    adopted: &mut bool,
) {
    // Until the first lists are in, the stores are empty: keep the saved assignment.
    // (Asked without waiting: the stores fill only while the watch streams are polled.)
    let ready = |ready: Option<Result<(), _>>| matches!(ready, Some(Ok(())));
    // Every store: a job judged before its calendar has arrived would say the calendar does
    // not exist (and replace the saved assignment that had it).
    if !ready(servers.wait_until_ready().now_or_never())
        || !ready(policies.wait_until_ready().now_or_never())
        || !ready(calendars.wait_until_ready().now_or_never())
        || !ready(scans.wait_until_ready().now_or_never())
        || !ready(plans.wait_until_ready().now_or_never())
        || !ready(baselines.wait_until_ready().now_or_never())
    {
        return;
    }
    let Some(server) = servers.state().into_iter().find(|s| s.name_any() == name) else {
        tracing::warn!(server = %name, "this host's Server does not exist; no checks");
        tx.checks
            .send_if_modified(|a| !std::mem::take(a).is_empty());
        tx.scans.send_if_modified(|a| !std::mem::take(a).is_empty());
        tx.backups
            .send_if_modified(|a| !std::mem::take(a).is_empty());
        tx.patches
            .send_if_modified(|a| !std::mem::take(a).is_empty());
        return;
    };
    if !*adopted {
        reporter
            .adopt_reported_facts(server.status.as_ref().and_then(|s| s.observed.clone()))
            .await;
        *adopted = true;
    }
    reporter.set_server_uid(server.uid()).await;
    let all: Vec<MonitoringPolicy> = policies.state().iter().map(|p| (**p).clone()).collect();
    let all_calendars: Vec<OperationCalendar> =
        calendars.state().iter().map(|c| (**c).clone()).collect();
    let all_scans: Vec<VirusScanSchedule> = scans.state().iter().map(|s| (**s).clone()).collect();
    let all_plans: Vec<BackupPlan> = plans.state().iter().map(|p| (**p).clone()).collect();
    let all_baselines: Vec<PatchBaseline> =
        baselines.state().iter().map(|b| (**b).clone()).collect();
    // What the host's policy refuses does not run at all; the refusals go to status.
    let admitted = crate::hostpolicy::admit(
        policy,
        root,
        assignment(&server, &all),
        scan_jobs(&server, &all_scans, &all_calendars),
        backup_jobs(&server, &all_plans, &all_calendars),
        patch_jobs(&server, &all_baselines, &all_calendars),
    );
    tracing::debug!(
        checks = admitted.checks.len(),
        refusals = admitted.refusals.len(),
        "assignment evaluated"
    );
    reporter.refusals(admitted.refusals).await;
    kept::checks(state_dir).keep(&admitted.checks);
    kept::scans(state_dir).keep(&admitted.scans);
    kept::backups(state_dir).keep(&admitted.backups);
    kept::patches(state_dir).keep(&admitted.patches);
    let have_jobs = !admitted.scans.is_empty();
    let have_plans = !admitted.backups.is_empty();
    let have_baselines = !admitted.patches.is_empty();
    replace_if_changed(&tx.checks, admitted.checks);
    replace_if_changed(&tx.scans, admitted.scans);
    replace_if_changed(&tx.backups, admitted.backups);
    replace_if_changed(&tx.patches, admitted.patches);
    // A new value of an on-request annotation runs the operation once (also across restarts);
    // it waits until a schedule or plan selecting the server has arrived.
    for (annotation, ready, sender) in [
        (SCAN_NOW, have_jobs, &tx.scan_now),
        (BACKUP_NOW, have_plans, &tx.backup_now),
        (RESTORE, have_plans, &tx.restore),
        (PATCH_SCAN_NOW, have_baselines, &tx.patch_scan_now),
    ] {
        if ready && let Some(asked) = server.annotations().get(annotation) {
            let handled = kept::handled(state_dir, annotation);
            if *asked != handled.load() {
                handled.keep(asked);
                sender.send_replace(Some(asked.clone()));
            }
        }
    }
}

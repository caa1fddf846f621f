//! Backups: the BackupPlans that select this host — their rules on the plan's lane, the test
//! restore and the protected snapshot, the PostgreSQL journal shipments, a full backup and
//! restores on request.

use std::sync::Arc;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use unyo_crds::calendar::OperationCalendarSpec;
use unyo_crds::server::RequestState;

use super::{BACKUP_NOW, RESTORE, answer, backup, first_fire, operation, postgres, run_of};
use crate::facts::Collector;
use crate::report::Reporter;
use crate::schedule::{Job, Scheduler};

/// A BackupPlan this host runs, with its calendar.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct BackupJob {
    /// The BackupPlan.
    pub name: String,
    /// Its spec.
    pub spec: unyo_crds::backup::BackupPlanSpec,
    /// The OperationCalendar its rules name (the first rule's), when it exists.
    pub calendars: Vec<(String, OperationCalendarSpec)>,
}

fn next_rule_fire(
    job: &BackupJob,
    schedule: &unyo_crds::common::Schedule,
    after: Timestamp,
) -> Result<Option<Timestamp>, String> {
    let calendar = job
        .calendars
        .iter()
        .find(|(n, _)| *n == schedule.calendar)
        .map(|(_, c)| c);
    first_fire(
        &format!("BackupPlan {}", job.name),
        calendar,
        schedule,
        "spec.rules.schedule",
        after,
    )
}

/// The lane of a plan's runs: one per primary repository, so that two plans writing one
/// repository never run at the same time.
pub fn backup_lane(job: &BackupJob) -> String {
    format!("backup:{}", job.spec.repositories.primary.location)
}

/// The scheduled jobs of one BackupPlan: its rules, its test restore, its protected snapshot.
fn backup_jobs(job: &BackupJob, host: &Collector, reporter: &Reporter) -> Vec<Job> {
    let verify = job
        .spec
        .verification
        .as_ref()
        .and_then(|v| v.test_restore.clone());
    let protect = job
        .spec
        .protected_snapshot
        .as_ref()
        .map(|p| p.schedule.clone());
    let rules = job.spec.rules.iter().enumerate().map(|(r, rule)| {
        (
            format!("rule/{}", rule.name),
            rule.schedule.clone(),
            Some(r),
        )
    });
    let extra = [("verify", verify), ("protect", protect)]
        .into_iter()
        .filter_map(|(k, s)| Some((k.to_string(), s?, None)));
    let journals = postgres::sources(&job.spec)
        .map(|(source, pg)| journal_job(job, source, pg, host, reporter));
    rules
        .chain(extra)
        .map(|(what, schedule, rule)| {
            let (j, h, r) = (Arc::new(job.clone()), host.clone(), reporter.clone());
            let kind = what.clone();
            let run = run_of(move || {
                let (j, h, r, kind) = (j.clone(), h.clone(), r.clone(), kind.clone());
                async move {
                    match kind.as_str() {
                        "verify" => verify_one(&j, &h, &r).await,
                        "protect" => protect_one(&j, &h, &r).await,
                        _ => {
                            let _ = backup_one(&j, rule, &h, &r).await;
                        }
                    }
                }
            });
            let sched_job = job.clone();
            Job {
                key: format!("backup/{}/{what}", job.name),
                lane: backup_lane(job),
                missed: schedule.missed_runs.unwrap_or_default(),
                next_after: Arc::new(move |t| next_rule_fire(&sched_job, &schedule, t)),
                run,
            }
        })
        .chain(journals)
        .collect()
}

/// The job that ships a PostgreSQL source's archived WAL every `shipEvery` (default 1m).
fn journal_job(
    job: &BackupJob,
    source: &unyo_crds::backup::BackupSource,
    pg: &unyo_crds::backup::PostgresSource,
    host: &Collector,
    reporter: &Reporter,
) -> Job {
    let every = pg
        .ship_every
        .as_deref()
        .and_then(unyo_crds::common::signed_duration)
        .filter(|d| d.is_positive())
        .unwrap_or(jiff::SignedDuration::from_mins(1));
    let (j, h, r, name) = (
        Arc::new(job.clone()),
        host.clone(),
        reporter.clone(),
        source.name.clone(),
    );
    Job {
        key: format!("backup/{}/journal/{}", job.name, source.name),
        lane: backup_lane(job),
        missed: unyo_crds::common::MissedRuns::RunOnce,
        next_after: Arc::new(move |t| Ok(t.checked_add(every).ok())),
        run: run_of(move || {
            let (j, h, r, name) = (j.clone(), h.clone(), r.clone(), name.clone());
            async move { ship_one(&j, &name, &h, &r).await }
        }),
    }
}

/// Ships one source's journal and records the shipment.
async fn ship_one(job: &BackupJob, source: &str, host: &Collector, reporter: &Reporter) {
    use unyo_crds::backup::{JournalShipment, RunResult};
    let mut state = backup_state(reporter, &job.name).await;
    let (j, h, s) = (job.clone(), host.clone(), source.to_string());
    let done = tokio::task::spawn_blocking(move || {
        backup::ship_journal(&j.name, &j.spec, &s, &h.path("/"))
    })
    .await
    .unwrap_or_else(|e| Err(e.to_string()));
    let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Timestamp::now());
    let before = state.journals.iter().find(|x| x.source == source).cloned();
    let before_key = before
        .as_ref()
        .map(|b| (b.result, b.last_segment.clone(), b.shipped_at.clone()));
    let mut entry = JournalShipment {
        source: source.to_string(),
        result: RunResult::Succeeded,
        at: now.clone(),
        shipped_at: before.as_ref().and_then(|b| b.shipped_at.clone()),
        last_segment: before.and_then(|b| b.last_segment),
        message: None,
    };
    match done {
        Ok(Some(shipped)) => {
            entry.shipped_at = Some(now);
            entry.last_segment = shipped.last.clone().or(entry.last_segment);
            entry.message = Some(format!(
                "shipped {} file(s) as snapshot {}",
                shipped.files, shipped.made.snapshot
            ));
            tracing::info!(plan = %job.name, source, files = shipped.files, "WAL shipped");
        }
        Ok(None) => entry.message = Some("no new WAL in the spool".into()),
        Err(e) => {
            entry.result = RunResult::Failed;
            entry.message = Some(e.clone());
            reporter
                .note(
                    "JournalNotShipped",
                    &format!("{}/{source}: {e}", job.name),
                    true,
                )
                .await;
        }
    }
    let changed = before_key
        != Some((
            entry.result,
            entry.last_segment.clone(),
            entry.shipped_at.clone(),
        ));
    state.journals.retain(|x| x.source != source);
    state.journals.push(entry);
    if changed {
        record_backup(reporter, state, None).await;
    }
}

/// Keeps the scheduler's backup jobs those of the plans this host runs, and runs a full backup
/// of every plan that allows it, and restores, on request — each on its plan's lane.
pub async fn run_backups(
    mut jobs: watch::Receiver<Vec<BackupJob>>,
    mut backup_now: watch::Receiver<Option<String>>,
    mut restore: watch::Receiver<Option<String>>,
    policy: watch::Receiver<std::sync::Arc<crate::hostpolicy::HostPolicy>>,
    host: Collector,
    reporter: Reporter,
    scheduler: Scheduler,
) {
    loop {
        let current = jobs.borrow_and_update().clone();
        let scheduled = current
            .iter()
            .flat_map(|j| backup_jobs(j, &host, &reporter));
        scheduler.set("backups", scheduled.collect());
        tokio::select! {
            changed = jobs.changed() => if changed.is_err() { break },
            changed = restore.changed() => {
                if changed.is_err() {
                    break;
                }
                let asked = restore.borrow_and_update().clone();
                if let Some(request) = asked {
                    let latest = jobs.borrow().clone();
                    let rules = policy.borrow().clone();
                    let lane = parse_restore(&request)
                        .ok()
                        .and_then(|r| latest.iter().find(|j| j.name == r.plan))
                        .map_or("backup:requests".to_string(), backup_lane);
                    let (h, r) = (host.clone(), reporter.clone());
                    scheduler.submit(&lane, "restore", run_of(move || {
                        let (latest, request, rules, h, r) =
                            (latest.clone(), request.clone(), rules.clone(), h.clone(), r.clone());
                        async move { restore_one(&latest, &request, &rules, &h, &r).await }
                    }));
                }
            }
            changed = backup_now.changed() => {
                if changed.is_err() {
                    break;
                }
                let asked = backup_now.borrow_and_update().clone();
                if let Some(reason) = asked {
                    tracing::info!(%reason, "full backup requested");
                    let latest = jobs.borrow().clone();
                    let (h, r, s) = (host.clone(), reporter.clone(), scheduler.clone());
                    tokio::spawn(async move { full_backup_now(&latest, &reason, &h, &r, &s).await });
                }
            }
        }
    }
}

/// A restore request: `<plan>:<generation>:<id>:<target>`, the generation a number (1 = newest)
/// or `verified` (the newest whose last verification succeeded).
/// With a generation of the form `@<unix microseconds>[@<source>]`, a PostgreSQL source is restored
/// to that time.
struct RestoreRequest<'a> {
    plan: &'a str,
    generation: Option<usize>,
    to_time: Option<(Timestamp, Option<&'a str>)>,
    id: &'a str,
    target: &'a str,
}

fn parse_restore(request: &str) -> Result<RestoreRequest<'_>, String> {
    let mut parts = request.splitn(4, ':');
    let (Some(plan), Some(generation), Some(id), Some(target)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(format!(
            "request {request:?}: expected <plan>:<generation>:<id>:<target>"
        ));
    };
    let bad = |n: &str| {
        format!(
            "request {id}: generation {n:?} is neither a number, \"verified\" nor @<unix microseconds>"
        )
    };
    let (generation, to_time) = match generation {
        "verified" => (None, None),
        at if at.starts_with('@') => {
            let mut parts = at[1..].splitn(2, '@');
            let micros = parts.next().and_then(|s| s.parse::<i64>().ok());
            let time = micros
                .and_then(|s| Timestamp::from_microsecond(s).ok())
                .ok_or_else(|| bad(at))?;
            (None, Some((time, parts.next())))
        }
        n => (Some(n.parse().map_err(|_| bad(n))?), None),
    };
    Ok(RestoreRequest {
        plan,
        generation,
        to_time,
        id,
        target,
    })
}

async fn restore_one(
    jobs: &[BackupJob],
    request: &str,
    policy: &crate::hostpolicy::HostPolicy,
    host: &Collector,
    reporter: &Reporter,
) {
    let r = match parse_restore(request) {
        Ok(r) => r,
        Err(e) => return answer(reporter, RESTORE, request, RequestState::Refused, &e).await,
    };
    if let Some(refusal) = policy.judge_restore(&host.path("/"), r.target) {
        let message = format!(
            "request {}: refused by host policy rule {}: {}",
            r.id, refusal.rule, refusal.message
        );
        return answer(reporter, RESTORE, request, RequestState::Refused, &message).await;
    }
    let Some(job) = jobs.iter().find(|j| j.name == r.plan).cloned() else {
        let message = format!(
            "request {}: no BackupPlan {} selects this server (or the host policy refused it)",
            r.id, r.plan
        );
        return answer(reporter, RESTORE, request, RequestState::Failed, &message).await;
    };
    reporter
        .request(
            RESTORE,
            request,
            RequestState::Running,
            &format!("request {}: restoring", r.id),
        )
        .await;
    let (host, target, generation) = (host.clone(), r.target.to_string(), r.generation);
    let verified = backup_state(reporter, &job.name).await.verified;
    let to_time = r.to_time.map(|(t, s)| (t, s.map(String::from)));
    let done = tokio::task::spawn_blocking(move || {
        let root = host.path("/");
        match &to_time {
            Some((at, source)) => postgres::restore_to_time(&postgres::ToTime {
                plan: &job.name,
                spec: &job.spec,
                root: &root,
                source: source.as_deref(),
                at: *at,
                target: &target,
            }),
            None => backup::restore_generation(
                &job.name, &job.spec, &root, generation, &verified, &target,
            ),
        }
    })
    .await
    .unwrap_or_else(|e| Err(e.to_string()));
    match done {
        Ok(m) => {
            answer(
                reporter,
                RESTORE,
                request,
                RequestState::Succeeded,
                &format!("request {}: {m}", r.id),
            )
            .await
        }
        Err(e) => {
            answer(
                reporter,
                RESTORE,
                request,
                RequestState::Failed,
                &format!("request {}: {e}", r.id),
            )
            .await
        }
    }
}

/// A full backup of every plan that allows one on request, each on its plan's lane; answered
/// in the Server's status once all have run.
async fn full_backup_now(
    jobs: &[BackupJob],
    reason: &str,
    host: &Collector,
    reporter: &Reporter,
    scheduler: &Scheduler,
) {
    let plans: Vec<&BackupJob> = jobs.iter().filter(|j| j.spec.full_on_request).collect();
    if plans.is_empty() {
        let m = "no BackupPlan selecting this server takes a full backup on request";
        return answer(reporter, BACKUP_NOW, reason, RequestState::Failed, m).await;
    }
    reporter
        .request(BACKUP_NOW, reason, RequestState::Running, "backing up")
        .await;
    let mut results = Vec::new();
    for job in &plans {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let tx = Arc::new(std::sync::Mutex::new(Some(tx)));
        let (j, h, r) = (Arc::new((*job).clone()), host.clone(), reporter.clone());
        scheduler.submit(
            &backup_lane(job),
            "backup-now",
            run_of(move || {
                let (j, h, r, tx) = (j.clone(), h.clone(), r.clone(), tx.clone());
                async move {
                    let done = backup_one(&j, None, &h, &r).await;
                    if let Some(tx) = tx.lock().ok().and_then(|mut t| t.take()) {
                        let _ = tx.send(done);
                    }
                }
            }),
        );
        results.push((job.name.as_str(), rx));
    }
    let mut failed = Vec::new();
    for (name, rx) in results {
        let done = rx
            .await
            .unwrap_or_else(|_| Err("the run was dropped".into()));
        if let Err(why) = done {
            failed.push(format!("{name}: {why}"));
        }
    }
    let names: Vec<&str> = plans.iter().map(|j| j.name.as_str()).collect();
    if failed.is_empty() {
        let m = format!("full backup of {} succeeded", names.join(", "));
        answer(reporter, BACKUP_NOW, reason, RequestState::Succeeded, &m).await;
    } else {
        let m = format!("full backup failed for {}", failed.join("; "));
        answer(reporter, BACKUP_NOW, reason, RequestState::Failed, &m).await;
    }
}

async fn protect_one(job: &BackupJob, host: &Collector, reporter: &Reporter) {
    let (job, host) = (job.clone(), host.clone());
    let done = tokio::task::spawn_blocking(move || {
        let root = host.path("/");
        let date = Timestamp::now().strftime("%Y-%m-%d").to_string();
        let taken = backup::take_protected(&job.name, &job.spec, &root, &date);
        let keep = job
            .spec
            .protected_snapshot
            .as_ref()
            .and_then(|p| unyo_crds::common::signed_duration(&p.keep_for))
            .unwrap_or(jiff::SignedDuration::from_hours(24 * 30));
        let expired = backup::expire_protected(&job.name, &job.spec, &root, keep, Timestamp::now());
        (job.name, taken, expired)
    })
    .await;
    match done {
        Ok((plan, taken, expired)) => {
            match taken {
                Ok((true, m)) => {
                    reporter
                        .note("SnapshotProtected", &format!("{plan}: {m}"), false)
                        .await
                }
                Ok((false, m)) => {
                    reporter
                        .note("SnapshotNotProtected", &format!("{plan}: {m}"), true)
                        .await
                }
                Err(e) => {
                    reporter
                        .note("SnapshotNotProtected", &format!("{plan}: {e}"), true)
                        .await
                }
            }
            match expired {
                Ok(ids) if !ids.is_empty() => {
                    reporter
                        .note(
                            "ProtectedSnapshotsExpired",
                            &format!("{plan}: unlocked and forgot {}", ids.join(", ")),
                            false,
                        )
                        .await
                }
                Ok(_) => {}
                Err(e) => {
                    reporter
                        .note("ProtectedSnapshotsExpired", &format!("{plan}: {e}"), true)
                        .await
                }
            }
        }
        Err(e) => tracing::error!(error = %e, "the protected snapshot task failed"),
    }
}

async fn verify_one(job: &BackupJob, host: &Collector, reporter: &Reporter) {
    let mut state = backup_state(reporter, &job.name).await;
    let (job, host) = (job.clone(), host.clone());
    let done = tokio::task::spawn_blocking(move || {
        backup::test_restore(&job.name, &job.spec, &host.path("/"), &mut state);
        state
    })
    .await;
    match done {
        Ok(state) => {
            if let Some(v) = &state.last_verification {
                tracing::info!(plan = %state.plan, result = ?v.result, message = v.message.as_deref().unwrap_or(""), "test restore finished");
            }
            record_backup(reporter, state, None).await;
        }
        Err(e) => tracing::error!(error = %e, "the test restore task failed"),
    }
}

/// Runs a rule (or, with None, a full backup on request); whether it succeeded, or why not.
async fn backup_one(
    job: &BackupJob,
    rule: Option<usize>,
    host: &Collector,
    reporter: &Reporter,
) -> Result<(), String> {
    let mut state = backup_state(reporter, &job.name).await;
    let (name, kind) = rule
        .and_then(|r| job.spec.rules.get(r))
        .map(|r| (r.name.as_str(), r.backup_type))
        .unwrap_or(("on-request", unyo_crds::backup::BackupType::Full));
    backup_starts(reporter, &job.name, name, kind);
    let (job, host) = (job.clone(), host.clone());
    let done = tokio::task::spawn_blocking(move || {
        let rule = rule.and_then(|r| job.spec.rules.get(r));
        backup::run_rule(&job.name, &job.spec, rule, &host.path("/"), &mut state);
        state
    })
    .await;
    match done {
        Ok(state) => {
            let last = [&state.last_full, &state.last_differential]
                .into_iter()
                .flatten()
                .max_by_key(|r| r.started_at.0)
                .cloned();
            if let Some(run) = &last {
                tracing::info!(plan = %state.plan, rule = %run.rule, kind = ?run.backup_type, result = ?run.result, message = run.message.as_deref().unwrap_or(""), "backup finished");
            }
            let outcome = match &last {
                Some(r) if r.result == unyo_crds::backup::RunResult::Succeeded => Ok(()),
                Some(r) => Err(r.message.clone().unwrap_or_else(|| "failed".into())),
                None => Err("no run was recorded".into()),
            };
            record_backup(reporter, state, last).await;
            outcome
        }
        Err(e) => {
            tracing::error!(error = %e, "the backup task failed");
            Err("the backup task failed".into())
        }
    }
}

/// This host's backup state per plan: its part of `status.operations.backups`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(transparent)]
pub struct BackupsSlot(pub Vec<unyo_crds::backup::HostBackup>);

impl crate::report::Slot for BackupsSlot {
    const FILE: &'static str = "host-backups";
    fn fill(&self, into: &mut unyo_crds::server::OperationResults) {
        into.backups = self.0.clone();
    }
}

/// The run under way, kept so that a stop of the agent during it is reported as an
/// interruption (its `message` holds the plan meanwhile).
const RUNNING: &str = "backup-running";

/// The backup state of this host under `plan` (kept across restarts).
async fn backup_state(reporter: &Reporter, plan: &str) -> unyo_crds::backup::HostBackup {
    let slot = reporter.slot::<BackupsSlot>().await;
    slot.0
        .into_iter()
        .find(|b| b.plan == plan)
        .unwrap_or(unyo_crds::backup::HostBackup {
            plan: plan.to_string(),
            ..Default::default()
        })
}

/// Notes that a backup of `plan` starts (kept until [`record_backup`] records its end).
fn backup_starts(reporter: &Reporter, plan: &str, rule: &str, kind: unyo_crds::backup::BackupType) {
    let run = unyo_crds::backup::BackupRun {
        rule: rule.to_string(),
        backup_type: kind,
        result: unyo_crds::backup::RunResult::Interrupted,
        started_at: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            crate::report::now_seconds(),
        ),
        finished_at: None,
        snapshot: None,
        copied: None,
        bytes_added: None,
        message: Some(plan.to_string()),
    };
    reporter.kept(RUNNING).keep(&Some(run));
}

/// Records a plan's backup state, and a `BackupFailed` Event when `last` failed.
async fn record_backup(
    reporter: &Reporter,
    state: unyo_crds::backup::HostBackup,
    last: Option<unyo_crds::backup::BackupRun>,
) {
    let failed = last.filter(|r| r.result == unyo_crds::backup::RunResult::Failed);
    let notes: Vec<crate::report::JournalEntry> = failed
        .map(|run| crate::report::JournalEntry {
            policy: state.plan.clone(),
            check: format!("backup:{}", run.rule),
            state: unyo_crds::server::CheckState::Critical,
            since: run.started_at.0,
            value: None,
            message: run.message.clone().unwrap_or_default(),
            reason: Some("BackupFailed".into()),
        })
        .into_iter()
        .collect();
    reporter
        .update::<BackupsSlot>(|slot| {
            put_plan(slot, state);
            notes
        })
        .await;
    reporter
        .kept::<Option<unyo_crds::backup::BackupRun>>(RUNNING)
        .keep(&None);
}

fn put_plan(slot: &mut BackupsSlot, state: unyo_crds::backup::HostBackup) {
    slot.0.retain(|b| b.plan != state.plan);
    slot.0.push(state);
    slot.0.sort_by(|a, b| a.plan.cmp(&b.plan));
}

/// A backup an earlier run of the agent left under way is reported as interrupted (and not run
/// again by itself).
async fn recover_interrupted(reporter: &Reporter) {
    use unyo_crds::backup::{BackupType, RunResult};
    let running = reporter.kept::<Option<unyo_crds::backup::BackupRun>>(RUNNING);
    let Some((plan, mut run)) = running.load().and_then(|r| Some((r.message.clone()?, r))) else {
        return;
    };
    tracing::warn!(%plan, rule = %run.rule, "a backup was interrupted by the agent's stop; reported as Interrupted");
    run.result = RunResult::Interrupted;
    run.finished_at = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        crate::report::now_seconds(),
    ));
    run.message = Some("interrupted: the agent stopped during this run".into());
    let mut state = backup_state(reporter, &plan).await;
    match run.backup_type {
        BackupType::Full => state.last_full = Some(run),
        BackupType::Differential => state.last_differential = Some(run),
    }
    reporter
        .update::<BackupsSlot>(|slot| {
            put_plan(slot, state);
            vec![]
        })
        .await;
    running.keep(&None);
}

/// The backup operation of this host.
pub fn backups(h: &super::Host) -> Backups {
    Backups {
        policy: h.policy.clone(),
        host: h.collector.clone(),
        reporter: h.reporter.clone(),
        scheduler: h.scheduler.clone(),
    }
}

/// Backups: the BackupPlans that select this host.
pub struct Backups {
    /// The host policy in force (restores are judged when asked).
    pub policy: watch::Receiver<Arc<crate::hostpolicy::HostPolicy>>,
    /// The host.
    pub host: Collector,
    /// Where results go.
    pub reporter: Reporter,
    /// Where its runs are queued.
    pub scheduler: Scheduler,
}

impl operation::Operation for Backups {
    type Resource = unyo_crds::BackupPlan;
    type Job = BackupJob;
    type Slot = BackupsSlot;
    const NAME: &'static str = "backups";
    const REQUESTS: &'static [&'static str] = &[BACKUP_NOW, RESTORE];

    fn jobs(
        server: &unyo_crds::Server,
        all: &[Self::Resource],
        calendars: &[unyo_crds::OperationCalendar],
    ) -> Vec<BackupJob> {
        use kube::ResourceExt;
        unyo_crds::selection::backup_plans_for(server, all)
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

    fn admit(
        policy: &crate::hostpolicy::HostPolicy,
        root: &std::path::Path,
        job: BackupJob,
    ) -> Result<BackupJob, Vec<unyo_crds::server::Refusal>> {
        let refused = policy.judge_backup(&job.name, &job.spec, root);
        if refused.is_empty() {
            Ok(job)
        } else {
            Err(refused)
        }
    }

    fn run(
        self,
        jobs: watch::Receiver<Vec<BackupJob>>,
        mut requests: operation::Requests,
    ) -> futures::future::BoxFuture<'static, ()> {
        let backup_now = operation::request(&mut requests, BACKUP_NOW);
        let restore = operation::request(&mut requests, RESTORE);
        Box::pin(async move {
            recover_interrupted(&self.reporter).await;
            run_backups(
                jobs,
                backup_now,
                restore,
                self.policy,
                self.host,
                self.reporter,
                self.scheduler,
            )
            .await
        })
    }
}

//! Backup health: the `BackupHealthy` condition of each Server a BackupPlan selects (judged
//! here, written by the Server loop), and the BackupPlan loop, whose status shows per server the
//! last full, the last differential, the generations held and the next run.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use unyo_crds::backup::{
    BackupPlan, BackupPlanStatus, BackupRule, BackupRun, BackupType, HostBackup, RunResult,
    ServerBackupSummary,
};
use unyo_crds::selection::{backup_plans_for, selects};
use unyo_crds::workcalendar::schedule_on;
use unyo_crds::{OperationCalendar, Server};

use crate::conditions::ready;
use crate::context::{Context, namespace_summary};
use crate::error::Error;
use crate::stores::{Kinds, in_namespace, shared_in};

use unyo_crds::names::reasons;

/// A scheduled run counts as missed when no run of its type started within this time after it.
pub const MISSED_GRACE: SignedDuration = SignedDuration::from_hours(1);

/// The last fire time of `rule` at or before `before` (looking back 8 days), and the next after
/// `after`.
fn last_and_next(
    plan: &BackupPlan,
    rule: &BackupRule,
    calendars: &[OperationCalendar],
    before: Timestamp,
    after: Timestamp,
) -> (Option<Timestamp>, Option<Timestamp>) {
    let Some((work, sched)) = schedule_on(
        calendars,
        plan.namespace().as_deref(),
        &rule.schedule,
        "spec.rules.schedule",
    ) else {
        return (None, None);
    };
    (
        work.last_fire_time(&sched, before, SignedDuration::from_hours(24 * 8)),
        work.next_fire_time(&sched, after),
    )
}

fn host_state<'a>(server: &'a Server, plan: &str) -> Option<&'a HostBackup> {
    server
        .status
        .as_ref()?
        .operations
        .as_ref()?
        .backups
        .iter()
        .find(|b| b.plan == plan)
}

fn last_run(h: &HostBackup) -> Option<&BackupRun> {
    [&h.last_full, &h.last_differential]
        .into_iter()
        .flatten()
        .max_by_key(|r| r.started_at.0)
}

/// Judges `server` under `plan`: (healthy, reason, message).
pub fn health(
    server: &Server,
    plan: &BackupPlan,
    calendars: &[OperationCalendar],
    now: Timestamp,
) -> (bool, &'static str, String) {
    let name = plan.name_any();
    let Some(h) = host_state(server, &name) else {
        return (
            false,
            "NeverBackedUp",
            format!("no backup of plan {name} reported yet"),
        );
    };
    if let Some(run) = last_run(h).filter(|r| r.result == RunResult::Interrupted) {
        return (
            false,
            "BackupInterrupted",
            format!(
                "{} ({:?}) was interrupted: {}",
                run.rule,
                run.backup_type,
                run.message
                    .as_deref()
                    .unwrap_or("the agent stopped during the run")
            ),
        );
    }
    if let Some(run) = last_run(h).filter(|r| r.result == RunResult::Failed) {
        return (
            false,
            "BackupFailed",
            format!(
                "{} ({:?}) failed: {}",
                run.rule,
                run.backup_type,
                run.message.clone().unwrap_or_default()
            ),
        );
    }
    for rule in &plan.spec.rules {
        let (due, _) = last_and_next(
            plan,
            rule,
            calendars,
            unyo_crds::patching::earlier(now, MISSED_GRACE),
            now,
        );
        let ran = match rule.backup_type {
            // A full also satisfies a differential that was due.
            BackupType::Full => h.last_full.as_ref().map(|r| r.started_at.0),
            BackupType::Differential => [&h.last_full, &h.last_differential]
                .into_iter()
                .flatten()
                .map(|r| r.started_at.0)
                .max(),
        };
        if let Some(d) = due
            && ran.is_none_or(|r| r < d)
        {
            return (
                false,
                "MissedRun",
                format!("rule {} was due at {d} and did not run", rule.name),
            );
        }
    }
    if plan.spec.repositories.secondary.is_some()
        && last_run(h).is_some_and(|r| r.copied == Some(false))
    {
        return (
            false,
            "NotCopied",
            "the last run was not copied to the secondary repository".into(),
        );
    }
    if let Some(j) = h.journals.iter().find(|j| j.result == RunResult::Failed) {
        return (
            false,
            reasons::JOURNAL_NOT_SHIPPED,
            format!(
                "the journal (WAL) of source {} was not shipped at {}: {}",
                j.source,
                j.at.0,
                j.message.as_deref().unwrap_or("failed")
            ),
        );
    }
    if let Some(message) = offsite_too_old(plan, h, now) {
        return (false, reasons::NOT_COPIED_OFFSITE, message);
    }
    if h.last_verification
        .as_ref()
        .is_some_and(|v| v.result == RunResult::Failed)
    {
        return (
            false,
            "VerificationFailed",
            "the last repository check failed".into(),
        );
    }
    (
        true,
        "Healthy",
        format!("{} generation(s) held", h.generations.unwrap_or(0)),
    )
}

/// How old the newest backup off site may be when the plan does not say.
pub const OFFSITE_MAX_AGE: SignedDuration = SignedDuration::from_hours(48);

/// Why the backup held off site is too old, when the plan keeps one off site and it is.
fn offsite_too_old(plan: &BackupPlan, h: &HostBackup, now: Timestamp) -> Option<String> {
    let repos = &plan.spec.repositories;
    let offsite = repos.primary.offsite || repos.secondary.as_ref().is_some_and(|r| r.offsite);
    if !offsite {
        return None;
    }
    let allowed = repos
        .offsite_max_age
        .as_deref()
        .and_then(unyo_crds::common::signed_duration)
        .unwrap_or(OFFSITE_MAX_AGE);
    let Some(at) = &h.offsite_copy_at else {
        return Some("no backup has been copied off site yet".into());
    };
    let age = now.duration_since(at.0);
    (age > allowed).then(|| {
        format!(
            "the newest backup off site was taken at {} ({}h ago; the plan allows {}h)",
            at.0,
            age.as_hours(),
            allowed.as_hours()
        )
    })
}

/// The BackupHealthy judgement of a server under every plan selecting it (the first unhealthy
/// one decides), or None when no plan selects it.
pub fn server_health(
    server: &Server,
    plans: &[BackupPlan],
    calendars: &[OperationCalendar],
    now: Timestamp,
) -> Option<(bool, &'static str, String)> {
    let all: Vec<_> = backup_plans_for(server, plans)
        .into_iter()
        .map(|p| health(server, p, calendars, now))
        .collect();
    all.iter().find(|h| !h.0).or(all.first()).cloned()
}

/// The status of plan `p` over the Servers of its namespace at `now` (None when it is
/// unchanged), and when to look again: when a run next counts as missed.
pub fn decide(
    p: &BackupPlan,
    servers: &[Arc<Server>],
    calendars: &[OperationCalendar],
    now: Timestamp,
) -> (Option<BackupPlanStatus>, Option<Timestamp>) {
    let prev = p.status.clone().unwrap_or_default();
    let mut status = BackupPlanStatus {
        observed_generation: p.meta().generation,
        ..Default::default()
    };
    let mut healthy = 0;
    let mut selector_error = None;
    let mut next_wake: Option<Timestamp> = None;
    for s in servers {
        match selects(&p.spec.selector, s.labels()) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                selector_error = Some(e.to_string());
                break;
            }
        }
        if health(s, p, calendars, now).0 {
            healthy += 1;
        }
        let h = host_state(s, &p.name_any());
        let next_run = p
            .spec
            .rules
            .iter()
            .filter_map(|r| last_and_next(p, r, calendars, now, now).1)
            .min();
        if let Some(n) = next_run {
            let due = n.checked_add(MISSED_GRACE).unwrap_or(n);
            next_wake = Some(next_wake.map_or(due, |w| w.min(due)));
        }
        status.servers.push(ServerBackupSummary {
            server: s.name_any(),
            last_full: h.and_then(|h| h.last_full.clone()),
            last_differential: h.and_then(|h| h.last_differential.clone()),
            generations: h.and_then(|h| h.generations),
            next_run: next_run.map(Time),
        });
    }
    status.healthy_servers = Some(healthy);
    let missing_calendar = p.spec.rules.iter().find(|r| {
        !calendars
            .iter()
            .any(|c| c.name_any() == r.schedule.calendar)
    });
    let (ok, reason, message) = match (&selector_error, missing_calendar) {
        (Some(e), _) => (false, reasons::INVALID_SELECTOR, e.clone()),
        (None, Some(r)) => (
            false,
            reasons::CALENDAR_NOT_FOUND,
            format!(
                "spec.rules[{}].schedule.calendar: OperationCalendar {} does not exist",
                r.name, r.schedule.calendar
            ),
        ),
        (None, None) => (
            true,
            reasons::EVALUATED,
            format!("{healthy} of {} server(s) healthy", status.servers.len()),
        ),
    };
    status.conditions = ready(
        &prev.conditions,
        ok,
        reason,
        message,
        p.meta().generation,
        now,
    );
    unyo_crds::limits::Bounded::bound(&mut status);
    ((prev != status).then_some(status), next_wake)
}

#[tracing::instrument(skip_all, fields(namespace = p.namespace().unwrap_or_default(), plan = p.name_any()))]
async fn reconcile(p: Arc<BackupPlan>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = p.namespace().unwrap_or_default();
    let now = ctx.clock.now();
    let servers = shared_in(&ctx.stores.servers, &ns);
    let calendars = in_namespace(&ctx.stores.calendars, &ns);
    let (status, wake) = decide(&p, &servers, &calendars, now);
    if let Some(status) = status {
        ctx.apply_status(p.as_ref(), &status).await?;
    }
    Ok(ctx.requeue_at(wake, now))
}

/// Runs the BackupPlan loop until shutdown.
pub fn run(ctx: Arc<Context>, kinds: &Kinds) -> impl Future<Output = ()> + use<> {
    let controller = namespace_summary(kinds.plans.subscribe(), ctx.stores.plans.clone(), kinds);
    crate::context::run_loop(controller, ctx, "BackupPlan", reconcile)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stores::samples::sample;

    #[test]
    fn decide_lists_the_selected_servers_and_wakes_when_a_run_is_missed() {
        let now: Timestamp = "2026-12-01T10:00:00+09:00".parse().unwrap();
        let plan: BackupPlan = sample("backup.yaml");
        let calendars: Vec<OperationCalendar> = vec![sample("calendar.yaml")];
        let servers: Vec<Arc<Server>> = vec![
            Arc::new(sample("servers/db01.yaml")),
            Arc::new(sample("servers/web01.yaml")),
        ];
        let (status, wake) = decide(&plan, &servers, &calendars, now);
        let st = status.unwrap();
        let listed: Vec<&str> = st.servers.iter().map(|s| s.server.as_str()).collect();
        assert_eq!(listed, ["db01"], "web01 is not selected");
        assert_eq!(st.healthy_servers, Some(0), "db01 never backed up");
        assert_eq!(st.conditions[0].reason, "Evaluated");
        // Tonight's 19:30 run, plus the hour a run may be late.
        assert_eq!(wake, Some("2026-12-01T20:30:00+09:00".parse().unwrap()));
        let mut stored = plan.clone();
        stored.status = Some(st);
        assert!(
            decide(&stored, &servers, &calendars, now).0.is_none(),
            "written once"
        );
        let (status, _) = decide(&plan, &servers, &[], now);
        let c = &status.unwrap().conditions[0];
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", "CalendarNotFound")
        );
        assert!(c.message.contains("schedule.calendar"), "{}", c.message);
    }

    #[test]
    fn a_backup_off_site_older_than_the_plan_allows_is_not_healthy() {
        let now: Timestamp = "2026-12-02T09:00:00+09:00".parse().unwrap();
        let mut plan: BackupPlan = sample("backup.yaml");
        plan.spec.rules.clear();
        plan.spec.repositories.offsite_max_age = Some("1d".into());
        let run = |at: &str| BackupRun {
            rule: "weekly-full".into(),
            backup_type: BackupType::Full,
            result: RunResult::Succeeded,
            started_at: Time(at.parse().unwrap()),
            finished_at: None,
            snapshot: Some("abc".into()),
            copied: Some(true),
            bytes_added: None,
            message: None,
        };
        let judge = |plan: &BackupPlan, copy: Option<&str>| {
            let mut server: Server = sample("servers/db01.yaml");
            let h = HostBackup {
                plan: plan.name_any(),
                last_full: Some(run("2026-12-01T19:30:00+09:00")),
                offsite_copy_at: copy.map(|c| Time(c.parse().unwrap())),
                ..Default::default()
            };
            let st = server.status.get_or_insert_with(Default::default);
            st.operations.get_or_insert_with(Default::default).backups = vec![h];
            health(&server, plan, &[], now)
        };
        assert_eq!(judge(&plan, Some("2026-12-01T19:30:00+09:00")).1, "Healthy");
        let (ok, reason, message) = judge(&plan, Some("2026-11-30T19:30:00+09:00"));
        assert_eq!((ok, reason), (false, "NotCopiedOffsite"));
        assert!(
            message.contains("37h ago; the plan allows 24h"),
            "{message}"
        );
        assert_eq!(judge(&plan, None).1, "NotCopiedOffsite");
        // Without a repository off site, the age is not judged.
        plan.spec.repositories.secondary.as_mut().unwrap().offsite = false;
        assert_eq!(judge(&plan, None).1, "Healthy");
    }

    #[test]
    fn a_journal_that_was_not_shipped_is_not_healthy() {
        let now: Timestamp = "2026-12-02T09:00:00+09:00".parse().unwrap();
        let mut plan: BackupPlan = sample("backup.yaml");
        plan.spec.rules.clear();
        plan.spec.repositories.secondary = None;
        plan.spec.repositories.primary.offsite = false;
        let mut server: Server = sample("servers/db01.yaml");
        let journal = |result| unyo_crds::backup::JournalShipment {
            source: "db-data".into(),
            result,
            at: Time(now),
            shipped_at: None,
            last_segment: None,
            message: Some("restic backup: repository is locked".into()),
        };
        let h = HostBackup {
            plan: plan.name_any(),
            last_full: None,
            journals: vec![journal(RunResult::Failed)],
            ..Default::default()
        };
        let st = server.status.get_or_insert_with(Default::default);
        st.operations.get_or_insert_with(Default::default).backups = vec![h];
        let (ok, reason, message) = health(&server, &plan, &[], now);
        assert_eq!((ok, reason), (false, "JournalNotShipped"));
        assert!(
            message.contains("source db-data") && message.contains("locked"),
            "{message}"
        );
        let ops = server.status.as_mut().unwrap().operations.as_mut().unwrap();
        ops.backups[0].journals = vec![journal(RunResult::Succeeded)];
        assert_eq!(health(&server, &plan, &[], now).1, "Healthy");
    }
}

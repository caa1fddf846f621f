//! Antivirus health: the `AntivirusHealthy` condition of each Server a VirusScanSchedule
//! selects (judged here, written by the Server loop), and the VirusScanSchedule loop, whose
//! status lists by name the hosts with stale signatures and the hosts that missed a scheduled
//! scan, and the detections of the last scans.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use unyo_crds::backup::RunResult;
use unyo_crds::common::signed_duration;
use unyo_crds::selection::{selects, virus_scan_schedules_for};
use unyo_crds::virusscan::{VirusScanSchedule, VirusScanScheduleStatus};
use unyo_crds::workcalendar::schedule_on;
use unyo_crds::{OperationCalendar, Server};

use crate::conditions::ready;
use crate::context::{Context, namespace_summary};
use crate::error::Error;
use crate::stores::{Kinds, in_namespace, shared_in};
use unyo_crds::names::reasons;

/// A scheduled scan counts as missed when no scan started within this time after it.
pub const MISSED_GRACE: SignedDuration = SignedDuration::from_mins(15);
/// At most this many detections are listed in a VirusScanSchedule's status.
const MAX_DETECTIONS: usize = 50;

/// The antivirus judgement of one host under one schedule.
#[derive(Clone, Debug, PartialEq)]
pub struct Health {
    /// Healthy or not.
    pub ok: bool,
    /// CamelCase reason.
    pub reason: &'static str,
    /// For people.
    pub message: String,
    /// Signatures older than maxAge.
    pub stale: bool,
    /// A scheduled scan did not run.
    pub missed: bool,
}

/// The last fire time of `schedule` at or before `before`, looking back eight days.
fn last_fire(
    s: &VirusScanSchedule,
    calendars: &[OperationCalendar],
    before: Timestamp,
) -> Option<Timestamp> {
    let (work, sched) = schedule_on(
        calendars,
        s.namespace().as_deref(),
        &s.spec.schedule,
        "spec.schedule",
    )?;
    work.last_fire_time(&sched, before, SignedDuration::from_hours(24 * 8))
}

/// Judges `server` under schedule `s` at `now`.
pub fn health(
    server: &Server,
    s: &VirusScanSchedule,
    calendars: &[OperationCalendar],
    now: Timestamp,
) -> Health {
    let av = server
        .status
        .as_ref()
        .and_then(|st| st.operations.as_ref())
        .and_then(|o| o.antivirus.as_ref());
    let max_age =
        signed_duration(&s.spec.signatures.max_age).unwrap_or(SignedDuration::from_hours(24));
    let stale = av
        .and_then(|a| a.signature_time.as_ref())
        .is_none_or(|t| now.duration_since(t.0) > max_age);
    let last_started = av
        .and_then(|a| a.last_scan.as_ref())
        .map(|r| r.started_at.0);
    let due = last_fire(
        s,
        calendars,
        unyo_crds::patching::earlier(now, MISSED_GRACE),
    );
    let missed = match (due, last_started) {
        (Some(d), Some(l)) => l < d,
        (Some(_), None) => true,
        (None, _) => false,
    };
    let mk = |ok, reason, message: String| Health {
        ok,
        reason,
        message,
        stale,
        missed,
    };
    let Some(av) = av else {
        return mk(
            false,
            "NeverScanned",
            format!("no scan of {} reported yet", s.name_any()),
        );
    };
    let last = av.last_scan.as_ref();
    if last.is_some_and(|r| r.result == RunResult::Failed) {
        return mk(
            false,
            "ScanFailed",
            format!(
                "the last scan failed: {}",
                last.and_then(|r| r.message.clone()).unwrap_or_default()
            ),
        );
    }
    if !av.detections.is_empty() {
        return mk(
            false,
            "VirusDetected",
            format!(
                "{} detection(s) in the last scan: {}",
                av.detections.len(),
                av.detections
                    .iter()
                    .take(3)
                    .map(|d| format!("{} ({})", d.path, d.signature))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
    }
    if stale {
        return mk(
            false,
            "StaleSignatures",
            format!(
                "signatures from {} are older than {}",
                av.signature_time
                    .as_ref()
                    .map(|t| t.0.to_string())
                    .unwrap_or_else(|| "an unknown time".into()),
                s.spec.signatures.max_age
            ),
        );
    }
    if missed {
        return mk(
            false,
            "MissedScan",
            format!(
                "the scan due at {} did not run",
                due.map(|d| d.to_string()).unwrap_or_default()
            ),
        );
    }
    if s.spec.resident_check && av.resident_running == Some(false) {
        return mk(
            false,
            "ResidentNotRunning",
            "the resident scanner (clamd) is not running".into(),
        );
    }
    mk(
        true,
        "Healthy",
        format!(
            "last scan {} found nothing; signatures {}",
            last.map(|r| r.started_at.0.to_string()).unwrap_or_default(),
            av.signature_version.clone().unwrap_or_default()
        ),
    )
}

/// The AntivirusHealthy judgement of a server under every schedule selecting it (the first
/// unhealthy one decides), or None when no schedule selects it.
pub fn server_health(
    server: &Server,
    schedules: &[VirusScanSchedule],
    calendars: &[OperationCalendar],
    now: Timestamp,
) -> Option<Health> {
    let all: Vec<Health> = virus_scan_schedules_for(server, schedules)
        .into_iter()
        .map(|s| health(server, s, calendars, now))
        .collect();
    all.iter().find(|h| !h.ok).or(all.first()).cloned()
}

/// The status of schedule `s` over the Servers of its namespace at `now` (None when it is
/// unchanged), and when to look again: when its next scan would count as missed.
pub fn decide(
    s: &VirusScanSchedule,
    servers: &[Arc<Server>],
    calendars: &[OperationCalendar],
    now: Timestamp,
) -> (Option<VirusScanScheduleStatus>, Option<Timestamp>) {
    let ns = s.namespace().unwrap_or_default();
    let prev = s.status.clone().unwrap_or_default();
    let mut status = VirusScanScheduleStatus {
        observed_generation: s.meta().generation,
        ..Default::default()
    };
    let mut selector_error = None;
    for server in servers {
        match selects(&s.spec.selector, server.labels()) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                selector_error = Some(e.to_string());
                break;
            }
        }
        let h = health(server, s, calendars, now);
        if h.stale {
            status.stale_hosts.push(server.name_any());
        }
        if h.missed {
            status.missed_hosts.push(server.name_any());
        }
        if let Some(av) = server
            .status
            .as_ref()
            .and_then(|st| st.operations.as_ref())
            .and_then(|o| o.antivirus.as_ref())
        {
            status.detections.extend(av.detections.iter().cloned());
        }
    }
    status.detections.sort_by(|a, b| b.at.cmp(&a.at));
    status.detection_count = Some(status.detections.len() as u32);
    status.detections.truncate(MAX_DETECTIONS);
    status.stale_count = Some(status.stale_hosts.len() as u32);
    status.missed_count = Some(status.missed_hosts.len() as u32);
    let calendar_missing = !calendars
        .iter()
        .any(|c| c.name_any() == s.spec.schedule.calendar);
    let (ok, reason, message) = match (&selector_error, calendar_missing) {
        (Some(e), _) => (false, reasons::INVALID_SELECTOR, e.clone()),
        (None, true) => (
            false,
            reasons::CALENDAR_NOT_FOUND,
            format!(
                "spec.schedule.calendar: OperationCalendar {} does not exist",
                s.spec.schedule.calendar
            ),
        ),
        (None, false) => (
            true,
            reasons::EVALUATED,
            format!(
                "{} stale, {} missed, {} detection(s)",
                status.stale_hosts.len(),
                status.missed_hosts.len(),
                status.detection_count.unwrap_or(0)
            ),
        ),
    };
    status.conditions = ready(
        &prev.conditions,
        ok,
        reason,
        message,
        s.meta().generation,
        now,
    );
    unyo_crds::limits::Bounded::bound(&mut status);
    let next_due = schedule_on(calendars, Some(&ns), &s.spec.schedule, "spec.schedule")
        .and_then(|(w, sched)| w.next_fire_time(&sched, now.checked_sub(MISSED_GRACE).ok()?))
        .and_then(|t| t.checked_add(MISSED_GRACE).ok());
    ((prev != status).then_some(status), next_due)
}

#[tracing::instrument(skip_all, fields(namespace = s.namespace().unwrap_or_default(), schedule = s.name_any()))]
async fn reconcile(s: Arc<VirusScanSchedule>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = s.namespace().unwrap_or_default();
    let now = ctx.clock.now();
    let servers = shared_in(&ctx.stores.servers, &ns);
    let calendars = in_namespace(&ctx.stores.calendars, &ns);
    let (status, wake) = decide(&s, &servers, &calendars, now);
    if let Some(status) = status {
        ctx.apply_status(s.as_ref(), &status).await?;
    }
    Ok(ctx.requeue_at(wake, now))
}

/// Runs the VirusScanSchedule loop until shutdown.
pub fn run(ctx: Arc<Context>, kinds: &Kinds) -> impl Future<Output = ()> + use<> {
    let controller = namespace_summary(
        kinds.schedules.subscribe(),
        ctx.stores.schedules.clone(),
        kinds,
    );
    crate::context::run_loop(controller, ctx, "VirusScanSchedule", reconcile)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stores::samples::sample;

    #[test]
    fn decide_names_missed_hosts_and_the_missing_calendar() {
        let now: Timestamp = "2026-12-02T10:00:00+09:00".parse().unwrap();
        let schedule: VirusScanSchedule = sample("virusscan.yaml");
        let calendars: Vec<OperationCalendar> = vec![sample("calendar.yaml")];
        let servers: Vec<Arc<Server>> = vec![Arc::new(sample("servers/db01.yaml"))];
        let (status, wake) = decide(&schedule, &servers, &calendars, now);
        let st = status.unwrap();
        assert_eq!(st.conditions[0].reason, "Evaluated");
        assert!(wake.is_some_and(|w| w > now), "{wake:?}");
        let mut stored = schedule.clone();
        stored.status = Some(st);
        assert!(
            decide(&stored, &servers, &calendars, now).0.is_none(),
            "written once"
        );
        let (status, _) = decide(&schedule, &servers, &[], now);
        let c = &status.unwrap().conditions[0];
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", "CalendarNotFound")
        );
    }
}

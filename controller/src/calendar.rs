//! The OperationCalendar reconcile loop: keeps each calendar's status (state now, next
//! transition, next business day, upcoming days off, the monthly report due this month and
//! whether it was recorded as written, Ready) current.
//!
//! It also lists the Servers of its namespace whose hosts are set to another time zone.
//!
//! It is driven by the watch of OperationCalendars (and of the report records and Servers of
//! their namespace) and by a requeue at the next instant the
//! status can change (the next state transition or the next local midnight, whichever comes
//! first); it writes the status with server-side apply only when it differs.

use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::controller::{Action, Controller};
use kube::{Resource, ResourceExt};
use unyo_crds::Server;
use unyo_crds::calendar::{
    ExtraHoliday, HostZone, MonthlyReportState, OperationCalendar, OperationCalendarStatus,
};
use unyo_crds::names::{self, reasons};
use unyo_crds::workcalendar::WorkCalendar;

use crate::conditions::ready;
use crate::context::Context;
use crate::error::Error;
use crate::stores::Kinds;

/// The monthly report due in the month of `now`, and its record among `reports` (the report
/// records of the calendar's namespace).
fn monthly_report(
    work: &WorkCalendar,
    reports: &[Arc<ConfigMap>],
    now: Timestamp,
) -> MonthlyReportState {
    let (year, m) = unyo_crds::workcalendar::month_before(work.local_date(now));
    let month = unyo_crds::workcalendar::month_label(year, m);
    let due = work.monthly_report_due(year, m).ok().flatten();
    let record = names::monthly_report_record_name(&month);
    let written_at = reports
        .iter()
        .find(|c| c.metadata.name.as_deref() == Some(record.as_str()))
        .and_then(|c| c.data.as_ref()?.get(names::REPORT_WRITTEN_AT_KEY).cloned());
    MonthlyReportState {
        month,
        due_date: due.map(|d| d.to_string()),
        written_at,
    }
}

/// The servers among `servers` whose host reports a time zone other than `zone` (hosts that
/// report none are not listed), by name, and how many.
pub fn other_zones(zone: &str, servers: &[Arc<Server>]) -> (Vec<HostZone>, Option<u32>) {
    let mut out: Vec<HostZone> = servers
        .iter()
        .filter_map(|s| {
            let observed = s.status.as_ref()?.observed.as_ref()?;
            let host_zone = observed.time_sync.as_ref()?.time_zone.as_deref()?;
            (host_zone != zone).then(|| HostZone {
                server: s.name_any(),
                time_zone: host_zone.to_string(),
            })
        })
        .collect();
    out.sort_by(|a, b| a.server.cmp(&b.server));
    let count = u32::try_from(out.len()).unwrap_or(u32::MAX);
    (out, (count > 0).then_some(count))
}

/// The status a calendar should have at `now`, and when to look again: `reports` are the
/// report records and `servers` the Servers of its namespace.
pub fn desired_status(
    cal: &OperationCalendar,
    reports: &[Arc<ConfigMap>],
    servers: &[Arc<Server>],
    now: Timestamp,
) -> (OperationCalendarStatus, Option<Timestamp>) {
    let generation = cal.meta().generation;
    let previous = cal
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let evaluated = WorkCalendar::from_spec(&cal.spec).and_then(|w| Ok((w.snapshot(now)?, w)));
    match evaluated {
        Ok((snap, work)) => {
            let next = snap.next_transition.as_ref().map(|z| z.timestamp());
            let message = match &snap.next_transition {
                Some(z) => format!(
                    "{:?} until {} ({})",
                    snap.state,
                    z.strftime("%Y-%m-%d %H:%M %Z"),
                    work.time_zone().iana_name().unwrap_or("local time")
                ),
                None => format!("{:?}, with no change within two years", snap.state),
            };
            let wake = match next {
                Some(n) if n < snap.next_midnight.timestamp() => n,
                _ => snap.next_midnight.timestamp(),
            };
            let (hosts_in_other_zones, hosts_in_other_zones_count) =
                other_zones(&cal.spec.time_zone, servers);
            let status = OperationCalendarStatus {
                hosts_in_other_zones,
                hosts_in_other_zones_count,
                state: Some(snap.state),
                next_transition: next.map(Time),
                next_business_day: snap.next_business_day.map(|d| d.to_string()),
                upcoming_holidays: snap
                    .upcoming
                    .into_iter()
                    .map(|(date, name)| ExtraHoliday {
                        date: date.to_string(),
                        name,
                    })
                    .collect(),
                monthly_report: Some(monthly_report(&work, reports, now)),
                observed_generation: generation,
                conditions: ready(previous, true, reasons::EVALUATED, message, generation, now),
            };
            (status, Some(wake))
        }
        Err(e) => {
            let status = OperationCalendarStatus {
                observed_generation: generation,
                conditions: ready(previous, false, e.reason(), e.to_string(), generation, now),
                ..Default::default()
            };
            // Nothing changes until the spec does (or, for a date past 2099, ever).
            (status, None)
        }
    }
}

#[tracing::instrument(skip_all, fields(namespace = cal.namespace().unwrap_or_default(), calendar = cal.name_any()))]
async fn reconcile(cal: Arc<OperationCalendar>, ctx: Arc<Context>) -> Result<Action, Error> {
    let now = ctx.clock.now();
    let ns = cal.namespace().unwrap_or_default();
    let reports = crate::stores::shared_in(&ctx.stores.reports, &ns);
    let servers = crate::stores::shared_in(&ctx.stores.servers, &ns);
    let (mut status, wake) = desired_status(&cal, &reports, &servers, now);
    unyo_crds::limits::Bounded::bound(&mut status);
    if cal.status.as_ref() != Some(&status) {
        ctx.apply_status(cal.as_ref(), &status).await?;
        tracing::info!(
            state = ?status.state,
            next_transition = ?status.next_transition.as_ref().map(|t| t.0.to_string()),
            ready = status.conditions.first().map(|c| c.status.as_str()).unwrap_or(""),
            "status updated"
        );
    }
    Ok(ctx.requeue_at(wake, now))
}

/// Runs the OperationCalendar loop until shutdown.
pub fn run(ctx: Arc<Context>, kinds: &Kinds) -> impl Future<Output = ()> + use<> {
    let store = ctx.stores.calendars.clone();
    let controller = Controller::for_shared_stream(kinds.calendars.subscribe(), store.clone())
        .with_config(crate::context::config())
        .watches_shared_stream(
            kinds.reports.subscribe(),
            crate::stores::namespace_trigger(&store),
        )
        .watches_shared_stream(
            kinds.servers.subscribe(),
            crate::stores::namespace_trigger(&store),
        );
    crate::context::run_loop(controller, ctx, "OperationCalendar", reconcile)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::api::ObjectMeta;
    use unyo_crds::calendar::{BusinessHours, OperationCalendarSpec};
    use unyo_crds::common::Weekday;

    fn calendar(tz: &str) -> OperationCalendar {
        let mut cal = OperationCalendar::new(
            "ops",
            OperationCalendarSpec {
                time_zone: tz.into(),
                national_holidays: Default::default(),
                equinox_overrides: vec![],
                closures: vec![],
                extra_holidays: vec![],
                extra_workdays: vec![],
                business_hours: BusinessHours {
                    weekdays: vec![Weekday::Monday, Weekday::Tuesday],
                    start: "08:00".into(),
                    end: "19:00".into(),
                },
                windows: vec![],
            },
        );
        cal.metadata = ObjectMeta {
            name: Some("ops".into()),
            namespace: Some("mie".into()),
            generation: Some(3),
            ..Default::default()
        };
        cal
    }

    #[test]
    fn status_of_a_valid_calendar_wakes_at_the_next_change() {
        let now: Timestamp = "2026-11-24T09:00:00Z".parse().unwrap(); // Tue 18:00 JST
        let (status, wake) = desired_status(&calendar("Asia/Tokyo"), &[], &[], now);
        assert_eq!(
            status.state,
            Some(unyo_crds::calendar::CalendarState::BusinessHours)
        );
        assert_eq!(status.observed_generation, Some(3));
        let ready = &status.conditions[0];
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("True", "Evaluated")
        );
        assert_eq!(ready.observed_generation, Some(3));
        // 19:00 JST comes before midnight.
        assert_eq!(wake, Some("2026-11-24T10:00:00Z".parse().unwrap()));
        assert_eq!(status.next_business_day.as_deref(), Some("2026-11-30"));
        // The same instant gives the same status: nothing would be written.
        let mut cal = calendar("Asia/Tokyo");
        cal.status = Some(status.clone());
        let later: Timestamp = "2026-11-24T09:30:00Z".parse().unwrap();
        assert_eq!(desired_status(&cal, &[], &[], later).0, status);
    }

    #[test]
    fn invalid_calendar_is_not_ready_and_does_not_requeue() {
        let (status, wake) =
            desired_status(&calendar("Mars/Olympus"), &[], &[], Timestamp::UNIX_EPOCH);
        assert_eq!(wake, None);
        assert_eq!(status.state, None);
        let ready = &status.conditions[0];
        assert_eq!(ready.status, "False");
        assert_eq!(ready.reason, "UnknownTimeZone");
        assert!(ready.message.contains("spec.timeZone"), "{}", ready.message);
    }

    #[test]
    fn the_report_due_this_month_and_its_record() {
        // 2026-01-05 (Mon) in Tokyo: the report of December 2025 is due on the 7th business day
        // after 31 December. With Monday–Tuesday business days only: Jan 5, 6, 13, 19, 20, 26,
        // 27 (Monday 12 January is Coming of Age Day).
        let now: Timestamp = "2026-01-05T01:00:00Z".parse().unwrap();
        let (status, _) = desired_status(&calendar("Asia/Tokyo"), &[], &[], now);
        let r = status.monthly_report.unwrap();
        assert_eq!(
            (
                r.month.as_str(),
                r.due_date.as_deref(),
                r.written_at.as_deref()
            ),
            ("2025-12", Some("2026-01-27"), None)
        );
        let mut record = ConfigMap::default();
        record.metadata.name = Some(names::monthly_report_record_name("2025-12"));
        record.data = Some(
            [(
                names::REPORT_WRITTEN_AT_KEY.to_string(),
                "2026-01-06T00:00:00Z".to_string(),
            )]
            .into(),
        );
        let other = ConfigMap {
            metadata: kube::api::ObjectMeta {
                name: Some(names::monthly_report_record_name("2025-11")),
                ..Default::default()
            },
            ..Default::default()
        };
        let (status, _) = desired_status(
            &calendar("Asia/Tokyo"),
            &[Arc::new(other), Arc::new(record)],
            &[],
            now,
        );
        assert_eq!(
            status.monthly_report.unwrap().written_at.as_deref(),
            Some("2026-01-06T00:00:00Z")
        );
    }

    #[test]
    fn hosts_set_to_another_zone_are_listed() {
        use unyo_crds::server::{ObservedFacts, ServerStatus, TimeSync};
        let server = |name: &str, zone: Option<&str>| {
            let mut s: Server = crate::stores::samples::sample("servers/db01.yaml");
            s.metadata.name = Some(name.into());
            s.status = Some(ServerStatus {
                observed: Some(ObservedFacts {
                    time_sync: Some(TimeSync {
                        time_zone: zone.map(str::to_string),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            });
            Arc::new(s)
        };
        let servers = [
            server("web01", Some("Asia/Tokyo")),
            server("ad01", Some("Pacific Standard Time")),
            server("db01", Some("UTC")),
            server("new01", None),
        ];
        let now = Timestamp::from_second(1_764_000_000).unwrap();
        let (status, _) = desired_status(&calendar("Asia/Tokyo"), &[], &servers, now);
        let listed: Vec<(&str, &str)> = status
            .hosts_in_other_zones
            .iter()
            .map(|h| (h.server.as_str(), h.time_zone.as_str()))
            .collect();
        assert_eq!(listed, [("ad01", "Pacific Standard Time"), ("db01", "UTC")]);
        assert_eq!(status.hosts_in_other_zones_count, Some(2));
        let (all_tokyo, _) = desired_status(&calendar("Asia/Tokyo"), &[], &servers[..1], now);
        assert!(all_tokyo.hosts_in_other_zones.is_empty());
        assert_eq!(all_tokyo.hosts_in_other_zones_count, None);
    }
}

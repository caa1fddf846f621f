//! Monitoring, incidents and problems of the month.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::Serialize;
use unyo_crds::incident::{Incident, IncidentState, IncidentType};
use unyo_crds::monitoring::MonitoringPolicy;
use unyo_crds::server::{CheckState, Server};
use unyo_crds::workcalendar::WorkCalendar;

use super::{Period, overlap};
use crate::Error;
use crate::time::{local, ts};

/// 監視状況.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Monitoring {
    pub policies: Vec<PolicyRow>,
    /// Seconds incidents raised by monitoring were firing in the month, per severity.
    pub firing_seconds: BTreeMap<String, i64>,
    /// Incidents raised by monitoring in the month, per check (the incident's title).
    pub firings_by_check: BTreeMap<String, u32>,
    /// Checks not OK when the report was made.
    pub checks_not_ok: Vec<CheckRow>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyRow {
    pub name: String,
    pub checks: u32,
    pub servers: u32,
    pub firing_warning: u32,
    pub firing_critical: u32,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckRow {
    pub server: String,
    pub policy: String,
    pub check: String,
    pub state: String,
    pub since: String,
}

/// インシデント管理・障害窓口運用状況.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Incidents {
    pub opened: u32,
    pub recovered: u32,
    pub closed: u32,
    pub open_at_month_end: u32,
    pub by_type: BTreeMap<String, u32>,
    pub by_severity: BTreeMap<String, u32>,
    pub by_server: BTreeMap<String, u32>,
    /// Mean seconds from occurrence to recovery of the incidents recovered in the month.
    pub mttr_seconds: Option<i64>,
    /// Downtime: the time a Critical incident was firing.
    pub service: Availability,
    pub per_server: Vec<Availability>,
    pub list: Vec<IncidentRow>,
}

/// Downtime and availability of a server, or of the service (any server down).
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Availability {
    pub server: String,
    pub downtime_seconds: i64,
    pub business_downtime_seconds: i64,
    pub business_seconds: i64,
    /// 1 − business downtime / business hours; None without a calendar.
    pub availability: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IncidentRow {
    pub name: String,
    pub title: String,
    #[serde(rename = "type")]
    pub incident_type: String,
    pub severity: String,
    pub state: String,
    pub servers: Vec<String>,
    pub occurred_at: String,
    pub recovered_at: String,
    /// Seconds of the incident that fell in the month.
    pub downtime_seconds: i64,
    pub cause: String,
    pub actions: Vec<String>,
    pub prevention: String,
    pub problem: String,
}

/// 問題管理: a problem and the incidents linked to it.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    pub id: String,
    pub category: String,
    pub known_error: bool,
    pub incidents: Vec<String>,
    pub workaround: String,
    pub permanent_fix: String,
}

/// When an incident occurred: `spec.occurredAt`, else its creation.
pub fn occurred(i: &Incident) -> Option<Timestamp> {
    i.spec
        .occurred_at
        .as_ref()
        .or(i.metadata.creation_timestamp.as_ref())
        .map(ts)
}

/// When it recovered: `status.recoveredAt`, else `status.closedAt`.
pub fn recovered(i: &Incident) -> Option<Timestamp> {
    let st = i.status.as_ref()?;
    st.recovered_at.as_ref().or(st.closed_at.as_ref()).map(ts)
}

/// The interval an incident was open, cut at `now`.
fn open_interval(i: &Incident, now: Timestamp) -> Option<(Timestamp, Timestamp)> {
    let from = occurred(i)?;
    Some((from, recovered(i).unwrap_or(now).max(from)))
}

pub(super) fn monitoring(
    policies: &[MonitoringPolicy],
    servers: &[Server],
    incidents: &[Incident],
    p: &Period,
    now: Timestamp,
) -> Monitoring {
    let mut m = Monitoring::default();
    for pol in policies {
        let firing = pol
            .status
            .as_ref()
            .and_then(|s| s.firing.clone())
            .unwrap_or_default();
        m.policies.push(PolicyRow {
            name: pol.metadata.name.clone().unwrap_or_default(),
            checks: count(pol.spec.checks.len()),
            servers: pol
                .status
                .as_ref()
                .and_then(|s| s.matched_servers)
                .unwrap_or(0),
            firing_warning: firing.warning,
            firing_critical: firing.critical,
        });
    }
    for i in incidents
        .iter()
        .filter(|i| i.spec.incident_type == IncidentType::Monitoring)
    {
        let Some((a, b)) = open_interval(i, now) else {
            continue;
        };
        let secs = p.overlap(a, b);
        if secs > 0 || p.contains(a) {
            *m.firing_seconds
                .entry(format!("{:?}", i.spec.severity))
                .or_insert(0) += secs;
        }
        if p.contains(a) {
            *m.firings_by_check.entry(i.spec.title.clone()).or_insert(0) += 1;
        }
    }
    for s in servers {
        for c in s
            .status
            .iter()
            .flat_map(|st| &st.checks)
            .filter(|c| c.state != CheckState::OK)
        {
            m.checks_not_ok.push(CheckRow {
                server: s.metadata.name.clone().unwrap_or_default(),
                policy: c.policy.clone(),
                check: c.check.clone(),
                state: format!("{:?}", c.state),
                since: local(ts(&c.since), &p.tz),
            });
        }
    }
    m
}

pub(super) fn incidents(
    all: &[Incident],
    servers: &[Server],
    p: &Period,
    cal: Option<&WorkCalendar>,
    now: Timestamp,
) -> Result<Incidents, Error> {
    let now = now.min(p.end);
    let business = business_intervals(cal, p)?;
    let mut out = Incidents::default();
    let mut recover_total = 0i64;
    let mut down_by_server: BTreeMap<String, Vec<(Timestamp, Timestamp)>> = BTreeMap::new();
    for i in all {
        let Some(from) = occurred(i) else { continue };
        let rec = recovered(i);
        let in_month = p.contains(from);
        let open_during = from < p.end && rec.is_none_or(|r| r >= p.start);
        if !in_month && !open_during {
            continue;
        }
        if in_month {
            out.opened += 1;
            *out.by_type
                .entry(format!("{:?}", i.spec.incident_type))
                .or_insert(0) += 1;
            *out.by_severity
                .entry(format!("{:?}", i.spec.severity))
                .or_insert(0) += 1;
            for s in &i.spec.servers {
                *out.by_server.entry(s.clone()).or_insert(0) += 1;
            }
        }
        if let Some(r) = rec.filter(|r| p.contains(*r)) {
            out.recovered += 1;
            recover_total =
                recover_total.saturating_add(r.as_second().saturating_sub(from.as_second()));
        }
        if i.status
            .as_ref()
            .and_then(|s| s.closed_at.as_ref())
            .is_some_and(|c| p.contains(ts(c)))
        {
            out.closed += 1;
        }
        if rec.is_none_or(|r| r >= p.end) && i.spec.state != IncidentState::Closed {
            out.open_at_month_end += 1;
        }
        let interval = (from, rec.unwrap_or(now).max(from));
        if i.spec.severity == unyo_crds::common::Severity::Critical {
            for s in &i.spec.servers {
                down_by_server.entry(s.clone()).or_default().push(interval);
            }
        }
        out.list.push(row(i, interval, p));
    }
    if out.recovered > 0 {
        out.mttr_seconds = Some(recover_total / i64::from(out.recovered));
    }
    let all_down: Vec<_> = down_by_server.values().flatten().copied().collect();
    out.service = availability("", &all_down, &business, p);
    for s in servers {
        let name = s.metadata.name.clone().unwrap_or_default();
        let down = down_by_server.get(&name).map(Vec::as_slice).unwrap_or(&[]);
        out.per_server.push(availability(&name, down, &business, p));
    }
    out.per_server.sort_by(|a, b| a.server.cmp(&b.server));
    out.list
        .sort_by(|a, b| a.occurred_at.cmp(&b.occurred_at).then(a.name.cmp(&b.name)));
    Ok(out)
}

fn row(i: &Incident, interval: (Timestamp, Timestamp), p: &Period) -> IncidentRow {
    let s = &i.spec;
    IncidentRow {
        name: i.metadata.name.clone().unwrap_or_default(),
        title: s.title.clone(),
        incident_type: format!("{:?}", s.incident_type),
        severity: format!("{:?}", s.severity),
        state: format!("{:?}", s.state),
        servers: s.servers.clone(),
        occurred_at: local(interval.0, &p.tz),
        recovered_at: recovered(i).map(|r| local(r, &p.tz)).unwrap_or_default(),
        downtime_seconds: p.overlap(interval.0, interval.1),
        cause: s.cause.clone().unwrap_or_default(),
        actions: s.actions.clone(),
        prevention: s.prevention.clone().unwrap_or_default(),
        problem: s.problem.as_ref().map(|l| l.id.clone()).unwrap_or_default(),
    }
}

/// The business hours of every business day of the month.
fn business_intervals(
    cal: Option<&WorkCalendar>,
    p: &Period,
) -> Result<Option<Vec<(Timestamp, Timestamp)>>, Error> {
    let Some(cal) = cal else { return Ok(None) };
    let mut out = Vec::new();
    for d in p.days() {
        if let Some(hours) = cal.business_hours_on(d)? {
            out.push(hours);
        }
    }
    Ok(Some(out))
}

/// Merges overlapping intervals, so that two incidents at once count once.
fn merge(mut v: Vec<(Timestamp, Timestamp)>) -> Vec<(Timestamp, Timestamp)> {
    v.sort();
    let mut out: Vec<(Timestamp, Timestamp)> = Vec::new();
    for (a, b) in v {
        match out.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

fn availability(
    server: &str,
    down: &[(Timestamp, Timestamp)],
    business: &Option<Vec<(Timestamp, Timestamp)>>,
    p: &Period,
) -> Availability {
    let down = merge(down.to_vec());
    let downtime = down.iter().map(|d| p.overlap(d.0, d.1)).sum();
    let mut a = Availability {
        server: server.to_string(),
        downtime_seconds: downtime,
        ..Availability::default()
    };
    if let Some(hours) = business {
        a.business_seconds = hours.iter().map(|h| overlap(*h, (p.start, p.end))).sum();
        a.business_downtime_seconds = down
            .iter()
            .flat_map(|d| hours.iter().map(move |h| overlap(*d, *h)))
            .sum();
        if a.business_seconds > 0 {
            a.availability =
                Some(1.0 - a.business_downtime_seconds as f64 / a.business_seconds as f64);
        }
    }
    a
}

pub(super) fn problems(all: &[Incident]) -> Vec<Problem> {
    let mut by_id: BTreeMap<String, Problem> = BTreeMap::new();
    for i in all {
        let Some(link) = &i.spec.problem else {
            continue;
        };
        let p = by_id.entry(link.id.clone()).or_insert_with(|| Problem {
            id: link.id.clone(),
            category: link.category.map(|c| format!("{c:?}")).unwrap_or_default(),
            known_error: false,
            incidents: Vec::new(),
            workaround: String::new(),
            permanent_fix: String::new(),
        });
        p.known_error |= link.known_error;
        p.incidents
            .push(i.metadata.name.clone().unwrap_or_default());
        if let Some(w) = &link.workaround {
            p.workaround = w.clone()
        }
        if let Some(f) = &link.permanent_fix {
            p.permanent_fix = f.clone()
        }
    }
    let mut v: Vec<Problem> = by_id.into_values().collect();
    v.iter_mut().for_each(|p| p.incidents.sort());
    v
}

pub(super) fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

//! ⑤ インシデント報告書 (one incident, with its timeline from Events) and ⑥ インシデント内容・集計分析書
//! (counts and analysis of a period).

use std::collections::BTreeMap;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use k8s_openapi::api::core::v1::Event;
use serde::Serialize;
use unyo_crds::incident::Incident;

use crate::Lang;
use crate::doc::{Cell, Document, Section, count_rows};
use crate::monthly::incidents::{occurred, recovered};
use crate::time::{local, minutes, number, ts};

/// One incident, as its report shows it.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IncidentReport {
    pub name: String,
    pub title: String,
    #[serde(rename = "type")]
    pub incident_type: String,
    pub severity: String,
    pub state: String,
    pub owner: String,
    pub servers: Vec<String>,
    pub affected_sites: Vec<String>,
    pub occurred_at: String,
    pub recovered_at: String,
    /// From occurrence to recovery (or to the report's time while it is not recovered).
    pub downtime_seconds: i64,
    pub description: String,
    pub cause: String,
    pub failed_device: String,
    pub actions: Vec<String>,
    pub prevention: String,
    pub problem: String,
    pub timeline: Vec<TimelineEntry>,
}

/// One Event about the incident.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TimelineEntry {
    pub at: String,
    pub reason: String,
    pub message: String,
}

fn event_time(e: &Event) -> Option<Timestamp> {
    e.event_time
        .as_ref()
        .map(|t| t.0)
        .or_else(|| e.last_timestamp.as_ref().map(ts))
        .or_else(|| e.first_timestamp.as_ref().map(ts))
}

/// The report of one incident; `events` are the Events whose object is the incident.
pub fn report(i: &Incident, events: &[Event], tz: &TimeZone, now: Timestamp) -> IncidentReport {
    let s = &i.spec;
    let from = occurred(i);
    let rec = recovered(i);
    let downtime = from.map_or(0, |f| {
        rec.unwrap_or(now)
            .as_second()
            .saturating_sub(f.as_second())
            .max(0)
    });
    let mut timeline: Vec<(Timestamp, TimelineEntry)> = events
        .iter()
        .filter_map(|e| {
            let at = event_time(e)?;
            Some((
                at,
                TimelineEntry {
                    at: local(at, tz),
                    reason: e.reason.clone().unwrap_or_default(),
                    message: e.message.clone().unwrap_or_default(),
                },
            ))
        })
        .collect();
    timeline.sort_by_key(|(t, _)| *t);
    IncidentReport {
        name: i.metadata.name.clone().unwrap_or_default(),
        title: s.title.clone(),
        incident_type: format!("{:?}", s.incident_type),
        severity: format!("{:?}", s.severity),
        state: format!("{:?}", s.state),
        owner: s.owner.clone().unwrap_or_default(),
        servers: s.servers.clone(),
        affected_sites: s.affected_sites.clone(),
        occurred_at: from.map(|t| local(t, tz)).unwrap_or_default(),
        recovered_at: rec.map(|t| local(t, tz)).unwrap_or_default(),
        downtime_seconds: downtime,
        description: s.description.clone().unwrap_or_default(),
        cause: s.cause.clone().unwrap_or_default(),
        failed_device: s.failed_device.clone().unwrap_or_default(),
        actions: s.actions.clone(),
        prevention: s.prevention.clone().unwrap_or_default(),
        problem: s.problem.as_ref().map(|p| p.id.clone()).unwrap_or_default(),
        timeline: timeline.into_iter().map(|(_, e)| e).collect(),
    }
}

/// The incident report as a document.
pub fn document(r: &IncidentReport, t: Lang) -> Document {
    let mut head = Section::new(t.t("incident"));
    head.figure(t.t("id"), &r.name)
        .figure(t.t("title"), &r.title)
        .figure(t.t("type"), t.value(&r.incident_type))
        .figure(t.t("severity"), t.value(&r.severity))
        .figure(t.t("state"), t.value(&r.state))
        .figure(t.t("owner"), &r.owner)
        .figure(t.t("occurred_at"), &r.occurred_at)
        .figure(t.t("recovered_at"), &r.recovered_at)
        .figure(t.t("downtime"), number(minutes(r.downtime_seconds)))
        .figure(t.t("servers"), r.servers.join(", "))
        .figure(t.t("affected_sites"), r.affected_sites.join(", "))
        .figure(t.t("failed_device"), &r.failed_device)
        .figure(t.t("problem"), &r.problem);
    if !r.description.is_empty() {
        head.notes.push(r.description.clone());
    }
    let mut handling = Section::new(t.t("actions"));
    handling
        .figure(t.t("cause"), &r.cause)
        .figure(t.t("prevention"), &r.prevention);
    let rows = r
        .actions
        .iter()
        .enumerate()
        .map(|(i, a)| {
            vec![
                Cell::from(u32::try_from(i + 1).unwrap_or(u32::MAX)),
                a.clone().into(),
            ]
        })
        .collect();
    handling.table(t.t("actions"), &["#", t.t("actions")], rows);
    let mut timeline = Section::new(t.t("timeline"));
    let rows = r
        .timeline
        .iter()
        .map(|e| {
            vec![
                e.at.clone().into(),
                e.reason.clone().into(),
                e.message.clone().into(),
            ]
        })
        .collect();
    timeline.table(
        t.t("timeline"),
        &[t.t("occurred_at"), t.t("kind"), t.t("message")],
        rows,
    );
    Document {
        title: t.t("incident_report").to_string(),
        subtitle: format!("{} {}", r.name, r.title),
        lang: t,
        sections: vec![head, handling, timeline],
    }
}

/// ⑥: incidents that occurred in [from, to), counted every way the spec asks.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Analysis {
    pub from: String,
    pub to: String,
    pub total: u32,
    pub recovered: u32,
    pub mttr_seconds: Option<i64>,
    pub by_type: BTreeMap<String, u32>,
    pub by_severity: BTreeMap<String, u32>,
    pub by_server: BTreeMap<String, u32>,
    pub by_cause: BTreeMap<String, u32>,
    pub by_month: BTreeMap<String, u32>,
}

/// Counts the incidents that occurred in [from, to).
pub fn analysis(all: &[Incident], from: Timestamp, to: Timestamp, tz: &TimeZone) -> Analysis {
    let mut a = Analysis {
        from: local(from, tz),
        to: local(to, tz),
        ..Analysis::default()
    };
    let mut total_recovery = 0i64;
    for i in all {
        let Some(at) = occurred(i).filter(|t| from <= *t && *t < to) else {
            continue;
        };
        a.total += 1;
        let bump = |m: &mut BTreeMap<String, u32>, k: String| *m.entry(k).or_insert(0) += 1;
        bump(&mut a.by_type, format!("{:?}", i.spec.incident_type));
        bump(&mut a.by_severity, format!("{:?}", i.spec.severity));
        for s in &i.spec.servers {
            bump(&mut a.by_server, s.clone());
        }
        let cause = i
            .spec
            .problem
            .as_ref()
            .and_then(|p| p.category)
            .map(|c| format!("{c:?}"))
            .or_else(|| i.spec.cause.clone())
            .unwrap_or_else(|| "none".into());
        bump(&mut a.by_cause, cause);
        bump(
            &mut a.by_month,
            at.to_zoned(tz.clone()).strftime("%Y-%m").to_string(),
        );
        if let Some(r) = recovered(i) {
            a.recovered += 1;
            total_recovery =
                total_recovery.saturating_add(r.as_second().saturating_sub(at.as_second()).max(0));
        }
    }
    if a.recovered > 0 {
        a.mttr_seconds = Some(total_recovery / i64::from(a.recovered));
    }
    a
}

/// The analysis as a document.
pub fn analysis_document(a: &Analysis, t: Lang) -> Document {
    let mut sum = Section::new(t.t("summary"));
    sum.figure(t.t("period"), format!("{} – {}", a.from, a.to))
        .figure(t.t("total"), a.total)
        .figure(t.t("recovered"), a.recovered)
        .figure(
            t.t("mttr"),
            a.mttr_seconds
                .map_or_else(|| t.t("none").to_string(), |s| number(minutes(s))),
        );
    let mut sections = vec![sum];
    for (key, col, m) in [
        ("by_type", "type", &a.by_type),
        ("by_severity", "severity", &a.by_severity),
        ("by_server", "server", &a.by_server),
        ("by_cause", "cause", &a.by_cause),
        ("by_month", "month", &a.by_month),
    ] {
        let mut s = Section::new(t.t(key));
        let rows = count_rows(t, m);
        s.table(t.t(key), &[t.t(col), t.t("count")], rows);
        sections.push(s);
    }
    Document {
        title: t.t("incident_analysis").to_string(),
        subtitle: format!("{} – {}", a.from, a.to),
        lang: t,
        sections,
    }
}

//! Change and release management (変更管理・リリース管理) of the month.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::Serialize;
use unyo_crds::change::{ChangeCategory, ChangeOrigin, ChangeRecord};
use unyo_crds::names::conditions as cond;

use super::Period;
use crate::time::{local, ts};

/// 変更管理状況.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Changes {
    /// Drift records recorded in the month.
    pub drift_opened: u32,
    /// Drift records resolved in the month.
    pub drift_resolved: u32,
    /// Drift records resolved in the month, per resolution.
    pub by_resolution: BTreeMap<String, u32>,
    /// Planned changes whose window or record falls in the month.
    pub planned: Vec<PlannedChange>,
    /// Of those, releases (category Release).
    pub releases: u32,
    /// Of those, recorded too late before their window (LeadTimeViolated).
    pub lead_time_violations: u32,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedChange {
    pub name: String,
    pub title: String,
    pub category: String,
    pub classification: String,
    pub servers: Vec<String>,
    pub window_start: String,
    pub window_end: String,
    pub phase: String,
    /// `reviewer: result` per review.
    pub reviews: Vec<String>,
    pub lead_time_violated: bool,
}

/// When a record was made: `spec.recordedAt`, else its creation.
pub fn recorded(c: &ChangeRecord) -> Option<Timestamp> {
    c.spec
        .recorded_at
        .as_ref()
        .or(c.metadata.creation_timestamp.as_ref())
        .map(ts)
}

/// When a record was resolved (or implemented): `status.resolvedAt`.
pub fn resolved(c: &ChangeRecord) -> Option<Timestamp> {
    c.status.as_ref()?.resolved_at.as_ref().map(ts)
}

pub(super) fn changes(all: &[ChangeRecord], p: &Period) -> Changes {
    let mut out = Changes::default();
    for c in all {
        match c.spec.origin {
            ChangeOrigin::Drift => drift(c, p, &mut out),
            ChangeOrigin::Planned => planned(c, p, &mut out),
        }
    }
    out.planned.sort_by(|a, b| {
        a.window_start
            .cmp(&b.window_start)
            .then(a.name.cmp(&b.name))
    });
    out
}

fn drift(c: &ChangeRecord, p: &Period, out: &mut Changes) {
    if recorded(c).is_some_and(|t| p.contains(t)) {
        out.drift_opened += 1;
    }
    if resolved(c).is_some_and(|t| p.contains(t)) {
        out.drift_resolved += 1;
        let how = c
            .status
            .as_ref()
            .and_then(|s| s.resolution)
            .map(|r| format!("{r:?}"));
        *out.by_resolution
            .entry(how.unwrap_or_else(|| "Other".into()))
            .or_insert(0) += 1;
    }
}

fn planned(c: &ChangeRecord, p: &Period, out: &mut Changes) {
    let Some(plan) = &c.spec.plan else { return };
    let window = (ts(&plan.window.start), ts(&plan.window.end));
    let touches = p.overlap(window.0, window.1) > 0
        || p.contains(window.0)
        || recorded(c).is_some_and(|t| p.contains(t));
    if !touches {
        return;
    }
    let violated = lead_time_violated(c);
    out.releases += u32::from(c.spec.category == ChangeCategory::Release);
    out.lead_time_violations += u32::from(violated);
    let mut servers: Vec<String> = c.spec.server.iter().cloned().collect();
    servers.extend(c.spec.servers.iter().cloned());
    out.planned.push(PlannedChange {
        name: c.metadata.name.clone().unwrap_or_default(),
        title: c.spec.title.clone().unwrap_or_else(|| plan.summary.clone()),
        category: format!("{:?}", c.spec.category),
        classification: format!("{:?}", c.spec.classification),
        servers,
        window_start: local(window.0, &p.tz),
        window_end: local(window.1, &p.tz),
        phase: c
            .status
            .as_ref()
            .and_then(|s| s.phase)
            .map(|ph| format!("{ph:?}"))
            .unwrap_or_default(),
        reviews: c
            .spec
            .reviews
            .iter()
            .map(|r| format!("{}: {:?}", r.reviewer, r.result))
            .collect(),
        lead_time_violated: violated,
    });
}

fn lead_time_violated(c: &ChangeRecord) -> bool {
    c.status
        .iter()
        .flat_map(|s| &s.conditions)
        .any(|k| k.type_ == cond::LEAD_TIME_VIOLATED && k.status == "True")
}

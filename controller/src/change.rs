//! The ChangeRecord reconcile loop: keeps each record's phase, resolution and conditions.
//!
//! - A drift record resolves itself when none of its drift is left on its Server:
//!   `LedgerUpdated` when the host still has what was observed (so the ledger was changed to
//!   match, e.g. by a merged pull request), `HostReverted` otherwise. The same drift coming back
//!   reopens it.
//! - A planned record is Approved when every review is done and approved; inside its window it
//!   absorbs the drift it announced (phase Implemented, `absorbed` lists server:path). An outage
//!   recorded less than 30 days before its window carries `LeadTimeViolated=True` (R14).
//! - `spec.closed: true` closes a record (phase Closed, `closedAt`).
//!
//! Driven by watches of ChangeRecords and of Servers (a Server's drift changes its records).

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use unyo_crds::Server;
use unyo_crds::change::{
    ChangeOrigin, ChangePhase, ChangeRecord, ChangeRecordStatus, ChangeResolution, ReviewResult,
};
use unyo_crds::drift::{Drift, compare, ignored, observed_at};
use unyo_crds::names::{conditions as cond, reasons};

use crate::conditions::condition;
use crate::context::Context;
use crate::error::Error;
use crate::stores::{Kinds, get};

/// Notice a planned outage needs (R14: announced at least one month ahead).
const OUTAGE_NOTICE: SignedDuration = SignedDuration::from_hours(24 * 30);

/// Whether a record still counts: not resolved, rejected or closed.
pub fn is_open(r: &ChangeRecord) -> bool {
    r.spec.closed != Some(true)
        && !matches!(
            r.status.as_ref().and_then(|s| s.phase),
            Some(ChangePhase::Resolved | ChangePhase::Rejected | ChangePhase::Closed)
        )
}

/// Whether record `r` covers drift `d`: a drift record by path and observed value, a planned
/// record by path (its paths as prefixes or patterns).
pub fn covers(r: &ChangeRecord, d: &Drift) -> bool {
    match r.spec.origin {
        ChangeOrigin::Drift => r
            .spec
            .paths
            .iter()
            .any(|p| p.path == d.path && p.observed == d.observed),
        ChangeOrigin::Planned => {
            let patterns: Vec<String> = r.spec.paths.iter().map(|p| p.path.clone()).collect();
            ignored(&d.path, &patterns)
        }
    }
}

/// Whether every review is done and approved (and there is at least one).
pub fn approved(r: &ChangeRecord) -> bool {
    !r.spec.reviews.is_empty()
        && r.spec
            .reviews
            .iter()
            .all(|v| v.done && v.result == ReviewResult::Approved)
}

/// Whether record `r` names `server` (as its server or among its servers).
pub fn names_server(r: &ChangeRecord, server: &str) -> bool {
    r.spec.server.as_deref() == Some(server) || r.spec.servers.iter().any(|s| s == server)
}

/// Whether planned record `r` is for `server`, approved, and its window contains `now`.
pub fn planned_applies(r: &ChangeRecord, server: &str, now: Timestamp) -> bool {
    r.spec.origin == ChangeOrigin::Planned
        && r.spec.closed != Some(true)
        && names_server(r, server)
        && approved(r)
        && r.spec
            .plan
            .as_ref()
            .is_some_and(|p| p.window.start.0 <= now && now < p.window.end.0)
}

/// The drift of `s` now, from its ledger and its facts — not from the `status.drift` the Server
/// loop writes, which may not be written yet; None without facts.
fn current_drift(s: &Server) -> Option<Vec<Drift>> {
    s.status
        .as_ref()?
        .observed
        .as_ref()
        .map(|o| compare(&s.spec, o))
}

/// A drift record none of whose drift is left: `LedgerUpdated` when the host still has what
/// was observed, `HostReverted` otherwise.
fn resolve(
    r: &ChangeRecord,
    prev: &ChangeRecordStatus,
    server: Option<&Server>,
    status: &mut ChangeRecordStatus,
    now: Timestamp,
) {
    let facts = server
        .and_then(|s| s.status.as_ref())
        .and_then(|s| s.observed.as_ref());
    let still_observed = facts.is_some_and(|f| {
        r.spec
            .paths
            .iter()
            .all(|p| observed_at(&p.path, f) == p.observed)
    });
    status.phase = Some(ChangePhase::Resolved);
    status.resolution = Some(if still_observed {
        ChangeResolution::LedgerUpdated
    } else {
        ChangeResolution::HostReverted
    });
    status.resolved_at = match (prev.phase, prev.resolved_at.clone()) {
        (Some(ChangePhase::Resolved), Some(t)) => Some(t),
        _ => Some(Time(crate::conditions::truncate_to_seconds(now))),
    };
}

/// The status a record should have, given the Servers it names.
pub fn desired_status(r: &ChangeRecord, servers: &[Server], now: Timestamp) -> ChangeRecordStatus {
    let prev = r.status.clone().unwrap_or_default();
    let generation = r.meta().generation;
    let mut status = ChangeRecordStatus {
        observed_generation: generation,
        ..Default::default()
    };
    let mut conditions = vec![];
    match r.spec.origin {
        ChangeOrigin::Drift => {
            let server = servers.first();
            match server.and_then(current_drift) {
                // Without the Server or its facts nothing can be judged: as it was (Open).
                None => {
                    status.phase = prev.phase.or(Some(ChangePhase::Open));
                    status.resolution = prev.resolution;
                    status.resolved_at = prev.resolved_at.clone();
                }
                Some(drift) => {
                    let present = r.spec.paths.iter().any(|p| {
                        drift
                            .iter()
                            .any(|d| d.path == p.path && d.observed == p.observed)
                    });
                    if present {
                        status.phase = Some(ChangePhase::Open);
                    } else {
                        resolve(r, &prev, server, &mut status, now);
                    }
                }
            }
        }
        ChangeOrigin::Planned => {
            let mut absorbed: Vec<String> = prev.absorbed.clone();
            if let Some(plan) = &r.spec.plan {
                let in_window = plan.window.start.0 <= now && now < plan.window.end.0;
                if approved(r) && in_window {
                    for s in servers {
                        let name = s.name_any();
                        for d in current_drift(s).unwrap_or_default() {
                            let entry = format!("{name}:{}", d.path);
                            if covers(r, &d) && !absorbed.contains(&entry) {
                                absorbed.push(entry);
                            }
                        }
                    }
                }
                let recorded = r
                    .spec
                    .recorded_at
                    .as_ref()
                    .map(|t| t.0)
                    .or_else(|| r.meta().creation_timestamp.as_ref().map(|t| t.0))
                    .unwrap_or(now);
                let notice = plan.window.start.0.duration_since(recorded);
                let violated = plan.outage && notice < OUTAGE_NOTICE;
                let mut c = condition(
                    &prev.conditions,
                    cond::LEAD_TIME_VIOLATED,
                    violated,
                    if violated {
                        "NoticeUnder30Days"
                    } else {
                        "NoticeGiven"
                    },
                    if plan.outage {
                        format!(
                            "the outage was recorded {:.1} days before its window (at least 30 are required)",
                            notice.as_secs_f64() / 86400.0
                        )
                    } else {
                        "not an outage".to_string()
                    },
                    generation,
                    now,
                );
                if !plan.outage {
                    c.status = "False".into();
                }
                conditions.push(c);
            }
            absorbed.sort();
            status.phase = Some(if !absorbed.is_empty() {
                ChangePhase::Implemented
            } else if r
                .spec
                .reviews
                .iter()
                .any(|v| v.done && v.result == ReviewResult::Rejected)
            {
                ChangePhase::Rejected
            } else if approved(r) {
                ChangePhase::Approved
            } else {
                ChangePhase::Open
            });
            if !absorbed.is_empty() {
                status.resolution = Some(ChangeResolution::Implemented);
            }
            status.absorbed = absorbed;
        }
    }
    if r.spec.closed == Some(true) {
        status.phase = Some(ChangePhase::Closed);
        status.closed_at = prev
            .closed_at
            .clone()
            .or(Some(Time(crate::conditions::truncate_to_seconds(now))));
        status.resolution = status.resolution.or(prev.resolution);
        status.resolved_at = status.resolved_at.or(prev.resolved_at);
    }
    conditions.insert(
        0,
        condition(
            &prev.conditions,
            cond::READY,
            true,
            reasons::RECORDED,
            format!("{:?}", status.phase.unwrap_or(ChangePhase::Open)),
            generation,
            now,
        ),
    );
    status.conditions = conditions;
    status
}

/// What the ChangeRecord loop does with one record.
#[derive(Debug)]
pub struct Decision {
    /// The status to write, when it differs.
    pub status: Option<ChangeRecordStatus>,
    /// The new phase, when it changed (an Event).
    pub phase_changed: Option<(ChangePhase, Option<ChangeResolution>)>,
    /// When to look again without a change (a planned window opening or closing).
    pub wake: Option<Timestamp>,
}

/// The whole judgement of record `r`, given the Servers it names, at `now`.
pub fn decide(r: &ChangeRecord, servers: &[Server], now: Timestamp) -> Decision {
    let mut status = desired_status(r, servers, now);
    let prev = r.status.clone().unwrap_or_default();
    let phase = status.phase.unwrap_or(ChangePhase::Open);
    // A new record's first phase is no news (its creation was an Event of its own).
    let first = prev.phase.is_none() && phase == ChangePhase::Open;
    let phase_changed =
        (prev.phase != status.phase && !first).then_some((phase, status.resolution));
    let wake = r.spec.plan.as_ref().and_then(|p| {
        [p.window.start.0, p.window.end.0]
            .into_iter()
            .filter(|t| *t > now)
            .min()
    });
    unyo_crds::limits::Bounded::bound(&mut status);
    Decision {
        status: (prev != status).then_some(status),
        phase_changed,
        wake,
    }
}

#[tracing::instrument(skip_all, fields(namespace = r.namespace().unwrap_or_default(), record = r.name_any()))]
async fn reconcile(r: Arc<ChangeRecord>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = r.namespace().unwrap_or_default();
    let now = ctx.clock.now();
    let servers: Vec<Server> = r
        .spec
        .server
        .iter()
        .chain(r.spec.servers.iter())
        .filter_map(|s| get(&ctx.stores.servers, &ns, s))
        .map(|s| s.as_ref().clone())
        .collect();
    let d = decide(&r, &servers, now);
    if let Some(status) = &d.status {
        ctx.apply_status(r.as_ref(), status).await?;
    }
    if let (Some((phase, resolution)), Some(_)) = (d.phase_changed, &d.status) {
        tracing::info!(?phase, ?resolution, "change record phase");
        ctx.emit(
            Event {
                type_: EventType::Normal,
                reason: format!("{phase:?}"),
                note: Some(match resolution {
                    Some(res) => format!("{phase:?} ({res:?})"),
                    None => format!("{phase:?}"),
                }),
                action: "UpdatePhase".into(),
                secondary: None,
            },
            r.object_ref(&()),
        );
    }
    Ok(ctx.requeue_at(d.wake, now))
}

/// The records naming Server `s`.
fn records_of(records: &Store<ChangeRecord>, s: &Server) -> Vec<ObjectRef<ChangeRecord>> {
    let name = s.name_any();
    let ns = s.namespace();
    records
        .state()
        .iter()
        .filter(|r| r.namespace() == ns)
        .filter(|r| names_server(r, &name))
        .map(|r| ObjectRef::from_obj(r.as_ref()))
        .collect()
}

/// Runs the ChangeRecord loop until shutdown.
pub fn run(ctx: Arc<Context>, kinds: &Kinds) -> impl Future<Output = ()> + use<> {
    let store = ctx.stores.records.clone();
    let records = store.clone();
    let controller = Controller::for_shared_stream(kinds.records.subscribe(), store)
        .with_config(crate::context::config())
        .watches_shared_stream(kinds.servers.subscribe(), move |s: Arc<Server>| {
            records_of(&records, &s)
        });
    crate::context::run_loop(controller, ctx, "ChangeRecord", reconcile)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn server(os: Option<&str>) -> Server {
        let mut v = json!({
            "apiVersion": "unyo.dev/v1alpha1", "kind": "Server",
            "metadata": {"name": "db01", "namespace": "mie"},
            "spec": {"hostname": "db01", "role": "DB", "os": {"name": "Debian GNU/Linux", "version": "12"}},
        });
        if let Some(os) = os {
            v["status"] = json!({"observed": {"os": {"name": "Debian GNU/Linux", "version": os}}});
        }
        serde_json::from_value(v).unwrap()
    }

    fn drift_record(status: serde_json::Value) -> ChangeRecord {
        serde_json::from_value(json!({
            "apiVersion": "unyo.dev/v1alpha1", "kind": "ChangeRecord",
            "metadata": {"name": "db01-drift-1", "namespace": "mie", "generation": 1},
            "spec": {"origin": "Drift", "title": "t", "category": "OS", "classification": "Major",
                     "server": "db01", "paths": [{"path": "os.version", "expected": "12", "observed": "13"}]},
            "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn a_new_drift_record_opens_quietly_and_resolves_when_the_host_reverts() {
        let now = t("2026-11-30T00:00:00Z");
        let r = drift_record(serde_json::Value::Null);
        let d = decide(&r, &[server(Some("13"))], now);
        let st = d.status.clone().unwrap();
        assert_eq!(st.phase, Some(ChangePhase::Open));
        assert!(d.phase_changed.is_none(), "a new record's Open is no Event");
        assert_eq!(d.wake, None);
        // Written, then decided again: nothing.
        let r = drift_record(serde_json::to_value(&st).unwrap());
        assert!(decide(&r, &[server(Some("13"))], now).status.is_none());
        // The host goes back to 12: Resolved, HostReverted, with an Event.
        let later = t("2026-11-30T01:00:00Z");
        let d = decide(&r, &[server(Some("12"))], later);
        let st = d.status.unwrap();
        assert_eq!(st.phase, Some(ChangePhase::Resolved));
        assert_eq!(st.resolution, Some(ChangeResolution::HostReverted));
        assert_eq!(st.resolved_at.unwrap().0, later);
        assert_eq!(
            d.phase_changed,
            Some((ChangePhase::Resolved, Some(ChangeResolution::HostReverted)))
        );
    }

    #[test]
    fn a_record_is_judged_from_facts_not_from_a_status_not_yet_written() {
        // The Server loop has not written status.drift yet; the facts show the drift: Open.
        let r = drift_record(json!({"phase": "Open"}));
        let d = decide(&r, &[server(Some("13"))], t("2026-11-30T00:00:00Z"));
        assert!(d.phase_changed.is_none());
        // Without facts nothing can be judged: the phase stays.
        let d = decide(&r, &[server(None)], t("2026-11-30T00:00:00Z"));
        assert_eq!(d.status.map(|s| s.phase), Some(Some(ChangePhase::Open)));
        assert!(d.phase_changed.is_none());
    }

    #[test]
    fn a_planned_record_wakes_at_its_window() {
        let r: ChangeRecord = serde_json::from_value(json!({
            "apiVersion": "unyo.dev/v1alpha1", "kind": "ChangeRecord",
            "metadata": {"name": "upgrade", "namespace": "mie"},
            "spec": {"origin": "Planned", "title": "t", "category": "OS", "classification": "Major",
                     "server": "db01", "paths": [{"path": "os"}],
                     "plan": {"summary": "s", "outage": true,
                              "window": {"start": "2026-12-10T00:00:00Z", "end": "2026-12-10T02:00:00Z"}}},
        }))
        .unwrap();
        let d = decide(&r, &[server(Some("12"))], t("2026-11-30T00:00:00Z"));
        assert_eq!(d.wake, Some(t("2026-12-10T00:00:00Z")));
        let st = d.status.unwrap();
        let lead = st
            .conditions
            .iter()
            .find(|c| c.type_ == "LeadTimeViolated")
            .unwrap();
        assert_eq!(lead.status, "True", "recorded 10 days before an outage");
        let d = decide(&r, &[server(Some("12"))], t("2026-12-10T01:00:00Z"));
        assert_eq!(d.wake, Some(t("2026-12-10T02:00:00Z")));
    }
}

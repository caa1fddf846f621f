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
use std::time::Duration;

use futures::StreamExt;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Resource, ResourceExt};
use unyo_crds::Server;
use unyo_crds::change::{
    ChangeOrigin, ChangePhase, ChangeRecord, ChangeRecordStatus, ChangeResolution, ReviewResult,
};
use unyo_crds::drift::{Drift, ignored, observed_at};

use crate::conditions::condition;
use crate::context::{Context, FIELD_MANAGER};

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

/// Whether planned record `r` is for `server`, approved, and its window contains `now`.
pub fn planned_applies(r: &ChangeRecord, server: &str, now: Timestamp) -> bool {
    r.spec.origin == ChangeOrigin::Planned
        && r.spec.closed != Some(true)
        && (r.spec.server.as_deref() == Some(server) || r.spec.servers.iter().any(|s| s == server))
        && approved(r)
        && r.spec
            .plan
            .as_ref()
            .is_some_and(|p| p.window.start.0 <= now && now < p.window.end.0)
}

/// Failure of one reconcile.
#[derive(thiserror::Error, Debug)]
#[error("{what}: {source}")]
pub struct Error {
    what: String,
    source: kube::Error,
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
            let drift = server
                .and_then(|s| s.status.as_ref())
                .map(|s| s.drift.clone())
                .unwrap_or_default();
            let present = r.spec.paths.iter().any(|p| {
                drift
                    .iter()
                    .any(|e| e.path == p.path && e.observed == p.observed)
            });
            if present || server.is_none() {
                status.phase = Some(ChangePhase::Open);
            } else {
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
        }
        ChangeOrigin::Planned => {
            let mut absorbed: Vec<String> = prev.absorbed.clone();
            if let Some(plan) = &r.spec.plan {
                let in_window = plan.window.start.0 <= now && now < plan.window.end.0;
                if approved(r) && in_window {
                    for s in servers {
                        let name = s.name_any();
                        for e in s.status.iter().flat_map(|st| st.drift.iter()) {
                            let d = Drift {
                                path: e.path.clone(),
                                expected: e.expected.clone(),
                                observed: e.observed.clone(),
                                kind: unyo_crds::drift::DriftKind::Os,
                            };
                            let entry = format!("{name}:{}", e.path);
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
                    "LeadTimeViolated",
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
            "Ready",
            true,
            "Recorded",
            format!("{:?}", status.phase.unwrap_or(ChangePhase::Open)),
            generation,
            now,
        ),
    );
    status.conditions = conditions;
    status
}

#[tracing::instrument(skip_all, fields(namespace = r.namespace().unwrap_or_default(), record = r.name_any()))]
async fn reconcile(r: Arc<ChangeRecord>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile("ChangeRecord");
    let ns = r.namespace().unwrap_or_default();
    let name = r.name_any();
    let now = ctx.clock.now();
    let servers_api: Api<Server> = Api::namespaced(ctx.client.clone(), &ns);
    let mut servers = Vec::new();
    for s in r.spec.server.iter().chain(r.spec.servers.iter()) {
        if let Some(found) = servers_api.get_opt(s).await.map_err(|source| Error {
            what: format!("reading Server {s}"),
            source,
        })? {
            servers.push(found);
        }
    }
    let status = desired_status(&r, &servers, now);
    let prev = r.status.clone().unwrap_or_default();
    if prev != status {
        let api: Api<ChangeRecord> = Api::namespaced(ctx.client.clone(), &ns);
        let patch = serde_json::json!({
            "apiVersion": ChangeRecord::api_version(&()),
            "kind": ChangeRecord::kind(&()),
            "status": status,
        });
        api.patch_status(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
        .map_err(|source| Error {
            what: "writing the ChangeRecord status".into(),
            source,
        })?;
        if prev.phase != status.phase {
            tracing::info!(phase = ?status.phase, resolution = ?status.resolution, "change record phase");
            let _ = ctx
                .recorder
                .publish(
                    &Event {
                        type_: EventType::Normal,
                        reason: format!("{:?}", status.phase.unwrap_or(ChangePhase::Open)),
                        note: Some(match status.resolution {
                            Some(res) => {
                                format!("{:?} ({res:?})", status.phase.unwrap_or(ChangePhase::Open))
                            }
                            None => format!("{:?}", status.phase.unwrap_or(ChangePhase::Open)),
                        }),
                        action: "UpdatePhase".into(),
                        secondary: None,
                    },
                    &r.object_ref(&()),
                )
                .await;
        }
    }
    // A planned change is looked at again when its window opens and closes.
    let next = r.spec.plan.as_ref().and_then(|p| {
        [p.window.start.0, p.window.end.0]
            .into_iter()
            .filter(|t| *t > now)
            .min()
    });
    Ok(match (next, ctx.clock) {
        (Some(t), crate::context::Clock::System) => Action::requeue(Duration::from_millis(
            (t.as_millisecond() - now.as_millisecond()).max(0) as u64 + 500,
        )),
        _ => Action::await_change(),
    })
}

fn error_policy(_r: Arc<ChangeRecord>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.error("ChangeRecord");
    tracing::warn!(%error, "change record reconcile failed; retrying in 5s");
    Action::requeue(Duration::from_secs(5))
}

/// Runs the ChangeRecord controller until shutdown.
pub async fn run(ctx: Arc<Context>, namespace: Option<String>) {
    let client = ctx.client.clone();
    let records: Api<ChangeRecord> = crate::context::api(&client, &namespace);
    let servers: Api<Server> = crate::context::api(&client, &namespace);
    let controller = Controller::new(records, watcher::Config::default());
    let store = controller.store();
    ctx.metrics.caches.lock().await.changes = Some(store.clone());
    controller
        .watches(servers, watcher::Config::default(), move |s: Server| {
            let name = s.name_any();
            let ns = s.namespace();
            store
                .state()
                .iter()
                .filter(|r| r.namespace() == ns)
                .filter(|r| {
                    r.spec.server.as_deref() == Some(name.as_str())
                        || r.spec.servers.contains(&name)
                })
                .map(|r| ObjectRef::from_obj(r.as_ref()))
                .collect::<Vec<_>>()
        })
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "change record reconcile");
            }
        })
        .await;
}

//! The Server reconcile loop: compares each ledger with the facts its agent observed, writes
//! `status.drift` and the conditions InSync, AgentConnected and Ready, and opens a ChangeRecord
//! for drift that no open record and no approved planned change in its window covers.
//!
//! Driven by watches of Servers, of the agents' Leases and of ChangeRecords, and by a requeue at
//! the instant a Lease expires (so that AgentConnected turns False on time, without polling).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{ListParams, ObjectMeta, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Resource, ResourceExt};
use sha2::{Digest, Sha256};
use unyo_crds::change::{
    ChangeCategory, ChangeClass, ChangeOrigin, ChangePath, ChangeRecord, ChangeRecordSpec,
};
use unyo_crds::drift::{Drift, DriftKind, classify, compare};
use unyo_crds::server::{DriftEntry, Server, ServerStatus};

use crate::change::{covers, is_open, planned_applies};
use crate::conditions::condition;
use crate::context::{Context, FIELD_MANAGER};

/// Failure of one reconcile.
#[derive(thiserror::Error, Debug)]
pub enum Error {
    /// An API call failed.
    #[error("{what}: {source}")]
    Api {
        /// What was being done.
        what: String,
        /// The API error.
        source: kube::Error,
    },
}

fn api(what: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let what = what.into();
    move |source| Error::Api { what, source }
}

/// Name of the Lease of a host's agent.
pub fn lease_name(server: &str) -> String {
    format!("unyo-agent-{server}")
}

/// The deterministic name of the ChangeRecord for `drifts` on `server`: the same drift set
/// always gives the same name, so a retry or a restart cannot open a second record.
pub fn drift_record_name(server: &str, drifts: &[Drift]) -> String {
    let mut h = Sha256::new();
    for d in drifts {
        for part in [Some(d.path.as_str()), d.observed.as_deref()] {
            h.update(part.unwrap_or("\u{0}").as_bytes());
            h.update([0xff]);
        }
    }
    let digest = hex::encode(&h.finalize()[..5]);
    let base: String = server.chars().take(253 - 17).collect();
    format!("{base}-drift-{digest}")
}

fn category(drifts: &[Drift]) -> ChangeCategory {
    match drifts.iter().map(|d| d.kind).min() {
        Some(DriftKind::Os) => ChangeCategory::OS,
        Some(DriftKind::Hardware) => ChangeCategory::Hardware,
        _ => ChangeCategory::Software,
    }
}

/// How long a drift record may stay open by its classification (the deadline of R2).
fn deadline_after(class: ChangeClass) -> SignedDuration {
    match class {
        ChangeClass::Emergency => SignedDuration::from_hours(24),
        ChangeClass::Major => SignedDuration::from_hours(24 * 7),
        ChangeClass::Minor => SignedDuration::from_hours(24 * 14),
    }
}

/// Whether the agent's Lease is current at `now`, and until when.
fn lease_state(lease: Option<&Lease>, now: Timestamp) -> (bool, Option<Timestamp>, String) {
    let Some(spec) = lease.and_then(|l| l.spec.as_ref()) else {
        return (false, None, "NoLease".into());
    };
    let (Some(renewed), Some(secs)) = (spec.renew_time.as_ref(), spec.lease_duration_seconds)
    else {
        return (false, None, "NeverRenewed".into());
    };
    let until = renewed.0 + SignedDuration::from_secs(i64::from(secs));
    if until > now {
        (true, Some(until), "LeaseRenewed".into())
    } else {
        (false, Some(until), "LeaseExpired".into())
    }
}

#[tracing::instrument(skip_all, fields(namespace = server.namespace().unwrap_or_default(), server = server.name_any()))]
async fn reconcile(server: Arc<Server>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile("Server");
    let name = server.name_any();
    let ns = server.namespace().unwrap_or_default();
    let now = ctx.clock.now();
    let generation = server.meta().generation;
    let prev = server.status.clone().unwrap_or_default();

    // Drift, each entry keeping the time it was first seen.
    let drifts = prev
        .observed
        .as_ref()
        .map(|o| compare(&server.spec, o))
        .unwrap_or_default();
    let entries: Vec<DriftEntry> = drifts
        .iter()
        .map(|d| DriftEntry {
            path: d.path.clone(),
            expected: d.expected.clone(),
            observed: d.observed.clone(),
            since: prev
                .drift
                .iter()
                .find(|e| e.path == d.path && e.observed == d.observed)
                .map(|e| e.since.clone())
                .unwrap_or(Time(crate::conditions::truncate_to_seconds(now))),
        })
        .collect();

    // Records: drift that an open record or an applicable planned change covers is recorded.
    let records: Api<ChangeRecord> = Api::namespaced(ctx.client.clone(), &ns);
    let all = records
        .list(&ListParams::default())
        .await
        .map_err(api("listing ChangeRecords"))?
        .items;
    let open_drift: Vec<&ChangeRecord> = all
        .iter()
        .filter(|r| r.spec.origin == ChangeOrigin::Drift && r.spec.server.as_deref() == Some(&name))
        .filter(|r| is_open(r))
        .collect();
    let planned: Vec<&ChangeRecord> = all
        .iter()
        .filter(|r| planned_applies(r, &name, now))
        .collect();
    let uncovered: Vec<Drift> = drifts
        .iter()
        .filter(|d| !open_drift.iter().any(|r| covers(r, d)))
        .filter(|d| !planned.iter().any(|r| covers(r, d)))
        .cloned()
        .collect();
    let mut current_record = open_drift
        .iter()
        .filter(|r| drifts.iter().any(|d| covers(r, d)))
        .max_by_key(|r| r.meta().creation_timestamp.clone())
        .map(|r| r.name_any());
    if !uncovered.is_empty() {
        let record_name = drift_record_name(&name, &uncovered);
        let class = classify(&uncovered, server.spec.drift.as_ref());
        let first_seen = entries
            .iter()
            .filter(|e| uncovered.iter().any(|d| d.path == e.path))
            .map(|e| e.since.0)
            .min()
            .unwrap_or(now);
        let record = ChangeRecord {
            metadata: ObjectMeta {
                name: Some(record_name.clone()),
                namespace: Some(ns.clone()),
                labels: Some(
                    [
                        ("unyo.dev/server".to_string(), name.clone()),
                        ("unyo.dev/origin".to_string(), "Drift".to_string()),
                    ]
                    .into(),
                ),
                ..Default::default()
            },
            spec: ChangeRecordSpec {
                origin: ChangeOrigin::Drift,
                title: Some(format!(
                    "{name}: {} ledger path(s) drifted: {}",
                    uncovered.len(),
                    uncovered
                        .iter()
                        .map(|d| d.path.as_str())
                        .take(3)
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
                category: category(&uncovered),
                classification: class,
                server: Some(name.clone()),
                servers: vec![],
                paths: uncovered
                    .iter()
                    .map(|d| ChangePath {
                        path: d.path.clone(),
                        expected: d.expected.clone(),
                        observed: d.observed.clone(),
                    })
                    .collect(),
                requester: Some("unyo-controller (drift detection)".into()),
                manager: None,
                recorded_at: Some(Time(first_seen)),
                deadline: Some(Time(first_seen + deadline_after(class))),
                plan: None,
                reviews: vec![],
                closed: None,
            },
            status: None,
        };
        let existed = all.iter().any(|r| r.name_any() == record_name);
        records
            .patch(
                &record_name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&record),
            )
            .await
            .map_err(api(format!("applying ChangeRecord {record_name}")))?;
        if !existed {
            tracing::info!(record = %record_name, paths = uncovered.len(), ?class, "opened a ChangeRecord for drift");
            let _ = ctx
                .recorder
                .publish(
                    &Event {
                        type_: EventType::Warning,
                        reason: "DriftRecorded".into(),
                        note: Some(format!(
                            "{} ledger path(s) drifted; recorded in ChangeRecord {record_name}",
                            uncovered.len()
                        )),
                        action: "OpenChangeRecord".into(),
                        secondary: Some(record.object_ref(&())),
                    },
                    &server.object_ref(&()),
                )
                .await;
        }
        current_record = Some(record_name);
    }

    // The agent's heartbeat.
    let leases: Api<Lease> = Api::namespaced(ctx.client.clone(), &ns);
    let lease = leases
        .get_opt(&lease_name(&name))
        .await
        .map_err(api("reading the agent's Lease"))?;
    let (connected, until, lease_reason) = lease_state(lease.as_ref(), now);

    let conds = &prev.conditions;
    let in_sync = match (&prev.observed, drifts.is_empty()) {
        (None, _) => None,
        (Some(_), true) => Some(true),
        (Some(_), false) => Some(false),
    };
    let absorbed = drifts
        .iter()
        .filter(|d| planned.iter().any(|r| covers(r, d)))
        .count();
    let sync_condition = match in_sync {
        None => {
            let mut c = condition(
                conds,
                "InSync",
                false,
                "NoFacts",
                "the agent has not reported facts yet",
                generation,
                now,
            );
            c.status = "Unknown".into();
            c
        }
        Some(true) => condition(
            conds,
            "InSync",
            true,
            "InSync",
            "the host matches its ledger",
            generation,
            now,
        ),
        Some(false) => condition(
            conds,
            "InSync",
            false,
            "Drifted",
            format!(
                "{} ledger path(s) differ from the host ({}){}{}",
                drifts.len(),
                drifts
                    .iter()
                    .map(|d| d.path.as_str())
                    .take(5)
                    .collect::<Vec<_>>()
                    .join(", "),
                current_record
                    .as_ref()
                    .map(|r| format!("; recorded in ChangeRecord {r}"))
                    .unwrap_or_default(),
                if absorbed > 0 {
                    format!("; {absorbed} expected by a planned change")
                } else {
                    String::new()
                }
            ),
            generation,
            now,
        ),
    };
    let agent_condition = condition(
        conds,
        "AgentConnected",
        connected,
        &lease_reason,
        match (connected, until) {
            (true, Some(u)) => format!("the agent renewed its Lease; valid until {u}"),
            (false, Some(u)) => format!("the agent's Lease expired at {u}"),
            _ => format!("no renewed Lease {}", lease_name(&name)),
        },
        generation,
        now,
    );
    // Antivirus health, where a VirusScanSchedule selects the server.
    let schedules = Api::<unyo_crds::VirusScanSchedule>::namespaced(ctx.client.clone(), &ns)
        .list(&ListParams::default())
        .await
        .map_err(api("listing VirusScanSchedules"))?
        .items;
    let calendars = Api::<unyo_crds::OperationCalendar>::namespaced(ctx.client.clone(), &ns)
        .list(&ListParams::default())
        .await
        .map_err(api("listing OperationCalendars"))?
        .items;
    let plans = Api::<unyo_crds::BackupPlan>::namespaced(ctx.client.clone(), &ns)
        .list(&ListParams::default())
        .await
        .map_err(api("listing BackupPlans"))?
        .items;
    let backups = crate::backup::server_health(&server, &plans, &calendars, now).map(
        |(ok, reason, message)| {
            condition(conds, "BackupHealthy", ok, reason, message, generation, now)
        },
    );
    let antivirus =
        crate::virusscan::server_health(&server, &schedules, &calendars, now).map(|h| {
            condition(
                conds,
                "AntivirusHealthy",
                h.ok,
                h.reason,
                h.message,
                generation,
                now,
            )
        });
    let baselines = Api::<unyo_crds::PatchBaseline>::namespaced(ctx.client.clone(), &ns)
        .list(&ListParams::default())
        .await
        .map_err(api("listing PatchBaselines"))?
        .items;
    let patches = crate::patch::server_health(&server, &baselines).map(|(ok, reason, message)| {
        crate::conditions::judged(
            conds,
            "PatchCompliant",
            ok,
            reason,
            message,
            generation,
            now,
        )
    });
    let ready = in_sync == Some(true) && connected;
    let ready_reason = if !connected {
        "AgentDisconnected"
    } else if in_sync == Some(false) {
        "Drifted"
    } else if in_sync.is_none() {
        "NoFacts"
    } else {
        "Ready"
    };
    let ready_condition = condition(
        conds,
        "Ready",
        ready,
        ready_reason,
        if ready {
            "in sync with its ledger and its agent is connected".to_string()
        } else {
            format!("{}; {}", sync_condition.message, agent_condition.message)
        },
        generation,
        now,
    );
    let status = ServerStatus {
        drift: entries,
        drift_count: Some(drifts.len() as u32),
        change_record: if drifts.is_empty() {
            None
        } else {
            current_record
        },
        observed_generation: generation,
        conditions: [sync_condition, agent_condition, ready_condition]
            .into_iter()
            .chain(antivirus)
            .chain(backups)
            .chain(patches)
            .collect(),
        ..Default::default()
    };
    let unchanged = prev.drift == status.drift
        && prev.drift_count == status.drift_count
        && prev.change_record == status.change_record
        && prev.observed_generation == status.observed_generation
        && status
            .conditions
            .iter()
            .all(|c| prev.conditions.iter().any(|p| p == c));
    if !unchanged {
        let servers: Api<Server> = Api::namespaced(ctx.client.clone(), &ns);
        // Only the controller's fields are set (the agent owns observed and checks); unset
        // ones are left out, so that server-side apply removes what no longer holds.
        let patch = serde_json::json!({
            "apiVersion": Server::api_version(&()),
            "kind": Server::kind(&()),
            "status": status,
        });
        servers
            .patch_status(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&patch),
            )
            .await
            .map_err(api("writing the Server status"))?;
        let was = |t: &str| {
            prev.conditions
                .iter()
                .find(|c| c.type_ == t)
                .map(|c| c.status.clone())
        };
        if was("AgentConnected").as_deref() == Some("True") && !connected {
            let _ = ctx
                .recorder
                .publish(
                    &Event {
                        type_: EventType::Warning,
                        reason: "AgentDisconnected".into(),
                        note: Some(format!(
                            "the agent's Lease {} is no longer renewed",
                            lease_name(&name)
                        )),
                        action: "CheckLease".into(),
                        secondary: None,
                    },
                    &server.object_ref(&()),
                )
                .await;
        }
        tracing::info!(drift = drifts.len(), connected, "status updated");
    }
    // Look again when the Lease expires; a renewal wakes the loop through the Lease watch.
    Ok(match (connected, until, ctx.clock) {
        (true, Some(u), crate::context::Clock::System) => {
            let ms = (u.as_millisecond() - now.as_millisecond()).max(0) as u64 + 500;
            Action::requeue(Duration::from_millis(ms))
        }
        _ => Action::await_change(),
    })
}

fn error_policy(_s: Arc<Server>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.error("Server");
    tracing::warn!(%error, "server reconcile failed; retrying in 5s");
    Action::requeue(Duration::from_secs(5))
}

/// Runs the Server controller until shutdown.
pub async fn run(ctx: Arc<Context>, namespace: Option<String>) {
    let client = ctx.client.clone();
    let servers: Api<Server> = crate::context::api(&client, &namespace);
    let leases: Api<Lease> = crate::context::api(&client, &namespace);
    let records: Api<ChangeRecord> = crate::context::api(&client, &namespace);
    let schedules: Api<unyo_crds::VirusScanSchedule> = crate::context::api(&client, &namespace);
    let baselines: Api<unyo_crds::PatchBaseline> = crate::context::api(&client, &namespace);
    let controller = Controller::new(servers, watcher::Config::default());
    let store = controller.store();
    ctx.metrics.caches.lock().await.servers = Some(store.clone());
    let same_namespace = store.clone();
    controller
        .watches(leases, watcher::Config::default(), |lease: Lease| {
            let ns = lease.namespace()?;
            let server = lease.name_any().strip_prefix("unyo-agent-")?.to_string();
            Some(ObjectRef::<Server>::new(&server).within(&ns))
        })
        .watches(records, watcher::Config::default(), |r: ChangeRecord| {
            let ns = r.namespace().unwrap_or_default();
            let names: BTreeSet<String> = r
                .spec
                .server
                .iter()
                .chain(r.spec.servers.iter())
                .cloned()
                .collect();
            names
                .into_iter()
                .map(move |s| ObjectRef::<Server>::new(&s).within(&ns))
                .collect::<Vec<_>>()
        })
        .watches(
            schedules,
            watcher::Config::default(),
            move |v: unyo_crds::VirusScanSchedule| {
                let ns = v.namespace();
                store
                    .state()
                    .iter()
                    .filter(|s| s.namespace() == ns)
                    .map(|s| ObjectRef::from_obj(s.as_ref()))
                    .collect::<Vec<_>>()
            },
        )
        .watches(
            baselines,
            watcher::Config::default(),
            move |b: unyo_crds::PatchBaseline| {
                let ns = b.namespace();
                same_namespace
                    .state()
                    .iter()
                    .filter(|s| s.namespace() == ns)
                    .map(|s| ObjectRef::from_obj(s.as_ref()))
                    .collect::<Vec<_>>()
            },
        )
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "server reconcile");
            }
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(path: &str, observed: Option<&str>) -> Drift {
        Drift {
            path: path.into(),
            expected: Some("x".into()),
            observed: observed.map(String::from),
            kind: DriftKind::SoftwareVersion,
        }
    }

    #[test]
    fn record_names_are_deterministic_per_drift_set() {
        let a = drift_record_name("db01", &[d("os.version", Some("13"))]);
        assert_eq!(a, drift_record_name("db01", &[d("os.version", Some("13"))]));
        assert_ne!(a, drift_record_name("db01", &[d("os.version", Some("14"))]));
        assert_ne!(a, drift_record_name("db02", &[d("os.version", Some("13"))]));
        assert!(a.starts_with("db01-drift-") && a.len() == "db01-drift-".len() + 10);
    }

    #[test]
    fn lease_expiry() {
        use k8s_openapi::api::coordination::v1::LeaseSpec;
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
        let t0: Timestamp = "2026-11-24T00:00:00Z".parse().unwrap();
        let lease = Lease {
            metadata: Default::default(),
            spec: Some(LeaseSpec {
                renew_time: Some(MicroTime(t0)),
                lease_duration_seconds: Some(180),
                ..Default::default()
            }),
        };
        let (ok, until, _) = lease_state(Some(&lease), t0 + SignedDuration::from_secs(179));
        assert!(ok);
        assert_eq!(until, Some(t0 + SignedDuration::from_secs(180)));
        let (ok, _, reason) = lease_state(Some(&lease), t0 + SignedDuration::from_secs(181));
        assert!(!ok);
        assert_eq!(reason, "LeaseExpired");
        assert_eq!(lease_state(None, t0).2, "NoLease");
    }
}

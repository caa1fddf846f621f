//! The Incident loop: turns the checks the agents report (and agents that stop renewing their
//! Lease) into Incidents, one open Incident per problem.
//!
//! It reconciles per Server: every check in a severity its MonitoringPolicy lists in
//! `incidentSeverities` (default Critical) is a firing problem, and so is an agent whose
//! AgentConnected has been False for longer than the grace period (`--agent-grace`, 5m). A problem's fingerprint
//! (namespace, server, policy, check) names its Incidents. A firing problem opens an Incident,
//! or reopens the last one when it recovered less than the policy's `reopenWindow` ago; a
//! problem that goes away sets `recoveredAt` and the downtime. The controller writes only its own
//! fields (server-side apply): owner, state, cause, actions and prevention belong to people.
//! Notifications go out on opening and (per route) on recovery, and their delivery is recorded.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource, ResourceExt};
use sha2::{Digest, Sha256};
use unyo_crds::common::{Severity, parse_duration};
use unyo_crds::incident::{
    DeliveryState, Incident, IncidentPhase, IncidentState, IncidentStatus, NotificationDelivery,
};
use unyo_crds::monitoring::{MonitoringPolicy, NotificationRoute};
use unyo_crds::server::{CheckState, Server};
use unyo_crds::virusscan::VirusScanSchedule;

use crate::conditions::{condition, truncate_to_seconds};
use crate::context::{Context, FIELD_MANAGER};
use crate::notify::{self, Notice};

/// Default reopen window when a policy names none.
const DEFAULT_REOPEN: Duration = Duration::from_secs(3600);
/// Delivery attempts before a notification is given up.
const MAX_ATTEMPTS: u32 = 8;

/// Whether an incident is open: not closed by people, and not recovered.
pub fn is_open(i: &Incident) -> bool {
    i.spec.state != IncidentState::Closed
        && i.status.as_ref().and_then(|s| s.phase) != Some(IncidentPhase::Recovered)
}

/// Fingerprint of a problem.
pub fn fingerprint(namespace: &str, server: &str, policy: &str, check: &str) -> String {
    let mut h = Sha256::new();
    for p in [namespace, server, policy, check] {
        h.update(p.as_bytes());
        h.update([0]);
    }
    hex::encode(&h.finalize()[..8])
}

/// A problem found on a Server.
#[derive(Clone, Debug, PartialEq)]
pub struct Problem {
    /// Policy of the check (`agent` for a disconnected agent).
    pub policy: String,
    /// Check name (`heartbeat` for a disconnected agent).
    pub check: String,
    /// Severity of the Incident.
    pub severity: Severity,
    /// Whether it fires now.
    pub firing: bool,
    /// Since when it is in its current state.
    pub since: Timestamp,
    /// What was seen.
    pub message: String,
    /// The policy's notification routes.
    pub routes: Vec<NotificationRoute>,
    /// The policy's reopen window.
    pub reopen: Duration,
}

/// The problems of `server` under `policies` at `now`.
pub fn problems(
    server: &Server,
    policies: &[MonitoringPolicy],
    schedules: &[VirusScanSchedule],
    plans: &[unyo_crds::BackupPlan],
    calendars: &[unyo_crds::OperationCalendar],
    now: Timestamp,
    agent_grace: SignedDuration,
) -> Vec<Problem> {
    let by_name: BTreeMap<String, &MonitoringPolicy> =
        policies.iter().map(|p| (p.name_any(), p)).collect();
    let mut out = Vec::new();
    let status = server.status.clone().unwrap_or_default();
    for c in &status.checks {
        let Some(policy) = by_name.get(&c.policy) else {
            continue;
        };
        let severities = if policy.spec.incident_severities.is_empty() {
            vec![Severity::Critical]
        } else {
            policy.spec.incident_severities.clone()
        };
        let severity = match c.state {
            CheckState::Critical => Some(Severity::Critical),
            CheckState::Warning => Some(Severity::Warning),
            _ => None,
        };
        let firing = severity.is_some_and(|s| severities.contains(&s));
        out.push(Problem {
            policy: c.policy.clone(),
            check: c.check.clone(),
            severity: severity.unwrap_or(Severity::Critical),
            firing,
            since: c.since.0,
            message: c.message.clone().unwrap_or_default(),
            routes: policy.spec.notifications.clone(),
            reopen: policy
                .spec
                .reopen_window
                .as_deref()
                .and_then(|w| parse_duration(w).ok())
                .unwrap_or(DEFAULT_REOPEN),
        });
    }
    // A failed or missed backup is a problem until a run of the plan succeeds on time.
    let mut selecting_routes: Vec<NotificationRoute> = Vec::new();
    for p in unyo_crds::selection::monitoring_policies_for(server, policies) {
        for r in &p.spec.notifications {
            if !selecting_routes.iter().any(|x| x.name == r.name) {
                selecting_routes.push(r.clone());
            }
        }
    }
    for plan in unyo_crds::selection::backup_plans_for(server, plans) {
        let (ok, reason, message) = crate::backup::health(server, plan, calendars, now);
        if reason == "NeverBackedUp" {
            continue;
        }
        let last = status
            .operations
            .as_ref()
            .and_then(|o| o.backups.iter().find(|b| b.plan == plan.name_any()))
            .and_then(|b| {
                [&b.last_full, &b.last_differential]
                    .into_iter()
                    .flatten()
                    .map(|r| r.started_at.0)
                    .max()
            })
            .unwrap_or(now);
        out.push(Problem {
            policy: plan.name_any(),
            check: "backup".into(),
            severity: Severity::Critical,
            firing: !ok && (reason == "BackupFailed" || reason == "MissedRun"),
            since: last,
            message,
            routes: selecting_routes.clone(),
            reopen: DEFAULT_REOPEN,
        });
    }
    // Every detection of the last scan is a problem until a later scan no longer finds it.
    if let Some(av) = status
        .operations
        .as_ref()
        .and_then(|o| o.antivirus.as_ref())
    {
        let schedule_name = av
            .last_scan
            .as_ref()
            .map(|r| r.schedule.clone())
            .unwrap_or_default();
        let routes = schedules
            .iter()
            .find(|s| s.name_any() == schedule_name)
            .and_then(|s| s.spec.notify_policy.as_ref())
            .and_then(|p| by_name.get(p))
            .map(|p| p.spec.notifications.clone())
            .unwrap_or_default();
        for d in &av.detections {
            out.push(Problem {
                policy: schedule_name.clone(),
                check: virus_check(&d.path, &d.signature),
                severity: Severity::Critical,
                firing: true,
                since: d.at.0,
                message: format!("{} in {} ({})", d.signature, d.path, d.actions.join("; ")),
                routes: routes.clone(),
                reopen: DEFAULT_REOPEN,
            });
        }
    }
    if let Some(agent) = status
        .conditions
        .iter()
        .find(|c| c.type_ == "AgentConnected")
    {
        let down_since = agent.last_transition_time.0;
        let firing = agent.status == "False" && now.duration_since(down_since) >= agent_grace;
        // Routes of every policy selecting the server, deduplicated by name.
        let mut routes: Vec<NotificationRoute> = Vec::new();
        for p in unyo_crds::selection::monitoring_policies_for(server, policies) {
            for r in &p.spec.notifications {
                if !routes.iter().any(|x| x.name == r.name) {
                    routes.push(r.clone());
                }
            }
        }
        out.push(Problem {
            policy: "agent".into(),
            check: "heartbeat".into(),
            severity: Severity::Critical,
            firing,
            since: if agent.status == "False" {
                down_since
            } else {
                agent.last_transition_time.0
            },
            message: agent.message.clone(),
            routes,
            reopen: DEFAULT_REOPEN,
        });
    }
    out
}

/// The check name of a detection: `virus-` and a hash of path and signature.
pub fn virus_check(path: &str, signature: &str) -> String {
    let mut h = Sha256::new();
    h.update(path.as_bytes());
    h.update([0]);
    h.update(signature.as_bytes());
    format!("virus-{}", hex::encode(&h.finalize()[..6]))
}

fn incident_name(server: &str, check: &str, fp: &str, n: usize) -> String {
    let stem: String = format!("{server}-{check}").chars().take(200).collect();
    format!("{stem}-{}-{n}", &fp[..8])
}

/// Failure of one reconcile.
#[derive(thiserror::Error, Debug)]
#[error("{what}: {source}")]
pub struct Error {
    what: String,
    source: kube::Error,
}

fn api(what: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let what = what.into();
    move |source| Error { what, source }
}

#[tracing::instrument(skip_all, fields(namespace = server.namespace().unwrap_or_default(), server = server.name_any()))]
async fn reconcile(server: Arc<Server>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile("Incident");
    let ns = server.namespace().unwrap_or_default();
    let name = server.name_any();
    let now = ctx.clock.now();
    let policies: Api<MonitoringPolicy> = Api::namespaced(ctx.client.clone(), &ns);
    let policies = policies
        .list(&ListParams::default())
        .await
        .map_err(api("listing MonitoringPolicies"))?
        .items;
    let incidents: Api<Incident> = Api::namespaced(ctx.client.clone(), &ns);
    let all = incidents
        .list(&ListParams::default().labels(&format!("unyo.dev/server={name}")))
        .await
        .map_err(api("listing Incidents"))?
        .items;
    let schedules = Api::<VirusScanSchedule>::namespaced(ctx.client.clone(), &ns)
        .list(&ListParams::default())
        .await
        .map_err(api("listing VirusScanSchedules"))?
        .items;
    let mut wake: Option<Duration> = None;
    let plans = Api::<unyo_crds::BackupPlan>::namespaced(ctx.client.clone(), &ns)
        .list(&ListParams::default())
        .await
        .map_err(api("listing BackupPlans"))?
        .items;
    let calendars = Api::<unyo_crds::OperationCalendar>::namespaced(ctx.client.clone(), &ns)
        .list(&ListParams::default())
        .await
        .map_err(api("listing OperationCalendars"))?
        .items;
    let mut found = problems(
        &server,
        &policies,
        &schedules,
        &plans,
        &calendars,
        now,
        ctx.agent_grace,
    );
    // A detection a later scan no longer lists has gone (quarantined, deleted): its open
    // Incident recovers at the time of that scan.
    let last_scan = server
        .status
        .as_ref()
        .and_then(|s| s.operations.as_ref())
        .and_then(|o| o.antivirus.as_ref())
        .and_then(|a| a.last_scan.as_ref())
        .map(|r| r.started_at.0);
    for i in all.iter().filter(|i| is_open(i)) {
        let Some(label) = i.labels().get("unyo.dev/check") else {
            continue;
        };
        let Some((schedule, check)) = label.split_once('.') else {
            continue;
        };
        if check.starts_with("virus-")
            && !found.iter().any(|p| p.check == check)
            && let Some(at) = last_scan
        {
            found.push(Problem {
                policy: schedule.to_string(),
                check: check.to_string(),
                severity: i.spec.severity,
                firing: false,
                since: at,
                message: "a later scan no longer finds it".into(),
                routes: vec![],
                reopen: DEFAULT_REOPEN,
            });
        }
    }
    for p in found {
        let fp = fingerprint(&ns, &name, &p.policy, &p.check);
        let mut mine: Vec<&Incident> = all
            .iter()
            .filter(|i| i.spec.fingerprint.as_deref() == Some(fp.as_str()))
            .collect();
        mine.sort_by_key(|i| i.meta().creation_timestamp.clone());
        let last = mine.last().copied();
        let target: Option<(String, bool)> = match last {
            // A firing problem: the open incident, a recent recovered one (reopened), or a new one.
            _ if !p.firing => last.map(|i| (i.name_any(), false)),
            Some(i) if i.spec.state != IncidentState::Closed => {
                let recovered_at = i
                    .status
                    .as_ref()
                    .and_then(|s| s.recovered_at.as_ref())
                    .map(|t| t.0);
                match recovered_at {
                    Some(r)
                        if now.duration_since(r)
                            > SignedDuration::try_from(p.reopen).unwrap_or(SignedDuration::MAX)
                            && is_recovered(i) =>
                    {
                        Some((incident_name(&name, &p.check, &fp, mine.len() + 1), true))
                    }
                    _ => Some((i.name_any(), false)),
                }
            }
            _ => Some((incident_name(&name, &p.check, &fp, mine.len() + 1), true)),
        };
        let Some((incident, new)) = target else {
            continue;
        };
        let existing = if new { None } else { last };
        if let Some(w) =
            sync_incident(&ctx, &incidents, &server, &p, &fp, &incident, existing, now).await?
        {
            wake = Some(wake.map_or(w, |x| x.min(w)));
        }
    }
    // Agents past their grace period are looked at again when it ends.
    if let Some(agent) = server
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "AgentConnected"))
        && agent.status == "False"
    {
        let end = agent.last_transition_time.0 + ctx.agent_grace;
        if end > now {
            let ms = (end.as_millisecond() - now.as_millisecond()) as u64 + 500;
            let w = Duration::from_millis(ms);
            wake = Some(wake.map_or(w, |x| x.min(w)));
        }
    }
    Ok(match (wake, ctx.clock) {
        (Some(w), crate::context::Clock::System) => Action::requeue(w),
        (Some(w), _) if w < Duration::from_secs(60) => Action::requeue(w),
        _ => Action::await_change(),
    })
}

fn is_recovered(i: &Incident) -> bool {
    i.status.as_ref().and_then(|s| s.phase) == Some(IncidentPhase::Recovered)
}

/// Brings one Incident in line with its problem; returns when to retry undelivered
/// notifications.
#[allow(clippy::too_many_arguments)]
async fn sync_incident(
    ctx: &Context,
    api: &Api<Incident>,
    server: &Server,
    p: &Problem,
    fp: &str,
    name: &str,
    existing: Option<&Incident>,
    now: Timestamp,
) -> Result<Option<Duration>, Error> {
    let server_name = server.name_any();
    let ns = server.namespace().unwrap_or_default();
    let prev = existing.and_then(|i| i.status.clone()).unwrap_or_default();
    if existing.is_none() {
        // The controller's fields only: people own owner, state, cause, actions, prevention.
        let spec = serde_json::json!({
            "apiVersion": Incident::api_version(&()),
            "kind": Incident::kind(&()),
            "metadata": {
                "name": name,
                "namespace": ns,
                "labels": {
                    "unyo.dev/server": server_name,
                    "unyo.dev/fingerprint": fp,
                    "unyo.dev/check": format!("{}.{}", p.policy, p.check).chars().take(63).collect::<String>(),
                },
            },
            "spec": {
                "type": "Monitoring",
                "title": format!("{server_name}: {}/{} {:?}", p.policy, p.check, p.severity),
                "description": p.message,
                "fingerprint": fp,
                "reporter": "unyo-controller (monitoring)",
                "severity": p.severity,
                "servers": [server_name],
                "occurredAt": Time(p.since),
            },
        });
        api.patch(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&spec),
        )
        .await
        .map_err(api_err(format!("opening Incident {name}")))?;
        tracing::info!(incident = %name, policy = %p.policy, check = %p.check, "opened an Incident");
        let reference = ObjectRef::<Incident>::new(name).within(&ns);
        let _ = ctx
            .recorder
            .publish(
                &Event {
                    type_: EventType::Warning,
                    reason: "IncidentOpened".into(),
                    note: Some(format!("{}/{}: {}", p.policy, p.check, p.message)),
                    action: "OpenIncident".into(),
                    secondary: Some(reference.into()),
                },
                &server.object_ref(&()),
            )
            .await;
    }
    let occurred_at = existing
        .and_then(|i| i.spec.occurred_at.as_ref().map(|t| t.0))
        .unwrap_or(p.since);
    let mut status = IncidentStatus {
        observed_generation: existing.and_then(|i| i.meta().generation),
        occurrences: Some(prev.occurrences.unwrap_or(0).max(1)),
        last_occurred_at: prev.last_occurred_at.clone().or(Some(Time(p.since))),
        notifications: prev.notifications.clone(),
        closed_at: prev.closed_at.clone(),
        ..Default::default()
    };
    let was_recovered = prev.phase == Some(IncidentPhase::Recovered);
    if p.firing {
        status.phase = Some(IncidentPhase::Firing);
        if was_recovered {
            // Recurrence within the reopen window.
            status.occurrences = Some(prev.occurrences.unwrap_or(1) + 1);
            status.last_occurred_at = Some(Time(p.since));
        }
    } else {
        status.phase = Some(IncidentPhase::Recovered);
        let recovered = prev.recovered_at.clone().map(|t| t.0).unwrap_or(p.since);
        status.recovered_at = Some(Time(recovered));
        status.downtime_seconds = Some(recovered.duration_since(occurred_at).as_secs().max(0));
    }
    if existing.is_some_and(|i| i.spec.state == IncidentState::Closed) && status.closed_at.is_none()
    {
        status.closed_at = Some(Time(truncate_to_seconds(now)));
    }
    // Similar incidents: the same check on any server, most recent first.
    if let Ok(others) = api
        .list(&ListParams::default().labels(&format!(
            "unyo.dev/check={}",
            format!("{}.{}", p.policy, p.check).chars().take(63).collect::<String>()
        )))
        .await
    {
        let mut others: Vec<Incident> = others
            .items
            .into_iter()
            .filter(|i| i.name_any() != name)
            .collect();
        others.sort_by_key(|i| std::cmp::Reverse(i.meta().creation_timestamp.clone()));
        status.similar = others.iter().take(5).map(|i| i.name_any()).collect();
    }

    // Notifications: on opening (and reopening), and on recovery for routes that want it.
    let occurrence = status.occurrences.unwrap_or(1);
    let event = if p.firing {
        format!("firing-{occurrence}")
    } else {
        format!("recovered-{occurrence}")
    };
    let mut retry = None;
    for route in &p.routes {
        if !route.severities.is_empty() && !route.severities.contains(&p.severity) {
            continue;
        }
        if !p.firing && !route.on_recovery {
            continue;
        }
        let key = format!("{}/{event}", route.name);
        let mut delivery = status
            .notifications
            .iter()
            .find(|d| d.route == key)
            .cloned()
            .unwrap_or(NotificationDelivery {
                route: key.clone(),
                state: DeliveryState::Pending,
                attempts: 0,
                last_attempt_at: None,
                message: None,
            });
        if delivery.state != DeliveryState::Pending {
            continue;
        }
        let due = delivery
            .last_attempt_at
            .as_ref()
            .map(|t| t.0 + backoff(delivery.attempts))
            .unwrap_or(now);
        if due > now {
            let ms = (due.as_millisecond() - now.as_millisecond()) as u64 + 200;
            retry = Some(retry.map_or(Duration::from_millis(ms), |r: Duration| {
                r.min(Duration::from_millis(ms))
            }));
        } else {
            let notice = Notice {
                incident: name.to_string(),
                namespace: ns.clone(),
                server: server_name.clone(),
                policy: p.policy.clone(),
                check: p.check.clone(),
                severity: p.severity,
                firing: p.firing,
                message: p.message.clone(),
                occurred_at,
                recovered_at: status.recovered_at.as_ref().map(|t| t.0),
            };
            delivery.attempts += 1;
            delivery.last_attempt_at = Some(Time(truncate_to_seconds(now)));
            match notify::deliver(route, &notice).await {
                Ok(m) => {
                    delivery.state = DeliveryState::Delivered;
                    delivery.message = Some(m);
                }
                Err(e) => {
                    delivery.message = Some(e.to_string());
                    if delivery.attempts >= MAX_ATTEMPTS {
                        delivery.state = DeliveryState::Failed;
                    } else {
                        let w = Duration::try_from(backoff(delivery.attempts))
                            .unwrap_or(Duration::from_secs(60));
                        retry = Some(retry.map_or(w, |r: Duration| r.min(w)));
                    }
                    tracing::warn!(route = %route.name, attempts = delivery.attempts, error = %e, "notification not delivered");
                }
            }
        }
        status.notifications.retain(|d| d.route != key);
        status.notifications.push(delivery);
    }
    status.notifications.sort_by(|a, b| a.route.cmp(&b.route));
    let undelivered = status
        .notifications
        .iter()
        .filter(|d| d.state != DeliveryState::Delivered)
        .count();
    let generation = status.observed_generation;
    status.conditions = vec![
        condition(
            &prev.conditions,
            "Ready",
            true,
            if p.firing { "Firing" } else { "Recovered" },
            p.message.clone(),
            generation,
            now,
        ),
        condition(
            &prev.conditions,
            "Notified",
            undelivered == 0,
            if undelivered == 0 {
                "Delivered"
            } else {
                "Pending"
            },
            if status.notifications.is_empty() {
                "no notification route".to_string()
            } else {
                format!(
                    "{} of {} notifications delivered",
                    status.notifications.len() - undelivered,
                    status.notifications.len()
                )
            },
            generation,
            now,
        ),
    ];
    if existing.is_none() || prev != status {
        let patch = serde_json::json!({
            "apiVersion": Incident::api_version(&()),
            "kind": Incident::kind(&()),
            "status": status,
        });
        api.patch_status(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
        .map_err(api_err(format!("writing the status of Incident {name}")))?;
        if was_recovered != (status.phase == Some(IncidentPhase::Recovered)) && existing.is_some() {
            let reference = ObjectRef::<Incident>::new(name).within(&ns);
            let _ = ctx
                .recorder
                .publish(
                    &Event {
                        type_: if p.firing {
                            EventType::Warning
                        } else {
                            EventType::Normal
                        },
                        reason: if p.firing {
                            "IncidentReopened"
                        } else {
                            "IncidentRecovered"
                        }
                        .into(),
                        note: Some(format!("{}/{}: {}", p.policy, p.check, p.message)),
                        action: "UpdateIncident".into(),
                        secondary: Some(reference.into()),
                    },
                    &server.object_ref(&()),
                )
                .await;
        }
    }
    Ok(retry)
}

fn api_err(what: String) -> impl FnOnce(kube::Error) -> Error {
    move |source| Error { what, source }
}

/// Wait before delivery attempt `attempts + 1`: 5 s doubling, at most 10 minutes.
fn backoff(attempts: u32) -> SignedDuration {
    let secs = 5i64.saturating_mul(1 << attempts.min(10).saturating_sub(1));
    SignedDuration::from_secs(secs.min(600))
}

fn error_policy(_s: Arc<Server>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.error("Incident");
    tracing::warn!(%error, "incident reconcile failed; retrying in 5s");
    Action::requeue(Duration::from_secs(5))
}

/// Runs the Incident controller (keyed by Server) until shutdown.
pub async fn run(ctx: Arc<Context>, namespace: Option<String>) {
    let client = ctx.client.clone();
    let servers: Api<Server> = crate::context::api(&client, &namespace);
    let incidents: Api<Incident> = crate::context::api(&client, &namespace);
    let policies: Api<MonitoringPolicy> = crate::context::api(&client, &namespace);
    let controller = Controller::new(servers, watcher::Config::default());
    let store = controller.store();
    let incident_store = {
        let (reader, writer) = kube::runtime::reflector::store::<Incident>();
        let stream = kube::runtime::watcher(incidents.clone(), watcher::Config::default())
            .default_backoff()
            .reflect(writer);
        tokio::spawn(stream.for_each(|_| async {}));
        reader
    };
    ctx.metrics.caches.lock().await.incidents = Some(incident_store);
    controller
        .watches(incidents, watcher::Config::default(), |i: Incident| {
            let ns = i.namespace()?;
            let server = i.labels().get("unyo.dev/server")?.clone();
            Some(ObjectRef::<Server>::new(&server).within(&ns))
        })
        .watches(
            policies,
            watcher::Config::default(),
            move |p: MonitoringPolicy| {
                let ns = p.namespace();
                store
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
                tracing::debug!(error = %e, "incident reconcile");
            }
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_and_names() {
        let a = fingerprint("mie", "db01", "database", "postgresql");
        assert_eq!(a, fingerprint("mie", "db01", "database", "postgresql"));
        assert_ne!(a, fingerprint("mie", "db02", "database", "postgresql"));
        assert_eq!(a.len(), 16);
        assert_eq!(
            incident_name("db01", "postgresql", &a, 2),
            format!("db01-postgresql-{}-2", &a[..8])
        );
    }

    #[test]
    fn delivery_backoff() {
        assert_eq!(backoff(1), SignedDuration::from_secs(5));
        assert_eq!(backoff(2), SignedDuration::from_secs(10));
        assert_eq!(backoff(4), SignedDuration::from_secs(40));
        assert_eq!(backoff(9), SignedDuration::from_secs(600));
    }
}

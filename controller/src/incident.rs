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

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::PostParams;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};
use sha2::{Digest, Sha256};
use unyo_crds::common::{Severity, parse_duration};
use unyo_crds::incident::{
    DueNotification, Incident, IncidentPhase, IncidentState, IncidentStatus,
};
use unyo_crds::monitoring::{MonitoringPolicy, NotificationRoute};
use unyo_crds::names::{conditions as cond, label_value, labels, reasons};
use unyo_crds::server::{CheckState, Server, ServerStatus};
use unyo_crds::virusscan::VirusScanSchedule;

use crate::conditions::{condition, truncate_to_seconds};
use crate::context::{Context, FIELD_MANAGER};
use crate::error::Error;
use crate::stores::{Kinds, in_namespace, namespace_trigger, shared_in};

/// Default reopen window when a policy names none.
const DEFAULT_REOPEN: Duration = Duration::from_secs(3600);

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
    /// The notification routes that hear of it, each with the MonitoringPolicy it is in.
    pub routes: Vec<(String, NotificationRoute)>,
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
    let none = ServerStatus::default();
    let status = server.status.as_ref().unwrap_or(&none);
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
            routes: routes_of(policy),
            reopen: policy
                .spec
                .reopen_window
                .as_deref()
                .and_then(|w| parse_duration(w).ok())
                .unwrap_or(DEFAULT_REOPEN),
        });
    }
    // A failed or missed backup is a problem until a run of the plan succeeds on time.
    let selecting_routes = selecting_routes(server, policies);
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
            .map(|p| routes_of(p))
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
        .find(|c| c.type_ == cond::AGENT_CONNECTED)
    {
        let down_since = agent.last_transition_time.0;
        let firing = agent.status == "False" && now.duration_since(down_since) >= agent_grace;
        let routes = selecting_routes.clone();
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

/// The routes of `policy`, each with the policy's name.
fn routes_of(policy: &MonitoringPolicy) -> Vec<(String, NotificationRoute)> {
    let name = policy.name_any();
    policy
        .spec
        .notifications
        .iter()
        .map(|r| (name.clone(), r.clone()))
        .collect()
}

/// Routes of every policy selecting the server, deduplicated by route name.
fn selecting_routes(
    server: &Server,
    policies: &[MonitoringPolicy],
) -> Vec<(String, NotificationRoute)> {
    let mut routes: Vec<(String, NotificationRoute)> = Vec::new();
    for p in unyo_crds::selection::monitoring_policies_for(server, policies) {
        for r in routes_of(p) {
            if !routes.iter().any(|x| x.1.name == r.1.name) {
                routes.push(r);
            }
        }
    }
    routes
}

/// The check name of a detection: `virus-` and a hash of path and signature.
pub fn virus_check(path: &str, signature: &str) -> String {
    let mut h = Sha256::new();
    h.update(path.as_bytes());
    h.update([0]);
    h.update(signature.as_bytes());
    format!("virus-{}", hex::encode(&h.finalize()[..6]))
}

/// The name of the Incident of the episode of a problem that began at `since`: the same for
/// the same episode (a retry, a restart, a stale cache cannot open a second one), another for
/// the next episode (whatever was deleted meanwhile), at most 253 characters.
fn incident_name(server: &str, check: &str, fp: &str, since: Timestamp) -> String {
    let stem: String = format!("{server}-{check}").chars().take(200).collect();
    let stem = stem.trim_end_matches(['-', '.']);
    let mut h = Sha256::new();
    h.update(fp.as_bytes());
    h.update([0]);
    h.update(since.as_second().to_string().as_bytes());
    let episode = hex::encode(&h.finalize()[..4]);
    format!("{stem}-{}-{episode}", &fp[..8.min(fp.len())])
}

/// What the Incident loop decides from.
pub struct Inputs<'a> {
    /// The Server.
    pub server: &'a Server,
    /// Every Incident of its namespace (its own, and others for `similar`).
    pub incidents: &'a [Arc<Incident>],
    /// MonitoringPolicies of its namespace.
    pub policies: &'a [MonitoringPolicy],
    /// VirusScanSchedules of its namespace.
    pub schedules: &'a [VirusScanSchedule],
    /// BackupPlans of its namespace.
    pub plans: &'a [unyo_crds::BackupPlan],
    /// OperationCalendars of its namespace.
    pub calendars: &'a [unyo_crds::OperationCalendar],
    /// How long an agent may be disconnected before it is an Incident.
    pub agent_grace: SignedDuration,
}

/// What to do with one Incident.
#[derive(Debug, Default)]
pub struct Change {
    /// Its name.
    pub name: String,
    /// The object to create (metadata and the controller's spec fields), for a new Incident.
    pub open: Option<serde_json::Value>,
    /// The controller's status fields, when they differ.
    pub status: Option<IncidentStatus>,
    /// The Incident as the store has it (None for a new one).
    pub current: Option<Incident>,
    /// An Event on the Server: (reason, warning, note).
    pub event: Option<(&'static str, bool, String)>,
}

/// What the Incident loop does for one Server.
#[derive(Debug, Default)]
pub struct Decision {
    /// The Incidents to open or update.
    pub changes: Vec<Change>,
    /// When to look again without a change (an agent's grace period ending).
    pub wake: Option<Timestamp>,
}

fn check_label(p: &Problem) -> String {
    label_value(&format!("{}.{}", p.policy, p.check))
}

/// A detection a later scan no longer lists has gone (quarantined, deleted): its open
/// Incident recovers at the time of that scan.
fn gone_detections(server: &Server, mine: &[&Incident], found: &[Problem]) -> Vec<Problem> {
    let last_scan = server
        .status
        .as_ref()
        .and_then(|s| s.operations.as_ref())
        .and_then(|o| o.antivirus.as_ref())
        .and_then(|a| a.last_scan.as_ref())
        .map(|r| r.started_at.0);
    let Some(at) = last_scan else {
        return vec![];
    };
    mine.iter()
        .filter(|i| is_open(i))
        .filter_map(|i| {
            let (policy, check) = problem_of(i)?;
            (check.starts_with("virus-") && !found.iter().any(|p| p.check == check)).then(|| {
                Problem {
                    policy,
                    check,
                    severity: i.spec.severity,
                    firing: false,
                    since: at,
                    message: "a later scan no longer finds it".into(),
                    routes: vec![],
                    reopen: DEFAULT_REOPEN,
                }
            })
        })
        .collect()
}

/// The policy and check of an Incident the controller opened: from its annotations, else
/// from its check label.
pub fn problem_of(i: &Incident) -> Option<(String, String)> {
    let a = i.annotations();
    if let (Some(p), Some(c)) = (
        a.get(labels::POLICY_ANNOTATION),
        a.get(labels::CHECK_ANNOTATION),
    ) {
        return Some((p.clone(), c.clone()));
    }
    let (p, c) = i.labels().get(labels::CHECK)?.split_once('.')?;
    Some((p.to_string(), c.to_string()))
}

/// The Incident a problem goes to: (name, new). A firing problem goes to the open Incident, a
/// recently recovered one (reopened), or a new one; a quiet one only to its last Incident.
fn target(
    server: &str,
    p: &Problem,
    fp: &str,
    mine: &[&Incident],
    now: Timestamp,
) -> Option<(String, bool)> {
    let last = mine.last().copied();
    let fresh = || Some((incident_name(server, &p.check, fp, p.since), true));
    match last {
        _ if !p.firing => last.map(|i| (i.name_any(), false)),
        Some(i) if i.spec.state != IncidentState::Closed => {
            let recovered_at = i
                .status
                .as_ref()
                .and_then(|s| s.recovered_at.as_ref())
                .map(|t| t.0);
            let reopen = SignedDuration::try_from(p.reopen).unwrap_or(SignedDuration::MAX);
            match recovered_at {
                Some(r) if now.duration_since(r) > reopen && is_recovered(i) => fresh(),
                _ => Some((i.name_any(), false)),
            }
        }
        _ => fresh(),
    }
}

/// Metadata and the controller's spec fields of a new Incident.
fn open_spec(server: &Server, p: &Problem, fp: &str, name: &str) -> serde_json::Value {
    let server_name = server.name_any();
    serde_json::json!({
        "apiVersion": Incident::api_version(&()),
        "kind": Incident::kind(&()),
        "metadata": {
            "name": name,
            "namespace": server.namespace(),
            "labels": {
                (labels::SERVER): label_value(&server_name),
                (labels::FINGERPRINT): fp,
                (labels::CHECK): check_label(p),
            },
            "annotations": {
                (labels::POLICY_ANNOTATION): p.policy,
                (labels::CHECK_ANNOTATION): p.check,
            },
        },
        "spec": {
            "type": "Monitoring",
            "title": unyo_crds::names::fit(&format!("{server_name}: {}/{} {:?}", p.policy, p.check, p.severity), 256),
            "description": unyo_crds::names::fit(&p.message, 8192),
            "fingerprint": fp,
            "reporter": "unyo-controller (monitoring)",
            "severity": p.severity,
            "servers": [server_name],
            "occurredAt": Time(p.since),
        },
    })
}

/// The outbox after this event: what was due before, plus every route that wants to hear of
/// it (at most the newest 100 entries).
fn outbox(prev: &[DueNotification], p: &Problem, occurrence: u32) -> Vec<DueNotification> {
    let event = if p.firing {
        format!("firing-{occurrence}")
    } else {
        format!("recovered-{occurrence}")
    };
    let mut out = prev.to_vec();
    for (policy, route) in &p.routes {
        if (!route.severities.is_empty() && !route.severities.contains(&p.severity))
            || (!p.firing && !route.on_recovery)
        {
            continue;
        }
        let key = format!("{}/{event}", route.name);
        if !out.iter().any(|d| d.key == key) {
            out.push(DueNotification {
                key,
                policy: policy.clone(),
                route: route.name.clone(),
            });
        }
    }
    let excess = out.len().saturating_sub(100);
    out.drain(..excess);
    out
}

/// The controller's status of Incident `name` for problem `p`.
fn next_status(
    existing: Option<&Incident>,
    p: &Problem,
    similar: Vec<String>,
    now: Timestamp,
) -> IncidentStatus {
    let prev = existing.and_then(|i| i.status.clone()).unwrap_or_default();
    let occurred_at = existing
        .and_then(|i| i.spec.occurred_at.as_ref().map(|t| t.0))
        .unwrap_or(p.since);
    let was_recovered = prev.phase == Some(IncidentPhase::Recovered);
    let generation = existing.and_then(|i| i.meta().generation);
    let mut status = IncidentStatus {
        observed_generation: generation,
        occurrences: Some(prev.occurrences.unwrap_or(0).max(1)),
        last_occurred_at: prev.last_occurred_at.clone().or(Some(Time(p.since))),
        closed_at: prev.closed_at.clone(),
        similar,
        ..Default::default()
    };
    if p.firing {
        status.phase = Some(IncidentPhase::Firing);
        if was_recovered {
            // Recurrence within the reopen window.
            status.occurrences = Some(prev.occurrences.unwrap_or(1).saturating_add(1));
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
    status.outbox = outbox(&prev.outbox, p, status.occurrences.unwrap_or(1));
    let reason = if p.firing {
        reasons::FIRING
    } else {
        reasons::RECOVERED
    };
    status.conditions = vec![condition(
        &prev.conditions,
        cond::READY,
        true,
        reason,
        p.message.clone(),
        generation,
        now,
    )];
    status
}

/// Whether the controller's fields of `status` equal those of `prev` (the notifier owns
/// `notifications` and the Notified condition).
fn same(prev: &IncidentStatus, status: &IncidentStatus) -> bool {
    let ready = |s: &IncidentStatus| {
        s.conditions
            .iter()
            .find(|c| c.type_ == cond::READY)
            .cloned()
    };
    prev.phase == status.phase
        && prev.recovered_at == status.recovered_at
        && prev.downtime_seconds == status.downtime_seconds
        && prev.closed_at == status.closed_at
        && prev.occurrences == status.occurrences
        && prev.last_occurred_at == status.last_occurred_at
        && prev.similar == status.similar
        && prev.outbox == status.outbox
        && prev.observed_generation == status.observed_generation
        && ready(prev) == ready(status)
}

/// Other Incidents of the same check, newest first (at most five).
fn similar(incidents: &[Arc<Incident>], p: &Problem, name: &str) -> Vec<String> {
    let label = check_label(p);
    let mut others: Vec<&Arc<Incident>> = incidents
        .iter()
        .filter(|i| i.labels().get(labels::CHECK) == Some(&label) && i.name_any() != name)
        .collect();
    others.sort_by_key(|i| std::cmp::Reverse(i.meta().creation_timestamp.clone()));
    others.iter().take(5).map(|i| i.name_any()).collect()
}

/// What becomes of Incident `name` for problem `p`.
fn change_for(
    i: &Inputs,
    p: &Problem,
    fp: &str,
    (name, new): (String, bool),
    existing: Option<&Incident>,
    now: Timestamp,
) -> Change {
    let existing = if new { None } else { existing };
    let mut status = next_status(existing, p, similar(i.incidents, p, &name), now);
    let prev = existing.and_then(|x| x.status.clone()).unwrap_or_default();
    let was_recovered = prev.phase == Some(IncidentPhase::Recovered);
    let note = format!("{}/{}: {}", p.policy, p.check, p.message);
    let event = match existing {
        None => Some(("IncidentOpened", true, note)),
        Some(_) if was_recovered && p.firing => Some(("IncidentReopened", true, note)),
        Some(_) if !was_recovered && !p.firing => Some(("IncidentRecovered", false, note)),
        Some(_) => None,
    };
    unyo_crds::limits::Bounded::bound(&mut status);
    let changed = existing.is_none() || !same(&prev, &status);
    Change {
        current: existing.cloned(),
        open: existing
            .is_none()
            .then(|| open_spec(i.server, p, fp, &name)),
        event: event.filter(|_| changed),
        status: changed.then_some(status),
        name,
    }
}

/// The whole judgement of the Incidents of one Server at `now`.
pub fn decide(i: &Inputs, now: Timestamp) -> Decision {
    let ns = i.server.namespace().unwrap_or_default();
    let name = i.server.name_any();
    let mine: Vec<&Incident> = i
        .incidents
        .iter()
        .map(|x| x.as_ref())
        .filter(|x| x.labels().get(labels::SERVER) == Some(&label_value(&name)))
        .filter(|x| x.spec.servers.contains(&name))
        .collect();
    let mut found = problems(
        i.server,
        i.policies,
        i.schedules,
        i.plans,
        i.calendars,
        now,
        i.agent_grace,
    );
    found.extend(gone_detections(i.server, &mine, &found));
    let mut changes = Vec::new();
    for p in &found {
        let fp = fingerprint(&ns, &name, &p.policy, &p.check);
        let mut same_fp: Vec<&Incident> = mine
            .iter()
            .copied()
            .filter(|x| x.spec.fingerprint.as_deref() == Some(fp.as_str()))
            .collect();
        same_fp.sort_by_key(|x| x.meta().creation_timestamp.clone());
        let Some(t) = target(&name, p, &fp, &same_fp, now) else {
            continue;
        };
        let change = change_for(i, p, &fp, t, same_fp.last().copied(), now);
        if change.open.is_some() || change.status.is_some() {
            changes.push(change);
        }
    }
    Decision {
        changes,
        wake: grace_end(i.server, i.agent_grace, now),
    }
}

/// When a disconnected agent's grace period ends, if it is still ahead.
fn grace_end(server: &Server, grace: SignedDuration, now: Timestamp) -> Option<Timestamp> {
    let agent = server
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == cond::AGENT_CONNECTED)?;
    let end = agent.last_transition_time.0.checked_add(grace).ok()?;
    (agent.status == "False" && end > now).then_some(end)
}

fn is_recovered(i: &Incident) -> bool {
    i.status.as_ref().and_then(|s| s.phase) == Some(IncidentPhase::Recovered)
}

/// Carries out one change: creates the Incident, writes its status, queues the Event.
async fn apply(ctx: &Context, server: &Server, c: Change) -> Result<(), Error> {
    let ns = server.namespace().unwrap_or_default();
    let api: Api<Incident> = Api::namespaced(ctx.client.clone(), &ns);
    let mut current = c.current.clone();
    if let Some(spec) = &c.open {
        let _permit = ctx.record_permit().await;
        let incident: Incident =
            serde_json::from_value(spec.clone()).map_err(|e| Error::Invalid {
                what: format!("Incident {}", c.name),
                why: e.to_string(),
            })?;
        let pp = PostParams {
            field_manager: Some(FIELD_MANAGER.to_string()),
            ..Default::default()
        };
        match api.create(&pp, &incident).await {
            Ok(opened) => {
                tracing::info!(incident = %c.name, "opened an Incident");
                current = Some(opened);
            }
            // This episode's Incident exists (the cache had not shown it yet): never written
            // over from an empty status; the next reconcile sees it.
            Err(kube::Error::Api(e)) if e.code == 409 => {
                tracing::debug!(incident = %c.name, "the Incident exists already");
                return Ok(());
            }
            Err(e) => return Err(Error::create(format!("Incident {}", c.name))(e)),
        }
    }
    if let (Some(status), Some(current)) = (&c.status, &current) {
        ctx.apply_status(current, status).await?;
    }
    if let Some((reason, warning, note)) = c.event {
        let reference = ObjectRef::<Incident>::new(&c.name).within(&ns);
        ctx.emit(
            Event {
                type_: if warning {
                    EventType::Warning
                } else {
                    EventType::Normal
                },
                reason: reason.into(),
                note: Some(note),
                action: if c.open.is_some() {
                    "OpenIncident"
                } else {
                    "UpdateIncident"
                }
                .into(),
                secondary: Some(reference.into()),
            },
            server.object_ref(&()),
        );
    }
    Ok(())
}

#[tracing::instrument(skip_all, fields(namespace = server.namespace().unwrap_or_default(), server = server.name_any()))]
async fn reconcile(server: Arc<Server>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = server.namespace().unwrap_or_default();
    let now = ctx.clock.now();
    let st = &ctx.stores;
    let (incidents, policies) = (
        shared_in(&st.incidents, &ns),
        in_namespace(&st.policies, &ns),
    );
    let (schedules, plans) = (
        in_namespace(&st.schedules, &ns),
        in_namespace(&st.plans, &ns),
    );
    let calendars = in_namespace(&st.calendars, &ns);
    let inputs = Inputs {
        server: &server,
        incidents: &incidents,
        policies: &policies,
        schedules: &schedules,
        plans: &plans,
        calendars: &calendars,
        agent_grace: ctx.agent_grace,
    };
    let decision = decide(&inputs, now);
    for change in decision.changes {
        apply(&ctx, &server, change).await?;
    }
    Ok(ctx.requeue_at(decision.wake, now))
}

/// Runs the Incident loop (keyed by Server) until shutdown.
pub fn run(ctx: Arc<Context>, kinds: &Kinds) -> impl Future<Output = ()> + use<> {
    let store = ctx.stores.servers.clone();
    let controller = Controller::for_shared_stream(kinds.servers.subscribe(), store.clone())
        .with_config(crate::context::config())
        .watches_shared_stream(kinds.incidents.subscribe(), |i: Arc<Incident>| {
            let ns = i.namespace().unwrap_or_default();
            i.spec
                .servers
                .iter()
                .map(|s| ObjectRef::<Server>::new(s).within(&ns))
                .collect::<Vec<_>>()
        })
        .watches_shared_stream(kinds.policies.subscribe(), namespace_trigger(&store))
        .watches_shared_stream(kinds.schedules.subscribe(), namespace_trigger(&store))
        .watches_shared_stream(kinds.plans.subscribe(), namespace_trigger(&store))
        .watches_shared_stream(kinds.calendars.subscribe(), namespace_trigger(&store));
    crate::context::run_loop(controller, ctx, "Incident", reconcile)
}

/// The status of an Incident people registered (no fingerprint label: not opened by the loop
/// above): the generation seen and Ready=True (Recorded), so that it reads as reconciled like
/// every other object. The state and actions stay people's, in the spec. None when unchanged.
pub fn decide_registered(i: &Incident, now: Timestamp) -> Option<IncidentStatus> {
    if i.labels().contains_key(labels::FINGERPRINT) {
        return None;
    }
    let generation = i.meta().generation;
    let prev = i.status.clone().unwrap_or_default();
    let state = format!("{:?}", i.spec.state);
    let ready = condition(
        &prev.conditions,
        cond::READY,
        true,
        reasons::RECORDED,
        format!("registered by people; state {state}"),
        generation,
        now,
    );
    let unchanged =
        prev.observed_generation == generation && prev.conditions.iter().any(|c| c == &ready);
    (!unchanged).then(|| IncidentStatus {
        observed_generation: generation,
        conditions: vec![ready],
        ..Default::default()
    })
}

#[tracing::instrument(skip_all, fields(namespace = i.namespace().unwrap_or_default(), incident = i.name_any()))]
async fn reconcile_registered(i: Arc<Incident>, ctx: Arc<Context>) -> Result<Action, Error> {
    if let Some(status) = decide_registered(&i, ctx.clock.now()) {
        ctx.apply_status(i.as_ref(), &status).await?;
    }
    Ok(Action::await_change())
}

/// Runs the loop over Incidents people registered until shutdown.
pub fn run_registered(ctx: Arc<Context>, kinds: &Kinds) -> impl Future<Output = ()> + use<> {
    let store = ctx.stores.incidents.clone();
    let controller = Controller::for_shared_stream(kinds.incidents.subscribe(), store)
        .with_config(crate::context::config());
    crate::context::run_loop(controller, ctx, "RegisteredIncident", reconcile_registered)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registered_incident_reads_reconciled_and_is_written_once() {
        let now = Timestamp::from_second(1_764_000_000).unwrap();
        let mut i: Incident = serde_json::from_value(serde_json::json!({
            "apiVersion": "unyo.dev/v1alpha1", "kind": "Incident",
            "metadata": {"name": "inquiry-1", "namespace": "mie", "generation": 3},
            "spec": {"type": "Inquiry", "title": "t", "severity": "Warning", "state": "InProgress"},
        }))
        .unwrap();
        let status = decide_registered(&i, now).expect("a first status");
        assert_eq!(status.observed_generation, Some(3));
        assert_eq!(status.conditions[0].reason, "Recorded");
        assert!(status.conditions[0].message.contains("InProgress"));
        i.status = Some(status);
        assert!(decide_registered(&i, now).is_none(), "written once");
        i.metadata.generation = Some(4);
        assert!(decide_registered(&i, now).is_some(), "a new generation");
        i.labels_mut()
            .insert(labels::FINGERPRINT.into(), "ab".into());
        assert!(
            decide_registered(&i, now).is_none(),
            "the loop above owns it"
        );
    }

    #[test]
    fn fingerprints_and_names() {
        let a = fingerprint("mie", "db01", "database", "postgresql");
        assert_eq!(a, fingerprint("mie", "db01", "database", "postgresql"));
        assert_ne!(a, fingerprint("mie", "db02", "database", "postgresql"));
        assert_eq!(a.len(), 16);
        let t = Timestamp::from_second(1_764_000_000).unwrap();
        let n = incident_name("db01", "postgresql", &a, t);
        assert!(
            n.starts_with(&format!("db01-postgresql-{}-", &a[..8])),
            "{n}"
        );
        assert_eq!(
            n,
            incident_name("db01", "postgresql", &a, t),
            "the same episode"
        );
        let later = Timestamp::from_second(1_764_000_060).unwrap();
        assert_ne!(
            n,
            incident_name("db01", "postgresql", &a, later),
            "the next episode"
        );
        assert!(incident_name(&"s".repeat(253), &"c".repeat(63), &a, t).len() <= 253);
    }

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn server(state: &str, since: &str) -> Server {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "unyo.dev/v1alpha1", "kind": "Server",
            "metadata": {"name": "db01", "namespace": "mie", "labels": {"unyo.dev/role": "db"}},
            "spec": {"hostname": "db01", "role": "DB", "os": {"name": "Debian GNU/Linux", "version": "12"}},
            "status": {"checks": [{"policy": "database", "check": "postgresql", "state": state,
                                   "since": since, "message": format!("5432: {state}")}]},
        }))
        .unwrap()
    }

    fn policy() -> MonitoringPolicy {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "unyo.dev/v1alpha1", "kind": "MonitoringPolicy",
            "metadata": {"name": "database", "namespace": "mie"},
            "spec": {"selector": {"matchLabels": {"unyo.dev/role": "db"}},
                     "checks": [{"name": "postgresql", "kind": "Tcp", "host": "127.0.0.1", "port": 5432}],
                     "notifications": [
                         {"name": "hook", "onRecovery": true, "webhook": {"urlSecret": {"name": "hooks", "key": "x"}}},
                         {"name": "mail", "onRecovery": false, "email": {"to": ["a@example.lg.jp"], "from": "u@example.lg.jp", "smtp": "127.0.0.1:25"}}]},
        }))
        .unwrap()
    }

    fn decide_for(s: &Server, incidents: &[Arc<Incident>], now: Timestamp) -> Decision {
        decide(
            &Inputs {
                server: s,
                incidents,
                policies: &[policy()],
                schedules: &[],
                plans: &[],
                calendars: &[],
                agent_grace: SignedDuration::from_mins(5),
            },
            now,
        )
    }

    /// The Incident `c` makes, as the API server would then hold it.
    fn stored(c: &Change, uid: &str) -> Arc<Incident> {
        let mut i: Incident = match (&c.open, &c.current) {
            (Some(spec), _) => serde_json::from_value(spec.clone()).unwrap(),
            (None, Some(cur)) => cur.clone(),
            (None, None) => panic!("nothing to store"),
        };
        i.metadata.uid = Some(uid.into());
        i.metadata.creation_timestamp = Some(Time(t("2026-11-30T00:00:00Z")));
        i.status = c.status.clone();
        Arc::new(i)
    }

    #[test]
    fn a_failing_check_opens_one_incident_with_an_outbox() {
        let now = t("2026-11-30T00:01:00Z");
        let s = server("Critical", "2026-11-30T00:00:00Z");
        let d = decide_for(&s, &[], now);
        assert_eq!(d.changes.len(), 1);
        let c = &d.changes[0];
        let open = c.open.as_ref().unwrap();
        assert_eq!(
            open["metadata"]["labels"]["unyo.dev/check"],
            "database.postgresql"
        );
        assert_eq!(
            open["metadata"]["annotations"]["unyo.dev/check-name"],
            "postgresql"
        );
        assert_eq!(open["spec"]["occurredAt"], "2026-11-30T00:00:00Z");
        let st = c.status.as_ref().unwrap();
        assert_eq!(st.phase, Some(IncidentPhase::Firing));
        let keys: Vec<&str> = st.outbox.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(keys, ["hook/firing-1", "mail/firing-1"]);
        assert!(st.outbox.iter().all(|o| o.policy == "database"));
        assert!(
            st.notifications.is_empty(),
            "the notifier's, not the loop's"
        );
        assert_eq!(c.event.as_ref().unwrap().0, "IncidentOpened");
        // Decided again with the Incident stored: nothing to do.
        let stored = vec![stored(c, "u1")];
        let again = decide_for(&s, &stored, now + SignedDuration::from_secs(30));
        assert!(again.changes.is_empty(), "{:?}", again.changes);
    }

    #[test]
    fn recovery_adds_only_the_routes_that_want_it() {
        let s = server("Critical", "2026-11-30T00:00:00Z");
        let first = decide_for(&s, &[], t("2026-11-30T00:01:00Z"));
        let inc = vec![stored(&first.changes[0], "u1")];
        let ok = server("OK", "2026-11-30T00:10:00Z");
        let d = decide_for(&ok, &inc, t("2026-11-30T00:10:05Z"));
        let c = &d.changes[0];
        assert!(c.open.is_none());
        let st = c.status.as_ref().unwrap();
        assert_eq!(st.phase, Some(IncidentPhase::Recovered));
        assert_eq!(
            st.recovered_at.as_ref().unwrap().0,
            t("2026-11-30T00:10:00Z")
        );
        assert_eq!(st.downtime_seconds, Some(600));
        let keys: Vec<&str> = st.outbox.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(keys, ["hook/firing-1", "mail/firing-1", "hook/recovered-1"]);
        assert_eq!(c.event.as_ref().unwrap().0, "IncidentRecovered");
    }

    #[test]
    fn a_disconnected_agent_wakes_the_loop_when_its_grace_ends() {
        let mut s = server("OK", "2026-11-30T00:00:00Z");
        s.status.as_mut().unwrap().conditions =
            vec![k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
                type_: "AgentConnected".into(),
                status: "False".into(),
                reason: "LeaseExpired".into(),
                message: "expired".into(),
                observed_generation: None,
                last_transition_time: Time(t("2026-11-30T00:00:00Z")),
            }];
        let d = decide_for(&s, &[], t("2026-11-30T00:01:00Z"));
        assert_eq!(d.wake, Some(t("2026-11-30T00:05:00Z")));
        assert!(
            d.changes.iter().all(|c| c.open.is_none()),
            "not yet an Incident"
        );
        let d = decide_for(&s, &[], t("2026-11-30T00:05:01Z"));
        assert!(d.changes.iter().any(|c| {
            c.open
                .as_ref()
                .is_some_and(|o| o["metadata"]["annotations"]["unyo.dev/check-name"] == "heartbeat")
        }));
        assert_eq!(d.wake, None);
    }

    #[test]
    fn long_names_make_valid_labels() {
        let mut s = server("Critical", "2026-11-30T00:00:00Z");
        s.metadata.name = Some(format!("{}.x", "a".repeat(70)));
        let d = decide_for(&s, &[], t("2026-11-30T00:01:00Z"));
        let open = d.changes[0].open.as_ref().unwrap();
        let label = open["metadata"]["labels"]["unyo.dev/server"]
            .as_str()
            .unwrap();
        assert_eq!(label.len(), 63);
        assert!(label.ends_with('a'));
    }
}

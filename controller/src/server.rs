//! The Server reconcile loop: compares each ledger with the facts its agent observed, writes
//! `status.drift` and the conditions InSync, AgentConnected, Ready, AntivirusHealthy,
//! BackupHealthy and PatchCompliant, and opens a ChangeRecord for drift that no open record
//! and no approved planned change in its window covers.
//!
//! [`decide`] is the whole judgement, from the shared stores' objects and the clock; [`apply`]
//! writes only what differs. Driven by Servers, the agents' Leases, ChangeRecords and every
//! kind the health conditions read (VirusScanSchedules, BackupPlans, PatchBaselines,
//! OperationCalendars), and by a requeue at the instant a Lease expires, so AgentConnected
//! turns False on time without polling. A renewed Lease changes nothing: no write.

use std::collections::BTreeSet;
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{ObjectMeta, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};
use unyo_crds::change::{
    ChangeCategory, ChangeClass, ChangeOrigin, ChangePath, ChangeRecord, ChangeRecordSpec,
};
use unyo_crds::drift::{Drift, DriftKind, classify, compare};
use unyo_crds::names::{
    agent_lease_name, conditions as cond, drift_record_name, label_value, labels, reasons,
    server_of_agent_lease,
};
use unyo_crds::server::{DriftEntry, Server, ServerStatus};
use unyo_crds::{BackupPlan, OperationCalendar, PatchBaseline, VirusScanSchedule};

use crate::change::{covers, is_open, names_server, planned_applies};
use crate::conditions::{condition, judged, truncate_to_seconds};
use crate::context::{Context, FIELD_MANAGER};
use crate::error::Error;
use crate::stores::{Kinds, get, in_namespace, matching, namespace_trigger};

/// What the Server loop decides from.
pub struct Inputs<'a> {
    /// The Server.
    pub server: &'a Server,
    /// ChangeRecords naming the Server (drift and planned).
    pub records: &'a [ChangeRecord],
    /// Its agent's Lease.
    pub lease: Option<&'a Lease>,
    /// VirusScanSchedules of its namespace.
    pub schedules: &'a [VirusScanSchedule],
    /// OperationCalendars of its namespace.
    pub calendars: &'a [OperationCalendar],
    /// BackupPlans of its namespace.
    pub plans: &'a [BackupPlan],
    /// PatchBaselines of its namespace.
    pub baselines: &'a [PatchBaseline],
}

/// What the Server loop does.
#[derive(Debug, Default)]
pub struct Decision {
    /// The status to write, when it differs from the current one.
    pub status: Option<ServerStatus>,
    /// A ChangeRecord to open for uncovered drift.
    pub record: Option<ChangeRecord>,
    /// Whether the agent just disconnected (an Event).
    pub disconnected: bool,
    /// When to look again without a change (the Lease's expiry).
    pub wake: Option<Timestamp>,
}

/// The agent's connection as its Lease shows it at some instant.
#[derive(Clone, Debug, PartialEq)]
pub struct LeaseState {
    /// The Lease is current.
    pub connected: bool,
    /// When it runs out (or ran out).
    pub until: Option<Timestamp>,
    /// The AgentConnected reason.
    pub reason: &'static str,
}

/// Whether the agent's Lease is current at `now`, and until when. An expiry beyond the range
/// of a timestamp is its end (or start, for a negative duration): no arithmetic can panic.
pub fn lease_state(lease: Option<&Lease>, now: Timestamp) -> LeaseState {
    let Some(spec) = lease.and_then(|l| l.spec.as_ref()) else {
        return LeaseState {
            connected: false,
            until: None,
            reason: reasons::NO_LEASE,
        };
    };
    let (Some(renewed), Some(secs)) = (spec.renew_time.as_ref(), spec.lease_duration_seconds)
    else {
        return LeaseState {
            connected: false,
            until: None,
            reason: reasons::NEVER_RENEWED,
        };
    };
    let until = renewed
        .0
        .checked_add(SignedDuration::from_secs(i64::from(secs)))
        .unwrap_or(if secs < 0 {
            Timestamp::MIN
        } else {
            Timestamp::MAX
        });
    let connected = until > now;
    LeaseState {
        connected,
        until: Some(until),
        reason: if connected {
            reasons::LEASE_RENEWED
        } else {
            reasons::LEASE_EXPIRED
        },
    }
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

/// The drift entries, each keeping the time it was first seen.
fn drift_entries(prev: &ServerStatus, drifts: &[Drift], now: Timestamp) -> Vec<DriftEntry> {
    drifts
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
                .unwrap_or(Time(truncate_to_seconds(now))),
        })
        .collect()
}

/// The drift record for `uncovered` drift on `server`.
fn drift_record(
    server: &Server,
    uncovered: &[Drift],
    entries: &[DriftEntry],
    after: Option<&str>,
    now: Timestamp,
) -> ChangeRecord {
    let name = server.name_any();
    let class = classify(uncovered, server.spec.drift.as_ref());
    let first_seen = entries
        .iter()
        .filter(|e| uncovered.iter().any(|d| d.path == e.path))
        .map(|e| e.since.0)
        .min()
        .unwrap_or(now);
    let paths: Vec<&str> = uncovered.iter().map(|d| d.path.as_str()).take(3).collect();
    ChangeRecord {
        metadata: ObjectMeta {
            name: Some(drift_record_name(&name, uncovered, after)),
            namespace: server.namespace(),
            labels: Some(
                [
                    (labels::SERVER.to_string(), label_value(&name)),
                    (labels::ORIGIN.to_string(), "Drift".to_string()),
                ]
                .into(),
            ),
            ..Default::default()
        },
        spec: ChangeRecordSpec {
            origin: ChangeOrigin::Drift,
            title: Some(unyo_crds::names::fit(
                &format!(
                    "{name}: {} ledger path(s) drifted: {}",
                    uncovered.len(),
                    paths.join(", ")
                ),
                256,
            )),
            category: category(uncovered),
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
            deadline: first_seen.checked_add(deadline_after(class)).ok().map(Time),
            plan: None,
            reviews: vec![],
            closed: None,
        },
        status: None,
    }
}

/// Drift, its entries (each with the time first seen), the record it is in (or a new one to
/// open), and how many paths a planned change expects.
struct Recording {
    drifts: Vec<Drift>,
    entries: Vec<DriftEntry>,
    current: Option<String>,
    new_record: Option<ChangeRecord>,
    absorbed: usize,
}

fn recording(i: &Inputs, prev: &ServerStatus, now: Timestamp) -> Recording {
    let name = i.server.name_any();
    let drifts = prev
        .observed
        .as_ref()
        .map(|o| compare(&i.server.spec, o))
        .unwrap_or_default();
    let entries = drift_entries(prev, &drifts, now);
    if drifts.is_empty() {
        return Recording {
            drifts,
            entries,
            current: None,
            new_record: None,
            absorbed: 0,
        };
    }
    let open_drift: Vec<&ChangeRecord> = i
        .records
        .iter()
        .filter(|r| r.spec.origin == ChangeOrigin::Drift && r.spec.server.as_deref() == Some(&name))
        .filter(|r| is_open(r))
        .collect();
    let planned: Vec<&ChangeRecord> = i
        .records
        .iter()
        .filter(|r| planned_applies(r, &name, now))
        .collect();
    let uncovered: Vec<Drift> = drifts
        .iter()
        .filter(|d| !open_drift.iter().any(|r| covers(r, d)))
        .filter(|d| !planned.iter().any(|r| covers(r, d)))
        .cloned()
        .collect();
    let absorbed = drifts
        .iter()
        .filter(|d| planned.iter().any(|r| covers(r, d)))
        .count();
    let mut current = open_drift
        .iter()
        .filter(|r| drifts.iter().any(|d| covers(r, d)))
        .max_by_key(|r| r.meta().creation_timestamp.clone())
        .map(|r| r.name_any());
    let mut new_record = None;
    if !uncovered.is_empty() {
        // The latest record of this drift that is not open: one the controller resolved
        // (HostReverted) reopens itself when the drift recurs; after one people closed, the
        // drift gets a new record named after it.
        let ended = i
            .records
            .iter()
            .filter(|r| {
                r.spec.origin == ChangeOrigin::Drift && r.spec.server.as_deref() == Some(&name)
            })
            .filter(|r| !is_open(r) && uncovered.iter().all(|d| covers(r, d)))
            .max_by_key(|r| (r.meta().creation_timestamp.clone(), r.name_any()));
        match ended {
            Some(r) if reopens(r) => current = Some(r.name_any()),
            _ => {
                let after = ended.map(|r| r.name_any());
                let record = drift_record(i.server, &uncovered, &entries, after.as_deref(), now);
                current = record.metadata.name.clone();
                new_record = Some(record);
            }
        }
    }
    Recording {
        drifts,
        entries,
        current,
        new_record,
        absorbed,
    }
}

/// Whether an ended drift record reopens when its drift recurs: resolved by the controller,
/// not closed or rejected by people.
fn reopens(r: &ChangeRecord) -> bool {
    r.spec.closed != Some(true)
        && r.status.as_ref().and_then(|s| s.phase) == Some(unyo_crds::change::ChangePhase::Resolved)
}

fn sync_condition(
    prev: &ServerStatus,
    rec: &Recording,
    generation: Option<i64>,
    now: Timestamp,
) -> Condition {
    let conds = &prev.conditions;
    if prev.observed.is_none() {
        return judged(
            conds,
            cond::IN_SYNC,
            None,
            reasons::NO_FACTS,
            "the agent has not reported facts yet",
            generation,
            now,
        );
    }
    if rec.drifts.is_empty() {
        return condition(
            conds,
            cond::IN_SYNC,
            true,
            reasons::IN_SYNC,
            "the host matches its ledger",
            generation,
            now,
        );
    }
    let paths: Vec<&str> = rec.drifts.iter().map(|d| d.path.as_str()).take(5).collect();
    let record = rec
        .current
        .as_ref()
        .map(|r| format!("; recorded in ChangeRecord {r}"))
        .unwrap_or_default();
    let planned = if rec.absorbed > 0 {
        format!("; {} expected by a planned change", rec.absorbed)
    } else {
        String::new()
    };
    condition(
        conds,
        cond::IN_SYNC,
        false,
        reasons::DRIFTED,
        format!(
            "{} ledger path(s) differ from the host ({}){record}{planned}",
            rec.drifts.len(),
            paths.join(", ")
        ),
        generation,
        now,
    )
}

/// AgentConnected. Its message names no instant, so a renewal changes nothing.
fn agent_condition(
    prev: &ServerStatus,
    server: &str,
    lease: &LeaseState,
    generation: Option<i64>,
    now: Timestamp,
) -> Condition {
    let message = match (lease.connected, lease.until) {
        (true, _) => "the agent renews its Lease".to_string(),
        (false, Some(u)) => format!("the agent's Lease expired at {u}"),
        (false, None) => format!("no renewed Lease {}", agent_lease_name(server)),
    };
    condition(
        &prev.conditions,
        cond::AGENT_CONNECTED,
        lease.connected,
        lease.reason,
        message,
        generation,
        now,
    )
}

/// Ready: the controller reconciled this generation — whatever it found. What the host is
/// (InSync) and whether its agent reports (AgentConnected) are findings about the host, not a
/// failure to reconcile the object; they stay in their own conditions and in this message.
fn ready_condition(
    prev: &ServerStatus,
    sync: &Condition,
    agent: &Condition,
    generation: Option<i64>,
    now: Timestamp,
) -> Condition {
    let message = format!(
        "reconciled: {}={} ({}), {}={} ({})",
        sync.type_, sync.status, sync.reason, agent.type_, agent.status, agent.reason
    );
    condition(
        &prev.conditions,
        cond::READY,
        true,
        reasons::RECONCILED,
        message,
        generation,
        now,
    )
}

/// AntivirusHealthy, BackupHealthy and PatchCompliant, where a schedule, plan or baseline
/// selects the Server.
fn health_conditions(
    i: &Inputs,
    prev: &ServerStatus,
    generation: Option<i64>,
    now: Timestamp,
) -> Vec<Condition> {
    let conds = &prev.conditions;
    let antivirus =
        crate::virusscan::server_health(i.server, i.schedules, i.calendars, now).map(|h| {
            let c = cond::ANTIVIRUS_HEALTHY;
            condition(conds, c, h.ok, h.reason, h.message, generation, now)
        });
    let backups = crate::backup::server_health(i.server, i.plans, i.calendars, now).map(
        |(ok, reason, message)| {
            let c = cond::BACKUP_HEALTHY;
            condition(conds, c, ok, reason, message, generation, now)
        },
    );
    let patches =
        crate::patch::server_health(i.server, i.baselines).map(|(ok, reason, message)| {
            let c = cond::PATCH_COMPLIANT;
            judged(conds, c, ok, reason, message, generation, now)
        });
    antivirus
        .into_iter()
        .chain(backups)
        .chain(patches)
        .collect()
}

/// HostPolicyAllowed, once the agent reports: False while the host's policy refuses something
/// a custom resource asks (the agent lists each in `status.operations.refusals`).
fn host_policy_condition(
    prev: &ServerStatus,
    generation: Option<i64>,
    now: Timestamp,
) -> Option<Condition> {
    prev.observed.as_ref()?;
    let refusals = prev
        .operations
        .as_ref()
        .map(|o| o.refusals.as_slice())
        .unwrap_or_default();
    let (ok, reason, message) = match refusals {
        [] => (
            true,
            reasons::ALLOWED,
            "the host policy allows what the custom resources selecting this server ask".into(),
        ),
        list => {
            let named: Vec<String> = list
                .iter()
                .take(3)
                .map(|r| format!("{} {} {} (rule {})", r.kind, r.name, r.field, r.rule))
                .collect();
            let more = list.len().saturating_sub(3);
            let tail = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            (
                false,
                reasons::REFUSED_BY_HOST_POLICY,
                format!("refused by the host policy: {}{tail}", named.join("; ")),
            )
        }
    };
    Some(condition(
        &prev.conditions,
        cond::HOST_POLICY_ALLOWED,
        ok,
        reason,
        message,
        generation,
        now,
    ))
}

/// Whether `status` says what `prev` says, in the fields the controller owns (every condition
/// of a Server is the controller's).
fn same(prev: &ServerStatus, status: &ServerStatus) -> bool {
    prev.drift == status.drift
        && prev.drift_count == status.drift_count
        && prev.change_record == status.change_record
        && prev.observed_generation == status.observed_generation
        && status.conditions.len() == prev.conditions.len()
        && status
            .conditions
            .iter()
            .all(|c| prev.conditions.iter().any(|p| p == c))
}

/// The whole judgement of one Server at `now`.
pub fn decide(i: &Inputs, now: Timestamp) -> Decision {
    let name = i.server.name_any();
    let generation = i.server.meta().generation;
    let none = ServerStatus::default();
    let prev = i.server.status.as_ref().unwrap_or(&none);
    let rec = recording(i, prev, now);
    let lease = lease_state(i.lease, now);
    let sync = sync_condition(prev, &rec, generation, now);
    let agent = agent_condition(prev, &name, &lease, generation, now);
    let ready = ready_condition(prev, &sync, &agent, generation, now);
    let mut status = ServerStatus {
        drift: rec.entries.clone(),
        drift_count: Some(u32::try_from(rec.drifts.len()).unwrap_or(u32::MAX)),
        change_record: if rec.drifts.is_empty() {
            None
        } else {
            rec.current.clone()
        },
        observed_generation: generation,
        conditions: [sync, agent, ready]
            .into_iter()
            .chain(health_conditions(i, prev, generation, now))
            .chain(host_policy_condition(prev, generation, now))
            .collect(),
        ..Default::default()
    };
    unyo_crds::limits::Bounded::bound(&mut status);
    let was_connected = prev
        .conditions
        .iter()
        .any(|c| c.type_ == cond::AGENT_CONNECTED && c.status == "True");
    let changed = !same(prev, &status);
    Decision {
        disconnected: changed && was_connected && !lease.connected,
        status: changed.then_some(status),
        record: rec.new_record,
        wake: lease.until.filter(|_| lease.connected),
    }
}

/// Opens `record` unless it exists; true when this call created it.
async fn open_record(ctx: &Context, record: &ChangeRecord) -> Result<bool, Error> {
    let ns = record.namespace().unwrap_or_default();
    let name = record.name_any();
    let pp = PostParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..Default::default()
    };
    let permit = ctx.record_permit().await;
    let created = Api::<ChangeRecord>::namespaced(ctx.client.clone(), &ns)
        .create(&pp, record)
        .await;
    drop(permit);
    match created {
        Ok(created) => {
            ctx.recent_records.add(created);
            Ok(true)
        }
        Err(kube::Error::Api(s)) if s.code == 409 => {
            tracing::debug!(record = %name, "the ChangeRecord exists");
            Ok(false)
        }
        Err(e) => Err(Error::create(format!("ChangeRecord {name}"))(e)),
    }
}

/// Carries out `d` for `server`: opens the record, writes the status, queues the Events.
async fn apply(
    ctx: &Context,
    server: &Server,
    d: Decision,
    now: Timestamp,
) -> Result<Action, Error> {
    let name = server.name_any();
    if let Some(record) = &d.record
        && open_record(ctx, record).await?
    {
        let record_name = record.name_any();
        tracing::info!(record = %record_name, paths = record.spec.paths.len(), "opened a ChangeRecord for drift");
        ctx.emit(
            Event {
                type_: EventType::Warning,
                reason: "DriftRecorded".into(),
                note: Some(format!(
                    "{} ledger path(s) drifted; recorded in ChangeRecord {record_name}",
                    record.spec.paths.len()
                )),
                action: "OpenChangeRecord".into(),
                secondary: Some(record.object_ref(&())),
            },
            server.object_ref(&()),
        );
    }
    if let Some(status) = &d.status {
        ctx.apply_status(server, status).await?;
        tracing::info!(drift = status.drift.len(), "status updated");
    }
    if d.disconnected {
        ctx.emit(
            Event {
                type_: EventType::Warning,
                reason: reasons::AGENT_DISCONNECTED.into(),
                note: Some(format!(
                    "the agent's Lease {} is no longer renewed",
                    agent_lease_name(&name)
                )),
                action: "CheckLease".into(),
                secondary: None,
            },
            server.object_ref(&()),
        );
    }
    Ok(ctx.requeue_at(d.wake, now))
}

#[tracing::instrument(skip_all, fields(namespace = server.namespace().unwrap_or_default(), server = server.name_any()))]
async fn reconcile(server: Arc<Server>, ctx: Arc<Context>) -> Result<Action, Error> {
    let now = ctx.clock.now();
    let name = server.name_any();
    let ns = server.namespace().unwrap_or_default();
    let st = &ctx.stores;
    let names_it =
        |r: &ChangeRecord| r.meta().namespace.as_deref() == Some(&ns) && names_server(r, &name);
    let mut records = matching(&st.records, &ns, names_it);
    ctx.recent_records.fill(&st.records, &mut records, names_it);
    let lease = get(&st.leases, &ns, &agent_lease_name(&name));
    let (schedules, calendars) = (
        in_namespace(&st.schedules, &ns),
        in_namespace(&st.calendars, &ns),
    );
    let (plans, baselines) = (
        in_namespace(&st.plans, &ns),
        in_namespace(&st.baselines, &ns),
    );
    let inputs = Inputs {
        server: &server,
        records: &records,
        lease: lease.as_deref(),
        schedules: &schedules,
        calendars: &calendars,
        plans: &plans,
        baselines: &baselines,
    };
    let decision = decide(&inputs, now);
    apply(&ctx, &server, decision, now).await
}

/// The Servers a ChangeRecord names.
fn servers_of(r: Arc<ChangeRecord>) -> Vec<ObjectRef<Server>> {
    let ns = r.namespace().unwrap_or_default();
    let names: BTreeSet<&String> = r.spec.server.iter().chain(r.spec.servers.iter()).collect();
    names
        .into_iter()
        .map(|s| ObjectRef::<Server>::new(s).within(&ns))
        .collect()
}

/// Runs the Server loop until shutdown.
pub fn run(ctx: Arc<Context>, kinds: &Kinds) -> impl Future<Output = ()> + use<> {
    let store = ctx.stores.servers.clone();
    let controller = Controller::for_shared_stream(kinds.servers.subscribe(), store.clone())
        .with_config(crate::context::config())
        .watches_shared_stream(kinds.leases.subscribe(), |lease: Arc<Lease>| {
            let ns = lease.namespace()?;
            let server = server_of_agent_lease(&lease.name_any())?.to_string();
            Some(ObjectRef::<Server>::new(&server).within(&ns))
        })
        .watches_shared_stream(kinds.records.subscribe(), servers_of)
        .watches_shared_stream(kinds.schedules.subscribe(), namespace_trigger(&store))
        .watches_shared_stream(kinds.plans.subscribe(), namespace_trigger(&store))
        .watches_shared_stream(kinds.baselines.subscribe(), namespace_trigger(&store))
        .watches_shared_stream(kinds.calendars.subscribe(), namespace_trigger(&store));
    crate::context::run_loop(controller, ctx, "Server", reconcile)
}

#[cfg(test)]
mod tests;

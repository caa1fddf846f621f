//! The notifier: drains each Incident's outbox off the reconcile path of the Incident loop.
//!
//! The Incident loop writes what is due (`status.outbox`); this loop, over the same shared
//! Incident stream, delivers each due entry with a timeout and an idempotency key
//! (`<uid>/<route>/<event>`), retries failures with a backoff (5 s doubling, at most 10 min,
//! 8 attempts), and records each result in `status.notifications` and the `Notified` condition,
//! as its own field manager. A slow webhook or SMTP relay holds only this loop's work on that
//! one Incident. A result is remembered in memory until the store shows it, so a stale cache
//! never sends the same notification twice.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::runtime::controller::{Action, Controller};
use kube::{Api, Resource, ResourceExt};
use unyo_crds::incident::{DeliveryState, DueNotification, Incident, NotificationDelivery};
use unyo_crds::monitoring::{MonitoringPolicy, NotificationRoute};
use unyo_crds::names::{conditions as cond, reasons};

use crate::conditions::{condition, truncate_to_seconds};
use crate::context::Context;
use crate::error::Error;
use crate::incident::problem_of;
use crate::notify::{self, Notice, Target};
use crate::stores::{Kinds, in_namespace};

/// The field manager of the delivery records.
pub const FIELD_MANAGER: &str = "unyo-controller-notifier";
/// Delivery attempts before a notification is given up.
const MAX_ATTEMPTS: u32 = 8;
/// The longest one attempt may take, whatever the transport's own timeouts.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest error text kept in a delivery record.
const MAX_MESSAGE: usize = 512;

/// Wait before delivery attempt `attempts + 1`: 5 s doubling, at most 10 minutes.
pub fn backoff(attempts: u32) -> SignedDuration {
    let secs = 5i64.saturating_mul(1 << attempts.min(10).saturating_sub(1));
    SignedDuration::from_secs(secs.min(600))
}

/// One delivery to make now.
#[derive(Clone, Debug, PartialEq)]
pub struct Attempt {
    /// The outbox entry.
    pub due: DueNotification,
    /// Its route, if its policy still has it.
    pub route: Option<NotificationRoute>,
    /// The record of earlier attempts.
    pub previous: Option<NotificationDelivery>,
}

/// The outbox entries to attempt at `now` (given their records in `records`), and when the
/// next retry falls due.
pub fn due(
    incident: &Incident,
    records: &[NotificationDelivery],
    policies: &[MonitoringPolicy],
    now: Timestamp,
) -> (Vec<Attempt>, Option<Timestamp>) {
    let outbox = incident
        .status
        .as_ref()
        .map(|s| s.outbox.as_slice())
        .unwrap_or_default();
    let mut attempts = Vec::new();
    let mut wake: Option<Timestamp> = None;
    for d in outbox {
        let previous = records.iter().find(|r| r.route == d.key).cloned();
        if let Some(p) = &previous {
            if p.state != DeliveryState::Pending {
                continue;
            }
            let next = p
                .last_attempt_at
                .as_ref()
                .and_then(|t| t.0.checked_add(backoff(p.attempts)).ok());
            if let Some(n) = next.filter(|n| *n > now) {
                wake = Some(wake.map_or(n, |w| w.min(n)));
                continue;
            }
        }
        let route = policies
            .iter()
            .find(|p| p.name_any() == d.policy)
            .and_then(|p| p.spec.notifications.iter().find(|r| r.name == d.route))
            .cloned();
        attempts.push(Attempt {
            due: d.clone(),
            route,
            previous,
        });
    }
    (attempts, wake)
}

/// What a notification of `incident` for outbox entry `d` says.
pub fn notice(incident: &Incident, d: &DueNotification) -> Notice {
    let status = incident.status.clone().unwrap_or_default();
    let (policy, check) = problem_of(incident).unwrap_or_default();
    let message = status
        .conditions
        .iter()
        .find(|c| c.type_ == cond::READY)
        .map(|c| c.message.clone())
        .or(incident.spec.description.clone())
        .unwrap_or_default();
    let firing = d
        .key
        .rsplit('/')
        .next()
        .is_some_and(|e| e.starts_with("firing-"));
    let uid = incident.uid().unwrap_or_else(|| incident.name_any());
    Notice {
        incident: incident.name_any(),
        namespace: incident.namespace().unwrap_or_default(),
        server: incident.spec.servers.first().cloned().unwrap_or_default(),
        policy,
        check,
        severity: incident.spec.severity,
        firing,
        message,
        occurred_at: incident
            .spec
            .occurred_at
            .as_ref()
            .map(|t| t.0)
            .unwrap_or_default(),
        recovered_at: if firing {
            None
        } else {
            status.recovered_at.map(|t| t.0)
        },
        idempotency_key: format!("{uid}/{}", d.key),
    }
}

/// The record after one attempt with `result` at `now`.
pub fn recorded(
    a: &Attempt,
    result: Result<String, String>,
    now: Timestamp,
) -> NotificationDelivery {
    let attempts = a
        .previous
        .as_ref()
        .map_or(0, |p| p.attempts)
        .saturating_add(1);
    let (state, message) = match result {
        Ok(m) => (DeliveryState::Delivered, m),
        Err(e) if attempts >= MAX_ATTEMPTS || a.route.is_none() => (DeliveryState::Failed, e),
        Err(e) => (DeliveryState::Pending, e),
    };
    NotificationDelivery {
        route: a.due.key.clone(),
        state,
        attempts,
        last_attempt_at: Some(Time(truncate_to_seconds(now))),
        message: Some(message.chars().take(MAX_MESSAGE).collect()),
    }
}

/// The Notified condition of `incident` with delivery `records`.
pub fn notified(
    incident: &Incident,
    records: &[NotificationDelivery],
    now: Timestamp,
) -> Condition {
    let status = incident.status.clone().unwrap_or_default();
    let state = |d: &DueNotification| {
        records
            .iter()
            .find(|r| r.route == d.key)
            .map_or(DeliveryState::Pending, |r| r.state)
    };
    let total = status.outbox.len();
    let delivered = status
        .outbox
        .iter()
        .filter(|d| state(d) == DeliveryState::Delivered)
        .count();
    let failed = status
        .outbox
        .iter()
        .filter(|d| state(d) == DeliveryState::Failed)
        .count();
    let (ok, reason) = match (delivered == total, failed) {
        (true, _) => (true, reasons::DELIVERED),
        (false, 0) => (false, reasons::PENDING),
        (false, _) => (false, reasons::UNDELIVERED),
    };
    let message = if total == 0 {
        "no notification route".to_string()
    } else {
        format!("{delivered} of {total} notifications delivered")
    };
    let generation = incident.meta().generation;
    condition(
        &status.conditions,
        cond::NOTIFIED,
        ok,
        reason,
        message,
        generation,
        now,
    )
}

/// Results this replica delivered that the store may not show yet, by `<uid>/<key>`.
#[derive(Default)]
pub struct Sent(Mutex<HashMap<String, NotificationDelivery>>);

impl Sent {
    /// The delivery records of `incident`: the store's, overlaid with newer results sent here.
    fn records(&self, incident: &Incident) -> Vec<NotificationDelivery> {
        let uid = incident.uid().unwrap_or_default();
        let mut records = incident
            .status
            .as_ref()
            .map(|s| s.notifications.clone())
            .unwrap_or_default();
        let mut sent = self.0.lock().unwrap_or_else(|e| e.into_inner());
        for r in records.iter_mut() {
            let id = format!("{uid}/{}", r.route);
            match sent.get(&id) {
                // The store has caught up with what was sent: forget it.
                Some(s) if s == r => {
                    sent.remove(&id);
                }
                Some(s) if s.attempts > r.attempts => *r = s.clone(),
                _ => {}
            }
        }
        let prefix = format!("{uid}/");
        for (id, s) in sent.iter() {
            if id.starts_with(&prefix) && !records.iter().any(|r| r.route == s.route) {
                records.push(s.clone());
            }
        }
        records
    }

    fn remember(&self, incident: &Incident, record: &NotificationDelivery) {
        let id = format!("{}/{}", incident.uid().unwrap_or_default(), record.route);
        let mut sent = self.0.lock().unwrap_or_else(|e| e.into_inner());
        sent.insert(id, record.clone());
    }
}

/// The value of `key` in Secret `name` of the Incident's namespace, as text.
async fn secret_value(
    secrets: &Api<Secret>,
    name: &str,
    key: &str,
) -> Result<Option<String>, String> {
    let secret = secrets
        .get_opt(name)
        .await
        .map_err(|e| format!("reading Secret {name}: {}", crate::error::api_reason(&e)))?
        .ok_or_else(|| format!("Secret {name} does not exist"))?;
    let Some(bytes) = secret.data.as_ref().and_then(|d| d.get(key)) else {
        return Ok(None);
    };
    String::from_utf8(bytes.0.clone())
        .map(|s| Some(s.trim().to_string()))
        .map_err(|_| format!("Secret {name} key {key} is not UTF-8 text"))
}

/// The target of `route` with what its Secrets hold (read when sending, never cached or
/// written anywhere).
pub async fn resolve(route: &NotificationRoute, secrets: &Api<Secret>) -> Result<Target, String> {
    if let Some(w) = &route.webhook {
        let r = &w.url_secret;
        let url = secret_value(secrets, &r.name, &r.key)
            .await?
            .ok_or_else(|| format!("Secret {} has no key {}", r.name, r.key))?;
        return Ok(Target::Webhook {
            url,
            shown: format!("webhook in Secret {}/{}", r.name, r.key),
            insecure_http: w.insecure_http,
        });
    }
    if let Some(e) = &route.email {
        let (mut credentials, mut ca) = (None, None);
        if let Some(name) = &e.credentials_secret {
            let user = secret_value(secrets, name, "username").await?;
            let password = secret_value(secrets, name, "password").await?;
            credentials = user.zip(password);
            ca = secret_value(secrets, name, "ca.crt")
                .await?
                .map(String::into_bytes);
        }
        return Ok(Target::Email {
            target: e.clone(),
            credentials,
            ca,
        });
    }
    Err(format!("route {} has no webhook or email", route.name))
}

/// Makes one attempt, bounded by [`ATTEMPT_TIMEOUT`].
async fn attempt(
    incident: &Incident,
    a: &Attempt,
    secrets: &Api<Secret>,
) -> Result<String, String> {
    let Some(route) = &a.route else {
        return Err(format!(
            "route {} of MonitoringPolicy {} does not exist",
            a.due.route, a.due.policy
        ));
    };
    let notice = notice(incident, &a.due);
    let send = async {
        let target = resolve(route, secrets).await?;
        notify::deliver(&target, &notice)
            .await
            .map_err(|e| e.to_string())
    };
    match tokio::time::timeout(ATTEMPT_TIMEOUT, send).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {}s", ATTEMPT_TIMEOUT.as_secs())),
    }
}

#[tracing::instrument(skip_all, fields(namespace = incident.namespace().unwrap_or_default(), incident = incident.name_any()))]
async fn reconcile(
    incident: Arc<Incident>,
    ctx: Arc<Context>,
    sent: Arc<Sent>,
) -> Result<Action, Error> {
    let ns = incident.namespace().unwrap_or_default();
    let policies = in_namespace(&ctx.stores.policies, &ns);
    let mut records = sent.records(&incident);
    let (attempts, mut wake) = due(&incident, &records, &policies, ctx.clock.now());
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    for a in attempts {
        let result = attempt(&incident, &a, &secrets).await;
        if let Err(e) = &result {
            tracing::warn!(route = %a.due.key, error = %e, "notification not delivered");
        }
        let record = recorded(&a, result, Timestamp::now());
        sent.remember(&incident, &record);
        if record.state == DeliveryState::Pending
            && let Some(n) = record
                .last_attempt_at
                .as_ref()
                .and_then(|t| t.0.checked_add(backoff(record.attempts)).ok())
        {
            wake = Some(wake.map_or(n, |w| w.min(n)));
        }
        records.retain(|r| r.route != record.route);
        records.push(record);
    }
    records.sort_by(|a, b| a.route.cmp(&b.route));
    unyo_crds::limits::cut(&mut records, unyo_crds::limits::NOTIFICATIONS);
    let now = ctx.clock.now();
    let condition = notified(&incident, &records, now);
    let prev = incident.status.clone().unwrap_or_default();
    let changed = prev.notifications != records || !prev.conditions.contains(&condition);
    if changed {
        let status = serde_json::json!({"notifications": records, "conditions": [condition]});
        ctx.apply_status_as(FIELD_MANAGER, incident.as_ref(), &status)
            .await?;
    }
    // Retries wait for real time even under a fixed clock (tests), which only judges records.
    Ok(match wake {
        Some(w) => Action::requeue(Duration::from_millis(
            w.duration_since(Timestamp::now())
                .as_millis()
                .clamp(0, 600_000) as u64
                + 200,
        )),
        None => Action::await_change(),
    })
}

/// Runs the notifier until shutdown.
pub fn run(ctx: Arc<Context>, kinds: &Kinds) -> impl Future<Output = ()> + use<> {
    let sent = Arc::new(Sent::default());
    let controller =
        Controller::for_shared_stream(kinds.incidents.subscribe(), ctx.stores.incidents.clone())
            .with_config(crate::context::config());
    crate::context::run_loop(controller, ctx, "Notification", move |i, ctx| {
        reconcile(i, ctx, sent.clone())
    })
}

#[cfg(test)]
mod tests;

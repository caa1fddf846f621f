use super::*;
use serde_json::json;

fn t(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn incident(outbox: serde_json::Value, notifications: serde_json::Value) -> Incident {
    serde_json::from_value(json!({
        "apiVersion": "unyo.dev/v1alpha1", "kind": "Incident",
        "metadata": {"name": "db01-pg-1", "namespace": "mie", "uid": "u-1",
                     "annotations": {"unyo.dev/policy": "database", "unyo.dev/check-name": "postgresql"}},
        "spec": {"type": "Monitoring", "title": "t", "severity": "Critical", "servers": ["db01"],
                 "occurredAt": "2026-11-30T00:00:00Z"},
        "status": {"phase": "Recovered", "recoveredAt": "2026-11-30T00:10:00Z",
                   "outbox": outbox, "notifications": notifications,
                   "conditions": [{"type": "Ready", "status": "True", "reason": "Recovered",
                                   "message": "127.0.0.1:5432: OK",
                                   "lastTransitionTime": "2026-11-30T00:10:00Z"}]},
    }))
    .unwrap()
}

fn policy() -> MonitoringPolicy {
    serde_json::from_value(json!({
        "apiVersion": "unyo.dev/v1alpha1", "kind": "MonitoringPolicy",
        "metadata": {"name": "database", "namespace": "mie"},
        "spec": {"selector": {}, "checks": [{"name": "postgresql", "kind": "Tcp", "host": "127.0.0.1", "port": 5432}],
                 "notifications": [{"name": "hook", "webhook": {"urlSecret": {"name": "hooks", "key": "h"}}}]},
    }))
    .unwrap()
}

fn entry(key: &str, route: &str) -> serde_json::Value {
    json!({"key": key, "policy": "database", "route": route})
}

#[test]
fn due_entries_respect_records_and_backoff() {
    let now = t("2026-11-30T00:10:00Z");
    let i = incident(
        json!([
            entry("hook/firing-1", "hook"),
            entry("hook/recovered-1", "hook"),
            entry("gone/firing-1", "gone")
        ]),
        json!([]),
    );
    let records = vec![
        NotificationDelivery {
            route: "hook/firing-1".into(),
            state: DeliveryState::Delivered,
            attempts: 1,
            last_attempt_at: None,
            message: None,
        },
        NotificationDelivery {
            route: "hook/recovered-1".into(),
            state: DeliveryState::Pending,
            attempts: 2,
            last_attempt_at: Some(Time(t("2026-11-30T00:09:55Z"))),
            message: Some("refused".into()),
        },
    ];
    let (attempts, wake) = due(&i, &records, &[policy()], now);
    // Delivered is never sent again; the retry waits 10 s after the second attempt; a route
    // that no longer exists is attempted (and fails at once, without a route).
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].due.key, "gone/firing-1");
    assert!(attempts[0].route.is_none());
    assert_eq!(wake, Some(t("2026-11-30T00:10:05Z")));
    let (attempts, wake) = due(&i, &records, &[policy()], t("2026-11-30T00:10:06Z"));
    assert_eq!(attempts.len(), 2);
    assert!(
        attempts
            .iter()
            .any(|a| a.due.key == "hook/recovered-1" && a.route.is_some())
    );
    assert_eq!(wake, None);
}

#[test]
fn results_are_recorded_with_attempts_and_bounded_text() {
    let now = t("2026-11-30T00:10:00Z");
    let a = Attempt {
        due: DueNotification {
            key: "hook/firing-1".into(),
            policy: "database".into(),
            route: "hook".into(),
        },
        route: policy().spec.notifications.first().cloned(),
        previous: None,
    };
    let r = recorded(&a, Err("x".repeat(10_000)), now);
    assert_eq!(r.state, DeliveryState::Pending);
    assert_eq!(r.attempts, 1);
    assert_eq!(r.message.unwrap().len(), MAX_MESSAGE);
    let seventh = Attempt {
        previous: Some(NotificationDelivery {
            route: "hook/firing-1".into(),
            state: DeliveryState::Pending,
            attempts: MAX_ATTEMPTS - 1,
            last_attempt_at: None,
            message: None,
        }),
        ..a.clone()
    };
    assert_eq!(
        recorded(&seventh, Err("no".into()), now).state,
        DeliveryState::Failed
    );
    assert_eq!(
        recorded(&a, Ok("POST: 200".into()), now).state,
        DeliveryState::Delivered
    );
    let no_route = Attempt { route: None, ..a };
    assert_eq!(
        recorded(&no_route, Err("gone".into()), now).state,
        DeliveryState::Failed
    );
}

#[test]
fn notices_carry_the_problem_and_an_idempotency_key() {
    let i = incident(json!([entry("hook/recovered-1", "hook")]), json!([]));
    let d = &i.status.as_ref().unwrap().outbox[0];
    let n = notice(&i, d);
    assert_eq!(n.idempotency_key, "u-1/hook/recovered-1");
    assert!(!n.firing);
    assert_eq!(
        (n.policy.as_str(), n.check.as_str()),
        ("database", "postgresql")
    );
    assert_eq!(n.message, "127.0.0.1:5432: OK");
    assert_eq!(n.recovered_at, Some(t("2026-11-30T00:10:00Z")));
    assert_eq!(n.server, "db01");
}

#[test]
fn notified_counts_the_outbox() {
    let now = t("2026-11-30T00:10:00Z");
    let none = incident(json!([]), json!([]));
    let c = notified(&none, &[], now);
    assert_eq!(
        (c.status.as_str(), c.message.as_str()),
        ("True", "no notification route")
    );
    let i = incident(
        json!([
            entry("hook/firing-1", "hook"),
            entry("hook/recovered-1", "hook")
        ]),
        json!([]),
    );
    let delivered = |k: &str, state| NotificationDelivery {
        route: k.into(),
        state,
        attempts: 1,
        last_attempt_at: None,
        message: None,
    };
    let c = notified(
        &i,
        &[delivered("hook/firing-1", DeliveryState::Delivered)],
        now,
    );
    assert_eq!((c.status.as_str(), c.reason.as_str()), ("False", "Pending"));
    assert_eq!(c.message, "1 of 2 notifications delivered");
    let c = notified(
        &i,
        &[
            delivered("hook/firing-1", DeliveryState::Delivered),
            delivered("hook/recovered-1", DeliveryState::Failed),
        ],
        now,
    );
    assert_eq!(c.reason, "Undelivered");
    let both = [
        delivered("hook/firing-1", DeliveryState::Delivered),
        delivered("hook/recovered-1", DeliveryState::Delivered),
    ];
    assert_eq!(notified(&i, &both, now).status, "True");
}

#[test]
fn what_was_sent_here_overrides_a_stale_store() {
    let i = incident(json!([entry("hook/firing-1", "hook")]), json!([]));
    let sent = Sent::default();
    let delivered = NotificationDelivery {
        route: "hook/firing-1".into(),
        state: DeliveryState::Delivered,
        attempts: 1,
        last_attempt_at: None,
        message: None,
    };
    sent.remember(&i, &delivered);
    // The store does not show it yet: the remembered result counts, so nothing is due.
    let records = sent.records(&i);
    assert_eq!(records, vec![delivered.clone()]);
    assert!(
        due(&i, &records, &[policy()], t("2026-11-30T00:10:00Z"))
            .0
            .is_empty()
    );
    // The store caught up: the memory is let go.
    let caught_up = incident(json!([entry("hook/firing-1", "hook")]), json!([delivered]));
    assert_eq!(sent.records(&caught_up).len(), 1);
    assert!(sent.0.lock().unwrap().is_empty());
}

#[test]
fn delivery_backoff() {
    assert_eq!(backoff(1), SignedDuration::from_secs(5));
    assert_eq!(backoff(2), SignedDuration::from_secs(10));
    assert_eq!(backoff(4), SignedDuration::from_secs(40));
    assert_eq!(backoff(9), SignedDuration::from_secs(600));
    assert_eq!(backoff(u32::MAX), SignedDuration::from_secs(600));
}

use super::*;
use k8s_openapi::api::coordination::v1::LeaseSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use serde_json::json;

fn t(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn server(os_version: Option<&str>) -> Server {
    let mut v = json!({
        "apiVersion": "unyo.dev/v1alpha1", "kind": "Server",
        "metadata": {"name": "db01", "namespace": "mie", "generation": 1},
        "spec": {"hostname": "db01", "role": "DB",
                 "os": {"name": "Debian GNU/Linux", "version": "12"},
                 "software": [{"name": "postgresql-15", "version": "15.10"}]},
    });
    if let Some(os) = os_version {
        v["status"] = json!({"observed": {
            "hostname": "db01",
            "os": {"name": "Debian GNU/Linux", "version": os},
            "packages": [{"name": "postgresql-15", "version": "15.10"}]}});
    }
    serde_json::from_value(v).unwrap()
}

fn lease(renewed: Timestamp, seconds: i32) -> Lease {
    Lease {
        metadata: Default::default(),
        spec: Some(LeaseSpec {
            renew_time: Some(MicroTime(renewed)),
            lease_duration_seconds: Some(seconds),
            ..Default::default()
        }),
    }
}

fn inputs<'a>(s: &'a Server, records: &'a [ChangeRecord], lease: Option<&'a Lease>) -> Inputs<'a> {
    Inputs {
        server: s,
        records,
        lease,
        schedules: &[],
        calendars: &[],
        plans: &[],
        baselines: &[],
    }
}

/// `s` with the status `d` decided written back, as the API server would hold it.
fn written(mut s: Server, d: &Decision) -> Server {
    let status = d.status.clone().expect("a status to write");
    let st = s.status.get_or_insert_with(Default::default);
    st.drift = status.drift;
    st.drift_count = status.drift_count;
    st.change_record = status.change_record;
    st.observed_generation = status.observed_generation;
    st.conditions = status.conditions;
    s
}

fn cond<'a>(d: &'a Decision, t: &str) -> &'a Condition {
    let s = d.status.as_ref().unwrap();
    s.conditions.iter().find(|c| c.type_ == t).unwrap()
}

#[test]
fn no_facts_is_unknown_and_no_lease_is_disconnected() {
    let s = server(None);
    let d = decide(&inputs(&s, &[], None), t("2026-11-30T00:00:00Z"));
    assert_eq!(cond(&d, "InSync").status, "Unknown");
    assert_eq!(cond(&d, "InSync").reason, "NoFacts");
    assert_eq!(cond(&d, "AgentConnected").reason, "NoLease");
    // Reconciled, whatever the host: kstatus reads the Server as Current.
    assert_eq!(cond(&d, "Ready").status, "True");
    assert_eq!(cond(&d, "Ready").reason, "Reconciled");
    assert_eq!(
        cond(&d, "Ready").message,
        "reconciled: InSync=Unknown (NoFacts), AgentConnected=False (NoLease)"
    );
    assert!(d.record.is_none());
    assert_eq!(d.wake, None);
    // Nothing was connected before, so no AgentDisconnected Event.
    assert!(!d.disconnected);
}

#[test]
fn a_renewed_lease_writes_nothing_and_wakes_at_the_new_expiry() {
    let now = t("2026-11-30T00:00:00Z");
    let s = server(Some("12"));
    let l0 = lease(now, 180);
    let first = decide(&inputs(&s, &[], Some(&l0)), now);
    assert_eq!(cond(&first, "Ready").status, "True");
    assert_eq!(first.wake, Some(t("2026-11-30T00:03:00Z")));
    let s = written(s, &first);
    // Ten renewals later: the same status, so no write; the wake moves with the Lease.
    for i in 1..=10 {
        let at = now + SignedDuration::from_secs(60 * i);
        let renewed = lease(at, 180);
        let d = decide(&inputs(&s, &[], Some(&renewed)), at);
        assert!(d.status.is_none(), "renewal {i} wrote {:?}", d.status);
        assert_eq!(d.wake, Some(at + SignedDuration::from_secs(180)));
        assert!(d.record.is_none() && !d.disconnected);
    }
}

#[test]
fn an_expired_lease_disconnects_once() {
    let now = t("2026-11-30T00:00:00Z");
    let l = lease(now, 180);
    let s = written(
        server(Some("12")),
        &decide(&inputs(&server(Some("12")), &[], Some(&l)), now),
    );
    let later = now + SignedDuration::from_secs(181);
    let d = decide(&inputs(&s, &[], Some(&l)), later);
    assert_eq!(cond(&d, "AgentConnected").status, "False");
    assert_eq!(cond(&d, "AgentConnected").reason, "LeaseExpired");
    assert!(d.disconnected);
    assert_eq!(d.wake, None);
    let s = written(s, &d);
    let again = decide(
        &inputs(&s, &[], Some(&l)),
        later + SignedDuration::from_secs(60),
    );
    assert!(again.status.is_none() && !again.disconnected);
}

#[test]
fn lease_times_that_overflow_do_not_panic() {
    let l = lease(Timestamp::MAX, i32::MAX);
    let st = lease_state(Some(&l), t("2026-11-30T00:00:00Z"));
    assert!(st.connected);
    let l = lease(Timestamp::MIN, i32::MIN);
    assert!(!lease_state(Some(&l), t("2026-11-30T00:00:00Z")).connected);
}

#[test]
fn uncovered_drift_opens_one_deterministic_record() {
    let now = t("2026-11-30T00:00:00Z");
    let s = server(Some("13"));
    let l = lease(now, 180);
    let d = decide(&inputs(&s, &[], Some(&l)), now);
    let record = d.record.clone().expect("a record");
    let name = record.name_any();
    assert!(name.starts_with("db01-drift-"), "{name}");
    assert_eq!(record.spec.paths.len(), 1);
    assert_eq!(record.spec.paths[0].path, "os.version");
    assert_eq!(record.labels()[labels::SERVER], "db01");
    assert_eq!(cond(&d, "InSync").reason, "Drifted");
    assert!(cond(&d, "InSync").message.contains(&name));
    // Drift is a finding about the host: the Server itself is reconciled.
    assert_eq!(cond(&d, "Ready").status, "True");
    assert!(cond(&d, "Ready").message.contains("InSync=False (Drifted)"));
    let status = d.status.as_ref().unwrap();
    assert_eq!(status.change_record.as_deref(), Some(name.as_str()));
    assert_eq!(status.drift_count, Some(1));
    // Decided again before the store has the record: the same name, never a second one.
    let again = decide(
        &inputs(&s, &[], Some(&l)),
        now + SignedDuration::from_secs(1),
    );
    assert_eq!(again.record.unwrap().name_any(), name);
    // Once the record is in the store, it covers the drift: nothing to open.
    let s = written(s, &d);
    let d = decide(
        &inputs(&s, &[record], Some(&l)),
        now + SignedDuration::from_secs(2),
    );
    assert!(d.record.is_none());
    assert!(d.status.is_none(), "{:?}", d.status);
}

#[test]
fn a_planned_change_in_its_window_absorbs_drift() {
    let now = t("2026-11-30T00:00:00Z");
    let planned: ChangeRecord = serde_json::from_value(json!({
        "apiVersion": "unyo.dev/v1alpha1", "kind": "ChangeRecord",
        "metadata": {"name": "upgrade", "namespace": "mie"},
        "spec": {"origin": "Planned", "title": "upgrade", "category": "OS",
                 "classification": "Major", "server": "db01",
                 "paths": [{"path": "os.version"}],
                 "reviews": [{"reviewer": "a", "done": true, "result": "Approved"}],
                 "plan": {"summary": "12 to 13", "window": {"start": "2026-11-29T00:00:00Z", "end": "2026-12-01T00:00:00Z"}}}
    }))
    .unwrap();
    let s = server(Some("13"));
    let d = decide(&inputs(&s, std::slice::from_ref(&planned), None), now);
    assert!(d.record.is_none());
    assert!(
        cond(&d, "InSync")
            .message
            .contains("1 expected by a planned change")
    );
    // After its window the same drift is uncovered and recorded.
    let after = t("2026-12-02T00:00:00Z");
    let d = decide(&inputs(&s, std::slice::from_ref(&planned), None), after);
    assert!(d.record.is_some());
}

#[test]
fn host_policy_refusals_make_the_condition_false_with_the_rule() {
    let now = t("2026-11-30T10:00:00Z");
    let mut s = server(Some("12"));
    let d = decide(&inputs(&s, &[], None), now);
    assert_eq!(cond(&d, cond::HOST_POLICY_ALLOWED).status, "True");
    s = written(s, &d);
    let refusal = json!({"kind": "BackupPlan", "name": "db", "field": "spec.repositories.primary.location",
                         "rule": "backup.repositories", "message": "not allowed"});
    s.status.as_mut().unwrap().operations =
        Some(serde_json::from_value(json!({"refusals": [refusal]})).unwrap());
    let d = decide(&inputs(&s, &[], None), now);
    let c = cond(&d, cond::HOST_POLICY_ALLOWED);
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("False", reasons::REFUSED_BY_HOST_POLICY)
    );
    assert!(
        c.message
            .contains("spec.repositories.primary.location (rule backup.repositories)"),
        "{}",
        c.message
    );
    // Before the agent reports anything there is no judgement.
    let d = decide(&inputs(&server(None), &[], None), now);
    assert!(
        d.status
            .unwrap()
            .conditions
            .iter()
            .all(|c| c.type_ != cond::HOST_POLICY_ALLOWED)
    );
}

#[test]
fn drift_that_outlives_its_closed_record_opens_a_new_one() {
    let now = t("2026-11-30T00:00:00Z");
    let s = server(Some("13"));
    let l = lease(now, 180);
    let d = decide(&inputs(&s, &[], Some(&l)), now);
    let mut first = d.record.clone().expect("a record");
    let s = written(s, &d);
    // People close it while the host still differs from its ledger.
    first.spec.closed = Some(true);
    let later = now + SignedDuration::from_secs(60);
    let d = decide(&inputs(&s, std::slice::from_ref(&first), Some(&l)), later);
    let second = d
        .record
        .clone()
        .expect("a new record for the drift that remains");
    assert_ne!(second.name_any(), first.name_any());
    // The same decision again (a retry, a stale cache): the same second name.
    let again = decide(&inputs(&s, std::slice::from_ref(&first), Some(&l)), later);
    assert_eq!(again.record.unwrap().name_any(), second.name_any());
    // With the second open, nothing more is opened.
    let d = decide(&inputs(&s, &[first, second], Some(&l)), later);
    assert!(d.record.is_none());
}

#[test]
fn drift_that_recurs_after_the_controller_resolved_its_record_reopens_it() {
    let now = t("2026-11-30T00:00:00Z");
    let s = server(Some("13"));
    let l = lease(now, 180);
    let d = decide(&inputs(&s, &[], Some(&l)), now);
    let mut first = d.record.clone().expect("a record");
    first.status = Some(
        serde_json::from_value(json!({"phase": "Resolved", "resolution": "HostReverted"})).unwrap(),
    );
    let s = written(s, &d);
    let d = decide(
        &inputs(&s, std::slice::from_ref(&first), Some(&l)),
        now + SignedDuration::from_secs(60),
    );
    assert!(
        d.record.is_none(),
        "no second record: the change loop reopens the first"
    );
}

#[test]
fn drift_longer_than_a_status_lists_is_cut_counted_and_written_once() {
    let now = t("2026-11-30T00:00:00Z");
    let mut s = server(Some("12"));
    let total = unyo_crds::limits::DRIFT + 10;
    s.spec.software = (0..total)
        .map(|i| serde_json::from_value(json!({"name": format!("missing-{i:04}"), "version": "1"})))
        .collect::<Result<_, _>>()
        .unwrap();
    let l = lease(now, 180);
    let d = decide(&inputs(&s, &[], Some(&l)), now);
    let status = d.status.as_ref().unwrap();
    assert_eq!(status.drift.len(), unyo_crds::limits::DRIFT);
    assert_eq!(status.drift_count, Some(total as u32), "every path counted");
    // The cut status, once written, is what the next decision compares with: no second write.
    let s = written(s, &d);
    let again = decide(
        &inputs(&s, &[], Some(&l)),
        now + SignedDuration::from_secs(1),
    );
    assert!(
        again.status.is_none(),
        "{:?}",
        again.status.map(|s| s.drift.len())
    );
}

//! Property test: objects of every kind, made from the sample fleet with fields replaced by
//! extreme values (zeros, maxima, far-past and far-future dates, durations beyond the end of
//! time, names at their limits, empty and repeated lists), go through every loop's decision at
//! ordinary and extreme instants without a panic.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;
use serde_json::Value;
use unyo_crds::{
    BackupPlan, ChangeRecord, Incident, MonitoringPolicy, OperationCalendar, PatchBaseline, Server,
    VirusScanSchedule,
};

/// A sample document of `kind` in `file` (manifests/samples), as JSON.
fn sample(file: &str, kind: &str) -> Value {
    let path = format!("{}/../manifests/samples/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(path).unwrap();
    text.split("\n---")
        .filter_map(|d| serde_saphyr::from_str::<Value>(d).ok())
        .find(|v| v["kind"] == kind)
        .unwrap()
}

/// A Server of the sample fleet with a status as an agent and the controller would write it.
fn server() -> Value {
    let mut s = sample("servers/db01.yaml", "Server");
    s["metadata"]["generation"] = 3.into();
    s["status"] = serde_json::json!({
        "observed": {"hostname": "db01", "hash": "h", "observedAt": "2026-11-30T00:00:00Z",
                     "os": {"name": "Debian GNU/Linux", "version": "12"},
                     "packages": [{"name": "postgresql-15", "version": "15.9", "architecture": "amd64"}]},
        "checks": [{"policy": "database", "check": "postgresql", "state": "Critical",
                    "since": "2026-11-29T23:00:00Z", "message": "down", "value": 1.0}],
        "operations": {
            "antivirus": {"signatureTime": "2026-11-29T00:00:00Z",
                          "lastScan": {"schedule": "daily", "startedAt": "2026-11-29T12:30:00Z",
                                       "filesScanned": 10, "detections": 1, "result": "Succeeded"},
                          "detections": [{"host": "db01", "path": "/srv/x", "signature": "S",
                                          "actions": ["Quarantine: q"], "at": "2026-11-29T12:30:00Z"}]},
            "backups": [{"plan": "db-and-reports",
                         "lastFull": {"rule": "weekly-full", "type": "Full", "result": "Failed",
                                      "startedAt": "2026-11-29T19:30:00Z"}}],
            "patches": [{"baseline": "production", "compliant": false, "patches": []}]},
        "drift": [{"path": "os.version", "expected": "12", "observed": "13", "since": "2026-11-29T00:00:00Z"}],
        "conditions": [{"type": "AgentConnected", "status": "False", "reason": "LeaseExpired",
                        "message": "m", "lastTransitionTime": "2026-11-29T00:00:00Z"}]
    });
    s
}

const NUMBERS: &[f64] = &[
    0.0,
    -1.0,
    1.0,
    2_147_483_647.0,
    4_294_967_295.0,
    9.2e18,
    1e308,
    -1e308,
];
const TEXTS: &[&str] = &[
    "",
    "0s",
    "1s",
    "100000000d",
    "9999999999h",
    "2562047788015215h",
    "9999-12-31T23:59:59Z",
    "0001-01-01T00:00:00Z",
    "-009999-01-01T00:00:00Z",
    "2026-02-30",
    "23:59",
    "00:00",
    "25:61",
    "*/0 * * * *",
    "0 0 31 2 *",
    "1970-01-01T00:00:00Z",
];

/// Every path to a leaf of `v` (object keys and array indexes), below `spec` and `status`.
fn leaves(v: &Value, path: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                path.push(k.clone());
                leaves(x, path, out);
                path.pop();
            }
        }
        Value::Array(a) => {
            out.push(path.clone());
            for (i, x) in a.iter().enumerate() {
                path.push(i.to_string());
                leaves(x, path, out);
                path.pop();
            }
        }
        _ => out.push(path.clone()),
    }
}

fn at<'a>(v: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    path.iter().try_fold(v, |v, k| match v {
        Value::Object(m) => m.get_mut(k),
        Value::Array(a) => a.get_mut(k.parse::<usize>().ok()?),
        _ => None,
    })
}

/// `doc` with the `n`-th leaf (modulo their count) replaced by the `pick`-th extreme value of
/// its type.
fn mutate(doc: &mut Value, n: usize, pick: usize) {
    let mut paths = Vec::new();
    for top in ["spec", "status"] {
        if let Some(v) = doc.get(top) {
            let mut p = vec![top.to_string()];
            leaves(v, &mut p, &mut paths);
        }
    }
    let Some(path) = paths.get(n % paths.len().max(1)).cloned() else {
        return;
    };
    let long = "a".repeat(253);
    let Some(leaf) = at(doc, &path) else { return };
    let next = match &*leaf {
        Value::Number(_) => serde_json::json!(NUMBERS[pick % NUMBERS.len()]),
        Value::String(_) if pick % 5 == 4 => Value::String(long),
        Value::String(_) => Value::String(TEXTS[pick % TEXTS.len()].to_string()),
        Value::Bool(b) => Value::Bool(!*b),
        Value::Array(_) if pick.is_multiple_of(2) => Value::Array(vec![]),
        Value::Array(a) => Value::Array(a.iter().cycle().take(a.len() * 40).cloned().collect()),
        other => other.clone(),
    };
    *leaf = next;
}

/// `doc` after `changes`, as `K` when it still deserializes (else the unchanged sample).
fn typed<K: serde::de::DeserializeOwned>(doc: &Value, changes: &[(usize, usize)]) -> K {
    let mut v = doc.clone();
    for (n, pick) in changes {
        mutate(&mut v, *n, *pick);
    }
    serde_json::from_value(v)
        .or_else(|_| serde_json::from_value(doc.clone()))
        .unwrap()
}

fn instants() -> Vec<Timestamp> {
    vec![
        "2026-11-30T10:00:00Z".parse().unwrap(),
        Timestamp::MAX,
        Timestamp::MIN,
        Timestamp::MAX - SignedDuration::from_secs(1),
    ]
}

fn changes() -> impl Strategy<Value = Vec<(usize, usize)>> {
    prop::collection::vec((0usize..10_000, 0usize..100), 1..6)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn no_decision_panics_on_extreme_values(
        sc in changes(), pc in changes(), bc in changes(), vc in changes(),
        kc in changes(), rc in changes(), ic in changes(), mc in changes(),
    ) {
        let server: Server = typed(&server(), &sc);
        let policy: MonitoringPolicy = typed(&sample("monitoring.yaml", "MonitoringPolicy"), &mc);
        let baseline: PatchBaseline = typed(&sample("patch-baselines.yaml", "PatchBaseline"), &pc);
        let plan: BackupPlan = typed(&sample("backup.yaml", "BackupPlan"), &bc);
        let scan: VirusScanSchedule = typed(&sample("virusscan.yaml", "VirusScanSchedule"), &vc);
        let calendar: OperationCalendar = typed(&sample("calendar.yaml", "OperationCalendar"), &kc);
        let record: ChangeRecord = typed(&sample("planned-change.yaml", "ChangeRecord"), &rc);
        let incident: Incident = typed(&sample("inquiry-incident.yaml", "Incident"), &ic);
        let servers = vec![Arc::new(server.clone())];
        let incidents = vec![Arc::new(incident.clone())];
        let calendars = vec![calendar.clone()];
        for now in instants() {
            let _ = crate::server::decide(&crate::server::Inputs {
                server: &server,
                records: std::slice::from_ref(&record),
                lease: None,
                schedules: std::slice::from_ref(&scan),
                calendars: &calendars,
                plans: std::slice::from_ref(&plan),
                baselines: std::slice::from_ref(&baseline),
            }, now);
            let _ = crate::incident::decide(&crate::incident::Inputs {
                server: &server,
                incidents: &incidents,
                policies: std::slice::from_ref(&policy),
                schedules: std::slice::from_ref(&scan),
                plans: std::slice::from_ref(&plan),
                calendars: &calendars,
                agent_grace: SignedDuration::MAX,
            }, now);
            let _ = crate::patch::decide(&crate::patch::Inputs {
                baseline: &baseline,
                servers: &servers,
                calendars: &calendars,
                baselines: std::slice::from_ref(&baseline),
                incidents: &incidents,
            }, now);
            let _ = crate::backup::decide(&plan, &servers, &calendars, now);
            let _ = crate::virusscan::decide(&scan, &servers, &calendars, now);
            let _ = crate::calendar::desired_status(&calendar, &[], &[], now);
            let _ = crate::policy::desired_status(&policy, &servers, now);
            let _ = crate::change::decide(&record, std::slice::from_ref(&server), now);
            let _ = crate::notifier::due(&incident, &[], std::slice::from_ref(&policy), now);
        }
    }
}

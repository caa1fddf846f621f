//! Faults against the real control plane: a stalled leader. Two replicas of the controller
//! binary with leader election, each reaching the API server through its own TLS proxy that
//! logs every write with the time it forwarded it; the leader's proxy then holds its Lease
//! updates for 20 s. At no instant may both replicas write.

// A test crate: a panic is how a failure is reported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::api::{Patch, PatchParams};
use unyo_crds::Server;
use unyo_tests::{ControlPlane, Running, control_plane};

mod common;
use common::server_yaml;

fn free_port() -> u16 {
    unyo_tests::free_port().unwrap()
}

/// A proxy to the API server on a free port, logging writes to `log`, stalling Lease updates
/// while `flag` exists.
fn proxy(
    cp: &ControlPlane,
    tls: &(PathBuf, PathBuf, PathBuf),
    flag: &Path,
    log: &Path,
) -> (u16, Running) {
    let url = cp.server_url().unwrap();
    let upstream = url
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .to_string();
    let port = free_port();
    let mut cmd = Command::new("python3");
    cmd.arg(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/stall_proxy.py"
    ))
    .args([port.to_string(), upstream])
    .args([&tls.1, &tls.2, flag, log]);
    let running = Running::spawn(cmd, &format!("proxy-{port}")).unwrap();
    for _ in 0..50 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    (port, running)
}

/// The controller's kubeconfig, pointed at the proxy on `port`.
fn through(kubeconfig: &Path, port: u16, ca: &Path, out: &Path) {
    let text = std::fs::read_to_string(kubeconfig).unwrap();
    let mut kc: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
    let cluster = &mut kc["clusters"][0]["cluster"];
    cluster["server"] = format!("https://127.0.0.1:{port}").into();
    cluster
        .as_object_mut()
        .unwrap()
        .remove("certificate-authority-data");
    cluster["certificate-authority"] = ca.display().to_string().into();
    std::fs::write(out, kc.to_string()).unwrap();
}

fn replica(name: &str, kubeconfig: &Path, ns: &str) -> Running {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_unyo-controller"));
    cmd.arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["-n", ns, "--leader-elect"])
        .env("POD_NAME", name)
        .env("RUST_LOG", "info,unyo_controller=debug");
    Running::spawn(cmd, &format!("{name}-{ns}")).unwrap()
}

/// The times of the writes a proxy forwarded, other than Lease updates.
fn writes(log: &Path) -> Vec<f64> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.contains("/leases/"))
        .filter_map(|l| l.split(' ').next()?.parse().ok())
        .collect()
}

async fn holder(leases: &Api<Lease>) -> Option<String> {
    leases
        .get_opt("unyo-controller")
        .await
        .ok()
        .flatten()
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
}

#[tokio::test]
async fn a_stalled_leader_never_writes_beside_the_new_one() {
    let cp = control_plane().unwrap();
    let ns = cp.namespace("stall").await.unwrap();
    let client = cp.client().await.unwrap();
    let work = std::env::temp_dir().join(format!("unyo-stall-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let tls = unyo_tests::tls_files(&work).unwrap();
    let flag = work.join("stall");
    let (log_a, log_b) = (work.join("writes-a.log"), work.join("writes-b.log"));
    let (port_a, _proxy_a) = proxy(cp, &tls, &flag, &log_a);
    let (port_b, _proxy_b) = proxy(cp, &tls, &work.join("never"), &log_b);
    let kubeconfig = cp.controller_kubeconfig().await.unwrap();
    let (kc_a, kc_b) = (work.join("a.kubeconfig"), work.join("b.kubeconfig"));
    through(&kubeconfig, port_a, &tls.0, &kc_a);
    through(&kubeconfig, port_b, &tls.0, &kc_b);
    cp.kubectl_ok(
        &["apply", "--server-side", "-f", "-"],
        Some(&server_yaml(&ns, "s1")),
    )
    .unwrap();
    let servers: Api<Server> = Api::namespaced(client.clone(), &ns);
    let leases: Api<Lease> = Api::namespaced(client.clone(), "unyo-system");

    // A leads (through the proxy that will stall it); B waits.
    let mut a = replica("replica-a", &kc_a, &ns);
    let mut led = false;
    for _ in 0..120 {
        if holder(&leases).await.as_deref() == Some("replica-a") && !writes(&log_a).is_empty() {
            led = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(led, "replica A did not lead\n{}", a.log());
    let b = replica("replica-b", &kc_b, &ns);

    // Steady work for the leader: a spec change every 300 ms (each a status write).
    let load = {
        let servers = servers.clone();
        tokio::spawn(async move {
            for n in 0.. {
                let p = serde_json::json!({"spec": {"description": format!("change {n}")}});
                let _ = servers
                    .patch("s1", &PatchParams::default(), &Patch::Merge(&p))
                    .await;
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(4)).await;
    std::fs::write(&flag, "").unwrap();

    // B takes over and reconciles; A stops and exits.
    let mut took = false;
    for _ in 0..240 {
        if holder(&leases).await.as_deref() == Some("replica-b") && !writes(&log_b).is_empty() {
            took = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        took,
        "replica B did not take over\nA:\n{}\nB:\n{}",
        a.log(),
        b.log()
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    load.abort();
    assert!(!a.alive(), "the stalled leader still runs\n{}", a.log());
    assert!(a.log().contains("lost leadership"), "{}", a.log());

    // At no instant did both write: every write of A left before B's first.
    let (wa, wb) = (writes(&log_a), writes(&log_b));
    let last_a = wa.iter().cloned().fold(f64::MIN, f64::max);
    let first_b = wb.iter().cloned().fold(f64::MAX, f64::min);
    assert!(
        last_a < first_b,
        "A wrote at {last_a}, after B's first write at {first_b}\nA:\n{}\nB:\n{}",
        a.log(),
        b.log()
    );
    // B's reconciles are current: the Server's last spec change is observed.
    let mut current = false;
    for _ in 0..60 {
        let s = servers.get("s1").await.unwrap();
        let observed = s.status.as_ref().and_then(|st| st.observed_generation);
        if observed == s.metadata.generation {
            current = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        current,
        "B did not reconcile the latest change\n{}",
        b.log()
    );
    println!(
        "stalled leader: A's last write at {last_a:.3}, B's first at {first_b:.3} ({:.1} s later); A wrote {} times, B {}",
        first_b - last_a,
        wa.len(),
        wb.len()
    );
    drop(b);
    let _ = std::fs::remove_dir_all(&work);
}

/// Applies `yaml` (with NS for the namespace): Ok when accepted, Err with the API server's
/// refusal otherwise.
fn try_apply(cp: &ControlPlane, ns: &str, yaml: &str) -> Result<(), String> {
    let out = cp
        .run_kubectl(
            &["apply", "--server-side", "-f", "-"],
            Some(&yaml.replace("NS", ns)),
        )
        .unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[tokio::test]
async fn extreme_values_are_refused_or_reported_and_nothing_exits() {
    let cp = control_plane().unwrap();
    let ns = cp.namespace("extremes").await.unwrap();
    let client = cp.client().await.unwrap();
    let calendar =
        std::fs::read_to_string(unyo_tests::repo_root().join("manifests/samples/calendar.yaml"))
            .unwrap()
            .replace("namespace: mie", "namespace: NS");
    try_apply(cp, &ns, &calendar).unwrap();
    let mut ctl = common::controller(cp, &ns, "controller", &[]).await;

    // The crash of the first wave: a soak beyond the end of time, an explicitly approved
    // patch, and a staging Server whose facts list it.
    let baselines = r#"apiVersion: unyo.dev/v1alpha1
kind: PatchBaseline
metadata: {name: staging, namespace: NS}
spec:
  selector: {matchLabels: {unyo.dev/environment: staging}}
  approvedPatches: [openssl]
---
apiVersion: unyo.dev/v1alpha1
kind: PatchBaseline
metadata: {name: production, namespace: NS}
spec:
  selector: {matchLabels: {unyo.dev/environment: production}}
  approvedPatches: [openssl]
  promotion: {stagingBaseline: staging, soak: "100000000d"}
"#;
    try_apply(cp, &ns, baselines).unwrap();
    let staging = server_yaml(&ns, "stg-db01").replace(
        "unyo.dev/environment: production",
        "unyo.dev/environment: staging",
    );
    cp.kubectl_ok(&["apply", "--server-side", "-f", "-"], Some(&staging))
        .unwrap();
    // A Server name at the limit of its length, drifting (its record's labels must fit).
    let long = format!("db{}", "9".repeat(251));
    cp.kubectl_ok(
        &["apply", "--server-side", "-f", "-"],
        Some(&server_yaml(&ns, &long)),
    )
    .unwrap();
    let servers: Api<Server> = Api::namespaced(client.clone(), &ns);
    let status = |name: &str, released: &str| {
        serde_json::json!({"apiVersion": "unyo.dev/v1alpha1", "kind": "Server", "status": {
            "observed": {"hostname": name, "os": {"name": "Debian GNU/Linux", "version": "13"},
                         "packages": [{"name": "openssl", "version": "3.0.99", "architecture": "amd64"}]},
            "operations": {"patchScan": {"scannedAt": "2026-11-30T00:00:00Z", "succeeded": true,
                "available": [{"package": "openssl", "installedVersion": "3.0.14", "version": "3.0.99",
                               "classification": "Security", "releasedAt": released}]}}}})
    };
    let apply = PatchParams::apply("unyo-agent").force();
    // A time the API server would take but nothing in unyo could read is refused, naming it.
    let refused = servers
        .patch_status(
            "stg-db01",
            &apply,
            &Patch::Apply(&status("stg-db01", "9999-12-31T23:59:59Z")),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("releasedAt") && refused.contains("must not be after"),
        "{refused}"
    );
    for name in ["stg-db01", long.as_str()] {
        servers
            .patch_status(
                name,
                &apply,
                &Patch::Apply(&status(name, "9999-12-29T00:00:00Z")),
            )
            .await
            .unwrap();
    }

    // Durations, counts and dates at their extremes, each either refused naming its field or
    // taken and judged.
    let cases = [
        (
            "BackupPlan",
            "generations",
            r#"apiVersion: unyo.dev/v1alpha1
kind: BackupPlan
metadata: {name: max-generations, namespace: NS}
spec:
  selector: {}
  sources: [{name: d, paths: [/srv]}]
  repositories: {primary: {location: /backup/a, passwordFile: /etc/unyo/a.pass}}
  rules: [{name: f, type: Full, schedule: {calendar: mie-operations, at: "19:30"}}]
  retention: {generations: 4294967295}
  protectedSnapshot: {schedule: {calendar: mie-operations, at: "23:59"}, keepFor: "100000000d"}
  media: {informationClass: ClassI}
"#,
        ),
        (
            "VirusScanSchedule",
            "maxAge",
            r#"apiVersion: unyo.dev/v1alpha1
kind: VirusScanSchedule
metadata: {name: forever, namespace: NS}
spec:
  selector: {}
  schedule: {calendar: mie-operations, at: "00:00"}
  paths: [/]
  actions: [Notify]
  signatures: {maxAge: "99999999999999999999d"}
"#,
        ),
        (
            "MonitoringPolicy",
            "for",
            r#"apiVersion: unyo.dev/v1alpha1
kind: MonitoringPolicy
metadata: {name: slow, namespace: NS}
spec:
  selector: {}
  interval: "0s"
  reopenWindow: "100000000d"
  checks: [{name: cpu, kind: Cpu, warning: 99.999, critical: 100, for: "100000000d", timeout: "100000000d"}]
"#,
        ),
        (
            "OperationCalendar",
            "closures",
            r#"apiVersion: unyo.dev/v1alpha1
kind: OperationCalendar
metadata: {name: end-of-time, namespace: NS}
spec:
  timeZone: Asia/Tokyo
  extraHolidays: [{date: "9999-12-31", name: far}]
  extraWorkdays: ["9999-12-30"]
  businessHours: {weekdays: [Monday], start: "00:00", end: "23:59"}
"#,
        ),
    ];
    let mut outcome = Vec::new();
    for (kind, field, yaml) in cases {
        match try_apply(cp, &ns, yaml) {
            Ok(()) => outcome.push(format!("{kind} ({field}): accepted")),
            Err(e) => {
                assert!(
                    e.contains("spec."),
                    "{kind}: a refusal that names no field: {e}"
                );
                outcome.push(format!(
                    "{kind} ({field}): refused: {}",
                    e.lines().next().unwrap_or("")
                ));
            }
        }
    }
    // Everything accepted is judged (a Ready condition) while the controller keeps running.
    tokio::time::sleep(Duration::from_secs(8)).await;
    for (plural, name) in [
        ("backupplans", "max-1000"),
        ("virusscanschedules", "forever"),
        ("monitoringpolicies", "slow"),
        ("operationcalendars", "end-of-time"),
        ("patchbaselines", "production"),
    ] {
        let out = cp
            .run_kubectl(
                &[
                    "get",
                    plural,
                    name,
                    "-n",
                    &ns,
                    "-o",
                    "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
                ],
                None,
            )
            .unwrap();
        let ready = String::from_utf8_lossy(&out.stdout).to_string();
        if out.status.success() {
            assert!(
                ready == "True" || ready == "False",
                "{plural}/{name} is not judged: {ready:?}\n{}",
                ctl.log()
            );
        }
    }
    let records = cp
        .kubectl_ok(&["get", "changerecords", "-n", &ns, "-o", "name"], None)
        .unwrap();
    assert!(
        records.lines().count() >= 2,
        "both drifting Servers have records: {records}\n{}",
        ctl.log()
    );
    assert!(ctl.alive(), "the controller exited\n{}", ctl.log());
    assert!(!ctl.log().contains("panicked"), "{}", ctl.log());
    println!("extreme values:\n  {}", outcome.join("\n  "));
}

/// A webhook receiver that answers 200 and counts the requests per `Idempotency-Key`.
async fn receiver() -> (
    u16,
    std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, u32>>>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(std::collections::HashMap::new()));
    let keys = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let keys = keys.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                loop {
                    let n = s.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    let Some((head, body)) = text.split_once("\r\n\r\n") else {
                        continue;
                    };
                    let len: usize = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if body.len() < len {
                        continue;
                    }
                    if let Some(key) = head.lines().find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("idempotency-key")
                            .then(|| v.trim().to_string())
                    }) {
                        *keys.lock().unwrap().entry(key).or_insert(0) += 1;
                    }
                    let _ = s
                        .write_all(
                            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                        )
                        .await;
                    return;
                }
            });
        }
    });
    (port, seen)
}

#[tokio::test]
async fn killed_ten_times_during_a_burst_nothing_lost_nothing_duplicated() {
    use unyo_crds::change::ChangeRecord;
    use unyo_crds::incident::{DeliveryState, Incident};
    let cp = control_plane().unwrap();
    let ns = cp.namespace("kill9").await.unwrap();
    let client = cp.client().await.unwrap();
    let (hook_port, keys) = receiver().await;
    cp.kubectl_ok(
        &[
            "create",
            "secret",
            "generic",
            "hooks",
            "-n",
            &ns,
            &format!("--from-literal=url=http://127.0.0.1:{hook_port}/unyo"),
        ],
        None,
    )
    .unwrap();
    cp.bind_controller_secrets(&ns).unwrap();
    try_apply(cp, &ns, r#"apiVersion: unyo.dev/v1alpha1
kind: MonitoringPolicy
metadata: {name: services, namespace: NS}
spec:
  selector: {}
  checks: [{name: app, kind: Service, service: app.service}]
  incidentSeverities: [Critical]
  notifications: [{name: hook, severities: [Critical], onRecovery: false, webhook: {urlSecret: {name: hooks, key: url}, insecureHttp: true}}]
"#)
    .unwrap();
    // 200 Servers whose hosts drifted (OS 13 against a ledger of 12); 100 of them also with a
    // failing check.
    let servers: Api<Server> = Api::namespaced(client.clone(), &ns);
    let since = jiff::Timestamp::from_second(jiff::Timestamp::now().as_second() - 60).unwrap();
    let all: String = (0..200)
        .map(|i| server_yaml(&ns, &format!("h{i:03}")) + "\n---\n")
        .collect();
    cp.kubectl_ok(&["apply", "--server-side", "-f", "-"], Some(&all))
        .unwrap();
    for i in 0..200 {
        let name = format!("h{i:03}");
        let checks = if i < 100 {
            serde_json::json!([{"policy": "services", "check": "app", "state": "Critical", "since": since.to_string(), "message": "app.service is not active"}])
        } else {
            serde_json::json!([])
        };
        let patch = serde_json::json!({"apiVersion": "unyo.dev/v1alpha1", "kind": "Server", "status": {
            "observed": {"hostname": name, "os": {"name": "Debian GNU/Linux", "version": "13"}},
            "checks": checks}});
        servers
            .patch_status(
                &name,
                &PatchParams::apply("unyo-agent").force(),
                &Patch::Apply(&patch),
            )
            .await
            .unwrap();
    }

    // kill -9 at ten points of the burst, then one run to the end.
    for (round, ms) in [400u64, 1100, 2500, 800, 3200, 1700, 600, 2900, 1300, 3800]
        .iter()
        .enumerate()
    {
        let ctl = common::controller(cp, &ns, &format!("kill-{round}"), &[]).await;
        tokio::time::sleep(Duration::from_millis(*ms)).await;
        drop(ctl); // SIGKILL
    }
    let ctl = common::controller(cp, &ns, "final", &[]).await;
    let records: Api<ChangeRecord> = Api::namespaced(client.clone(), &ns);
    let incidents: Api<Incident> = Api::namespaced(client.clone(), &ns);
    let mut done = false;
    let (mut r, mut inc) = (vec![], vec![]);
    for _ in 0..240 {
        r = records.list(&Default::default()).await.unwrap().items;
        inc = incidents.list(&Default::default()).await.unwrap().items;
        let delivered = inc
            .iter()
            .filter(|i| {
                i.status.as_ref().is_some_and(|s| {
                    s.notifications
                        .iter()
                        .any(|n| n.state == DeliveryState::Delivered)
                })
            })
            .count();
        if r.len() >= 200 && inc.len() >= 100 && delivered == 100 {
            done = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        done,
        "{} records, {} incidents\n{}",
        r.len(),
        inc.len(),
        ctl.log()
    );
    // Exactly one open record per drifting Server, one Incident per failing check.
    let mut per_server: std::collections::HashMap<String, usize> = Default::default();
    for rec in &r {
        *per_server
            .entry(rec.spec.server.clone().unwrap_or_default())
            .or_default() += 1;
    }
    assert_eq!(
        r.len(),
        200,
        "records: {:?}",
        per_server
            .iter()
            .filter(|(_, n)| **n > 1)
            .collect::<Vec<_>>()
    );
    assert!(per_server.values().all(|n| *n == 1));
    let mut per_problem: std::collections::HashMap<String, usize> = Default::default();
    for i in &inc {
        *per_problem
            .entry(i.spec.fingerprint.clone().unwrap_or_default())
            .or_default() += 1;
    }
    assert_eq!(inc.len(), 100);
    assert!(
        per_problem.values().all(|n| *n == 1),
        "duplicated Incidents"
    );
    // Every notification reached the receiver under its one key (a resend after a kill carries
    // the same key, so the receiver drops it).
    let keys = keys.lock().unwrap().clone();
    let expected: std::collections::HashSet<String> = inc
        .iter()
        .map(|i| {
            format!(
                "{}/hook/firing-1",
                i.metadata.uid.clone().unwrap_or_default()
            )
        })
        .collect();
    let got: std::collections::HashSet<String> = keys.keys().cloned().collect();
    assert_eq!(
        got, expected,
        "keys the receiver saw differ from the notifications due"
    );
    let resent = keys.values().filter(|n| **n > 1).count();
    println!(
        "kill -9 ×10 during 200 drifts and 100 failing checks: 200 records, 100 Incidents, {} keys delivered ({} resent after a kill, same key)",
        keys.len(),
        resent
    );
    drop(ctl);
}

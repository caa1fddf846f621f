//! End to end: the unyo-controller binary on a real kube-apiserver turns drift into
//! ChangeRecords and check failures into Incidents with notifications (a real HTTP receiver and
//! a real SMTP server, Debian's aiosmtpd), and of two replicas with leader election only one
//! reconciles until it dies. Facts and check results are written the way the agent writes them
//! (server-side apply, field manager unyo-agent).

// A test crate: a panic is how a failure is reported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use unyo_crds::change::{ChangePhase, ChangeRecord, ChangeResolution};
use unyo_crds::incident::{DeliveryState, Incident, IncidentPhase};
use unyo_crds::{MonitoringPolicy, OperationCalendar, Server};
use unyo_tests::{Running, control_plane, renew_agent_lease, wait_for};

mod common;
use common::{controller, server_yaml};

/// Facts of a host matching the db01 ledger, with `os_version` and `pg` as given.
fn facts(host: &str, os_version: &str, pg: &str) -> serde_json::Value {
    json!({
        "observedAt": Timestamp::now().to_string(),
        "hostname": host,
        "os": {"name": "Debian GNU/Linux", "version": os_version, "id": "debian", "architecture": "x86_64"},
        "cpu": {"sockets": 2, "cores": 16, "threads": 32},
        "memoryBytes": 135_000_000_000u64,
        "nics": [{"name": "eth0", "mac": "52:54:00:10:01:31", "addresses": ["10.10.1.31/24"]}],
        "packages": [{"name": "postgresql-15", "version": pg}, {"name": "tzdata", "version": "2025b"}],
    })
}

/// Writes status as the agent does.
async fn agent_writes(
    api: &Api<Server>,
    name: &str,
    observed: serde_json::Value,
    checks: serde_json::Value,
) {
    let patch = json!({
        "apiVersion": "unyo.dev/v1alpha1",
        "kind": "Server",
        "status": {"observed": observed, "checks": checks},
    });
    api.patch_status(
        name,
        &PatchParams::apply("unyo-agent").force(),
        &Patch::Apply(&patch),
    )
    .await
    .unwrap();
}

async fn renew_lease(api: &Api<Lease>, server: &str, seconds: i32) {
    renew_agent_lease(api, server, seconds).await.unwrap();
}

async fn wait<K>(
    api: &Api<K>,
    name: &str,
    what: &str,
    secs: u64,
    log: &Running,
    cond: impl Fn(&K) -> bool,
) -> K
where
    K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Default,
{
    wait_for(api, name, what, secs, &[log], cond).await
}

fn condition<'a>(
    s: &'a Server,
    t: &str,
) -> Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    s.status.as_ref()?.conditions.iter().find(|c| c.type_ == t)
}

async fn drift_records(api: &Api<ChangeRecord>, server: &str) -> Vec<ChangeRecord> {
    api.list(
        &ListParams::default().labels(&format!("unyo.dev/server={server},unyo.dev/origin=Drift")),
    )
    .await
    .unwrap()
    .items
}

#[tokio::test]
async fn drift_becomes_change_records_that_resolve_themselves() {
    let cp = control_plane().unwrap();
    let ns = cp.namespace("drift").await.unwrap();
    let client = cp.client().await.unwrap();
    let servers: Api<Server> = Api::namespaced(client.clone(), &ns);
    let records: Api<ChangeRecord> = Api::namespaced(client.clone(), &ns);
    let leases: Api<Lease> = Api::namespaced(client.clone(), &ns);
    cp.kubectl_ok(
        &["apply", "--server-side", "-f", "-"],
        Some(&server_yaml(&ns, "db01")),
    )
    .unwrap();
    agent_writes(
        &servers,
        "db01",
        facts("db01", "12", "15.10-0+deb12u1"),
        json!([]),
    )
    .await;
    renew_lease(&leases, "db01", 600).await;
    let mut ctl = controller(cp, &ns, "controller", &["--agent-grace", "2s"]).await;

    let s = wait(&servers, "db01", "InSync and connected", 60, &ctl, |s| {
        unyo_tests::in_sync_and_connected(s)
    })
    .await;
    assert_eq!(condition(&s, "Ready").unwrap().reason, "Reconciled");
    assert_eq!(condition(&s, "InSync").unwrap().reason, "InSync");
    assert_eq!(
        condition(&s, "AgentConnected").unwrap().reason,
        "LeaseRenewed"
    );
    assert_eq!(s.status.as_ref().unwrap().drift_count, Some(0));

    // The host's OS is upgraded without a change record: drift, and a ChangeRecord for it.
    agent_writes(
        &servers,
        "db01",
        facts("db01", "13", "15.10-0+deb12u1"),
        json!([]),
    )
    .await;
    let s = wait(&servers, "db01", "drift recorded", 60, &ctl, |s| {
        s.status
            .as_ref()
            .is_some_and(|st| st.change_record.is_some())
    })
    .await;
    let st = s.status.clone().unwrap();
    assert_eq!(st.drift.len(), 1);
    assert_eq!(
        (
            st.drift[0].path.as_str(),
            st.drift[0].expected.as_deref(),
            st.drift[0].observed.as_deref()
        ),
        ("os.version", Some("12"), Some("13"))
    );
    assert_eq!(condition(&s, "InSync").unwrap().reason, "Drifted");
    // A finding about the host, not a failure to reconcile: Ready stays True (kstatus Current).
    assert_eq!(condition(&s, "Ready").unwrap().status, "True");
    assert!(
        condition(&s, "Ready")
            .unwrap()
            .message
            .contains("InSync=False (Drifted)")
    );
    let record_name = st.change_record.unwrap();
    assert!(record_name.starts_with("db01-drift-"), "{record_name}");
    let r = wait(&records, &record_name, "record Open", 60, &ctl, |r| {
        r.status.as_ref().and_then(|s| s.phase) == Some(ChangePhase::Open)
    })
    .await;
    assert_eq!(format!("{:?}", r.spec.classification), "Major");
    assert_eq!(format!("{:?}", r.spec.category), "OS");
    assert_eq!(r.spec.server.as_deref(), Some("db01"));
    assert_eq!(r.spec.paths.len(), 1);
    assert!(r.spec.recorded_at.is_some() && r.spec.deadline.is_some());
    assert!(r.spec.deadline.as_ref().unwrap().0 > r.spec.recorded_at.as_ref().unwrap().0);

    // A restarted controller does not open a second record for the same drift.
    drop(ctl);
    ctl = controller(cp, &ns, "controller", &["--agent-grace", "2s"]).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(drift_records(&records, "db01").await.len(), 1);

    // The host is reverted: the record resolves itself as HostReverted.
    agent_writes(
        &servers,
        "db01",
        facts("db01", "12", "15.10-0+deb12u1"),
        json!([]),
    )
    .await;
    let r = wait(&records, &record_name, "Resolved", 60, &ctl, |r| {
        r.status.as_ref().and_then(|s| s.phase) == Some(ChangePhase::Resolved)
    })
    .await;
    assert_eq!(
        r.status.as_ref().unwrap().resolution,
        Some(ChangeResolution::HostReverted)
    );
    assert!(r.status.as_ref().unwrap().resolved_at.is_some());
    wait(&servers, "db01", "InSync again", 60, &ctl, |s| {
        condition(s, "InSync").is_some_and(|c| c.status == "True")
    })
    .await;

    // The same drift again reopens the same record; then the ledger is updated to match (a
    // merged pull request): LedgerUpdated.
    agent_writes(
        &servers,
        "db01",
        facts("db01", "13", "15.10-0+deb12u1"),
        json!([]),
    )
    .await;
    wait(&records, &record_name, "reopened", 60, &ctl, |r| {
        r.status.as_ref().and_then(|s| s.phase) == Some(ChangePhase::Open)
    })
    .await;
    cp.kubectl_ok(
        &[
            "patch",
            "server",
            "db01",
            "-n",
            &ns,
            "--type=merge",
            "-p",
            r#"{"spec":{"os":{"version":"13"}}}"#,
        ],
        None,
    )
    .unwrap();
    let r = wait(&records, &record_name, "LedgerUpdated", 60, &ctl, |r| {
        r.status.as_ref().and_then(|s| s.resolution) == Some(ChangeResolution::LedgerUpdated)
    })
    .await;
    assert_eq!(r.status.unwrap().phase, Some(ChangePhase::Resolved));
    assert_eq!(drift_records(&records, "db01").await.len(), 1);

    // A planned, approved change in its window absorbs the drift it announced.
    let now = Timestamp::now();
    let planned = json!({
        "apiVersion": "unyo.dev/v1alpha1",
        "kind": "ChangeRecord",
        "metadata": {"name": "pg-upgrade", "namespace": ns},
        "spec": {
            "origin": "Planned",
            "title": "PostgreSQL minor upgrade",
            "category": "Software",
            "classification": "Minor",
            "server": "db01",
            "paths": [{"path": "software[name=postgresql-15]"}],
            "requester": "tanaka",
            "recordedAt": now.to_string(),
            "plan": {
                "summary": "apt upgrade postgresql-15",
                "outage": true,
                "window": {
                    "start": (now - SignedDuration::from_hours(1)).to_string(),
                    "end": (now + SignedDuration::from_hours(2)).to_string(),
                },
            },
            "reviews": [{"reviewer": "suzuki", "done": true, "result": "Approved"}],
        },
    });
    cp.kubectl_ok(
        &["apply", "--server-side", "-f", "-"],
        Some(&planned.to_string()),
    )
    .unwrap();
    let p = wait(
        &records,
        "pg-upgrade",
        "Approved with a lead-time violation",
        60,
        &ctl,
        |r| {
            r.status.as_ref().is_some_and(|s| {
                s.phase == Some(ChangePhase::Approved)
                    && s.conditions
                        .iter()
                        .any(|c| c.type_ == "LeadTimeViolated" && c.status == "True")
            })
        },
    )
    .await;
    let lt = p
        .status
        .unwrap()
        .conditions
        .into_iter()
        .find(|c| c.type_ == "LeadTimeViolated")
        .unwrap();
    assert_eq!(lt.reason, "NoticeUnder30Days");
    agent_writes(
        &servers,
        "db01",
        facts("db01", "13", "15.11-0+deb12u1"),
        json!([]),
    )
    .await;
    let p = wait(&records, "pg-upgrade", "Implemented", 60, &ctl, |r| {
        r.status.as_ref().and_then(|s| s.phase) == Some(ChangePhase::Implemented)
    })
    .await;
    assert_eq!(
        p.status.unwrap().absorbed,
        ["db01:software[name=postgresql-15].version"]
    );
    let s = wait(
        &servers,
        "db01",
        "drift expected by the plan",
        60,
        &ctl,
        |s| {
            condition(s, "InSync")
                .is_some_and(|c| c.message.contains("expected by a planned change"))
        },
    )
    .await;
    assert_eq!(s.status.unwrap().drift_count, Some(1));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        drift_records(&records, "db01").await.len(),
        1,
        "absorbed drift opened a record"
    );

    // A closed record gets its closing time.
    cp.kubectl_ok(
        &[
            "patch",
            "changerecord",
            "pg-upgrade",
            "-n",
            &ns,
            "--type=merge",
            "-p",
            r#"{"spec":{"closed":true}}"#,
        ],
        None,
    )
    .unwrap();
    let p = wait(&records, "pg-upgrade", "Closed", 60, &ctl, |r| {
        r.status.as_ref().and_then(|s| s.phase) == Some(ChangePhase::Closed)
    })
    .await;
    assert!(p.status.unwrap().closed_at.is_some());

    // The agent stops renewing: AgentConnected turns False when the Lease expires, on time.
    renew_lease(&leases, "db01", 3).await;
    let renewed = Timestamp::now();
    let s = wait(&servers, "db01", "AgentConnected=False", 30, &ctl, |s| {
        condition(s, "AgentConnected").is_some_and(|c| c.status == "False")
    })
    .await;
    let late = Timestamp::now().duration_since(renewed);
    assert!(
        late < SignedDuration::from_secs(10),
        "noticed {late:?} after the renewal"
    );
    assert_eq!(
        condition(&s, "AgentConnected").unwrap().reason,
        "LeaseExpired"
    );

    // Disconnected beyond the grace period: an Incident for the agent's heartbeat.
    let incidents: Api<Incident> = Api::namespaced(client.clone(), &ns);
    let mut agent_incidents = Vec::new();
    for _ in 0..80 {
        agent_incidents = incidents
            .list(
                &ListParams::default()
                    .labels("unyo.dev/server=db01,unyo.dev/check=agent.heartbeat"),
            )
            .await
            .unwrap()
            .items;
        if !agent_incidents.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(agent_incidents.len(), 1, "{}", ctl.log());
    assert_eq!(
        format!("{:?}", agent_incidents[0].spec.severity),
        "Critical"
    );
    assert!(agent_incidents[0].spec.title.contains("agent/heartbeat"));
    // The agent comes back: the incident recovers.
    renew_lease(&leases, "db01", 600).await;
    let name = agent_incidents[0].name_any();
    wait(
        &incidents,
        &name,
        "agent incident recovered",
        60,
        &ctl,
        |i| i.status.as_ref().and_then(|s| s.phase) == Some(IncidentPhase::Recovered),
    )
    .await;

    // Events for the records.
    let events = cp
        .kubectl_ok(
            &[
                "get",
                "events.events.k8s.io",
                "-n",
                &ns,
                "-o",
                "jsonpath={.items[*].reason}",
            ],
            None,
        )
        .unwrap();
    for reason in [
        "DriftRecorded",
        "Resolved",
        "Implemented",
        "AgentDisconnected",
    ] {
        assert!(events.contains(reason), "no {reason} event: {events}");
    }
    let table = cp.kubectl_ok(&["get", "servers", "-n", &ns], None).unwrap();
    assert!(table.lines().nth(1).unwrap().contains("False"), "{table}");
}

/// A webhook receiver: answers 500 to the first POST, then 200; keeps the bodies.
async fn webhook() -> (
    u16,
    Arc<Mutex<Vec<serde_json::Value>>>,
    tokio::task::JoinHandle<()>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let got = Arc::new(Mutex::new(Vec::new()));
    let seen = got.clone();
    let task = tokio::spawn(async move {
        let mut n = 0;
        while let Ok((mut s, _)) = listener.accept().await {
            n += 1;
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            // Read the head and a body of Content-Length bytes.
            let body = loop {
                let k = s.read(&mut chunk).await.unwrap_or(0);
                if k == 0 {
                    break None;
                }
                buf.extend_from_slice(&chunk[..k]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some((head, rest)) = text.split_once("\r\n\r\n") {
                    let len = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if rest.len() >= len {
                        break Some(rest[..len].to_string());
                    }
                }
            };
            let status = if n == 1 {
                "500 Internal Server Error"
            } else {
                "200 OK"
            };
            if n > 1
                && let Some(b) = body
                && let Ok(v) = serde_json::from_str(&b)
            {
                seen.lock().unwrap().push(v);
            }
            let _ = s
                .write_all(
                    format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                        .as_bytes(),
                )
                .await;
        }
    });
    (port, got, task)
}

/// A server that answers every request with a redirect to a second listener, and how many
/// connections that second listener accepted.
async fn redirector() -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
    let target = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target_port = target.local_addr().unwrap().port();
    let heard = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = heard.clone();
    tokio::spawn(async move {
        while let Ok((_s, _)) = target.accept().await {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut chunk = [0u8; 4096];
            let _ = s.read(&mut chunk).await;
            let answer = format!(
                "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://127.0.0.1:{target_port}/stolen\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            let _ = s.write_all(answer.as_bytes()).await;
        }
    });
    (port, heard)
}

fn free_port() -> u16 {
    unyo_tests::free_port().unwrap()
}

#[tokio::test]
async fn failed_checks_open_incidents_and_notify() {
    let cp = control_plane().unwrap();
    let ns = cp.namespace("incidents").await.unwrap();
    let client = cp.client().await.unwrap();
    let servers: Api<Server> = Api::namespaced(client.clone(), &ns);
    let incidents: Api<Incident> = Api::namespaced(client.clone(), &ns);
    let policies: Api<MonitoringPolicy> = Api::namespaced(client.clone(), &ns);

    // A real SMTP server (Debian's python3-aiosmtpd) that requires STARTTLS and then AUTH,
    // writing to a Maildir; its certificate is issued by a CA made here with openssl.
    let work = std::env::temp_dir().join(format!("unyo-incidents-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let maildir = work.join("mail");
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(maildir.join(sub)).unwrap();
    }
    let (ca, cert, key) = unyo_tests::tls_files(&work).unwrap();
    let smtp_port = free_port();
    // Debian's interpreter, where python3-aiosmtpd installs (not a python3 earlier on PATH).
    let mut smtp_cmd = Command::new("/usr/bin/python3");
    smtp_cmd
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/smtp_starttls_auth.py"
        ))
        .arg(smtp_port.to_string())
        .args([&cert, &key, &maildir])
        .args(["unyo-mailer", "s3cret-pass"]);
    let _smtp = Running::spawn(smtp_cmd, "smtp relay").unwrap();
    for _ in 0..50 {
        if std::net::TcpStream::connect(("127.0.0.1", smtp_port)).is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (hook_port, hooks, _hook_task) = webhook().await;

    for name in ["db01", "db02"] {
        cp.kubectl_ok(
            &["apply", "--server-side", "-f", "-"],
            Some(&server_yaml(&ns, name)),
        )
        .unwrap();
    }
    // The webhook URL and the SMTP credentials live in Secrets only the controller reads.
    // A third route's URL answers with a redirect to another port, which must hear nothing.
    let (redirect_port, redirected) = redirector().await;
    cp.kubectl_ok(
        &[
            "create",
            "secret",
            "generic",
            "hooks",
            "-n",
            &ns,
            &format!("--from-literal=ops=http://127.0.0.1:{hook_port}/hooks/unyo"),
            &format!("--from-literal=moved=http://127.0.0.1:{redirect_port}/moved"),
        ],
        None,
    )
    .unwrap();
    cp.kubectl_ok(
        &[
            "create",
            "secret",
            "generic",
            "mailer",
            "-n",
            &ns,
            "--from-literal=username=unyo-mailer",
            "--from-literal=password=s3cret-pass",
            &format!("--from-file=ca.crt={}", ca.display()),
        ],
        None,
    )
    .unwrap();
    // The controller may read Secrets only where this binding lets it.
    cp.bind_controller_secrets(&ns).unwrap();
    let policy = format!(
        r#"apiVersion: unyo.dev/v1alpha1
kind: MonitoringPolicy
metadata: {{name: database, namespace: {ns}}}
spec:
  selector: {{matchLabels: {{unyo.dev/role: db}}}}
  checks:
    - {{name: postgresql, kind: Tcp, host: 127.0.0.1, port: 5432}}
    - {{name: data-disk, kind: Disk, path: /var/lib/postgresql, warning: 75, critical: 90}}
  incidentSeverities: [Critical]
  reopenWindow: 1h
  notifications:
    - name: ops-webhook
      severities: [Critical]
      onRecovery: true
      webhook: {{urlSecret: {{name: hooks, key: ops}}, insecureHttp: true}}
    - name: admins-mail
      email: {{to: ["admins@example.lg.jp"], from: "unyo@example.lg.jp", smtp: "127.0.0.1:{smtp_port}", credentialsSecret: mailer, subjectPrefix: "[unyo test]"}}
    - name: moved-webhook
      severities: [Critical]
      onRecovery: false
      webhook: {{urlSecret: {{name: hooks, key: moved}}, insecureHttp: true}}
"#
    );
    cp.kubectl_ok(&["apply", "--server-side", "-f", "-"], Some(&policy))
        .unwrap();
    let metrics_port = free_port();
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    let ctl = controller(cp, &ns, "controller", &["--metrics-addr", &metrics_addr]).await;

    let t0 = Timestamp::from_second(Timestamp::now().as_second() - 30).unwrap();
    let checks = |state: &str, since: Timestamp| {
        json!([
            {"policy": "database", "check": "postgresql", "state": state, "since": since.to_string(), "message": format!("127.0.0.1:5432: {state}")},
            {"policy": "database", "check": "data-disk", "state": "Warning", "since": t0.to_string(), "value": 80.0, "message": "80% used"},
        ])
    };
    agent_writes(
        &servers,
        "db01",
        facts("db01", "12", "15.10-0+deb12u1"),
        checks("Critical", t0),
    )
    .await;

    // One Incident for the Critical check (the Warning one is not an incident severity).
    let list = || async {
        incidents
            .list(&ListParams::default().labels("unyo.dev/server=db01"))
            .await
            .unwrap()
            .items
    };
    let mut opened = Vec::new();
    for _ in 0..120 {
        opened = list().await;
        if !opened.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(opened.len(), 1, "{opened:#?}\n{}", ctl.log());
    let name = opened[0].name_any();
    let inc = &opened[0];
    assert_eq!(inc.spec.servers, ["db01"]);
    assert_eq!(format!("{:?}", inc.spec.severity), "Critical");
    assert_eq!(inc.spec.occurred_at.as_ref().unwrap().0, t0);
    assert!(inc.spec.fingerprint.is_some());

    // Both routes deliver: the webhook after one failure (retried with backoff), the e-mail
    // over STARTTLS with authentication. The redirected one is not delivered, and the port it
    // was redirected to heard nothing.
    let inc = wait(
        &incidents,
        &name,
        "both notifications delivered",
        90,
        &ctl,
        |i| {
            i.status.as_ref().is_some_and(|s| {
                s.notifications.len() == 3
                    && s.notifications
                        .iter()
                        .filter(|d| d.state == DeliveryState::Delivered)
                        .count()
                        == 2
            })
        },
    )
    .await;
    let st = inc.status.clone().unwrap();
    let moved = st
        .notifications
        .iter()
        .find(|d| d.route.starts_with("moved-webhook"))
        .unwrap();
    assert_ne!(moved.state, DeliveryState::Delivered, "{moved:?}");
    let said = moved.message.clone().unwrap_or_default();
    assert!(said.contains("redirects are not followed"), "{said}");
    assert!(!said.contains("127.0.0.1"), "the secret URL leaked: {said}");
    assert_eq!(redirected.load(std::sync::atomic::Ordering::SeqCst), 0);
    let inc_yaml = cp
        .kubectl_ok(&["get", "incident", &name, "-n", &ns, "-o", "yaml"], None)
        .unwrap();
    assert!(!inc_yaml.contains("hooks/unyo") && !inc_yaml.contains("s3cret"));
    assert_eq!(st.phase, Some(IncidentPhase::Firing));
    let hook = st
        .notifications
        .iter()
        .find(|d| d.route.starts_with("ops-webhook"))
        .unwrap();
    assert_eq!(hook.attempts, 2, "{hook:?}");
    let body = hooks.lock().unwrap()[0].clone();
    assert_eq!(body["incident"], name.as_str());
    assert_eq!(body["firing"], true);
    assert_eq!(body["check"], "postgresql");
    let mails: Vec<String> = std::fs::read_dir(maildir.join("new"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert_eq!(mails.len(), 1);
    assert!(
        mails[0].contains("Subject: [unyo test] [Critical]"),
        "{}",
        mails[0]
    );
    assert!(mails[0].contains("To: admins@example.lg.jp"));

    // People take the incident; the controller never overwrites their fields.
    cp.kubectl_ok(
        &["patch", "incident", &name, "-n", &ns, "--type=merge", "-p", r#"{"spec":{"owner":"tanaka","state":"InProgress","cause":"port closed by a firewall change"}}"#],
        None,
    )
    .unwrap();

    // Recovery: recoveredAt and downtime; the webhook hears of it (onRecovery), e-mail does not.
    let t1 = Timestamp::from_second(Timestamp::now().as_second()).unwrap();
    agent_writes(
        &servers,
        "db01",
        facts("db01", "12", "15.10-0+deb12u1"),
        checks("OK", t1),
    )
    .await;
    let inc = wait(&incidents, &name, "Recovered", 60, &ctl, |i| {
        i.status.as_ref().and_then(|s| s.phase) == Some(IncidentPhase::Recovered)
    })
    .await;
    let st = inc.status.unwrap();
    assert_eq!(st.recovered_at.unwrap().0, t1);
    assert_eq!(st.downtime_seconds, Some(t1.duration_since(t0).as_secs()));
    assert_eq!(inc.spec.owner.as_deref(), Some("tanaka"));
    assert_eq!(format!("{:?}", inc.spec.state), "InProgress");
    assert_eq!(
        inc.spec.cause.as_deref(),
        Some("port closed by a firewall change")
    );
    wait(&incidents, &name, "recovery notified", 60, &ctl, |i| {
        i.status.as_ref().is_some_and(|s| {
            s.notifications.iter().any(|d| {
                d.route == "ops-webhook/recovered-1" && d.state == DeliveryState::Delivered
            })
        })
    })
    .await;
    assert_eq!(hooks.lock().unwrap().last().unwrap()["firing"], false);

    // It fails again within the reopen window: the same Incident reopens.
    let t2 = Timestamp::from_second(Timestamp::now().as_second()).unwrap();
    agent_writes(
        &servers,
        "db01",
        facts("db01", "12", "15.10-0+deb12u1"),
        checks("Critical", t2),
    )
    .await;
    let inc = wait(&incidents, &name, "reopened", 60, &ctl, |i| {
        i.status
            .as_ref()
            .is_some_and(|s| s.phase == Some(IncidentPhase::Firing) && s.occurrences == Some(2))
    })
    .await;
    assert_eq!(inc.status.unwrap().last_occurred_at.unwrap().0, t2);
    assert_eq!(list().await.len(), 1);
    assert_eq!(inc.spec.owner.as_deref(), Some("tanaka"));

    // The same check failing on db02 is a different problem whose Incident lists db01's as similar.
    agent_writes(
        &servers,
        "db02",
        facts("db02", "12", "15.10-0+deb12u1"),
        checks("Critical", t2),
    )
    .await;
    let mut other = Vec::new();
    for _ in 0..120 {
        other = incidents
            .list(&ListParams::default().labels("unyo.dev/server=db02"))
            .await
            .unwrap()
            .items;
        if other
            .first()
            .and_then(|i| i.status.as_ref())
            .is_some_and(|s| !s.similar.is_empty())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(other.len(), 1);
    assert_eq!(
        other[0].status.as_ref().unwrap().similar,
        std::slice::from_ref(&name)
    );

    // Events and metrics of the open incidents.
    let events = cp
        .kubectl_ok(
            &[
                "get",
                "events.events.k8s.io",
                "-n",
                &ns,
                "-o",
                "jsonpath={.items[*].reason}",
            ],
            None,
        )
        .unwrap();
    for reason in ["IncidentOpened", "IncidentRecovered", "IncidentReopened"] {
        assert!(events.contains(reason), "no {reason} event: {events}");
    }
    let m = http_get(metrics_port, "/metrics").await.unwrap();
    assert!(
        m.contains(r#"unyo_controller_open_incidents{severity="Critical"} 2"#),
        "{m}"
    );
    assert!(
        m.contains(r#"unyo_controller_servers{condition="AgentConnected",status="False"} 2"#),
        "{m}"
    );
    assert!(
        m.contains("unyo_controller_unresolved_drift_paths 0"),
        "{m}"
    );
    assert!(
        m.contains(r#"unyo_controller_reconcile_duration_seconds_count{kind="Incident"}"#),
        "{m}"
    );

    // The policy's status: both servers matched, two Critical and two Warning checks firing.
    let p = wait(&policies, "database", "status", 60, &ctl, |p| {
        p.status
            .as_ref()
            .and_then(|s| s.firing.as_ref())
            .is_some_and(|f| f.critical == 2)
    })
    .await;
    let st = p.status.unwrap();
    assert_eq!(st.matched_servers, Some(2));
    assert_eq!(st.servers, ["db01", "db02"]);
    assert_eq!(st.firing.unwrap().warning, 2);
    assert_eq!(st.conditions[0].status, "True");

    // A policy whose selector cannot be evaluated says so.
    cp.kubectl_ok(&["apply", "--server-side", "-f", "-"], Some(&format!(
        r#"{{"apiVersion":"unyo.dev/v1alpha1","kind":"MonitoringPolicy","metadata":{{"name":"broken","namespace":"{ns}"}},"spec":{{"selector":{{"matchExpressions":[{{"key":"unyo.dev/role","operator":"Near","values":["db"]}}]}},"checks":[{{"name":"x","kind":"Tcp","host":"h","port":1}}]}}}}"#
    ))).unwrap();
    let b = wait(&policies, "broken", "Ready=False", 60, &ctl, |p| {
        p.status
            .as_ref()
            .is_some_and(|s| s.conditions.iter().any(|c| c.status == "False"))
    })
    .await;
    let c = &b.status.unwrap().conditions[0];
    assert_eq!(c.reason, "InvalidSelector");
    assert!(c.message.starts_with("spec.selector: "), "{}", c.message);
    let _ = std::fs::remove_dir_all(&work);
}

async fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).await.ok()?;
    Some(out)
}

#[tokio::test]
async fn two_replicas_one_leader_and_takeover() {
    let cp = control_plane().unwrap();
    let ns = cp.namespace("leader").await.unwrap();
    let client = cp.client().await.unwrap();
    let calendars: Api<OperationCalendar> = Api::namespaced(client.clone(), &ns);
    // The election Lease is in the controller's own namespace, the only one its RBAC allows.
    let leases: Api<Lease> = Api::namespaced(client.clone(), "unyo-system");
    let (pa, pb) = (free_port(), free_port());
    let a = controller(
        cp,
        &ns,
        "replica-a",
        &[
            "--leader-elect",
            "--metrics-addr",
            &format!("127.0.0.1:{pa}"),
        ],
    )
    .await;
    let b = controller(
        cp,
        &ns,
        "replica-b",
        &[
            "--leader-elect",
            "--metrics-addr",
            &format!("127.0.0.1:{pb}"),
        ],
    )
    .await;

    // One of them leads.
    let mut leader = None;
    for _ in 0..60 {
        if let Some(l) = leases.get_opt("unyo-controller").await.unwrap()
            && let Some(h) = l.spec.and_then(|s| s.holder_identity)
        {
            leader = Some(h);
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let holder = leader.expect("nobody took the lease");
    let ready_a = http_get(pa, "/readyz").await.unwrap_or_default();
    let ready_b = http_get(pb, "/readyz").await.unwrap_or_default();
    let (mut leading, standby, standby_port) = if ready_a.contains("leading") {
        assert!(ready_b.contains("standby"), "{ready_b}");
        (a, b, pb)
    } else {
        assert!(
            ready_b.contains("leading") && ready_a.contains("standby"),
            "{ready_a}\n{ready_b}"
        );
        (b, a, pa)
    };
    assert!(leading.log().contains(&holder));

    // The leader reconciles (a calendar gets its status) and counts it in its metrics.
    let cal = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../manifests/samples/calendar.yaml"
    ))
    .unwrap()
    .replace("namespace: mie", &format!("namespace: {ns}"));
    cp.kubectl_ok(&["apply", "--server-side", "-f", "-"], Some(&cal))
        .unwrap();
    wait(
        &calendars,
        "mie-operations",
        "status from the leader",
        60,
        &leading,
        |c| c.status.as_ref().is_some_and(|s| s.state.is_some()),
    )
    .await;
    let leader_port = if standby_port == pa { pb } else { pa };
    let m = http_get(leader_port, "/metrics").await.unwrap();
    assert!(
        m.contains(r#"unyo_controller_reconciles_total{kind="OperationCalendar"}"#),
        "{m}"
    );
    assert!(
        !standby.log().contains("status updated"),
        "the standby reconciled:\n{}",
        standby.log()
    );

    // The leader dies; the standby takes over within 30 s and reconciles a new object.
    assert!(leading.alive());
    let killed_at = Timestamp::now();
    drop(leading);
    let mut took_over = None;
    for _ in 0..70 {
        if http_get(standby_port, "/readyz")
            .await
            .unwrap_or_default()
            .contains("leading")
        {
            took_over = Some(Timestamp::now());
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let took = took_over
        .expect("the standby did not take over")
        .duration_since(killed_at);
    eprintln!("standby took over {took:#} after the leader died");
    assert!(took < SignedDuration::from_secs(30), "took {took:?}");
    let cal2 = cal.replace("name: mie-operations", "name: second");
    cp.kubectl_ok(&["apply", "--server-side", "-f", "-"], Some(&cal2))
        .unwrap();
    wait(
        &calendars,
        "second",
        "status from the new leader",
        60,
        &standby,
        |c| c.status.as_ref().is_some_and(|s| s.state.is_some()),
    )
    .await;
}

fn antivirus_status(
    signature_age_h: i64,
    scanned_h_ago: i64,
    detection: Option<&str>,
) -> serde_json::Value {
    let now = Timestamp::now();
    let started =
        Timestamp::from_second((now - SignedDuration::from_hours(scanned_h_ago)).as_second())
            .unwrap();
    let detections: Vec<serde_json::Value> = detection
        .map(|p| {
            vec![json!({"host": "h", "path": p, "signature": "Unyo.Test.UNOFFICIAL",
                        "actions": ["Quarantine: /var/lib/unyo/quarantine/x"], "at": started.to_string()})]
        })
        .unwrap_or_default();
    json!({
        "antivirus": {
            "engineVersion": "ClamAV 1.4.6",
            "signatureVersion": "unyo.hdb",
            "signatureTime": (now - SignedDuration::from_hours(signature_age_h)).to_string(),
            "residentRunning": true,
            "lastScan": {
                "schedule": "daily", "startedAt": started.to_string(), "finishedAt": started.to_string(),
                "filesScanned": 100, "detections": detections.len(), "result": "Succeeded",
            },
            "detections": detections,
        }
    })
}

async fn agent_writes_operations(api: &Api<Server>, name: &str, operations: serde_json::Value) {
    let patch = json!({
        "apiVersion": "unyo.dev/v1alpha1",
        "kind": "Server",
        "status": {"observed": facts(name, "12", "15.10-0+deb12u1"), "operations": operations},
    });
    api.patch_status(
        name,
        &PatchParams::apply("unyo-agent").force(),
        &Patch::Apply(&patch),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn antivirus_health_stale_and_missed_hosts_and_detection_incidents() {
    let cp = control_plane().unwrap();
    let ns = cp.namespace("antivirus").await.unwrap();
    let client = cp.client().await.unwrap();
    let servers: Api<Server> = Api::namespaced(client.clone(), &ns);
    let schedules: Api<unyo_crds::VirusScanSchedule> = Api::namespaced(client.clone(), &ns);
    let incidents: Api<Incident> = Api::namespaced(client.clone(), &ns);
    let calendar = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../manifests/samples/calendar.yaml"
    ))
    .unwrap()
    .replace("namespace: mie", &format!("namespace: {ns}"));
    cp.kubectl_ok(&["apply", "--server-side", "-f", "-"], Some(&calendar))
        .unwrap();
    for name in ["db01", "db02", "web01"] {
        let yaml = server_yaml(&ns, name);
        let yaml = if name == "web01" {
            yaml.replace("unyo.dev/role: db", "unyo.dev/role: web")
        } else {
            yaml
        };
        cp.kubectl_ok(&["apply", "--server-side", "-f", "-"], Some(&yaml))
            .unwrap();
    }
    // Scans every day at 00:00 Tokyo time; signatures at most 24 h old.
    let vss = format!(
        r#"apiVersion: unyo.dev/v1alpha1
kind: VirusScanSchedule
metadata: {{name: daily, namespace: {ns}}}
spec:
  selector: {{matchLabels: {{unyo.dev/role: db}}}}
  schedule: {{calendar: mie-operations, at: "00:00"}}
  paths: [/srv]
  signatures: {{maxAge: 24h}}
  quarantineDir: /var/lib/unyo/quarantine
"#
    );
    cp.kubectl_ok(&["apply", "--server-side", "-f", "-"], Some(&vss))
        .unwrap();
    // db01: scanned just now, fresh signatures, one detection. db02: signatures three days old,
    // last scan two days ago (so it missed the scans since).
    agent_writes_operations(
        &servers,
        "db01",
        antivirus_status(1, 0, Some("/srv/www/upload.php")),
    )
    .await;
    agent_writes_operations(&servers, "db02", antivirus_status(72, 48, None)).await;
    let ctl = controller(cp, &ns, "controller", &[]).await;

    let cond = |s: &Server| {
        s.status.as_ref().and_then(|st| {
            st.conditions
                .iter()
                .find(|c| c.type_ == "AntivirusHealthy")
                .cloned()
        })
    };
    let s = wait(&servers, "db01", "AntivirusHealthy=False", 60, &ctl, |s| {
        cond(s).is_some()
    })
    .await;
    let c = cond(&s).unwrap();
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("False", "VirusDetected"),
        "{c:?}"
    );
    assert!(c.message.contains("/srv/www/upload.php"));
    let s = wait(&servers, "db02", "AntivirusHealthy=False", 60, &ctl, |s| {
        cond(s).is_some()
    })
    .await;
    assert_eq!(cond(&s).unwrap().reason, "StaleSignatures");
    let web = servers.get("web01").await.unwrap();
    assert!(cond(&web).is_none(), "no schedule selects web01");

    // The schedule names the stale and the missed host.
    let v = wait(&schedules, "daily", "status", 60, &ctl, |v| {
        v.status.as_ref().is_some_and(|s| s.stale_count.is_some())
    })
    .await;
    let st = v.status.unwrap();
    assert_eq!(st.stale_hosts, ["db02"]);
    assert_eq!(st.missed_hosts, ["db02"]);
    assert_eq!(st.detection_count, Some(1));
    assert_eq!(st.detections[0].path, "/srv/www/upload.php");
    assert_eq!(st.conditions[0].status, "True");

    // An Incident for the detection.
    let mut found = Vec::new();
    for _ in 0..120 {
        found = incidents
            .list(&ListParams::default().labels("unyo.dev/server=db01"))
            .await
            .unwrap()
            .items;
        if !found.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(found.len(), 1, "{}", ctl.log());
    let name = found[0].name_any();
    assert!(
        found[0]
            .spec
            .description
            .as_deref()
            .unwrap()
            .contains("Unyo.Test.UNOFFICIAL in /srv/www/upload.php")
    );
    assert!(found[0].labels()["unyo.dev/check"].starts_with("daily.virus-"));

    // A clean scan later: healthy, and the detection's Incident recovers.
    tokio::time::sleep(Duration::from_secs(1)).await;
    agent_writes_operations(&servers, "db01", antivirus_status(1, 0, None)).await;
    let s = wait(&servers, "db01", "AntivirusHealthy=True", 60, &ctl, |s| {
        cond(s).is_some_and(|c| c.status == "True")
    })
    .await;
    assert_eq!(cond(&s).unwrap().reason, "Healthy");
    wait(&incidents, &name, "recovered", 60, &ctl, |i| {
        i.status.as_ref().and_then(|s| s.phase) == Some(IncidentPhase::Recovered)
    })
    .await;
}

fn backup_state(result: &str, kind: &str) -> serde_json::Value {
    let now = Timestamp::from_second(Timestamp::now().as_second()).unwrap();
    let run = json!({"rule": "on-request", "type": kind, "result": result, "startedAt": now.to_string(),
                     "finishedAt": now.to_string(), "copied": true, "message": format!("{result} run")});
    let key = if kind == "Full" {
        "lastFull"
    } else {
        "lastDifferential"
    };
    json!({"backups": [{"plan": "db", key: run, "generations": 3}]})
}

#[tokio::test]
async fn backup_health_plan_status_and_failed_run_incidents() {
    let cp = control_plane().unwrap();
    let ns = cp.namespace("backups").await.unwrap();
    let client = cp.client().await.unwrap();
    let servers: Api<Server> = Api::namespaced(client.clone(), &ns);
    let plans: Api<unyo_crds::BackupPlan> = Api::namespaced(client.clone(), &ns);
    let incidents: Api<Incident> = Api::namespaced(client.clone(), &ns);
    let calendar = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../manifests/samples/calendar.yaml"
    ))
    .unwrap()
    .replace("namespace: mie", &format!("namespace: {ns}"));
    cp.kubectl_ok(&["apply", "--server-side", "-f", "-"], Some(&calendar))
        .unwrap();
    for name in ["db01", "db02"] {
        cp.kubectl_ok(
            &["apply", "--server-side", "-f", "-"],
            Some(&server_yaml(&ns, name)),
        )
        .unwrap();
    }
    let plan = format!(
        r#"apiVersion: unyo.dev/v1alpha1
kind: BackupPlan
metadata: {{name: db, namespace: {ns}}}
spec:
  selector: {{matchLabels: {{unyo.dev/role: db}}}}
  sources: [{{name: pgdata, paths: [/var/lib/postgresql]}}]
  repositories:
    primary: {{location: /backup/primary, passwordFile: /etc/unyo/backup.pass}}
    secondary: {{location: /backup/secondary, passwordFile: /etc/unyo/backup.pass}}
  rules:
    - {{name: weekly-full, type: Full, schedule: {{calendar: mie-operations, at: "19:30", days: FirstBusinessDayOfWeek}}}}
    - {{name: daily-diff, type: Differential, schedule: {{calendar: mie-operations, at: "19:30", days: BusinessDays}}}}
  media: {{informationClass: ClassI}}
"#
    );
    cp.kubectl_ok(&["apply", "--server-side", "-f", "-"], Some(&plan))
        .unwrap();
    agent_writes_operations(&servers, "db01", backup_state("Succeeded", "Full")).await;
    agent_writes_operations(&servers, "db02", backup_state("Failed", "Differential")).await;
    let ctl = controller(cp, &ns, "controller", &[]).await;

    let cond = |s: &Server| {
        s.status.as_ref().and_then(|st| {
            st.conditions
                .iter()
                .find(|c| c.type_ == "BackupHealthy")
                .cloned()
        })
    };
    let s = wait(&servers, "db01", "BackupHealthy", 60, &ctl, |s| {
        cond(s).is_some()
    })
    .await;
    let c = cond(&s).unwrap();
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("True", "Healthy"),
        "{c:?}"
    );
    let s = wait(&servers, "db02", "BackupHealthy", 60, &ctl, |s| {
        cond(s).is_some()
    })
    .await;
    let c = cond(&s).unwrap();
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("False", "BackupFailed"),
        "{c:?}"
    );

    let p = wait(&plans, "db", "status", 60, &ctl, |p| {
        p.status.as_ref().is_some_and(|s| s.servers.len() == 2)
    })
    .await;
    let st = p.status.unwrap();
    assert_eq!(st.healthy_servers, Some(1));
    let db01 = st.servers.iter().find(|s| s.server == "db01").unwrap();
    assert_eq!(db01.generations, Some(3));
    assert!(db01.last_full.is_some() && db01.next_run.is_some());
    assert!(db01.next_run.as_ref().unwrap().0 > Timestamp::now());
    assert_eq!(st.conditions[0].status, "True");

    // The failed run opened an Incident; a successful run recovers it.
    let mut found = Vec::new();
    for _ in 0..120 {
        found = incidents
            .list(&ListParams::default().labels("unyo.dev/server=db02"))
            .await
            .unwrap()
            .items;
        if !found.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(found.len(), 1, "{}", ctl.log());
    assert_eq!(found[0].labels()["unyo.dev/check"], "db.backup");
    let name = found[0].name_any();
    tokio::time::sleep(Duration::from_secs(1)).await;
    agent_writes_operations(&servers, "db02", backup_state("Succeeded", "Full")).await;
    wait(&incidents, &name, "recovered", 60, &ctl, |i| {
        i.status.as_ref().and_then(|s| s.phase) == Some(IncidentPhase::Recovered)
    })
    .await;
    wait(&servers, "db02", "healthy", 60, &ctl, |s| {
        cond(s).is_some_and(|c| c.status == "True")
    })
    .await;
}

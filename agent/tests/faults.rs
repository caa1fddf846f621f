//! Faults the agent must ride out, against the real control plane: an API server that refuses
//! every Event while a check flaps — the status still arrives, the refused Events are dropped
//! and counted, not the delivery.

// A test crate: a panic is how a failure is reported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::time::Duration;

use unyo_crds::server::CheckState;
use unyo_tests::control_plane;

mod common;
use common::{free_port, prepare, wait_server};

async fn metrics(port: u16) -> String {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

#[tokio::test]
async fn refused_events_are_dropped_and_counted_while_status_arrives() {
    let cp = control_plane().unwrap();
    let h = prepare(cp, "quota", "logs:\n  files: [/var/log]\n").await;
    let ns = h.ns.as_str();
    // The API server refuses every Event of this namespace. (A ResourceQuota on
    // `count/events` would not do: the API server's quota ignores Events.) A
    // ValidatingAdmissionPolicy denies them, as a quota or an admission webhook would.
    let policy = format!("unyo-test-no-events-{ns}");
    cp.kubectl_ok(
        &["apply", "-f", "-"],
        Some(&format!(
            r#"apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {{name: {policy}}}
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules: [{{apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [events]}}]
  validations: [{{expression: "false", message: "no Events in this namespace (test)"}}]
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {{name: {policy}}}
spec:
  policyName: {policy}
  validationActions: [Deny]
  matchResources: {{namespaceSelector: {{matchLabels: {{kubernetes.io/metadata.name: {ns}}}}}}}
"#
        )),
    )
    .unwrap();
    // Until the policy is in force (it is compiled and synced asynchronously).
    let probe = format!(
        "apiVersion: v1\nkind: Event\nmetadata: {{generateName: probe-, namespace: {ns}}}\ninvolvedObject: {{kind: Server, name: db01, namespace: {ns}}}\nreason: Probe\nmessage: probe\n"
    );
    let mut denied = false;
    for _ in 0..100 {
        if cp
            .run_kubectl(&["create", "-f", "-"], Some(&probe))
            .is_ok_and(|o| !o.status.success())
        {
            denied = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(denied, "the admission policy never denied an Event");
    let _ = cp.run_kubectl(&["delete", "events", "--all", "-n", ns], None);
    cp.kubectl_ok(
        &["apply", "--server-side", "-f", "-"],
        Some(&format!(
            "apiVersion: unyo.dev/v1alpha1\nkind: MonitoringPolicy\nmetadata: {{name: logs, namespace: {ns}}}\nspec:\n  selector: {{matchLabels: {{unyo.dev/role: db}}}}\n  interval: 1s\n  checks:\n    - {{name: app, kind: LogPattern, path: /var/log/app.log, pattern: FATAL}}\n"
        )),
    )
    .unwrap();
    let port = free_port();
    let agent = h.spawn_with(&["--metrics-addr", &format!("127.0.0.1:{port}")]);
    wait_server(&h.servers, "the log check runs", 60, &agent, |s| {
        s.status
            .as_ref()
            .is_some_and(|st| st.checks.iter().any(|c| c.check == "app"))
    })
    .await;
    // The check flaps: each line is Critical for one sample, then OK again.
    for n in 1..=5 {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(h.root.join("var/log/app.log"))
            .unwrap();
        writeln!(f, "FATAL number {n}").unwrap();
        drop(f);
        wait_server(
            &h.servers,
            &format!("transition {n} in the status"),
            30,
            &agent,
            |s| {
                s.status.as_ref().is_some_and(|st| {
                    st.checks.iter().any(|c| {
                        c.check == "app"
                            && c.state == CheckState::Critical
                            && c.message
                                .as_deref()
                                .is_some_and(|m| m.contains(&format!("FATAL number {n}")))
                    })
                })
            },
        )
        .await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    let text = metrics(port).await;
    let dropped: f64 = text
        .lines()
        .filter(|l| l.starts_with("unyo_agent_events_dropped_total{"))
        .filter(|l| !l.contains("journal_full"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(
        dropped >= 8.0,
        "{dropped} Events counted as dropped\n{text}"
    );
    let evs = cp
        .kubectl_ok(&["get", "events", "-n", ns, "-o", "name"], None)
        .unwrap();
    assert!(
        evs.lines().count() <= 1,
        "the quota lets one Event in: {evs}"
    );
    // Nothing waits: the journal is empty, the delivery did not stall behind the Events.
    let journal = std::fs::read_to_string(h.work.join("state/journal.jsonl")).unwrap_or_default();
    assert!(journal.trim().is_empty(), "{journal}");
    drop(agent);
    let _ = cp.run_kubectl(
        &[
            "delete",
            "validatingadmissionpolicybinding,validatingadmissionpolicy",
            &policy,
        ],
        None,
    );
    std::fs::remove_dir_all(&h.work).unwrap();
}

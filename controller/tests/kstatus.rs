//! GitOps health: the sample fleet, reconciled by the controller on a real kube-apiserver, read
//! by the real kstatus library (sigs.k8s.io/cli-utils, what Flux's health checks use) and by the
//! Argo CD health script of manifests/gitops/argocd-health.yaml run with gopher-lua as Argo CD
//! runs it (hack/kstatus). Every kind reads Current / Healthy once reconciled — a drifted Server
//! and one whose agent never reported included —, InProgress / Progressing while a spec change
//! waits for the controller, and Failed / Degraded for a spec only a change can mend.

// A test crate: a panic is how a failure is reported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};
use unyo_crds::server::Server;
use unyo_tests::{ControlPlane, control_plane, go_tool, output_with_stdin, repo_root};

const KINDS: &str = "servers,monitoringpolicies,patchbaselines,backupplans,virusscanschedules,operationcalendars,changerecords,incidents";

/// (kind/name → (kstatus, Argo CD health, "kstatus message | Argo CD message")) for every unyo object in `ns`.
fn health(cp: &ControlPlane, ns: &str) -> BTreeMap<String, (String, String, String)> {
    let list = cp
        .kubectl_ok(&["get", KINDS, "-n", ns, "-o", "json"], None)
        .unwrap();
    let tool = go_tool("kstatus", ".", None).unwrap();
    let argo = repo_root().join("manifests/gitops/argocd-health.yaml");
    let out =
        output_with_stdin(Command::new(tool).arg("-argocd").arg(argo), list.as_bytes()).unwrap();
    assert!(
        out.status.success(),
        "hack/kstatus failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
            (
                format!("{}/{}", s("kind"), s("name")),
                (
                    s("status"),
                    s("argocd"),
                    format!("{} | {}", s("message"), s("argocdMessage")),
                ),
            )
        })
        .collect()
}

/// Waits until every unyo object in `ns` has status.observedGeneration = metadata.generation.
fn wait_reconciled(cp: &ControlPlane, ns: &str, ctl: &unyo_tests::Running) {
    let start = Instant::now();
    loop {
        let list: Value = serde_json::from_str(
            &cp.kubectl_ok(&["get", KINDS, "-n", ns, "-o", "json"], None)
                .unwrap(),
        )
        .unwrap();
        let behind: Vec<String> = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|o| o["status"]["observedGeneration"] != o["metadata"]["generation"])
            .map(|o| format!("{}/{}", o["kind"], o["metadata"]["name"]))
            .collect();
        if behind.is_empty() {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "not reconciled after 90 s: {behind:?}\n{}",
            ctl.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[tokio::test]
async fn flux_and_argo_read_every_kind_as_reconciled_pending_or_failed() {
    let cp = control_plane().unwrap();
    let ns = "mie";
    let samples = repo_root().join("manifests/samples");
    cp.kubectl_ok(
        &["apply", "--server-side", "-k", samples.to_str().unwrap()],
        None,
    )
    .unwrap();
    // A policy whose selector passes admission and can never be evaluated.
    let broken = json!({"apiVersion":"unyo.dev/v1alpha1","kind":"MonitoringPolicy",
        "metadata":{"name":"broken","namespace":ns},
        "spec":{"selector":{"matchExpressions":[{"key":"unyo.dev/role","operator":"Near","values":["db"]}]},
            "checks":[{"name":"x","kind":"Tcp","host":"h","port":1}]}});
    cp.kubectl_ok(
        &["apply", "--server-side", "-f", "-"],
        Some(&broken.to_string()),
    )
    .unwrap();
    // A schedule on a calendar that does not exist yet: it waits (Reconciling).
    let waiting = std::fs::read_to_string(samples.join("virusscan.yaml"))
        .unwrap()
        .replace("name: daily", "name: waiting")
        .replace("calendar: mie-operations", "calendar: next-year");
    cp.kubectl_ok(&["apply", "--server-side", "-f", "-"], Some(&waiting))
        .unwrap();
    // db01's agent reports an OS that is not its ledger's: drift.
    let servers: Api<Server> = Api::namespaced(cp.client().await.unwrap(), ns);
    let facts = json!({"apiVersion": "unyo.dev/v1alpha1", "kind": "Server", "status": {"observed": {
        "observedAt": jiff::Timestamp::now().to_string(), "hostname": "db01",
        "os": {"name": "Debian GNU/Linux", "version": "13", "id": "debian", "architecture": "x86_64"}}}});
    servers
        .patch_status(
            "db01",
            &PatchParams::apply("unyo-agent").force(),
            &Patch::Apply(&facts),
        )
        .await
        .unwrap();

    let ctl = common::controller(cp, ns, "kstatus", &[]).await;
    wait_reconciled(cp, ns, &ctl);
    let h = health(cp, ns);
    let kinds: std::collections::BTreeSet<&str> =
        h.keys().filter_map(|k| k.split('/').next()).collect();
    assert_eq!(kinds.len(), 8, "every kind is read: {kinds:?}");
    let db01 = servers.get("db01").await.unwrap();
    let in_sync = db01
        .status
        .as_ref()
        .unwrap()
        .conditions
        .iter()
        .find(|c| c.type_ == "InSync");
    assert_eq!(in_sync.unwrap().status, "False", "db01 drifts");
    for (object, (kstatus, argo, message)) in &h {
        let (want, want_argo) = match object.as_str() {
            "MonitoringPolicy/broken" => ("Failed", "Degraded"),
            "VirusScanSchedule/waiting" => ("InProgress", "Progressing"),
            _ => ("Current", "Healthy"),
        };
        assert_eq!(
            (kstatus.as_str(), argo.as_str()),
            (want, want_argo),
            "{object}: {message}"
        );
    }
    assert!(
        h["MonitoringPolicy/broken"]
            .2
            .contains("| InvalidSelector: spec.selector"),
        "{h:?}"
    );

    // A change of spec while no controller runs: that object waits, the others stay Current.
    drop(ctl);
    cp.kubectl_ok(
        &[
            "patch",
            "monitoringpolicy",
            "database",
            "-n",
            ns,
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"selector":{"matchLabels":{"unyo.dev/environment":"production"}}}}"#,
        ],
        None,
    )
    .unwrap();
    let h = health(cp, ns);
    let pending: Vec<_> = h
        .iter()
        .filter(|(_, v)| v.0 == "InProgress")
        .map(|(k, _)| k.clone())
        .collect();
    assert_eq!(
        pending,
        ["MonitoringPolicy/database", "VirusScanSchedule/waiting"],
        "{h:?}"
    );
    assert_eq!(h["MonitoringPolicy/database"].1, "Progressing");

    // The controller back: Current again.
    let ctl = common::controller(cp, ns, "kstatus-again", &[]).await;
    wait_reconciled(cp, ns, &ctl);
    assert_eq!(health(cp, ns)["MonitoringPolicy/database"].0, "Current");

    // The calendar it waited for arrives: the schedule is Current.
    let calendar = std::fs::read_to_string(samples.join("calendar.yaml"))
        .unwrap()
        .replace("name: mie-operations", "name: next-year");
    cp.kubectl_ok(&["apply", "--server-side", "-f", "-"], Some(&calendar))
        .unwrap();
    let start = std::time::Instant::now();
    while health(cp, ns)["VirusScanSchedule/waiting"].0 != "Current" {
        assert!(start.elapsed() < Duration::from_secs(60), "{}", ctl.log());
        std::thread::sleep(Duration::from_millis(500));
    }
}

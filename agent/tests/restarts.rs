//! The API server restarted, then etcd restarted, while an agent reports transitions: every
//! transition reaches the Server's status and its Event, in order, none twice. (A test binary
//! of its own: it restarts its control plane.)

// A test crate: a panic is how a failure is reported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::time::Duration;

use k8s_openapi::api::core::v1::Event;
use kube::Api;
use kube::api::ListParams;
use unyo_crds::server::CheckState;
use unyo_tests::control_plane;

mod common;
use common::{prepare, wait_server};

#[tokio::test]
async fn transitions_survive_api_server_and_etcd_restarts_in_order_and_once() {
    let cp = control_plane().unwrap();
    let h = prepare(cp, "restarts", "logs:\n  files: [/var/log]\n").await;
    let ns = h.ns.clone();
    cp.kubectl_ok(
        &["apply", "--server-side", "-f", "-"],
        Some(&format!(
            "apiVersion: unyo.dev/v1alpha1\nkind: MonitoringPolicy\nmetadata: {{name: logs, namespace: {ns}}}\nspec:\n  selector: {{matchLabels: {{unyo.dev/role: db}}}}\n  interval: 1s\n  checks:\n    - {{name: app, kind: LogPattern, path: /var/log/app.log, pattern: FATAL}}\n"
        )),
    )
    .unwrap();
    let agent = h.spawn();
    wait_server(&h.servers, "the log check runs", 60, &agent, |s| {
        s.status
            .as_ref()
            .is_some_and(|st| st.checks.iter().any(|c| c.check == "app"))
    })
    .await;

    // A line every 2.5 s (each a Critical transition, then OK at the next sample), while the
    // API server and then etcd are restarted.
    let log = h.root.join("var/log/app.log");
    let writer = tokio::spawn(async move {
        for n in 1..=16 {
            let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
            writeln!(f, "FATAL number {n:02}").unwrap();
            drop(f);
            tokio::time::sleep(Duration::from_millis(2500)).await;
        }
    });
    tokio::time::sleep(Duration::from_secs(6)).await;
    let cp2 = cp;
    tokio::task::spawn_blocking(move || cp2.restart("apiserver"))
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    tokio::task::spawn_blocking(move || cp2.restart("etcd"))
        .await
        .unwrap()
        .unwrap();
    writer.await.unwrap();

    // The last transition is in the status; every one has exactly one Event, in order.
    wait_server(
        &h.servers,
        "the last transition in the status",
        120,
        &agent,
        |s| {
            s.status.as_ref().is_some_and(|st| {
                st.checks
                    .iter()
                    .any(|c| c.check == "app" && c.state == CheckState::OK)
            }) && std::fs::read_to_string(h.work.join("state/journal.jsonl"))
                .is_ok_and(|j| j.trim().is_empty())
        },
    )
    .await;
    let events: Api<Event> = Api::namespaced(cp.client().await.unwrap(), &ns);
    let mut criticals: Vec<(String, i64)> = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("CheckCritical"))
        .filter_map(|e| {
            let m = e.message?;
            let n = m.split("FATAL number ").nth(1)?.get(..2)?.to_string();
            Some((n, e.first_timestamp?.0.as_millisecond()))
        })
        .collect();
    criticals.sort();
    let numbers: Vec<&str> = criticals.iter().map(|(n, _)| n.as_str()).collect();
    let expected: Vec<String> = (1..=16).map(|n| format!("{n:02}")).collect();
    assert_eq!(
        numbers,
        expected,
        "each transition exactly once\n{}",
        agent.log()
    );
    let times: Vec<i64> = criticals.iter().map(|(_, t)| *t).collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "Events out of order: {criticals:?}"
    );
    assert!(
        agent.log().contains("cannot report to the API server"),
        "the restarts were not felt\n{}",
        agent.log()
    );
    drop(agent);
    std::fs::remove_dir_all(&h.work).unwrap();
}

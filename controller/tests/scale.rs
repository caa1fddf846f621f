//! The controller's load on its API server, counted by the API server itself: FlowSchemas that
//! match only the controller's ServiceAccount split its requests by verb (watch, list, get,
//! write), and the API server's request counts show every Server write.
//!
//! One test, so that no other controller shares the counts: with 200 Servers reconciled, a run
//! of heartbeats moves the Leases and writes nothing (each Server's resourceVersion stays), and
//! a burst of drift on all 200 opens 200 ChangeRecords with no LIST and no GET by the
//! controller — it reads everything from its watches.

// A test crate: a panic is how a failure is reported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use unyo_crds::{ChangeRecord, Server};
use unyo_tests::{apf, control_plane, in_sync_and_connected, renew_agent_lease};

use common::controller;

const N: usize = 200;
const ACCOUNT: &str = "unyo-test-controller";

fn facts(os: &str) -> serde_json::Value {
    json!({"apiVersion": "unyo.dev/v1alpha1", "kind": "Server", "status": {"observed": {
        "hostname": "h", "os": {"name": "Debian GNU/Linux", "version": os},
        "packages": [{"name": "postgresql-15", "version": "15.10"}]}}})
}

/// The agent of `name` reports its facts with OS version `os`.
async fn report(servers: &Api<Server>, name: &str, os: &str) {
    servers
        .patch_status(
            name,
            &PatchParams::apply("unyo-agent").force(),
            &Patch::Apply(&facts(os)),
        )
        .await
        .unwrap();
}

/// Every Server's resourceVersion, by name.
async fn versions(servers: &Api<Server>) -> Vec<(String, String)> {
    servers
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|s| (s.name_any(), s.resource_version().unwrap()))
        .collect()
}

async fn renew(leases: &Api<Lease>, server: &str) {
    renew_agent_lease(leases, server, 600).await.unwrap();
}

async fn all<F, Fut>(f: F)
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = ()>,
{
    futures::stream::iter((0..N).map(|i| f(format!("s{i:03}"))))
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
}

async fn until(what: &str, secs: u64, mut check: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !check().await {
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "{what} did not happen in {secs}s"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test]
async fn heartbeats_write_nothing_and_reconciles_list_nothing() {
    let cp = control_plane().unwrap();
    let client = cp.client().await.unwrap();
    apf::account(&client, ACCOUNT, "unyo-system", "unyo-controller")
        .await
        .unwrap();
    let ns = cp.namespace("scale").await.unwrap();
    let servers: Api<Server> = Api::namespaced(client.clone(), &ns);
    let leases: Api<Lease> = Api::namespaced(client.clone(), &ns);
    let records: Api<ChangeRecord> = Api::namespaced(client.clone(), &ns);
    all(|name| {
        let (servers, leases, ns) = (&servers, &leases, &ns);
        async move {
            let s: Server = serde_json::from_value(json!({
                "apiVersion": "unyo.dev/v1alpha1", "kind": "Server",
                "metadata": {"name": name, "namespace": ns},
                "spec": {"hostname": "h", "role": "DB",
                         "os": {"name": "Debian GNU/Linux", "version": "12"}}}))
            .unwrap();
            servers.create(&PostParams::default(), &s).await.unwrap();
            report(servers, &name, "12").await;
            renew(leases, &name).await;
        }
    })
    .await;
    let ctl = controller(cp, &ns, "controller", &[]).await;
    let lp = ListParams::default();
    until("all Servers in sync and connected", 120, async || {
        servers
            .list(&lp)
            .await
            .unwrap()
            .items
            .iter()
            .filter(|s| in_sync_and_connected(s))
            .count()
            == N
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Heartbeats: every Lease renewed three times; no Server changes.
    let before = versions(&servers).await;
    let lease_rv = leases
        .get("unyo-agent-s000")
        .await
        .unwrap()
        .resource_version();
    let c0 = apf::scrape(&client, ACCOUNT).await.unwrap();
    for _ in 0..3 {
        all(|name| {
            let leases = &leases;
            async move { renew(leases, &name).await }
        })
        .await;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let c1 = apf::scrape(&client, ACCOUNT).await.unwrap();
    let after = versions(&servers).await;
    assert_ne!(
        leases
            .get("unyo-agent-s000")
            .await
            .unwrap()
            .resource_version(),
        lease_rv
    );
    assert_eq!(before, after, "a heartbeat changed a Server\n{}", ctl.log());
    let d = c1.since(&c0);
    assert_eq!(d.server_writes, 0.0, "{d:?}");
    assert_eq!(
        d.beyond_watches(),
        0.0,
        "the controller made requests for heartbeats: {d:?}"
    );

    // A burst of drift: 200 records, without a LIST or a GET.
    all(|name| {
        let servers = &servers;
        async move {
            report(servers, &name, "13").await;
        }
    })
    .await;
    until(
        "200 ChangeRecords and Servers pointing at them",
        180,
        async || {
            let recorded = servers
                .list(&lp)
                .await
                .unwrap()
                .items
                .iter()
                .filter(|s| {
                    s.status
                        .as_ref()
                        .is_some_and(|st| st.change_record.is_some())
                })
                .count();
            recorded == N && records.list(&lp).await.unwrap().items.len() == N
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let c2 = apf::scrape(&client, ACCOUNT).await.unwrap();
    let d = c2.since(&c1);
    assert_eq!(
        d.class("list"),
        0.0,
        "LIST requests while reconciling: {d:?}"
    );
    assert_eq!(d.class("get"), 0.0, "GET requests while reconciling: {d:?}");
    // Each drifted Server: its record, its status, the record's status and two Events.
    assert!(d.class("write") >= (3 * N) as f64, "{d:?}");
    assert!(
        d.class("write") <= (6 * N) as f64,
        "more writes than decisions: {d:?}"
    );
    let all_records: Vec<ChangeRecord> = records.list(&lp).await.unwrap().items;
    let mut per_server: Vec<String> = all_records
        .iter()
        .filter_map(|r| r.spec.server.clone())
        .collect();
    per_server.sort();
    per_server.dedup();
    assert_eq!(per_server.len(), N, "one record per Server");
    drop(ctl);
}

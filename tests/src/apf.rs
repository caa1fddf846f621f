//! Counting what one client asks of the API server, from the API server's own metrics.
//!
//! API Priority and Fairness counts dispatched requests per FlowSchema. [`account`] adds four
//! FlowSchemas that match only one ServiceAccount (the controller's), split by verb — watch,
//! list, get and writes — at the same priority level that ServiceAccounts get by default
//! (`workload-low`), so the accounting changes nothing about how its requests are served.
//! [`scrape`] reads the counts from `/metrics`, with the writes to Servers by anyone.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use kube::Client;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::discovery::ApiResource;

/// The verb classes counted, each with its verbs.
pub const CLASSES: [(&str, &[&str]); 4] = [
    ("watch", &["watch"]),
    ("list", &["list"]),
    ("get", &["get"]),
    (
        "write",
        &["create", "update", "patch", "delete", "deletecollection"],
    ),
];

fn flow_schema_name(prefix: &str, class: &str) -> String {
    format!("{prefix}-{class}")
}

/// Adds the FlowSchemas `<prefix>-<class>` matching ServiceAccount `namespace/name`.
pub async fn account(client: &Client, prefix: &str, namespace: &str, name: &str) -> Result<()> {
    let ar = ApiResource {
        group: "flowcontrol.apiserver.k8s.io".into(),
        version: "v1".into(),
        api_version: "flowcontrol.apiserver.k8s.io/v1".into(),
        kind: "FlowSchema".into(),
        plural: "flowschemas".into(),
    };
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
    for (i, (class, verbs)) in CLASSES.iter().enumerate() {
        let fs_name = flow_schema_name(prefix, class);
        let fs = serde_json::json!({
            "apiVersion": "flowcontrol.apiserver.k8s.io/v1",
            "kind": "FlowSchema",
            "metadata": {"name": fs_name},
            "spec": {
                "matchingPrecedence": 400 + i,
                "priorityLevelConfiguration": {"name": "workload-low"},
                "distinguisherMethod": {"type": "ByUser"},
                "rules": [{
                    "subjects": [{"kind": "ServiceAccount",
                                  "serviceAccount": {"name": name, "namespace": namespace}}],
                    "resourceRules": [{"verbs": verbs, "apiGroups": ["*"], "resources": ["*"],
                                       "namespaces": ["*"], "clusterScope": true}],
                }],
            },
        });
        api.patch(
            &fs_name,
            &PatchParams::apply("unyo-tests").force(),
            &Patch::Apply(&fs),
        )
        .await
        .with_context(|| format!("applying FlowSchema {fs_name}"))?;
    }
    Ok(())
}

/// Request counts at one instant.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Counts {
    /// Requests of the accounted client dispatched so far, by verb class.
    pub by_class: BTreeMap<String, f64>,
    /// PATCH, APPLY and PUT requests on Servers (and their status) by anyone.
    pub server_writes: f64,
}

impl Counts {
    /// The requests between `earlier` and this one, by class.
    pub fn since(&self, earlier: &Counts) -> Counts {
        Counts {
            by_class: self
                .by_class
                .iter()
                .map(|(k, v)| (k.clone(), v - earlier.by_class.get(k).unwrap_or(&0.0)))
                .collect(),
            server_writes: self.server_writes - earlier.server_writes,
        }
    }

    /// Requests of `class`.
    pub fn class(&self, class: &str) -> f64 {
        self.by_class.get(class).copied().unwrap_or_default()
    }

    /// Every accounted request but watches.
    pub fn beyond_watches(&self) -> f64 {
        self.by_class
            .iter()
            .filter(|(k, _)| *k != "watch")
            .map(|(_, v)| v)
            .sum()
    }
}

fn value(line: &str) -> f64 {
    line.rsplit(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or_default()
}

/// Reads the counts of the FlowSchemas `<prefix>-*` and the Server writes from `/metrics`.
pub async fn scrape(client: &Client, prefix: &str) -> Result<Counts> {
    let req = http::Request::get("/metrics").body(Vec::new())?;
    let text = client
        .request_text(req)
        .await
        .context("reading the API server's /metrics")?;
    let mut counts = Counts::default();
    for (class, _) in CLASSES {
        let label = format!("flow_schema=\"{}\"", flow_schema_name(prefix, class));
        let n = text
            .lines()
            .filter(|l| l.starts_with("apiserver_flowcontrol_dispatched_requests_total{"))
            .filter(|l| l.contains(&label))
            .map(value)
            .sum();
        counts.by_class.insert(class.to_string(), n);
    }
    counts.server_writes = text
        .lines()
        .filter(|l| l.starts_with("apiserver_request_total{"))
        .filter(|l| l.contains("resource=\"servers\"") && l.contains("group=\"unyo.dev\""))
        .filter(|l| {
            ["PATCH", "APPLY", "PUT"]
                .iter()
                .any(|v| l.contains(&format!("verb=\"{v}\"")))
        })
        .map(value)
        .sum();
    Ok(counts)
}

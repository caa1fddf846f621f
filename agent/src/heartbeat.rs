//! The heartbeat: the Lease `unyo-agent-<server>` renewed every `--heartbeat`. The Server
//! object is never written just to say "alive".

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};

use unyo_crds::names::{agent_lease_name as lease_name, label_value, labels};

use crate::metrics::Metrics;

/// The labels an agent's Lease carries: the controller watches only Leases labelled
/// `unyo.dev/agent-of`.
fn lease_labels(server: &str) -> std::collections::BTreeMap<String, String> {
    [
        (labels::AGENT_OF.to_string(), label_value(server)),
        (
            labels::MANAGED_BY.to_string(),
            labels::MANAGED_BY_UNYO.to_string(),
        ),
    ]
    .into()
}

/// Renews the Lease once: read, set holder, duration and renew time, replace. Creates it when
/// it is missing and the credentials allow (the bootstrap creates it for least-privilege agents).
pub async fn renew(leases: &Api<Lease>, server: &str, every: Duration) -> Result<(), kube::Error> {
    let name = lease_name(server);
    let now = MicroTime(jiff::Timestamp::now());
    let duration = i32::try_from(every.as_secs().saturating_mul(3)).unwrap_or(i32::MAX);
    match leases.get_opt(&name).await? {
        Some(mut lease) => {
            let have = lease.metadata.labels.get_or_insert_with(Default::default);
            for (k, v) in lease_labels(server) {
                have.entry(k).or_insert(v);
            }
            let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
            if spec.holder_identity.as_deref() != Some(server) {
                spec.holder_identity = Some(server.to_string());
                spec.acquire_time = Some(now.clone());
            }
            spec.lease_duration_seconds = Some(duration);
            spec.renew_time = Some(now);
            leases
                .replace(&name, &PostParams::default(), &lease)
                .await?;
        }
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(name),
                    labels: Some(lease_labels(server)),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(server.to_string()),
                    lease_duration_seconds: Some(duration),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    ..Default::default()
                }),
            };
            leases.create(&PostParams::default(), &lease).await?;
        }
    }
    Ok(())
}

/// Renews the Lease every `every` until shutdown; failures are logged and retried at the next
/// beat (an agent that cannot reach the API server keeps working offline).
pub async fn run(
    client: Client,
    namespace: String,
    server: String,
    every: Duration,
    metrics: std::sync::Arc<Metrics>,
) {
    let leases: Api<Lease> = Api::namespaced(client, &namespace);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match renew(&leases, &server, every).await {
            Ok(()) => {
                metrics.heartbeat(true);
                tracing::debug!(lease = %lease_name(&server), "lease renewed");
            }
            Err(e) => {
                metrics.heartbeat(false);
                tracing::warn!(lease = %lease_name(&server), error = %e, "cannot renew the lease");
            }
        }
    }
}

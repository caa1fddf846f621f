//! Leader election on a Lease: of several replicas one reconciles; the others wait and take
//! over when the leader stops renewing (after the lease duration, 15 s).
//!
//! Acquiring and renewing are replace calls with the Lease's resourceVersion, so two replicas
//! can never both win. A leader that fails to renew in time stops (exits), so that it cannot
//! reconcile beside a new leader. (A small implementation: kube has no leader election, and the
//! crates for it lag behind kube's versions.)

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};

use crate::metrics::Metrics;

/// How long a leader's Lease lasts without renewal.
pub const LEASE_SECONDS: i32 = 15;
/// How often the leader renews, and a candidate tries.
const RETRY: Duration = Duration::from_secs(3);

/// Whether `identity` may take `lease` at `now`: free, expired, or already its own.
pub fn can_take(lease: &Lease, identity: &str, now: Timestamp) -> bool {
    let Some(spec) = &lease.spec else { return true };
    match (&spec.holder_identity, &spec.renew_time) {
        (None, _) | (_, None) => true,
        (Some(h), _) if h == identity => true,
        (Some(_), Some(renewed)) => {
            let secs = spec.lease_duration_seconds.unwrap_or(LEASE_SECONDS);
            unyo_crds::patching::later(renewed.0, SignedDuration::from_secs(i64::from(secs))) < now
        }
    }
}

/// Takes or renews the Lease; Ok(true) when `identity` holds it afterwards.
async fn try_hold(api: &Api<Lease>, name: &str, identity: &str) -> Result<bool, kube::Error> {
    let now = Timestamp::now();
    let Some(mut lease) = api.get_opt(name).await? else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(identity.to_string()),
                lease_duration_seconds: Some(LEASE_SECONDS),
                acquire_time: Some(MicroTime(now)),
                renew_time: Some(MicroTime(now)),
                lease_transitions: Some(0),
                ..Default::default()
            }),
        };
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        };
    };
    if !can_take(&lease, identity, now) {
        return Ok(false);
    }
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    if spec.holder_identity.as_deref() != Some(identity) {
        spec.holder_identity = Some(identity.to_string());
        spec.acquire_time = Some(MicroTime(now));
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
    }
    spec.lease_duration_seconds = Some(LEASE_SECONDS);
    spec.renew_time = Some(MicroTime(now));
    match api.replace(name, &PostParams::default(), &lease).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Waits to lead, then runs `work` while renewing; returns when `work` ends. Exits the process
/// when leadership is lost.
pub async fn run_elected<F: Future<Output = ()>>(
    client: Client,
    namespace: &str,
    name: &str,
    identity: &str,
    metrics: Arc<Metrics>,
    work: F,
) {
    let api: Api<Lease> = Api::namespaced(client, namespace);
    tracing::info!(lease = %name, %namespace, %identity, "waiting to lead");
    loop {
        match try_hold(&api, name, identity).await {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "leader election: cannot read or take the lease"),
        }
        tokio::time::sleep(RETRY).await;
    }
    tracing::info!(lease = %name, %identity, "leading: reconciling");
    metrics.leading.store(true, Ordering::Relaxed);
    let renew = async {
        let mut last_ok = Timestamp::now();
        loop {
            tokio::time::sleep(RETRY).await;
            match try_hold(&api, name, identity).await {
                Ok(true) => last_ok = Timestamp::now(),
                Ok(false) => {
                    tracing::error!("leader election: another replica took the lease");
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "leader election: renewal failed");
                    if Timestamp::now().duration_since(last_ok)
                        >= SignedDuration::from_secs(i64::from(LEASE_SECONDS) - 3)
                    {
                        tracing::error!("leader election: could not renew in time");
                        return;
                    }
                }
            }
        }
    };
    tokio::select! {
        _ = work => {}
        _ = renew => {
            metrics.leading.store(false, Ordering::Relaxed);
            tracing::error!("lost leadership; exiting so that only the new leader reconciles");
            std::process::exit(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn who_may_take_the_lease() {
        let now: Timestamp = "2026-11-24T00:00:20Z".parse().unwrap();
        let held = |by: &str, at: &str| Lease {
            metadata: Default::default(),
            spec: Some(LeaseSpec {
                holder_identity: Some(by.into()),
                renew_time: Some(MicroTime(at.parse().unwrap())),
                lease_duration_seconds: Some(15),
                ..Default::default()
            }),
        };
        assert!(can_take(&held("a", "2026-11-24T00:00:10Z"), "a", now));
        assert!(!can_take(&held("b", "2026-11-24T00:00:10Z"), "a", now));
        assert!(can_take(&held("b", "2026-11-24T00:00:04Z"), "a", now));
        assert!(can_take(&Lease::default(), "a", now));
    }
}

//! Leader election on a Lease: of several replicas one reconciles; the others wait and take
//! over when the leader stops renewing (after the lease duration, 15 s).
//!
//! Taking and renewing are replace calls with the Lease's resourceVersion, so two replicas can
//! never both win a round. Time is judged on each replica's own monotonic clock, never by
//! comparing another machine's timestamps:
//! - the leader's writes pass a [`Gate`] that is open only until `LEASE - MARGIN` after the
//!   last renewal that succeeded was *sent*; every renewal has a timeout; when the deadline
//!   passes — whether or not a call returned, even if the process was stopped meanwhile — no
//!   write leaves the process and it exits;
//! - a candidate takes the Lease only when it has seen the same record (holder, renew time,
//!   transitions) unchanged for the lease duration on its own clock, as client-go does.
//!
//! So a stalled leader's last write is sent before its deadline, which is before any other
//! replica can have seen its record unchanged for the lease duration. (A small implementation:
//! kube has no leader election, and the crates for it lag behind kube's versions.)

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};

use crate::metrics::Metrics;

/// How long a leader's Lease lasts without renewal.
pub const LEASE_SECONDS: i32 = 15;
/// How often the leader renews, and a candidate tries.
const RETRY: Duration = Duration::from_secs(3);
/// The longest one renewal may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(4);
/// How much before the lease duration the leader stops writing.
const MARGIN: Duration = Duration::from_secs(3);

/// The leader's writes are allowed only before a deadline on the monotonic clock.
#[derive(Debug)]
pub struct Gate {
    elected: bool,
    until: Mutex<Option<Instant>>,
}

impl Gate {
    /// A gate that is always open (no leader election).
    pub fn always_open() -> Gate {
        Gate {
            elected: false,
            until: Mutex::new(None),
        }
    }

    /// A gate closed until leadership is won.
    pub fn elected() -> Gate {
        Gate {
            elected: true,
            until: Mutex::new(None),
        }
    }

    /// Whether a write may leave the process now.
    pub fn open(&self) -> bool {
        !self.elected || self.deadline().is_some_and(|u| Instant::now() < u)
    }

    fn deadline(&self) -> Option<Instant> {
        *self.until.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Allows writes until `LEASE - MARGIN` after `sent`, when a renewal sent then succeeded.
    fn renewed(&self, sent: Instant) {
        let lease = Duration::from_secs(u64::try_from(LEASE_SECONDS).unwrap_or(15));
        let to = sent + lease.saturating_sub(MARGIN);
        let mut until = self.until.lock().unwrap_or_else(|e| e.into_inner());
        if until.is_none_or(|u| to > u) {
            *until = Some(to);
        }
    }
}

/// Whether an HTTP method writes.
pub fn writes(method: &http::Method) -> bool {
    !matches!(
        *method,
        http::Method::GET | http::Method::HEAD | http::Method::OPTIONS
    )
}

/// A Lease's record as a candidate watches it change.
#[derive(Clone, Debug, PartialEq)]
struct Record {
    holder: Option<String>,
    renewed: Option<Timestamp>,
    transitions: Option<i32>,
}

fn record(lease: &Lease) -> Record {
    let spec = lease.spec.clone().unwrap_or_default();
    Record {
        holder: spec.holder_identity,
        renewed: spec.renew_time.map(|t| t.0),
        transitions: spec.lease_transitions,
    }
}

/// What a replica has seen of the Lease: its record and when (on this replica's clock) the
/// record last changed.
#[derive(Default)]
struct Observed(Option<(Record, Instant)>);

impl Observed {
    /// Notes the record seen now; whether `identity` may take the Lease: free, its own, or
    /// seen unchanged for the lease duration.
    fn may_take(&mut self, lease: &Lease, identity: &str, now: Instant) -> bool {
        let current = record(lease);
        let since = match &self.0 {
            Some((r, at)) if *r == current => *at,
            _ => now,
        };
        self.0 = Some((current.clone(), since));
        let duration = lease
            .spec
            .as_ref()
            .and_then(|s| s.lease_duration_seconds)
            .unwrap_or(LEASE_SECONDS);
        let duration = Duration::from_secs(u64::try_from(duration.max(1)).unwrap_or(15));
        match current.holder.as_deref() {
            None | Some("") => true,
            Some(h) if h == identity => true,
            Some(_) => now.duration_since(since) >= duration,
        }
    }
}

fn fresh_lease(name: &str, identity: &str, now: Timestamp) -> Lease {
    Lease {
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
    }
}

/// Takes or renews the Lease; Ok(true) when `identity` holds it afterwards.
async fn try_hold(
    api: &Api<Lease>,
    name: &str,
    identity: &str,
    seen: &mut Observed,
) -> Result<bool, kube::Error> {
    let now = Timestamp::now();
    let Some(mut lease) = api.get_opt(name).await? else {
        return match api
            .create(&PostParams::default(), &fresh_lease(name, identity, now))
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        };
    };
    if !seen.may_take(&lease, identity, Instant::now()) {
        return Ok(false);
    }
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    if spec.holder_identity.as_deref() != Some(identity) {
        spec.holder_identity = Some(identity.to_string());
        spec.acquire_time = Some(MicroTime(now));
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
    }
    spec.lease_duration_seconds = Some(LEASE_SECONDS);
    spec.renew_time = Some(MicroTime(now));
    match api.replace(name, &PostParams::default(), &lease).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

/// One round, bounded by [`CALL_TIMEOUT`]; on success the gate opens until the deadline
/// counted from when the round began.
async fn round(
    api: &Api<Lease>,
    name: &str,
    identity: &str,
    seen: &mut Observed,
    gate: &Gate,
) -> Result<bool, String> {
    let sent = Instant::now();
    match tokio::time::timeout(CALL_TIMEOUT, try_hold(api, name, identity, seen)).await {
        Ok(Ok(true)) => {
            gate.renewed(sent);
            Ok(true)
        }
        Ok(Ok(false)) => Ok(false),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {}s", CALL_TIMEOUT.as_secs())),
    }
}

/// Waits to lead, then runs `work` while renewing; returns when `work` ends. Exits the process
/// when leadership is lost or its deadline passes.
pub async fn run_elected<F: Future<Output = ()>>(
    client: Client,
    namespace: &str,
    name: &str,
    identity: &str,
    gate: Arc<Gate>,
    metrics: Arc<Metrics>,
    work: F,
) {
    let api: Api<Lease> = Api::namespaced(client, namespace);
    let mut seen = Observed::default();
    tracing::info!(lease = %name, %namespace, %identity, "waiting to lead");
    loop {
        match round(&api, name, identity, &mut seen, &gate).await {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "leader election: cannot read or take the lease"),
        }
        tokio::time::sleep(RETRY).await;
    }
    tracing::info!(lease = %name, %identity, "leading: reconciling");
    metrics.leading.store(true, Ordering::Relaxed);
    let renew = async {
        loop {
            tokio::time::sleep(RETRY).await;
            match round(&api, name, identity, &mut seen, &gate).await {
                Ok(true) => {}
                Ok(false) => return "another replica took the lease",
                Err(e) => tracing::warn!(error = %e, "leader election: renewal failed"),
            }
        }
    };
    // Wakes at the deadline whatever the renewals do (a call that never returns included).
    let watchdog = async {
        loop {
            let Some(until) = gate.deadline() else { return };
            if Instant::now() >= until {
                return;
            }
            tokio::time::sleep_until(tokio::time::Instant::from_std(until)).await;
        }
    };
    let why = tokio::select! {
        _ = work => return,
        why = renew => why,
        _ = watchdog => "the lease was not renewed before its deadline",
    };
    metrics.leading.store(false, Ordering::Relaxed);
    tracing::error!(
        why,
        "lost leadership; writes stopped; exiting so that only the new leader reconciles"
    );
    std::process::exit(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(by: &str, renewed: &str) -> Lease {
        Lease {
            metadata: Default::default(),
            spec: Some(LeaseSpec {
                holder_identity: Some(by.into()),
                renew_time: Some(MicroTime(renewed.parse().unwrap())),
                lease_duration_seconds: Some(15),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn a_candidate_judges_expiry_by_its_own_clock() {
        let t0 = Instant::now();
        let mut seen = Observed::default();
        // A renew time far in the past says nothing: the candidate has only just seen it.
        let old = held("b", "2001-01-01T00:00:00Z");
        assert!(!seen.may_take(&old, "a", t0));
        assert!(!seen.may_take(&old, "a", t0 + Duration::from_secs(14)));
        assert!(seen.may_take(&old, "a", t0 + Duration::from_secs(15)));
        // A change of the record starts the count again.
        let renewed = held("b", "2001-01-01T00:00:03Z");
        assert!(!seen.may_take(&renewed, "a", t0 + Duration::from_secs(16)));
        assert!(seen.may_take(&renewed, "a", t0 + Duration::from_secs(31)));
        // Its own or a free Lease may always be taken.
        assert!(Observed::default().may_take(&held("a", "2001-01-01T00:00:00Z"), "a", t0));
        assert!(Observed::default().may_take(&Lease::default(), "a", t0));
    }

    #[test]
    fn the_gate_closes_at_the_deadline_counted_from_sending() {
        assert!(Gate::always_open().open());
        let gate = Gate::elected();
        assert!(!gate.open(), "closed until the Lease is won");
        gate.renewed(Instant::now());
        assert!(gate.open());
        let long_ago = Instant::now() - Duration::from_secs(20);
        let stale = Gate::elected();
        stale.renewed(long_ago);
        assert!(!stale.open(), "a renewal sent 20 s ago allows nothing now");
        assert!(writes(&http::Method::PATCH) && writes(&http::Method::POST));
        assert!(!writes(&http::Method::GET));
    }
}

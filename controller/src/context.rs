//! What every reconcile loop shares: the API client, the clock, the shared stores, the Event
//! publisher, the metrics and the retry state; and [`run_loop`], which runs one loop with the
//! shared error policy.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, Recorder, Reporter};
use kube::{Client, ResourceExt};
use tokio::sync::mpsc;

use crate::error::{Error, Failures};
use crate::metrics::Metrics;
use crate::stores::{Cached, Stores};

/// The field manager of everything the controller writes.
pub const FIELD_MANAGER: &str = "unyo-controller";

/// Events waiting for the publisher before new ones are dropped (and counted).
const EVENT_QUEUE: usize = 10_000;
/// Status writes in flight at once.
const STATUS_LANE: usize = 8;
/// Records (ChangeRecords, Incidents) being created at once. Records and statuses have lanes of
/// their own, so in a burst the API server sees mostly the records first and the derived status
/// after; together they bound the controller's requests in flight (and so its connections: the
/// client speaks HTTP/1.1, one connection per request in flight).
const RECORD_LANE: usize = 64;

/// The clock calendars and records are evaluated with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clock {
    /// The system clock.
    System,
    /// A fixed instant (tests and demos).
    Fixed(Timestamp),
}

impl Clock {
    /// The current instant by this clock.
    pub fn now(&self) -> Timestamp {
        match self {
            Clock::System => Timestamp::now(),
            Clock::Fixed(t) => *t,
        }
    }
}

/// Shared by the reconcile loops.
pub struct Context {
    /// The API client.
    pub client: Client,
    /// The clock.
    pub clock: Clock,
    /// The shared caches every loop reads.
    pub stores: Stores,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// How long an agent may be disconnected before it is an Incident.
    pub agent_grace: jiff::SignedDuration,
    /// Consecutive failures per object.
    pub failures: Failures,
    /// ChangeRecords this controller created that the store may not show yet.
    pub recent_records: crate::stores::Recent<unyo_crds::ChangeRecord>,
    events: mpsc::Sender<(Event, ObjectReference)>,
    status_lane: tokio::sync::Semaphore,
    record_lane: tokio::sync::Semaphore,
    written: Written,
}

impl Context {
    /// A context for `client`, and the task that publishes its Events (to be spawned).
    pub fn new(
        client: Client,
        clock: Clock,
        stores: Stores,
        metrics: Arc<Metrics>,
        agent_grace: jiff::SignedDuration,
    ) -> (Arc<Context>, impl Future<Output = ()> + Send + 'static) {
        let (tx, rx) = mpsc::channel(EVENT_QUEUE);
        let publisher = publish_events(client.clone(), rx, metrics.clone());
        let ctx = Arc::new(Context {
            client,
            clock,
            stores,
            metrics,
            agent_grace,
            failures: Failures::default(),
            recent_records: Default::default(),
            events: tx,
            status_lane: tokio::sync::Semaphore::new(STATUS_LANE),
            record_lane: tokio::sync::Semaphore::new(RECORD_LANE),
            written: Written::default(),
        });
        (ctx, publisher)
    }

    /// Queues `event` about `on` for the publisher; never waits. A full queue drops it and
    /// counts the drop.
    pub fn emit(&self, event: Event, on: ObjectReference) {
        if self.events.try_send((event, on)).is_err() {
            self.metrics.event_dropped();
        }
    }

    /// Reconcile again at `wake` (half a second late, so that it has passed), or on the next
    /// change when there is no such instant or the clock is fixed.
    pub fn requeue_at(&self, wake: Option<Timestamp>, now: Timestamp) -> Action {
        match (wake, self.clock) {
            (Some(t), Clock::System) if t > now => {
                let ms = t.duration_since(now).as_millis().clamp(0, 86_400_000 * 30) as u64;
                Action::requeue(Duration::from_millis(ms + 500))
            }
            _ => Action::await_change(),
        }
    }

    /// A place in the record lane: hold it while creating a record.
    pub async fn record_permit(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        self.record_lane.acquire().await.ok()
    }

    /// Writes the status of `obj` by server-side apply, as the controller — unless a status was
    /// already written from this very version of `obj` (a reconcile woken by another object
    /// before the watch delivered the controller's own write; that delivery reconciles again).
    pub async fn apply_status<K: Cached>(
        &self,
        obj: &K,
        status: &impl serde::Serialize,
    ) -> Result<(), Error> {
        self.apply_status_as(FIELD_MANAGER, obj, status).await
    }

    /// Writes the status of `obj` by server-side apply as field manager `manager`, within the
    /// status lane, unless a status was already written from this version of `obj`.
    pub async fn apply_status_as<K: Cached>(
        &self,
        manager: &str,
        obj: &K,
        status: &impl serde::Serialize,
    ) -> Result<(), Error> {
        let (namespace, name) = (obj.namespace().unwrap_or_default(), obj.name_any());
        let patch = serde_json::json!({
            "apiVersion": K::api_version(&()),
            "kind": K::kind(&()),
            "status": status,
        });
        let id = format!("{manager}/{}/{namespace}/{name}", K::kind(&()));
        let rv = obj.resource_version().unwrap_or_default();
        if self.written.seen(&id, &rv) {
            tracing::debug!(object = %id, %rv, "a status was written from this version already");
            return Ok(());
        }
        let _permit = self.status_lane.acquire().await;
        kube::Api::<K>::namespaced(self.client.clone(), &namespace)
            .patch_status(
                &name,
                &kube::api::PatchParams::apply(manager).force(),
                &kube::api::Patch::Apply(&patch),
            )
            .await
            .map_err(Error::write(format!(
                "the status of {} {name}",
                K::kind(&())
            )))?;
        tracing::debug!(object = %id, %rv, "status written");
        self.written.remember(id, rv);
        Ok(())
    }
}

/// The resourceVersion each object's last status write was decided from. A write from a version
/// means a newer one is on its way through the watch, whose arrival reconciles the object again;
/// until then, a reconcile of the same version (woken by another object) writes nothing.
#[derive(Default)]
struct Written(std::sync::Mutex<std::collections::HashMap<String, String>>);

impl Written {
    /// Whether a status of object `id` was written from version `rv`.
    fn seen(&self, id: &str, rv: &str) -> bool {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(id).is_some_and(|v| v == rv)
    }

    fn remember(&self, id: String, rv: String) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.insert(id, rv);
    }
}

/// Publishes queued Events one at a time, off the reconcile path.
async fn publish_events(
    client: Client,
    mut rx: mpsc::Receiver<(Event, ObjectReference)>,
    metrics: Arc<Metrics>,
) {
    let instance = std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .ok();
    let recorder = Recorder::new(
        client,
        Reporter {
            controller: FIELD_MANAGER.to_string(),
            instance,
        },
    );
    while let Some((event, on)) = rx.recv().await {
        if let Err(e) = recorder.publish(&event, &on).await {
            metrics.event_dropped();
            tracing::warn!(reason = %event.reason, error = %e, "an Event was not published");
        }
    }
}

/// An Api of `K` in `namespace`, or in every namespace when there is none.
pub fn api<K>(client: &Client, namespace: &Option<String>) -> kube::Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    <K as kube::Resource>::DynamicType: Default,
{
    match namespace {
        Some(ns) => kube::Api::namespaced(client.clone(), ns),
        None => kube::Api::all(client.clone()),
    }
}

/// Reconciles one loop runs at once (of different objects; one object is never reconciled
/// twice at once): unbounded (0). A reconcile waiting for the status lane must not hold a slot
/// that a record of another Server needs; what a waiting reconcile holds is its decision.
const CONCURRENCY: u16 = 0;

/// The configuration every loop starts from.
pub fn config() -> kube::runtime::controller::Config {
    kube::runtime::controller::Config::default().concurrency(CONCURRENCY)
}

/// A loop over `K` whose status summarises the Servers of its namespace and reads its
/// OperationCalendars: a change of either wakes every `K` of that namespace, debounced by a
/// second so that a burst of Server changes costs a few reconciles, not one per change.
pub fn namespace_summary<K: Cached>(
    own: futures::stream::BoxStream<'static, Arc<K>>,
    store: kube::runtime::reflector::Store<K>,
    kinds: &crate::stores::Kinds,
) -> Controller<K> {
    use crate::stores::namespace_trigger;
    Controller::for_shared_stream(own, store.clone())
        .with_config(config().debounce(Duration::from_secs(1)))
        .watches_shared_stream(kinds.servers.subscribe(), namespace_trigger(&store))
        .watches_shared_stream(kinds.calendars.subscribe(), namespace_trigger(&store))
}

fn key<K: Cached>(kind: &str, o: &K) -> String {
    format!(
        "{kind}/{}/{}",
        o.namespace().unwrap_or_default(),
        o.name_any()
    )
}

/// Runs `controller` with `reconcile` until shutdown: counts and times each reconcile of
/// `kind`, and retries failures with the shared growing backoff.
pub async fn run_loop<K, F, Fut>(
    controller: Controller<K>,
    ctx: Arc<Context>,
    kind: &'static str,
    mut reconcile: F,
) where
    K: Cached,
    F: FnMut(Arc<K>, Arc<Context>) -> Fut,
    Fut: Future<Output = Result<Action, Error>> + Send + 'static,
{
    let wrapped = move |obj: Arc<K>, ctx: Arc<Context>| {
        let id = key(kind, obj.as_ref());
        let work = reconcile(obj, ctx.clone());
        async move {
            let _timer = ctx.metrics.reconcile(kind);
            let result = work.await;
            if result.is_ok() {
                ctx.failures.succeeded(&id);
            }
            result
        }
    };
    let policy = move |obj: Arc<K>, error: &Error, ctx: Arc<Context>| {
        ctx.metrics.error(kind, error.metric_label());
        let wait = ctx.failures.failed(&key(kind, obj.as_ref()));
        tracing::warn!(kind, object = %obj.name_any(), %error, retry_in = ?wait, "reconcile failed");
        Action::requeue(wait)
    };
    controller
        .shutdown_on_signal()
        .run(wrapped, policy, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(kind, error = %e, "reconcile");
            }
        })
        .await;
}

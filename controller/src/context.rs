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
    events: mpsc::Sender<(Event, ObjectReference)>,
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
            events: tx,
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

    /// Writes the status of the namespaced object `name` by server-side apply, as the controller.
    pub async fn apply_status<K: Cached>(
        &self,
        namespace: &str,
        name: &str,
        status: &impl serde::Serialize,
    ) -> Result<K, Error> {
        self.apply_status_as::<K>(FIELD_MANAGER, namespace, name, status)
            .await
    }

    /// Writes the status of `name` by server-side apply as field manager `manager`.
    pub async fn apply_status_as<K: Cached>(
        &self,
        manager: &str,
        namespace: &str,
        name: &str,
        status: &impl serde::Serialize,
    ) -> Result<K, Error> {
        let patch = serde_json::json!({
            "apiVersion": K::api_version(&()),
            "kind": K::kind(&()),
            "status": status,
        });
        kube::Api::<K>::namespaced(self.client.clone(), namespace)
            .patch_status(
                name,
                &kube::api::PatchParams::apply(manager).force(),
                &kube::api::Patch::Apply(&patch),
            )
            .await
            .map_err(Error::write(format!(
                "the status of {} {name}",
                K::kind(&())
            )))
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

/// A loop over `K` whose status summarises the Servers of its namespace and reads its
/// OperationCalendars: a change of either wakes every `K` of that namespace, debounced by a
/// second so that a burst of Server changes costs a few reconciles, not one per change.
pub fn namespace_summary<K: Cached>(
    own: futures::stream::BoxStream<'static, Arc<K>>,
    store: kube::runtime::reflector::Store<K>,
    kinds: &crate::stores::Kinds,
) -> Controller<K> {
    use crate::stores::all_in_namespace_of;
    let (a, b) = (store.clone(), store.clone());
    Controller::for_shared_stream(own, store)
        .with_config(kube::runtime::controller::Config::default().debounce(Duration::from_secs(1)))
        .watches_shared_stream(kinds.servers.subscribe(), move |s| {
            all_in_namespace_of(&a, s.as_ref())
        })
        .watches_shared_stream(kinds.calendars.subscribe(), move |c| {
            all_in_namespace_of(&b, c.as_ref())
        })
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

//! What every reconcile loop shares: the API client, the clock, the Event recorder and the
//! metrics.

use std::sync::Arc;

use jiff::Timestamp;
use kube::Client;
use kube::runtime::events::{Recorder, Reporter};

use crate::metrics::Metrics;

/// The field manager of everything the controller writes.
pub const FIELD_MANAGER: &str = "unyo-controller";

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
    /// Publishes Events (events.k8s.io) as `unyo-controller`.
    pub recorder: Recorder,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// How long an agent may be disconnected before it is an Incident.
    pub agent_grace: jiff::SignedDuration,
}

impl Context {
    /// A context for `client`.
    pub fn new(
        client: Client,
        clock: Clock,
        metrics: Arc<Metrics>,
        agent_grace: jiff::SignedDuration,
    ) -> Arc<Context> {
        let instance = std::env::var("POD_NAME")
            .or_else(|_| std::env::var("HOSTNAME"))
            .ok();
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: FIELD_MANAGER.to_string(),
                instance,
            },
        );
        Arc::new(Context {
            client,
            clock,
            recorder,
            metrics,
            agent_grace,
        })
    }

    /// Reconcile again at `wake` (half a second late, so that it has passed), or on the next
    /// change when there is no such instant or the clock is fixed.
    pub fn requeue_at(
        &self,
        wake: Option<Timestamp>,
        now: Timestamp,
    ) -> kube::runtime::controller::Action {
        match (wake, self.clock) {
            (Some(t), Clock::System) if t > now => {
                kube::runtime::controller::Action::requeue(std::time::Duration::from_millis(
                    (t.as_millisecond() - now.as_millisecond()) as u64 + 500,
                ))
            }
            _ => kube::runtime::controller::Action::await_change(),
        }
    }

    /// Writes the status of the namespaced object `name` by server-side apply, as the controller.
    pub async fn apply_status<K>(
        &self,
        namespace: &str,
        name: &str,
        status: &impl serde::Serialize,
    ) -> Result<K, kube::Error>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + std::fmt::Debug
            + serde::de::DeserializeOwned,
    {
        let patch = serde_json::json!({
            "apiVersion": K::api_version(&()),
            "kind": K::kind(&()),
            "status": status,
        });
        kube::Api::<K>::namespaced(self.client.clone(), namespace)
            .patch_status(
                name,
                &kube::api::PatchParams::apply(FIELD_MANAGER).force(),
                &kube::api::Patch::Apply(&patch),
            )
            .await
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

/// Runs a loop over `K` whose status summarises the Servers of its namespace: it is driven by
/// `K` and, for every change of a Server, by each `K` of that Server's namespace.
pub async fn run_namespace_summary<K, Fut>(
    ctx: Arc<Context>,
    namespace: Option<String>,
    kind: &'static str,
    reconcile: impl FnMut(Arc<K>, Arc<Context>) -> Fut,
    error_policy: impl Fn(Arc<K>, &Fut::Error, Arc<Context>) -> kube::runtime::controller::Action,
) where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
    Fut: futures::TryFuture<Ok = kube::runtime::controller::Action> + Send + 'static,
    Fut::Error: std::error::Error + Send + 'static,
{
    use futures::StreamExt;
    use kube::ResourceExt;
    use kube::runtime::reflector::ObjectRef;
    let objects: kube::Api<K> = api(&ctx.client, &namespace);
    let servers: kube::Api<unyo_crds::Server> = api(&ctx.client, &namespace);
    let controller =
        kube::runtime::Controller::new(objects, kube::runtime::watcher::Config::default());
    let store = controller.store();
    controller
        .watches(
            servers,
            kube::runtime::watcher::Config::default(),
            move |s: unyo_crds::Server| {
                let ns = s.namespace();
                store
                    .state()
                    .iter()
                    .filter(|o| o.namespace() == ns)
                    .map(|o| ObjectRef::from_obj(o.as_ref()))
                    .collect::<Vec<_>>()
            },
        )
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, kind, "reconcile");
            }
        })
        .await;
}

//! One reflector store per watched kind, created once and shared by every loop.
//!
//! Each kind has exactly one watch on the API server. Its events fill one store (read by every
//! loop through [`Stores`]) and are broadcast to every loop that subscribed before the watches
//! started. managedFields and the last-applied annotation are dropped before caching: no loop
//! reads them, and at fleet scale they are most of an object's size.

use std::sync::Arc;

use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::coordination::v1::Lease;
use kube::runtime::reflector::{ObjectRef, Store, store::Writer};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use unyo_crds::names::labels;
use unyo_crds::{
    BackupPlan, ChangeRecord, Incident, MonitoringPolicy, OperationCalendar, PatchBaseline, Server,
    VirusScanSchedule,
};

/// Events a subscriber may lag behind its kind's watch before the watch waits for it.
const BUFFER: usize = 4096;

/// What every cached kind is.
pub trait Cached:
    Resource<Scope = NamespaceResourceScope, DynamicType = ()>
    + Clone
    + std::fmt::Debug
    + serde::de::DeserializeOwned
    + Send
    + Sync
    + 'static
{
}

impl<K> Cached for K where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static
{
}

/// The watch of one kind, before it starts: loops subscribe to it, then [`Kinds::start`] runs
/// it.
pub struct Shared<K: Cached> {
    writer: Writer<K>,
    api: Api<K>,
    config: watcher::Config,
}

impl<K: Cached> Shared<K> {
    fn new(client: &Client, namespace: &Option<String>, config: watcher::Config) -> Self {
        Shared {
            writer: Writer::new_shared(BUFFER, ()),
            api: crate::context::api(client, namespace),
            config,
        }
    }

    /// The store this watch fills.
    pub fn store(&self) -> Store<K> {
        self.writer.as_reader()
    }

    /// Every object of this kind as it changes (and each once after the initial list), for
    /// one consumer that must keep reading it.
    pub fn subscribe(&self) -> BoxStream<'static, Arc<K>> {
        match self.writer.subscribe() {
            Some(handle) => handle.boxed(),
            None => futures::stream::empty().boxed(),
        }
    }

    fn run(self) -> impl Stream<Item = ()> + Send + 'static {
        let kind = K::kind(&());
        watcher(self.api, self.config)
            .default_backoff()
            .modify(|o: &mut K| {
                o.managed_fields_mut().clear();
                o.annotations_mut()
                    .remove("kubectl.kubernetes.io/last-applied-configuration");
            })
            .reflect_shared(self.writer)
            .map(move |event| {
                if let Err(e) = event {
                    tracing::warn!(kind = %kind, error = %e, "watch failed; retrying");
                }
            })
    }
}

/// The watches of every kind the controller reads.
pub struct Kinds {
    /// Servers.
    pub servers: Shared<Server>,
    /// The agents' Leases (labelled `unyo.dev/agent-of`), not other Leases.
    pub leases: Shared<Lease>,
    /// ChangeRecords.
    pub records: Shared<ChangeRecord>,
    /// Incidents.
    pub incidents: Shared<Incident>,
    /// MonitoringPolicies.
    pub policies: Shared<MonitoringPolicy>,
    /// VirusScanSchedules.
    pub schedules: Shared<VirusScanSchedule>,
    /// BackupPlans.
    pub plans: Shared<BackupPlan>,
    /// OperationCalendars.
    pub calendars: Shared<OperationCalendar>,
    /// PatchBaselines.
    pub baselines: Shared<PatchBaseline>,
}

impl Kinds {
    /// The watches of every kind in `namespace` (all namespaces when None), not yet started.
    pub fn new(client: &Client, namespace: &Option<String>) -> Kinds {
        let all = watcher::Config::default;
        Kinds {
            servers: Shared::new(client, namespace, all()),
            leases: Shared::new(client, namespace, all().labels(labels::AGENT_OF)),
            records: Shared::new(client, namespace, all()),
            incidents: Shared::new(client, namespace, all()),
            policies: Shared::new(client, namespace, all()),
            schedules: Shared::new(client, namespace, all()),
            plans: Shared::new(client, namespace, all()),
            calendars: Shared::new(client, namespace, all()),
            baselines: Shared::new(client, namespace, all()),
        }
    }

    /// Read handles of every store.
    pub fn stores(&self) -> Stores {
        Stores {
            servers: self.servers.store(),
            leases: self.leases.store(),
            records: self.records.store(),
            incidents: self.incidents.store(),
            policies: self.policies.store(),
            schedules: self.schedules.store(),
            plans: self.plans.store(),
            calendars: self.calendars.store(),
            baselines: self.baselines.store(),
        }
    }

    /// Starts every watch and waits until each store holds its initial list, so that no loop
    /// decides on a partial view.
    pub async fn start(self) -> Stores {
        let stores = self.stores();
        let runs: Vec<BoxStream<'static, ()>> = vec![
            self.servers.run().boxed(),
            self.leases.run().boxed(),
            self.records.run().boxed(),
            self.incidents.run().boxed(),
            self.policies.run().boxed(),
            self.schedules.run().boxed(),
            self.plans.run().boxed(),
            self.calendars.run().boxed(),
            self.baselines.run().boxed(),
        ];
        for run in runs {
            tokio::spawn(run.for_each(|()| async {}));
        }
        stores.wait_until_ready().await;
        stores
    }
}

/// Read handles of the shared stores.
#[derive(Clone)]
pub struct Stores {
    /// Servers.
    pub servers: Store<Server>,
    /// The agents' Leases.
    pub leases: Store<Lease>,
    /// ChangeRecords.
    pub records: Store<ChangeRecord>,
    /// Incidents.
    pub incidents: Store<Incident>,
    /// MonitoringPolicies.
    pub policies: Store<MonitoringPolicy>,
    /// VirusScanSchedules.
    pub schedules: Store<VirusScanSchedule>,
    /// BackupPlans.
    pub plans: Store<BackupPlan>,
    /// OperationCalendars.
    pub calendars: Store<OperationCalendar>,
    /// PatchBaselines.
    pub baselines: Store<PatchBaseline>,
}

impl Stores {
    async fn wait_until_ready(&self) {
        let ready = [
            self.servers.wait_until_ready().await,
            self.leases.wait_until_ready().await,
            self.records.wait_until_ready().await,
            self.incidents.wait_until_ready().await,
            self.policies.wait_until_ready().await,
            self.schedules.wait_until_ready().await,
            self.plans.wait_until_ready().await,
            self.calendars.wait_until_ready().await,
            self.baselines.wait_until_ready().await,
        ];
        if ready.iter().any(Result::is_err) {
            tracing::warn!("a store stopped before its initial list");
        }
        tracing::info!("every store holds its initial list");
    }
}

/// The objects of `store` in `namespace`, cloned out of the cache (for the pure decisions,
/// which take plain slices).
pub fn in_namespace<K: Cached>(store: &Store<K>, namespace: &str) -> Vec<K> {
    store
        .state()
        .iter()
        .filter(|o| o.meta().namespace.as_deref() == Some(namespace))
        .map(|o| o.as_ref().clone())
        .collect()
}

/// The Servers of `namespace`, shared with the cache (not cloned: they are the largest objects).
pub fn servers_in(store: &Store<Server>, namespace: &str) -> Vec<Arc<Server>> {
    store
        .state()
        .into_iter()
        .filter(|o| o.meta().namespace.as_deref() == Some(namespace))
        .collect()
}

/// The objects of `store` in `namespace` that `keep` accepts, cloned.
pub fn matching<K: Cached>(store: &Store<K>, namespace: &str, keep: impl Fn(&K) -> bool) -> Vec<K> {
    store
        .state()
        .iter()
        .filter(|o| o.meta().namespace.as_deref() == Some(namespace) && keep(o))
        .map(|o| o.as_ref().clone())
        .collect()
}

/// The object `name` of `namespace` in `store`.
pub fn get<K: Cached>(store: &Store<K>, namespace: &str, name: &str) -> Option<Arc<K>> {
    store.get(&ObjectRef::new(name).within(namespace))
}

/// References to every object of `store` in the namespace `of` is in (a namespace-wide
/// trigger: a change of `of` may change each of them).
pub fn all_in_namespace_of<K: Cached>(store: &Store<K>, of: &impl Resource) -> Vec<ObjectRef<K>> {
    let ns = of.meta().namespace.clone();
    store
        .state()
        .iter()
        .filter(|o| o.namespace() == ns)
        .map(|o| ObjectRef::from_obj(o.as_ref()))
        .collect()
}

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
use k8s_openapi::api::core::v1::ConfigMap;
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
/// Servers per page of the initial list: a page is held whole, untrimmed, while it is cached,
/// and a Server with its facts is tens of kilobytes.
const SERVER_PAGE: u32 = 50;

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
    trim: fn(&mut K),
}

impl<K: Cached> Shared<K> {
    fn new(client: &Client, namespace: &Option<String>, config: watcher::Config) -> Self {
        Shared {
            writer: Writer::new_shared(BUFFER, ()),
            api: crate::context::api(client, namespace),
            config,
            trim: |_| {},
        }
    }

    /// Also drops what `trim` removes from each object before caching.
    fn trimmed(mut self, trim: fn(&mut K)) -> Self {
        self.trim = trim;
        self
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
        let trim = self.trim;
        watcher(self.api, self.config)
            .default_backoff()
            .modify(move |o: &mut K| {
                o.managed_fields_mut().clear();
                o.annotations_mut()
                    .remove("kubectl.kubernetes.io/last-applied-configuration");
                trim(o);
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
    /// The records of written monthly reports (ConfigMaps labelled `unyo.dev/report=monthly`),
    /// not other ConfigMaps.
    pub reports: Shared<ConfigMap>,
}

impl Kinds {
    /// The watches of every kind in `namespace` (all namespaces when None), not yet started.
    pub fn new(client: &Client, namespace: &Option<String>) -> Kinds {
        let all = watcher::Config::default;
        Kinds {
            servers: Shared::new(client, namespace, all().page_size(SERVER_PAGE))
                .trimmed(trim_server),
            leases: Shared::new(client, namespace, all().labels(labels::AGENT_OF)),
            records: Shared::new(client, namespace, all()),
            incidents: Shared::new(client, namespace, all()),
            policies: Shared::new(client, namespace, all()),
            schedules: Shared::new(client, namespace, all()),
            plans: Shared::new(client, namespace, all()),
            calendars: Shared::new(client, namespace, all()),
            baselines: Shared::new(client, namespace, all()),
            reports: Shared::new(client, namespace, all().labels(&report_selector())),
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
            reports: self.reports.store(),
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
            self.reports.run().boxed(),
        ];
        for run in runs {
            tokio::spawn(run.for_each(|()| async {}));
        }
        stores.wait_until_ready().await;
        stores
    }
}

/// The label selector of the monthly report records.
fn report_selector() -> String {
    format!("{}={}", labels::REPORT, labels::REPORT_MONTHLY)
}

/// Drops the facts no loop reads from a cached Server (services, filesystems, time sync, the
/// facts' hash and agent version) and keeps its packages in compact form: at fleet scale the
/// facts are most of the controller's memory.
pub fn trim_server(s: &mut Server) {
    if let Some(o) = s.status.as_mut().and_then(|st| st.observed.as_mut()) {
        o.services = Vec::new();
        o.filesystems = Vec::new();
        o.time_sync = None;
        o.hash = None;
        o.agent_version = None;
        o.compact_packages();
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
    /// Records of written monthly reports.
    pub reports: Store<ConfigMap>,
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
            self.reports.wait_until_ready().await,
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
    matching(store, namespace, |_| true)
}

/// The objects of `store` in `namespace`, shared with the cache (not cloned: for the kinds
/// with many or large objects, Servers and Incidents).
pub fn shared_in<K: Cached>(store: &Store<K>, namespace: &str) -> Vec<Arc<K>> {
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

/// Objects this controller created that its store may not show yet: a decision made before
/// the watch delivers them still sees them (and does not try to create them again). Each is
/// forgotten once its store has it.
pub struct Recent<K: Cached>(std::sync::Mutex<Vec<K>>);

impl<K: Cached> Default for Recent<K> {
    fn default() -> Self {
        Recent(std::sync::Mutex::new(Vec::new()))
    }
}

impl<K: Cached> Recent<K> {
    /// Remembers `obj`, just created.
    pub fn add(&self, obj: K) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(obj);
    }

    /// Adds to `objects` (read from `store`) the recent ones `keep` accepts that `store` does
    /// not have yet, and forgets those it has.
    pub fn fill(&self, store: &Store<K>, objects: &mut Vec<K>, keep: impl Fn(&K) -> bool) {
        let mut recent = self.0.lock().unwrap_or_else(|e| e.into_inner());
        recent.retain(|o| store.get(&ObjectRef::from_obj(o)).is_none());
        objects.extend(recent.iter().filter(|o| keep(o)).cloned());
    }
}

/// The object `name` of `namespace` in `store`.
pub fn get<K: Cached>(store: &Store<K>, namespace: &str, name: &str) -> Option<Arc<K>> {
    store.get(&ObjectRef::new(name).within(namespace))
}

/// A trigger for `watches_shared_stream`: a change of any object wakes every object of `store`
/// in its namespace (each of them may depend on it).
pub fn namespace_trigger<K: Cached, O: Resource>(
    store: &Store<K>,
) -> impl Fn(Arc<O>) -> Vec<ObjectRef<K>> + Send + Sync + 'static {
    let store = store.clone();
    move |of| {
        let ns = of.meta().namespace.clone();
        store
            .state()
            .iter()
            .filter(|o| o.namespace() == ns)
            .map(|o| ObjectRef::from_obj(o.as_ref()))
            .collect()
    }
}

/// The sample fleet's objects, for the loops' unit tests.
#[cfg(test)]
pub mod samples {
    /// The sample `file` (under manifests/samples), its first document, as `K`.
    pub fn sample<K: serde::de::DeserializeOwned>(file: &str) -> K {
        let path = format!("{}/../manifests/samples/{file}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap();
        let first = text.split("\n---").next().unwrap();
        serde_saphyr::from_str(first).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use unyo_crds::drift::compare;

    #[test]
    fn a_trimmed_server_drifts_exactly_as_the_whole_one() {
        let s: Server = serde_json::from_value(serde_json::json!({
            "apiVersion": "unyo.dev/v1alpha1", "kind": "Server",
            "metadata": {"name": "db01", "namespace": "mie"},
            "spec": {"hostname": "db01", "role": "DB",
                     "os": {"name": "Debian GNU/Linux", "version": "12"},
                     "software": [{"name": "postgresql-15", "version": "15.10"},
                                  {"name": "absent", "version": "1"}],
                     "drift": {"strict": ["software"]}},
            "status": {"observed": {
                "hostname": "db01", "hash": "abc", "agentVersion": "0.1.0",
                "os": {"name": "Debian GNU/Linux", "version": "12"},
                "packages": [{"name": "postgresql-15", "version": "15.9", "architecture": "amd64"},
                             {"name": "extra", "version": "2", "architecture": "all"}],
                "services": [{"name": "ssh.service", "state": "active"}],
                "filesystems": [{"mountPoint": "/", "sizeBytes": 10, "usedBytes": 5}]}}
        }))
        .unwrap();
        let before = compare(
            &s.spec,
            s.status.as_ref().unwrap().observed.as_ref().unwrap(),
        );
        let mut trimmed = s.clone();
        trim_server(&mut trimmed);
        let o = trimmed.status.as_ref().unwrap().observed.as_ref().unwrap();
        assert!(o.packages.is_empty() && o.services.is_empty() && o.filesystems.is_empty());
        assert!(o.hash.is_none() && o.package_set.as_ref().is_some_and(|p| p.len() == 2));
        assert_eq!(compare(&trimmed.spec, o), before);
        assert_eq!(before.len(), 3, "{before:?}");
    }
}

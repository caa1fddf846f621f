//! One kind of work that custom resources give this host — virus scans, backups, patches —
//! behind one trait: the kind that asks for it, its job on this host, what the host policy
//! lets through, the on-request annotations it answers, its run, and its slot of the status
//! (with the state kept for it). The assignment
//! (`assign.rs`) follows every operation the same way; adding one is a module that implements
//! this trait and a line in [`crate::ops::start_all`].

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::path::Path;

use futures::future::BoxFuture;
use kube::core::NamespaceResourceScope;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use unyo_crds::server::Refusal;
use unyo_crds::{OperationCalendar, Server};

use crate::hostpolicy::HostPolicy;

/// The latest value of each on-request annotation an operation answers.
pub type Requests = BTreeMap<&'static str, watch::Receiver<Option<String>>>;

/// One kind of work on this host.
pub trait Operation: Send + Sync + 'static {
    /// The kind of custom resource that asks for it.
    type Resource: kube::Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static;
    /// One unit of it on this host, as kept in the state directory (`assigned-<NAME>`) so that
    /// it goes on after a restart while the API server is unreachable.
    type Job: Clone + PartialEq + Debug + Serialize + DeserializeOwned + Send + Sync + 'static;
    /// Its part of the Server's `status.operations`, kept in the state directory.
    type Slot: crate::report::Slot;
    /// Its name: the state file's and the scheduler's.
    const NAME: &'static str;
    /// The Server annotations that ask it for something now; a new value runs it once.
    const REQUESTS: &'static [&'static str];

    /// The jobs of the resources that select `server`.
    fn jobs(
        server: &Server,
        all: &[Self::Resource],
        calendars: &[OperationCalendar],
    ) -> Vec<Self::Job>;

    /// The job as the host's policy lets it run (defaults filled in), or every refusal.
    fn admit(policy: &HostPolicy, root: &Path, job: Self::Job) -> Result<Self::Job, Vec<Refusal>>;

    /// Runs until shutdown: the jobs as they change, the requests as they come.
    fn run(
        self,
        jobs: watch::Receiver<Vec<Self::Job>>,
        requests: Requests,
    ) -> BoxFuture<'static, ()>;
}

/// Takes the receiver of `annotation` out of `requests`. One the operation did not declare
/// in `REQUESTS` never changes (its sender is kept for the agent's life, so that waiting on
/// it never ends the operation).
pub fn request(requests: &mut Requests, annotation: &str) -> watch::Receiver<Option<String>> {
    requests.remove(annotation).unwrap_or_else(|| {
        tracing::error!(%annotation, "an operation asked for a request it did not declare");
        let (tx, rx) = watch::channel(None);
        Box::leak(Box::new(tx));
        rx
    })
}

//! What this host has to do: its own Server (watched by name), and the MonitoringPolicies and
//! OperationCalendars of its namespace, turned into the list of checks it runs with the
//! selection function the controller shares. The last assignment is kept in the state
//! directory so that checks go on after a restart while the API server is unreachable.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use tokio::sync::watch;
use unyo_crds::common::parse_duration;
use unyo_crds::selection::monitoring_policies_for;
use unyo_crds::server::Refusal;
use unyo_crds::{MonitoringPolicy, OperationCalendar, Server};

use crate::checks::Assigned;
use crate::hostpolicy::HostPolicy;
use crate::ops::operation::Operation;
use crate::report::Reporter;
use crate::state::Kept;

/// What the host allows, and where its paths are.
pub struct HostRules {
    /// The host policy in force.
    pub policy: watch::Receiver<std::sync::Arc<HostPolicy>>,
    /// The host's root (`--root`).
    pub root: PathBuf,
}

/// An operation as the assignment follows it, whatever its types: a watch of its kind, its
/// jobs for this host (judged by the host policy, kept in the state directory), and the
/// on-request annotations it answers.
pub trait Followed: Send + Sync {
    /// The watch of its kind, filling its store (once).
    fn stream(
        &mut self,
        client: &Client,
        namespace: &str,
    ) -> BoxStream<'static, Result<(), watcher::Error>>;
    /// Whether its store has had its first list.
    fn ready(&self) -> bool;
    /// Publishes its jobs for `server`; refused ones go to `refusals`. Whether it has any.
    fn publish(
        &self,
        server: &Server,
        calendars: &[OperationCalendar],
        rules: (&HostPolicy, &Path),
        refusals: &mut Vec<Refusal>,
    ) -> bool;
    /// Publishes no jobs (the Server is gone).
    fn clear(&self);
    /// The annotations it answers, with where a new value goes.
    fn requests(&self) -> Vec<(&'static str, &watch::Sender<Option<String>>)>;
}

/// What the assignment feeds: the checks, and every operation.
pub struct Work {
    /// Where the checks to run go.
    pub checks: watch::Sender<Vec<Assigned>>,
    /// Every operation, as [`start`] returned it.
    pub operations: Vec<Box<dyn Followed>>,
}

/// One operation, typed.
struct Follow<O: Operation> {
    store: Store<O::Resource>,
    writer: std::sync::Mutex<Option<reflector::store::Writer<O::Resource>>>,
    jobs: watch::Sender<Vec<O::Job>>,
    requests: BTreeMap<&'static str, watch::Sender<Option<String>>>,
    kept: Kept<Vec<O::Job>>,
}

/// Starts `op` on `tasks` with the jobs kept from the last run and its status slot as it was
/// kept, and returns how the assignment follows it.
pub async fn start<O: Operation>(
    op: O,
    state_dir: &Path,
    reporter: &Reporter,
    tasks: &mut tokio::task::JoinSet<()>,
) -> Box<dyn Followed> {
    // Its slot of the status, with what was kept of it, before anything runs.
    reporter.register::<O::Slot>().await;
    let kept: Kept<Vec<O::Job>> = Kept::new(state_dir, format!("assigned-{}", O::NAME));
    let (jobs, jobs_rx) = watch::channel(kept.load());
    let mut requests = BTreeMap::new();
    let mut receivers = BTreeMap::new();
    for annotation in O::REQUESTS {
        let (tx, rx) = watch::channel(None);
        requests.insert(*annotation, tx);
        receivers.insert(*annotation, rx);
    }
    tasks.spawn(op.run(jobs_rx, receivers));
    let (store, writer) = reflector::store();
    Box::new(Follow::<O> {
        store,
        writer: std::sync::Mutex::new(Some(writer)),
        jobs,
        requests,
        kept,
    })
}

impl<O: Operation> Followed for Follow<O> {
    fn stream(
        &mut self,
        client: &Client,
        namespace: &str,
    ) -> BoxStream<'static, Result<(), watcher::Error>> {
        let taken = self.writer.lock().ok().and_then(|mut w| w.take());
        let Some(writer) = taken else {
            return futures::stream::empty().boxed();
        };
        let api: Api<O::Resource> = Api::namespaced(client.clone(), namespace);
        watcher(api, watcher::Config::default())
            .default_backoff()
            .reflect(writer)
            .map(|e| e.map(|_| ()))
            .boxed()
    }

    fn ready(&self) -> bool {
        matches!(self.store.wait_until_ready().now_or_never(), Some(Ok(())))
    }

    fn publish(
        &self,
        server: &Server,
        calendars: &[OperationCalendar],
        (policy, root): (&HostPolicy, &Path),
        refusals: &mut Vec<Refusal>,
    ) -> bool {
        let all: Vec<O::Resource> = self.store.state().iter().map(|r| (**r).clone()).collect();
        let mut admitted = Vec::new();
        for job in O::jobs(server, &all, calendars) {
            match O::admit(policy, root, job) {
                Ok(job) => admitted.push(job),
                Err(refused) => refusals.extend(refused),
            }
        }
        self.kept.keep(&admitted);
        let any = !admitted.is_empty();
        replace_if_changed(&self.jobs, admitted);
        any
    }

    fn clear(&self) {
        self.jobs
            .send_if_modified(|a| !std::mem::take(a).is_empty());
    }

    fn requests(&self) -> Vec<(&'static str, &watch::Sender<Option<String>>)> {
        self.requests.iter().map(|(a, tx)| (*a, tx)).collect()
    }
}

/// Default sampling interval of a policy that names none.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);

/// The checks of the policies that select `server`.
pub fn assignment(server: &Server, policies: &[MonitoringPolicy]) -> Vec<Assigned> {
    monitoring_policies_for(server, policies)
        .into_iter()
        .flat_map(|p| {
            let interval = parse_duration(&p.spec.interval).unwrap_or(DEFAULT_INTERVAL);
            let name = p.name_any();
            p.spec.checks.iter().map(move |c| Assigned {
                policy: name.clone(),
                interval_ms: u64::try_from(interval.as_millis()).unwrap_or(u64::MAX),
                check: c.clone(),
            })
        })
        .collect()
}

/// The assignment's kinds of state in the state directory (what to run after a restart while
/// the API server is unreachable), under names of their own; each operation keeps its jobs as
/// `assigned-<its name>`.
pub mod kept {
    use std::path::Path;

    use crate::checks::Assigned;
    use crate::state::Kept;

    /// The checks assigned.
    pub fn checks(dir: &Path) -> Kept<Vec<Assigned>> {
        Kept::new(dir, "assigned-checks")
    }
    /// The last value of an on-request annotation that was handled.
    pub fn handled(dir: &Path, annotation: &str) -> Kept<String> {
        Kept::new(
            dir,
            format!("handled-{}", annotation.trim_start_matches("unyo.dev/")),
        )
    }
}

/// Watches the Server, policies, calendars and each operation's kind, and publishes the
/// assignment on every change.
pub async fn run(
    client: Client,
    namespace: String,
    server: String,
    state_dir: PathBuf,
    mut rules: HostRules,
    work: Work,
    reporter: Reporter,
) {
    let Work {
        checks,
        mut operations,
    } = work;
    let servers: Api<Server> = Api::namespaced(client.clone(), &namespace);
    let policies: Api<MonitoringPolicy> = Api::namespaced(client.clone(), &namespace);
    let calendars: Api<OperationCalendar> = Api::namespaced(client.clone(), &namespace);
    let (server_store, server_writer) = reflector::store::<Server>();
    let (policy_store, policy_writer) = reflector::store::<MonitoringPolicy>();
    let (calendar_store, calendar_writer) = reflector::store::<OperationCalendar>();
    let own = watcher::Config::default().fields(&format!("metadata.name={server}"));
    let mut all = vec![
        follow(watcher(servers, own), server_writer),
        follow(watcher(policies, watcher::Config::default()), policy_writer),
        follow(
            watcher(calendars, watcher::Config::default()),
            calendar_writer,
        ),
    ];
    all.extend(operations.iter_mut().map(|o| o.stream(&client, &namespace)));
    let streams = futures::stream::select_all(all);
    let stores = Stores {
        server: server_store,
        policies: policy_store,
        calendars: calendar_store,
    };
    let mut reported_facts_adopted = false;
    futures::pin_mut!(streams);
    loop {
        tokio::select! {
            event = streams.next() => match event {
                None => break,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "watch failed; retrying");
                    continue;
                }
                Some(Ok(())) => {}
            },
            changed = rules.policy.changed() => if changed.is_err() { break },
        }
        let policy = rules.policy.borrow_and_update().clone();
        let out = Outputs {
            checks: &checks,
            operations: &operations,
        };
        publish(
            &stores,
            &server,
            &state_dir,
            (&policy, &rules.root),
            out,
            &reporter,
            &mut reported_facts_adopted,
        )
        .await;
    }
}

/// A watch of `K` filling its store.
fn follow<K>(
    stream: impl futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
    writer: reflector::store::Writer<K>,
) -> BoxStream<'static, Result<(), watcher::Error>>
where
    K: kube::Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
{
    stream
        .default_backoff()
        .reflect(writer)
        .map(|e| e.map(|_| ()))
        .boxed()
}

/// The stores every assignment reads.
struct Stores {
    server: Store<Server>,
    policies: Store<MonitoringPolicy>,
    calendars: Store<OperationCalendar>,
}

/// Where the assignment goes.
struct Outputs<'a> {
    checks: &'a watch::Sender<Vec<Assigned>>,
    operations: &'a [Box<dyn Followed>],
}

fn replace_if_changed<T: PartialEq>(tx: &watch::Sender<T>, next: T) {
    tx.send_if_modified(|current| {
        if *current == next {
            false
        } else {
            *current = next;
            true
        }
    });
}

async fn publish(
    stores: &Stores,
    name: &str,
    state_dir: &Path,
    (policy, root): (&HostPolicy, &Path),
    out: Outputs<'_>,
    reporter: &Reporter,
    adopted: &mut bool,
) {
    // Until the first lists are in, the stores are empty: keep the saved assignment. (Asked
    // without waiting: the stores fill only while the watch streams are polled.) Every store:
    // a job judged before its calendar has arrived would say the calendar does not exist.
    let ready = |ready: Option<Result<(), _>>| matches!(ready, Some(Ok(())));
    if !ready(stores.server.wait_until_ready().now_or_never())
        || !ready(stores.policies.wait_until_ready().now_or_never())
        || !ready(stores.calendars.wait_until_ready().now_or_never())
        || !out.operations.iter().all(|o| o.ready())
    {
        return;
    }
    let Some(server) = stores
        .server
        .state()
        .into_iter()
        .find(|s| s.name_any() == name)
    else {
        tracing::warn!(server = %name, "this host's Server does not exist; no checks");
        out.checks
            .send_if_modified(|a| !std::mem::take(a).is_empty());
        out.operations.iter().for_each(|o| o.clear());
        return;
    };
    if !*adopted {
        reporter
            .adopt_reported_facts(server.status.as_ref().and_then(|s| s.observed.clone()))
            .await;
        *adopted = true;
    }
    reporter.set_server_uid(server.uid()).await;
    let policies: Vec<MonitoringPolicy> = stores
        .policies
        .state()
        .iter()
        .map(|p| (**p).clone())
        .collect();
    let calendars: Vec<OperationCalendar> = stores
        .calendars
        .state()
        .iter()
        .map(|c| (**c).clone())
        .collect();
    // What the host's policy refuses does not run at all; the refusals go to status.
    let (checks, mut refusals) =
        crate::hostpolicy::admit_checks(policy, root, assignment(&server, &policies));
    let mut busy = Vec::new();
    for o in out.operations {
        busy.push(o.publish(&server, &calendars, (policy, root), &mut refusals));
    }
    // The stores' order is arbitrary; the status is written only when this list changes.
    refusals.sort_by(|a, b| (&a.kind, &a.name, &a.field).cmp(&(&b.kind, &b.name, &b.field)));
    tracing::debug!(
        checks = checks.len(),
        refusals = refusals.len(),
        "assignment evaluated"
    );
    reporter.refusals(refusals).await;
    kept::checks(state_dir).keep(&checks);
    replace_if_changed(out.checks, checks);
    // A new value of an on-request annotation runs the operation once (also across restarts);
    // it waits until a resource of the operation selecting the server has arrived.
    for (o, has_jobs) in out.operations.iter().zip(busy) {
        for (annotation, sender) in o.requests() {
            if has_jobs && let Some(asked) = server.annotations().get(annotation) {
                let handled = kept::handled(state_dir, annotation);
                if *asked != handled.load() {
                    handled.keep(asked);
                    sender.send_replace(Some(asked.clone()));
                }
            }
        }
    }
}

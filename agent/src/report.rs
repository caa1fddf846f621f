//! Reporting into the API: the Server's `status.observed` and `status.checks` by server-side
//! apply (field manager `unyo-agent`), and an Event for every check transition.
//!
//! Everything to report first goes to the state directory: transitions are appended to
//! `journal.jsonl` and the current results kept in `checks.json`. A writer task delivers them
//! with backoff; while the API server is unreachable the journal grows, and when it is back the
//! Events are created with their original times (under deterministic names, so a retry never
//! duplicates one) and the status is applied. Nothing is lost across a restart either.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::{Mutex, Notify};
use unyo_crds::Server;
use unyo_crds::limits::{self, Bounded};
use unyo_crds::server::{CheckResult, CheckState, ObservedFacts};

use crate::checks::Transition;
use crate::facts::content_hash;
use crate::metrics::Metrics;

/// The most journal entries that wait for delivery.
pub const MAX_JOURNAL: usize = 10_000;

/// The field manager of everything the agent writes.
pub const FIELD_MANAGER: &str = "unyo-agent";

/// A check transition waiting to be reported as an Event.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct JournalEntry {
    /// The MonitoringPolicy.
    pub policy: String,
    /// The check.
    pub check: String,
    /// The new state.
    pub state: CheckState,
    /// When it began.
    pub since: Timestamp,
    /// The value.
    pub value: Option<f64>,
    /// What was seen.
    pub message: String,
    /// The Event's reason when it is not a check transition (e.g. `VirusDetected`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl JournalEntry {
    /// The Event's name: the same for the same entry, so a retry cannot duplicate it, and
    /// different for different entries (two notes in the same second included); at most 253
    /// characters whatever the Server's name.
    fn event_name(&self, server: &str) -> String {
        let mut h = Sha256::new();
        for part in [
            self.policy.as_str(),
            self.check.as_str(),
            &format!("{:?}", self.state),
            &self.since.to_string(),
            self.reason.as_deref().unwrap_or(""),
            self.message.as_str(),
        ] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        let stem: String = format!("unyo-agent-{server}")
            .chars()
            .take(253 - 17)
            .collect();
        let stem = stem.trim_end_matches(['.', '-']);
        format!("{stem}.{}", hex::encode(&h.finalize()[..8]))
    }
}

#[derive(Default)]
struct State {
    facts: Option<ObservedFacts>,
    checks: BTreeMap<(String, String), CheckResult>,
    /// Each operation's part of `status.operations`, by its file name.
    slots: BTreeMap<&'static str, SlotEntry>,
    refusals: Vec<unyo_crds::server::Refusal>,
    requests: BTreeMap<String, unyo_crds::server::RequestResult>,
    journal: Vec<JournalEntry>,
    /// Bumped on every change; the writer clears `dirty` only for what it delivered.
    version: u64,
    delivered: u64,
    server_uid: Option<String>,
}

/// Hands results to the API, through the state directory.
#[derive(Clone)]
pub struct Reporter {
    state: Arc<Mutex<State>>,
    wake: Arc<Notify>,
    files: Files,
    dir: PathBuf,
    server: String,
    namespace: String,
    metrics: Arc<Metrics>,
}

/// Now, in whole seconds (what metav1.Time keeps).
pub fn now_seconds() -> Timestamp {
    let now = Timestamp::now();
    Timestamp::from_second(now.as_second()).unwrap_or(now)
}

use crate::state::{Kept, write_atomic};

/// The reporter's kinds of state in the state directory.
#[derive(Clone)]
struct Files {
    checks: Kept<Vec<CheckResult>>,
    requests: Kept<BTreeMap<String, unyo_crds::server::RequestResult>>,
    facts: Kept<Option<ObservedFacts>>,
}

impl Files {
    fn new(dir: &std::path::Path) -> Files {
        Files {
            checks: Kept::new(dir, "checks"),
            requests: Kept::new(dir, "requests"),
            facts: Kept::new(dir, "facts"),
        }
    }
}

/// A request an earlier run left running is reported as interrupted (and not run again: the
/// request's value was taken before it ran).
fn interrupted(state: &mut State, files: &Files) {
    use unyo_crds::server::RequestState;
    let now = Time(now_seconds());
    let mut changed = false;
    for r in state
        .requests
        .values_mut()
        .filter(|r| r.result == RequestState::Running)
    {
        r.result = RequestState::Interrupted;
        r.message =
            Some("interrupted: the agent stopped while it ran; ask again with a new value".into());
        r.at = now.clone();
        changed = true;
    }
    if changed {
        files.requests.keep(&state.requests);
    }
}

/// A part of the Server's `status.operations` that one operation owns, kept in the state
/// directory under its own file name. The operation's module declares it; the reporter keeps
/// and delivers every slot the same way.
pub trait Slot:
    Serialize + serde::de::DeserializeOwned + Default + Clone + PartialEq + Send + Sync + 'static
{
    /// Its file in the state directory.
    const FILE: &'static str;
    /// Puts it into the status.
    fn fill(&self, into: &mut unyo_crds::server::OperationResults);
}

/// A slot with its type erased.
struct SlotEntry {
    value: serde_json::Value,
    fill: fn(&serde_json::Value, &mut unyo_crds::server::OperationResults),
}

fn fill_with<S: Slot>(value: &serde_json::Value, into: &mut unyo_crds::server::OperationResults) {
    if let Ok(slot) = serde_json::from_value::<S>(value.clone()) {
        slot.fill(into);
    }
}

/// Slot `S` as `state` holds it (its default before anything was kept).
fn current<S: Slot>(state: &State) -> S {
    state
        .slots
        .get(S::FILE)
        .and_then(|e| serde_json::from_value(e.value.clone()).ok())
        .unwrap_or_default()
}

fn entry<S: Slot>(slot: &S) -> SlotEntry {
    SlotEntry {
        value: serde_json::to_value(slot).unwrap_or_default(),
        fill: fill_with::<S>,
    }
}

impl Reporter {
    /// A reporter for `server`, keeping its journal in `dir` (created if missing) and picking
    /// up what an earlier run left there.
    pub fn open(
        dir: PathBuf,
        server: &str,
        namespace: &str,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Reporter> {
        std::fs::create_dir_all(&dir)?;
        let files = Files::new(&dir);
        let mut state = State {
            checks: files
                .checks
                .load()
                .into_iter()
                .map(|c| ((c.policy.clone(), c.check.clone()), c))
                .collect(),
            requests: files.requests.load(),
            // What the host was last seen to be: a restart never reports less than it knew.
            facts: files.facts.load(),
            ..State::default()
        };
        interrupted(&mut state, &files);
        if let Ok(text) = std::fs::read_to_string(dir.join("journal.jsonl")) {
            // A line torn by a kill mid-append is skipped; every whole line is kept.
            state.journal = text
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect();
        }
        // Whatever an earlier run left is reported again.
        state.version = 1;
        metrics.journal_pending(state.journal.len());
        Ok(Reporter {
            state: Arc::new(Mutex::new(state)),
            wake: Arc::new(Notify::new()),
            files,
            dir,
            server: server.to_string(),
            namespace: namespace.to_string(),
            metrics,
        })
    }

    /// The state last reported for a check (kept across restarts).
    pub async fn current_state(&self, key: &(String, String)) -> Option<CheckState> {
        self.state.lock().await.checks.get(key).map(|c| c.state)
    }

    /// Records the Server's uid for the Events' involvedObject.
    pub async fn set_server_uid(&self, uid: Option<String>) {
        self.state.lock().await.server_uid = uid;
    }

    fn persist_checks(&self, state: &State) -> std::io::Result<()> {
        let list: Vec<CheckResult> = state.checks.values().cloned().collect();
        self.files.checks.save(&list)
    }

    /// Journals an entry: appended to the file (fsynced) and kept for delivery. At most
    /// [`MAX_JOURNAL`] entries wait; beyond that the oldest is dropped and counted (the status
    /// always carries the current state, only that Event is lost).
    fn journal(&self, state: &mut State, entry: JournalEntry) {
        self.append_journal(&entry);
        state.journal.push(entry);
        if state.journal.len() > MAX_JOURNAL {
            let excess = state.journal.len() - MAX_JOURNAL;
            state.journal.drain(..excess);
            self.metrics.events_dropped("journal_full", excess);
        }
    }

    /// Appends an entry to the journal file and fsyncs it; on failure the entry is kept in
    /// memory only (and said so).
    fn append_journal(&self, entry: &JournalEntry) {
        use std::io::Write;
        let line = serde_json::to_string(entry).unwrap_or_default();
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("journal.jsonl"))
            .and_then(|mut f| {
                writeln!(f, "{line}")?;
                f.sync_all()
            });
        if let Err(e) = appended {
            tracing::error!(error = %e, "cannot write the journal; the entry is kept in memory only");
        }
    }

    /// Records a check transition: journal first (fsynced), then the current results.
    pub async fn transition(&self, key: &(String, String), t: Transition) {
        let entry = JournalEntry {
            policy: key.0.clone(),
            check: key.1.clone(),
            state: t.state,
            since: t.since,
            value: t.value,
            message: t.message.clone(),
            reason: None,
        };
        let mut state = self.state.lock().await;
        self.journal(&mut state, entry);
        state.checks.insert(
            key.clone(),
            CheckResult {
                policy: key.0.clone(),
                check: key.1.clone(),
                state: t.state,
                since: Time(t.since),
                value: t.value,
                message: Some(t.message),
            },
        );
        if let Err(e) = self.persist_checks(&state) {
            tracing::error!(error = %e, "cannot write checks.json");
        }
        state.version += 1;
        self.metrics.journal_pending(state.journal.len());
        drop(state);
        self.wake.notify_one();
    }

    /// A kind of state of its own in the state directory (an operation's, e.g. a run under way).
    pub fn kept<T: Serialize + serde::de::DeserializeOwned + Default>(
        &self,
        name: &str,
    ) -> Kept<T> {
        Kept::new(&self.dir, name)
    }

    /// Adds slot `S` with what the state directory kept of it, so that it is reported from
    /// the first delivery on (a restart never reports less than the host knew).
    pub async fn register<S: Slot>(&self) {
        let kept: S = self.kept(S::FILE).load();
        let mut state = self.state.lock().await;
        state.slots.entry(S::FILE).or_insert_with(|| entry(&kept));
        state.version += 1;
        drop(state);
        self.wake.notify_one();
    }

    /// Slot `S` as it is now.
    pub async fn slot<S: Slot>(&self) -> S {
        current::<S>(&*self.state.lock().await)
    }

    /// Changes slot `S` with `change`, whose returned entries are journaled first (as Events);
    /// kept and delivered only when something changed.
    pub async fn update<S: Slot>(&self, change: impl FnOnce(&mut S) -> Vec<JournalEntry>) {
        let mut state = self.state.lock().await;
        let before: S = current(&state);
        let mut slot = before.clone();
        let notes = change(&mut slot);
        if slot == before && notes.is_empty() {
            return;
        }
        for note in notes {
            self.journal(&mut state, note);
        }
        self.kept::<S>(S::FILE).keep(&slot);
        state.slots.insert(S::FILE, entry(&slot));
        state.version += 1;
        self.metrics.journal_pending(state.journal.len());
        drop(state);
        self.wake.notify_one();
    }

    /// Sets what the host policy refuses now; each refusal not refused before becomes a
    /// `RefusedByHostPolicy` Event and is counted.
    pub async fn refusals(&self, now: Vec<unyo_crds::server::Refusal>) {
        let mut state = self.state.lock().await;
        if state.refusals == now {
            return;
        }
        let new: Vec<&unyo_crds::server::Refusal> =
            now.iter().filter(|r| !state.refusals.contains(r)).collect();
        self.metrics.refusals(&now, &new);
        for r in &new {
            tracing::warn!(kind = %r.kind, name = %r.name, field = %r.field, rule = %r.rule, "refused by the host policy: {}", r.message);
            let entry = JournalEntry {
                policy: format!("{}/{}", r.kind, r.name),
                check: format!("refused:{}", r.field),
                state: CheckState::Warning,
                since: now_seconds(),
                value: None,
                message: format!(
                    "{} {}: {} refused by host policy rule {}: {}",
                    r.kind, r.name, r.field, r.rule, r.message
                ),
                reason: Some(unyo_crds::names::reasons::REFUSED_BY_HOST_POLICY.into()),
            };
            self.journal(&mut state, entry);
        }
        state.refusals = now;
        state.version += 1;
        drop(state);
        self.wake.notify_one();
    }

    /// Records the answer to a request made by `annotation` (its value `value`) in the
    /// Server's status, where the CLI reads it.
    pub async fn request(
        &self,
        annotation: &str,
        value: &str,
        result: unyo_crds::server::RequestState,
        message: &str,
    ) {
        let mut state = self.state.lock().await;
        state.requests.insert(
            annotation.to_string(),
            unyo_crds::server::RequestResult {
                annotation: annotation.to_string(),
                value: value.to_string(),
                result,
                message: Some(message.chars().take(1024).collect()),
                at: Time(now_seconds()),
            },
        );
        self.files.requests.keep(&state.requests);
        state.version += 1;
        drop(state);
        self.wake.notify_one();
    }

    /// An Event about an operation on request (e.g. a restore), journaled like transitions.
    pub async fn note(&self, reason: &str, message: &str, warning: bool) {
        let mut state = self.state.lock().await;
        let entry = JournalEntry {
            policy: "operations".into(),
            check: reason.to_string(),
            state: if warning {
                CheckState::Warning
            } else {
                CheckState::OK
            },
            since: now_seconds(),
            value: None,
            message: message.to_string(),
            reason: Some(reason.to_string()),
        };
        self.journal(&mut state, entry);
        state.version += 1;
        drop(state);
        self.wake.notify_one();
    }

    /// Drops the result of a check that is no longer assigned.
    pub async fn remove(&self, key: &(String, String)) {
        let mut state = self.state.lock().await;
        if state.checks.remove(key).is_some() {
            let _ = self.persist_checks(&state);
            state.version += 1;
            drop(state);
            self.wake.notify_one();
        }
    }

    /// Offers freshly collected facts; they are reported only when their content changed.
    pub async fn facts(&self, mut facts: ObservedFacts) -> bool {
        let mut state = self.state.lock().await;
        if let Some(before) = &state.facts {
            crate::facts::steady_usage(&before.filesystems, &mut facts.filesystems);
        }
        let hash = content_hash(&facts);
        if state.facts.as_ref().and_then(|f| f.hash.as_ref()) == Some(&hash) {
            return false;
        }
        facts.hash = Some(hash);
        facts.observed_at = Some(Time(now_seconds()));
        state.facts = Some(facts);
        self.files.facts.keep(&state.facts);
        state.version += 1;
        drop(state);
        self.wake.notify_one();
        true
    }

    /// Adopts the facts already in the Server's status (from an earlier run), so unchanged
    /// facts are not written again after a restart.
    pub async fn adopt_reported_facts(&self, reported: Option<ObservedFacts>) {
        let mut state = self.state.lock().await;
        if state.facts.is_none()
            && let Some(f) = reported
            && f.hash.is_some()
        {
            state.facts = Some(f);
        }
    }

    /// Delivers everything to the API server, retrying with backoff until shutdown.
    pub async fn run_writer(self, client: Client) {
        let servers: Api<Server> = Api::namespaced(client.clone(), &self.namespace);
        let events: Api<Event> = Api::namespaced(client, &self.namespace);
        let mut backoff = Duration::from_secs(1);
        loop {
            let pending = {
                let s = self.state.lock().await;
                s.version != s.delivered
            };
            if !pending {
                self.wake.notified().await;
                continue;
            }
            match self.deliver(&servers, &events).await {
                Ok(()) => {
                    self.metrics.api_write(true);
                    backoff = Duration::from_secs(1);
                }
                Err(e) => {
                    self.metrics.api_write(false);
                    tracing::warn!(error = %e, retry_in = ?backoff, "cannot report to the API server; keeping the journal");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = self.wake.notified() => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(60));
                }
            }
        }
    }

    /// Creates the journal's Events in order, each under its deterministic name, then applies
    /// the status — whatever happened to the Events. An Event the API server will never take
    /// (quota, admission, invalid) is dropped and counted; one it cannot take now (429, 5xx, no
    /// connection) stops the Events until the next attempt.
    async fn deliver(&self, servers: &Api<Server>, events: &Api<Event>) -> Result<(), kube::Error> {
        let (version, journal, uid, checks, facts_hash) = {
            let s = self.state.lock().await;
            (
                s.version,
                s.journal.clone(),
                s.server_uid.clone(),
                s.checks.len(),
                s.facts
                    .as_ref()
                    .and_then(|f| f.hash.clone())
                    .unwrap_or_default(),
            )
        };
        let mut sent = 0;
        let mut failure = None;
        for entry in &journal {
            let event = self.event(entry, uid.clone());
            match events.create(&PostParams::default(), &event).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(kube::Error::Api(s)) if s.code != 429 && s.code < 500 => {
                    tracing::warn!(code = s.code, reason = %s.reason, event = ?event.metadata.name, "the API server refuses this Event; dropped");
                    self.metrics
                        .events_dropped(&s.reason.to_ascii_lowercase(), 1);
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
            sent += 1;
        }
        // The status goes whatever happened to the Events (after them, so that a status
        // showing a transition means its Event exists unless it was refused).
        let applied = self.apply_status(servers).await;
        let mut s = self.state.lock().await;
        let done = sent.min(s.journal.len());
        s.journal.drain(..done);
        let rest: String = s
            .journal
            .iter()
            .map(|e| serde_json::to_string(e).unwrap_or_default() + "\n")
            .collect();
        if let Err(e) = write_atomic(&self.dir.join("journal.jsonl"), rest.as_bytes()) {
            tracing::error!(error = %e, "cannot rewrite the journal");
        }
        self.metrics.journal_pending(s.journal.len());
        applied?;
        if let Some(e) = failure {
            return Err(e);
        }
        s.delivered = version;
        tracing::info!(events = sent, checks, facts_hash = %facts_hash, "reported to the API server");
        Ok(())
    }

    /// Applies the Server's status as the agent knows it now.
    async fn apply_status(&self, servers: &Api<Server>) -> Result<(), kube::Error> {
        let status = {
            let s = self.state.lock().await;
            if s.facts.is_none() {
                // Not before the facts are known (kept, adopted or collected): an apply
                // without them would remove the observed facts the agent wrote before.
                return Ok(());
            }
            // Every list cut to its limit, so that a host with more than a status may list
            // still reports the rest (a cut list of facts becomes an unknown fact).
            let mut operations = unyo_crds::server::OperationResults {
                refusals: s.refusals.iter().take(limits::ANSWERS).cloned().collect(),
                requests: s.requests.values().cloned().collect(),
                ..Default::default()
            };
            for slot in s.slots.values() {
                (slot.fill)(&slot.value, &mut operations);
            }
            operations.bound();
            let checks: Vec<_> = s.checks.values().take(limits::CHECKS).collect();
            let mut status = serde_json::json!({ "checks": checks });
            if let Some(f) = &s.facts {
                let mut f = f.clone();
                f.bound();
                status["observed"] = serde_json::to_value(f).unwrap_or_default();
            }
            if operations != unyo_crds::server::OperationResults::default() {
                status["operations"] = serde_json::to_value(&operations).unwrap_or_default();
            }
            status
        };
        let patch = serde_json::json!({
            "apiVersion": Server::api_version(&()),
            "kind": Server::kind(&()),
            "status": status,
        });
        servers
            .patch_status(
                &self.server,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&patch),
            )
            .await
            .map(|_| ())
    }

    fn event(&self, e: &JournalEntry, uid: Option<String>) -> Event {
        let warning = matches!(
            e.state,
            CheckState::Warning | CheckState::Critical | CheckState::Unknown
        );
        Event {
            metadata: ObjectMeta {
                name: Some(e.event_name(&self.server)),
                namespace: Some(self.namespace.clone()),
                ..Default::default()
            },
            involved_object: ObjectReference {
                api_version: Some(Server::api_version(&()).to_string()),
                kind: Some(Server::kind(&()).to_string()),
                name: Some(self.server.clone()),
                namespace: Some(self.namespace.clone()),
                uid,
                ..Default::default()
            },
            reason: Some(
                e.reason
                    .clone()
                    .unwrap_or_else(|| format!("Check{:?}", e.state)),
            ),
            // A check transition names its policy and check; other Events say it all themselves.
            message: Some(match &e.reason {
                Some(_) => e.message.clone(),
                None => format!("{}/{}: {}", e.policy, e.check, e.message),
            }),
            type_: Some(if warning { "Warning" } else { "Normal" }.to_string()),
            first_timestamp: Some(Time(e.since)),
            last_timestamp: Some(Time(e.since)),
            count: Some(1),
            source: Some(EventSource {
                component: Some(FIELD_MANAGER.to_string()),
                host: Some(self.server.clone()),
            }),
            reporting_component: Some("unyo.dev/agent".to_string()),
            reporting_instance: Some(self.server.clone()),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::backups::BackupsSlot;
    use unyo_crds::backup::HostBackup;

    fn reporter(dir: &std::path::Path) -> Reporter {
        Reporter::open(
            dir.to_path_buf(),
            "db01",
            "mie",
            Arc::new(Metrics::default()),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn a_slot_is_read_as_kept_before_it_had_a_trait_and_survives_a_restart() {
        let dir = std::env::temp_dir().join(format!("unyo-slot-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // What an agent before operation slots kept: its own kind, a list of plans.
        let old = vec![HostBackup {
            plan: "db".into(),
            generations: Some(3),
            ..Default::default()
        }];
        Kept::<Vec<HostBackup>>::new(&dir, "host-backups").keep(&old);
        let r = reporter(&dir);
        r.register::<BackupsSlot>().await;
        assert_eq!(r.slot::<BackupsSlot>().await.0, old);
        // Changed, with an Event journaled first; unchanged, nothing is written.
        r.update::<BackupsSlot>(|s| {
            s.0[0].generations = Some(4);
            vec![JournalEntry {
                policy: "db".into(),
                check: "backup:weekly".into(),
                state: CheckState::Critical,
                since: now_seconds(),
                value: None,
                message: "failed".into(),
                reason: Some("BackupFailed".into()),
            }]
        })
        .await;
        let version = r.state.lock().await.version;
        r.update::<BackupsSlot>(|_| vec![]).await;
        assert_eq!(
            r.state.lock().await.version,
            version,
            "nothing changed, nothing to write"
        );
        // Delivered into the status, and read back after a restart.
        let mut ops = unyo_crds::server::OperationResults::default();
        for slot in r.state.lock().await.slots.values() {
            (slot.fill)(&slot.value, &mut ops);
        }
        assert_eq!(ops.backups[0].generations, Some(4));
        let again = reporter(&dir);
        again.register::<BackupsSlot>().await;
        assert_eq!(again.slot::<BackupsSlot>().await.0[0].generations, Some(4));
        assert_eq!(
            again.state.lock().await.journal.len(),
            1,
            "the Event's entry was journaled"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

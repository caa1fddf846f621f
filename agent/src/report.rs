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
    antivirus: Option<unyo_crds::virusscan::HostAntivirus>,
    backups: BTreeMap<String, unyo_crds::backup::HostBackup>,
    patch_scan: Option<unyo_crds::patch::PatchScan>,
    patches: Vec<unyo_crds::patch::HostPatchState>,
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
    antivirus: Kept<Option<unyo_crds::virusscan::HostAntivirus>>,
    backups: Kept<Vec<unyo_crds::backup::HostBackup>>,
    patches: Kept<(
        Option<unyo_crds::patch::PatchScan>,
        Vec<unyo_crds::patch::HostPatchState>,
    )>,
    requests: Kept<BTreeMap<String, unyo_crds::server::RequestResult>>,
    facts: Kept<Option<ObservedFacts>>,
    running: Kept<Option<unyo_crds::backup::BackupRun>>,
}

impl Files {
    fn new(dir: &std::path::Path) -> Files {
        Files {
            checks: Kept::new(dir, "checks"),
            antivirus: Kept::new(dir, "antivirus"),
            backups: Kept::new(dir, "host-backups"),
            patches: Kept::new(dir, "host-patches"),
            requests: Kept::new(dir, "requests"),
            facts: Kept::new(dir, "facts"),
            running: Kept::new(dir, "backup-running"),
        }
    }
}

/// What an earlier run left unfinished — a backup, a request — is reported as interrupted
/// (and not run again: the request's value was taken before it ran).
fn interrupted(state: &mut State, files: &Files) {
    use unyo_crds::backup::{BackupType, RunResult};
    use unyo_crds::server::RequestState;
    let now = Time(now_seconds());
    if let Some((plan, mut run)) = files
        .running
        .load()
        .and_then(|r| Some((r.message.clone()?, r)))
    {
        tracing::warn!(%plan, rule = %run.rule, "a backup was interrupted by the agent's stop; reported as Interrupted");
        run.result = RunResult::Interrupted;
        run.finished_at = Some(now.clone());
        run.message = Some("interrupted: the agent stopped during this run".into());
        let entry = state
            .backups
            .entry(plan.clone())
            .or_insert(unyo_crds::backup::HostBackup {
                plan,
                ..Default::default()
            });
        match run.backup_type {
            BackupType::Full => entry.last_full = Some(run),
            BackupType::Differential => entry.last_differential = Some(run),
        }
        files
            .backups
            .keep(&state.backups.values().cloned().collect());
        files.running.keep(&None);
    }
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

impl Reporter {
    /// Notes that a backup of `plan` starts (kept until [`Reporter::backup`] records its end),
    /// so that a stop of the agent during it is reported as an interruption.
    pub fn backup_starts(
        &self,
        plan: &str,
        rule: &str,
        backup_type: unyo_crds::backup::BackupType,
    ) {
        let run = unyo_crds::backup::BackupRun {
            rule: rule.to_string(),
            backup_type,
            result: unyo_crds::backup::RunResult::Interrupted,
            started_at: Time(now_seconds()),
            finished_at: None,
            snapshot: None,
            copied: None,
            bytes_added: None,
            // The plan, while the run is under way.
            message: Some(plan.to_string()),
        };
        self.files.running.keep(&Some(run));
    }

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
            antivirus: files.antivirus.load(),
            backups: files
                .backups
                .load()
                .into_iter()
                .map(|b| (b.plan.clone(), b))
                .collect(),
            requests: files.requests.load(),
            // What the host was last seen to be: a restart never reports less than it knew.
            facts: files.facts.load(),
            ..State::default()
        };
        (state.patch_scan, state.patches) = files.patches.load();
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

    /// This host's antivirus state (from its last scan).
    pub async fn antivirus_state(&self) -> Option<unyo_crds::virusscan::HostAntivirus> {
        self.state.lock().await.antivirus.clone()
    }

    /// Records the antivirus state after a scan, and an Event for each detection (journaled
    /// first, like transitions).
    pub async fn antivirus(&self, status: unyo_crds::virusscan::HostAntivirus, schedule: &str) {
        let mut state = self.state.lock().await;
        for d in &status.detections {
            let entry = JournalEntry {
                policy: schedule.to_string(),
                check: format!("virus:{}", d.path),
                state: CheckState::Critical,
                since: d.at.0,
                value: None,
                message: format!("{} in {} ({})", d.signature, d.path, d.actions.join("; ")),
                reason: Some("VirusDetected".into()),
            };
            self.journal(&mut state, entry);
        }
        state.antivirus = Some(status);
        self.files.antivirus.keep(&state.antivirus);
        state.version += 1;
        self.metrics.journal_pending(state.journal.len());
        drop(state);
        self.wake.notify_one();
    }

    /// The backup state of this host under `plan` (kept across restarts).
    pub async fn backup_state(&self, plan: &str) -> unyo_crds::backup::HostBackup {
        self.state
            .lock()
            .await
            .backups
            .get(plan)
            .cloned()
            .unwrap_or(unyo_crds::backup::HostBackup {
                plan: plan.to_string(),
                ..Default::default()
            })
    }

    /// Records a plan's backup state after a run, and a `BackupFailed` Event when `last` failed.
    pub async fn backup(
        &self,
        state_of_plan: unyo_crds::backup::HostBackup,
        last: Option<unyo_crds::backup::BackupRun>,
    ) {
        let mut state = self.state.lock().await;
        if let Some(run) = last.filter(|r| r.result == unyo_crds::backup::RunResult::Failed) {
            let entry = JournalEntry {
                policy: state_of_plan.plan.clone(),
                check: format!("backup:{}", run.rule),
                state: CheckState::Critical,
                since: run.started_at.0,
                value: None,
                message: run.message.clone().unwrap_or_default(),
                reason: Some("BackupFailed".into()),
            };
            self.journal(&mut state, entry);
        }
        state
            .backups
            .insert(state_of_plan.plan.clone(), state_of_plan);
        self.files.running.keep(&None);
        let list: Vec<unyo_crds::backup::HostBackup> = state.backups.values().cloned().collect();
        self.files.backups.keep(&list);
        state.version += 1;
        self.metrics.journal_pending(state.journal.len());
        drop(state);
        self.wake.notify_one();
    }

    /// Records the last patch scan and the patch state under each baseline (written only when
    /// they changed).
    pub async fn patches(
        &self,
        scan: Option<unyo_crds::patch::PatchScan>,
        states: Vec<unyo_crds::patch::HostPatchState>,
    ) {
        let mut state = self.state.lock().await;
        let scan = scan.or_else(|| {
            if states.is_empty() {
                None
            } else {
                state.patch_scan.clone()
            }
        });
        if state.patch_scan == scan && state.patches == states {
            return;
        }
        self.files.patches.keep(&(scan.clone(), states.clone()));
        state.patch_scan = scan;
        state.patches = states;
        state.version += 1;
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
        let hash = content_hash(&facts);
        let mut state = self.state.lock().await;
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
                antivirus: s.antivirus.clone(),
                backups: s.backups.values().cloned().collect(),
                patches: s.patches.clone(),
                patch_scan: s.patch_scan.clone(),
                refusals: s.refusals.iter().take(limits::ANSWERS).cloned().collect(),
                requests: s.requests.values().cloned().collect(),
            };
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

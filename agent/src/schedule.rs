//! One scheduler for every scheduled operation of the agent (virus scans, backup rules,
//! protected snapshots, test restores, patch scans).
//!
//! Each job keeps its own next due time in the state directory (`schedule.json`), so a restart
//! neither forgets a run that was due nor runs one twice. Every job due at a wake-up is queued —
//! jobs due together all run — on its lane: runs on one lane (one plan's repositories, the
//! virus scanner, apt) are serialised, lanes run side by side. A job that falls due while its
//! previous run is still queued or running, or while the agent was stopped, is decided by its
//! schedule's `missedRuns`: `RunOnce` (the default) runs it once as soon as its lane is free;
//! `Skip` does not run it late and reports it as skipped, with the reason.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, mpsc};
use unyo_crds::common::MissedRuns;

use crate::state::Kept;

/// How late a run may start and still count as on time (a `Skip` job later than this is
/// skipped).
pub const ON_TIME: SignedDuration = SignedDuration::from_mins(1);
/// The longest sleep: the wall clock is looked at again at least this often (it may jump).
const MAX_SLEEP: Duration = Duration::from_secs(3600);

/// What a run is: a future made when its lane gets to it, given the time it was due.
pub type Run = Arc<dyn Fn(Timestamp) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;
/// When a job is next due after an instant (none: never again), or why it cannot be known.
pub type NextAfter = Arc<dyn Fn(Timestamp) -> Result<Option<Timestamp>, String> + Send + Sync>;

/// One scheduled job.
#[derive(Clone)]
pub struct Job {
    /// Stable identity, e.g. `backup/db/rule/weekly-full`.
    pub key: String,
    /// Runs on one lane never overlap, e.g. `backup/db`.
    pub lane: String,
    /// What a late run does.
    pub missed: MissedRuns,
    /// Its schedule.
    pub next_after: NextAfter,
    /// Its run.
    pub run: Run,
}

/// A run that was not made, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Skipped {
    /// The job.
    pub key: String,
    /// When it was due.
    pub due: Timestamp,
    /// Why it did not run, in a sentence.
    pub reason: String,
}

/// The time source: the wall clock, or in tests one that tokio's paused time drives.
pub trait Clock: Send + Sync + 'static {
    /// Now.
    fn now(&self) -> Timestamp;
    /// Sleeps for `d`.
    fn sleep(&self, d: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>>;
}

/// The system's clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
    fn sleep(&self, d: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(tokio::time::sleep(d))
    }
}

/// A job's kept schedule.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct Due {
    /// When it is next due (none: never).
    pub next: Option<Timestamp>,
    /// The due time of a run that is queued and has not started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queued: Option<Timestamp>,
}

/// Every job's kept schedule, by key.
pub type Table = BTreeMap<String, Due>;

/// The scheduler: jobs are set per source (an operation); it runs until the agent stops.
#[derive(Clone)]
pub struct Scheduler {
    inner: Arc<Inner>,
}

struct Inner {
    clock: Arc<dyn Clock>,
    kept: Kept<Table>,
    table: Mutex<Table>,
    jobs: Mutex<BTreeMap<String, Vec<Job>>>,
    lanes: Mutex<HashMap<String, mpsc::UnboundedSender<Work>>>,
    pending: Mutex<BTreeSet<String>>,
    tasks: Mutex<Vec<tokio::task::AbortHandle>>,
    changed: Notify,
    started: Timestamp,
    on_skip: Box<dyn Fn(Skipped) + Send + Sync>,
}

/// A run handed to a lane.
struct Work {
    key: String,
    due: Timestamp,
    missed: MissedRuns,
    run: Run,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Scheduler {
    /// A scheduler keeping its table in `dir`; `on_skip` hears of every skipped run.
    pub fn new(
        dir: &std::path::Path,
        clock: Arc<dyn Clock>,
        on_skip: impl Fn(Skipped) + Send + Sync + 'static,
    ) -> Self {
        let kept: Kept<Table> = Kept::new(dir, "schedule");
        let table = kept.load();
        let started = clock.now();
        Scheduler {
            inner: Arc::new(Inner {
                clock,
                kept,
                table: Mutex::new(table),
                jobs: Mutex::default(),
                lanes: Mutex::default(),
                pending: Mutex::default(),
                tasks: Mutex::default(),
                changed: Notify::new(),
                started,
                on_skip: Box::new(on_skip),
            }),
        }
    }

    /// Replaces the jobs of `source` (e.g. `backups`).
    pub fn set(&self, source: &str, jobs: Vec<Job>) {
        lock(&self.inner.jobs).insert(source.to_string(), jobs);
        self.inner.changed.notify_one();
    }

    /// Runs `run` on `lane` after what is queued there (a request, e.g. a backup now).
    pub fn submit(&self, lane: &str, key: &str, run: Run) {
        let now = self.inner.clock.now();
        self.enqueue(
            lane,
            Work {
                key: key.to_string(),
                due: now,
                missed: MissedRuns::RunOnce,
                run,
            },
        );
    }

    /// Queues due jobs at every wake-up, until the agent stops.
    pub async fn run(self) {
        loop {
            let wake = self.tick();
            let now = self.inner.clock.now();
            let sleep = wake
                .map(|w| Duration::try_from(w.duration_since(now)).unwrap_or(Duration::ZERO))
                .unwrap_or(MAX_SLEEP)
                .min(MAX_SLEEP);
            tokio::select! {
                _ = self.inner.clock.sleep(sleep) => {}
                _ = self.inner.changed.notified() => {}
            }
        }
    }

    /// Queues every job that is due (and, after a restart, every run that was queued and had not
    /// started); keeps the table; returns when the next job falls due.
    fn tick(&self) -> Option<Timestamp> {
        let now = self.inner.clock.now();
        let jobs: Vec<Job> = lock(&self.inner.jobs).values().flatten().cloned().collect();
        // Held throughout, so that a lane starting a run waits to mark it started.
        let mut table = lock(&self.inner.table);
        let before = table.clone();
        table.retain(|key, _| jobs.iter().any(|j| j.key == *key));
        let mut wake: Option<Timestamp> = None;
        for job in &jobs {
            let due = table.entry(job.key.clone()).or_insert_with(|| Due {
                next: after(job, now),
                queued: None,
            });
            self.settle(job, due, now);
            if let Some(n) = due.next {
                wake = Some(wake.map_or(n, |w| w.min(n)));
            }
        }
        if *table != before {
            self.inner.kept.keep(&table);
        }
        wake
    }

    /// One job at `now`: a queued run that is not pending any more (the agent restarted) is
    /// queued again; a due time that has come is queued, or coalesced with a pending run.
    fn settle(&self, job: &Job, due: &mut Due, now: Timestamp) {
        let pending = lock(&self.inner.pending).contains(&job.key);
        if let (Some(q), false) = (due.queued, pending) {
            self.queue(job, q);
            return self.settle_next(job, due, now);
        }
        let Some(next) = due.next.filter(|n| *n <= now) else {
            return;
        };
        if pending {
            self.coalesce(job, next);
        } else {
            due.queued = Some(next);
            self.queue(job, next);
        }
        due.next = after(job, now);
    }

    /// After re-queueing a run kept from before a restart: the next due time, if that passed too.
    fn settle_next(&self, job: &Job, due: &mut Due, now: Timestamp) {
        if let Some(next) = due.next.filter(|n| *n <= now) {
            self.coalesce(job, next);
            due.next = after(job, now);
        }
    }

    /// A due time that came while a run of the same job is queued and has not started.
    fn coalesce(&self, job: &Job, at: Timestamp) {
        match job.missed {
            MissedRuns::RunOnce => {
                tracing::info!(job = %job.key, due = %at, "due again while its run is pending: one run covers both")
            }
            MissedRuns::Skip => (self.inner.on_skip)(Skipped {
                key: job.key.clone(),
                due: at,
                reason: format!(
                    "the run due at {at} was skipped (missedRuns: Skip): the previous run of {} had not finished",
                    job.key
                ),
            }),
        }
    }

    fn queue(&self, job: &Job, due: Timestamp) {
        lock(&self.inner.pending).insert(job.key.clone());
        self.enqueue(
            &job.lane,
            Work {
                key: job.key.clone(),
                due,
                missed: job.missed,
                run: job.run.clone(),
            },
        );
    }

    fn enqueue(&self, lane: &str, work: Work) {
        let mut lanes = lock(&self.inner.lanes);
        let tx = lanes.entry(lane.to_string()).or_insert_with(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            let task = tokio::spawn(self.clone().lane(lane.to_string(), rx));
            lock(&self.inner.tasks).push(task.abort_handle());
            tx
        });
        if tx.send(work).is_err() {
            tracing::error!(%lane, "a lane of the scheduler ended");
        }
    }

    /// Runs the work of one lane in order; a `Skip` run that starts late is skipped. A run that
    /// has started is no longer pending: a due time during it queues the next run.
    async fn lane(self, lane: String, mut rx: mpsc::UnboundedReceiver<Work>) {
        while let Some(w) = rx.recv().await {
            let now = self.inner.clock.now();
            // Unmarked as queued first (under the table's lock), then as pending: a tick in
            // between never takes it for a queued run lost in a restart.
            self.started_run(&w.key);
            lock(&self.inner.pending).remove(&w.key);
            if w.missed == MissedRuns::Skip && now.duration_since(w.due) > ON_TIME {
                let why = if w.due < self.inner.started {
                    "the agent was not running then".to_string()
                } else {
                    format!("lane {lane} was busy with another run")
                };
                (self.inner.on_skip)(Skipped {
                    key: w.key.clone(),
                    due: w.due,
                    reason: format!(
                        "the run due at {} was skipped (missedRuns: Skip): {why}",
                        w.due
                    ),
                });
            } else {
                tracing::info!(job = %w.key, due = %w.due, %lane, "run starts");
                (w.run)(w.due).await;
            }
        }
    }

    /// Runs the scheduler on a task that [`Scheduler::abort`] stops (tests of a restart).
    #[cfg(test)]
    pub fn spawn(&self) {
        let task = tokio::spawn(self.clone().run());
        lock(&self.inner.tasks).push(task.abort_handle());
    }

    /// Stops the scheduler and every lane at once, as a kill would (tests of a restart).
    #[cfg(test)]
    pub fn abort(&self) {
        for t in lock(&self.inner.tasks).drain(..) {
            t.abort();
        }
    }

    /// A run left the queue: it is no longer kept as queued.
    fn started_run(&self, key: &str) {
        let mut table = lock(&self.inner.table);
        if let Some(d) = table.get_mut(key).filter(|d| d.queued.is_some()) {
            d.queued = None;
            self.inner.kept.keep(&table);
        }
    }
}

fn after(job: &Job, t: Timestamp) -> Option<Timestamp> {
    match (job.next_after)(t) {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(job = %job.key, error = %e, "cannot schedule");
            None
        }
    }
}

#[cfg(test)]
mod tests;

//! The scheduler under a controllable clock: tokio's paused time drives both the scheduler's
//! sleeps and the runs' durations, so hours pass in milliseconds and every instant is exact.

use super::*;

/// A clock that reads tokio's (paused) time from a fixed start.
struct TestClock {
    base: Timestamp,
    start: tokio::time::Instant,
}

impl Clock for TestClock {
    fn now(&self) -> Timestamp {
        let elapsed = SignedDuration::try_from(self.start.elapsed()).unwrap();
        self.base.checked_add(elapsed).unwrap()
    }
    fn sleep(&self, d: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(tokio::time::sleep(d))
    }
}

const BASE: &str = "2026-12-01T00:00:00Z";

fn base() -> Timestamp {
    BASE.parse().unwrap()
}

/// Minutes since [`BASE`].
fn minute(t: Timestamp) -> i64 {
    t.duration_since(base()).as_secs() / 60
}

/// What ran: job, due minute, start minute.
type Log = Arc<Mutex<Vec<(String, i64, i64)>>>;

struct Setup {
    dir: std::path::PathBuf,
    log: Log,
    skipped: Arc<Mutex<Vec<Skipped>>>,
    clock: Arc<TestClock>,
}

impl Setup {
    fn new(name: &str) -> Setup {
        let dir = std::env::temp_dir().join(format!("unyo-schedule-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Setup {
            dir,
            log: Log::default(),
            skipped: Arc::default(),
            clock: Arc::new(TestClock {
                base: base(),
                start: tokio::time::Instant::now(),
            }),
        }
    }

    /// A scheduler on this directory and clock, running.
    fn start(&self) -> Scheduler {
        let skipped = self.skipped.clone();
        let s = Scheduler::new(&self.dir, self.clock.clone(), move |k| {
            lock(&skipped).push(k)
        });
        s.spawn();
        s
    }

    /// A job due at the given minutes (from [`BASE`]) whose run takes `takes` minutes.
    fn job(&self, key: &str, lane: &str, at: &[i64], takes: u64, missed: MissedRuns) -> Job {
        let at: Vec<Timestamp> = at
            .iter()
            .map(|m| base().checked_add(SignedDuration::from_mins(*m)).unwrap())
            .collect();
        let (log, clock, name) = (self.log.clone(), self.clock.clone(), key.to_string());
        Job {
            key: key.into(),
            lane: lane.into(),
            missed,
            next_after: Arc::new(move |t| Ok(at.iter().copied().find(|a| *a > t))),
            run: Arc::new(move |due| {
                let (log, clock, name) = (log.clone(), clock.clone(), name.clone());
                Box::pin(async move {
                    lock(&log).push((name, minute(due), minute(clock.now())));
                    tokio::time::sleep(Duration::from_secs(takes * 60)).await;
                })
            }),
        }
    }

    /// Waits until minute `m` of the test.
    async fn until(&self, m: u64) {
        tokio::time::sleep_until(self.clock.start + Duration::from_secs(m * 60)).await;
    }

    fn ran(&self) -> Vec<(String, i64, i64)> {
        let mut v = lock(&self.log).clone();
        v.sort_by_key(|(k, _, start)| (*start, k.clone()));
        v
    }
}

fn row(k: &str, due: i64, start: i64) -> (String, i64, i64) {
    (k.to_string(), due, start)
}

#[tokio::test(start_paused = true)]
async fn jobs_due_together_all_run_serialised_per_lane() {
    let t = Setup::new("together");
    let s = t.start();
    s.set(
        "backups",
        vec![
            t.job(
                "backup/db/rule/full",
                "backup/db",
                &[60],
                10,
                MissedRuns::RunOnce,
            ),
            t.job(
                "backup/db/verify",
                "backup/db",
                &[60],
                10,
                MissedRuns::RunOnce,
            ),
        ],
    );
    s.set(
        "scans",
        vec![t.job("scan/nightly", "scan", &[60], 10, MissedRuns::RunOnce)],
    );
    t.until(120).await;
    assert_eq!(
        t.ran(),
        [
            row("backup/db/rule/full", 60, 60),
            row("scan/nightly", 60, 60),
            // The same repository: after the first, not at the same time, and not dropped.
            row("backup/db/verify", 60, 70),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_due_time_during_a_long_run_runs_after_it_or_is_reported_skipped() {
    for missed in [MissedRuns::RunOnce, MissedRuns::Skip] {
        let t = Setup::new(&format!("long-{missed:?}"));
        let s = t.start();
        s.set(
            "backups",
            vec![
                // A full of 90 minutes at 60; its own next due time (120) and a
                // differential's (90) fall inside it.
                t.job("full", "backup/db", &[60, 120], 90, missed),
                t.job("differential", "backup/db", &[90], 5, missed),
            ],
        );
        t.until(300).await;
        match missed {
            MissedRuns::RunOnce => assert_eq!(
                t.ran(),
                [
                    row("full", 60, 60),
                    row("differential", 90, 150),
                    row("full", 120, 155)
                ]
            ),
            MissedRuns::Skip => {
                assert_eq!(t.ran(), [row("full", 60, 60)]);
                let skipped = lock(&t.skipped).clone();
                let said: Vec<(&str, i64)> = skipped
                    .iter()
                    .map(|k| (k.key.as_str(), minute(k.due)))
                    .collect();
                assert_eq!(said, [("differential", 90), ("full", 120)]);
                assert!(
                    skipped[0].reason.contains("lane backup/db was busy"),
                    "{}",
                    skipped[0].reason
                );
            }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn several_missed_due_times_of_one_job_make_one_run() {
    let t = Setup::new("coalesce");
    let s = t.start();
    // A job due every 10 minutes behind a run of 45 minutes on the same lane.
    s.set(
        "x",
        vec![
            t.job("long", "lane", &[5], 45, MissedRuns::RunOnce),
            t.job("often", "lane", &[10, 20, 30, 40], 1, MissedRuns::RunOnce),
        ],
    );
    t.until(120).await;
    assert_eq!(t.ran(), [row("long", 5, 5), row("often", 10, 50)]);
}

#[tokio::test(start_paused = true)]
async fn a_restart_across_a_due_time_runs_it_once_or_reports_it_skipped() {
    for missed in [MissedRuns::RunOnce, MissedRuns::Skip] {
        let t = Setup::new(&format!("restart-{missed:?}"));
        let first = t.start();
        first.set("x", vec![t.job("daily", "lane", &[60, 1500], 5, missed)]);
        t.until(30).await;
        first.abort();
        // Stopped from 30 to 70: the run due at 60 was missed.
        t.until(70).await;
        let second = t.start();
        second.set("x", vec![t.job("daily", "lane", &[60, 1500], 5, missed)]);
        t.until(100).await;
        match missed {
            MissedRuns::RunOnce => assert_eq!(t.ran(), [row("daily", 60, 70)]),
            MissedRuns::Skip => {
                assert!(t.ran().is_empty());
                let skipped = lock(&t.skipped).clone();
                assert_eq!(skipped.len(), 1);
                assert!(
                    skipped[0].reason.contains("the agent was not running"),
                    "{}",
                    skipped[0].reason
                );
            }
        }
        // The next due time is kept for the next start.
        let table: Table = Kept::new(&t.dir, "schedule").load();
        assert_eq!(table["daily"].next.map(minute), Some(1500));
    }
}

#[tokio::test(start_paused = true)]
async fn a_run_queued_when_the_agent_stopped_runs_after_the_restart_and_a_started_one_does_not() {
    let t = Setup::new("queued");
    let first = t.start();
    let jobs = |t: &Setup| {
        vec![
            t.job("full", "backup/db", &[60], 30, MissedRuns::RunOnce),
            t.job("verify", "backup/db", &[60], 5, MissedRuns::RunOnce),
        ]
    };
    first.set("x", jobs(&t));
    // Killed at 70: full is running (it was interrupted; not run again), verify is queued.
    t.until(70).await;
    first.abort();
    let second = t.start();
    second.set("x", jobs(&t));
    t.until(120).await;
    assert_eq!(t.ran(), [row("full", 60, 60), row("verify", 60, 70)]);
}

#[tokio::test(start_paused = true)]
async fn a_request_waits_for_the_run_on_its_lane() {
    let t = Setup::new("request");
    let s = t.start();
    s.set(
        "x",
        vec![t.job("full", "backup/db", &[10], 30, MissedRuns::RunOnce)],
    );
    t.until(20).await;
    let (log, clock) = (t.log.clone(), t.clock.clone());
    s.submit(
        "backup/db",
        "backup-now",
        Arc::new(move |due| {
            let (log, clock) = (log.clone(), clock.clone());
            Box::pin(async move {
                lock(&log).push(("backup-now".into(), minute(due), minute(clock.now())))
            })
        }),
    );
    t.until(60).await;
    assert_eq!(t.ran(), [row("full", 10, 10), row("backup-now", 20, 40)]);
}

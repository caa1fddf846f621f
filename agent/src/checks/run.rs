//! One sampling task per assigned check (Linux hosts: the measurements read procfs and sysfs).

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::tracker::Tracker;
use super::{Assigned, measure};
use crate::facts::Collector;
use crate::metrics::Metrics;
use crate::report::Reporter;

/// Keeps one sampling task per assigned check, restarting a task when its check changes and
/// dropping the result of a check that is no longer assigned.
pub async fn supervise(
    mut assignment: watch::Receiver<Vec<Assigned>>,
    host: Collector,
    reporter: Reporter,
    metrics: std::sync::Arc<Metrics>,
) {
    let http = reqwest::Client::builder()
        .user_agent(concat!("unyo-agent/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default();
    let mut running: BTreeMap<(String, String), (Assigned, JoinHandle<()>)> = BTreeMap::new();
    loop {
        let wanted: BTreeMap<(String, String), Assigned> = assignment
            .borrow_and_update()
            .iter()
            .map(|a| (a.key(), a.clone()))
            .collect();
        let stale: Vec<(String, String)> = running
            .iter()
            .filter(|(k, (a, _))| wanted.get(*k) != Some(a))
            .map(|(k, _)| k.clone())
            .collect();
        for key in stale {
            if let Some((_, task)) = running.remove(&key) {
                task.abort();
            }
            if !wanted.contains_key(&key) {
                tracing::info!(policy = %key.0, check = %key.1, "check no longer assigned");
                reporter.remove(&key).await;
                metrics.forget(&key.0, &key.1);
            }
        }
        for (key, a) in wanted {
            if running.contains_key(&key) {
                continue;
            }
            tracing::info!(policy = %a.policy, check = %a.check.name, kind = ?a.check.kind, "running check");
            let task = tokio::spawn(run_check(
                a.clone(),
                host.clone(),
                http.clone(),
                reporter.clone(),
                metrics.clone(),
            ));
            running.insert(key, (a, task));
        }
        if assignment.changed().await.is_err() {
            break;
        }
    }
    for (_, (_, task)) in running {
        task.abort();
    }
}

async fn run_check(
    a: Assigned,
    host: Collector,
    http: reqwest::Client,
    reporter: Reporter,
    metrics: std::sync::Arc<Metrics>,
) {
    let key = a.key();
    let hold = a
        .check
        .for_duration
        .as_deref()
        .and_then(|d| unyo_crds::common::parse_duration(d).ok())
        .unwrap_or(Duration::ZERO);
    let mut tracker = Tracker::new(hold, reporter.current_state(&key).await);
    let mut probe = measure::Probe::new(&a.check, &host, http);
    let interval = Duration::from_millis(a.interval_ms.max(1000));
    loop {
        let sample = if a.check.kind == unyo_crds::monitoring::CheckKind::Antivirus {
            measure::antivirus(
                &a.check,
                reporter.slot::<crate::ops::AntivirusSlot>().await.0,
                jiff::Timestamp::now(),
            )
        } else {
            probe.sample().await
        };
        metrics.sample(&a.policy, &a.check.name, &sample);
        if let Some(t) = tracker.observe(&sample, jiff::Timestamp::now()) {
            tracing::info!(
                policy = %a.policy,
                check = %a.check.name,
                state = ?t.state,
                message = %t.message,
                "check changed state"
            );
            metrics.transition(&a.policy, &a.check.name);
            reporter.transition(&key, t).await;
        }
        tokio::time::sleep(interval).await;
    }
}

//! Prometheus metrics of the agent (`--metrics-addr`): check values and states, transitions,
//! the journal's length, API writes and heartbeats; served with `/healthz` by axum.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use unyo_crds::server::CheckState;

use crate::checks::Sample;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CheckLabels {
    policy: String,
    check: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    policy: String,
    check: String,
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusalLabels {
    kind: String,
    rule: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    job: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: String,
}

const STATES: [CheckState; 4] = [
    CheckState::OK,
    CheckState::Warning,
    CheckState::Critical,
    CheckState::Unknown,
];

/// The agent's metrics.
pub struct Metrics {
    registry: Registry,
    host: Registry,
    value: Family<CheckLabels, Gauge<f64, AtomicU64>>,
    state: Family<StateLabels, Gauge>,
    transitions: Family<CheckLabels, Counter>,
    journal: Gauge,
    writes: Family<ResultLabels, Counter>,
    heartbeats: Family<ResultLabels, Counter>,
    refused: Family<RefusalLabels, Gauge>,
    refusals: Family<RefusalLabels, Counter>,
    policy_loads: Family<ResultLabels, Counter>,
    events_dropped: Family<ReasonLabels, Counter>,
    runs_skipped: Family<JobLabels, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: String,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("unyo_agent");
        let m = Metrics {
            value: Family::default(),
            state: Family::default(),
            transitions: Family::default(),
            journal: Gauge::default(),
            writes: Family::default(),
            heartbeats: Family::default(),
            refused: Family::default(),
            refusals: Family::default(),
            policy_loads: Family::default(),
            events_dropped: Family::default(),
            runs_skipped: Family::default(),
            registry: Registry::default(),
            host: Registry::default(),
        };
        registry.register(
            "check_value",
            "Last measured value of a check",
            m.value.clone(),
        );
        registry.register(
            "check_state",
            "1 for the state a check's last sample is in",
            m.state.clone(),
        );
        registry.register(
            "check_transitions",
            "Reported state changes of a check",
            m.transitions.clone(),
        );
        registry.register(
            "journal_pending",
            "Transitions waiting to be reported",
            m.journal.clone(),
        );
        registry.register(
            "api_writes",
            "Attempts to report to the API server",
            m.writes.clone(),
        );
        registry.register("heartbeats", "Lease renewals", m.heartbeats.clone());
        registry.register(
            "host_policy_refused",
            "What the host policy refuses now, by kind and rule",
            m.refused.clone(),
        );
        registry.register(
            "host_policy_refusals",
            "Refusals by the host policy as they appeared, by kind and rule",
            m.refusals.clone(),
        );
        registry.register(
            "events_dropped",
            "Events not delivered: refused by the API server (by its reason, e.g. forbidden for a quota) or dropped from a full journal",
            m.events_dropped.clone(),
        );
        registry.register(
            "host_policy_loads",
            "Readings of the host policy file (at start and on SIGHUP)",
            m.policy_loads.clone(),
        );
        registry.register(
            "runs_skipped",
            "Scheduled runs not made (missedRuns: Skip) because they fell due while they could not start",
            m.runs_skipped.clone(),
        );
        Metrics { registry, ..m }
    }
}

fn result(ok: bool) -> ResultLabels {
    ResultLabels {
        result: if ok { "success" } else { "error" }.to_string(),
    }
}

impl Metrics {
    /// Records the refusals now in force, and counts those that are new.
    pub fn refusals(
        &self,
        now: &[unyo_crds::server::Refusal],
        new: &[&unyo_crds::server::Refusal],
    ) {
        let labels = |r: &unyo_crds::server::Refusal| RefusalLabels {
            kind: r.kind.clone(),
            rule: r.rule.clone(),
        };
        self.refused.clear();
        for r in now {
            self.refused.get_or_create(&labels(r)).inc();
        }
        for r in new {
            self.refusals.get_or_create(&labels(r)).inc();
        }
    }

    /// Counts Events that will never be delivered, by why.
    pub fn events_dropped(&self, reason: &str, n: usize) {
        self.events_dropped
            .get_or_create(&ReasonLabels {
                reason: reason.to_string(),
            })
            .inc_by(u64::try_from(n).unwrap_or(u64::MAX));
    }

    /// Counts a scheduled run that was skipped.
    pub fn run_skipped(&self, job: &str) {
        let labels = JobLabels {
            job: job.to_string(),
        };
        self.runs_skipped.get_or_create(&labels).inc();
    }

    /// Counts a reading of the host policy file.
    pub fn policy_load(&self, ok: bool) {
        self.policy_loads.get_or_create(&result(ok)).inc();
    }

    /// Records a sample.
    pub fn sample(&self, policy: &str, check: &str, s: &Sample) {
        let labels = CheckLabels {
            policy: policy.to_string(),
            check: check.to_string(),
        };
        match s.value {
            Some(v) => {
                self.value.get_or_create(&labels).set(v);
            }
            None => {
                self.value.remove(&labels);
            }
        }
        for st in STATES {
            let l = StateLabels {
                policy: policy.to_string(),
                check: check.to_string(),
                state: format!("{st:?}"),
            };
            self.state.get_or_create(&l).set(i64::from(st == s.state));
        }
    }

    /// Forgets a check that is no longer assigned.
    pub fn forget(&self, policy: &str, check: &str) {
        let labels = CheckLabels {
            policy: policy.to_string(),
            check: check.to_string(),
        };
        self.value.remove(&labels);
        for st in STATES {
            self.state.remove(&StateLabels {
                policy: policy.to_string(),
                check: check.to_string(),
                state: format!("{st:?}"),
            });
        }
    }

    /// Counts a reported transition.
    pub fn transition(&self, policy: &str, check: &str) {
        self.transitions
            .get_or_create(&CheckLabels {
                policy: policy.to_string(),
                check: check.to_string(),
            })
            .inc();
    }

    /// Sets the journal's length.
    pub fn journal_pending(&self, n: usize) {
        self.journal.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Counts a report attempt.
    pub fn api_write(&self, ok: bool) {
        self.writes.get_or_create(&result(ok)).inc();
    }

    /// Counts a heartbeat.
    pub fn heartbeat(&self, ok: bool) {
        self.heartbeats.get_or_create(&result(ok)).inc();
    }

    /// Adds the host's operating statistics (read on each scrape).
    /// They have a registry of their own, without the `unyo_agent` prefix: `unyo_host_…`.
    pub fn register_host(&mut self, stats: Arc<crate::hoststats::HostStats>) {
        self.host.register_collector(Box::new(stats));
    }

    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        use prometheus_client::encoding::text;
        let written = text::encode_registry(&mut out, &self.registry)
            .and_then(|_| text::encode_registry(&mut out, &self.host))
            .and_then(|_| text::encode_eof(&mut out));
        if written.is_err() {
            out.clear();
        }
        out
    }
}

/// Serves `/metrics` and `/healthz` on `addr` until shutdown.
pub async fn serve(addr: std::net::SocketAddr, metrics: Arc<Metrics>) -> anyhow::Result<()> {
    use axum::routing::get;
    let app = axum::Router::new()
        .route(
            "/metrics",
            get(
                |axum::extract::State(m): axum::extract::State<Arc<Metrics>>,
                 headers: axum::http::HeaderMap| async move {
                    let accept = headers
                        .get(axum::http::header::ACCEPT)
                        .and_then(|v| v.to_str().ok());
                    let (kind, body) = unyo_crds::exposition::respond(accept, m.encode());
                    ([(axum::http::header::CONTENT_TYPE, kind)], body)
                },
            ),
        )
        .route("/healthz", get(|| async { "ok" }))
        .with_state(metrics);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "serving /metrics and /healthz");
    axum::serve(listener, app).await?;
    Ok(())
}

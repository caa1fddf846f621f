//! Prometheus metrics of the controller (prometheus-client), with `/metrics`, `/healthz` and
//! `/readyz` served by axum. Reconcile counts, errors and durations are recorded as they happen;
//! the gauges (servers by condition, open incidents by severity, unresolved drift) are computed
//! from the controllers' caches when scraped.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::OnceLock;

use crate::stores::Stores;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    kind: String,
    error: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConditionLabels {
    condition: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SeverityLabels {
    severity: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReportLabels {
    namespace: String,
    calendar: String,
    month: String,
}

/// The controller's metrics.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<KindLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    events_dropped: Counter,
    duration: Family<KindLabels, Histogram>,
    servers: Family<ConditionLabels, Gauge>,
    incidents: Family<SeverityLabels, Gauge>,
    drift: Gauge,
    open_changes: Gauge,
    report_due: Family<ReportLabels, Gauge>,
    report_written: Family<ReportLabels, Gauge>,
    /// The shared stores the gauges are computed from, set when the loops start.
    pub stores: OnceLock<Stores>,
    /// Whether this replica leads (reconciles).
    pub leading: AtomicBool,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("unyo_controller");
        let reconciles = Family::<KindLabels, Counter>::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let events_dropped = Counter::default();
        let duration = Family::<KindLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 14))
        });
        let servers = Family::<ConditionLabels, Gauge>::default();
        let incidents = Family::<SeverityLabels, Gauge>::default();
        let drift = Gauge::default();
        let open_changes = Gauge::default();
        let report_due = Family::<ReportLabels, Gauge>::default();
        let report_written = Family::<ReportLabels, Gauge>::default();
        registry.register(
            "monthly_report_due_timestamp_seconds",
            "End of the due day of the monthly report due this month (7th business day after the month it covers), per OperationCalendar",
            report_due.clone(),
        );
        registry.register(
            "monthly_report_written",
            "1 when the monthly report due this month has been recorded as written (unyo report monthly --record)",
            report_written.clone(),
        );
        registry.register("reconciles", "Reconciles by kind", reconciles.clone());
        registry.register(
            "reconcile_errors",
            "Failed reconciles by kind and error",
            errors.clone(),
        );
        registry.register(
            "events_dropped",
            "Events not published (queue full or refused by the API server)",
            events_dropped.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Duration of reconciles by kind",
            duration.clone(),
        );
        registry.register(
            "servers",
            "Servers by condition and status",
            servers.clone(),
        );
        registry.register(
            "open_incidents",
            "Open Incidents by severity",
            incidents.clone(),
        );
        registry.register(
            "unresolved_drift_paths",
            "Drifted ledger paths over all Servers",
            drift.clone(),
        );
        registry.register(
            "open_change_records",
            "ChangeRecords not yet resolved or closed",
            open_changes.clone(),
        );
        Metrics {
            registry,
            reconciles,
            errors,
            events_dropped,
            duration,
            servers,
            incidents,
            drift,
            open_changes,
            report_due,
            report_written,
            stores: OnceLock::new(),
            leading: AtomicBool::new(false),
        }
    }
}

/// Times one reconcile.
pub struct Timer<'a> {
    metrics: &'a Metrics,
    kind: &'static str,
    start: Instant,
}

impl Drop for Timer<'_> {
    fn drop(&mut self) {
        self.metrics
            .duration
            .get_or_create(&KindLabels {
                kind: self.kind.to_string(),
            })
            .observe(self.start.elapsed().as_secs_f64());
    }
}

impl Metrics {
    /// Counts a reconcile of `kind` and times it until the returned guard drops.
    pub fn reconcile(&self, kind: &'static str) -> Timer<'_> {
        self.reconciles
            .get_or_create(&KindLabels {
                kind: kind.to_string(),
            })
            .inc();
        Timer {
            metrics: self,
            kind,
            start: Instant::now(),
        }
    }

    /// Counts a failed reconcile of `kind` by the error's label.
    pub fn error(&self, kind: &'static str, error: &'static str) {
        self.errors
            .get_or_create(&ErrorLabels {
                kind: kind.to_string(),
                error: error.to_string(),
            })
            .inc();
    }

    /// Counts an Event that was not published.
    pub fn event_dropped(&self) {
        self.events_dropped.inc();
    }

    fn refresh_gauges(&self) {
        self.servers.clear();
        self.incidents.clear();
        let Some(stores) = self.stores.get() else {
            return;
        };
        self.refresh_reports(stores);
        {
            let store = &stores.servers;
            let mut drift = 0i64;
            for s in store.state() {
                let Some(status) = &s.status else { continue };
                drift += status.drift.len() as i64;
                for c in &status.conditions {
                    self.servers
                        .get_or_create(&ConditionLabels {
                            condition: c.type_.clone(),
                            status: c.status.clone(),
                        })
                        .inc();
                }
            }
            self.drift.set(drift);
        }
        {
            for i in stores.incidents.state() {
                if crate::incident::is_open(&i) {
                    self.incidents
                        .get_or_create(&SeverityLabels {
                            severity: format!("{:?}", i.spec.severity),
                        })
                        .inc();
                }
            }
        }
        {
            let open = stores
                .records
                .state()
                .iter()
                .filter(|c| crate::change::is_open(c))
                .count();
            self.open_changes.set(open as i64);
        }
    }

    /// The monthly report gauges, from the calendars' status.
    fn refresh_reports(&self, stores: &Stores) {
        self.report_due.clear();
        self.report_written.clear();
        for cal in stores.calendars.state() {
            let Some(r) = cal.status.as_ref().and_then(|s| s.monthly_report.as_ref()) else {
                continue;
            };
            let labels = ReportLabels {
                namespace: cal.metadata.namespace.clone().unwrap_or_default(),
                calendar: cal.metadata.name.clone().unwrap_or_default(),
                month: r.month.clone(),
            };
            self.report_written
                .get_or_create(&labels)
                .set(i64::from(r.written_at.is_some()));
            let due_end = unyo_crds::workcalendar::WorkCalendar::from_spec(&cal.spec)
                .ok()
                .and_then(|w| {
                    let day: jiff::civil::Date = r.due_date.as_deref()?.parse().ok()?;
                    Some(
                        day.tomorrow()
                            .ok()?
                            .to_zoned(w.time_zone().clone())
                            .ok()?
                            .timestamp()
                            .as_second(),
                    )
                });
            if let Some(t) = due_end {
                self.report_due.get_or_create(&labels).set(t);
            }
        }
    }

    /// The OpenMetrics text of every metric.
    pub async fn encode(&self) -> String {
        self.refresh_gauges();
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// Serves `/metrics`, `/healthz` (the process runs) and `/readyz` (connected to the API
/// server; also true on a standby replica) on `addr`.
pub async fn serve(addr: std::net::SocketAddr, metrics: Arc<Metrics>) -> anyhow::Result<()> {
    use axum::extract::State;
    use axum::routing::get;
    let app = axum::Router::new()
        .route(
            "/metrics",
            get(
                |State(m): State<Arc<Metrics>>, headers: axum::http::HeaderMap| async move {
                    let accept = headers
                        .get(axum::http::header::ACCEPT)
                        .and_then(|v| v.to_str().ok());
                    let (kind, body) = unyo_crds::exposition::respond(accept, m.encode().await);
                    ([(axum::http::header::CONTENT_TYPE, kind)], body)
                },
            ),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|State(m): State<Arc<Metrics>>| async move {
                if m.leading.load(Ordering::Relaxed) {
                    "ok: leading"
                } else {
                    "ok: standby"
                }
            }),
        )
        .with_state(metrics);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "serving /metrics, /healthz and /readyz");
    axum::serve(listener, app).await?;
    Ok(())
}

//! unyo-controller: reconciles the unyo.dev kinds against what the agents observe.
//!
//! It checks at start-up that every kind is served and listable, then (as the leader, with
//! `--leader-elect`) starts one watch per kind into shared stores (`stores`) and runs one
//! reconcile loop per kind, each in the module of its name: `server` (drift, conditions, drift
//! ChangeRecords), `change` (ChangeRecord phases), `incident` (Incidents and their outbox),
//! `notifier` (delivers the outbox), `policy` (MonitoringPolicy status), `virusscan`
//! (VirusScanSchedule status; AntivirusHealthy), `backup` (BackupPlan status; BackupHealthy),
//! `patch` (PatchBaseline judgements; PatchCompliant) and `calendar` (OperationCalendar status);
//! until SIGINT or SIGTERM. Every loop reads from the stores and writes only what changed.

mod backup;
mod calendar;
mod change;
mod conditions;
mod context;
mod error;
#[cfg(test)]
mod extremes;
mod incident;
mod leader;
mod metrics;
mod notifier;
mod notify;
mod patch;
mod policy;
mod server;
mod stores;
mod virusscan;

use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;
use jiff::Timestamp;

use crate::context::{Clock, Context};

/// unyo-controller: turns declared ledgers and observed facts into ChangeRecords, Incidents and
/// status conditions.
#[derive(Parser, Debug)]
#[command(name = "unyo-controller", version, about)]
struct Args {
    /// Kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or the in-cluster service account).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Reconcile only this namespace (default: all namespaces).
    #[arg(long, short = 'n')]
    namespace: Option<String>,
    /// Log format.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    /// Evaluate calendars and records as if it were always this instant (RFC 3339), for tests
    /// and demos.
    #[arg(long, value_name = "RFC3339")]
    now: Option<Timestamp>,
    /// Serve Prometheus /metrics, /healthz and /readyz on this address, e.g. `0.0.0.0:8080`.
    #[arg(long)]
    metrics_addr: Option<std::net::SocketAddr>,
    /// Run as one of several replicas: only the holder of the Lease reconciles.
    #[arg(long)]
    leader_elect: bool,
    /// Namespace of the leader-election Lease: the controller's own (its RBAC allows the
    /// Lease only there).
    #[arg(long, env = "POD_NAMESPACE", default_value = "unyo-system")]
    leader_election_namespace: String,
    /// How long an agent may stay disconnected before an Incident opens, e.g. `5m`.
    #[arg(long, default_value = "5m", value_parser = grace)]
    agent_grace: std::time::Duration,
    /// Name of the leader-election Lease.
    #[arg(long, default_value = "unyo-controller")]
    leader_election_name: String,
}

fn grace(s: &str) -> Result<std::time::Duration, String> {
    unyo_crds::common::parse_duration(s)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()));
    if args.log_format == "json" {
        subscriber.json().init();
    } else {
        subscriber.init();
    }
    tracing::info!(namespace = ?args.namespace, "starting unyo-controller");
    // Every write of the reconcilers passes the leadership gate; the election has its own
    // client, outside it.
    let gate = Arc::new(if args.leader_elect {
        leader::Gate::elected()
    } else {
        leader::Gate::always_open()
    });
    let config = unyo_crds::client::config(args.kubeconfig.as_deref()).await?;
    let election_client = kube::Client::try_from(config.clone())?;
    let client = gated_client(config, gate.clone())?;
    unyo_crds::client::check_served(&client, args.namespace.as_deref()).await?;
    let clock = args.now.map_or(Clock::System, Clock::Fixed);
    let metrics = Arc::new(metrics::Metrics::default());
    if let Some(addr) = args.metrics_addr {
        let m = metrics.clone();
        tokio::spawn(async move {
            if let Err(e) = metrics::serve(addr, m).await {
                tracing::error!(error = %e, "metrics server stopped");
            }
        });
    }
    let grace = jiff::SignedDuration::try_from(args.agent_grace)?;
    let ns = args.namespace.clone();
    let (work_client, work_metrics) = (client.clone(), metrics.clone());
    let work = async move {
        let kinds = stores::Kinds::new(&work_client, &ns);
        let stores = kinds.stores();
        let _ = work_metrics.stores.set(stores.clone());
        let (ctx, publisher) = Context::new(work_client, clock, stores, work_metrics, grace);
        tokio::spawn(publisher);
        let loops = (
            server::run(ctx.clone(), &kinds),
            change::run(ctx.clone(), &kinds),
            incident::run(ctx.clone(), &kinds),
            incident::run_registered(ctx.clone(), &kinds),
            notifier::run(ctx.clone(), &kinds),
            policy::run(ctx.clone(), &kinds),
            calendar::run(ctx.clone(), &kinds),
            virusscan::run(ctx.clone(), &kinds),
            backup::run(ctx.clone(), &kinds),
            patch::run(ctx.clone(), &kinds),
        );
        kinds.start().await;
        tokio::join!(
            loops.0, loops.1, loops.2, loops.3, loops.4, loops.5, loops.6, loops.7, loops.8,
            loops.9
        );
    };
    tracing::info!(?clock, "all unyo.dev kinds are served");
    if args.leader_elect {
        let lease_ns = args.leader_election_namespace.clone();
        let identity = std::env::var("POD_NAME").unwrap_or_else(|_| {
            format!(
                "{}-{}",
                sysinfo::System::host_name().unwrap_or_else(|| "unyo-controller".into()),
                std::process::id()
            )
        });
        leader::run_elected(
            election_client,
            &lease_ns,
            &args.leader_election_name,
            &identity,
            gate,
            metrics,
            work,
        )
        .await;
    } else {
        metrics
            .leading
            .store(true, std::sync::atomic::Ordering::Relaxed);
        work.await;
    }
    tracing::info!("shut down");
    Ok(())
}

/// A client whose writes are refused locally while `gate` is closed.
fn gated_client(config: kube::Config, gate: Arc<leader::Gate>) -> anyhow::Result<kube::Client> {
    let filter = tower::filter::FilterLayer::new(
        move |req: http::Request<kube::client::Body>| -> Result<_, tower::BoxError> {
            if leader::writes(req.method()) && !gate.open() {
                tracing::warn!(method = %req.method(), uri = %req.uri(), "not leading: write refused");
                Err("not the leader (or its lease deadline passed): write refused".into())
            } else {
                Ok(req)
            }
        },
    );
    Ok(kube::client::ClientBuilder::try_from(config)?
        .with_layer(&filter)
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn flags_parse_and_validate() {
        Args::command().debug_assert();
        let args = Args::parse_from(["unyo-controller", "-n", "mie", "--log-format", "json"]);
        assert_eq!(args.namespace.as_deref(), Some("mie"));
        assert_eq!(args.now, None);
        assert!(Args::try_parse_from(["unyo-controller", "--log-format", "xml"]).is_err());
        let args = Args::parse_from(["unyo-controller", "--now", "2026-12-28T20:00:00+09:00"]);
        assert_eq!(
            args.now.map(|t| t.to_string()).as_deref(),
            Some("2026-12-28T11:00:00Z")
        );
        assert!(Args::try_parse_from(["unyo-controller", "--now", "yesterday"]).is_err());
    }
}

//! unyo-controller: reconciles the unyo.dev kinds against what the agents observe.
//!
//! This build checks at start-up that every kind it will reconcile is served and listable, then
//! waits for shutdown; the reconcilers arrive with their issues (drift, incidents, calendars,
//! policies).

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;

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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let subscriber = tracing_subscriber::fmt().with_env_filter(filter);
    if args.log_format == "json" {
        subscriber.json().init();
    } else {
        subscriber.init();
    }
    tracing::info!(namespace = ?args.namespace, "starting unyo-controller");
    let client = unyo_crds::client::connect(args.kubeconfig.as_deref()).await?;
    unyo_crds::client::check_served(&client, args.namespace.as_deref()).await?;
    tracing::info!(
        "all unyo.dev kinds are served; no reconcilers in this build, waiting for shutdown"
    );
    tokio::signal::ctrl_c()
        .await
        .context("waiting for the shutdown signal")?;
    tracing::info!("shutting down");
    Ok(())
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
        assert!(Args::try_parse_from(["unyo-controller", "--log-format", "xml"]).is_err());
    }
}

//! unyo-controller: reconciles the unyo.dev kinds against what the agents observe.
//!
//! It checks at start-up that every kind it will reconcile is served and listable, then runs
//! its reconcile loops until SIGINT or SIGTERM. Each kind's loop is in a module of its name:
//! `calendar` keeps OperationCalendar status current.

mod calendar;
mod conditions;

use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;
use jiff::Timestamp;
use kube::Api;
use unyo_crds::OperationCalendar;

/// The field manager of everything the controller writes.
pub const FIELD_MANAGER: &str = "unyo-controller";

/// The clock calendars are evaluated with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clock {
    /// The system clock.
    System,
    /// A fixed instant (tests and demos).
    Fixed(Timestamp),
}

impl Clock {
    /// The current instant by this clock.
    pub fn now(&self) -> Timestamp {
        match self {
            Clock::System => Timestamp::now(),
            Clock::Fixed(t) => *t,
        }
    }
}

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
    /// Evaluate calendars as if it were always this instant (RFC 3339), for tests and demos.
    #[arg(long, value_name = "RFC3339")]
    now: Option<Timestamp>,
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
    let client = unyo_crds::client::connect(args.kubeconfig.as_deref()).await?;
    unyo_crds::client::check_served(&client, args.namespace.as_deref()).await?;
    let clock = args.now.map_or(Clock::System, Clock::Fixed);
    let calendars: Api<OperationCalendar> = match &args.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    tracing::info!(?clock, "all unyo.dev kinds are served; reconciling");
    calendar::run(calendars, Arc::new(calendar::Context { client, clock })).await;
    tracing::info!("shut down");
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

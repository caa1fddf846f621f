//! unyo-agent: runs on one managed host and reports it into its Server object.
//!
//! This build connects with the host's identity, confirms that its Server exists and waits for
//! shutdown; fact collection, heartbeats and checks arrive with the agent issue.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use kube::Api;
use unyo_crds::Server;

/// unyo-agent: collects the facts of this host, runs its checks and scheduled operations, and
/// reports them into its Server's status.
#[derive(Parser, Debug)]
#[command(name = "unyo-agent", version, about)]
struct Args {
    /// Name of this host's Server object.
    #[arg(long)]
    server: String,
    /// Namespace of the Server object (the fleet).
    #[arg(long, short = 'n')]
    namespace: String,
    /// Kubeconfig file with this host's credentials (default: $KUBECONFIG or ~/.kube/config).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Log format.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
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
    let client = unyo_crds::client::connect(args.kubeconfig.as_deref()).await?;
    let servers: Api<Server> = Api::namespaced(client, &args.namespace);
    let server = servers
        .get(&args.server)
        .await
        .with_context(|| format!("reading Server {}/{}", args.namespace, args.server))?;
    tracing::info!(
        server = %args.server,
        namespace = %args.namespace,
        hostname = %server.spec.hostname,
        "found this host's Server; fact reporting is not in this build, waiting for shutdown"
    );
    tokio::signal::ctrl_c()
        .await
        .context("waiting for the shutdown signal")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn server_and_namespace_are_required() {
        Args::command().debug_assert();
        assert!(Args::try_parse_from(["unyo-agent"]).is_err());
        let args = Args::parse_from(["unyo-agent", "--server", "db01", "-n", "mie"]);
        assert_eq!(
            (args.server.as_str(), args.namespace.as_str()),
            ("db01", "mie")
        );
    }
}

//! unyo-agent: runs on one managed host and reports it into its Server object.
//!
//! Tasks: facts (collected every `--facts-interval`, written only when their content changes),
//! the Lease heartbeat, the watch of its Server and its namespace's policies and calendars
//! (what to check), one task per check, and the writer that delivers the journal of results to
//! the API server with backoff.

// The Windows agent runs no checks or backups yet: the types they share with the rest are
// compiled there but not all used.
#![cfg_attr(windows, allow(dead_code))]

// What runs on every platform: facts (one source per platform), the Lease, the reporter and its
// journal, the identity, metrics, the host policy, the scheduler and the operations (each engine
// behind its interface in ops). Checks, backups and the operating statistics run on Linux hosts
// only (docs/agent.md, "Windows").
mod assign;
mod checks;
mod facts;
mod heartbeat;
mod hostpolicy;
mod hoststats;
mod identity;
mod metrics;
mod ops;
mod report;
mod schedule;
#[cfg(windows)]
mod service;
mod state;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;

/// unyo-agent: collects the facts of this host, runs its checks, and reports them into its
/// Server's status.
#[derive(Parser, Debug)]
#[command(name = "unyo-agent", version, about)]
struct Args {
    /// Name of this host's Server object.
    #[arg(long, required_unless_present_any = ["print_facts", "print_patches"], default_value = "")]
    server: String,
    /// Namespace of the Server object (the fleet).
    #[arg(long, short = 'n', required_unless_present_any = ["print_facts", "print_patches"], default_value = "")]
    namespace: String,
    /// Kubeconfig file with this host's credentials (default: $KUBECONFIG or ~/.kube/config);
    /// `unyo agent bootstrap` writes one with least privilege.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Read every fact that comes from a file beneath this directory (to simulate hosts).
    #[arg(long, default_value = "/")]
    root: PathBuf,
    /// Directory for the journal of results not yet reported, and the last assignment.
    #[arg(long, default_value = STATE_DIR)]
    state_dir: PathBuf,
    /// The host policy: what custom resources may make this agent do on this host (root-owned,
    /// not writable by others; read at start and on SIGHUP). Without the file nothing outside
    /// the state directory is written and nothing installed.
    #[arg(long, default_value = HOST_POLICY)]
    host_policy: PathBuf,
    /// How often the Lease is renewed, e.g. `60s`.
    #[arg(long, default_value = "60s", value_parser = duration)]
    heartbeat: Duration,
    /// How often facts are collected (written only when they change), e.g. `5m`.
    #[arg(long, default_value = "5m", value_parser = duration)]
    facts_interval: Duration,
    /// How often the host's sources are searched for updates (`apt-get update` and a simulated
    /// upgrade), e.g. `6h`; also at start, on `unyo.dev/patch-scan-now` and after installs.
    #[arg(long, default_value = "6h", value_parser = duration)]
    patch_interval: Duration,
    /// Serve Prometheus /metrics and /healthz on this address, e.g. `127.0.0.1:9464`.
    #[arg(long)]
    metrics_addr: Option<std::net::SocketAddr>,
    /// A web server's access log whose lines are counted as requests on /metrics
    /// (`unyo_host_web_requests_total`); repeat for several.
    #[arg(long)]
    access_log: Vec<PathBuf>,
    /// Log format.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    /// Print the facts this host would report as JSON and exit (needs no cluster).
    #[arg(long)]
    print_facts: bool,
    /// Search the host's apt sources for updates as the agent's patch scan does (a simulation),
    /// print the result as JSON and exit (needs no cluster).
    #[arg(long)]
    print_patches: bool,
}

#[cfg(unix)]
const STATE_DIR: &str = "/var/lib/unyo-agent";
#[cfg(windows)]
const STATE_DIR: &str = r"C:\ProgramData\unyo-agent";
#[cfg(unix)]
const HOST_POLICY: &str = hostpolicy::DEFAULT_PATH;
#[cfg(windows)]
const HOST_POLICY: &str = r"C:\ProgramData\unyo-agent\agent.yaml";

fn duration(s: &str) -> Result<Duration, String> {
    unyo_crds::common::parse_duration(s)
}

fn main() -> anyhow::Result<()> {
    // On Windows, `unyo-agent service install|uninstall|run …` (service.rs).
    #[cfg(windows)]
    if let Some(done) = service::from_command_line() {
        return done;
    }
    let args = Args::parse();
    if args.print_facts {
        let mut f = facts::Collector::new(&args.root).collect();
        f.hash = Some(facts::content_hash(&f));
        println!("{}", serde_json::to_string_pretty(&f)?);
        return Ok(());
    }
    if args.print_patches {
        return print_patches(&args);
    }
    init_logging(&args, None)?;
    tokio::runtime::Runtime::new()?.block_on(agent(args, std::future::pending()))
}

/// Logs to standard output, or to `file` (the Windows service has no console).
fn init_logging(args: &Args, file: Option<std::fs::File>) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let to_terminal = file.is_none() && std::io::IsTerminal::is_terminal(&std::io::stdout());
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(to_terminal);
    let result = match (file, args.log_format == "json") {
        (Some(f), true) => subscriber
            .json()
            .with_writer(std::sync::Mutex::new(f))
            .try_init(),
        (Some(f), false) => subscriber.with_writer(std::sync::Mutex::new(f)).try_init(),
        (None, true) => subscriber.json().try_init(),
        (None, false) => subscriber.try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("setting up the log: {e}"))
}

/// The agent, until it is told to stop (SIGTERM, Ctrl-C, `stop`) or a task ends.
async fn agent(args: Args, stop: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
    tracing::info!(server = %args.server, namespace = %args.namespace, root = %args.root.display(), "starting unyo-agent");
    let mut tasks = tokio::task::JoinSet::new();
    let metrics = run(&args, &mut tasks).await?;
    if let Some(addr) = args.metrics_addr {
        tasks.spawn(async move {
            if let Err(e) = metrics::serve(addr, metrics).await {
                tracing::error!(error = %e, "metrics server stopped");
            }
        });
    }
    until_shutdown(tasks, stop).await
}

fn print_patches(args: &Args) -> anyhow::Result<()> {
    let engines = ops::Engines::of_host(&args.root, &args.state_dir)
        .context("preparing the patch source of the host")?;
    let host = engines.patches.scan();
    println!("{}", serde_json::to_string_pretty(&host.scan)?);
    Ok(())
}

/// The identity's renewal, the journal's writer and the Lease: what reports for every platform.
async fn spawn_reporting(
    args: &Args,
    tasks: &mut tokio::task::JoinSet<()>,
    reporter: &report::Reporter,
    metrics: &Arc<metrics::Metrics>,
) -> anyhow::Result<kube::Client> {
    // Building the client reads the kubeconfig only; it needs no connection.
    let (client, identity) = identity::connect(args.kubeconfig.as_deref(), &args.state_dir).await?;
    if let Some(id) = identity {
        tasks.spawn(identity::run_renewal(client.clone(), id));
    } else {
        tracing::info!("the credentials are not a ServiceAccount token; nothing to renew");
    }
    tasks.spawn(reporter.clone().run_writer(client.clone()));
    tasks.spawn(heartbeat::run(
        client.clone(),
        args.namespace.clone(),
        args.server.clone(),
        args.heartbeat,
        metrics.clone(),
    ));
    Ok(client)
}

/// Collects the facts every `every` and hands them to the reporter (written when they change);
/// `seen` sees each collection first.
fn spawn_facts(
    tasks: &mut tokio::task::JoinSet<()>,
    host: facts::Collector,
    reporter: report::Reporter,
    every: Duration,
    seen: impl Fn(&unyo_crds::server::ObservedFacts) + Send + 'static,
) {
    tasks.spawn(async move {
        loop {
            let h = host.clone();
            match tokio::task::spawn_blocking(move || h.collect()).await {
                Ok(f) => {
                    seen(&f);
                    let unknown = f.unknown.len();
                    if reporter.facts(f).await {
                        tracing::info!(unknown, "facts changed");
                    }
                }
                Err(e) => tracing::error!(error = %e, "collecting facts failed"),
            }
            tokio::time::sleep(every).await;
        }
    });
}

fn open_reporter(args: &Args, metrics: &Arc<metrics::Metrics>) -> anyhow::Result<report::Reporter> {
    report::Reporter::open(
        args.state_dir.clone(),
        &args.server,
        &args.namespace,
        metrics.clone(),
    )
    .with_context(|| format!("opening the state directory {}", args.state_dir.display()))
}

/// Windows: facts through WMI, operations (Windows Update, Microsoft Defender) bounded by the
/// host policy, the Lease and the journal; no checks yet.
#[cfg(windows)]
async fn run(
    args: &Args,
    tasks: &mut tokio::task::JoinSet<()>,
) -> anyhow::Result<Arc<metrics::Metrics>> {
    let metrics = Arc::new(metrics::Metrics::default());
    let reporter = open_reporter(args, &metrics)?;
    let host = facts::Collector::new(&args.root);
    operate(args, tasks, &host, &reporter, &metrics).await?;
    spawn_facts(tasks, host, reporter, args.facts_interval, |_| {});
    Ok(metrics)
}

/// Linux: facts, checks, operations bounded by the host policy, the Lease and the journal.
#[cfg(unix)]
async fn run(
    args: &Args,
    tasks: &mut tokio::task::JoinSet<()>,
) -> anyhow::Result<Arc<metrics::Metrics>> {
    let host = facts::Collector::new(&args.root);
    let host_stats = hoststats::HostStats::new(
        &args.namespace,
        &args.server,
        Box::new(hoststats::Procfs::new(host.clone())),
        hoststats::WebLogs::new(&args.access_log),
    );
    let mut metrics = metrics::Metrics::default();
    metrics.register_host(host_stats.clone());
    let metrics = Arc::new(metrics);
    let reporter = open_reporter(args, &metrics)?;
    let assigned = operate(args, tasks, &host, &reporter, &metrics).await?;
    tasks.spawn(checks::supervise(
        assigned,
        host.clone(),
        reporter.clone(),
        metrics.clone(),
    ));
    let stats = host_stats.clone();
    spawn_facts(tasks, host, reporter, args.facts_interval, move |f| {
        stats.set_services(&f.services)
    });
    Ok(metrics)
}

/// The host policy, the reporting, the scheduler, every operation of the platform and the
/// assignment that feeds them; returns the checks assigned (run where the platform has them).
async fn operate(
    args: &Args,
    tasks: &mut tokio::task::JoinSet<()>,
    host: &facts::Collector,
    reporter: &report::Reporter,
    metrics: &Arc<metrics::Metrics>,
) -> anyhow::Result<tokio::sync::watch::Receiver<Vec<checks::Assigned>>> {
    let policy = hostpolicy::HostPolicy::load(&args.host_policy, &args.state_dir, true)
        .context("reading the host policy")?;
    metrics.policy_load(true);
    tracing::info!(policy = %policy.source, "host policy loaded");
    let (policy_tx, policy_rx) = tokio::sync::watch::channel(Arc::new(policy));
    let (assign_tx, assign_rx) =
        tokio::sync::watch::channel(assign::kept::checks(&args.state_dir).load());
    let engines = ops::Engines::of_host(&args.root, &args.state_dir)
        .context("preparing the patch source of the host")?;
    #[cfg(unix)]
    tasks.spawn(hostpolicy::reload_on_hangup(
        args.host_policy.clone(),
        args.state_dir.clone(),
        policy_tx,
        metrics.clone(),
    ));
    #[cfg(windows)]
    tasks.spawn(async move {
        // Read at start only on Windows: the sender lives as long as the agent.
        let _kept = policy_tx;
        std::future::pending::<()>().await
    });
    let client = spawn_reporting(args, tasks, reporter, metrics).await?;
    let scheduler = start_scheduler(args, tasks, reporter, metrics);
    // Every operation, started with the jobs and the status it kept from the last run; the
    // assignment follows each the same way.
    let host_ctx = ops::Host {
        collector: host.clone(),
        server: args.server.clone(),
        state_dir: args.state_dir.clone(),
        policy: policy_rx.clone(),
        reporter: reporter.clone(),
        scheduler,
    };
    let operations = ops::start_all(host_ctx, engines, args.patch_interval, tasks).await;
    tasks.spawn(assign::run(
        client,
        args.namespace.clone(),
        args.server.clone(),
        args.state_dir.clone(),
        assign::HostRules {
            policy: policy_rx,
            root: args.root.clone(),
        },
        assign::Work {
            checks: assign_tx,
            operations,
        },
        reporter.clone(),
    ));
    Ok(assign_rx)
}

/// The scheduler of runs, its skipped runs noted in the journal and counted.
fn start_scheduler(
    args: &Args,
    tasks: &mut tokio::task::JoinSet<()>,
    reporter: &report::Reporter,
    metrics: &Arc<metrics::Metrics>,
) -> schedule::Scheduler {
    let skipped_to = reporter.clone();
    let skip_metrics = metrics.clone();
    let scheduler = schedule::Scheduler::new(
        &args.state_dir,
        Arc::new(schedule::SystemClock),
        move |k: schedule::Skipped| {
            tracing::warn!(job = %k.key, due = %k.due, reason = %k.reason, "run skipped");
            skip_metrics.run_skipped(&k.key);
            let r = skipped_to.clone();
            tokio::spawn(async move {
                r.note("RunSkipped", &format!("{}: {}", k.key, k.reason), true)
                    .await
            });
        },
    );
    tasks.spawn(scheduler.clone().run());
    scheduler
}

/// Runs until SIGTERM, Ctrl-C or `stop`, or until a task ends (an error: every task runs
/// forever).
async fn until_shutdown(
    mut tasks: tokio::task::JoinSet<()>,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    #[cfg(unix)]
    let terminated = term.recv();
    #[cfg(windows)]
    let terminated = std::future::pending::<Option<()>>();
    let died = tokio::select! {
        _ = tokio::signal::ctrl_c() => false,
        _ = terminated => false,
        _ = stop => false,
        ended = tasks.join_next() => {
            tracing::error!(result = ?ended.map(|r| r.map_err(|e| e.to_string())), "a task ended unexpectedly");
            true
        }
    };
    tracing::info!("shutting down; unreported results stay in the journal");
    tasks.shutdown().await;
    if died {
        // Non-zero, so that the service manager restarts the agent whole.
        anyhow::bail!("a task of the agent ended unexpectedly; exiting to be restarted");
    }
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
        assert_eq!(args.heartbeat, Duration::from_secs(60));
        let args = Args::parse_from([
            "unyo-agent",
            "--server",
            "db01",
            "-n",
            "mie",
            "--heartbeat",
            "2s",
            "--root",
            "/tmp/x",
        ]);
        assert_eq!(args.heartbeat, Duration::from_secs(2));
        assert!(
            Args::try_parse_from([
                "unyo-agent",
                "--server",
                "a",
                "-n",
                "b",
                "--heartbeat",
                "2x"
            ])
            .is_err()
        );
    }
}

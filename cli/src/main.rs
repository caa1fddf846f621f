//! `unyo`: the operator's command line (also installable as `kubectl-unyo`).

use unyo_cli::{backup, bootstrap, calendar, check, patch, report};

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// unyo: check manifests offline, print the API's CRDs, query calendars, and (in later releases)
/// diff drift, write reports and bootstrap agents.
#[derive(Parser, Debug)]
#[command(name = "unyo", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Check unyo.dev manifests offline, as a pull-request check: each document must parse as its
    /// kind (field names, types, enums, required fields) and pass the kind's CEL validation rules.
    /// Documents of other API groups are skipped. Exit 0 when every unyo.dev document is valid,
    /// 1 when one is not, 2 when a file cannot be read.
    Check {
        /// Files or directories (searched recursively for *.yaml and *.yml); `-` reads standard input.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Print only problems, not the documents that passed.
        #[arg(long, short = 'q')]
        quiet: bool,
    },
    /// Print the CustomResourceDefinitions of every unyo.dev kind as YAML
    /// (e.g. `unyo crds | kubectl apply --server-side -f -`).
    Crds,
    /// Ask an OperationCalendar: national holidays, business days, schedule fire times, state.
    #[command(subcommand)]
    Calendar(calendar::CalendarCommand),
    /// Agents on the managed hosts.
    #[command(subcommand)]
    Agent(AgentCommand),
    /// Backups of BackupPlans.
    #[command(subcommand)]
    Backup(BackupCommand),
    /// Patches of PatchBaselines.
    #[command(subcommand)]
    Patch(PatchCommand),
    /// The documents the union receives: the monthly report, incident reports and analyses
    /// (Japanese by default, --lang en for English).
    #[command(subcommand)]
    Report(ReportCommand),
    /// The configuration ledger (構成管理台帳).
    #[command(subcommand)]
    Ledger(LedgerCommand),
}

#[derive(Subcommand, Debug)]
enum ReportCommand {
    /// ⑦ 運用・保守管理業務報告書(月次): summary, monitoring, incidents, problems, changes, patches,
    /// backups, antivirus, operating statistics and maintenance of one month.
    Monthly {
        /// Namespace.
        #[arg(long, short = 'n')]
        namespace: String,
        /// The month, e.g. 2026-11 (default: the month before this one, in the calendar's zone).
        #[arg(long)]
        month: Option<String>,
        /// The OperationCalendar for business days, business hours and the due date (default:
        /// the namespace's only one, or the first by name).
        #[arg(long)]
        calendar: Option<String>,
        /// Prometheus to read the operating statistics from (e.g. http://prometheus:9090);
        /// without it the statistics section says it has no source.
        #[arg(long, env = "UNYO_PROMETHEUS_URL")]
        prometheus: Option<String>,
        /// Record in the namespace that this month's report was written (a ConfigMap the
        /// controller's metrics read).
        #[arg(long)]
        record: bool,
        /// Write only when today (in the calendar's zone) is the first business day after the
        /// month; otherwise say so and exit 0 (for a CronJob that runs every morning).
        #[arg(long)]
        if_first_business_day: bool,
        /// Make the report as if it were this instant (RFC 3339 with offset), e.g. to make a
        /// past month's report again exactly as it was.
        #[arg(long)]
        now: Option<jiff::Timestamp>,
        #[command(flatten)]
        output: report::Output,
    },
    /// ⑤ インシデント報告書: one incident with its timeline.
    Incident {
        /// The Incident.
        name: String,
        /// Namespace.
        #[arg(long, short = 'n')]
        namespace: String,
        #[command(flatten)]
        output: report::Output,
    },
    /// ⑥ インシデント内容・集計分析書: incidents of a period by type, severity, server, cause, month.
    Incidents {
        /// Namespace.
        #[arg(long, short = 'n')]
        namespace: String,
        /// First day (e.g. 2026-04-01).
        #[arg(long)]
        from: String,
        /// Day after the last (e.g. 2027-04-01).
        #[arg(long)]
        to: String,
        #[command(flatten)]
        output: report::Output,
    },
}

#[derive(Subcommand, Debug)]
enum LedgerCommand {
    /// Every Server's ledger: servers (R1 columns), software, patches, disks, NICs and devices,
    /// each row with the server's current drift there.
    Export {
        /// Namespace.
        #[arg(long, short = 'n')]
        namespace: String,
        #[command(flatten)]
        output: report::Output,
    },
}

#[derive(Subcommand, Debug)]
enum PatchCommand {
    /// The apply/hold report: per candidate patch of every PatchBaseline in the namespace, the
    /// staging evidence, the servers that need it and the judgement with its reason.
    Report {
        /// Namespace.
        #[arg(long, short = 'n')]
        namespace: String,
        /// Only this PatchBaseline.
        #[arg(long)]
        baseline: Option<String>,
        /// markdown (for people and the monthly report) or json (for tools).
        #[arg(long, short = 'o', default_value = "markdown", value_parser = ["markdown", "json"])]
        output: String,
        /// Kubeconfig (default: $KUBECONFIG or ~/.kube/config).
        #[arg(long)]
        kubeconfig: Option<PathBuf>,
    },
}

/// What `unyo backup restore` restores, where, and how it waits.
#[derive(clap::Args, Debug)]
struct RestoreArgs {
    /// The Server (host).
    #[arg(long)]
    server: String,
    /// The BackupPlan.
    #[arg(long)]
    plan: String,
    /// Namespace.
    #[arg(long, short = 'n')]
    namespace: String,
    /// Which generation: 1 is the newest. Without it (and without --to-time), the newest
    /// generation whose last verification (check after the run, or test restore) succeeded.
    #[arg(long, conflicts_with = "to_time")]
    generation: Option<usize>,
    /// Restore the plan's PostgreSQL source to this time (RFC 3339 with its offset, e.g.
    /// 2026-11-30T10:15:00+09:00): the newest base backup before it, replayed to it.
    #[arg(long)]
    to_time: Option<String>,
    /// The PostgreSQL source, when the plan has several.
    #[arg(long, requires = "to_time")]
    source: Option<String>,
    /// Absolute directory on the host to restore into (for --to-time: the data directory to
    /// create).
    #[arg(long)]
    target: String,
    /// Print every step instead of asking the agent.
    #[arg(long)]
    dry_run: bool,
    /// Kubeconfig (default: $KUBECONFIG or ~/.kube/config).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// How long to wait for the agent's answer, e.g. 10m.
    #[arg(long, default_value = "10m")]
    timeout: String,
}

#[derive(Subcommand, Debug)]
enum BackupCommand {
    /// Take a full backup now of every plan selecting a host that allows one on request (e.g.
    /// before a version-up), and wait for the agent's answer in the Server's status.
    Now {
        /// The Server (host).
        #[arg(long)]
        server: String,
        /// Namespace.
        #[arg(long, short = 'n')]
        namespace: String,
        /// Why, e.g. before-version-up (kept in the request).
        #[arg(long)]
        reason: String,
        /// Kubeconfig (default: $KUBECONFIG or ~/.kube/config).
        #[arg(long)]
        kubeconfig: Option<PathBuf>,
        /// How long to wait for the agent's answer, e.g. 2h.
        #[arg(long, default_value = "2h")]
        timeout: String,
    },
    /// Restore on a host, through its agent, into a directory on that host: a generation of a
    /// plan (the newest verified one by default), or a PostgreSQL source to a point in time.
    Restore(Box<RestoreArgs>),
}

#[derive(Subcommand, Debug)]
enum AgentCommand {
    /// Create the least-privilege identity of one host's agent (ServiceAccount, Role,
    /// RoleBinding, Lease, all named unyo-agent-NAME) and write a kubeconfig with a token for it.
    Bootstrap {
        /// The Server (host) name.
        name: String,
        /// Namespace of the Server.
        #[arg(long, short = 'n')]
        namespace: String,
        /// Where to write the agent's kubeconfig (default unyo-agent-NAME.kubeconfig).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Admin kubeconfig to create it with (default: $KUBECONFIG or ~/.kube/config).
        #[arg(long)]
        kubeconfig: Option<PathBuf>,
        /// API server URL as the host reaches it (default: the admin kubeconfig's).
        #[arg(long)]
        server_url: Option<String>,
        /// Token lifetime, e.g. 24h (the agent renews it at 80 %; at least 10m).
        #[arg(long, default_value = "24h")]
        token_ttl: String,
        /// Replace the agent's ServiceAccount first: every token issued before is revoked.
        #[arg(long)]
        rotate: bool,
    },
}

/// The name kubectl runs a plugin by: `kubectl unyo …` executes `kubectl-unyo` from the PATH.
const PLUGIN_NAME: &str = "kubectl-unyo";

/// The command line, named as it was invoked: as `kubectl unyo` when run as kubectl's plugin.
fn parse() -> Cli {
    let argv0 = std::env::args_os().next().unwrap_or_default();
    let plugin = std::path::Path::new(&argv0)
        .file_name()
        .is_some_and(|n| n == PLUGIN_NAME);
    let mut command = Cli::command();
    if plugin {
        command = command.bin_name("kubectl unyo");
    }
    Cli::from_arg_matches(&command.get_matches()).unwrap_or_else(|e| e.exit())
}

fn main() -> ExitCode {
    let cli = parse();
    match cli.command {
        Command::Check { paths, quiet } => check::run(&paths, quiet),
        Command::Crds => print_crds(),
        Command::Calendar(cmd) => calendar::run(cmd),
        Command::Agent(AgentCommand::Bootstrap {
            name,
            namespace,
            out,
            kubeconfig,
            server_url,
            token_ttl,
            rotate,
        }) => agent_bootstrap(
            &name, &namespace, out, kubeconfig, server_url, &token_ttl, rotate,
        ),
        Command::Backup(BackupCommand::Now {
            server,
            namespace,
            reason,
            kubeconfig,
            timeout,
        }) => match unyo_crds::common::parse_duration(&timeout) {
            Err(e) => {
                eprintln!("unyo backup now: --timeout: {e}");
                ExitCode::from(2)
            }
            Ok(t) => block_on("unyo backup now", async {
                let client = unyo_crds::client::connect(kubeconfig.as_deref()).await?;
                backup::now(client, &namespace, &server, &reason, t).await
            }),
        },
        Command::Backup(BackupCommand::Restore(args)) => backup_restore(&args),
        Command::Patch(PatchCommand::Report {
            namespace,
            baseline,
            output,
            kubeconfig,
        }) => block_on("unyo patch report", async {
            let client = unyo_crds::client::connect(kubeconfig.as_deref()).await?;
            let r = patch::report(client, &namespace, baseline.as_deref()).await?;
            Ok(if output == "json" {
                serde_json::to_string_pretty(&r)?
            } else {
                patch::markdown(&r)
            })
        }),
        Command::Report(cmd) => run_report(cmd),
        Command::Ledger(LedgerCommand::Export { namespace, output }) => {
            block_on("unyo ledger export", async {
                let client = unyo_crds::client::connect(output.kubeconfig.as_deref()).await?;
                report::ledger(client, &namespace, &output).await
            })
        }
    }
}

fn run_report(cmd: ReportCommand) -> ExitCode {
    match cmd {
        ReportCommand::Monthly {
            namespace,
            month,
            calendar,
            prometheus,
            record,
            if_first_business_day,
            now,
            output,
        } => block_on("unyo report monthly", async {
            let client = unyo_crds::client::connect(output.kubeconfig.as_deref()).await?;
            let args = report::MonthlyArgs {
                month: month.as_deref(),
                calendar: calendar.as_deref(),
                prometheus: prometheus.as_deref(),
                record,
                if_first_business_day,
                now,
            };
            report::monthly(client, &namespace, &args, &output).await
        }),
        ReportCommand::Incident {
            name,
            namespace,
            output,
        } => block_on("unyo report incident", async {
            let client = unyo_crds::client::connect(output.kubeconfig.as_deref()).await?;
            report::incident(client, &namespace, &name, &output).await
        }),
        ReportCommand::Incidents {
            namespace,
            from,
            to,
            output,
        } => block_on("unyo report incidents", async {
            let client = unyo_crds::client::connect(output.kubeconfig.as_deref()).await?;
            report::incidents(client, &namespace, &from, &to, &output).await
        }),
    }
}

/// Runs `work` on a runtime of its own; prints its text, or its error prefixed with `what`.
fn block_on(
    what: &str,
    work: impl std::future::Future<Output = anyhow::Result<String>>,
) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{what}: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(work) {
        Ok(text) => {
            println!("{}", text.trim_end());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{what}: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn agent_bootstrap(
    name: &str,
    namespace: &str,
    out: Option<PathBuf>,
    kubeconfig: Option<PathBuf>,
    server_url: Option<String>,
    token_ttl: &str,
    rotate: bool,
) -> ExitCode {
    let ttl = match unyo_crds::common::parse_duration(token_ttl) {
        Ok(d) if d.as_secs() >= 600 => d,
        Ok(_) => {
            eprintln!("unyo agent bootstrap: --token-ttl must be at least 10m");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("unyo agent bootstrap: --token-ttl: {e}");
            return ExitCode::from(2);
        }
    };
    let out = out.unwrap_or_else(|| bootstrap::default_out(name));
    let b = bootstrap::Bootstrap {
        server: name,
        namespace,
        out: &out,
        kubeconfig: kubeconfig.as_deref(),
        server_url: server_url.as_deref(),
        token_seconds: i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX),
        rotate,
    };
    block_on("unyo agent bootstrap", bootstrap::run(&b))
}

fn backup_restore(a: &RestoreArgs) -> ExitCode {
    let fail = |flag: &str, e: String| {
        eprintln!("unyo backup restore: {flag}: {e}");
        ExitCode::from(2)
    };
    let timeout = match unyo_crds::common::parse_duration(&a.timeout) {
        Ok(t) => t,
        Err(e) => return fail("--timeout", e),
    };
    let what = match &a.to_time {
        Some(t) => match t.parse::<jiff::Timestamp>() {
            Ok(at) => backup::What::ToTime {
                at,
                source: a.source.clone(),
            },
            Err(e) => {
                return fail(
                    "--to-time",
                    format!(
                        "{t:?} is not a time with its offset, e.g. 2026-11-30T10:15:00+09:00: {e}"
                    ),
                );
            }
        },
        None => backup::What::Generation(a.generation),
    };
    let (server, plan, namespace, target) = (&a.server, &a.plan, &a.namespace, &a.target);
    block_on("unyo backup restore", async {
        let client = unyo_crds::client::connect(a.kubeconfig.as_deref()).await?;
        if a.dry_run {
            let plans: kube::Api<unyo_crds::BackupPlan> =
                kube::Api::namespaced(client.clone(), namespace);
            let p = plans.get(plan).await?;
            let servers: kube::Api<unyo_crds::Server> = kube::Api::namespaced(client, namespace);
            let verified = servers
                .get_opt(server)
                .await?
                .and_then(|s| s.status?.operations)
                .and_then(|o| o.backups.into_iter().find(|b| b.plan == *plan))
                .map(|b| b.verified)
                .unwrap_or_default();
            Ok(backup::dry_run(plan, &p, &what, &verified, target).join("\n"))
        } else {
            backup::request(client, namespace, server, plan, &what, target, timeout).await
        }
    })
}

fn print_crds() -> ExitCode {
    let docs = match unyo_crds::crdgen::rendered() {
        Ok(docs) => docs,
        Err(e) => {
            eprintln!("unyo crds: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut out = std::io::stdout().lock();
    for (_, yaml) in docs {
        if writeln!(out, "---\n{}", yaml.trim_end()).is_err() {
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

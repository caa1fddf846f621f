//! `unyo`: the operator's command line (also installable as `kubectl-unyo`).

mod calendar;
mod check;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { paths, quiet } => check::run(&paths, quiet),
        Command::Crds => print_crds(),
        Command::Calendar(cmd) => calendar::run(cmd),
    }
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

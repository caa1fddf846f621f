//! The agent as a Windows service:
//!
//! - `unyo-agent service install [FLAGS]` registers the service `unyo-agent` (automatic start,
//!   LocalSystem, restarted on failure), which the Service Control Manager starts as
//!   `unyo-agent service run FLAGS`; the flags are those of the agent and are checked first;
//! - `unyo-agent service run FLAGS` is that start: the service control protocol (running, stop,
//!   shutdown) around the agent, logging to `<state-dir>\unyo-agent.log`;
//! - `unyo-agent service uninstall` stops and removes the service.

use std::ffi::{OsStr, OsString};
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context, anyhow};
use clap::Parser;
use windows_service::service::{
    ServiceAccess, ServiceAction, ServiceActionType, ServiceControl, ServiceControlAccept,
    ServiceErrorControl, ServiceExitCode, ServiceFailureActions, ServiceFailureResetPeriod,
    ServiceInfo, ServiceStartType, ServiceState, ServiceStatus, ServiceType,
};
use windows_service::service_control_handler::{self, ServiceControlHandlerResult};
use windows_service::service_dispatcher;
use windows_service::service_manager::{ServiceManager, ServiceManagerAccess};

use crate::Args;

/// The service's name.
pub const NAME: &str = "unyo-agent";

/// The agent's flags the service was started with (`service run FLAGS`).
static FLAGS: OnceLock<Vec<OsString>> = OnceLock::new();

/// Handles `service …` when it is the command line; None for any other command line.
pub fn from_command_line() -> Option<anyhow::Result<()>> {
    let mut argv: Vec<OsString> = std::env::args_os().collect();
    if argv.get(1).map(OsString::as_os_str) != Some(OsStr::new("service")) {
        return None;
    }
    let flags: Vec<OsString> = argv.drain(3.min(argv.len())..).collect();
    Some(match argv.get(2).and_then(|v| v.to_str()) {
        Some("install") => install(flags),
        Some("uninstall") => uninstall(),
        Some("run") => run(flags),
        _ => Err(anyhow!(
            "usage: unyo-agent service install [FLAGS] | service uninstall | service run [FLAGS]"
        )),
    })
}

fn parse(flags: &[OsString]) -> anyhow::Result<Args> {
    let argv = std::iter::once(OsString::from(NAME)).chain(flags.iter().cloned());
    Args::try_parse_from(argv).map_err(|e| anyhow!("{e}"))
}

fn install(flags: Vec<OsString>) -> anyhow::Result<()> {
    parse(&flags)?;
    let manager = ServiceManager::local_computer(
        None::<&str>,
        ServiceManagerAccess::CONNECT | ServiceManagerAccess::CREATE_SERVICE,
    )
    .context("opening the Service Control Manager")?;
    let info = ServiceInfo {
        name: NAME.into(),
        display_name: "unyo agent".into(),
        service_type: ServiceType::OWN_PROCESS,
        start_type: ServiceStartType::AutoStart,
        error_control: ServiceErrorControl::Normal,
        executable_path: std::env::current_exe().context("locating unyo-agent.exe")?,
        launch_arguments: [OsString::from("service"), OsString::from("run")]
            .into_iter()
            .chain(flags)
            .collect(),
        dependencies: vec![],
        account_name: None,
        account_password: None,
    };
    let service = manager
        .create_service(&info, ServiceAccess::CHANGE_CONFIG)
        .context("creating the service unyo-agent")?;
    service
        .set_description("Reports this host's facts to the unyo control plane")
        .context("describing the service")?;
    let restart = ServiceAction {
        action_type: ServiceActionType::Restart,
        delay: Duration::from_secs(5),
    };
    let failure = ServiceFailureActions {
        reset_period: ServiceFailureResetPeriod::After(Duration::from_secs(86_400)),
        reboot_msg: None,
        command: None,
        actions: Some(vec![restart; 3]),
    };
    if let Err(e) = service.update_failure_actions(failure) {
        eprintln!("unyo-agent: the service is installed, but not to restart on failure: {e}");
    }
    println!("installed the service {NAME}");
    Ok(())
}

fn uninstall() -> anyhow::Result<()> {
    let manager = ServiceManager::local_computer(None::<&str>, ServiceManagerAccess::CONNECT)
        .context("opening the Service Control Manager")?;
    let access = ServiceAccess::QUERY_STATUS | ServiceAccess::STOP | ServiceAccess::DELETE;
    let service = manager
        .open_service(NAME, access)
        .context("opening the service unyo-agent")?;
    if service.query_status()?.current_state != ServiceState::Stopped {
        service.stop().context("stopping the service")?;
    }
    service.delete().context("deleting the service")?;
    println!("removed the service {NAME}");
    Ok(())
}

fn run(flags: Vec<OsString>) -> anyhow::Result<()> {
    let _ = FLAGS.set(flags);
    service_dispatcher::start(NAME, ffi_service_main)
        .context("connecting to the Service Control Manager (run by it, not by hand)")
}

windows_service::define_windows_service!(ffi_service_main, service_main);

fn service_main(_: Vec<OsString>) {
    if let Err(e) = serve() {
        tracing::error!(error = %format!("{e:#}"), "the service failed");
    }
}

fn status(state: ServiceState, exit: u32) -> ServiceStatus {
    ServiceStatus {
        service_type: ServiceType::OWN_PROCESS,
        current_state: state,
        controls_accepted: if state == ServiceState::Running {
            ServiceControlAccept::STOP | ServiceControlAccept::SHUTDOWN
        } else {
            ServiceControlAccept::empty()
        },
        exit_code: ServiceExitCode::Win32(exit),
        checkpoint: 0,
        wait_hint: Duration::from_secs(10),
        process_id: None,
    }
}

/// The service control protocol around the agent: Running once started, Stopped when the agent
/// ends (exit code 1 when it failed, so that the failure actions restart it).
fn serve() -> anyhow::Result<()> {
    let args = parse(FLAGS.get().map(Vec::as_slice).unwrap_or_default())?;
    std::fs::create_dir_all(&args.state_dir)?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(args.state_dir.join("unyo-agent.log"))?;
    crate::init_logging(&args, Some(log))?;
    // A service has no console: a panic's message goes to the log.
    std::panic::set_hook(Box::new(|info| {
        let at = info.location().map(|l| l.to_string()).unwrap_or_default();
        tracing::error!(%at, "panic: {info}");
    }));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let mut stop_tx = Some(stop_tx);
    let handle = service_control_handler::register(NAME, move |control| match control {
        ServiceControl::Stop | ServiceControl::Shutdown => {
            if let Some(tx) = stop_tx.take() {
                let _ = tx.send(());
            }
            ServiceControlHandlerResult::NoError
        }
        ServiceControl::Interrogate => ServiceControlHandlerResult::NoError,
        _ => ServiceControlHandlerResult::NotImplemented,
    })?;
    handle.set_service_status(status(ServiceState::Running, 0))?;
    let stop = async {
        let _ = stop_rx.await;
    };
    let result = tokio::runtime::Runtime::new()?.block_on(crate::agent(args, stop));
    if let Err(e) = &result {
        tracing::error!(error = %format!("{e:#}"), "the agent stopped");
    }
    handle.set_service_status(status(ServiceState::Stopped, u32::from(result.is_err())))?;
    result
}

//! Host operations, each behind [`operation::Operation`]: virus scans (VirusScanSchedule; the
//! Server annotation `unyo.dev/scan-now=<anything new>`), backups (BackupPlan rules; a full
//! backup for `unyo.dev/backup-now=<reason>`), patches (PatchBaseline) — scheduled at the fire
//! times of their schedules on the named OperationCalendar. The engines differ per platform
//! (ClamAV, apt and restic on Linux; Microsoft Defender and the Windows Update Agent on
//! Windows); each sits behind one interface of its operation.

#[cfg(unix)]
pub mod antivirus;
#[cfg(unix)]
pub mod apt;
#[cfg(unix)]
pub mod backup;
#[cfg(unix)]
pub mod backups;
#[cfg(unix)]
pub mod command;
#[cfg(unix)]
mod confined;
#[cfg(any(windows, test))]
pub mod defender;
pub mod operation;
pub mod patch;
#[cfg(unix)]
pub mod postgres;
pub mod scans;
#[cfg(any(windows, test))]
pub mod wua;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::watch;
use unyo_crds::calendar::OperationCalendarSpec;
use unyo_crds::server::RequestState;
use unyo_crds::workcalendar::{WorkCalendar, compile_schedule};

use crate::facts::Collector;
use crate::report::Reporter;
use crate::schedule::{Run, Scheduler};

#[cfg(unix)]
pub use scans::AntivirusSlot;
#[cfg(unix)]
use unyo_crds::names::annotations::BACKUP_NOW;
/// The Server annotations that ask for a scan, a full backup or a restore now; a new value runs
/// one. A restore is answered by a `RestoreSucceeded` or `RestoreFailed` Event naming the request
/// id.
pub use unyo_crds::names::annotations::{RESTORE, SCAN_NOW};

/// A run of the scheduler from an async block.
fn run_of<F, Fut>(f: F) -> Run
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    Arc::new(move |_due| Box::pin(f()))
}

async fn answer(
    reporter: &Reporter,
    annotation: &str,
    value: &str,
    state: RequestState,
    message: &str,
) {
    let (reason, warning) = match (annotation, state) {
        (RESTORE, RequestState::Succeeded) => ("RestoreSucceeded", false),
        (RESTORE, _) => ("RestoreFailed", true),
        (_, RequestState::Succeeded) => ("RequestSucceeded", false),
        _ => ("RequestFailed", true),
    };
    reporter.request(annotation, value, state, message).await;
    reporter.note(reason, message, warning).await;
}
/// The first fire time after `after` of `schedule` (the field `field` of `owner`) on
/// `calendar`, which must exist.
fn first_fire(
    owner: &str,
    calendar: Option<&OperationCalendarSpec>,
    schedule: &unyo_crds::common::Schedule,
    field: &str,
    after: Timestamp,
) -> Result<Option<Timestamp>, String> {
    let Some(cal) = calendar else {
        return Err(format!(
            "{owner}: OperationCalendar {} not found",
            schedule.calendar
        ));
    };
    let work = WorkCalendar::from_spec(cal).map_err(|e| e.to_string())?;
    let schedule = compile_schedule(schedule, field).map_err(|e| e.to_string())?;
    match work.fire_times(&schedule, after).next() {
        Some(Ok(z)) => Ok(Some(z.timestamp())),
        Some(Err(e)) => Err(e.to_string()),
        None => Ok(None),
    }
}

/// What every operation needs of the host.
#[derive(Clone)]
pub struct Host {
    /// Its files beneath `--root`.
    pub collector: Collector,
    /// Its Server.
    pub server: String,
    /// The agent's state directory.
    pub state_dir: PathBuf,
    /// The host policy in force.
    pub policy: watch::Receiver<Arc<crate::hostpolicy::HostPolicy>>,
    /// Where results go.
    pub reporter: Reporter,
    /// Where runs are queued.
    pub scheduler: Scheduler,
}

/// The engines of this platform: the virus scanner and the patch source.
#[derive(Clone)]
pub struct Engines {
    /// ClamAV on Linux, Microsoft Defender on Windows.
    pub scanner: Arc<dyn scans::Engine>,
    /// apt on Linux, the Windows Update Agent on Windows.
    pub patches: Arc<dyn patch::Source>,
}

impl Engines {
    /// ClamAV with its database in the state directory, and apt beneath the host's root.
    #[cfg(unix)]
    pub fn of_host(root: &std::path::Path, state_dir: &std::path::Path) -> std::io::Result<Self> {
        Ok(Engines {
            scanner: Arc::new(antivirus::ClamAv {
                db: state_dir.join("clamav"),
            }),
            patches: Arc::new(apt::Apt::new(root, state_dir)?),
        })
    }

    /// Microsoft Defender and the Windows Update Agent of this host.
    #[cfg(windows)]
    pub fn of_host(_root: &std::path::Path, _state_dir: &std::path::Path) -> std::io::Result<Self> {
        Ok(Engines {
            scanner: Arc::new(defender::Defender::installed()),
            patches: Arc::new(wua::WindowsUpdate),
        })
    }
}

/// Starts every operation of the agent — adding one is a module implementing
/// [`operation::Operation`] and a line here — and returns how the assignment follows each.
pub async fn start_all(
    h: Host,
    engines: Engines,
    patch_interval: Duration,
    tasks: &mut tokio::task::JoinSet<()>,
) -> Vec<Box<dyn crate::assign::Followed>> {
    use crate::assign::start;
    let (dir, reporter) = (h.state_dir.clone(), h.reporter.clone());
    let scans = scans::Scans {
        scanner: scans::Scanner {
            host: h.collector.clone(),
            engine: engines.scanner,
            server: h.server.clone(),
            reporter: reporter.clone(),
        },
        scheduler: h.scheduler.clone(),
    };
    let patches = patch::Patches {
        source: engines.patches,
        state_dir: dir.clone(),
        reporter: reporter.clone(),
        scheduler: h.scheduler.clone(),
        interval: patch_interval,
    };
    #[cfg_attr(windows, allow(unused_mut))]
    let mut started = vec![
        start(scans, &dir, &reporter, tasks).await,
        start(patches, &dir, &reporter, tasks).await,
    ];
    #[cfg(unix)]
    started.push(start(backups::backups(&h), &dir, &reporter, tasks).await);
    started
}

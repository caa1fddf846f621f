//! How long each status list may grow, and the one place that cuts it.
//!
//! Every list in a status has a `maxItems` from this module in its schema, so the API server
//! refuses a longer one. The writers (the agent for Server `status.observed` and
//! `status.operations`, the controller for everything else) call the status type's `bound()`
//! before they write, so an over-long list is cut and never refused. Where a cut loses a fact
//! that matters, `bound()` says so: a cut observed list becomes an unknown fact (no drift is
//! judged on it), and a count beside the list keeps the full number.
//!
//! The limits fit a fleet of 10,000 Servers: a policy's per-server list names at most
//! [`LISTED_SERVERS`] (those needing attention first) beside counts of all, so no object grows with
//! the fleet, and a Server's status at every limit stays well under etcd's 1.5 MiB request limit
//! with names of ordinary length (see docs/controller.md, "Bounds").

/// Conditions of any object (one per type; no kind has more than eight types).
pub const CONDITIONS: usize = 16;
/// Checks a host reports (one per policy and check).
pub const CHECKS: usize = 512;
/// Drifted ledger paths listed on a Server (`status.driftCount` keeps the full number).
pub const DRIFT: usize = 500;
/// Installed packages listed on a Server (a Debian server has 500 to 3,000).
pub const PACKAGES: usize = 6_000;
/// Service units listed on a Server.
pub const SERVICES: usize = 2_000;
/// Disks, filesystems or network interfaces listed on a Server (each).
pub const DEVICES: usize = 256;
/// Installed hotfixes a Server's facts list (a Windows Server host with cumulative updates has
/// a few dozen; more are cut and the fact marked unknown). Sized so that a status with every
/// list at its limit stays under 1 MiB (tests/tests/bounds.rs).
pub const PATCHES: usize = 512;
/// Addresses of one network interface.
pub const ADDRESSES: usize = 64;
/// Facts that could not be read.
pub const UNKNOWN_FACTS: usize = 64;
/// Per-plan backup results or per-baseline patch states on one host.
pub const PER_POLICY: usize = 32;
/// Updates found available on one host.
pub const AVAILABLE: usize = 1_000;
/// Patches listed in one baseline's state on one host (those needing attention first; the
/// counts beside them cover all).
pub const HOST_PATCHES: usize = 500;
/// Package names in a list of names (packages needing a reboot).
pub const PACKAGE_NAMES: usize = 1_000;
/// Snapshot verifications kept per plan on a host (newest first).
pub const VERIFIED: usize = 20;
/// PostgreSQL sources whose journal shipment is listed per plan on a host.
pub const JOURNALS: usize = 8;
/// Pre- and post-commands listed with a plan's last run on a host.
pub const COMMANDS: usize = 16;
/// Refusals by a host's policy, and answers to requests.
pub const ANSWERS: usize = 100;
/// Detections listed (the newest first); their count is kept beside them.
pub const DETECTIONS: usize = 100;
/// Actions taken on one detection.
pub const ACTIONS: usize = 8;
/// Servers listed in a policy's status (those needing attention first).
pub const LISTED_SERVERS: usize = 1_000;
/// Candidate patches judged by one baseline.
pub const CANDIDATES: usize = 1_000;
/// Names in the evidence of one judgement (servers needing a patch, staging hosts, incidents).
pub const EVIDENCE: usize = 100;
/// Similar past incidents listed on an Incident.
pub const SIMILAR: usize = 20;
/// Drift records a planned change absorbed.
pub const ABSORBED: usize = 1_000;
/// Holidays listed ahead on an OperationCalendar.
pub const UPCOMING_HOLIDAYS: usize = 64;
/// Notifications due or delivered on one Incident.
pub const NOTIFICATIONS: usize = 100;

/// Cuts `list` to `max` entries, keeping the first; returns how many were dropped.
pub fn cut<T>(list: &mut Vec<T>, max: usize) -> usize {
    let dropped = list.len().saturating_sub(max);
    list.truncate(max);
    dropped
}

/// Cuts `list` to `max` entries; when it must cut, the entries for which `first` holds (those
/// needing attention) are kept before the others, each group in its order.
pub fn cut_keeping<T>(list: &mut Vec<T>, max: usize, first: impl Fn(&T) -> bool) -> usize {
    if list.len() > max {
        list.sort_by_key(|t| !first(t));
    }
    cut(list, max)
}

/// Cuts `list` to its newest `max` entries, when entries are kept oldest first.
pub fn cut_oldest<T>(list: &mut Vec<T>, max: usize) -> usize {
    let dropped = list.len().saturating_sub(max);
    list.drain(..dropped);
    dropped
}

/// A status whose lists can be cut to the limits of its schema.
pub trait Bounded {
    /// Cuts every list to its limit (see the module's documentation for what is kept).
    fn bound(&mut self);
}

impl<T: Bounded> Bounded for Option<T> {
    fn bound(&mut self) {
        if let Some(t) = self {
            t.bound();
        }
    }
}

use crate::backup::{BackupPlanStatus, RunResult};
use crate::calendar::OperationCalendarStatus;
use crate::change::ChangeRecordStatus;
use crate::incident::IncidentStatus;
use crate::monitoring::MonitoringPolicyStatus;
use crate::patch::{HostPatchState, Judgement, PatchBaselineStatus, PatchScan, PatchState};
use crate::server::{ObservedFacts, OperationResults, ServerStatus, UnknownFact};
use crate::virusscan::{Detection, HostAntivirus, VirusScanScheduleStatus};

impl Bounded for ServerStatus {
    fn bound(&mut self) {
        cut(&mut self.checks, CHECKS);
        cut(&mut self.drift, DRIFT);
        cut(&mut self.conditions, CONDITIONS);
        self.observed.bound();
        self.operations.bound();
    }
}

impl Bounded for ObservedFacts {
    /// A cut list is also an unknown fact, so that no drift is judged on what is not listed.
    fn bound(&mut self) {
        let mut cuts = Vec::new();
        let mut note = |fact: &str, total: usize, dropped: usize| {
            if dropped > 0 {
                cuts.push(UnknownFact {
                    fact: fact.into(),
                    reason: format!(
                        "{total} found, more than the {} a status lists",
                        total - dropped
                    ),
                });
            }
        };
        note(
            "packages",
            self.packages.len(),
            cut(&mut self.packages, PACKAGES),
        );
        note(
            "services",
            self.services.len(),
            cut(&mut self.services, SERVICES),
        );
        note("disks", self.disks.len(), cut(&mut self.disks, DEVICES));
        note(
            "patches",
            self.patches.len(),
            cut(&mut self.patches, PATCHES),
        );
        if let Some(devices) = &mut self.devices {
            note("devices", devices.len(), cut(devices, DEVICES));
        }
        note(
            "filesystems",
            self.filesystems.len(),
            cut(&mut self.filesystems, DEVICES),
        );
        let nics = self.nics.len();
        let mut dropped = cut(&mut self.nics, DEVICES);
        for nic in &mut self.nics {
            dropped = dropped.saturating_add(cut(&mut nic.addresses, ADDRESSES));
        }
        note("nics", nics.saturating_add(dropped), dropped);
        cuts.retain(|c| !self.unknown.iter().any(|u| u.fact == c.fact));
        cuts.append(&mut self.unknown);
        self.unknown = cuts;
        cut(&mut self.unknown, UNKNOWN_FACTS);
    }
}

impl Bounded for OperationResults {
    fn bound(&mut self) {
        self.antivirus.bound();
        cut(&mut self.backups, PER_POLICY);
        for b in &mut self.backups {
            cut_keeping(&mut b.commands, COMMANDS, |c| c.exit_code != Some(0));
            cut(&mut b.verified, VERIFIED);
            cut(&mut b.journals, JOURNALS);
        }
        cut(&mut self.patches, PER_POLICY);
        self.patches.iter_mut().for_each(Bounded::bound);
        self.patch_scan.bound();
        cut(&mut self.refusals, ANSWERS);
        cut(&mut self.requests, ANSWERS);
    }
}

impl Bounded for HostAntivirus {
    fn bound(&mut self) {
        bound_detections(&mut self.detections);
    }
}

/// Detections are listed newest first.
fn bound_detections(list: &mut Vec<Detection>) {
    cut(list, DETECTIONS);
    for d in list {
        cut(&mut d.actions, ACTIONS);
    }
}

impl Bounded for HostPatchState {
    fn bound(&mut self) {
        let settled =
            |s: &PatchState| matches!(s, PatchState::Installed | PatchState::NotApplicable);
        cut_keeping(&mut self.patches, HOST_PATCHES, |p| !settled(&p.state));
    }
}

impl Bounded for PatchScan {
    fn bound(&mut self) {
        cut(&mut self.available, AVAILABLE);
        cut(&mut self.reboot_packages, PACKAGE_NAMES);
    }
}

impl Bounded for BackupPlanStatus {
    fn bound(&mut self) {
        let failed = |r: &Option<crate::backup::BackupRun>| {
            r.as_ref().is_none_or(|r| r.result != RunResult::Succeeded)
        };
        cut_keeping(&mut self.servers, LISTED_SERVERS, |s| {
            failed(&s.last_full)
                || s.last_differential
                    .as_ref()
                    .is_some_and(|r| r.result != RunResult::Succeeded)
        });
        cut(&mut self.conditions, CONDITIONS);
    }
}

impl Bounded for ChangeRecordStatus {
    fn bound(&mut self) {
        cut_oldest(&mut self.absorbed, ABSORBED);
        cut(&mut self.conditions, CONDITIONS);
    }
}

impl Bounded for IncidentStatus {
    fn bound(&mut self) {
        cut(&mut self.similar, SIMILAR);
        cut(&mut self.outbox, NOTIFICATIONS);
        cut(&mut self.notifications, NOTIFICATIONS);
        cut(&mut self.conditions, CONDITIONS);
    }
}

impl Bounded for MonitoringPolicyStatus {
    fn bound(&mut self) {
        cut(&mut self.servers, LISTED_SERVERS);
        cut(&mut self.conditions, CONDITIONS);
    }
}

impl Bounded for PatchBaselineStatus {
    fn bound(&mut self) {
        cut_keeping(&mut self.servers, LISTED_SERVERS, |s| !s.compliant);
        cut_keeping(&mut self.candidates, CANDIDATES, |c| {
            c.judgement == Judgement::Apply
        });
        for c in &mut self.candidates {
            cut(&mut c.needed_by, EVIDENCE);
            cut(&mut c.staging, EVIDENCE);
            for s in &mut c.staging {
                cut(&mut s.open_incidents, EVIDENCE);
            }
        }
        cut(&mut self.conditions, CONDITIONS);
    }
}

impl Bounded for OperationCalendarStatus {
    fn bound(&mut self) {
        cut(&mut self.upcoming_holidays, UPCOMING_HOLIDAYS);
        cut(&mut self.hosts_in_other_zones, LISTED_SERVERS);
        cut(&mut self.conditions, CONDITIONS);
    }
}

impl Bounded for VirusScanScheduleStatus {
    fn bound(&mut self) {
        cut(&mut self.stale_hosts, LISTED_SERVERS);
        cut(&mut self.missed_hosts, LISTED_SERVERS);
        bound_detections(&mut self.detections);
        cut(&mut self.conditions, CONDITIONS);
    }
}

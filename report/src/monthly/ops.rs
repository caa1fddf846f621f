//! Patches, backups, antivirus and the maintenance done in the month, from the policies' status
//! and what each host's agent reported.

use jiff::Timestamp;
use serde::Serialize;
use unyo_crds::backup::{BackupRun, RunResult};
use unyo_crds::change::{ChangeOrigin, ChangePhase, ChangeRecord};
use unyo_crds::patch::{PatchBaseline, PatchState};
use unyo_crds::server::Server;
use unyo_crds::virusscan::VirusScanSchedule;

use super::Period;
use super::changes::resolved;
use super::incidents::count;
use crate::time::{local, local_opt, ts};

/// パッチ適用状況.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Patches {
    pub baselines: Vec<BaselineRow>,
    pub judgements: Vec<JudgementRow>,
    pub servers: Vec<ServerPatches>,
    pub installed: Vec<PatchEvent>,
    pub failed: Vec<PatchEvent>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BaselineRow {
    pub name: String,
    pub compliant: u32,
    pub non_compliant: u32,
    pub apply: u32,
    pub hold: u32,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JudgementRow {
    pub baseline: String,
    pub package: String,
    pub version: String,
    pub judgement: String,
    pub reason: String,
    pub servers: u32,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerPatches {
    pub server: String,
    pub baseline: String,
    pub compliant: bool,
    pub installed: u32,
    pub missing: u32,
    pub failed: u32,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PatchEvent {
    pub server: String,
    pub package: String,
    pub version: String,
    pub at: String,
    pub message: String,
}

pub(super) fn patches(baselines: &[PatchBaseline], servers: &[Server], p: &Period) -> Patches {
    let mut out = Patches::default();
    for b in baselines {
        let name = b.metadata.name.clone().unwrap_or_default();
        let st = b.status.clone().unwrap_or_default();
        let apply = st
            .candidates
            .iter()
            .filter(|c| c.judgement == unyo_crds::patch::Judgement::Apply)
            .count();
        out.baselines.push(BaselineRow {
            name: name.clone(),
            compliant: st.compliant_servers.unwrap_or(0),
            non_compliant: st.non_compliant_servers.unwrap_or(0),
            apply: count(apply),
            hold: count(st.candidates.len().saturating_sub(apply)),
        });
        for c in &st.candidates {
            out.judgements.push(JudgementRow {
                baseline: name.clone(),
                package: c.package.clone(),
                version: c.version.clone(),
                judgement: format!("{:?}", c.judgement),
                reason: c.reason.clone(),
                servers: count(c.needed_by.len()),
            });
        }
        for s in &st.servers {
            out.servers.push(ServerPatches {
                server: s.server.clone(),
                baseline: name.clone(),
                compliant: s.compliant,
                installed: s
                    .counts
                    .installed
                    .saturating_add(s.counts.installed_pending_reboot),
                missing: s.counts.missing,
                failed: s.counts.failed,
            });
        }
    }
    host_patch_events(servers, p, &mut out);
    out
}

fn host_patch_events(servers: &[Server], p: &Period, out: &mut Patches) {
    for s in servers {
        let server = s.metadata.name.clone().unwrap_or_default();
        let states = s
            .status
            .iter()
            .flat_map(|st| &st.operations)
            .flat_map(|o| &o.patches);
        for hp in states.flat_map(|h| &h.patches) {
            let Some(at) = hp.installed_at.as_ref().map(ts).filter(|t| p.contains(*t)) else {
                continue;
            };
            let ev = PatchEvent {
                server: server.clone(),
                package: hp.package.clone(),
                version: hp.version.clone(),
                at: local(at, &p.tz),
                message: hp.message.clone().unwrap_or_default(),
            };
            match hp.state {
                PatchState::Installed | PatchState::InstalledPendingReboot => {
                    out.installed.push(ev)
                }
                PatchState::Failed => out.failed.push(ev),
                _ => {}
            }
        }
    }
    out.installed.sort_by(|a, b| a.at.cmp(&b.at));
    out.failed.sort_by(|a, b| a.at.cmp(&b.at));
}

/// バックアップ状況: per server and plan, as its agent last reported.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Backups {
    /// Last runs (full or differential) that started in the month.
    pub runs_in_month: u32,
    /// Of those, the ones that failed or were interrupted.
    pub failures_in_month: u32,
    pub rows: Vec<BackupRow>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupRow {
    pub server: String,
    pub plan: String,
    pub last_full_at: String,
    pub last_full_result: String,
    pub last_differential_at: String,
    pub last_differential_result: String,
    pub generations: u32,
    pub last_verification_at: String,
    pub last_verification_result: String,
    /// Hours since the newest off-site copy, at the report's time.
    pub offsite_copy_age_hours: Option<f64>,
}

pub(super) fn backups(servers: &[Server], p: &Period, now: Timestamp) -> Backups {
    let mut out = Backups::default();
    for s in servers {
        let server = s.metadata.name.clone().unwrap_or_default();
        for hb in s
            .status
            .iter()
            .flat_map(|st| &st.operations)
            .flat_map(|o| &o.backups)
        {
            for run in [&hb.last_full, &hb.last_differential].into_iter().flatten() {
                if p.contains(ts(&run.started_at)) {
                    out.runs_in_month += 1;
                    out.failures_in_month += u32::from(run.result != RunResult::Succeeded);
                }
            }
            let v = hb.last_verification.as_ref();
            out.rows.push(BackupRow {
                server: server.clone(),
                plan: hb.plan.clone(),
                last_full_at: run_at(hb.last_full.as_ref(), p),
                last_full_result: run_result(hb.last_full.as_ref()),
                last_differential_at: run_at(hb.last_differential.as_ref(), p),
                last_differential_result: run_result(hb.last_differential.as_ref()),
                generations: hb.generations.unwrap_or(0),
                last_verification_at: local_opt(v.map(|v| &v.at), &p.tz),
                last_verification_result: v.map(|v| format!("{:?}", v.result)).unwrap_or_default(),
                offsite_copy_age_hours: hb.offsite_copy_at.as_ref().map(|t| hours(ts(t), now)),
            });
        }
    }
    out
}

fn run_at(r: Option<&BackupRun>, p: &Period) -> String {
    local_opt(r.map(|r| &r.started_at), &p.tz)
}

fn run_result(r: Option<&BackupRun>) -> String {
    r.map(|r| format!("{:?}", r.result)).unwrap_or_default()
}

fn hours(from: Timestamp, to: Timestamp) -> f64 {
    let secs = to.as_second().saturating_sub(from.as_second()).max(0);
    (secs as f64 / 360.0).round() / 10.0
}

/// ウイルス対策状況.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Virus {
    pub schedules: Vec<ScheduleRow>,
    pub hosts: Vec<HostVirus>,
    /// Detections in the month.
    pub detections: Vec<DetectionRow>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleRow {
    pub name: String,
    pub stale_hosts: Vec<String>,
    pub missed_hosts: Vec<String>,
    pub detections: u32,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HostVirus {
    pub server: String,
    pub last_scan_at: String,
    pub last_scan_result: String,
    pub files_scanned: u64,
    pub signature_version: String,
    pub signature_age_hours: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DetectionRow {
    pub host: String,
    pub path: String,
    pub signature: String,
    pub actions: Vec<String>,
    pub at: String,
}

pub(super) fn virus(
    scans: &[VirusScanSchedule],
    servers: &[Server],
    p: &Period,
    now: Timestamp,
) -> Virus {
    let mut out = Virus::default();
    for v in scans {
        let st = v.status.clone().unwrap_or_default();
        out.schedules.push(ScheduleRow {
            name: v.metadata.name.clone().unwrap_or_default(),
            stale_hosts: st.stale_hosts,
            missed_hosts: st.missed_hosts,
            detections: st.detection_count.unwrap_or(0),
        });
    }
    for s in servers {
        let Some(av) = s
            .status
            .as_ref()
            .and_then(|st| st.operations.as_ref())
            .and_then(|o| o.antivirus.as_ref())
        else {
            continue;
        };
        out.hosts.push(HostVirus {
            server: s.metadata.name.clone().unwrap_or_default(),
            last_scan_at: local_opt(av.last_scan.as_ref().map(|r| &r.started_at), &p.tz),
            last_scan_result: av
                .last_scan
                .as_ref()
                .map(|r| format!("{:?}", r.result))
                .unwrap_or_default(),
            files_scanned: av.last_scan.as_ref().map_or(0, |r| r.files_scanned),
            signature_version: av.signature_version.clone().unwrap_or_default(),
            signature_age_hours: av.signature_time.as_ref().map(|t| hours(ts(t), now)),
        });
        for d in av.detections.iter().filter(|d| p.contains(ts(&d.at))) {
            out.detections.push(DetectionRow {
                host: d.host.clone(),
                path: d.path.clone(),
                signature: d.signature.clone(),
                actions: d.actions.clone(),
                at: local(ts(&d.at), &p.tz),
            });
        }
    }
    out.detections.sort_by(|a, b| a.at.cmp(&b.at));
    out
}

/// 保守作業実施状況: patches installed and changes implemented in the month.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Maintenance {
    pub patches_installed: u32,
    pub changes_implemented: Vec<ImplementedChange>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImplementedChange {
    pub name: String,
    pub title: String,
    pub category: String,
    pub at: String,
}

/// The maintenance of the month: the patches installed (as `patches` found them) and the
/// planned changes implemented.
pub(super) fn maintenance(patches: &Patches, changes: &[ChangeRecord], p: &Period) -> Maintenance {
    let mut done = Vec::new();
    for c in changes
        .iter()
        .filter(|c| c.spec.origin == ChangeOrigin::Planned)
    {
        let phase = c.status.as_ref().and_then(|s| s.phase);
        let implemented = matches!(
            phase,
            Some(ChangePhase::Implemented | ChangePhase::Resolved | ChangePhase::Closed)
        );
        let at = resolved(c).or_else(|| c.spec.plan.as_ref().map(|pl| ts(&pl.window.end)));
        if let Some(at) = at.filter(|t| implemented && p.contains(*t)) {
            done.push(ImplementedChange {
                name: c.metadata.name.clone().unwrap_or_default(),
                title: c.spec.title.clone().unwrap_or_default(),
                category: format!("{:?}", c.spec.category),
                at: local(at, &p.tz),
            });
        }
    }
    done.sort_by(|a, b| a.at.cmp(&b.at));
    Maintenance {
        patches_installed: count(patches.installed.len()),
        changes_implemented: done,
    }
}

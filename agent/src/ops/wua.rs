//! Windows updates through the Windows Update Agent (WUA) API: a search of the updates the
//! host's configured service (WSUS or Microsoft Update) offers and has installed, each with its
//! KB, title, MSRC severity, classification and release date; the install of one approved KB
//! (download, then install); the pending-reboot state.
//!
//! A Windows update is a patch whose package is its KB id (`KB5044277`) and whose version is
//! the WUA revision number: an approval of revision 200 is met by revision 200 or a later
//! revision of the same KB. The rows read from WUA ([`Update`]) are converted here on every
//! platform, so that the conversion is tested without Windows; the COM calls are in
//! `api` (Windows only).

#![cfg_attr(not(windows), allow(dead_code))]

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde::{Deserialize, Serialize};
use unyo_crds::patch::{AvailableUpdate, PatchScan};
use unyo_crds::patching::{classify_windows, names, severity_from_msrc};

use super::patch::HostPackages;

/// The WUA search criteria: software updates not installed and not hidden (on offer), and those
/// installed (WUA allows `or` only at the top level).
pub const CRITERIA: &str =
    "IsInstalled=0 and IsHidden=0 and Type='Software' or IsInstalled=1 and Type='Software'";

/// One update as WUA reports it (IUpdate, its categories and identity).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct Update {
    /// IUpdate.Title.
    pub title: String,
    /// IUpdate.KBArticleIDs, digits only (`5044277`).
    #[serde(rename = "KBArticleIDs")]
    pub kb_article_ids: Vec<String>,
    /// IUpdate.MsrcSeverity: Critical, Important, Moderate, Low or empty.
    #[serde(default)]
    pub msrc_severity: String,
    /// The Name of the category whose Type is `UpdateClassification`.
    #[serde(default)]
    pub classification: String,
    /// IUpdate.LastDeploymentChangeTime as an OLE Automation date (days since 1899-12-30).
    #[serde(default)]
    pub last_deployment_change_time: Option<f64>,
    /// IUpdate.Identity.RevisionNumber.
    #[serde(default)]
    pub revision_number: i32,
    /// IUpdate.IsInstalled.
    #[serde(default)]
    pub is_installed: bool,
}

/// One entry of the host's update history (IUpdateHistoryEntry): what went in when.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct HistoryEntry {
    /// Its title, which names the KB, e.g. `… (KB5044277)`.
    pub title: String,
    /// When, as an OLE Automation date.
    pub date: f64,
    /// Identity.RevisionNumber.
    #[serde(default)]
    pub revision_number: i32,
    /// ResultCode: 2 succeeded, 3 succeeded with errors.
    pub result_code: i32,
}

/// The time of an OLE Automation date (days since 1899-12-30 UTC, as WUA gives them); none
/// for a value that is not a time.
pub fn ole_date(days: f64) -> Option<Timestamp> {
    // 25,569 days separate 1899-12-30 from 1970-01-01.
    let seconds = (days - 25_569.0) * 86_400.0;
    if !seconds.is_finite() {
        return None;
    }
    Timestamp::from_second(seconds.round() as i64).ok()
}

/// The KB id of an update (`KB5044277`), from its first KB article id; none without one.
pub fn kb(update: &Update) -> Option<String> {
    let id = update.kb_article_ids.first()?.trim();
    let digits = id.trim_start_matches("KB");
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| format!("KB{digits}"))
}

/// The KB a history entry's title names (`… (KB5044277)`).
fn kb_in_title(title: &str) -> Option<String> {
    let at = title.rfind("KB")?;
    let digits: String = title[at + 2..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    (!digits.is_empty()).then(|| format!("KB{digits}"))
}

/// An update on offer as an available patch.
pub fn available(update: &Update, source: &str) -> Option<AvailableUpdate> {
    Some(AvailableUpdate {
        package: kb(update)?,
        installed_version: String::new(),
        version: update.revision_number.to_string(),
        classification: classify_windows(&update.classification),
        severity: severity_from_msrc(&update.msrc_severity),
        released_at: update
            .last_deployment_change_time
            .and_then(ole_date)
            .map(Time),
        archive: if update.classification.is_empty() {
            source.to_string()
        } else {
            format!("{source}/{}", update.classification)
        },
    })
}

/// What the host has and is offered, from one search and the update history.
pub fn host_packages(
    updates: &[Update],
    history: &[HistoryEntry],
    reboot_required: bool,
    source: &str,
    now: Timestamp,
) -> HostPackages {
    let mut host = HostPackages::default();
    for u in updates {
        let Some(id) = kb(u) else { continue };
        if u.is_installed {
            host.installed.insert(id, u.revision_number.to_string());
        } else if let Some(a) = available(u, source) {
            host.scan.available.push(a);
        }
    }
    host.installed_at = installed_at(history, &host.installed);
    host.scan
        .available
        .sort_by(|a, b| a.package.cmp(&b.package));
    host.scan.reboot_required = reboot_required;
    host.scan.scanned_at = Some(Time(now));
    host.scan.succeeded = true;
    host
}

/// The latest successful install time of each installed KB, from the history.
fn installed_at(
    history: &[HistoryEntry],
    installed: &BTreeMap<String, String>,
) -> BTreeMap<(String, String), Timestamp> {
    let mut at = BTreeMap::new();
    for e in history.iter().filter(|e| matches!(e.result_code, 2 | 3)) {
        let (Some(id), Some(t)) = (kb_in_title(&e.title), ole_date(e.date)) else {
            continue;
        };
        let Some(version) = installed.get(&id) else {
            continue;
        };
        let slot = at.entry((id, version.clone())).or_insert(t);
        *slot = (*slot).max(t);
    }
    at
}

/// A failed scan, with WUA's error.
pub fn failed_scan(message: String, now: Timestamp) -> HostPackages {
    HostPackages {
        scan: PatchScan {
            scanned_at: Some(Time(now)),
            succeeded: false,
            message: Some(message),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// The update to install for `package` at `version` among those on offer: the KB's offered
/// revision, when it is not older than the approved one and not blocked.
pub fn pick<'a>(
    offered: &'a [Update],
    package: &str,
    version: &str,
    blocked: &[String],
) -> Result<&'a Update, String> {
    let update = offered
        .iter()
        .find(|u| !u.is_installed && kb(u).as_deref() == Some(package))
        .ok_or_else(|| format!("{package} is not offered to this host by Windows Update"))?;
    let revision = update.revision_number.to_string();
    if blocked.iter().any(|b| names(b, package, &revision)) {
        return Err(format!("{package}={revision} is rejected by the baseline"));
    }
    let wanted: i64 = version
        .parse()
        .map_err(|_| format!("{package}: version {version:?} is not a WUA revision number"))?;
    if i64::from(update.revision_number) < wanted {
        return Err(format!(
            "{package}: revision {revision} is offered, older than the approved {version}"
        ));
    }
    Ok(update)
}

/// The Windows Update Agent of this host.
#[derive(Clone, Debug, Default)]
pub struct WindowsUpdate;

#[cfg(windows)]
impl super::patch::Source for WindowsUpdate {
    fn scan(&self) -> HostPackages {
        let now = crate::report::now_seconds();
        match api::search() {
            Ok((updates, history, reboot, source)) => {
                host_packages(&updates, &history, reboot, &source, now)
            }
            Err(e) => failed_scan(format!("Windows Update Agent: {e}"), now),
        }
    }

    fn reread(&self) -> HostPackages {
        self.scan()
    }

    fn install(&self, package: &str, version: &str, blocked: &[String]) -> Result<String, String> {
        api::install(package, version, blocked).map_err(|e| format!("Windows Update Agent: {e}"))
    }

    fn reboot(&self) -> Result<String, String> {
        std::process::Command::new("shutdown.exe")
            .args([
                "/r",
                "/t",
                "60",
                "/c",
                "unyo: restarting for installed updates",
            ])
            .status()
            .map_err(|e| format!("shutdown /r: {e}"))?;
        Ok(
            "restarting in 1 minute for the installed updates (reboot policy RebootIfNeeded)"
                .into(),
        )
    }
}

#[cfg(windows)]
#[allow(unsafe_code)]
mod api {
    //! The COM calls of the Windows Update Agent (wuapi). The `windows` crate declares every
    //! COM method unsafe; each call here is a method of an interface the crate's smart pointer
    //! holds alive (released on drop), with arguments this code owns (BSTRs, collections),
    //! on a thread this code initialised for COM. No pointer is dereferenced here.
    use windows::Win32::Foundation::VARIANT_BOOL;
    use windows::Win32::System::Com::{
        CLSCTX_INPROC_SERVER, COINIT_MULTITHREADED, CoCreateInstance, CoInitializeEx,
    };
    use windows::Win32::System::UpdateAgent::{
        ISystemInformation, IUpdate, IUpdateCollection, IUpdateSearcher, IUpdateSession,
        SystemInformation, UpdateCollection, UpdateSession,
    };
    use windows::core::BSTR;

    use super::{CRITERIA, HistoryEntry, Update, pick};

    /// What the history keeps at most is read (newest first).
    const HISTORY: i32 = 500;

    fn session() -> windows::core::Result<IUpdateSession> {
        // S_FALSE (already initialised on this thread) and a different mode are both usable.
        let _ = unsafe { CoInitializeEx(None, COINIT_MULTITHREADED) };
        let session: IUpdateSession =
            unsafe { CoCreateInstance(&UpdateSession, None, CLSCTX_INPROC_SERVER)? };
        unsafe { session.SetClientApplicationID(&BSTR::from("unyo-agent"))? };
        Ok(session)
    }

    fn strings(
        count: i32,
        item: impl Fn(i32) -> windows::core::Result<BSTR>,
    ) -> windows::core::Result<Vec<String>> {
        (0..count.max(0))
            .map(|i| item(i).map(|s| s.to_string()))
            .collect()
    }

    fn row(u: &IUpdate) -> windows::core::Result<Update> {
        let kbs = unsafe { u.KBArticleIDs()? };
        let categories = unsafe { u.Categories()? };
        let mut classification = String::new();
        for i in 0..unsafe { categories.Count()? }.max(0) {
            let c = unsafe { categories.get_Item(i)? };
            if unsafe { c.Type()? } == "UpdateClassification" {
                classification = unsafe { c.Name()? }.to_string();
            }
        }
        Ok(Update {
            title: unsafe { u.Title()? }.to_string(),
            kb_article_ids: strings(unsafe { kbs.Count()? }, |i| unsafe { kbs.get_Item(i) })?,
            msrc_severity: unsafe { u.MsrcSeverity() }
                .map(|s| s.to_string())
                .unwrap_or_default(),
            classification,
            last_deployment_change_time: unsafe { u.LastDeploymentChangeTime() }.ok(),
            revision_number: unsafe { u.Identity()?.RevisionNumber()? },
            is_installed: unsafe { u.IsInstalled()? }.as_bool(),
        })
    }

    fn rows(updates: &IUpdateCollection) -> windows::core::Result<Vec<(IUpdate, Update)>> {
        let mut out = Vec::new();
        for i in 0..unsafe { updates.Count()? }.max(0) {
            let u = unsafe { updates.get_Item(i)? };
            let r = row(&u)?;
            out.push((u, r));
        }
        Ok(out)
    }

    fn history(searcher: &IUpdateSearcher) -> Vec<HistoryEntry> {
        let read = || -> windows::core::Result<Vec<HistoryEntry>> {
            let total = unsafe { searcher.GetTotalHistoryCount()? };
            let entries = unsafe { searcher.QueryHistory(0, total.clamp(0, HISTORY))? };
            let mut out = Vec::new();
            for i in 0..unsafe { entries.Count()? }.max(0) {
                let e = unsafe { entries.get_Item(i)? };
                out.push(HistoryEntry {
                    title: unsafe { e.Title()? }.to_string(),
                    date: unsafe { e.Date()? },
                    revision_number: unsafe { e.UpdateIdentity()?.RevisionNumber()? },
                    result_code: unsafe { e.ResultCode()? }.0,
                });
            }
            Ok(out)
        };
        read().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "the Windows Update history could not be read");
            Vec::new()
        })
    }

    fn reboot_required() -> bool {
        let read = || -> windows::core::Result<bool> {
            let info: ISystemInformation =
                unsafe { CoCreateInstance(&SystemInformation, None, CLSCTX_INPROC_SERVER)? };
            Ok(unsafe { info.RebootRequired()? }.as_bool())
        };
        read().unwrap_or(false)
    }

    fn searched(
        session: &IUpdateSession,
    ) -> windows::core::Result<(IUpdateSearcher, Vec<(IUpdate, Update)>)> {
        let searcher = unsafe { session.CreateUpdateSearcher()? };
        let result = unsafe { searcher.Search(&BSTR::from(CRITERIA))? };
        let updates = unsafe { result.Updates()? };
        let found = rows(&updates)?;
        Ok((searcher, found))
    }

    /// One search: the updates, the history, whether a reboot is pending, and the service
    /// searched (`WSUS` when one is configured, else `Windows Update`).
    pub fn search() -> Result<(Vec<Update>, Vec<HistoryEntry>, bool, String), String> {
        let session = session().map_err(|e| format!("opening an update session: {e}"))?;
        let (searcher, found) = searched(&session).map_err(|e| format!("search: {e}"))?;
        let service = match unsafe { searcher.ServerSelection() } {
            Ok(s) if s.0 == 1 => "WSUS",
            _ => "Windows Update",
        };
        let rows = found.into_iter().map(|(_, r)| r).collect();
        Ok((rows, history(&searcher), reboot_required(), service.into()))
    }

    /// Downloads and installs the offered revision of `package` (not older than `version`).
    pub fn install(package: &str, version: &str, blocked: &[String]) -> Result<String, String> {
        let session = session().map_err(|e| format!("opening an update session: {e}"))?;
        let (_, found) = searched(&session).map_err(|e| format!("search: {e}"))?;
        let rows: Vec<Update> = found.iter().map(|(_, r)| r.clone()).collect();
        let chosen = pick(&rows, package, version, blocked)?;
        let Some((update, _)) = found.iter().find(|(_, r)| r == chosen) else {
            return Err(format!("{package} is no longer offered"));
        };
        let go = || -> windows::core::Result<(i32, bool)> {
            if !unsafe { update.EulaAccepted()? }.as_bool() {
                unsafe { update.AcceptEula()? };
            }
            let list: IUpdateCollection =
                unsafe { CoCreateInstance(&UpdateCollection, None, CLSCTX_INPROC_SERVER)? };
            unsafe { list.Add(update)? };
            let downloader = unsafe { session.CreateUpdateDownloader()? };
            unsafe { downloader.SetUpdates(&list)? };
            unsafe { downloader.Download()? };
            let installer = unsafe { session.CreateUpdateInstaller()? };
            unsafe { installer.SetUpdates(&list)? };
            let result = unsafe { installer.Install()? };
            let reboot: VARIANT_BOOL = unsafe { result.RebootRequired()? };
            Ok((unsafe { result.ResultCode()? }.0, reboot.as_bool()))
        };
        let (code, reboot) = go().map_err(|e| format!("install of {package}: {e}"))?;
        match code {
            2 | 3 => Ok(format!(
                "{package} revision {} installed{}",
                chosen.revision_number,
                if reboot {
                    "; a restart is required"
                } else {
                    ""
                }
            )),
            c => Err(format!("install of {package} ended with result code {c}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use unyo_crds::patch::{PatchClassification, PatchSeverity};

    fn fixture() -> (Vec<Update>, Vec<HistoryEntry>) {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct F {
            updates: Vec<Update>,
            history: Vec<HistoryEntry>,
        }
        let f: F = serde_json::from_str(include_str!("fixtures/wua-search.json")).unwrap();
        (f.updates, f.history)
    }

    #[test]
    fn ole_dates_become_times_and_nonsense_does_not() {
        assert_eq!(
            ole_date(45_573.0).unwrap().to_string(),
            "2024-10-08T00:00:00Z"
        );
        assert_eq!(ole_date(25_569.5).unwrap().as_second(), 43_200);
        assert!(ole_date(f64::NAN).is_none());
        assert!(ole_date(f64::INFINITY).is_none());
        assert!(ole_date(1e300).is_none());
        assert!(ole_date(-1e300).is_none());
    }

    #[test]
    fn a_search_becomes_available_and_installed_patches() {
        let (updates, history) = fixture();
        let now = Timestamp::from_second(1_733_000_000).unwrap();
        let host = host_packages(&updates, &history, true, "WSUS", now);
        let cu = host
            .scan
            .available
            .iter()
            .find(|a| a.package == "KB5044277")
            .unwrap();
        assert_eq!(cu.version, "1");
        assert_eq!(cu.installed_version, "");
        assert_eq!(cu.classification, PatchClassification::Security);
        assert_eq!(cu.severity, Some(PatchSeverity::Important));
        assert_eq!(cu.archive, "WSUS/Security Updates");
        assert_eq!(
            cu.released_at.as_ref().unwrap().0.to_string(),
            "2024-10-08T17:00:00Z"
        );
        let rollup = host
            .scan
            .available
            .iter()
            .find(|a| a.package == "KB890830")
            .unwrap();
        assert_eq!(rollup.classification, PatchClassification::Bugfix);
        assert_eq!(rollup.severity, None);
        // An update without a KB id is not a patch the baseline can name.
        assert!(
            host.scan
                .available
                .iter()
                .all(|a| a.package.starts_with("KB"))
        );
        assert_eq!(host.scan.available.len(), 3);
        assert_eq!(
            host.installed.get("KB5043050").map(String::as_str),
            Some("1")
        );
        assert_eq!(
            host.installed_at
                .get(&("KB5043050".to_string(), "1".to_string()))
                .unwrap()
                .to_string(),
            "2024-09-20T03:00:00Z"
        );
        assert!(host.scan.reboot_required && host.scan.succeeded);
    }

    #[test]
    fn only_an_offered_revision_at_least_the_approved_one_is_installed() {
        let (updates, _) = fixture();
        assert_eq!(
            pick(&updates, "KB5044277", "1", &[])
                .unwrap()
                .revision_number,
            1
        );
        assert!(
            pick(&updates, "KB5044277", "2", &[])
                .unwrap_err()
                .contains("older")
        );
        assert!(
            pick(&updates, "KB5044277", "x", &[])
                .unwrap_err()
                .contains("revision")
        );
        assert!(
            pick(&updates, "KB5044277", "1", &["KB5044277=1".into()])
                .unwrap_err()
                .contains("rejected")
        );
        // Installed, not offered.
        assert!(
            pick(&updates, "KB5043050", "1", &[])
                .unwrap_err()
                .contains("not offered")
        );
    }

    #[test]
    fn the_judgement_marks_an_offered_approved_kb_missing() {
        use super::super::patch::{PatchJob, evaluate};
        use unyo_crds::patch::{PatchCandidate, PatchState};
        let (updates, history) = fixture();
        let host = host_packages(&updates, &history, false, "WSUS", Timestamp::UNIX_EPOCH);
        let spec: unyo_crds::patch::PatchBaselineSpec =
            serde_json::from_value(serde_json::json!({"rejectedPatches": ["KB5044099"]})).unwrap();
        let candidate = |p: &str| -> PatchCandidate {
            serde_json::from_value(serde_json::json!({
                "package": p, "version": "1", "judgement": "Apply", "reason": "approved"
            }))
            .unwrap()
        };
        let job = PatchJob {
            name: "windows".into(),
            spec,
            approved: vec![
                candidate("KB5044277"),
                candidate("KB5043050"),
                candidate("KB1"),
            ],
            calendar: None,
        };
        let states: BTreeMap<String, PatchState> = evaluate(&job, &host, &BTreeMap::new())
            .into_iter()
            .map(|p| (p.package, p.state))
            .collect();
        assert_eq!(states["KB5044277"], PatchState::Missing);
        assert_eq!(states["KB5043050"], PatchState::Installed);
        assert_eq!(states["KB1"], PatchState::NotApplicable);
        assert_eq!(states["KB5044099"], PatchState::Rejected);
        assert!(
            !states.contains_key("KB890830"),
            "not approved yet: in the scan only"
        );
    }
}

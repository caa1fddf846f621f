//! Patch logic the agent and the controller share: how an archive classifies a patch, severity
//! from a package's `Urgency`, Debian version order, whether a baseline's maintenance window is
//! open, the approval judgement (rules, lists, staging evidence) and a host's compliance.

use std::cmp::Ordering;

use jiff::{SignedDuration, Timestamp};

use crate::calendar::OperationCalendarSpec;
use crate::common::{MaintenanceWindow, parse_duration};
use crate::patch::{
    HostPatch, HostPatchState, PatchBaselineSpec, PatchClassification, PatchCounts, PatchSeverity,
    PatchState, StagingEvidence,
};
use crate::workcalendar::{CompiledSchedule, WorkCalendar, compile_schedule};

/// The classification of what an archive offers: Security when its origin, label or suite says
/// so (Debian's `Debian-Security`, `bookworm-security`), Enhancement for backports, Bugfix
/// otherwise (point releases and `-updates`).
pub fn classify(origin: &str, label: &str, suite: &str) -> PatchClassification {
    let says = |word: &str| {
        [origin, label, suite]
            .iter()
            .any(|f| f.to_ascii_lowercase().contains(word))
    };
    if says("security") {
        PatchClassification::Security
    } else if says("backports") {
        PatchClassification::Enhancement
    } else {
        PatchClassification::Bugfix
    }
}

/// The severity a Debian `Urgency` value (`low`, `medium`, `high`, `emergency`, `critical`,
/// optionally followed by a comment) stands for.
pub fn severity_from_urgency(urgency: &str) -> Option<PatchSeverity> {
    let word = urgency.split_whitespace().next()?.to_ascii_lowercase();
    match word.as_str() {
        "critical" | "emergency" => Some(PatchSeverity::Critical),
        "high" => Some(PatchSeverity::Important),
        "medium" => Some(PatchSeverity::Moderate),
        "low" => Some(PatchSeverity::Low),
        _ => None,
    }
}

/// The classification of a Windows update from its Windows Update classification category
/// (`Security Updates`, `Critical Updates`, `Update Rollups`, `Feature Packs`, …): security
/// updates are Security, new features (feature packs, upgrades, tools, drivers) Enhancement,
/// every other fix (critical updates, rollups, updates, service packs, definition updates)
/// Bugfix.
pub fn classify_windows(category: &str) -> PatchClassification {
    let c = category.to_ascii_lowercase();
    if c.contains("security") {
        PatchClassification::Security
    } else if ["feature", "upgrade", "tool", "driver"]
        .iter()
        .any(|w| c.contains(w))
    {
        PatchClassification::Enhancement
    } else {
        PatchClassification::Bugfix
    }
}

/// The severity of a Microsoft Security Response Center rating (`Critical`, `Important`,
/// `Moderate`, `Low`); none for an empty or unknown one.
pub fn severity_from_msrc(rating: &str) -> Option<PatchSeverity> {
    match rating.trim().to_ascii_lowercase().as_str() {
        "critical" => Some(PatchSeverity::Critical),
        "important" => Some(PatchSeverity::Important),
        "moderate" => Some(PatchSeverity::Moderate),
        "low" => Some(PatchSeverity::Low),
        _ => None,
    }
}

/// Debian version order (epochs, `~`); versions that do not parse compare as text.
pub fn version_cmp(a: &str, b: &str) -> Ordering {
    match (
        a.parse::<debversion::Version>(),
        b.parse::<debversion::Version>(),
    ) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        _ => a.cmp(b),
    }
}

/// Whether a list entry (`package` or `package=version`) names this patch.
pub fn names(entry: &str, package: &str, version: &str) -> bool {
    match entry.split_once('=') {
        Some((p, v)) => p == package && v == version,
        None => entry == package,
    }
}

/// Whether the baseline rejects the patch.
pub fn is_rejected(spec: &PatchBaselineSpec, package: &str, version: &str) -> bool {
    spec.rejected_patches
        .iter()
        .any(|e| names(e, package, version))
}

/// A checked maintenance window: its calendar, its schedule and how long it stays open.
pub struct CheckedWindow {
    calendar: WorkCalendar,
    schedule: CompiledSchedule,
    duration: SignedDuration,
}

/// Checks a maintenance window against its calendar (None: the calendar does not exist); every
/// error names the field.
pub fn check_window(
    window: &MaintenanceWindow,
    calendar: Option<&OperationCalendarSpec>,
) -> Result<CheckedWindow, String> {
    let field = "spec.maintenanceWindow";
    let calendar = calendar.ok_or_else(|| {
        format!(
            "{field}.schedule.calendar: OperationCalendar {} does not exist",
            window.schedule.calendar
        )
    })?;
    let calendar = WorkCalendar::from_spec(calendar).map_err(|e| {
        format!(
            "{field}.schedule.calendar: OperationCalendar {} is invalid: {e}",
            window.schedule.calendar
        )
    })?;
    let schedule = compile_schedule(&window.schedule, &format!("{field}.schedule"))
        .map_err(|e| e.to_string())?;
    let duration = parse_duration(&window.duration)
        .map_err(|e| format!("{field}.duration: {e}"))
        .and_then(|d| {
            if d.is_zero() || d > std::time::Duration::from_secs(7 * 86_400) {
                Err(format!(
                    "{field}.duration: {} must be more than 0 and at most 7d",
                    window.duration
                ))
            } else {
                SignedDuration::try_from(d).map_err(|e| format!("{field}.duration: {e}"))
            }
        })?;
    Ok(CheckedWindow {
        calendar,
        schedule,
        duration,
    })
}

/// `t` plus `d`, at the end (or start) of time when that is beyond it: durations and dates come
/// from custom resources and repositories, and no value of theirs may panic the controller.
pub fn later(t: Timestamp, d: SignedDuration) -> Timestamp {
    t.checked_add(d).unwrap_or(if d.is_negative() {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    })
}

/// `t` minus `d`, saturating at the start (or end) of time.
pub fn earlier(t: Timestamp, d: SignedDuration) -> Timestamp {
    t.checked_sub(d).unwrap_or(if d.is_negative() {
        Timestamp::MAX
    } else {
        Timestamp::MIN
    })
}

impl CheckedWindow {
    /// The opening and closing instants of the window `t` is in, if any.
    pub fn open_at(&self, t: Timestamp) -> Option<(Timestamp, Timestamp)> {
        let open = self
            .calendar
            .last_fire_time(&self.schedule, t, self.duration)?;
        let close = later(open, self.duration);
        (t < close).then_some((open, close))
    }

    /// The next opening after `t`.
    pub fn next_open(&self, t: Timestamp) -> Option<Timestamp> {
        self.calendar.next_fire_time(&self.schedule, t)
    }
}

/// What is known of a candidate patch.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    /// Package name.
    pub package: String,
    /// Version.
    pub version: String,
    /// Classification, when a host's scan gave it.
    pub classification: Option<PatchClassification>,
    /// Severity, when the source gives it.
    pub severity: Option<PatchSeverity>,
    /// Release date of the archive offering it.
    pub released_at: Option<Timestamp>,
}

/// The judgement of the baseline's own rules and lists, before staging evidence: (approved,
/// reason, when a pending approval falls due).
pub fn approval(
    spec: &PatchBaselineSpec,
    c: &Candidate,
    now: Timestamp,
) -> (bool, String, Option<Timestamp>) {
    if is_rejected(spec, &c.package, &c.version) {
        return (false, "rejected by spec.rejectedPatches".into(), None);
    }
    if spec
        .approved_patches
        .iter()
        .any(|e| names(e, &c.package, &c.version))
    {
        return (true, "approved by spec.approvedPatches".into(), None);
    }
    let severity = c.severity.unwrap_or(PatchSeverity::Unspecified);
    let class = c.classification;
    let mut pending: Option<(Timestamp, String)> = None;
    for (i, rule) in spec.approval_rules.iter().enumerate() {
        let class_ok = rule.classification == PatchClassification::Any
            || class.is_some_and(|k| k == rule.classification);
        let severity_ok = rule.severities.is_empty() || rule.severities.contains(&severity);
        if !class_ok || !severity_ok {
            continue;
        }
        let days = SignedDuration::from_hours(24 * i64::from(rule.approve_after_days));
        let what = format!(
            "spec.approvalRules[{i}] ({:?}, after {}d)",
            rule.classification, rule.approve_after_days
        );
        match c.released_at {
            Some(released) if later(released, days) <= now => {
                return (
                    true,
                    format!("approved by {what}: released {}", day(released)),
                    None,
                );
            }
            None if rule.approve_after_days == 0 => {
                return (true, format!("approved by {what}"), None);
            }
            Some(released) => {
                let due = later(released, days);
                if pending.as_ref().is_none_or(|(t, _)| due < *t) {
                    pending = Some((
                        due,
                        format!(
                            "waits for {what}: released {}, approved on {}",
                            day(released),
                            day(due)
                        ),
                    ));
                }
            }
            None => {
                if pending.is_none() {
                    pending = Some((
                        Timestamp::MAX,
                        format!("waits for {what}: the release date is unknown"),
                    ));
                }
            }
        }
    }
    match pending {
        Some((due, reason)) => (false, reason, (due < Timestamp::MAX).then_some(due)),
        None => (
            false,
            format!(
                "no approval rule covers {} patches of severity {severity:?}",
                class.map_or("unclassified".to_string(), |k| format!("{k:?}"))
            ),
            None,
        ),
    }
}

fn day(t: Timestamp) -> String {
    t.strftime("%Y-%m-%d").to_string()
}

/// A span for people: `9d`, `5h`, `42m`, `12s`.
pub fn short_span(d: SignedDuration) -> String {
    let s = d.as_secs().max(0);
    match s {
        s if s >= 86_400 => format!("{}d", s / 86_400),
        s if s >= 3_600 => format!("{}h", s / 3_600),
        s if s >= 60 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// What one staging server has of a package.
#[derive(Clone, Debug, PartialEq)]
pub struct StagingHost {
    /// Server name.
    pub server: String,
    /// Installed version and when it was installed.
    pub installed: Option<(String, Option<Timestamp>)>,
    /// Open Incidents against the server.
    pub open_incidents: Vec<String>,
}

/// Staging evidence for `version`: the evidence per server, whether it suffices, why, and when
/// a soak still running completes.
pub fn staging_judgement(
    version: &str,
    hosts: &[StagingHost],
    soak: SignedDuration,
    now: Timestamp,
) -> (Vec<StagingEvidence>, bool, String, Option<Timestamp>) {
    let mut evidence = Vec::new();
    let mut ok: Option<String> = None;
    let mut soaking: Option<(Timestamp, String)> = None;
    let mut blocked: Option<String> = None;
    for h in hosts {
        let has = h
            .installed
            .as_ref()
            .filter(|(v, _)| version_cmp(v, version) != Ordering::Less);
        let since = has.and_then(|(_, t)| *t);
        let soaked = since.is_some_and(|t| later(t, soak) <= now);
        let clean = h.open_incidents.is_empty();
        let sufficient = has.is_some() && soaked && clean;
        if sufficient && ok.is_none() {
            ok = Some(format!(
                "installed on {} for {} (soak {}), no open incident",
                h.server,
                short_span(now.duration_since(since.unwrap_or(now))),
                short_span(soak)
            ));
        } else if has.is_some() && !clean && blocked.is_none() {
            blocked = Some(format!(
                "{} has open incident(s) {}",
                h.server,
                h.open_incidents.join(", ")
            ));
        } else if has.is_some() && clean && !soaked {
            let start = since.unwrap_or(now);
            let due = later(start, soak);
            if soaking.as_ref().is_none_or(|(t, _)| due < *t) {
                soaking = Some((
                    due,
                    format!(
                        "soaking on {}: installed {} ago of {} soak",
                        h.server,
                        short_span(now.duration_since(start)),
                        short_span(soak)
                    ),
                ));
            }
        }
        evidence.push(StagingEvidence {
            server: h.server.clone(),
            installed_version: h.installed.as_ref().map(|(v, _)| v.clone()),
            installed_at: h
                .installed
                .as_ref()
                .and_then(|(_, t)| t.map(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time)),
            open_incidents: h.open_incidents.clone(),
            sufficient,
        });
    }
    if let Some(reason) = ok {
        return (evidence, true, reason, None);
    }
    let due = soaking.as_ref().map(|(t, _)| *t);
    let reason = soaking.map(|(_, r)| r).or(blocked).unwrap_or_else(|| {
        if hosts.is_empty() {
            "the staging baseline selects no server".to_string()
        } else {
            "not installed on any staging server yet".to_string()
        }
    });
    (evidence, false, reason, due)
}

/// Counts of patches by state.
pub fn counts(patches: &[HostPatch]) -> PatchCounts {
    let mut c = PatchCounts::default();
    for p in patches {
        let n = match p.state {
            PatchState::Installed => &mut c.installed,
            PatchState::InstalledPendingReboot => &mut c.installed_pending_reboot,
            PatchState::Missing => &mut c.missing,
            PatchState::Rejected => &mut c.rejected,
            PatchState::NotApplicable => &mut c.not_applicable,
            PatchState::Failed => &mut c.failed,
        };
        *n += 1;
    }
    c
}

/// Whether a host's state under a baseline is compliant at `level`: (compliant, reason, message).
/// A missing or failed approved patch at or above the level makes it non-compliant (a patch
/// without a severity counts as Unspecified, so only level Unspecified counts it).
pub fn compliance(state: &HostPatchState, level: PatchSeverity) -> (bool, &'static str, String) {
    let counted = |p: &&HostPatch| p.severity.unwrap_or(PatchSeverity::Unspecified) >= level;
    let list = |s: PatchState| -> Vec<String> {
        state
            .patches
            .iter()
            .filter(|p| p.state == s)
            .filter(counted)
            .map(|p| format!("{}={}", p.package, p.version))
            .collect()
    };
    let failed = list(PatchState::Failed);
    if !failed.is_empty() {
        return (
            false,
            "InstallFailed",
            format!(
                "baseline {}: install failed for {}",
                state.baseline,
                failed.join(", ")
            ),
        );
    }
    let missing = list(PatchState::Missing);
    if !missing.is_empty() {
        return (
            false,
            "MissingPatches",
            format!(
                "baseline {}: {} approved patch(es) missing: {}",
                state.baseline,
                missing.len(),
                missing.join(", ")
            ),
        );
    }
    let c = &state.counts;
    let reboot = if c.installed_pending_reboot > 0 {
        format!(", {} waiting for a reboot", c.installed_pending_reboot)
    } else {
        String::new()
    };
    (
        true,
        "Compliant",
        format!(
            "baseline {}: {} approved patch(es) installed{reboot}",
            state.baseline,
            c.installed.saturating_add(c.installed_pending_reboot)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patch::{ApprovalRule, PatchOperation, RebootPolicy, RejectedAction};

    fn spec() -> PatchBaselineSpec {
        PatchBaselineSpec {
            selector: Default::default(),
            operation: PatchOperation::Scan,
            approval_rules: vec![
                ApprovalRule {
                    classification: PatchClassification::Security,
                    severities: vec![],
                    approve_after_days: 7,
                },
                ApprovalRule {
                    classification: PatchClassification::Bugfix,
                    severities: vec![PatchSeverity::Important, PatchSeverity::Critical],
                    approve_after_days: 14,
                },
            ],
            approved_patches: vec!["tzdata".into()],
            rejected_patches: vec!["openssl=3.0.15-1".into()],
            rejected_action: RejectedAction::BlockEntirely,
            compliance_level: PatchSeverity::Unspecified,
            reboot: RebootPolicy::NoReboot,
            maintenance_window: None,
            promotion: None,
        }
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn cand(p: &str, v: &str, k: PatchClassification, sev: Option<PatchSeverity>) -> Candidate {
        Candidate {
            package: p.into(),
            version: v.into(),
            classification: Some(k),
            severity: sev,
            released_at: Some(ts("2026-11-10T00:00:00Z")),
        }
    }

    #[test]
    fn archives_classify_and_urgency_maps_to_severity() {
        use PatchClassification::*;
        assert_eq!(
            classify("Debian", "Debian-Security", "bookworm-security"),
            Security
        );
        assert_eq!(classify("Debian", "Debian", "bookworm-updates"), Bugfix);
        assert_eq!(
            classify("Debian Backports", "", "bookworm-backports"),
            Enhancement
        );
        assert_eq!(
            severity_from_urgency("high"),
            Some(PatchSeverity::Important)
        );
        assert_eq!(
            severity_from_urgency("medium (fixes CVE-2026-1)"),
            Some(PatchSeverity::Moderate)
        );
        assert_eq!(
            severity_from_urgency("emergency"),
            Some(PatchSeverity::Critical)
        );
        assert_eq!(severity_from_urgency("whenever"), None);
    }

    #[test]
    fn debian_versions_order() {
        assert_eq!(version_cmp("1.0", "1.1"), Ordering::Less);
        assert_eq!(version_cmp("1.0~rc1", "1.0"), Ordering::Less);
        assert_eq!(version_cmp("1:0.9", "2.0"), Ordering::Greater);
        assert_eq!(
            version_cmp("3.0.15-1~deb12u1", "3.0.15-1~deb12u1"),
            Ordering::Equal
        );
    }

    #[test]
    fn approve_after_days_lists_and_rules() {
        let s = spec();
        let sec = cand("bash", "5.2-2", PatchClassification::Security, None);
        let (ok, why, due) = approval(&s, &sec, ts("2026-11-16T23:59:59Z"));
        assert!(!ok, "{why}");
        assert!(why.contains("approved on 2026-11-17"), "{why}");
        assert_eq!(due, Some(ts("2026-11-17T00:00:00Z")));
        let (ok, why, _) = approval(&s, &sec, ts("2026-11-17T00:00:00Z"));
        assert!(ok && why.contains("spec.approvalRules[0]"), "{why}");

        let low_bugfix = cand(
            "curl",
            "8.1",
            PatchClassification::Bugfix,
            Some(PatchSeverity::Low),
        );
        let (ok, why, _) = approval(&s, &low_bugfix, ts("2027-01-01T00:00:00Z"));
        assert!(
            !ok && why.contains("no approval rule covers Bugfix"),
            "{why}"
        );
        let high_bugfix = Candidate {
            severity: Some(PatchSeverity::Important),
            ..low_bugfix
        };
        assert!(approval(&s, &high_bugfix, ts("2026-11-24T00:00:00Z")).0);

        let rejected = cand("openssl", "3.0.15-1", PatchClassification::Security, None);
        let (ok, why, _) = approval(&s, &rejected, ts("2027-01-01T00:00:00Z"));
        assert!(!ok && why.contains("rejected"), "{why}");
        let other_openssl = cand("openssl", "3.0.16-1", PatchClassification::Security, None);
        assert!(approval(&s, &other_openssl, ts("2027-01-01T00:00:00Z")).0);

        let explicit = cand("tzdata", "2026a", PatchClassification::Bugfix, None);
        let (ok, why, _) = approval(&s, &explicit, ts("2026-11-10T00:00:00Z"));
        assert!(ok && why.contains("approvedPatches"), "{why}");
    }

    #[test]
    fn staging_evidence_needs_soak_and_no_incident() {
        let soak = SignedDuration::from_hours(24 * 7);
        let now = ts("2026-11-24T00:00:00Z");
        let installed = |v: &str, t: &str| Some((v.to_string(), Some(ts(t))));
        let hosts = vec![
            StagingHost {
                server: "stg-db01".into(),
                installed: installed("1.1", "2026-11-20T00:00:00Z"),
                open_incidents: vec![],
            },
            StagingHost {
                server: "stg-ap01".into(),
                installed: installed("1.1", "2026-11-01T00:00:00Z"),
                open_incidents: vec!["stg-ap01-down".into()],
            },
        ];
        let (ev, ok, why, due) = staging_judgement("1.1", &hosts, soak, now);
        assert!(!ok, "{why}");
        assert!(
            why.contains("soaking on stg-db01: installed 4d ago of 7d"),
            "{why}"
        );
        assert_eq!(due, Some(ts("2026-11-27T00:00:00Z")));
        assert_eq!(ev.len(), 2);
        assert!(ev.iter().all(|e| !e.sufficient));
        let (_, ok, why, _) = staging_judgement("1.1", &hosts, soak, ts("2026-11-27T00:00:00Z"));
        assert!(ok && why.contains("installed on stg-db01 for 7d"), "{why}");
        // An older version on staging is no evidence for a newer one.
        let (_, ok, why, _) = staging_judgement("1.2", &hosts, soak, now);
        assert!(!ok && why.contains("not installed"), "{why}");
        let (_, ok, why, _) = staging_judgement("1.1", &hosts[1..], soak, now);
        assert!(
            !ok && why.contains("open incident(s) stg-ap01-down"),
            "{why}"
        );
    }

    #[test]
    fn compliance_by_level() {
        let patch = |p: &str, s: PatchState, sev: Option<PatchSeverity>| HostPatch {
            package: p.into(),
            version: "2".into(),
            state: s,
            classification: None,
            severity: sev,
            released_at: None,
            installed_at: None,
            message: None,
        };
        let patches = vec![
            patch("a", PatchState::Installed, None),
            patch("b", PatchState::Missing, Some(PatchSeverity::Low)),
            patch("c", PatchState::InstalledPendingReboot, None),
        ];
        let state = HostPatchState {
            baseline: "prod".into(),
            scanned_at: None,
            counts: counts(&patches),
            patches,
            message: None,
        };
        assert_eq!(state.counts.installed_pending_reboot, 1);
        let (ok, reason, msg) = compliance(&state, PatchSeverity::Unspecified);
        assert!(
            !ok && reason == "MissingPatches" && msg.contains("b=2"),
            "{msg}"
        );
        let (ok, reason, msg) = compliance(&state, PatchSeverity::Important);
        assert!(ok && reason == "Compliant", "{msg}");
        assert!(msg.contains("1 waiting for a reboot"), "{msg}");
    }

    #[test]
    fn extreme_soaks_and_dates_never_panic() {
        let now: Timestamp = "2026-11-30T00:00:00Z".parse().unwrap();
        // The soak the API admits as a pattern, `100000000d`, is beyond the end of time.
        let soak = SignedDuration::from_hours(24 * 100_000_000);
        let hosts = vec![StagingHost {
            server: "stg-db01".into(),
            installed: Some(("1.1".into(), Some(now))),
            open_incidents: vec![],
        }];
        let (_, ok, _, due) = staging_judgement("1.1", &hosts, soak, now);
        assert!(!ok);
        assert_eq!(due, Some(Timestamp::MAX));
        assert_eq!(
            later(Timestamp::MAX, SignedDuration::from_secs(1)),
            Timestamp::MAX
        );
        assert_eq!(
            later(Timestamp::MIN, SignedDuration::from_secs(-1)),
            Timestamp::MIN
        );
        assert_eq!(
            later(now, SignedDuration::from_secs(60)),
            now + SignedDuration::from_secs(60)
        );
    }
}

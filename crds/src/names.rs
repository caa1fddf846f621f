//! Names both sides of the API agree on: label and annotation keys, condition types and
//! reasons, and the names derived from a Server's name. The controller, the agent and the CLI
//! use these, never their own spelling.

use sha2::{Digest, Sha256};

use crate::drift::Drift;

/// Label and annotation keys.
pub mod labels {
    /// The Server an object belongs to (ChangeRecords, Incidents).
    pub const SERVER: &str = "unyo.dev/server";
    /// Where a ChangeRecord came from (`Drift`).
    pub const ORIGIN: &str = "unyo.dev/origin";
    /// `<policy>.<check>` of an Incident, cut to 63 characters.
    pub const CHECK: &str = "unyo.dev/check";
    /// The fingerprint of an Incident's problem.
    pub const FINGERPRINT: &str = "unyo.dev/fingerprint";
    /// The Server whose agent an object serves (ServiceAccount, Role, Lease of an agent).
    pub const AGENT_OF: &str = "unyo.dev/agent-of";
    /// The standard managed-by label.
    pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
    /// Its value on objects unyo makes.
    pub const MANAGED_BY_UNYO: &str = "unyo";
    /// Annotation: the MonitoringPolicy (or plan, schedule, `agent`) of an Incident's problem.
    pub const POLICY_ANNOTATION: &str = "unyo.dev/policy";
    /// Annotation: the check of an Incident's problem, uncut.
    pub const CHECK_ANNOTATION: &str = "unyo.dev/check-name";
    /// The kind of report a ConfigMap records the writing of (`monthly`).
    pub const REPORT: &str = "unyo.dev/report";
    /// Its value for the monthly report.
    pub const REPORT_MONTHLY: &str = "monthly";
    /// The month (`YYYY-MM`) a report covers.
    pub const MONTH: &str = "unyo.dev/month";
}

/// Annotations people (or the CLI) put on a Server to ask its agent for something now; a new
/// value asks again.
pub mod annotations {
    /// A virus scan now.
    pub const SCAN_NOW: &str = "unyo.dev/scan-now";
    /// A full backup now.
    pub const BACKUP_NOW: &str = "unyo.dev/backup-now";
    /// A restore: `<plan>:<generation>:<request id>:<target>` (what `unyo backup restore`
    /// writes).
    pub const RESTORE: &str = "unyo.dev/restore";
    /// A patch scan now.
    pub const PATCH_SCAN_NOW: &str = "unyo.dev/patch-scan-now";
}

/// Condition types.
pub mod conditions {
    /// Every kind: the controller reconciled the object's spec (observedGeneration). What it
    /// found on the hosts is in the other conditions (a drifted Server is Ready=True,
    /// InSync=False), so kstatus — Flux's and Argo CD's health — reads a reconciled object as
    /// Current.
    pub const READY: &str = "Ready";
    /// Every kind with a spec that can be wrong: True when the spec can never become ready
    /// until it is changed (the reason is one of [`super::reasons::SPEC_ERRORS`]); kstatus reads
    /// Failed. Absent otherwise.
    pub const STALLED: &str = "Stalled";
    /// Every kind with a spec that names other objects: True while it waits for one that may
    /// still be created (e.g. `CalendarNotFound`); kstatus reads InProgress. Absent otherwise.
    pub const RECONCILING: &str = "Reconciling";
    /// Server: the host matches its ledger.
    pub const IN_SYNC: &str = "InSync";
    /// Server: the agent renews its Lease.
    pub const AGENT_CONNECTED: &str = "AgentConnected";
    /// Server: backups of the plans selecting it are healthy.
    pub const BACKUP_HEALTHY: &str = "BackupHealthy";
    /// Server: antivirus scans and signatures are healthy.
    pub const ANTIVIRUS_HEALTHY: &str = "AntivirusHealthy";
    /// Server: patched to the baselines selecting it.
    pub const PATCH_COMPLIANT: &str = "PatchCompliant";
    /// Incident: every due notification was delivered.
    pub const NOTIFIED: &str = "Notified";
    /// ChangeRecord: a planned outage was announced too late.
    pub const LEAD_TIME_VIOLATED: &str = "LeadTimeViolated";
    /// Server: the host's policy allows what the custom resources selecting it ask.
    pub const HOST_POLICY_ALLOWED: &str = "HostPolicyAllowed";
}

/// Condition reasons.
pub mod reasons {
    /// BackupHealthy: the last shipment of a PostgreSQL source's journal (WAL) failed.
    pub const JOURNAL_NOT_SHIPPED: &str = "JournalNotShipped";
    /// BackupHealthy: the newest backup off site is older than the plan allows.
    pub const NOT_COPIED_OFFSITE: &str = "NotCopiedOffsite";
    /// AgentConnected: the Lease is current.
    pub const LEASE_RENEWED: &str = "LeaseRenewed";
    /// AgentConnected: the Lease ran out.
    pub const LEASE_EXPIRED: &str = "LeaseExpired";
    /// AgentConnected: there is no Lease.
    pub const NO_LEASE: &str = "NoLease";
    /// AgentConnected: the Lease was never renewed.
    pub const NEVER_RENEWED: &str = "NeverRenewed";
    /// InSync / Ready: the host matches its ledger.
    pub const IN_SYNC: &str = "InSync";
    /// InSync / Ready: ledger paths differ from the host.
    pub const DRIFTED: &str = "Drifted";
    /// InSync / Ready: no facts reported yet.
    pub const NO_FACTS: &str = "NoFacts";
    /// AgentConnected: the agent's Lease expired.
    pub const AGENT_DISCONNECTED: &str = "AgentDisconnected";
    /// Ready (Server): the controller compared the ledger with the facts and the Lease; the
    /// message sums up InSync and AgentConnected.
    pub const RECONCILED: &str = "Reconciled";
    /// Ready (policies, calendars, baselines): evaluated.
    pub const EVALUATED: &str = "Evaluated";
    /// Ready (ChangeRecord): recorded.
    pub const RECORDED: &str = "Recorded";
    /// Ready (Incident): the problem is present.
    pub const FIRING: &str = "Firing";
    /// Ready (Incident): the problem went away.
    pub const RECOVERED: &str = "Recovered";
    /// Notified: every due notification was delivered.
    pub const DELIVERED: &str = "Delivered";
    /// Notified: a notification is still due.
    pub const PENDING: &str = "Pending";
    /// Notified: a notification was given up.
    pub const UNDELIVERED: &str = "Undelivered";
    /// A label selector does not parse.
    pub const INVALID_SELECTOR: &str = "InvalidSelector";
    /// A setting does not parse.
    pub const INVALID_SETTINGS: &str = "InvalidSettings";
    /// A named OperationCalendar does not exist.
    pub const CALENDAR_NOT_FOUND: &str = "CalendarNotFound";
    /// A maintenance window does not fit its calendar.
    pub const INVALID_WINDOW: &str = "InvalidWindow";
    /// A baseline names itself as its staging baseline.
    pub const INVALID_STAGING_BASELINE: &str = "InvalidStagingBaseline";
    /// A calendar's field is wrong (OperationCalendar).
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// A calendar's time zone is not in the time-zone database.
    pub const UNKNOWN_TIME_ZONE: &str = "UnknownTimeZone";
    /// A calendar's dates reach beyond what can be computed.
    pub const OUT_OF_RANGE: &str = "OutOfRange";
    /// Reasons of Ready=False that only a change of the spec can mend: with one of them the
    /// object is also Stalled=True. (A missing calendar or staging baseline is not one: it may
    /// still be created, so the object waits, Ready=False, kstatus InProgress.)
    pub const SPEC_ERRORS: [&str; 7] = [
        INVALID_SELECTOR,
        INVALID_SETTINGS,
        INVALID_WINDOW,
        INVALID_STAGING_BASELINE,
        INVALID_SPEC,
        UNKNOWN_TIME_ZONE,
        OUT_OF_RANGE,
    ];
    /// The host policy allows everything asked of the host (HostPolicyAllowed=True).
    pub const ALLOWED: &str = "Allowed";
    /// The host policy refused something asked of the host (HostPolicyAllowed=False; the
    /// Server's `status.operations.refusals` names each field and rule).
    pub const REFUSED_BY_HOST_POLICY: &str = "RefusedByHostPolicy";
}

/// The ConfigMap that records that the monthly report of `month` (`YYYY-MM`) was written.
pub fn monthly_report_record_name(month: &str) -> String {
    format!("unyo-report-monthly-{month}")
}

/// The key of the record ConfigMap that holds when the report was written.
pub const REPORT_WRITTEN_AT_KEY: &str = "writtenAt";
/// The key of the record ConfigMap that holds the SHA-256 of the report's file.
pub const REPORT_SHA256_KEY: &str = "sha256";
/// The field manager of the CLI's writes.
pub const CLI_MANAGER: &str = "unyo-cli";

/// Name of the Lease the agent of `server` renews (also its ServiceAccount, Role and
/// RoleBinding).
pub fn agent_lease_name(server: &str) -> String {
    format!("unyo-agent-{server}")
}

/// The Server of an agent Lease named by [`agent_lease_name`].
pub fn server_of_agent_lease(lease: &str) -> Option<&str> {
    lease.strip_prefix("unyo-agent-").filter(|s| !s.is_empty())
}

/// `value` as a label value: cut to 63 characters and ending in a letter or digit (the full
/// value is always in the object's spec or annotations).
pub fn label_value(value: &str) -> String {
    let cut: String = value.chars().take(63).collect();
    cut.trim_end_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string()
}

/// `text` cut to at most `max` characters (ending in `…` when cut), for fields with a length
/// limit that hold a name from outside.
pub fn fit(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// The deterministic name of the ChangeRecord for `drifts` on `server`, `after` the latest
/// record of the same drift that is no longer open (closed by people, or resolved): the same
/// inputs always give the same name, so a retry or a restart cannot open a second record, and
/// drift that recurs after its record ended gets a new one. At most 253 characters, whatever
/// the Server's name.
pub fn drift_record_name(server: &str, drifts: &[Drift], after: Option<&str>) -> String {
    let mut h = Sha256::new();
    if let Some(previous) = after {
        h.update(previous.as_bytes());
        h.update([0xfe]);
    }
    for d in drifts {
        for part in [Some(d.path.as_str()), d.observed.as_deref()] {
            h.update(part.unwrap_or("\u{0}").as_bytes());
            h.update([0xff]);
        }
    }
    let digest = hex::encode(&h.finalize()[..5]);
    let base: String = server.chars().take(253 - 17).collect();
    format!("{base}-drift-{digest}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drift::DriftKind;

    fn d(path: &str, observed: Option<&str>) -> Drift {
        Drift {
            path: path.into(),
            expected: Some("x".into()),
            observed: observed.map(String::from),
            kind: DriftKind::SoftwareVersion,
        }
    }

    #[test]
    fn record_names_are_deterministic_per_drift_set() {
        let v13 = [d("os.version", Some("13"))];
        let a = drift_record_name("db01", &v13, None);
        assert_eq!(a, drift_record_name("db01", &v13, None));
        assert_ne!(
            a,
            drift_record_name("db01", &[d("os.version", Some("14"))], None)
        );
        assert_ne!(a, drift_record_name("db02", &v13, None));
        assert!(a.starts_with("db01-drift-") && a.len() == "db01-drift-".len() + 10);
        // After that record ended, the same drift gets another name, and so on.
        let b = drift_record_name("db01", &v13, Some(&a));
        assert_ne!(a, b);
        assert_ne!(b, drift_record_name("db01", &v13, Some(&b)));
        let long = "s".repeat(253);
        assert_eq!(drift_record_name(&long, &[], None).len(), 253);
    }

    #[test]
    fn texts_fit_their_limits() {
        assert_eq!(fit("short", 256), "short");
        let cut = fit(&"あ".repeat(300), 256);
        assert_eq!(cut.chars().count(), 256);
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn label_values_fit() {
        assert_eq!(label_value("db01"), "db01");
        let long = format!("{}.x", "a".repeat(62));
        assert_eq!(label_value(&long), "a".repeat(62));
        assert_eq!(label_value(&"b".repeat(100)).len(), 63);
    }

    #[test]
    fn lease_names_round_trip() {
        assert_eq!(agent_lease_name("db01"), "unyo-agent-db01");
        assert_eq!(server_of_agent_lease("unyo-agent-db01"), Some("db01"));
        assert_eq!(server_of_agent_lease("unyo-agent-"), None);
        assert_eq!(server_of_agent_lease("unyo-controller"), None);
    }
}

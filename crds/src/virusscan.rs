//! `VirusScanSchedule`: scheduled virus and spyware scans, signature freshness, actions on
//! detection (R10).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::*;

/// Scans the agents of the selected servers run, at least daily, with signature freshness limits
/// and the actions taken on a detection.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "unyo.dev",
    version = "v1alpha1",
    kind = "VirusScanSchedule",
    namespaced,
    status = "VirusScanScheduleStatus",
    shortname = "vss",
    category = "unyo",
    doc = "Scheduled virus and spyware scans, signature freshness and actions on detection for selected servers.",
    printcolumn(
        name = "Engine",
        type_ = "string",
        json_path = ".spec.engine",
        description = "Scan engine"
    ),
    printcolumn(
        name = "MaxAge",
        type_ = "string",
        json_path = ".spec.signatures.maxAge",
        description = "Oldest signatures allowed"
    ),
    printcolumn(
        name = "Stale",
        type_ = "integer",
        json_path = ".status.staleCount",
        description = "Hosts with signatures older than maxAge"
    ),
    printcolumn(
        name = "Missed",
        type_ = "integer",
        json_path = ".status.missedCount",
        description = "Hosts that missed a scheduled scan"
    ),
    printcolumn(
        name = "Detections",
        type_ = "integer",
        json_path = ".status.detectionCount",
        description = "Detections recorded"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new("has(self.schedule.at) ? self.schedule.days == 'AllDays' : self.schedule.cron.matches('^\\\\s*\\\\S+\\\\s+\\\\S+\\\\s+\\\\*\\\\s+\\\\*\\\\s+\\\\*\\\\s*$')").message("scans must run at least daily: use days: AllDays with at, or a cron whose day-of-month, month and day-of-week are all *").field_path(".schedule").reason(Reason::FieldValueInvalid))]
#[x_kube(validation = Rule::new("!('Quarantine' in self.actions) || has(self.quarantineDir) || self.engine == 'Defender'").message("the Quarantine action needs quarantineDir").field_path(".quarantineDir").reason(Reason::FieldValueRequired))]
#[x_kube(validation = Rule::new("self.engine == 'Defender' ? self.paths.all(p, p.matches(r'^[A-Za-z]:\\\\')) : self.paths.all(p, p.startsWith('/'))").message("paths are absolute paths of the engine's platform: /… for ClamAV, a drive path (C:\\…) for Defender").field_path(".paths").reason(Reason::FieldValueInvalid))]
#[x_kube(validation = Rule::new("self.engine != 'Defender' || (!has(self.quarantineDir) && !has(self.signatures.sourceDirectory) && !has(self.signatures.mirrorUrl) && (!has(self.exclusions) || size(self.exclusions) == 0) && self.actions.all(a, a == 'Quarantine' || a == 'Notify'))").message("Defender updates its signatures from the host's configured sources, quarantines into its own store and takes exclusions from the host's settings: no quarantineDir, signatures.sourceDirectory, signatures.mirrorUrl or exclusions, and actions only Quarantine and Notify").field_path(".engine").reason(Reason::FieldValueForbidden))]
#[x_kube(validation = Rule::new("!('Delete' in self.actions) || self.actions.all(a, a == 'Delete' || a == 'Notify' || self.actions.indexOf(a) < self.actions.indexOf('Delete'))").message("Delete removes the file, so Quarantine and Rename must come before it").field_path(".actions").reason(Reason::FieldValueInvalid))]
#[serde(rename_all = "camelCase")]
pub struct VirusScanScheduleSpec {
    /// Servers (in this namespace) the schedule applies to, by label.
    #[serde(default)]
    pub selector: LabelSelector,
    /// Scan engine: ClamAV (Linux hosts) or Defender (Microsoft Defender Antivirus on Windows
    /// hosts).
    #[serde(default)]
    pub engine: ScanEngine,
    /// When scans run; at least daily (days: AllDays with `at`, or a daily cron).
    pub schedule: Schedule,
    /// Absolute paths scanned: `/…` with ClamAV, `C:\…` with Defender.
    #[schemars(
        length(min = 1, max = 100),
        inner(length(min = 1, max = 1024), pattern(r"^(/|[A-Za-z]:\\)"))
    )]
    pub paths: Vec<String>,
    /// Paths or patterns excluded from the scan.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 200), inner(length(min = 1, max = 1024)))]
    pub exclusions: Vec<String>,
    /// Also detect potentially unwanted applications (spyware, adware); default true.
    #[serde(default = "default_true")]
    pub detect_spyware: bool,
    /// Check that the resident scanner process is running (常駐監視); default true.
    #[serde(default = "default_true")]
    pub resident_check: bool,
    /// Signature updates and freshness.
    pub signatures: SignaturePolicy,
    /// Actions on a detection, applied in order: Quarantine, Rename, Delete, Notify.
    #[serde(default = "default_actions")]
    #[schemars(length(min = 1, max = 4), extend("x-kubernetes-list-type" = "set"))]
    pub actions: Vec<DetectionAction>,
    /// Directory infected files are moved to by Quarantine, with their metadata kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024), pattern(r"^/"))]
    pub quarantine_dir: Option<String>,
    /// Extension appended by Rename (default `.infected`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 32), pattern(r"^\.[A-Za-z0-9_-]+$"))]
    pub rename_suffix: Option<String>,
    /// MonitoringPolicy whose notification routes receive detections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253), pattern(NAME_PATTERN))]
    pub notify_policy: Option<String>,
}

fn default_actions() -> Vec<DetectionAction> {
    vec![DetectionAction::Quarantine, DetectionAction::Notify]
}

/// A scan engine.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum ScanEngine {
    /// ClamAV, run by the agent (Linux).
    #[default]
    ClamAV,
    /// Microsoft Defender Antivirus through MpCmdRun (Windows).
    Defender,
}

/// An action on a detection.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum DetectionAction {
    Quarantine,
    Rename,
    Delete,
    Notify,
}

/// Signature updates and the freshness limit.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.sourceDirectory) || !has(self.mirrorUrl)").message("set at most one of sourceDirectory or mirrorUrl").reason(Reason::FieldValueInvalid))]
pub struct SignaturePolicy {
    /// Oldest signatures allowed, counted from the newest signature the engine has loaded,
    /// e.g. `24h`. Hosts over it are listed as stale.
    #[schemars(length(max = 32), pattern(DURATION_PATTERN))]
    pub max_age: String,
    /// Local directory the signature databases are copied from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024), pattern(r"^/"))]
    pub source_directory: Option<String>,
    /// HTTP mirror the signature databases are downloaded from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    #[x_kube(validation = Rule::new("self.startsWith('http://') || self.startsWith('https://')").message("mirrorUrl must start with http:// or https://").reason(Reason::FieldValueInvalid))]
    pub mirror_url: Option<String>,
    /// When updates are fetched (default: hourly from the source).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_schedule: Option<Schedule>,
}

/// Antivirus state across the selected hosts.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct VirusScanScheduleStatus {
    /// Hosts whose signatures are older than maxAge, by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = crate::limits::LISTED_SERVERS))]
    pub stale_hosts: Vec<String>,
    /// Number of stale hosts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stale_count: Option<u32>,
    /// Hosts that missed their last scheduled scan, by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = crate::limits::LISTED_SERVERS))]
    pub missed_hosts: Vec<String>,
    /// Number of hosts that missed a scan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missed_count: Option<u32>,
    /// Number of detections recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detection_count: Option<u32>,
    /// Recent detections, newest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = crate::limits::DETECTIONS))]
    pub detections: Vec<Detection>,
    /// The metadata.generation the controller last evaluated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready (false with a reason for an invalid setting).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
}

/// Antivirus state of one host, written by its agent.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct HostAntivirus {
    /// Engine and version, e.g. `ClamAV 1.0.7`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_version: Option<String>,
    /// Version of the loaded signature database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature_version: Option<String>,
    /// Time of the newest loaded signature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature_time: Option<Time>,
    /// Whether the resident scanner is running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resident_running: Option<bool>,
    /// Last scan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scan: Option<ScanRun>,
    /// Detections of the last scans, newest first.
    #[schemars(length(max = crate::limits::DETECTIONS))]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub detections: Vec<Detection>,
}

/// One scan run.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScanRun {
    /// VirusScanSchedule that asked for it.
    pub schedule: String,
    /// When it started.
    pub started_at: Time,
    /// When it finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,
    /// Files scanned.
    #[serde(default)]
    pub files_scanned: u64,
    /// Detections found.
    #[serde(default)]
    pub detections: u32,
    /// Whether the scan completed.
    pub result: crate::backup::RunResult,
    /// Details for a failed scan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// One detection.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Detection {
    /// Host where it was found.
    pub host: String,
    /// Path of the infected file.
    pub path: String,
    /// Signature that matched.
    pub signature: String,
    /// Actions taken, in order, with their results.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = crate::limits::ACTIONS))]
    pub actions: Vec<String>,
    /// When it was found.
    pub at: Time,
}

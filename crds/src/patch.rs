//! `PatchBaseline`: which patches are approved for which servers, staging first (R3, R11).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::*;

/// Approval rules, approved and rejected lists, staging-first promotion and the maintenance
/// window for the patches of the selected servers.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "unyo.dev",
    version = "v1alpha1",
    kind = "PatchBaseline",
    namespaced,
    status = "PatchBaselineStatus",
    shortname = "pb",
    category = "unyo",
    doc = "Patch approval rules, staging-first promotion and maintenance window for selected servers.",
    printcolumn(
        name = "Operation",
        type_ = "string",
        json_path = ".spec.operation",
        description = "Scan or Install"
    ),
    printcolumn(
        name = "Staging",
        type_ = "string",
        json_path = ".spec.promotion.stagingBaseline",
        description = "Staging baseline this one waits for"
    ),
    printcolumn(
        name = "Compliant",
        type_ = "integer",
        json_path = ".status.compliantServers",
        description = "Servers that are compliant"
    ),
    printcolumn(
        name = "NonCompliant",
        type_ = "integer",
        json_path = ".status.nonCompliantServers",
        description = "Servers missing approved patches"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status",
        description = "Settings are valid"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new("self.operation != 'Install' || has(self.maintenanceWindow)").message("operation Install needs a maintenanceWindow").field_path(".maintenanceWindow").reason(Reason::FieldValueRequired))]
#[x_kube(validation = Rule::new("!has(self.approvedPatches) || !has(self.rejectedPatches) || !self.approvedPatches.exists(p, p in self.rejectedPatches)").message("a patch cannot be both approved and rejected").field_path(".rejectedPatches").reason(Reason::FieldValueInvalid))]
#[serde(rename_all = "camelCase")]
pub struct PatchBaselineSpec {
    /// Servers (in this namespace) the baseline applies to, by label.
    #[serde(default)]
    pub selector: LabelSelector,
    /// Scan (report only; never changes a host) or Install (install approved missing patches in
    /// the maintenance window).
    #[serde(default)]
    pub operation: PatchOperation,
    /// Rules that approve patches automatically, by classification and severity, after a delay.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    pub approval_rules: Vec<ApprovalRule>,
    /// Patches approved explicitly, as `package` or `package=version`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1000), inner(length(min = 1, max = 256)), extend("x-kubernetes-list-type" = "set"))]
    pub approved_patches: Vec<String>,
    /// Patches never installed, as `package` or `package=version`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1000), inner(length(min = 1, max = 256)), extend("x-kubernetes-list-type" = "set"))]
    pub rejected_patches: Vec<String>,
    /// Whether a rejected patch may still come in as a dependency of an approved one:
    /// BlockEntirely (default) or AllowAsDependency.
    #[serde(default)]
    pub rejected_action: RejectedAction,
    /// A missing approved patch of this severity or higher makes a host non-compliant:
    /// Critical, Important, Moderate, Low or Unspecified (any).
    #[serde(default = "default_compliance_level")]
    pub compliance_level: PatchSeverity,
    /// Reboot after installing when a patch needs it: NoReboot (report pending reboot) or RebootIfNeeded.
    #[serde(default)]
    pub reboot: RebootPolicy,
    /// When Install may change hosts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance_window: Option<MaintenanceWindow>,
    /// Staging-first promotion: approve only what a staging baseline has run for the soak period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promotion: Option<Promotion>,
}

fn default_compliance_level() -> PatchSeverity {
    PatchSeverity::Unspecified
}

/// Scan or Install.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum PatchOperation {
    #[default]
    Scan,
    Install,
}

/// What a rejection means for dependencies.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum RejectedAction {
    #[default]
    BlockEntirely,
    AllowAsDependency,
}

/// Reboot policy after installing patches.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum RebootPolicy {
    #[default]
    NoReboot,
    RebootIfNeeded,
}

/// Classification of a patch.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum PatchClassification {
    Security,
    Bugfix,
    Enhancement,
    Any,
}

/// Severity of a patch, as its source states it.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema,
)]
pub enum PatchSeverity {
    Unspecified,
    Low,
    Moderate,
    Important,
    Critical,
}

/// An automatic approval rule.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalRule {
    /// Classification the rule covers: Security, Bugfix, Enhancement or Any.
    pub classification: PatchClassification,
    /// Severities the rule covers (empty: all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 5), extend("x-kubernetes-list-type" = "set"))]
    pub severities: Vec<PatchSeverity>,
    /// Days after its release a matching patch is approved (0–365).
    #[serde(default)]
    #[schemars(range(min = 0, max = 365))]
    pub approve_after_days: u32,
}

/// Staging-first promotion settings of a production baseline.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Promotion {
    /// PatchBaseline (same namespace) of the staging servers.
    #[schemars(length(min = 1, max = 253), pattern(NAME_PATTERN))]
    pub staging_baseline: String,
    /// How long a patch must have been installed on a staging server, with no open Incident
    /// against that server, before production approves it, e.g. `7d` (default).
    #[serde(default = "default_soak")]
    #[schemars(length(max = 32), pattern(DURATION_PATTERN))]
    pub soak: String,
}

fn default_soak() -> String {
    "7d".into()
}

/// Compliance of the selected servers, as the controller concluded it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PatchBaselineStatus {
    /// Number of compliant servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compliant_servers: Option<u32>,
    /// Number of non-compliant servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub non_compliant_servers: Option<u32>,
    /// Compliance per server.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = crate::limits::LISTED_SERVERS), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["server"]))]
    pub servers: Vec<ServerCompliance>,
    /// The apply/hold judgement per candidate patch.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = crate::limits::CANDIDATES))]
    pub candidates: Vec<PatchCandidate>,
    /// The metadata.generation the controller last evaluated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready (false for a missing staging baseline or an invalid window).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
}

/// Patch compliance of one server.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServerCompliance {
    /// Server name.
    pub server: String,
    /// Whether the server has every approved patch at or above the compliance level.
    #[serde(default)]
    pub compliant: bool,
    /// Why: Compliant, MissingPatches, InstallFailed, ScanFailed or NotScanned (as the Server's
    /// PatchCompliant condition).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Counts of patches by state.
    #[serde(default)]
    pub counts: PatchCounts,
}

/// Number of patches in each state on one host.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PatchCounts {
    /// Installed.
    #[serde(default)]
    pub installed: u32,
    /// Installed, waiting for a reboot.
    #[serde(default)]
    pub installed_pending_reboot: u32,
    /// Approved but not installed.
    #[serde(default)]
    pub missing: u32,
    /// Rejected by the baseline.
    #[serde(default)]
    pub rejected: u32,
    /// Not applicable to this host.
    #[serde(default)]
    pub not_applicable: u32,
    /// Installation failed.
    #[serde(default)]
    pub failed: u32,
}

/// State of one patch on one host.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum PatchState {
    Installed,
    InstalledPendingReboot,
    Missing,
    Rejected,
    NotApplicable,
    Failed,
}

/// A candidate patch and the judgement on it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PatchCandidate {
    /// Package name.
    pub package: String,
    /// Candidate version.
    pub version: String,
    /// Security, Bugfix or Enhancement, from the archive that offers it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classification: Option<PatchClassification>,
    /// Severity where the source gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<PatchSeverity>,
    /// When the archive offering it was released.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub released_at: Option<Time>,
    /// Apply or Hold.
    pub judgement: Judgement,
    /// Why, e.g. "installed on stg-db01 for 9d, no open incident".
    pub reason: String,
    /// Servers that lack it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = crate::limits::EVIDENCE))]
    pub needed_by: Vec<String>,
    /// Staging servers of the promotion's staging baseline and what they show for this patch.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = crate::limits::EVIDENCE))]
    pub staging: Vec<StagingEvidence>,
}

/// What one staging server shows for a candidate patch.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct StagingEvidence {
    /// Staging server.
    pub server: String,
    /// The version of the package it has installed, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installed_version: Option<String>,
    /// When that version was installed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installed_at: Option<Time>,
    /// Incidents open against the server.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = crate::limits::EVIDENCE))]
    pub open_incidents: Vec<String>,
    /// Whether this server alone is enough evidence (installed for the soak period, no open Incident).
    pub sufficient: bool,
}

/// Result of the agent's last search for updates on a host (`apt-get update` and a simulated
/// upgrade against the host's configured sources; nothing is changed).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PatchScan {
    /// When the scan ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scanned_at: Option<Time>,
    /// Whether every source could be read.
    #[serde(default)]
    pub succeeded: bool,
    /// What went wrong, e.g. the source apt could not fetch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Updates the sources offer for installed packages.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = crate::limits::AVAILABLE))]
    pub available: Vec<AvailableUpdate>,
    /// Whether the host waits for a reboot (`/run/reboot-required`).
    #[serde(default)]
    pub reboot_required: bool,
    /// Packages that asked for the reboot (`/run/reboot-required.pkgs`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = crate::limits::PACKAGE_NAMES))]
    pub reboot_packages: Vec<String>,
}

/// An update a host's sources offer for an installed package.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct AvailableUpdate {
    /// Package name.
    pub package: String,
    /// Installed version.
    pub installed_version: String,
    /// Version offered.
    pub version: String,
    /// Security, Bugfix or Enhancement, from the archive that offers it.
    pub classification: PatchClassification,
    /// Severity, from the package's `Urgency` field where the source gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<PatchSeverity>,
    /// Release date of the archive that offers it (its Release file's `Date`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub released_at: Option<Time>,
    /// The archive, as `origin/suite`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub archive: String,
}

/// Judgement on a patch.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum Judgement {
    Apply,
    Hold,
}

/// Patch state of one host under one baseline, written by its agent.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct HostPatchState {
    /// PatchBaseline name.
    pub baseline: String,
    /// When the host was last scanned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scanned_at: Option<Time>,
    /// Counts of patches by state.
    #[serde(default)]
    pub counts: PatchCounts,
    /// Each patch with its state.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = crate::limits::HOST_PATCHES))]
    pub patches: Vec<HostPatch>,
    /// What the agent does next, e.g. waits for the maintenance window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// One patch on one host.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct HostPatch {
    /// Package name.
    pub package: String,
    /// Version that is or would be installed.
    pub version: String,
    /// Installed, InstalledPendingReboot, Missing, Rejected, NotApplicable or Failed.
    pub state: PatchState,
    /// Security or other classification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classification: Option<PatchClassification>,
    /// Severity where the source gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<PatchSeverity>,
    /// When the patch was released.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub released_at: Option<Time>,
    /// When it was installed on this host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installed_at: Option<Time>,
    /// Result of the last install attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

//! `ChangeRecord`: change management (変更管理, requirement R2) and release records (R3).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::*;

/// A change to the fleet: opened by the controller when a host drifts from its ledger, or created
/// by people ahead of time for a planned change or release.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "unyo.dev",
    version = "v1alpha1",
    kind = "ChangeRecord",
    namespaced,
    status = "ChangeRecordStatus",
    shortname = "chg",
    category = "unyo",
    doc = "A change record (変更管理): drift the controller found, or a planned change or release people declared.",
    selectable = ".spec.server",
    selectable = ".spec.origin",
    printcolumn(
        name = "Server",
        type_ = "string",
        json_path = ".spec.server",
        description = "Server the change concerns"
    ),
    printcolumn(
        name = "Origin",
        type_ = "string",
        json_path = ".spec.origin",
        priority = "1",
        description = "Drift or Planned"
    ),
    printcolumn(
        name = "Category",
        type_ = "string",
        json_path = ".spec.category",
        priority = "1",
        description = "What changed"
    ),
    printcolumn(
        name = "Class",
        type_ = "string",
        json_path = ".spec.classification",
        description = "Minor, Major or Emergency"
    ),
    printcolumn(
        name = "Phase",
        type_ = "string",
        json_path = ".status.phase",
        description = "Where the change stands"
    ),
    printcolumn(
        name = "Resolution",
        type_ = "string",
        json_path = ".status.resolution",
        priority = "1",
        description = "How it was resolved"
    ),
    printcolumn(
        name = "Deadline",
        type_ = "date",
        json_path = ".spec.deadline",
        priority = "1",
        description = "When it must be dealt with"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new("self.origin != 'Planned' || has(self.plan)").message("a Planned change needs spec.plan").field_path(".plan").reason(Reason::FieldValueRequired))]
#[x_kube(validation = Rule::new("!has(self.deadline) || !has(self.recordedAt) || self.deadline >= self.recordedAt").message("spec.deadline must not be before spec.recordedAt").field_path(".deadline").reason(Reason::FieldValueInvalid))]
#[x_kube(validation = Rule::new("self.origin != 'Drift' || (has(self.server) && has(self.paths) && size(self.paths) > 0)").message("a Drift change names spec.server and at least one entry in spec.paths").field_path(".paths").reason(Reason::FieldValueRequired))]
#[serde(rename_all = "camelCase")]
pub struct ChangeRecordSpec {
    /// Drift (opened by the controller from a difference between ledger and host) or Planned
    /// (declared by people ahead of time). Cannot be changed after creation.
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.origin is immutable").reason(Reason::FieldValueForbidden))]
    pub origin: ChangeOrigin,
    /// One-line summary of the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub title: Option<String>,
    /// What the change is about: Hardware, OS, Software, Patch, Configuration, Network, Release or Other.
    pub category: ChangeCategory,
    /// Change classification (変更区分): Minor, Major or Emergency.
    pub classification: ChangeClass,
    /// Server the change concerns (a Server in the same namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253), pattern(NAME_PATTERN))]
    pub server: Option<String>,
    /// Further servers a planned change or release concerns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256), inner(length(max = 253), pattern(NAME_PATTERN)), extend("x-kubernetes-list-type" = "set"))]
    pub servers: Vec<String>,
    /// Ledger paths the change touches, each with the expected and observed value where known.
    /// A planned change absorbs drift on exactly these paths inside its window.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 512), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["path"]))]
    pub paths: Vec<ChangePath>,
    /// Who asked for the change (依頼者); `unyo-controller` for drift.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub requester: Option<String>,
    /// Who is responsible for it (管理者).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub manager: Option<String>,
    /// When the change was recorded (記録日時).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorded_at: Option<Time>,
    /// When it must be dealt with (期限).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<Time>,
    /// The plan of a planned change or release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<ChangePlan>,
    /// Reviews (レビュー): whether each was done, by whom, with what result and content.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["reviewer"]))]
    pub reviews: Vec<Review>,
    /// People close a record by setting this; the controller then records closedAt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed: Option<bool>,
}

/// Where a ChangeRecord came from.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum ChangeOrigin {
    Drift,
    Planned,
}

/// What a change is about.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum ChangeCategory {
    Hardware,
    OS,
    Software,
    Patch,
    Configuration,
    Network,
    Release,
    Other,
}

/// Change classification (変更区分).
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema,
)]
pub enum ChangeClass {
    Minor,
    Major,
    Emergency,
}

/// One ledger path a change touches.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChangePath {
    /// Ledger path, e.g. `software[name=openssl].version`.
    #[schemars(length(min = 1, max = 512))]
    pub path: String,
    /// Value the ledger declares (or, for a planned change, the value before it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub expected: Option<String>,
    /// Value observed on the host (or, for a planned change, the value after it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub observed: Option<String>,
}

/// The plan of a planned change or release (リリース計画).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChangePlan {
    /// What will be done.
    #[schemars(length(min = 1, max = 4096))]
    pub summary: String,
    /// When the change will be carried out.
    pub window: TimeWindow,
    /// Whether the change stops an online service. Planned stops must be recorded at least 30 days
    /// before the window starts (requirement R14).
    #[serde(default)]
    pub outage: bool,
    /// Result of the verification in staging (テスト結果), for releases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub test_result: Option<String>,
    /// Contents of the release (リリース内容).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub release_content: Option<String>,
    /// How to back the change out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub rollback: Option<String>,
}

/// A time window with a start and an end.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.end > self.start").message("window end must be after its start").field_path(".end").reason(Reason::FieldValueInvalid))]
pub struct TimeWindow {
    /// Start of the window (RFC 3339).
    pub start: Time,
    /// End of the window (RFC 3339), after the start.
    pub end: Time,
}

/// One review of a change.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Review {
    /// Who reviewed (レビュー者).
    #[schemars(length(min = 1, max = 128))]
    pub reviewer: String,
    /// Whether the review has been done (レビュー実施有無).
    #[serde(default)]
    pub done: bool,
    /// Approved, Rejected or Pending.
    #[serde(default)]
    pub result: ReviewResult,
    /// When the review was done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<Time>,
    /// What the review said (レビュー内容).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub content: Option<String>,
}

/// Outcome of a review.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum ReviewResult {
    #[default]
    Pending,
    Approved,
    Rejected,
}

/// Where a change stands, as the controller concluded it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChangeRecordStatus {
    /// Open, Approved, Implemented, Resolved, Rejected or Closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<ChangePhase>,
    /// How the drift was resolved: LedgerUpdated (the spec was changed to match the host),
    /// HostReverted (the host went back), or Implemented (a planned change was carried out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<ChangeResolution>,
    /// When the record was resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<Time>,
    /// When the record was closed (完了日時).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<Time>,
    /// Drift records this planned change absorbed (server and path), for the history.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = crate::limits::ABSORBED))]
    pub absorbed: Vec<String>,
    /// The metadata.generation the controller last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready and LeadTimeViolated.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
}

/// Phase of a ChangeRecord.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum ChangePhase {
    Open,
    Approved,
    Implemented,
    Resolved,
    Rejected,
    Closed,
}

/// How a ChangeRecord was resolved.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum ChangeResolution {
    LedgerUpdated,
    HostReverted,
    Implemented,
}

//! `Incident`: incident management (インシデント管理, requirement R4) with the problem link of R5.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::*;

/// An incident: opened by the controller from monitoring (one open Incident per fingerprint), or
/// by people for an inquiry or a change request. People own the handling fields (owner, state,
/// cause, actions, prevention); the controller never writes them.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "unyo.dev",
    version = "v1alpha1",
    kind = "Incident",
    namespaced,
    status = "IncidentStatus",
    shortname = "inc",
    category = "unyo",
    doc = "An incident (インシデント管理): an anomaly found by monitoring, an inquiry, or a change request.",
    selectable = ".spec.fingerprint",
    selectable = ".spec.state",
    printcolumn(
        name = "Type",
        type_ = "string",
        json_path = ".spec.type",
        priority = "1",
        description = "Monitoring, Inquiry or ChangeRequest"
    ),
    printcolumn(
        name = "Severity",
        type_ = "string",
        json_path = ".spec.severity",
        description = "Info, Warning or Critical"
    ),
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = ".spec.state",
        description = "New, InProgress, Resolved or Closed"
    ),
    printcolumn(
        name = "Server",
        type_ = "string",
        json_path = ".spec.servers[0]",
        description = "First affected server"
    ),
    printcolumn(
        name = "Priority",
        type_ = "string",
        json_path = ".spec.priority",
        priority = "1",
        description = "Handling priority"
    ),
    printcolumn(
        name = "Owner",
        type_ = "string",
        json_path = ".spec.owner",
        priority = "1",
        description = "Who handles it"
    ),
    printcolumn(
        name = "Recovered",
        type_ = "date",
        json_path = ".status.recoveredAt",
        priority = "1",
        description = "When the cause went away"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new("self.type != 'Monitoring' || has(self.fingerprint)").message("a Monitoring incident needs spec.fingerprint").field_path(".fingerprint").reason(Reason::FieldValueRequired))]
#[x_kube(validation = Rule::new("!has(self.deadline) || !has(self.occurredAt) || self.deadline >= self.occurredAt").message("spec.deadline must not be before spec.occurredAt").field_path(".deadline").reason(Reason::FieldValueInvalid))]
#[serde(rename_all = "camelCase")]
pub struct IncidentSpec {
    /// Monitoring (raised from a check), Inquiry (問い合わせ) or ChangeRequest (変更要求).
    #[serde(rename = "type")]
    pub incident_type: IncidentType,
    /// One-line summary.
    #[schemars(length(min = 1, max = 256))]
    pub title: String,
    /// What happened, in detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 8192))]
    pub description: Option<String>,
    /// Identity of the problem this incident is about (e.g. namespace, server, policy and check);
    /// at most one open Incident exists per fingerprint. Cannot change after creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 512))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.fingerprint is immutable").reason(Reason::FieldValueForbidden))]
    pub fingerprint: Option<String>,
    /// Who registered it (登録者); `unyo-controller` for monitoring incidents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub reporter: Option<String>,
    /// Info, Warning or Critical.
    pub severity: Severity,
    /// Urgency (緊急度): High, Medium or Low.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urgency: Option<Level>,
    /// Priority (優先度): High, Medium or Low.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<Level>,
    /// Servers affected (Servers in the same namespace).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256), inner(length(max = 253), pattern(NAME_PATTERN)))]
    pub servers: Vec<String>,
    /// Sites or offices whose service was affected (影響拠点).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256), inner(length(max = 256)))]
    pub affected_sites: Vec<String>,
    /// When it occurred (発生日時).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occurred_at: Option<Time>,
    /// Who handles it (担当者).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub owner: Option<String>,
    /// When it must be dealt with (期限).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<Time>,
    /// Handling state (対応状況): New, InProgress, Resolved or Closed. Owned by people.
    #[serde(default)]
    pub state: IncidentState,
    /// Cause (原因).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 8192))]
    pub cause: Option<String>,
    /// The device that failed (障害機器), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub failed_device: Option<String>,
    /// Actions taken (対応内容), in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256), inner(length(max = 4096)))]
    pub actions: Vec<String>,
    /// How a recurrence will be prevented (再発防止策).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 8192))]
    pub prevention: Option<String>,
    /// The problem (問題管理) this incident belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<ProblemLink>,
}

/// Kind of incident.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum IncidentType {
    Monitoring,
    Inquiry,
    ChangeRequest,
}

/// A three-step level.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema,
)]
pub enum Level {
    Low,
    Medium,
    High,
}

/// Handling state of an incident.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum IncidentState {
    #[default]
    New,
    InProgress,
    Resolved,
    Closed,
}

/// Link from an incident to a problem (requirement R5).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProblemLink {
    /// Identifier of the problem record.
    #[schemars(length(min = 1, max = 256))]
    pub id: String,
    /// Hardware, Software or Line (回線).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<ProblemCategory>,
    /// Whether the cause is known (既知のエラー).
    #[serde(default)]
    pub known_error: bool,
    /// Workaround (回避策), findable for similar problems.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 8192))]
    pub workaround: Option<String>,
    /// Permanent fix (恒久対策).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 8192))]
    pub permanent_fix: Option<String>,
}

/// Category of a problem.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum ProblemCategory {
    Hardware,
    Software,
    Line,
}

/// What the controller observed and concluded about an incident.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct IncidentStatus {
    /// Firing (the cause is present) or Recovered (it went away).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<IncidentPhase>,
    /// When the cause went away (復旧日時).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovered_at: Option<Time>,
    /// Downtime in seconds from occurrence to recovery (停止時間).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downtime_seconds: Option<i64>,
    /// When the incident was closed (完了日時).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<Time>,
    /// How many times the problem occurred while this incident was open (recurrences reopen it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occurrences: Option<u32>,
    /// When it last occurred.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_occurred_at: Option<Time>,
    /// Similar past incidents (same check or cause on any server), most recent first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = crate::limits::SIMILAR))]
    pub similar: Vec<String>,
    /// Notifications due (the outbox): which route of which MonitoringPolicy is told of which
    /// event (`firing-N`, `recovered-N`). Written by the Incident loop; the notifier delivers
    /// each entry once and records the result in `notifications`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = crate::limits::NOTIFICATIONS), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["key"]))]
    pub outbox: Vec<DueNotification>,
    /// Delivery state of each notification (key `<route>/<event>`), written by the notifier.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = crate::limits::NOTIFICATIONS), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["route"]))]
    pub notifications: Vec<NotificationDelivery>,
    /// The metadata.generation the controller last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready and Notified.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
}

/// Whether the cause of an incident is present.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum IncidentPhase {
    Firing,
    Recovered,
}

/// A notification due: an entry of the Incident's outbox.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct DueNotification {
    /// `<route>/<event>`, e.g. `ops-webhook/firing-1`: the key of its delivery record.
    #[schemars(length(min = 1, max = 512))]
    pub key: String,
    /// The MonitoringPolicy whose route it is.
    #[schemars(length(min = 1, max = 253))]
    pub policy: String,
    /// The route's name in that policy.
    #[schemars(length(min = 1, max = 253))]
    pub route: String,
}

/// Delivery state of one notification route for an incident.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationDelivery {
    /// Name of the route in the MonitoringPolicy.
    pub route: String,
    /// Pending, Delivered or Failed.
    pub state: DeliveryState,
    /// Number of attempts so far.
    #[serde(default)]
    pub attempts: u32,
    /// When the last attempt was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempt_at: Option<Time>,
    /// Result of the last attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Delivery state of a notification.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum DeliveryState {
    Pending,
    Delivered,
    Failed,
}

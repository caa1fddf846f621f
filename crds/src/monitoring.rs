//! `MonitoringPolicy`: what to watch on which servers, when to warn, and whom to tell (R6, R13).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::*;

/// Checks the agents of the selected servers run, their thresholds, which severities open
/// Incidents and where notifications go.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "unyo.dev",
    version = "v1alpha1",
    kind = "MonitoringPolicy",
    namespaced,
    status = "MonitoringPolicyStatus",
    shortname = "mp",
    category = "unyo",
    doc = "Monitoring checks for selected servers, thresholds, incident severities and notification routes.",
    printcolumn(
        name = "Servers",
        type_ = "integer",
        json_path = ".status.matchedServers",
        description = "Servers the selector matches"
    ),
    printcolumn(
        name = "Warning",
        type_ = "integer",
        json_path = ".status.firing.warning",
        description = "Checks in Warning"
    ),
    printcolumn(
        name = "Critical",
        type_ = "integer",
        json_path = ".status.firing.critical",
        description = "Checks in Critical"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status",
        description = "Selector and settings are valid"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct MonitoringPolicySpec {
    /// Servers (in this namespace) the policy applies to, by label. An empty selector selects all.
    #[serde(default)]
    pub selector: LabelSelector,
    /// How often the agent samples each check, e.g. `30s` (default `60s`).
    #[serde(default = "default_interval")]
    #[schemars(length(max = 32), pattern(DURATION_PATTERN))]
    pub interval: String,
    /// The checks.
    #[schemars(length(min = 1, max = 200), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub checks: Vec<Check>,
    /// Severities that open an Incident (default: Critical only).
    #[serde(default = "default_incident_severities")]
    #[schemars(length(max = 3), extend("x-kubernetes-list-type" = "set"))]
    pub incident_severities: Vec<Severity>,
    /// How long an Incident stays reopenable after recovery: a recurrence within this window
    /// reopens it instead of opening a new one (default `1h`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32), pattern(DURATION_PATTERN))]
    pub reopen_window: Option<String>,
    /// Where notifications go.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub notifications: Vec<NotificationRoute>,
}

fn default_interval() -> String {
    "60s".to_string()
}

fn default_incident_severities() -> Vec<Severity> {
    vec![Severity::Critical]
}

/// One check. `kind` says what is measured; the fields for that kind must be set.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.warning) || !has(self.critical) || self.warning < self.critical").message("the warning threshold must be below the critical threshold").field_path(".warning").reason(Reason::FieldValueInvalid))]
#[x_kube(validation = Rule::new("!(self.kind in ['Cpu', 'Memory', 'Disk', 'TimeSync']) || has(self.warning) || has(self.critical)").message("a Cpu, Memory, Disk or TimeSync check needs a warning or critical threshold").field_path(".critical").reason(Reason::FieldValueRequired))]
#[x_kube(validation = Rule::new("!(self.kind in ['Cpu', 'Memory', 'Disk']) || ((!has(self.warning) || self.warning <= 100.0) && (!has(self.critical) || self.critical <= 100.0))").message("Cpu, Memory and Disk thresholds are percentages, at most 100").field_path(".critical").reason(Reason::FieldValueInvalid))]
#[x_kube(validation = Rule::new("self.kind != 'Disk' || has(self.path)").message("a Disk check needs path (a mount point)").field_path(".path").reason(Reason::FieldValueRequired))]
#[x_kube(validation = Rule::new("self.kind != 'Service' || has(self.service)").message("a Service check needs service").field_path(".service").reason(Reason::FieldValueRequired))]
#[x_kube(validation = Rule::new("self.kind != 'Process' || has(self.process)").message("a Process check needs process").field_path(".process").reason(Reason::FieldValueRequired))]
#[x_kube(validation = Rule::new("self.kind != 'LogPattern' || (has(self.path) && has(self.pattern))").message("a LogPattern check needs path and pattern").field_path(".pattern").reason(Reason::FieldValueRequired))]
#[x_kube(validation = Rule::new("!(self.kind in ['Tcp', 'Ping']) || has(self.host)").message("a Tcp or Ping check needs host").field_path(".host").reason(Reason::FieldValueRequired))]
#[x_kube(validation = Rule::new("self.kind != 'Tcp' || has(self.port)").message("a Tcp check needs port").field_path(".port").reason(Reason::FieldValueRequired))]
#[x_kube(validation = Rule::new("self.kind != 'Http' || has(self.url)").message("an Http check needs url").field_path(".url").reason(Reason::FieldValueRequired))]
pub struct Check {
    /// Name of the check, unique in the policy, e.g. `root-disk`.
    #[schemars(length(min = 1, max = 63), pattern(NAME_PATTERN))]
    pub name: String,
    /// What is checked: Cpu, Memory, Disk (percent used), Service, Process, LogPattern, Tcp,
    /// Http, Ping, TimeSync (offset in seconds) or Antivirus (engine running, signatures fresh).
    pub kind: CheckKind,
    /// Warning threshold: percent for Cpu/Memory/Disk, seconds for TimeSync. Must be below critical.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0))]
    pub warning: Option<f64>,
    /// Critical threshold, same unit as warning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0))]
    pub critical: Option<f64>,
    /// How long a threshold must be exceeded before the state changes, e.g. `5m` (default `0s`).
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "for")]
    #[schemars(length(max = 32), pattern(DURATION_PATTERN))]
    pub for_duration: Option<String>,
    /// Severity of a failed check that has no thresholds (Service, Process, LogPattern, Tcp,
    /// Http, Ping, Antivirus); default Critical.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
    /// Mount point (Disk) or log file (LogPattern).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub path: Option<String>,
    /// Service unit that must be active (Service), e.g. `postgresql.service`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub service: Option<String>,
    /// Process name that must be running (Process), e.g. `clamd`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub process: Option<String>,
    /// Regular expression matched against new log lines (LogPattern), e.g. `ORA-[0-9]+|FATAL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub pattern: Option<String>,
    /// Host name or address to reach (Tcp, Ping).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub host: Option<String>,
    /// TCP port (Tcp).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<u16>,
    /// URL to GET (Http).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    #[x_kube(validation = Rule::new("self.startsWith('http://') || self.startsWith('https://')").message("url must start with http:// or https://").reason(Reason::FieldValueInvalid))]
    pub url: Option<String>,
    /// HTTP status the URL must answer with (Http, default 200).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 100, max = 599))]
    pub expect_status: Option<u16>,
    /// Time limit of one probe (Tcp, Http, Ping), e.g. `5s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32), pattern(DURATION_PATTERN))]
    pub timeout: Option<String>,
}

/// What a check measures.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum CheckKind {
    Cpu,
    Memory,
    Disk,
    Service,
    Process,
    LogPattern,
    Tcp,
    Http,
    Ping,
    TimeSync,
    Antivirus,
}

/// A notification route: where notifications for the given severities go.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.webhook) != has(self.email)").message("set exactly one of webhook or email").reason(Reason::FieldValueInvalid))]
pub struct NotificationRoute {
    /// Name of the route, e.g. `admins-mail`.
    #[schemars(length(min = 1, max = 63), pattern(NAME_PATTERN))]
    pub name: String,
    /// Severities this route receives (default Warning and Critical).
    #[serde(default = "default_route_severities")]
    #[schemars(length(min = 1, max = 3), extend("x-kubernetes-list-type" = "set"))]
    pub severities: Vec<Severity>,
    /// Also notify when the Incident recovers (default true).
    #[serde(default = "default_true")]
    pub on_recovery: bool,
    /// JSON POST to a URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookTarget>,
    /// E-mail through an SMTP server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<EmailTarget>,
}

fn default_route_severities() -> Vec<Severity> {
    vec![Severity::Warning, Severity::Critical]
}

/// A webhook target. Its URL often carries a token, so it lives in a Secret that only the
/// controller reads (agents can read policies, never Secrets).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookTarget {
    /// The Secret (in the policy's namespace) and key holding the URL the JSON document is
    /// POSTed to.
    pub url_secret: SecretKeyRef,
    /// Allow a plain `http://` URL (default false: only https is sent to). Redirects are never
    /// followed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure_http: bool,
}

/// A key of a Secret in the object's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[schemars(
        length(min = 1, max = 253),
        pattern(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub name: String,
    /// Key in the Secret's data.
    #[schemars(length(min = 1, max = 253), pattern(r"^[-._a-zA-Z0-9]+$"))]
    pub key: String,
}

/// How the connection to the SMTP relay is protected.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum SmtpTls {
    /// STARTTLS is required (the default); a relay that does not offer it gets nothing.
    #[default]
    StartTls,
    /// TLS from the first byte (SMTPS, usually port 465).
    Tls,
    /// Plain SMTP: only for a relay on a network the union trusts; must be set explicitly.
    None,
}

/// An e-mail target.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct EmailTarget {
    /// Recipients.
    #[schemars(
        length(min = 1, max = 50),
        inner(length(min = 3, max = 254), pattern(r"^[^@\s]+@[^@\s]+$"))
    )]
    pub to: Vec<String>,
    /// Sender address.
    #[schemars(length(min = 3, max = 254), pattern(r"^[^@\s]+@[^@\s]+$"))]
    pub from: String,
    /// SMTP server as `host:port`, e.g. `mail.example.lg.jp:587`.
    #[schemars(length(min = 3, max = 260), pattern(r"^[^:\s]+:[0-9]{1,5}$"))]
    pub smtp: String,
    /// StartTls (default), Tls or None.
    #[serde(default)]
    pub tls: SmtpTls,
    /// A Secret (in the policy's namespace) with the keys `username` and `password` for SMTP
    /// authentication, and optionally `ca.crt`: the PEM certificate of the CA the relay's
    /// certificate is checked against (else the system's roots).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        pattern(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub credentials_secret: Option<String>,
    /// Subject prefix, e.g. `[unyo]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub subject_prefix: Option<String>,
}

/// What the controller concluded about a policy.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct MonitoringPolicyStatus {
    /// Number of servers the selector matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matched_servers: Option<u32>,
    /// Names of the matched servers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = crate::limits::LISTED_SERVERS))]
    pub servers: Vec<String>,
    /// Checks currently firing, by severity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firing: Option<FiringCounts>,
    /// The metadata.generation the controller last evaluated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready (false with a reason for an invalid selector or setting).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
}

/// Number of firing checks by severity.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct FiringCounts {
    /// Checks in Warning.
    #[serde(default)]
    pub warning: u32,
    /// Checks in Critical.
    #[serde(default)]
    pub critical: u32,
}

//! `Server`: the configuration ledger of one host (構成管理, requirement R1) and what was observed of it.

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::*;

/// The ledger of one managed host: what it should be (spec, kept in Git) and what its agent
/// observed (status). The controller compares the two and records every difference as drift.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "unyo.dev",
    version = "v1alpha1",
    kind = "Server",
    namespaced,
    status = "ServerStatus",
    shortname = "srv",
    category = "unyo",
    doc = "The configuration ledger (構成管理) of one managed host and what its agent observed of it.",
    selectable = ".spec.hostname",
    selectable = ".spec.role",
    selectable = ".spec.environment",
    printcolumn(
        name = "Hostname",
        type_ = "string",
        json_path = ".spec.hostname",
        priority = "1",
        description = "Host name in the ledger"
    ),
    printcolumn(
        name = "Role",
        type_ = "string",
        json_path = ".spec.role",
        description = "Role of the server"
    ),
    printcolumn(
        name = "Env",
        type_ = "string",
        json_path = ".spec.environment",
        description = "Production or Staging"
    ),
    printcolumn(
        name = "OS",
        type_ = "string",
        json_path = ".spec.os.name",
        description = "Operating system in the ledger"
    ),
    printcolumn(
        name = "Version",
        type_ = "string",
        json_path = ".spec.os.version",
        priority = "1",
        description = "OS version in the ledger"
    ),
    printcolumn(
        name = "InSync",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"InSync\")].status",
        description = "Ledger and observed facts agree"
    ),
    printcolumn(
        name = "Agent",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"AgentConnected\")].status",
        description = "The agent's heartbeat is current"
    ),
    printcolumn(
        name = "Patched",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"PatchCompliant\")].status",
        priority = "1",
        description = "Every approved patch at the baseline's compliance level is installed"
    ),
    printcolumn(
        name = "Drift",
        type_ = "integer",
        json_path = ".status.driftCount",
        priority = "1",
        description = "Number of drifted ledger paths"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ServerSpec {
    /// Host name of the server as the ledger records it (RFC 1123, lower case), e.g. `web01`.
    #[schemars(length(min = 1, max = 253), pattern(NAME_PATTERN))]
    pub hostname: String,
    /// Role of the server in the system: Web, AP, DB, Report, AD, Ops, Backup or Other.
    pub role: ServerRole,
    /// Production or Staging (検証環境). Staging servers verify patches and releases first.
    #[serde(default)]
    pub environment: Environment,
    /// Free-text description of what the server does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub description: Option<String>,
    /// Where the server stands (data centre, rack), for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub location: Option<String>,
    /// Operating system in the ledger.
    pub os: OsLedger,
    /// Hardware in the ledger: maker, model, CPU, memory, disks and network interfaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hardware: Option<HardwareLedger>,
    /// Installed software and its versions. Listed entries are compared with the packages the
    /// agent observes; an undeclared package is drift only when `drift.strict` names `software`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 2048), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub software: Vec<SoftwareEntry>,
    /// Installed security patches (e.g. a KB number or a package at a fixed version).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 4096), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["id"]))]
    pub patches: Vec<PatchEntry>,
    /// Devices connected to the server (printers, tape drives, UPS, HSM…).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub devices: Vec<ConnectedDevice>,
    /// How ledger and observed facts are compared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<DriftPolicy>,
}

/// Role of a server in the system.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum ServerRole {
    Web,
    AP,
    DB,
    Report,
    AD,
    Ops,
    Backup,
    Other,
}

/// Operating system of a server.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct OsLedger {
    /// Operating system name, e.g. `Debian GNU/Linux` or `Windows Server 2019 Standard`.
    #[schemars(length(min = 1, max = 256))]
    pub name: String,
    /// Operating system version, e.g. `12` or `1809`.
    #[schemars(length(min = 1, max = 64))]
    pub version: String,
    /// Build or release number, e.g. `17763.6414`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub build: Option<String>,
    /// Kernel release, e.g. `6.1.0-26-amd64`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub kernel: Option<String>,
    /// CPU architecture, e.g. `x86_64`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    pub architecture: Option<String>,
}

/// Hardware of a server.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct HardwareLedger {
    /// Maker (メーカー), e.g. `Fujitsu`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub vendor: Option<String>,
    /// Model (型番), e.g. `PRIMERGY RX2540 M5`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub model: Option<String>,
    /// Serial number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub serial_number: Option<String>,
    /// Processors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuLedger>,
    /// Installed memory as a quantity, e.g. `64Gi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Quantity>,
    /// Physical and logical disks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 128), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub disks: Vec<DiskLedger>,
    /// Network interfaces with their MAC and IP addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub nics: Vec<NicLedger>,
}

/// Processors of a server.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct CpuLedger {
    /// CPU model name as the OS reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub model: Option<String>,
    /// Number of physical sockets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 64))]
    pub sockets: Option<u32>,
    /// Number of physical cores in total.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 4096))]
    pub cores: Option<u32>,
    /// Number of logical processors (hardware threads) in total.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 8192))]
    pub threads: Option<u32>,
}

/// A disk of a server.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct DiskLedger {
    /// Device or volume name, e.g. `sda`, `nvme0n1` or `C:`.
    #[schemars(length(min = 1, max = 128))]
    pub name: String,
    /// Physical (a drive) or Logical (a volume, partition or RAID set).
    #[serde(default)]
    pub kind: DiskKind,
    /// Capacity as a quantity, e.g. `960Gi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<Quantity>,
    /// Drive model or RAID level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub model: Option<String>,
    /// Mount point of a logical disk, e.g. `/var/lib/postgresql`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub mount_point: Option<String>,
}

/// Whether a disk is a physical drive or a logical volume.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum DiskKind {
    #[default]
    Physical,
    Logical,
}

/// A network interface of a server.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct NicLedger {
    /// Interface name, e.g. `eth0` or `ens192`.
    #[schemars(length(min = 1, max = 64))]
    pub name: String,
    /// MAC address, six colon-separated hex pairs, e.g. `52:54:00:12:34:56`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(MAC_PATTERN))]
    pub mac: Option<String>,
    /// IP addresses, each an address (`10.1.2.3`) or an address with prefix length (`10.1.2.3/24`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(length(max = 64)))]
    #[x_kube(validation = Rule::new("self.all(a, isIP(a) || isCIDR(a))").message("every address must be an IP address or an address with prefix length").reason(Reason::FieldValueInvalid))]
    pub addresses: Vec<String>,
}

/// A piece of installed software.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SoftwareEntry {
    /// Package or product name, e.g. `postgresql-15` or `Apache HTTP Server`.
    #[schemars(length(min = 1, max = 256))]
    pub name: String,
    /// Installed version, e.g. `15.8-0+deb12u1`.
    #[schemars(length(min = 1, max = 128))]
    pub version: String,
    /// Maker of the software, for the ledger.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub vendor: Option<String>,
}

/// An installed security patch.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PatchEntry {
    /// Patch identifier, e.g. `KB5044277` or `openssl=3.0.15-1~deb12u1`.
    #[schemars(length(min = 1, max = 256))]
    pub id: String,
    /// Date the patch was installed, `YYYY-MM-DD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 10), pattern(DATE_PATTERN))]
    pub installed_on: Option<String>,
    /// What the patch fixes, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 512))]
    pub description: Option<String>,
}

/// A device connected to a server.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectedDevice {
    /// Name of the device, unique on this server.
    #[schemars(length(min = 1, max = 128))]
    pub name: String,
    /// Kind of device, e.g. `printer`, `tape`, `ups`.
    #[schemars(length(min = 1, max = 64))]
    pub kind: String,
    /// Maker of the device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub vendor: Option<String>,
    /// Model of the device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub model: Option<String>,
    /// How it is connected, e.g. `USB`, `SAS`, `LAN 10.1.2.50`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub connection: Option<String>,
}

/// How ledger and observed facts are compared for this server.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct DriftPolicy {
    /// Ledger paths never compared, e.g. `hardware.memory` or `software[name=tzdata]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256), inner(length(min = 1, max = 256)))]
    pub ignore: Vec<String>,
    /// Lists where an observed entry that the ledger does not declare is drift too:
    /// software, patches, disks, nics, devices.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 5), extend("x-kubernetes-list-type" = "set"))]
    pub strict: Vec<StrictList>,
    /// Classification of the ChangeRecord drift opens, by kind of change, overriding the defaults
    /// (OS and hardware changes Major, software version changes Minor, software added or removed Major).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classification: Option<DriftClassification>,
}

/// A ledger list that can be compared strictly.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum StrictList {
    Software,
    Patches,
    Disks,
    Nics,
    Devices,
}

/// Change classification (変更区分) per kind of drift.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct DriftClassification {
    /// Classification when the operating system changed (default Major).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<crate::change::ChangeClass>,
    /// Classification when the hardware changed (default Major).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hardware: Option<crate::change::ChangeClass>,
    /// Classification when a software version changed (default Minor).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software_version: Option<crate::change::ChangeClass>,
    /// Classification when software was added or removed (default Major).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software_added_removed: Option<crate::change::ChangeClass>,
}

/// What was observed of the server and concluded from it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServerStatus {
    /// Facts the agent observed on the host (written by unyo-agent only when they change).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed: Option<ObservedFacts>,
    /// Current state of each check the agent runs, updated on state transitions only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = crate::limits::CHECKS), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["policy", "check"]))]
    pub checks: Vec<CheckResult>,
    /// Results of the scheduled operations the agent runs (virus scans, backups, patch scans).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operations: Option<OperationResults>,
    /// Ledger paths whose observed value differs from the declared one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = crate::limits::DRIFT), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["path"]))]
    pub drift: Vec<DriftEntry>,
    /// Number of drifted paths (for the printer column).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift_count: Option<u32>,
    /// Name of the ChangeRecord that records the current drift, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_record: Option<String>,
    /// The metadata.generation of the spec the controller last compared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// InSync, AgentConnected, Ready, PatchCompliant, BackupHealthy and AntivirusHealthy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
}

/// Facts observed on a host by its agent.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObservedFacts {
    /// When the facts were collected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_at: Option<Time>,
    /// Content hash of the facts; the agent writes only when it changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
    /// Version of the agent that collected the facts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_version: Option<String>,
    /// Host name the host reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Operating system from os-release and the kernel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<ObservedOs>,
    /// Processors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuLedger>,
    /// Total memory in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    /// Maker, model and serial number of the machine (Linux: DMI in /sys/class/dmi/id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hardware: Option<ObservedHardware>,
    /// Physical disks and their sizes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = crate::limits::DEVICES))]
    pub disks: Vec<ObservedDisk>,
    /// Mounted filesystems with size and usage.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = crate::limits::DEVICES))]
    pub filesystems: Vec<ObservedFilesystem>,
    /// Network interfaces with MAC and addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = crate::limits::DEVICES))]
    pub nics: Vec<ObservedNic>,
    /// Installed packages with versions (from the package database).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = crate::limits::PACKAGES))]
    pub packages: Vec<ObservedPackage>,
    /// The same packages in compact form, in a cache that holds many Servers (never sent or
    /// received: see [`ObservedFacts::compact_packages`]).
    #[serde(skip)]
    #[schemars(skip)]
    pub package_set: Option<crate::compact::PackageSet>,
    /// Installed hotfixes by id (e.g. `KB5044277`), where the platform lists them (Windows).
    /// Patches of the form `package=version` are checked against `packages` instead.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = crate::limits::PATCHES))]
    pub patches: Vec<ObservedPatch>,
    /// Devices attached to the host (Linux: USB devices but hubs), when the agent can list
    /// them: absent when it cannot, empty when there are none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = crate::limits::DEVICES))]
    pub devices: Option<Vec<ObservedDevice>>,
    /// Service units and their states.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = crate::limits::SERVICES))]
    pub services: Vec<ObservedService>,
    /// Time synchronisation state (requirement R13).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_sync: Option<TimeSync>,
    /// When the host last booted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_time: Option<Time>,
    /// Facts that could not be read, each with the reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = crate::limits::UNKNOWN_FACTS))]
    pub unknown: Vec<UnknownFact>,
}

impl ObservedFacts {
    /// Moves `packages` into their compact form (architectures are dropped), unless the
    /// interner is full: then they stay as they are.
    pub fn compact_packages(&mut self) {
        if self.packages.is_empty() {
            return;
        }
        if let Some(set) = crate::compact::PackageSet::of(&self.packages) {
            self.package_set = Some(set);
            self.packages = Vec::new();
        }
    }

    /// The installed hotfix `id` (letter case aside).
    pub fn patch(&self, id: &str) -> Option<&ObservedPatch> {
        self.patches.iter().find(|p| p.id.eq_ignore_ascii_case(id))
    }

    /// Whether any installed package is known.
    pub fn has_packages(&self) -> bool {
        !self.packages.is_empty() || self.package_set.as_ref().is_some_and(|s| !s.is_empty())
    }

    /// The installed packages, from `packages` or their compact form.
    pub fn installed(&self) -> std::borrow::Cow<'_, [ObservedPackage]> {
        match &self.package_set {
            Some(set) if self.packages.is_empty() => std::borrow::Cow::Owned(set.expand()),
            _ => std::borrow::Cow::Borrowed(&self.packages),
        }
    }
}

/// Operating system as observed.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObservedOs {
    /// `NAME` from os-release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `VERSION_ID` from os-release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// `ID` from os-release, e.g. `debian`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Build or point release, where the OS reports one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<String>,
    /// Kernel release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<String>,
    /// CPU architecture.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
}

/// The machine's identity as observed.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObservedHardware {
    /// Maker of the machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub vendor: Option<String>,
    /// Model of the machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub model: Option<String>,
    /// Serial number of the machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub serial_number: Option<String>,
}

/// An installed hotfix as observed.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObservedPatch {
    /// Hotfix id, e.g. `KB5044277`.
    #[schemars(length(max = 256))]
    pub id: String,
    /// Date it was installed, `YYYY-MM-DD`, where the host says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 10))]
    pub installed_on: Option<String>,
}

/// A device attached to the host as observed.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObservedDevice {
    /// Where the host lists it, e.g. `usb:1-1.2`.
    #[schemars(length(max = 256))]
    pub name: String,
    /// Maker of the device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub vendor: Option<String>,
    /// Model (product) of the device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub model: Option<String>,
}

/// A disk as observed.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObservedDisk {
    /// Device name.
    pub name: String,
    /// Size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
    /// Drive model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

/// A mounted filesystem as observed.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObservedFilesystem {
    /// Mount point.
    pub mount_point: String,
    /// Device backing the filesystem.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// Filesystem type, e.g. `ext4`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fs_type: Option<String>,
    /// Size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
    /// Used bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used_bytes: Option<u64>,
}

/// A network interface as observed.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObservedNic {
    /// Interface name.
    pub name: String,
    /// MAC address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// Addresses with prefix length, e.g. `10.1.2.3/24`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = crate::limits::ADDRESSES))]
    pub addresses: Vec<String>,
}

/// An installed package as observed.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObservedPackage {
    /// Package name.
    pub name: String,
    /// Installed version.
    pub version: String,
    /// Package architecture.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
}

/// A service unit as observed.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObservedService {
    /// Unit name, e.g. `postgresql.service`.
    pub name: String,
    /// Active state, e.g. `active`, `inactive`, `failed`.
    pub state: String,
    /// Sub-state, e.g. `running`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_state: Option<String>,
}

/// Time synchronisation state of a host.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct TimeSync {
    /// Whether the system clock is synchronised to a time source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synchronized: Option<bool>,
    /// Offset from the time source in seconds, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset_seconds: Option<f64>,
    /// Time source, e.g. an NTP server name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Time zone the host is set to, e.g. `Asia/Tokyo`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
}

/// A fact that could not be read.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct UnknownFact {
    /// Which fact, e.g. `packages`.
    pub fact: String,
    /// Why it could not be read.
    pub reason: String,
}

/// The state of one check on one host.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckResult {
    /// MonitoringPolicy that defines the check.
    pub policy: String,
    /// Name of the check inside the policy.
    pub check: String,
    /// OK, Warning, Critical or Unknown.
    pub state: CheckState,
    /// When the check entered this state (the host's clock).
    pub since: Time,
    /// Last measured value, where the check measures one (percent, seconds, count).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// What the check saw, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// State of a check.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum CheckState {
    OK,
    Warning,
    Critical,
    Unknown,
}

/// One drifted ledger path.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct DriftEntry {
    /// Ledger path, e.g. `os.version` or `software[name=openssl].version`.
    pub path: String,
    /// Declared value (absent when the host has something the ledger does not declare).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    /// Observed value (absent when the host lacks something the ledger declares).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed: Option<String>,
    /// When this difference was first seen.
    pub since: Time,
}

/// Results of scheduled operations on a host, written by its agent.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct OperationResults {
    /// Antivirus state and the last scan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub antivirus: Option<crate::virusscan::HostAntivirus>,
    /// Last backup results per BackupPlan.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = crate::limits::PER_POLICY), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["plan"]))]
    pub backups: Vec<crate::backup::HostBackup>,
    /// Patch state per PatchBaseline.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = crate::limits::PER_POLICY), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["baseline"]))]
    pub patches: Vec<crate::patch::HostPatchState>,
    /// The last search for available updates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch_scan: Option<crate::patch::PatchScan>,
    /// What the host's own policy (`/etc/unyo/agent.yaml`) refused of what custom resources
    /// ask of this host, now; empty when everything is allowed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = crate::limits::ANSWERS))]
    pub refusals: Vec<Refusal>,
    /// The answers to the latest requests by annotation (restore, backup-now, scan-now), one
    /// per annotation. Only this host's agent may write this status, so the CLI trusts it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = crate::limits::ANSWERS), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["annotation"]))]
    pub requests: Vec<RequestResult>,
}

/// Something a custom resource asked of a host that the host's policy refused.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Refusal {
    /// Kind of the object that asked (BackupPlan, VirusScanSchedule, MonitoringPolicy,
    /// PatchBaseline, or Server for an annotation).
    pub kind: String,
    /// Its name.
    pub name: String,
    /// The field that asked, e.g. `spec.repositories.primary.location`.
    pub field: String,
    /// The rule of the host policy that refused it, e.g. `backup.repositories`.
    pub rule: String,
    /// Why, in a sentence.
    pub message: String,
}

/// The agent's answer to a request made by annotation.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequestResult {
    /// The annotation, e.g. `unyo.dev/restore`.
    pub annotation: String,
    /// The annotation's value the answer is for.
    pub value: String,
    /// Running, Succeeded, Failed or Refused.
    pub result: RequestState,
    /// What was done, or why not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When the answer was written.
    pub at: Time,
}

/// How a request ended.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum RequestState {
    /// Taken, not finished.
    Running,
    /// Done.
    Succeeded,
    /// Tried and failed.
    Failed,
    /// Refused by the host policy or malformed; nothing was done.
    Refused,
    /// The agent stopped while it ran; not run again (ask again with a new value).
    Interrupted,
}

//! The unyo.dev API: the custom resource types of every kind, their validation, and the logic both
//! sides of the API must agree on.
//!
//! Every kind is namespaced, in group `unyo.dev`, version `v1alpha1`, category `unyo`.

// Several `printcolumn(...)` entries in one `#[kube(...)]` attribute repeat keys such as `type_`,
// which clippy's duplicated_attributes lint mistakes for a repeated attribute.
#![allow(clippy::duplicated_attributes)]

pub mod backup;
pub mod calendar;
pub mod change;
#[cfg(feature = "client")]
pub mod client;
pub mod common;
pub mod compact;
pub mod crdgen;
pub mod cron;
pub mod drift;
pub mod exposition;
pub mod holidays;
pub mod incident;
pub mod limits;
pub mod monitoring;
pub mod names;
pub mod patch;
pub mod patching;
pub mod selection;
pub mod server;
pub mod virusscan;
pub mod workcalendar;

pub use backup::{BackupPlan, BackupPlanSpec, BackupPlanStatus};
pub use calendar::{OperationCalendar, OperationCalendarSpec, OperationCalendarStatus};
pub use change::{ChangeRecord, ChangeRecordSpec, ChangeRecordStatus};
pub use common::{GROUP, Schedule, VERSION};
pub use incident::{Incident, IncidentSpec, IncidentStatus};
pub use monitoring::{MonitoringPolicy, MonitoringPolicySpec, MonitoringPolicyStatus};
pub use patch::{PatchBaseline, PatchBaselineSpec, PatchBaselineStatus};
pub use server::{Server, ServerSpec, ServerStatus};
pub use virusscan::{VirusScanSchedule, VirusScanScheduleSpec, VirusScanScheduleStatus};

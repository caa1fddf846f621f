//! `OperationCalendar`: the union's working calendar (requirement R14) that every schedule names.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::*;

/// A working calendar: time zone, national holidays, closures, business hours and named windows.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "unyo.dev",
    version = "v1alpha1",
    kind = "OperationCalendar",
    namespaced,
    status = "OperationCalendarStatus",
    shortname = "opcal",
    category = "unyo",
    doc = "A working calendar: time zone, Japanese national holidays, closures, business hours and named windows.",
    printcolumn(
        name = "TimeZone",
        type_ = "string",
        json_path = ".spec.timeZone",
        description = "Time zone of the calendar"
    ),
    printcolumn(
        name = "State",
        type_ = "string",
        json_path = ".status.state",
        description = "BusinessHours, AfterHours or Closed now"
    ),
    printcolumn(
        name = "Next",
        type_ = "string",
        json_path = ".status.nextTransition",
        description = "When the state next changes"
    ),
    printcolumn(
        name = "NextBusinessDay",
        type_ = "string",
        json_path = ".status.nextBusinessDay",
        priority = "1",
        description = "The next business day"
    ),
    printcolumn(
        name = "Report Due",
        type_ = "string",
        json_path = ".status.monthlyReport.dueDate",
        priority = "1",
        description = "Due date of the monthly report due this month"
    ),
    printcolumn(
        name = "Report Written",
        type_ = "string",
        json_path = ".status.monthlyReport.writtenAt",
        priority = "1",
        description = "When the monthly report due this month was recorded as written"
    ),
    printcolumn(
        name = "Other Zones",
        type_ = "integer",
        json_path = ".status.hostsInOtherZonesCount",
        description = "Servers of the namespace whose clock is set to another time zone"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct OperationCalendarSpec {
    /// IANA time zone every time of this calendar is read in, e.g. `Asia/Tokyo`.
    #[serde(default = "default_time_zone")]
    #[schemars(
        length(min = 1, max = 64),
        pattern(r"^[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+)*$")
    )]
    pub time_zone: String,
    /// Which national holidays are days off: Japan (国民の祝日, built in) or None.
    #[serde(default)]
    pub national_holidays: HolidaySet,
    /// Officially published dates of the vernal and autumnal equinox days, overriding the
    /// astronomical approximation for the listed years.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 200), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["year"]))]
    pub equinox_overrides: Vec<EquinoxOverride>,
    /// Recurring and one-off closures, e.g. the year-end closure 12-29..01-03.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub closures: Vec<Closure>,
    /// Extra days off for this union (e.g. a prefectural holiday).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 500), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["date"]))]
    pub extra_holidays: Vec<ExtraHoliday>,
    /// Dates that are business days even though a rule would make them days off, `YYYY-MM-DD`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 500), inner(length(max = 10), pattern(DATE_PATTERN)), extend("x-kubernetes-list-type" = "set"))]
    pub extra_workdays: Vec<String>,
    /// Online business hours on business days (業務時間), e.g. Monday–Friday 08:00–19:00.
    pub business_hours: BusinessHours,
    /// Named windows, e.g. `hardware-work` 09:00–19:00 on business days or `after-hours`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub windows: Vec<NamedWindow>,
}

fn default_time_zone() -> String {
    "Asia/Tokyo".to_string()
}

/// A set of national holidays.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum HolidaySet {
    #[default]
    Japan,
    None,
}

/// Published equinox days of one year.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.vernal) || has(self.autumnal)").message("set vernal, autumnal or both").reason(Reason::FieldValueRequired))]
pub struct EquinoxOverride {
    /// The year.
    #[schemars(range(min = 1948, max = 2150))]
    pub year: i32,
    /// Vernal equinox day (春分の日), `YYYY-MM-DD`, in March of that year.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 10), pattern(DATE_PATTERN))]
    pub vernal: Option<String>,
    /// Autumnal equinox day (秋分の日), `YYYY-MM-DD`, in September of that year.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 10), pattern(DATE_PATTERN))]
    pub autumnal: Option<String>,
}

/// A closure: a recurring range of month-days (`from`/`to`, may wrap the year end) or a one-off
/// range of dates (`startDate`/`endDate`), inclusive.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("(has(self.from) && has(self.to)) != (has(self.startDate) && has(self.endDate))").message("set either from and to (recurring) or startDate and endDate (one-off)").reason(Reason::FieldValueInvalid))]
#[x_kube(validation = Rule::new("has(self.from) == has(self.to) && has(self.startDate) == has(self.endDate)").message("from needs to, and startDate needs endDate").reason(Reason::FieldValueRequired))]
#[x_kube(validation = Rule::new("!has(self.startDate) || !has(self.endDate) || self.endDate >= self.startDate").message("endDate must not be before startDate").field_path(".endDate").reason(Reason::FieldValueInvalid))]
pub struct Closure {
    /// Name of the closure, e.g. `year-end`.
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// First day of a recurring closure, `MM-DD`, e.g. `12-29`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 5), pattern(MONTH_DAY_PATTERN))]
    pub from: Option<String>,
    /// Last day of a recurring closure, `MM-DD`, e.g. `01-03` (wraps into the next year).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 5), pattern(MONTH_DAY_PATTERN))]
    pub to: Option<String>,
    /// First day of a one-off closure, `YYYY-MM-DD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 10), pattern(DATE_PATTERN))]
    pub start_date: Option<String>,
    /// Last day of a one-off closure, `YYYY-MM-DD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 10), pattern(DATE_PATTERN))]
    pub end_date: Option<String>,
}

/// An extra day off.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExtraHoliday {
    /// The date, `YYYY-MM-DD`.
    #[schemars(length(max = 10), pattern(DATE_PATTERN))]
    pub date: String,
    /// Its name.
    #[schemars(length(min = 1, max = 128))]
    pub name: String,
}

/// Business hours on business days.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.end > self.start").message("businessHours.end must be after businessHours.start").field_path(".end").reason(Reason::FieldValueInvalid))]
pub struct BusinessHours {
    /// Weekdays that are business days unless a holiday or closure falls on them.
    #[serde(default = "default_weekdays")]
    #[schemars(length(min = 1, max = 7), extend("x-kubernetes-list-type" = "set"))]
    pub weekdays: Vec<Weekday>,
    /// Start of online hours, `HH:MM`, e.g. `08:00`.
    #[schemars(length(max = 5), pattern(TIME_OF_DAY_PATTERN))]
    pub start: String,
    /// End of online hours, `HH:MM` or `24:00`, after the start, e.g. `19:00`.
    #[schemars(length(max = 5), pattern(TIME_OF_DAY_END_PATTERN))]
    pub end: String,
}

fn default_weekdays() -> Vec<Weekday> {
    vec![
        Weekday::Monday,
        Weekday::Tuesday,
        Weekday::Wednesday,
        Weekday::Thursday,
        Weekday::Friday,
    ]
}

/// A named window of time that recurs on the days `days` selects. A window whose end is not after
/// its start runs past midnight into the next day.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.end != self.start").message("a window's end must differ from its start").field_path(".end").reason(Reason::FieldValueInvalid))]
pub struct NamedWindow {
    /// Name of the window, e.g. `hardware-work`.
    #[schemars(length(min = 1, max = 63), pattern(NAME_PATTERN))]
    pub name: String,
    /// Days the window opens on.
    #[serde(default)]
    pub days: DaySelector,
    /// Opening time, `HH:MM`.
    #[schemars(length(max = 5), pattern(TIME_OF_DAY_PATTERN))]
    pub start: String,
    /// Closing time, `HH:MM` or `24:00`.
    #[schemars(length(max = 5), pattern(TIME_OF_DAY_END_PATTERN))]
    pub end: String,
}

/// The calendar's state now, kept current by the controller.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct OperationCalendarStatus {
    /// BusinessHours, AfterHours (a business day outside online hours) or Closed (a day off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<CalendarState>,
    /// When the state next changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_transition: Option<Time>,
    /// The next business day, `YYYY-MM-DD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_business_day: Option<String>,
    /// The next five holidays and closure days.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = crate::limits::UPCOMING_HOLIDAYS))]
    pub upcoming_holidays: Vec<ExtraHoliday>,
    /// The monthly report due in this month (it covers the month before): its due date and
    /// whether `unyo report monthly --record` has recorded it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monthly_report: Option<MonthlyReportState>,
    /// Servers of the namespace whose host reports a time zone other than this calendar's
    /// (their local times — logs, the Windows task scheduler, cron — are not the calendar's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = crate::limits::LISTED_SERVERS))]
    pub hosts_in_other_zones: Vec<HostZone>,
    /// Number of those servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosts_in_other_zones_count: Option<u32>,
    /// The metadata.generation the controller last evaluated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready (false with a reason when the time zone or a rule cannot be used).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
}

/// A server whose host is set to another time zone than the calendar's.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct HostZone {
    /// The Server.
    #[schemars(length(max = 253))]
    pub server: String,
    /// The zone its host reports (an IANA name, or the Windows name where none is known).
    #[schemars(length(max = 128))]
    pub time_zone: String,
}

/// The monthly operations report (⑦) due in the current month.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct MonthlyReportState {
    /// The month the report covers, `YYYY-MM`.
    pub month: String,
    /// Its due date, `YYYY-MM-DD`: the 7th business day after that month.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_date: Option<String>,
    /// When it was recorded as written (the record ConfigMap's `writtenAt`); absent until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub written_at: Option<String>,
}

/// State of a calendar at an instant.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum CalendarState {
    BusinessHours,
    AfterHours,
    Closed,
}

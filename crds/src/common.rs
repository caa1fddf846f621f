//! Types shared by several kinds: schedules, conditions, selectors, severities and the small
//! string formats (durations, times of day, dates) every kind uses.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::KubeSchema;
pub use kube::core::{Reason, Rule};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The API group of every unyo kind.
pub const GROUP: &str = "unyo.dev";
/// The API version of every unyo kind.
pub const VERSION: &str = "v1alpha1";
/// The kubectl category all unyo kinds belong to (`kubectl get unyo`).
pub const CATEGORY: &str = "unyo";

/// Pattern of a duration: one or more `<number><unit>` with unit ms, s, m, h or d (e.g. `90s`, `1h30m`, `7d`).
pub const DURATION_PATTERN: &str = r"^([0-9]+(ms|s|m|h|d))+$";
/// Pattern of a time of day, 24-hour clock, `HH:MM` (00:00–23:59).
pub const TIME_OF_DAY_PATTERN: &str = r"^([01][0-9]|2[0-3]):[0-5][0-9]$";
/// Pattern of the end of a time range: `HH:MM` or `24:00` for the end of the day.
pub const TIME_OF_DAY_END_PATTERN: &str = r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$";
/// Pattern of a calendar date, `YYYY-MM-DD`, with a day that exists in its month (February
/// 29 is admitted in every year; the calendar rejects it in a common year with Ready=False).
pub const DATE_PATTERN: &str =
    r"^[0-9]{4}-((0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-9])|(0[13-9]|1[0-2])-30|(0[13578]|1[02])-31)$";
/// Pattern of a recurring month-day, `MM-DD`, with a day that exists in its month (02-29
/// applies in leap years).
pub const MONTH_DAY_PATTERN: &str =
    r"^((0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-9])|(0[13-9]|1[0-2])-30|(0[13578]|1[02])-31)$";
/// Pattern of a five-field cron expression (minute hour day-of-month month day-of-week).
pub const CRON_PATTERN: &str = r"^\s*\S+(\s+\S+){4}\s*$";
/// Pattern of a Kubernetes object name (RFC 1123 subdomain).
pub const NAME_PATTERN: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
/// Pattern of a MAC address, six colon-separated hex pairs.
pub const MAC_PATTERN: &str = r"^([0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}$";

/// When an operation runs, evaluated in the time zone of the named OperationCalendar.
///
/// Exactly one of `at` and `cron` is set. `days` narrows the days: `at: "19:30"` with
/// `days: BusinessDays` fires at 19:30 on every business day of the calendar.
///
/// (The field is `days`, not `on`: YAML 1.1 parsers such as kubectl's read an unquoted `on:` key
/// as the boolean `true`.)
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.at) != has(self.cron)").message("exactly one of at or cron must be set").reason(Reason::FieldValueInvalid))]
pub struct Schedule {
    /// Name of the OperationCalendar (same namespace) whose time zone, holidays and closures apply.
    #[schemars(length(min = 1, max = 253), pattern(NAME_PATTERN))]
    pub calendar: String,
    /// Time of day to fire, `HH:MM` in the calendar's time zone (e.g. `19:30`). Exclusive with `cron`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 5), pattern(TIME_OF_DAY_PATTERN))]
    pub at: Option<String>,
    /// Five-field cron expression (minute hour day-of-month month day-of-week) in the calendar's
    /// time zone, further narrowed by `days`. Exclusive with `at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128), pattern(CRON_PATTERN))]
    pub cron: Option<String>,
    /// Which days the schedule may fire on: AllDays, BusinessDays, NonBusinessDays,
    /// FirstBusinessDayOfWeek, LastBusinessDayOfWeek, FirstBusinessDayOfMonth or LastBusinessDayOfMonth.
    #[serde(default)]
    pub days: DaySelector,
    /// For an operation an agent runs: what becomes of a run that falls due while it cannot
    /// start (its previous run or another on the same repository is still going, or the agent
    /// was stopped) — RunOnce (default: it runs once, as soon as it can) or Skip (it is
    /// reported as skipped, with the reason).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missed_runs: Option<MissedRuns>,
}

/// What becomes of a run that falls due while it cannot start.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum MissedRuns {
    /// It runs once, as soon as it can (several missed due times make one run).
    #[default]
    RunOnce,
    /// It does not run late; each is reported as skipped.
    Skip,
}

/// Which days of the calendar a schedule fires on.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum DaySelector {
    #[default]
    AllDays,
    BusinessDays,
    NonBusinessDays,
    FirstBusinessDayOfWeek,
    LastBusinessDayOfWeek,
    FirstBusinessDayOfMonth,
    LastBusinessDayOfMonth,
}

/// A maintenance window: it opens at each fire time of `schedule` and stays open for `duration`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct MaintenanceWindow {
    /// When the window opens.
    pub schedule: Schedule,
    /// How long the window stays open, e.g. `3h`.
    #[schemars(length(max = 32), pattern(DURATION_PATTERN))]
    pub duration: String,
}

/// Serde default for boolean fields that are on unless switched off.
pub fn default_true() -> bool {
    true
}

/// Severity of a check result or of an Incident.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema,
)]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

/// Day of the week.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum Weekday {
    Monday,
    Tuesday,
    Wednesday,
    Thursday,
    Friday,
    Saturday,
    Sunday,
}

/// Production or staging (検証環境).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum Environment {
    #[default]
    Production,
    Staging,
}

/// Schema of a `conditions` list: standard metav1.Condition entries, merged by `type` under
/// server-side apply so that several field managers can each own their own conditions.
pub fn conditions_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let mut schema = <Vec<Condition>>::json_schema(generator);
    schema.insert("x-kubernetes-list-type".into(), "map".into());
    schema.insert(
        "x-kubernetes-list-map-keys".into(),
        serde_json::json!(["type"]),
    );
    schema.insert("maxItems".into(), crate::limits::CONDITIONS.into());
    schema.insert(
        "description".into(),
        "Current state of the object, one entry per condition type (type, status, reason, message, lastTransitionTime, observedGeneration)."
            .into(),
    );
    schema
}

/// A duration of the form of [`DURATION_PATTERN`] for time arithmetic, when it reads as one
/// and fits (`None` otherwise: the caller's default applies).
pub fn signed_duration(text: &str) -> Option<jiff::SignedDuration> {
    parse_duration(text)
        .ok()
        .and_then(|d| jiff::SignedDuration::try_from(d).ok())
}

/// Reads a duration of the form of [`DURATION_PATTERN`] (`90s`, `1h30m`, `7d`, `500ms`).
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let bad = || format!("{text:?} is not a duration such as 90s, 1h30m or 7d");
    let mut total = std::time::Duration::ZERO;
    let mut rest = text;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let (unit_ms, len) = if rest.starts_with("ms") {
            (1, 2)
        } else {
            match rest.bytes().next() {
                Some(b's') => (1_000, 1),
                Some(b'm') => (60_000, 1),
                Some(b'h') => (3_600_000, 1),
                Some(b'd') => (86_400_000, 1),
                _ => return Err(bad()),
            }
        };
        rest = &rest[len..];
        let ms = n.checked_mul(unit_ms).ok_or_else(bad)?;
        total = total
            .checked_add(std::time::Duration::from_millis(ms))
            .ok_or_else(bad)?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86400)));
        assert_eq!(parse_duration("1m500ms"), Ok(Duration::from_millis(60_500)));
        for bad in ["", "5", "m", "5x", "-1s", "1.5s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}

//! ⑦ 運用・保守管理業務報告書(月次): the monthly operations report, computed from the records of one
//! namespace and their timestamps, and from Prometheus for the operating statistics.

mod changes;
pub(crate) mod incidents;
mod layout;
mod ops;

use std::collections::BTreeMap;

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde::Serialize;
use unyo_crds::backup::BackupPlan;
use unyo_crds::calendar::OperationCalendar;
use unyo_crds::change::ChangeRecord;
use unyo_crds::incident::Incident;
use unyo_crds::monitoring::MonitoringPolicy;
use unyo_crds::patch::PatchBaseline;
use unyo_crds::server::Server;
use unyo_crds::virusscan::VirusScanSchedule;
use unyo_crds::workcalendar::WorkCalendar;

pub use changes::{Changes, PlannedChange};
pub use incidents::{Availability, IncidentRow, Incidents, Monitoring, Problem};
pub use layout::document;
pub use ops::{Backups, Maintenance, Patches, Virus};

use crate::Error;
use crate::stats::Statistics;

/// The zone reports use when the namespace has no OperationCalendar.
pub const DEFAULT_TIME_ZONE: &str = "Asia/Tokyo";

/// Everything a month's report is computed from (read once from the API server).
#[derive(Default)]
pub struct Inputs {
    pub namespace: String,
    pub calendar: Option<OperationCalendar>,
    pub servers: Vec<Server>,
    pub incidents: Vec<Incident>,
    pub changes: Vec<ChangeRecord>,
    pub baselines: Vec<PatchBaseline>,
    pub plans: Vec<BackupPlan>,
    pub scans: Vec<VirusScanSchedule>,
    pub policies: Vec<MonitoringPolicy>,
    /// The operating statistics, or why there are none.
    pub statistics: Statistics,
}

/// One calendar month in the report's zone.
#[derive(Clone, Debug)]
pub struct Period {
    pub year: i16,
    pub month: i8,
    pub start: Timestamp,
    pub end: Timestamp,
    pub tz: TimeZone,
    first: Date,
}

impl Period {
    /// The month `YYYY-MM` in `tz`.
    pub fn parse(month: &str, tz: TimeZone) -> Result<Period, Error> {
        let bad = || Error::Period(format!("--month: {month:?} is not a month such as 2026-11"));
        let (y, m) = month.split_once('-').ok_or_else(bad)?;
        let (year, month): (i16, i8) =
            (y.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
        let first = Date::new(year, month, 1).map_err(|_| bad())?;
        let next = first
            .checked_add(jiff::Span::new().months(1))
            .map_err(|_| bad())?;
        let start = first.to_zoned(tz.clone()).map_err(|_| bad())?.timestamp();
        let end = next.to_zoned(tz.clone()).map_err(|_| bad())?.timestamp();
        Ok(Period {
            year,
            month,
            start,
            end,
            tz,
            first,
        })
    }

    /// `2026-11`.
    pub fn label(&self) -> String {
        unyo_crds::workcalendar::month_label(self.year, self.month)
    }

    /// Every day of the month, in order.
    pub fn days(&self) -> impl Iterator<Item = Date> + '_ {
        self.first
            .series(jiff::Span::new().days(1))
            .take_while(|d| d.month() == self.month)
    }

    /// Seconds of [a, b) that fall in this month.
    pub fn overlap(&self, a: Timestamp, b: Timestamp) -> i64 {
        overlap((a, b), (self.start, self.end))
    }

    /// Whether `t` falls in this month.
    pub fn contains(&self, t: Timestamp) -> bool {
        self.start <= t && t < self.end
    }
}

/// Seconds two half-open intervals share.
pub fn overlap(a: (Timestamp, Timestamp), b: (Timestamp, Timestamp)) -> i64 {
    let from = a.0.max(b.0);
    let to = a.1.min(b.1);
    if to > from {
        to.as_second().saturating_sub(from.as_second())
    } else {
        0
    }
}

/// The month's report, as `--format json` prints it.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MonthlyReport {
    pub namespace: String,
    pub month: String,
    pub generated_at: String,
    pub summary: Summary,
    pub monitoring: Monitoring,
    pub incidents: Incidents,
    pub problems: Vec<Problem>,
    pub changes: Changes,
    pub patches: Patches,
    pub backups: Backups,
    pub virus: Virus,
    pub statistics: Statistics,
    pub maintenance: Maintenance,
}

/// The period, the fleet and the due date.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// First and last instant of the month, in the report's zone.
    pub period_start: String,
    pub period_end: String,
    pub time_zone: String,
    /// The OperationCalendar used (business days, business hours, due date).
    pub calendar: Option<String>,
    pub servers: u32,
    pub servers_by_environment: BTreeMap<String, u32>,
    pub servers_by_role: BTreeMap<String, u32>,
    pub business_days: Option<u32>,
    /// The 7th business day after the month's end.
    pub due_date: Option<String>,
}

/// Builds the report of `month` (`YYYY-MM`) at `now`.
pub fn build(inputs: &Inputs, month: &str, now: Timestamp) -> Result<MonthlyReport, Error> {
    let cal = inputs
        .calendar
        .as_ref()
        .map(|c| WorkCalendar::from_spec(&c.spec))
        .transpose()?;
    let period = Period::parse(month, zone_of(cal.as_ref())?)?;
    let summary = summary(inputs, &period, cal.as_ref())?;
    let patches = ops::patches(&inputs.baselines, &inputs.servers, &period);
    let maintenance = ops::maintenance(&patches, &inputs.changes, &period);
    let incidents = incidents::incidents(
        &inputs.incidents,
        &inputs.servers,
        &period,
        cal.as_ref(),
        now,
    )?;
    Ok(MonthlyReport {
        namespace: inputs.namespace.clone(),
        month: period.label(),
        generated_at: crate::time::local(now, &period.tz),
        summary,
        monitoring: incidents::monitoring(
            &inputs.policies,
            &inputs.servers,
            &inputs.incidents,
            &period,
            now,
        ),
        incidents,
        problems: incidents::problems(&inputs.incidents),
        changes: changes::changes(&inputs.changes, &period),
        patches,
        backups: ops::backups(&inputs.servers, &period, now),
        virus: ops::virus(&inputs.scans, &inputs.servers, &period, now),
        statistics: inputs.statistics.clone(),
        maintenance,
    })
}

/// The zone of a namespace's OperationCalendar, or [`DEFAULT_TIME_ZONE`] without one.
pub fn zone(calendar: Option<&OperationCalendar>) -> Result<TimeZone, Error> {
    let cal = calendar
        .map(|c| WorkCalendar::from_spec(&c.spec))
        .transpose()?;
    zone_of(cal.as_ref())
}

fn zone_of(cal: Option<&WorkCalendar>) -> Result<TimeZone, Error> {
    match cal {
        Some(c) => Ok(c.time_zone().clone()),
        None => TimeZone::get(DEFAULT_TIME_ZONE).map_err(|e| Error::Period(e.to_string())),
    }
}

fn summary(inputs: &Inputs, p: &Period, cal: Option<&WorkCalendar>) -> Result<Summary, Error> {
    let mut by_env = BTreeMap::new();
    let mut by_role = BTreeMap::new();
    for s in &inputs.servers {
        *by_env
            .entry(format!("{:?}", s.spec.environment))
            .or_insert(0) += 1;
        *by_role.entry(format!("{:?}", s.spec.role)).or_insert(0) += 1;
    }
    let (business_days, due_date) = match cal {
        Some(cal) => {
            let due = cal.monthly_report_due(p.year, p.month)?;
            (Some(business_days(cal, p)?), due.map(|d| d.to_string()))
        }
        None => (None, None),
    };
    Ok(Summary {
        period_start: crate::time::local(p.start, &p.tz),
        period_end: crate::time::local(p.end, &p.tz),
        time_zone: p.tz.iana_name().unwrap_or("UTC").to_string(),
        calendar: inputs
            .calendar
            .as_ref()
            .and_then(|c| c.metadata.name.clone()),
        servers: u32::try_from(inputs.servers.len()).unwrap_or(u32::MAX),
        servers_by_environment: by_env,
        servers_by_role: by_role,
        business_days,
        due_date,
    })
}

/// The number of business days in the month.
fn business_days(cal: &WorkCalendar, p: &Period) -> Result<u32, Error> {
    let mut n = 0;
    for d in p.days() {
        n += u32::from(cal.is_business_day(d)?);
    }
    Ok(n)
}

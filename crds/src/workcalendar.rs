//! An OperationCalendar made usable: business days, business hours, named windows, the
//! calendar's state at an instant and the fire times of schedules, all in the calendar's time
//! zone. The controller (status), the agent (when to run operations) and the CLI share it.
//!
//! A date is a business day when its weekday is one of `businessHours.weekdays` and it is
//! neither a national holiday (with `nationalHolidays: Japan`), nor in a closure, nor an extra
//! holiday — unless it is listed in `extraWorkdays`, which overrides every other rule.
//! Weeks run Monday to Sunday (ISO 8601) for the `…OfWeek` day selectors.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::sync::OnceLock;

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};

use crate::calendar::{CalendarState, HolidaySet, OperationCalendarSpec};
use crate::common::{DaySelector, Schedule, Weekday};
use crate::cron::Cron;
use crate::holidays::{self, EquinoxOverrides, FIRST_YEAR, Holiday, LAST_YEAR, YearOutOfRange};

/// How far ahead (in days) the calendar looks for a state change, a business day or a window.
const SEARCH_DAYS: i32 = 2 * 366;
/// A schedule that has not fired for this many days is taken to never fire again.
const MAX_IDLE_DAYS: u32 = 8 * 366;
/// Minutes in a day: the value of the end time `24:00`.
const END_OF_DAY: u16 = 24 * 60;
/// The monthly report is due on this business day after the month (spec 2.8 ⑦).
pub const REPORT_DUE_BUSINESS_DAYS: u32 = 7;

/// The month before the one `date` falls in, as (year, month): the month whose report falls due
/// in `date`'s month.
pub fn month_before(date: Date) -> (i16, i8) {
    if date.month() == 1 {
        (date.year() - 1, 12)
    } else {
        (date.year(), date.month() - 1)
    }
}

/// A month as `YYYY-MM`.
pub fn month_label(year: i16, month: i8) -> String {
    format!("{year:04}-{month:02}")
}

/// An OperationCalendar (or a schedule against it) cannot be used.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum CalendarError {
    /// The time zone is not in the IANA database.
    #[error("spec.timeZone: unknown time zone {name:?} ({reason})")]
    UnknownTimeZone {
        /// The name given.
        name: String,
        /// Why the database refused it.
        reason: String,
    },
    /// A field holds a value the rules cannot use.
    #[error("{field}: {reason}")]
    InvalidField {
        /// Path of the field, e.g. `spec.closures[0].from`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A date outside the years the holiday engine covers.
    #[error(transparent)]
    OutOfRange(#[from] YearOutOfRange),
    /// Date arithmetic left the range of representable dates.
    #[error("date out of range: {0}")]
    DateRange(String),
}

impl CalendarError {
    /// A CamelCase reason for a condition.
    pub fn reason(&self) -> &'static str {
        match self {
            CalendarError::UnknownTimeZone { .. } => crate::names::reasons::UNKNOWN_TIME_ZONE,
            CalendarError::InvalidField { .. } => crate::names::reasons::INVALID_SPEC,
            CalendarError::OutOfRange(_) | CalendarError::DateRange(_) => {
                crate::names::reasons::OUT_OF_RANGE
            }
        }
    }

    fn field(field: impl Into<String>, reason: impl Into<String>) -> Self {
        CalendarError::InvalidField {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl From<jiff::Error> for CalendarError {
    fn from(e: jiff::Error) -> Self {
        CalendarError::DateRange(e.to_string())
    }
}

/// Why a date is not a business day.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DayOff {
    /// Its weekday is not one of the business weekdays.
    Weekday(jiff::civil::Weekday),
    /// A national holiday.
    NationalHoliday(Holiday),
    /// Inside a closure.
    Closure(String),
    /// Listed in `extraHolidays`.
    ExtraHoliday(String),
}

impl DayOff {
    /// A short name of the day off (the holiday or closure name), None for a weekday.
    pub fn name(&self) -> Option<String> {
        match self {
            DayOff::Weekday(_) => None,
            DayOff::NationalHoliday(h) => Some(h.name.to_string()),
            DayOff::Closure(n) | DayOff::ExtraHoliday(n) => Some(n.clone()),
        }
    }
}

impl fmt::Display for DayOff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DayOff::Weekday(w) => write!(f, "{w:?} is not a business weekday"),
            DayOff::NationalHoliday(h) => {
                write!(f, "national holiday {} ({})", h.name, h.name_en)
            }
            DayOff::Closure(n) => write!(f, "closure {n}"),
            DayOff::ExtraHoliday(n) => write!(f, "extra holiday {n}"),
        }
    }
}

/// What the calendar says about one date.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DayInfo {
    /// The date.
    pub date: Date,
    /// Whether it is a business day.
    pub business: bool,
    /// Every rule that makes it a day off (kept even when `extraWorkdays` overrides them).
    pub reasons: Vec<DayOff>,
    /// Listed in `extraWorkdays`.
    pub extra_workday: bool,
}

#[derive(Clone, Debug)]
enum ClosureRange {
    Recurring { from: (i8, i8), to: (i8, i8) },
    OneOff { start: Date, end: Date },
}

#[derive(Clone, Debug)]
struct ClosureRule {
    name: String,
    range: ClosureRange,
}

impl ClosureRule {
    fn contains(&self, d: Date) -> bool {
        match self.range {
            ClosureRange::OneOff { start, end } => start <= d && d <= end,
            ClosureRange::Recurring { from, to } => {
                let md = (d.month(), d.day());
                if from <= to {
                    from <= md && md <= to
                } else {
                    md >= from || md <= to
                }
            }
        }
    }
}

#[derive(Clone, Debug)]
struct WindowRule {
    name: String,
    days: DaySelector,
    start: u16,
    end: u16,
}

#[derive(Clone, Debug)]
struct NationalHolidays {
    overrides: EquinoxOverrides,
    years: Vec<OnceLock<Vec<Holiday>>>,
}

impl NationalHolidays {
    fn on(&self, d: Date) -> Result<Option<&Holiday>, YearOutOfRange> {
        let year = d.year();
        let Some(slot) = usize::try_from(year - FIRST_YEAR)
            .ok()
            .and_then(|i| self.years.get(i))
        else {
            return Err(YearOutOfRange { year });
        };
        let list = match slot.get() {
            Some(list) => list,
            None => {
                let computed = holidays::holidays_with(year, &self.overrides)?;
                slot.get_or_init(|| computed)
            }
        };
        Ok(list
            .binary_search_by_key(&d, |h| h.date)
            .ok()
            .and_then(|i| list.get(i)))
    }
}

/// An OperationCalendar, checked and ready to answer questions.
#[derive(Clone, Debug)]
pub struct WorkCalendar {
    tz: TimeZone,
    national: Option<NationalHolidays>,
    closures: Vec<ClosureRule>,
    extra_holidays: BTreeMap<Date, String>,
    extra_workdays: BTreeSet<Date>,
    weekdays: [bool; 7],
    hours: (u16, u16),
    windows: Vec<WindowRule>,
}

/// A schedule, checked and ready to produce fire times.
#[derive(Clone, Debug)]
pub struct CompiledSchedule {
    /// Which days it may fire on.
    pub days: DaySelector,
    times: Times,
}

#[derive(Clone, Debug)]
enum Times {
    At(Time),
    Cron(Cron),
}

/// The calendar's state at an instant, as the OperationCalendar status shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    /// BusinessHours, AfterHours or Closed.
    pub state: CalendarState,
    /// When the state next changes (None when it never does within two years).
    pub next_transition: Option<Zoned>,
    /// The first business day after today.
    pub next_business_day: Option<Date>,
    /// The next five holidays and closure days from today on, with their names.
    pub upcoming: Vec<(Date, String)>,
    /// Local midnight after the instant: today's answers change then at the latest.
    pub next_midnight: Zoned,
}

fn parse_date(field: &str, s: &str) -> Result<Date, CalendarError> {
    let shaped = s.len() == 10
        && s.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    if !shaped {
        return Err(CalendarError::field(
            field,
            format!("{s:?} is not a date of the form YYYY-MM-DD"),
        ));
    }
    s.parse::<Date>()
        .map_err(|e| CalendarError::field(field, format!("{s:?} is not a valid date ({e})")))
}

fn parse_month_day(field: &str, s: &str) -> Result<(i8, i8), CalendarError> {
    let bad = || CalendarError::field(field, format!("{s:?} is not a day of the year (MM-DD)"));
    let (m, d) = s.split_once('-').ok_or_else(bad)?;
    let (m, d): (i8, i8) = (m.parse().map_err(|_| bad())?, d.parse().map_err(|_| bad())?);
    // 02-29 is allowed: it applies in leap years.
    Date::new(2000, m, d).map_err(|_| bad())?;
    Ok((m, d))
}

/// Minutes after midnight of `HH:MM` (or `24:00` when `end_of_day` is allowed).
fn parse_hhmm(field: &str, s: &str, end_of_day: bool) -> Result<u16, CalendarError> {
    let bad = || {
        CalendarError::field(
            field,
            format!(
                "{s:?} is not a time of day (HH:MM, 00:00–23:59{})",
                if end_of_day { " or 24:00" } else { "" }
            ),
        )
    };
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let (h, m): (u16, u16) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    match (h, m) {
        (24, 0) if end_of_day => Ok(END_OF_DAY),
        (0..=23, 0..=59) => Ok(h * 60 + m),
        _ => Err(bad()),
    }
}

fn weekday_index(w: Weekday) -> usize {
    match w {
        Weekday::Monday => 0,
        Weekday::Tuesday => 1,
        Weekday::Wednesday => 2,
        Weekday::Thursday => 3,
        Weekday::Friday => 4,
        Weekday::Saturday => 5,
        Weekday::Sunday => 6,
    }
}

/// The civil date-time `minutes` after the start of `date` (1440 is the next midnight).
fn at_minutes(date: Date, minutes: u16) -> Result<DateTime, CalendarError> {
    if minutes >= END_OF_DAY {
        return Ok(date.tomorrow()?.to_datetime(Time::midnight()));
    }
    let (h, m) = ((minutes / 60) as i8, (minutes % 60) as i8);
    Ok(date.to_datetime(Time::new(h, m, 0, 0)?))
}

fn add_days(date: Date, days: i32) -> Result<Date, CalendarError> {
    Ok(date.checked_add(jiff::Span::new().try_days(days)?)?)
}

/// The calendar named by `schedule` among `calendars` (of `namespace`) and the compiled
/// schedule, when both can be used.
pub fn schedule_on(
    calendars: &[crate::OperationCalendar],
    namespace: Option<&str>,
    schedule: &Schedule,
    field: &str,
) -> Option<(WorkCalendar, CompiledSchedule)> {
    let cal = calendars.iter().find(|c| {
        c.metadata.name.as_deref() == Some(schedule.calendar.as_str())
            && c.metadata.namespace.as_deref() == namespace
    })?;
    let work = WorkCalendar::from_spec(&cal.spec).ok()?;
    let compiled = compile_schedule(schedule, field).ok()?;
    Some((work, compiled))
}

/// Checks a schedule's `at`/`cron`; `field` is the path of the schedule for error messages.
pub fn compile_schedule(s: &Schedule, field: &str) -> Result<CompiledSchedule, CalendarError> {
    let times = match (&s.at, &s.cron) {
        (Some(at), None) => {
            let m = parse_hhmm(&format!("{field}.at"), at, false)?;
            Times::At(Time::new((m / 60) as i8, (m % 60) as i8, 0, 0)?)
        }
        (None, Some(cron)) => Times::Cron(
            cron.parse()
                .map_err(|e| CalendarError::field(format!("{field}.cron"), format!("{e}")))?,
        ),
        (Some(_), Some(_)) => {
            return Err(CalendarError::field(
                field,
                "set exactly one of at and cron, not both",
            ));
        }
        (None, None) => {
            return Err(CalendarError::field(
                field,
                "set exactly one of at and cron",
            ));
        }
    };
    Ok(CompiledSchedule {
        days: s.days,
        times,
    })
}

impl WorkCalendar {
    /// Checks an OperationCalendar spec; every error names the field and the reason.
    pub fn from_spec(spec: &OperationCalendarSpec) -> Result<Self, CalendarError> {
        let tz = TimeZone::get(&spec.time_zone).map_err(|e| CalendarError::UnknownTimeZone {
            name: spec.time_zone.clone(),
            reason: e.to_string(),
        })?;

        let mut overrides = EquinoxOverrides::default();
        for (i, o) in spec.equinox_overrides.iter().enumerate() {
            for (key, value, month) in [("vernal", &o.vernal, 3), ("autumnal", &o.autumnal, 9)] {
                let Some(value) = value else { continue };
                let field = format!("spec.equinoxOverrides[{i}].{key}");
                let d = parse_date(&field, value)?;
                if i32::from(d.year()) != o.year || d.month() != month {
                    return Err(CalendarError::field(
                        field,
                        format!(
                            "{value} must be in {} {}",
                            if month == 3 { "March" } else { "September" },
                            o.year
                        ),
                    ));
                }
                if month == 3 {
                    overrides.set_vernal(d);
                } else {
                    overrides.set_autumnal(d);
                }
            }
        }
        let national = match spec.national_holidays {
            HolidaySet::Japan => Some(NationalHolidays {
                overrides,
                years: (FIRST_YEAR..=LAST_YEAR).map(|_| OnceLock::new()).collect(),
            }),
            HolidaySet::None => None,
        };

        let mut closures = Vec::new();
        for (i, c) in spec.closures.iter().enumerate() {
            let field = |k: &str| format!("spec.closures[{i}].{k}");
            let range = match (&c.from, &c.to, &c.start_date, &c.end_date) {
                (Some(from), Some(to), None, None) => ClosureRange::Recurring {
                    from: parse_month_day(&field("from"), from)?,
                    to: parse_month_day(&field("to"), to)?,
                },
                (None, None, Some(start), Some(end)) => {
                    let start = parse_date(&field("startDate"), start)?;
                    let end = parse_date(&field("endDate"), end)?;
                    if end < start {
                        return Err(CalendarError::field(
                            field("endDate"),
                            format!("{end} is before startDate {start}"),
                        ));
                    }
                    ClosureRange::OneOff { start, end }
                }
                _ => {
                    return Err(CalendarError::field(
                        format!("spec.closures[{i}]"),
                        "set either from and to (recurring) or startDate and endDate (one-off)",
                    ));
                }
            };
            closures.push(ClosureRule {
                name: c.name.clone(),
                range,
            });
        }

        let mut extra_holidays = BTreeMap::new();
        for (i, h) in spec.extra_holidays.iter().enumerate() {
            let d = parse_date(&format!("spec.extraHolidays[{i}].date"), &h.date)?;
            extra_holidays.insert(d, h.name.clone());
        }
        let mut extra_workdays = BTreeSet::new();
        for (i, s) in spec.extra_workdays.iter().enumerate() {
            extra_workdays.insert(parse_date(&format!("spec.extraWorkdays[{i}]"), s)?);
        }

        let bh = &spec.business_hours;
        if bh.weekdays.is_empty() {
            return Err(CalendarError::field(
                "spec.businessHours.weekdays",
                "name at least one weekday",
            ));
        }
        let mut weekdays = [false; 7];
        for w in &bh.weekdays {
            weekdays[weekday_index(*w)] = true;
        }
        let start = parse_hhmm("spec.businessHours.start", &bh.start, false)?;
        let end = parse_hhmm("spec.businessHours.end", &bh.end, true)?;
        if end <= start {
            return Err(CalendarError::field(
                "spec.businessHours.end",
                format!("{} must be after start {}", bh.end, bh.start),
            ));
        }

        let mut windows = Vec::new();
        for (i, w) in spec.windows.iter().enumerate() {
            let ws = parse_hhmm(&format!("spec.windows[{i}].start"), &w.start, false)?;
            let we = parse_hhmm(&format!("spec.windows[{i}].end"), &w.end, true)?;
            if ws == we % END_OF_DAY {
                return Err(CalendarError::field(
                    format!("spec.windows[{i}].end"),
                    "a window's end must differ from its start",
                ));
            }
            windows.push(WindowRule {
                name: w.name.clone(),
                days: w.days,
                start: ws,
                end: we,
            });
        }

        Ok(WorkCalendar {
            tz,
            national,
            closures,
            extra_holidays,
            extra_workdays,
            weekdays,
            hours: (start, end),
            windows,
        })
    }

    /// The calendar's time zone.
    pub fn time_zone(&self) -> &TimeZone {
        &self.tz
    }

    /// The zoned instant of a civil date-time in the calendar's zone (a time skipped by a DST
    /// jump moves forward by the jump; a repeated time takes its first occurrence).
    pub fn zoned(&self, dt: DateTime) -> Result<Zoned, CalendarError> {
        Ok(dt.to_zoned(self.tz.clone())?)
    }

    /// The local date of an instant.
    pub fn local_date(&self, t: Timestamp) -> Date {
        t.to_zoned(self.tz.clone()).date()
    }

    /// Everything the calendar says about `date`.
    pub fn day(&self, date: Date) -> Result<DayInfo, CalendarError> {
        let mut reasons = Vec::new();
        let weekday = date.weekday();
        if !self.weekdays[weekday.to_monday_zero_offset() as usize] {
            reasons.push(DayOff::Weekday(weekday));
        }
        if let Some(national) = &self.national
            && let Some(h) = national.on(date)?
        {
            reasons.push(DayOff::NationalHoliday(h.clone()));
        }
        for c in self.closures.iter().filter(|c| c.contains(date)) {
            reasons.push(DayOff::Closure(c.name.clone()));
        }
        if let Some(name) = self.extra_holidays.get(&date) {
            reasons.push(DayOff::ExtraHoliday(name.clone()));
        }
        let extra_workday = self.extra_workdays.contains(&date);
        Ok(DayInfo {
            date,
            business: extra_workday || reasons.is_empty(),
            reasons,
            extra_workday,
        })
    }

    /// Whether `date` is a business day.
    pub fn is_business_day(&self, date: Date) -> Result<bool, CalendarError> {
        Ok(self.day(date)?.business)
    }

    /// The first business day after `date`.
    pub fn next_business_day(&self, date: Date) -> Result<Option<Date>, CalendarError> {
        let mut d = date;
        for _ in 0..SEARCH_DAYS {
            d = d.tomorrow()?;
            if self.is_business_day(d)? {
                return Ok(Some(d));
            }
        }
        Ok(None)
    }

    /// The `n`th business day after `date` (`n` = 1 is the next business day), e.g. the due
    /// date of the monthly report: the 7th business day after the month's last day.
    pub fn nth_business_day_after(
        &self,
        date: Date,
        n: u32,
    ) -> Result<Option<Date>, CalendarError> {
        let mut d = date;
        for _ in 0..n {
            match self.next_business_day(d)? {
                Some(next) => d = next,
                None => return Ok(None),
            }
        }
        Ok(Some(d))
    }

    /// The due date of the monthly report of `year`-`month`: the [`REPORT_DUE_BUSINESS_DAYS`]th
    /// business day after the month's last day (spec 2.8 ⑦).
    pub fn monthly_report_due(&self, year: i16, month: i8) -> Result<Option<Date>, CalendarError> {
        let first = Date::new(year, month, 1)?;
        let last = first.last_of_month();
        self.nth_business_day_after(last, REPORT_DUE_BUSINESS_DAYS)
    }

    /// The business hours of `date` as instants (start, end), or None on a day off.
    pub fn business_hours_on(
        &self,
        date: Date,
    ) -> Result<Option<(Timestamp, Timestamp)>, CalendarError> {
        if !self.is_business_day(date)? || self.hours.0 >= self.hours.1 {
            return Ok(None);
        }
        let start = self.zoned(at_minutes(date, self.hours.0)?)?.timestamp();
        let end = self.zoned(at_minutes(date, self.hours.1)?)?.timestamp();
        Ok(Some((start, end)))
    }

    /// The calendar's state at `t`.
    pub fn state_at(&self, t: Timestamp) -> Result<CalendarState, CalendarError> {
        let local = t.to_zoned(self.tz.clone());
        if !self.is_business_day(local.date())? {
            return Ok(CalendarState::Closed);
        }
        let time = local.time();
        let minutes = time.hour() as u16 * 60 + time.minute() as u16;
        Ok(if self.hours.0 <= minutes && minutes < self.hours.1 {
            CalendarState::BusinessHours
        } else {
            CalendarState::AfterHours
        })
    }

    /// The first instant after `t` at which the state differs from the state at `t`.
    pub fn next_transition(&self, t: Timestamp) -> Result<Option<Zoned>, CalendarError> {
        let now = self.state_at(t)?;
        let mut day = self.local_date(t);
        for _ in 0..SEARCH_DAYS {
            for minutes in [0, self.hours.0, self.hours.1] {
                if minutes >= END_OF_DAY {
                    continue;
                }
                let z = self.zoned(at_minutes(day, minutes)?)?;
                if z.timestamp() > t && self.state_at(z.timestamp())? != now {
                    return Ok(Some(z));
                }
            }
            day = day.tomorrow()?;
        }
        Ok(None)
    }

    /// The next `count` days off from `from` on (national holidays, closures and extra
    /// holidays; plain weekends are left out), each with its names joined by " / ".
    pub fn days_off(&self, from: Date, count: usize) -> Result<Vec<(Date, String)>, CalendarError> {
        let mut out = Vec::new();
        let mut d = from;
        for _ in 0..SEARCH_DAYS {
            if out.len() >= count {
                break;
            }
            let info = self.day(d)?;
            let names: Vec<String> = info.reasons.iter().filter_map(DayOff::name).collect();
            if !info.business && !names.is_empty() {
                out.push((d, names.join(" / ")));
            }
            d = d.tomorrow()?;
        }
        Ok(out)
    }

    /// Whether schedules with day selector `sel` may fire on `date`.
    pub fn day_matches(&self, sel: DaySelector, date: Date) -> Result<bool, CalendarError> {
        let business = |d: Date| self.is_business_day(d);
        let none_between = |from: Date, to: Date| -> Result<bool, CalendarError> {
            // No business day in from..=to (an empty range when from > to).
            let mut d = from;
            while d <= to {
                if business(d)? {
                    return Ok(false);
                }
                d = d.tomorrow()?;
            }
            Ok(true)
        };
        Ok(match sel {
            DaySelector::AllDays => true,
            DaySelector::BusinessDays => business(date)?,
            DaySelector::NonBusinessDays => !business(date)?,
            DaySelector::FirstBusinessDayOfWeek => {
                let monday = add_days(date, -i32::from(date.weekday().to_monday_zero_offset()))?;
                business(date)? && none_between(monday, date.yesterday()?)?
            }
            DaySelector::LastBusinessDayOfWeek => {
                let sunday = add_days(date, 6 - i32::from(date.weekday().to_monday_zero_offset()))?;
                business(date)? && none_between(date.tomorrow()?, sunday)?
            }
            DaySelector::FirstBusinessDayOfMonth => {
                business(date)? && none_between(date.first_of_month(), date.yesterday()?)?
            }
            DaySelector::LastBusinessDayOfMonth => {
                business(date)? && none_between(date.tomorrow()?, date.last_of_month())?
            }
        })
    }

    fn window(&self, name: &str) -> Result<&WindowRule, CalendarError> {
        self.windows.iter().find(|w| w.name == name).ok_or_else(|| {
            let known: Vec<&str> = self.windows.iter().map(|w| w.name.as_str()).collect();
            CalendarError::field(
                "window",
                format!(
                    "the calendar has no window {name:?} (it has: {})",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            )
        })
    }

    /// Opening and closing instants of window `w` on `day`, if it opens that day.
    fn window_on(
        &self,
        w: &WindowRule,
        day: Date,
    ) -> Result<Option<(Zoned, Zoned)>, CalendarError> {
        if !self.day_matches(w.days, day)? {
            return Ok(None);
        }
        let open = self.zoned(at_minutes(day, w.start)?)?;
        let close_day = if w.end > w.start {
            day
        } else {
            day.tomorrow()?
        };
        let close = self.zoned(at_minutes(close_day, w.end)?)?;
        Ok(Some((open, close)))
    }

    /// Whether `t` is inside the named window.
    pub fn in_window(&self, name: &str, t: Timestamp) -> Result<bool, CalendarError> {
        Ok(self.open_window(name, t)?.is_some())
    }

    /// The opening and closing instants of the named window if `t` is inside it.
    pub fn open_window(
        &self,
        name: &str,
        t: Timestamp,
    ) -> Result<Option<(Zoned, Zoned)>, CalendarError> {
        let w = self.window(name)?;
        let today = self.local_date(t);
        for day in [today.yesterday()?, today] {
            if let Some((open, close)) = self.window_on(w, day)?
                && open.timestamp() <= t
                && t < close.timestamp()
            {
                return Ok(Some((open, close)));
            }
        }
        Ok(None)
    }

    /// The next opening of the named window after `t`, with its closing instant.
    pub fn next_window(
        &self,
        name: &str,
        t: Timestamp,
    ) -> Result<Option<(Zoned, Zoned)>, CalendarError> {
        let w = self.window(name)?;
        let mut day = self.local_date(t);
        for _ in 0..SEARCH_DAYS {
            if let Some((open, close)) = self.window_on(w, day)?
                && open.timestamp() > t
            {
                return Ok(Some((open, close)));
            }
            day = day.tomorrow()?;
        }
        Ok(None)
    }

    /// The fire times of `schedule` strictly after `after`, in increasing order.
    pub fn fire_times<'a>(
        &'a self,
        schedule: &'a CompiledSchedule,
        after: Timestamp,
    ) -> FireTimes<'a> {
        FireTimes {
            calendar: self,
            schedule,
            day: self.local_date(after),
            last: after,
            pending: VecDeque::new(),
            idle_days: 0,
            done: false,
        }
    }

    /// The last fire time of `schedule` at or before `before`, looking back `lookback`.
    pub fn last_fire_time(
        &self,
        schedule: &CompiledSchedule,
        before: Timestamp,
        lookback: jiff::SignedDuration,
    ) -> Option<Timestamp> {
        self.fire_times(schedule, crate::patching::earlier(before, lookback))
            .map_while(Result::ok)
            .map(|z| z.timestamp())
            .take_while(|t| *t <= before)
            .last()
    }

    /// The first fire time of `schedule` after `after`.
    pub fn next_fire_time(
        &self,
        schedule: &CompiledSchedule,
        after: Timestamp,
    ) -> Option<Timestamp> {
        self.fire_times(schedule, after)
            .next()
            .and_then(Result::ok)
            .map(|z| z.timestamp())
    }

    /// State, next transition, next business day and upcoming days off at `now`.
    pub fn snapshot(&self, now: Timestamp) -> Result<Snapshot, CalendarError> {
        let today = self.local_date(now);
        Ok(Snapshot {
            state: self.state_at(now)?,
            next_transition: self.next_transition(now)?,
            next_business_day: self.next_business_day(today)?,
            upcoming: self.days_off(today, 5)?,
            next_midnight: self.zoned(today.tomorrow()?.to_datetime(Time::midnight()))?,
        })
    }
}

/// The fire times of a schedule, in strictly increasing order. Ends when the schedule has not
/// fired for eight years; yields one error and ends when the calendar cannot answer (e.g.
/// national holidays after 2099).
#[derive(Debug)]
pub struct FireTimes<'a> {
    calendar: &'a WorkCalendar,
    schedule: &'a CompiledSchedule,
    day: Date,
    last: Timestamp,
    pending: VecDeque<Zoned>,
    idle_days: u32,
    done: bool,
}

impl FireTimes<'_> {
    fn fires_on(&self, day: Date) -> Result<Vec<Zoned>, CalendarError> {
        let times: Vec<Time> = match &self.schedule.times {
            Times::At(t) => vec![*t],
            Times::Cron(c) if c.matches_date(day) => c.times().collect(),
            Times::Cron(_) => return Ok(Vec::new()),
        };
        if times.is_empty() || !self.calendar.day_matches(self.schedule.days, day)? {
            return Ok(Vec::new());
        }
        let mut out = Vec::with_capacity(times.len());
        for t in times {
            let z = self.calendar.zoned(day.to_datetime(t))?;
            if z.timestamp() > self.last {
                out.push(z);
            }
        }
        // A DST gap can move a time past a later one; keep the order strict.
        out.sort_by_key(|z| z.timestamp());
        out.dedup_by_key(|z| z.timestamp());
        Ok(out)
    }
}

impl Iterator for FireTimes<'_> {
    type Item = Result<Zoned, CalendarError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.done {
                return None;
            }
            if let Some(z) = self.pending.pop_front() {
                self.last = z.timestamp();
                return Some(Ok(z));
            }
            if self.idle_days > MAX_IDLE_DAYS {
                self.done = true;
                return None;
            }
            let day = self.day;
            let step = self.fires_on(day).and_then(|f| Ok((f, day.tomorrow()?)));
            match step {
                Ok((fires, next)) => {
                    self.idle_days = if fires.is_empty() {
                        self.idle_days + 1
                    } else {
                        0
                    };
                    self.pending.extend(fires);
                    self.day = next;
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::{BusinessHours, Closure, EquinoxOverride, ExtraHoliday, NamedWindow};

    fn mie() -> OperationCalendarSpec {
        OperationCalendarSpec {
            time_zone: "Asia/Tokyo".into(),
            national_holidays: HolidaySet::Japan,
            equinox_overrides: vec![],
            closures: vec![Closure {
                name: "year-end".into(),
                from: Some("12-29".into()),
                to: Some("01-03".into()),
                start_date: None,
                end_date: None,
            }],
            extra_holidays: vec![],
            extra_workdays: vec![],
            business_hours: BusinessHours {
                weekdays: vec![
                    Weekday::Monday,
                    Weekday::Tuesday,
                    Weekday::Wednesday,
                    Weekday::Thursday,
                    Weekday::Friday,
                ],
                start: "08:00".into(),
                end: "19:00".into(),
            },
            windows: vec![
                NamedWindow {
                    name: "hardware-work".into(),
                    days: DaySelector::BusinessDays,
                    start: "09:00".into(),
                    end: "19:00".into(),
                },
                NamedWindow {
                    name: "night".into(),
                    days: DaySelector::AllDays,
                    start: "22:00".into(),
                    end: "06:00".into(),
                },
            ],
        }
    }

    fn cal() -> WorkCalendar {
        WorkCalendar::from_spec(&mie()).unwrap()
    }

    fn d(s: &str) -> Date {
        s.parse().unwrap()
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn schedule(at: Option<&str>, cron: Option<&str>, days: DaySelector) -> CompiledSchedule {
        compile_schedule(
            &Schedule {
                calendar: "mie".into(),
                at: at.map(String::from),
                cron: cron.map(String::from),
                days,
                missed_runs: None,
            },
            "spec.schedule",
        )
        .unwrap()
    }

    fn fires(c: &WorkCalendar, s: &CompiledSchedule, from: &str, n: usize) -> Vec<String> {
        c.fire_times(s, ts(from))
            .take(n)
            .map(|z| z.unwrap().strftime("%F %a %H:%M%:z").to_string())
            .collect()
    }

    #[test]
    fn business_days_and_their_reasons() {
        let c = cal();
        assert!(c.is_business_day(d("2026-11-24")).unwrap());
        let info = c.day(d("2026-11-23")).unwrap();
        assert!(!info.business);
        assert_eq!(info.reasons.len(), 1);
        assert!(info.reasons[0].to_string().contains("勤労感謝の日"));
        let info = c.day(d("2026-11-28")).unwrap();
        assert_eq!(
            info.reasons,
            vec![DayOff::Weekday(jiff::civil::Weekday::Saturday)]
        );
        // Year-end closure across the year boundary, and a holiday inside it.
        for day in ["2026-12-29", "2026-12-31", "2027-01-01", "2027-01-03"] {
            assert!(!c.is_business_day(d(day)).unwrap(), "{day}");
        }
        let jan1 = c.day(d("2027-01-01")).unwrap();
        assert_eq!(jan1.reasons.len(), 2, "{:?}", jan1.reasons);
        assert!(c.is_business_day(d("2026-12-28")).unwrap());
        assert!(c.is_business_day(d("2027-01-04")).unwrap());
    }

    #[test]
    fn extra_holidays_and_workdays() {
        let mut spec = mie();
        spec.extra_holidays.push(ExtraHoliday {
            date: "2026-11-25".into(),
            name: "県民の日".into(),
        });
        spec.extra_workdays.push("2026-12-29".into());
        spec.closures.push(Closure {
            name: "move".into(),
            from: None,
            to: None,
            start_date: Some("2026-11-26".into()),
            end_date: Some("2026-11-27".into()),
        });
        let c = WorkCalendar::from_spec(&spec).unwrap();
        assert!(!c.is_business_day(d("2026-11-25")).unwrap());
        assert!(!c.is_business_day(d("2026-11-26")).unwrap());
        assert!(!c.is_business_day(d("2026-11-27")).unwrap());
        let info = c.day(d("2026-12-29")).unwrap();
        assert!(info.business && info.extra_workday && !info.reasons.is_empty());
        assert_eq!(
            c.next_business_day(d("2026-11-24")).unwrap(),
            Some(d("2026-11-30"))
        );
        let off = c.days_off(d("2026-11-24"), 5).unwrap();
        let names: Vec<&str> = off.iter().map(|(_, n)| n.as_str()).collect();
        // 2026-12-29 is an extra workday, so the closure's days off start on the 30th.
        assert_eq!(
            names,
            ["県民の日", "move", "move", "year-end", "year-end"][..]
        );
        assert_eq!(off[3].0, d("2026-12-30"));
        let jan1 = c.days_off(d("2027-01-01"), 1).unwrap();
        assert_eq!(jan1, vec![(d("2027-01-01"), "元日 / year-end".to_string())]);
    }

    #[test]
    fn no_national_holidays() {
        let mut spec = mie();
        spec.national_holidays = HolidaySet::None;
        let c = WorkCalendar::from_spec(&spec).unwrap();
        assert!(c.is_business_day(d("2026-11-23")).unwrap());
        // Without national holidays the calendar works beyond 2099.
        assert!(c.is_business_day(d("2100-03-01")).unwrap());
        assert!(cal().is_business_day(d("2100-03-01")).is_err());
    }

    #[test]
    fn state_and_transitions() {
        let c = cal();
        // Tuesday 2026-11-24 in Tokyo (UTC+9).
        let cases = [
            (
                "2026-11-23T22:59:59Z",
                CalendarState::AfterHours,
                "2026-11-24T08:00:00+09:00",
            ),
            (
                "2026-11-23T23:00:00Z",
                CalendarState::BusinessHours,
                "2026-11-24T19:00:00+09:00",
            ),
            (
                "2026-11-24T09:59:59Z",
                CalendarState::BusinessHours,
                "2026-11-24T19:00:00+09:00",
            ),
            (
                "2026-11-24T10:00:00Z",
                CalendarState::AfterHours,
                "2026-11-25T08:00:00+09:00",
            ),
            // Friday evening → Saturday 00:00 closes.
            (
                "2026-11-27T11:00:00Z",
                CalendarState::AfterHours,
                "2026-11-28T00:00:00+09:00",
            ),
            // Saturday → Monday 00:00 is after hours.
            (
                "2026-11-28T03:00:00Z",
                CalendarState::Closed,
                "2026-11-30T00:00:00+09:00",
            ),
            // Monday 2026-11-23 (holiday).
            (
                "2026-11-23T03:00:00Z",
                CalendarState::Closed,
                "2026-11-24T00:00:00+09:00",
            ),
            // Year-end closure: closed until Monday 2027-01-04.
            (
                "2026-12-28T12:00:00Z",
                CalendarState::AfterHours,
                "2026-12-29T00:00:00+09:00",
            ),
            (
                "2026-12-28T16:00:00Z",
                CalendarState::Closed,
                "2027-01-04T00:00:00+09:00",
            ),
        ];
        for (t, state, next) in cases {
            assert_eq!(c.state_at(ts(t)).unwrap(), state, "{t}");
            let n = c.next_transition(ts(t)).unwrap().unwrap();
            assert_eq!(n.timestamp(), ts(next), "{t}");
        }
    }

    #[test]
    fn windows_including_overnight() {
        let c = cal();
        assert!(
            c.in_window("hardware-work", ts("2026-11-24T00:00:00Z"))
                .unwrap()
        ); // 09:00 JST
        assert!(
            !c.in_window("hardware-work", ts("2026-11-23T23:30:00Z"))
                .unwrap()
        ); // 08:30
        assert!(
            !c.in_window("hardware-work", ts("2026-11-23T03:00:00Z"))
                .unwrap()
        ); // holiday
        // 23:00 and 05:00 JST are inside the night window; the 05:00 one opened the day before.
        let (open, close) = c
            .open_window("night", ts("2026-11-24T20:00:00Z"))
            .unwrap()
            .unwrap();
        assert_eq!(open.timestamp(), ts("2026-11-24T13:00:00Z"));
        assert_eq!(close.timestamp(), ts("2026-11-24T21:00:00Z"));
        assert!(c.in_window("night", ts("2026-11-24T14:00:00Z")).unwrap());
        assert!(!c.in_window("night", ts("2026-11-24T03:00:00Z")).unwrap());
        // Next hardware-work window after Friday evening: Monday 09:00.
        let (open, _) = c
            .next_window("hardware-work", ts("2026-11-27T11:00:00Z"))
            .unwrap()
            .unwrap();
        assert_eq!(open.timestamp(), ts("2026-11-30T00:00:00Z"));
        let err = c.in_window("nope", ts("2026-11-24T00:00:00Z")).unwrap_err();
        assert!(err.to_string().contains("hardware-work, night"), "{err}");
    }

    #[test]
    fn business_day_schedule_skips_holidays_and_closures() {
        let c = cal();
        let s = schedule(Some("19:30"), None, DaySelector::BusinessDays);
        assert_eq!(
            fires(&c, &s, "2026-11-20T10:30:00Z", 4),
            [
                "2026-11-24 Tue 19:30+09:00",
                "2026-11-25 Wed 19:30+09:00",
                "2026-11-26 Thu 19:30+09:00",
                "2026-11-27 Fri 19:30+09:00",
            ]
        );
        // From the last business day before the year-end closure.
        assert_eq!(
            fires(&c, &s, "2026-12-28T00:00:00Z", 2),
            ["2026-12-28 Mon 19:30+09:00", "2027-01-04 Mon 19:30+09:00"]
        );
    }

    #[test]
    fn first_and_last_business_days() {
        let c = cal();
        let weekly = schedule(Some("19:30"), None, DaySelector::FirstBusinessDayOfWeek);
        // Week of 2026-11-23: Monday is a holiday, so Tuesday. The week of 2026-12-28 starts on
        // its Monday, the only business day before the closure.
        assert_eq!(
            fires(&c, &weekly, "2026-11-22T00:00:00Z", 1),
            ["2026-11-24 Tue 19:30+09:00"]
        );
        assert_eq!(
            fires(&c, &weekly, "2026-12-25T00:00:00Z", 2),
            ["2026-12-28 Mon 19:30+09:00", "2027-01-04 Mon 19:30+09:00"]
        );
        // In 2025/26 the closure takes the whole week of 2025-12-29: no fire that week.
        assert_eq!(
            fires(&c, &weekly, "2025-12-23T00:00:00Z", 2),
            ["2026-01-05 Mon 19:30+09:00", "2026-01-13 Tue 19:30+09:00"]
        );
        let last_week = schedule(Some("18:00"), None, DaySelector::LastBusinessDayOfWeek);
        assert_eq!(
            fires(&c, &last_week, "2026-12-20T00:00:00Z", 2),
            ["2026-12-25 Fri 18:00+09:00", "2026-12-28 Mon 18:00+09:00"]
        );
        let monthly = schedule(Some("07:00"), None, DaySelector::FirstBusinessDayOfMonth);
        assert_eq!(
            fires(&c, &monthly, "2026-12-15T00:00:00Z", 2),
            ["2027-01-04 Mon 07:00+09:00", "2027-02-01 Mon 07:00+09:00"]
        );
        let last_month = schedule(Some("07:00"), None, DaySelector::LastBusinessDayOfMonth);
        assert_eq!(
            fires(&c, &last_month, "2026-12-01T00:00:00Z", 1),
            ["2026-12-28 Mon 07:00+09:00"]
        );
        let off = schedule(Some("03:00"), None, DaySelector::NonBusinessDays);
        assert_eq!(
            fires(&c, &off, "2026-11-20T00:00:00Z", 3),
            [
                "2026-11-21 Sat 03:00+09:00",
                "2026-11-22 Sun 03:00+09:00",
                "2026-11-23 Mon 03:00+09:00",
            ]
        );
    }

    #[test]
    fn cron_schedules_are_narrowed_by_days() {
        let c = cal();
        let s = schedule(None, Some("0 9,21 * * *"), DaySelector::BusinessDays);
        assert_eq!(
            fires(&c, &s, "2026-11-22T00:00:00Z", 3),
            [
                "2026-11-24 Tue 09:00+09:00",
                "2026-11-24 Tue 21:00+09:00",
                "2026-11-25 Wed 09:00+09:00",
            ]
        );
        // A cron that never matches ends instead of looping.
        let never = schedule(None, Some("0 0 30 2 *"), DaySelector::AllDays);
        assert_eq!(fires(&c, &never, "2026-11-22T00:00:00Z", 1).len(), 0);
    }

    #[test]
    fn dst_gaps_keep_fire_times_strictly_increasing() {
        let mut spec = mie();
        spec.time_zone = "America/New_York".into();
        spec.national_holidays = HolidaySet::None;
        let c = WorkCalendar::from_spec(&spec).unwrap();
        // 2026-03-08 02:00 does not exist in New York; 02:30 moves to 03:30.
        let s = schedule(None, Some("30 1-3 8 3 *"), DaySelector::AllDays);
        let got = fires(&c, &s, "2026-03-08T00:00:00Z", 2);
        assert_eq!(
            got,
            ["2026-03-08 Sun 01:30-05:00", "2026-03-08 Sun 03:30-04:00"]
        );
    }

    #[test]
    fn past_2099_is_an_error_not_a_hang() {
        let c = cal();
        let s = schedule(Some("19:30"), None, DaySelector::BusinessDays);
        let mut it = c.fire_times(&s, ts("2099-12-30T00:00:00Z"));
        // 2099-12-30/31 fall in the closure; the first day of 2100 is out of range.
        let first = it.next().unwrap();
        assert!(
            matches!(first, Err(CalendarError::OutOfRange(_))),
            "{first:?}"
        );
        assert!(it.next().is_none());
    }

    #[test]
    fn bad_specs_name_the_field() {
        type Breakage = fn(&mut OperationCalendarSpec);
        let cases: Vec<(Breakage, &str)> = vec![
            (
                (|s| s.time_zone = "Mars/Olympus".into()),
                "spec.timeZone: unknown time zone \"Mars/Olympus\"",
            ),
            (
                (|s| s.closures[0].from = Some("02-30".into())),
                "spec.closures[0].from: \"02-30\" is not a day of the year",
            ),
            (
                (|s| s.closures[0].to = None),
                "spec.closures[0]: set either from and to",
            ),
            (
                (|s| {
                    s.closures[0] = Closure {
                        name: "x".into(),
                        from: None,
                        to: None,
                        start_date: Some("2026-05-02".into()),
                        end_date: Some("2026-05-01".into()),
                    }
                }),
                "spec.closures[0].endDate: 2026-05-01 is before startDate 2026-05-02",
            ),
            (
                (|s| s.extra_workdays.push("2026-02-30".into())),
                "spec.extraWorkdays[0]: \"2026-02-30\" is not a valid date",
            ),
            (
                (|s| s.business_hours.end = "07:00".into()),
                "spec.businessHours.end: 07:00 must be after start 08:00",
            ),
            (
                (|s| s.business_hours.start = "8:00".into()),
                "spec.businessHours.start: \"8:00\" is not a time of day",
            ),
            (
                (|s| s.business_hours.weekdays.clear()),
                "spec.businessHours.weekdays",
            ),
            (
                (|s| {
                    s.equinox_overrides.push(EquinoxOverride {
                        year: 2030,
                        vernal: Some("2030-09-23".into()),
                        autumnal: None,
                    })
                }),
                "spec.equinoxOverrides[0].vernal: 2030-09-23 must be in March 2030",
            ),
            (
                (|s| s.windows[1].end = "22:00".into()),
                "spec.windows[1].end: a window's end must differ",
            ),
        ];
        for (i, (breakage, want)) in cases.iter().enumerate() {
            let mut spec = mie();
            breakage(&mut spec);
            let err = WorkCalendar::from_spec(&spec).unwrap_err().to_string();
            assert!(err.contains(want), "case {i}: {err}");
        }
    }

    #[test]
    fn bad_schedules_name_the_field() {
        let s = |at: Option<&str>, cron: Option<&str>| Schedule {
            calendar: "mie".into(),
            at: at.map(String::from),
            cron: cron.map(String::from),
            days: DaySelector::AllDays,
            missed_runs: None,
        };
        let err = |sch: Schedule| {
            compile_schedule(&sch, "spec.rules[0].schedule")
                .unwrap_err()
                .to_string()
        };
        assert!(
            err(s(Some("19:30"), Some("* * * * *")))
                .contains("spec.rules[0].schedule: set exactly one of at and cron, not both")
        );
        assert!(
            err(s(None, None)).contains("spec.rules[0].schedule: set exactly one of at and cron")
        );
        assert!(err(s(Some("25:00"), None)).contains("spec.rules[0].schedule.at: \"25:00\""));
        assert!(
            err(s(None, Some("* * *")))
                .contains("spec.rules[0].schedule.cron: a cron expression has five fields")
        );
    }
}

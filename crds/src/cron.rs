//! Five-field cron expressions as Vixie cron and cronie read them: minute, hour, day of month,
//! month, day of week.
//!
//! Each field is `*`, a number, a range `a-b`, a step `*/n`, `a-b/n` or `a/n` (from `a` to the
//! field's end), or a comma list of those. Months and weekdays also take three-letter English
//! names (`JAN`, `MON`), in any case. In the day-of-week field 0 and 7 are Sunday. When both day
//! fields are restricted (neither starts with `*`), a day matching either fires, as in Vixie
//! cron; otherwise a day must match both.
//!
//! (The crates on crates.io that parse cron on jiff follow Quartz, with a seconds field and
//! Sunday = 1, which would silently shift every `1-5`; hence this small parser.)

use std::fmt;
use std::str::FromStr;

use jiff::civil::{Date, Time};

/// A cron expression could not be read.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum CronError {
    /// Not five fields.
    #[error(
        "a cron expression has five fields (minute hour day-of-month month day-of-week), found {0}"
    )]
    FieldCount(usize),
    /// One field is wrong.
    #[error("cron {field} field {value:?}: {reason}")]
    Field {
        /// minute, hour, day-of-month, month or day-of-week.
        field: &'static str,
        /// The text of the field.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// A set of values 0..64 of one field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Bits(u64);

impl Bits {
    fn contains(self, v: u8) -> bool {
        v < 64 && self.0 & (1u64 << v) != 0
    }
}

struct FieldSpec {
    name: &'static str,
    min: u8,
    max: u8,
    names: &'static [&'static str],
}

const MINUTE: FieldSpec = FieldSpec {
    name: "minute",
    min: 0,
    max: 59,
    names: &[],
};
const HOUR: FieldSpec = FieldSpec {
    name: "hour",
    min: 0,
    max: 23,
    names: &[],
};
const DAY_OF_MONTH: FieldSpec = FieldSpec {
    name: "day-of-month",
    min: 1,
    max: 31,
    names: &[],
};
const MONTH: FieldSpec = FieldSpec {
    name: "month",
    min: 1,
    max: 12,
    names: &[
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
    ],
};
const DAY_OF_WEEK: FieldSpec = FieldSpec {
    name: "day-of-week",
    min: 0,
    max: 7,
    names: &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
};

impl FieldSpec {
    fn error(&self, value: &str, reason: impl Into<String>) -> CronError {
        CronError::Field {
            field: self.name,
            value: value.to_string(),
            reason: reason.into(),
        }
    }

    fn value(&self, field: &str, text: &str) -> Result<u8, CronError> {
        let offset = if self.min == 1 { 1 } else { 0 };
        if let Some(i) = self.names.iter().position(|n| n.eq_ignore_ascii_case(text)) {
            // Names count from the field's minimum: JAN = 1, SUN = 0.
            return Ok(i as u8 + offset);
        }
        let v: u8 = text.parse().map_err(|_| {
            self.error(
                field,
                format!("{text:?} is not a number{}", self.names_hint()),
            )
        })?;
        if v < self.min || v > self.max {
            return Err(self.error(field, format!("{v} is outside {}–{}", self.min, self.max)));
        }
        Ok(v)
    }

    fn names_hint(&self) -> String {
        if self.names.is_empty() {
            String::new()
        } else {
            format!(" or a name ({})", self.names.join(", "))
        }
    }

    fn parse(&self, field: &str) -> Result<Bits, CronError> {
        let mut bits = 0u64;
        for part in field.split(',') {
            if part.is_empty() {
                return Err(self.error(field, "empty list item"));
            }
            let (range, step) = match part.split_once('/') {
                Some((r, s)) => {
                    let step: u8 = s
                        .parse()
                        .map_err(|_| self.error(field, format!("step {s:?} is not a number")))?;
                    if step == 0 {
                        return Err(self.error(field, "a step must be at least 1"));
                    }
                    (r, Some(step))
                }
                None => (part, None),
            };
            let (lo, hi) = if range == "*" {
                (self.min, self.max)
            } else if let Some((a, b)) = range.split_once('-') {
                let (a, b) = (self.value(field, a)?, self.value(field, b)?);
                if a > b {
                    return Err(self.error(field, format!("range {a}-{b} runs backwards")));
                }
                (a, b)
            } else {
                let a = self.value(field, range)?;
                // `a/n` runs from a to the end of the field.
                (a, if step.is_some() { self.max } else { a })
            };
            let step = step.unwrap_or(1);
            let mut v = lo;
            while v <= hi {
                bits |= 1u64 << v;
                match v.checked_add(step) {
                    Some(n) => v = n,
                    None => break,
                }
            }
        }
        Ok(Bits(bits))
    }
}

/// A parsed five-field cron expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cron {
    text: String,
    minutes: Bits,
    hours: Bits,
    days_of_month: Bits,
    months: Bits,
    days_of_week: Bits,
    dom_restricted: bool,
    dow_restricted: bool,
}

impl FromStr for Cron {
    type Err = CronError;

    fn from_str(s: &str) -> Result<Self, CronError> {
        let fields: Vec<&str> = s.split_whitespace().collect();
        let [minute, hour, dom, month, dow] = fields[..] else {
            return Err(CronError::FieldCount(fields.len()));
        };
        let mut days_of_week = DAY_OF_WEEK.parse(dow)?;
        if days_of_week.contains(7) {
            days_of_week.0 |= 1;
        }
        Ok(Cron {
            text: fields.join(" "),
            minutes: MINUTE.parse(minute)?,
            hours: HOUR.parse(hour)?,
            days_of_month: DAY_OF_MONTH.parse(dom)?,
            months: MONTH.parse(month)?,
            days_of_week,
            dom_restricted: !dom.starts_with('*'),
            dow_restricted: !dow.starts_with('*'),
        })
    }
}

impl fmt::Display for Cron {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Cron {
    /// Whether the expression fires on some minute of `date`.
    pub fn matches_date(&self, date: Date) -> bool {
        if !self.months.contains(date.month() as u8) {
            return false;
        }
        let dom = self.days_of_month.contains(date.day() as u8);
        let dow = self
            .days_of_week
            .contains(date.weekday().to_sunday_zero_offset() as u8);
        if self.dom_restricted && self.dow_restricted {
            dom || dow
        } else {
            dom && dow
        }
    }

    /// The times of day the expression fires at on a matching day, in order.
    pub fn times(&self) -> impl Iterator<Item = Time> + '_ {
        (0u8..24)
            .filter(|h| self.hours.contains(*h))
            .flat_map(move |h| {
                (0u8..60)
                    .filter(|m| self.minutes.contains(*m))
                    .map(move |m| Time::constant(h as i8, m as i8, 0, 0))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cron(s: &str) -> Cron {
        s.parse().unwrap()
    }

    fn day(s: &str) -> Date {
        s.parse().unwrap()
    }

    #[test]
    fn times_of_day_in_order() {
        let c = cron("30 19 * * *");
        assert_eq!(
            c.times().collect::<Vec<_>>(),
            vec![Time::constant(19, 30, 0, 0)]
        );
        let c = cron("*/20 8-9 * * *");
        let t: Vec<String> = c.times().map(|t| t.to_string()).collect();
        assert_eq!(
            t,
            [
                "08:00:00", "08:20:00", "08:40:00", "09:00:00", "09:20:00", "09:40:00"
            ]
        );
        assert_eq!(cron("0 0-23/6 * * *").times().count(), 4);
        assert_eq!(cron("15/15 1 * * *").times().count(), 3); // 15, 30, 45
        assert_eq!(cron("0,5,10 1 * * *").times().count(), 3);
    }

    #[test]
    fn weekday_numbers_and_names_follow_vixie_cron() {
        // 2026-11-23 is a Monday, 2026-11-29 a Sunday.
        let weekdays = cron("0 9 * * 1-5");
        assert!(weekdays.matches_date(day("2026-11-23")));
        assert!(!weekdays.matches_date(day("2026-11-29")));
        assert!(!weekdays.matches_date(day("2026-11-28")));
        for sunday in ["0", "7", "SUN", "sun"] {
            assert!(cron(&format!("0 9 * * {sunday}")).matches_date(day("2026-11-29")));
            assert!(!cron(&format!("0 9 * * {sunday}")).matches_date(day("2026-11-23")));
        }
        assert_eq!(cron("0 9 * * MON-FRI"), {
            let mut c = cron("0 9 * * 1-5");
            c.text = "0 9 * * MON-FRI".into();
            c
        });
        assert!(cron("0 9 * JAN,dec *").matches_date(day("2026-12-01")));
        assert!(!cron("0 9 * JAN,dec *").matches_date(day("2026-11-01")));
    }

    #[test]
    fn both_day_fields_restricted_means_either() {
        // The 1st of the month OR a Monday.
        let c = cron("0 0 1 * 1");
        assert!(c.matches_date(day("2026-12-01"))); // a Tuesday, the 1st
        assert!(c.matches_date(day("2026-11-23"))); // a Monday
        assert!(!c.matches_date(day("2026-11-24")));
        // With `*` in day-of-week only the day of month counts.
        let c = cron("0 0 1 * *");
        assert!(!c.matches_date(day("2026-11-23")));
        // `*/2` starts with `*`, so Vixie cron treats it as unrestricted: both must match.
        let c = cron("0 0 1 * */2");
        assert!(c.matches_date(day("2026-12-01"))); // the 1st, a Tuesday (2)
        assert!(!c.matches_date(day("2027-01-01"))); // the 1st, a Friday (5)
        assert!(!c.matches_date(day("2026-11-24"))); // a Tuesday, not the 1st
    }

    #[test]
    fn bad_expressions_name_the_field_and_reason() {
        let cases = [
            ("* * * *", "five fields"),
            ("60 * * * *", "minute field \"60\": 60 is outside 0–59"),
            ("* 24 * * *", "hour"),
            ("* * 0 * *", "day-of-month field \"0\": 0 is outside 1–31"),
            ("* * * 13 *", "month"),
            ("* * * * 8", "day-of-week"),
            ("*/0 * * * *", "a step must be at least 1"),
            ("5-1 * * * *", "runs backwards"),
            ("1,,2 * * * *", "empty list item"),
            ("* * * FOO *", "or a name (JAN"),
            ("x * * * *", "is not a number"),
        ];
        for (expr, want) in cases {
            let err = expr.parse::<Cron>().unwrap_err().to_string();
            assert!(err.contains(want), "{expr}: {err}");
        }
    }
}

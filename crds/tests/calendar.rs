//! Golden tables of Japanese national holidays and property tests of calendar evaluation.

// A test crate: a panic is how a failure is reported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use jiff::civil::{Date, Weekday as JWeekday};
use jiff::{Timestamp, ToSpan};
use proptest::prelude::*;
use unyo_crds::calendar::{
    BusinessHours, Closure, ExtraHoliday, HolidaySet, OperationCalendarSpec,
};
use unyo_crds::common::{DaySelector, Schedule, Weekday};
use unyo_crds::cron::Cron;
use unyo_crds::holidays::{self, HolidayKind};
use unyo_crds::workcalendar::{CalendarError, WorkCalendar, compile_schedule};

fn golden() -> BTreeMap<i16, Vec<(String, String)>> {
    let text = include_str!("golden/japan-holidays.tsv");
    let mut years: BTreeMap<i16, Vec<(String, String)>> = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (date, name) = line.split_once('\t').expect("date<TAB>name");
        let year: i16 = date[..4].parse().expect("year");
        years
            .entry(year)
            .or_default()
            .push((date.to_string(), name.to_string()));
    }
    years
}

#[test]
fn golden_years_match_exactly() {
    let golden = golden();
    assert!(golden.len() >= 10, "golden table lost years");
    for (year, want) in golden {
        let got: Vec<(String, String)> = holidays::holidays(year)
            .unwrap()
            .into_iter()
            .map(|h| (h.date.to_string(), h.name.to_string()))
            .collect();
        assert_eq!(got, want, "holidays of {year}");
    }
}

#[test]
fn holiday_rules_hold_in_every_year() {
    for year in holidays::FIRST_YEAR..=holidays::LAST_YEAR {
        let list = holidays::holidays(year).unwrap();
        let on = |d: Date| list.iter().find(|h| h.date == d);
        for h in &list {
            match h.kind {
                HolidayKind::Substitute => {
                    // Follows a run of holidays that began on a Sunday.
                    let mut d = h.date.yesterday().unwrap();
                    while on(d).is_some_and(|p| p.kind != HolidayKind::Substitute)
                        && d.weekday() != JWeekday::Sunday
                    {
                        d = d.yesterday().unwrap();
                    }
                    assert_eq!(d.weekday(), JWeekday::Sunday, "{}", h.date);
                    assert!(on(d).is_some(), "{}: Sunday {d} is no holiday", h.date);
                }
                HolidayKind::Citizens => {
                    let before = on(h.date.yesterday().unwrap()).unwrap();
                    let after = on(h.date.tomorrow().unwrap()).unwrap();
                    assert!(before.kind != HolidayKind::Citizens);
                    assert!(after.kind != HolidayKind::Citizens);
                }
                _ => {}
            }
            // From 1973-04-12 on, a national holiday on a Sunday has its substitute.
            if h.kind == HolidayKind::National
                && h.date.weekday() == JWeekday::Sunday
                && h.date >= Date::constant(1973, 4, 12)
            {
                let mut d = h.date.tomorrow().unwrap();
                while on(d).is_some_and(|n| n.kind == HolidayKind::National) {
                    d = d.tomorrow().unwrap();
                }
                let sub = on(d);
                assert!(
                    sub.is_some_and(|s| s.kind == HolidayKind::Substitute)
                        // Before 2007 only the next day could be a substitute.
                        || (year < 2007 && d != h.date.tomorrow().unwrap()),
                    "{}: no substitute",
                    h.date
                );
            }
        }
    }
}

/// The admission patterns admit exactly the days that exist (in a leap year), so what passes the
/// API server is what the calendar can read, except February 29 of a common year.
#[test]
fn date_patterns_admit_exactly_the_real_days() {
    let date = regex::Regex::new(unyo_crds::common::DATE_PATTERN).unwrap();
    let month_day = regex::Regex::new(unyo_crds::common::MONTH_DAY_PATTERN).unwrap();
    for m in 0..=13 {
        for d in 0..=32 {
            let real = Date::new(2024, m, d).is_ok();
            assert_eq!(
                date.is_match(&format!("2024-{m:02}-{d:02}")),
                real,
                "2024-{m:02}-{d:02}"
            );
            assert_eq!(
                month_day.is_match(&format!("{m:02}-{d:02}")),
                real,
                "{m:02}-{d:02}"
            );
        }
    }
    assert!(date.is_match("2026-02-29"));
    assert!(!date.is_match("2026-1-01") && !month_day.is_match("1-01"));
}

fn weekdays_from(mask: u8) -> Vec<Weekday> {
    use Weekday::*;
    [
        Monday, Tuesday, Wednesday, Thursday, Friday, Saturday, Sunday,
    ]
    .into_iter()
    .enumerate()
    .filter(|(i, _)| mask & (1 << i) != 0)
    .map(|(_, w)| w)
    .collect()
}

/// A calendar with the year-end closure, a random set of business weekdays, random one-off
/// closures, extra holidays and extra workdays around `base`.
fn calendar_strategy() -> impl Strategy<Value = (OperationCalendarSpec, Timestamp)> {
    (
        1u8..128,
        1960i16..2090,
        1i8..=12,
        1i8..=28,
        proptest::collection::vec((0i32..400, 0i32..10), 0..3),
        proptest::collection::vec(0i32..400, 0..4),
        proptest::collection::vec(0i32..400, 0..4),
        0u16..1440,
        any::<bool>(),
    )
        .prop_map(
            |(mask, year, month, day, closures, holidays, workdays, minute, japan)| {
                let base = Date::new(year, month, day).unwrap();
                let at = |off: i32| base.checked_add(off.days()).unwrap().to_string();
                let spec = OperationCalendarSpec {
                    time_zone: "Asia/Tokyo".into(),
                    national_holidays: if japan {
                        HolidaySet::Japan
                    } else {
                        HolidaySet::None
                    },
                    equinox_overrides: vec![],
                    closures: std::iter::once(Closure {
                        name: "year-end".into(),
                        from: Some("12-29".into()),
                        to: Some("01-03".into()),
                        start_date: None,
                        end_date: None,
                    })
                    .chain(closures.iter().enumerate().map(|(i, (off, len))| Closure {
                        name: format!("c{i}"),
                        from: None,
                        to: None,
                        start_date: Some(at(*off)),
                        end_date: Some(at(off + len)),
                    }))
                    .collect(),
                    extra_holidays: holidays
                        .iter()
                        .map(|off| ExtraHoliday {
                            date: at(*off),
                            name: "extra".into(),
                        })
                        .collect(),
                    extra_workdays: workdays.iter().map(|off| at(*off)).collect(),
                    business_hours: BusinessHours {
                        weekdays: weekdays_from(mask),
                        start: "08:00".into(),
                        end: "19:00".into(),
                    },
                    windows: vec![],
                };
                let start = base
                    .to_datetime(jiff::civil::Time::midnight())
                    .checked_add(i64::from(minute).minutes())
                    .unwrap()
                    .to_zoned(jiff::tz::TimeZone::get("Asia/Tokyo").unwrap())
                    .unwrap()
                    .timestamp();
                (spec, start)
            },
        )
}

fn selector() -> impl Strategy<Value = DaySelector> {
    prop_oneof![
        Just(DaySelector::AllDays),
        Just(DaySelector::BusinessDays),
        Just(DaySelector::NonBusinessDays),
        Just(DaySelector::FirstBusinessDayOfWeek),
        Just(DaySelector::LastBusinessDayOfWeek),
        Just(DaySelector::FirstBusinessDayOfMonth),
        Just(DaySelector::LastBusinessDayOfMonth),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Every fire time of an `at` + BusinessDays schedule is on a business day at `at`, they
    /// strictly increase, and no business day between two fire times is skipped.
    #[test]
    fn business_day_fires_cover_every_business_day((spec, start) in calendar_strategy(), h in 0i8..24, m in 0i8..60) {
        let cal = WorkCalendar::from_spec(&spec).unwrap();
        let at = format!("{h:02}:{m:02}");
        let s = compile_schedule(&Schedule { calendar: "c".into(), at: Some(at), cron: None, days: DaySelector::BusinessDays, missed_runs: None }, "schedule").unwrap();
        let fires: Vec<_> = cal.fire_times(&s, start).take(40).map(|z| z.unwrap()).collect();
        prop_assert!(!fires.is_empty());
        let mut prev: Option<Date> = None;
        let mut prev_ts = start;
        for z in &fires {
            prop_assert!(z.timestamp() > prev_ts);
            prev_ts = z.timestamp();
            prop_assert!(cal.is_business_day(z.date()).unwrap(), "{z} is not a business day");
            prop_assert_eq!((z.hour(), z.minute()), (h, m));
            let from = prev.map(|p| p.tomorrow().unwrap()).unwrap_or(cal.local_date(start).tomorrow().unwrap());
            let mut d = from;
            while d < z.date() {
                prop_assert!(!cal.is_business_day(d).unwrap(), "business day {d} skipped before {z}");
                d = d.tomorrow().unwrap();
            }
            prev = Some(z.date());
        }
    }

    /// Every selector's fire times fall on days the selector picks, in strictly increasing order.
    #[test]
    fn selector_fires_match_their_selector((spec, start) in calendar_strategy(), sel in selector()) {
        let cal = WorkCalendar::from_spec(&spec).unwrap();
        let s = compile_schedule(&Schedule { calendar: "c".into(), at: Some("19:30".into()), cron: None, days: sel, missed_runs: None }, "schedule").unwrap();
        let mut prev = start;
        for z in cal.fire_times(&s, start).take(12) {
            let z = z.unwrap();
            prop_assert!(z.timestamp() > prev);
            prev = z.timestamp();
            prop_assert!(cal.day_matches(sel, z.date()).unwrap());
            let business = cal.is_business_day(z.date()).unwrap();
            match sel {
                DaySelector::AllDays => {}
                DaySelector::NonBusinessDays => prop_assert!(!business),
                _ => prop_assert!(business),
            }
        }
    }

    /// The next business day is the first business day after the date, found by brute force;
    /// in particular across the year-end closure.
    #[test]
    fn next_business_day_is_the_first_one((spec, start) in calendar_strategy(), year_end in any::<bool>()) {
        let cal = WorkCalendar::from_spec(&spec).unwrap();
        let from = if year_end {
            Date::new(cal.local_date(start).year(), 12, 28).unwrap()
        } else {
            cal.local_date(start)
        };
        let got = cal.next_business_day(from).unwrap().unwrap();
        prop_assert!(got > from);
        prop_assert!(cal.is_business_day(got).unwrap());
        let mut d = from.tomorrow().unwrap();
        while d < got {
            prop_assert!(!cal.is_business_day(d).unwrap());
            d = d.tomorrow().unwrap();
        }
        // Inside the closure 12-29..01-03 only an extra workday can be the answer.
        let in_closure = (got.month() == 12 && got.day() >= 29) || (got.month() == 1 && got.day() <= 3);
        prop_assert!(!in_closure || spec.extra_workdays.contains(&got.to_string()), "{got}");
    }

    /// The state holds from an instant until its next transition, and differs there.
    #[test]
    fn state_holds_until_the_next_transition((spec, start) in calendar_strategy()) {
        let cal = WorkCalendar::from_spec(&spec).unwrap();
        let now = cal.state_at(start).unwrap();
        let next = cal.next_transition(start).unwrap().unwrap();
        prop_assert!(next.timestamp() > start);
        prop_assert_ne!(cal.state_at(next.timestamp()).unwrap(), now);
        let span = next.timestamp().as_second() - start.as_second();
        for k in 0..16 {
            let t = Timestamp::from_second(start.as_second() + span * k / 16).unwrap();
            prop_assert_eq!(cal.state_at(t).unwrap(), now, "at {}", t);
        }
        let just_before = Timestamp::from_second(next.timestamp().as_second() - 1).unwrap();
        prop_assert_eq!(cal.state_at(just_before).unwrap(), now);
    }

    /// Cron fire times match the expression and strictly increase.
    #[test]
    fn cron_fires_match_the_expression(
        (spec, start) in calendar_strategy(),
        minute in prop_oneof![Just("*/15".to_string()), (0u8..60).prop_map(|m| m.to_string())],
        hour in prop_oneof![Just("*".to_string()), (0u8..24).prop_map(|h| h.to_string()), Just("9-17/4".to_string())],
        dom in prop_oneof![Just("*".to_string()), (1u8..29).prop_map(|d| d.to_string())],
        dow in prop_oneof![Just("*".to_string()), Just("1-5".to_string()), Just("SAT,SUN".to_string())],
        sel in selector(),
    ) {
        let expr = format!("{minute} {hour} {dom} * {dow}");
        let cron: Cron = expr.parse().unwrap();
        let cal = WorkCalendar::from_spec(&spec).unwrap();
        let s = compile_schedule(&Schedule { calendar: "c".into(), at: None, cron: Some(expr.clone()), days: sel, missed_runs: None }, "schedule").unwrap();
        let mut prev = start;
        for z in cal.fire_times(&s, start).take(30) {
            // A rare expression started late in the range may run past 2099.
            let z = match z {
                Err(CalendarError::OutOfRange(_)) => break,
                z => z.unwrap(),
            };
            prop_assert!(z.timestamp() > prev, "{expr}");
            prev = z.timestamp();
            prop_assert!(cron.matches_date(z.date()), "{expr}: {z}");
            prop_assert!(cron.times().any(|t| t == z.time()), "{expr}: {z}");
            prop_assert!(cal.day_matches(sel, z.date()).unwrap());
        }
    }
}

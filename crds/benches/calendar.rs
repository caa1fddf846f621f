//! Benchmark of calendar evaluation: `cargo bench -p unyo-crds --bench calendar`.
//!
//! Prints, for the sample Mie calendar (Japanese holidays, year-end closure, Mon–Fri):
//! - ten years of business days (2026–2035) from a cold calendar (holiday tables computed on
//!   first use) and from a warm one;
//! - 10,000 fire times of `at: 19:30, days: BusinessDays` (27 years), of a half-hourly cron on
//!   the first business day of each week, and of a cron `*/15 8-18 * * 1-5` narrowed to
//!   business days;
//! - the holiday lists of all 145 years.
//!
//! Each figure is the best of five runs.

// A benchmark binary: a panic is how a broken setup is reported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use jiff::civil::Date;
use unyo_crds::OperationCalendar;
use unyo_crds::common::{DaySelector, Schedule};
use unyo_crds::holidays;
use unyo_crds::workcalendar::{WorkCalendar, compile_schedule};

fn best_of<T>(runs: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut best = Duration::MAX;
    let mut out = None;
    for _ in 0..runs {
        let start = Instant::now();
        let v = f();
        best = best.min(start.elapsed());
        out = Some(v);
    }
    (best, out.unwrap())
}

fn report(what: &str, d: Duration, items: usize, unit: &str) {
    let per = d.as_nanos() as f64 / items as f64;
    println!(
        "{what:<58} {:>9.3} ms  {items:>6} {unit}  {per:>9.0} ns/{unit}",
        d.as_secs_f64() * 1e3
    );
}

fn main() {
    let yaml = include_str!("../../manifests/samples/calendar.yaml");
    let cal: OperationCalendar = serde_saphyr::from_str(yaml).unwrap();
    let start = Date::constant(2026, 1, 1);
    let end = Date::constant(2035, 12, 31);
    let days = start.until(end).unwrap().get_days() as usize + 1;

    let count_business = |w: &WorkCalendar| {
        let mut d = start;
        let mut n = 0;
        while d <= end {
            n += usize::from(w.is_business_day(d).unwrap());
            d = d.tomorrow().unwrap();
        }
        n
    };
    let (cold, business) = best_of(5, || {
        let w = WorkCalendar::from_spec(&cal.spec).unwrap();
        count_business(&w)
    });
    report(
        "10 years of business days, cold (2026–2035)",
        cold,
        days,
        "day",
    );
    let warm_cal = WorkCalendar::from_spec(&cal.spec).unwrap();
    let (warm, _) = best_of(5, || count_business(&warm_cal));
    report("10 years of business days, warm", warm, days, "day");
    println!("  ({business} business days of {days})");

    let from: Timestamp = "2026-11-24T00:00:00+09:00".parse().unwrap();
    for (label, at, cron, sel) in [
        (
            "10,000 fire times, at 19:30 BusinessDays",
            Some("19:30"),
            None,
            DaySelector::BusinessDays,
        ),
        (
            "10,000 fire times, cron */30 * * * * FirstBusinessDayOfWeek",
            None,
            Some("*/30 * * * *"),
            DaySelector::FirstBusinessDayOfWeek,
        ),
        (
            "10,000 fire times, cron */15 8-18 * * 1-5 BusinessDays",
            None,
            Some("*/15 8-18 * * 1-5"),
            DaySelector::BusinessDays,
        ),
    ] {
        let schedule = compile_schedule(
            &Schedule {
                calendar: "mie-operations".into(),
                at: at.map(String::from),
                cron: cron.map(String::from),
                days: sel,
                missed_runs: None,
            },
            "schedule",
        )
        .unwrap();
        let (d, last) = best_of(5, || {
            warm_cal
                .fire_times(&schedule, from)
                .take(10_000)
                .map(|z| z.unwrap())
                .last()
                .unwrap()
        });
        report(label, d, 10_000, "fire");
        println!("  (the 10,000th: {})", last.strftime("%F %H:%M %Z"));
    }

    let (d, n) = best_of(5, || {
        (holidays::FIRST_YEAR..=holidays::LAST_YEAR)
            .map(|y| black_box(holidays::holidays(y).unwrap()).len())
            .sum::<usize>()
    });
    report("holiday lists of 1955–2099", d, 145, "year");
    println!("  ({n} holidays)");
}

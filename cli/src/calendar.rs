//! `unyo calendar`: holidays, business days and schedule fire times of an OperationCalendar,
//! offline, for operators and pull-request checks.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Subcommand, ValueEnum};
use jiff::civil::Date;
use jiff::{Timestamp, Zoned};
use serde_json::Value;
use unyo_crds::common::{DaySelector, Schedule};
use unyo_crds::workcalendar::{WorkCalendar, compile_schedule};
use unyo_crds::{OperationCalendar, crdgen, holidays};

use crate::check::{Outcome, check_document, parse_documents, read_source};

/// Output format.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    Text,
    Json,
}

/// Questions to a calendar.
#[derive(Subcommand, Debug)]
pub enum CalendarCommand {
    /// Print the Japanese national holidays of a year (1955–2099), `YYYY-MM-DD<TAB>name` per
    /// line in date order. Needs no cluster and no file.
    Holidays {
        /// The year.
        #[arg(long)]
        year: i16,
        /// text, or json (an array of {date, name, nameEn, kind}).
        #[arg(long, short = 'o', value_enum, default_value = "text")]
        output: Output,
    },
    /// Print the next fire times of a schedule against a calendar, one RFC 3339 time a line
    /// (then a tab and the weekday).
    Next {
        /// YAML file holding the OperationCalendar (`-` for standard input).
        #[arg(long, short = 'f')]
        file: PathBuf,
        /// Which OperationCalendar of the file, when it holds several.
        #[arg(long)]
        name: Option<String>,
        /// The schedule as comma-separated key=value: `days=BusinessDays,at=19:30` or
        /// `days=FirstBusinessDayOfWeek,cron=0 20 * * *` (`on=` is taken for `days=`; a cron
        /// list such as `0 9,12 * * *` may keep its commas).
        #[arg(long, short = 's')]
        schedule: String,
        /// Start after this instant (RFC 3339, or a date for its midnight in the calendar's
        /// zone); default now.
        #[arg(long)]
        from: Option<String>,
        /// How many fire times.
        #[arg(long, short = 'n', default_value_t = 10)]
        count: usize,
        /// text, or json (an array of RFC 3339 strings).
        #[arg(long, short = 'o', value_enum, default_value = "text")]
        output: Output,
    },
    /// Say whether a date is a business day and why not. Exit 0 for a business day, 1 for a
    /// day off, 2 for an error.
    Check {
        /// YAML file holding the OperationCalendar (`-` for standard input).
        #[arg(long, short = 'f')]
        file: PathBuf,
        /// Which OperationCalendar of the file, when it holds several.
        #[arg(long)]
        name: Option<String>,
        /// The date, `YYYY-MM-DD`.
        #[arg(long)]
        date: String,
    },
    /// Print the calendar's state at an instant, as the controller writes it into status:
    /// BusinessHours/AfterHours/Closed, the next transition, the next business day and the next
    /// five days off.
    Status {
        /// YAML file holding the OperationCalendar (`-` for standard input).
        #[arg(long, short = 'f')]
        file: PathBuf,
        /// Which OperationCalendar of the file, when it holds several.
        #[arg(long)]
        name: Option<String>,
        /// The instant (RFC 3339); default now.
        #[arg(long)]
        at: Option<String>,
    },
}

/// Runs a `unyo calendar` subcommand.
pub fn run(cmd: CalendarCommand) -> ExitCode {
    let result = match cmd {
        CalendarCommand::Holidays { year, output } => print_holidays(year, output),
        CalendarCommand::Next {
            file,
            name,
            schedule,
            from,
            count,
            output,
        } => next(
            &file,
            name.as_deref(),
            &schedule,
            from.as_deref(),
            count,
            output,
        ),
        CalendarCommand::Check { file, name, date } => check(&file, name.as_deref(), &date),
        CalendarCommand::Status { file, name, at } => status(&file, name.as_deref(), at.as_deref()),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("unyo calendar: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn print_holidays(year: i16, output: Output) -> Result<ExitCode> {
    let list = holidays::holidays(year)?;
    match output {
        Output::Text => {
            for h in &list {
                println!("{}\t{}", h.date, h.name);
            }
        }
        Output::Json => println!("{}", serde_json::to_string_pretty(&list)?),
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads the OperationCalendar of `file` (the one named `name` when it holds several), checks
/// it as `unyo check` does, and compiles it.
pub fn load(file: &Path, name: Option<&str>) -> Result<(String, WorkCalendar)> {
    let text = read_source(file).with_context(|| format!("reading {}", file.display()))?;
    let docs = parse_documents(&text)
        .map_err(|e| anyhow::anyhow!("{}: invalid YAML: {e}", file.display()))?;
    let calendars: Vec<&Value> = docs
        .iter()
        .filter(|d| {
            d.get("kind").and_then(Value::as_str) == Some("OperationCalendar")
                && d.get("apiVersion")
                    .and_then(Value::as_str)
                    .is_some_and(|v| v.starts_with("unyo.dev/"))
        })
        .collect();
    let name_of = |d: &Value| {
        d.pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let doc = match (name, calendars.as_slice()) {
        (_, []) => bail!("{}: no OperationCalendar in the file", file.display()),
        (None, [one]) => *one,
        (None, many) => bail!(
            "{}: {} OperationCalendars ({}); choose one with --name",
            file.display(),
            many.len(),
            many.iter()
                .map(|d| name_of(d))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        (Some(n), all) => all
            .iter()
            .copied()
            .find(|d| name_of(d) == n)
            .with_context(|| format!("{}: no OperationCalendar named {n:?}", file.display()))?,
    };
    if let Outcome::Invalid(label, problems) = check_document(doc, &crdgen::all_crds()) {
        bail!("{label} is invalid: {}", problems.join("; "));
    }
    let cal: OperationCalendar =
        serde_json::from_value(doc.clone()).context("reading the OperationCalendar")?;
    let label = format!("OperationCalendar/{}", name_of(doc));
    let work = WorkCalendar::from_spec(&cal.spec).with_context(|| format!("{label} is invalid"))?;
    Ok((name_of(doc), work))
}

/// Parses `days=BusinessDays,at=19:30` (or `cron=...`) into a Schedule.
pub fn parse_schedule(text: &str, calendar: &str) -> Result<Schedule> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for part in text.split(',') {
        match part.split_once('=') {
            Some((k, v)) => pairs.push((k.trim().to_string(), v.trim().to_string())),
            // A comma inside a cron field list continues the previous value.
            None => match pairs.last_mut() {
                Some((k, v)) if k == "cron" => {
                    v.push(',');
                    v.push_str(part.trim());
                }
                _ => bail!("--schedule: {part:?} is not key=value (keys: days, at, cron)"),
            },
        }
    }
    let mut schedule = Schedule {
        calendar: calendar.to_string(),
        at: None,
        cron: None,
        days: DaySelector::AllDays,
        missed_runs: None,
    };
    for (k, v) in pairs {
        match k.as_str() {
            "days" | "on" => {
                schedule.days = serde_json::from_value(Value::String(v.clone())).map_err(|_| {
                    anyhow::anyhow!(
                        "--schedule: days={v} is not a day selector (AllDays, BusinessDays, \
                         NonBusinessDays, FirstBusinessDayOfWeek, LastBusinessDayOfWeek, \
                         FirstBusinessDayOfMonth, LastBusinessDayOfMonth)"
                    )
                })?
            }
            "at" => schedule.at = Some(v),
            "cron" => schedule.cron = Some(v),
            other => bail!("--schedule: unknown key {other:?} (keys: days, at, cron)"),
        }
    }
    Ok(schedule)
}

/// An instant from RFC 3339, or a date for its midnight in the calendar's time zone.
fn parse_instant(text: &str, cal: &WorkCalendar, flag: &str) -> Result<Timestamp> {
    if let Ok(t) = text.parse::<Timestamp>() {
        return Ok(t);
    }
    match text.parse::<Date>() {
        Ok(d) => Ok(cal
            .zoned(d.to_datetime(jiff::civil::Time::midnight()))?
            .timestamp()),
        Err(_) => bail!(
            "{flag}: {text:?} is not an RFC 3339 time (e.g. 2026-11-24T19:00:00+09:00) or a date"
        ),
    }
}

fn rfc3339(z: &Zoned) -> String {
    z.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
}

fn next(
    file: &Path,
    name: Option<&str>,
    schedule: &str,
    from: Option<&str>,
    count: usize,
    output: Output,
) -> Result<ExitCode> {
    let (cal_name, cal) = load(file, name)?;
    let schedule = parse_schedule(schedule, &cal_name)?;
    let compiled = compile_schedule(&schedule, "--schedule")?;
    let from = match from {
        Some(f) => parse_instant(f, &cal, "--from")?,
        None => Timestamp::now(),
    };
    let mut times = Vec::with_capacity(count);
    for z in cal.fire_times(&compiled, from).take(count) {
        times.push(z?);
    }
    match output {
        Output::Text => {
            for z in &times {
                println!("{}\t{}", rfc3339(z), z.strftime("%a"));
            }
            if times.len() < count {
                eprintln!(
                    "unyo calendar: only {} fire times: the schedule does not fire again for eight years",
                    times.len()
                );
            }
        }
        Output::Json => {
            let list: Vec<String> = times.iter().map(rfc3339).collect();
            println!("{}", serde_json::to_string_pretty(&list)?);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn check(file: &Path, name: Option<&str>, date: &str) -> Result<ExitCode> {
    let (_, cal) = load(file, name)?;
    let d: Date = date
        .parse()
        .map_err(|e| anyhow::anyhow!("--date: {date:?} is not a date YYYY-MM-DD ({e})"))?;
    let info = cal.day(d)?;
    let weekday = format!("{:?}", d.weekday());
    let reasons: Vec<String> = info.reasons.iter().map(ToString::to_string).collect();
    if info.business {
        if info.extra_workday && !reasons.is_empty() {
            println!(
                "{d} ({weekday}) is a business day: listed in extraWorkdays, overriding {}",
                reasons.join("; ")
            );
        } else {
            println!("{d} ({weekday}) is a business day");
        }
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{d} ({weekday}) is not a business day: {}",
        reasons.join("; ")
    );
    if let Some(next) = cal.next_business_day(d)? {
        println!("next business day: {next} ({:?})", next.weekday());
    }
    Ok(ExitCode::FAILURE)
}

fn status(file: &Path, name: Option<&str>, at: Option<&str>) -> Result<ExitCode> {
    let (cal_name, cal) = load(file, name)?;
    let now = match at {
        Some(a) => parse_instant(a, &cal, "--at")?,
        None => Timestamp::now(),
    };
    let snap = cal.snapshot(now)?;
    let here = now.to_zoned(cal.time_zone().clone());
    println!("calendar:          {cal_name}");
    println!("at:                {}", rfc3339(&here));
    println!("state:             {:?}", snap.state);
    match &snap.next_transition {
        Some(n) => println!(
            "next transition:   {} ({:?})",
            rfc3339(n),
            cal.state_at(n.timestamp())?
        ),
        None => println!("next transition:   none within two years"),
    }
    match snap.next_business_day {
        Some(d) => println!("next business day: {d} ({:?})", d.weekday()),
        None => println!("next business day: none within two years"),
    }
    println!("upcoming days off:");
    for (d, n) in &snap.upcoming {
        println!("  {d}\t{n}");
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_flags() {
        let s = parse_schedule("on=BusinessDays,at=19:30", "c").unwrap();
        assert_eq!(s.days, DaySelector::BusinessDays);
        assert_eq!(s.at.as_deref(), Some("19:30"));
        let s = parse_schedule("days=FirstBusinessDayOfWeek,cron=0 9,12 * * 1-5", "c").unwrap();
        assert_eq!(s.cron.as_deref(), Some("0 9,12 * * 1-5"));
        assert_eq!(s.days, DaySelector::FirstBusinessDayOfWeek);
        let err = parse_schedule("days=Weekdays,at=19:30", "c")
            .unwrap_err()
            .to_string();
        assert!(err.contains("days=Weekdays is not a day selector"), "{err}");
        let err = parse_schedule("every=day", "c").unwrap_err().to_string();
        assert!(err.contains("unknown key \"every\""), "{err}");
        let err = parse_schedule("at=19:30,x", "c").unwrap_err().to_string();
        assert!(err.contains("\"x\" is not key=value"), "{err}");
    }
}

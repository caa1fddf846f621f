//! The `unyo` binary as operators and CI run it.

// A test crate: a panic is how a failure is reported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn unyo(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_unyo"))
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting unyo: {e}"));
    if let Some(mut pipe) = child.stdin.take() {
        pipe.write_all(stdin.unwrap_or_default().as_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
    }
    child.wait_with_output().unwrap_or_else(|e| panic!("{e}"))
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn samples_pass_check() {
    let out = unyo(&["check", "manifests/samples"], None);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = text(&out);
    assert!(stdout.contains("Server/db01: ok"), "{stdout}");
    assert!(
        stdout.contains("20 valid, 0 invalid, 2 skipped"),
        "{stdout}"
    );
}

#[test]
fn invalid_manifest_fails_check_naming_the_field() {
    let doc = r#"
apiVersion: unyo.dev/v1alpha1
kind: BackupPlan
metadata: {name: broken, namespace: mie}
spec:
  sources: [{name: db, paths: [/var/lib/postgresql]}]
  repositories: {primary: {location: /backup/a, passwordFile: /etc/unyo/a.pass}}
  rules: [{name: daily, type: Differential, schedule: {calendar: ops, at: "19:30"}}]
  media: {informationClass: ClassI}
"#;
    let out = unyo(&["check", "-"], Some(doc));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = text(&out);
    assert!(
        stdout.contains("BackupPlan/broken: spec.rules: at least one rule must be of type Full"),
        "{stdout}"
    );
    assert!(stdout.contains("0 valid, 1 invalid"), "{stdout}");
}

#[test]
fn unreadable_path_exits_2() {
    let out = unyo(&["check", "no/such/file.yaml"], None);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn crds_prints_every_kind() {
    let out = unyo(&["crds"], None);
    assert!(out.status.success());
    let stdout = text(&out);
    assert_eq!(stdout.matches("kind: CustomResourceDefinition").count(), 8);
    assert!(stdout.contains("name: servers.unyo.dev"));
}

#[test]
fn every_binary_answers_help() {
    let out = unyo(&["--help"], None);
    assert!(out.status.success());
    let help = text(&out);
    assert!(help.contains("check") && help.contains("crds"), "{help}");
}

const CALENDAR: &str = "manifests/samples/calendar.yaml";

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn calendar_holidays_prints_the_year_in_order() {
    let out = unyo(&["calendar", "holidays", "--year", "2019"], None);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<String> = text(&out).lines().map(String::from).collect();
    assert_eq!(lines.len(), 22, "{lines:?}");
    assert_eq!(lines[0], "2019-01-01\t元日");
    assert!(lines.contains(&"2019-05-01\t天皇の即位の日".to_string()));
    assert!(lines.contains(&"2019-04-30\t国民の休日".to_string()));
    let mut sorted = lines.clone();
    sorted.sort();
    assert_eq!(sorted, lines);

    let out = unyo(
        &["calendar", "holidays", "--year", "2021", "-o", "json"],
        None,
    );
    assert!(out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let sports = json
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == "スポーツの日")
        .unwrap();
    assert_eq!(sports["date"], "2021-07-23");
    assert_eq!(sports["nameEn"], "Sports Day");
    assert_eq!(sports["kind"], "National");

    let out = unyo(&["calendar", "holidays", "--year", "1954"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("1955–2099"), "{}", stderr(&out));
}

#[test]
fn calendar_next_skips_holidays_and_the_year_end_closure() {
    let out = unyo(
        &[
            "calendar",
            "next",
            "--file",
            CALENDAR,
            "--schedule",
            "on=BusinessDays,at=19:30",
            "--from",
            "2026-12-24T00:00:00+09:00",
            "--count",
            "4",
        ],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = text(&out);
    let times: Vec<&str> = stdout
        .lines()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    assert_eq!(
        times,
        [
            "2026-12-24T19:30:00+09:00",
            "2026-12-25T19:30:00+09:00",
            "2026-12-28T19:30:00+09:00",
            "2027-01-04T19:30:00+09:00",
        ]
    );
    // A weekly cron full on the first business day: the Monday 2027-01-11 is 成人の日.
    let out = unyo(
        &[
            "calendar",
            "next",
            "-f",
            CALENDAR,
            "-s",
            "days=FirstBusinessDayOfWeek,cron=0 20 * * *",
            "--from",
            "2027-01-05",
            "-n",
            "2",
            "-o",
            "json",
        ],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let json: Vec<String> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        json,
        ["2027-01-12T20:00:00+09:00", "2027-01-18T20:00:00+09:00"]
    );
}

#[test]
fn calendar_next_rejects_bad_schedules() {
    for (schedule, want) in [
        (
            "days=BusinessDays",
            "--schedule: set exactly one of at and cron",
        ),
        ("days=BusinessDays,at=19:30,cron=0 1 * * *", "not both"),
        ("at=7:30", "--schedule.at: \"7:30\" is not a time of day"),
        ("cron=0 25 * * *", "--schedule.cron: cron hour field \"25\""),
        (
            "days=Weekdays,at=19:30",
            "days=Weekdays is not a day selector",
        ),
    ] {
        let out = unyo(&["calendar", "next", "-f", CALENDAR, "-s", schedule], None);
        assert_eq!(out.status.code(), Some(2), "{schedule}");
        assert!(stderr(&out).contains(want), "{schedule}: {}", stderr(&out));
    }
}

#[test]
fn calendar_check_says_why() {
    let check = |date: &str| unyo(&["calendar", "check", "-f", CALENDAR, "--date", date], None);
    let out = check("2026-11-24");
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out).contains("2026-11-24 (Tuesday) is a business day"));
    let out = check("2026-11-23");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("national holiday 勤労感謝の日"),
        "{}",
        text(&out)
    );
    let out = check("2027-01-01");
    assert_eq!(out.status.code(), Some(1));
    let t = text(&out);
    assert!(t.contains("元日") && t.contains("closure year-end"), "{t}");
    assert!(t.contains("next business day: 2027-01-04 (Monday)"), "{t}");
    let out = check("2026-11-28");
    assert!(text(&out).contains("Saturday is not a business weekday"));
    let out = check("2026-13-01");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--date"), "{}", stderr(&out));
}

#[test]
fn calendar_commands_reject_a_bad_calendar_naming_the_field() {
    let broken = |patch: &str| {
        std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../manifests/samples/calendar.yaml"
        ))
        .unwrap()
        .replace("timeZone: Asia/Tokyo", patch)
    };
    for (patch, want) in [
        (
            "timeZone: Mars/Olympus",
            "spec.timeZone: unknown time zone \"Mars/Olympus\"",
        ),
        (
            "timeZone: Asia/Tokyo\n  extraWorkdays: [\"2026-02-29\"]",
            "spec.extraWorkdays[0]: \"2026-02-29\" is not a valid date",
        ),
        ("timeZone: Asia/Tokyo\n  bogus: 1", "spec.bogus"),
    ] {
        let out = unyo(
            &["calendar", "check", "-f", "-", "--date", "2026-11-24"],
            Some(&broken(patch)),
        );
        assert_eq!(out.status.code(), Some(2), "{patch}");
        assert!(stderr(&out).contains(want), "{patch}: {}", stderr(&out));
    }
}

#[test]
fn calendar_status_at_an_instant() {
    let out = unyo(
        &[
            "calendar",
            "status",
            "-f",
            CALENDAR,
            "--at",
            "2026-12-28T20:00:00+09:00",
        ],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let t = text(&out);
    assert!(t.contains("state:             AfterHours"), "{t}");
    assert!(
        t.contains("next transition:   2026-12-29T00:00:00+09:00 (Closed)"),
        "{t}"
    );
    assert!(t.contains("next business day: 2027-01-04 (Monday)"), "{t}");
    assert!(t.contains("2027-01-01\t元日 / year-end"), "{t}");
}

//! End to end: the unyo-controller binary keeps OperationCalendar status current on a real
//! kube-apiserver, reports invalid calendars with Ready=False, writes only on change, and
//! writes a state transition when it happens.

// A test crate: a panic is how a failure is reported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::Duration;

use jiff::{Timestamp, ToSpan};
use kube::Api;
use kube::runtime::wait::await_condition;
use unyo_crds::OperationCalendar;
use unyo_crds::calendar::CalendarState;
use unyo_tests::{ControlPlane, Running, control_plane};

fn controller(cp: &ControlPlane, ns: &str, extra: &[&str]) -> Running {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_unyo-controller"));
    cmd.arg("--kubeconfig")
        .arg(&cp.kubeconfig)
        .args(["-n", ns])
        .args(extra)
        .env("RUST_LOG", "info,unyo_controller=debug");
    Running::spawn(cmd, &format!("controller-{ns}")).unwrap()
}

fn ready(cal: &OperationCalendar) -> Option<(String, String, String, Option<i64>)> {
    let c = cal
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")?;
    Some((
        c.status.clone(),
        c.reason.clone(),
        c.message.clone(),
        c.observed_generation,
    ))
}

/// Waits (on a watch) until the calendar satisfies `cond`.
async fn wait_for(
    api: &Api<OperationCalendar>,
    name: &str,
    what: &str,
    timeout: Duration,
    running: &Running,
    cond: impl Fn(&OperationCalendar) -> bool,
) -> OperationCalendar {
    let waited = tokio::time::timeout(
        timeout,
        await_condition(api.clone(), name, move |c: Option<&OperationCalendar>| {
            c.is_some_and(&cond)
        }),
    )
    .await;
    match waited {
        Ok(Ok(Some(cal))) => cal,
        other => {
            let now = api.get(name).await.ok();
            panic!(
                "{name}: {what} did not happen ({other:?}); object now: {:?}\ncontroller log:\n{}",
                now.and_then(|c| c.status),
                running.log()
            )
        }
    }
}

fn sample_calendar(ns: &str, name: &str) -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../manifests/samples/calendar.yaml"
    ))
    .unwrap()
    .replace("namespace: mie", &format!("namespace: {ns}"))
    .replace("name: mie-operations", &format!("name: {name}"))
}

#[tokio::test]
async fn status_at_a_fixed_instant_validation_and_no_needless_writes() {
    let cp = control_plane().unwrap();
    let ns = cp.namespace("opcal").await.unwrap();
    let api: Api<OperationCalendar> = Api::namespaced(cp.client().await.unwrap(), &ns);

    let good = sample_calendar(&ns, "mie-operations");
    // Passes the schema (the pattern admits the name) but is no IANA zone.
    let bad_zone = sample_calendar(&ns, "bad-zone").replace("Asia/Tokyo", "Mars/Olympus");
    // February 29 passes the schema's date pattern, but 2026 is a common year.
    let bad_closure = sample_calendar(&ns, "bad-closure").replace(
        "  closures:",
        "  extraHolidays: [{date: \"2026-02-29\", name: leap}]\n  closures:",
    );
    for doc in [&good, &bad_zone, &bad_closure] {
        cp.kubectl_ok(&["apply", "--server-side", "-f", "-"], Some(doc))
            .unwrap();
    }

    // Monday 2026-12-28 20:00 in Tokyo: after hours on the last business day of the year.
    let running = controller(cp, &ns, &["--now", "2026-12-28T20:00:00+09:00"]);
    let t = Duration::from_secs(60);

    let cal = wait_for(&api, "mie-operations", "Ready=True", t, &running, |c| {
        ready(c).is_some_and(|r| r.0 == "True")
    })
    .await;
    let status = cal.status.clone().unwrap();
    assert_eq!(status.state, Some(CalendarState::AfterHours));
    assert_eq!(
        status.next_transition.as_ref().map(|t| t.0),
        Some("2026-12-28T15:00:00Z".parse().unwrap()),
        "the closure starts at local midnight"
    );
    assert_eq!(status.next_business_day.as_deref(), Some("2027-01-04"));
    let upcoming: Vec<(String, String)> = status
        .upcoming_holidays
        .iter()
        .map(|h| (h.date.clone(), h.name.clone()))
        .collect();
    assert_eq!(
        upcoming,
        [
            ("2026-12-29", "year-end"),
            ("2026-12-30", "year-end"),
            ("2026-12-31", "year-end"),
            ("2027-01-01", "元日 / year-end"),
            ("2027-01-02", "year-end"),
        ]
        .map(|(d, n)| (d.to_string(), n.to_string()))
    );
    assert_eq!(status.observed_generation, Some(1));
    let (_, reason, message, generation) = ready(&cal).unwrap();
    assert_eq!((reason.as_str(), generation), ("Evaluated", Some(1)));
    assert!(
        message.contains("AfterHours until 2026-12-29 00:00"),
        "{message}"
    );
    // The status belongs to the controller's field manager.
    let managers: Vec<String> = cal
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|m| m.subresource.as_deref() == Some("status"))
        .filter_map(|m| m.manager.clone())
        .collect();
    assert_eq!(managers, ["unyo-controller"]);

    let zone = wait_for(&api, "bad-zone", "Ready=False", t, &running, |c| {
        ready(c).is_some_and(|r| r.0 == "False")
    })
    .await;
    let (_, reason, message, _) = ready(&zone).unwrap();
    assert_eq!(reason, "UnknownTimeZone");
    assert!(
        message.contains("spec.timeZone: unknown time zone \"Mars/Olympus\""),
        "{message}"
    );
    assert_eq!(zone.status.as_ref().unwrap().state, None);
    let closure = wait_for(&api, "bad-closure", "Ready=False", t, &running, |c| {
        ready(c).is_some_and(|r| r.0 == "False")
    })
    .await;
    let (_, reason, message, _) = ready(&closure).unwrap();
    assert_eq!(reason, "InvalidSpec");
    assert!(
        message.contains("spec.extraHolidays[0].date: \"2026-02-29\" is not a valid date"),
        "{message}"
    );

    // kubectl shows the state columns.
    let table = cp
        .kubectl_ok(&["get", "opcal", "-n", &ns, "-o", "wide"], None)
        .unwrap();
    let row = table
        .lines()
        .find(|l| l.starts_with("mie-operations"))
        .unwrap();
    assert!(
        row.contains("AfterHours")
            && row.contains("2026-12-28T15:00:00Z")
            && row.contains("2027-01-04"),
        "{table}"
    );

    // A metadata-only change is reconciled but writes nothing, because nothing changed.
    cp.kubectl_ok(
        &[
            "annotate",
            "opcal",
            "mie-operations",
            "-n",
            &ns,
            "unyo.dev/touched=1",
        ],
        None,
    )
    .unwrap();
    let touched = api.get("mie-operations").await.unwrap();
    let version = touched.metadata.resource_version.clone();
    // Fixing the bad zone afterwards shows the controller has processed the watch events since.
    cp.kubectl_ok(
        &[
            "patch",
            "opcal",
            "bad-zone",
            "-n",
            &ns,
            "--type=merge",
            "-p",
            r#"{"spec":{"timeZone":"Asia/Tokyo"}}"#,
        ],
        None,
    )
    .unwrap();
    let fixed = wait_for(
        &api,
        "bad-zone",
        "Ready=True after the fix",
        t,
        &running,
        |c| ready(c).is_some_and(|r| r.0 == "True" && r.3 == Some(2)),
    )
    .await;
    let fixed_status = fixed.status.unwrap();
    assert_eq!(fixed_status.state, Some(CalendarState::AfterHours));
    assert_eq!(fixed_status.observed_generation, Some(2));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = api.get("mie-operations").await.unwrap();
    assert_eq!(
        after.metadata.resource_version, version,
        "the controller rewrote an unchanged status"
    );
}

#[tokio::test]
async fn a_state_transition_is_written_when_it_happens() {
    let cp = control_plane().unwrap();
    let ns = cp.namespace("opcal-clock").await.unwrap();
    let api: Api<OperationCalendar> = Api::namespaced(cp.client().await.unwrap(), &ns);

    // Business hours in UTC that end at the start of a minute 10–70 seconds from now.
    let mut now = Timestamp::now();
    let utc = |t: Timestamp| t.to_zoned(jiff::tz::TimeZone::UTC);
    if utc(now).hour() == 23 && utc(now).minute() >= 58 {
        // Too close to midnight for an end time on the same day; wait for the next day.
        tokio::time::sleep(Duration::from_secs(150)).await;
        now = Timestamp::now();
    }
    let end = utc(now.checked_add(70.seconds()).unwrap());
    let end_at = end.with().second(0).subsec_nanosecond(0).build().unwrap();
    let end_hhmm = end_at.strftime("%H:%M").to_string();
    let doc = format!(
        r#"apiVersion: unyo.dev/v1alpha1
kind: OperationCalendar
metadata: {{name: shift, namespace: {ns}}}
spec:
  timeZone: UTC
  nationalHolidays: None
  businessHours:
    weekdays: [Monday, Tuesday, Wednesday, Thursday, Friday, Saturday, Sunday]
    start: "00:00"
    end: "{end_hhmm}"
"#
    );
    cp.kubectl_ok(&["apply", "--server-side", "-f", "-"], Some(&doc))
        .unwrap();
    let running = controller(cp, &ns, &[]);

    let cal = wait_for(
        &api,
        "shift",
        "BusinessHours",
        Duration::from_secs(30),
        &running,
        |c| {
            c.status
                .as_ref()
                .is_some_and(|s| s.state == Some(CalendarState::BusinessHours))
        },
    )
    .await;
    let next = cal.status.unwrap().next_transition.unwrap().0;
    assert_eq!(next, end_at.timestamp());

    let cal = wait_for(
        &api,
        "shift",
        "AfterHours",
        Duration::from_secs(120),
        &running,
        |c| {
            c.status
                .as_ref()
                .is_some_and(|s| s.state == Some(CalendarState::AfterHours))
        },
    )
    .await;
    let seen = Timestamp::now();
    assert!(seen >= next, "state changed before its time");
    assert!(
        seen.duration_since(next) < jiff::SignedDuration::from_secs(10),
        "state changed {:?} late",
        seen.duration_since(next)
    );
    let status = cal.status.unwrap();
    // Next: midnight UTC, when the next business day starts at 00:00.
    let midnight = end_at
        .date()
        .tomorrow()
        .unwrap()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .unwrap();
    assert_eq!(status.next_transition.unwrap().0, midnight.timestamp());
}

mod common;

/// The monthly report due this month: its due date in the calendar's status and the metrics,
/// and, once `unyo report monthly --record` has written it, the record (read by the controller
/// with the shipped RBAC).
#[tokio::test]
async fn the_monthly_report_due_and_its_record() {
    let cp = control_plane().unwrap();
    let ns = cp.namespace("report-due").await.unwrap();
    let api: Api<OperationCalendar> = Api::namespaced(cp.client().await.unwrap(), &ns);
    cp.kubectl_ok(
        &["apply", "--server-side", "-f", "-"],
        Some(&sample_calendar(&ns, "union")),
    )
    .unwrap();
    let port = unyo_tests::free_port().unwrap();
    let addr = format!("127.0.0.1:{port}");
    // 2026-12-01 in Tokyo: November's report is due on the 7th business day after 30 November.
    let running = common::controller(
        cp,
        &ns,
        "report-due",
        &[
            "--now",
            "2026-12-01T09:00:00+09:00",
            "--metrics-addr",
            &addr,
        ],
    )
    .await;
    let t = Duration::from_secs(60);
    let cal = wait_for(&api, "union", "the report due", t, &running, |c| {
        c.status
            .as_ref()
            .and_then(|s| s.monthly_report.as_ref())
            .is_some()
    })
    .await;
    let due = cal.status.unwrap().monthly_report.unwrap();
    assert_eq!(
        (due.month.as_str(), due.due_date.as_deref(), due.written_at),
        ("2026-11", Some("2026-12-09"), None)
    );
    let metrics = || {
        let out = Command::new("curl")
            .args(["-fsS", &format!("http://{addr}/metrics")])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    let labels = format!("{{namespace=\"{ns}\",calendar=\"union\",month=\"2026-11\"}}");
    // The end of 9 December in Tokyo.
    let due_end: Timestamp = "2026-12-09T15:00:00Z".parse().unwrap();
    let text = metrics();
    assert!(
        text.contains(&format!(
            "unyo_controller_monthly_report_due_timestamp_seconds{labels} {}",
            due_end.as_second()
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("unyo_controller_monthly_report_written{labels} 0")),
        "{text}"
    );

    let out = std::env::temp_dir().join(format!("unyo-report-due-{}.json", std::process::id()));
    let unyo = unyo_tests::workspace_binary("unyo-cli", "unyo").unwrap();
    let st = Command::new(unyo)
        .args([
            "report", "monthly", "-n", &ns, "--month", "2026-11", "--format", "json", "--record",
            "--out",
        ])
        .arg(&out)
        .env("KUBECONFIG", &cp.kubeconfig)
        .status()
        .unwrap();
    assert!(st.success());
    let cal = wait_for(&api, "union", "the record", t, &running, |c| {
        c.status
            .as_ref()
            .and_then(|s| s.monthly_report.as_ref())
            .is_some_and(|r| r.written_at.is_some())
    })
    .await;
    let written: Timestamp = cal
        .status
        .unwrap()
        .monthly_report
        .unwrap()
        .written_at
        .unwrap()
        .parse()
        .unwrap();
    assert!((Timestamp::now() - written).get_seconds().abs() < 120);
    let text = metrics();
    assert!(
        text.contains(&format!("unyo_controller_monthly_report_written{labels} 1")),
        "{text}"
    );
    let _ = std::fs::remove_file(out);
}

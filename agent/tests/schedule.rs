//! The agent's scheduler end to end, against the real control plane with real restic: a
//! BackupPlan rule fires at its scheduled time (cron, every minute, on the sample calendar), its
//! next due time is kept in the state directory, and after kill -9 the restarted agent fires it
//! again. (Due times during long runs, jobs due together and restarts across a due time are the
//! scheduler's unit tests, under a controllable clock.)

// A test crate: a panic is how a failure is reported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use unyo_crds::Server;
use unyo_tests::control_plane;

mod common;
use common::{prepare, wait_server};

const POLICY: &str = "\
backup:
  repositories: [/backup]
  passwordFiles: [/etc/unyo]
  sources: [/srv/data]
";

fn last_full(s: &Server) -> Option<unyo_crds::backup::BackupRun> {
    s.status
        .as_ref()?
        .operations
        .as_ref()?
        .backups
        .iter()
        .find(|b| b.plan == "minutely")?
        .last_full
        .clone()
}

#[tokio::test]
async fn a_scheduled_rule_fires_and_its_due_time_survives_a_kill() {
    let cp = control_plane().unwrap();
    let h = prepare(cp, "scheduled", POLICY).await;
    std::fs::create_dir_all(h.root.join("srv/data")).unwrap();
    std::fs::write(h.root.join("srv/data/table"), b"rows\n").unwrap();
    std::fs::create_dir_all(h.root.join("etc/unyo")).unwrap();
    std::fs::write(h.root.join("etc/unyo/backup.pass"), "a passphrase\n").unwrap();
    let ns = &h.ns;
    let plan = format!(
        r#"apiVersion: unyo.dev/v1alpha1
kind: BackupPlan
metadata: {{name: minutely, namespace: {ns}}}
spec:
  selector: {{matchLabels: {{unyo.dev/role: db}}}}
  sources: [{{name: data, paths: [/srv/data]}}]
  repositories:
    primary: {{location: /backup/primary, passwordFile: /etc/unyo/backup.pass}}
  rules:
    - {{name: every-minute, type: Full, schedule: {{calendar: mie-operations, cron: "* * * * *"}}}}
  media: {{informationClass: ClassI}}
"#
    );
    cp.kubectl_ok(&["apply", "--server-side", "-f", "-"], Some(&plan))
        .unwrap();
    let agent = h.spawn();
    let s = wait_server(&h.servers, "the scheduled rule fired", 100, &agent, |s| {
        last_full(s).is_some()
    })
    .await;
    let first = last_full(&s).unwrap();
    assert_eq!(first.rule, "every-minute");
    assert_eq!(format!("{:?}", first.result), "Succeeded", "{first:?}");
    // It fired on a minute, within seconds of it.
    let started = first.started_at.0;
    assert!(started.as_second() % 60 < 10, "started at {started}");
    // Its next due time is kept, a minute later.
    let kept = std::fs::read_to_string(h.work.join("state/schedule.json")).unwrap();
    let kept: serde_json::Value = serde_json::from_str(&kept).unwrap();
    let next = kept["value"]["backup/minutely/rule/every-minute"]["next"]
        .as_str()
        .unwrap_or_else(|| panic!("{kept}"))
        .parse::<jiff::Timestamp>()
        .unwrap();
    assert_eq!(next.as_second() % 60, 0, "{next}");
    assert!(next > started, "{next} after {started}");

    drop(agent); // SIGKILL
    let agent = h.spawn();
    let s = wait_server(
        &h.servers,
        "the rule fired after the restart",
        100,
        &agent,
        |s| last_full(s).is_some_and(|r| r.started_at.0 > started),
    )
    .await;
    let second = last_full(&s).unwrap();
    assert_eq!(format!("{:?}", second.result), "Succeeded", "{second:?}");
    assert!(second.started_at.0.as_second() % 60 < 10, "{second:?}");
}

//! A database restored to just before a failure, end to end: a real PostgreSQL (Debian's,
//! run as the postgres user) archiving into the spool of a BackupPlan's PostgreSQL source,
//! unyo-agent with its host policy taking the base backup on `unyo backup now` and shipping the
//! WAL on its schedule, and `unyo backup restore --to-time` through the API server; the
//! restored data directory starts with the rows written before that time and not the drop
//! after it.

// A test crate: a panic is how a failure is reported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use unyo_cli::backup::What;
use unyo_crds::Server;
use unyo_tests::control_plane;
use unyo_tests::postgres::{Cluster, postgres_dir};

mod common;
use common::{prepare, wait_server};

const POLICY: &str = "\
backup:
  repositories: [/backup]
  passwordFiles: [/etc/unyo]
  sources: [/var/lib/unyo/wal]
  restoreTargets: [/restore]
  osUsers: [postgres]
";

fn shipped_after(s: &Server, t: jiff::Timestamp) -> bool {
    s.status
        .as_ref()
        .and_then(|st| st.operations.as_ref())
        .and_then(|o| o.backups.iter().find(|b| b.plan == "db"))
        .and_then(|b| b.journals.iter().find(|j| j.source == "pgdata"))
        .and_then(|j| j.shipped_at.as_ref())
        .is_some_and(|at| at.0 > t)
}

#[tokio::test]
async fn a_database_is_restored_through_the_agent_to_just_before_a_drop() {
    let cp = control_plane().unwrap();
    let h = prepare(cp, "pitr", POLICY).await;
    let client = cp.client().await.unwrap();
    std::fs::create_dir_all(h.root.join("etc/unyo")).unwrap();
    std::fs::write(h.root.join("etc/unyo/backup.pass"), "a passphrase\n").unwrap();
    std::fs::create_dir_all(h.root.join("restore")).unwrap();
    // The cluster archives into the spool as the host sees it beneath the agent's --root.
    let spool = h.root.join("var/lib/unyo/wal/db");
    postgres_dir(&spool).unwrap();
    let live = Cluster::create(&h.work, "live", Some(&spool)).unwrap();
    live.sql("CREATE TABLE claims (id int PRIMARY KEY, amount int)")
        .unwrap();
    let ns = &h.ns;
    let plan = format!(
        r#"apiVersion: unyo.dev/v1alpha1
kind: BackupPlan
metadata: {{name: db, namespace: {ns}}}
spec:
  selector: {{matchLabels: {{unyo.dev/role: db}}}}
  sources:
    - name: pgdata
      type: PostgreSQL
      postgresql: {{host: "{socket}", port: {port}, walSpool: /var/lib/unyo/wal/db, shipEvery: 2s}}
  repositories:
    primary: {{location: /backup/primary, passwordFile: /etc/unyo/backup.pass, requireMount: true}}
    secondary: {{location: /backup/secondary, passwordFile: /etc/unyo/backup.pass, offsite: true}}
  rules:
    - {{name: weekly-full, type: Full, schedule: {{calendar: mie-operations, at: "19:30", days: FirstBusinessDayOfWeek}}}}
  media: {{informationClass: ClassI}}
"#,
        socket = live.socket.display(),
        port = live.port
    );
    cp.kubectl_ok(&["apply", "--server-side", "-f", "-"], Some(&plan))
        .unwrap();
    let agent = h.spawn();
    // The backup disk is not mounted: refused, and the answer says why.
    let refused = unyo_cli::backup::now(
        client.clone(),
        ns,
        "db01",
        "before-version-up",
        Duration::from_secs(120),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        refused.contains(
            "full backup failed for db: repository /backup/primary requires a mounted filesystem"
        ),
        "{refused}"
    );
    assert!(!h.root.join("backup/primary").exists());
    let mounts = h.root.join("proc/mounts");
    let mut table = std::fs::read_to_string(&mounts).unwrap();
    table.push_str("/dev/sdb1 /backup ext4 rw,relatime 0 0\n");
    std::fs::write(&mounts, table).unwrap();
    // The base backup, on request (as before a version-up).
    let said = unyo_cli::backup::now(
        client.clone(),
        ns,
        "db01",
        "before-version-up",
        Duration::from_secs(120),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", agent.log()));
    assert!(said.contains("full backup of db succeeded"), "{said}");

    // Rows, the instant T, a drop after it; the agent ships the WAL on its own.
    live.sql("INSERT INTO claims SELECT g, g * 100 FROM generate_series(1, 500) g")
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let t = live.now().unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    live.sql("DROP TABLE claims").unwrap();
    live.sql("SELECT pg_switch_wal()").unwrap();
    let dropped = live.now().unwrap();
    wait_server(
        &h.servers,
        "the WAL shipped after the drop",
        60,
        &agent,
        |s| shipped_after(s, dropped),
    )
    .await;

    // The plan's dry run says every step; then the restore through the agent.
    let plan_obj = kube::Api::<unyo_crds::BackupPlan>::namespaced(client.clone(), ns)
        .get("db")
        .await
        .unwrap();
    let what = What::ToTime {
        at: t,
        source: None,
    };
    let steps = unyo_cli::backup::dry_run("db", &plan_obj, &what, &[], "/restore/pg").join("\n");
    for step in [
        "unyo-pg=pgdata",
        "unyo-wal=pgdata",
        "recovery_target_time",
        "recovery.signal",
    ] {
        assert!(steps.contains(step), "{step} in\n{steps}");
    }
    let answer = unyo_cli::backup::request(
        client.clone(),
        ns,
        "db01",
        "db",
        &what,
        "/restore/pg",
        Duration::from_secs(120),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", agent.log()));
    println!("unyo backup restore --to-time {t}: {answer}");
    assert!(
        answer.contains("WAL segment(s)") && answer.contains("into /restore/pg"),
        "{answer}"
    );
    let restored = Cluster::at(h.root.join("restore/pg"), h.work.join("restored-sock")).unwrap();
    restored.start().unwrap();
    restored.promoted().unwrap();
    assert_eq!(
        restored.sql("SELECT count(*) FROM claims").unwrap(),
        "500",
        "the rows written before T are there and the drop after T is not"
    );
}

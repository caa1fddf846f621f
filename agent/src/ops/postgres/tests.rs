//! With a real PostgreSQL (Debian's postgresql, started here as the `postgres` user on a Unix
//! socket of its own) and real restic: base backup, WAL shipped from the spool, restore to a
//! time between two statements, a restored cluster that starts with the rows before that time
//! and without the drop after it, and a gap in the journal named.

use super::*;
use std::time::Duration;
use unyo_tests::postgres::{Cluster, archived, postgres_dir};

fn plan(dir: &Path, c: &Cluster, spool: &Path) -> BackupPlanSpec {
    serde_json::from_value(serde_json::json!({
        "sources": [{"name": "db", "type": "PostgreSQL", "postgresql": {
            "host": c.socket, "port": c.port, "walSpool": spool}}],
        "repositories": {
            "primary": {"location": dir.join("primary"), "passwordFile": dir.join("pass")},
            "secondary": {"location": dir.join("secondary"), "passwordFile": dir.join("pass")}},
        "rules": [{"name": "full", "type": "Full",
                   "schedule": {"calendar": "c", "at": "19:00", "days": "BusinessDays"}}],
        "media": {"informationClass": "ClassI"}
    }))
    .unwrap()
}

fn ship_now(spec: &BackupPlanSpec) -> Option<Shipped> {
    super::super::backup::ship_journal("pg", spec, "db", Path::new("/")).unwrap()
}

fn to(spec: &BackupPlanSpec, at: Timestamp, target: &str) -> Result<String, String> {
    restore_to_time(&ToTime {
        plan: "pg",
        spec,
        root: Path::new("/"),
        source: None,
        at,
        target,
    })
}

#[test]
fn a_database_is_restored_to_just_before_a_drop_and_a_gap_in_the_journal_is_named() {
    let dir = std::env::temp_dir().join(format!("unyo-pg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let spool = dir.join("spool");
    postgres_dir(&spool).unwrap();
    std::fs::write(dir.join("pass"), "a passphrase\n").unwrap();
    let live = Cluster::create(&dir, "live", Some(&spool)).unwrap();
    let spec = plan(&dir, &live, &spool);

    // The full: a base backup, through a rule as the scheduler runs it.
    let mut state = unyo_crds::backup::HostBackup::default();
    super::super::backup::run_rule("pg", &spec, spec.rules.first(), Path::new("/"), &mut state);
    let full = state.last_full.clone().unwrap();
    assert_eq!(
        full.result,
        unyo_crds::backup::RunResult::Succeeded,
        "{:?}",
        full.message
    );
    assert_eq!(full.copied, Some(true));

    // Rows, the instant T, then a drop after it; the WAL is archived and shipped.
    live.sql("CREATE TABLE claims (id int PRIMARY KEY, amount int)")
        .unwrap();
    live.sql("INSERT INTO claims SELECT g, g * 100 FROM generate_series(1, 1000) g")
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let t = live.now().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    live.sql("DROP TABLE claims").unwrap();
    live.sql("SELECT pg_switch_wal()").unwrap();
    archived(&spool, 2).unwrap();
    let shipped = ship_now(&spec).expect("WAL was shipped");
    assert!(shipped.files >= 2, "{shipped:?}");
    assert_eq!(
        std::fs::read_dir(&spool).unwrap().count(),
        0,
        "what was shipped left the spool"
    );
    assert!(ship_now(&spec).is_none(), "an empty spool ships nothing");

    // Restored to T into a new data directory, it starts, replays to T and promotes.
    let target = dir.join("restored");
    let said = to(&spec, t, target.to_str().unwrap()).unwrap();
    assert!(said.contains("WAL segment(s)"), "{said}");
    let restored = Cluster::at(target.clone(), dir.join("restored-sock")).unwrap();
    restored.start().unwrap();
    restored.promoted().unwrap();
    assert_eq!(
        restored
            .sql("SELECT count(*), sum(amount) FROM claims")
            .unwrap(),
        "1000|50050000"
    );
    drop(restored);

    // A segment lost before shipping: the restore fails naming it.
    live.sql("CREATE TABLE later (x int)").unwrap();
    live.sql("SELECT pg_switch_wal()").unwrap();
    live.sql("INSERT INTO later VALUES (1)").unwrap();
    live.sql("SELECT pg_switch_wal()").unwrap();
    archived(&spool, 2).unwrap();
    let mut segments: Vec<String> = std::fs::read_dir(&spool)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.len() == 24)
        .collect();
    segments.sort();
    let lost = segments[0].clone();
    std::fs::remove_file(spool.join(&lost)).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    let t2 = live.now().unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    live.sql("SELECT pg_switch_wal()").unwrap();
    archived(&spool, 1).unwrap();
    ship_now(&spec).expect("shipped");
    let err = to(&spec, t2, dir.join("gap").to_str().unwrap()).unwrap_err();
    assert!(
        err.contains(&format!("WAL segment {lost} of source db is missing")),
        "{err}"
    );

    // A time the journal does not reach yet is refused, not half restored.
    let later = Timestamp::now()
        .checked_add(jiff::SignedDuration::from_hours(1))
        .unwrap();
    let err = to(&spec, later, dir.join("future").to_str().unwrap()).unwrap_err();
    assert!(err.contains("reaches only to"), "{err}");
    assert!(!dir.join("future").exists());

    // A target the cluster's settings could not hold safely is refused.
    let err = to(&spec, t, "/tmp/x'\nshared_preload_libraries='evil").unwrap_err();
    assert!(err.contains("must be an absolute path of letters"), "{err}");
    drop(live);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn segments_follow_each_other_and_a_gap_is_found() {
    assert_eq!(
        next_segment("0000000100000000000000FE").unwrap(),
        "0000000100000000000000FF"
    );
    assert_eq!(
        next_segment("0000000100000000000000FF").unwrap(),
        "000000010000000100000000"
    );
    let label = "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\nCHECKPOINT LOCATION: 0/2000060\n";
    assert_eq!(start_segment(label).unwrap(), "000000010000000000000002");
    let have: std::collections::BTreeSet<String> =
        ["000000010000000000000002", "000000010000000000000004"]
            .into_iter()
            .map(String::from)
            .collect();
    assert_eq!(
        missing_segment("000000010000000000000002", &have).as_deref(),
        Some("000000010000000000000003")
    );
    assert!(is_wal("000000010000000000000002") && is_wal("00000002.history"));
    assert!(is_wal("000000010000000000000002.00000028.backup"));
    assert!(!is_wal("pg_hba.conf") && !is_wal("../../etc/passwd"));
    // A name with a character across byte 24 is not WAL (and no panic).
    assert!(!is_wal("00000001000000000000000é.backup"));
    // A later timeline's segment is not a gap in this one.
    let mut switched = have.clone();
    switched.insert("000000010000000000000003".into());
    switched.insert("000000020000000000000004".into());
    assert_eq!(missing_segment("000000010000000000000002", &switched), None);
}

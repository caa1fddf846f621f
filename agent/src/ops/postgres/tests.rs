//! With a real PostgreSQL (Debian's postgresql, started here as the `postgres` user on a Unix
//! socket of its own) and real restic: base backup, WAL shipped from the spool, restore to a
//! time between two statements, a restored cluster that starts with the rows before that time
//! and without the drop after it, and a gap in the journal named.

use super::*;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

/// The directory of the server binaries of the newest PostgreSQL installed.
fn bin(tool: &str) -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is installed (hack/test.sh installs postgresql)")
        .flatten()
        .map(|e| e.path())
        .collect();
    versions.sort();
    versions.last().unwrap().join("bin").join(tool)
}

fn as_postgres(program: PathBuf) -> Command {
    let (uid, gid) = ids("postgres").unwrap();
    let mut c = Command::new(program);
    c.uid(uid).gid(gid).current_dir("/");
    c
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A cluster in `dir`, stopped (immediately) when dropped.
struct Cluster {
    data: PathBuf,
    socket: PathBuf,
    port: u16,
}

impl Cluster {
    /// `initdb` in `dir/name`, archiving into `spool` when given; started.
    fn create(dir: &Path, name: &str, spool: Option<&Path>) -> Cluster {
        let data = dir.join(name);
        let socket = dir.join(format!("{name}-sock"));
        std::fs::create_dir_all(&socket).unwrap();
        std::fs::create_dir_all(&data).unwrap();
        let (uid, gid) = ids("postgres").unwrap();
        chown_tree(&socket, uid, gid).unwrap();
        chown_tree(&data, uid, gid).unwrap();
        let out = as_postgres(bin("initdb"))
            .args(["-D"])
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let archive = spool.map_or(String::new(), |s| {
            format!(
                "archive_mode = on\narchive_command = 'cp %p {}/%f'\n",
                s.display()
            )
        });
        let c = Cluster::at(data, socket);
        let conf = format!(
            "listen_addresses = ''\nunix_socket_directories = '{}'\nport = {}\nwal_level = replica\n{archive}",
            c.socket.display(),
            c.port
        );
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(c.data.join("postgresql.conf"))
            .unwrap();
        std::io::Write::write_all(&mut f, conf.as_bytes()).unwrap();
        c.start();
        c
    }

    /// A data directory made elsewhere (a restore), with its own socket and port.
    fn at(data: PathBuf, socket: PathBuf) -> Cluster {
        Cluster {
            data,
            socket,
            port: free_port(),
        }
    }

    fn start(&self) {
        let out = as_postgres(bin("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(self.socket.join("server.log"))
            .arg("-o")
            .arg(format!(
                "-p {} -k {} -c listen_addresses=''",
                self.port,
                self.socket.display()
            ))
            .args(["-w", "-t", "60", "start"])
            .output()
            .unwrap();
        let log = std::fs::read_to_string(self.socket.join("server.log")).unwrap_or_default();
        assert!(
            out.status.success(),
            "pg_ctl start: {}\n{log}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn sql(&self, sql: &str) -> String {
        let out = as_postgres(bin("psql"))
            .args(["-X", "-At", "-v", "ON_ERROR_STOP=1", "-U", "postgres", "-h"])
            .arg(&self.socket)
            .args(["-p", &self.port.to_string(), "-d", "postgres", "-c", sql])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn try_sql(&self, sql: &str) -> Result<String, String> {
        let out = as_postgres(bin("psql"))
            .args(["-X", "-At", "-U", "postgres", "-h"])
            .arg(&self.socket)
            .args(["-p", &self.port.to_string(), "-d", "postgres", "-c", sql])
            .output()
            .unwrap();
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = as_postgres(bin("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "stop"])
            .output();
    }
}

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

/// Waits until the archiver has left at least `n` segments in the spool.
fn archived(spool: &Path, n: usize) {
    for _ in 0..200 {
        let count = std::fs::read_dir(spool)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().len() == 24)
            .count();
        if count >= n {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "the archiver did not leave {n} segment(s) in {}",
        spool.display()
    );
}

fn ship_now(spec: &BackupPlanSpec) -> Option<Shipped> {
    super::super::backup::ship_journal("pg", spec, "db", Path::new("/")).unwrap()
}

#[test]
fn a_database_is_restored_to_just_before_a_drop_and_a_gap_in_the_journal_is_named() {
    let dir = std::env::temp_dir().join(format!("unyo-pg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(dir.join("pass"), "a passphrase\n").unwrap();
    let spool = dir.join("spool");
    std::fs::create_dir_all(&spool).unwrap();
    let (uid, gid) = ids("postgres").unwrap();
    chown_tree(&spool, uid, gid).unwrap();
    let live = Cluster::create(&dir, "live", Some(&spool));
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
    live.sql("CREATE TABLE claims (id int PRIMARY KEY, amount int)");
    live.sql("INSERT INTO claims SELECT g, g * 100 FROM generate_series(1, 1000) g");
    std::thread::sleep(Duration::from_millis(1500));
    let t: Timestamp = live
        .sql("SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")
        .parse()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    live.sql("DROP TABLE claims");
    live.sql("SELECT pg_switch_wal()");
    archived(&spool, 2);
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
    let said = restore_to_time(&ToTime {
        plan: "pg",
        spec: &spec,
        root: Path::new("/"),
        source: None,
        at: t,
        target: target.to_str().unwrap(),
    })
    .unwrap();
    assert!(said.contains("WAL segment(s)"), "{said}");
    let restored = Cluster::at(target.clone(), dir.join("restored-sock"));
    std::fs::create_dir_all(&restored.socket).unwrap();
    chown_tree(&restored.socket, uid, gid).unwrap();
    restored.start();
    let mut promoted = false;
    for _ in 0..100 {
        if restored.try_sql("SELECT pg_is_in_recovery()").as_deref() == Ok("f") {
            promoted = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(promoted, "the restored cluster promoted at the target");
    assert_eq!(
        restored.sql("SELECT count(*), sum(amount) FROM claims"),
        "1000|50050000"
    );
    drop(restored);

    // A segment lost before shipping: the restore fails naming it.
    live.sql("CREATE TABLE later (x int)");
    live.sql("SELECT pg_switch_wal()");
    live.sql("INSERT INTO later VALUES (1)");
    live.sql("SELECT pg_switch_wal()");
    archived(&spool, 2);
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
    let t2 = Timestamp::now();
    std::thread::sleep(Duration::from_millis(1100));
    live.sql("SELECT pg_switch_wal()");
    archived(&spool, 1);
    ship_now(&spec).expect("shipped");
    let err = restore_to_time(&ToTime {
        plan: "pg",
        spec: &spec,
        root: Path::new("/"),
        source: None,
        at: t2,
        target: dir.join("gap").to_str().unwrap(),
    })
    .unwrap_err();
    assert!(
        err.contains(&format!("WAL segment {lost} of source db is missing")),
        "{err}"
    );

    // A target the cluster's settings could not hold safely is refused.
    let err = restore_to_time(&ToTime {
        plan: "pg",
        spec: &spec,
        root: Path::new("/"),
        source: None,
        at: t,
        target: "/tmp/x'\nshared_preload_libraries='evil",
    })
    .unwrap_err();
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
}

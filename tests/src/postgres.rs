//! A real PostgreSQL cluster for tests: Debian's postgresql server binaries, run as the
//! `postgres` user (the tests run as root, which PostgreSQL refuses), on a Unix socket and port
//! of its own, stopped (immediately) when dropped.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// A server binary of the newest PostgreSQL installed.
pub fn bin(tool: &str) -> Result<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .context("PostgreSQL is not installed (hack/test.sh installs postgresql)")?
        .flatten()
        .map(|e| e.path())
        .collect();
    versions.sort();
    Ok(versions
        .last()
        .context("no PostgreSQL version")?
        .join("bin")
        .join(tool))
}

/// The uid and gid of `user` on this machine.
pub fn ids(user: &str) -> Result<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd")?;
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.first() == Some(&user))
        .and_then(|f| Some((f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?)))
        .with_context(|| format!("no user {user}"))
}

/// Creates `dir` (and its parents) owned by the `postgres` user.
pub fn postgres_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let (uid, gid) = ids("postgres")?;
    std::os::unix::fs::chown(dir, Some(uid), Some(gid))?;
    Ok(())
}

fn as_postgres(program: PathBuf) -> Result<Command> {
    let (uid, gid) = ids("postgres")?;
    let mut c = Command::new(program);
    c.uid(uid).gid(gid).current_dir("/");
    Ok(c)
}

/// A cluster.
pub struct Cluster {
    /// Its data directory.
    pub data: PathBuf,
    /// The directory of its socket (and its log).
    pub socket: PathBuf,
    /// Its port.
    pub port: u16,
}

impl Cluster {
    /// `initdb` in `dir/name`, archiving each WAL segment into `spool` when given; started.
    pub fn create(dir: &Path, name: &str, spool: Option<&Path>) -> Result<Cluster> {
        std::fs::create_dir_all(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
        let c = Cluster::at(dir.join(name), dir.join(format!("{name}-sock")))?;
        postgres_dir(&c.data)?;
        let out = as_postgres(bin("initdb")?)?
            .arg("-D")
            .arg(&c.data)
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C"])
            .output()?;
        if !out.status.success() {
            bail!("initdb: {}", String::from_utf8_lossy(&out.stderr));
        }
        let archive = spool.map_or(String::new(), |s| {
            format!(
                "archive_mode = on\narchive_command = 'cp %p {}/%f'\n",
                s.display()
            )
        });
        let conf = format!("wal_level = replica\n{archive}");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(c.data.join("postgresql.conf"))?;
        std::io::Write::write_all(&mut f, conf.as_bytes())?;
        c.start()?;
        Ok(c)
    }

    /// A data directory made elsewhere (e.g. by a restore), with a socket directory and port of
    /// its own; not started.
    pub fn at(data: PathBuf, socket: PathBuf) -> Result<Cluster> {
        postgres_dir(&socket)?;
        let port = crate::free_port()?;
        Ok(Cluster { data, socket, port })
    }

    /// Starts it and waits until it accepts connections.
    pub fn start(&self) -> Result<()> {
        let log = self.socket.join("server.log");
        let out = as_postgres(bin("pg_ctl")?)?
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(&log)
            .arg("-o")
            .arg(format!(
                "-p {} -k {} -c listen_addresses=''",
                self.port,
                self.socket.display()
            ))
            .args(["-w", "-t", "60", "start"])
            .output()?;
        if !out.status.success() {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            bail!(
                "pg_ctl start: {}\n{log}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    /// Runs `sql` with psql; its output (unaligned, tuples only) or its error.
    pub fn sql(&self, sql: &str) -> Result<String> {
        let out = as_postgres(bin("psql")?)?
            .args(["-X", "-At", "-v", "ON_ERROR_STOP=1", "-U", "postgres", "-h"])
            .arg(&self.socket)
            .args(["-p", &self.port.to_string(), "-d", "postgres", "-c", sql])
            .output()?;
        if !out.status.success() {
            bail!("{sql}: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Waits until it has left recovery (a restore promoted at its target).
    pub fn promoted(&self) -> Result<()> {
        for _ in 0..150 {
            if self.sql("SELECT pg_is_in_recovery()").ok().as_deref() == Some("f") {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        bail!("still in recovery after 30 s")
    }

    /// The instant now, as the server says it, in RFC 3339.
    pub fn now(&self) -> Result<jiff::Timestamp> {
        let t = self.sql(
            "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
        )?;
        Ok(t.parse()?)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Ok(pg_ctl) = bin("pg_ctl")
            && let Ok(mut c) = as_postgres(pg_ctl)
        {
            let _ = c
                .arg("-D")
                .arg(&self.data)
                .args(["-m", "immediate", "stop"])
                .output();
        }
    }
}

/// Waits until at least `n` WAL segments are in `spool`.
pub fn archived(spool: &Path, n: usize) -> Result<()> {
    for _ in 0..200 {
        let count = std::fs::read_dir(spool)?
            .flatten()
            .filter(|e| e.file_name().len() == 24)
            .count();
        if count >= n {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!(
        "the archiver did not leave {n} segment(s) in {}",
        spool.display()
    )
}

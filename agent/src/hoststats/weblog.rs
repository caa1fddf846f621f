//! Web access counts: the lines appended to each configured access log (`--access-log`), read
//! on each scrape from where the last read stopped. A log that shrank was rotated or truncated:
//! it is read again from its start.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Mutex;

/// At most this much of a log is read per scrape (the rest on the next one).
const READ_LIMIT: u64 = 64 << 20;

#[derive(Debug, Default)]
struct Log {
    offset: u64,
    count: u64,
}

/// The access logs and their counts.
#[derive(Debug, Default)]
pub struct WebLogs {
    logs: Mutex<BTreeMap<PathBuf, Log>>,
}

impl WebLogs {
    /// Counts the lines appended to `paths` from now on (what is already there is not counted).
    pub fn new(paths: &[PathBuf]) -> WebLogs {
        let logs = paths
            .iter()
            .map(|p| {
                (
                    p.clone(),
                    Log {
                        offset: std::fs::metadata(p).map_or(0, |m| m.len()),
                        count: 0,
                    },
                )
            })
            .collect();
        WebLogs {
            logs: Mutex::new(logs),
        }
    }

    /// Reads what was appended and returns every log's count.
    pub fn counts(&self) -> Vec<(String, u64)> {
        let Ok(mut logs) = self.logs.lock() else {
            return Vec::new();
        };
        logs.iter_mut()
            .map(|(path, log)| {
                if let Err(e) = advance(path, log) {
                    tracing::debug!(log = %path.display(), error = %e, "access log not read");
                }
                (path.display().to_string(), log.count)
            })
            .collect()
    }
}

fn advance(path: &PathBuf, log: &mut Log) -> std::io::Result<()> {
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    if len < log.offset {
        log.offset = 0;
    }
    f.seek(SeekFrom::Start(log.offset))?;
    let mut buf = Vec::new();
    f.take(READ_LIMIT).read_to_end(&mut buf)?;
    // Only whole lines count; a partial last line is read again next time.
    let whole = buf.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    log.count = log
        .count
        .saturating_add(buf[..whole].iter().filter(|b| **b == b'\n').count() as u64);
    log.offset = log.offset.saturating_add(whole as u64);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn appended_whole_lines_count_and_a_rotation_starts_over() {
        let dir = std::env::temp_dir().join(format!("unyo-weblog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("access.log");
        std::fs::write(&p, "old 1\nold 2\n").unwrap();
        let logs = WebLogs::new(std::slice::from_ref(&p));
        assert_eq!(logs.counts()[0].1, 0, "lines already there are not counted");
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"GET /a\nGET /b\nGET /c").unwrap();
        assert_eq!(logs.counts()[0].1, 2, "the partial line waits");
        f.write_all(b"\n").unwrap();
        assert_eq!(logs.counts()[0].1, 3);
        std::fs::write(&p, "GET /new\n").unwrap();
        assert_eq!(
            logs.counts()[0].1,
            4,
            "a rotated log is read from its start"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

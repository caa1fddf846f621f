//! Following a log file across rotation: new lines since the last read, from the old file to
//! its end after a rename, then from the start of the new file; from the start again after a
//! truncation (copytruncate), noticed when the file is shorter than what was read.
//!
//! The path comes from a MonitoringPolicy, so only a regular file is read (a FIFO, a device
//! such as `/dev/zero` or a directory is refused without blocking: the file is opened
//! non-blocking and checked before any read), at most [`MAX_READ`] bytes per call, and a line
//! longer than [`MAX_LINE`] is cut. Callers run it on a blocking thread.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

/// The most read from the file per call; the rest waits for the next call.
pub const MAX_READ: u64 = 1 << 20;
/// The longest line kept; longer ones are cut there.
pub const MAX_LINE: usize = 64 << 10;

/// A followed log file.
#[derive(Debug)]
pub struct LogTail {
    path: PathBuf,
    file: Option<(File, u64)>,
    offset: u64,
    partial: Vec<u8>,
}

impl LogTail {
    /// Follows `path`; lines already in the file when it is first opened are not reported.
    pub fn new(path: PathBuf) -> Self {
        LogTail {
            path,
            file: None,
            offset: 0,
            partial: Vec::new(),
        }
    }

    fn open(&mut self, from_end: bool) -> std::io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(
                rustix::fs::OFlags::NONBLOCK.bits() as i32
                    | rustix::fs::OFlags::NOCTTY.bits() as i32,
            )
            .open(&self.path)?;
        let meta = f.metadata()?;
        if !meta.is_file() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "not a regular file; only regular log files are read",
            ));
        }
        let inode = meta.ino();
        self.offset = if from_end {
            f.seek(SeekFrom::End(0))?
        } else {
            0
        };
        self.partial.clear();
        self.file = Some((f, inode));
        Ok(())
    }

    fn drain(&mut self, lines: &mut Vec<String>) -> std::io::Result<()> {
        let Some((f, _)) = self.file.as_mut() else {
            return Ok(());
        };
        let len = f.metadata()?.len();
        if len < self.offset {
            // Truncated in place: read it again from the start.
            self.offset = 0;
            self.partial.clear();
        }
        f.seek(SeekFrom::Start(self.offset))?;
        let mut buf = Vec::new();
        (&mut *f).take(MAX_READ).read_to_end(&mut buf)?;
        self.offset += buf.len() as u64;
        self.partial.extend_from_slice(&buf);
        while let Some(pos) = self.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=pos).collect();
            lines.push(cut(&line));
        }
        if self.partial.len() > MAX_LINE {
            lines.push(cut(&self.partial));
            self.partial.clear();
        }
        Ok(())
    }

    /// The complete lines written since the last call.
    pub fn new_lines(&mut self) -> std::io::Result<Vec<String>> {
        let mut lines = Vec::new();
        if self.file.is_none() {
            self.open(true)?;
            return Ok(lines);
        }
        self.drain(&mut lines)?;
        // Rotated by rename: the path now names another file; read that from its start.
        let current = std::fs::metadata(&self.path).map(|m| m.ino());
        let open_inode = self.file.as_ref().map(|(_, i)| *i);
        match current {
            Ok(inode) if Some(inode) != open_inode => {
                if !self.partial.is_empty() {
                    lines.push(
                        String::from_utf8_lossy(&self.partial)
                            .trim_end()
                            .to_string(),
                    );
                }
                self.open(false)?;
                self.drain(&mut lines)?;
            }
            _ => {}
        }
        Ok(lines)
    }
}

fn cut(line: &[u8]) -> String {
    let end = line.len().min(MAX_LINE);
    String::from_utf8_lossy(&line[..end]).trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn append(path: &std::path::Path, text: &str) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    #[test]
    fn follows_appends_rename_rotation_and_truncation() {
        let dir = std::env::temp_dir().join(format!("unyo-logtail-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("app.log");
        let _ = std::fs::remove_file(&log);
        append(&log, "old line\n");
        let mut tail = LogTail::new(log.clone());
        assert!(tail.new_lines().unwrap().is_empty(), "history is skipped");
        append(&log, "one\ntw");
        assert_eq!(tail.new_lines().unwrap(), ["one"]);
        append(&log, "o\n");
        assert_eq!(tail.new_lines().unwrap(), ["two"]);
        // logrotate's rename: the old file gets a last line, then a new file appears.
        append(&log, "last in old\n");
        std::fs::rename(&log, dir.join("app.log.1")).unwrap();
        append(&log, "first in new\n");
        assert_eq!(tail.new_lines().unwrap(), ["last in old", "first in new"]);
        // copytruncate: the same file emptied, then written again (seen when the file is
        // shorter than what was read, as with tail -F).
        std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&log)
            .unwrap();
        append(&log, "short\n");
        assert_eq!(tail.new_lines().unwrap(), ["short"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn only_regular_files_in_bounded_reads() {
        let dir = std::env::temp_dir().join(format!("unyo-logtail-b-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // A FIFO with no writer would block an open without O_NONBLOCK; a device never ends.
        let fifo = dir.join("fifo");
        let _ = std::fs::remove_file(&fifo);
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR,
            0,
        )
        .unwrap();
        for p in [fifo.clone(), "/dev/zero".into(), dir.clone()] {
            let err = LogTail::new(p.clone()).new_lines().unwrap_err();
            assert!(
                err.to_string().contains("not a regular file"),
                "{}: {err}",
                p.display()
            );
        }
        // A huge line without a break is cut, and one call reads at most MAX_READ.
        let log = dir.join("big.log");
        std::fs::write(&log, b"").unwrap();
        let mut tail = LogTail::new(log.clone());
        tail.new_lines().unwrap();
        append(&log, &"y".repeat(3 << 20));
        let lines = tail.new_lines().unwrap();
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].len(), MAX_LINE);
        assert_eq!(tail.offset, MAX_READ);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! Following a log file across rotation: new lines since the last read, from the old file to
//! its end after a rename, then from the start of the new file; from the start again after a
//! truncation (copytruncate), noticed when the file is shorter than what was read.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

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
        let mut f = File::open(&self.path)?;
        let inode = f.metadata()?.ino();
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
        f.read_to_end(&mut buf)?;
        self.offset += buf.len() as u64;
        self.partial.extend_from_slice(&buf);
        while let Some(pos) = self.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=pos).collect();
            lines.push(String::from_utf8_lossy(&line).trim_end().to_string());
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
}

//! Pre- and post-commands of a backup: an argument vector run without a shell, in its own process
//! group, with a timeout that stops the whole group, and the end of its output kept (bounded).
//!
//! Which commands may run at all is the host policy's `backup.commands` (judged before a plan
//! reaches the operations); here a command is only run.

use std::collections::VecDeque;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use unyo_crds::backup::{CommandPhase, CommandResult};

/// The most of a command's output kept (its end).
pub const MAX_OUTPUT: usize = 512;
/// How long a command may run when its source names no timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
/// The longest timeout a source may name.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(86_400);
/// How long the output is waited for after the command ended (a child it left may hold it).
const DRAIN: Duration = Duration::from_secs(2);

/// The timeout a source asks for (`commandTimeout`), within the bounds.
pub fn timeout(asked: Option<&str>) -> Duration {
    asked
        .and_then(|t| unyo_crds::common::parse_duration(t).ok())
        .unwrap_or(DEFAULT_TIMEOUT)
        .min(MAX_TIMEOUT)
}

/// Runs `argv` (its program beneath `root`, as every host path is) for source `source`.
pub fn run(
    root: &Path,
    source: &str,
    phase: CommandPhase,
    argv: &[String],
    limit: Duration,
) -> CommandResult {
    let program = argv.first().cloned().unwrap_or_default();
    let mut result = CommandResult {
        source: source.to_string(),
        phase,
        program: program.clone(),
        exit_code: None,
        timed_out: false,
        duration_ms: 0,
        output: None,
    };
    let started = Instant::now();
    match spawn_and_wait(
        &super::backup::on_host(root, &program),
        &argv[1.min(argv.len())..],
        limit,
    ) {
        Ok((code, timed_out, output)) => {
            result.exit_code = code;
            result.timed_out = timed_out;
            result.output = (!output.is_empty()).then_some(output);
        }
        Err(e) => result.output = Some(format!("could not start {program}: {e}")),
    }
    result.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    tracing::info!(source, ?phase, %program, exit_code = ?result.exit_code, timed_out = result.timed_out, "backup command ran");
    result
}

/// Whether a command did what it should (exit code 0).
pub fn succeeded(r: &CommandResult) -> bool {
    r.exit_code == Some(0)
}

/// A sentence on a command that did not succeed.
pub fn failure(r: &CommandResult) -> String {
    let phase = match r.phase {
        CommandPhase::Pre => "pre-command",
        CommandPhase::Post => "post-command",
    };
    let how = match (r.timed_out, r.exit_code) {
        (true, _) => "timed out and was stopped".to_string(),
        (false, Some(c)) => format!("exited with {c}"),
        (false, None) => "did not run to its end".to_string(),
    };
    let tail = r
        .output
        .as_deref()
        .and_then(|o| o.lines().rev().find(|l| !l.trim().is_empty()));
    match tail {
        Some(line) => format!(
            "{phase} {} of source {} {how}: {}",
            r.program,
            r.source,
            line.trim()
        ),
        None => format!("{phase} {} of source {} {how}", r.program, r.source),
    }
}

/// Starts `program` with `args` in a process group of its own, stdout and stderr into one pipe;
/// returns its exit code (none when killed), whether it timed out, and the end of its output.
fn spawn_and_wait(
    program: &Path,
    args: &[String],
    limit: Duration,
) -> std::io::Result<(Option<i32>, bool, String)> {
    let (reader, writer) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(writer.try_clone()?))
        .stderr(Stdio::from(writer))
        .process_group(0)
        .spawn()?;
    let tail = Arc::new(Mutex::new(VecDeque::with_capacity(MAX_OUTPUT)));
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let kept = tail.clone();
    std::thread::spawn(move || {
        keep_tail(std::fs::File::from(reader), &kept);
        let _ = done_tx.send(());
    });
    let pid = rustix::process::Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
    let (status_tx, status_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = status_tx.send(child.wait());
    });
    let (status, timed_out) = match status_rx.recv_timeout(limit) {
        Ok(status) => (status?, false),
        Err(_) => {
            if let Some(pid) = pid {
                let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
            }
            let status = status_rx
                .recv()
                .map_err(|_| std::io::Error::other("the command's waiter ended"))??;
            (status, true)
        }
    };
    let _ = done_rx.recv_timeout(DRAIN);
    let bytes: Vec<u8> = tail
        .lock()
        .map(|t| t.iter().copied().collect())
        .unwrap_or_default();
    Ok((
        status.code(),
        timed_out,
        String::from_utf8_lossy(&bytes).into_owned(),
    ))
}

/// Reads `from` to its end, keeping only its last [`MAX_OUTPUT`] bytes in `tail`.
fn keep_tail(mut from: std::fs::File, tail: &Mutex<VecDeque<u8>>) {
    let mut buf = [0u8; 4096];
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 {
            break;
        }
        let Ok(mut t) = tail.lock() else { break };
        t.extend(&buf[..n]);
        let excess = t.len().saturating_sub(MAX_OUTPUT);
        t.drain(..excess);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str, limit: Duration) -> CommandResult {
        let argv = vec!["/bin/sh".to_string(), "-c".to_string(), script.to_string()];
        run(Path::new("/"), "db", CommandPhase::Pre, &argv, limit)
    }

    #[test]
    fn exit_codes_and_the_end_of_the_output_are_kept() {
        let ok = sh("echo started; echo fine >&2", Duration::from_secs(10));
        assert_eq!(ok.exit_code, Some(0));
        assert_eq!(ok.output.as_deref(), Some("started\nfine\n"));
        assert!(succeeded(&ok));
        let bad = sh(
            "echo 'cannot connect to the database' >&2; exit 3",
            Duration::from_secs(10),
        );
        assert_eq!(bad.exit_code, Some(3));
        assert!(!succeeded(&bad));
        assert_eq!(
            failure(&bad),
            "pre-command /bin/sh of source db exited with 3: cannot connect to the database"
        );
    }

    #[test]
    fn output_is_bounded_to_its_end() {
        let r = sh(
            "yes line | head -c 100000; echo; echo last",
            Duration::from_secs(10),
        );
        let out = r.output.unwrap();
        assert_eq!(out.len(), MAX_OUTPUT);
        assert!(out.ends_with("last\n"), "{out}");
    }

    #[test]
    fn a_timeout_stops_the_whole_group() {
        let started = Instant::now();
        // The shell's child sleeps too; both belong to the group that is stopped.
        let r = sh(
            "echo waiting; sleep 30 & sleep 30; wait",
            Duration::from_millis(500),
        );
        assert!(r.timed_out);
        assert_eq!(r.exit_code, None);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(r.output.as_deref(), Some("waiting\n"));
        assert!(
            failure(&r).contains("timed out and was stopped"),
            "{}",
            failure(&r)
        );
    }

    #[test]
    fn a_program_that_is_not_there_says_so() {
        let argv = vec!["/nonexistent/pg-backup-start".to_string()];
        let r = run(
            Path::new("/"),
            "db",
            CommandPhase::Post,
            &argv,
            DEFAULT_TIMEOUT,
        );
        assert_eq!(r.exit_code, None);
        assert!(
            r.output
                .unwrap()
                .starts_with("could not start /nonexistent/pg-backup-start")
        );
    }

    #[test]
    fn timeouts_are_bounded() {
        assert_eq!(timeout(None), DEFAULT_TIMEOUT);
        assert_eq!(timeout(Some("5m")), Duration::from_secs(300));
        assert_eq!(timeout(Some("100000000d")), MAX_TIMEOUT);
    }
}

//! Process control for `start` and `stop`: launching the server detached from
//! the terminal, signalling it, waiting for it to go, and reading the tail of
//! its log when it fails.

use std::fs::OpenOptions;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::pidfile::{self, Liveness};

/// How often a wait re-checks its condition.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Starts `exe start-foreground [config]` in a session of its own, stdin from
/// /dev/null and stdout+stderr appended to `log_file`: closing the terminal
/// (SIGHUP to its session) or Ctrl-C in it must not reach the server.
pub fn spawn_server(exe: &Path, config: Option<&Path>, log_file: &Path) -> io::Result<Child> {
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_file)?;
    let log_for_stderr = log.try_clone()?;
    let mut command = Command::new(exe);
    command.arg("start-foreground");
    if let Some(config) = config {
        command.arg(config);
    }
    // A server started this way is not the unit's main process; a readiness
    // message from it would be rejected, or worse, misattributed.
    command.env_remove("NOTIFY_SOCKET");
    command
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log_for_stderr));
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent;
    // the forked child is never a process group leader, so it cannot fail
    // with EPERM.
    unsafe {
        command.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command.spawn()
}

/// Sends `signal` to `pid`.
pub fn send_signal(pid: u32, signal: libc::c_int) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "pid out of range"))?;
    // SAFETY: kill has no memory effects; `pid` is positive (pid files are
    // parsed to 1..=i32::MAX), so it names one process, never a group.
    if unsafe { libc::kill(pid, signal) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Waits until `pid` is no longer a live ferrokeeper process, at most
/// `timeout`; true if it went.
pub fn wait_gone(pid: u32, timeout: Duration) -> bool {
    wait_for(timeout, || pidfile::liveness(pid) != Liveness::Ferrokeeper)
}

/// Polls `done` until it is true or `timeout` passes; true if it became true.
pub fn wait_for(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// Stops a child that failed to start: SIGTERM (it may be mid-recovery and
/// the server stops cleanly on it), then SIGKILL after `grace`; reaps it.
pub fn terminate_child(child: &mut Child, grace: Duration) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    let _ = send_signal(child.id(), libc::SIGTERM);
    if !wait_for(grace, || matches!(child.try_wait(), Ok(Some(_)))) {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Most bytes of a log read for a failure report: the log is appended to by
/// every run and may be large.
const TAIL_BYTES_MAX: u64 = 64 * 1024;

/// The last `lines` lines of `path` written at or after byte `from` (the
/// length before this run, so earlier runs' lines are not blamed), without
/// terminal colour codes.
pub fn log_tail(path: &Path, from: u64, lines: usize) -> io::Result<Vec<String>> {
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let start = from.max(len.saturating_sub(TAIL_BYTES_MAX)).min(len);
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    let text = strip_ansi(&String::from_utf8_lossy(&bytes));
    let all: Vec<String> = text.lines().map(str::to_string).collect();
    Ok(all[all.len().saturating_sub(lines)..].to_vec())
}

/// The message of the last ERROR line of a server log (tracing's format:
/// `<time> ERROR <target>: <message>`): the server's own reason for failing.
pub fn last_error(lines: &[String]) -> Option<String> {
    lines.iter().rev().find_map(|line| {
        let (_, rest) = line.split_once(" ERROR ")?;
        let message = rest.split_once(": ").map_or(rest, |(_, message)| message);
        Some(message.trim().to_string())
    })
}

/// Removes ANSI escape sequences (`ESC [ ... letter`): output of builds that
/// coloured their log even when it went to a file may still be in it.
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        if chars.next() == Some('[') {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_servers_error_message() {
        let lines: Vec<String> = [
            "2026-12-01T10:00:00.000001Z  INFO ferrokeeper::server: recovered zxid 0x0",
            "2026-12-01T10:00:00.000002Z ERROR ferrokeeper: cannot listen on 127.0.0.1:2181: Address already in use (os error 98)",
            "2026-12-01T10:00:00.000003Z  INFO ferrokeeper: shutting down",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            last_error(&lines).as_deref(),
            Some("cannot listen on 127.0.0.1:2181: Address already in use (os error 98)")
        );
        assert_eq!(last_error(&lines[..1]), None);
    }

    #[test]
    fn strips_colour_codes() {
        let coloured =
            "\u{1b}[2m2026\u{1b}[0m \u{1b}[31mERROR\u{1b}[0m \u{1b}[2mferrokeeper\u{1b}[0m: boom";
        assert_eq!(strip_ansi(coloured), "2026 ERROR ferrokeeper: boom");
    }

    #[test]
    fn tails_only_this_runs_lines() {
        let dir = std::env::temp_dir().join(format!("fk-daemon-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("ferrokeeper.out");
        std::fs::write(&path, "old 1\nold 2\n").expect("write");
        let from = std::fs::metadata(&path).expect("len").len();
        let mut text = std::fs::read_to_string(&path).expect("read");
        text.push_str("new 1\nnew 2\nnew 3\n");
        std::fs::write(&path, text).expect("write");
        assert_eq!(
            log_tail(&path, from, 20).expect("tail"),
            ["new 1", "new 2", "new 3"]
        );
        assert_eq!(log_tail(&path, from, 2).expect("tail"), ["new 2", "new 3"]);
        assert_eq!(log_tail(&path, 0, 20).expect("tail").len(), 5);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn waits_are_bounded() {
        let start = Instant::now();
        assert!(!wait_for(Duration::from_millis(250), || false));
        assert!(start.elapsed() >= Duration::from_millis(250));
        assert!(wait_for(Duration::from_secs(5), || true));
    }
}

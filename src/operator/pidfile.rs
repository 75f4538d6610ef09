//! The pid file `start` writes and `stop` reads (zkServer.sh's `$ZOOPIDFILE`).
//!
//! A pid file is trusted only while it names a live ferrokeeper process: after
//! a crash or a reboot it may name a dead pid, or a pid the kernel has since
//! given to another program. Trusting it then would refuse a start for no
//! reason, or make `stop` signal a stranger.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// What a process id currently is, as far as /proc tells.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Liveness {
    /// A running ferrokeeper process.
    Ferrokeeper,
    /// No such process, or a zombie (it exited and was not reaped yet).
    Dead,
    /// A running process of another program (the pid was reused); its name.
    Other(String),
}

/// What the pid file says, judged against the running processes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PidFileState {
    Missing,
    /// It names a live ferrokeeper process.
    Running(u32),
    /// It exists but names no live ferrokeeper process: safe to replace.
    Stale {
        reason: String,
    },
}

/// Parses a pid file's text: one decimal pid, surrounding whitespace allowed.
///
/// 0 and anything above `i32::MAX` are rejected: `kill(0, ..)` signals our
/// own process group and a negative pid a whole group, never one server.
pub fn parse_pid(text: &str) -> Result<u32, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err("the pid file is empty".to_string());
    }
    match trimmed.parse::<u32>() {
        Ok(pid) if pid > 0 && pid <= i32::MAX as u32 => Ok(pid),
        _ => Err(format!("'{trimmed}' is not a process id")),
    }
}

/// Judges the text of a pid file (`None`: no file) with `liveness` telling
/// what a pid is; kept apart from /proc so it can be tested.
pub fn classify(text: Option<&str>, liveness: impl Fn(u32) -> Liveness) -> PidFileState {
    let Some(text) = text else {
        return PidFileState::Missing;
    };
    let pid = match parse_pid(text) {
        Ok(pid) => pid,
        Err(reason) => return PidFileState::Stale { reason },
    };
    match liveness(pid) {
        Liveness::Ferrokeeper => PidFileState::Running(pid),
        Liveness::Dead => PidFileState::Stale {
            reason: format!("process {pid} is not running"),
        },
        Liveness::Other(name) => PidFileState::Stale {
            reason: format!("process {pid} is '{name}', not ferrokeeper"),
        },
    }
}

/// Reads and judges the pid file at `path` against the live processes.
pub fn read_state(path: &Path) -> io::Result<PidFileState> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(classify(Some(&text), liveness)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(PidFileState::Missing),
        Err(e) => Err(e),
    }
}

/// What `pid` is now, from /proc (Linux only, like the server).
pub fn liveness(pid: u32) -> Liveness {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return Liveness::Dead;
    };
    if is_zombie(&stat) {
        return Liveness::Dead;
    }
    let name = program_name(pid).unwrap_or_else(|| comm_from_stat(&stat).to_string());
    if is_ferrokeeper_name(&name, own_program_name().as_deref()) {
        Liveness::Ferrokeeper
    } else {
        Liveness::Other(name)
    }
}

/// The state letter of /proc/PID/stat: after the last ')' (the command name
/// in parentheses may itself contain ')' or spaces).
fn is_zombie(stat: &str) -> bool {
    let state = stat
        .rfind(')')
        .and_then(|end| stat[end + 1..].split_whitespace().next());
    matches!(state, Some("Z") | Some("X"))
}

/// The command name of /proc/PID/stat (kernel-truncated to 15 bytes).
fn comm_from_stat(stat: &str) -> &str {
    match (stat.find('('), stat.rfind(')')) {
        (Some(start), Some(end)) if start < end => &stat[start + 1..end],
        _ => "",
    }
}

/// The file name of the program `pid` runs: from /proc/PID/exe (readable only
/// for our own processes unless we are root), else argv[0] of its cmdline.
fn program_name(pid: u32) -> Option<String> {
    if let Ok(target) = std::fs::read_link(format!("/proc/{pid}/exe")) {
        return base_name(&target.to_string_lossy());
    }
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let argv0 = cmdline.split(|b| *b == 0).next()?;
    base_name(&String::from_utf8_lossy(argv0))
}

/// The last path component, without the " (deleted)" the kernel appends to
/// /proc/PID/exe when the binary was replaced (a reinstall while running).
fn base_name(path: &str) -> Option<String> {
    let path = path.strip_suffix(" (deleted)").unwrap_or(path);
    let name = Path::new(path).file_name()?.to_string_lossy().into_owned();
    (!name.is_empty()).then_some(name)
}

fn own_program_name() -> Option<String> {
    let exe = std::env::current_exe().ok()?;
    base_name(&exe.to_string_lossy())
}

/// A process is ours if it runs a binary named ferrokeeper, or one named as
/// this binary is (an installation may rename it).
pub fn is_ferrokeeper_name(name: &str, own_name: Option<&str>) -> bool {
    name == "ferrokeeper" || own_name == Some(name)
}

/// Creates the pid file naming `pid`, failing with `AlreadyExists` if one
/// exists: the file is written whole under a temporary name, then hard-linked
/// into place, so two racing starts cannot both claim it and no reader ever
/// sees it empty.
pub fn create_exclusive(path: &Path, pid: u32) -> io::Result<()> {
    let temp = temp_path(path);
    write_file(&temp, pid)?;
    let linked = std::fs::hard_link(&temp, path);
    let _ = std::fs::remove_file(&temp);
    linked
}

/// Replaces the pid file's content with `pid` atomically (rename).
pub fn replace(path: &Path, pid: u32) -> io::Result<()> {
    let temp = temp_path(path);
    write_file(&temp, pid)?;
    std::fs::rename(&temp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&temp);
    })
}

/// Removes the pid file if it still names `pid` (a later start may have
/// replaced it; that file is not ours to remove).
pub fn remove_if_names(path: &Path, pid: u32) -> io::Result<()> {
    match std::fs::read_to_string(path) {
        Ok(text) if parse_pid(&text) == Ok(pid) => std::fs::remove_file(path),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".tmp.{}", std::process::id()));
    PathBuf::from(name)
}

fn write_file(path: &Path, pid: u32) -> io::Result<()> {
    let mut file = std::fs::File::create(path)?;
    writeln!(file, "{pid}")?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_pid_with_whitespace() {
        assert_eq!(parse_pid("1234\n"), Ok(1234));
        assert_eq!(parse_pid("  42  "), Ok(42));
    }

    #[test]
    fn rejects_what_kill_would_misread() {
        assert!(parse_pid("").is_err());
        assert!(parse_pid("\n").is_err());
        assert!(parse_pid("0").is_err());
        assert!(parse_pid("-1").is_err());
        assert!(parse_pid("2147483648").is_err());
        assert!(parse_pid("12 34").is_err());
        assert!(parse_pid("abc").is_err());
        assert_eq!(parse_pid("2147483647"), Ok(i32::MAX as u32));
    }

    #[test]
    fn classifies_missing_running_and_stale() {
        let alive = |_| Liveness::Ferrokeeper;
        let dead = |_| Liveness::Dead;
        let other = |_| Liveness::Other("bash".to_string());
        assert_eq!(classify(None, alive), PidFileState::Missing);
        assert_eq!(classify(Some("77\n"), alive), PidFileState::Running(77));
        match classify(Some("77\n"), dead) {
            PidFileState::Stale { reason } => assert!(reason.contains("not running")),
            s => panic!("{s:?}"),
        }
        match classify(Some("77\n"), other) {
            PidFileState::Stale { reason } => assert!(reason.contains("'bash'")),
            s => panic!("{s:?}"),
        }
        match classify(Some("garbage"), alive) {
            PidFileState::Stale { reason } => assert!(reason.contains("not a process id")),
            s => panic!("{s:?}"),
        }
    }

    #[test]
    fn zombie_state_is_read_after_the_last_paren() {
        assert!(is_zombie("123 (ferro keeper) Z 1 123"));
        assert!(!is_zombie("123 (a) Z) S 1 123"));
        assert!(is_zombie("123 (a) b) X 1"));
        assert_eq!(comm_from_stat("9 (fk (x)) S 1"), "fk (x)");
    }

    #[test]
    fn names_ferrokeeper_binaries() {
        assert_eq!(
            base_name("/usr/local/bin/ferrokeeper (deleted)").as_deref(),
            Some("ferrokeeper")
        );
        assert!(is_ferrokeeper_name("ferrokeeper", None));
        assert!(is_ferrokeeper_name("fk", Some("fk")));
        assert!(!is_ferrokeeper_name("java", Some("ferrokeeper")));
    }

    #[test]
    fn another_program_is_alive_until_reaped() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        let pid = child.id();
        assert_eq!(liveness(pid), Liveness::Other("sleep".to_string()));
        child.kill().expect("kill sleep");
        child.wait().expect("wait sleep");
        assert_eq!(liveness(pid), Liveness::Dead);
        // This test binary counts as ours: it is named as the running binary.
        assert_eq!(liveness(std::process::id()), Liveness::Ferrokeeper);
    }

    #[test]
    fn exclusive_create_replace_and_remove() {
        let dir = std::env::temp_dir().join(format!("fk-pidfile-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("zookeeper_server.pid");
        let _ = std::fs::remove_file(&path);
        create_exclusive(&path, 10).expect("create");
        let again = create_exclusive(&path, 11).expect_err("second create must fail");
        assert_eq!(again.kind(), io::ErrorKind::AlreadyExists);
        replace(&path, 12).expect("replace");
        assert_eq!(std::fs::read_to_string(&path).ok().as_deref(), Some("12\n"));
        remove_if_names(&path, 10).expect("remove other");
        assert!(path.exists(), "a pid file naming another pid is kept");
        remove_if_names(&path, 12).expect("remove own");
        assert!(!path.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}

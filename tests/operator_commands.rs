//! The zkServer.sh-style operator commands, run as an operator would: the built
//! binary's `start`, `status`, `stop`, `restart`, `print-cmd` and `version`
//! against a zoo.cfg in a temp dir of each test's own, on a free port.
//!
//! `start` detaches the server into a session of its own, so the test process
//! is not its parent: every test holds an [`Instance`] whose drop stops what
//! the pid file names, and any other process started with the test's zoo.cfg.
//! tests/common's port and temp-dir helpers are private to it, so the two
//! small ones needed here are repeated (same temp-dir naming, so its
//! stale-dir cleanup covers these too).

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use ferrokeeper::operator::daemon::wait_for;

const BIN: &str = env!("CARGO_BIN_EXE_ferrokeeper");
/// Bound on one command: `start` waits 30 s at most and `stop` 60 s, plus slack.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(90);

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}

fn fresh_dir() -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let dir = std::env::temp_dir().join(format!(
        "ferrokeeper-test-{}-op{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        nanos
    ));
    fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// A process that exists and is not a zombie.
fn is_running(pid: u32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rfind(')')
        .and_then(|end| stat[end + 1..].split_whitespace().next());
    !matches!(state, Some("Z") | Some("X") | None)
}

/// Live processes whose command line mentions `needle` (the test's zoo.cfg).
fn processes_mentioning(needle: &str) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != std::process::id())
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(needle))
                .unwrap_or(false)
        })
        .filter(|pid| is_running(*pid))
        .collect()
}

fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill has no memory effects; pid is a positive process id.
    unsafe { libc::kill(pid as libc::pid_t, sig) };
}

/// SIGTERM, then SIGKILL if still there after `grace`.
fn terminate(pid: u32, grace: Duration) {
    signal(pid, libc::SIGTERM);
    if !wait_for(grace, || !is_running(pid)) {
        signal(pid, libc::SIGKILL);
        wait_for(Duration::from_secs(5), || !is_running(pid));
    }
}

/// One `srvr` on `addr`, bounded; the reply, or None if nothing answered.
fn srvr(addr: SocketAddr) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"srvr").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn ok(&self) -> bool {
        self.code == Some(0)
    }
    fn text(&self) -> String {
        format!(
            "exit {:?}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// A server configuration in a temp dir of its own, and the guard that stops
/// whatever was started with it.
struct Instance {
    dir: PathBuf,
    cfg: PathBuf,
    port: u16,
    env: Vec<(&'static str, PathBuf)>,
}

impl Instance {
    fn new() -> Instance {
        Instance::with_port(free_port())
    }

    fn with_port(port: u16) -> Instance {
        Instance::with_config(port, "")
    }

    /// The test's zoo.cfg, with `extra` lines appended.
    fn with_config(port: u16, extra: &str) -> Instance {
        let dir = fresh_dir();
        let cfg = dir.join("zoo.cfg");
        let text = format!(
            "tickTime=2000\ndataDir={}\nclientPort={port}\nadmin.enableServer=false\nclientPortAddress=127.0.0.1\n{extra}",
            dir.join("data").display()
        );
        fs::write(&cfg, text).expect("write zoo.cfg");
        Instance {
            dir,
            cfg,
            port,
            env: Vec::new(),
        }
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn pid_file(&self) -> PathBuf {
        match self.env.iter().find(|(k, _)| *k == "ZOOPIDFILE") {
            Some((_, path)) => path.clone(),
            None => self.dir.join("data").join("zookeeper_server.pid"),
        }
    }

    fn pid(&self) -> Option<u32> {
        fs::read_to_string(self.pid_file())
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// `ferrokeeper <command> <zoo.cfg>`.
    fn run(&self, command: &str) -> Run {
        self.run_args(&[command, &self.cfg.display().to_string()])
    }

    /// The binary with `args`, this instance's environment, bounded in time.
    fn run_args(&self, args: &[&str]) -> Run {
        let mut command = Command::new(BIN);
        command
            .args(args)
            .current_dir(&self.dir)
            .env_remove("ZOOPIDFILE")
            .env_remove("ZOO_LOG_DIR")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in &self.env {
            command.env(key, value);
        }
        let child = command.spawn().expect("run ferrokeeper");
        let pid = child.id();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        let output: Output = match rx.recv_timeout(COMMAND_TIMEOUT) {
            Ok(result) => result.expect("wait for ferrokeeper"),
            Err(_) => {
                signal(pid, libc::SIGKILL);
                panic!("ferrokeeper {args:?} did not finish within {COMMAND_TIMEOUT:?}");
            }
        };
        Run {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Starts and checks that it serves, returning the server's pid.
    fn start_ok(&self) -> u32 {
        let pid = self.start_ok_answering();
        assert!(srvr(self.addr()).is_some_and(|r| r.contains("Mode: standalone")));
        pid
    }

    /// Starts and checks that the server runs and answers on its port.
    fn start_ok_answering(&self) -> u32 {
        let run = self.run("start");
        assert!(run.ok(), "start failed: {}", run.text());
        assert!(run.stdout.contains("STARTED"), "{}", run.text());
        let pid = self.pid().expect("pid file after start");
        assert!(is_running(pid), "pid {pid} not running after start");
        assert!(srvr(self.addr()).is_some(), "nothing answers after start");
        pid
    }

    /// Stops and checks that the process and its pid file are gone.
    fn stop_ok(&self) {
        let pid = self.pid().expect("pid file before stop");
        let run = self.run("stop");
        assert!(run.ok(), "stop failed: {}", run.text());
        assert!(run.stdout.contains("STOPPED"), "{}", run.text());
        assert!(!self.pid_file().exists(), "pid file left after stop");
        assert!(!is_running(pid), "pid {pid} still running after stop");
    }

    /// Processes started with this instance's zoo.cfg.
    fn processes(&self) -> Vec<u32> {
        processes_mentioning(&self.cfg.display().to_string())
    }
}

impl Drop for Instance {
    /// Stops the server the pid file names and any other process started
    /// with this zoo.cfg (a failed assertion may leave one the pid file no
    /// longer names); a pid is signalled only while its command line shows it
    /// is ours, as a pid may have been reused.
    fn drop(&mut self) {
        let ours = self.processes();
        let mut pids: Vec<u32> = self.pid().into_iter().collect();
        pids.extend(ours.iter().copied());
        pids.dedup();
        for pid in pids.into_iter().filter(|pid| ours.contains(pid)) {
            terminate(pid, Duration::from_secs(10));
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn start_status_stop_restart() {
    let fk = Instance::new();
    let pid = fk.start_ok();
    assert!(
        fk.dir.join("logs").join("ferrokeeper.out").exists(),
        "default log is <dataDir>/../logs/ferrokeeper.out"
    );

    let status = fk.run("status");
    assert!(status.ok(), "{}", status.text());
    let port_line = format!("Client port found: {}. Client address: 127.0.0.1.", fk.port);
    assert!(status.stdout.contains(&port_line), "{}", status.text());
    assert!(
        status.stdout.contains("Mode: standalone"),
        "{}",
        status.text()
    );

    let again = fk.run("start");
    assert_eq!(again.code, Some(1), "{}", again.text());
    assert!(
        again
            .stderr
            .contains(&format!("already running as process {pid}")),
        "{}",
        again.text()
    );
    assert_eq!(fk.pid(), Some(pid), "a refused start keeps the pid file");
    assert!(is_running(pid));

    fk.stop_ok();
    let status = fk.run("status");
    assert_eq!(status.code, Some(1), "{}", status.text());
    assert!(
        status
            .stderr
            .contains("Error contacting service. It is probably not running."),
        "{}",
        status.text()
    );
    let stop = fk.run("stop");
    assert_eq!(stop.code, Some(1), "{}", stop.text());
    assert!(
        stop.stderr
            .contains("no ferrokeeper to stop (could not find file"),
        "{}",
        stop.text()
    );

    // restart with nothing running starts; with a server running, replaces it.
    let restart = fk.run("restart");
    assert!(restart.ok(), "{}", restart.text());
    let first = fk.pid().expect("pid file after restart");
    assert!(srvr(fk.addr()).is_some_and(|r| r.contains("Mode: standalone")));
    let restart = fk.run("restart");
    assert!(restart.ok(), "{}", restart.text());
    assert!(restart.stdout.contains("STOPPED") && restart.stdout.contains("STARTED"));
    let second = fk.pid().expect("pid file after second restart");
    assert_ne!(first, second);
    assert!(!is_running(first), "the old server is gone after restart");
    assert!(fk.run("status").ok());
    fk.stop_ok();
    assert!(fk.processes().is_empty(), "{:?}", fk.processes());
}

#[test]
fn stale_pid_files_are_replaced() {
    let fk = Instance::new();
    fs::create_dir_all(fk.dir.join("data")).expect("data dir");

    // A process that has exited: its pid names nobody.
    let mut done = Command::new("true").spawn().expect("spawn true");
    let dead = done.id();
    done.wait().expect("wait true");
    fs::write(fk.pid_file(), format!("{dead}\n")).expect("write pid file");
    let run = fk.run("start");
    assert!(run.ok(), "{}", run.text());
    assert!(run.stderr.contains("stale pid file"), "{}", run.text());
    assert_ne!(fk.pid(), Some(dead));
    fk.stop_ok();

    // A live process that is not ferrokeeper (this test binary): not ours to stop.
    let me = std::process::id();
    fs::write(fk.pid_file(), format!("{me}\n")).expect("write pid file");
    let stop = fk.run("stop");
    assert_eq!(stop.code, Some(1), "{}", stop.text());
    assert!(stop.stderr.contains("not ferrokeeper"), "{}", stop.text());
    assert!(!fk.pid_file().exists(), "stop removes a stale pid file");
    fs::write(fk.pid_file(), format!("{me}\n")).expect("write pid file");
    let run = fk.run("start");
    assert!(run.ok(), "{}", run.text());
    assert!(run.stderr.contains("not ferrokeeper"), "{}", run.text());
    fk.stop_ok();

    // Garbage in the pid file.
    fs::write(fk.pid_file(), "not a pid\n").expect("write pid file");
    fk.start_ok();
    fk.stop_ok();
}

#[test]
fn port_in_use_fails_and_leaves_nothing() {
    let port = free_port();
    let _holder = TcpListener::bind(("127.0.0.1", port)).expect("hold the port");
    let fk = Instance::with_port(port);
    let run = fk.run("start");
    assert_eq!(run.code, Some(1), "{}", run.text());
    assert!(run.stdout.contains("FAILED TO START"), "{}", run.text());
    let cause = format!("cannot listen on 127.0.0.1:{port}");
    let last = run.stderr.lines().last().unwrap_or_default();
    assert!(
        last.contains(&cause) && last.contains("in use"),
        "the last line names the cause: {}",
        run.text()
    );
    assert!(!fk.pid_file().exists(), "pid file left behind");
    assert!(fk.processes().is_empty(), "{:?}", fk.processes());
}

#[test]
fn another_server_on_the_port_is_not_taken_for_ours() {
    let first = Instance::new();
    first.start_ok();
    let second = Instance::with_port(first.port);
    let run = second.run("start");
    assert_eq!(run.code, Some(1), "{}", run.text());
    assert!(run.stderr.contains("in use"), "{}", run.text());
    assert!(!second.pid_file().exists(), "pid file left behind");
    assert!(second.processes().is_empty(), "{:?}", second.processes());
    assert!(first.run("status").ok(), "the first server still serves");
    first.stop_ok();
}

#[test]
fn zoopidfile_and_zoo_log_dir_are_honoured() {
    let mut fk = Instance::new();
    let pid_file = fk.dir.join("run").join("custom.pid");
    let log_dir = fk.dir.join("mylogs");
    fk.env.push(("ZOOPIDFILE", pid_file.clone()));
    fk.env.push(("ZOO_LOG_DIR", log_dir.clone()));

    let cmd = fk.run("print-cmd");
    assert!(cmd.ok(), "{}", cmd.text());
    let log_file = log_dir.join("ferrokeeper.out");
    assert!(cmd.stdout.contains("start-foreground"), "{}", cmd.text());
    assert!(cmd.stdout.contains(&fk.cfg.display().to_string()));
    assert!(cmd
        .stdout
        .contains(&format!("pid file: {}", pid_file.display())));
    assert!(cmd
        .stdout
        .contains(&format!("log file: {}", log_file.display())));

    let pid = fk.start_ok();
    assert_eq!(fs::read_to_string(&pid_file).ok(), Some(format!("{pid}\n")));
    assert!(!fk.dir.join("data").join("zookeeper_server.pid").exists());
    let log = fs::read_to_string(&log_file).unwrap_or_default();
    assert!(log.contains("serving ZooKeeper clients"), "log: {log}");
    assert!(!fk.dir.join("logs").exists(), "default log dir not used");
    fk.stop_ok();
}

#[test]
fn bad_input_gets_one_clear_line() {
    let fk = Instance::new();
    let version = fk.run_args(&["version"]);
    assert!(version.ok(), "{}", version.text());
    assert!(version
        .stdout
        .contains("compatible with Apache ZooKeeper 3.9"));

    let bad = fk.dir.join("bad.cfg");
    fs::write(&bad, "tickTime=2000\nthis is not a key value line\n").expect("write bad.cfg");
    let run = fk.run_args(&["start", &bad.display().to_string()]);
    assert_eq!(run.code, Some(2), "{}", run.text());
    let expected = format!("{}:2: expected 'key=value'", bad.display());
    assert!(run.stderr.contains(&expected), "{}", run.text());
    assert!(!run.stdout.contains("Starting"), "{}", run.text());

    let missing = fk.dir.join("missing.cfg").display().to_string();
    for command in ["start", "stop", "status"] {
        let run = fk.run_args(&[command, &missing]);
        assert_eq!(run.code, Some(2), "{command}: {}", run.text());
        assert!(run.stderr.contains("No such file"), "{}", run.text());
    }

    // An ensemble config needs dataDir/myid, as ZooKeeper does.
    let ensemble = fk.dir.join("ensemble.cfg");
    fs::write(
        &ensemble,
        format!(
            "tickTime=2000\ndataDir={}\nclientPort={}\nadmin.enableServer=false\nserver.1=127.0.0.1:2888:3888\n",
            fk.dir.join("ens").display(),
            fk.port
        ),
    )
    .expect("write ensemble.cfg");
    let run = fk.run_args(&["start", &ensemble.display().to_string()]);
    assert_eq!(run.code, Some(2), "{}", run.text());
    assert!(run.stderr.contains("cannot read myid"), "{}", run.text());

    let tls = fk.dir.join("tls.cfg");
    // Valid for the server (the store is read only at start); `status`
    // has no plain port to ask.
    fs::write(
        &tls,
        "tickTime=2000\nsecureClientPort=2281\nssl.keyStore.location=/nonexistent/key.pem\nssl.clientAuth=none\n",
    )
    .expect("write tls.cfg");
    let run = fk.run_args(&["status", &tls.display().to_string()]);
    assert_eq!(run.code, Some(1), "{}", run.text());
    assert!(
        run.stderr.contains("TLS is not supported"),
        "{}",
        run.text()
    );

    assert!(fk.processes().is_empty(), "{:?}", fk.processes());
}

/// Without `srvr` in the whitelist, `start` still sees the server answer (its
/// refusal), and `status` says why it cannot tell the mode.
#[test]
fn status_says_when_srvr_is_not_whitelisted() {
    let fk = Instance::with_config(free_port(), "4lw.commands.whitelist=ruok\n");
    fk.start_ok_answering();
    let status = fk.run("status");
    assert_eq!(status.code, Some(1), "{}", status.text());
    assert!(
        status.stderr.contains("4lw.commands.whitelist"),
        "{}",
        status.text()
    );
    fk.stop_ok();
}

/// `start-foreground` is the server itself, as systemd runs it: with
/// `NOTIFY_SOCKET` set it reports READY=1 once it listens and STOPPING=1 on
/// SIGTERM (tuning/ferrokeeper.service has `Type=notify`).
#[test]
fn start_foreground_notifies_systemd_and_stops_on_sigterm() {
    let fk = Instance::new();
    let socket_path = fk.dir.join("notify.sock");
    let notify = UnixDatagram::bind(&socket_path).expect("bind notify socket");
    notify
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("socket timeout");
    let log = fs::File::create(fk.dir.join("foreground.log")).expect("log file");
    let mut child = Command::new(BIN)
        .args(["start-foreground", &fk.cfg.display().to_string()])
        .current_dir(&fk.dir)
        .env("NOTIFY_SOCKET", &socket_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("spawn start-foreground");
    let mut message = [0u8; 256];
    let ready = notify.recv(&mut message).map(|n| message[..n].to_vec());
    // Ready means listening: srvr answers at once, with no retry loop.
    let served = srvr(fk.addr()).is_some_and(|r| r.contains("Mode: standalone"));
    signal(child.id(), libc::SIGTERM);
    let stopping = notify.recv(&mut message).map(|n| message[..n].to_vec());
    let exited = wait_for(Duration::from_secs(30), || {
        matches!(child.try_wait(), Ok(Some(_)))
    });
    if !exited {
        let _ = child.kill();
        let _ = child.wait();
    }
    assert_eq!(ready.ok().as_deref(), Some(&b"READY=1\n"[..]));
    assert!(served, "not serving when READY=1 was sent");
    assert_eq!(stopping.ok().as_deref(), Some(&b"STOPPING=1\n"[..]));
    assert!(exited, "start-foreground did not stop on SIGTERM");
    let status = child.wait().expect("exit status");
    assert!(status.success(), "exit status {status}");
    assert!(
        !fk.pid_file().exists(),
        "start-foreground writes no pid file"
    );
}

//! Real Apache ZooKeeper (Debian's `zookeeper` package) as a child process,
//! for the server-to-server interop tests: where its jars are, a scratch
//! directory, and the `QuorumPeerMain` process that dies with the test.
//! Each test keeps its own config and readiness checks.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub const ZK_JAR: &str = "/usr/share/java/zookeeper.jar";
const SLF4J_SIMPLE_JAR: &str = "/usr/share/java/slf4j-simple.jar";
const ZK_CONF_DIR: &str = "/etc/zookeeper/conf";

/// Fails the test (never skips) when the Apache server cannot run here.
pub fn require_install() {
    let java_ok = Command::new("java")
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        java_ok,
        "`java` is not runnable: install a JRE and Debian's `zookeeper` package \
         (tests/run-all.sh does: apt-get install zookeeper)"
    );
    assert!(
        Path::new(ZK_JAR).exists(),
        "{ZK_JAR} is missing: install Debian's `zookeeper` package \
         (tests/run-all.sh does: apt-get install zookeeper)"
    );
}

/// zookeeper.jar's manifest lists its dependencies; one SLF4J binding makes
/// the server log to stderr (as tests/compat/servers.py does).
pub fn classpath() -> String {
    if Path::new(SLF4J_SIMPLE_JAR).exists() {
        format!("{ZK_CONF_DIR}:{ZK_JAR}:{SLF4J_SIMPLE_JAR}")
    } else {
        format!("{ZK_CONF_DIR}:/usr/share/java/*")
    }
}

/// A scratch dir with a `data` subdir, removed on drop. The
/// `ferrokeeper-test-<pid>-` prefix lets tests/common remove it if the test
/// process is killed before the drop.
pub struct ScratchDir(pub PathBuf);

impl ScratchDir {
    pub fn new(tag: &str) -> ScratchDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "ferrokeeper-test-{}-{tag}-{nanos}",
            std::process::id()
        ));
        fs::create_dir_all(dir.join("data")).expect("create temp dir");
        ScratchDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// `QuorumPeerMain` on `cfg` in `dir` with `heap_args`, stdin closed; the
/// caller sets stdout and stderr.
pub fn quorum_peer_command(dir: &Path, cfg: &Path, heap_args: &[&str]) -> Command {
    let mut cmd = Command::new("java");
    cmd.args(heap_args)
        .args(["-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"])
        .arg(format!("-Dzookeeper.log.dir={}", dir.display()))
        .arg("-Dzookeeper.admin.enableServer=false")
        .arg("-cp")
        .arg(classpath())
        .arg("org.apache.zookeeper.server.quorum.QuorumPeerMain")
        .arg(cfg)
        .current_dir(dir)
        .stdin(Stdio::null());
    cmd
}

/// Starts `QuorumPeerMain` on `cfg` in `dir` with `heap_args` (e.g.
/// `-Xmx256m`), stdout and stderr to `log`. The child gets SIGKILL if the
/// test process dies first; the caller's guard kills and reaps it otherwise.
pub fn spawn_quorum_peer(dir: &Path, cfg: &Path, log: &Path, heap_args: &[&str]) -> Child {
    let out = fs::File::create(log).expect("create log");
    let err = out.try_clone().expect("clone log handle");
    let mut cmd = quorum_peer_command(dir, cfg, heap_args);
    cmd.stdout(Stdio::from(out)).stderr(Stdio::from(err));
    // SAFETY: prctl in the forked child before exec touches no shared state.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn().expect("spawn java (is a JRE installed?)")
}

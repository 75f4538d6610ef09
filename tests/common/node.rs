//! A Ferrokeeper server process that keeps its directory across restarts
//! (crash, clean stop, start again), for the tests of what survives them.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Node {
    pub dir: PathBuf,
    pub port: u16,
    child: Option<Child>,
}

impl Node {
    pub fn new() -> Node {
        Node::with_cfg("")
    }

    /// `extra` is appended to the generated zoo.cfg.
    pub fn with_cfg(extra: &str) -> Node {
        let dir = std::env::temp_dir().join(format!(
            "ferrokeeper-crash-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cfg = format!(
            "tickTime=2000\ndataDir={}\nclientPort={port}\nadmin.enableServer=false\nclientPortAddress=127.0.0.1\n4lw.commands.whitelist=*\n{extra}",
            dir.join("data").display()
        );
        std::fs::write(dir.join("zoo.cfg"), cfg).unwrap();
        Node {
            dir,
            port,
            child: None,
        }
    }

    /// A `zookeeper-client` session with this session timeout, connected
    /// within 20 s.
    pub async fn client(&self, session_timeout: Duration) -> super::zk::Client {
        tokio::time::timeout(
            Duration::from_secs(20),
            super::zk::Client::connector()
                .with_session_timeout(session_timeout)
                .connect(&self.addr().to_string()),
        )
        .await
        .expect("connect in time")
        .expect("connect")
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("server.log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_ferrokeeper"))
            .arg(self.dir.join("zoo.cfg"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn ferrokeeper");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !answers_ruok(self.addr()) {
            let exited = self.child.as_mut().unwrap().try_wait().unwrap();
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "server did not come up ({exited:?}):\n{}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Clean shutdown (SIGTERM): the server writes a final snapshot.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: signalling our own child process.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(20);
            while child.try_wait().unwrap().is_none() {
                assert!(
                    Instant::now() < deadline,
                    "no clean stop:\n{}",
                    self.log_tail()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    pub fn snapshots(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.dir.join("data"))
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.starts_with("snapshot."))
            .collect();
        names.sort();
        names
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn answers_ruok(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let mut out = String::new();
    s.write_all(b"ruok").is_ok() && s.read_to_string(&mut out).is_ok() && out == "imok"
}

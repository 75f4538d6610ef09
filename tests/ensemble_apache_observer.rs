//! The interop test of replication: a real Apache ZooKeeper 3.8 server (Debian's
//! `zookeeper` package) configured as an observer of a three-server Ferrokeeper ensemble.
//! It must elect with our servers, sync from our leader (OBSERVERINFO, LEADERINFO,
//! ACKEPOCH, a DIFF of PROPOSAL+COMMIT pairs, NEWLEADER, UPTODATE), apply our INFORMs,
//! and answer getData with the same data and the same stats as our servers, before and
//! after writes made through ours. Writes and syncs made through the Apache observer are
//! forwarded to our leader as Apache's REQUEST packets, which must work too.
//!
//! Every wait is bounded; processes are killed and directories removed on drop.

mod common;

use std::fs;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::apache::{self, ScratchDir};
use common::ensemble_client::Client;
use common::raw::{self, path_watch, Dec};

/// JVM start-up plus election and sync, on a shared 2-core machine.
const APACHE_TIMEOUT: Duration = Duration::from_secs(90);
const TIMEOUT: Duration = Duration::from_secs(30);

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

struct Member {
    quorum: u16,
    election: u16,
    client: u16,
}

fn four(port: u16, word: &str) -> String {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    match std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
        Ok(_) => raw::four_letter(addr, word),
        Err(_) => String::new(),
    }
}

fn mode(port: u16) -> Option<String> {
    four(port, "srvr")
        .lines()
        .find_map(|l| l.strip_prefix("Mode: "))
        .map(str::to_string)
}

fn wait_for(
    what: &str,
    within: Duration,
    mut cond: impl FnMut() -> bool,
    report: impl Fn() -> String,
) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n{}",
            report()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// getData's (data, stat) as raw bytes of the reply, after a sync.
fn synced_get(port: u16, path: &str) -> (Option<Vec<u8>>, raw::Stat) {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut c = raw::Conn::connect(addr, 30_000);
    let sync = c.req(raw::op::SYNC, &raw::path_body(path));
    assert_eq!(sync.err, 0, "sync {path} on port {port}");
    let (_, reply) = c.call(raw::op::GET_DATA, &path_watch(path, false));
    assert_eq!(reply.err, 0, "getData {path} on port {port}");
    reply.data()
}

fn children(port: u16, path: &str) -> Vec<String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut c = raw::Conn::connect(addr, 30_000);
    let (_, reply) = c.call(raw::op::GET_CHILDREN, &path_watch(path, false));
    let mut list = Dec::new(&reply.body).strings();
    list.sort();
    list
}

#[test]
fn an_apache_observer_syncs_from_our_leader_and_serves_the_same_data() {
    apache::require_install();
    let scratch = ScratchDir::new("apache-observer");
    let members: Vec<Member> = (0..4)
        .map(|_| Member {
            quorum: free_port(),
            election: free_port(),
            client: free_port(),
        })
        .collect();
    let mut lines = String::new();
    for (i, m) in members.iter().enumerate() {
        let role = if i == 3 { "observer" } else { "participant" };
        lines.push_str(&format!(
            "server.{}=127.0.0.1:{}:{}:{role}\n",
            i + 1,
            m.quorum,
            m.election
        ));
    }
    let dir = |sid: usize| -> PathBuf { scratch.path().join(format!("s{sid}")) };
    let write_cfg = |sid: usize, extra: &str| -> PathBuf {
        let data = dir(sid).join("data");
        fs::create_dir_all(&data).expect("data dir");
        fs::write(data.join("myid"), format!("{sid}\n")).expect("myid");
        let cfg = dir(sid).join("zoo.cfg");
        let text = format!(
            "tickTime=200\ninitLimit=20\nsyncLimit=10\ndataDir={}\nclientPort={}\nclientPortAddress=127.0.0.1\n4lw.commands.whitelist=*\nadmin.enableServer=false\n{extra}{lines}",
            data.display(),
            members[sid - 1].client
        );
        fs::write(&cfg, text).expect("zoo.cfg");
        cfg
    };
    let mut ours = Vec::new();
    for sid in 1..=3 {
        // With Apache servers in the ensemble, passwords must be ZooKeeper's (README).
        let cfg = write_cfg(
            sid,
            "ferrokeeper.shards=1\nferrokeeper.sessionPasswords=zookeeper\n",
        );
        let log = fs::File::create(dir(sid).join("server.log")).expect("log");
        let child = Command::new(env!("CARGO_BIN_EXE_ferrokeeper"))
            .arg(&cfg)
            .current_dir(dir(sid))
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn ferrokeeper");
        ours.push(Proc(child));
    }
    let logs = || {
        (1..=4)
            .map(|sid| {
                let name = if sid == 4 { "apache.log" } else { "server.log" };
                let text = fs::read_to_string(dir(sid).join(name)).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                format!(
                    "--- server {sid}\n{}",
                    lines[lines.len().saturating_sub(40)..].join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let our_ports: Vec<u16> = members[..3].iter().map(|m| m.client).collect();
    wait_for(
        "our three servers to elect a leader",
        TIMEOUT,
        || {
            let modes: Vec<Option<String>> = our_ports.iter().map(|&p| mode(p)).collect();
            modes
                .iter()
                .filter(|m| m.as_deref() == Some("leader"))
                .count()
                == 1
                && modes.iter().all(Option::is_some)
        },
        logs,
    );
    let leader_port = *our_ports
        .iter()
        .find(|&&p| mode(p).as_deref() == Some("leader"))
        .expect("a leader");

    // History before the observer exists: it gets it in its sync.
    let addr = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
    let mut c = raw::Conn::connect(addr(our_ports[0]), 30_000);
    assert_eq!(c.create("/interop", b"root", 0).err, 0);
    assert_eq!(c.create("/interop/a", b"alpha", 0).err, 0);
    assert_eq!(c.create("/interop/seq-", b"s", 2).err, 0);
    let (_, set) = c.set_data("/interop/a", b"alpha-2");
    assert_eq!(set.err, 0);
    assert_eq!(c.create("/interop/gone", b"", 0).err, 0);
    assert_eq!(
        c.req(raw::op::DELETE, &raw::delete_body("/interop/gone", -1))
            .err,
        0
    );

    let apache_cfg = write_cfg(4, "peerType=observer\n");
    let observer = apache::spawn_quorum_peer(
        &dir(4),
        &apache_cfg,
        &dir(4).join("apache.log"),
        &["-Xmx256m"],
    );
    let _observer = Proc(observer);
    let observer_port = members[3].client;
    wait_for(
        "the Apache observer to sync and serve",
        APACHE_TIMEOUT,
        || mode(observer_port).as_deref() == Some("observer"),
        logs,
    );

    let compare = |paths: &[String]| {
        for path in paths {
            let theirs = synced_get(observer_port, path);
            let mine = synced_get(leader_port, path);
            assert_eq!(
                theirs,
                mine,
                "getData {path}: Apache observer vs our leader\n{}",
                logs()
            );
        }
    };
    let mut paths: Vec<String> = children(leader_port, "/interop")
        .into_iter()
        .map(|c| format!("/interop/{c}"))
        .collect();
    paths.push("/interop".into());
    compare(&paths);
    assert_eq!(
        children(observer_port, "/interop"),
        children(leader_port, "/interop")
    );

    // Live writes through ours reach the observer as INFORMs.
    let mut c = raw::Conn::connect(addr(our_ports[1]), 30_000);
    assert_eq!(c.create("/interop/live", b"after the sync", 0).err, 0);
    let (_, set) = c.set_data("/interop/a", b"alpha-3");
    assert_eq!(set.err, 0);
    compare(&["/interop/live".to_string(), "/interop/a".to_string()]);

    // A write through the Apache observer is forwarded to our leader as its REQUEST.
    let mut theirs = Client::connect_addr(addr(observer_port)).expect("session on the observer");
    assert!(theirs
        .create("/interop/from-apache", b"via REQUEST")
        .expect("create"));
    compare(&["/interop/from-apache".to_string(), "/interop".to_string()]);
    for &port in &our_ports {
        assert!(children(port, "/interop").contains(&"from-apache".to_string()));
    }
}

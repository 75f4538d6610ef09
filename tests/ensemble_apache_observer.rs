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

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use common::apache::{self, ScratchDir};
use common::ensemble_client::Client;
use common::mixed;
use common::raw::{self, path_watch, Dec};

/// JVM start-up plus election and sync, on a shared 2-core machine.
const APACHE_TIMEOUT: Duration = Duration::from_secs(90);
const TIMEOUT: Duration = Duration::from_secs(30);

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
    let members = mixed::peers(4);
    let lines = mixed::server_lines(&members, |sid| {
        Some(if sid == 4 { "observer" } else { "participant" })
    });
    let dir = |sid: usize| -> PathBuf { scratch.path().join(format!("s{sid}")) };
    let write_cfg = |sid: usize, extra: &str| -> PathBuf {
        let timing = "tickTime=200\ninitLimit=20\nsyncLimit=10\n";
        mixed::write_peer_cfg(
            &dir(sid),
            sid,
            members[sid - 1].client,
            timing,
            extra,
            &lines,
        )
    };
    let mut ours = Vec::new();
    for sid in 1..=3 {
        // With Apache servers in the ensemble, passwords must be ZooKeeper's (README).
        let cfg = write_cfg(
            sid,
            "ferrokeeper.shards=1\nferrokeeper.sessionPasswords=zookeeper\n",
        );
        ours.push(mixed::spawn_ferrokeeper(&dir(sid), &cfg));
    }
    let log_files: Vec<(usize, PathBuf)> = (1..=4)
        .map(|sid| {
            let name = if sid == 4 { "apache.log" } else { "server.log" };
            (sid, dir(sid).join(name))
        })
        .collect();
    let logs = || mixed::log_tails(&log_files, 40);
    let our_ports: Vec<u16> = members[..3].iter().map(|m| m.client).collect();
    mixed::wait_for(
        "our three servers to elect a leader",
        TIMEOUT,
        || {
            let modes: Vec<Option<String>> = our_ports.iter().map(|&p| mixed::mode(p)).collect();
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
        .find(|&&p| mixed::mode(p).as_deref() == Some("leader"))
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
    let _observer = mixed::Proc(observer);
    let observer_port = members[3].client;
    mixed::wait_for(
        "the Apache observer to sync and serve",
        APACHE_TIMEOUT,
        || mixed::mode(observer_port).as_deref() == Some("observer"),
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

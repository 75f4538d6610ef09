//! Quorum TLS in a mixed ensemble: two Ferrokeeper servers and a real Apache
//! ZooKeeper server (Debian's `zookeeper` package), all with `sslQuorum=true`
//! and the same PEM key and trust stores (a certificate with an IP SAN
//! 127.0.0.1: Apache verifies quorum host names by default). They must elect
//! over TLS election connections, sync over TLS quorum links, and serve the
//! same data: writes go in through every server and every server must list
//! all of them.
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
use common::tls::Ca;

/// JVM start-up plus election and sync, on a shared 2-core machine.
const APACHE_TIMEOUT: Duration = Duration::from_secs(120);

fn children(port: u16, path: &str) -> Option<Vec<String>> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut c = raw::Conn::connect(addr, 30_000);
    let sync = c.req(raw::op::SYNC, &raw::path_body(path));
    if sync.err != 0 {
        return None;
    }
    let (_, reply) = c.call(raw::op::GET_CHILDREN, &path_watch(path, false));
    if reply.err != 0 {
        return None;
    }
    let mut list = Dec::new(&reply.body).strings();
    list.sort();
    Some(list)
}

#[test]
fn apache_and_ferrokeeper_elect_and_replicate_over_quorum_tls() {
    apache::require_install();
    let scratch = ScratchDir::new("apache-quorum-tls");
    let ca = Ca::new("Mixed Quorum CA");
    let store = scratch.path().join("peer.pem");
    let trust = scratch.path().join("ca.pem");
    ca.server("quorum-peer").write_pem_store(&store, &ca);
    ca.write_pem(&trust);
    let members = mixed::peers(3);
    let lines = mixed::server_lines(&members, |_| None);
    let tls = format!(
        "sslQuorum=true\nssl.quorum.keyStore.location={}\nssl.quorum.keyStore.type=PEM\n\
         ssl.quorum.trustStore.location={}\nssl.quorum.trustStore.type=PEM\n",
        store.display(),
        trust.display()
    );
    let dir = |sid: usize| -> PathBuf { scratch.path().join(format!("s{sid}")) };
    let write_cfg = |sid: usize, extra: &str| -> PathBuf {
        let timing = "tickTime=200\ninitLimit=50\nsyncLimit=25\n";
        let extra = format!("{tls}{extra}");
        mixed::write_peer_cfg(
            &dir(sid),
            sid,
            members[sid - 1].client,
            timing,
            &extra,
            &lines,
        )
    };
    // Apache (server 3) first: its JVM takes longest to come up.
    let apache_cfg = write_cfg(3, "");
    let _apache = mixed::Proc(apache::spawn_quorum_peer(
        &dir(3),
        &apache_cfg,
        &dir(3).join("apache.log"),
        &["-Xmx256m"],
    ));
    let mut ours = Vec::new();
    for sid in 1..=2 {
        // With Apache servers in the ensemble, passwords must be ZooKeeper's (README).
        let cfg = write_cfg(
            sid,
            "ferrokeeper.shards=1\nferrokeeper.sessionPasswords=zookeeper\n",
        );
        ours.push(mixed::spawn_ferrokeeper(&dir(sid), &cfg));
    }
    let log_files: Vec<(usize, PathBuf)> = (1..=3)
        .map(|sid| {
            let name = if sid == 3 { "apache.log" } else { "server.log" };
            (sid, dir(sid).join(name))
        })
        .collect();
    let logs = || mixed::log_tails(&log_files, 60);
    let ports: Vec<u16> = members.iter().map(|m| m.client).collect();
    mixed::wait_for(
        "all three servers to serve, one of them leading",
        APACHE_TIMEOUT,
        || {
            let modes: Vec<Option<String>> = ports.iter().map(|&p| mixed::mode(p)).collect();
            modes.iter().all(Option::is_some)
                && modes
                    .iter()
                    .filter(|m| m.as_deref() == Some("leader"))
                    .count()
                    == 1
        },
        logs,
    );
    // Our servers' ports accept only TLS (tests/quorum_tls.rs checks that a
    // plaintext peer is refused), so Apache serving beside them means its
    // election and quorum connections to and from ours are TLS.

    // A write through every server, Apache's included.
    let addr = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
    let mut first = Client::connect_addr(addr(ports[0])).expect("session on server 1");
    assert!(first.create("/mixed", b"root").expect("create /mixed"));
    for (i, &port) in ports.iter().enumerate() {
        let mut c = Client::connect_addr(addr(port)).expect("session");
        let path = format!("/mixed/from-{}", i + 1);
        assert!(
            c.create(&path, b"v").expect("create"),
            "{path} not created\n{}",
            logs()
        );
    }
    let want: Vec<String> = (1..=3).map(|i| format!("from-{i}")).collect();
    mixed::wait_for(
        "every server to list every write",
        Duration::from_secs(30),
        || {
            ports
                .iter()
                .all(|&p| children(p, "/mixed").as_ref() == Some(&want))
        },
        logs,
    );
}

//! Read-only mode on real processes (issue 10): a member cut off from its quorum with
//! `readonlymode.enabled=true` serves reads to read-only clients, answers their writes
//! NOTREADONLY and says so in `srvr`/`isro`; other clients keep their connections and
//! have their requests held; when the quorum is back the held requests are answered and
//! the read-only connections closed (as ZooKeeper closes its read-only server's).

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::ensemble::Ensemble;
use common::ensemble_client::{ensure_node, Client};
use common::raw::{
    create_body, parse_connect_response, path_watch, read_frame, request_frame, Acl,
    ConnectRequest, Reply,
};

const SETTLE: Duration = Duration::from_secs(30);
/// Long enough for the held requests: read-only mode starts 2 s after the quorum is lost.
const HELD_READ_TIMEOUT: Duration = Duration::from_secs(30);
const OP_CREATE: i32 = 1;
const OP_GET_DATA: i32 = 4;
const OP_PING: i32 = 11;
const XID_PING: i32 = -2;
const ERR_NOT_READ_ONLY: i32 = -119;

/// A raw session on `addr`; `read_only` is the handshake's flag. Returns the stream and
/// whether the server granted the session read-only.
fn session(addr: std::net::SocketAddr, read_only: bool) -> (TcpStream, Option<bool>) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(HELD_READ_TIMEOUT)).unwrap();
    let mut req = ConnectRequest::new(30_000);
    req.read_only = Some(read_only);
    s.write_all(&req.encode()).unwrap();
    let resp = parse_connect_response(&read_frame(&mut s).expect("connect response"));
    assert_ne!(resp.session_id, 0, "session refused");
    (s, resp.read_only)
}

fn call(s: &mut TcpStream, xid: i32, op: i32, body: &[u8]) -> Reply {
    s.write_all(&request_frame(xid, op, body)).unwrap();
    loop {
        let reply = Reply::parse(&read_frame(s).expect("reply"));
        if reply.xid == xid {
            return reply;
        }
    }
}

fn mode(ens: &Ensemble, sid: usize) -> String {
    ens.mode(sid).unwrap_or_default()
}

#[test]
fn a_member_without_quorum_serves_read_only_clients_and_holds_the_rest() {
    let mut ens = Ensemble::start(
        3,
        0,
        &[("tickTime", "200"), ("readonlymode.enabled", "true")],
    );
    let sids: Vec<usize> = ens.sids().collect();
    ensure_node(&ens, &sids, "/ro");
    let leader = ens.wait_for_leader(SETTLE);
    let survivor = sids.iter().copied().find(|&s| s != leader).unwrap();
    let addr = ens.client_addr(survivor);
    // A session made while the quorum is up, by a client that never asked for read-only.
    let (mut before, flag) = session(addr, false);
    assert_eq!(flag, Some(false));
    for sid in sids.iter().copied().filter(|&s| s != survivor) {
        ens.kill(sid);
    }
    ens.wait_until(SETTLE, "the survivor turns read-only", |e| {
        mode(e, survivor) == "read-only"
    });
    assert_eq!(ens.four_letter(survivor, "isro").as_deref(), Some("ro"));

    let (mut ro, flag) = session(addr, true);
    assert_eq!(flag, Some(true), "the handshake says read-only");
    let read = call(&mut ro, 1, OP_GET_DATA, &path_watch("/ro", false));
    assert_eq!(read.err, 0, "reads are served");
    let write = call(
        &mut ro,
        2,
        OP_CREATE,
        &create_body("/x", b"", &Acl::world_all(), 0),
    );
    assert_eq!(write.err, ERR_NOT_READ_ONLY);
    ro.write_all(&request_frame(XID_PING, OP_PING, &[]))
        .unwrap();
    assert_eq!(Reply::parse(&read_frame(&mut ro).unwrap()).xid, XID_PING);

    // The earlier session's write and a new read-write session wait for a quorum.
    before
        .write_all(&request_frame(
            7,
            OP_CREATE,
            &create_body("/held", b"h", &Acl::world_all(), 0),
        ))
        .unwrap();
    let newcomer = std::thread::spawn(move || session(addr, false).1);
    let restarted = sids.iter().copied().find(|&s| s != survivor).unwrap();
    ens.restart(restarted);

    let held = Reply::parse(&read_frame(&mut before).expect("the held write is answered"));
    assert_eq!((held.xid, held.err), (7, 0), "{}", ens.report());
    assert_eq!(
        newcomer.join().unwrap(),
        Some(false),
        "a read-write session"
    );
    assert_ne!(mode(&ens, survivor), "read-only");
    // The read-only connection is closed once the quorum is back.
    let deadline = Instant::now() + SETTLE;
    ro.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    loop {
        match read_frame(&mut ro) {
            Err(e) if e.kind() != std::io::ErrorKind::TimedOut => break,
            _ => assert!(
                Instant::now() < deadline,
                "the read-only connection stays open"
            ),
        }
    }
    let mut c = Client::connect(&ens, restarted).expect("connect to the restarted server");
    assert!(c
        .synced_children("/")
        .unwrap()
        .contains(&"held".to_string()));
}

//! Hostile and heavy input on the raw wire: oversized / negative / truncated frames, garbage
//! handshakes, unknown opcodes, invalid paths, deep pipelining, per-IP connection limits and a
//! client that does not read its replies.
//!
//! The shared server runs with `jute.maxbuffer=4096` (for Apache: `-Djute.maxbuffer=4096`).

mod common;

use std::io::Write;
use std::net::Shutdown;
use std::time::{Duration, Instant};

use common::raw::{self, err, op, Conn, ConnectRequest};
use common::Server;

static SERVER: common::Shared = common::Shared::new();
const MAX_BUFFER: usize = 4096;

fn server() -> &'static Server {
    common::shared(&SERVER, &[("jute.maxbuffer", "4096")])
}

/// The server still serves a fresh session.
fn assert_serving(s: &Server) {
    let mut c = s.raw();
    assert_ne!(c.session_id(), 0);
    let (_, rep) = c.exists("/", false);
    assert_eq!(rep.err, 0);
    assert_eq!(s.four_letter("ruok"), "imok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_frame_closes_only_that_connection() {
    common::bounded(120, async {
        let s = server();
        let mut bystander = s.raw();
        assert_eq!(bystander.create("/lim_big", b"", 0).err, 0);

        let mut c = s.raw();
        // header says 10000 bytes (> 4096): the server must not wait for (or allocate) them
        c.write_all(&10_000i32.to_be_bytes()).unwrap();
        c.write_all(&[0u8; 64]).unwrap();
        assert!(
            c.wait_closed(Duration::from_secs(5)),
            "oversized frame did not close the connection"
        );

        // also as the very first frame (handshake)
        let mut t = s.send_raw(&(MAX_BUFFER as i32 + 1).to_be_bytes());
        assert!(raw::wait_closed(&mut t, Duration::from_secs(5)));

        // a huge length
        let mut t = s.send_raw(&i32::MAX.to_be_bytes());
        assert!(raw::wait_closed(&mut t, Duration::from_secs(5)));

        // others are unaffected
        assert_eq!(bystander.set_data("/lim_big", b"still here").1.err, 0);
        assert_serving(s);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frame_of_exactly_max_buffer_is_accepted() {
    common::bounded(120, async {
        let s = server();
        let mut c = s.raw();
        assert_eq!(c.create("/lim_edge", b"", 0).err, 0);
        // payload = xid(4) + type(4) + path(4 + 9) + data(4 + n) + version(4) = 29 + n
        let path = "/lim_edge";
        let n = MAX_BUFFER - (4 + 4 + 4 + path.len() + 4 + 4);
        let xid = c.next_xid();
        let f = raw::request_frame(
            xid,
            op::SET_DATA,
            &raw::set_data_body(path, &vec![b'x'; n], -1),
        );
        assert_eq!(f.len(), 4 + MAX_BUFFER);
        c.write_all(&f).unwrap();
        let (_, rep) = c.read_until(xid);
        assert_eq!(rep.err, 0);
        assert_eq!(rep.stat().data_length as usize, n);
        // one byte more is refused
        let xid = c.next_xid();
        let f = raw::request_frame(
            xid,
            op::SET_DATA,
            &raw::set_data_body(path, &vec![b'y'; n + 1], -1),
        );
        c.write_all(&f).unwrap();
        assert!(
            c.wait_closed(Duration::from_secs(5)),
            "frame of jute.maxbuffer + 1 accepted"
        );
        let mut d = s.raw();
        let (_, rep) = d.get_data(path, false);
        assert_eq!(
            rep.data().1.data_length as usize,
            n,
            "refused frame must not be applied"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negative_length_closes() {
    common::bounded(120, async {
        let s = server();
        let mut c = s.raw();
        c.write_all(&(-16i32).to_be_bytes()).unwrap();
        assert!(c.wait_closed(Duration::from_secs(5)));
        let mut t = s.send_raw(&(-1i32).to_be_bytes());
        assert!(raw::wait_closed(&mut t, Duration::from_secs(5)));
        assert_serving(s);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_handshakes_close() {
    common::bounded(120, async {
        let s = server();
        // too short to be a ConnectRequest
        let mut t = s.send_raw(&raw::frame(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]));
        assert!(raw::wait_closed(&mut t, Duration::from_secs(5)));
        // empty frame
        let mut t = s.send_raw(&raw::frame(&[]));
        assert!(raw::wait_closed(&mut t, Duration::from_secs(5)));
        // HTTP: "GET " is read as a frame length of 0x47455420 (> jute.maxbuffer)
        let mut t = s.send_raw(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
        assert!(raw::wait_closed(&mut t, Duration::from_secs(5)));
        // a ConnectRequest whose password length runs past the frame
        let body = raw::Enc::new()
            .int(0)
            .long(0)
            .int(5000)
            .long(0)
            .int(1000)
            .raw(&[0; 4])
            .bytes();
        let mut t = s.send_raw(&raw::frame(&body));
        let closed = raw::wait_closed(&mut t, Duration::from_secs(5));
        assert!(
            closed,
            "malformed ConnectRequest did not close the connection"
        );
        assert_serving(s);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_opcode_is_unimplemented_then_closed() {
    common::bounded(120, async {
        let s = server();
        let mut c = s.raw();
        for bogus in [999, 10] {
            let mut c2 = s.raw();
            let xid = c2.send(bogus, &raw::path_body("/"));
            let rep = c2.read_reply().expect("a reply to an unknown opcode");
            assert_eq!(
                (rep.xid, rep.err),
                (xid, err::UNIMPLEMENTED),
                "opcode {bogus}"
            );
            assert!(
                c2.wait_closed(Duration::from_secs(5)),
                "connection not closed after UNIMPLEMENTED (opcode {bogus})"
            );
        }
        // the other session is fine
        assert_eq!(c.exists("/", false).1.err, 0);
    })
    .await;
}

/// Path validation. ZooKeeper validates a create's full path after looking up the parent, so
/// a path whose *parent* part is malformed may answer NONODE instead; a malformed last
/// segment under an existing parent, a missing '/', or a NUL is always BADARGUMENTS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_paths_are_bad_arguments() {
    common::bounded(120, async {
        let s = server();
        let mut c = s.raw();
        assert_eq!(c.create("/lim_path", b"", 0).err, 0);
        let create = |c: &mut Conn, p: &str, flags: i32| {
            let body = raw::create_body(p, b"", &raw::Acl::world_all(), flags);
            c.req(op::CREATE, &body)
        };
        let bad_last = [
            "",
            "relative",
            "/lim_path/",
            "/lim_path/.",
            "/lim_path/..",
            "/lim_path/x\u{0}y",
            "/lim_path/x\u{1}",
            "/lim_path/x\u{1f}",
            "/lim_path/x\u{7f}",
            "/lim_path/x\u{9f}",
            "/lim_path/x\u{e000}",
            "/lim_path/x\u{f8ff}",
            "/lim_path/x\u{fff0}",
            "/lim_path/x\u{ffff}",
        ];
        for p in bad_last {
            assert_eq!(create(&mut c, p, 0).err, err::BAD_ARGUMENTS, "create {p:?}");
        }
        for p in ["/lim_path//x", "/lim_path/./x", "/lim_path/../x"] {
            let e = create(&mut c, p, 0).err;
            assert!(
                e == err::BAD_ARGUMENTS || e == err::NO_NODE,
                "create {p:?}: {e}"
            );
        }
        // a sequential create may end in '/': the name is then only the counter
        let rep = create(&mut c, "/lim_path/", 2);
        assert_eq!(rep.err, 0);
        assert_eq!(rep.dec().string(), "/lim_path/0000000000");
        // setData validates the path first
        for p in [
            "",
            "relative",
            "/lim_path/",
            "/lim_path//x",
            "/lim_path/./x",
            "/lim_path/x\u{1}",
        ] {
            let rep = c.req(op::SET_DATA, &raw::set_data_body(p, b"", -1));
            assert_eq!(rep.err, err::BAD_ARGUMENTS, "setData {p:?}");
        }
        // delete: no '/', NUL, and the built-in nodes are BADARGUMENTS
        for p in [
            "",
            "relative",
            "/lim_path/x\u{0}",
            "/",
            "/zookeeper",
            "/zookeeper/quota",
        ] {
            let rep = c.req(op::DELETE, &raw::delete_body(p, -1));
            assert_eq!(rep.err, err::BAD_ARGUMENTS, "delete {p:?}");
        }
        for p in ["/lim_path/", "/lim_path//x"] {
            let e = c.req(op::DELETE, &raw::delete_body(p, -1)).err;
            assert!(
                e == err::BAD_ARGUMENTS || e == err::NO_NODE,
                "delete {p:?}: {e}"
            );
        }
        // names that look odd but are valid
        for p in [
            "/lim_path/...",
            "/lim_path/.x",
            "/lim_path/a b",
            "/lim_path/ünïcødé",
            "/lim_path/x\u{a0}",
        ] {
            assert_eq!(c.create(p, b"", 0).err, 0, "create {p:?}");
        }
        // the connection survives all of it
        assert_eq!(c.exists("/lim_path", false).1.err, 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_frames_then_close() {
    common::bounded(120, async {
        let s = server();
        // a frame cut short, then the client half-closes: the server closes
        let mut c = s.raw();
        c.write_all(&100i32.to_be_bytes()).unwrap();
        c.write_all(&[0u8; 10]).unwrap();
        c.stream.shutdown(Shutdown::Write).unwrap();
        assert!(c.wait_closed(Duration::from_secs(5)));

        // a truncated handshake
        let full = ConnectRequest::new(5000).encode();
        let mut t = s.tcp();
        t.write_all(&full[..full.len() - 7]).unwrap();
        t.shutdown(Shutdown::Write).unwrap();
        assert!(raw::wait_closed(&mut t, Duration::from_secs(5)));

        // only part of the length prefix
        let mut c = s.raw();
        c.write_all(&[0, 0]).unwrap();
        c.stream.shutdown(Shutdown::Write).unwrap();
        assert!(c.wait_closed(Duration::from_secs(5)));

        // a complete frame whose record is truncated (path length 100, 3 bytes present):
        // MARSHALLINGERROR or a close, but never success and never a hang
        let mut c = s.raw();
        let body = raw::Enc::new().int(100).raw(b"/ab").bytes();
        let xid = c.send(op::GET_DATA, &body);
        // (the server closing the connection is fine too; a timeout is not)
        match c.read_reply() {
            Ok(rep) => {
                assert_eq!(rep.xid, xid);
                assert_eq!(rep.err, err::MARSHALLING_ERROR, "truncated record: {rep:?}");
            }
            Err(e) => assert!(raw::is_closed(&e), "truncated record: {e}"),
        }
        assert_serving(s);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_pipelined_requests_answered_in_order() {
    common::bounded(120, async {
        let s = server();
        let mut c = s.raw();
        assert_eq!(c.create("/lim_pipe", b"", 0).err, 0);
        const N: i32 = 10_000;
        let first = c.next_xid();
        let mut frames = Vec::with_capacity(N as usize * 40);
        for i in 0..N {
            let xid = first + 1 + i;
            if i % 2 == 0 {
                frames.extend(raw::request_frame(
                    xid,
                    op::SET_DATA,
                    &raw::set_data_body("/lim_pipe", i.to_string().as_bytes(), -1),
                ));
            } else {
                frames.extend(raw::request_frame(
                    xid,
                    op::GET_DATA,
                    &raw::path_watch("/lim_pipe", false),
                ));
            }
        }
        // write everything from another thread, without reading in between
        let mut w = c.stream.try_clone().unwrap();
        let writer = std::thread::spawn(move || w.write_all(&frames));
        let start = Instant::now();
        let mut last_version = 0;
        for i in 0..N {
            let rep = c.read_reply().unwrap_or_else(|e| panic!("reply {i}: {e}"));
            assert_eq!(rep.xid, first + 1 + i, "replies out of order at {i}");
            assert_eq!(rep.err, 0, "reply {i}");
            if i % 2 == 0 {
                let st = rep.stat();
                assert_eq!(st.version, last_version + 1);
                last_version = st.version;
            } else {
                let (data, st) = rep.data();
                assert_eq!(
                    data.unwrap(),
                    (i - 1).to_string().as_bytes(),
                    "getData {i} must see the setData before it"
                );
                assert_eq!(st.version, last_version);
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "10k pipelined requests took over 60 s"
            );
        }
        writer.join().unwrap().expect("writer");
        for _ in 0..N {
            let _ = c.next_xid();
        }
        assert_eq!(c.exists("/lim_pipe", false).1.err, 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_client_cnxns_per_ip() {
    common::bounded(120, async {
        let s = Server::start(&[("maxClientCnxns", "3")]);
        let deadline = Instant::now() + Duration::from_secs(10);
        // the first 3 connections are accepted (retrying while the harness's own probes wind down)
        let mut held = Vec::new();
        while held.len() < 3 {
            match Conn::connect_with(s.addr(), &ConnectRequest::new(10_000)) {
                Ok(c) if c.session_id() != 0 => held.push(c),
                _ => {
                    assert!(
                        Instant::now() < deadline,
                        "could not open 3 connections with maxClientCnxns=3"
                    );
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
        // the 4th is refused: closed without a ConnectResponse
        for _ in 0..2 {
            match Conn::connect_with(s.addr(), &ConnectRequest::new(10_000)) {
                Ok(_) => panic!("connection 4 accepted with maxClientCnxns=3"),
                Err(e) => assert!(raw::is_closed(&e), "connection 4 not closed: {e}"),
            }
        }
        // the 3 held ones still work
        for c in held.iter_mut() {
            assert_eq!(c.exists("/", false).1.err, 0);
        }
        // closing one makes room again
        held.pop().unwrap().drop_tcp();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(c) = Conn::connect_with(s.addr(), &ConnectRequest::new(10_000)) {
                if c.session_id() != 0 {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no room after closing a connection"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_not_reading_replies_does_not_stall_the_server() {
    common::bounded(120, async {
        let s = server();
        let mut c = s.raw();
        assert_eq!(c.create("/lim_slow", &[b'd'; 200], 0).err, 0);
        const N: i32 = 50_000;
        let first = c.next_xid();
        let mut frames = Vec::with_capacity(N as usize * 30);
        for i in 0..N {
            frames.extend(raw::request_frame(
                first + 1 + i,
                op::GET_DATA,
                &raw::path_watch("/lim_slow", false),
            ));
        }
        let mut w = c.stream.try_clone().unwrap();
        w.set_write_timeout(Some(Duration::from_secs(60))).unwrap();
        let writer = std::thread::spawn(move || w.write_all(&frames));

        // Once the server has taken a full outstanding window (1000) from the
        // flood, that connection's replies pile up unread: from then on other
        // clients must still be served promptly.
        let port = c.stream.local_addr().unwrap().port();
        common::eventually(
            Duration::from_secs(30),
            "the flood to reach the server",
            || async {
                let cons = s.four_letter("cons");
                let line = cons.lines().find(|l| l.contains(&format!(":{port}[")))?;
                let recved: u64 = line
                    .split("recved=")
                    .nth(1)?
                    .split(',')
                    .next()?
                    .parse()
                    .ok()?;
                (recved >= 1000).then_some(())
            },
        )
        .await;
        let check_start = Instant::now();
        while check_start.elapsed() < Duration::from_secs(2) {
            let t = Instant::now();
            let mut other = s.raw();
            assert_eq!(other.set_data("/lim_slow", &[b'd'; 200]).1.err, 0);
            assert_eq!(other.get_data("/lim_slow", false).1.err, 0);
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "server unresponsive while a client does not read: {:?}",
                t.elapsed()
            );
            std::thread::sleep(Duration::from_millis(100));
        }

        // Then the slow client reads everything, in order, and its connection still works.
        for i in 0..N {
            let rep = c.read_reply().unwrap_or_else(|e| panic!("reply {i}: {e}"));
            assert_eq!(rep.xid, first + 1 + i);
            assert_eq!(rep.err, 0);
        }
        writer.join().unwrap().expect("writer");
        for _ in 0..N {
            let _ = c.next_xid();
        }
        assert_eq!(c.exists("/lim_slow", false).1.err, 0);
    })
    .await;
}

/// A connection that never sends its handshake is closed (ZooKeeper's
/// sessionless-connection timeout, 10 s), so idle sockets cannot pile up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connection_is_closed_after_the_handshake_timeout() {
    common::bounded(60, async {
        let mut silent = server().tcp();
        let started = Instant::now();
        assert!(
            raw::wait_closed(&mut silent, Duration::from_secs(30)),
            "a connection without a handshake stayed open for 30 s"
        );
        assert!(
            started.elapsed() >= Duration::from_secs(5),
            "closed too early"
        );
        assert_serving(server());
    })
    .await;
}

/// Watches are memory a client could grow without limit: past
/// `ferrokeeper.maxWatchesPerConnection` the connection is closed (after the
/// reply), and other clients are unaffected. Ferrokeeper's own bound: Apache
/// ZooKeeper has none, so this test does not apply to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_per_connection_are_bounded() {
    if common::is_apache() {
        eprintln!(
            "watches_per_connection_are_bounded: a Ferrokeeper-only bound; not run against Apache"
        );
        return;
    }
    common::bounded(60, async {
        let s = Server::start(&[("ferrokeeper.maxWatchesPerConnection", "20")]);
        let mut c = s.raw();
        for i in 0..20 {
            let (_, reply) = c.exists(&format!("/watched{i}"), true);
            assert_eq!(reply.err, err::NO_NODE, "watch {i} is within the bound");
        }
        assert_eq!(
            s.four_letter("wchs").lines().last().unwrap_or(""),
            "Total watches:20"
        );
        let (_, reply) = c.exists("/one-too-many", true);
        assert_eq!(reply.err, err::NO_NODE, "the request is still answered");
        assert!(
            c.wait_closed(Duration::from_secs(10)),
            "then the connection closes"
        );
        assert_serving(&s);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_read_of_a_huge_reply_closes_only_that_connection() {
    if common::is_apache() {
        eprintln!("multi_read_of_a_huge_reply: a Ferrokeeper-only bound; not run against Apache");
        return;
    }
    common::bounded(120, async {
        // Default jute.maxbuffer (1 MB): one node of ~1 MB, read 80 times in one
        // multiRead of a few KB, asks for an 80 MB reply.
        let s = Server::start(&[]);
        let mut c = s.raw();
        assert_eq!(c.create("/lim_huge", &vec![b'h'; 1_000_000], 0).err, 0);
        let ops: Vec<raw::MultiOp> = (0..80)
            .map(|_| raw::MultiOp {
                op: op::GET_DATA,
                body: raw::path_watch("/lim_huge", false),
            })
            .collect();
        c.send(op::MULTI_READ, &raw::multi_body(&ops));
        assert!(
            c.wait_closed(Duration::from_secs(30)),
            "an 80 MB multiRead reply did not close the connection"
        );
        assert_serving(&s);
    })
    .await;
}

/// A client that never reads while watch events pile up for it (events cannot be
/// throttled like reads: they must be delivered or the connection closed): once the
/// server holds more than the hard cap (16 MiB) for it for longer than the timeout
/// (10 s), the connection is closed, logged and counted in mntr, and other clients are
/// unaffected. Ferrokeeper's own bound: Apache buffers events without one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_that_never_reads_its_events_is_closed_after_the_hard_cap_timeout() {
    if common::is_apache() {
        eprintln!(
            "client_that_never_reads_its_events: a Ferrokeeper-only bound; not run against Apache"
        );
        return;
    }
    common::bounded(180, async {
        let s = Server::start(&[]);
        let name = "n".repeat(900);
        let path = format!("/deaf/{name}");
        let mut writer = s.raw();
        assert_eq!(writer.create("/deaf", b"", 0).err, 0);
        assert_eq!(writer.create(&path, b"", 0).err, 0);
        // Within maxSessionTimeout: the session must outlive the test, so that only
        // the hard cap can close the connection.
        let mut deaf = s.raw_with_timeout(40_000);
        let watch = raw::add_watch_body("/deaf", 1); // persistent recursive
        assert_eq!(deaf.req(op::ADD_WATCH, &watch).err, 0);
        let deaf_port = deaf.stream.local_addr().unwrap().port();

        // ~40k events of ~940 bytes: ~37 MB, far more than the kernel's socket
        // buffers take, so more than the hard cap stays in the server.
        const BATCH: i32 = 1000;
        for _ in 0..40 {
            let first = writer.next_xid();
            let mut frames = Vec::new();
            for i in 0..BATCH {
                let body = raw::set_data_body(&path, b"x", -1);
                frames.extend(raw::request_frame(first + 1 + i, op::SET_DATA, &body));
            }
            writer.write_all(&frames).unwrap();
            for i in 0..BATCH {
                let reply = writer.read_reply().unwrap();
                assert_eq!((reply.xid, reply.err), (first + 1 + i, 0));
            }
            for _ in 0..BATCH {
                let _ = writer.next_xid();
            }
        }
        let stuck_since = Instant::now();
        common::eventually(
            Duration::from_secs(60),
            "the server to close the connection that does not read",
            || async {
                let mntr = s.four_letter("mntr");
                let closed = mntr.lines().any(|l| l == "zk_slow_clients_closed\t1");
                let listed = s.four_letter("cons").contains(&format!(":{deaf_port}["));
                (closed && !listed).then_some(())
            },
        )
        .await;
        eprintln!("closed {:?} after the writes ended", stuck_since.elapsed());
        assert!(
            s.log_tail(200)
                .contains("the client is not reading, closing"),
            "the close is logged"
        );
        assert!(
            deaf.wait_closed(Duration::from_secs(30)),
            "the socket is closed"
        );
        assert_eq!(
            writer.get_data(&path, false).1.err,
            0,
            "the writer is unaffected"
        );
        assert_serving(&s);
    })
    .await;
}

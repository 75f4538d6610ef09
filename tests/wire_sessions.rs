//! Sessions: timeout negotiation, expiry, resume with id + password, refused reconnects,
//! closeSession, handshake variants.
//!
//! The shared server runs with tickTime=200, so the default bounds are
//! minSessionTimeout = 400 ms and maxSessionTimeout = 4000 ms.

mod common;

use std::time::{Duration, Instant};

use common::raw::{self, err, op, Conn, ConnectRequest};
use common::zk::{self, CreateMode, EventType};
use common::{mode, open, within, Server};

static SERVER: common::Shared = common::Shared::new();

fn server() -> &'static Server {
    common::shared(&SERVER, &[("tickTime", "200")])
}

fn handshake(s: &Server, timeout_ms: i32) -> raw::ConnectResponse {
    let c = Conn::connect(s.addr(), timeout_ms);
    c.resp.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_negotiation_default_bounds() {
    common::bounded(45, async {
        let s = server();
        // defaults: [2 x tickTime, 20 x tickTime] = [400, 4000]
        assert_eq!(handshake(s, 1).timeout_ms, 400);
        assert_eq!(handshake(s, 100).timeout_ms, 400);
        assert_eq!(handshake(s, 400).timeout_ms, 400);
        assert_eq!(handshake(s, 1234).timeout_ms, 1234);
        assert_eq!(handshake(s, 4000).timeout_ms, 4000);
        assert_eq!(handshake(s, 600_000).timeout_ms, 4000);
        let c = s.client_with_timeout(60_000).await;
        assert_eq!(c.session_timeout(), Duration::from_millis(4000));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_negotiation_configured_bounds() {
    common::bounded(45, async {
        let s = Server::start(&[
            ("tickTime", "200"),
            ("minSessionTimeout", "1000"),
            ("maxSessionTimeout", "3000"),
        ]);
        assert_eq!(handshake(&s, 100).timeout_ms, 1000);
        assert_eq!(handshake(&s, 999).timeout_ms, 1000);
        assert_eq!(handshake(&s, 2000).timeout_ms, 2000);
        assert_eq!(handshake(&s, 3001).timeout_ms, 3000);
        assert_eq!(handshake(&s, 60_000).timeout_ms, 3000);
        let c = s.client_with_timeout(10_000).await;
        assert_eq!(c.session_timeout(), Duration::from_millis(3000));
        let conf = s.four_letter("conf");
        assert!(conf.contains("minSessionTimeout=1000"), "{conf}");
        assert!(conf.contains("maxSessionTimeout=3000"), "{conf}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_reply_fields() {
    common::bounded(45, async {
        let s = server();
        let a = handshake(s, 2000);
        let b = handshake(s, 2000);
        assert_eq!(a.protocol_version, 0);
        assert_ne!(a.session_id, 0);
        assert_ne!(
            a.session_id, b.session_id,
            "distinct sessions get distinct ids"
        );
        assert_eq!(a.passwd.len(), 16, "password is 16 bytes");
        assert_ne!(a.passwd, vec![0u8; 16]);
        assert_eq!(a.read_only, Some(false));
        assert_eq!(a.len, 37, "new-style reply carries the readOnly byte");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_style_connect_without_read_only_byte() {
    common::bounded(45, async {
        let s = server();
        let req = ConnectRequest {
            read_only: None,
            ..ConnectRequest::new(2000)
        };
        let mut c = Conn::connect_with(s.addr(), &req).expect("old-style handshake");
        assert_ne!(c.session_id(), 0);
        assert_eq!(
            c.resp.read_only, None,
            "no readOnly byte in the reply to an old client"
        );
        assert_eq!(c.resp.len, 36);
        assert_eq!(c.resp.timeout_ms, 2000);
        // the session works
        assert_eq!(c.create("/sess_old_style", b"v", 1).err, 0);
        let (_, rep) = c.get_data("/sess_old_style", false);
        assert_eq!(rep.err, 0);
        assert_eq!(rep.data().1.ephemeral_owner, c.session_id());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pings_keep_a_session_alive() {
    common::bounded(45, async {
        let s = server();
        let mut c = s.raw_with_timeout(800);
        assert_eq!(c.resp.timeout_ms, 800);
        assert_eq!(c.create("/sess_ping", b"", 1).err, 0);
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(2500) {
            c.ping().expect("ping answered");
            std::thread::sleep(Duration::from_millis(200));
        }
        let (_, rep) = c.exists("/sess_ping", false);
        assert_eq!(
            rep.err, 0,
            "session still alive after 3x its timeout thanks to pings"
        );
        assert_eq!(rep.stat().ephemeral_owner, c.session_id());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_deletes_ephemerals_and_fires_watches() {
    common::bounded(45, async {
        let s = server();
        let observer = s.client().await;
        observer.create("/sess_exp", b"", &open()).await.unwrap();

        let mut victim = s.raw_with_timeout(800);
        assert_eq!(victim.resp.timeout_ms, 800);
        let (sid, pw) = (victim.session_id(), victim.passwd());
        assert_eq!(victim.create("/sess_exp/e", b"", 1).err, 0);
        assert_eq!(victim.create("/sess_exp/es-", b"", 3).err, 0);

        let (_, _, data_watch) = observer.get_and_watch_data("/sess_exp/e").await.unwrap();
        let (_, child_watch) = observer.list_and_watch_children("/sess_exp").await.unwrap();

        // Cut the TCP connection without closeSession.
        let cut = Instant::now();
        victim.drop_tcp();
        // The session outlives its connection until the timeout.
        assert!(
            observer.check_stat("/sess_exp/e").await.unwrap().is_some(),
            "ephemeral deleted at disconnect"
        );

        let ev = within(10, "NodeDeleted after session expiry", data_watch.changed()).await;
        let elapsed = cut.elapsed();
        assert_eq!(ev.event_type, EventType::NodeDeleted);
        assert_eq!(ev.path, "/sess_exp/e");
        assert!(
            elapsed >= Duration::from_millis(400),
            "expired too early: {elapsed:?} for an 800 ms session"
        );
        let ev = within(
            10,
            "NodeChildrenChanged after expiry",
            child_watch.changed(),
        )
        .await;
        assert_eq!(ev.event_type, EventType::NodeChildrenChanged);
        assert_eq!(ev.path, "/sess_exp");
        assert!(
            observer
                .list_children("/sess_exp")
                .await
                .unwrap()
                .is_empty(),
            "all ephemerals of the session are gone"
        );

        // Reconnecting with the expired session: timeout 0, session id 0, zero password, then close.
        let mut again = Conn::connect_with(s.addr(), &ConnectRequest::resume(800, sid, &pw))
            .expect("expired reply");
        assert_eq!(again.resp.timeout_ms, 0);
        assert_eq!(again.resp.session_id, 0);
        assert_eq!(again.resp.passwd, vec![0u8; 16]);
        assert!(
            again.wait_closed(Duration::from_secs(5)),
            "connection closed after the expired reply"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zookeeper_client_sees_expired_session() {
    common::bounded(45, async {
        let s = server();
        let observer = s.client().await;
        // A detached client does not send closeSession when dropped: it just goes away.
        let c = s
            .connect(
                zk::Client::connector()
                    .with_session_timeout(Duration::from_millis(800))
                    .with_detached(),
            )
            .await;
        c.create("/sess_detached", b"", &mode(CreateMode::Ephemeral))
            .await
            .unwrap();
        let (_, _, w) = observer.get_and_watch_data("/sess_detached").await.unwrap();
        let info = c.session().clone();
        drop(c);
        let ev = within(10, "expiry of the abandoned session", w.changed()).await;
        assert_eq!(ev.event_type, EventType::NodeDeleted);
        let r = s
            .try_connect(
                zk::Client::connector()
                    .with_session(info)
                    .with_session_timeout(Duration::from_millis(800)),
            )
            .await;
        assert_eq!(r.unwrap_err(), zk::Error::SessionExpired);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_with_id_and_password() {
    common::bounded(45, async {
        let s = server();
        let mut a = s.raw_with_timeout(4000);
        let (sid, pw) = (a.session_id(), a.passwd());
        assert_eq!(a.create("/sess_resume", b"", 1).err, 0);

        // Resume on a second connection while the first is still open: the old one is closed.
        let mut b =
            Conn::connect_with(s.addr(), &ConnectRequest::resume(4000, sid, &pw)).expect("resume");
        assert_eq!(b.session_id(), sid);
        assert_eq!(b.resp.timeout_ms, 4000);
        assert_eq!(b.passwd(), pw, "same password for the same session");
        assert!(
            a.wait_closed(Duration::from_secs(5)),
            "old connection of a resumed session is closed"
        );
        let (_, rep) = b.exists("/sess_resume", false);
        assert_eq!(rep.err, 0);
        assert_eq!(rep.stat().ephemeral_owner, sid);

        // Resume after an abrupt disconnect, within the timeout.
        b.drop_tcp();
        let mut c =
            Conn::connect_with(s.addr(), &ConnectRequest::resume(4000, sid, &pw)).expect("resume");
        assert_eq!(c.session_id(), sid);
        let (_, rep) = c.exists("/sess_resume", false);
        assert_eq!(rep.err, 0, "ephemeral survives a reconnect");

        // The zxid the client has seen is accepted when it is not ahead of the server.
        let (_, rep) = c.exists("/sess_resume", false);
        let seen = rep.zxid;
        c.drop_tcp();
        let req = ConnectRequest {
            last_zxid_seen: seen,
            ..ConnectRequest::resume(4000, sid, &pw)
        };
        let mut d = Conn::connect_with(s.addr(), &req).expect("resume with lastZxidSeen");
        assert_eq!(d.session_id(), sid);
        assert_eq!(d.close_session().err, 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_or_unknown_session_is_refused() {
    common::bounded(45, async {
        let s = server();
        let mut a = s.raw_with_timeout(4000);
        let (sid, good_pw) = (a.session_id(), a.passwd());
        assert_eq!(a.create("/sess_wrongpw", b"", 1).err, 0);
        let mut pw = good_pw.clone();
        pw[0] ^= 0xff;
        let mut bad =
            Conn::connect_with(s.addr(), &ConnectRequest::resume(4000, sid, &pw)).expect("reply");
        assert_eq!((bad.resp.timeout_ms, bad.resp.session_id), (0, 0));
        assert_eq!(bad.resp.passwd, vec![0u8; 16]);
        assert!(bad.wait_closed(Duration::from_secs(5)));
        // The session itself survives (ZooKeeper does close the session's current connection on
        // any reconnect attempt, even one with a wrong password, so `a` is not used again).
        drop(a);
        let mut again = Conn::connect_with(s.addr(), &ConnectRequest::resume(4000, sid, &good_pw))
            .expect("reply");
        assert_eq!(again.session_id(), sid);
        let (_, rep) = again.exists("/sess_wrongpw", false);
        assert_eq!(
            rep.err, 0,
            "ephemeral of the session survives a wrong-password attempt"
        );
        assert_eq!(rep.stat().ephemeral_owner, sid);

        // an id the server never issued
        let unknown = sid ^ 0x5a5a_5a5a;
        let mut u =
            Conn::connect_with(s.addr(), &ConnectRequest::resume(4000, unknown, &[7u8; 16]))
                .expect("reply");
        assert_eq!((u.resp.timeout_ms, u.resp.session_id), (0, 0));
        assert!(u.wait_closed(Duration::from_secs(5)));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_ahead_of_server_is_refused() {
    common::bounded(45, async {
        let s = server();
        let req = ConnectRequest {
            last_zxid_seen: 0x7fff_0000_0000_0000,
            ..ConnectRequest::new(2000)
        };
        let mut t = s.send_raw(&req.encode());
        match raw::read_frame(&mut t) {
            Err(e) => assert!(raw::is_closed(&e), "neither answered nor closed: {e}"),
            Ok(body) => panic!(
                "server accepted a client that has seen a future zxid: {:?}",
                raw::parse_connect_response(&body)
            ),
        }
        // still serving
        assert_ne!(s.raw().session_id(), 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_session_deletes_ephemerals_immediately() {
    common::bounded(45, async {
        let s = server();
        let observer = s.client().await;
        observer.create("/sess_close", b"", &open()).await.unwrap();
        let mut a = s.raw_with_timeout(4000);
        let (sid, pw) = (a.session_id(), a.passwd());
        assert_eq!(a.create("/sess_close/e", b"", 1).err, 0);
        let (_, _, w) = observer.get_and_watch_data("/sess_close/e").await.unwrap();

        let rep = a.close_session();
        assert_eq!(rep.err, 0);
        assert!(rep.body.is_empty());
        assert!(
            a.wait_closed(Duration::from_secs(5)),
            "server closes the connection after closeSession"
        );
        let ev = within(5, "NodeDeleted after closeSession", w.changed()).await;
        assert_eq!(
            (ev.event_type, ev.path.as_str()),
            (EventType::NodeDeleted, "/sess_close/e")
        );
        assert!(observer
            .check_stat("/sess_close/e")
            .await
            .unwrap()
            .is_none());

        // a closed session cannot be resumed
        let mut again =
            Conn::connect_with(s.addr(), &ConnectRequest::resume(4000, sid, &pw)).expect("reply");
        assert_eq!((again.resp.timeout_ms, again.resp.session_id), (0, 0));
        assert!(again.wait_closed(Duration::from_secs(5)));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zookeeper_client_session_lifecycle() {
    common::bounded(45, async {
        let s = server();
        let c = s.client_with_timeout(4000).await;
        assert_eq!(c.session_timeout(), Duration::from_millis(4000));
        assert_eq!(c.state(), zk::SessionState::SyncConnected);
        c.create("/sess_zkc", b"", &open()).await.unwrap();
        c.create("/sess_zkc/e", b"", &mode(CreateMode::Ephemeral))
            .await
            .unwrap();
        let observer = s.client().await;
        let (_, _, w) = observer.get_and_watch_data("/sess_zkc/e").await.unwrap();
        // Dropping the last Client handle closes the session (closeSession), deleting its ephemerals.
        let t = Instant::now();
        drop(c);
        let ev = within(10, "ephemeral removed after client drop", w.changed()).await;
        assert_eq!(ev.event_type, EventType::NodeDeleted);
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "removed by expiry, not by closeSession"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_session_fifo_with_pipelined_requests() {
    common::bounded(45, async {
        let s = server();
        let mut c = s.raw();
        assert_eq!(c.create("/sess_fifo", b"0", 0).err, 0);
        // write, read, write, read ... without waiting: every read sees the preceding write
        let mut xids = Vec::new();
        for i in 1..=50 {
            xids.push((
                c.send(
                    op::SET_DATA,
                    &raw::set_data_body("/sess_fifo", i.to_string().as_bytes(), -1),
                ),
                None,
            ));
            xids.push((
                c.send(op::GET_DATA, &raw::path_watch("/sess_fifo", false)),
                Some(i),
            ));
        }
        for (xid, expect) in xids {
            let (ev, rep) = c.read_until(xid);
            assert!(ev.is_empty());
            assert_eq!(rep.err, 0);
            if let Some(i) = expect {
                let (data, st) = rep.data();
                assert_eq!(data.unwrap(), i.to_string().as_bytes());
                assert_eq!(st.version, i);
            }
        }
        // errors do not break ordering
        let x1 = c.send(op::GET_DATA, &raw::path_watch("/sess_fifo_missing", false));
        let x2 = c.send(op::GET_DATA, &raw::path_watch("/sess_fifo", false));
        assert_eq!(c.read_until(x1).1.err, err::NO_NODE);
        assert_eq!(c.read_until(x2).1.err, 0);
    })
    .await;
}

//! `probe`: one session writing back to back, the way a user's client sees a
//! failover. It records when every write is acknowledged and when its
//! connection is lost and made again, as JSON lines on stdout, so a script
//! that kills or pauses a server can measure the gap a client saw.
//!
//! It behaves like ZooKeeper's Java client (`ClientCnxn`): it pings when it
//! has sent nothing for a third of the session timeout, declares the
//! connection lost when it has heard nothing for two thirds of it, and then
//! resumes the same session on the next server of the connect string (at
//! once: the Java client's random pause of up to 1 s before a reconnect is
//! the client's own choice, not the ensemble's). A write in flight on a lost
//! connection counts as failed (Java's ConnectionLoss); the next one goes to
//! the new connection.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ferrokeeper::proto::{
    encode_request_frame, frame_len, op, xid, Acl, ConnectRequest, ConnectResponse, CreateMode,
    CreateRequest, ReplyHeader, Request,
};
use serde_json::json;

/// How often a blocked read wakes to check the ping and loss deadlines.
const POLL_SLICE: Duration = Duration::from_millis(5);
/// Bound on one TCP connect (loopback refuses or accepts at once).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Largest reply frame the probe accepts.
const FRAME_BYTES_MAX: usize = 1 << 20;
/// ZooKeeper's "node exists" error code.
const ERR_NODE_EXISTS: i32 = -110;

pub struct ProbeSettings {
    pub servers: Vec<SocketAddr>,
    pub duration: Duration,
    pub session_timeout_ms: i32,
    pub path: String,
    pub value_size: usize,
}

fn unix_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

fn event(kind: &str, server: SocketAddr, detail: &str) {
    let line =
        json!({"ev": kind, "t_us": unix_us(), "server": server.to_string(), "detail": detail});
    println!("{line}");
    let _ = io::stdout().flush();
}

/// One connection of the session.
struct Conn {
    stream: TcpStream,
    rbuf: Vec<u8>,
    read_timeout: Duration,
    last_sent: Instant,
    last_heard: Instant,
    /// The handshake is answered: pings may be sent (not before, as in Java).
    established: bool,
}

/// The session the probe keeps across connections.
#[derive(Default)]
struct Session {
    id: i64,
    passwd: [u8; 16],
    last_zxid: i64,
    timeout_ms: i32,
}

fn proto_err(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

impl Conn {
    /// Connects and resumes (or, with id 0, creates) the session.
    fn open(server: SocketAddr, session: &mut Session, want_ms: i32) -> io::Result<Conn> {
        let stream = TcpStream::connect_timeout(&server, CONNECT_TIMEOUT)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(POLL_SLICE))?;
        let now = Instant::now();
        let mut c = Conn {
            stream,
            rbuf: Vec::new(),
            read_timeout: Duration::from_millis(want_ms as u64 * 2 / 3),
            last_sent: now,
            last_heard: now,
            established: false,
        };
        let mut frame = Vec::new();
        ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: session.last_zxid,
            timeout_ms: want_ms,
            session_id: session.id,
            passwd: &session.passwd,
            read_only: Some(false),
        }
        .encode_frame(&mut frame);
        c.stream.write_all(&frame)?;
        let body = c.next_frame()?;
        let resp = ConnectResponse::decode(&body).map_err(|e| proto_err(e.to_string()))?;
        if resp.timeout_ms <= 0 {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "session expired",
            ));
        }
        session.id = resp.session_id;
        session.passwd = resp.passwd;
        session.timeout_ms = resp.timeout_ms;
        c.read_timeout = Duration::from_millis(resp.timeout_ms as u64 * 2 / 3);
        c.established = true;
        Ok(c)
    }

    fn send(&mut self, xid: i32, req: &Request<'_>) -> io::Result<()> {
        let mut frame = Vec::new();
        encode_request_frame(&mut frame, xid, req);
        self.stream.write_all(&frame)?;
        self.last_sent = Instant::now();
        Ok(())
    }

    /// The next frame, pinging while it waits; Err once nothing was heard for
    /// the read timeout (the connection is lost, as the Java client decides).
    fn next_frame(&mut self) -> io::Result<Vec<u8>> {
        loop {
            if let Some(total) =
                frame_len(&self.rbuf, FRAME_BYTES_MAX).map_err(|e| proto_err(e.to_string()))?
            {
                let body = self.rbuf[4..total].to_vec();
                self.rbuf.drain(..total);
                self.last_heard = Instant::now();
                return Ok(body);
            }
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed")),
                Ok(n) => self.rbuf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.kind() == io::ErrorKind::TimedOut =>
                {
                    self.on_idle()?
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn on_idle(&mut self) -> io::Result<()> {
        if self.last_heard.elapsed() >= self.read_timeout {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "nothing heard for the read timeout",
            ));
        }
        if self.established && self.last_sent.elapsed() >= self.read_timeout / 2 {
            self.send(xid::PING, &Request::Ping)?;
        }
        Ok(())
    }

    /// Waits for the reply to `want`; returns its error code.
    fn reply(&mut self, want: i32, session: &mut Session) -> io::Result<i32> {
        loop {
            let body = self.next_frame()?;
            let (hdr, _) = ReplyHeader::split(&body).map_err(|e| proto_err(e.to_string()))?;
            if hdr.zxid > 0 {
                session.last_zxid = session.last_zxid.max(hdr.zxid);
            }
            if hdr.xid == want {
                return Ok(hdr.err);
            }
        }
    }
}

/// Runs the probe; the last line on stdout is the summary with every
/// acknowledgement's time.
pub fn run(s: &ProbeSettings) -> Result<i32, String> {
    if s.servers.is_empty() {
        return Err("probe needs at least one server".into());
    }
    let deadline = Instant::now() + s.duration;
    let value = vec![b'p'; s.value_size];
    let mut session = Session::default();
    let mut acks_us: Vec<u64> = Vec::new();
    let mut failed = 0u64;
    let mut next_server = 0usize;
    let mut next_xid = 1i32;
    let mut made_node = false;
    while Instant::now() < deadline {
        let server = s.servers[next_server % s.servers.len()];
        next_server += 1;
        let mut conn = match Conn::open(server, &mut session, s.session_timeout_ms) {
            Ok(c) => c,
            Err(e) => {
                if e.kind() == io::ErrorKind::PermissionDenied {
                    event("expired", server, "session expired; starting a new one");
                    session = Session::default();
                }
                if next_server.is_multiple_of(s.servers.len()) {
                    // Every server refused once: do not spin.
                    std::thread::sleep(POLL_SLICE);
                }
                continue;
            }
        };
        event("connected", server, &format!("session 0x{:x}", session.id));
        let result = (|| -> io::Result<()> {
            if !made_node {
                let x = next_xid;
                next_xid += 1;
                let create = CreateRequest {
                    path: &s.path,
                    data: Some(&value),
                    acl: Acl::open_unsafe(),
                    flags: CreateMode::Persistent as i32,
                    ttl_ms: None,
                };
                conn.send(
                    x,
                    &Request::Create {
                        op: op::CREATE,
                        req: create,
                    },
                )?;
                match conn.reply(x, &mut session)? {
                    0 | ERR_NODE_EXISTS => made_node = true,
                    err => return Err(proto_err(format!("create answered {err}"))),
                }
            }
            while Instant::now() < deadline {
                let x = next_xid;
                next_xid += 1;
                conn.send(
                    x,
                    &Request::SetData {
                        path: &s.path,
                        data: Some(&value),
                        version: -1,
                    },
                )?;
                match conn.reply(x, &mut session)? {
                    0 => {
                        if acks_us.is_empty() {
                            event("first_ack", server, "");
                        }
                        acks_us.push(unix_us());
                    }
                    err => {
                        failed += 1;
                        event("write_error", server, &err.to_string());
                    }
                }
            }
            let _ = conn.send(next_xid, &Request::CloseSession);
            Ok(())
        })();
        if let Err(e) = result {
            failed += 1;
            event("lost", server, &e.to_string());
        }
    }
    let summary = json!({
        "ev": "done",
        "t_us": unix_us(),
        "acks": acks_us.len(),
        "failed": failed,
        "acks_us": acks_us,
    });
    println!("{summary}");
    Ok(0)
}

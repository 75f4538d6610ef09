//! A small, independent ZooKeeper wire-protocol client written with std only.
//!
//! It exists for what `zookeeper-client` cannot express: malformed input, exact frame
//! ordering, pipelining, old-style handshakes, unknown opcodes. Everything is blocking with
//! socket timeouts, so every wait is bounded.

#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Default bound for a single blocking read/write on a raw connection.
pub const IO_TIMEOUT: Duration = Duration::from_secs(15);

pub mod op {
    pub const CREATE: i32 = 1;
    pub const DELETE: i32 = 2;
    pub const EXISTS: i32 = 3;
    pub const GET_DATA: i32 = 4;
    pub const SET_DATA: i32 = 5;
    pub const GET_ACL: i32 = 6;
    pub const SET_ACL: i32 = 7;
    pub const GET_CHILDREN: i32 = 8;
    pub const SYNC: i32 = 9;
    pub const PING: i32 = 11;
    pub const GET_CHILDREN2: i32 = 12;
    pub const CHECK: i32 = 13;
    pub const MULTI: i32 = 14;
    pub const CREATE2: i32 = 15;
    pub const CHECK_WATCHES: i32 = 17;
    pub const REMOVE_WATCHES: i32 = 18;
    pub const CREATE_CONTAINER: i32 = 19;
    pub const CREATE_TTL: i32 = 21;
    pub const MULTI_READ: i32 = 22;
    pub const AUTH: i32 = 100;
    pub const SET_WATCHES: i32 = 101;
    pub const GET_EPHEMERALS: i32 = 103;
    pub const GET_ALL_CHILDREN_NUMBER: i32 = 104;
    pub const ADD_WATCH: i32 = 106;
    pub const WHO_AM_I: i32 = 107;
    pub const CLOSE_SESSION: i32 = -11;
}

pub mod err {
    pub const OK: i32 = 0;
    pub const RUNTIME_INCONSISTENCY: i32 = -2;
    pub const MARSHALLING_ERROR: i32 = -5;
    pub const UNIMPLEMENTED: i32 = -6;
    pub const BAD_ARGUMENTS: i32 = -8;
    pub const NO_NODE: i32 = -101;
    pub const NO_AUTH: i32 = -102;
    pub const BAD_VERSION: i32 = -103;
    pub const NO_CHILDREN_FOR_EPHEMERALS: i32 = -108;
    pub const NODE_EXISTS: i32 = -110;
    pub const NOT_EMPTY: i32 = -111;
    pub const SESSION_EXPIRED: i32 = -112;
    pub const INVALID_ACL: i32 = -114;
    pub const AUTH_FAILED: i32 = -115;
    pub const NO_WATCHER: i32 = -121;
}

pub mod xid {
    pub const NOTIFICATION: i32 = -1;
    pub const PING: i32 = -2;
    pub const AUTH: i32 = -4;
    pub const SET_WATCHES: i32 = -8;
}

pub mod event {
    pub const NODE_CREATED: i32 = 1;
    pub const NODE_DELETED: i32 = 2;
    pub const NODE_DATA_CHANGED: i32 = 3;
    pub const NODE_CHILDREN_CHANGED: i32 = 4;
}

pub mod perms {
    pub const READ: i32 = 1;
    pub const WRITE: i32 = 2;
    pub const CREATE: i32 = 4;
    pub const DELETE: i32 = 8;
    pub const ADMIN: i32 = 16;
    pub const ALL: i32 = 31;
}

// ---------------------------------------------------------------------------------------------
// Jute encoding

/// Jute encoder into a growable buffer.
#[derive(Default, Clone, Debug)]
pub struct Enc(pub Vec<u8>);

impl Enc {
    pub fn new() -> Enc {
        Enc(Vec::new())
    }
    pub fn int(mut self, v: i32) -> Enc {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn long(mut self, v: i64) -> Enc {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn boolean(mut self, v: bool) -> Enc {
        self.0.push(v as u8);
        self
    }
    pub fn buffer(self, v: &[u8]) -> Enc {
        let mut e = self.int(v.len() as i32);
        e.0.extend_from_slice(v);
        e
    }
    pub fn null_buffer(self) -> Enc {
        self.int(-1)
    }
    pub fn string(self, v: &str) -> Enc {
        self.buffer(v.as_bytes())
    }
    pub fn raw(mut self, v: &[u8]) -> Enc {
        self.0.extend_from_slice(v);
        self
    }
    pub fn acls(self, acls: &[Acl]) -> Enc {
        let mut e = self.int(acls.len() as i32);
        for a in acls {
            e = e.int(a.perms).string(&a.scheme).string(&a.id);
        }
        e
    }
    pub fn strings(self, v: &[&str]) -> Enc {
        let mut e = self.int(v.len() as i32);
        for s in v {
            e = e.string(s);
        }
        e
    }
    pub fn bytes(self) -> Vec<u8> {
        self.0
    }
}

/// Jute decoder over a byte slice. Every getter panics with a clear message on short input.
pub struct Dec<'a> {
    pub buf: &'a [u8],
    pub pos: usize,
}

impl<'a> Dec<'a> {
    pub fn new(buf: &'a [u8]) -> Dec<'a> {
        Dec { buf, pos: 0 }
    }
    fn take(&mut self, n: usize) -> &'a [u8] {
        assert!(
            self.pos + n <= self.buf.len(),
            "short record: need {} bytes at {}, have {}",
            n,
            self.pos,
            self.buf.len()
        );
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        s
    }
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    pub fn int(&mut self) -> i32 {
        i32::from_be_bytes(self.take(4).try_into().unwrap())
    }
    pub fn long(&mut self) -> i64 {
        i64::from_be_bytes(self.take(8).try_into().unwrap())
    }
    pub fn boolean(&mut self) -> bool {
        self.take(1)[0] != 0
    }
    pub fn buffer(&mut self) -> Option<Vec<u8>> {
        let n = self.int();
        if n < 0 {
            None
        } else {
            Some(self.take(n as usize).to_vec())
        }
    }
    pub fn string(&mut self) -> String {
        String::from_utf8(self.buffer().unwrap_or_default()).expect("utf-8 string")
    }
    pub fn strings(&mut self) -> Vec<String> {
        let n = self.int();
        (0..n.max(0)).map(|_| self.string()).collect()
    }
    pub fn stat(&mut self) -> Stat {
        Stat {
            czxid: self.long(),
            mzxid: self.long(),
            ctime: self.long(),
            mtime: self.long(),
            version: self.int(),
            cversion: self.int(),
            aversion: self.int(),
            ephemeral_owner: self.long(),
            data_length: self.int(),
            num_children: self.int(),
            pzxid: self.long(),
        }
    }
    pub fn acls(&mut self) -> Vec<Acl> {
        let n = self.int();
        (0..n.max(0))
            .map(|_| Acl {
                perms: self.int(),
                scheme: self.string(),
                id: self.string(),
            })
            .collect()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Stat {
    pub czxid: i64,
    pub mzxid: i64,
    pub ctime: i64,
    pub mtime: i64,
    pub version: i32,
    pub cversion: i32,
    pub aversion: i32,
    pub ephemeral_owner: i64,
    pub data_length: i32,
    pub num_children: i32,
    pub pzxid: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Acl {
    pub perms: i32,
    pub scheme: String,
    pub id: String,
}

impl Acl {
    pub fn new(perms: i32, scheme: &str, id: &str) -> Acl {
        Acl {
            perms,
            scheme: scheme.to_string(),
            id: id.to_string(),
        }
    }
    pub fn world_all() -> Vec<Acl> {
        vec![Acl::new(perms::ALL, "world", "anyone")]
    }
}

// ---------------------------------------------------------------------------------------------
// Request bodies

pub fn path_body(path: &str) -> Vec<u8> {
    Enc::new().string(path).bytes()
}
pub fn path_watch(path: &str, watch: bool) -> Vec<u8> {
    Enc::new().string(path).boolean(watch).bytes()
}
pub fn create_body(path: &str, data: &[u8], acl: &[Acl], flags: i32) -> Vec<u8> {
    Enc::new()
        .string(path)
        .buffer(data)
        .acls(acl)
        .int(flags)
        .bytes()
}
pub fn create_ttl_body(path: &str, data: &[u8], acl: &[Acl], flags: i32, ttl: i64) -> Vec<u8> {
    Enc::new()
        .string(path)
        .buffer(data)
        .acls(acl)
        .int(flags)
        .long(ttl)
        .bytes()
}
pub fn set_data_body(path: &str, data: &[u8], version: i32) -> Vec<u8> {
    Enc::new().string(path).buffer(data).int(version).bytes()
}
pub fn delete_body(path: &str, version: i32) -> Vec<u8> {
    Enc::new().string(path).int(version).bytes()
}
pub fn path_type(path: &str, ty: i32) -> Vec<u8> {
    Enc::new().string(path).int(ty).bytes()
}
pub fn add_watch_body(path: &str, mode: i32) -> Vec<u8> {
    Enc::new().string(path).int(mode).bytes()
}
pub fn auth_body(scheme: &str, auth: &[u8]) -> Vec<u8> {
    Enc::new().int(0).string(scheme).buffer(auth).bytes()
}

/// One operation of a multi / multiRead request.
pub struct MultiOp {
    pub op: i32,
    pub body: Vec<u8>,
}

pub fn multi_body(ops: &[MultiOp]) -> Vec<u8> {
    let mut e = Enc::new();
    for o in ops {
        e = e.int(o.op).boolean(false).int(-1).raw(&o.body);
    }
    e.int(-1).boolean(true).int(-1).bytes()
}

/// One result of a multi reply: `(type, err)` plus the remaining bytes are not kept; only what the
/// tests need (header type, error code for error results, path for creates).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MultiResult {
    pub op: i32,
    pub err: i32,
    pub path: Option<String>,
    pub stat: Option<Stat>,
}

/// Parses a multi (write) reply body.
pub fn parse_multi_reply(body: &[u8]) -> Vec<MultiResult> {
    let mut d = Dec::new(body);
    let mut out = Vec::new();
    loop {
        let ty = d.int();
        let done = d.boolean();
        let herr = d.int();
        if done {
            assert_eq!(ty, -1, "multi terminator type");
            break;
        }
        let mut r = MultiResult {
            op: ty,
            err: herr,
            path: None,
            stat: None,
        };
        match ty {
            -1 => r.err = d.int(),
            op::CREATE => r.path = Some(d.string()),
            op::CREATE2 | op::CREATE_TTL | op::CREATE_CONTAINER => {
                r.path = Some(d.string());
                r.stat = Some(d.stat());
            }
            op::SET_DATA => r.stat = Some(d.stat()),
            op::DELETE | op::CHECK => {}
            other => panic!("unexpected multi result type {other}"),
        }
        out.push(r);
    }
    assert_eq!(d.remaining(), 0, "trailing bytes after multi reply");
    out
}

// ---------------------------------------------------------------------------------------------
// Frames

/// Prefixes `payload` with its i32 length.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut v = (payload.len() as i32).to_be_bytes().to_vec();
    v.extend_from_slice(payload);
    v
}

/// A request frame: header + body.
pub fn request_frame(xid: i32, op: i32, body: &[u8]) -> Vec<u8> {
    frame(&Enc::new().int(xid).int(op).raw(body).bytes())
}

#[derive(Clone, Debug)]
pub struct ConnectRequest {
    pub protocol_version: i32,
    pub last_zxid_seen: i64,
    pub timeout_ms: i32,
    pub session_id: i64,
    pub passwd: Vec<u8>,
    /// `None` = old-style request without the trailing readOnly byte.
    pub read_only: Option<bool>,
}

impl ConnectRequest {
    pub fn new(timeout_ms: i32) -> ConnectRequest {
        ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 0,
            timeout_ms,
            session_id: 0,
            passwd: vec![0; 16],
            read_only: Some(false),
        }
    }
    pub fn resume(timeout_ms: i32, session_id: i64, passwd: &[u8]) -> ConnectRequest {
        ConnectRequest {
            session_id,
            passwd: passwd.to_vec(),
            ..ConnectRequest::new(timeout_ms)
        }
    }
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Enc::new()
            .int(self.protocol_version)
            .long(self.last_zxid_seen)
            .int(self.timeout_ms)
            .long(self.session_id)
            .buffer(&self.passwd);
        if let Some(ro) = self.read_only {
            e = e.boolean(ro);
        }
        frame(&e.bytes())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectResponse {
    pub protocol_version: i32,
    pub timeout_ms: i32,
    pub session_id: i64,
    pub passwd: Vec<u8>,
    /// `None` if the server sent no readOnly byte.
    pub read_only: Option<bool>,
    /// Size of the response frame payload (36 without readOnly, 37 with).
    pub len: usize,
}

pub fn parse_connect_response(body: &[u8]) -> ConnectResponse {
    let mut d = Dec::new(body);
    let protocol_version = d.int();
    let timeout_ms = d.int();
    let session_id = d.long();
    let passwd = d.buffer().unwrap_or_default();
    let read_only = if d.remaining() > 0 {
        Some(d.boolean())
    } else {
        None
    };
    ConnectResponse {
        protocol_version,
        timeout_ms,
        session_id,
        passwd,
        read_only,
        len: body.len(),
    }
}

/// A reply frame, parsed.
#[derive(Clone, Debug)]
pub struct Reply {
    pub xid: i32,
    pub zxid: i64,
    pub err: i32,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn parse(frame: &[u8]) -> Reply {
        let mut d = Dec::new(frame);
        let xid = d.int();
        let zxid = d.long();
        let err = d.int();
        Reply {
            xid,
            zxid,
            err,
            body: frame[16..].to_vec(),
        }
    }
    pub fn is_event(&self) -> bool {
        self.xid == xid::NOTIFICATION
    }
    /// Decodes a watch notification body.
    pub fn event(&self) -> WatchEvent {
        assert!(self.is_event(), "not a notification: {self:?}");
        let mut d = Dec::new(&self.body);
        WatchEvent {
            event_type: d.int(),
            state: d.int(),
            path: d.string(),
            zxid: self.zxid,
        }
    }
    pub fn dec(&self) -> Dec<'_> {
        Dec::new(&self.body)
    }
    pub fn stat(&self) -> Stat {
        self.dec().stat()
    }
    /// getData reply: (data, stat)
    pub fn data(&self) -> (Option<Vec<u8>>, Stat) {
        let mut d = self.dec();
        let data = d.buffer();
        (data, d.stat())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchEvent {
    pub event_type: i32,
    pub state: i32,
    pub path: String,
    /// zxid from the notification's reply header (-1 on ZooKeeper 3.8).
    pub zxid: i64,
}

// ---------------------------------------------------------------------------------------------
// Socket helpers

pub fn tcp(addr: SocketAddr) -> TcpStream {
    try_tcp(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"))
}

/// Connects with bounded connect/read/write timeouts.
pub fn try_tcp(addr: SocketAddr) -> io::Result<TcpStream> {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    s.set_nodelay(true).ok();
    Ok(s)
}

/// Reads one length-prefixed frame. Errors on EOF, timeout, or an absurd length.
pub fn read_frame(s: &mut TcpStream) -> io::Result<Vec<u8>> {
    read_frame_inner(s).map_err(|e| match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no complete frame within the socket timeout ({IO_TIMEOUT:?})"),
        ),
        io::ErrorKind::UnexpectedEof => io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed by the server",
        ),
        _ => e,
    })
}

fn read_frame_inner(s: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len)?;
    let n = i32::from_be_bytes(len);
    if !(0..=64 << 20).contains(&n) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("bad frame length {n}"),
        ));
    }
    let mut buf = vec![0u8; n as usize];
    s.read_exact(&mut buf)?;
    Ok(buf)
}

/// Waits until the peer closes the connection (EOF or reset), discarding anything it sends.
/// Returns false if the connection is still open after `timeout`.
/// A read or write error that means the server closed the connection (as
/// opposed to a timeout: a server that never answers must not pass).
pub fn is_closed(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}

pub fn wait_closed(s: &mut TcpStream, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        s.set_read_timeout(Some(left.min(Duration::from_millis(500))))
            .unwrap();
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut =>
            {
                continue
            }
            Err(_) => return true, // reset etc.
        }
    }
}

/// Sends a four-letter word on a fresh connection and returns everything the server answers
/// until it closes the connection.
pub fn four_letter(addr: SocketAddr, word: &str) -> String {
    let mut s = tcp(addr);
    s.write_all(word.as_bytes()).unwrap();
    let deadline = Instant::now() + IO_TIMEOUT;
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        assert!(
            Instant::now() < deadline,
            "four-letter word {word}: no EOF within {IO_TIMEOUT:?}"
        );
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut =>
            {
                continue
            }
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("four-letter word {word}: {e}"),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

// ---------------------------------------------------------------------------------------------
// A connected session

/// A raw session: TCP connection after a successful handshake.
pub struct Conn {
    pub stream: TcpStream,
    pub resp: ConnectResponse,
    next_xid: i32,
}

impl Conn {
    /// Connects and handshakes a new session with the given requested timeout.
    pub fn connect(addr: SocketAddr, timeout_ms: i32) -> Conn {
        Conn::connect_with(addr, &ConnectRequest::new(timeout_ms)).expect("handshake")
    }

    /// Sends `req` and reads the ConnectResponse. An expired/refused session is still `Ok`
    /// (timeout 0, session id 0); a closed connection is `Err`.
    pub fn connect_with(addr: SocketAddr, req: &ConnectRequest) -> io::Result<Conn> {
        let mut stream = try_tcp(addr)?;
        stream.write_all(&req.encode())?;
        let body = read_frame(&mut stream)?;
        let resp = parse_connect_response(&body);
        Ok(Conn {
            stream,
            resp,
            next_xid: 1,
        })
    }

    pub fn session_id(&self) -> i64 {
        self.resp.session_id
    }
    pub fn passwd(&self) -> Vec<u8> {
        self.resp.passwd.clone()
    }

    pub fn next_xid(&mut self) -> i32 {
        let x = self.next_xid;
        self.next_xid += 1;
        x
    }

    pub fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Sends a request and returns its xid, without reading anything.
    pub fn send(&mut self, op: i32, body: &[u8]) -> i32 {
        let xid = self.next_xid();
        self.stream
            .write_all(&request_frame(xid, op, body))
            .expect("send request");
        xid
    }

    pub fn read_reply(&mut self) -> io::Result<Reply> {
        read_frame(&mut self.stream).map(|f| Reply::parse(&f))
    }

    /// Reads frames until the reply with `xid`; returns the watch events seen before it.
    /// Pings are skipped; any other reply is a protocol violation.
    pub fn read_until(&mut self, xid: i32) -> (Vec<WatchEvent>, Reply) {
        let mut events = Vec::new();
        loop {
            let r = self
                .read_reply()
                .unwrap_or_else(|e| panic!("reading reply for xid {xid}: {e}"));
            if r.is_event() {
                events.push(r.event());
            } else if r.xid == xid::PING {
                continue;
            } else {
                assert_eq!(r.xid, xid, "reply out of order: {r:?}");
                return (events, r);
            }
        }
    }

    /// Sends a request and waits for its reply; returns (events seen before it, reply).
    pub fn call(&mut self, op: i32, body: &[u8]) -> (Vec<WatchEvent>, Reply) {
        let xid = self.send(op, body);
        self.read_until(xid)
    }

    /// Like `call`, but asserts no watch event preceded the reply.
    pub fn req(&mut self, op: i32, body: &[u8]) -> Reply {
        let (events, r) = self.call(op, body);
        assert!(
            events.is_empty(),
            "unexpected watch events before reply: {events:?}"
        );
        r
    }

    pub fn create(&mut self, path: &str, data: &[u8], flags: i32) -> Reply {
        self.req(
            op::CREATE,
            &create_body(path, data, &Acl::world_all(), flags),
        )
    }
    pub fn get_data(&mut self, path: &str, watch: bool) -> (Vec<WatchEvent>, Reply) {
        self.call(op::GET_DATA, &path_watch(path, watch))
    }
    pub fn set_data(&mut self, path: &str, data: &[u8]) -> (Vec<WatchEvent>, Reply) {
        self.call(op::SET_DATA, &set_data_body(path, data, -1))
    }
    pub fn exists(&mut self, path: &str, watch: bool) -> (Vec<WatchEvent>, Reply) {
        self.call(op::EXISTS, &path_watch(path, watch))
    }
    pub fn ping(&mut self) -> io::Result<()> {
        self.stream
            .write_all(&request_frame(xid::PING, op::PING, &[]))?;
        loop {
            let r = self.read_reply()?;
            if r.xid == xid::PING {
                return Ok(());
            }
            assert!(
                r.is_event(),
                "unexpected frame while waiting for ping: {r:?}"
            );
        }
    }
    /// addauth: sends an AuthPacket with xid -4 and returns the reply's error code.
    pub fn add_auth(&mut self, scheme: &str, auth: &[u8]) -> i32 {
        self.stream
            .write_all(&request_frame(
                xid::AUTH,
                op::AUTH,
                &auth_body(scheme, auth),
            ))
            .unwrap();
        loop {
            let r = self.read_reply().expect("auth reply");
            if r.is_event() {
                continue;
            }
            assert_eq!(r.xid, xid::AUTH, "auth reply xid");
            return r.err;
        }
    }
    /// Sends closeSession and waits for its reply.
    pub fn close_session(&mut self) -> Reply {
        let (_, r) = self.call(op::CLOSE_SESSION, &[]);
        r
    }
    /// Closes the TCP connection abruptly, without closeSession.
    pub fn drop_tcp(self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }
    pub fn wait_closed(&mut self, timeout: Duration) -> bool {
        wait_closed(&mut self.stream, timeout)
    }
}

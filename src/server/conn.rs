//! One client connection on a shard: the handshake, the reader task that cuts
//! frames out of the receive buffer, the per-connection FIFO of requests, and
//! the writer task that flushes the send buffer once per batch of replies.
//!
//! FIFO rule: requests are answered in arrival order. Consecutive writes are
//! pipelined to the pipeline executor; a local op (read, auth, setWatches...)
//! runs only when everything before it has been answered, so a read after a
//! write of the same session sees that write.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_lite::io::{ReadHalf, WriteHalf};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use tracing::{debug, info, warn};

use super::bell::Bell;
use super::messages::*;
use super::reads::{execute_local, LocalOutcome};
use super::registry::ConnInfo;
use super::replies::encode_write_reply;
use super::send_queue::SendQueue;
use super::shard::Shard;
use super::stats::{self, RequestKind};
use super::stream::ClientStream;
use crate::limits;
use crate::proto::frame::{self, FrameError};
use crate::proto::response::encode_watch_event;
use crate::proto::{op, ConnectRequest, ConnectResponse, EventType, RequestHeader, SessionId};
use crate::session::ConnRef;
use crate::tls::{PeerIdentity, ReloadingConfig};
use crate::tree::acl::AuthInfo;

enum Pending {
    /// Sent to the pipeline; `bytes` of its body are held there until the reply.
    InFlight {
        xid: i32,
        started: Instant,
        bytes: usize,
    },
    /// Waiting for earlier requests to be answered.
    Queued {
        xid: i32,
        op: i32,
        started: Instant,
        body: Bytes,
    },
}

/// Why the connection ends.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Closing {
    Open,
    /// Flush what is queued, then close (closeSession, AUTHFAILED, unknown op).
    AfterFlush,
    /// Close at once (session expired or moved, server shutdown).
    Now,
}

pub struct Conn {
    pub id: u64,
    pub peer: SocketAddr,
    pub session_id: Cell<SessionId>,
    /// Granted by a read-only server: writes are answered NOTREADONLY here.
    pub read_only: Cell<bool>,
    pub auth: RefCell<Arc<AuthInfo>>,
    /// Requests in arrival order. Invariant: the first `in_flight` entries are
    /// `InFlight` and the rest `Queued` (a write is dispatched only when
    /// everything before it is in flight; a local op runs only at the front).
    pending: RefCell<VecDeque<Pending>>,
    in_flight: Cell<usize>,
    /// Replies and events not yet handed to the writer.
    pub send_buf: RefCell<SendQueue>,
    /// What the connection holds besides `send_buf`, counted against its
    /// bound and the shard's (see [`Conn::held_now`]): request bodies taken
    /// and not yet answered, the writer's buffer, the receive buffer.
    request_bytes: Cell<usize>,
    writing_bytes: Cell<usize>,
    recv_bytes: Cell<usize>,
    /// The total last added to the shard's client bytes.
    held: Cell<usize>,
    /// Since when the connection holds more than the hard cap.
    over_hard_cap_since: Cell<Option<Instant>>,
    pub writer_bell: Bell,
    pub reader_bell: Bell,
    pub closing: Cell<Closing>,
    pub dirty: Cell<bool>,
    pub touch_epoch: Cell<u64>,
    connect_outcome: RefCell<Option<ConnectOutcome>>,
    /// Counters shown by `cons`, shared with the cross-shard registry.
    pub info: Arc<ConnInfo>,
}

impl Conn {
    fn new(id: u64, origin: Origin<'_>) -> Self {
        let peer = origin.peer;
        let mut auth = AuthInfo::for_client(peer.ip());
        if let Some(identity) = origin.identity {
            auth.add_x509(&identity.subject, identity.is_super);
        }
        Conn {
            id,
            peer,
            session_id: Cell::new(0),
            auth: RefCell::new(Arc::new(auth)),
            pending: RefCell::new(VecDeque::new()),
            in_flight: Cell::new(0),
            send_buf: RefCell::new(SendQueue::new()),
            request_bytes: Cell::new(0),
            writing_bytes: Cell::new(0),
            recv_bytes: Cell::new(0),
            held: Cell::new(0),
            over_hard_cap_since: Cell::new(None),
            writer_bell: Bell::new(),
            reader_bell: Bell::new(),
            closing: Cell::new(Closing::Open),
            dirty: Cell::new(false),
            touch_epoch: Cell::new(0),
            connect_outcome: RefCell::new(None),
            read_only: Cell::new(false),
            info: Arc::new(ConnInfo::new(peer, origin.secure)),
        }
    }

    pub fn outstanding(&self) -> usize {
        self.pending.borrow().len()
    }

    /// Every byte the server holds on behalf of this connection: unsent
    /// replies and events (the send buffer's allocation), the buffer being
    /// written, request bodies not yet answered and the receive buffer.
    /// Replies copy node data, so nothing here pins a tree version.
    pub fn held_now(&self) -> usize {
        self.send_buf.borrow().held_bytes()
            + self.writing_bytes.get()
            + self.request_bytes.get()
            + self.recv_bytes.get()
    }

    /// Brings the shard's client-bytes total up to date with this
    /// connection's holdings; returns them.
    pub fn recount(&self, shard: &Shard) -> usize {
        let now = self.held_now();
        let before = self.held.replace(now);
        if now != before {
            shard.adjust_client_bytes(before, now);
        }
        if now > limits::CONN_HELD_BYTES_HARD_CAP {
            if self.over_hard_cap_since.get().is_none() {
                self.over_hard_cap_since.set(Some(Instant::now()));
            }
        } else {
            self.over_hard_cap_since.set(None);
        }
        now
    }

    /// True while the connection may produce more replies: it holds less
    /// than its own high-water mark and, when the shard is at its share of
    /// the server-wide bound, less than its fair share. Biggest holders are
    /// throttled first; a throttled connection is woken when its own writer
    /// drains it or the shard falls below its bound. The receive buffer
    /// counts in the totals but not here: it holds at most the frame being
    /// read, which must be completed for the connection to make progress.
    fn has_room(&self, shard: &Shard) -> bool {
        let held = self.recount(shard) - self.recv_bytes.get();
        if held >= limits::CONN_HELD_BYTES_HIGH_WATER {
            return false;
        }
        if shard.over_client_budget() && held >= shard.client_fair_share() {
            shard.block_on_client_budget(self.id);
            return false;
        }
        true
    }

    pub fn set_recv_bytes(&self, bytes: usize) {
        self.recv_bytes.set(bytes);
    }

    pub fn close_now(&self) {
        self.closing.set(Closing::Now);
        self.reader_bell.ring();
        self.writer_bell.ring();
    }

    pub fn close_after_flush(&self) {
        if self.closing.get() == Closing::Open {
            self.closing.set(Closing::AfterFlush);
        }
        self.reader_bell.ring();
        self.writer_bell.ring();
    }

    pub fn push_event(&self, zxid: i64, event: EventType, state: i32, path: &str) {
        let mut queue = self.send_buf.borrow_mut();
        let out = queue.buf_for(limits::SMALL_REPLY_BYTES_HINT + path.len());
        encode_watch_event(out, zxid, event, state, path);
        stats::add(&self.info.sent, 1);
    }

    pub fn on_connect_reply(&self, outcome: ConnectOutcome) {
        *self.connect_outcome.borrow_mut() = Some(outcome);
        self.reader_bell.ring();
    }

    /// A write's reply from the pipeline: it answers the oldest in-flight request.
    pub fn on_write_reply(self: &Rc<Self>, shard: &Shard, reply: WriteReply) {
        let front = self.pending.borrow_mut().pop_front();
        let Some(Pending::InFlight {
            xid,
            started,
            bytes,
        }) = front
        else {
            // The FIFO invariant is broken: never answer out of order; drop the client.
            warn!(
                "connection {}: reply xid {} does not match its queue; closing",
                self.peer, reply.xid
            );
            self.close_now();
            return;
        };
        assert_eq!(xid, reply.xid, "pipeline replies follow request order");
        self.in_flight.set(self.in_flight.get() - 1);
        self.request_bytes.set(self.request_bytes.get() - bytes);
        let closed = matches!(reply.outcome, WriteOutcome::SessionClosed);
        encode_write_reply(
            self.send_buf
                .borrow_mut()
                .buf_for(limits::SMALL_REPLY_BYTES_HINT),
            &reply,
        );
        self.info.last_zxid.store(reply.zxid, Relaxed);
        self.finish_request(shard, started, RequestKind::Write);
        if closed {
            self.session_id.set(0);
            self.close_after_flush();
            return;
        }
        self.pump(shard);
    }

    fn finish_request(&self, shard: &Shard, started: Instant, kind: RequestKind) {
        stats::add(&self.info.sent, 1);
        stats::sub(&self.info.queued, 1);
        let counters = &shard.stats.shards[shard.index];
        stats::add(&counters.packets_sent, 1);
        stats::sub(&counters.outstanding, 1);
        let latency = started.elapsed();
        shard.stats.record_latency(shard.index, kind, latency);
        self.info.record_response(latency.as_millis() as u64);
        shard.release_outstanding();
        self.reader_bell.ring();
    }

    /// Advances the FIFO: dispatches queued writes that have only writes ahead
    /// of them and runs the local op at the front.
    pub fn pump(self: &Rc<Self>, shard: &Shard) {
        let mut index = self.in_flight.get();
        loop {
            if self.closing.get() != Closing::Open {
                return;
            }
            let mut pending = self.pending.borrow_mut();
            let Some(entry) = pending.get_mut(index) else {
                return;
            };
            match entry {
                Pending::InFlight { .. } => unreachable!("in-flight entries form the prefix"),
                Pending::Queued {
                    xid,
                    op,
                    started,
                    body,
                } if self.goes_to_pipeline(*op) => {
                    let (xid, op, started, body) = (*xid, *op, *started, body.clone());
                    *entry = Pending::InFlight {
                        xid,
                        started,
                        bytes: body.len(),
                    };
                    drop(pending);
                    self.dispatch_write(shard, xid, op, body);
                    index += 1;
                    self.in_flight.set(index);
                }
                Pending::Queued { .. } if index > 0 => return,
                Pending::Queued { .. } if shard.is_behind() => {
                    // Another shard may already have answered a newer write:
                    // read only once this shard has adopted that version too.
                    drop(pending);
                    shard.wait_for_version(self.id);
                    return;
                }
                Pending::Queued { .. } if !self.has_room(shard) => return,
                Pending::Queued { .. } => {
                    let Some(Pending::Queued {
                        xid,
                        op,
                        started,
                        body,
                    }) = pending.pop_front()
                    else {
                        unreachable!("front entry was just matched as queued")
                    };
                    drop(pending);
                    self.request_bytes
                        .set(self.request_bytes.get() - body.len());
                    self.run_local(shard, xid, op, &body, started);
                }
            }
        }
    }

    /// Writes go to the pipeline; on a read-only session only closeSession
    /// does, the others are answered here (NOTREADONLY).
    fn goes_to_pipeline(&self, op_code: i32) -> bool {
        op::is_write(op_code) && (!self.read_only.get() || op_code == op::CLOSE_SESSION)
    }

    fn dispatch_write(&self, shard: &Shard, xid: i32, op: i32, body: Bytes) {
        shard.send_to_pipeline(ToPipeline::Write(WriteMsg {
            conn: ConnRef {
                shard: shard.index,
                conn_id: self.id,
            },
            session_id: self.session_id.get(),
            xid,
            op,
            body,
            auth: self.auth.borrow().clone(),
        }));
    }

    fn run_local(
        self: &Rc<Self>,
        shard: &Shard,
        xid: i32,
        op: i32,
        body: &Bytes,
        started: Instant,
    ) {
        let outcome = execute_local(shard, self, xid, op, body);
        self.finish_request(shard, started, RequestKind::Read);
        self.mark_for_flush();
        match outcome {
            LocalOutcome::Continue => {}
            LocalOutcome::CloseAfterFlush => self.close_after_flush(),
        }
    }

    fn mark_for_flush(&self) {
        self.writer_bell.ring();
    }

    /// Takes one request frame (header + body) into the FIFO.
    fn accept_frame(self: &Rc<Self>, shard: &Shard, frame: Bytes) -> Result<(), String> {
        let (header, _) =
            RequestHeader::split(&frame).map_err(|e| format!("bad request header: {e}"))?;
        // A small frame that has to wait (a write, or a read behind others)
        // would pin its whole receive chunk: it gets its own copy.
        let runs_now =
            self.pending.borrow().is_empty() && !op::is_write(header.op) && !shard.is_behind();
        let body = if runs_now || frame.len() >= limits::FRAME_SHARE_MIN_BYTES {
            frame.slice(8..)
        } else {
            Bytes::copy_from_slice(&frame[8..])
        };
        drop(frame);
        shard.touch(self);
        stats::add(&self.info.received, 1);
        stats::add(&self.info.queued, 1);
        self.info.last_op.store(header.op, Relaxed);
        self.info.last_cxid.store(header.xid, Relaxed);
        let counters = &shard.stats.shards[shard.index];
        stats::add(&counters.packets_received, 1);
        stats::add(&counters.outstanding, 1);
        if !shard.acquire_outstanding() {
            // Cannot happen: the reader checks the budget before reading a frame.
            return Err("outstanding budget exceeded".to_string());
        }
        let entry = Pending::Queued {
            xid: header.xid,
            op: header.op,
            started: Instant::now(),
            body,
        };
        self.request_bytes
            .set(self.request_bytes.get() + entry_bytes(&entry));
        self.pending.borrow_mut().push_back(entry);
        // The reader's next `may_read` counts what this request added.
        self.pump(shard);
        Ok(())
    }

    /// True while the connection may take another request (backpressure).
    fn may_read(&self, shard: &Shard) -> bool {
        let per_conn = shard.cfg.outstanding_per_connection_max as usize;
        self.outstanding() < per_conn
            && shard.may_take_request(self.outstanding())
            && self.has_room(shard)
    }
}

fn entry_bytes(entry: &Pending) -> usize {
    match entry {
        Pending::InFlight { bytes, .. } => *bytes,
        Pending::Queued { body, .. } => body.len(),
    }
}

/// Where an accepted connection comes from.
#[derive(Clone, Copy)]
struct Origin<'a> {
    peer: SocketAddr,
    /// The verified client certificate's identity (x509 auth), if any.
    identity: Option<&'a PeerIdentity>,
    /// Accepted on the secure client port (listed apart by `cons`).
    secure: bool,
}

type Reader = ReadHalf<ClientStream>;
type Writer = WriteHalf<ClientStream>;

/// Serves one accepted socket until it closes; `tls` is set for sockets of
/// the secure client port, whose TLS handshake comes first.
pub async fn serve(
    shard: Rc<Shard>,
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<Arc<ReloadingConfig>>,
) {
    if !shard.admit_ip(peer.ip()) {
        warn!(
            "too many connections from {} (maxClientCnxns={}); refusing",
            peer.ip(),
            shard.cfg.max_client_cnxns
        );
        return;
    }
    let _ = stream.set_nodelay(true);
    let counters = &shard.stats.shards[shard.index];
    stats::add(&counters.connections, 1);
    let opened = match tls {
        None => Ok((ClientStream::Plain(stream), None)),
        Some(tls) => tls_accept(&tls, stream).await,
    };
    match opened {
        Ok((stream, identity)) => serve_stream(&shard, stream, peer, identity.as_ref()).await,
        Err(reason) => {
            info!("closing connection {peer}: {reason}");
            stats::add(&counters.frames_rejected, 1);
        }
    }
    stats::sub(&counters.connections, 1);
    shard.release_ip(peer.ip());
}

/// The TLS handshake, bounded by `ssl.handshakeDetectionTimeoutMillis`,
/// with the configuration current at accept time (so a rotated certificate
/// reaches new connections only). A plaintext client fails it at its first
/// bytes; one that sends nothing, at the timeout.
async fn tls_accept(
    tls: &ReloadingConfig,
    stream: TcpStream,
) -> Result<(ClientStream, Option<PeerIdentity>), String> {
    let acceptor = futures_rustls::TlsAcceptor::from(tls.current());
    let timeout = Duration::from_millis(tls.settings().handshake_timeout_ms);
    let done = futures_lite::future::or(async { Some(acceptor.accept(stream).await) }, async {
        glommio::timer::sleep(timeout).await;
        None
    })
    .await;
    let stream = match done {
        None => return Err(format!("no TLS handshake within {timeout:?}")),
        Some(Err(e)) => return Err(format!("TLS handshake failed: {e}")),
        Some(Ok(stream)) => stream,
    };
    let identity =
        crate::tls::peer_identity(tls.settings(), stream.get_ref().1.peer_certificates())
            .map_err(|e| format!("client certificate: {e}"))?;
    Ok((ClientStream::Tls(Box::new(stream)), identity))
}

/// Serves an open (plain or TLS) stream: the ZooKeeper handshake, then requests.
async fn serve_stream(
    shard: &Rc<Shard>,
    stream: ClientStream,
    peer: SocketAddr,
    identity: Option<&PeerIdentity>,
) {
    let secure = matches!(stream, ClientStream::Tls(_));
    let (mut reader, writer) = futures_lite::io::split(stream);
    let mut rbuf = BytesMut::with_capacity(limits::RECV_CHUNK_BYTES);
    let counters = &shard.stats.shards[shard.index];
    let shard = shard.clone();
    let origin = Origin {
        peer,
        identity,
        secure,
    };
    match handshake(&shard, &mut reader, writer, &mut rbuf, origin).await {
        Ok(Some((conn, writer_task))) => {
            if let Err(reason) = read_loop(&shard, &conn, &mut reader, &mut rbuf).await {
                info!("closing connection {peer}: {reason}");
                stats::add(&counters.frames_rejected, 1);
                conn.close_now();
            }
            finish(&shard, &conn, writer_task).await;
        }
        Ok(None) => {}
        Err(reason) => {
            info!("closing connection {peer} during handshake: {reason}");
            stats::add(&counters.frames_rejected, 1);
        }
    }
}

/// Reads at least `want` bytes into `rbuf`; false on EOF or a close request.
async fn fill(
    reader: &mut Reader,
    rbuf: &mut BytesMut,
    want: usize,
    wake: Option<&Bell>,
) -> Result<bool, String> {
    while rbuf.len() < want {
        let start = rbuf.len();
        let chunk = (want - start).max(limits::RECV_CHUNK_BYTES);
        rbuf.resize(start + chunk, 0);
        let read = async { Some(reader.read(&mut rbuf[start..]).await) };
        let woken = async {
            match wake {
                Some(bell) => bell.wait().await,
                None => std::future::pending::<()>().await,
            }
            None
        };
        let got = futures_lite::future::or(read, woken).await;
        let n = match got {
            Some(Ok(n)) => n,
            Some(Err(e)) => {
                rbuf.truncate(start);
                return Err(format!("read error: {e}"));
            }
            None => {
                rbuf.truncate(start);
                return Ok(true);
            }
        };
        rbuf.truncate(start + n);
        if n == 0 {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Cuts the next complete frame's payload off `rbuf`, if there is one.
fn next_frame(rbuf: &mut BytesMut, max_bytes: usize) -> Result<Option<Bytes>, String> {
    match frame::frame_len(rbuf, max_bytes) {
        Ok(Some(total)) => {
            let mut frame = rbuf.split_to(total);
            let _len = frame.split_to(limits::FRAME_LEN_BYTES);
            Ok(Some(frame.freeze()))
        }
        Ok(None) => Ok(None),
        Err(FrameError::TooLong { len, max }) => {
            Err(format!("frame of {len} bytes exceeds jute.maxbuffer {max}"))
        }
        Err(e) => Err(format!("bad frame: {e}")),
    }
}

enum FirstFrame {
    Closed,
    FourLetterWord(&'static str),
    Connect(Bytes),
}

/// Reads a four-letter word or the ConnectRequest frame.
async fn read_first_frame(
    shard: &Shard,
    reader: &mut Reader,
    rbuf: &mut BytesMut,
) -> Result<FirstFrame, String> {
    if !fill(reader, rbuf, 4, None).await? {
        return Ok(FirstFrame::Closed);
    }
    let first4: [u8; 4] = rbuf[..4].try_into().expect("filled 4 bytes");
    if let Some(word) = frame::four_letter_word(&first4) {
        return Ok(FirstFrame::FourLetterWord(word));
    }
    loop {
        if let Some(frame) = next_frame(rbuf, shard.cfg.frame_bytes_max)? {
            return Ok(FirstFrame::Connect(frame));
        }
        let want = rbuf.len() + 1;
        if !fill(reader, rbuf, want, None).await? {
            return Ok(FirstFrame::Closed);
        }
    }
}

async fn handshake(
    shard: &Rc<Shard>,
    reader: &mut Reader,
    mut writer: Writer,
    rbuf: &mut BytesMut,
    origin: Origin<'_>,
) -> Result<Option<(Rc<Conn>, glommio::task::JoinHandle<()>)>, String> {
    // Like ZooKeeper's sessionless-connection timeout: a client that does not
    // complete its first frame in time loses the connection.
    let first = futures_lite::future::or(
        async { Some(read_first_frame(shard, reader, rbuf).await) },
        async {
            glommio::timer::sleep(limits::HANDSHAKE_TIMEOUT).await;
            None
        },
    )
    .await;
    let frame = match first {
        None => return Err("no handshake within the timeout".to_string()),
        Some(Ok(FirstFrame::Closed)) => return Ok(None),
        Some(Ok(FirstFrame::FourLetterWord(word))) => {
            let text = crate::ops::four_letter_reply(word, shard).await;
            let _ = writer.write_all(text.as_bytes()).await;
            let _ = writer.close().await;
            return Ok(None);
        }
        Some(Ok(FirstFrame::Connect(frame))) => frame,
        Some(Err(e)) => return Err(e),
    };
    let request = ConnectRequest::decode(&frame).map_err(|e| format!("bad ConnectRequest: {e}"))?;
    let conn = Rc::new(Conn::new(shard.next_conn_id(), origin));
    shard.conns.borrow_mut().insert(conn.id, conn.clone());
    shard
        .registry
        .insert(shard.index, conn.id, conn.info.clone());
    let granted = match connect(shard, &conn, &request).await {
        Attach::Granted(grant) => Some(grant),
        Attach::Expired => None,
        Attach::TooNew => {
            // Never show a client an older view than it saw: close, no reply.
            shard.conns.borrow_mut().remove(&conn.id);
            shard.registry.remove(shard.index, conn.id);
            return Ok(None);
        }
    };
    let response = match &granted {
        Some((session_id, timeout_ms, password)) => ConnectResponse {
            protocol_version: 0,
            timeout_ms: *timeout_ms,
            session_id: *session_id,
            passwd: *password,
            read_only: request.read_only.map(|_| conn.read_only.get()),
        },
        None => ConnectResponse::expired(request.read_only),
    };
    response.encode(
        conn.send_buf
            .borrow_mut()
            .buf_for(limits::SMALL_REPLY_BYTES_HINT),
    );
    let writer_task =
        glommio::spawn_local(write_loop(shard.clone(), conn.clone(), writer)).detach();
    if granted.is_none() {
        conn.close_after_flush();
    } else {
        conn.writer_bell.ring();
    }
    Ok(Some((conn, writer_task)))
}

enum Attach {
    Granted((SessionId, i32, [u8; 16])),
    Expired,
    TooNew,
}

/// Asks the pipeline for the session.
async fn connect(shard: &Rc<Shard>, conn: &Rc<Conn>, request: &ConnectRequest<'_>) -> Attach {
    let mut password = [0u8; 16];
    let n = request.passwd.len().min(16);
    password[..n].copy_from_slice(&request.passwd[..n]);
    shard.send_to_pipeline(ToPipeline::Connect(ConnectMsg {
        conn: ConnRef {
            shard: shard.index,
            conn_id: conn.id,
        },
        session_id: request.session_id,
        password,
        timeout_ms: request.timeout_ms,
        last_zxid_seen: request.last_zxid_seen,
        peer_ip: conn.peer.ip(),
        read_only: request.read_only == Some(true),
    }));
    loop {
        if let Some(outcome) = conn.connect_outcome.borrow_mut().take() {
            return match outcome {
                ConnectOutcome::Granted {
                    session_id,
                    timeout_ms,
                    password,
                } => granted(conn, session_id, timeout_ms, password),
                ConnectOutcome::GrantedReadOnly {
                    session_id,
                    timeout_ms,
                    password,
                } => {
                    conn.read_only.set(true);
                    granted(conn, session_id, timeout_ms, password)
                }
                ConnectOutcome::Expired => Attach::Expired,
                ConnectOutcome::TooNew => {
                    info!(
                        "client {} has seen zxid 0x{:x}, newer than ours; closing",
                        conn.peer, request.last_zxid_seen
                    );
                    Attach::TooNew
                }
            };
        }
        if conn.closing.get() == Closing::Now {
            return Attach::Expired;
        }
        conn.reader_bell.wait().await;
    }
}

fn granted(conn: &Conn, session_id: SessionId, timeout_ms: i32, password: [u8; 16]) -> Attach {
    conn.session_id.set(session_id);
    conn.info.session_id.store(session_id, Relaxed);
    conn.info.timeout_ms.store(timeout_ms, Relaxed);
    Attach::Granted((session_id, timeout_ms, password))
}

async fn read_loop(
    shard: &Rc<Shard>,
    conn: &Rc<Conn>,
    reader: &mut Reader,
    rbuf: &mut BytesMut,
) -> Result<(), String> {
    loop {
        if conn.closing.get() != Closing::Open {
            return Ok(());
        }
        // Queued reads held back for lack of room run once there is room
        // again (every wake-up of this task may be the one that made it).
        conn.pump(shard);
        if !conn.may_read(shard) {
            if !shard.may_take_request(conn.outstanding()) {
                shard.block_reader(conn.id);
            }
            conn.reader_bell.wait().await;
            continue;
        }
        if let Some(frame) = next_frame(rbuf, shard.cfg.frame_bytes_max)? {
            conn.accept_frame(shard, frame)?;
            if rbuf.is_empty() && rbuf.capacity() > limits::RECV_BUFFER_KEEP_BYTES {
                // One large request must not keep its buffer for the life
                // of the connection.
                *rbuf = BytesMut::new();
                conn.set_recv_bytes(0);
            }
            continue;
        }
        let want = rbuf.len() + 1;
        let open = fill(reader, rbuf, want, Some(&conn.reader_bell)).await?;
        conn.set_recv_bytes(rbuf.capacity());
        if !open {
            debug!("connection {} closed by the client", conn.peer);
            return Ok(());
        }
    }
}

/// Flushes the send buffer whenever it is rung; closes the socket when asked.
async fn write_loop(shard: Rc<Shard>, conn: Rc<Conn>, mut writer: Writer) {
    let mut chunks = VecDeque::new();
    loop {
        conn.send_buf.borrow_mut().take_into(&mut chunks);
        if !chunks.is_empty() {
            conn.writing_bytes
                .set(chunks.iter().map(Vec::capacity).sum());
            conn.recount(&shard);
            let mut written = true;
            // Chunk by chunk, each freed (or kept as the spare) once the
            // socket took it: a draining client lowers what is held.
            while let Some(chunk) = chunks.pop_front() {
                written = written && write_or_abandon(&shard, &conn, &mut writer, &chunk).await;
                conn.writing_bytes
                    .set(conn.writing_bytes.get() - chunk.capacity());
                conn.send_buf.borrow_mut().recycle(chunk);
                conn.recount(&shard);
            }
            if !written {
                conn.close_now();
            }
            let _ = writer.flush().await;
            conn.reader_bell.ring();
            continue;
        }
        match conn.closing.get() {
            Closing::Now => break,
            Closing::AfterFlush if conn.outstanding() == 0 || shard.shutting_down.get() => break,
            _ => conn.writer_bell.wait().await,
        }
    }
    let _ = writer.close().await;
}

/// Writes `bytes`, unless the connection is closed meanwhile or the client,
/// not reading, lets the connection's holdings pile up past the ceiling, or
/// past the hard cap for longer than its timeout: against a peer whose TCP
/// window stays shut the write would otherwise never return, nothing could
/// close the connection, and what it holds would grow without bound.
/// False if the write failed or was abandoned.
async fn write_or_abandon(shard: &Shard, conn: &Conn, writer: &mut Writer, bytes: &[u8]) -> bool {
    // Polled first: on a closing connection, what the socket takes at once
    // (a last reply) still goes out; the rest is dropped.
    let write = async { writer.write_all(bytes).await.is_ok() };
    // Every append to the send buffer and every close rings the writer bell;
    // while over the hard cap, a timer re-checks how long it has been.
    let abandon = async {
        loop {
            if conn.closing.get() == Closing::Now {
                return false;
            }
            let held_bytes = conn.held_now();
            if held_bytes > limits::CONN_HELD_BYTES_CEILING {
                warn!(
                    "connection {}: holds {held_bytes} bytes, over the ceiling of {}; \
                     the client is not reading, closing",
                    conn.peer,
                    limits::CONN_HELD_BYTES_CEILING
                );
                stats::add(&shard.stats.shards[shard.index].slow_clients_closed, 1);
                return false;
            }
            let Some(since) = conn.over_hard_cap_since.get() else {
                conn.writer_bell.wait().await;
                continue;
            };
            if since.elapsed() >= limits::CONN_OVER_HARD_CAP_TIMEOUT {
                warn!(
                    "connection {}: held over {} bytes for {:?} ({held_bytes} now); \
                     the client is not reading, closing",
                    conn.peer,
                    limits::CONN_HELD_BYTES_HARD_CAP,
                    since.elapsed()
                );
                stats::add(&shard.stats.shards[shard.index].slow_clients_closed, 1);
                return false;
            }
            futures_lite::future::or(conn.writer_bell.wait(), async {
                glommio::timer::sleep(limits::CONN_STUCK_WRITE_CHECK).await;
            })
            .await;
        }
    };
    futures_lite::future::or(write, abandon).await
}

async fn finish(shard: &Rc<Shard>, conn: &Rc<Conn>, writer_task: glommio::task::JoinHandle<()>) {
    if conn.closing.get() == Closing::Open {
        conn.closing.set(Closing::AfterFlush);
    }
    conn.writer_bell.ring();
    // Requests still in flight will be answered into a closed connection; the
    // writer stops at once unless a flush was asked for.
    if conn.outstanding() > 0 {
        conn.closing.set(Closing::Now);
        conn.writer_bell.ring();
    }
    writer_task.await;
    release_pending(shard, conn);
    shard.adjust_client_bytes(conn.held.replace(0), 0);
    shard.conns.borrow_mut().remove(&conn.id);
    shard.registry.remove(shard.index, conn.id);
    shard.watches.borrow_mut().remove_watcher(conn.id);
    shard.publish_watch_count();
    let session_id = conn.session_id.get();
    if session_id != 0 {
        shard.send_to_pipeline(ToPipeline::Disconnected {
            conn: ConnRef {
                shard: shard.index,
                conn_id: conn.id,
            },
            session_id,
        });
    }
}

/// Gives back the outstanding slots of requests that will never be answered.
fn release_pending(shard: &Shard, conn: &Conn) {
    let dropped = std::mem::take(&mut *conn.pending.borrow_mut());
    conn.in_flight.set(0);
    conn.request_bytes.set(0);
    stats::sub(
        &shard.stats.shards[shard.index].outstanding,
        dropped.len() as u64,
    );
    for _ in dropped {
        shard.release_outstanding();
    }
}

//! ZooKeeper's `QuorumCnxManager` on std threads: one TCP connection per
//! peer on the election port, carrying notifications both ways.
//!
//! Threads (all joined by [`CnxManager::shutdown`]):
//! - the listener, accepting on our election address; each accepted socket
//!   gets a short-lived handshake thread (at most
//!   `ELECTION_HANDSHAKES_IN_FLIGHT_MAX`), so a slow or silent dialler holds
//!   only its own thread, for at most the handshake timeout;
//! - a connect thread per dial, started when a send finds no connection;
//! - per kept connection, a send worker (drains that peer's queue, re-sends
//!   the last message on a new connection, as ZooKeeper's `SendWorker`) and
//!   a receive worker (frames → notifications → the events channel).
//!
//! Only one connection per pair survives, the one the larger sid initiated
//! (`zab::election_wire::{initiator_keeps_connection,
//! acceptor_keeps_connection}`). Anything malformed — a bad handshake, an
//! unknown sid, a frame length out of bounds — closes that connection with a
//! log line; a notification that does not decode is skipped, as Java does.
//!
//! Unlike ZooKeeper, the acceptor that dials back uses the address in our
//! config, not the one in the handshake: an unauthenticated dialler cannot
//! make us connect somewhere else.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, SendTimeoutError, Sender, TrySendError};

use super::ensemble::{CnxSettings, Ensemble};
use super::send_queue::{Frame, SendQueue};
use super::tls_stream::{self, ElectionStream};
use super::wire_io::{self, FrameError, FrameReader};
use crate::limits::quorum as limits;
use crate::tls::quorum::Inbound;
use crate::zab::election::Sid;
use crate::zab::election_wire::{self as ew, AcceptDecision, Notification, OBSERVER_SID};

/// What the connections report to the elector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CnxEvent {
    /// A notification from `from` (our own sid: a looped-back message).
    Message { from: Sid, msg: Notification },
    /// A connection to `sid` became the current one.
    PeerUp(Sid),
    /// `sid` was connected once, its connection is gone and dialling it
    /// again failed: it is down (or unreachable). The election core decides
    /// without waiting for a voter it believes down, so this is reported
    /// conservatively: not when a connection merely ends (the pair replaces
    /// connections as a matter of course: the larger-sid rule, a dial
    /// racing a dial-back), and not for a peer never reached (at start-up
    /// its dial may simply come before its listener, and ZooKeeper's
    /// finalize wait applies as usual).
    PeerDown(Sid),
}

/// How long a worker blocked on a full events channel waits before it
/// looks at the shutdown flag again.
const EVENT_SEND_SLICE: Duration = Duration::from_millis(100);

/// The election connections of one server.
pub struct CnxManager {
    shared: Arc<Shared>,
    listener: Option<JoinHandle<()>>,
    local_addr: SocketAddr,
}

struct Shared {
    ensemble: Ensemble,
    settings: CnxSettings,
    /// Our encoded `InitialMessage`, written first on every dial.
    handshake: Vec<u8>,
    shutdown: AtomicBool,
    events: Sender<CnxEvent>,
    /// Every member but us; the set is fixed for the manager's life.
    peers: BTreeMap<Sid, Peer>,
    /// Every open socket (handshaking or kept), so shutdown can close them.
    sockets: Mutex<HashMap<u64, TcpStream>>,
    next_socket_id: AtomicU64,
    handshakes_in_flight: AtomicUsize,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

struct Peer {
    state: Mutex<PeerState>,
    /// Signalled on a new message, a connection change and shutdown.
    wake: Condvar,
}

struct PeerState {
    queue: SendQueue,
    /// Re-sent first on a new connection (ZooKeeper's `lastMessageSent`).
    last_sent: Option<Frame>,
    /// Socket id of the current connection.
    current: Option<u64>,
    /// A connection was up once (see [`CnxEvent::PeerDown`]).
    ever_connected: bool,
    dialling: bool,
    /// When a lost connection was last dialled again at once.
    redialled_at: Option<Instant>,
}

impl CnxManager {
    /// Binds the election port (retrying as configured) and starts the
    /// listener. Events arrive on the returned channel (bounded by
    /// `ELECTION_EVENTS_CHANNEL_CAP`).
    pub fn start(
        ensemble: Ensemble,
        settings: CnxSettings,
    ) -> io::Result<(CnxManager, Receiver<CnxEvent>)> {
        let (events, events_rx) = crossbeam_channel::bounded(limits::ELECTION_EVENTS_CHANNEL_CAP);
        let handshake = ew::encode_initial_message(ensemble.my_sid, &ensemble.handshake_addr())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let peers = ensemble
            .members
            .keys()
            .filter(|&&sid| sid != ensemble.my_sid)
            .map(|&sid| (sid, Peer::new()))
            .collect();
        let shared = Arc::new(Shared {
            ensemble,
            settings,
            handshake,
            shutdown: AtomicBool::new(false),
            events,
            peers,
            sockets: Mutex::new(HashMap::new()),
            next_socket_id: AtomicU64::new(1),
            handshakes_in_flight: AtomicUsize::new(0),
            threads: Mutex::new(Vec::new()),
        });
        let addr = shared.ensemble.listen_addr(&shared.settings)?;
        let listener = wire_io::bind_with_retries(addr, &shared.settings, &shared.shutdown)?;
        let local_addr = listener.local_addr()?;
        tracing::info!(sid = shared.ensemble.my_sid, %local_addr, "election port listening");
        let for_listener = Arc::clone(&shared);
        let listener = std::thread::Builder::new()
            .name("fk-election-listen".into())
            .spawn(move || for_listener.accept_loop(listener))?;
        Ok((
            CnxManager {
                shared,
                listener: Some(listener),
                local_addr,
            },
            events_rx,
        ))
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn my_sid(&self) -> Sid {
        self.shared.ensemble.my_sid
    }

    /// Queues `msg` for `to` (dialling it if there is no connection), or
    /// loops it back when `to` is us (`QuorumCnxManager.toSend`).
    pub fn send(&self, to: Sid, msg: &Notification) {
        self.shared.send(to, msg)
    }

    /// True when a connection to `sid` is up.
    pub fn is_connected(&self, sid: Sid) -> bool {
        self.shared
            .peers
            .get(&sid)
            .is_some_and(|p| p.lock().current.is_some())
    }

    /// Closes every socket and joins every thread. A dial in progress ends
    /// within the connect timeout.
    pub fn shutdown(&mut self) {
        self.shared.begin_shutdown();
        if let Some(listener) = self.listener.take() {
            let _ = listener.join();
        }
        self.shared.join_threads();
    }
}

impl Drop for CnxManager {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Peer {
    fn new() -> Peer {
        Peer {
            state: Mutex::new(PeerState {
                queue: SendQueue::new(limits::ELECTION_SEND_QUEUE_MSGS),
                last_sent: None,
                current: None,
                ever_connected: false,
                dialling: false,
                redialled_at: None,
            }),
            wake: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, PeerState> {
        // A worker that panicked cannot leave the queue half-updated (every
        // update is one statement), so the data is still good.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Shared {
    fn my_sid(&self) -> Sid {
        self.ensemble.my_sid
    }

    fn stopping(&self) -> bool {
        self.shutdown.load(Ordering::Acquire)
    }

    /// Starts a thread unless shutting down (checked under the same lock
    /// shutdown takes to join, so no thread escapes the join). False when
    /// `f` was not started (and has been dropped).
    fn spawn(self: &Arc<Self>, name: String, f: impl FnOnce(Arc<Shared>) + Send + 'static) -> bool {
        let mut threads = self.threads.lock().unwrap_or_else(|p| p.into_inner());
        if self.stopping() {
            return false;
        }
        threads.retain(|t| !t.is_finished());
        let me = Arc::clone(self);
        match std::thread::Builder::new().name(name).spawn(move || f(me)) {
            Ok(handle) => {
                threads.push(handle);
                true
            }
            Err(e) => {
                tracing::error!("cannot start an election thread: {e}");
                false
            }
        }
    }

    /// Starts a dial of `sid` (its `dialling` flag already set).
    fn spawn_dial(self: &Arc<Self>, sid: Sid) {
        if !self.spawn(format!("fk-election-dial-{sid}"), move |me| me.dial(sid)) {
            if let Some(peer) = self.peers.get(&sid) {
                peer.lock().dialling = false;
            }
        }
    }

    fn join_threads(&self) {
        loop {
            let batch: Vec<_> = {
                let mut threads = self.threads.lock().unwrap_or_else(|p| p.into_inner());
                std::mem::take(&mut *threads)
            };
            if batch.is_empty() {
                return;
            }
            for t in batch {
                let _ = t.join();
            }
        }
    }

    fn begin_shutdown(&self) {
        {
            let sockets = self.sockets.lock().unwrap_or_else(|p| p.into_inner());
            self.shutdown.store(true, Ordering::Release);
            for sock in sockets.values() {
                let _ = sock.shutdown(Shutdown::Both);
            }
        }
        for peer in self.peers.values() {
            let _guard = peer.lock();
            peer.wake.notify_all();
        }
    }

    /// Registers an open socket; None (and the socket closed) when shutting down.
    fn register_socket(&self, sock: &TcpStream) -> Option<u64> {
        let clone = sock.try_clone().ok()?;
        let mut sockets = self.sockets.lock().unwrap_or_else(|p| p.into_inner());
        if self.stopping() {
            let _ = sock.shutdown(Shutdown::Both);
            return None;
        }
        let id = self.next_socket_id.fetch_add(1, Ordering::Relaxed);
        sockets.insert(id, clone);
        Some(id)
    }

    fn close_socket(&self, id: u64) {
        let sock = self
            .sockets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        if let Some(sock) = sock {
            let _ = sock.shutdown(Shutdown::Both);
        }
    }

    /// Delivers an event, waiting while the channel is full (backpressure
    /// on the peer) but never past shutdown.
    fn emit(&self, mut event: CnxEvent) {
        loop {
            match self.events.send_timeout(event, EVENT_SEND_SLICE) {
                Ok(()) | Err(SendTimeoutError::Disconnected(_)) => return,
                Err(SendTimeoutError::Timeout(back)) => {
                    if self.stopping() {
                        return;
                    }
                    event = back;
                }
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // Sending

    fn send(self: &Arc<Self>, to: Sid, msg: &Notification) {
        if to == self.my_sid() {
            // Called from the elector, which also drains the channel:
            // never wait here. A dropped self-vote is sent again at the
            // next resend.
            let event = CnxEvent::Message {
                from: to,
                msg: msg.clone(),
            };
            if let Err(TrySendError::Full(_)) = self.events.try_send(event) {
                tracing::warn!("election events channel full: own notification dropped");
            }
            return;
        }
        let Some(peer) = self.peers.get(&to) else {
            tracing::warn!(
                sid = to,
                "not sending a notification to a sid not in the config"
            );
            return;
        };
        let frame = match ew::encode_notification(msg).and_then(|p| wire_io::frame_payload(&p)) {
            Ok(frame) => Arc::new(frame),
            Err(e) => {
                tracing::error!(sid = to, "cannot encode a notification: {e}");
                return;
            }
        };
        let dial = {
            let mut state = peer.lock();
            state.queue.push(frame);
            peer.wake.notify_all();
            let dial = state.current.is_none() && !state.dialling;
            state.dialling |= dial;
            dial
        };
        if dial {
            self.spawn_dial(to);
        }
    }

    /// `initiateConnection` + `startConnection`: connect, send our
    /// handshake, keep the connection only if we have the larger sid.
    fn dial(self: &Arc<Self>, sid: Sid) {
        let kept = self.try_dial(sid);
        let lost = self.peers.get(&sid).is_some_and(|peer| {
            let mut state = peer.lock();
            state.dialling = false;
            state.ever_connected && state.current.is_none()
        });
        match kept {
            Ok(Some((stream, id))) => match stream.reader() {
                Ok(reader) => self.install(sid, stream, id, reader, Vec::new()),
                Err(e) => {
                    tracing::warn!(sid, "cannot set up an election connection: {e}");
                    self.close_socket(id);
                }
            },
            Ok(None) => {}
            Err(e) => {
                tracing::debug!(sid, "cannot open an election connection: {e}");
                if lost && !self.stopping() {
                    self.emit(CnxEvent::PeerDown(sid));
                }
            }
        }
    }

    fn try_dial(&self, sid: Sid) -> io::Result<Option<(ElectionStream, u64)>> {
        let member = self
            .ensemble
            .members
            .get(&sid)
            .ok_or_else(|| io::Error::other("not a member"))?;
        let addr = member.election_socket_addr()?;
        let sock = TcpStream::connect_timeout(&addr, self.settings.connect_timeout)?;
        let Some(id) = self.register_socket(&sock) else {
            return Ok(None);
        };
        let result = configure(&sock, self.settings.handshake_timeout)
            .and_then(|()| match &self.settings.tls {
                Some(tls) if tls.dials_tls() => tls_stream::connect(sock, tls, &member.host),
                _ => Ok(ElectionStream::Plain(sock)),
            })
            .and_then(|stream| stream.write_all(&self.handshake).map(|()| stream));
        let stream = match result {
            Ok(stream) => stream,
            Err(e) => {
                self.close_socket(id);
                return Err(e);
            }
        };
        if !ew::initiator_keeps_connection(self.my_sid(), sid) {
            // The larger sid dials back once it has read our handshake.
            tracing::debug!(sid, "smaller sid: dropping our own connection");
            self.close_socket(id);
            return Ok(None);
        }
        Ok(Some((stream, id)))
    }

    /// Makes `stream` the connection to `sid`, replacing (closing) any older
    /// one, and starts its two workers. `reader` is the stream's (the one
    /// the handshake was read with, on an accepted connection: a TLS
    /// reader may hold bytes past the handshake).
    fn install(
        self: &Arc<Self>,
        sid: Sid,
        writer: ElectionStream,
        id: u64,
        reader: Box<dyn std::io::Read + Send>,
        leftover: Vec<u8>,
    ) {
        let Some(peer) = self.peers.get(&sid) else {
            self.close_socket(id);
            return;
        };
        if let Err(e) = writer.tcp().set_read_timeout(None) {
            tracing::warn!(sid, "cannot set up an election connection: {e}");
            self.close_socket(id);
            return;
        }
        let old = {
            let mut state = peer.lock();
            let old = state.current.replace(id);
            state.ever_connected = true;
            peer.wake.notify_all();
            old
        };
        if let Some(old) = old {
            self.close_socket(old);
        }
        tracing::info!(sid, "election connection up");
        // Before the workers start, so this connection's PeerDown follows it.
        self.emit(CnxEvent::PeerUp(sid));
        let sending = self.spawn(format!("fk-election-send-{sid}"), move |me| {
            me.send_worker(sid, id, writer)
        });
        let receiving = sending
            && self.spawn(format!("fk-election-recv-{sid}"), move |me| {
                me.recv_worker(sid, id, FrameReader::new(leftover, reader))
            });
        if !receiving {
            self.finish(sid, id);
        }
    }

    /// Ends connection `id` to `sid`. If it was the current one, dials again at once: a
    /// live peer is back in a moment, and a dead one refuses, which reports it down (a
    /// vote queued on the lost connection would otherwise wait for the next resend, up to
    /// the finalize wait later, to find out).
    fn finish(self: &Arc<Self>, sid: Sid, id: u64) {
        self.close_socket(id);
        let Some(peer) = self.peers.get(&sid) else {
            return;
        };
        let (was_current, dial) = {
            let mut state = peer.lock();
            let was = state.current == Some(id);
            if was {
                state.current = None;
            }
            let recently = state.redialled_at.is_some_and(|at| {
                at.elapsed() < Duration::from_millis(limits::ELECTION_REDIAL_MIN_INTERVAL_MS)
            });
            let dial = was && !state.dialling && !recently;
            if dial {
                state.dialling = true;
                state.redialled_at = Some(Instant::now());
            }
            peer.wake.notify_all();
            (was, dial)
        };
        if was_current && !self.stopping() {
            tracing::info!(sid, "election connection down");
        }
        if dial {
            self.spawn_dial(sid);
        }
    }

    fn send_worker(self: &Arc<Self>, sid: Sid, id: u64, sock: ElectionStream) {
        if let Err(e) = self.send_frames(sid, id, &sock) {
            tracing::debug!(sid, "election send failed: {e}");
        }
        self.finish(sid, id);
    }

    fn send_frames(&self, sid: Sid, id: u64, sock: &ElectionStream) -> io::Result<()> {
        let Some(peer) = self.peers.get(&sid) else {
            return Ok(());
        };
        let resend = {
            let state = peer.lock();
            if state.queue.is_empty() {
                state.last_sent.clone()
            } else {
                None
            }
        };
        if let Some(frame) = resend {
            sock.write_all(&frame)?;
        }
        let poll = Duration::from_millis(limits::ELECTION_SEND_POLL_INTERVAL_MS);
        loop {
            let frame = {
                let mut state = peer.lock();
                loop {
                    if self.stopping() || state.current != Some(id) {
                        return Ok(());
                    }
                    if let Some(frame) = state.queue.pop() {
                        state.last_sent = Some(Arc::clone(&frame));
                        break frame;
                    }
                    state = peer
                        .wake
                        .wait_timeout(state, poll)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
            };
            sock.write_all(&frame)?;
        }
    }

    fn recv_worker(self: &Arc<Self>, sid: Sid, id: u64, mut reader: FrameReader) {
        loop {
            match reader.next_payload() {
                Ok(payload) => match ew::decode_notification(&payload) {
                    Ok(msg) => self.emit(CnxEvent::Message { from: sid, msg }),
                    Err(e) => tracing::warn!(sid, "skipping a malformed notification: {e}"),
                },
                Err(FrameError::Malformed(e)) => {
                    tracing::warn!(sid, "closing the election connection: {e}");
                    break;
                }
                Err(FrameError::Io(e)) => {
                    if !self.stopping() {
                        tracing::debug!(sid, "election connection ended: {e}");
                    }
                    break;
                }
            }
        }
        self.finish(sid, id);
    }

    // -----------------------------------------------------------------------------------------
    // Accepting

    fn accept_loop(self: Arc<Self>, listener: TcpListener) {
        let poll = Duration::from_millis(limits::ELECTION_ACCEPT_POLL_INTERVAL_MS);
        while !self.stopping() {
            match wire_io::accept_within(&listener, poll) {
                Ok(Some(sock)) => self.accepted(sock),
                Ok(None) => {}
                Err(e) => {
                    // EMFILE and friends: pause instead of spinning.
                    tracing::error!("accepting on the election port: {e}");
                    std::thread::sleep(poll);
                }
            }
        }
    }

    fn accepted(self: &Arc<Self>, sock: TcpStream) {
        let from = sock.peer_addr().ok();
        let in_flight = self.handshakes_in_flight.fetch_add(1, Ordering::AcqRel);
        if in_flight >= limits::ELECTION_HANDSHAKES_IN_FLIGHT_MAX {
            self.handshakes_in_flight.fetch_sub(1, Ordering::AcqRel);
            tracing::warn!(?from, "too many election handshakes in progress: closing");
            return;
        }
        let Some(id) = self.register_socket(&sock) else {
            self.handshakes_in_flight.fetch_sub(1, Ordering::AcqRel);
            return;
        };
        let started = self.spawn("fk-election-hello".into(), move |me| {
            me.handshake(sock, id, from);
            me.handshakes_in_flight.fetch_sub(1, Ordering::AcqRel);
        });
        if !started {
            self.handshakes_in_flight.fetch_sub(1, Ordering::AcqRel);
            self.close_socket(id);
        }
    }

    /// `handleConnection`: read the handshake, then keep the connection,
    /// or close it and dial back, or close it for good.
    fn handshake(self: &Arc<Self>, sock: TcpStream, id: u64, from: Option<SocketAddr>) {
        let _ = sock.set_nodelay(true);
        let opened = self
            .secure_accept(sock, from)
            .and_then(|stream| stream.reader().map(|reader| (stream, reader)));
        let (stream, mut reader) = match opened {
            Ok(opened) => opened,
            Err(e) => {
                tracing::warn!(?from, "closing an election connection: TLS: {e}");
                self.close_socket(id);
                return;
            }
        };
        let read =
            wire_io::read_handshake(stream.tcp(), &mut reader, self.settings.handshake_timeout);
        let (msg, leftover) = match read {
            Ok(done) => done,
            Err(e) => {
                tracing::warn!(?from, "closing an election connection: {e}");
                self.close_socket(id);
                return;
            }
        };
        let sid = msg.sid();
        if sid == OBSERVER_SID || !self.ensemble.members.contains_key(&sid) {
            tracing::warn!(
                ?from,
                sid,
                "closing an election connection from a sid not in the config"
            );
            self.close_socket(id);
            return;
        }
        match ew::acceptor_keeps_connection(self.my_sid(), sid) {
            AcceptDecision::Keep => {
                if let Err(e) = configure(stream.tcp(), self.settings.handshake_timeout) {
                    tracing::warn!(sid, "cannot set up an election connection: {e}");
                    self.close_socket(id);
                    return;
                }
                self.install(sid, stream, id, reader, leftover)
            }
            AcceptDecision::CloseAndDialBack => {
                tracing::debug!(sid, "smaller sid dialled us: closing and dialling back");
                self.close_socket(id);
                self.redial(sid);
            }
            AcceptDecision::CloseDuplicateSid => {
                tracing::warn!(
                    ?from,
                    sid,
                    "closing an election connection that claims our own sid"
                );
                self.close_socket(id);
            }
        }
    }

    /// The accepted socket as the stream to serve: plain without quorum
    /// TLS; TLS with it, unless `portUnification` finds a plaintext first
    /// byte. A plaintext dialler on a TLS-only port fails the handshake.
    fn secure_accept(
        &self,
        sock: TcpStream,
        from: Option<SocketAddr>,
    ) -> io::Result<ElectionStream> {
        let Some(tls) = &self.settings.tls else {
            return Ok(ElectionStream::Plain(sock));
        };
        if tls.detects_plaintext() {
            let first = tls_stream::peek_first_byte(&sock, tls.handshake_timeout())?;
            if tls.inbound(first) == Inbound::Plain {
                return Ok(ElectionStream::Plain(sock));
            }
        }
        let from = from.ok_or_else(|| io::Error::other("the peer's address is unknown"))?;
        tls_stream::accept(sock, tls, from.ip())
    }

    /// The peer thinks it has no connection to us: end ours (as Java's
    /// `sw.finish()`) and dial it.
    fn redial(self: &Arc<Self>, sid: Sid) {
        let Some(peer) = self.peers.get(&sid) else {
            return;
        };
        let (old, dial) = {
            let mut state = peer.lock();
            let old = state.current.take();
            let dial = !state.dialling;
            state.dialling = true;
            peer.wake.notify_all();
            (old, dial)
        };
        if let Some(old) = old {
            self.close_socket(old);
        }
        if dial {
            self.spawn_dial(sid);
        }
    }
}

/// Socket options of a kept or dialled connection: no Nagle (one small
/// frame per vote), writes bounded in time, reads bounded during the handshake.
fn configure(sock: &TcpStream, handshake_timeout: Duration) -> io::Result<()> {
    sock.set_nodelay(true)?;
    sock.set_write_timeout(Some(Duration::from_millis(
        limits::ELECTION_WRITE_TIMEOUT_MS,
    )))?;
    sock.set_read_timeout(Some(handshake_timeout))
}

//! A TCP proxy whose links a test can break: `pass` forwards bytes both ways, `silence`
//! keeps every connection open but delivers nothing (bytes read are dropped, the way a real
//! partition looks: a black hole, no FIN, no RST), `cut` closes every connection and closes
//! new ones at once. A mode applies to existing and new connections alike, and the call that
//! sets it returns only once every connection thread has seen it, so a test can rely on the
//! new mode from the next line on.
//!
//! Plain std threads: one listener thread and one thread per connection, each waiting in
//! `poll(2)` with a short timeout so a mode change or a drop is seen within
//! [`POLL_INTERVAL`]. Bounded: a fixed buffer per direction, at most [`MAX_CONNECTIONS`]
//! connections (further ones are closed when accepted), and dropping the proxy stops the
//! listener, closes every connection and joins every thread (bounded waits).
//!
//! `refuse()` closes the proxy's listening socket, so connecting to it is refused, as
//! connecting to a port whose process died is; `listen_again()` reopens the same port. The
//! ensemble harness does both when it kills and restarts a server: a proxy that accepted
//! and then closed would look like a live peer to a dialling server.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Bytes one direction of one connection holds while its destination cannot take them.
pub const BUFFER_BYTES: usize = 64 * 1024;
/// Connections forwarded at once; the listener closes any beyond this when it accepts them.
pub const MAX_CONNECTIONS: usize = 64;
/// Longest a thread waits in `poll` before it looks at the mode again.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Bound on connecting to the target (loopback: refused or accepted at once).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Bound on every connection thread seeing a new mode. A thread can be in a connect for up
/// to `CONNECT_TIMEOUT` before it looks again.
const MODE_ACK_TIMEOUT: Duration = CONNECT_TIMEOUT.saturating_add(Duration::from_secs(2));
/// Bound on joining the threads when the proxy is dropped.
const JOIN_TIMEOUT: Duration = Duration::from_secs(3);

/// What the proxy does with traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Forward bytes both ways.
    Pass,
    /// Keep connections open, deliver nothing: bytes read are dropped, a peer's close is not
    /// passed on, and new connections are accepted but not connected to the target.
    Silence,
    /// Close every connection, and close new ones as soon as they are accepted.
    Cut,
}

impl Mode {
    fn code(self) -> u64 {
        match self {
            Mode::Pass => 0,
            Mode::Silence => 1,
            Mode::Cut => 2,
        }
    }
    fn from_code(code: u64) -> Mode {
        match code {
            0 => Mode::Pass,
            1 => Mode::Silence,
            _ => Mode::Cut,
        }
    }
}

/// The mode and the number of mode changes so far, in one word so a thread reads a
/// consistent pair: the low byte is the mode, the rest the epoch.
struct ModeWord(AtomicU64);

impl ModeWord {
    fn load(&self) -> (u64, Mode) {
        let w = self.0.load(Ordering::SeqCst);
        (w >> 8, Mode::from_code(w & 0xff))
    }
    /// Stores `mode` under the next epoch; returns that epoch. Callers hold `Shared::conns`,
    /// so two stores cannot interleave between the load and the store.
    fn store(&self, mode: Mode) -> u64 {
        let (epoch, _) = self.load();
        let next = epoch + 1;
        self.0.store((next << 8) | mode.code(), Ordering::SeqCst);
        next
    }
}

/// A connection thread and the last mode epoch it acted on.
struct ConnSlot {
    seen: Arc<AtomicU64>,
    handle: JoinHandle<()>,
}

/// State shared by the proxy handle, the listener and the connection threads.
struct Shared {
    target: SocketAddr,
    /// The proxy's own port.
    port: u16,
    mode: ModeWord,
    stop: AtomicBool,
    /// Live connection threads. Held while the mode changes and while the listener decides
    /// about a new connection, so a connection is either closed by the listener under the
    /// new mode or listed before the mode change waits for acknowledgements.
    conns: Mutex<Vec<ConnSlot>>,
    accepted: AtomicU64,
    upstream_connects: AtomicU64,
    forwarded: AtomicU64,
    dropped: AtomicU64,
}

impl Shared {
    fn conns(&self) -> MutexGuard<'_, Vec<ConnSlot>> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running proxy on 127.0.0.1; dropping it stops everything.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    listener: Option<Listening>,
}

/// The accept thread and the flag that ends it (the listening socket closes with it).
struct Listening {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<()>,
}

/// How long `listen_again` keeps trying to bind its old port (a connection in TIME_WAIT
/// does not block it; another process taking the port in between would).
const REBIND_TIMEOUT: Duration = Duration::from_secs(2);

impl FaultProxy {
    /// Listens on a kernel-picked port of 127.0.0.1 and forwards to `target`, in `Pass` mode.
    pub fn start(target: SocketAddr) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("fault proxy: bind");
        listener
            .set_nonblocking(true)
            .expect("fault proxy: nonblocking listener");
        let addr = listener.local_addr().expect("fault proxy: local addr");
        let shared = Arc::new(Shared {
            target,
            port: addr.port(),
            mode: ModeWord(AtomicU64::new(Mode::Pass.code())),
            stop: AtomicBool::new(false),
            conns: Mutex::new(Vec::new()),
            accepted: AtomicU64::new(0),
            upstream_connects: AtomicU64::new(0),
            forwarded: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        });
        let listening = Some(listen(listener, &shared));
        FaultProxy {
            addr,
            shared,
            listener: listening,
        }
    }

    /// Closes the listening socket (connections already made are left as they are), and
    /// returns once it is closed: from now on a connect to the proxy is refused.
    pub fn refuse(&mut self) {
        if let Some(l) = self.listener.take() {
            l.stop.store(true, Ordering::SeqCst);
            join_bounded(l.handle, Instant::now() + JOIN_TIMEOUT, self.addr);
        }
    }

    /// Listens on the proxy's port again after `refuse()`.
    pub fn listen_again(&mut self) {
        if self.listener.is_some() {
            return;
        }
        let deadline = Instant::now() + REBIND_TIMEOUT;
        let listener = loop {
            match TcpListener::bind(self.addr) {
                Ok(l) => break l,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("fault proxy {}: bind again: {e}; retrying", self.addr);
                    std::thread::sleep(POLL_INTERVAL);
                }
                Err(e) => panic!("fault proxy {}: cannot listen again: {e}", self.addr),
            }
        };
        listener
            .set_nonblocking(true)
            .expect("fault proxy: nonblocking listener");
        self.listener = Some(listen(listener, &self.shared));
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    pub fn port(&self) -> u16 {
        self.addr.port()
    }
    pub fn target(&self) -> SocketAddr {
        self.shared.target
    }
    pub fn mode(&self) -> Mode {
        self.shared.mode.load().1
    }

    pub fn pass(&self) {
        self.set_mode(Mode::Pass);
    }
    pub fn silence(&self) {
        self.set_mode(Mode::Silence);
    }
    pub fn cut(&self) {
        self.set_mode(Mode::Cut);
    }

    /// Switches mode and returns once every connection thread acts on it: after `silence()`
    /// nothing more is delivered, after `cut()` every connection is closed.
    pub fn set_mode(&self, mode: Mode) {
        let epoch = {
            let _conns = self.shared.conns();
            self.shared.mode.store(mode)
        };
        let deadline = Instant::now() + MODE_ACK_TIMEOUT;
        while !self.all_seen(epoch) {
            assert!(
                Instant::now() < deadline,
                "fault proxy {}: a connection thread did not take mode {mode:?} within {MODE_ACK_TIMEOUT:?}",
                self.addr
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn all_seen(&self, epoch: u64) -> bool {
        self.shared
            .conns()
            .iter()
            .all(|c| c.handle.is_finished() || c.seen.load(Ordering::SeqCst) >= epoch)
    }

    /// Connections the listener accepted (including those it closed at once).
    pub fn connections_accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::SeqCst)
    }
    /// Connections made to the target.
    pub fn upstream_connects(&self) -> u64 {
        self.shared.upstream_connects.load(Ordering::SeqCst)
    }
    /// Connection threads still running.
    pub fn active_connections(&self) -> usize {
        self.shared
            .conns()
            .iter()
            .filter(|c| !c.handle.is_finished())
            .count()
    }
    /// Bytes delivered, both directions together.
    pub fn bytes_forwarded(&self) -> u64 {
        self.shared.forwarded.load(Ordering::SeqCst)
    }
    /// Bytes read and thrown away (silence, or a mode change with bytes in flight).
    pub fn bytes_dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + JOIN_TIMEOUT;
        if let Some(l) = self.listener.take() {
            join_bounded(l.handle, deadline, self.addr);
        }
        // The listener has ended, so nobody adds to the list any more.
        let conns = std::mem::take(&mut *self.shared.conns());
        for c in conns {
            join_bounded(c.handle, deadline, self.addr);
        }
    }
}

/// Joins `h` if it ends before `deadline`; otherwise reports and leaves it (a panic in a
/// drop could abort a test that is already unwinding).
fn join_bounded(h: JoinHandle<()>, deadline: Instant, addr: SocketAddr) {
    while !h.is_finished() {
        if Instant::now() >= deadline {
            eprintln!("fault proxy {addr}: a thread did not stop within {JOIN_TIMEOUT:?}");
            return;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let _ = h.join();
}

// ---------------------------------------------------------------------------------------------
// The listener

fn listen(listener: TcpListener, shared: &Arc<Shared>) -> Listening {
    let stop = Arc::new(AtomicBool::new(false));
    let (for_thread, stop_for_thread) = (Arc::clone(shared), Arc::clone(&stop));
    let handle = std::thread::Builder::new()
        .name(format!("proxy-{}", shared.port))
        .spawn(move || accept_loop(listener, for_thread, stop_for_thread))
        .expect("fault proxy: listener thread");
    Listening { stop, handle }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>, stop: Arc<AtomicBool>) {
    while !shared.stop.load(Ordering::SeqCst) && !stop.load(Ordering::SeqCst) {
        let mut fds = [pollfd(listener.as_raw_fd(), libc::POLLIN)];
        wait(&mut fds);
        loop {
            match listener.accept() {
                Ok((client, _)) => admit(client, &shared),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // E.g. the peer reset before accept, or out of fds: try again on the next wake.
                Err(_) => break,
            }
        }
    }
}

/// Starts forwarding `client`, or closes it (cut mode, or too many connections).
fn admit(client: TcpStream, shared: &Arc<Shared>) {
    shared.accepted.fetch_add(1, Ordering::SeqCst);
    let mut conns = shared.conns();
    conns.retain(|c| !c.handle.is_finished());
    let (_, mode) = shared.mode.load();
    if mode == Mode::Cut || conns.len() >= MAX_CONNECTIONS {
        return; // `client` is dropped: closed.
    }
    if client.set_nonblocking(true).is_err() {
        return;
    }
    let _ = client.set_nodelay(true);
    let seen = Arc::new(AtomicU64::new(0));
    let (for_thread, seen_by_thread) = (Arc::clone(shared), Arc::clone(&seen));
    // Named after the proxy's port, so a test can see that none is left after a drop.
    let port = shared.port;
    let spawned = std::thread::Builder::new()
        .name(format!("proxy-{port}-c"))
        .spawn(move || Conn::new(client, for_thread, seen_by_thread).run());
    if let Ok(handle) = spawned {
        conns.push(ConnSlot { seen, handle });
    }
}

// ---------------------------------------------------------------------------------------------
// One connection

/// How a side stopped sending.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Closed {
    Open,
    /// Orderly close (EOF): passed on as a write shutdown of the other side.
    Eof,
    /// Reset or other error: passed on by closing the whole connection.
    Error,
}

/// One direction's fixed buffer: bytes read from the source not yet written to the destination.
struct Pipe {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    /// Whether the source stopped sending.
    src: Closed,
    /// Whether the source's EOF was passed on.
    shut_sent: bool,
}

impl Pipe {
    fn new() -> Pipe {
        Pipe {
            buf: vec![0; BUFFER_BYTES].into_boxed_slice(),
            start: 0,
            end: 0,
            src: Closed::Open,
            shut_sent: false,
        }
    }
    fn pending(&self) -> usize {
        self.end - self.start
    }
    fn discard(&mut self) -> u64 {
        let n = self.pending() as u64;
        self.start = 0;
        self.end = 0;
        n
    }
    /// Whether there is nothing more this direction will do.
    fn done(&self) -> bool {
        self.src != Closed::Open && self.pending() == 0 && self.shut_sent
    }
}

/// What a step of a connection decided.
enum Step {
    Go,
    Close,
}

struct Conn {
    client: TcpStream,
    /// Made when the connection first sees `Pass` (not in `Silence`, where nothing flows).
    upstream: Option<TcpStream>,
    /// client -> upstream
    up: Pipe,
    /// upstream -> client
    down: Pipe,
    shared: Arc<Shared>,
    seen: Arc<AtomicU64>,
}

impl Conn {
    fn new(client: TcpStream, shared: Arc<Shared>, seen: Arc<AtomicU64>) -> Conn {
        Conn {
            client,
            upstream: None,
            up: Pipe::new(),
            down: Pipe::new(),
            shared,
            seen,
        }
    }

    /// Runs until the connection closes, the mode is `Cut` or the proxy stops. Returning
    /// drops both sockets, which closes them.
    fn run(mut self) {
        loop {
            let (epoch, mode) = self.shared.mode.load();
            if self.shared.stop.load(Ordering::SeqCst) || mode == Mode::Cut {
                break;
            }
            let step = match mode {
                Mode::Pass => self.pass_step(),
                _ => self.silence_step(),
            };
            // Acknowledged only after acting on the mode: a caller of `set_mode` may rely on
            // it from then on.
            self.seen.store(epoch, Ordering::SeqCst);
            if matches!(step, Step::Close) {
                break;
            }
            self.wait(mode);
        }
        if let Some(up) = &self.upstream {
            let _ = up.shutdown(Shutdown::Both);
        }
        let _ = self.client.shutdown(Shutdown::Both);
    }

    /// Drops whatever was in flight and reads (and drops) whatever arrives.
    fn silence_step(&mut self) -> Step {
        let dropped = self.up.discard() + self.down.discard();
        self.shared.dropped.fetch_add(dropped, Ordering::SeqCst);
        let n = drain(&self.client, &mut self.up);
        self.shared.dropped.fetch_add(n, Ordering::SeqCst);
        if let Some(upstream) = &self.upstream {
            let n = drain(upstream, &mut self.down);
            self.shared.dropped.fetch_add(n, Ordering::SeqCst);
        } else if self.up.src != Closed::Open {
            // Never connected: the client's close reveals nothing to anyone.
            return Step::Close;
        }
        Step::Go
    }

    fn pass_step(&mut self) -> Step {
        if self.upstream.is_none() {
            if self.up.src != Closed::Open {
                return Step::Close;
            }
            match connect(self.shared.target) {
                Some(s) => {
                    self.shared.upstream_connects.fetch_add(1, Ordering::SeqCst);
                    self.upstream = Some(s);
                }
                // Refused upstream: the client sees its connection closed.
                None => return Step::Close,
            }
        }
        let upstream = self.upstream.as_ref().expect("connected above");
        let forwarded = &self.shared.forwarded;
        if let Step::Close = pump(&self.client, upstream, &mut self.up, forwarded) {
            return Step::Close;
        }
        if let Step::Close = pump(upstream, &self.client, &mut self.down, forwarded) {
            return Step::Close;
        }
        if self.up.done() && self.down.done() {
            return Step::Close;
        }
        Step::Go
    }

    /// Sleeps until a socket this connection waits on is ready, or `POLL_INTERVAL` passes.
    fn wait(&self, mode: Mode) {
        let mut fds: Vec<libc::pollfd> = Vec::with_capacity(2);
        let client = self.client.as_raw_fd();
        let upstream = self.upstream.as_ref().map(|s| s.as_raw_fd());
        let mut want = |fd: RawFd, events: libc::c_short| {
            // A socket asked for nothing is left out: poll would report its hang-up every
            // time and the thread would spin.
            if events == 0 {
                return;
            }
            match fds.iter_mut().find(|p| p.fd == fd) {
                Some(p) => p.events |= events,
                None => fds.push(pollfd(fd, events)),
            }
        };
        match (mode, upstream) {
            (Mode::Pass, Some(up)) => {
                let (r, w) = interest(&self.up);
                want(client, r);
                want(up, w);
                let (r, w) = interest(&self.down);
                want(up, r);
                want(client, w);
            }
            (_, up) => {
                if self.up.src == Closed::Open {
                    want(client, libc::POLLIN);
                }
                if let (Some(up), Closed::Open) = (up, self.down.src) {
                    want(up, libc::POLLIN);
                }
            }
        }
        wait(&mut fds);
    }
}

/// (events on the source, events on the destination) one direction waits for in `Pass`.
fn interest(pipe: &Pipe) -> (libc::c_short, libc::c_short) {
    if pipe.pending() > 0 {
        (0, libc::POLLOUT)
    } else if pipe.src == Closed::Open {
        (libc::POLLIN, 0)
    } else {
        (0, 0)
    }
}

/// Moves what it can from `src` to `dst` without blocking: first what is buffered, then one
/// read, then as much of it as `dst` takes; passes on the source's close once flushed.
fn pump(src: &TcpStream, dst: &TcpStream, pipe: &mut Pipe, forwarded: &AtomicU64) -> Step {
    if let Step::Close = flush(dst, pipe, forwarded) {
        return Step::Close;
    }
    if pipe.pending() == 0 && pipe.src == Closed::Open {
        match read_once(src, &mut pipe.buf) {
            Ok(Some(n)) => {
                pipe.start = 0;
                pipe.end = n;
            }
            Ok(None) => {}
            Err(closed) => pipe.src = closed,
        }
        if let Step::Close = flush(dst, pipe, forwarded) {
            return Step::Close;
        }
    }
    if pipe.pending() == 0 {
        match pipe.src {
            Closed::Open => {}
            Closed::Error => return Step::Close,
            Closed::Eof if !pipe.shut_sent => {
                let _ = dst.shutdown(Shutdown::Write);
                pipe.shut_sent = true;
            }
            Closed::Eof => {}
        }
    }
    Step::Go
}

/// Writes buffered bytes to `dst` until it would block.
fn flush(mut dst: &TcpStream, pipe: &mut Pipe, forwarded: &AtomicU64) -> Step {
    while pipe.pending() > 0 {
        match dst.write(&pipe.buf[pipe.start..pipe.end]) {
            Ok(0) => return Step::Close,
            Ok(n) => {
                pipe.start += n;
                forwarded.fetch_add(n as u64, Ordering::SeqCst);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Step::Close,
        }
    }
    if pipe.pending() == 0 {
        pipe.start = 0;
        pipe.end = 0;
    }
    Step::Go
}

/// Reads and throws away what `src` has now, at most a few buffers' worth per call so one
/// busy socket cannot keep the thread from looking at the mode; returns the bytes dropped.
fn drain(src: &TcpStream, pipe: &mut Pipe) -> u64 {
    const READS_PER_STEP: usize = 16;
    let mut dropped = 0;
    for _ in 0..READS_PER_STEP {
        if pipe.src != Closed::Open {
            break;
        }
        match read_once(src, &mut pipe.buf) {
            Ok(Some(n)) => dropped += n as u64,
            Ok(None) => break,
            Err(closed) => pipe.src = closed,
        }
    }
    dropped
}

/// One nonblocking read: Ok(Some(n)) bytes, Ok(None) nothing now, Err(how it closed).
fn read_once(mut src: &TcpStream, buf: &mut [u8]) -> Result<Option<usize>, Closed> {
    loop {
        return match src.read(buf) {
            Ok(0) => Err(Closed::Eof),
            Ok(n) => Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => Err(Closed::Error),
        };
    }
}

fn connect(target: SocketAddr) -> Option<TcpStream> {
    let s = TcpStream::connect_timeout(&target, CONNECT_TIMEOUT).ok()?;
    s.set_nonblocking(true).ok()?;
    let _ = s.set_nodelay(true);
    Some(s)
}

fn pollfd(fd: RawFd, events: libc::c_short) -> libc::pollfd {
    libc::pollfd {
        fd,
        events,
        revents: 0,
    }
}

/// `poll(2)` for at most `POLL_INTERVAL` (just a sleep when `fds` is empty). Which socket is
/// ready does not matter: the caller retries every nonblocking operation afterwards.
fn wait(fds: &mut [libc::pollfd]) {
    let timeout = POLL_INTERVAL.as_millis() as libc::c_int;
    // SAFETY: `fds` is a valid, exclusively borrowed array of `fds.len()` pollfd structs
    // whose descriptors stay open for the duration of the call.
    unsafe {
        libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout);
    }
}

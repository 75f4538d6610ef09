//! The test fault proxy (tests/common/fault_proxy.rs) against a small echo server on std
//! threads: `pass` forwards both ways (also more than a buffer's worth, and a half-close);
//! `silence` delivers nothing in either direction yet keeps both sockets open, and back in
//! `pass` new data flows on the same connection; `cut` closes existing connections and
//! closes new ones; the connection bound closes the connection beyond it; dropping the proxy
//! closes its connections and its port.
//!
//! Silence is checked deterministically: the test waits until the proxy has counted the bytes
//! as dropped (so they can never be delivered later), then a short read timeout shows the
//! socket open and empty.

mod common;

use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::fault_proxy::{FaultProxy, Mode, MAX_CONNECTIONS};

/// Bound on anything expected to happen (data arriving, a close being seen).
const EXPECT: Duration = Duration::from_secs(2);
/// How long a read waits to show that nothing arrives on an open socket. The bytes it could
/// have seen were already counted as dropped, so this only has to outlast loopback delivery.
const QUIET: Duration = Duration::from_millis(100);

// ---------------------------------------------------------------------------------------------
// An echo server: echoes every byte back on its connection; `push` writes to every
// connection from the server side; counters show what reached it.

struct Echo {
    addr: SocketAddr,
    state: Arc<EchoState>,
    acceptor: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct EchoState {
    stop: AtomicBool,
    accepted: AtomicU64,
    received: AtomicU64,
    /// Connections on which the server saw EOF or an error.
    closed: AtomicU64,
    streams: Mutex<Vec<TcpStream>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

impl Echo {
    fn start() -> Echo {
        let listener = TcpListener::bind("127.0.0.1:0").expect("echo bind");
        listener.set_nonblocking(true).expect("echo nonblocking");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(EchoState::default());
        let st = Arc::clone(&state);
        let acceptor = std::thread::spawn(move || echo_accept(listener, st));
        Echo {
            addr,
            state,
            acceptor: Some(acceptor),
        }
    }
    fn accepted(&self) -> u64 {
        self.state.accepted.load(Ordering::SeqCst)
    }
    fn received(&self) -> u64 {
        self.state.received.load(Ordering::SeqCst)
    }
    fn closed(&self) -> u64 {
        self.state.closed.load(Ordering::SeqCst)
    }
    /// Writes `bytes` on every connection, from the server side.
    fn push(&self, bytes: &[u8]) {
        for s in self.state.streams.lock().unwrap().iter_mut() {
            s.write_all(bytes).expect("echo push");
        }
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.acceptor.take() {
            h.join().unwrap();
        }
        for h in std::mem::take(&mut *self.state.workers.lock().unwrap()) {
            h.join().unwrap();
        }
    }
}

fn echo_accept(listener: TcpListener, st: Arc<EchoState>) {
    while !st.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((s, _)) => {
                st.accepted.fetch_add(1, Ordering::SeqCst);
                s.set_nonblocking(false).unwrap();
                s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
                st.streams.lock().unwrap().push(s.try_clone().unwrap());
                let st2 = Arc::clone(&st);
                let h = std::thread::spawn(move || echo_conn(s, st2));
                st.workers.lock().unwrap().push(h);
            }
            // A test fixture may poll: nothing in it waits for this loop.
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(2))
            }
            Err(e) => panic!("echo accept: {e}"),
        }
    }
}

fn echo_conn(mut s: TcpStream, st: Arc<EchoState>) {
    let mut buf = [0u8; 16 * 1024];
    while !st.stop.load(Ordering::SeqCst) {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                st.received.fetch_add(n as u64, Ordering::SeqCst);
                if s.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    st.closed.fetch_add(1, Ordering::SeqCst);
    // Closes the clone `push` uses too, so the client sees the close.
    let _ = s.shutdown(Shutdown::Both);
}

// ---------------------------------------------------------------------------------------------
// Client helpers

fn client(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, EXPECT).expect("connect to proxy");
    s.set_nodelay(true).unwrap();
    s
}

/// Reads exactly `n` bytes within `EXPECT`.
fn read_n(s: &mut TcpStream, n: usize) -> Vec<u8> {
    s.set_read_timeout(Some(EXPECT)).unwrap();
    let mut out = vec![0u8; n];
    s.read_exact(&mut out)
        .unwrap_or_else(|e| panic!("reading {n} bytes: {e}"));
    out
}

/// Writes `msg` and expects it back.
fn round_trip(s: &mut TcpStream, msg: &[u8]) {
    s.write_all(msg).unwrap();
    assert_eq!(read_n(s, msg.len()), msg);
}

/// What one read sees within `timeout`.
#[derive(Debug, PartialEq)]
enum Seen {
    Data(Vec<u8>),
    /// EOF or reset: the connection is closed.
    Closed,
    /// Nothing arrived and the socket is still open.
    Nothing,
}

fn read_within(s: &mut TcpStream, timeout: Duration) -> Seen {
    s.set_read_timeout(Some(timeout)).unwrap();
    let mut buf = [0u8; 1024];
    match s.read(&mut buf) {
        Ok(0) => Seen::Closed,
        Ok(n) => Seen::Data(buf[..n].to_vec()),
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Seen::Nothing,
        Err(e) if e.kind() == ErrorKind::ConnectionReset => Seen::Closed,
        Err(e) => panic!("read: {e}"),
    }
}

/// Threads of this process named after the proxy on `port` (its listener is `proxy-<port>`,
/// its connections `proxy-<port>-c`).
fn proxy_threads(port: u16) -> usize {
    let name = format!("proxy-{port}");
    fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .flatten()
        .filter_map(|t| fs::read_to_string(t.path().join("comm")).ok())
        .filter(|comm| comm.trim_end() == name || comm.trim_end() == format!("{name}-c"))
        .count()
}

/// Bounded wait on a condition.
fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + EXPECT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

// ---------------------------------------------------------------------------------------------

#[test]
fn pass_forwards_both_ways() {
    let echo = Echo::start();
    let proxy = FaultProxy::start(echo.addr);
    assert_eq!(proxy.mode(), Mode::Pass);
    let mut c = client(proxy.addr());
    round_trip(&mut c, b"hello");
    echo.push(b"from server");
    assert_eq!(read_n(&mut c, 11), b"from server");
    assert_eq!(proxy.connections_accepted(), 1);
    assert_eq!(proxy.upstream_connects(), 1);
    assert_eq!(echo.accepted(), 1);
    // The proxy counts a write after it returns, which may be after the reader has the bytes.
    until("the counter has every byte", || {
        proxy.bytes_forwarded() == 5 + 5 + 11
    });
    assert_eq!(proxy.bytes_dropped(), 0);
}

#[test]
fn pass_forwards_more_than_a_buffer_with_backpressure() {
    // 1 MiB is 16 proxy buffers: both directions must block and resume without loss.
    const LEN: usize = 1 << 20;
    let echo = Echo::start();
    let proxy = FaultProxy::start(echo.addr);
    let mut c = client(proxy.addr());
    let data: Vec<u8> = (0..LEN).map(|i| (i * 7 % 251) as u8).collect();
    let mut w = c.try_clone().unwrap();
    let to_send = data.clone();
    let writer = std::thread::spawn(move || w.write_all(&to_send).unwrap());
    assert!(read_n(&mut c, LEN) == data, "echoed bytes differ");
    writer.join().unwrap();
    until("the counter has every byte", || {
        proxy.bytes_forwarded() == 2 * LEN as u64
    });
}

#[test]
fn pass_forwards_a_half_close() {
    let echo = Echo::start();
    let proxy = FaultProxy::start(echo.addr);
    let mut c = client(proxy.addr());
    c.write_all(b"last words").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    // The server sees the EOF only if the proxy passes it on; it then closes, and so must the
    // proxy towards the client, after the echo.
    assert_eq!(read_n(&mut c, 10), b"last words");
    assert_eq!(read_within(&mut c, EXPECT), Seen::Closed);
    until("the server sees the EOF", || echo.closed() == 1);
}

#[test]
fn silence_delivers_nothing_keeps_sockets_open_and_pass_resumes() {
    let echo = Echo::start();
    let proxy = FaultProxy::start(echo.addr);
    let mut c = client(proxy.addr());
    round_trip(&mut c, b"before");
    let received = echo.received();

    proxy.silence();
    assert_eq!(proxy.mode(), Mode::Silence);
    // client -> server: read by the proxy and dropped, never reaches the server.
    c.write_all(b"lost up").unwrap();
    until("the proxy drops the client's bytes", || {
        proxy.bytes_dropped() == 7
    });
    // server -> client: likewise.
    echo.push(b"lost down");
    until("the proxy drops the server's bytes", || {
        proxy.bytes_dropped() == 7 + 9
    });
    assert_eq!(read_within(&mut c, QUIET), Seen::Nothing);
    assert_eq!(
        echo.received(),
        received,
        "bytes reached the server in silence"
    );
    assert_eq!(echo.closed(), 0, "the server side was closed in silence");

    proxy.pass();
    // The same connection carries new data again, and nothing dropped comes back.
    round_trip(&mut c, b"after");
    assert_eq!(echo.received(), received + 5);
    assert_eq!(proxy.upstream_connects(), 1);
}

#[test]
fn silence_holds_new_connections_without_connecting_upstream() {
    let echo = Echo::start();
    let proxy = FaultProxy::start(echo.addr);
    proxy.silence();
    let mut c = client(proxy.addr());
    until("the proxy accepts", || proxy.connections_accepted() == 1);
    c.write_all(b"knock").unwrap();
    until("the proxy drops the bytes", || proxy.bytes_dropped() == 5);
    assert_eq!(read_within(&mut c, QUIET), Seen::Nothing);
    assert_eq!(proxy.upstream_connects(), 0);
    assert_eq!(echo.accepted(), 0, "silence connected upstream");

    proxy.pass();
    round_trip(&mut c, b"now");
    assert_eq!(proxy.upstream_connects(), 1);
    assert_eq!(echo.accepted(), 1);
}

#[test]
fn cut_closes_current_and_new_connections_until_pass() {
    let echo = Echo::start();
    let proxy = FaultProxy::start(echo.addr);
    let mut a = client(proxy.addr());
    round_trip(&mut a, b"a");
    let mut held = client(proxy.addr());
    round_trip(&mut held, b"h");
    proxy.silence();

    proxy.cut();
    assert_eq!(proxy.mode(), Mode::Cut);
    // `cut` returns once every connection is closed: both clients see it, and so does the
    // server for both of its connections.
    assert_eq!(read_within(&mut a, EXPECT), Seen::Closed);
    assert_eq!(read_within(&mut held, EXPECT), Seen::Closed);
    until("the server sees both closes", || echo.closed() == 2);
    assert_eq!(proxy.active_connections(), 0);

    // A new connection is accepted by the kernel, then closed by the proxy.
    let mut b = client(proxy.addr());
    assert_eq!(read_within(&mut b, EXPECT), Seen::Closed);
    assert_eq!(proxy.upstream_connects(), 2, "cut connected upstream");

    proxy.pass();
    let mut c = client(proxy.addr());
    round_trip(&mut c, b"back");
    assert_eq!(proxy.upstream_connects(), 3);
}

#[test]
fn connections_beyond_the_bound_are_closed() {
    let echo = Echo::start();
    let proxy = FaultProxy::start(echo.addr);
    let mut held: Vec<TcpStream> = (0..MAX_CONNECTIONS).map(|_| client(proxy.addr())).collect();
    until("every connection is forwarded", || {
        proxy.upstream_connects() == MAX_CONNECTIONS as u64
    });
    let mut extra = client(proxy.addr());
    assert_eq!(read_within(&mut extra, EXPECT), Seen::Closed);
    for s in &mut held {
        round_trip(s, b"x");
    }
    // Closing one frees a place.
    drop(held.pop());
    until("the closed connection's thread ends", || {
        proxy.active_connections() == MAX_CONNECTIONS - 1
    });
    let mut next = client(proxy.addr());
    round_trip(&mut next, b"y");
}

#[test]
fn drop_closes_connections_and_the_port() {
    let echo = Echo::start();
    let proxy = FaultProxy::start(echo.addr);
    let addr = proxy.addr();
    let mut c = client(addr);
    round_trip(&mut c, b"x");
    assert_eq!(
        proxy_threads(addr.port()),
        2,
        "listener and connection threads"
    );
    let started = Instant::now();
    drop(proxy);
    let took = started.elapsed();
    // Drop joins every thread, each of which looks at the stop flag every poll interval.
    assert!(took < Duration::from_secs(1), "drop took {took:?}");
    // A joined thread may stay listed for a moment while the kernel releases it.
    until("the proxy's threads are gone", || {
        proxy_threads(addr.port()) == 0
    });
    assert_eq!(read_within(&mut c, EXPECT), Seen::Closed);
    until("the server sees the close", || echo.closed() == 1);
    let refused = TcpStream::connect_timeout(&addr, EXPECT);
    assert!(
        matches!(&refused, Err(e) if e.kind() == ErrorKind::ConnectionRefused),
        "the proxy's port still answers: {refused:?}"
    );
}

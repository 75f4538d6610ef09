//! A minimal HTTP/1.1 server on std threads, shared by `/metrics` and the
//! AdminServer: one accept thread, and one short-lived thread per request, at
//! most `Bounds::connections_max` at once. Every connection is closed after
//! one reply. The head is bounded in bytes and by the deadline; a body (the
//! AdminServer's restore) is read by the handler, bounded by it in length
//! and per read by the idle timeout; a streamed reply is bounded per chunk
//! by the idle timeout.
//!
//! Why not an HTTP crate: tiny_http 0.12 (the small one on crates.io) starts
//! a thread per connection without bound and reads header lines without a
//! length limit or timeout, so a client could hold threads and memory; the
//! few lines here are all a scraper or an operator's curl needs.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing::warn;

mod body;
pub use body::Body;

/// Unread body bytes read and dropped before the reply (so that closing
/// does not reset the connection); a larger rest is left, and the client
/// may see a reset.
const UNREAD_BODY_DRAIN_BYTES_MAX: u64 = 1 << 20;

/// The bounds of one server (see `limits::metrics`, `limits::admin`).
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    /// Requests served at once; one beyond it is answered 503 and closed.
    pub connections_max: usize,
    /// Largest request head; beyond it the request is answered 431.
    pub head_bytes_max: usize,
    /// Time one connection may take to send its request head, and again to
    /// take a whole reply (a restore may take long between the two); the
    /// idle bound of each body read and streamed chunk.
    pub deadline: Duration,
    /// How often the idle accept loop looks at the stop flag.
    pub accept_poll: Duration,
}

/// One parsed request: its line, its headers, who sent it, and its body.
pub struct Request<'a> {
    pub method: &'a str,
    /// The path, undecoded, without query or fragment.
    pub path: &'a str,
    /// The raw query string (`""` without one).
    pub query: &'a str,
    /// The header lines after the request line.
    headers: &'a str,
    pub peer: SocketAddr,
    /// The `Content-Length` bytes that follow the head, for the handler to read.
    pub body: Body<'a>,
}

impl Request<'_> {
    /// The first header named `name` (case-insensitive), trimmed.
    pub fn header(&self, name: &str) -> Option<&str> {
        header_value(self.headers, name)
    }
}

fn header_value<'h>(headers: &'h str, name: &str) -> Option<&'h str> {
    headers.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

/// Appends the next chunk of a streamed body to the buffer it is given;
/// false once the body is complete.
pub type NextChunk = Box<dyn FnMut(&mut Vec<u8>) -> bool + Send>;

/// What a handler answers.
pub enum Reply {
    /// The whole reply: status line, headers, body.
    Whole(Vec<u8>),
    /// The status line and headers (with the body's Content-Length), then
    /// the body, chunk by chunk.
    Stream { head: Vec<u8>, next: NextChunk },
}

impl From<Vec<u8>> for Reply {
    fn from(whole: Vec<u8>) -> Reply {
        Reply::Whole(whole)
    }
}

/// Answers one request.
pub type Handler = Arc<dyn Fn(&mut Request<'_>) -> Reply + Send + Sync>;

/// The running server; `stop` ends its accept thread and waits for it
/// (requests in progress finish on their own within the deadline).
/// Dropping it ends the thread without waiting.
pub struct HttpServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl HttpServer {
    /// Binds `addr` (failing if it cannot) and starts serving on a thread
    /// named `fk-<name>`.
    pub fn start(
        name: &str,
        addr: SocketAddr,
        bounds: Bounds,
        handler: Handler,
    ) -> io::Result<HttpServer> {
        let listener = TcpListener::bind(addr)?;
        // Non-blocking so the loop can see `stop` without a wake-up connection.
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let conn_name = format!("fk-{name}-conn");
        let thread = std::thread::Builder::new()
            .name(format!("fk-{name}"))
            .spawn(move || accept_loop(&listener, &bounds, &handler, &conn_name, &flag))?;
        Ok(HttpServer {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn accept_loop(
    listener: &TcpListener,
    bounds: &Bounds,
    handler: &Handler,
    conn_name: &str,
    stop: &AtomicBool,
) {
    let active = Arc::new(AtomicUsize::new(0));
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, peer)) => dispatch(stream, peer, bounds, handler, conn_name, &active),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(bounds.accept_poll)
            }
            Err(e) => {
                // Usually EMFILE: back off instead of spinning on accept.
                warn!("{conn_name}: accept failed: {e}");
                std::thread::sleep(bounds.accept_poll);
            }
        }
    }
}

/// Decrements the count of connections being served when a request ends
/// (or when its thread could not be started and the closure is dropped).
struct ActiveGuard(Arc<AtomicUsize>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn dispatch(
    stream: TcpStream,
    peer: SocketAddr,
    bounds: &Bounds,
    handler: &Handler,
    conn_name: &str,
    active: &Arc<AtomicUsize>,
) {
    if active.fetch_add(1, Ordering::SeqCst) >= bounds.connections_max {
        active.fetch_sub(1, Ordering::SeqCst);
        refuse(stream);
        return;
    }
    let guard = ActiveGuard(active.clone());
    let (bounds, handler) = (*bounds, handler.clone());
    let spawned = std::thread::Builder::new()
        .name(conn_name.to_string())
        .spawn(move || {
            let _guard = guard;
            serve(stream, peer, &bounds, &handler);
        });
    if let Err(e) = spawned {
        warn!("{conn_name}: cannot start a thread for a request: {e}");
    }
}

/// Over the connection bound: a 503 written without blocking (it fits any
/// fresh socket's send buffer; if not, the client just sees the close).
fn refuse(mut stream: TcpStream) {
    let _ = stream.set_nonblocking(true);
    let _ = stream.write_all(&status_only(503, "Service Unavailable"));
    let _ = stream.shutdown(Shutdown::Both);
}

fn serve(mut stream: TcpStream, peer: SocketAddr, bounds: &Bounds, handler: &Handler) {
    let deadline = Instant::now() + bounds.deadline;
    if stream.set_nonblocking(false).is_err() {
        return;
    }
    let reply = match read_head(&mut stream, bounds.head_bytes_max, deadline) {
        Ok((head, early)) => respond(&head, early, peer, &mut stream, bounds, handler),
        Err(HeadError::TooLarge) => status_only(431, "Request Header Fields Too Large").into(),
        Err(HeadError::Io) => return,
    };
    match reply {
        Reply::Whole(bytes) => {
            let _ = write_before(&mut stream, &bytes, Instant::now() + bounds.deadline);
        }
        Reply::Stream { head, next } => stream_reply(&mut stream, &head, next, bounds.deadline),
    }
    let _ = stream.shutdown(Shutdown::Both);
}

/// Writes a streamed reply, each chunk bounded by the idle timeout.
fn stream_reply(stream: &mut TcpStream, head: &[u8], mut next: NextChunk, idle: Duration) {
    if write_before(stream, head, Instant::now() + idle).is_err() {
        return;
    }
    let mut chunk = Vec::new();
    loop {
        chunk.clear();
        let more = next(&mut chunk);
        if write_before(stream, &chunk, Instant::now() + idle).is_err() || !more {
            return;
        }
    }
}

enum HeadError {
    /// No end of headers within the head bound.
    TooLarge,
    /// Closed, reset or too slow: nothing to answer.
    Io,
}

/// Reads up to the blank line ending the request head; returns the head and
/// the bytes read past it (the start of a body).
fn read_head(
    stream: &mut TcpStream,
    max: usize,
    deadline: Instant,
) -> Result<(Vec<u8>, Vec<u8>), HeadError> {
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return Err(HeadError::Io);
        }
        let room = (max - head.len()).min(chunk.len());
        let n = match stream.read(&mut chunk[..room]) {
            Ok(0) | Err(_) => return Err(HeadError::Io),
            Ok(n) => n,
        };
        head.extend_from_slice(&chunk[..n]);
        if let Some((end, terminator)) = head_end(&head) {
            let early = head.split_off(end + terminator);
            head.truncate(end);
            return Ok((head, early));
        }
        if head.len() >= max {
            return Err(HeadError::TooLarge);
        }
    }
}

/// Length of the head up to its terminating blank line (CRLF or bare LF),
/// and the terminator's length.
fn head_end(buf: &[u8]) -> Option<(usize, usize)> {
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n");
    let lf = buf.windows(2).position(|w| w == b"\n\n");
    match (crlf, lf) {
        (Some(a), Some(b)) if b < a => Some((b, 2)),
        (Some(a), _) => Some((a, 4)),
        (None, b) => b.map(|b| (b, 2)),
    }
}

/// What every Jetty server of ZooKeeper answers before a servlet sees the
/// request: 400 for a malformed request line or Content-Length, 505 for a
/// version other than HTTP/1.x, 403 for TRACE (its `constrainTraceMethod`);
/// the rest goes to `handler`.
fn respond(
    head: &[u8],
    early: Vec<u8>,
    peer: SocketAddr,
    stream: &mut TcpStream,
    bounds: &Bounds,
    handler: &Handler,
) -> Reply {
    let head = String::from_utf8_lossy(head);
    let (line, headers) = head.split_once('\n').unwrap_or((head.as_ref(), ""));
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return status_only(400, "Bad Request").into();
    };
    if !version.starts_with("HTTP/1.") {
        return status_only(505, "HTTP Version Not Supported").into();
    }
    if method == "TRACE" {
        return status_only(403, "Forbidden").into();
    }
    let declared = match header_value(headers, "Content-Length").map(str::parse::<u64>) {
        None => None,
        Some(Ok(len)) => Some(len),
        Some(Err(_)) => return status_only(400, "Bad Request").into(),
    };
    let target = target.split('#').next().unwrap_or_default();
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut request = Request {
        method,
        path,
        query,
        headers,
        peer,
        body: Body::new(stream, early, declared, bounds.deadline),
    };
    let reply = handler(&mut request);
    request.body.discard_up_to(UNREAD_BODY_DRAIN_BYTES_MAX);
    reply
}

/// A reply with a body (`with_body` false for HEAD: headers only); an
/// empty `content_type` sends no Content-Type header.
pub fn reply(code: u16, reason: &str, content_type: &str, body: &[u8], with_body: bool) -> Vec<u8> {
    let content_type = if content_type.is_empty() {
        String::new()
    } else {
        format!("Content-Type: {content_type}\r\n")
    };
    let mut out = format!(
        "HTTP/1.1 {code} {reason}\r\n{content_type}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if with_body {
        out.extend_from_slice(body);
    }
    out
}

/// A reply without a body.
pub fn status_only(code: u16, reason: &str) -> Vec<u8> {
    format!("HTTP/1.1 {code} {reason}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        .into_bytes()
}

/// `%XX` escapes and `+` for space, as in a form-encoded query; a bad
/// escape is kept as written.
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Writes all of `bytes` unless the deadline passes first (a client that
/// reads slowly cannot hold the thread past it).
fn write_before(stream: &mut TcpStream, bytes: &[u8], deadline: Instant) -> io::Result<()> {
    let mut sent = 0;
    while sent < bytes.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        stream.set_write_timeout(Some(left))?;
        match stream.write(&bytes[sent..])? {
            0 => return Err(io::ErrorKind::WriteZero.into()),
            n => sent += n,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_ends_at_the_first_blank_line() {
        assert_eq!(
            head_end(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nbody"),
            Some((23, 4))
        );
        assert_eq!(head_end(b"GET / HTTP/1.0\n\n"), Some((14, 2)));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: x\r\n"), None);
    }

    #[test]
    fn headers_are_found_by_name_in_any_case() {
        let headers = "Host: x\r\nauthorization:  digest a:b \r\nContent-Length: 7\r\n";
        assert_eq!(header_value(headers, "Authorization"), Some("digest a:b"));
        assert_eq!(header_value(headers, "content-length"), Some("7"));
        assert_eq!(header_value(headers, "X-Missing"), None);
    }

    #[test]
    fn percent_decoding_keeps_bad_escapes() {
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("name%5B%5D+x"), "name[] x");
    }
}

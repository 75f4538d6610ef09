//! A minimal HTTP/1.1 server on std threads, shared by `/metrics` and the
//! AdminServer: one accept thread, and one short-lived thread per request, at
//! most `Bounds::connections_max` at once. Every connection is closed after
//! one reply, and is bounded in bytes read and in time.
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

/// The bounds of one server (see `limits::metrics`, `limits::admin`).
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    /// Requests served at once; one beyond it is answered 503 and closed.
    pub connections_max: usize,
    /// Largest request head; beyond it the request is answered 431.
    pub head_bytes_max: usize,
    /// Whole time one connection may take to send its request and take the reply.
    pub deadline: Duration,
    /// How often the idle accept loop looks at the stop flag.
    pub accept_poll: Duration,
}

/// One parsed request line (a request body, none is expected, is not read).
pub struct Request<'a> {
    pub method: &'a str,
    /// The path, undecoded, without query or fragment.
    pub path: &'a str,
    /// The raw query string (`""` without one).
    pub query: &'a str,
}

/// Answers one request with the whole reply (status line, headers, body).
pub type Handler = Arc<dyn Fn(&Request) -> Vec<u8> + Send + Sync>;

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
            Ok((stream, _peer)) => dispatch(stream, bounds, handler, conn_name, &active),
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
            serve(stream, &bounds, &handler);
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

fn serve(mut stream: TcpStream, bounds: &Bounds, handler: &Handler) {
    let deadline = Instant::now() + bounds.deadline;
    if stream.set_nonblocking(false).is_err() {
        return;
    }
    let response = match read_head(&mut stream, bounds.head_bytes_max, deadline) {
        Ok(head) => respond(&head, handler),
        Err(HeadError::TooLarge) => status_only(431, "Request Header Fields Too Large"),
        Err(HeadError::Io) => return,
    };
    let _ = write_before(&mut stream, &response, deadline);
    let _ = stream.shutdown(Shutdown::Both);
}

enum HeadError {
    /// No end of headers within the head bound.
    TooLarge,
    /// Closed, reset or too slow: nothing to answer.
    Io,
}

/// Reads up to the blank line ending the request head; a request body (none
/// is expected) is left unread.
fn read_head(stream: &mut TcpStream, max: usize, deadline: Instant) -> Result<Vec<u8>, HeadError> {
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
        if let Some(end) = head_end(&head) {
            head.truncate(end);
            return Ok(head);
        }
        if head.len() >= max {
            return Err(HeadError::TooLarge);
        }
    }
}

/// Length of the head up to its terminating blank line (CRLF or bare LF).
fn head_end(buf: &[u8]) -> Option<usize> {
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n");
    let lf = buf.windows(2).position(|w| w == b"\n\n");
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// What every Jetty server of ZooKeeper answers before a servlet sees the
/// request: 400 for a malformed request line, 505 for a version other than
/// HTTP/1.x, 403 for TRACE (its `constrainTraceMethod`); the rest goes to
/// `handler`.
fn respond(head: &[u8], handler: &Handler) -> Vec<u8> {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return status_only(400, "Bad Request");
    };
    if !version.starts_with("HTTP/1.") {
        return status_only(505, "HTTP Version Not Supported");
    }
    if method == "TRACE" {
        return status_only(403, "Forbidden");
    }
    let target = target.split('#').next().unwrap_or_default();
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    handler(&Request {
        method,
        path,
        query,
    })
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
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nbody"), Some(23));
        assert_eq!(head_end(b"GET / HTTP/1.0\n\n"), Some(14));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: x\r\n"), None);
    }

    #[test]
    fn percent_decoding_keeps_bad_escapes() {
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("name%5B%5D+x"), "name[] x");
    }
}

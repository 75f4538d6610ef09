//! A minimal HTTP/1.1 server for `/metrics`, on std threads: one accept
//! thread, and one short-lived thread per scrape, at most
//! `limits::metrics::CONNECTIONS_MAX` at once. Every connection is closed
//! after one reply, and is bounded in bytes read and in time.
//!
//! Why not an HTTP crate: tiny_http 0.12 (the small one on crates.io) starts
//! a thread per connection without bound and reads header lines without a
//! length limit or timeout, so a client could hold threads and memory; the
//! few lines here are all a scraper needs.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use tracing::{info, warn};

use super::{exposition, MetricsSources};
use crate::limits::metrics as bounds;

/// The one path ZooKeeper's provider serves (`context.addServlet(..., "/metrics")`).
pub const METRICS_PATH: &str = "/metrics";

/// The running endpoint; `stop` ends its accept thread and waits for it
/// (scrapes in progress finish on their own within `CONNECTION_DEADLINE`).
/// Dropping it ends the thread without waiting.
pub struct MetricsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// Binds `addr` (failing if it cannot, as ZooKeeper's provider does) and
    /// starts serving.
    pub fn start(addr: SocketAddr, sources: MetricsSources) -> io::Result<MetricsServer> {
        let listener = TcpListener::bind(addr)?;
        // Non-blocking so the loop can see `stop` without a wake-up connection.
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("fk-metrics".into())
            .spawn(move || accept_loop(&listener, &sources, &flag))?;
        info!("serving Prometheus metrics on http://{addr}{METRICS_PATH}");
        Ok(MetricsServer {
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

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn accept_loop(listener: &TcpListener, sources: &MetricsSources, stop: &AtomicBool) {
    let active = Arc::new(AtomicUsize::new(0));
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _peer)) => dispatch(stream, sources, &active),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(bounds::ACCEPT_POLL_INTERVAL)
            }
            Err(e) => {
                // Usually EMFILE: back off instead of spinning on accept.
                warn!("metrics endpoint: accept failed: {e}");
                std::thread::sleep(bounds::ACCEPT_POLL_INTERVAL);
            }
        }
    }
}

/// Decrements the count of connections being served when a scrape ends
/// (or when its thread could not be started and the closure is dropped).
struct ActiveGuard(Arc<AtomicUsize>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn dispatch(stream: TcpStream, sources: &MetricsSources, active: &Arc<AtomicUsize>) {
    if active.fetch_add(1, Ordering::SeqCst) >= bounds::CONNECTIONS_MAX {
        active.fetch_sub(1, Ordering::SeqCst);
        refuse(stream);
        return;
    }
    let guard = ActiveGuard(active.clone());
    let sources = sources.clone();
    let spawned = std::thread::Builder::new()
        .name("fk-metrics-conn".into())
        .spawn(move || {
            let _guard = guard;
            serve(stream, &sources);
        });
    if let Err(e) = spawned {
        warn!("metrics endpoint: cannot start a thread for a scrape: {e}");
    }
}

/// Over the connection bound: a 503 written without blocking (it fits any
/// fresh socket's send buffer; if not, the client just sees the close).
fn refuse(mut stream: TcpStream) {
    let _ = stream.set_nonblocking(true);
    let _ = stream.write_all(&status_only(503, "Service Unavailable"));
    let _ = stream.shutdown(Shutdown::Both);
}

fn serve(mut stream: TcpStream, sources: &MetricsSources) {
    let deadline = Instant::now() + bounds::CONNECTION_DEADLINE;
    if stream.set_nonblocking(false).is_err() {
        return;
    }
    let response = match read_head(&mut stream, deadline) {
        Ok(head) => respond(&head, sources),
        Err(HeadError::TooLarge) => status_only(431, "Request Header Fields Too Large"),
        Err(HeadError::Io) => return,
    };
    let _ = write_before(&mut stream, &response, deadline);
    let _ = stream.shutdown(Shutdown::Both);
}

enum HeadError {
    /// No end of headers within `REQUEST_HEAD_BYTES_MAX`.
    TooLarge,
    /// Closed, reset or too slow: nothing to answer.
    Io,
}

/// Reads up to the blank line ending the request head; a request body (none
/// is expected) is left unread.
fn read_head(stream: &mut TcpStream, deadline: Instant) -> Result<Vec<u8>, HeadError> {
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return Err(HeadError::Io);
        }
        let room = (bounds::REQUEST_HEAD_BYTES_MAX - head.len()).min(chunk.len());
        let n = match stream.read(&mut chunk[..room]) {
            Ok(0) | Err(_) => return Err(HeadError::Io),
            Ok(n) => n,
        };
        head.extend_from_slice(&chunk[..n]);
        if let Some(end) = head_end(&head) {
            head.truncate(end);
            return Ok(head);
        }
        if head.len() >= bounds::REQUEST_HEAD_BYTES_MAX {
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

/// The reply to one request head, as ZooKeeper's Jetty answers: `/metrics`
/// for GET and POST (the Prometheus servlet's doPost is doGet), 404 for any
/// other path, 403 for TRACE (its `constrainTraceMethod`).
fn respond(head: &[u8], sources: &MetricsSources) -> Vec<u8> {
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
    if path != METRICS_PATH {
        return status_only(404, "Not Found");
    }
    let only = requested_names(query);
    match method {
        "GET" | "POST" => metrics_reply(sources, &only, true),
        "HEAD" => metrics_reply(sources, &only, false),
        _ => status_only(405, "Method Not Allowed"),
    }
}

/// The values of `name[]` parameters (the Prometheus servlet's filter).
fn requested_names(query: &str) -> Vec<String> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .filter(|(key, _)| percent_decode(key) == "name[]")
        .map(|(_, value)| percent_decode(value))
        .collect()
}

/// `%XX` escapes and `+` for space, as in a form-encoded query; a bad
/// escape is kept as written (it then matches no metric name).
fn percent_decode(text: &str) -> String {
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

fn metrics_reply(sources: &MetricsSources, only: &[String], with_body: bool) -> Vec<u8> {
    let body = exposition::render(sources, only);
    let mut reply = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        exposition::CONTENT_TYPE,
        body.len()
    )
    .into_bytes();
    if with_body {
        reply.extend_from_slice(body.as_bytes());
    }
    reply
}

fn status_only(code: u16, reason: &str) -> Vec<u8> {
    format!("HTTP/1.1 {code} {reason}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        .into_bytes()
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
    fn name_parameters_select_families() {
        let names = requested_names("name[]=znode_count&x=1&name%5B%5D=watch%5fcount&name[]");
        assert_eq!(names, ["znode_count", "watch_count"]);
        assert_eq!(percent_decode("a%2"), "a%2");
        assert!(requested_names("").is_empty());
    }
}

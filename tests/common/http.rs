//! A one-request HTTP/1.1 client for the tests of the server's HTTP
//! endpoints (`/metrics`, the AdminServer). The server closes after each
//! reply, so the reply is read to the end.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A reply: status code, Content-Type ("" without one), body.
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub body: String,
}

/// Sends `method path` and reads the whole reply, each step bounded by `wait`.
pub fn request(addr: SocketAddr, method: &str, path: &str, wait: Duration) -> Reply {
    let mut stream = TcpStream::connect_timeout(&addr, wait)
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    stream.set_read_timeout(Some(wait)).expect("read timeout");
    let request = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n\r\n");
    stream.write_all(request.as_bytes()).expect("send request");
    let mut reply = String::new();
    stream.read_to_string(&mut reply).expect("read reply");
    let (head, body) = reply.split_once("\r\n\r\n").unwrap_or((&reply, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {reply:?}"));
    let content_type = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        .map_or(String::new(), |(_, v)| v.trim().to_string());
    Reply {
        status,
        content_type,
        body: body.to_string(),
    }
}

/// A reply with its head kept and its body as bytes.
pub struct RawReply {
    pub status: u16,
    /// The header lines (after the status line).
    pub headers: String,
    pub body: Vec<u8>,
}

impl RawReply {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends `method path` with extra header lines and a body (with its
/// Content-Length when `body` is Some), and reads the whole reply.
pub fn exchange(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
    wait: Duration,
) -> RawReply {
    let mut stream = TcpStream::connect_timeout(&addr, wait)
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    stream.set_read_timeout(Some(wait)).expect("read timeout");
    stream.set_write_timeout(Some(wait)).expect("write timeout");
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(body) = body {
        request.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).expect("send request");
    if let Some(body) = body {
        stream.write_all(body).expect("send body");
    }
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).expect("read reply");
    let end = reply
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of head in {:?}", String::from_utf8_lossy(&reply)));
    let head = String::from_utf8_lossy(&reply[..end]).into_owned();
    let (status_line, headers) = head.split_once("\r\n").unwrap_or((&head, ""));
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {head:?}"));
    RawReply {
        status,
        headers: headers.to_string(),
        body: reply[end + 4..].to_vec(),
    }
}

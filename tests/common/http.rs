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

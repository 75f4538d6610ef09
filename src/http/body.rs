//! A request body: the `Content-Length` bytes after the head, read from
//! what the head read left over and then from the socket, each read
//! bounded by the idle timeout (a body may be a large snapshot, so there is
//! no deadline for the whole of it; its length is bounded by the handler). Only `Content-Length` bodies are
//! read (a chunked body is refused by the handler that wants one: 411).

use std::io::{self, Read};
use std::net::TcpStream;
use std::time::Duration;

pub struct Body<'s> {
    stream: &'s mut TcpStream,
    /// Bytes the head's last read took past the blank line.
    early: Vec<u8>,
    early_at: usize,
    /// The declared length (None without a Content-Length header).
    declared: Option<u64>,
    /// Body bytes not yet read.
    left: u64,
    idle: Duration,
}

impl<'s> Body<'s> {
    pub(super) fn new(
        stream: &'s mut TcpStream,
        early: Vec<u8>,
        declared: Option<u64>,
        idle: Duration,
    ) -> Body<'s> {
        Body {
            stream,
            early,
            early_at: 0,
            declared,
            left: declared.unwrap_or(0),
            idle,
        }
    }

    /// The body's `Content-Length`, if the request declared one.
    pub fn declared_len(&self) -> Option<u64> {
        self.declared
    }

    /// Body bytes not read yet.
    pub fn left(&self) -> u64 {
        self.left
    }

    /// Reads and drops what is left, if at most `max` bytes, so that closing
    /// the socket does not reset the connection under the client's reading
    /// of the reply (Linux sends RST when unread data is dropped at close).
    pub(super) fn discard_up_to(&mut self, max: u64) {
        if self.left > max {
            return;
        }
        let mut sink = [0u8; 4096];
        while self.left > 0 {
            match self.read(&mut sink) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    }
}

impl Read for Body<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let n = if self.early_at < self.early.len() {
            let early = &self.early[self.early_at..];
            let n = want.min(early.len());
            buf[..n].copy_from_slice(&early[..n]);
            self.early_at += n;
            n
        } else {
            self.stream.set_read_timeout(Some(self.idle))?;
            match self.stream.read(&mut buf[..want])? {
                0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                n => n,
            }
        };
        self.left -= n as u64;
        Ok(n)
    }
}

//! A minimal blocking client for setting up the tree before a run.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use ferrokeeper::proto::{
    encode_request_frame, frame_len, xid, ConnectRequest, ConnectResponse, ReplyHeader, Request,
};

pub struct SyncClient {
    stream: TcpStream,
    next_xid: i32,
    rbuf: Vec<u8>,
    wbuf: Vec<u8>,
    pending: usize,
}

fn proto_err(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

impl SyncClient {
    pub fn connect(addr: SocketAddr, timeout_ms: i32) -> io::Result<SyncClient> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut c = SyncClient {
            stream,
            next_xid: 1,
            rbuf: Vec::new(),
            wbuf: Vec::new(),
            pending: 0,
        };
        let mut frame = Vec::new();
        ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 0,
            timeout_ms,
            session_id: 0,
            passwd: &[0; 16],
            read_only: Some(false),
        }
        .encode_frame(&mut frame);
        c.stream.write_all(&frame)?;
        let body = c.read_frame()?;
        let resp = ConnectResponse::decode(&body).map_err(|e| proto_err(&e.to_string()))?;
        if resp.timeout_ms <= 0 {
            return Err(proto_err("session refused by the server"));
        }
        Ok(c)
    }

    fn read_frame(&mut self) -> io::Result<Vec<u8>> {
        loop {
            if let Some(total) =
                frame_len(&self.rbuf, 64 << 20).map_err(|e| proto_err(&e.to_string()))?
            {
                let body = self.rbuf[4..total].to_vec();
                self.rbuf.drain(..total);
                return Ok(body);
            }
            let mut chunk = [0u8; 65536];
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "server closed the connection",
                ));
            }
            self.rbuf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Queues a request (pipelined); `recv` returns the replies in order.
    pub fn send(&mut self, req: &Request<'_>) {
        let x = self.next_xid;
        self.next_xid += 1;
        encode_request_frame(&mut self.wbuf, x, req);
        self.pending += 1;
    }

    /// Flushes, then reads the next reply: (error code, body).
    pub fn recv(&mut self) -> io::Result<(i32, Vec<u8>)> {
        if !self.wbuf.is_empty() {
            self.stream.write_all(&self.wbuf)?;
            self.wbuf.clear();
        }
        loop {
            let body = self.read_frame()?;
            let (hdr, rest) = ReplyHeader::split(&body).map_err(|e| proto_err(&e.to_string()))?;
            if hdr.xid == xid::NOTIFICATION || hdr.xid == xid::PING {
                continue;
            }
            self.pending = self.pending.saturating_sub(1);
            return Ok((hdr.err, rest.to_vec()));
        }
    }

    pub fn call(&mut self, req: &Request<'_>) -> io::Result<(i32, Vec<u8>)> {
        self.send(req);
        self.recv()
    }

    pub fn pending(&self) -> usize {
        self.pending
    }

    pub fn close(mut self) {
        let _ = self.call(&Request::CloseSession);
    }
}

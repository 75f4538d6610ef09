//! A null target: accepts ZooKeeper sessions and answers every request at
//! once with an empty OK reply (header only). It measures what the load
//! generator itself can push through the protocol, with no server cost.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::SocketAddr;

use ferrokeeper::proto::{
    frame_len, op, ConnectRequest, ConnectResponse, ReplyHeader, RequestHeader, Response,
};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

const LISTENER: Token = Token(usize::MAX);
const MAX_FRAME: usize = 64 << 20;

struct Conn {
    stream: TcpStream,
    rbuf: Vec<u8>,
    wbuf: Vec<u8>,
    wpos: usize,
    handshaken: bool,
    close_after_flush: bool,
}

/// Serves forever on `addr`; `on_bound` gets the bound address first.
pub fn serve(addr: SocketAddr, on_bound: impl FnOnce(SocketAddr)) -> io::Result<()> {
    let mut poll = Poll::new()?;
    let mut listener = TcpListener::bind(addr)?;
    on_bound(listener.local_addr()?);
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut conns: HashMap<usize, Conn> = HashMap::new();
    let mut next_token = 0usize;
    let mut next_session: i64 = 0x4e55_4c4c_0000_0000; // "NULL"
    let mut zxid: i64 = 0;
    let mut events = Events::with_capacity(1024);
    loop {
        poll.poll(&mut events, None)?;
        for ev in events.iter() {
            if ev.token() == LISTENER {
                loop {
                    match listener.accept() {
                        Ok((mut stream, _)) => {
                            let _ = stream.set_nodelay(true);
                            let t = next_token;
                            next_token += 1;
                            poll.registry().register(
                                &mut stream,
                                Token(t),
                                Interest::READABLE | Interest::WRITABLE,
                            )?;
                            conns.insert(
                                t,
                                Conn {
                                    stream,
                                    rbuf: Vec::with_capacity(64 << 10),
                                    wbuf: Vec::with_capacity(64 << 10),
                                    wpos: 0,
                                    handshaken: false,
                                    close_after_flush: false,
                                },
                            );
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(_) => break,
                    }
                }
                continue;
            }
            let t = ev.token().0;
            let Some(c) = conns.get_mut(&t) else {
                continue;
            };
            let mut alive = true;
            if ev.is_readable() || ev.is_read_closed() {
                alive = read_and_answer(c, &mut next_session, &mut zxid);
            }
            if alive {
                alive = flush(c);
            }
            if !alive {
                if let Some(mut c) = conns.remove(&t) {
                    let _ = poll.registry().deregister(&mut c.stream);
                }
            }
        }
    }
}

/// Reads everything available and appends one reply per request frame.
/// Returns false when the connection is finished.
fn read_and_answer(c: &mut Conn, next_session: &mut i64, zxid: &mut i64) -> bool {
    let mut open = true;
    loop {
        let len = c.rbuf.len();
        c.rbuf.resize(len + (64 << 10), 0);
        match c.stream.read(&mut c.rbuf[len..]) {
            Ok(0) => {
                c.rbuf.truncate(len);
                open = false;
                break;
            }
            Ok(n) => c.rbuf.truncate(len + n),
            Err(e) => {
                c.rbuf.truncate(len);
                if e.kind() == io::ErrorKind::WouldBlock {
                    break;
                }
                if e.kind() != io::ErrorKind::Interrupted {
                    open = false;
                    break;
                }
            }
        }
    }
    let mut pos = 0;
    loop {
        let total = match frame_len(&c.rbuf[pos..], MAX_FRAME) {
            Ok(Some(total)) => total,
            Ok(None) => break,
            // A bad length would otherwise leave the bytes to pile up unread.
            Err(_) => return false,
        };
        let body = &c.rbuf[pos + 4..pos + total];
        pos += total;
        if !c.handshaken {
            let Ok(req) = ConnectRequest::decode(body) else {
                return false;
            };
            c.handshaken = true;
            *next_session += 1;
            ConnectResponse {
                protocol_version: 0,
                timeout_ms: req.timeout_ms.max(1),
                session_id: *next_session,
                passwd: [0; 16],
                read_only: req.read_only,
            }
            .encode(&mut c.wbuf);
            continue;
        }
        let Ok((hdr, _)) = RequestHeader::split(body) else {
            return false;
        };
        *zxid += 1;
        let reply = ReplyHeader {
            xid: hdr.xid,
            zxid: *zxid,
            err: 0,
        };
        ferrokeeper::proto::encode_reply(&mut c.wbuf, &reply, &Response::Empty);
        if hdr.op == op::CLOSE_SESSION {
            c.close_after_flush = true;
        }
    }
    c.rbuf.drain(..pos);
    open || !c.wbuf.is_empty()
}

fn flush(c: &mut Conn) -> bool {
    while c.wpos < c.wbuf.len() {
        match c.stream.write(&c.wbuf[c.wpos..]) {
            Ok(0) => return false,
            Ok(n) => c.wpos += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    c.wbuf.clear();
    c.wpos = 0;
    !c.close_after_flush
}

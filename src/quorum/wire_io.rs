//! Blocking socket steps of the election port, each bounded: binding the
//! listener (with ZooKeeper's retries), waiting for a connection, reading a
//! handshake before a deadline, reading and writing `int length` frames
//! through the codecs of `zab::election_wire`.

use std::io::{self, Chain, Cursor, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};

use super::ensemble::CnxSettings;
use crate::zab::election_wire::{
    self as ew, InitialMessage, ELECTION_FRAME_LEN_BYTES, HANDSHAKE_ADDR_BYTES_MAX,
    HANDSHAKE_HEADER_BYTES,
};
use crate::zab::WireError;

/// Binds `addr` (SO_REUSEADDR, as ZooKeeper's `ServerSocket`), trying
/// `settings.bind_retries` times (0 = until `shutdown`) with
/// `bind_retry_interval` between tries (`QuorumCnxManager.Listener`).
pub fn bind_with_retries(
    addr: SocketAddr,
    settings: &CnxSettings,
    shutdown: &AtomicBool,
) -> io::Result<TcpListener> {
    let mut tries = 0u32;
    loop {
        match bind_once(addr) {
            Ok(listener) => return Ok(listener),
            Err(e) => {
                tries = tries.saturating_add(1);
                let exhausted = settings.bind_retries != 0 && tries >= settings.bind_retries;
                if exhausted || shutdown.load(Ordering::Acquire) {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("binding election port {addr} failed {tries} times: {e}"),
                    ));
                }
                tracing::error!(%addr, tries, "cannot bind the election port, retrying: {e}");
                std::thread::sleep(settings.bind_retry_interval);
            }
        }
    }
}

fn bind_once(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(128)?;
    Ok(socket.into())
}

/// Waits up to `timeout` for a connection to accept; Ok(None) when none came.
/// poll(2) instead of a non-blocking accept loop: a dial is taken at once.
pub fn accept_within(listener: &TcpListener, timeout: Duration) -> io::Result<Option<TcpStream>> {
    let mut fds = libc::pollfd {
        fd: listener.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let timeout_ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: one valid pollfd for the duration of the call.
    let ready = unsafe { libc::poll(&mut fds, 1, timeout_ms) };
    if ready < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == ErrorKind::Interrupted {
            Ok(None)
        } else {
            Err(e)
        };
    }
    if ready == 0 {
        return Ok(None);
    }
    match listener.accept() {
        Ok((sock, _)) => Ok(Some(sock)),
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Why an accepted connection's handshake failed.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("malformed handshake: {0}")]
    Malformed(#[from] WireError),
    #[error("no complete handshake within {0:?}")]
    TimedOut(Duration),
    #[error("closed before the handshake was complete")]
    Closed,
    #[error("reading the handshake: {0}")]
    Io(#[from] io::Error),
}

/// Reads the initiator's `InitialMessage` before `timeout` has passed
/// (ZooKeeper sets SO_TIMEOUT for exactly this read). Returns it and the
/// bytes read past it, which belong to the first frames.
pub fn read_handshake(
    sock: &TcpStream,
    input: &mut dyn Read,
    timeout: Duration,
) -> Result<(InitialMessage, Vec<u8>), HandshakeError> {
    let deadline = Instant::now() + timeout;
    let mut buf = Vec::with_capacity(HANDSHAKE_HEADER_BYTES + 64);
    let mut chunk = [0u8; 512];
    loop {
        match ew::decode_initial_message(&buf) {
            Ok((msg, used)) => return Ok((msg, buf.split_off(used))),
            Err(WireError::Truncated) => {}
            Err(e) => return Err(e.into()),
        }
        // The decoder rejects a bad address length before its bytes arrive,
        // so the buffer never grows past one largest handshake plus a chunk.
        debug_assert!(buf.len() <= HANDSHAKE_HEADER_BYTES + HANDSHAKE_ADDR_BYTES_MAX);
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(HandshakeError::TimedOut(timeout));
        }
        sock.set_read_timeout(Some(left))?;
        match input.read(&mut chunk) {
            Ok(0) => return Err(HandshakeError::Closed),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(HandshakeError::TimedOut(timeout))
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// Why a connection's frame stream ended.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("bad frame: {0}")]
    Malformed(#[from] WireError),
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// Reads the frames of one connection: first the bytes that came with the
/// handshake, then the socket. No read timeout: an idle peer is normal
/// (ZooKeeper's `RecvWorker` sets SO_TIMEOUT to 0); closing the socket ends it.
pub struct FrameReader {
    input: Chain<Cursor<Vec<u8>>, Box<dyn Read + Send>>,
}

impl FrameReader {
    /// `sock`: the connection's plaintext (the socket, or TLS over it).
    pub fn new(leftover: Vec<u8>, sock: Box<dyn Read + Send>) -> FrameReader {
        FrameReader {
            input: Cursor::new(leftover).chain(sock),
        }
    }

    /// One payload; its length is checked by the frame codec before
    /// anything is allocated (`RecvWorker.run`: 1..=PACKETMAXSIZE).
    pub fn next_payload(&mut self) -> Result<Vec<u8>, FrameError> {
        let mut header = [0u8; ELECTION_FRAME_LEN_BYTES];
        self.input.read_exact(&mut header)?;
        let len = match ew::decode_election_frame(&header) {
            // A valid length: the codec only lacks the payload.
            Err(WireError::Truncated) => u32::from_be_bytes(header) as usize,
            Err(e) => return Err(e.into()),
            Ok(_) => return Err(WireError::Invalid("empty election frame").into()),
        };
        let mut payload = vec![0u8; len];
        self.input.read_exact(&mut payload)?;
        Ok(payload)
    }
}

/// `int length` + payload, ready to be queued.
pub fn frame_payload(payload: &[u8]) -> Result<Vec<u8>, WireError> {
    let mut out = Vec::with_capacity(ELECTION_FRAME_LEN_BYTES + payload.len());
    ew::encode_election_frame(payload, &mut out)?;
    Ok(out)
}

/// Writes a whole frame (or handshake) in one call, so the peer's single
/// read of the handshake address gets it whole (`InitialMessage.parse`).
pub fn write_all(mut sock: &TcpStream, bytes: &[u8]) -> io::Result<()> {
    sock.write_all(bytes)?;
    sock.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (b, _) = l.accept().unwrap();
        (a, b)
    }

    #[test]
    fn frames_are_read_after_the_handshake_leftover() {
        let (a, b) = pair();
        let one = frame_payload(b"one").unwrap();
        let two = frame_payload(b"two").unwrap();
        // The handshake read took the first frame and half of the second.
        let mut leftover = one.clone();
        leftover.extend_from_slice(&two[..3]);
        write_all(&a, &two[3..]).unwrap();
        let mut r = FrameReader::new(leftover, Box::new(b));
        assert_eq!(r.next_payload().unwrap(), b"one");
        assert_eq!(r.next_payload().unwrap(), b"two");
        drop(a);
        assert!(matches!(r.next_payload(), Err(FrameError::Io(_))));
    }

    #[test]
    fn an_oversized_frame_is_refused_before_allocation() {
        let (a, b) = pair();
        write_all(&a, &(ew::ELECTION_FRAME_BYTES_MAX as u32 + 1).to_be_bytes()).unwrap();
        let mut r = FrameReader::new(Vec::new(), Box::new(b));
        assert!(matches!(r.next_payload(), Err(FrameError::Malformed(_))));
    }

    #[test]
    fn a_handshake_keeps_the_bytes_after_it() {
        let (a, mut b) = pair();
        let addr = ew::ElectionAddr {
            host: "127.0.0.1".into(),
            port: 3888,
        };
        let mut bytes = ew::encode_initial_message(2, &addr).unwrap();
        bytes.extend_from_slice(&frame_payload(b"x").unwrap());
        write_all(&a, &bytes).unwrap();
        let (msg, rest) =
            read_handshake(&b.try_clone().unwrap(), &mut b, Duration::from_secs(5)).unwrap();
        assert_eq!(msg.sid(), 2);
        assert_eq!(rest, vec![0, 0, 0, 1, b'x']);
    }

    #[test]
    fn a_silent_or_garbage_handshake_fails_in_bounded_time() {
        let (a, mut b) = pair();
        let started = Instant::now();
        assert!(matches!(
            read_handshake(&b.try_clone().unwrap(), &mut b, Duration::from_millis(100)),
            Err(HandshakeError::TimedOut(_))
        ));
        assert!(started.elapsed() < Duration::from_secs(5));
        write_all(&a, &(-5i64).to_be_bytes()).unwrap();
        assert!(matches!(
            read_handshake(&b.try_clone().unwrap(), &mut b, Duration::from_secs(5)),
            Err(HandshakeError::Malformed(
                WireError::UnknownProtocolVersion(-5)
            ))
        ));
    }
}

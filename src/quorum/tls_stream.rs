//! An election connection's bytes: the socket itself, or TLS over it
//! (`sslQuorum`). The connection has a receive thread and a send thread
//! (`cnx`), but one rustls state per connection, so the state sits behind
//! a mutex that is never held across socket I/O: the receive thread reads
//! ciphertext from the socket unlocked, then locks to decrypt; the send
//! thread locks to encrypt, then writes unlocked. TLS records must reach
//! the socket in the order they were sealed, so sealing and writing one
//! batch happen under a second, write-side mutex, which the receive
//! thread also takes when the peer's messages need an answer (a TLS 1.3
//! key update).

use std::io::{self, ErrorKind, Read, Write};
use std::net::{IpAddr, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rustls::{ClientConnection, Connection, ServerConnection};

use crate::limits::quorum as limits;
use crate::tls::quorum::{server_name, QuorumTls};

/// One election connection's stream.
pub enum ElectionStream {
    Plain(TcpStream),
    Tls(Arc<TlsShared>),
}

pub struct TlsShared {
    tls: Mutex<Connection>,
    /// Held while records are sealed and written, so they go out in order.
    writing: Mutex<()>,
    sock: TcpStream,
}

impl ElectionStream {
    /// The socket under the stream (timeouts, shutdown, registration).
    pub fn tcp(&self) -> &TcpStream {
        match self {
            ElectionStream::Plain(s) => s,
            ElectionStream::Tls(t) => &t.sock,
        }
    }

    /// Writes a whole frame (or handshake) and flushes it.
    pub fn write_all(&self, bytes: &[u8]) -> io::Result<()> {
        match self {
            ElectionStream::Plain(s) => crate::quorum::wire_io::write_all(s, bytes),
            ElectionStream::Tls(t) => t.write_all(bytes),
        }
    }

    /// A reader of the stream's plaintext, for the receive thread.
    pub fn reader(&self) -> io::Result<Box<dyn Read + Send>> {
        Ok(match self {
            ElectionStream::Plain(s) => Box::new(s.try_clone()?),
            ElectionStream::Tls(t) => Box::new(TlsReader {
                shared: Arc::clone(t),
                sock: t.sock.try_clone()?,
                pending: Vec::new(),
                chunk: vec![0u8; limits::ELECTION_TLS_READ_CHUNK_BYTES],
            }),
        })
    }
}

/// Dials TLS over a connected socket: the peer's certificate is checked
/// against `host` (its `server.N` host) inside the handshake.
pub fn connect(sock: TcpStream, tls: &QuorumTls, host: &str) -> io::Result<ElectionStream> {
    let name = server_name(host).map_err(|e| io::Error::new(ErrorKind::InvalidInput, e))?;
    let conn =
        ClientConnection::new(tls.configs().client.clone(), name).map_err(io::Error::other)?;
    handshake(sock, conn.into(), tls.handshake_timeout())
}

/// Accepts TLS on an accepted socket; with hostname verification the
/// dialler's certificate must name the address it came from.
pub fn accept(sock: TcpStream, tls: &QuorumTls, from: IpAddr) -> io::Result<ElectionStream> {
    let conn = ServerConnection::new(tls.configs().server.clone()).map_err(io::Error::other)?;
    let stream = handshake(sock, conn.into(), tls.handshake_timeout())?;
    if let ElectionStream::Tls(t) = &stream {
        let conn = t.lock();
        tls.check_dialler(conn.peer_certificates(), from)
            .map_err(|e| io::Error::new(ErrorKind::PermissionDenied, e))?;
    }
    Ok(stream)
}

/// The first byte of an accepted socket, without taking it off the socket
/// (port unification), waiting at most `timeout`.
pub fn peek_first_byte(sock: &TcpStream, timeout: Duration) -> io::Result<u8> {
    sock.set_read_timeout(Some(timeout))?;
    let mut byte = [0u8; 1];
    match sock.peek(&mut byte)? {
        0 => Err(ErrorKind::UnexpectedEof.into()),
        _ => Ok(byte[0]),
    }
}

/// Runs the handshake to completion, all of it within `timeout` (each read
/// is given only what is left, so a peer sending a byte at a time cannot
/// stretch it).
fn handshake(
    mut sock: TcpStream,
    mut conn: Connection,
    timeout: Duration,
) -> io::Result<ElectionStream> {
    let deadline = Instant::now() + timeout;
    while conn.is_handshaking() {
        while conn.wants_write() {
            conn.write_tls(&mut sock)?;
        }
        if !conn.is_handshaking() {
            break;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                ErrorKind::TimedOut,
                "TLS handshake timed out",
            ));
        }
        sock.set_read_timeout(Some(left))?;
        match conn.read_tls(&mut sock) {
            Ok(0) => return Err(ErrorKind::UnexpectedEof.into()),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(io::Error::new(
                    ErrorKind::TimedOut,
                    "TLS handshake timed out",
                ))
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        if let Err(e) = conn.process_new_packets() {
            // Tell the peer why (the alert is queued), then give up.
            let _ = conn.write_tls(&mut sock);
            return Err(io::Error::new(ErrorKind::InvalidData, e));
        }
    }
    while conn.wants_write() {
        conn.write_tls(&mut sock)?;
    }
    Ok(ElectionStream::Tls(Arc::new(TlsShared {
        tls: Mutex::new(conn),
        writing: Mutex::new(()),
        sock,
    })))
}

impl TlsShared {
    fn lock(&self) -> MutexGuard<'_, Connection> {
        // Every use of the state is one rustls call; a panic between two
        // leaves nothing half-done that a later call would misread.
        self.tls.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn write_all(&self, plaintext: &[u8]) -> io::Result<()> {
        let _order = self.writing.lock().unwrap_or_else(|p| p.into_inner());
        let sealed = {
            let mut conn = self.lock();
            conn.writer().write_all(plaintext)?;
            drain_tls(&mut conn)?
        };
        (&self.sock).write_all(&sealed)?;
        (&self.sock).flush()
    }

    /// Sends what rustls has to say by itself (answers to the peer's
    /// messages).
    fn send_pending(&self) -> io::Result<()> {
        let _order = self.writing.lock().unwrap_or_else(|p| p.into_inner());
        let sealed = drain_tls(&mut self.lock())?;
        (&self.sock).write_all(&sealed)
    }
}

fn drain_tls(conn: &mut Connection) -> io::Result<Vec<u8>> {
    let mut sealed = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut sealed)?;
    }
    Ok(sealed)
}

struct TlsReader {
    shared: Arc<TlsShared>,
    sock: TcpStream,
    /// Ciphertext read from the socket that rustls has not taken yet.
    pending: Vec<u8>,
    chunk: Vec<u8>,
}

impl Read for TlsReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            let answer = {
                let mut conn = self.shared.lock();
                match conn.reader().read(out) {
                    // Ok(0) is the peer's close_notify: the end of the stream.
                    Ok(n) => return Ok(n),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
                if !self.pending.is_empty() {
                    let mut input = &self.pending[..];
                    let taken = conn.read_tls(&mut input)?;
                    self.pending.drain(..taken);
                    conn.process_new_packets()
                        .map_err(|e| io::Error::new(ErrorKind::InvalidData, e))?;
                    conn.wants_write()
                } else {
                    false
                }
            };
            if answer {
                self.shared.send_pending()?;
            }
            if !self.pending.is_empty() {
                continue;
            }
            // Only read more once everything read has been decrypted, so
            // the plaintext buffered by rustls stays within one chunk.
            let n = self.sock.read(&mut self.chunk)?;
            if n == 0 {
                return Ok(0);
            }
            self.pending.extend_from_slice(&self.chunk[..n]);
        }
    }
}

//! A quorum-port link's byte stream: the socket, or TLS over it
//! (`sslQuorum`), and the two ways one is opened. Accepting runs the TLS
//! handshake in a task of its own, bounded in time
//! (`ssl.quorum.handshakeDetectionTimeoutMillis`) and in number
//! (`QUORUM_TLS_HANDSHAKES_IN_FLIGHT_MAX`), so a plaintext or silent peer on
//! a TLS port costs the pipeline nothing but that one connection. After
//! the handshake a link is served as a plain one (`link`).

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use glommio::net::TcpStream;
use tracing::warn;

use super::events::{QuorumEvent, QuorumQueue};
use crate::limits::quorum::QUORUM_TLS_HANDSHAKES_IN_FLIGHT_MAX;
use crate::server::stream::MaybeTls;
use crate::tls::quorum::{server_name, Inbound};
use crate::tls::QuorumTls;

/// A quorum-port link: the socket, or TLS over it (either side of the handshake).
pub type LinkStream = MaybeTls<futures_rustls::TlsStream<TcpStream>>;

impl LinkStream {
    fn tcp(&self) -> &TcpStream {
        match self {
            MaybeTls::Plain(s) => s,
            MaybeTls::Tls(s) => s.get_ref().0,
        }
    }

    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        self.tcp().set_nodelay(on).map_err(io::Error::from)
    }
}

impl AsRawFd for LinkStream {
    fn as_raw_fd(&self) -> RawFd {
        self.tcp().as_raw_fd()
    }
}

/// Turns the quorum port's accepted sockets into links for the pipeline.
pub struct Admission {
    tls: Option<Arc<QuorumTls>>,
    handshaking: Rc<Cell<usize>>,
}

impl Admission {
    pub fn new(tls: Option<Arc<QuorumTls>>) -> Admission {
        Admission {
            tls,
            handshaking: Rc::new(Cell::new(0)),
        }
    }

    /// Queues `stream` as accepted: at once without quorum TLS, after its
    /// handshake (in a task of its own) with it.
    pub fn admit(&self, stream: TcpStream, events: &Rc<QuorumQueue>) {
        let Some(tls) = self.tls.clone() else {
            events.push(QuorumEvent::Accepted {
                stream: LinkStream::Plain(stream),
            });
            return;
        };
        let from = stream.peer_addr().ok();
        if self.handshaking.get() >= QUORUM_TLS_HANDSHAKES_IN_FLIGHT_MAX {
            warn!(
                ?from,
                "quorum port: too many TLS handshakes in progress: closing"
            );
            return;
        }
        self.handshaking.set(self.handshaking.get() + 1);
        let (handshaking, events) = (self.handshaking.clone(), events.clone());
        glommio::spawn_local(async move {
            match accept(stream, &tls).await {
                Ok(stream) => events.push(QuorumEvent::Accepted { stream }),
                Err(e) => warn!(?from, "quorum port: closing a connection: {e}"),
            }
            handshaking.set(handshaking.get() - 1);
        })
        .detach();
    }
}

/// TLS (or, with `portUnification`, whatever the first byte says) on an
/// accepted socket, within the handshake timeout.
async fn accept(stream: TcpStream, tls: &QuorumTls) -> Result<LinkStream, String> {
    let timeout = tls.handshake_timeout();
    within(timeout, async {
        let from = stream
            .peer_addr()
            .map_err(|e| format!("no peer address: {e}"))?
            .ip();
        if tls.detects_plaintext() {
            let mut first = [0u8; 1];
            match stream.peek(&mut first).await {
                Ok(0) => return Err("closed before its first byte".to_string()),
                Ok(_) if tls.inbound(first[0]) == Inbound::Plain => {
                    return Ok(LinkStream::Plain(stream))
                }
                Ok(_) => {}
                Err(e) => return Err(format!("reading its first byte: {e}")),
            }
        }
        let acceptor = futures_rustls::TlsAcceptor::from(tls.configs().server.clone());
        let stream = acceptor
            .accept(stream)
            .await
            .map_err(|e| format!("TLS handshake failed: {e}"))?;
        tls.check_dialler(stream.get_ref().1.peer_certificates(), from)?;
        Ok(LinkStream::Tls(Box::new(stream.into())))
    })
    .await
}

/// The learner's side: TLS to the leader when `sslQuorum` is on, its
/// certificate checked against `host` (the leader's `server.N` host).
pub async fn connect(
    stream: TcpStream,
    tls: Option<&QuorumTls>,
    host: &str,
) -> Result<LinkStream, String> {
    let Some(tls) = tls.filter(|t| t.dials_tls()) else {
        return Ok(LinkStream::Plain(stream));
    };
    let name = server_name(host)?;
    let connector = futures_rustls::TlsConnector::from(tls.configs().client.clone());
    within(tls.handshake_timeout(), async {
        connector
            .connect(name, stream)
            .await
            .map(|s| LinkStream::Tls(Box::new(s.into())))
            .map_err(|e| format!("TLS handshake failed: {e}"))
    })
    .await
}

async fn within<T>(
    timeout: Duration,
    work: impl Future<Output = Result<T, String>>,
) -> Result<T, String> {
    futures_lite::future::or(work, async {
        glommio::timer::sleep(timeout).await;
        Err(format!("no TLS handshake within {timeout:?}"))
    })
    .await
}

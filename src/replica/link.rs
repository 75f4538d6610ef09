//! One quorum-port connection between a leader and a learner, on the
//! pipeline executor: a reader task that decodes `QuorumPacket`s (and the
//! raw snapshot stream that follows a SNAP) into the pipeline's quorum
//! queue, and a writer task that drains a bounded send queue to the socket.
//!
//! The quorum port carries jute records back to back, without a length
//! prefix (`BinaryOutputArchive.writeRecord` on the socket's stream), so the
//! reader decodes packets from the front of its buffer as bytes arrive;
//! every length is checked before its bytes are awaited.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;

use super::secure::LinkStream;
use futures_lite::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tracing::debug;

use super::events::{QuorumEvent, QuorumQueue};
use crate::limits::quorum::{
    LINK_IO_CHUNK_BYTES, LINK_SEND_QUEUE_BYTES_MAX, LINK_SEND_QUEUE_PACKETS_MAX,
    QUORUM_BUFFER_BYTES_MAX,
};
use crate::server::bell::Bell;
use crate::zab::quorum_wire::{decode_quorum_packet, encode_quorum_packet, QuorumPacket, SNAP};
use crate::zab::snap_wire::encode::SnapEncoder;
use crate::zab::snap_wire::load::SnapLoad;
use crate::zab::snap_wire::SnapFraming;
use crate::zab::WireError;

/// Names a link for the events it reports; never reused within a process.
pub type LinkId = u64;

/// The largest packet the reader buffers before giving up on a peer: its
/// data and one authinfo id at the quorum bound, plus the fixed fields.
const PACKET_BYTES_MAX: usize = 3 * QUORUM_BUFFER_BYTES_MAX + 64;

enum OutItem {
    Frame(Rc<[u8]>),
    /// A SNAP's body, written chunk by chunk from an immutable tree version.
    Snap(Box<SnapEncoder>),
}

/// A packet's bytes on the wire, shareable between links.
pub fn encode_frame(packet: &QuorumPacket) -> Result<Rc<[u8]>, WireError> {
    let mut frame = Vec::new();
    encode_quorum_packet(packet, &mut frame)?;
    Ok(frame.into())
}

/// The sending side of a link, owned by the pipeline.
pub struct LinkOut {
    pub id: LinkId,
    queue: RefCell<VecDeque<OutItem>>,
    queued_bytes: Cell<usize>,
    bell: Bell,
    closed: Cell<bool>,
    fd: RawFd,
    /// Packets handed to the socket (ZooKeeper's LearnerHandler `packetsSent`).
    packets_sent: Cell<u64>,
    remote: String,
    /// What the leader counts of a learner's link, for `observers`.
    pub learner: LearnerCounters,
}

/// ZooKeeper's `LearnerHandler` counters (`getLearnerHandlerInfo`), kept by
/// the leader on each learner's link.
#[derive(Default)]
pub struct LearnerCounters {
    /// When the connection was accepted (ms since the epoch).
    pub established_unix_ms: Cell<i64>,
    pub packets_received: Cell<u64>,
    /// REQUEST packets (forwarded writes).
    pub requests: Cell<u64>,
    /// The zxid of the last packet sent that carries one; -1 before.
    pub last_zxid: Cell<i64>,
}

impl LinkOut {
    /// Queues a packet; false (and nothing queued) if the link is closed or
    /// its queue is at its bound: the caller drops a learner that cannot keep up.
    pub fn send(&self, packet: &QuorumPacket) -> bool {
        if self.closed.get() {
            return false;
        }
        match encode_frame(packet) {
            Ok(frame) => self.send_frame(frame),
            Err(e) => {
                debug!("link {}: packet not sendable: {e}", self.id);
                false
            }
        }
    }

    /// Queues an encoded packet (see [`encode_frame`]); the same frame can
    /// go to every learner. False as `send`.
    pub fn send_frame(&self, frame: Rc<[u8]>) -> bool {
        if self.closed.get() {
            return false;
        }
        let full = self.queue.borrow().len() >= LINK_SEND_QUEUE_PACKETS_MAX
            || self.queued_bytes.get() + frame.len() > LINK_SEND_QUEUE_BYTES_MAX;
        if full {
            return false;
        }
        self.queued_bytes.set(self.queued_bytes.get() + frame.len());
        self.queue.borrow_mut().push_back(OutItem::Frame(frame));
        self.bell.ring();
        true
    }

    /// Queues a snapshot stream (after its SNAP packet).
    pub fn send_snapshot(&self, encoder: SnapEncoder) -> bool {
        if self.closed.get() {
            return false;
        }
        self.queue
            .borrow_mut()
            .push_back(OutItem::Snap(Box::new(encoder)));
        self.bell.ring();
        true
    }

    /// Closes the connection: both tasks end and report one `LinkClosed`.
    pub fn close(&self) {
        if !self.closed.replace(true) {
            // SAFETY: shutdown on a socket this link owns (the writer task
            // holds the stream until it has seen `closed`); it wakes a reader
            // blocked on a silent peer.
            unsafe {
                libc::shutdown(self.fd, libc::SHUT_RDWR);
            }
            self.bell.ring();
        }
    }

    pub fn is_closed(&self) -> bool {
        self.closed.get()
    }

    /// Packets queued and not yet written, and their bytes.
    pub fn queued(&self) -> (usize, usize) {
        (self.queue.borrow().len(), self.queued_bytes.get())
    }

    pub fn packets_sent(&self) -> u64 {
        self.packets_sent.get()
    }

    /// The peer's address, as Java's `Socket.getRemoteSocketAddress()`
    /// prints it (`/127.0.0.1:port`; "<null>" if it could not be read).
    pub fn remote_address(&self) -> &str {
        &self.remote
    }
}

/// The peer address of a connected socket, as Java prints it.
fn java_remote_address(fd: RawFd) -> String {
    // SAFETY: `spawn` calls this while it owns the stream, so the fd is open
    // for the whole borrow.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    match socket2::SockRef::from(&fd)
        .peer_addr()
        .ok()
        .and_then(|a| a.as_socket())
    {
        Some(addr) => format!("/{addr}"),
        None => "<null>".to_string(),
    }
}

/// Starts the reader and writer tasks of a connected socket. `expect_snap`:
/// this side is a learner, so a SNAP packet is followed by a snapshot stream.
pub fn spawn(
    id: LinkId,
    stream: LinkStream,
    events: Rc<QuorumQueue>,
    expect_snap: bool,
) -> Rc<LinkOut> {
    let _ = stream.set_nodelay(true);
    let out = Rc::new(LinkOut {
        id,
        queue: RefCell::new(VecDeque::new()),
        queued_bytes: Cell::new(0),
        bell: Bell::new(),
        closed: Cell::new(false),
        fd: stream.as_raw_fd(),
        packets_sent: Cell::new(0),
        remote: java_remote_address(stream.as_raw_fd()),
        learner: LearnerCounters {
            established_unix_ms: Cell::new(crate::clock::unix_ms()),
            last_zxid: Cell::new(-1),
            ..LearnerCounters::default()
        },
    });
    let (reader, writer) = futures_lite::io::split(stream);
    let (r_out, r_events) = (out.clone(), events.clone());
    glommio::spawn_local(async move {
        let why = read_loop(id, reader, &r_events, expect_snap).await;
        r_out.close();
        r_events.push_closed(id, why);
    })
    .detach();
    glommio::spawn_local(write_loop(writer, out.clone())).detach();
    out
}

/// Reads packets until the connection ends; returns why it ended.
async fn read_loop(
    id: LinkId,
    mut reader: ReadHalf<LinkStream>,
    events: &QuorumQueue,
    expect_snap: bool,
) -> String {
    let mut buf: Vec<u8> = Vec::with_capacity(LINK_IO_CHUNK_BYTES);
    let mut chunk = vec![0u8; LINK_IO_CHUNK_BYTES];
    let mut snap: Option<(i64, SnapLoad)> = None;
    loop {
        // Decode everything complete in the buffer before reading more;
        // `start` avoids moving the buffer's tail after every packet.
        let mut start = 0;
        loop {
            if let Some((zxid, load)) = snap.as_mut() {
                if let Err(e) = load.push(&buf[start..]) {
                    return format!("bad snapshot stream: {e}");
                }
                buf.clear();
                start = 0;
                if !load.is_done() {
                    break;
                }
                let zxid = *zxid;
                let (_, load) = snap.take().expect("a snapshot is loading");
                buf.extend_from_slice(load.rest());
                let loaded = load.finish().map(Box::new).map_err(|e| e.to_string());
                events.push(QuorumEvent::Snapshot {
                    link: id,
                    zxid,
                    loaded,
                });
                events.wait_for_room().await;
                continue;
            }
            match decode_quorum_packet(&buf[start..]) {
                Ok((packet, used)) => {
                    start += used;
                    if expect_snap && packet.packet_type == SNAP {
                        snap = Some((packet.zxid, SnapLoad::new(SnapFraming::Sync)));
                    }
                    events.push(QuorumEvent::Packet { link: id, packet });
                    events.wait_for_room().await;
                }
                Err(e) if e.is_truncated() => {
                    buf.drain(..start);
                    if buf.len() > PACKET_BYTES_MAX {
                        return format!("packet larger than {PACKET_BYTES_MAX} bytes");
                    }
                    break;
                }
                Err(e) => return format!("bad packet: {e}"),
            }
        }
        match reader.read(&mut chunk).await {
            Ok(0) => return "closed by the peer".into(),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return format!("read failed: {e}"),
        }
    }
}

/// Writes queued packets, coalesced up to a chunk per socket write.
async fn write_loop(mut writer: WriteHalf<LinkStream>, out: Rc<LinkOut>) {
    let mut buf: Vec<u8> = Vec::with_capacity(LINK_IO_CHUNK_BYTES);
    while !out.closed.get() {
        let item = out.queue.borrow_mut().pop_front();
        match item {
            Some(OutItem::Frame(frame)) => {
                out.queued_bytes.set(out.queued_bytes.get() - frame.len());
                out.packets_sent.set(out.packets_sent.get() + 1);
                buf.extend_from_slice(&frame);
                if buf.len() < LINK_IO_CHUNK_BYTES && !out.queue.borrow().is_empty() {
                    continue;
                }
            }
            Some(OutItem::Snap(mut encoder)) => {
                if !flush(&mut writer, &mut buf).await {
                    break;
                }
                let mut more = true;
                while more && !out.closed.get() {
                    more = encoder.fill(&mut buf, LINK_IO_CHUNK_BYTES);
                    if !flush(&mut writer, &mut buf).await {
                        out.close();
                    }
                }
                continue;
            }
            None => {
                out.bell.wait().await;
                continue;
            }
        }
        if !flush(&mut writer, &mut buf).await {
            break;
        }
    }
    out.close();
}

async fn flush(writer: &mut WriteHalf<LinkStream>, buf: &mut Vec<u8>) -> bool {
    if buf.is_empty() {
        return true;
    }
    let ok = writer.write_all(buf).await.is_ok() && writer.flush().await.is_ok();
    buf.clear();
    ok
}

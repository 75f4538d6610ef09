//! The election port: connection handshake, message framing and fast leader
//! election notifications, as ZooKeeper 3.8/3.9 write and read them.
//!
//! All integers are big-endian (`java.io.DataOutputStream` and
//! `java.nio.ByteBuffer` defaults). Layouts, from the Java code:
//!
//! Handshake, initiator -> acceptor, no reply (`QuorumCnxManager.startConnection`):
//! ```text
//! long protocolVersion  PROTOCOL_VERSION_V1 (-65536), or V2 (-65535) with multiAddress
//! long sid
//! int  addrLen          1..=2048 (`QuorumCnxManager.maxBuffer`)
//! byte addr[addrLen]    UTF-8 "host:port" (V1) or "h1:p1|h2:p2" (V2)
//! ```
//! A first long >= 0 is a bare sid from a pre-3.5 peer and nothing follows
//! (`QuorumCnxManager.handleConnection`).
//!
//! Every later message is `int length` (1..=512 KiB) + payload
//! (`SendWorker.send`, `RecvWorker.run`); the payload is a notification:
//! ```text
//! 0  int  state          ServerState ordinal: 0 LOOKING 1 FOLLOWING 2 LEADING 3 OBSERVING
//! 4  long leader
//! 12 long zxid
//! 20 long electionEpoch
//! 28 long peerEpoch
//! 36 int  version        0x2
//! 40 int  configLength
//! 44 byte config[]       QuorumVerifier.toString() as UTF-8
//! ```
//! (`FastLeaderElection.buildMsg`, read back in `FastLeaderElection.Messenger.WorkerReceiver.run`).
//!
//! Who keeps a connection (`QuorumCnxManager.startConnection`/`handleConnection`):
//! only one initiated by the larger sid survives; see [`initiator_keeps_connection`]
//! and [`acceptor_keeps_connection`].

use super::quorum_wire::epoch_of;
use super::WireError;
pub use crate::limits::quorum::{
    ELECTION_FRAME_BYTES_MAX, HANDSHAKE_ADDR_BYTES_MAX, NOTIFICATION_CONFIG_BYTES_MAX,
};
use crate::proto::jute::{put_i32, put_i64, Reader};

/// Handshake protocol version sent since ZOOKEEPER-107 (3.5.0); what 3.8/3.9
/// send unless `multiAddress.enabled` (`QuorumCnxManager.PROTOCOL_VERSION_V1`).
/// We always send it: V2 splits mixed-version ensembles (ZOOKEEPER-3720).
pub const PROTOCOL_VERSION_V1: i64 = -65536;

/// Handshake protocol version with `|`-separated addresses (ZOOKEEPER-3188,
/// 3.6.0; `QuorumCnxManager.PROTOCOL_VERSION_V2`). Accepted, never sent.
pub const PROTOCOL_VERSION_V2: i64 = -65535;

/// Fixed part of a V1/V2 handshake: version, sid, address length.
pub const HANDSHAKE_HEADER_BYTES: usize = 8 + 8 + 4;

/// Bytes of the frame length prefix (`DataOutputStream.writeInt` in `SendWorker.send`).
pub const ELECTION_FRAME_LEN_BYTES: usize = 4;

/// Sid an observer may send in the handshake; the acceptor replaces it with a
/// negative counter (`QuorumPeer.OBSERVER_ID`, `QuorumCnxManager.handleConnection`).
pub const OBSERVER_SID: i64 = i64::MAX;

/// Notification format version written by 3.8/3.9 (`FastLeaderElection.Notification.CURRENTVERSION`).
pub const NOTIFICATION_VERSION: i32 = 0x2;

/// Oldest accepted notification: state, leader, zxid, electionEpoch; the peer
/// epoch is derived from the zxid (pre ZOOKEEPER-107, `WorkerReceiver.run`).
pub const NOTIFICATION_BYTES_LEGACY_28: usize = 28;

/// Notification with peerEpoch but whose version int is not read (`backCompatibility40`
/// in `WorkerReceiver.run`; `buildMsg` without config writes exactly this size).
pub const NOTIFICATION_BYTES_LEGACY_40: usize = 40;

/// Fixed part of a current notification, before the config bytes (`buildMsg`: `44 + configData.length`).
pub const NOTIFICATION_HEADER_BYTES: usize = 44;
const _: () =
    assert!(NOTIFICATION_CONFIG_BYTES_MAX == ELECTION_FRAME_BYTES_MAX - NOTIFICATION_HEADER_BYTES);

// ---------------------------------------------------------------------------------------------
// Handshake

/// One election address from the handshake, as `ConfigUtils.getHostAndPort` splits it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElectionAddr {
    /// Host without IPv6 brackets.
    pub host: String,
    pub port: u16,
}

impl ElectionAddr {
    /// `NetUtils.formatInetAddr`: IPv6 literals (containing ':') in brackets.
    pub fn to_wire_string(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// A wildcard address (0.0.0.0, ::) cannot be dialled back; Java drops it
    /// (`InitialMessage.isWildcardAddress`). Hostnames are never wildcards here
    /// (Java resolves them; no real name resolves to the any-address). Decided
    /// on the text alone, as the rest of this codec: an all-zero dotted quad,
    /// or an IPv6 literal of zeros and colons only.
    pub fn is_wildcard(&self) -> bool {
        let host = self.host.as_str();
        let zero_quad = host.split('.').count() == 4
            && host
                .split('.')
                .all(|part| !part.is_empty() && part.bytes().all(|b| b == b'0'));
        let zero_v6 = host.contains(':') && host.bytes().all(|b| b == b'0' || b == b':');
        zero_quad || zero_v6
    }
}

/// What the initiator of an election connection says first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitialMessage {
    /// Pre-3.5 form: the first long is the sid itself, nothing follows.
    Legacy { sid: i64 },
    /// V1 or V2: sid and the initiator's election addresses, wildcards
    /// already dropped (an empty list means "use the configured address").
    Versioned {
        protocol_version: i64,
        sid: i64,
        addrs: Vec<ElectionAddr>,
    },
}

impl InitialMessage {
    pub fn sid(&self) -> i64 {
        match self {
            InitialMessage::Legacy { sid } | InitialMessage::Versioned { sid, .. } => *sid,
        }
    }
}

/// The handshake 3.8/3.9 send without multiAddress (`QuorumCnxManager.startConnection`):
/// V1, our sid, one `host:port`. Callers must write it in one piece: the
/// acceptor reads the address with a single `read` and fails on a short one
/// (`InitialMessage.parse`).
pub fn encode_initial_message(sid: i64, addr: &ElectionAddr) -> Result<Vec<u8>, WireError> {
    let text = addr.to_wire_string();
    let len = checked_handshake_addr_len(text.len())?;
    let mut out = Vec::with_capacity(HANDSHAKE_HEADER_BYTES + text.len());
    put_i64(&mut out, PROTOCOL_VERSION_V1);
    put_i64(&mut out, sid);
    put_i32(&mut out, len);
    out.extend_from_slice(text.as_bytes());
    Ok(out)
}

/// The address length must be one the acceptor accepts.
fn checked_handshake_addr_len(len: usize) -> Result<i32, WireError> {
    if len == 0 || len > HANDSHAKE_ADDR_BYTES_MAX {
        return Err(WireError::BadLength {
            what: "handshake address",
            len: i64::try_from(len).unwrap_or(i64::MAX),
            max: HANDSHAKE_ADDR_BYTES_MAX,
        });
    }
    // Bounded by HANDSHAKE_ADDR_BYTES_MAX just above, so it fits an i32.
    Ok(len as i32)
}

/// Decodes the start of an accepted election connection. Returns the message
/// and the bytes it used (frames follow it on the same stream).
///
/// `Truncated` means "read more": fields are validated in wire order as soon
/// as they are complete, so an unknown version or a bad address length fails
/// at once instead of waiting for bytes that will never come. Any other error
/// means close the socket, as `QuorumCnxManager.handleConnection` does.
pub fn decode_initial_message(buf: &[u8]) -> Result<(InitialMessage, usize), WireError> {
    let mut r = Reader::new(buf);
    let first = r.i64()?;
    if first >= 0 {
        return Ok((InitialMessage::Legacy { sid: first }, 8));
    }
    if first != PROTOCOL_VERSION_V1 && first != PROTOCOL_VERSION_V2 {
        return Err(WireError::UnknownProtocolVersion(first));
    }
    let sid = r.i64()?;
    let len = r.i32()?;
    if len <= 0 || len as usize > HANDSHAKE_ADDR_BYTES_MAX {
        return Err(WireError::BadLength {
            what: "handshake address",
            len: i64::from(len),
            max: HANDSHAKE_ADDR_BYTES_MAX,
        });
    }
    let len = len as usize;
    let text = r.rest().get(..len).ok_or(WireError::Truncated)?;
    let text =
        std::str::from_utf8(text).map_err(|_| WireError::InvalidUtf8("handshake address"))?;
    let addrs = parse_handshake_addrs(text)?;
    let msg = InitialMessage::Versioned {
        protocol_version: first,
        sid,
        addrs,
    };
    Ok((msg, HANDSHAKE_HEADER_BYTES + len))
}

/// `host:port` joined by `|` (V1 sends exactly one), wildcards dropped
/// (`InitialMessage.parse`).
fn parse_handshake_addrs(text: &str) -> Result<Vec<ElectionAddr>, WireError> {
    let mut addrs = Vec::new();
    for part in text.split('|') {
        let addr = parse_host_port(part)?;
        if !addr.is_wildcard() {
            addrs.push(addr);
        }
    }
    Ok(addrs)
}

/// `ConfigUtils.getHostAndPort` then `Integer.parseInt(port)`: "[v6]:port" or
/// "host:port", exactly two parts. The port must also be a valid TCP port
/// (Java's `InetSocketAddress` would throw on anything else).
fn parse_host_port(s: &str) -> Result<ElectionAddr, WireError> {
    let bad = || WireError::BadAddress(s.chars().take(64).collect());
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(bad)?;
        (host, after.strip_prefix(':').ok_or_else(bad)?)
    } else {
        let mut parts = s.split(':');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(h), Some(p), None) => (h, p),
            _ => return Err(bad()),
        }
    };
    let port = port.parse::<u16>().map_err(|_| bad())?;
    Ok(ElectionAddr {
        host: host.to_string(),
        port,
    })
}

/// The initiator keeps its new connection only if it has the larger sid;
/// otherwise it closes it and waits to be dialled back
/// (`QuorumCnxManager.startConnection`: `if (sid > self.getMyId())` drop).
pub fn initiator_keeps_connection(my_sid: i64, remote_sid: i64) -> bool {
    remote_sid <= my_sid
}

/// What the acceptor does with a connection from `remote_sid` (`handleConnection`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcceptDecision {
    /// Remote sid larger: keep it (replacing any older connection to that sid).
    Keep,
    /// Remote sid smaller: close it and dial the remote back ourselves.
    CloseAndDialBack,
    /// Same sid as ours: a config error (ZOOKEEPER-2164). Java only logs a
    /// warning and leaves the socket open but unused; we close it.
    CloseDuplicateSid,
}

/// See [`AcceptDecision`].
pub fn acceptor_keeps_connection(my_sid: i64, remote_sid: i64) -> AcceptDecision {
    match remote_sid.cmp(&my_sid) {
        std::cmp::Ordering::Greater => AcceptDecision::Keep,
        std::cmp::Ordering::Less => AcceptDecision::CloseAndDialBack,
        std::cmp::Ordering::Equal => AcceptDecision::CloseDuplicateSid,
    }
}

// ---------------------------------------------------------------------------------------------
// Framing

/// Appends one election frame: `int length` + payload (`SendWorker.send`).
pub fn encode_election_frame(payload: &[u8], out: &mut Vec<u8>) -> Result<(), WireError> {
    if payload.is_empty() || payload.len() > ELECTION_FRAME_BYTES_MAX {
        return Err(WireError::BadLength {
            what: "election frame",
            len: i64::try_from(payload.len()).unwrap_or(i64::MAX),
            max: ELECTION_FRAME_BYTES_MAX,
        });
    }
    // Bounded by ELECTION_FRAME_BYTES_MAX, so it fits an i32.
    put_i32(out, payload.len() as i32);
    out.extend_from_slice(payload);
    Ok(())
}

/// Splits one election frame off the front of `buf`: (payload, bytes used).
/// `Truncated` means read more; a length outside 1..=512 KiB is final and
/// drops the connection (`RecvWorker.run`), checked before waiting for the body.
pub fn decode_election_frame(buf: &[u8]) -> Result<(&[u8], usize), WireError> {
    let mut r = Reader::new(buf);
    let len = r.i32()?;
    if len <= 0 || len as usize > ELECTION_FRAME_BYTES_MAX {
        return Err(WireError::BadLength {
            what: "election frame",
            len: i64::from(len),
            max: ELECTION_FRAME_BYTES_MAX,
        });
    }
    let len = len as usize;
    let payload = r.rest().get(..len).ok_or(WireError::Truncated)?;
    Ok((payload, ELECTION_FRAME_LEN_BYTES + len))
}

// ---------------------------------------------------------------------------------------------
// Notifications

/// `QuorumPeer.ServerState`, sent as its ordinal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServerState {
    Looking,
    Following,
    Leading,
    Observing,
}

impl ServerState {
    /// The enum ordinal Java writes (`ToSend.state.ordinal()` in `WorkerSender.process`).
    pub fn ordinal(self) -> i32 {
        match self {
            ServerState::Looking => 0,
            ServerState::Following => 1,
            ServerState::Leading => 2,
            ServerState::Observing => 3,
        }
    }

    /// Ordinals 0..=3; anything else makes Java drop the message (`WorkerReceiver.run`).
    pub fn from_ordinal(n: i32) -> Result<Self, WireError> {
        match n {
            0 => Ok(ServerState::Looking),
            1 => Ok(ServerState::Following),
            2 => Ok(ServerState::Leading),
            3 => Ok(ServerState::Observing),
            other => Err(WireError::UnknownServerState(other)),
        }
    }
}

/// One FLE notification. The sender's sid is not in it: it is the sid of the
/// connection it arrived on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub state: ServerState,
    /// Proposed leader's sid.
    pub leader: i64,
    /// Proposed leader's last zxid.
    pub zxid: i64,
    /// The sender's election round (`logicalclock`).
    pub election_epoch: i64,
    /// Proposed leader's epoch.
    pub peer_epoch: i64,
    /// Format version as read: 2 for 3.5+, 1 for 3.4.6+ without config,
    /// 0 for the 28- and 40-byte legacy forms (Java does not read the int there).
    pub version: i32,
    /// `QuorumVerifier.toString()` bytes (UTF-8); empty below version 2.
    pub config: Vec<u8>,
}

impl Notification {
    /// The config text, if it is UTF-8 (Java decodes it lossily and ignores
    /// parse errors, `WorkerReceiver.run`).
    pub fn config_text(&self) -> Option<&str> {
        std::str::from_utf8(&self.config).ok()
    }
}

/// The payload 3.8/3.9 send: always the current form, version 2, with config
/// (`FastLeaderElection.buildMsg` with `configData`). Frame it with
/// [`encode_election_frame`].
pub fn encode_notification(n: &Notification) -> Result<Vec<u8>, WireError> {
    if n.config.len() > NOTIFICATION_CONFIG_BYTES_MAX {
        return Err(WireError::BadLength {
            what: "notification config",
            len: i64::try_from(n.config.len()).unwrap_or(i64::MAX),
            max: NOTIFICATION_CONFIG_BYTES_MAX,
        });
    }
    let mut out = Vec::with_capacity(NOTIFICATION_HEADER_BYTES + n.config.len());
    put_i32(&mut out, n.state.ordinal());
    put_i64(&mut out, n.leader);
    put_i64(&mut out, n.zxid);
    put_i64(&mut out, n.election_epoch);
    put_i64(&mut out, n.peer_epoch);
    put_i32(&mut out, NOTIFICATION_VERSION);
    // Bounded by NOTIFICATION_CONFIG_BYTES_MAX just above, so it fits an i32.
    put_i32(&mut out, n.config.len() as i32);
    out.extend_from_slice(&n.config);
    Ok(out)
}

/// Decodes one notification payload (a whole frame). Mirrors
/// `WorkerReceiver.run`: < 28 bytes is rejected; exactly 28 has no peer epoch
/// (derived from the zxid); exactly 40 has a peer epoch and the version int is
/// not read; otherwise the version is read and, if > 1, the config follows.
/// Bytes after the config are ignored, as in Java.
///
/// An error means Java would skip this message (the connection stays up).
pub fn decode_notification(payload: &[u8]) -> Result<Notification, WireError> {
    if payload.len() < NOTIFICATION_BYTES_LEGACY_28 {
        return Err(WireError::Truncated);
    }
    if payload.len() > ELECTION_FRAME_BYTES_MAX {
        return Err(WireError::BadLength {
            what: "notification",
            len: i64::try_from(payload.len()).unwrap_or(i64::MAX),
            max: ELECTION_FRAME_BYTES_MAX,
        });
    }
    let mut r = Reader::new(payload);
    let state_ordinal = r.i32()?;
    let leader = r.i64()?;
    let zxid = r.i64()?;
    let election_epoch = r.i64()?;
    let (peer_epoch, version, config) = match payload.len() {
        NOTIFICATION_BYTES_LEGACY_28 => (epoch_of(zxid), 0, Vec::new()),
        NOTIFICATION_BYTES_LEGACY_40 => (r.i64()?, 0, Vec::new()),
        _ => {
            let peer_epoch = r.i64()?;
            let version = r.i32()?;
            let config = if version > 1 {
                read_config(&mut r)?
            } else {
                Vec::new()
            };
            (peer_epoch, version, config)
        }
    };
    // Java reads the whole message before looking at the state, so a short
    // message is reported as such first.
    let state = ServerState::from_ordinal(state_ordinal)?;
    Ok(Notification {
        state,
        leader,
        zxid,
        election_epoch,
        peer_epoch,
        version,
        config,
    })
}

/// `int configLength` + bytes; Java rejects a negative length or one above
/// the message size, and a length past the end underflows (`WorkerReceiver.run`).
fn read_config(r: &mut Reader<'_>) -> Result<Vec<u8>, WireError> {
    let len = r.i32()?;
    if len < 0 || len as usize > NOTIFICATION_CONFIG_BYTES_MAX {
        return Err(WireError::BadLength {
            what: "notification config",
            len: i64::from(len),
            max: NOTIFICATION_CONFIG_BYTES_MAX,
        });
    }
    let bytes = r.rest().get(..len as usize).ok_or(WireError::Truncated)?;
    Ok(bytes.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(host: &str, port: u16) -> ElectionAddr {
        ElectionAddr {
            host: host.to_string(),
            port,
        }
    }

    fn sample_notification() -> Notification {
        Notification {
            state: ServerState::Looking,
            leader: 1,
            zxid: 0x1_0000_0005,
            election_epoch: 3,
            peer_epoch: 1,
            version: NOTIFICATION_VERSION,
            config: b"server.1=127.0.0.1:2888:3888:participant\nversion=0".to_vec(),
        }
    }

    #[test]
    fn handshake_is_byte_exact() {
        // QuorumCnxManager.startConnection: writeLong(PROTOCOL_VERSION_V1),
        // writeLong(myId), writeInt(addr_bytes.length), write(addr_bytes), where
        // addr = NetUtils.formatInetAddr(electionAddress) = "127.0.0.1:3888".
        let got = encode_initial_message(3, &addr("127.0.0.1", 3888)).unwrap();
        let mut want = vec![0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00]; // -65536
        want.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 3]);
        want.extend_from_slice(&[0, 0, 0, 14]);
        want.extend_from_slice(b"127.0.0.1:3888");
        assert_eq!(got, want);
        let (msg, used) = decode_initial_message(&got).unwrap();
        assert_eq!(used, got.len());
        assert_eq!(
            msg,
            InitialMessage::Versioned {
                protocol_version: PROTOCOL_VERSION_V1,
                sid: 3,
                addrs: vec![addr("127.0.0.1", 3888)],
            }
        );
    }

    #[test]
    fn ipv6_addresses_are_bracketed() {
        let got = encode_initial_message(1, &addr("::1", 3888)).unwrap();
        assert_eq!(&got[20..], b"[::1]:3888");
        let (msg, _) = decode_initial_message(&got).unwrap();
        assert_eq!(
            msg,
            InitialMessage::Versioned {
                protocol_version: PROTOCOL_VERSION_V1,
                sid: 1,
                addrs: vec![addr("::1", 3888)]
            }
        );
    }

    #[test]
    fn legacy_handshake_is_a_bare_sid() {
        // handleConnection: a first long >= 0 is the sid; nothing else is read.
        let mut buf = 7i64.to_be_bytes().to_vec();
        buf.extend_from_slice(b"frames follow");
        assert_eq!(
            decode_initial_message(&buf),
            Ok((InitialMessage::Legacy { sid: 7 }, 8))
        );
    }

    #[test]
    fn wildcards_are_the_zero_addresses_only() {
        let addr = |host: &str| ElectionAddr {
            host: host.to_string(),
            port: 3888,
        };
        for host in ["0.0.0.0", "::", "0:0:0:0:0:0:0:0", "::0"] {
            assert!(addr(host).is_wildcard(), "{host}");
        }
        for host in ["10.0.0.0", "127.0.0.1", "::1", "0.0.0", "zk1", "0.0.0.0.0"] {
            assert!(!addr(host).is_wildcard(), "{host}");
        }
    }

    #[test]
    fn v2_handshake_with_several_addresses_drops_wildcards() {
        let text = b"10.0.0.1:3888|0.0.0.0:3888|[::]:3889|[fe80::1]:3890";
        let mut buf = Vec::new();
        put_i64(&mut buf, PROTOCOL_VERSION_V2);
        put_i64(&mut buf, 2);
        put_i32(&mut buf, text.len() as i32);
        buf.extend_from_slice(text);
        let (msg, used) = decode_initial_message(&buf).unwrap();
        assert_eq!(used, buf.len());
        assert_eq!(
            msg,
            InitialMessage::Versioned {
                protocol_version: PROTOCOL_VERSION_V2,
                sid: 2,
                addrs: vec![addr("10.0.0.1", 3888), addr("fe80::1", 3890)]
            }
        );
        assert_eq!(msg.sid(), 2);
    }

    fn handshake_with_len(len: i32, body: &[u8]) -> Vec<u8> {
        let mut buf = Vec::new();
        put_i64(&mut buf, PROTOCOL_VERSION_V1);
        put_i64(&mut buf, 3);
        put_i32(&mut buf, len);
        buf.extend_from_slice(body);
        buf
    }

    #[test]
    fn handshake_rejects_bad_input() {
        // Unknown negative version: closed at once (InitialMessage.parse).
        let buf = (-5i64).to_be_bytes();
        assert_eq!(
            decode_initial_message(&buf),
            Err(WireError::UnknownProtocolVersion(-5))
        );
        // Length 0, negative and over maxBuffer fail before the body arrives.
        for len in [0, -1, i32::MIN, 2049, i32::MAX] {
            assert!(
                matches!(
                    decode_initial_message(&handshake_with_len(len, b"")),
                    Err(WireError::BadLength { .. })
                ),
                "len {len}"
            );
        }
        // 2048 is allowed, and only truncated until the bytes arrive.
        assert_eq!(
            decode_initial_message(&handshake_with_len(2048, b"1.2.3.4:5")),
            Err(WireError::Truncated)
        );
        for bad in [
            &b"nohost"[..],
            b"a:b:c",
            b"h:99999",
            b"h:",
            b"[::1",
            b"[::1]3888",
            b"h:-1",
        ] {
            assert!(
                matches!(
                    decode_initial_message(&handshake_with_len(bad.len() as i32, bad)),
                    Err(WireError::BadAddress(_))
                ),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(
            decode_initial_message(&handshake_with_len(3, &[0xff, 0xfe, 0xfd])),
            Err(WireError::InvalidUtf8("handshake address"))
        );
        assert!(encode_initial_message(1, &addr(&"h".repeat(2048), 1)).is_err());
    }

    #[test]
    fn truncated_handshake_asks_for_more_at_every_length() {
        let full = encode_initial_message(3, &addr("127.0.0.1", 3888)).unwrap();
        for n in 0..full.len() {
            assert_eq!(
                decode_initial_message(&full[..n]),
                Err(WireError::Truncated),
                "prefix {n}"
            );
        }
    }

    #[test]
    fn connection_rule_keeps_the_larger_sids_connection() {
        // We are 3 dialling 1: keep. Apache (1) dialling us (3): it drops.
        assert!(initiator_keeps_connection(3, 1));
        assert!(!initiator_keeps_connection(1, 3));
        assert_eq!(acceptor_keeps_connection(1, 3), AcceptDecision::Keep);
        assert_eq!(
            acceptor_keeps_connection(3, 1),
            AcceptDecision::CloseAndDialBack
        );
        assert_eq!(
            acceptor_keeps_connection(2, 2),
            AcceptDecision::CloseDuplicateSid
        );
    }

    #[test]
    fn frames_round_trip_and_reject_bad_lengths() {
        let mut out = Vec::new();
        encode_election_frame(b"abc", &mut out).unwrap();
        encode_election_frame(b"d", &mut out).unwrap();
        assert_eq!(&out[..7], &[0, 0, 0, 3, b'a', b'b', b'c']);
        let (p, used) = decode_election_frame(&out).unwrap();
        assert_eq!((p, used), (&b"abc"[..], 7));
        assert_eq!(decode_election_frame(&out[used..]), Ok((&b"d"[..], 5)));
        assert_eq!(decode_election_frame(&out[..6]), Err(WireError::Truncated));
        assert_eq!(decode_election_frame(&out[..2]), Err(WireError::Truncated));
        for len in [0i32, -1, (ELECTION_FRAME_BYTES_MAX + 1) as i32] {
            assert!(matches!(
                decode_election_frame(&len.to_be_bytes()),
                Err(WireError::BadLength { .. })
            ));
        }
        let big = vec![0u8; ELECTION_FRAME_BYTES_MAX];
        let mut framed = Vec::new();
        encode_election_frame(&big, &mut framed).unwrap();
        assert_eq!(decode_election_frame(&framed).unwrap().1, framed.len());
        assert!(encode_election_frame(&[], &mut Vec::new()).is_err());
        assert!(
            encode_election_frame(&vec![0; ELECTION_FRAME_BYTES_MAX + 1], &mut Vec::new()).is_err()
        );
    }

    #[test]
    fn notification_is_byte_exact() {
        // FastLeaderElection.buildMsg(state, leader, zxid, electionEpoch, epoch, configData):
        // putInt(state) putLong(leader) putLong(zxid) putLong(electionEpoch)
        // putLong(epoch) putInt(CURRENTVERSION = 2) putInt(configData.length) put(configData).
        let n = sample_notification();
        let got = encode_notification(&n).unwrap();
        let mut want = vec![0, 0, 0, 0]; // LOOKING
        want.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 1]); // leader
        want.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 5]); // zxid
        want.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 3]); // electionEpoch
        want.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 1]); // peerEpoch
        want.extend_from_slice(&[0, 0, 0, 2]); // version
        want.extend_from_slice(&(n.config.len() as i32).to_be_bytes());
        want.extend_from_slice(&n.config);
        assert_eq!(got, want);
        assert_eq!(got.len(), NOTIFICATION_HEADER_BYTES + n.config.len());
        assert_eq!(decode_notification(&got), Ok(n));
    }

    #[test]
    fn every_state_round_trips() {
        for state in [
            ServerState::Looking,
            ServerState::Following,
            ServerState::Leading,
            ServerState::Observing,
        ] {
            let n = Notification {
                state,
                config: Vec::new(),
                ..sample_notification()
            };
            let bytes = encode_notification(&n).unwrap();
            assert_eq!(bytes.len(), NOTIFICATION_HEADER_BYTES);
            assert_eq!(decode_notification(&bytes), Ok(n));
        }
    }

    #[test]
    fn legacy_28_byte_notification_derives_peer_epoch() {
        let full = encode_notification(&sample_notification()).unwrap();
        let n = decode_notification(&full[..28]).unwrap();
        assert_eq!(n.peer_epoch, 1); // epoch of zxid 0x1_0000_0005
        assert_eq!((n.version, n.config.len()), (0, 0));
        assert_eq!((n.leader, n.zxid, n.election_epoch), (1, 0x1_0000_0005, 3));
    }

    #[test]
    fn legacy_40_byte_notification_ignores_the_version_int() {
        // buildMsg without config writes 40 bytes ending in putInt(0x1); the
        // receiver's backCompatibility40 branch does not read that int.
        let mut buf = encode_notification(&sample_notification()).unwrap();
        buf.truncate(36);
        put_i32(&mut buf, 0x1);
        let n = decode_notification(&buf).unwrap();
        assert_eq!((n.peer_epoch, n.version, n.config.len()), (1, 0, 0));
    }

    #[test]
    fn version_1_notification_has_no_config_and_trailing_bytes_are_ignored() {
        let mut buf = encode_notification(&sample_notification()).unwrap();
        buf[36..40].copy_from_slice(&1i32.to_be_bytes());
        let n = decode_notification(&buf).unwrap();
        assert_eq!((n.version, n.config.len()), (1, 0));
        let mut buf = encode_notification(&sample_notification()).unwrap();
        buf.extend_from_slice(b"junk");
        assert_eq!(decode_notification(&buf), Ok(sample_notification()));
    }

    #[test]
    fn bad_notifications_are_rejected() {
        let full = encode_notification(&sample_notification()).unwrap();
        // Shorter than 28, or a length between the known forms whose fields run out.
        for n in [0, 4, 27, 29, 36, 39, 41, 43, 44, full.len() - 1] {
            assert_eq!(
                decode_notification(&full[..n]),
                Err(WireError::Truncated),
                "prefix {n}"
            );
        }
        let mut bad_state = full.clone();
        bad_state[..4].copy_from_slice(&4i32.to_be_bytes());
        assert_eq!(
            decode_notification(&bad_state),
            Err(WireError::UnknownServerState(4))
        );
        for len in [-1i32, i32::MIN, i32::MAX] {
            let mut bad_len = full.clone();
            bad_len[40..44].copy_from_slice(&len.to_be_bytes());
            assert!(matches!(
                decode_notification(&bad_len),
                Err(WireError::BadLength { .. })
            ));
        }
        let oversized = vec![0u8; ELECTION_FRAME_BYTES_MAX + 1];
        assert!(matches!(
            decode_notification(&oversized),
            Err(WireError::BadLength { .. })
        ));
        let huge_config = Notification {
            config: vec![b'x'; NOTIFICATION_CONFIG_BYTES_MAX + 1],
            ..sample_notification()
        };
        assert!(encode_notification(&huge_config).is_err());
    }

    #[test]
    fn garbage_never_panics() {
        // A cheap deterministic fuzz over every decoder in this module.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for round in 0..20_000usize {
            let len = round % 97;
            let mut buf = Vec::with_capacity(len);
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                buf.push(x as u8);
            }
            let _ = decode_initial_message(&buf);
            let _ = decode_election_frame(&buf);
            let _ = decode_notification(&buf);
        }
    }
}

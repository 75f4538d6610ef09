//! The quorum (learner) port: `QuorumPacket` framing, packet types and the
//! discovery-phase payloads, as ZooKeeper 3.8/3.9 write and read them.
//!
//! There is **no outer length prefix**: both sides wrap the socket in a jute
//! `BinaryOutputArchive`/`BinaryInputArchive` and call `writeRecord`/`readRecord`
//! on one `QuorumPacket` after another (`Learner.writePacketNow`/`readPacket`,
//! `LearnerHandler.run`/`sendPackets`), and `BinaryOutputArchive.writeRecord`
//! just calls `serialize` (`startRecord`/`endRecord` write nothing). So the
//! stream is the concatenation of (zookeeper.jute `QuorumPacket`):
//! ```text
//! int    type
//! long   zxid
//! buffer data        int length (-1 = null) + bytes   (BinaryOutputArchive.writeBuffer)
//! vector authinfo    int count (-1 = null) + count x Id{ustring scheme, ustring id}
//! ```
//! Each buffer/string length is checked on read against
//! `jute.maxbuffer + zookeeper.jute.maxbuffer.extrasize` (`BinaryInputArchive.checkLength`).

use super::txn_wire::check_len;
use super::WireError;
pub use crate::limits::quorum::{QUORUM_AUTHINFO_IDS_MAX, QUORUM_BUFFER_BYTES_MAX};
use crate::proto::jute::{put_buffer, put_i32, put_i64, put_str, Reader};
use crate::proto::types::Id;

// Packet types (`Leader` constants; directions in zk-quorum.md section 3.2).
pub const REQUEST: i32 = 1;
pub const PROPOSAL: i32 = 2;
pub const ACK: i32 = 3;
pub const COMMIT: i32 = 4;
pub const PING: i32 = 5;
pub const REVALIDATE: i32 = 6;
pub const SYNC: i32 = 7;
pub const INFORM: i32 = 8;
pub const COMMITANDACTIVATE: i32 = 9;
pub const NEWLEADER: i32 = 10;
pub const FOLLOWERINFO: i32 = 11;
pub const UPTODATE: i32 = 12;
pub const DIFF: i32 = 13;
pub const TRUNC: i32 = 14;
pub const SNAP: i32 = 15;
pub const OBSERVERINFO: i32 = 16;
pub const LEADERINFO: i32 = 17;
pub const ACKEPOCH: i32 = 18;
pub const INFORMANDACTIVATE: i32 = 19;

/// Name of a packet type, for logs (`LearnerHandler.packetToString` spells them the same).
pub fn packet_type_name(packet_type: i32) -> Option<&'static str> {
    const NAMES: [&str; 19] = [
        "REQUEST",
        "PROPOSAL",
        "ACK",
        "COMMIT",
        "PING",
        "REVALIDATE",
        "SYNC",
        "INFORM",
        "COMMITANDACTIVATE",
        "NEWLEADER",
        "FOLLOWERINFO",
        "UPTODATE",
        "DIFF",
        "TRUNC",
        "SNAP",
        "OBSERVERINFO",
        "LEADERINFO",
        "ACKEPOCH",
        "INFORMANDACTIVATE",
    ];
    let index = usize::try_from(packet_type).ok()?.checked_sub(1)?;
    NAMES.get(index).copied()
}

/// The Zab 1.0 protocol version learners and leaders announce (`0x10000` in
/// `Learner.registerWithLeader` and `LearnerHandler.run`).
pub const ZAB_PROTOCOL_VERSION: i32 = 0x10000;

/// Version `LearnerHandler` assumes when the LearnerInfo has no version field
/// (`LearnerHandler.version = 0x1`): a pre-1.0 learner, sent no LEADERINFO.
pub const LEARNER_PROTOCOL_VERSION_DEFAULT: i32 = 0x1;

/// ACKEPOCH's `currentEpoch` when the learner had already accepted this epoch:
/// the ack does not count towards the epoch quorum (`Learner.registerWithLeader`).
pub const ACKEPOCH_ALREADY_ACCEPTED: i32 = -1;

/// Default `jute.maxbuffer` (`BinaryInputArchive.maxBuffer`, 0xfffff).
pub const JUTE_MAXBUFFER_DEFAULT: usize = 0xfffff;

/// Encoded size of an Id with two empty strings: the smallest element.
const ID_BYTES_MIN: usize = 8;

/// LearnerInfo as 3.8/3.9 write it: `long serverid, int protocolVersion,
/// long configVersion` (zookeeper.jute `LearnerInfo`, `LearnerInfo.serialize`).
pub const LEARNER_INFO_BYTES: usize = 20;

/// Sizes of the older LearnerInfo forms `LearnerHandler.run` still reads:
/// sid only, and sid + protocol version (before reconfig, 3.5).
pub const LEARNER_INFO_BYTES_SID_ONLY: usize = 8;
pub const LEARNER_INFO_BYTES_NO_CONFIG: usize = 12;

// ---------------------------------------------------------------------------------------------
// Zxids (`ZxidUtils`)

/// `ZxidUtils.getEpochFromZxid`: an arithmetic shift, as Java's `>>` on a long.
pub fn epoch_of(zxid: i64) -> i64 {
    zxid >> 32
}

/// `ZxidUtils.getCounterFromZxid`.
pub fn counter_of(zxid: i64) -> i64 {
    zxid & 0xffff_ffff
}

/// `ZxidUtils.makeZxid`: the counter is masked to 32 bits, the epoch is not.
pub fn make_zxid(epoch: i64, counter: i64) -> i64 {
    (epoch << 32) | (counter & 0xffff_ffff)
}

// ---------------------------------------------------------------------------------------------
// QuorumPacket

/// One `QuorumPacket`. `None` and empty are different on the wire (-1 versus
/// 0), and Java sends null for both fields in most packets
/// (`new QuorumPacket(Leader.ACK, zxid, null, null)`), so both are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumPacket {
    pub packet_type: i32,
    pub zxid: i64,
    pub data: Option<Vec<u8>>,
    pub authinfo: Option<Vec<Id>>,
}

impl QuorumPacket {
    /// A packet with null data and authinfo.
    pub fn bare(packet_type: i32, zxid: i64) -> Self {
        QuorumPacket {
            packet_type,
            zxid,
            data: None,
            authinfo: None,
        }
    }

    pub fn with_data(packet_type: i32, zxid: i64, data: Vec<u8>) -> Self {
        QuorumPacket {
            data: Some(data),
            ..QuorumPacket::bare(packet_type, zxid)
        }
    }
}

/// Appends a packet as `BinaryOutputArchive.writeRecord(packet)` writes it
/// (generated `QuorumPacket.serialize`: writeInt, writeLong, writeBuffer,
/// startVector + `Id.serialize` each). Fails, writing nothing, if a field is
/// larger than a ZooKeeper peer would read.
pub fn encode_quorum_packet(p: &QuorumPacket, out: &mut Vec<u8>) -> Result<(), WireError> {
    check_encodable(p)?;
    put_i32(out, p.packet_type);
    put_i64(out, p.zxid);
    put_buffer(out, p.data.as_deref());
    match &p.authinfo {
        None => put_i32(out, -1),
        Some(ids) => {
            // Bounded by QUORUM_AUTHINFO_IDS_MAX in check_encodable.
            put_i32(out, ids.len() as i32);
            for id in ids {
                put_str(out, &id.scheme);
                put_str(out, &id.id);
            }
        }
    }
    Ok(())
}

fn check_encodable(p: &QuorumPacket) -> Result<(), WireError> {
    if let Some(data) = &p.data {
        check_len("quorum packet data", data.len(), QUORUM_BUFFER_BYTES_MAX)?;
    }
    if let Some(ids) = &p.authinfo {
        check_len("authinfo count", ids.len(), QUORUM_AUTHINFO_IDS_MAX)?;
        for id in ids {
            check_len("authinfo scheme", id.scheme.len(), QUORUM_BUFFER_BYTES_MAX)?;
            check_len("authinfo id", id.id.len(), QUORUM_BUFFER_BYTES_MAX)?;
        }
    }
    Ok(())
}

/// Decodes one packet from the front of a stream buffer: (packet, bytes used).
///
/// `Truncated` means read more. Lengths are checked as soon as they are read,
/// before waiting for the bytes they announce, so an oversized or negative
/// length fails at once; any error other than `Truncated` means close the
/// connection (what a Java peer does on an `IOException` from `readRecord`).
///
/// Stricter than Java on garbage: Java reads a vector count below -1 as an
/// empty vector (`BinaryInputArchive.BinaryIndex.done` is `n <= 0`); we reject it.
/// A null Id string (never sent by Java's learners) decodes as "".
pub fn decode_quorum_packet(buf: &[u8]) -> Result<(QuorumPacket, usize), WireError> {
    let mut r = Reader::new(buf);
    let packet_type = r.i32()?;
    let zxid = r.i64()?;
    let data = bounded_buffer(&mut r, "quorum packet data")?.map(<[u8]>::to_vec);
    let authinfo = read_authinfo(&mut r)?;
    let used = buf.len() - r.remaining();
    let packet = QuorumPacket {
        packet_type,
        zxid,
        data,
        authinfo,
    };
    Ok((packet, used))
}

/// A jute buffer whose length is checked against [`QUORUM_BUFFER_BYTES_MAX`]
/// before the body is awaited (`BinaryInputArchive.readBuffer`/`checkLength`).
/// Shared by every quorum-port decoder (packets, txn records, snapshots).
pub(super) fn bounded_buffer<'a>(
    r: &mut Reader<'a>,
    what: &'static str,
) -> Result<Option<&'a [u8]>, WireError> {
    let len = r.clone().i32()?;
    if len != -1 && (len < 0 || len as usize > QUORUM_BUFFER_BYTES_MAX) {
        return Err(WireError::BadLength {
            what,
            len: i64::from(len),
            max: QUORUM_BUFFER_BYTES_MAX,
        });
    }
    Ok(r.buffer()?)
}

/// A nullable jute ustring, bounded like a buffer (`BinaryInputArchive.readString`).
fn bounded_str<'a>(r: &mut Reader<'a>, what: &'static str) -> Result<Option<&'a str>, WireError> {
    match bounded_buffer(r, what)? {
        None => Ok(None),
        Some(b) => std::str::from_utf8(b)
            .map(Some)
            .map_err(|_| WireError::InvalidUtf8(what)),
    }
}

fn read_authinfo(r: &mut Reader<'_>) -> Result<Option<Vec<Id>>, WireError> {
    let count = r.i32()?;
    if count == -1 {
        return Ok(None);
    }
    if count < 0 || count as usize > QUORUM_AUTHINFO_IDS_MAX {
        return Err(WireError::BadLength {
            what: "authinfo count",
            len: i64::from(count),
            max: QUORUM_AUTHINFO_IDS_MAX,
        });
    }
    let count = count as usize;
    // Element by element, so an oversized string length inside the vector
    // fails at once; the capacity never exceeds what the input can hold.
    let mut ids = Vec::with_capacity(count.min(r.remaining() / ID_BYTES_MIN));
    for _ in 0..count {
        ids.push(read_id(r)?);
    }
    Ok(Some(ids))
}

fn read_id(r: &mut Reader<'_>) -> Result<Id, WireError> {
    let scheme = bounded_str(r, "authinfo scheme")?.unwrap_or_default();
    let id = bounded_str(r, "authinfo id")?.unwrap_or_default();
    Ok(Id::new(scheme, id))
}

// ---------------------------------------------------------------------------------------------
// LearnerInfo: the data of FOLLOWERINFO / OBSERVERINFO

/// What a learner says about itself in FOLLOWERINFO/OBSERVERINFO.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LearnerInfo {
    pub sid: i64,
    pub protocol_version: i32,
    /// The learner's quorum verifier version; absent in pre-3.5 forms.
    pub config_version: Option<i64>,
}

/// The 20 bytes `Learner.registerWithLeader` writes with
/// `BinaryOutputArchive.writeRecord(LearnerInfo)`: writeLong(serverid),
/// writeInt(protocolVersion), writeLong(configVersion). A missing config
/// version is written as 0 (the static-config version).
pub fn encode_learner_info(li: &LearnerInfo) -> Vec<u8> {
    let mut out = Vec::with_capacity(LEARNER_INFO_BYTES);
    put_i64(&mut out, li.sid);
    put_i32(&mut out, li.protocol_version);
    put_i64(&mut out, li.config_version.unwrap_or(0));
    out
}

/// Reads LearnerInfo the way `LearnerHandler.run` does: >= 8 bytes give the
/// sid, >= 12 the protocol version (else 0x1), >= 20 the config version;
/// later bytes are ignored. Java lets a shorter non-null payload through with
/// sid 0; we reject it. (Null data means "assign an observer id": the caller
/// handles that case, `LearnerMaster.getAndDecrementFollowerCounter`.)
pub fn decode_learner_info(data: &[u8]) -> Result<LearnerInfo, WireError> {
    let mut r = Reader::new(data);
    if data.len() < LEARNER_INFO_BYTES_SID_ONLY {
        return Err(WireError::Truncated);
    }
    let sid = r.i64()?;
    let protocol_version = if data.len() >= LEARNER_INFO_BYTES_NO_CONFIG {
        r.i32()?
    } else {
        LEARNER_PROTOCOL_VERSION_DEFAULT
    };
    let config_version = if data.len() >= LEARNER_INFO_BYTES {
        Some(r.i64()?)
    } else {
        None
    };
    Ok(LearnerInfo {
        sid,
        protocol_version,
        config_version,
    })
}

/// Whether a FOLLOWERINFO or OBSERVERINFO is sent (`Follower.followLeader`, `Observer.observeLeader`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LearnerKind {
    Follower,
    Observer,
}

/// FOLLOWERINFO/OBSERVERINFO: zxid = makeZxid(acceptedEpoch, 0), data =
/// LearnerInfo, no authinfo (`Learner.registerWithLeader`).
pub fn learner_info_packet(
    kind: LearnerKind,
    accepted_epoch: i64,
    li: &LearnerInfo,
) -> QuorumPacket {
    let packet_type = match kind {
        LearnerKind::Follower => FOLLOWERINFO,
        LearnerKind::Observer => OBSERVERINFO,
    };
    QuorumPacket::with_data(
        packet_type,
        make_zxid(accepted_epoch, 0),
        encode_learner_info(li),
    )
}

/// Reads a learner's first packet: its kind, accepted epoch and LearnerInfo
/// (`LearnerHandler.run`). Null data is rejected here (Java would assign a
/// negative sid, a pre-3.4 observer path).
pub fn decode_learner_info_packet(
    p: &QuorumPacket,
) -> Result<(LearnerKind, i64, LearnerInfo), WireError> {
    let kind = match p.packet_type {
        FOLLOWERINFO => LearnerKind::Follower,
        OBSERVERINFO => LearnerKind::Observer,
        got => {
            return Err(WireError::UnexpectedPacketType {
                expected: FOLLOWERINFO,
                got,
            })
        }
    };
    let data = p
        .data
        .as_deref()
        .ok_or(WireError::Invalid("LearnerInfo is null"))?;
    Ok((kind, epoch_of(p.zxid), decode_learner_info(data)?))
}

// ---------------------------------------------------------------------------------------------
// LEADERINFO, ACKEPOCH, NEWLEADER

/// The 4-byte big-endian int that LEADERINFO and ACKEPOCH carry: written with
/// `ByteBuffer.putInt` into the data buffer, not as a nested jute record.
fn int_payload(v: i32) -> Vec<u8> {
    v.to_be_bytes().to_vec()
}

/// `ByteBuffer.wrap(data).getInt()`: the first 4 bytes, later ones ignored;
/// fewer (or null) makes Java throw.
fn read_int_payload(data: Option<&[u8]>, what: &'static str) -> Result<i32, WireError> {
    let data = data.ok_or(WireError::Invalid(what))?;
    Reader::new(data)
        .i32()
        .map_err(|_| WireError::Invalid(what))
}

/// What the leader proposes in LEADERINFO.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaderInfo {
    pub new_epoch: i64,
    pub protocol_version: i32,
}

/// LEADERINFO: zxid = makeZxid(newEpoch, 0), data = int 0x10000 (`LearnerHandler.run`).
pub fn leader_info_packet(new_epoch: i64) -> QuorumPacket {
    QuorumPacket::with_data(
        LEADERINFO,
        make_zxid(new_epoch, 0),
        int_payload(ZAB_PROTOCOL_VERSION),
    )
}

/// Reads LEADERINFO as `Learner.registerWithLeader` does: epoch from the zxid,
/// protocol version from the first 4 data bytes.
pub fn decode_leader_info(p: &QuorumPacket) -> Result<LeaderInfo, WireError> {
    expect_type(p, LEADERINFO)?;
    Ok(LeaderInfo {
        new_epoch: epoch_of(p.zxid),
        protocol_version: read_int_payload(
            p.data.as_deref(),
            "LEADERINFO data shorter than an int",
        )?,
    })
}

/// The learner's answer to LEADERINFO.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckEpoch {
    /// The learner's currentEpoch, or [`ACKEPOCH_ALREADY_ACCEPTED`]. Java casts
    /// the long epoch to int (`(int) self.getCurrentEpoch()`).
    pub current_epoch: i32,
    pub last_logged_zxid: i64,
}

/// ACKEPOCH: zxid = lastLoggedZxid, data = int currentEpoch, no authinfo
/// (`Learner.registerWithLeader`).
pub fn ack_epoch_packet(ack: &AckEpoch) -> QuorumPacket {
    QuorumPacket::with_data(
        ACKEPOCH,
        ack.last_logged_zxid,
        int_payload(ack.current_epoch),
    )
}

/// Reads ACKEPOCH as `LearnerHandler.run` does (`new StateSummary(getInt(), zxid)`).
pub fn decode_ack_epoch(p: &QuorumPacket) -> Result<AckEpoch, WireError> {
    expect_type(p, ACKEPOCH)?;
    Ok(AckEpoch {
        current_epoch: read_int_payload(p.data.as_deref(), "ACKEPOCH data shorter than an int")?,
        last_logged_zxid: p.zxid,
    })
}

/// NEWLEADER for a Zab 1.0 learner: zxid = makeZxid(newEpoch, 0), data = the
/// leader's quorum verifier text (`LearnerHandler.run`:
/// `learnerMaster.getQuorumVerifierBytes()`); it is NOT a protocol version.
/// Pre-1.0 learners get null data.
pub fn new_leader_packet(new_epoch: i64, config: &[u8]) -> QuorumPacket {
    QuorumPacket::with_data(NEWLEADER, make_zxid(new_epoch, 0), config.to_vec())
}

/// NEWLEADER's epoch and config text; the learner parses the config only if
/// the data is longer than one byte (`Learner.syncWithLeader`).
pub fn decode_new_leader(p: &QuorumPacket) -> Result<(i64, Option<&[u8]>), WireError> {
    expect_type(p, NEWLEADER)?;
    let config = p.data.as_deref().filter(|d| d.len() > 1);
    Ok((epoch_of(p.zxid), config))
}

fn expect_type(p: &QuorumPacket, expected: i32) -> Result<(), WireError> {
    if p.packet_type != expected {
        return Err(WireError::UnexpectedPacketType {
            expected,
            got: p.packet_type,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(p: &QuorumPacket) -> Vec<u8> {
        let mut out = Vec::new();
        encode_quorum_packet(p, &mut out).unwrap();
        out
    }

    #[test]
    fn type_constants_match_leader_java() {
        let all = [
            (REQUEST, 1),
            (PROPOSAL, 2),
            (ACK, 3),
            (COMMIT, 4),
            (PING, 5),
            (REVALIDATE, 6),
            (SYNC, 7),
            (INFORM, 8),
            (COMMITANDACTIVATE, 9),
            (NEWLEADER, 10),
            (FOLLOWERINFO, 11),
            (UPTODATE, 12),
            (DIFF, 13),
            (TRUNC, 14),
            (SNAP, 15),
            (OBSERVERINFO, 16),
            (LEADERINFO, 17),
            (ACKEPOCH, 18),
            (INFORMANDACTIVATE, 19),
        ];
        for (c, n) in all {
            assert_eq!(c, n);
        }
        assert_eq!(packet_type_name(LEADERINFO), Some("LEADERINFO"));
        assert_eq!(packet_type_name(REQUEST), Some("REQUEST"));
        assert_eq!(
            packet_type_name(INFORMANDACTIVATE),
            Some("INFORMANDACTIVATE")
        );
        assert_eq!(packet_type_name(0), None);
        assert_eq!(packet_type_name(20), None);
        assert_eq!(packet_type_name(-3), None);
    }

    #[test]
    fn zxid_helpers_match_zxid_utils() {
        assert_eq!(make_zxid(5, 7), 0x5_0000_0007);
        assert_eq!(epoch_of(0x5_0000_0007), 5);
        assert_eq!(counter_of(0x5_0000_0007), 7);
        // makeZxid masks the counter only.
        assert_eq!(make_zxid(1, -1), 0x1_ffff_ffff);
        // Java's >> is arithmetic: the -1 "no zxid" has epoch -1.
        assert_eq!(epoch_of(-1), -1);
        assert_eq!(counter_of(-1), 0xffff_ffff);
    }

    #[test]
    fn bare_packet_is_byte_exact() {
        // new QuorumPacket(Leader.ACK, zxid, null, null) through writeRecord:
        // writeInt(type) writeLong(zxid) writeBuffer(null) = int -1,
        // startVector(null) = int -1 (BinaryOutputArchive.writeBuffer/startVector).
        let got = encode(&QuorumPacket::bare(ACK, 0x1_0000_0002));
        let want = [
            0, 0, 0, 3, // type
            0, 0, 0, 1, 0, 0, 0, 2, // zxid
            0xff, 0xff, 0xff, 0xff, // data: null
            0xff, 0xff, 0xff, 0xff, // authinfo: null
        ];
        assert_eq!(got, want);
        assert_eq!(
            decode_quorum_packet(&got),
            Ok((QuorumPacket::bare(ACK, 0x1_0000_0002), 20))
        );
    }

    #[test]
    fn followerinfo_is_byte_exact() {
        // Learner.registerWithLeader: type FOLLOWERINFO, zxid makeZxid(acceptedEpoch, 0),
        // data = writeRecord(LearnerInfo(myId, 0x10000, qv.getVersion())), authinfo null.
        let li = LearnerInfo {
            sid: 3,
            protocol_version: ZAB_PROTOCOL_VERSION,
            config_version: Some(0),
        };
        let p = learner_info_packet(LearnerKind::Follower, 2, &li);
        let got = encode(&p);
        let mut want = vec![0, 0, 0, 11]; // FOLLOWERINFO
        want.extend_from_slice(&[0, 0, 0, 2, 0, 0, 0, 0]); // zxid = 2 << 32
        want.extend_from_slice(&[0, 0, 0, 20]); // data length
        want.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 3]); // serverid
        want.extend_from_slice(&[0, 1, 0, 0]); // protocolVersion 0x10000
        want.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]); // configVersion
        want.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]); // authinfo null
        assert_eq!(got, want);
        let (back, used) = decode_quorum_packet(&got).unwrap();
        assert_eq!((used, &back), (got.len(), &p));
        assert_eq!(
            decode_learner_info_packet(&back),
            Ok((LearnerKind::Follower, 2, li))
        );
        let obs = learner_info_packet(LearnerKind::Observer, 0, &li);
        assert_eq!(obs.packet_type, OBSERVERINFO);
        assert_eq!(
            decode_learner_info_packet(&obs).unwrap().0,
            LearnerKind::Observer
        );
    }

    #[test]
    fn older_learner_info_forms() {
        // LearnerHandler.run: >= 8 sid, >= 12 version, >= 20 configVersion.
        let full = encode_learner_info(&LearnerInfo {
            sid: 9,
            protocol_version: ZAB_PROTOCOL_VERSION,
            config_version: Some(0x1_0000_0000),
        });
        assert_eq!(full.len(), LEARNER_INFO_BYTES);
        assert_eq!(
            decode_learner_info(&full[..8]),
            Ok(LearnerInfo {
                sid: 9,
                protocol_version: LEARNER_PROTOCOL_VERSION_DEFAULT,
                config_version: None
            })
        );
        for n in 12..20 {
            assert_eq!(
                decode_learner_info(&full[..n]),
                Ok(LearnerInfo {
                    sid: 9,
                    protocol_version: ZAB_PROTOCOL_VERSION,
                    config_version: None
                }),
                "len {n}"
            );
        }
        let mut longer = full.clone();
        longer.extend_from_slice(b"ignored");
        assert_eq!(
            decode_learner_info(&longer).unwrap().config_version,
            Some(0x1_0000_0000)
        );
        for n in 0..8 {
            assert_eq!(decode_learner_info(&full[..n]), Err(WireError::Truncated));
        }
        assert!(matches!(
            decode_learner_info_packet(&QuorumPacket::bare(FOLLOWERINFO, 0)),
            Err(WireError::Invalid(_))
        ));
        assert!(matches!(
            decode_learner_info_packet(&QuorumPacket::with_data(ACK, 0, full)),
            Err(WireError::UnexpectedPacketType { got: ACK, .. })
        ));
    }

    #[test]
    fn leaderinfo_is_byte_exact() {
        // LearnerHandler.run: ByteBuffer.wrap(ver).putInt(0x10000);
        // new QuorumPacket(Leader.LEADERINFO, makeZxid(newEpoch, 0), ver, null).
        let p = leader_info_packet(1);
        let got = encode(&p);
        let want = [
            0, 0, 0, 17, // LEADERINFO
            0, 0, 0, 1, 0, 0, 0, 0, // zxid = 1 << 32
            0, 0, 0, 4, // data length
            0, 1, 0, 0, // 0x10000
            0xff, 0xff, 0xff, 0xff, // authinfo null
        ];
        assert_eq!(got, want);
        let (back, _) = decode_quorum_packet(&got).unwrap();
        assert_eq!(
            decode_leader_info(&back),
            Ok(LeaderInfo {
                new_epoch: 1,
                protocol_version: ZAB_PROTOCOL_VERSION
            })
        );
        assert!(decode_leader_info(&QuorumPacket::bare(LEADERINFO, 0)).is_err());
        assert!(
            decode_leader_info(&QuorumPacket::with_data(LEADERINFO, 0, vec![0, 1, 0])).is_err()
        );
        assert!(decode_leader_info(&QuorumPacket::with_data(NEWLEADER, 0, vec![0; 4])).is_err());
    }

    #[test]
    fn ackepoch_is_byte_exact() {
        // Learner.registerWithLeader: wrappedEpochBytes.putInt((int) currentEpoch) or putInt(-1);
        // new QuorumPacket(Leader.ACKEPOCH, lastLoggedZxid, epochBytes, null).
        let ack = AckEpoch {
            current_epoch: 2,
            last_logged_zxid: 0x2_0000_0009,
        };
        let got = encode(&ack_epoch_packet(&ack));
        let want = [
            0, 0, 0, 18, // ACKEPOCH
            0, 0, 0, 2, 0, 0, 0, 9, // lastLoggedZxid
            0, 0, 0, 4, // data length
            0, 0, 0, 2, // currentEpoch
            0xff, 0xff, 0xff, 0xff, // authinfo null
        ];
        assert_eq!(got, want);
        let (back, _) = decode_quorum_packet(&got).unwrap();
        assert_eq!(decode_ack_epoch(&back), Ok(ack));
        let already = AckEpoch {
            current_epoch: ACKEPOCH_ALREADY_ACCEPTED,
            last_logged_zxid: 5,
        };
        let p = ack_epoch_packet(&already);
        assert_eq!(p.data.as_deref(), Some(&[0xff, 0xff, 0xff, 0xff][..]));
        assert_eq!(decode_ack_epoch(&p), Ok(already));
    }

    #[test]
    fn newleader_carries_the_config_text() {
        let cfg = b"server.1=127.0.0.1:2888:3888:participant\nversion=0";
        let p = new_leader_packet(3, cfg);
        assert_eq!(p.zxid, 0x3_0000_0000);
        let (back, _) = decode_quorum_packet(&encode(&p)).unwrap();
        assert_eq!(decode_new_leader(&back), Ok((3, Some(&cfg[..]))));
        // Learner.syncWithLeader parses it only when longer than one byte.
        assert_eq!(
            decode_new_leader(&QuorumPacket::bare(NEWLEADER, 0)),
            Ok((0, None))
        );
        assert_eq!(
            decode_new_leader(&new_leader_packet(1, b"x")),
            Ok((1, None))
        );
    }

    #[test]
    fn request_with_authinfo_round_trips_byte_exact() {
        // Id.serialize: writeString(scheme) writeString(id), each int length + UTF-8.
        let p = QuorumPacket {
            packet_type: REQUEST,
            zxid: -1,
            data: Some(vec![]),
            authinfo: Some(vec![Id::new("ip", "1.2.3.4"), Id::new("", "")]),
        };
        let got = encode(&p);
        let mut want = vec![0, 0, 0, 1];
        want.extend_from_slice(&[0xff; 8]); // zxid -1
        want.extend_from_slice(&[0, 0, 0, 0]); // empty, not null, data
        want.extend_from_slice(&[0, 0, 0, 2]); // two ids
        want.extend_from_slice(&[0, 0, 0, 2, b'i', b'p', 0, 0, 0, 7]);
        want.extend_from_slice(b"1.2.3.4");
        want.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(got, want);
        assert_eq!(decode_quorum_packet(&got), Ok((p, want.len())));
        // Null strings inside an Id read as "".
        let mut nulls = vec![0, 0, 0, 1];
        nulls.extend_from_slice(&[0; 8]);
        nulls.extend_from_slice(&[0xff; 4]);
        nulls.extend_from_slice(&[0, 0, 0, 1]);
        nulls.extend_from_slice(&[0xff; 8]);
        let (q, _) = decode_quorum_packet(&nulls).unwrap();
        assert_eq!(q.authinfo, Some(vec![Id::new("", "")]));
    }

    #[test]
    fn stream_of_packets_decodes_one_by_one() {
        let mut stream = Vec::new();
        let packets = [
            leader_info_packet(4),
            QuorumPacket::bare(DIFF, 7),
            new_leader_packet(4, b"version=0"),
            QuorumPacket::bare(UPTODATE, -1),
        ];
        for p in &packets {
            encode_quorum_packet(p, &mut stream).unwrap();
        }
        let mut at = 0;
        for p in &packets {
            let (q, used) = decode_quorum_packet(&stream[at..]).unwrap();
            assert_eq!(&q, p);
            at += used;
        }
        assert_eq!(at, stream.len());
    }

    #[test]
    fn every_prefix_is_truncated() {
        let p = QuorumPacket {
            packet_type: PROPOSAL,
            zxid: 1,
            data: Some(b"txn".to_vec()),
            authinfo: Some(vec![Id::new("digest", "u:x")]),
        };
        let full = encode(&p);
        for n in 0..full.len() {
            assert_eq!(
                decode_quorum_packet(&full[..n]),
                Err(WireError::Truncated),
                "prefix {n}"
            );
        }
    }

    fn header_then(rest: &[u8]) -> Vec<u8> {
        let mut b = vec![0, 0, 0, 2];
        b.extend_from_slice(&[0; 8]);
        b.extend_from_slice(rest);
        b
    }

    #[test]
    fn oversized_and_negative_lengths_fail_without_waiting() {
        let too_big = (QUORUM_BUFFER_BYTES_MAX as i32 + 1).to_be_bytes();
        for len in [too_big, (-2i32).to_be_bytes(), i32::MIN.to_be_bytes()] {
            assert!(matches!(
                decode_quorum_packet(&header_then(&len)),
                Err(WireError::BadLength { .. })
            ));
        }
        // At the bound: only truncated.
        let at_max = (QUORUM_BUFFER_BYTES_MAX as i32).to_be_bytes();
        assert_eq!(
            decode_quorum_packet(&header_then(&at_max)),
            Err(WireError::Truncated)
        );
        let mut null_data = (-1i32).to_be_bytes().to_vec();
        for count in [-2i32, (QUORUM_AUTHINFO_IDS_MAX + 1) as i32, i32::MAX] {
            let mut b = null_data.clone();
            b.extend_from_slice(&count.to_be_bytes());
            assert!(matches!(
                decode_quorum_packet(&header_then(&b)),
                Err(WireError::BadLength { .. })
            ));
        }
        // An oversized string inside a vector that is not complete yet.
        null_data.extend_from_slice(&1000i32.to_be_bytes());
        null_data.extend_from_slice(&too_big);
        assert!(matches!(
            decode_quorum_packet(&header_then(&null_data)),
            Err(WireError::BadLength { .. })
        ));
        // Invalid UTF-8 in an Id.
        let mut bad_utf8 = (-1i32).to_be_bytes().to_vec();
        bad_utf8.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1, 0xff, 0, 0, 0, 0]);
        assert_eq!(
            decode_quorum_packet(&header_then(&bad_utf8)),
            Err(WireError::InvalidUtf8("authinfo scheme"))
        );
    }

    #[test]
    fn encoder_refuses_what_a_peer_would_refuse() {
        let big = QuorumPacket::with_data(PROPOSAL, 1, vec![0; QUORUM_BUFFER_BYTES_MAX + 1]);
        let mut out = Vec::new();
        assert!(encode_quorum_packet(&big, &mut out).is_err());
        assert!(out.is_empty());
        let many = QuorumPacket {
            authinfo: Some(vec![Id::new("ip", "x"); QUORUM_AUTHINFO_IDS_MAX + 1]),
            ..QuorumPacket::bare(REQUEST, -1)
        };
        assert!(encode_quorum_packet(&many, &mut out).is_err());
        assert!(out.is_empty());
    }

    #[test]
    fn garbage_never_panics() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for round in 0..20_000usize {
            let len = round % 61;
            let mut buf = Vec::with_capacity(len);
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // Mostly small bytes so lengths are often plausible.
                buf.push(if x.is_multiple_of(3) {
                    0xff
                } else {
                    (x % 5) as u8
                });
            }
            if let Ok((p, used)) = decode_quorum_packet(&buf) {
                assert!(used <= buf.len());
                let _ = decode_leader_info(&p);
                let _ = decode_ack_epoch(&p);
                let _ = decode_learner_info_packet(&p);
                let _ = decode_new_leader(&p);
            }
            let _ = decode_learner_info(&buf);
        }
    }
}

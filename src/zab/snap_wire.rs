//! ZooKeeper's DataTree serialization, as a SNAP sync streams it and as a
//! `snapshot.*` file holds it (zk-quorum.md sections 4.1 and 4.2):
//! ```text
//! [file] FileHeader{int "ZKSN", int version 2, long dbid}
//! int count; count x {long sessionId; int timeoutMs}        SerializeUtils.serializeSnapshot
//! int count; count x {long aclRef; vector<ACL>}             ReferenceCountedACLCache.serialize
//! {ustring path; buffer data; long aclRef; StatPersisted}*  DataTree.serializeNode, pre-order, root ""
//! ustring "/"                                               end of nodes
//! [SNAP] ustring "BenWasHere"                               LearnerHandler (signature)
//! [file] long adler32; ustring "/"                          SnapStream.sealStream
//! [file] [long zxid; int version; long digest; seal]        DataTree.serializeZxidDigest
//! [file] [long lastProcessedZxid; seal]                     3.9 serializeLastProcessedZxid
//! ```
//! The adler32 of a seal covers every byte of the file before it.
//!
//! [`SnapDecoder`] parses one record at a time from the front of a buffer
//! and [`SnapStream`] drives it over input chunks with a buffer of at most
//! one record plus one chunk (`limits::quorum::SNAP_RECORD_BYTES_MAX`), so a
//! snapshot never has to be in memory whole. [`load::SnapLoad`] feeds the
//! records to the tree's restore `Assembler`; [`encode::SnapEncoder`]
//! writes a tree version back as a SNAP stream or a snapshot file, chunk by chunk.
//!
//! cversion: ZooKeeper persists the number of child *creations*
//! (`StatPersisted.cversion`) and shows clients `2 * cversion -
//! numChildren` (`DataNode.copyStat`). Our `Stat.cversion` holds the
//! persisted meaning too (`tree::node::client_stat` translates for
//! clients), so the value is carried over unchanged in both directions;
//! dataLength and numChildren, which the stream does not hold, are
//! recomputed from the data and the child sets.
//!
//! Compressed snapshot files (`.gz`, `.snappy`) must be decompressed by the
//! caller; the checksums are over the uncompressed bytes.

pub mod encode;
pub mod load;

use adler2::Adler32;

use super::quorum_wire::bounded_buffer;
use super::txn_wire::check_len;
use super::WireError;
use crate::limits::quorum::{SNAP_FILE_TAIL_BYTES_MAX, SNAP_RECORD_BYTES_MAX};
use crate::limits::VECTOR_LEN_MAX;
use crate::proto::jute::{put_i32, put_i64, Reader};
use crate::proto::{Acl, Id, Stat};

/// `FileSnap.SNAP_MAGIC`: "ZKSN".
pub const SNAP_FILE_MAGIC: i32 = 0x5A4B_534E;
/// `FileSnap.VERSION`.
pub const SNAP_FILE_VERSION: i32 = 2;
/// Size of a `StatPersisted`.
pub const STAT_PERSISTED_BYTES: usize = 60;
/// The node path that ends the node list, and the ustring of every seal.
pub const END_OF_NODES: &str = "/";
/// What the leader writes after a SNAP's tree (`LearnerHandler.syncFollower`).
pub const SNAP_SIGNATURE: &str = "BenWasHere";
/// The aclRef of a node whose ACL list was null: `OPEN_ACL_UNSAFE`
/// (`ReferenceCountedACLCache.convertLong`).
pub const ACL_REF_OPEN_UNSAFE: i64 = -1;

/// An ACL's smallest encoding: perms and two empty strings.
const ACL_BYTES_MIN: usize = 12;

/// ZooKeeper's persisted node stat: a `Stat` without dataLength and numChildren.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatPersisted {
    pub czxid: i64,
    pub mzxid: i64,
    pub ctime: i64,
    pub mtime: i64,
    pub version: i32,
    /// Child creations (see the module comment).
    pub cversion: i32,
    pub aversion: i32,
    /// The session, or the container/TTL marker owners.
    pub ephemeral_owner: i64,
    pub pzxid: i64,
}

impl StatPersisted {
    /// Our stat; dataLength and numChildren are left 0 for the restore
    /// `Assembler` to fill in.
    pub fn to_stat(&self) -> Stat {
        Stat {
            czxid: self.czxid,
            mzxid: self.mzxid,
            ctime: self.ctime,
            mtime: self.mtime,
            version: self.version,
            cversion: self.cversion,
            aversion: self.aversion,
            ephemeral_owner: self.ephemeral_owner,
            data_length: 0,
            num_children: 0,
            pzxid: self.pzxid,
        }
    }

    pub fn from_stat(stat: &Stat) -> StatPersisted {
        StatPersisted {
            czxid: stat.czxid,
            mzxid: stat.mzxid,
            ctime: stat.ctime,
            mtime: stat.mtime,
            version: stat.version,
            cversion: stat.cversion,
            aversion: stat.aversion,
            ephemeral_owner: stat.ephemeral_owner,
            pzxid: stat.pzxid,
        }
    }

    fn read(r: &mut Reader<'_>) -> Result<StatPersisted, WireError> {
        if r.remaining() < STAT_PERSISTED_BYTES {
            return Err(WireError::Truncated);
        }
        Ok(StatPersisted {
            czxid: r.i64()?,
            mzxid: r.i64()?,
            ctime: r.i64()?,
            mtime: r.i64()?,
            version: r.i32()?,
            cversion: r.i32()?,
            aversion: r.i32()?,
            ephemeral_owner: r.i64()?,
            pzxid: r.i64()?,
        })
    }

    pub fn write(&self, out: &mut Vec<u8>) {
        put_i64(out, self.czxid);
        put_i64(out, self.mzxid);
        put_i64(out, self.ctime);
        put_i64(out, self.mtime);
        put_i32(out, self.version);
        put_i32(out, self.cversion);
        put_i32(out, self.aversion);
        put_i64(out, self.ephemeral_owner);
        put_i64(out, self.pzxid);
    }
}

/// One node as the stream lists it, borrowed from the input buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapNode<'a> {
    /// As written: "" for the root, "/a/b" below it.
    pub path: &'a str,
    pub data: Option<&'a [u8]>,
    pub acl_ref: i64,
    pub stat: StatPersisted,
}

/// The tree digest a snapshot file was sealed with (`DataTree.ZxidDigest`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ZxidDigest {
    pub zxid: i64,
    pub version: i32,
    pub digest: i64,
}

/// What follows the node list of a snapshot file (empty for a SNAP).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SnapTrailer {
    pub digest: Option<ZxidDigest>,
    /// 3.9's `lastProcessedZxid` section (the file name's zxid otherwise).
    pub last_processed_zxid: Option<i64>,
}

/// One record of the stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SnapItem<'a> {
    Session {
        session_id: i64,
        timeout_ms: i32,
    },
    /// An entry of the ACL cache: nodes refer to the list by `acl_ref`.
    AclList {
        acl_ref: i64,
        acl: Vec<Acl>,
    },
    Node(SnapNode<'a>),
    /// The end: signature or seals checked. Nothing may follow.
    End(SnapTrailer),
}

/// How the serialized tree is framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapFraming {
    /// After a SNAP packet on the quorum port: ends with "BenWasHere".
    Sync,
    /// A `snapshot.*` file (uncompressed): header, seals, digest.
    File,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    FileHeader,
    SessionCount,
    Sessions { left: u32 },
    AclCount,
    AclLists { left: u32 },
    Nodes,
    Signature,
    Seal,
    Tail,
    Done,
}

/// What one [`SnapDecoder::step`] consumed and produced. Header and count
/// records consume bytes without producing an item.
#[derive(Debug, PartialEq, Eq)]
pub struct Step<'a> {
    pub used: usize,
    pub item: Option<SnapItem<'a>>,
}

/// The record-at-a-time parser.
#[derive(Clone)]
pub struct SnapDecoder {
    framing: SnapFraming,
    state: State,
    /// Over every byte consumed so far (file framing).
    adler: Adler32,
}

impl SnapDecoder {
    pub fn new(framing: SnapFraming) -> SnapDecoder {
        let state = match framing {
            SnapFraming::Sync => State::SessionCount,
            SnapFraming::File => State::FileHeader,
        };
        SnapDecoder {
            framing,
            state,
            adler: Adler32::new(),
        }
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Parses the next record from the front of `buf`. `Truncated` means
    /// the record is incomplete (nothing was consumed): call again with
    /// more bytes. `eof` says `buf` holds all the input left; only a file's
    /// optional tail needs it.
    pub fn step<'a>(&mut self, buf: &'a [u8], eof: bool) -> Result<Step<'a>, WireError> {
        let mut r = Reader::new(buf);
        let (item, next) = self.parse(&mut r, eof)?;
        let used = buf.len() - r.remaining();
        self.adler.write_slice(&buf[..used]);
        self.state = next;
        Ok(Step { used, item })
    }

    fn parse<'a>(
        &self,
        r: &mut Reader<'a>,
        eof: bool,
    ) -> Result<(Option<SnapItem<'a>>, State), WireError> {
        Ok(match self.state {
            State::FileHeader => (None, read_file_header(r)?),
            State::SessionCount => match read_count(r, "session count")? {
                0 => (None, State::AclCount),
                left => (None, State::Sessions { left }),
            },
            State::Sessions { left } => {
                let item = SnapItem::Session {
                    session_id: r.i64()?,
                    timeout_ms: r.i32()?,
                };
                let next = match left - 1 {
                    0 => State::AclCount,
                    left => State::Sessions { left },
                };
                (Some(item), next)
            }
            State::AclCount => match read_count(r, "acl cache size")? {
                0 => (None, State::Nodes),
                left => (None, State::AclLists { left }),
            },
            State::AclLists { left } => {
                let item = SnapItem::AclList {
                    acl_ref: r.i64()?,
                    acl: read_acl_list(r)?,
                };
                let next = match left - 1 {
                    0 => State::Nodes,
                    left => State::AclLists { left },
                };
                (Some(item), next)
            }
            State::Nodes => self.parse_node(r)?,
            State::Signature => {
                if read_str(r, "snap signature")? != SNAP_SIGNATURE {
                    return Err(WireError::Invalid("SNAP without the BenWasHere signature"));
                }
                (Some(SnapItem::End(SnapTrailer::default())), State::Done)
            }
            State::Seal => {
                read_seal(r, self.adler.checksum())?;
                (None, State::Tail)
            }
            State::Tail => (Some(SnapItem::End(self.parse_tail(r, eof)?)), State::Done),
            State::Done => return Err(WireError::Invalid("bytes after the end of the snapshot")),
        })
    }

    fn parse_node<'a>(
        &self,
        r: &mut Reader<'a>,
    ) -> Result<(Option<SnapItem<'a>>, State), WireError> {
        let path = read_str(r, "snapshot path")?;
        if path == END_OF_NODES {
            let next = match self.framing {
                SnapFraming::Sync => State::Signature,
                SnapFraming::File => State::Seal,
            };
            return Ok((None, next));
        }
        let node = SnapNode {
            path,
            data: bounded_buffer(r, "snapshot node data")?,
            acl_ref: r.i64()?,
            stat: StatPersisted::read(r)?,
        };
        Ok((Some(SnapItem::Node(node)), State::Nodes))
    }

    /// The optional digest and lastProcessedZxid sections, each sealed.
    /// Which are present depends on the writer's settings, so each reading
    /// is tried and the seals' checksums decide.
    fn parse_tail(&self, r: &mut Reader<'_>, eof: bool) -> Result<SnapTrailer, WireError> {
        check_len("snapshot tail", r.remaining(), SNAP_FILE_TAIL_BYTES_MAX)?;
        if !eof {
            return Err(WireError::Truncated);
        }
        let tail = r.rest();
        let readings = [
            tail_reading(tail, self.adler, true, true),
            tail_reading(tail, self.adler, true, false),
            tail_reading(tail, self.adler, false, true),
            tail_reading(tail, self.adler, false, false),
        ];
        let trailer = readings
            .into_iter()
            .find_map(Result::ok)
            .ok_or(WireError::Invalid("snapshot tail matches no known layout"))?;
        *r = Reader::new(&[]);
        Ok(trailer)
    }
}

/// The tail read with the given sections present; must use all of it.
fn tail_reading(
    tail: &[u8],
    mut adler: Adler32,
    with_digest: bool,
    with_last_zxid: bool,
) -> Result<SnapTrailer, WireError> {
    let mut r = Reader::new(tail);
    let mut trailer = SnapTrailer::default();
    if with_digest {
        trailer.digest = Some(read_sealed(&mut r, &mut adler, read_zxid_digest)?);
    }
    if with_last_zxid {
        trailer.last_processed_zxid = Some(read_sealed(&mut r, &mut adler, |r| Ok(r.i64()?))?);
    }
    if !r.is_empty() {
        return Err(WireError::Invalid("bytes after the snapshot's last seal"));
    }
    Ok(trailer)
}

/// A section followed by its seal, checked against `adler` (which is
/// advanced over both).
fn read_sealed<'a, T>(
    r: &mut Reader<'a>,
    adler: &mut Adler32,
    section: impl FnOnce(&mut Reader<'a>) -> Result<T, WireError>,
) -> Result<T, WireError> {
    let start = r.rest();
    let value = section(r)?;
    adler.write_slice(&start[..start.len() - r.remaining()]);
    let seal_start = r.rest();
    read_seal(r, adler.checksum())?;
    adler.write_slice(&seal_start[..seal_start.len() - r.remaining()]);
    Ok(value)
}

/// `SnapStream.checkSealIntegrity`: `long checksum; ustring "/"`.
fn read_seal(r: &mut Reader<'_>, expected: u32) -> Result<(), WireError> {
    let sealed = r.i64()?;
    if read_str(r, "seal")? != END_OF_NODES {
        return Err(WireError::Invalid("seal without its \"/\""));
    }
    if sealed != i64::from(expected) {
        return Err(WireError::Invalid("snapshot checksum mismatch"));
    }
    Ok(())
}

/// `ZxidDigest.deserialize`: versions below 2 hold the digest as hex text.
fn read_zxid_digest(r: &mut Reader<'_>) -> Result<ZxidDigest, WireError> {
    let zxid = r.i64()?;
    let version = r.i32()?;
    let digest = if version < 2 {
        match bounded_buffer(r, "snapshot digest")? {
            None => 0,
            Some(hex) => std::str::from_utf8(hex)
                .ok()
                .and_then(|s| i64::from_str_radix(s, 16).ok())
                .ok_or(WireError::Invalid("snapshot digest is not hex"))?,
        }
    } else {
        r.i64()?
    };
    Ok(ZxidDigest {
        zxid,
        version,
        digest,
    })
}

/// `FileHeader`; Java checks neither the version nor the dbid.
fn read_file_header(r: &mut Reader<'_>) -> Result<State, WireError> {
    if r.i32()? != SNAP_FILE_MAGIC {
        return Err(WireError::Invalid("not a ZooKeeper snapshot (bad magic)"));
    }
    let _version = r.i32()?;
    let _db_id = r.i64()?;
    Ok(State::SessionCount)
}

/// A count of records that follow; Java reads a negative one as 0, but
/// never writes one.
fn read_count(r: &mut Reader<'_>, what: &'static str) -> Result<u32, WireError> {
    let n = r.i32()?;
    u32::try_from(n).map_err(|_| WireError::BadLength {
        what,
        len: i64::from(n),
        max: i32::MAX as usize,
    })
}

/// `vector<ACL>` of the ACL cache; a null vector is refused, as Java does.
fn read_acl_list(r: &mut Reader<'_>) -> Result<Vec<Acl>, WireError> {
    let n = r.i32()?;
    if n < 0 {
        return Err(WireError::Invalid("null ACL list in the ACL cache"));
    }
    let n = n as usize;
    check_len(
        "acl list",
        n,
        VECTOR_LEN_MAX.min(SNAP_RECORD_BYTES_MAX / ACL_BYTES_MIN),
    )?;
    if n > r.remaining() / ACL_BYTES_MIN {
        return Err(WireError::Truncated);
    }
    let mut acl = Vec::with_capacity(n);
    for _ in 0..n {
        let perms = r.i32()?;
        let scheme = read_opt_str(r, "acl scheme")?;
        let id = read_opt_str(r, "acl id")?;
        acl.push(Acl {
            perms,
            id: Id::new(scheme, id),
        });
    }
    Ok(acl)
}

fn read_str<'a>(r: &mut Reader<'a>, what: &'static str) -> Result<&'a str, WireError> {
    let bytes = bounded_buffer(r, what)?.ok_or(WireError::Invalid("null string in a snapshot"))?;
    std::str::from_utf8(bytes).map_err(|_| WireError::InvalidUtf8(what))
}

/// A nullable string, null read as "" (as `Reader::id` does for ACL ids).
fn read_opt_str<'a>(r: &mut Reader<'a>, what: &'static str) -> Result<&'a str, WireError> {
    match bounded_buffer(r, what)? {
        None => Ok(""),
        Some(bytes) => std::str::from_utf8(bytes).map_err(|_| WireError::InvalidUtf8(what)),
    }
}

/// Drives a [`SnapDecoder`] over input chunks, holding at most one
/// incomplete record plus the chunk being parsed.
pub struct SnapStream {
    decoder: SnapDecoder,
    /// Bytes of an incomplete record carried over to the next chunk.
    pending: Vec<u8>,
}

impl SnapStream {
    pub fn new(framing: SnapFraming) -> SnapStream {
        SnapStream {
            decoder: SnapDecoder::new(framing),
            pending: Vec::new(),
        }
    }

    pub fn is_done(&self) -> bool {
        self.decoder.is_done()
    }

    /// Once done: the input that followed the stream (after a SNAP, the
    /// next quorum packets).
    pub fn rest(&self) -> &[u8] {
        if self.decoder.is_done() {
            &self.pending
        } else {
            &[]
        }
    }

    /// Decodes every complete record of the input so far, passing each
    /// item to `sink`. Input after the end is kept for [`SnapStream::rest`].
    pub fn push(
        &mut self,
        chunk: &[u8],
        sink: &mut impl FnMut(SnapItem<'_>) -> Result<(), WireError>,
    ) -> Result<(), WireError> {
        self.run(chunk, false, sink)
    }

    /// The input has ended: decodes what is left and fails unless the
    /// stream was complete.
    pub fn finish(
        &mut self,
        sink: &mut impl FnMut(SnapItem<'_>) -> Result<(), WireError>,
    ) -> Result<(), WireError> {
        if !self.decoder.is_done() {
            self.run(&[], true, sink)?;
        }
        Ok(())
    }

    fn run(
        &mut self,
        chunk: &[u8],
        eof: bool,
        sink: &mut impl FnMut(SnapItem<'_>) -> Result<(), WireError>,
    ) -> Result<(), WireError> {
        // Parse the chunk in place unless a record is pending.
        let mut carried = std::mem::take(&mut self.pending);
        let input: &[u8] = if carried.is_empty() {
            chunk
        } else {
            carried.extend_from_slice(chunk);
            &carried
        };
        let mut at = 0;
        while !self.decoder.is_done() {
            match self.decoder.step(&input[at..], eof) {
                Ok(step) => {
                    at += step.used;
                    if let Some(item) = step.item {
                        sink(item)?;
                    }
                }
                Err(WireError::Truncated) if !eof => break,
                Err(WireError::Truncated) => return Err(WireError::Invalid("snapshot ends early")),
                Err(e) => return Err(e),
            }
        }
        let rest = &input[at..];
        if !self.decoder.is_done() {
            check_len("snapshot record", rest.len(), SNAP_RECORD_BYTES_MAX)?;
        }
        let mut pending = Vec::with_capacity(rest.len());
        pending.extend_from_slice(rest);
        self.pending = pending;
        Ok(())
    }
}

#[cfg(test)]
#[path = "snap_wire/tests.rs"]
mod tests;

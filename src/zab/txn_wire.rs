//! Txns as ZooKeeper 3.8/3.9 serialize them: the data of a PROPOSAL or
//! INFORM packet and the body of a `log.*` record (zk-quorum.md section 5).
//!
//! ```text
//! TxnHeader{long clientId, int cxid, long zxid, long time, int type}   32 bytes
//! record chosen by type (zookeeper.jute, module org.apache.zookeeper.txn)
//! [TxnDigest{int version, long treeDigest}]                            absent = EOF
//! ```
//! (`Util.marshallTxnEntry` writes them; `SerializeUtils.deserializeTxn`
//! reads them; `DataTree.processTxn` applies them.)
//!
//! Two layers:
//! - [`ZkRecord`] holds a record exactly as the generated Java class does,
//!   so decoding and re-encoding reproduces the bytes (create vs create2,
//!   delete vs deleteContainer, setData vs reconfig, the sub-records of a
//!   failed multi, closeSession's path list).
//! - [`ZkRecord::to_op`] / [`ZkRecord::from_op`] map to and from our
//!   [`TxnOp`], which keeps only what applying needs. The mapping loses
//!   nothing `DataTree.processTxn` looks at; the comments at each variant say
//!   what it drops and why that is safe.
//!
//! Every length is checked against `limits::quorum` (or against the input
//! left) before anything is sliced or allocated; bad input is a
//! [`WireError`], never a panic.

use bytes::Bytes;

use super::quorum_wire::bounded_buffer;
use super::WireError;
use crate::limits::quorum::QUORUM_BUFFER_BYTES_MAX;
use crate::proto::jute::{put_acl_vec, put_bool, put_buffer, put_i32, put_i64, Reader};
use crate::proto::{op, Acl, ErrorCode, CONTAINER_EPHEMERAL_OWNER, TTL_MAX_MS};
use crate::tree::node::ttl_owner;
use crate::tree::{path, CreateKind, Data, DataTree, NodeKind, TxnHeader, TxnOp};

/// Size of a `TxnHeader`.
pub const TXN_HEADER_BYTES: usize = 32;
/// Size of a `TxnDigest`.
pub const TXN_DIGEST_BYTES: usize = 12;
/// The digest version 3.6+ write (`DigestCalculator.DIGEST_VERSION`).
pub const TXN_DIGEST_VERSION: i32 = 2;

/// Smallest encodings, used to reject counts the input cannot hold before
/// sizing a `Vec`: a multi's `Txn{int type, buffer data}` and a ustring.
const SUB_TXN_BYTES_MIN: usize = 8;
const USTRING_BYTES_MIN: usize = 4;

/// The tree digest after the txn, as the leader precomputed it
/// (`PrepRequestProcessor.precalculateDigest`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxnDigest {
    pub version: i32,
    pub tree_digest: i64,
}

/// One txn as a ZooKeeper peer sends or logs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZkTxn {
    /// The header's `type` is not stored: it is [`ZkRecord::txn_type`].
    pub header: TxnHeader,
    pub record: ZkRecord,
    pub digest: Option<TxnDigest>,
}

/// A txn record as ZooKeeper's generated classes hold it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ZkRecord {
    /// create (1) or create2 (15): `CreateTxn`. `parent_cversion` is None
    /// for a `CreateTxnV0` (pre-3.3 logs; read, never written), which
    /// applies with -1: "parent's cversion + 1" (`DataTree.createNode`).
    Create {
        create2: bool,
        path: String,
        data: Data,
        acl: Vec<Acl>,
        /// Owner = the header's clientId (`DataTree.processTxn`).
        ephemeral: bool,
        parent_cversion: Option<i32>,
    },
    /// createContainer (19): `CreateContainerTxn`; owner 0x8000000000000000.
    CreateContainer {
        path: String,
        data: Data,
        acl: Vec<Acl>,
        parent_cversion: i32,
    },
    /// createTTL (21): `CreateTTLTxn`; owner `EphemeralType.TTL.toEphemeralOwner(ttl)`.
    CreateTtl {
        path: String,
        data: Data,
        acl: Vec<Acl>,
        parent_cversion: i32,
        ttl_ms: i64,
    },
    /// delete (2) or deleteContainer (20, from the leader's reaper): `DeleteTxn`.
    Delete { container: bool, path: String },
    /// setData (5) or reconfig (16, the new config on /zookeeper/config): `SetDataTxn`.
    SetData {
        reconfig: bool,
        path: String,
        data: Data,
        version: i32,
    },
    /// setACL (7): `SetACLTxn`.
    SetAcl {
        path: String,
        acl: Vec<Acl>,
        version: i32,
    },
    /// check (13): `CheckVersionTxn`, only inside a multi. `version` is the
    /// node's version + 1 (`PrepRequestProcessor.checkAndIncVersion`, as for
    /// setData); nothing reads it back.
    Check { path: String, version: i32 },
    /// multi (14): `MultiTxn`, each sub-record wrapped in `Txn{type, data}`.
    Multi(Vec<ZkRecord>),
    /// createSession (-10): `CreateSessionTxn`.
    CreateSession { timeout_ms: i32 },
    /// closeSession (-11): `CloseSessionTxn`; None when the record is absent
    /// (`zookeeper.closeSessionTxn.enabled=false`, or before 3.6).
    CloseSession { paths: Option<Vec<String>> },
    /// error (-1): `ErrorTxn`, the KeeperException code.
    Error(i32),
}

impl ZkRecord {
    /// The `TxnHeader.type` (and multi `Txn.type`) of this record.
    pub fn txn_type(&self) -> i32 {
        match self {
            ZkRecord::Create { create2: false, .. } => op::CREATE,
            ZkRecord::Create { create2: true, .. } => op::CREATE2,
            ZkRecord::CreateContainer { .. } => op::CREATE_CONTAINER,
            ZkRecord::CreateTtl { .. } => op::CREATE_TTL,
            ZkRecord::Delete {
                container: false, ..
            } => op::DELETE,
            ZkRecord::Delete {
                container: true, ..
            } => op::DELETE_CONTAINER,
            ZkRecord::SetData {
                reconfig: false, ..
            } => op::SET_DATA,
            ZkRecord::SetData { reconfig: true, .. } => op::RECONFIG,
            ZkRecord::SetAcl { .. } => op::SET_ACL,
            ZkRecord::Check { .. } => op::CHECK,
            ZkRecord::Multi(_) => op::MULTI,
            ZkRecord::CreateSession { .. } => op::CREATE_SESSION,
            ZkRecord::CloseSession { .. } => op::CLOSE_SESSION,
            ZkRecord::Error(_) => op::ERROR,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Decoding

/// Decodes one whole txn (a PROPOSAL's data or a log record's bytes).
pub fn decode_txn(bytes: &[u8]) -> Result<ZkTxn, WireError> {
    check_len("txn", bytes.len(), QUORUM_BUFFER_BYTES_MAX)?;
    let mut r = Reader::new(bytes);
    let (header, txn_type) = read_header(&mut r)?;
    let record = read_top_record(&mut r, txn_type)?;
    let digest = read_digest(&mut r)?;
    Ok(ZkTxn {
        header,
        record,
        digest,
    })
}

/// [`decode_txn`] mapped to our txn (see [`ZkRecord::to_op`]).
pub fn decode_txn_op(bytes: &[u8]) -> Result<(TxnHeader, TxnOp, Option<TxnDigest>), WireError> {
    let txn = decode_txn(bytes)?;
    let op = txn.record.to_op(&txn.header)?;
    Ok((txn.header, op, txn.digest))
}

fn read_header(r: &mut Reader<'_>) -> Result<(TxnHeader, i32), WireError> {
    let header = TxnHeader {
        session_id: r.i64()?,
        cxid: r.i32()?,
        zxid: r.i64()?,
        time_ms: r.i64()?,
    };
    Ok((header, r.i32()?))
}

/// The record after the header, with `SerializeUtils.deserializeTxn`'s two
/// fallbacks: a create that runs out of bytes is read as `CreateTxnV0`; a
/// closeSession whose bytes are no `CloseSessionTxn` (optionally followed by
/// a digest) has no record. Java falls back only on EOF and leaves the
/// stream where the failed read stopped, so it takes a record-less
/// closeSession's digest for a path list; we rewind and keep the digest.
fn read_top_record(r: &mut Reader<'_>, txn_type: i32) -> Result<ZkRecord, WireError> {
    let start = r.clone();
    match (txn_type, read_record(r, txn_type)) {
        (op::CREATE, Err(WireError::Truncated)) => {
            *r = start;
            read_create_v0(r)
        }
        (op::CLOSE_SESSION, Ok(record)) if matches!(r.remaining(), 0 | TXN_DIGEST_BYTES) => {
            Ok(record)
        }
        (op::CLOSE_SESSION, _) => {
            *r = start;
            Ok(ZkRecord::CloseSession { paths: None })
        }
        (op::CHECK, Ok(_)) => Err(WireError::Invalid("check txn outside a multi")),
        (_, result) => result,
    }
}

/// Any record by its type; a multi's sub-records go through [`read_sub_record`].
fn read_record(r: &mut Reader<'_>, txn_type: i32) -> Result<ZkRecord, WireError> {
    Ok(match txn_type {
        op::CREATE | op::CREATE2 => read_create(r, txn_type == op::CREATE2)?,
        op::CREATE_CONTAINER => ZkRecord::CreateContainer {
            path: read_path(r)?,
            data: read_data(r)?,
            acl: r.acl_vec()?,
            parent_cversion: r.i32()?,
        },
        op::CREATE_TTL => ZkRecord::CreateTtl {
            path: read_path(r)?,
            data: read_data(r)?,
            acl: r.acl_vec()?,
            parent_cversion: r.i32()?,
            ttl_ms: r.i64()?,
        },
        op::DELETE | op::DELETE_CONTAINER => ZkRecord::Delete {
            container: txn_type == op::DELETE_CONTAINER,
            path: read_path(r)?,
        },
        op::SET_DATA | op::RECONFIG => ZkRecord::SetData {
            reconfig: txn_type == op::RECONFIG,
            path: read_path(r)?,
            data: read_data(r)?,
            version: r.i32()?,
        },
        op::SET_ACL => ZkRecord::SetAcl {
            path: read_path(r)?,
            acl: r.acl_vec()?,
            version: r.i32()?,
        },
        op::CHECK => ZkRecord::Check {
            path: read_path(r)?,
            version: r.i32()?,
        },
        op::MULTI => ZkRecord::Multi(read_multi(r)?),
        op::CREATE_SESSION => ZkRecord::CreateSession {
            timeout_ms: r.i32()?,
        },
        op::CLOSE_SESSION => ZkRecord::CloseSession {
            paths: Some(read_paths(r)?),
        },
        op::ERROR => ZkRecord::Error(r.i32()?),
        _ => return Err(WireError::Invalid("unsupported txn type")),
    })
}

fn read_create(r: &mut Reader<'_>, create2: bool) -> Result<ZkRecord, WireError> {
    Ok(ZkRecord::Create {
        create2,
        path: read_path(r)?,
        data: read_data(r)?,
        acl: r.acl_vec()?,
        ephemeral: r.bool()?,
        parent_cversion: Some(r.i32()?),
    })
}

fn read_create_v0(r: &mut Reader<'_>) -> Result<ZkRecord, WireError> {
    Ok(ZkRecord::Create {
        create2: false,
        path: read_path(r)?,
        data: read_data(r)?,
        acl: r.acl_vec()?,
        ephemeral: r.bool()?,
        parent_cversion: None,
    })
}

/// `MultiTxn`: the sub-record types `DataTree.processTxn` accepts.
fn read_multi(r: &mut Reader<'_>) -> Result<Vec<ZkRecord>, WireError> {
    let count = r.vec_len(SUB_TXN_BYTES_MIN)?;
    let mut records = Vec::with_capacity(count);
    for _ in 0..count {
        let sub_type = r.i32()?;
        let data =
            bounded_buffer(r, "multi sub-txn")?.ok_or(WireError::Invalid("null multi sub-txn"))?;
        records.push(read_sub_record(data, sub_type)?);
    }
    Ok(records)
}

fn read_sub_record(data: &[u8], sub_type: i32) -> Result<ZkRecord, WireError> {
    if !is_multi_sub_type(sub_type) {
        return Err(WireError::Invalid("txn type not allowed in a multi"));
    }
    let mut sub = Reader::new(data);
    // The sub-record's bytes were complete: running out is corruption.
    let record = read_record(&mut sub, sub_type).map_err(|e| match e {
        WireError::Truncated => WireError::Invalid("truncated multi sub-txn"),
        other => other,
    })?;
    if !sub.is_empty() {
        return Err(WireError::Invalid("trailing bytes in a multi sub-txn"));
    }
    Ok(record)
}

/// The types `DataTree.processTxn` decodes inside a multi.
fn is_multi_sub_type(txn_type: i32) -> bool {
    matches!(
        txn_type,
        op::CREATE
            | op::CREATE2
            | op::CREATE_TTL
            | op::CREATE_CONTAINER
            | op::DELETE
            | op::DELETE_CONTAINER
            | op::SET_DATA
            | op::ERROR
            | op::CHECK
    )
}

/// The optional digest; Java stops at EOF and ignores what follows, we
/// reject anything but nothing or exactly one digest.
fn read_digest(r: &mut Reader<'_>) -> Result<Option<TxnDigest>, WireError> {
    match r.remaining() {
        0 => Ok(None),
        TXN_DIGEST_BYTES => Ok(Some(TxnDigest {
            version: r.i32()?,
            tree_digest: r.i64()?,
        })),
        _ => Err(WireError::Invalid("trailing bytes after the txn")),
    }
}

fn read_path(r: &mut Reader<'_>) -> Result<String, WireError> {
    bounded_buffer(r, "txn path")?
        .ok_or(WireError::Invalid("null path in a txn"))
        .and_then(|b| utf8(b, "txn path"))
}

fn read_data(r: &mut Reader<'_>) -> Result<Data, WireError> {
    Ok(bounded_buffer(r, "txn data")?.map(Bytes::copy_from_slice))
}

/// `vector<ustring>` of paths (closeSession's `paths2Delete`).
fn read_paths(r: &mut Reader<'_>) -> Result<Vec<String>, WireError> {
    let count = r.vec_len(USTRING_BYTES_MIN)?;
    let mut paths = Vec::with_capacity(count);
    for _ in 0..count {
        paths.push(read_path(r)?);
    }
    Ok(paths)
}

fn utf8(bytes: &[u8], what: &'static str) -> Result<String, WireError> {
    std::str::from_utf8(bytes)
        .map(str::to_owned)
        .map_err(|_| WireError::InvalidUtf8(what))
}

pub(super) fn check_len(what: &'static str, len: usize, max: usize) -> Result<(), WireError> {
    if len > max {
        return Err(WireError::BadLength {
            what,
            len: i64::try_from(len).unwrap_or(i64::MAX),
            max,
        });
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Encoding

/// Appends `txn` as `Util.marshallTxnEntry` writes it. Fails, writing
/// nothing, on a record ZooKeeper would not read (a check or a multi
/// sub-record type outside a multi's allowed set, a field or a whole txn
/// larger than the quorum bound).
pub fn encode_txn(txn: &ZkTxn, out: &mut Vec<u8>) -> Result<(), WireError> {
    if matches!(txn.record, ZkRecord::Check { .. }) {
        return Err(WireError::Invalid("check txn outside a multi"));
    }
    let start = out.len();
    let written = write_txn(txn, out)
        .and_then(|()| check_len("txn", out.len() - start, QUORUM_BUFFER_BYTES_MAX));
    if written.is_err() {
        out.truncate(start);
    }
    written
}

/// Our txn as a ZooKeeper leader would propose it (see [`ZkRecord::from_op`]).
pub fn encode_txn_op(
    header: &TxnHeader,
    op: &TxnOp,
    tree: &DataTree,
    digest: Option<TxnDigest>,
    out: &mut Vec<u8>,
) -> Result<(), WireError> {
    let txn = ZkTxn {
        header: *header,
        record: ZkRecord::from_op(header, op, tree)?,
        digest,
    };
    encode_txn(&txn, out)
}

fn write_txn(txn: &ZkTxn, out: &mut Vec<u8>) -> Result<(), WireError> {
    put_i64(out, txn.header.session_id);
    put_i32(out, txn.header.cxid);
    put_i64(out, txn.header.zxid);
    put_i64(out, txn.header.time_ms);
    put_i32(out, txn.record.txn_type());
    write_record(&txn.record, out)?;
    if let Some(digest) = txn.digest {
        put_i32(out, digest.version);
        put_i64(out, digest.tree_digest);
    }
    Ok(())
}

fn write_record(record: &ZkRecord, out: &mut Vec<u8>) -> Result<(), WireError> {
    match record {
        ZkRecord::Create {
            path,
            data,
            acl,
            ephemeral,
            parent_cversion,
            ..
        } => {
            write_node_fields(path, data, acl, out)?;
            put_bool(out, *ephemeral);
            if let Some(cversion) = parent_cversion {
                put_i32(out, *cversion);
            }
        }
        ZkRecord::CreateContainer {
            path,
            data,
            acl,
            parent_cversion,
        } => {
            write_node_fields(path, data, acl, out)?;
            put_i32(out, *parent_cversion);
        }
        ZkRecord::CreateTtl {
            path,
            data,
            acl,
            parent_cversion,
            ttl_ms,
        } => {
            write_node_fields(path, data, acl, out)?;
            put_i32(out, *parent_cversion);
            put_i64(out, *ttl_ms);
        }
        ZkRecord::Delete { path, .. } => put_field(out, "txn path", Some(path.as_bytes()))?,
        ZkRecord::SetData {
            path,
            data,
            version,
            ..
        } => {
            put_field(out, "txn path", Some(path.as_bytes()))?;
            put_field(out, "txn data", data.as_deref())?;
            put_i32(out, *version);
        }
        ZkRecord::SetAcl { path, acl, version } => {
            put_field(out, "txn path", Some(path.as_bytes()))?;
            put_acls(out, acl)?;
            put_i32(out, *version);
        }
        ZkRecord::Check { path, version } => {
            put_field(out, "txn path", Some(path.as_bytes()))?;
            put_i32(out, *version);
        }
        ZkRecord::Multi(records) => write_multi(records, out)?,
        ZkRecord::CreateSession { timeout_ms } => put_i32(out, *timeout_ms),
        ZkRecord::CloseSession { paths: None } => {}
        ZkRecord::CloseSession { paths: Some(paths) } => {
            put_count(out, "paths2Delete", paths.len())?;
            for p in paths {
                put_field(out, "txn path", Some(p.as_bytes()))?;
            }
        }
        ZkRecord::Error(code) => put_i32(out, *code),
    }
    Ok(())
}

fn write_node_fields(
    node_path: &str,
    data: &Data,
    acl: &[Acl],
    out: &mut Vec<u8>,
) -> Result<(), WireError> {
    put_field(out, "txn path", Some(node_path.as_bytes()))?;
    put_field(out, "txn data", data.as_deref())?;
    put_acls(out, acl)
}

/// Each sub-record serialized on its own, then wrapped as `Txn{type, data}`
/// (`PrepRequestProcessor.pRequest`, case multi).
fn write_multi(records: &[ZkRecord], out: &mut Vec<u8>) -> Result<(), WireError> {
    put_count(out, "multi ops", records.len())?;
    let mut sub = Vec::new();
    for record in records {
        if !is_multi_sub_type(record.txn_type()) {
            return Err(WireError::Invalid("txn type not allowed in a multi"));
        }
        sub.clear();
        write_record(record, &mut sub)?;
        put_i32(out, record.txn_type());
        put_field(out, "multi sub-txn", Some(&sub))?;
    }
    Ok(())
}

/// A buffer or ustring, refused (instead of the panic of an over-long jute
/// length) when larger than a peer would read.
fn put_field(out: &mut Vec<u8>, what: &'static str, bytes: Option<&[u8]>) -> Result<(), WireError> {
    if let Some(b) = bytes {
        check_len(what, b.len(), QUORUM_BUFFER_BYTES_MAX)?;
    }
    put_buffer(out, bytes);
    Ok(())
}

fn put_count(out: &mut Vec<u8>, what: &'static str, count: usize) -> Result<(), WireError> {
    check_len(what, count, crate::limits::VECTOR_LEN_MAX)?;
    put_i32(out, count as i32);
    Ok(())
}

fn put_acls(out: &mut Vec<u8>, acl: &[Acl]) -> Result<(), WireError> {
    check_len("acl count", acl.len(), crate::limits::VECTOR_LEN_MAX)?;
    for entry in acl {
        check_len("acl scheme", entry.id.scheme.len(), QUORUM_BUFFER_BYTES_MAX)?;
        check_len("acl id", entry.id.id.len(), QUORUM_BUFFER_BYTES_MAX)?;
    }
    put_acl_vec(out, acl);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Mapping to and from our txns

impl ZkRecord {
    /// Our txn for this record, as `DataTree.processTxn` would apply it.
    ///
    /// Dropped, because applying does not depend on them: create vs create2
    /// only decides the reply (kept as the `CreateKind`); deleteContainer
    /// deletes like delete; reconfig writes /zookeeper/config like setData
    /// (activating a config is the quorum layer's business, which reads
    /// [`ZkRecord::txn_type`]); closeSession's path list, because
    /// `killSession` deletes the listed paths and then every other ephemeral
    /// of the session, and the list is the session's ephemerals when the
    /// leader prepared it. A failed multi (any sub-record an error) becomes
    /// the per-op codes processTxn gives: each error's code, Ok for the real
    /// records before the first error, RuntimeInconsistency after it.
    pub fn to_op(&self, header: &TxnHeader) -> Result<TxnOp, WireError> {
        Ok(match self {
            ZkRecord::Create {
                create2,
                path,
                data,
                acl,
                ephemeral,
                parent_cversion,
            } => TxnOp::Create {
                path: path.clone(),
                data: data.clone(),
                acl: acl.clone(),
                ephemeral_owner: if *ephemeral { header.session_id } else { 0 },
                parent_cversion: parent_cversion.unwrap_or(-1),
                kind: if *create2 {
                    CreateKind::Create2
                } else {
                    CreateKind::Create
                },
            },
            ZkRecord::CreateContainer {
                path,
                data,
                acl,
                parent_cversion,
            } => TxnOp::Create {
                path: path.clone(),
                data: data.clone(),
                acl: acl.clone(),
                ephemeral_owner: CONTAINER_EPHEMERAL_OWNER,
                parent_cversion: *parent_cversion,
                kind: CreateKind::Container,
            },
            ZkRecord::CreateTtl {
                path,
                data,
                acl,
                parent_cversion,
                ttl_ms,
            } => TxnOp::Create {
                path: path.clone(),
                data: data.clone(),
                acl: acl.clone(),
                ephemeral_owner: ttl_owner_checked(*ttl_ms)?,
                parent_cversion: *parent_cversion,
                kind: CreateKind::Ttl,
            },
            ZkRecord::Delete { path, .. } => TxnOp::Delete { path: path.clone() },
            ZkRecord::SetData {
                path,
                data,
                version,
                ..
            } => TxnOp::SetData {
                path: path.clone(),
                data: data.clone(),
                version: *version,
            },
            ZkRecord::SetAcl { path, acl, version } => TxnOp::SetAcl {
                path: path.clone(),
                acl: acl.clone(),
                version: *version,
            },
            ZkRecord::Check { path, version } => TxnOp::Check {
                path: path.clone(),
                version: version.wrapping_sub(1),
            },
            ZkRecord::Multi(records) => multi_to_op(header, records)?,
            ZkRecord::CreateSession { timeout_ms } => TxnOp::CreateSession {
                timeout_ms: *timeout_ms,
            },
            ZkRecord::CloseSession { .. } => TxnOp::CloseSession,
            ZkRecord::Error(code) => TxnOp::Error(error_code(*code)?),
        })
    }

    /// The record a ZooKeeper leader writes for our txn. `tree` is the tree
    /// the txn was prepared against: closeSession lists its session's
    /// ephemerals from it (sorted; Java lists a HashSet, so readers accept
    /// any order).
    ///
    /// A failed multi is written with an `ErrorTxn` per op (Ok, then the
    /// failing code, then RuntimeInconsistency): Java's leader writes the
    /// real records before the failure, but every reader applies those as
    /// `ErrorTxn(0)` (`DataTree.processTxn`), so the result is the same and
    /// our `TxnOp` need not keep them. Deletes are written as delete (also
    /// for containers: they apply alike) and setData as setData (reconfig is
    /// disabled in Ferrokeeper). Fails for what ZooKeeper cannot express:
    /// an ephemeral owned by another session than the header's, a create
    /// whose owner does not match its kind.
    pub fn from_op(header: &TxnHeader, op: &TxnOp, tree: &DataTree) -> Result<ZkRecord, WireError> {
        Ok(match op {
            TxnOp::Create { .. } => create_from_op(header, op)?,
            TxnOp::Delete { path } => ZkRecord::Delete {
                container: false,
                path: path.clone(),
            },
            TxnOp::SetData {
                path,
                data,
                version,
            } => ZkRecord::SetData {
                reconfig: false,
                path: path.clone(),
                data: data.clone(),
                version: *version,
            },
            TxnOp::SetAcl { path, acl, version } => ZkRecord::SetAcl {
                path: path.clone(),
                acl: acl.clone(),
                version: *version,
            },
            TxnOp::Check { path, version } => ZkRecord::Check {
                path: path.clone(),
                version: version.wrapping_add(1),
            },
            TxnOp::Multi(ops) => ZkRecord::Multi(
                ops.iter()
                    .map(|sub| ZkRecord::from_op(header, sub, tree))
                    .collect::<Result<_, _>>()?,
            ),
            TxnOp::CreateSession { timeout_ms } => ZkRecord::CreateSession {
                timeout_ms: *timeout_ms,
            },
            TxnOp::CloseSession => ZkRecord::CloseSession {
                paths: Some(tree.ephemerals_of(header.session_id, path::ROOT)),
            },
            TxnOp::Error(code) => ZkRecord::Error(code.code()),
            TxnOp::MultiError(codes) => {
                ZkRecord::Multi(codes.iter().map(|c| ZkRecord::Error(c.code())).collect())
            }
        })
    }
}

fn multi_to_op(header: &TxnHeader, records: &[ZkRecord]) -> Result<TxnOp, WireError> {
    if !records.iter().any(|r| matches!(r, ZkRecord::Error(_))) {
        let ops = records.iter().map(|r| r.to_op(header));
        return Ok(TxnOp::Multi(ops.collect::<Result<_, _>>()?));
    }
    let mut after_error = false;
    let mut codes = Vec::with_capacity(records.len());
    for record in records {
        codes.push(match record {
            ZkRecord::Error(code) => {
                after_error = true;
                error_code(*code)?
            }
            _ if after_error => ErrorCode::RuntimeInconsistency,
            _ => ErrorCode::Ok,
        });
    }
    Ok(TxnOp::MultiError(codes))
}

fn create_from_op(header: &TxnHeader, op: &TxnOp) -> Result<ZkRecord, WireError> {
    let TxnOp::Create {
        path,
        data,
        acl,
        ephemeral_owner,
        parent_cversion,
        kind,
    } = op
    else {
        return Err(WireError::Invalid("not a create"));
    };
    let (path, data, acl, parent_cversion) =
        (path.clone(), data.clone(), acl.clone(), *parent_cversion);
    Ok(match (kind, NodeKind::of_owner(*ephemeral_owner)) {
        (CreateKind::Create | CreateKind::Create2, owner) => ZkRecord::Create {
            create2: *kind == CreateKind::Create2,
            path,
            data,
            acl,
            ephemeral: match owner {
                NodeKind::Persistent => false,
                NodeKind::Ephemeral(session) if session == header.session_id => true,
                _ => {
                    return Err(WireError::Invalid(
                        "create owner not expressible in CreateTxn",
                    ))
                }
            },
            parent_cversion: Some(parent_cversion),
        },
        (CreateKind::Container, NodeKind::Container) => ZkRecord::CreateContainer {
            path,
            data,
            acl,
            parent_cversion,
        },
        (CreateKind::Ttl, NodeKind::Ttl { ttl_ms }) => ZkRecord::CreateTtl {
            path,
            data,
            acl,
            parent_cversion,
            ttl_ms,
        },
        _ => return Err(WireError::Invalid("create kind and owner disagree")),
    })
}

/// `EphemeralType.TTL.toEphemeralOwner`, which refuses TTLs outside 1..=2^40-1.
fn ttl_owner_checked(ttl_ms: i64) -> Result<i64, WireError> {
    if !(1..=TTL_MAX_MS).contains(&ttl_ms) {
        return Err(WireError::Invalid("TTL out of range"));
    }
    Ok(ttl_owner(ttl_ms))
}

fn error_code(code: i32) -> Result<ErrorCode, WireError> {
    ErrorCode::from_code(code).ok_or(WireError::Invalid("unknown error code in an error txn"))
}

#[cfg(test)]
#[path = "txn_wire_tests.rs"]
mod tests;

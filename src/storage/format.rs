//! Byte layouts of the write-ahead log (pure: no I/O). `docs/storage.md`
//! describes every field; this module is the only code that knows them.
//!
//! Integers are big-endian like jute, so the txn payload reuses the jute
//! `put_*` helpers and `Reader`.

use bytes::Bytes;

use super::limits::RECORD_PAYLOAD_BYTES_MAX;
use crate::proto::jute::{put_acl_vec, put_buffer, put_i32, put_i64, put_str, DecodeError, Reader};
use crate::proto::ErrorCode;
use crate::tree::{CreateKind, TxnHeader, TxnOp};

/// First bytes of every log segment.
pub const LOG_MAGIC: [u8; 4] = *b"FKWL";
pub const LOG_FORMAT_VERSION: u32 = 1;
/// magic 4 + version 4 + db id 16 + first zxid 8 + reserved 4 + crc 4.
pub const SEGMENT_HEADER_BYTES: usize = 40;
/// len 4 + crc 4 + zxid 8 + flags 1.
pub const RECORD_HEADER_BYTES: usize = 17;
/// Set on the last record of a batch: recovery replays whole batches only.
pub const FLAG_BATCH_END: u8 = 1;

pub const LOG_PREFIX: &str = "log.";
pub const SNAPSHOT_PREFIX: &str = "snapshot.";

/// A database id: random bytes chosen when the data dir is initialised, so
/// files from another database are refused instead of replayed.
pub type DbId = [u8; 16];

/// `log.<16 hex digits of the first zxid>`; sorting names sorts by zxid.
pub fn log_name(first_zxid: i64) -> String {
    format!("{LOG_PREFIX}{:016x}", first_zxid as u64)
}

pub fn snapshot_name(zxid: i64) -> String {
    format!("{SNAPSHOT_PREFIX}{:016x}", zxid as u64)
}

/// The zxid in a `<prefix><16 hex>` name; None for any other name
/// (temporary files, foreign files).
pub fn parse_zxid_name(name: &str, prefix: &str) -> Option<i64> {
    let hex = name.strip_prefix(prefix)?;
    if hex.len() != 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(hex, 16).ok().map(|z| z as i64)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    pub db_id: DbId,
    pub first_zxid: i64,
}

impl SegmentHeader {
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_BYTES] {
        let mut out = [0u8; SEGMENT_HEADER_BYTES];
        out[0..4].copy_from_slice(&LOG_MAGIC);
        out[4..8].copy_from_slice(&LOG_FORMAT_VERSION.to_be_bytes());
        out[8..24].copy_from_slice(&self.db_id);
        out[24..32].copy_from_slice(&self.first_zxid.to_be_bytes());
        // 32..36 reserved, zero.
        let crc = crc32c::crc32c(&out[..36]);
        out[36..40].copy_from_slice(&crc.to_be_bytes());
        out
    }

    pub fn decode(buf: &[u8]) -> Result<SegmentHeader, &'static str> {
        let Some(head) = buf.get(..SEGMENT_HEADER_BYTES) else {
            return Err("file shorter than the segment header");
        };
        if head[0..4] != LOG_MAGIC {
            return Err("bad magic");
        }
        if crc32c::crc32c(&head[..36]) != be_u32(&head[36..40]) {
            return Err("segment header checksum mismatch");
        }
        if be_u32(&head[4..8]) != LOG_FORMAT_VERSION {
            return Err("unsupported log format version");
        }
        let mut db_id = [0u8; 16];
        db_id.copy_from_slice(&head[8..24]);
        let first_zxid = i64::from_be_bytes(head[24..32].try_into().expect("8 bytes"));
        Ok(SegmentHeader { db_id, first_zxid })
    }
}

fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes(b.try_into().expect("4 bytes"))
}

// ----- records -----

/// Appends the records of one batch; the last one carries `FLAG_BATCH_END`.
pub fn encode_batch(out: &mut Vec<u8>, batch: &[(TxnHeader, TxnOp)]) {
    for (i, (hdr, op)) in batch.iter().enumerate() {
        let flags = if i + 1 == batch.len() {
            FLAG_BATCH_END
        } else {
            0
        };
        encode_record(out, hdr, op, flags);
    }
}

/// One record: len, crc32c(len ‖ zxid ‖ flags ‖ payload), zxid, flags, payload.
pub fn encode_record(out: &mut Vec<u8>, hdr: &TxnHeader, op: &TxnOp, flags: u8) {
    let start = out.len();
    out.extend_from_slice(&[0u8; 8]); // len and crc, patched below
    put_i64(out, hdr.zxid);
    out.push(flags);
    encode_txn(out, hdr, op);
    let payload_len = out.len() - start - RECORD_HEADER_BYTES;
    assert!(
        payload_len <= RECORD_PAYLOAD_BYTES_MAX,
        "txn larger than the record limit"
    );
    let len = (payload_len as u32).to_be_bytes();
    out[start..start + 4].copy_from_slice(&len);
    let crc = record_crc(&len, &out[start + 8..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_be_bytes());
}

/// Sets `BATCH_END` on one whole record (as `record_at` returned it valid)
/// and recomputes its checksum: a log cut after it ends on a complete batch.
pub fn mark_batch_end(record: &mut [u8]) {
    record[16] |= FLAG_BATCH_END;
    let (len, rest) = record.split_at(8);
    let crc = record_crc(&len[0..4], rest);
    record[4..8].copy_from_slice(&crc.to_be_bytes());
}

fn record_crc(len: &[u8], zxid_flags_payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(len), zxid_flags_payload)
}

/// What sits at one offset of a segment.
#[derive(Debug, PartialEq, Eq)]
pub enum RecordAt<'a> {
    /// A zero record header: preallocated space, the end of the log.
    End,
    Valid {
        zxid: i64,
        batch_end: bool,
        payload: &'a [u8],
        next_offset: usize,
    },
    /// Truncated, oversized or failing its checksum.
    Bad(&'static str),
}

pub fn record_at(buf: &[u8], offset: usize) -> RecordAt<'_> {
    let rest = buf.get(offset..).unwrap_or(&[]);
    if rest.is_empty() {
        return RecordAt::End;
    }
    let Some(head) = rest.get(..RECORD_HEADER_BYTES) else {
        return if rest.iter().all(|b| *b == 0) {
            RecordAt::End
        } else {
            RecordAt::Bad("truncated record header")
        };
    };
    if head.iter().all(|b| *b == 0) {
        return RecordAt::End;
    }
    let len = be_u32(&head[0..4]) as usize;
    if len == 0 || len > RECORD_PAYLOAD_BYTES_MAX {
        return RecordAt::Bad("record length out of range");
    }
    let Some(body) = rest.get(8..RECORD_HEADER_BYTES + len) else {
        return RecordAt::Bad("truncated record");
    };
    if record_crc(&head[0..4], body) != be_u32(&head[4..8]) {
        return RecordAt::Bad("record checksum mismatch");
    }
    RecordAt::Valid {
        zxid: i64::from_be_bytes(head[8..16].try_into().expect("8 bytes")),
        batch_end: head[16] & FLAG_BATCH_END != 0,
        payload: &body[9..],
        next_offset: offset + RECORD_HEADER_BYTES + len,
    }
}

// ----- txn payload -----

mod tag {
    pub const CREATE: i32 = 1;
    pub const DELETE: i32 = 2;
    pub const SET_DATA: i32 = 3;
    pub const SET_ACL: i32 = 4;
    pub const CHECK: i32 = 5;
    pub const MULTI: i32 = 6;
    pub const CREATE_SESSION: i32 = 7;
    pub const CLOSE_SESSION: i32 = 8;
    pub const ERROR: i32 = 9;
    pub const MULTI_ERROR: i32 = 10;
}

/// session id, cxid, time, then the op. The zxid lives in the record header.
pub fn encode_txn(out: &mut Vec<u8>, hdr: &TxnHeader, op: &TxnOp) {
    put_i64(out, hdr.session_id);
    put_i32(out, hdr.cxid);
    put_i64(out, hdr.time_ms);
    encode_op(out, op);
}

fn encode_op(out: &mut Vec<u8>, op: &TxnOp) {
    match op {
        TxnOp::Create {
            path,
            data,
            acl,
            ephemeral_owner,
            parent_cversion,
            kind,
        } => {
            put_i32(out, tag::CREATE);
            put_i32(out, kind.opcode());
            put_str(out, path);
            put_buffer(out, data.as_deref());
            put_acl_vec(out, acl);
            put_i64(out, *ephemeral_owner);
            put_i32(out, *parent_cversion);
        }
        TxnOp::Delete { path } => {
            put_i32(out, tag::DELETE);
            put_str(out, path);
        }
        TxnOp::SetData {
            path,
            data,
            version,
        } => {
            put_i32(out, tag::SET_DATA);
            put_str(out, path);
            put_buffer(out, data.as_deref());
            put_i32(out, *version);
        }
        TxnOp::SetAcl { path, acl, version } => {
            put_i32(out, tag::SET_ACL);
            put_str(out, path);
            put_acl_vec(out, acl);
            put_i32(out, *version);
        }
        TxnOp::Check { path, version } => {
            put_i32(out, tag::CHECK);
            put_str(out, path);
            put_i32(out, *version);
        }
        TxnOp::Multi(ops) => {
            put_i32(out, tag::MULTI);
            put_i32(out, ops.len() as i32);
            ops.iter().for_each(|sub| encode_op(out, sub));
        }
        TxnOp::CreateSession { timeout_ms } => {
            put_i32(out, tag::CREATE_SESSION);
            put_i32(out, *timeout_ms);
        }
        TxnOp::CloseSession => put_i32(out, tag::CLOSE_SESSION),
        TxnOp::Error(code) => {
            put_i32(out, tag::ERROR);
            put_i32(out, code.code());
        }
        TxnOp::MultiError(codes) => {
            put_i32(out, tag::MULTI_ERROR);
            put_i32(out, codes.len() as i32);
            codes.iter().for_each(|c| put_i32(out, c.code()));
        }
    }
}

/// Inverse of [`encode_txn`]; the whole payload must be consumed.
pub fn decode_txn(zxid: i64, payload: &[u8]) -> Result<(TxnHeader, TxnOp), DecodeError> {
    let mut r = Reader::new(payload);
    let hdr = TxnHeader {
        session_id: r.i64()?,
        cxid: r.i32()?,
        zxid,
        time_ms: r.i64()?,
    };
    let op = decode_op(&mut r, true)?;
    if !r.is_empty() {
        return Err(DecodeError::Invalid("trailing bytes after txn"));
    }
    Ok((hdr, op))
}

fn decode_op(r: &mut Reader<'_>, multi_allowed: bool) -> Result<TxnOp, DecodeError> {
    let t = r.i32()?;
    Ok(match t {
        tag::CREATE => {
            let opcode = r.i32()?;
            let kind = CreateKind::from_opcode(opcode).ok_or(DecodeError::UnknownOpcode(opcode))?;
            TxnOp::Create {
                path: r.path()?.to_string(),
                data: r.buffer()?.map(Bytes::copy_from_slice),
                acl: r.acl_vec()?,
                ephemeral_owner: r.i64()?,
                parent_cversion: r.i32()?,
                kind,
            }
        }
        tag::DELETE => TxnOp::Delete {
            path: r.path()?.to_string(),
        },
        tag::SET_DATA => TxnOp::SetData {
            path: r.path()?.to_string(),
            data: r.buffer()?.map(Bytes::copy_from_slice),
            version: r.i32()?,
        },
        tag::SET_ACL => TxnOp::SetAcl {
            path: r.path()?.to_string(),
            acl: r.acl_vec()?,
            version: r.i32()?,
        },
        tag::CHECK => TxnOp::Check {
            path: r.path()?.to_string(),
            version: r.i32()?,
        },
        // Multis never nest, so recursion is one level deep at most.
        tag::MULTI if multi_allowed => {
            let n = r.vec_len(4)?;
            let mut ops = Vec::with_capacity(n);
            for _ in 0..n {
                ops.push(decode_op(r, false)?);
            }
            TxnOp::Multi(ops)
        }
        tag::CREATE_SESSION => TxnOp::CreateSession {
            timeout_ms: r.i32()?,
        },
        tag::CLOSE_SESSION => TxnOp::CloseSession,
        tag::ERROR => TxnOp::Error(error_code(r.i32()?)?),
        tag::MULTI_ERROR => {
            let n = r.vec_len(4)?;
            let mut codes = Vec::with_capacity(n);
            for _ in 0..n {
                codes.push(error_code(r.i32()?)?);
            }
            TxnOp::MultiError(codes)
        }
        _ => return Err(DecodeError::Invalid("unknown txn tag")),
    })
}

fn error_code(code: i32) -> Result<ErrorCode, DecodeError> {
    ErrorCode::from_code(code).ok_or(DecodeError::Invalid("unknown error code"))
}

/// Whether `next` may directly follow `prev` in the log: the next counter
/// of the same epoch, or the first txn of a later epoch (zxid = epoch << 32 |
/// counter). Anything else is a gap: lost txns.
pub fn zxid_follows(prev: i64, next: i64) -> bool {
    let epoch = |z: i64| z >> 32;
    let counter = |z: i64| z & 0xffff_ffff;
    next == prev + 1 || (epoch(next) > epoch(prev) && counter(next) <= 1)
}

//! Encoding of the pipeline's write outcomes into ZooKeeper replies. The reply
//! shape of a create depends on its opcode (create: path; create2, container
//! and TTL: path + Stat), which the txn result carries as its `CreateKind`.

use super::messages::{WriteOutcome, WriteReply};
use crate::proto::response::{encode_error, encode_reply, MultiResult, ReplyHeader, Response};
use crate::proto::ErrorCode;
use crate::tree::node::client_stat;
use crate::tree::TxnResult;

/// Encodes the reply to one write.
pub fn encode_write_reply(out: &mut Vec<u8>, reply: &WriteReply) {
    let header = ReplyHeader {
        xid: reply.xid,
        zxid: reply.zxid,
        err: 0,
    };
    match &reply.outcome {
        WriteOutcome::Error(code) => encode_error(out, reply.xid, reply.zxid, *code),
        WriteOutcome::Sync(path) => encode_reply(out, &header, &Response::Path(path)),
        WriteOutcome::SessionClosed => encode_reply(out, &header, &Response::Empty),
        WriteOutcome::Txn(TxnResult::Error(code)) => {
            encode_error(out, reply.xid, reply.zxid, *code)
        }
        WriteOutcome::Txn(result) => encode_reply(out, &header, &response(result)),
    }
}

fn response(result: &TxnResult) -> Response<'_> {
    match result {
        TxnResult::Created { path, stat, kind } if kind.returns_stat() => {
            Response::PathStat(path, client_stat(stat))
        }
        TxnResult::Created { path, .. } => Response::Path(path),
        TxnResult::SetData(stat) | TxnResult::SetAcl(stat) => Response::Stat(client_stat(stat)),
        TxnResult::Multi(results) => Response::Multi(results.iter().map(multi_result).collect()),
        TxnResult::MultiError(codes) => Response::Multi(
            codes
                .iter()
                .map(|&err| MultiResult::Error { err })
                .collect(),
        ),
        TxnResult::Deleted | TxnResult::Checked | TxnResult::Session | TxnResult::Error(_) => {
            Response::Empty
        }
    }
}

fn multi_result(result: &TxnResult) -> MultiResult<'_> {
    match result {
        TxnResult::Created { path, stat, kind } if kind.returns_stat() => MultiResult::Create2 {
            path,
            stat: client_stat(stat),
        },
        TxnResult::Created { path, .. } => MultiResult::Create { path },
        TxnResult::SetData(stat) => MultiResult::SetData {
            stat: client_stat(stat),
        },
        TxnResult::Deleted => MultiResult::Delete,
        TxnResult::Checked => MultiResult::Check,
        TxnResult::Error(err) => MultiResult::Error { err: *err },
        _ => MultiResult::Error {
            err: ErrorCode::SystemError,
        },
    }
}

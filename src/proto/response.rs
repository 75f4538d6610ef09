//! Replies and watch notifications: encoded straight into a send buffer as
//! whole frames, plus decoders for clients, the load generator and tests.

use super::frame::{begin_frame, end_frame};
use super::jute::{
    put_acl_vec, put_bool, put_buffer, put_bytes, put_i32, put_i64, put_stat, put_str, put_str_vec,
    DecodeError, Reader,
};
use super::types::{op, xid, Acl, ErrorCode, EventType, Stat};
use crate::limits;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplyHeader {
    pub xid: i32,
    pub zxid: i64,
    pub err: i32,
}

impl ReplyHeader {
    pub fn encode(&self, out: &mut Vec<u8>) {
        put_i32(out, self.xid);
        put_i64(out, self.zxid);
        put_i32(out, self.err);
    }

    pub fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(ReplyHeader {
            xid: r.i32()?,
            zxid: r.i64()?,
            err: r.i32()?,
        })
    }

    /// Splits a reply frame body into header and reply body.
    pub fn split(frame_body: &[u8]) -> Result<(Self, &[u8]), DecodeError> {
        let mut r = Reader::new(frame_body);
        let hdr = Self::decode(&mut r)?;
        Ok((hdr, r.rest()))
    }
}

/// One entry of a multi / multiRead reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MultiResult<'a> {
    Create {
        path: &'a str,
    },
    /// create2, createTTL and createContainer results (all typed create2 on the wire).
    Create2 {
        path: &'a str,
        stat: Stat,
    },
    SetData {
        stat: Stat,
    },
    Delete,
    Check,
    GetData {
        data: Option<&'a [u8]>,
        stat: Stat,
    },
    GetChildren {
        children: Vec<&'a str>,
    },
    Error {
        err: ErrorCode,
    },
}

impl<'a> MultiResult<'a> {
    /// The MultiHeader type. ZooKeeper's MultiResponse only knows create2 for
    /// stat-bearing creates, so TTL/container results must be typed 15 too.
    pub fn op_type(&self) -> i32 {
        match self {
            MultiResult::Create { .. } => op::CREATE,
            MultiResult::Create2 { .. } => op::CREATE2,
            MultiResult::SetData { .. } => op::SET_DATA,
            MultiResult::Delete => op::DELETE,
            MultiResult::Check => op::CHECK,
            MultiResult::GetData { .. } => op::GET_DATA,
            MultiResult::GetChildren { .. } => op::GET_CHILDREN,
            MultiResult::Error { .. } => op::ERROR,
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        let err = match self {
            MultiResult::Error { err } => err.code(),
            _ => 0,
        };
        put_multi_header(out, self.op_type(), false, err);
        match self {
            MultiResult::Create { path } => put_str(out, path),
            MultiResult::Create2 { path, stat } => {
                put_str(out, path);
                put_stat(out, stat);
            }
            MultiResult::SetData { stat } => put_stat(out, stat),
            MultiResult::Delete | MultiResult::Check => {}
            MultiResult::GetData { data, stat } => {
                put_buffer(out, *data);
                put_stat(out, stat);
            }
            MultiResult::GetChildren { children } => put_str_vec(out, children.iter().copied()),
            MultiResult::Error { err } => put_i32(out, err.code()),
        }
    }

    fn read(op_type: i32, r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        Ok(match op_type {
            op::CREATE => MultiResult::Create { path: r.path()? },
            op::CREATE2 => MultiResult::Create2 {
                path: r.path()?,
                stat: r.stat()?,
            },
            op::SET_DATA => MultiResult::SetData { stat: r.stat()? },
            op::DELETE => MultiResult::Delete,
            op::CHECK => MultiResult::Check,
            op::GET_DATA => MultiResult::GetData {
                data: r.buffer()?,
                stat: r.stat()?,
            },
            op::GET_CHILDREN => MultiResult::GetChildren {
                children: r.string_vec()?,
            },
            op::ERROR => MultiResult::Error {
                err: read_error_code(r)?,
            },
            other => return Err(DecodeError::BadMultiOp(other)),
        })
    }
}

fn read_error_code(r: &mut Reader<'_>) -> Result<ErrorCode, DecodeError> {
    ErrorCode::from_code(r.i32()?).ok_or(DecodeError::Invalid("unknown error code"))
}

fn put_multi_header(out: &mut Vec<u8>, op_type: i32, done: bool, err: i32) {
    put_i32(out, op_type);
    put_bool(out, done);
    put_i32(out, err);
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response<'a> {
    /// Header only: delete, setWatches, auth, ping, check, addWatch, removeWatches, closeSession...
    Empty,
    /// create, sync.
    Path(&'a str),
    /// create2, createContainer, createTTL.
    PathStat(&'a str, Stat),
    /// exists, setData, setACL.
    Stat(Stat),
    /// getData.
    /// None: the node's data is null (Java clients see null, zkCli prints `null`).
    Data(Option<&'a [u8]>, Stat),
    /// getACL (decode with `decode_acl_response`, since decoded ACLs are owned).
    Acl(&'a [Acl], Stat),
    /// getChildren (see `encode_children` to stream without a Vec).
    Children(Vec<&'a str>),
    /// getChildren2.
    Children2(Vec<&'a str>, Stat),
    /// multi and multiRead.
    Multi(Vec<MultiResult<'a>>),
    /// getEphemerals.
    Strings(Vec<&'a str>),
    /// getAllChildrenNumber.
    Count(i32),
    /// ZooKeeper's `ErrorResponse` record: one int (addWatch's reply body).
    ErrorResponse(i32),
    /// `SetSASLResponse`: the SASL server's token (null when SASL is off).
    SaslToken(Option<&'a [u8]>),
    /// whoAmI: vector<ClientInfo{authScheme, user}>.
    WhoAmI(Vec<(&'a str, &'a str)>),
    /// reconfig: the new config data and the config node's Stat.
    Reconfig(&'a [u8], Stat),
}

impl Response<'_> {
    fn encode_body(&self, out: &mut Vec<u8>) {
        match self {
            Response::Empty => {}
            Response::Path(p) => put_str(out, p),
            Response::PathStat(p, s) => {
                put_str(out, p);
                put_stat(out, s);
            }
            Response::Stat(s) => put_stat(out, s),
            Response::Data(d, s) => {
                put_buffer(out, *d);
                put_stat(out, s);
            }
            Response::Reconfig(d, s) => {
                put_bytes(out, d);
                put_stat(out, s);
            }
            Response::Acl(a, s) => {
                put_acl_vec(out, a);
                put_stat(out, s);
            }
            Response::Children(c) | Response::Strings(c) => put_str_vec(out, c.iter().copied()),
            Response::Children2(c, s) => {
                put_str_vec(out, c.iter().copied());
                put_stat(out, s);
            }
            Response::Multi(results) => {
                for res in results {
                    res.encode(out);
                }
                put_multi_header(out, -1, true, -1);
            }
            Response::Count(n) | Response::ErrorResponse(n) => put_i32(out, *n),
            Response::SaslToken(token) => put_buffer(out, *token),
            Response::WhoAmI(infos) => {
                put_i32(out, infos.len() as i32);
                for (scheme, user) in infos {
                    put_str(out, scheme);
                    put_str(out, user);
                }
            }
        }
    }
}

/// Appends a whole reply frame. A non-zero `err` means header only, as clients expect.
pub fn encode_reply(out: &mut Vec<u8>, hdr: &ReplyHeader, body: &Response<'_>) {
    if hdr.err == 0 {
        encode_reply_with_body(out, hdr, body);
    } else {
        encode_reply_with_body(out, hdr, &Response::Empty);
    }
}

/// A reply whose body is sent even with an error code (a failed multiRead
/// keeps the results ZooKeeper had built).
pub fn encode_reply_with_body(out: &mut Vec<u8>, hdr: &ReplyHeader, body: &Response<'_>) {
    if let Response::Data(Some(data), _) = body {
        // One allocation of the right size for a large node, not a doubling
        // of the whole send buffer when its stat is appended after the data.
        out.reserve(data.len() + REPLY_OVERHEAD_BYTES);
    }
    let at = begin_frame(out);
    hdr.encode(out);
    body.encode_body(out);
    end_frame(out, at);
}

/// Frame length, reply header, data length and stat of a getData reply.
const REPLY_OVERHEAD_BYTES: usize = 4 + 16 + 4 + 68;

/// Appends a header-only error reply.
pub fn encode_error(out: &mut Vec<u8>, xid: i32, zxid: i64, err: ErrorCode) {
    let hdr = ReplyHeader {
        xid,
        zxid,
        err: err.code(),
    };
    encode_reply(out, &hdr, &Response::Empty);
}

/// Appends a getChildren (`stat` None) or getChildren2 (`stat` Some) reply,
/// streaming names from any iterator: no intermediate Vec on the hot path.
pub fn encode_children<'s, I>(
    out: &mut Vec<u8>,
    hdr: &ReplyHeader,
    children: I,
    stat: Option<&Stat>,
) where
    I: IntoIterator<Item = &'s str>,
{
    let at = begin_frame(out);
    hdr.encode(out);
    if hdr.err == 0 {
        put_str_vec(out, children);
        if let Some(s) = stat {
            put_stat(out, s);
        }
    }
    end_frame(out, at);
}

/// Appends a watch notification frame: xid -1, then WatcherEvent{type, state, path}.
pub fn encode_watch_event(
    out: &mut Vec<u8>,
    zxid: i64,
    event_type: EventType,
    state: i32,
    path: &str,
) {
    let at = begin_frame(out);
    ReplyHeader {
        xid: xid::NOTIFICATION,
        zxid,
        err: 0,
    }
    .encode(out);
    put_i32(out, event_type as i32);
    put_i32(out, state);
    put_str(out, path);
    end_frame(out, at);
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WatchEvent<'a> {
    pub event_type: EventType,
    pub state: i32,
    /// Null on the wire (state-only events) reads as "".
    pub path: &'a str,
}

/// Decodes a WatcherEvent body (after the ReplyHeader with xid -1).
pub fn decode_watch_event(body: &[u8]) -> Result<WatchEvent<'_>, DecodeError> {
    let mut r = Reader::new(body);
    let event_type =
        EventType::from_code(r.i32()?).ok_or(DecodeError::Invalid("unknown event type"))?;
    let state = r.i32()?;
    let path = r.ustring()?.unwrap_or("");
    Ok(WatchEvent {
        event_type,
        state,
        path,
    })
}

fn read_multi_results<'a>(r: &mut Reader<'a>) -> Result<Vec<MultiResult<'a>>, DecodeError> {
    let mut results = Vec::new();
    loop {
        let op_type = r.i32()?;
        let done = r.bool()?;
        let _err = r.i32()?;
        if done {
            return Ok(results);
        }
        if results.len() >= limits::MULTI_OPS_MAX {
            return Err(DecodeError::TooLong {
                len: results.len() + 1,
                max: limits::MULTI_OPS_MAX,
            });
        }
        results.push(MultiResult::read(op_type, r)?);
    }
}

fn read_who_am_i<'a>(r: &mut Reader<'a>) -> Result<Vec<(&'a str, &'a str)>, DecodeError> {
    let n = r.vec_len(8)?;
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        v.push((r.string()?, r.string()?));
    }
    Ok(v)
}

/// Decodes the body of a successful (err == 0) reply to `op_code`.
/// getACL is not handled here because its ACLs cannot be borrowed; use
/// `decode_acl_response`.
pub fn decode_response(op_code: i32, body: &[u8]) -> Result<Response<'_>, DecodeError> {
    let mut r = Reader::new(body);
    let r = &mut r;
    Ok(match op_code {
        op::CREATE | op::SYNC => Response::Path(r.path()?),
        op::CREATE2 | op::CREATE_CONTAINER | op::CREATE_TTL => {
            Response::PathStat(r.path()?, r.stat()?)
        }
        op::EXISTS | op::SET_DATA | op::SET_ACL => Response::Stat(r.stat()?),
        op::GET_DATA => Response::Data(r.buffer()?, r.stat()?),
        op::RECONFIG => Response::Reconfig(r.bytes()?, r.stat()?),
        op::GET_CHILDREN => Response::Children(r.string_vec()?),
        op::GET_CHILDREN2 => Response::Children2(r.string_vec()?, r.stat()?),
        op::MULTI | op::MULTI_READ => Response::Multi(read_multi_results(r)?),
        op::GET_EPHEMERALS => Response::Strings(r.string_vec()?),
        op::GET_ALL_CHILDREN_NUMBER => Response::Count(r.i32()?),
        op::WHO_AM_I => Response::WhoAmI(read_who_am_i(r)?),
        op::ADD_WATCH => Response::ErrorResponse(r.i32()?),
        op::SASL => Response::SaslToken(r.buffer()?),
        op::DELETE
        | op::PING
        | op::CHECK
        | op::CHECK_WATCHES
        | op::REMOVE_WATCHES
        | op::AUTH
        | op::SET_WATCHES
        | op::SET_WATCHES2
        | op::CLOSE_SESSION => Response::Empty,
        other => return Err(DecodeError::UnknownOpcode(other)),
    })
}

/// Decodes a getACL reply body: {vector<ACL>, Stat}.
pub fn decode_acl_response(body: &[u8]) -> Result<(Vec<Acl>, Stat), DecodeError> {
    let mut r = Reader::new(body);
    Ok((r.acl_vec()?, r.stat()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::frame::frame_len;
    use crate::proto::types::Id;

    fn stat(n: i64) -> Stat {
        Stat {
            czxid: n,
            mzxid: n + 1,
            ctime: 1_700_000_000_000,
            mtime: 1_700_000_000_001,
            version: 1,
            cversion: 2,
            aversion: 3,
            ephemeral_owner: -1,
            data_length: 4,
            num_children: 5,
            pzxid: n + 2,
        }
    }

    fn hdr(err: i32) -> ReplyHeader {
        ReplyHeader {
            xid: 42,
            zxid: 0x1_0000_0007,
            err,
        }
    }

    fn all_multi_results() -> Vec<MultiResult<'static>> {
        vec![
            MultiResult::Create { path: "/a" },
            MultiResult::Create2 {
                path: "/b0000000001",
                stat: stat(1),
            },
            MultiResult::SetData { stat: stat(2) },
            MultiResult::Delete,
            MultiResult::Check,
            MultiResult::GetData {
                data: Some(b"xyz"),
                stat: stat(3),
            },
            MultiResult::GetChildren {
                children: vec!["c1", "c2"],
            },
            MultiResult::Error { err: ErrorCode::Ok },
            MultiResult::Error {
                err: ErrorCode::NoNode,
            },
            MultiResult::Error {
                err: ErrorCode::RuntimeInconsistency,
            },
        ]
    }

    /// Every decodable response with an opcode that yields it.
    fn all_responses() -> Vec<(i32, Response<'static>)> {
        vec![
            (op::DELETE, Response::Empty),
            (op::CREATE, Response::Path("/p")),
            (op::SYNC, Response::Path("/")),
            (op::CREATE2, Response::PathStat("/p", stat(9))),
            (op::CREATE_TTL, Response::PathStat("/t", stat(9))),
            (op::EXISTS, Response::Stat(stat(4))),
            (op::GET_DATA, Response::Data(Some(b"hello"), stat(5))),
            (op::GET_DATA, Response::Data(Some(b""), stat(5))),
            (op::GET_DATA, Response::Data(None, stat(0))),
            (op::GET_CHILDREN, Response::Children(vec!["a", "b", "ccc"])),
            (op::GET_CHILDREN, Response::Children(vec![])),
            (op::GET_CHILDREN2, Response::Children2(vec!["x"], stat(6))),
            (op::MULTI, Response::Multi(all_multi_results())),
            (op::MULTI_READ, Response::Multi(vec![])),
            (op::GET_EPHEMERALS, Response::Strings(vec!["/e1", "/e2"])),
            (op::GET_ALL_CHILDREN_NUMBER, Response::Count(17)),
            (op::ADD_WATCH, Response::ErrorResponse(0)),
            (op::SASL, Response::SaslToken(None)),
            (
                op::WHO_AM_I,
                Response::WhoAmI(vec![("ip", "127.0.0.1"), ("digest", "u")]),
            ),
            (op::RECONFIG, Response::Reconfig(b"server.1=h:1:2", stat(7))),
        ]
    }

    fn split_frame(out: &[u8]) -> (ReplyHeader, &[u8]) {
        assert_eq!(frame_len(out, 1 << 20).unwrap(), Some(out.len()));
        ReplyHeader::split(&out[4..]).unwrap()
    }

    #[test]
    fn every_response_round_trips() {
        for (op_code, resp) in all_responses() {
            let mut out = Vec::new();
            encode_reply(&mut out, &hdr(0), &resp);
            let (h, body) = split_frame(&out);
            assert_eq!(h, hdr(0));
            assert_eq!(decode_response(op_code, body), Ok(resp.clone()));
        }
    }

    #[test]
    fn acl_response_round_trips() {
        let acls = vec![
            Acl::open_unsafe().remove(0),
            Acl {
                perms: 31,
                id: Id::new("digest", "u:x"),
            },
        ];
        let mut out = Vec::new();
        encode_reply(&mut out, &hdr(0), &Response::Acl(&acls, stat(1)));
        let (_, body) = split_frame(&out);
        assert_eq!(decode_acl_response(body), Ok((acls, stat(1))));
    }

    #[test]
    fn reply_header_is_byte_exact() {
        let mut out = Vec::new();
        encode_error(&mut out, 5, 0x0000_0001_0000_0002, ErrorCode::NoNode);
        assert_eq!(
            out,
            [0, 0, 0, 16, 0, 0, 0, 5, 0, 0, 0, 1, 0, 0, 0, 2, 0xff, 0xff, 0xff, 0x9b]
        );
    }

    #[test]
    fn error_reply_omits_body() {
        let mut out = Vec::new();
        encode_reply(&mut out, &hdr(-101), &Response::Stat(stat(1)));
        assert_eq!(out.len(), 4 + 16);
        let mut out2 = Vec::new();
        encode_children(&mut out2, &hdr(-101), ["a"], None);
        assert_eq!(out, out2);
    }

    #[test]
    fn streamed_children_match_vec_encoding() {
        let names = ["a", "bb", "ccc"];
        let mut streamed = Vec::new();
        encode_children(
            &mut streamed,
            &hdr(0),
            names.iter().copied(),
            Some(&stat(2)),
        );
        let mut boxed = Vec::new();
        encode_reply(
            &mut boxed,
            &hdr(0),
            &Response::Children2(names.to_vec(), stat(2)),
        );
        assert_eq!(streamed, boxed);
        let mut streamed = Vec::new();
        encode_children(&mut streamed, &hdr(0), names, None);
        let (_, body) = split_frame(&streamed);
        assert_eq!(
            decode_response(op::GET_CHILDREN, body),
            Ok(Response::Children(names.to_vec()))
        );
    }

    #[test]
    fn multi_reply_layout() {
        let mut out = Vec::new();
        let resp = Response::Multi(vec![
            MultiResult::Delete,
            MultiResult::Error {
                err: ErrorCode::BadVersion,
            },
        ]);
        encode_reply(&mut out, &hdr(0), &resp);
        let want: Vec<u8> = [
            &[0, 0, 0, 2, 0, 0, 0, 0, 0][..],
            &[
                0xff, 0xff, 0xff, 0xff, 0, 0xff, 0xff, 0xff, 0x99, 0xff, 0xff, 0xff, 0x99,
            ],
            &[0xff, 0xff, 0xff, 0xff, 1, 0xff, 0xff, 0xff, 0xff],
        ]
        .concat();
        assert_eq!(&out[20..], &want[..]);
    }

    #[test]
    fn watch_event_round_trips() {
        let mut out = Vec::new();
        encode_watch_event(&mut out, 99, EventType::NodeChildrenChanged, 3, "/w");
        let (h, body) = split_frame(&out);
        assert_eq!(
            h,
            ReplyHeader {
                xid: -1,
                zxid: 99,
                err: 0
            }
        );
        assert_eq!(
            decode_watch_event(body),
            Ok(WatchEvent {
                event_type: EventType::NodeChildrenChanged,
                state: 3,
                path: "/w"
            })
        );
        assert_eq!(&body[..8], &[0, 0, 0, 4, 0, 0, 0, 3]);
    }

    #[test]
    fn truncated_replies_fail() {
        for (op_code, resp) in all_responses() {
            if resp == Response::Empty {
                continue;
            }
            let mut out = Vec::new();
            encode_reply(&mut out, &hdr(0), &resp);
            let body = &out[20..];
            for cut in 0..body.len() {
                assert!(
                    decode_response(op_code, &body[..cut]).is_err(),
                    "{resp:?} cut {cut}"
                );
            }
        }
        assert!(ReplyHeader::split(&[0; 15]).is_err());
    }

    #[test]
    fn hostile_replies() {
        assert_eq!(
            decode_response(555, &[]),
            Err(DecodeError::UnknownOpcode(555))
        );
        // Multi result with an unknown type.
        let mut body = Vec::new();
        put_multi_header(&mut body, op::MULTI, false, 0);
        assert_eq!(
            decode_response(op::MULTI, &body),
            Err(DecodeError::BadMultiOp(op::MULTI))
        );
        // Error result with a made-up code.
        let mut body = Vec::new();
        put_multi_header(&mut body, -1, false, -9999);
        put_i32(&mut body, -9999);
        assert!(decode_response(op::MULTI, &body).is_err());
        // Vector count 2^31-1.
        let body = i32::MAX.to_be_bytes();
        assert!(decode_response(op::GET_CHILDREN, &body).is_err());
        assert!(decode_response(op::WHO_AM_I, &body).is_err());
        assert!(decode_watch_event(&[0, 0, 0, 99, 0, 0, 0, 3, 0, 0, 0, 0]).is_err());
    }

    #[test]
    fn fuzz_reply_decode_never_panics() {
        use crate::proto::request::tests::{mutate, Rng};
        let frames: Vec<(i32, Vec<u8>)> = all_responses()
            .into_iter()
            .map(|(op_code, resp)| {
                let mut out = Vec::new();
                encode_reply(&mut out, &hdr(0), &resp);
                (op_code, out[4..].to_vec())
            })
            .collect();
        let mut rng = Rng(0xdead_beef_cafe_f00d);
        let (mut split, mut decoded) = (0, 0);
        for i in 0..20_000 {
            let (op_code, frame) = &frames[i % frames.len()];
            let mut f = frame.clone();
            mutate(&mut rng, &mut f);
            if let Ok((_, body)) = ReplyHeader::split(&f) {
                split += 1;
                decoded += usize::from(decode_response(*op_code, body).is_ok());
                let _ = decode_acl_response(body);
                let _ = decode_watch_event(body);
            }
        }
        // The mutations must reach the decoders, not just fail the header.
        assert!(
            split > 1000 && decoded > 100,
            "split {split}, decoded {decoded}"
        );
    }
}

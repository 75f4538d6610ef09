//! Client requests: `RequestHeader` plus a `Request` that borrows its paths
//! and data from the received frame (zero-copy).

use super::frame::{begin_frame, end_frame};
use super::jute::{
    put_acl_vec, put_bool, put_buffer, put_bytes, put_i32, put_i64, put_opt_str, put_str,
    put_str_vec, DecodeError, Reader,
};
use super::types::{op, Acl};
use crate::limits;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestHeader {
    pub xid: i32,
    pub op: i32,
}

impl RequestHeader {
    pub fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(RequestHeader {
            xid: r.i32()?,
            op: r.i32()?,
        })
    }

    /// Splits a frame body into header and request body. Servers use this
    /// (rather than `decode_frame`) when they need the xid to answer an
    /// unknown opcode with UNIMPLEMENTED.
    pub fn split(frame_body: &[u8]) -> Result<(Self, &[u8]), DecodeError> {
        let mut r = Reader::new(frame_body);
        let hdr = Self::decode(&mut r)?;
        Ok((hdr, r.rest()))
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        put_i32(out, self.xid);
        put_i32(out, self.op);
    }
}

/// Body of create, create2, createContainer and createTTL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateRequest<'a> {
    pub path: &'a str,
    /// None is a null buffer on the wire (length -1), which ZooKeeper keeps.
    pub data: Option<&'a [u8]>,
    pub acl: Vec<Acl>,
    pub flags: i32,
    /// Present only for createTTL, whose body carries a trailing `long ttl`.
    pub ttl_ms: Option<i64>,
}

impl<'a> CreateRequest<'a> {
    fn read(op_code: i32, r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        Ok(CreateRequest {
            path: r.path()?,
            data: r.buffer()?,
            acl: r.acl_vec()?,
            flags: r.i32()?,
            ttl_ms: if op_code == op::CREATE_TTL {
                Some(r.i64()?)
            } else {
                None
            },
        })
    }

    fn encode(&self, op_code: i32, out: &mut Vec<u8>) {
        put_str(out, self.path);
        put_buffer(out, self.data);
        put_acl_vec(out, &self.acl);
        put_i32(out, self.flags);
        if op_code == op::CREATE_TTL {
            put_i64(out, self.ttl_ms.unwrap_or(0));
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request<'a> {
    Create {
        /// CREATE, CREATE2, CREATE_CONTAINER or CREATE_TTL.
        op: i32,
        req: CreateRequest<'a>,
    },
    Delete {
        path: &'a str,
        version: i32,
    },
    Exists {
        path: &'a str,
        watch: bool,
    },
    GetData {
        path: &'a str,
        watch: bool,
    },
    SetData {
        path: &'a str,
        data: Option<&'a [u8]>,
        version: i32,
    },
    GetAcl {
        path: &'a str,
    },
    SetAcl {
        path: &'a str,
        acl: Vec<Acl>,
        version: i32,
    },
    GetChildren {
        path: &'a str,
        watch: bool,
    },
    GetChildren2 {
        path: &'a str,
        watch: bool,
    },
    Sync {
        path: &'a str,
    },
    Ping,
    Check {
        path: &'a str,
        version: i32,
    },
    /// Ops: create*, delete, setData, check.
    Multi(Vec<Request<'a>>),
    /// Ops: getChildren, getData.
    MultiRead(Vec<Request<'a>>),
    Reconfig {
        joining: Option<&'a str>,
        leaving: Option<&'a str>,
        new_members: Option<&'a str>,
        cur_config_id: i64,
    },
    CheckWatches {
        path: &'a str,
        watcher_type: i32,
    },
    RemoveWatches {
        path: &'a str,
        watcher_type: i32,
    },
    Auth {
        auth_type: i32,
        scheme: &'a str,
        auth: &'a [u8],
    },
    /// setWatches (101) leaves the persistent lists empty; setWatches2 (105) fills them.
    SetWatches {
        relative_zxid: i64,
        data: Vec<&'a str>,
        exist: Vec<&'a str>,
        child: Vec<&'a str>,
        persistent: Vec<&'a str>,
        persistent_recursive: Vec<&'a str>,
    },
    Sasl {
        token: &'a [u8],
    },
    GetEphemerals {
        prefix: &'a str,
    },
    GetAllChildrenNumber {
        path: &'a str,
    },
    AddWatch {
        path: &'a str,
        mode: i32,
    },
    WhoAmI,
    CloseSession,
}

/// Ops ZooKeeper's MultiOperationRecord accepts inside a write multi.
fn allowed_in_multi(op_code: i32) -> bool {
    matches!(
        op_code,
        op::CREATE
            | op::CREATE2
            | op::CREATE_CONTAINER
            | op::CREATE_TTL
            | op::DELETE
            | op::SET_DATA
            | op::CHECK
    )
}

/// What ZooKeeper's MultiOperationRecord decodes (for multi and multiRead
/// alike); a multiRead holding a write decodes, and its reply ends there
/// with MARSHALLINGERROR (`reads.rs`).
fn allowed_in_multi_read(op_code: i32) -> bool {
    matches!(op_code, op::GET_CHILDREN | op::GET_DATA) || allowed_in_multi(op_code)
}

fn put_multi_header(out: &mut Vec<u8>, op_code: i32, done: bool, err: i32) {
    put_i32(out, op_code);
    put_bool(out, done);
    put_i32(out, err);
}

/// Reads `MultiHeader`+body pairs until the `done` header. Only whitelisted
/// ops are decoded, so nesting (multi in multi) is impossible by construction.
fn read_multi<'a>(
    r: &mut Reader<'a>,
    allowed: fn(i32) -> bool,
) -> Result<Vec<Request<'a>>, DecodeError> {
    let mut ops = Vec::new();
    loop {
        let op_code = r.i32()?;
        let done = r.bool()?;
        let _err = r.i32()?;
        if done {
            return Ok(ops);
        }
        if !allowed(op_code) {
            return Err(DecodeError::BadMultiOp(op_code));
        }
        if ops.len() >= limits::MULTI_OPS_MAX {
            return Err(DecodeError::TooLong {
                len: ops.len() + 1,
                max: limits::MULTI_OPS_MAX,
            });
        }
        ops.push(Request::read(op_code, r)?);
    }
}

fn encode_multi(ops: &[Request<'_>], out: &mut Vec<u8>) {
    for o in ops {
        put_multi_header(out, o.op(), false, -1);
        o.encode(out);
    }
    put_multi_header(out, -1, true, -1);
}

impl<'a> Request<'a> {
    /// Decodes a request body (after the header). Trailing bytes are ignored,
    /// as ZooKeeper ignores them.
    pub fn decode(op_code: i32, body: &'a [u8]) -> Result<Request<'a>, DecodeError> {
        Self::read(op_code, &mut Reader::new(body))
    }

    // Struct-literal fields are evaluated in source order, which is wire order.
    fn read(op_code: i32, r: &mut Reader<'a>) -> Result<Request<'a>, DecodeError> {
        use Request as R;
        Ok(match op_code {
            op::CREATE | op::CREATE2 | op::CREATE_CONTAINER | op::CREATE_TTL => R::Create {
                op: op_code,
                req: CreateRequest::read(op_code, r)?,
            },
            op::DELETE => R::Delete {
                path: r.path()?,
                version: r.i32()?,
            },
            op::EXISTS => R::Exists {
                path: r.path()?,
                watch: r.bool()?,
            },
            op::GET_DATA => R::GetData {
                path: r.path()?,
                watch: r.bool()?,
            },
            op::SET_DATA => R::SetData {
                path: r.path()?,
                data: r.buffer()?,
                version: r.i32()?,
            },
            op::GET_ACL => R::GetAcl { path: r.path()? },
            op::SET_ACL => R::SetAcl {
                path: r.path()?,
                acl: r.acl_vec()?,
                version: r.i32()?,
            },
            op::GET_CHILDREN => R::GetChildren {
                path: r.path()?,
                watch: r.bool()?,
            },
            op::GET_CHILDREN2 => R::GetChildren2 {
                path: r.path()?,
                watch: r.bool()?,
            },
            op::SYNC => R::Sync { path: r.path()? },
            op::PING => R::Ping,
            op::CHECK => R::Check {
                path: r.path()?,
                version: r.i32()?,
            },
            op::MULTI => R::Multi(read_multi(r, allowed_in_multi)?),
            op::MULTI_READ => R::MultiRead(read_multi(r, allowed_in_multi_read)?),
            op::RECONFIG => R::Reconfig {
                joining: r.ustring()?,
                leaving: r.ustring()?,
                new_members: r.ustring()?,
                cur_config_id: r.i64()?,
            },
            op::CHECK_WATCHES => R::CheckWatches {
                path: r.path()?,
                watcher_type: r.i32()?,
            },
            op::REMOVE_WATCHES => R::RemoveWatches {
                path: r.path()?,
                watcher_type: r.i32()?,
            },
            op::AUTH => R::Auth {
                auth_type: r.i32()?,
                scheme: r.string()?,
                auth: r.bytes()?,
            },
            op::SET_WATCHES | op::SET_WATCHES2 => Self::read_set_watches(op_code, r)?,
            op::SASL => R::Sasl { token: r.bytes()? },
            op::GET_EPHEMERALS => R::GetEphemerals { prefix: r.path()? },
            op::GET_ALL_CHILDREN_NUMBER => R::GetAllChildrenNumber { path: r.path()? },
            op::ADD_WATCH => R::AddWatch {
                path: r.path()?,
                mode: r.i32()?,
            },
            op::WHO_AM_I => R::WhoAmI,
            op::CLOSE_SESSION => R::CloseSession,
            other => return Err(DecodeError::UnknownOpcode(other)),
        })
    }

    fn read_set_watches(op_code: i32, r: &mut Reader<'a>) -> Result<Request<'a>, DecodeError> {
        let relative_zxid = r.i64()?;
        let data = r.string_vec()?;
        let exist = r.string_vec()?;
        let child = r.string_vec()?;
        let (persistent, persistent_recursive) = if op_code == op::SET_WATCHES2 {
            (r.string_vec()?, r.string_vec()?)
        } else {
            (Vec::new(), Vec::new())
        };
        Ok(Request::SetWatches {
            relative_zxid,
            data,
            exist,
            child,
            persistent,
            persistent_recursive,
        })
    }

    /// Appends the body only (no frame length, no header).
    pub fn encode(&self, out: &mut Vec<u8>) {
        use Request as R;
        match self {
            R::Create { op, req } => req.encode(*op, out),
            R::Delete { path, version } | R::Check { path, version } => {
                put_str(out, path);
                put_i32(out, *version);
            }
            R::Exists { path, watch }
            | R::GetData { path, watch }
            | R::GetChildren { path, watch }
            | R::GetChildren2 { path, watch } => {
                put_str(out, path);
                put_bool(out, *watch);
            }
            R::SetData {
                path,
                data,
                version,
            } => {
                put_str(out, path);
                put_buffer(out, *data);
                put_i32(out, *version);
            }
            R::GetAcl { path }
            | R::Sync { path }
            | R::GetEphemerals { prefix: path }
            | R::GetAllChildrenNumber { path } => put_str(out, path),
            R::SetAcl { path, acl, version } => {
                put_str(out, path);
                put_acl_vec(out, acl);
                put_i32(out, *version);
            }
            R::Ping | R::WhoAmI | R::CloseSession => {}
            R::Multi(ops) | R::MultiRead(ops) => encode_multi(ops, out),
            R::Reconfig {
                joining,
                leaving,
                new_members,
                cur_config_id,
            } => {
                put_opt_str(out, *joining);
                put_opt_str(out, *leaving);
                put_opt_str(out, *new_members);
                put_i64(out, *cur_config_id);
            }
            R::CheckWatches { path, watcher_type }
            | R::RemoveWatches { path, watcher_type }
            | R::AddWatch {
                path,
                mode: watcher_type,
            } => {
                put_str(out, path);
                put_i32(out, *watcher_type);
            }
            R::Auth {
                auth_type,
                scheme,
                auth,
            } => {
                put_i32(out, *auth_type);
                put_str(out, scheme);
                put_bytes(out, auth);
            }
            R::SetWatches { .. } => self.encode_set_watches(out),
            R::Sasl { token } => put_bytes(out, token),
        }
    }

    fn encode_set_watches(&self, out: &mut Vec<u8>) {
        let Request::SetWatches {
            relative_zxid,
            data,
            exist,
            child,
            persistent,
            persistent_recursive,
        } = self
        else {
            return;
        };
        put_i64(out, *relative_zxid);
        for list in [data, exist, child] {
            put_str_vec(out, list.iter().copied());
        }
        if self.op() == op::SET_WATCHES2 {
            put_str_vec(out, persistent.iter().copied());
            put_str_vec(out, persistent_recursive.iter().copied());
        }
    }

    /// The wire opcode. SetWatches reports setWatches2 only when it carries
    /// persistent watches, since only then does the body differ.
    pub fn op(&self) -> i32 {
        use Request as R;
        match self {
            R::Create { op, .. } => *op,
            R::Delete { .. } => op::DELETE,
            R::Exists { .. } => op::EXISTS,
            R::GetData { .. } => op::GET_DATA,
            R::SetData { .. } => op::SET_DATA,
            R::GetAcl { .. } => op::GET_ACL,
            R::SetAcl { .. } => op::SET_ACL,
            R::GetChildren { .. } => op::GET_CHILDREN,
            R::GetChildren2 { .. } => op::GET_CHILDREN2,
            R::Sync { .. } => op::SYNC,
            R::Ping => op::PING,
            R::Check { .. } => op::CHECK,
            R::Multi(_) => op::MULTI,
            R::MultiRead(_) => op::MULTI_READ,
            R::Reconfig { .. } => op::RECONFIG,
            R::CheckWatches { .. } => op::CHECK_WATCHES,
            R::RemoveWatches { .. } => op::REMOVE_WATCHES,
            R::Auth { .. } => op::AUTH,
            R::SetWatches {
                persistent,
                persistent_recursive,
                ..
            } => {
                if persistent.is_empty() && persistent_recursive.is_empty() {
                    op::SET_WATCHES
                } else {
                    op::SET_WATCHES2
                }
            }
            R::Sasl { .. } => op::SASL,
            R::GetEphemerals { .. } => op::GET_EPHEMERALS,
            R::GetAllChildrenNumber { .. } => op::GET_ALL_CHILDREN_NUMBER,
            R::AddWatch { .. } => op::ADD_WATCH,
            R::WhoAmI => op::WHO_AM_I,
            R::CloseSession => op::CLOSE_SESSION,
        }
    }

    /// The single node path the request targets (getEphemerals: its prefix).
    pub fn path(&self) -> Option<&'a str> {
        use Request as R;
        match self {
            R::Create { req, .. } => Some(req.path),
            R::Delete { path, .. }
            | R::Exists { path, .. }
            | R::GetData { path, .. }
            | R::SetData { path, .. }
            | R::GetAcl { path }
            | R::SetAcl { path, .. }
            | R::GetChildren { path, .. }
            | R::GetChildren2 { path, .. }
            | R::Sync { path }
            | R::Check { path, .. }
            | R::CheckWatches { path, .. }
            | R::RemoveWatches { path, .. }
            | R::GetEphemerals { prefix: path }
            | R::GetAllChildrenNumber { path }
            | R::AddWatch { path, .. } => Some(path),
            R::Ping
            | R::Multi(_)
            | R::MultiRead(_)
            | R::Reconfig { .. }
            | R::Auth { .. }
            | R::SetWatches { .. }
            | R::Sasl { .. }
            | R::WhoAmI
            | R::CloseSession => None,
        }
    }

    /// Requests that go through the write pipeline (sync too: it must be
    /// ordered after every earlier write).
    pub fn is_write(&self) -> bool {
        op::is_write(self.op())
    }
}

/// Decodes a whole frame body (after the length prefix): header then request.
pub fn decode_frame(frame_body: &[u8]) -> Result<(RequestHeader, Request<'_>), DecodeError> {
    let (hdr, body) = RequestHeader::split(frame_body)?;
    Ok((hdr, Request::decode(hdr.op, body)?))
}

/// Appends a whole request frame (length, header, body), as a client sends it.
pub fn encode_request_frame(out: &mut Vec<u8>, xid: i32, req: &Request<'_>) {
    let at = begin_frame(out);
    RequestHeader { xid, op: req.op() }.encode(out);
    req.encode(out);
    end_frame(out, at);
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::proto::types::Id;

    fn acl() -> Vec<Acl> {
        vec![
            Acl::open_unsafe().remove(0),
            Acl {
                perms: 1,
                id: Id::new("ip", "10.0.0.0/8"),
            },
        ]
    }

    fn create(op_code: i32) -> Request<'static> {
        Request::Create {
            op: op_code,
            req: CreateRequest {
                path: "/a/b",
                data: Some(b"payload"),
                acl: acl(),
                flags: 2,
                ttl_ms: (op_code == op::CREATE_TTL).then_some(60_000),
            },
        }
    }

    pub(crate) fn all_requests() -> Vec<Request<'static>> {
        use Request as R;
        vec![
            create(op::CREATE),
            create(op::CREATE2),
            create(op::CREATE_CONTAINER),
            create(op::CREATE_TTL),
            R::Delete {
                path: "/d",
                version: -1,
            },
            R::Exists {
                path: "/e",
                watch: true,
            },
            R::GetData {
                path: "/g",
                watch: false,
            },
            R::SetData {
                path: "/s",
                data: None,
                version: 3,
            },
            R::GetAcl { path: "/acl" },
            R::SetAcl {
                path: "/acl",
                acl: acl(),
                version: 0,
            },
            R::GetChildren {
                path: "/",
                watch: true,
            },
            R::GetChildren2 {
                path: "/c",
                watch: false,
            },
            R::Sync { path: "/" },
            R::Ping,
            R::Check {
                path: "/k",
                version: 9,
            },
            R::Multi(vec![
                create(op::CREATE),
                create(op::CREATE_TTL),
                R::Delete {
                    path: "/x",
                    version: 1,
                },
                R::SetData {
                    path: "/y",
                    data: Some(b"z"),
                    version: -1,
                },
                R::Check {
                    path: "/w",
                    version: 2,
                },
            ]),
            R::Multi(vec![]),
            R::MultiRead(vec![
                R::GetChildren {
                    path: "/p",
                    watch: false,
                },
                R::GetData {
                    path: "/q",
                    watch: true,
                },
            ]),
            R::Reconfig {
                joining: Some("server.4=h:1:2;3"),
                leaving: None,
                new_members: Some(""),
                cur_config_id: -1,
            },
            R::CheckWatches {
                path: "/cw",
                watcher_type: 3,
            },
            R::RemoveWatches {
                path: "/rw",
                watcher_type: 1,
            },
            R::Auth {
                auth_type: 0,
                scheme: "digest",
                auth: b"user:pw",
            },
            R::SetWatches {
                relative_zxid: 77,
                data: vec!["/a", "/b"],
                exist: vec![],
                child: vec!["/"],
                persistent: vec![],
                persistent_recursive: vec![],
            },
            R::SetWatches {
                relative_zxid: 78,
                data: vec![],
                exist: vec!["/x"],
                child: vec![],
                persistent: vec!["/p"],
                persistent_recursive: vec!["/r", "/s"],
            },
            R::Sasl { token: b"\x00\x01" },
            R::GetEphemerals { prefix: "/eph" },
            R::GetAllChildrenNumber { path: "/n" },
            R::AddWatch {
                path: "/aw",
                mode: 1,
            },
            R::WhoAmI,
            R::CloseSession,
        ]
    }

    fn frame_of(xid: i32, req: &Request<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        encode_request_frame(&mut out, xid, req);
        out
    }

    #[test]
    fn every_request_round_trips() {
        for (i, req) in all_requests().iter().enumerate() {
            let mut body = Vec::new();
            req.encode(&mut body);
            assert_eq!(Request::decode(req.op(), &body).as_ref(), Ok(req));
            let frame = frame_of(i as i32, req);
            let (hdr, got) = decode_frame(&frame[4..]).unwrap();
            assert_eq!(
                hdr,
                RequestHeader {
                    xid: i as i32,
                    op: req.op()
                }
            );
            assert_eq!(&got, req);
        }
    }

    #[test]
    fn get_data_is_byte_exact() {
        let frame = frame_of(
            1,
            &Request::GetData {
                path: "/a",
                watch: true,
            },
        );
        assert_eq!(
            frame,
            [0, 0, 0, 15, 0, 0, 0, 1, 0, 0, 0, 4, 0, 0, 0, 2, b'/', b'a', 1]
        );
    }

    #[test]
    fn multi_is_byte_exact() {
        let req = Request::Multi(vec![Request::Check {
            path: "/",
            version: 0,
        }]);
        let mut body = Vec::new();
        req.encode(&mut body);
        let want: Vec<u8> = [
            &[0, 0, 0, 13, 0, 0xff, 0xff, 0xff, 0xff][..],
            &[0, 0, 0, 1, b'/', 0, 0, 0, 0],
            &[0xff, 0xff, 0xff, 0xff, 1, 0xff, 0xff, 0xff, 0xff],
        ]
        .concat();
        assert_eq!(body, want);
    }

    #[test]
    fn accessors() {
        let reqs = all_requests();
        assert_eq!(reqs[0].path(), Some("/a/b"));
        assert!(reqs[0].is_write());
        assert!(!Request::GetData {
            path: "/",
            watch: false
        }
        .is_write());
        assert!(Request::Sync { path: "/" }.is_write());
        assert!(!Request::MultiRead(vec![]).is_write());
        assert_eq!(Request::Ping.path(), None);
    }

    #[test]
    fn set_watches_101_ignores_persistent_lists() {
        let mut body = Vec::new();
        put_i64(&mut body, 5);
        for _ in 0..3 {
            put_i32(&mut body, -1);
        }
        let r = Request::decode(op::SET_WATCHES, &body).unwrap();
        assert_eq!(r.op(), op::SET_WATCHES);
        assert!(Request::decode(op::SET_WATCHES2, &body).is_err());
    }

    #[test]
    fn truncation_at_every_position_fails() {
        for req in all_requests() {
            let frame = frame_of(7, &req);
            let body = &frame[4..];
            // Requests with a body fail at every cut; header-only ones need the header.
            let min_ok = if matches!(req, Request::Ping | Request::WhoAmI | Request::CloseSession) {
                8
            } else {
                body.len()
            };
            for cut in 0..min_ok {
                assert!(decode_frame(&body[..cut]).is_err(), "{req:?} cut {cut}");
            }
        }
    }

    #[test]
    fn trailing_bytes_are_ignored() {
        let mut body = Vec::new();
        Request::Sync { path: "/" }.encode(&mut body);
        body.extend_from_slice(b"junk");
        assert_eq!(
            Request::decode(op::SYNC, &body),
            Ok(Request::Sync { path: "/" })
        );
    }

    #[test]
    fn hostile_inputs() {
        assert_eq!(
            Request::decode(999, &[]),
            Err(DecodeError::UnknownOpcode(999))
        );
        assert_eq!(
            Request::decode(op::DELETE_CONTAINER, &[]),
            Err(DecodeError::UnknownOpcode(op::DELETE_CONTAINER))
        );
        // Invalid UTF-8 path.
        let mut body = Vec::new();
        put_bytes(&mut body, &[b'/', 0xc3, 0x28]);
        put_bool(&mut body, false);
        assert_eq!(
            Request::decode(op::GET_DATA, &body),
            Err(DecodeError::InvalidUtf8)
        );
        // Null path.
        let mut body = Vec::new();
        put_i32(&mut body, -1);
        put_i32(&mut body, 0);
        assert_eq!(
            Request::decode(op::DELETE, &body),
            Err(DecodeError::NullString)
        );
        // Huge path length.
        let mut body = Vec::new();
        put_i32(&mut body, i32::MAX);
        assert_eq!(
            Request::decode(op::SYNC, &body),
            Err(DecodeError::Truncated)
        );
        // Vector count 2^31-1 for ACLs and setWatches lists.
        let mut body = Vec::new();
        put_str(&mut body, "/a");
        put_i32(&mut body, i32::MAX);
        assert!(matches!(
            Request::decode(op::SET_ACL, &body),
            Err(DecodeError::TooLong { .. })
        ));
        let mut body = Vec::new();
        put_i64(&mut body, 0);
        put_i32(&mut body, i32::MAX);
        assert!(matches!(
            Request::decode(op::SET_WATCHES, &body),
            Err(DecodeError::TooLong { .. })
        ));
    }

    #[test]
    fn multi_rejects_nesting_and_foreign_ops() {
        let inner = Request::Multi(vec![]);
        let mut body = Vec::new();
        put_multi_header(&mut body, op::MULTI, false, -1);
        inner.encode(&mut body);
        put_multi_header(&mut body, -1, true, -1);
        assert_eq!(
            Request::decode(op::MULTI, &body),
            Err(DecodeError::BadMultiOp(op::MULTI))
        );
        let mut body = Vec::new();
        encode_multi(
            &[Request::GetData {
                path: "/",
                watch: false,
            }],
            &mut body,
        );
        assert_eq!(
            Request::decode(op::MULTI, &body),
            Err(DecodeError::BadMultiOp(op::GET_DATA))
        );
        let mut body = Vec::new();
        encode_multi(
            &[Request::Delete {
                path: "/",
                version: 0,
            }],
            &mut body,
        );
        assert!(
            matches!(
                Request::decode(op::MULTI_READ, &body),
                Ok(Request::MultiRead(ops)) if matches!(ops[..], [Request::Delete { .. }])
            ),
            "a write decodes inside a multiRead, as in ZooKeeper"
        );
        // Missing terminator.
        let mut body = Vec::new();
        put_multi_header(&mut body, op::CHECK, false, -1);
        Request::Check {
            path: "/",
            version: 0,
        }
        .encode(&mut body);
        assert_eq!(
            Request::decode(op::MULTI, &body),
            Err(DecodeError::Truncated)
        );
    }

    #[test]
    fn multi_op_count_is_capped() {
        let one = Request::Check {
            path: "/",
            version: 0,
        };
        let ops = vec![one; limits::MULTI_OPS_MAX + 1];
        let mut body = Vec::new();
        encode_multi(&ops, &mut body);
        assert!(matches!(
            Request::decode(op::MULTI, &body),
            Err(DecodeError::TooLong { .. })
        ));
    }

    /// xorshift64*: deterministic, dependency-free randomness for the fuzz loop.
    pub(crate) struct Rng(pub u64);
    impl Rng {
        pub fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        pub fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// Flips, overwrites with "interesting" values, inserts, or truncates.
    pub(crate) fn mutate(rng: &mut Rng, buf: &mut Vec<u8>) {
        for _ in 0..1 + rng.below(4) {
            if buf.is_empty() {
                buf.push(rng.next() as u8);
                continue;
            }
            let at = rng.below(buf.len());
            match rng.below(5) {
                0 => buf[at] ^= 1 << rng.below(8),
                1 => buf[at] = [0x00, 0xff, 0x7f, 0x80][rng.below(4)],
                2 => buf.insert(at, rng.next() as u8),
                3 => buf.truncate(at),
                _ => {
                    let end = (at + 4).min(buf.len());
                    buf[at..end].fill(if rng.below(2) == 0 { 0xff } else { 0x7f });
                }
            }
        }
    }

    #[test]
    fn fuzz_decode_never_panics() {
        let frames: Vec<Vec<u8>> = all_requests()
            .iter()
            .map(|r| frame_of(3, r)[4..].to_vec())
            .collect();
        let mut rng = Rng(0x5eed_1234_abcd_0001);
        let mut ok = 0;
        for i in 0..20_000 {
            let mut f = frames[i % frames.len()].clone();
            mutate(&mut rng, &mut f);
            if decode_frame(&f).is_ok() {
                ok += 1;
            }
            // Also decode the mutated body under a random opcode.
            if f.len() >= 8 {
                let op_code = [1, 2, 5, 14, 22, 101, 105, 16, 100][rng.below(9)];
                let _ = Request::decode(op_code, &f[8..]);
            }
        }
        // Sanity: the mutator leaves some frames valid, so both paths ran.
        assert!(ok > 0);
    }
}

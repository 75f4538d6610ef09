//! The session handshake: ConnectRequest (first frame, no request header)
//! and ConnectResponse.

use super::frame::{begin_frame, end_frame};
use super::jute::{put_bool, put_bytes, put_i32, put_i64, DecodeError, Reader};
use crate::limits::SESSION_PASSWD_BYTES;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectRequest<'a> {
    pub protocol_version: i32,
    pub last_zxid_seen: i64,
    pub timeout_ms: i32,
    pub session_id: i64,
    /// Borrowed from the frame; null on the wire reads as empty.
    pub passwd: &'a [u8],
    /// `None` when an old client omitted the trailing byte; the response
    /// must then omit it too.
    pub read_only: Option<bool>,
}

impl<'a> ConnectRequest<'a> {
    /// Decodes a frame body. Bytes after readOnly are ignored, as ZooKeeper does.
    pub fn decode(body: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body);
        let protocol_version = r.i32()?;
        let last_zxid_seen = r.i64()?;
        let timeout_ms = r.i32()?;
        let session_id = r.i64()?;
        let passwd = r.bytes()?;
        let read_only = if r.is_empty() { None } else { Some(r.bool()?) };
        Ok(ConnectRequest {
            protocol_version,
            last_zxid_seen,
            timeout_ms,
            session_id,
            passwd,
            read_only,
        })
    }

    /// Appends the body only (no length prefix).
    pub fn encode(&self, out: &mut Vec<u8>) {
        put_i32(out, self.protocol_version);
        put_i64(out, self.last_zxid_seen);
        put_i32(out, self.timeout_ms);
        put_i64(out, self.session_id);
        put_bytes(out, self.passwd);
        if let Some(ro) = self.read_only {
            put_bool(out, ro);
        }
    }

    /// Appends a whole frame, as a client sends it.
    pub fn encode_frame(&self, out: &mut Vec<u8>) {
        let at = begin_frame(out);
        self.encode(out);
        end_frame(out, at);
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectResponse {
    pub protocol_version: i32,
    pub timeout_ms: i32,
    pub session_id: i64,
    pub passwd: [u8; SESSION_PASSWD_BYTES],
    pub read_only: Option<bool>,
}

impl ConnectResponse {
    /// The reply for an unknown/expired session or a wrong password: clients
    /// read timeout 0 and session 0 as "session expired".
    pub fn expired(read_only: Option<bool>) -> Self {
        ConnectResponse {
            protocol_version: 0,
            timeout_ms: 0,
            session_id: 0,
            passwd: [0; SESSION_PASSWD_BYTES],
            read_only,
        }
    }

    /// Appends a whole frame, length prefix included.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let at = begin_frame(out);
        put_i32(out, self.protocol_version);
        put_i32(out, self.timeout_ms);
        put_i64(out, self.session_id);
        put_bytes(out, &self.passwd);
        if let Some(ro) = self.read_only {
            put_bool(out, ro);
        }
        end_frame(out, at);
    }

    /// Decodes a frame body (after the length prefix), as a client does.
    pub fn decode(body: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body);
        let protocol_version = r.i32()?;
        let timeout_ms = r.i32()?;
        let session_id = r.i64()?;
        let passwd = r
            .bytes()?
            .try_into()
            .map_err(|_| DecodeError::Invalid("session password must be 16 bytes"))?;
        let read_only = if r.is_empty() { None } else { Some(r.bool()?) };
        Ok(ConnectResponse {
            protocol_version,
            timeout_ms,
            session_id,
            passwd,
            read_only,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::frame::frame_len;

    fn req(read_only: Option<bool>) -> ConnectRequest<'static> {
        ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 0x1_0000_0005,
            timeout_ms: 30_000,
            session_id: 0x0100_0000_0000_0042,
            passwd: &[7; 16],
            read_only,
        }
    }

    #[test]
    fn request_round_trips_with_and_without_read_only() {
        for ro in [None, Some(false), Some(true)] {
            let mut out = Vec::new();
            req(ro).encode(&mut out);
            assert_eq!(ConnectRequest::decode(&out), Ok(req(ro)));
            let mut framed = Vec::new();
            req(ro).encode_frame(&mut framed);
            assert_eq!(&framed[4..], &out[..]);
        }
    }

    #[test]
    fn request_without_read_only_is_byte_exact() {
        let r = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 0,
            timeout_ms: 4000,
            session_id: 0,
            passwd: &[0; 16],
            read_only: None,
        };
        let mut out = Vec::new();
        r.encode_frame(&mut out);
        let mut want = vec![0, 0, 0, 44, 0, 0, 0, 0];
        want.extend_from_slice(&[0; 8]);
        want.extend_from_slice(&[0, 0, 0x0f, 0xa0]);
        want.extend_from_slice(&[0; 8]);
        want.extend_from_slice(&[0, 0, 0, 16]);
        want.extend_from_slice(&[0; 16]);
        assert_eq!(out, want);
        assert_eq!(ConnectRequest::decode(&want[4..]), Ok(r));
    }

    #[test]
    fn response_round_trips() {
        for ro in [None, Some(true)] {
            let resp = ConnectResponse {
                protocol_version: 0,
                timeout_ms: 6000,
                session_id: -5,
                passwd: *b"0123456789abcdef",
                read_only: ro,
            };
            let mut out = Vec::new();
            resp.encode(&mut out);
            let total = frame_len(&out, 1000).unwrap().unwrap();
            assert_eq!(total, out.len());
            assert_eq!(out.len(), 4 + 36 + ro.is_some() as usize);
            assert_eq!(ConnectResponse::decode(&out[4..]), Ok(resp));
        }
        let mut out = Vec::new();
        ConnectResponse::expired(None).encode(&mut out);
        assert_eq!(
            ConnectResponse::decode(&out[4..]),
            Ok(ConnectResponse::expired(None))
        );
    }

    #[test]
    fn truncated_requests_fail() {
        let mut out = Vec::new();
        req(Some(true)).encode(&mut out);
        // Cutting exactly the readOnly byte yields a valid old-style request.
        for cut in 0..out.len() - 1 {
            assert!(ConnectRequest::decode(&out[..cut]).is_err(), "cut {cut}");
        }
        let mut bad = Vec::new();
        ConnectResponse::expired(None).encode(&mut bad);
        bad[4 + 16 + 3] = 5; // password length 5, not 16
        assert!(ConnectResponse::decode(&bad[4..]).is_err());
    }
}

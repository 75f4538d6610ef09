//! The ZooKeeper client wire protocol ("jute"): pure encoding and decoding, no I/O.
//!
//! - [`jute`]     primitives: zero-copy `Reader`, `put_*` writers, `DecodeError`.
//! - [`frame`]    length-prefixed frames and four-letter-word detection.
//! - [`connect`]  the session handshake.
//! - [`request`]  request header and the borrowed `Request` enum.
//! - [`response`] replies and watch events, encoded as whole frames.

pub mod connect;
pub mod frame;
pub mod jute;
pub mod request;
pub mod response;
pub mod types;

pub use connect::{ConnectRequest, ConnectResponse};
pub use frame::{begin_frame, end_frame, four_letter_word, frame_len, FrameError};
pub use jute::{DecodeError, Reader};
pub use request::{decode_frame, encode_request_frame, CreateRequest, Request, RequestHeader};
pub use response::{
    decode_acl_response, decode_response, decode_watch_event, encode_children, encode_error,
    encode_reply, encode_watch_event, MultiResult, ReplyHeader, Response, WatchEvent,
};
pub use types::*;

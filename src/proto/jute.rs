//! Jute primitives: a zero-copy `Reader` over a received frame and `put_*`
//! functions that append big-endian jute encodings to a send buffer.

use super::types::{Acl, Id, Stat};
use crate::limits;

/// Why a frame could not be decoded. Any of these closes the connection.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    #[error("truncated record")]
    Truncated,
    #[error("negative length {0}")]
    NegativeLength(i32),
    #[error("length {len} exceeds limit {max}")]
    TooLong { len: usize, max: usize },
    #[error("invalid UTF-8 in string")]
    InvalidUtf8,
    #[error("null where a string is required")]
    NullString,
    #[error("unknown opcode {0}")]
    UnknownOpcode(i32),
    #[error("opcode {0} not allowed inside this multi")]
    BadMultiOp(i32),
    #[error("invalid record: {0}")]
    Invalid(&'static str),
}

/// Size of a `Stat` on the wire.
pub const STAT_BYTES: usize = 68;

/// Cursor over a borrowed byte slice; every read checks bounds first, so no
/// input can make it panic or allocate more than the input could justify.
#[derive(Clone, Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The unread bytes, without consuming them.
    pub fn rest(&self) -> &'a [u8] {
        self.buf
    }

    /// Consumes exactly `n` bytes or fails without consuming anything.
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.buf.len() {
            return Err(DecodeError::Truncated);
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let bytes = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    pub fn i32(&mut self) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    pub fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    /// Java's `readBoolean` treats any non-zero byte as true; so do we.
    pub fn bool(&mut self) -> Result<bool, DecodeError> {
        Ok(self.take(1)?[0] != 0)
    }

    /// A jute `buffer`: length -1 is null. The length is checked against the
    /// remaining input before anything is sliced.
    pub fn buffer(&mut self) -> Result<Option<&'a [u8]>, DecodeError> {
        let len = self.i32()?;
        if len == -1 {
            return Ok(None);
        }
        if len < 0 {
            return Err(DecodeError::NegativeLength(len));
        }
        self.take(len as usize).map(Some)
    }

    /// A buffer where null and empty mean the same thing (node data, passwords).
    pub fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        Ok(self.buffer()?.unwrap_or(&[]))
    }

    /// A nullable jute `ustring`.
    pub fn ustring(&mut self) -> Result<Option<&'a str>, DecodeError> {
        match self.buffer()? {
            None => Ok(None),
            Some(b) => std::str::from_utf8(b)
                .map(Some)
                .map_err(|_| DecodeError::InvalidUtf8),
        }
    }

    /// A `ustring` that must not be null (paths, schemes).
    pub fn string(&mut self) -> Result<&'a str, DecodeError> {
        self.ustring()?.ok_or(DecodeError::NullString)
    }

    /// A path: a non-null string; path syntax is validated by the server, not here.
    pub fn path(&mut self) -> Result<&'a str, DecodeError> {
        self.string()
    }

    pub fn stat(&mut self) -> Result<Stat, DecodeError> {
        // Check the full size up front so a short Stat fails before any field.
        if self.remaining() < STAT_BYTES {
            return Err(DecodeError::Truncated);
        }
        Ok(Stat {
            czxid: self.i64()?,
            mzxid: self.i64()?,
            ctime: self.i64()?,
            mtime: self.i64()?,
            version: self.i32()?,
            cversion: self.i32()?,
            aversion: self.i32()?,
            ephemeral_owner: self.i64()?,
            data_length: self.i32()?,
            num_children: self.i32()?,
            pzxid: self.i64()?,
        })
    }

    /// An ACL id. Either string may be null on the wire (kazoo sends `auth`
    /// ids with a null id); Java reads null and the ACL checks then reject or
    /// ignore it, so null decodes as "" rather than failing the request.
    pub fn id(&mut self) -> Result<Id, DecodeError> {
        let scheme = self.ustring()?.unwrap_or_default();
        let id = self.ustring()?.unwrap_or_default();
        Ok(Id::new(scheme, id))
    }

    pub fn acl(&mut self) -> Result<Acl, DecodeError> {
        let perms = self.i32()?;
        let id = self.id()?;
        Ok(Acl { perms, id })
    }

    /// A vector count: -1 (null) reads as 0. `min_elem` is the smallest
    /// encoding of one element, so a count the input cannot hold is rejected
    /// before any `Vec` is sized from it.
    pub fn vec_len(&mut self, min_elem: usize) -> Result<usize, DecodeError> {
        let n = self.i32()?;
        if n == -1 {
            return Ok(0);
        }
        if n < 0 {
            return Err(DecodeError::NegativeLength(n));
        }
        let n = n as usize;
        if n > limits::VECTOR_LEN_MAX {
            return Err(DecodeError::TooLong {
                len: n,
                max: limits::VECTOR_LEN_MAX,
            });
        }
        if n > self.remaining() / min_elem.max(1) {
            return Err(DecodeError::Truncated);
        }
        Ok(n)
    }

    /// Consumes `prefix` if the input starts with it (a field whose encoding
    /// equals one seen before: decoding it again would give the same value).
    pub fn skip_if_next(&mut self, prefix: &[u8]) -> bool {
        let found = self.buf.starts_with(prefix);
        if found {
            self.buf = &self.buf[prefix.len()..];
        }
        found
    }

    /// `vector<ACL>`; each ACL is at least perms + two string lengths.
    pub fn acl_vec(&mut self) -> Result<Vec<Acl>, DecodeError> {
        let n = self.vec_len(12)?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(self.acl()?);
        }
        Ok(v)
    }

    /// `vector<ustring>` of non-null strings, borrowed from the input.
    pub fn string_vec(&mut self) -> Result<Vec<&'a str>, DecodeError> {
        let n = self.vec_len(4)?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(self.string()?);
        }
        Ok(v)
    }
}

pub fn put_i32(out: &mut Vec<u8>, v: i32) {
    out.extend_from_slice(&v.to_be_bytes());
}

pub fn put_i64(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(&v.to_be_bytes());
}

pub fn put_bool(out: &mut Vec<u8>, v: bool) {
    out.push(v as u8);
}

/// Lengths are i32 on the wire; anything larger cannot be represented, and
/// the frame cap makes such sizes a bug rather than an input.
fn wire_len(len: usize) -> i32 {
    i32::try_from(len).expect("jute field longer than i32::MAX")
}

pub fn put_buffer(out: &mut Vec<u8>, v: Option<&[u8]>) {
    match v {
        None => put_i32(out, -1),
        Some(b) => {
            put_i32(out, wire_len(b.len()));
            out.extend_from_slice(b);
        }
    }
}

pub fn put_bytes(out: &mut Vec<u8>, v: &[u8]) {
    put_buffer(out, Some(v));
}

pub fn put_str(out: &mut Vec<u8>, s: &str) {
    put_buffer(out, Some(s.as_bytes()));
}

pub fn put_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    put_buffer(out, s.map(str::as_bytes));
}

pub fn put_stat(out: &mut Vec<u8>, s: &Stat) {
    put_i64(out, s.czxid);
    put_i64(out, s.mzxid);
    put_i64(out, s.ctime);
    put_i64(out, s.mtime);
    put_i32(out, s.version);
    put_i32(out, s.cversion);
    put_i32(out, s.aversion);
    put_i64(out, s.ephemeral_owner);
    put_i32(out, s.data_length);
    put_i32(out, s.num_children);
    put_i64(out, s.pzxid);
}

pub fn put_id(out: &mut Vec<u8>, id: &Id) {
    put_str(out, &id.scheme);
    put_str(out, &id.id);
}

pub fn put_acl(out: &mut Vec<u8>, acl: &Acl) {
    put_i32(out, acl.perms);
    put_id(out, &acl.id);
}

pub fn put_acl_vec(out: &mut Vec<u8>, acls: &[Acl]) {
    put_i32(out, wire_len(acls.len()));
    for a in acls {
        put_acl(out, a);
    }
}

/// `vector<ustring>` from any iterator: the count is patched in afterwards,
/// so callers can stream straight from a map's keys without collecting.
pub fn put_str_vec<'s, I>(out: &mut Vec<u8>, items: I)
where
    I: IntoIterator<Item = &'s str>,
{
    let at = out.len();
    put_i32(out, 0);
    let mut n = 0usize;
    for s in items {
        put_str(out, s);
        n += 1;
    }
    out[at..at + 4].copy_from_slice(&wire_len(n).to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_stat() -> Stat {
        Stat {
            czxid: 1,
            mzxid: 2,
            ctime: 3,
            mtime: 4,
            version: 5,
            cversion: 6,
            aversion: 7,
            ephemeral_owner: 8,
            data_length: 9,
            num_children: 10,
            pzxid: 11,
        }
    }

    #[test]
    fn primitives_round_trip() {
        let mut out = Vec::new();
        put_i32(&mut out, -7);
        put_i64(&mut out, i64::MIN);
        put_bool(&mut out, true);
        put_buffer(&mut out, None);
        put_buffer(&mut out, Some(b"xy"));
        put_opt_str(&mut out, None);
        put_str(&mut out, "héllo");
        let mut r = Reader::new(&out);
        assert_eq!(r.i32(), Ok(-7));
        assert_eq!(r.i64(), Ok(i64::MIN));
        assert_eq!(r.bool(), Ok(true));
        assert_eq!(r.buffer(), Ok(None));
        assert_eq!(r.buffer(), Ok(Some(&b"xy"[..])));
        assert_eq!(r.ustring(), Ok(None));
        assert_eq!(r.path(), Ok("héllo"));
        assert!(r.is_empty());
        assert_eq!(r.i32(), Err(DecodeError::Truncated));
    }

    #[test]
    fn stat_is_68_bytes_and_round_trips() {
        let mut out = Vec::new();
        put_stat(&mut out, &sample_stat());
        assert_eq!(out.len(), STAT_BYTES);
        assert_eq!(&out[..8], &[0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(Reader::new(&out).stat(), Ok(sample_stat()));
        assert_eq!(Reader::new(&out[..67]).stat(), Err(DecodeError::Truncated));
    }

    #[test]
    fn acl_and_string_vectors_round_trip() {
        let acls = vec![
            Acl::open_unsafe().remove(0),
            Acl {
                perms: 3,
                id: Id::new("digest", "u:h"),
            },
        ];
        let mut out = Vec::new();
        put_acl_vec(&mut out, &acls);
        put_str_vec(&mut out, ["a", "", "/b/c"]);
        put_str_vec(&mut out, std::iter::empty());
        let mut r = Reader::new(&out);
        assert_eq!(r.acl_vec().unwrap(), acls);
        assert_eq!(r.string_vec().unwrap(), vec!["a", "", "/b/c"]);
        assert!(r.string_vec().unwrap().is_empty());
        assert!(r.is_empty());
    }

    #[test]
    fn null_vector_is_empty() {
        let b = (-1i32).to_be_bytes();
        assert_eq!(Reader::new(&b).string_vec(), Ok(vec![]));
        assert_eq!(Reader::new(&b).acl_vec(), Ok(vec![]));
    }

    #[test]
    fn hostile_lengths_are_rejected() {
        let neg = (-2i32).to_be_bytes();
        assert_eq!(
            Reader::new(&neg).buffer(),
            Err(DecodeError::NegativeLength(-2))
        );
        let mut huge = i32::MAX.to_be_bytes().to_vec();
        huge.extend_from_slice(b"abc");
        assert_eq!(Reader::new(&huge).buffer(), Err(DecodeError::Truncated));
        assert!(matches!(
            Reader::new(&huge).string_vec(),
            Err(DecodeError::TooLong { .. })
        ));
        assert!(matches!(
            Reader::new(&huge).acl_vec(),
            Err(DecodeError::TooLong { .. })
        ));
        // Under the vector cap but more than the input can hold.
        let mut many = 1000i32.to_be_bytes().to_vec();
        many.extend_from_slice(&[0; 40]);
        assert_eq!(Reader::new(&many).string_vec(), Err(DecodeError::Truncated));
        assert_eq!(
            Reader::new(&i32::MIN.to_be_bytes()).string_vec(),
            Err(DecodeError::NegativeLength(i32::MIN))
        );
    }

    #[test]
    fn invalid_utf8_and_null_strings() {
        let mut out = Vec::new();
        put_bytes(&mut out, &[b'/', 0xff, 0xfe]);
        assert_eq!(Reader::new(&out).path(), Err(DecodeError::InvalidUtf8));
        let null = (-1i32).to_be_bytes();
        assert_eq!(Reader::new(&null).path(), Err(DecodeError::NullString));
        assert_eq!(Reader::new(&null).bytes(), Ok(&[][..]));
    }
}

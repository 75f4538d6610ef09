//! Length-prefixed framing: finding complete frames in a receive buffer,
//! writing frames into a send buffer, and spotting four-letter words.

use crate::limits::FRAME_LEN_BYTES;

/// A frame header the server must refuse by closing the connection.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    #[error("negative frame length {0}")]
    NegativeLength(i32),
    #[error("frame length {len} exceeds jute.maxbuffer {max}")]
    TooLong { len: usize, max: usize },
}

/// Total size (prefix + body) of the frame at the front of `buf`, or `None`
/// if more bytes are needed. The length is validated from the 4-byte prefix
/// alone, so callers can refuse a hostile length before buffering its body.
pub fn frame_len(buf: &[u8], max_bytes: usize) -> Result<Option<usize>, FrameError> {
    let Some(prefix) = buf.first_chunk::<FRAME_LEN_BYTES>() else {
        return Ok(None);
    };
    let len = i32::from_be_bytes(*prefix);
    if len < 0 {
        return Err(FrameError::NegativeLength(len));
    }
    let len = len as usize;
    if len > max_bytes {
        return Err(FrameError::TooLong {
            len,
            max: max_bytes,
        });
    }
    let total = FRAME_LEN_BYTES + len;
    Ok((buf.len() >= total).then_some(total))
}

/// Reserves the length prefix of a new frame; returns where it starts.
pub fn begin_frame(out: &mut Vec<u8>) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0; FRAME_LEN_BYTES]);
    start
}

/// Patches the prefix reserved by `begin_frame` with the body length.
pub fn end_frame(out: &mut [u8], start: usize) {
    let body = out.len() - start - FRAME_LEN_BYTES;
    let len = i32::try_from(body).expect("frame longer than i32::MAX");
    out[start..start + FRAME_LEN_BYTES].copy_from_slice(&len.to_be_bytes());
}

/// Every four-letter word ZooKeeper answers on the client port.
const FOUR_LETTER_WORDS: [&str; 18] = [
    "ruok", "srvr", "stat", "conf", "cons", "crst", "dump", "envi", "mntr", "srst", "wchs", "wchc",
    "wchp", "dirs", "isro", "hash", "gtmk", "stmk",
];

/// Recognises a four-letter word from the first 4 bytes of a fresh connection.
/// ZooKeeper reads those bytes as the first frame length; ASCII letters make a
/// length of over 1.6 GB, which no real ConnectRequest has, so the two cannot
/// be confused. `stmk` is followed by an 8-byte mask the caller must read.
pub fn four_letter_word(first4: &[u8; 4]) -> Option<&'static str> {
    FOUR_LETTER_WORDS
        .iter()
        .copied()
        .find(|w| w.as_bytes() == first4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_len_cases() {
        assert_eq!(frame_len(&[], 100), Ok(None));
        assert_eq!(frame_len(&[0, 0, 0], 100), Ok(None));
        assert_eq!(frame_len(&[0, 0, 0, 0], 100), Ok(Some(4)));
        assert_eq!(frame_len(&[0, 0, 0, 2, 9], 100), Ok(None));
        assert_eq!(frame_len(&[0, 0, 0, 2, 9, 9, 7], 100), Ok(Some(6)));
        assert_eq!(
            frame_len(&[0xff, 0xff, 0xff, 0xff], 100),
            Err(FrameError::NegativeLength(-1))
        );
        assert_eq!(
            frame_len(&[0, 0, 0, 101], 100),
            Err(FrameError::TooLong { len: 101, max: 100 })
        );
        assert_eq!(frame_len(&[0, 0, 0, 100], 100), Ok(None));
        assert_eq!(frame_len(&[0x7f, 0xff, 0xff, 0xff], usize::MAX), Ok(None));
    }

    #[test]
    fn begin_end_frame_patches_length() {
        let mut out = vec![1, 2];
        let at = begin_frame(&mut out);
        out.extend_from_slice(b"hello");
        end_frame(&mut out, at);
        assert_eq!(out, [1, 2, 0, 0, 0, 5, b'h', b'e', b'l', b'l', b'o']);
        assert_eq!(frame_len(&out[2..], 100), Ok(Some(9)));
    }

    #[test]
    fn four_letter_words() {
        assert_eq!(four_letter_word(b"ruok"), Some("ruok"));
        assert_eq!(four_letter_word(b"stmk"), Some("stmk"));
        assert_eq!(four_letter_word(b"RUOK"), None);
        assert_eq!(four_letter_word(&[0, 0, 0, 45]), None);
        for w in FOUR_LETTER_WORDS {
            let b: [u8; 4] = w.as_bytes().try_into().unwrap();
            // Every word is far above any sane frame limit.
            assert!(i32::from_be_bytes(b) as usize > crate::limits::FRAME_BYTES_MAX_CAP);
        }
    }
}

//! A connection's unsent replies and events as a queue of chunks.
//!
//! One growable buffer doubles its allocation as it fills, so a connection
//! at a few MB of replies could hold twice that, and every doubling copies
//! everything queued so far. Chunks bound both: small replies share a chunk
//! of at most [`limits::SEND_CHUNK_BYTES`], a large reply (a 1 MB getData)
//! gets a chunk of exactly its announced size, and the writer frees each
//! chunk as soon as the socket took it, so memory falls while a slow client
//! drains instead of staying at the high-water mark until the last byte.

use std::collections::VecDeque;

use crate::limits;

#[derive(Default)]
pub struct SendQueue {
    /// Oldest first; the last one is the tail that replies are appended to.
    chunks: VecDeque<Vec<u8>>,
    /// Sum of the capacities of every chunk but the tail.
    sealed_bytes: usize,
    /// An emptied chunk kept for the next tail, so a connection that
    /// flushes small batches does not allocate for each.
    spare: Option<Vec<u8>>,
}

impl SendQueue {
    pub fn new() -> Self {
        Self::default()
    }

    /// The buffer to append a reply of about `expected_bytes` to: the tail,
    /// unless that would make it grow past a chunk (then a new chunk is
    /// started, sized for the reply when it is large).
    pub fn buf_for(&mut self, expected_bytes: usize) -> &mut Vec<u8> {
        let fits = self.chunks.back().is_some_and(|tail| {
            let after = tail.len() + expected_bytes;
            after <= tail.capacity() || after <= limits::SEND_CHUNK_BYTES
        });
        if !fits {
            self.start_chunk(expected_bytes);
        }
        self.chunks.back_mut().expect("a tail chunk exists")
    }

    fn start_chunk(&mut self, expected_bytes: usize) {
        if let Some(tail) = self.chunks.back() {
            self.sealed_bytes += tail.capacity();
        }
        let chunk = match self.spare.take() {
            Some(spare) if spare.capacity() >= expected_bytes => spare,
            _ => Vec::with_capacity(expected_bytes.max(limits::SEND_BUFFER_INITIAL_BYTES)),
        };
        self.chunks.push_back(chunk);
    }

    pub fn is_empty(&self) -> bool {
        self.chunks.iter().all(Vec::is_empty)
    }

    /// Bytes of memory the queue holds (allocations, not just contents).
    pub fn held_bytes(&self) -> usize {
        self.sealed_bytes
            + self.chunks.back().map_or(0, Vec::capacity)
            + self.spare.as_ref().map_or(0, Vec::capacity)
    }

    /// Moves everything queued, oldest first, into `out` (which must be
    /// empty: the two deques swap, so neither allocates per flush).
    pub fn take_into(&mut self, out: &mut VecDeque<Vec<u8>>) {
        debug_assert!(out.is_empty());
        self.sealed_bytes = 0;
        std::mem::swap(&mut self.chunks, out);
        out.retain(|c| !c.is_empty());
    }

    #[cfg(test)]
    fn take(&mut self) -> VecDeque<Vec<u8>> {
        let mut out = VecDeque::new();
        self.take_into(&mut out);
        out
    }

    /// Gives back a chunk the writer has sent: kept as the spare if small.
    pub fn recycle(&mut self, mut chunk: Vec<u8>) {
        if self.spare.is_none() && chunk.capacity() <= limits::SEND_BUFFER_KEEP_BYTES {
            chunk.clear();
            self.spare = Some(chunk);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_replies_share_chunks_of_bounded_size() {
        let mut q = SendQueue::new();
        for _ in 0..1000 {
            q.buf_for(100).extend_from_slice(&[1u8; 100]);
        }
        let held = q.held_bytes();
        assert!(held >= 100_000, "{held}");
        assert!(
            held <= 2 * 100_000,
            "no more than twice the contents: {held}"
        );
        let chunks = q.take();
        assert!(chunks.iter().all(|c| c.len() <= limits::SEND_CHUNK_BYTES));
        assert_eq!(chunks.iter().map(Vec::len).sum::<usize>(), 100_000);
        assert!(q.is_empty());
        assert_eq!(q.held_bytes(), 0);
    }

    #[test]
    fn a_large_reply_gets_a_chunk_of_its_own_size() {
        let mut q = SendQueue::new();
        q.buf_for(50).extend_from_slice(&[0u8; 50]);
        q.buf_for(1_000_000).extend_from_slice(&[2u8; 1_000_000]);
        q.buf_for(50).extend_from_slice(&[3u8; 50]);
        let held = q.held_bytes();
        assert!(held < 1_000_000 + 2 * limits::SEND_CHUNK_BYTES, "{held}");
        let chunks = q.take();
        let bytes: Vec<u8> = chunks.into_iter().flatten().collect();
        assert_eq!(bytes.len(), 1_000_100);
        assert_eq!(bytes[0], 0);
        assert_eq!(bytes[50], 2);
        assert_eq!(bytes[1_000_050], 3, "order is kept");
    }

    #[test]
    fn recycled_small_chunk_is_reused_and_counted() {
        let mut q = SendQueue::new();
        q.buf_for(10).extend_from_slice(b"0123456789");
        let chunk = q.take().pop_front().unwrap();
        let capacity = chunk.capacity();
        q.recycle(chunk);
        assert_eq!(q.held_bytes(), capacity, "the spare is memory held");
        assert!(q.is_empty());
        q.buf_for(10).extend_from_slice(b"abc");
        assert_eq!(q.held_bytes(), capacity, "the spare became the tail");
        q.recycle(vec![0; 4 * limits::SEND_BUFFER_KEEP_BYTES]);
        assert_eq!(q.held_bytes(), capacity, "large chunks are freed, not kept");
    }
}

//! The txns this server logged, as PROPOSAL bytes, newest last: what a
//! leader sends a lagging learner in a DIFF. It is exactly the log after
//! `base` (contiguous), bounded in count and bytes; forgetting the oldest
//! raises `base`, and a learner behind it gets a SNAP instead.

use std::collections::VecDeque;
use std::rc::Rc;

use crate::limits::quorum::{COMMITTED_HISTORY_TXNS_MAX, HISTORY_BYTES_MAX};

pub struct TxnHistory {
    base: i64,
    entries: VecDeque<(i64, Rc<[u8]>)>,
    bytes: usize,
}

impl TxnHistory {
    /// Empty: the log's content is known up to `base` only through the tree.
    pub fn new(base: i64) -> TxnHistory {
        TxnHistory {
            base,
            entries: VecDeque::new(),
            bytes: 0,
        }
    }

    pub fn base(&self) -> i64 {
        self.base
    }

    pub fn last_zxid(&self) -> i64 {
        self.entries.back().map_or(self.base, |(z, _)| *z)
    }

    /// Appends the next logged txn.
    pub fn push(&mut self, zxid: i64, txn: Rc<[u8]>) {
        debug_assert!(zxid > self.last_zxid(), "history zxids increase");
        self.bytes += txn.len();
        self.entries.push_back((zxid, txn));
        while self.entries.len() > COMMITTED_HISTORY_TXNS_MAX
            || (self.bytes > HISTORY_BYTES_MAX && self.entries.len() > 1)
        {
            let (zxid, txn) = self.entries.pop_front().expect("not empty");
            self.bytes -= txn.len();
            self.base = zxid;
        }
    }

    /// The PROPOSAL bytes of a retained txn.
    pub fn get(&self, zxid: i64) -> Option<&Rc<[u8]>> {
        let at = self.entries.binary_search_by_key(&zxid, |(z, _)| *z).ok()?;
        Some(&self.entries[at].1)
    }

    /// The retained zxids in `(after, upto]`, ascending.
    pub fn range(&self, after: i64, upto: i64) -> impl Iterator<Item = (i64, &Rc<[u8]>)> {
        let from = self.entries.partition_point(|(z, _)| *z <= after);
        self.entries
            .range(from..)
            .take_while(move |(z, _)| *z <= upto)
            .map(|(z, t)| (*z, t))
    }

    pub fn zxids(&self) -> Vec<i64> {
        self.entries.iter().map(|(z, _)| *z).collect()
    }

    /// The log was cut after `zxid` (TRUNC).
    pub fn truncate_after(&mut self, zxid: i64) {
        while self.entries.back().is_some_and(|(z, _)| *z > zxid) {
            let (_, txn) = self.entries.pop_back().expect("not empty");
            self.bytes -= txn.len();
        }
        if self.base > zxid {
            self.reset(zxid);
        }
    }

    /// The log was replaced (SNAP, or recovery): nothing before `base` is kept.
    pub fn reset(&mut self, base: i64) {
        self.entries.clear();
        self.bytes = 0;
        self.base = base;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txn(n: usize) -> Rc<[u8]> {
        vec![0u8; n].into()
    }

    #[test]
    fn ranges_truncation_and_reset() {
        let mut h = TxnHistory::new(10);
        for z in 11..=15 {
            h.push(z, txn(4));
        }
        let got: Vec<i64> = h.range(12, 14).map(|(z, _)| z).collect();
        assert_eq!(got, vec![13, 14]);
        assert!(h.get(15).is_some() && h.get(10).is_none());
        h.truncate_after(13);
        assert_eq!((h.base(), h.last_zxid()), (10, 13));
        h.truncate_after(5);
        assert_eq!((h.base(), h.last_zxid()), (5, 5));
        h.reset(40);
        assert_eq!(h.last_zxid(), 40);
    }

    #[test]
    fn the_byte_bound_forgets_the_oldest() {
        let mut h = TxnHistory::new(0);
        let big = HISTORY_BYTES_MAX / 2 + 1;
        h.push(1, txn(big));
        h.push(2, txn(big));
        assert_eq!(h.base(), 1, "the oldest went over the byte bound");
        assert_eq!(h.zxids(), vec![2]);
    }
}

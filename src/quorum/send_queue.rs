//! A per-peer queue of framed notifications that keeps only the newest
//! ones: a vote is superseded by the next, so when the queue is full the
//! oldest message goes (ZooKeeper's `CircularBlockingQueue` of
//! `SEND_CAPACITY` = 1 in `QuorumCnxManager`).

use std::collections::VecDeque;
use std::sync::Arc;

/// A framed message, shared between the queue and "last sent".
pub type Frame = Arc<Vec<u8>>;

#[derive(Debug)]
pub struct SendQueue {
    frames: VecDeque<Frame>,
    capacity_msgs: usize,
    dropped_msgs: u64,
}

impl SendQueue {
    /// `capacity_msgs` is raised to 1: a queue that holds nothing would drop every vote.
    pub fn new(capacity_msgs: usize) -> SendQueue {
        let capacity_msgs = capacity_msgs.max(1);
        SendQueue {
            frames: VecDeque::with_capacity(capacity_msgs),
            capacity_msgs,
            dropped_msgs: 0,
        }
    }

    /// Adds `frame`, dropping the oldest queued one if full.
    pub fn push(&mut self, frame: Frame) {
        if self.frames.len() == self.capacity_msgs {
            self.frames.pop_front();
            self.dropped_msgs += 1;
        }
        self.frames.push_back(frame);
    }

    pub fn pop(&mut self) -> Option<Frame> {
        self.frames.pop_front()
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Messages superseded before they were sent.
    pub fn dropped_msgs(&self) -> u64 {
        self.dropped_msgs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(b: u8) -> Frame {
        Arc::new(vec![b])
    }

    #[test]
    fn a_full_queue_keeps_the_newest() {
        let mut q = SendQueue::new(1);
        q.push(frame(1));
        q.push(frame(2));
        q.push(frame(3));
        assert_eq!(q.dropped_msgs(), 2);
        assert_eq!(q.pop().as_deref(), Some(&vec![3]));
        assert!(q.is_empty());
        assert_eq!(q.pop(), None);
    }

    #[test]
    fn a_larger_queue_keeps_order() {
        let mut q = SendQueue::new(2);
        for b in 1..=3 {
            q.push(frame(b));
        }
        assert_eq!(q.pop().as_deref(), Some(&vec![2]));
        assert_eq!(q.pop().as_deref(), Some(&vec![3]));
        assert_eq!(SendQueue::new(0).capacity_msgs, 1);
    }
}

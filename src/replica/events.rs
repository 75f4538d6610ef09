//! What the quorum port's tasks hand the pipeline: packets, loaded
//! snapshots, link ends, accepted and connected sockets — one bounded queue
//! on the pipeline executor. A reader that finds it full waits until the
//! pipeline has taken events (and stops reading its socket meanwhile).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::task::{Poll, Waker};

use super::link::LinkId;
use super::secure::LinkStream;
use crate::limits::quorum::QUORUM_EVENTS_MAX;
use crate::server::bell::Bell;
use crate::zab::quorum_wire::QuorumPacket;
use crate::zab::snap_wire::load::LoadedSnap;

pub enum QuorumEvent {
    Packet {
        link: LinkId,
        packet: QuorumPacket,
    },
    /// The snapshot stream after a SNAP packet, loaded (or why not); boxed,
    /// as a tree is large beside the other events.
    Snapshot {
        link: LinkId,
        zxid: i64,
        loaded: Result<Box<LoadedSnap>, String>,
    },
    LinkClosed {
        link: LinkId,
        why: String,
    },
    /// A connection to this server's quorum port.
    Accepted {
        stream: LinkStream,
    },
    /// A learner's connection to its leader, tagged with the attempt it
    /// answers (a stale attempt's socket is dropped).
    Connected {
        attempt: u64,
        stream: LinkStream,
    },
    /// A learner could not reach its leader within its limit.
    ConnectFailed {
        attempt: u64,
        why: String,
    },
}

/// The pipeline's quorum queue.
#[derive(Default)]
pub struct QuorumQueue {
    queue: RefCell<VecDeque<QuorumEvent>>,
    /// Rung when an event arrives.
    pub bell: Bell,
    /// Readers waiting for room.
    waiting: RefCell<Vec<Waker>>,
}

impl QuorumQueue {
    pub fn push(&self, event: QuorumEvent) {
        self.queue.borrow_mut().push_back(event);
        self.bell.ring();
    }

    pub fn push_closed(&self, link: LinkId, why: String) {
        self.push(QuorumEvent::LinkClosed { link, why });
    }

    pub fn pop(&self) -> Option<QuorumEvent> {
        let event = self.queue.borrow_mut().pop_front();
        if event.is_some() && self.queue.borrow().len() < QUORUM_EVENTS_MAX {
            for waker in self.waiting.borrow_mut().drain(..) {
                waker.wake();
            }
        }
        event
    }

    pub fn is_empty(&self) -> bool {
        self.queue.borrow().is_empty()
    }

    /// True when the next event is a packet of `link` whose type is one of
    /// `types` (a learner asks whether another txn is already waiting).
    pub fn next_is_packet(&self, link: LinkId, types: &[i32]) -> bool {
        matches!(
            self.queue.borrow().front(),
            Some(QuorumEvent::Packet { link: l, packet }) if *l == link && types.contains(&packet.packet_type)
        )
    }

    /// Completes once the queue is below its bound.
    pub async fn wait_for_room(&self) {
        poll_fn(|cx| {
            if self.queue.borrow().len() < QUORUM_EVENTS_MAX {
                return Poll::Ready(());
            }
            self.waiting.borrow_mut().push(cx.waker().clone());
            Poll::Pending
        })
        .await
    }
}

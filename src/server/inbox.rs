//! What the pipeline executor waits on: messages from every shard (in
//! arrival order) and completions from the log executor. Bounded: a shard's
//! forwarder stops taking from its channel while the queue is full, which is
//! the backpressure to that shard.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

use glommio::channels::shared_channel::ConnectedReceiver;

use super::bell::Bell;
use super::log::LogDone;
use super::messages::ToPipeline;
use crate::limits;

pub struct Inbox {
    queue: RefCell<VecDeque<ToPipeline>>,
    log_done: RefCell<VecDeque<LogDone>>,
    /// Rung when a message or completion arrives, or a channel closes.
    pub bell: Bell,
    /// One per shard forwarder, rung when the pipeline has taken messages.
    space: Vec<Bell>,
    /// Shard channels still open.
    pub open: Cell<usize>,
}

impl Inbox {
    pub fn new(shards: usize) -> Rc<Self> {
        Rc::new(Inbox {
            queue: RefCell::new(VecDeque::new()),
            log_done: RefCell::new(VecDeque::new()),
            bell: Bell::new(),
            space: (0..shards).map(|_| Bell::new()).collect(),
            open: Cell::new(shards),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.queue.borrow().is_empty()
    }

    pub fn has_log_done(&self) -> bool {
        !self.log_done.borrow().is_empty()
    }

    pub fn pop(&self) -> Option<ToPipeline> {
        self.queue.borrow_mut().pop_front()
    }

    pub fn pop_log_done(&self) -> Option<LogDone> {
        self.log_done.borrow_mut().pop_front()
    }

    pub fn ring_space(&self) {
        self.space.iter().for_each(Bell::ring);
    }
}

/// Moves one shard's messages into the inbox. Each `recv` future runs to
/// completion (dropping pending glommio receives would leak their wakers).
pub async fn forward_shard(shard: usize, rx: ConnectedReceiver<ToPipeline>, inbox: Rc<Inbox>) {
    while let Some(msg) = rx.recv().await {
        inbox.queue.borrow_mut().push_back(msg);
        inbox.bell.ring();
        while inbox.queue.borrow().len() >= limits::PIPELINE_INBOX_MAX {
            inbox.space[shard].wait().await;
        }
    }
    inbox.open.set(inbox.open.get() - 1);
    inbox.bell.ring();
}

/// Moves the log executor's completions into the inbox (bounded by the
/// batches in flight).
pub async fn forward_log(rx: ConnectedReceiver<LogDone>, inbox: Rc<Inbox>) {
    while let Some(done) = rx.recv().await {
        inbox.log_done.borrow_mut().push_back(done);
        inbox.bell.ring();
    }
}

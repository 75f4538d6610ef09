//! A shard executor's state: its connections, their watches, the tree version
//! it last adopted, and its queue to the pipeline. Everything here is touched
//! by one thread only (Rc/RefCell, no locks); the pipeline reaches a shard only
//! through its commit notices.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::net::IpAddr;
use std::rc::Rc;
use std::sync::atomic::AtomicI64;
use std::sync::atomic::Ordering::{Acquire, Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use glommio::channels::shared_channel::ConnectedSender;
use hashbrown::HashMap;

use super::bell::Bell;
use super::conn::Conn;
use super::messages::*;
use super::registry::ConnRegistry;
use super::stats::ServerStats;
use super::SharedState;
use crate::config::Config;
use crate::proto::{keeper_state, perms, SessionId};
use crate::tree::acl::check_acl;
use crate::tree::DataTree;
use crate::watch::WatchRegistry;

pub struct Shard {
    pub index: usize,
    pub cfg: Arc<Config>,
    pub stats: Arc<ServerStats>,
    pub registry: Arc<ConnRegistry>,
    pub gather: Arc<super::gather::ShardGather>,
    pub version: RefCell<DataTree>,
    pub conns: RefCell<HashMap<u64, Rc<Conn>>>,
    pub watches: RefCell<WatchRegistry>,
    /// Connections per client IP, across all shards (`maxClientCnxns`).
    pub ip_counts: Arc<Mutex<HashMap<IpAddr, u32>>>,
    /// This shard's share of `globalOutstandingLimit`.
    pub outstanding_max: u32,
    pub outstanding: Cell<u32>,
    /// Connections whose reader waits for the shard's outstanding count to
    /// drop. A set: a reader blocked again before a slot frees must not be
    /// listed twice (a list grew with every spurious wake-up).
    blocked_readers: RefCell<hashbrown::HashSet<u64>>,
    /// This shard's share of the server-wide client buffer bound
    /// (`ferrokeeper.maxClientBufferBytes`).
    pub client_bytes_max: usize,
    /// Bytes held for all of this shard's connections (the sum of what each
    /// last counted, `Conn::recount`).
    client_bytes: Cell<usize>,
    /// Highest `client_bytes` since the allocator was last asked to return
    /// freed memory.
    client_bytes_peak: Cell<usize>,
    /// Connections throttled while the shard is at its client buffer bound.
    budget_blocked: RefCell<hashbrown::HashSet<u64>>,
    /// Newest zxid the pipeline has published to any shard.
    published_zxid: Arc<AtomicI64>,
    /// Connections whose next read waits for this shard to adopt
    /// `published_zxid` (a set, for the same reason).
    waiting_for_version: RefCell<hashbrown::HashSet<u64>>,
    outbound: RefCell<VecDeque<ToPipeline>>,
    outbound_bell: Bell,
    /// Sessions with activity since the last touch report.
    touched: RefCell<Vec<SessionId>>,
    touch_epoch: Cell<u64>,
    next_conn_id: Cell<u64>,
    pub shutting_down: Cell<bool>,
}

impl Shard {
    pub fn new(index: usize, cfg: Arc<Config>, shared: &SharedState) -> Self {
        let shards = cfg.shards() as u32;
        let outstanding_max = (cfg.global_outstanding_limit / shards).max(1);
        let client_bytes_max = cfg.client_buffer_bytes() / shards as usize;
        Shard {
            index,
            cfg,
            stats: shared.stats.clone(),
            registry: shared.registry.clone(),
            gather: shared.gather.clone(),
            version: RefCell::new(DataTree::new()),
            conns: RefCell::new(HashMap::new()),
            watches: RefCell::new(WatchRegistry::new()),
            ip_counts: shared.ip_counts.clone(),
            outstanding_max,
            outstanding: Cell::new(0),
            blocked_readers: RefCell::default(),
            client_bytes_max,
            client_bytes: Cell::new(0),
            client_bytes_peak: Cell::new(0),
            budget_blocked: RefCell::default(),
            published_zxid: shared.published_zxid.clone(),
            waiting_for_version: RefCell::default(),
            outbound: RefCell::new(VecDeque::new()),
            outbound_bell: Bell::new(),
            touched: RefCell::new(Vec::new()),
            touch_epoch: Cell::new(1),
            next_conn_id: Cell::new(1),
            shutting_down: Cell::new(false),
        }
    }

    pub fn next_conn_id(&self) -> u64 {
        let id = self.next_conn_id.get();
        self.next_conn_id.set(id + 1);
        id
    }

    /// Queues a message for the pipeline; never blocks (the queue is bounded by
    /// the outstanding limits: every write holds an outstanding slot).
    pub fn send_to_pipeline(&self, msg: ToPipeline) {
        self.outbound.borrow_mut().push_back(msg);
        self.outbound_bell.ring();
    }

    /// Moves queued messages into the pipeline channel; awaiting there is the
    /// backpressure from the pipeline to this shard.
    pub async fn run_outbound(self: Rc<Self>, tx: ConnectedSender<ToPipeline>) {
        loop {
            let next = self.outbound.borrow_mut().pop_front();
            match next {
                Some(msg) => {
                    if tx.send(msg).await.is_err() {
                        return;
                    }
                }
                None if self.shutting_down.get() => return,
                None => self.outbound_bell.wait().await,
            }
        }
    }

    /// Records activity of a session, once per touch period.
    pub fn touch(&self, conn: &Conn) {
        let epoch = self.touch_epoch.get();
        if conn.touch_epoch.replace(epoch) != epoch {
            let id = conn.session_id.get();
            if id != 0 {
                self.touched.borrow_mut().push(id);
            }
        }
    }

    /// Once client buffers of at least `RELEASE_FREED_CLIENT_BYTES` have been
    /// freed (slow readers gone), asks the allocator to return this thread's
    /// free pages to the system now rather than keep them for reuse: mimalloc
    /// otherwise purges only when this thread allocates again. Called every
    /// half tick; costs a walk of this thread's (small) heap when it fires.
    pub fn release_freed_memory(&self) {
        let now = self.client_bytes.get();
        if self.client_bytes_peak.get() - now >= crate::limits::RELEASE_FREED_CLIENT_BYTES {
            self.client_bytes_peak.set(now);
            // SAFETY: mi_collect has no preconditions; it only touches the
            // calling thread's heap and the shared arenas under their locks.
            unsafe { libmimalloc_sys::mi_collect(true) };
        }
    }

    /// Reports the touched sessions to the pipeline (called every half tick).
    pub fn flush_touches(&self) {
        self.touch_epoch.set(self.touch_epoch.get() + 1);
        let ids = std::mem::take(&mut *self.touched.borrow_mut());
        if !ids.is_empty() {
            for chunk in ids.chunks(crate::limits::TOUCH_BATCH_MAX) {
                self.send_to_pipeline(ToPipeline::Touch(chunk.to_vec()));
            }
        }
    }

    pub fn acquire_outstanding(&self) -> bool {
        let now = self.outstanding.get();
        if now >= self.outstanding_max {
            return false;
        }
        self.outstanding.set(now + 1);
        true
    }

    /// May a connection with `conn_outstanding` requests take another?
    /// Not past the shard's budget; and once a quarter of it is taken, not
    /// past a fair share of the rest, so connections whose requests wait
    /// (reads held back for a client that does not read its replies) cannot
    /// take every slot from the well-behaved: at most a quarter plus half
    /// of the budget is ever held by connections over their share.
    pub fn may_take_request(&self, conn_outstanding: usize) -> bool {
        let taken = self.outstanding.get();
        if taken >= self.outstanding_max {
            return false;
        }
        if taken < self.outstanding_max / 4 {
            return true;
        }
        let conns = self.conns.borrow().len().max(1);
        let fair_share = (self.outstanding_max as usize / (2 * conns)).max(1);
        conn_outstanding < fair_share
    }

    pub fn release_outstanding(&self) {
        self.outstanding.set(self.outstanding.get() - 1);
        self.wake_readers(&self.blocked_readers);
    }

    /// Rings the reader of every connection in `set` and empties it.
    fn wake_readers(&self, set: &RefCell<hashbrown::HashSet<u64>>) {
        if set.borrow().is_empty() {
            return;
        }
        let blocked = std::mem::take(&mut *set.borrow_mut());
        if !blocked.is_empty() {
            let conns = self.conns.borrow();
            for id in blocked {
                if let Some(conn) = conns.get(&id) {
                    conn.reader_bell.ring();
                }
            }
        }
    }

    /// A connection's holdings went from `before` to `now` bytes.
    pub fn adjust_client_bytes(&self, before: usize, now: usize) {
        let total = self.client_bytes.get() - before + now;
        self.client_bytes.set(total);
        if total > self.client_bytes_peak.get() {
            self.client_bytes_peak.set(total);
        }
        self.stats.shards[self.index]
            .client_buffer_bytes
            .store(total as u64, Relaxed);
        if now < before && total < self.client_bytes_max {
            self.wake_readers(&self.budget_blocked);
        }
    }

    pub fn client_bytes(&self) -> usize {
        self.client_bytes.get()
    }

    pub fn over_client_budget(&self) -> bool {
        self.client_bytes.get() >= self.client_bytes_max
    }

    /// What a connection may hold while the shard is at its bound: the bound
    /// shared evenly, and never less than `CLIENT_FAIR_SHARE_MIN_BYTES`.
    pub fn client_fair_share(&self) -> usize {
        let conns = self.conns.borrow().len().max(1);
        (self.client_bytes_max / conns).max(crate::limits::CLIENT_FAIR_SHARE_MIN_BYTES)
    }

    pub fn block_on_client_budget(&self, conn_id: u64) {
        self.budget_blocked.borrow_mut().insert(conn_id);
    }

    /// True if the pipeline has published a version this shard has not
    /// adopted yet (its commit notice is on the way).
    pub fn is_behind(&self) -> bool {
        self.version.borrow().last_zxid() < self.published_zxid.load(Acquire)
    }

    pub fn wait_for_version(&self, conn_id: u64) {
        self.waiting_for_version.borrow_mut().insert(conn_id);
    }

    pub fn block_reader(&self, conn_id: u64) {
        self.blocked_readers.borrow_mut().insert(conn_id);
    }

    /// Applies one commit notice in the order the ordering rules need:
    /// txn by txn, as ZooKeeper's FinalRequestProcessor does, a txn's events
    /// go out before its reply and after the replies of earlier txns (a
    /// failed write's reply carries the zxid it was decided at).
    pub fn on_commit(&self, notice: CommitNotice) {
        let applying = Instant::now();
        let (timing, writes) = (notice.timing, notice.replies.len() as u64);
        let mut dirty: Vec<Rc<Conn>> = Vec::new();
        *self.version.borrow_mut() = notice.version;
        self.stats.shards[self.index]
            .session_count
            .store(notice.session_count as u64, Relaxed);
        let events = &notice.events[..];
        let mut fired = 0;
        for reply in notice.replies {
            let due = fired + events[fired..].partition_point(|(zxid, _)| *zxid <= reply.zxid);
            self.fire_events(&events[fired..due], &mut dirty);
            fired = due;
            if let Some(conn) = self.conn(reply.conn_id) {
                conn.on_write_reply(self, reply);
                mark_dirty(&mut dirty, conn);
            }
        }
        self.fire_events(&events[fired..], &mut dirty);
        let waiting = std::mem::take(&mut *self.waiting_for_version.borrow_mut());
        for conn_id in waiting {
            if let Some(conn) = self.conn(conn_id) {
                conn.pump(self);
                mark_dirty(&mut dirty, conn);
            }
        }
        for connect in notice.connects {
            if let Some(conn) = self.conn(connect.conn_id) {
                conn.on_connect_reply(connect.outcome);
            }
        }
        for (conn_id, reason) in notice.closes {
            if let Some(conn) = self.conn(conn_id) {
                tracing::info!(
                    "closing connection {} of session 0x{:x}: {reason:?}",
                    conn.peer,
                    conn.session_id.get()
                );
                conn.close_now();
            }
        }
        for conn in dirty {
            conn.dirty.set(false);
            conn.recount(self);
            conn.writer_bell.ring();
        }
        self.publish_watch_count();
        if let Some(timing) = timing {
            self.record_commit(timing, writes, applying);
        }
    }

    /// ZooKeeper's CommitProcessor/FinalRequestProcessor timings, per write
    /// this shard answered from the notice (a notice without any is not a
    /// write batch for this shard).
    fn record_commit(&self, timing: CommitTiming, writes: u64, applying: Instant) {
        if writes == 0 {
            return;
        }
        let c = &self.stats.shards[self.index];
        let micros =
            |from: Instant, to: Instant| to.saturating_duration_since(from).as_micros() as u64;
        c.write_committed_us
            .record_n(micros(timing.durable, applying), writes);
        c.propagation_us
            .record_n(micros(timing.submitted, applying), writes);
        c.commit_apply_us.record(micros(applying, Instant::now()));
    }

    fn conn(&self, conn_id: u64) -> Option<Rc<Conn>> {
        self.conns.borrow().get(&conn_id).cloned()
    }

    /// Sends each watcher its events, if it may READ the node the event is
    /// about (the event carries that node's ACL, also for deleted nodes).
    fn fire_events(&self, events: &[(i64, crate::tree::TreeEvent)], dirty: &mut Vec<Rc<Conn>>) {
        if events.is_empty() || self.watches.borrow().is_empty() {
            return;
        }
        for (zxid, event) in events {
            let watchers = self.watches.borrow_mut().trigger(event.event, &event.path);
            for watcher in watchers {
                let Some(conn) = self.conn(watcher) else {
                    continue;
                };
                if check_acl(&event.acl, perms::READ, &conn.auth.borrow()) {
                    conn.push_event(
                        *zxid,
                        event.event,
                        keeper_state::SYNC_CONNECTED,
                        &event.path,
                    );
                    mark_dirty(dirty, conn);
                }
            }
        }
    }

    pub fn publish_watch_count(&self) {
        let counts = self.watches.borrow().counts();
        let counters = &self.stats.shards[self.index];
        counters.watch_count.store(counts.total as u64, Relaxed);
        counters
            .data_watches
            .store(counts.data_pairs as u64, Relaxed);
        counters
            .watched_paths
            .store(counts.data_paths as u64, Relaxed);
        counters
            .watching_connections
            .store(counts.data_watchers as u64, Relaxed);
    }

    /// Admits a connection from `ip` under `maxClientCnxns`; false = refuse.
    pub fn admit_ip(&self, ip: IpAddr) -> bool {
        let max = self.cfg.max_client_cnxns;
        let mut counts = self.ip_counts.lock().unwrap_or_else(|e| e.into_inner());
        let count = counts.entry(ip).or_insert(0);
        if max != 0 && *count >= max {
            return false;
        }
        *count += 1;
        true
    }

    pub fn release_ip(&self, ip: IpAddr) {
        let mut counts = self.ip_counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = counts.get_mut(&ip) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&ip);
            }
        }
    }
}

fn mark_dirty(dirty: &mut Vec<Rc<Conn>>, conn: Rc<Conn>) {
    if !conn.dirty.replace(true) {
        dirty.push(conn);
    }
}

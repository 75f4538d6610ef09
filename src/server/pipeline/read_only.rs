//! Read-only mode (`readonlymode.enabled`, ZooKeeper's `ReadOnlyZooKeeperServer`).
//!
//! An ensemble member that has been LOOKING for the grace period (ZooKeeper's
//! `max(2000 ms, tickTime)`, so a quick election never shows it) starts
//! serving clients that connected with the read-only flag: their handshakes
//! are answered here with a session of this server alone, marked read-only
//! so the client knows, and their shard serves their reads from the last
//! version and answers their writes NOTREADONLY. A read-only client that
//! resumes an ensemble session is let in the same way. `srvr` says
//! `Mode: read-only` and `isro` says `ro`.
//!
//! Everything else the shards send meanwhile (new sessions of other
//! clients, writes of sessions made before the quorum was lost) is held, in
//! order and bounded by [`READ_ONLY_HELD_MAX`]: at the bound the inbox stops
//! being read, so the shards stop reading their clients. Those clients keep
//! their connections (their pings are answered) and are served once a
//! leader is established, before anything newer.
//!
//! When the election decides, read-only mode ends as ZooKeeper's does: the
//! read-only connections are closed and the clients reconnect to the full
//! member. An ensemble session a client resumed read-only lives on; a
//! session born read-only was this server's alone and ends with the mode
//! (as in ZooKeeper, whose Java client asks for a new session when it has
//! never seen a read-write server).

use std::collections::HashMap;

use tracing::{debug, info};

use super::roles::Io;
use super::Pipeline;
use crate::limits::{READ_ONLY_GRACE_MIN_MS, READ_ONLY_HELD_MAX};
use crate::proto::{op, ErrorCode, SessionId};
use crate::replica::status::Mode;
use crate::server::batch::Batch;
use crate::server::messages::{
    CloseReason, ConnectMsg, ConnectOutcome, ConnectReply, ToPipeline, WriteMsg, WriteOutcome,
    WriteReply,
};
use crate::session::ConnRef;

/// A session that exists only while this server is read-only.
struct LocalSession {
    conn: Option<ConnRef>,
    timeout_ms: i32,
    deadline_ms: u64,
}

#[derive(Default)]
pub(super) struct ReadOnly {
    /// Sessions born read-only.
    local: HashMap<SessionId, LocalSession>,
    /// Every connection granted read-only (born or resumed), to close at the end.
    conns: HashMap<SessionId, ConnRef>,
    /// When the local sessions are next checked for expiry (every half
    /// tick, as the ensemble's sessions are, not at every poll).
    next_expiry_ms: u64,
}

impl Pipeline {
    /// While LOOKING: starts read-only mode after the grace period, then
    /// serves it. Publishes what it answered.
    pub(super) async fn read_only_poll(&mut self, io: &Io<'_>) {
        if !self.cfg.read_only_mode {
            return;
        }
        let now = self.now_ms();
        if self.zab_mut().read_only.is_none() {
            let grace_ms = READ_ONLY_GRACE_MIN_MS.max(self.cfg.tick_time_ms as u64);
            if now < self.zab_mut().looking_since_ms + grace_ms {
                return;
            }
            self.zab_mut().read_only = Some(ReadOnly::default());
            self.stats.replica.set_mode(Mode::ReadOnly, None);
            info!("READ-ONLY: no quorum for {grace_ms} ms; serving reads to read-only clients");
        }
        let mut batch = Batch::new(io.outbox.len(), io.bounds);
        while self.zab_mut().held.len() < READ_ONLY_HELD_MAX {
            let Some(msg) = io.queue.pop() else { break };
            self.read_only_handle(msg, now, &mut batch);
        }
        io.queue.ring_space();
        self.expire_local_sessions(now, &mut batch);
        if !batch.is_empty() {
            self.publish_answers(batch, io.outbox).await;
        }
    }

    fn read_only_handle(&mut self, msg: ToPipeline, now_ms: u64, batch: &mut Batch) {
        match msg {
            ToPipeline::Connect(c) if c.read_only => self.read_only_connect(c, now_ms, batch),
            ToPipeline::Write(w) if self.ro().local.contains_key(&w.session_id) => {
                self.local_session_write(w, batch)
            }
            ToPipeline::Touch(ids) => {
                let ro = self.ro();
                for id in ids {
                    if let Some(s) = ro.local.get_mut(&id) {
                        s.deadline_ms = now_ms + s.timeout_ms as u64;
                    }
                }
                // Other sessions' touches are not needed: a new leader
                // gives every session a fresh deadline.
            }
            ToPipeline::Disconnected { conn, session_id }
                if self.ro().local.contains_key(&session_id) =>
            {
                let ro = self.ro();
                if let Some(s) = ro.local.get_mut(&session_id) {
                    if s.conn == Some(conn) {
                        s.conn = None;
                    }
                }
                ro.conns.remove(&session_id);
            }
            other => self.zab_mut().held.push_back(other),
        }
    }

    fn ro(&mut self) -> &mut ReadOnly {
        self.zab_mut()
            .read_only
            .as_mut()
            .expect("called in read-only mode")
    }

    fn read_only_connect(&mut self, c: ConnectMsg, now_ms: u64, batch: &mut Batch) {
        let outcome = if c.last_zxid_seen > self.published.last_zxid() {
            ConnectOutcome::TooNew
        } else if c.session_id == 0 {
            self.new_local_session(&c, now_ms)
        } else {
            self.resume_read_only(&c, now_ms, batch)
        };
        if let ConnectOutcome::GrantedReadOnly { session_id, .. } = outcome {
            self.ro().conns.insert(session_id, c.conn);
        }
        batch.connects[c.conn.shard].push(ConnectReply {
            conn_id: c.conn.conn_id,
            outcome,
        });
    }

    fn new_local_session(&mut self, c: &ConnectMsg, now_ms: u64) -> ConnectOutcome {
        if self.sessions.len() + self.ro().local.len() >= crate::limits::SESSIONS_MAX {
            return ConnectOutcome::Expired;
        }
        let session_id = self.sessions.allocate_id();
        let timeout_ms = self.cfg.negotiate_timeout_ms(c.timeout_ms);
        self.ro().local.insert(
            session_id,
            LocalSession {
                conn: Some(c.conn),
                timeout_ms,
                deadline_ms: now_ms + timeout_ms as u64,
            },
        );
        debug!("read-only session 0x{session_id:x} created, timeout {timeout_ms} ms");
        ConnectOutcome::GrantedReadOnly {
            session_id,
            timeout_ms,
            password: self.sessions.password(session_id),
        }
    }

    /// A read-only session reconnecting, or an ensemble session resumed by
    /// a client that accepts a read-only server.
    fn resume_read_only(
        &mut self,
        c: &ConnectMsg,
        now_ms: u64,
        batch: &mut Batch,
    ) -> ConnectOutcome {
        let id = c.session_id;
        let password = self.sessions.password(id);
        let timeout_ms = if let Some(s) = self.ro().local.get_mut(&id) {
            if c.password != password {
                return ConnectOutcome::Expired;
            }
            if let Some(old) = s.conn.replace(c.conn).filter(|old| *old != c.conn) {
                batch.closes[old.shard].push((old.conn_id, CloseReason::SessionMoved));
            }
            s.deadline_ms = now_ms + s.timeout_ms as u64;
            s.timeout_ms
        } else {
            match self.sessions.attach(id, &c.password, c.conn, now_ms) {
                Ok((previous, timeout_ms)) => {
                    if let Some(old) = previous {
                        batch.closes[old.shard].push((old.conn_id, CloseReason::SessionMoved));
                    }
                    timeout_ms
                }
                Err(_) => return ConnectOutcome::Expired,
            }
        };
        ConnectOutcome::GrantedReadOnly {
            session_id: id,
            timeout_ms,
            password,
        }
    }

    /// Only closeSession reaches the pipeline from a read-only session (its
    /// shard answers the other writes).
    fn local_session_write(&mut self, w: WriteMsg, batch: &mut Batch) {
        batch.requests += 1;
        let outcome = if w.op == op::CLOSE_SESSION {
            let ro = self.ro();
            ro.local.remove(&w.session_id);
            ro.conns.remove(&w.session_id);
            WriteOutcome::SessionClosed
        } else {
            WriteOutcome::Error(ErrorCode::NotReadOnly)
        };
        batch.replies[w.conn.shard].push(WriteReply {
            conn_id: w.conn.conn_id,
            xid: w.xid,
            zxid: self.published.last_zxid(),
            outcome,
        });
    }

    fn expire_local_sessions(&mut self, now_ms: u64, batch: &mut Batch) {
        let half_tick_ms = self.cfg.tick_time_ms as u64 / 2;
        let ro = self.ro();
        if now_ms < ro.next_expiry_ms {
            return;
        }
        ro.next_expiry_ms = now_ms + half_tick_ms;
        let expired: Vec<SessionId> = ro
            .local
            .iter()
            .filter(|(_, s)| s.deadline_ms <= now_ms)
            .map(|(&id, _)| id)
            .collect();
        for id in expired {
            if let Some(conn) = ro.local.remove(&id).and_then(|s| s.conn) {
                batch.closes[conn.shard].push((conn.conn_id, CloseReason::SessionExpired));
            }
            ro.conns.remove(&id);
            debug!("read-only session 0x{id:x} expired");
        }
    }

    /// The election decided: closes every read-only connection (see the
    /// module doc). Held messages stay for the new role to take first.
    pub(super) async fn end_read_only(&mut self, io: &Io<'_>) {
        let Some(ro) = self.zab.as_mut().and_then(|z| z.read_only.take()) else {
            return;
        };
        let mut batch = Batch::new(io.outbox.len(), io.bounds);
        for conn in ro.conns.values() {
            batch.closes[conn.shard].push((conn.conn_id, CloseReason::LeaderLost));
        }
        info!(
            "READ-ONLY ends: closing {} read-only connections; {} requests held for the leader",
            ro.conns.len(),
            self.zab_mut().held.len()
        );
        self.publish_answers(batch, io.outbox).await;
    }

    /// The next shard message for a serving member: those held while
    /// read-only come first, in their order.
    pub(super) fn next_message(
        &mut self,
        queue: &crate::server::inbox::Inbox,
    ) -> Option<ToPipeline> {
        match self.zab.as_mut().and_then(|z| z.held.pop_front()) {
            Some(msg) => Some(msg),
            None => queue.pop(),
        }
    }
}

//! The AdminServer's jobs, run by the pipeline at each turn of its loop
//! (see `server::admin_jobs`): the root ACL check of `snapshot` and
//! `restore`, a snapshot now (handed to the log executor, which writes it in
//! order after every batch appended so far), and a restore.
//!
//! A restore (standalone servers only) holds new requests, lets the batches
//! in flight complete and be answered as usual, then makes the loaded tree
//! the durable state through the log's reset (the same path a learner's
//! SNAP takes: the snapshot is written durably and read back as recovery
//! would). The restored tree is labelled with the newer of its own zxid and
//! the server's last one, so zxids never go back (clients that saw the last
//! one can reconnect; the log holds nothing above it to replay), as
//! ZooKeeper's own restore leaves its zxid counter where it was. Every
//! client connection is closed: a session the snapshot holds goes on when
//! its client reconnects (re-registering its watches against the restored
//! tree), the others are gone, as ZooKeeper's new session tracker forgets them.

use std::collections::HashMap;
use std::sync::mpsc::SyncSender;

use tracing::{info, warn};

use super::roles::Io;
use super::Pipeline;
use crate::proto::perms;
use crate::server::admin_jobs::AdminJob;
use crate::server::batch::Batch;
use crate::server::log::{LogRequest, Reset, ResetDone};
use crate::server::messages::CloseReason;
use crate::storage::OpenSessions;
use crate::tree::{check_acl, path, AuthInfo};
use crate::zab::snap_wire::load::LoadedSnap;

/// A restore waiting for the batches in flight.
pub(super) struct PendingRestore {
    snap: Box<LoadedSnap>,
    reply: SyncSender<Result<i64, String>>,
}

impl Pipeline {
    /// Takes the jobs posted since the last turn (one atomic load if none),
    /// and runs a held restore once nothing is in flight.
    pub(super) async fn run_admin_jobs(&mut self, io: &Io<'_>) {
        for job in self.gather.jobs.take() {
            match job {
                AdminJob::Authorize { auth, reply } => {
                    let _ = reply.send(self.may_do_all_on_root(&auth));
                }
                AdminJob::Snapshot { reply } => {
                    if io
                        .log_tx
                        .send(LogRequest::Snapshot { reply })
                        .await
                        .is_err()
                    {
                        warn!("the log executor is gone; no snapshot");
                    }
                }
                AdminJob::Restore { snap, reply } => self.hold_restore(snap, reply),
            }
        }
        if self.restoring.is_some() && self.in_flight.is_empty() {
            self.restore(io).await;
        }
    }

    /// ZooKeeper checks each permission bit against the ACL on its own
    /// (`Commands.handleAuthorization`): ALL needs every bit granted.
    fn may_do_all_on_root(&self, auth: &AuthInfo) -> bool {
        let Some(root) = self.published.get(path::ROOT) else {
            return false;
        };
        (0..5).all(|bit| check_acl(&root.acl, perms::ALL & (1 << bit), auth))
    }

    fn hold_restore(&mut self, snap: Box<LoadedSnap>, reply: SyncSender<Result<i64, String>>) {
        let refusal = if self.zab.is_some() {
            Some("restore is served by a standalone server only: an ensemble member's database is the quorum's")
        } else if self.restoring.is_some() {
            Some("a restore is already in progress")
        } else if self.log_failed {
            Some("the write-ahead log failed; the server takes no writes")
        } else {
            None
        };
        match refusal {
            Some(why) => {
                let _ = reply.send(Err(why.to_string()));
            }
            None => self.restoring = Some(PendingRestore { snap, reply }),
        }
    }

    /// Whether a restore holds new requests back.
    pub(super) fn is_restoring(&self) -> bool {
        self.restoring.is_some()
    }

    async fn restore(&mut self, io: &Io<'_>) {
        let Some(PendingRestore { snap, reply }) = self.restoring.take() else {
            return;
        };
        let LoadedSnap {
            mut tree,
            sessions,
            trailer,
        } = *snap;
        let zxid = trailer
            .last_processed_zxid
            .unwrap_or(0)
            .max(self.next_zxid - 1);
        tree.set_last_zxid(zxid);
        let mut open = OpenSessions::new();
        for (id, timeout_ms) in sessions {
            open.insert(id, timeout_ms);
        }
        let reset = Reset::Install(Box::new(ResetDone {
            tree,
            sessions: open,
        }));
        let answer = match self.reset_log(reset, io).await {
            Ok(state) => {
                self.install_restored(state, io).await;
                Ok(zxid)
            }
            Err(e) => {
                self.log_failure(&e);
                Err(format!("writing the restored snapshot failed: {e}"))
            }
        };
        let _ = reply.send(answer);
    }

    /// The restored state (as read back from disk) becomes the working and
    /// published tree; sessions follow the snapshot's; every connection closes.
    async fn install_restored(&mut self, state: ResetDone, io: &Io<'_>) {
        let mut batch = Batch::new(io.outbox.len(), io.bounds);
        let restored: HashMap<i64, i32> = state.sessions.iter().collect();
        let ours: Vec<i64> = self.sessions.iter().map(|s| s.id).collect();
        for id in ours {
            if let Some(owner) = self.sessions.get(id).and_then(|s| s.owner) {
                batch.closes[owner.shard].push((owner.conn_id, CloseReason::Restored));
                self.sessions.detach(id, owner);
            }
            if !restored.contains_key(&id) {
                self.sessions.remove(id);
            }
        }
        let now = self.now_ms();
        let mut over_bound = 0usize;
        for (&id, &timeout_ms) in &restored {
            // A session kept gets a full timeout to reconnect in.
            if self.sessions.touch(id, now) {
                continue;
            }
            if self.sessions.is_full() {
                over_bound += 1;
                continue;
            }
            self.sessions.insert(id, timeout_ms, None, now);
        }
        if over_bound > 0 {
            warn!("restore: {over_bound} of the snapshot's sessions are over SESSIONS_MAX and are not kept");
        }
        self.tree = state.tree;
        self.next_zxid = self.tree.last_zxid() + 1;
        info!(
            "restored a snapshot: {} znodes, {} sessions, at zxid 0x{:x}",
            self.tree.node_count(),
            self.sessions.len(),
            self.tree.last_zxid()
        );
        let version = self.tree.clone();
        self.publish(batch, version, None, io.outbox).await;
    }
}

//! The log executor (`fk-log`): every batch the pipeline hands over is
//! appended to the write-ahead log and fdatasync'ed through io_uring (one
//! sync per batch: group commit) before the pipeline may publish or
//! acknowledge any of it. It runs on its own thread so that while one batch
//! syncs the pipeline prepares the next. It also decides when to snapshot and
//! writes snapshots from an immutable tree version on a low-priority thread,
//! so writes never wait for them.

use std::path::PathBuf;
use std::sync::mpsc::SyncSender;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use rand::rngs::StdRng;
use rand::SeedableRng;
use tracing::{error, info, warn};

use super::admin_jobs::SnapshotTaken;
use super::snapshot_info::LastSnapshot;
use super::stats::{LogStats, ServerStats};
use crate::config::Config;
use crate::storage::truncate::truncate_after;
use crate::storage::{
    purge, write_snapshot, DbId, FsLogStore, IoContext, OpenSessions, SnapPolicy, StorageError,
    StorageOptions, Wal,
};
use crate::tree::{DataTree, TxnHeader, TxnOp};

use glommio::channels::shared_channel::{ConnectedReceiver, ConnectedSender};

pub enum LogRequest {
    /// Append and sync; `version` is the tree as of this batch (for snapshots).
    Append {
        seq: u64,
        txns: Vec<(TxnHeader, TxnOp)>,
        version: DataTree,
    },
    /// Delete old snapshots and logs (autopurge).
    Purge,
    /// Snapshot the newest appended state now (the AdminServer's
    /// `snapshot`), answering with what it holds once it is durable.
    Snapshot {
        reply: SyncSender<Result<SnapshotTaken, String>>,
    },
    /// Final snapshot of `version`, then close the log.
    Shutdown { version: DataTree },
    /// A learner's sync replaces the durable state (TRUNC or SNAP); the
    /// pipeline sends it with no append in flight and waits for its answer.
    Reset { seq: u64, reset: Reset },
}

pub enum Reset {
    /// Cut the log (and any snapshot) after this zxid.
    TruncateAfter(i64),
    /// Make this state (a leader's snapshot) the durable state.
    Install(Box<ResetDone>),
}

/// The state a reset left on disk, as recovery reads it back.
pub struct ResetDone {
    pub tree: DataTree,
    pub sessions: OpenSessions,
}

/// The outcome of one `Append` or `Reset`, in request order.
pub struct LogDone {
    pub seq: u64,
    pub result: Result<(), String>,
    pub reset: Option<Box<ResetDone>>,
}

/// The log executor's loop.
pub async fn run_log(
    mut stage: LogStage,
    requests: ConnectedReceiver<LogRequest>,
    done: ConnectedSender<LogDone>,
) {
    while let Some(request) = requests.recv().await {
        match request {
            LogRequest::Append { seq, txns, version } => {
                let result = stage.append(&txns).map_err(|e| e.to_string());
                if result.is_ok() {
                    stage.after_commit(txns.len(), version);
                }
                let reply = LogDone {
                    seq,
                    result,
                    reset: None,
                };
                if done.send(reply).await.is_err() {
                    break;
                }
            }
            LogRequest::Reset { seq, reset } => {
                let (result, reset) = match stage.reset(reset) {
                    Ok(state) => (Ok(()), Some(Box::new(state))),
                    Err(e) => (Err(e.to_string()), None),
                };
                if done.send(LogDone { seq, result, reset }).await.is_err() {
                    break;
                }
            }
            LogRequest::Purge => stage.purge_old(),
            LogRequest::Snapshot { reply } => stage.snapshot_now(reply),
            LogRequest::Shutdown { version } => {
                info!("log: {} txns appended", stage.appended_total());
                stage.shutdown(&version);
                return;
            }
        }
    }
}

pub struct LogStage {
    /// None after a reset failed half way: appends fail from then on.
    wal: Option<Wal<FsLogStore>>,
    storage: StorageOptions,
    db_id: DbId,
    data_dir: PathBuf,
    data_log_dir: PathBuf,
    snap_retain_count: usize,
    /// The tree as of the last appended batch (or recovery, or a reset).
    last_version: DataTree,
    /// Sessions as of the last appended batch (snapshots carry them).
    sessions: OpenSessions,
    policy: SnapPolicy,
    rng: StdRng,
    snapshotting: Option<JoinHandle<()>>,
    appended_total: u64,
    last_snapshot: Arc<LastSnapshot>,
    /// forceSync: without it there is no fdatasync to time.
    force_sync: bool,
    stats: Arc<ServerStats>,
}

impl LogStage {
    pub fn new(
        cfg: &Config,
        wal: Wal<FsLogStore>,
        db_id: DbId,
        tree: DataTree,
        sessions: OpenSessions,
        last_snapshot: Arc<LastSnapshot>,
        stats: Arc<ServerStats>,
    ) -> Self {
        let mut rng = StdRng::from_entropy();
        let policy = SnapPolicy::new(cfg.snap_count, &mut rng);
        LogStage {
            wal: Some(wal),
            storage: StorageOptions::from_config(cfg),
            db_id,
            data_dir: cfg.data_dir.clone(),
            data_log_dir: cfg.data_log_dir.clone(),
            snap_retain_count: cfg.autopurge_snap_retain_count as usize,
            last_version: tree,
            sessions,
            policy,
            rng,
            snapshotting: None,
            appended_total: 0,
            last_snapshot,
            force_sync: cfg.force_sync,
            stats,
        }
    }

    /// Appends one batch and syncs it. On error nothing of the batch may be
    /// acknowledged, and the log refuses further appends.
    pub fn append(&mut self, batch: &[(TxnHeader, TxnOp)]) -> Result<(), StorageError> {
        if batch.is_empty() {
            return Ok(());
        }
        let wal = self.wal.as_mut().ok_or_else(closed_by_failed_reset)?;
        let flush_started = Instant::now();
        wal.write_batch(batch)?;
        let sync_started = Instant::now();
        wal.sync()?;
        self.record_flush(batch.len(), flush_started, sync_started);
        for (header, op) in batch {
            self.sessions.apply(header, op);
        }
        self.appended_total += batch.len() as u64;
        Ok(())
    }

    /// ZooKeeper's SyncRequestProcessor/FileTxnLog timings of one group commit.
    fn record_flush(&self, txns: usize, flush_started: Instant, sync_started: Instant) {
        let log = &self.stats.log;
        let sync_us = sync_started.elapsed().as_micros() as u64;
        if self.force_sync {
            log.fsync_us.record(sync_us);
            log.fsync_histogram_us.record(sync_us);
        }
        log.flush_us
            .record(flush_started.elapsed().as_micros() as u64);
        log.batch_txns.record(txns as u64);
        log.batch_histogram_txns.record(txns as u64);
    }

    /// Called with the tree as of the batch just appended; starts a snapshot
    /// when the policy says so and none is running.
    pub fn after_commit(&mut self, txns: usize, tree: DataTree) {
        self.last_version = tree;
        if !self.policy.record_txns(txns as u64, &mut self.rng) {
            return;
        }
        if self.snapshotting.as_ref().is_some_and(|h| !h.is_finished()) {
            warn!("snapshot still being written; skipping this one");
            return;
        }
        self.start_snapshot(None);
    }

    /// The AdminServer's snapshot: of the newest appended state, after the
    /// one being written if any (it is not skipped: the admin waits for it).
    pub fn snapshot_now(&mut self, reply: SyncSender<Result<SnapshotTaken, String>>) {
        if self.wal.is_none() {
            let _ = reply.send(Err(closed_by_failed_reset().to_string()));
            return;
        }
        self.start_snapshot(Some(reply));
    }

    /// Rolls the log and writes a snapshot of `last_version` on a
    /// low-priority thread, once the previous snapshot thread is done;
    /// `reply` gets what it holds.
    fn start_snapshot(&mut self, reply: Option<SyncSender<Result<SnapshotTaken, String>>>) {
        let Some(wal) = self.wal.as_mut() else { return };
        wal.roll();
        let (dir, db_id) = (self.data_dir.clone(), self.db_id);
        let (tree, sessions) = (self.last_version.clone(), self.sessions.clone());
        let last_snapshot = self.last_snapshot.clone();
        let stats = self.stats.clone();
        let previous = self.snapshotting.take();
        let spawned = std::thread::Builder::new()
            .name("fk-snapshot".into())
            .spawn(move || {
                if let Some(previous) = previous {
                    let _ = previous.join();
                }
                lower_priority();
                let written = snapshot(&dir, db_id, &tree, &sessions, &last_snapshot, &stats.log);
                if let Some(reply) = reply {
                    let taken = written.map(|_| SnapshotTaken {
                        tree,
                        sessions: sessions.iter().collect(),
                    });
                    let _ = reply.send(taken);
                }
            });
        match spawned {
            Ok(handle) => self.snapshotting = Some(handle),
            Err(e) => error!("cannot start snapshot thread: {e}"),
        }
    }

    /// Deletes old snapshots and the logs they no longer need (autopurge).
    pub fn purge_old(&self) {
        let (snaps, logs) = (self.data_dir.clone(), self.data_log_dir.clone());
        let retain = self.snap_retain_count;
        let _ = std::thread::Builder::new()
            .name("fk-purge".into())
            .spawn(move || match purge(&snaps, &logs, retain) {
                Ok(report) => info!("autopurge: {report:?}"),
                Err(e) => warn!("autopurge failed: {e}"),
            });
    }

    /// Clean shutdown: wait for a running snapshot, write a final one, close the log.
    pub fn shutdown(mut self, tree: &DataTree) {
        if let Some(handle) = self.snapshotting.take() {
            let _ = handle.join();
        }
        let _ = snapshot(
            &self.data_dir,
            self.db_id,
            tree,
            &self.sessions,
            &self.last_snapshot,
            &self.stats.log,
        );
        if let Some(Err(e)) = self.wal.take().map(Wal::close) {
            error!("closing the write-ahead log: {e}");
        }
    }

    /// Replaces the durable state for a learner's sync and reads it back as
    /// recovery would, so memory is what a restart would load (ZOOKEEPER-5094).
    ///
    /// TRUNC: `truncate_after` (snapshots above the cut go first, 4837).
    /// SNAP: the log is cut at the snapshot's zxid first (a divergent tail
    /// above it must never be replayed over the snapshot), then the snapshot
    /// is written durably; a crash between the two recovers a prefix of the
    /// old log, which this learner never acknowledged as the new epoch's.
    pub fn reset(&mut self, reset: Reset) -> Result<ResetDone, StorageError> {
        if let Some(handle) = self.snapshotting.take() {
            let _ = handle.join();
        }
        if let Some(wal) = self.wal.take() {
            wal.close()?;
        }
        let mut store = FsLogStore::new(&self.storage.data_log_dir)
            .ctx(|| format!("opening {}", self.storage.data_log_dir.display()))?;
        match reset {
            Reset::TruncateAfter(zxid) => {
                truncate_after(&self.data_dir, &mut store, zxid)?;
            }
            Reset::Install(state) => {
                let ResetDone { tree, sessions } = *state;
                truncate_after(&self.data_dir, &mut store, tree.last_zxid())?;
                let path = write_snapshot(&self.data_dir, self.db_id, &tree, &sessions)?;
                self.last_snapshot.record(&path);
                info!(
                    "installed a snapshot as the durable state: {}",
                    path.display()
                );
            }
        }
        drop(store);
        let opened = crate::storage::open(&self.storage)?;
        self.wal = Some(opened.wal);
        self.sessions = opened.recovered.sessions.clone();
        self.last_version = opened.recovered.tree.clone();
        Ok(ResetDone {
            tree: opened.recovered.tree,
            sessions: opened.recovered.sessions,
        })
    }

    pub fn appended_total(&self) -> u64 {
        self.appended_total
    }
}

fn closed_by_failed_reset() -> StorageError {
    StorageError::Invalid("the log was closed by a failed sync reset".into())
}

fn snapshot(
    dir: &std::path::Path,
    db_id: DbId,
    tree: &DataTree,
    sessions: &OpenSessions,
    last_snapshot: &LastSnapshot,
    stats: &LogStats,
) -> Result<PathBuf, String> {
    let started = Instant::now();
    match write_snapshot(dir, db_id, tree, sessions) {
        Ok(path) => {
            let elapsed = started.elapsed();
            // ZooKeeper times successful snapshots only (takeSnapshot).
            stats.snapshot_us.record_shared(elapsed.as_micros() as u64);
            last_snapshot.record(&path);
            info!(
                "snapshot written: {} ({} znodes in {} ms)",
                path.display(),
                tree.node_count(),
                elapsed.as_millis()
            );
            Ok(path)
        }
        Err(e) => {
            error!("snapshot failed: {e}");
            Err(e.to_string())
        }
    }
}

/// Snapshots are background work: let the pipeline and shards win the CPU.
fn lower_priority() {
    // SAFETY: setpriority on the calling thread (who = 0) has no memory effects.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 10) };
    if rc != 0 {
        warn!("could not lower the snapshot thread's priority");
    }
}

//! What the AdminServer's threads ask of the pipeline, which owns the tree,
//! the session table and the log: whether an identity may do ALL on "/"
//! (the auth rule of `snapshot` and `restore`), a snapshot taken now, and a
//! restore that replaces the database.
//!
//! A job goes into a bounded queue; shard 0's poll task, seeing a job
//! posted, sends the pipeline a wake-up (as for `dump`'s sessions), and the
//! pipeline takes the queue at its next loop turn (one atomic load when
//! nothing is posted). Each job carries the channel its answer goes back on;
//! the asking thread waits for it with a bound.

use std::collections::VecDeque;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::{AcqRel, Acquire};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::Mutex;

use crate::limits::admin::JOBS_QUEUED_MAX;
use crate::server::messages::ToPipeline;
use crate::server::shard::Shard;
use crate::tree::{AuthInfo, DataTree};
use crate::zab::snap_wire::load::LoadedSnap;

/// A snapshot the log executor wrote on an admin's request: the version it
/// holds and the sessions with it (the admin streams them in ZooKeeper's
/// file format).
pub struct SnapshotTaken {
    pub tree: DataTree,
    /// (session id, timeout ms).
    pub sessions: Vec<(i64, i32)>,
}

pub enum AdminJob {
    /// May `auth` do every permission on "/"? (ZooKeeper's
    /// `AuthRequest(Perms.ALL, "/")` of its snapshot and restore commands.)
    Authorize {
        auth: AuthInfo,
        reply: SyncSender<bool>,
    },
    /// Write a snapshot of the newest logged state now.
    Snapshot {
        reply: SyncSender<Result<SnapshotTaken, String>>,
    },
    /// Make a loaded snapshot the database; answers the zxid it stands at.
    Restore {
        snap: Box<LoadedSnap>,
        reply: SyncSender<Result<i64, String>>,
    },
}

/// The queue between the AdminServer's threads and the pipeline.
#[derive(Default)]
pub struct AdminJobs {
    queue: Mutex<VecDeque<AdminJob>>,
    /// Jobs posted so far, and the count the pipeline was last woken for.
    posted: AtomicU64,
    woken: AtomicU64,
    /// Jobs the pipeline has taken.
    taken: AtomicU64,
}

/// The queue was full; the job is handed back.
pub struct QueueFull(pub AdminJob);

impl AdminJobs {
    /// Queues a job, or hands it back if `JOBS_QUEUED_MAX` are waiting.
    pub fn post(&self, job: AdminJob) -> Result<(), QueueFull> {
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        if queue.len() >= JOBS_QUEUED_MAX {
            return Err(QueueFull(job));
        }
        queue.push_back(job);
        self.posted.fetch_add(1, AcqRel);
        Ok(())
    }

    /// Shard 0's poll task: wakes the pipeline once for jobs posted since
    /// its last wake-up.
    pub fn wake_pipeline_if_posted(&self, shard: &Shard) {
        let posted = self.posted.load(Acquire);
        if self.woken.fetch_max(posted, AcqRel) < posted {
            shard.send_to_pipeline(ToPipeline::Wake);
        }
    }

    /// The pipeline's loop: every queued job (none without a lock taken
    /// unless one was posted).
    pub fn take(&self) -> Vec<AdminJob> {
        if self.taken.load(Acquire) >= self.posted.load(Acquire) {
            return Vec::new();
        }
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        let jobs: Vec<AdminJob> = queue.drain(..).collect();
        self.taken.fetch_add(jobs.len() as u64, AcqRel);
        jobs
    }
}

/// A one-answer channel for a job.
pub fn answer_channel<T>() -> (SyncSender<T>, Receiver<T>) {
    mpsc::sync_channel(1)
}

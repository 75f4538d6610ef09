//! This server's place in the ensemble as the pipeline last set it, for the
//! four-letter words, the AdminServer and `/metrics` (atomics: readers on
//! other threads never wait for the pipeline).

use std::sync::atomic::{AtomicI64, AtomicU8, AtomicUsize, Ordering::Relaxed};
use std::sync::Mutex;

/// ZooKeeper's server states as `srvr` prints them (`Mode:`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Standalone,
    /// Electing, or syncing with a leader: not serving writes.
    Looking,
    Leader,
    Follower,
    Observer,
    /// Cut off from the quorum with `readonlymode.enabled`: serving reads to
    /// read-only clients (ZooKeeper's `ReadOnlyZooKeeperServer`).
    ReadOnly,
}

impl Mode {
    /// `srvr`'s `Mode:` and `mntr`'s `zk_server_state`.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Standalone => "standalone",
            Mode::Looking => "looking",
            Mode::Leader => "leader",
            Mode::Follower => "follower",
            Mode::Observer => "observer",
            Mode::ReadOnly => "read-only",
        }
    }

    fn from_u8(v: u8) -> Mode {
        match v {
            1 => Mode::Looking,
            2 => Mode::Leader,
            3 => Mode::Follower,
            4 => Mode::Observer,
            5 => Mode::ReadOnly,
            _ => Mode::Standalone,
        }
    }
}

#[derive(Default)]
pub struct ReplicaStatus {
    mode: AtomicU8,
    /// The leader's sid while following or leading; -1 otherwise.
    leader: AtomicI64,
    synced_followers: AtomicUsize,
    synced_observers: AtomicUsize,
    /// Learners connected to this leader (`zk_learners`), synced or not.
    learners: AtomicUsize,
    /// Forwarded syncs waiting for their commit (`zk_pending_syncs`).
    pending_syncs: AtomicUsize,
    /// Voters of the ensemble (`quorum_size`); 0 standalone.
    voters: AtomicUsize,
    /// A leader's synced observers (`observers`), refreshed every ZAB tick;
    /// a few entries, read by the AdminServer only.
    observers: Mutex<Vec<ObserverInfo>>,
}

/// One synced observer as ZooKeeper's `LearnerHandler.getLearnerHandlerInfo`
/// describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObserverInfo {
    /// `/host:port`, as Java prints a socket address.
    pub remote_socket_address: String,
    pub sid: i64,
    pub established_unix_ms: i64,
    pub queued_packets: usize,
    pub queued_bytes: usize,
    pub packets_received: u64,
    pub packets_sent: u64,
    pub requests: u64,
    pub last_zxid: i64,
}

impl ReplicaStatus {
    pub fn standalone() -> ReplicaStatus {
        let status = ReplicaStatus::default();
        status.leader.store(-1, Relaxed);
        status
    }

    pub fn mode(&self) -> Mode {
        Mode::from_u8(self.mode.load(Relaxed))
    }

    pub fn set_mode(&self, mode: Mode, leader: Option<u64>) {
        self.mode.store(mode as u8, Relaxed);
        self.leader
            .store(leader.map_or(-1, |sid| sid as i64), Relaxed);
        if mode != Mode::Leader {
            self.set_learners(0, 0, 0);
            self.pending_syncs.store(0, Relaxed);
            self.set_observers(Vec::new());
        }
    }

    pub fn set_observers(&self, observers: Vec<ObserverInfo>) {
        *self.observers.lock().unwrap_or_else(|e| e.into_inner()) = observers;
    }

    pub fn observers(&self) -> Vec<ObserverInfo> {
        self.observers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn leader(&self) -> Option<u64> {
        let sid = self.leader.load(Relaxed);
        (sid >= 0).then_some(sid as u64)
    }

    pub fn set_learners(&self, connected: usize, followers: usize, observers: usize) {
        self.learners.store(connected, Relaxed);
        self.synced_followers.store(followers, Relaxed);
        self.synced_observers.store(observers, Relaxed);
    }

    pub fn learners(&self) -> usize {
        self.learners.load(Relaxed)
    }

    pub fn synced_followers(&self) -> usize {
        self.synced_followers.load(Relaxed)
    }

    pub fn synced_observers(&self) -> usize {
        self.synced_observers.load(Relaxed)
    }

    pub fn set_pending_syncs(&self, n: usize) {
        self.pending_syncs.store(n, Relaxed);
    }

    pub fn pending_syncs(&self) -> usize {
        self.pending_syncs.load(Relaxed)
    }

    pub fn set_voters(&self, n: usize) {
        self.voters.store(n, Relaxed);
    }

    pub fn voters(&self) -> usize {
        self.voters.load(Relaxed)
    }
}

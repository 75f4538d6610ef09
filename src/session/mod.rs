//! The session table (pure): ids, passwords, timeouts and expiry driven by the
//! caller's clock. Owned by the pipeline executor, which is the only place a
//! session is created, renewed (from shards' touch reports) or expired.

use hashbrown::HashMap;
use sha1::{Digest, Sha1};

use crate::limits;
use crate::proto::SessionId;

/// Where a session's live connection is: shard index and connection id there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnRef {
    pub shard: usize,
    pub conn_id: u64,
}

#[derive(Clone, Debug)]
pub struct Session {
    pub id: SessionId,
    pub timeout_ms: i32,
    /// When the session expires unless renewed (monotonic ms of the caller's clock).
    pub deadline_ms: u64,
    /// The connection that currently holds the session, if any.
    pub owner: Option<ConnRef>,
    /// Set once expiry or closeSession has started: no more requests are accepted.
    pub closing: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub enum AttachError {
    /// Unknown, expired or closing session, or a wrong password.
    Expired,
}

pub struct SessionTable {
    sessions: HashMap<SessionId, Session>,
    next_id: SessionId,
    passwords: Passwords,
}

/// How a session's password derives from its id.
#[derive(Clone, Copy)]
pub enum Passwords {
    /// A keyed hash with this server's secret: unguessable, but only this
    /// server can check it (standalone).
    Keyed([u8; 16]),
    /// ZooKeeper's: `new Random(sessionId ^ superSecret).nextBytes(16)`
    /// (`SessionTrackerImpl`), which every server of an ensemble, Apache's
    /// included, computes alike. Anyone who knows a session id can compute it.
    ZooKeeper,
}

/// `ZooKeeperServer.superSecret`.
const ZK_SUPER_SECRET: i64 = 0xB341_5C00;

/// `java.util.Random(seed).nextBytes(16)`: Java's 48-bit LCG, four bytes per
/// `nextInt`, low byte first.
fn zookeeper_password(id: SessionId) -> [u8; 16] {
    const MULTIPLIER: u64 = 0x5_DEEC_E66D;
    const MASK: u64 = (1 << 48) - 1;
    let mut seed = ((id ^ ZK_SUPER_SECRET) as u64 ^ MULTIPLIER) & MASK;
    let mut out = [0u8; 16];
    for chunk in out.chunks_mut(4) {
        seed = (seed.wrapping_mul(MULTIPLIER).wrapping_add(0xB)) & MASK;
        let mut rnd = (seed >> 16) as u32;
        for byte in chunk {
            *byte = rnd as u8;
            rnd >>= 8;
        }
    }
    out
}

impl SessionTable {
    /// `server_id` goes in the top byte of every id, as in ZooKeeper; the low
    /// bits start from the wall clock so ids differ across restarts.
    pub fn new(server_id: u8, now_unix_ms: u64, secret: [u8; 16]) -> Self {
        Self::with_passwords(server_id, now_unix_ms, Passwords::Keyed(secret))
    }

    pub fn with_passwords(server_id: u8, now_unix_ms: u64, passwords: Passwords) -> Self {
        let base = ((now_unix_ms << 24) >> 8) as i64;
        SessionTable {
            sessions: HashMap::new(),
            next_id: base | ((server_id as i64) << 56),
            passwords,
        }
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Changes how passwords derive from ids (an ensemble's key arrived).
    pub fn set_passwords(&mut self, passwords: Passwords) {
        self.passwords = passwords;
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    pub fn is_full(&self) -> bool {
        self.sessions.len() >= limits::SESSIONS_MAX
    }

    pub fn get(&self, id: SessionId) -> Option<&Session> {
        self.sessions.get(&id)
    }

    /// The next session id (not yet registered).
    pub fn allocate_id(&mut self) -> SessionId {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        id
    }

    /// The password of a session: a keyed hash of its id, so the server can
    /// verify it without storing it.
    pub fn password(&self, id: SessionId) -> [u8; 16] {
        let secret = match self.passwords {
            Passwords::Keyed(secret) => secret,
            Passwords::ZooKeeper => return zookeeper_password(id),
        };
        let mut hasher = Sha1::new();
        hasher.update(secret);
        hasher.update(id.to_be_bytes());
        let digest = hasher.finalize();
        let mut out = [0u8; 16];
        out.copy_from_slice(&digest[..16]);
        out
    }

    pub fn insert(&mut self, id: SessionId, timeout_ms: i32, owner: Option<ConnRef>, now_ms: u64) {
        let session = Session {
            id,
            timeout_ms,
            deadline_ms: now_ms + timeout_ms as u64,
            owner,
            closing: false,
        };
        self.sessions.insert(id, session);
    }

    /// Reattaches a session to a new connection after checking the password.
    /// Returns the previous owner, which must be closed (ZooKeeper closes the
    /// old connection when a session moves).
    pub fn attach(
        &mut self,
        id: SessionId,
        password: &[u8],
        owner: ConnRef,
        now_ms: u64,
    ) -> Result<(Option<ConnRef>, i32), AttachError> {
        let expected = self.password(id);
        let session = self.sessions.get_mut(&id).ok_or(AttachError::Expired)?;
        if session.closing || password != expected {
            return Err(AttachError::Expired);
        }
        let previous = session.owner.replace(owner).filter(|p| *p != owner);
        session.deadline_ms = now_ms + session.timeout_ms as u64;
        Ok((previous, session.timeout_ms))
    }

    /// Forgets the connection of a session if `owner` still holds it.
    pub fn detach(&mut self, id: SessionId, owner: ConnRef) {
        if let Some(session) = self.sessions.get_mut(&id) {
            if session.owner == Some(owner) {
                session.owner = None;
            }
        }
    }

    /// Renews a session; returns false if it is unknown or closing.
    pub fn touch(&mut self, id: SessionId, now_ms: u64) -> bool {
        match self.sessions.get_mut(&id) {
            Some(s) if !s.closing => {
                s.deadline_ms = s.deadline_ms.max(now_ms + s.timeout_ms as u64);
                true
            }
            _ => false,
        }
    }

    /// Restarts every session's clock (a new leader: no session expires
    /// because of the failover, as ZooKeeper's `LeaderSessionTracker` does).
    pub fn touch_all(&mut self, now_ms: u64) {
        for s in self.sessions.values_mut() {
            s.deadline_ms = now_ms + s.timeout_ms as u64;
        }
    }

    /// True if requests of this session may still be accepted.
    pub fn is_live(&self, id: SessionId) -> bool {
        self.sessions.get(&id).is_some_and(|s| !s.closing)
    }

    /// Marks sessions past their deadline as closing and returns them, oldest first.
    pub fn take_expired(&mut self, now_ms: u64) -> Vec<Session> {
        let mut expired: Vec<Session> = self
            .sessions
            .values_mut()
            .filter(|s| !s.closing && s.deadline_ms <= now_ms)
            .map(|s| {
                s.closing = true;
                s.clone()
            })
            .collect();
        expired.sort_by_key(|s| (s.deadline_ms, s.id));
        expired
    }

    /// Marks a session as closing (closeSession in flight); false if unknown.
    pub fn begin_close(&mut self, id: SessionId) -> bool {
        match self.sessions.get_mut(&id) {
            Some(s) if !s.closing => {
                s.closing = true;
                true
            }
            _ => false,
        }
    }

    /// Removes a session once its close txn has been applied.
    pub fn remove(&mut self, id: SessionId) -> Option<Session> {
        self.sessions.remove(&id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Session> {
        self.sessions.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zookeeper_passwords_match_java_random() {
        // `new java.util.Random(id ^ 0xB3415C00L).nextBytes(b)` with b = new
        // byte[16], printed by a real JVM (OpenJDK 17).
        let id: SessionId = 0x0100_016a_2b3c_4d5e;
        let t = SessionTable::with_passwords(1, 0, Passwords::ZooKeeper);
        let hex: String = t.password(id).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "424db50cd4c8922fc349d9c7f67f9c6d");
    }

    const OWNER: ConnRef = ConnRef {
        shard: 0,
        conn_id: 1,
    };

    fn table() -> SessionTable {
        SessionTable::new(1, 1_700_000_000_000, [7; 16])
    }

    #[test]
    fn ids_carry_server_id_and_are_unique() {
        let mut t = table();
        let a = t.allocate_id();
        let b = t.allocate_id();
        assert_ne!(a, b);
        assert_eq!((a >> 56) & 0xff, 1);
    }

    #[test]
    fn attach_checks_password_and_reports_previous_owner() {
        let mut t = table();
        let id = t.allocate_id();
        t.insert(id, 4000, Some(OWNER), 0);
        assert_eq!(t.attach(id, &[0; 16], OWNER, 10), Err(AttachError::Expired));
        let moved = ConnRef {
            shard: 1,
            conn_id: 9,
        };
        let pw = t.password(id);
        assert_eq!(t.attach(id, &pw, moved, 10), Ok((Some(OWNER), 4000)));
        assert_eq!(t.attach(id, &pw, moved, 10), Ok((None, 4000)));
        assert_eq!(t.attach(id + 1, &pw, moved, 10), Err(AttachError::Expired));
    }

    #[test]
    fn expiry_follows_touches() {
        let mut t = table();
        let id = t.allocate_id();
        t.insert(id, 1000, None, 0);
        assert!(t.take_expired(999).is_empty());
        assert!(t.touch(id, 900));
        assert!(t.take_expired(1500).is_empty());
        let expired = t.take_expired(1900);
        assert_eq!(expired.len(), 1);
        assert!(!t.is_live(id));
        assert!(!t.touch(id, 2000), "a closing session cannot be renewed");
        assert!(t.take_expired(5000).is_empty(), "expired once only");
        assert!(t.remove(id).is_some());
    }

    #[test]
    fn detach_only_by_current_owner() {
        let mut t = table();
        let id = t.allocate_id();
        t.insert(id, 1000, Some(OWNER), 0);
        t.detach(
            id,
            ConnRef {
                shard: 3,
                conn_id: 3,
            },
        );
        assert_eq!(t.get(id).unwrap().owner, Some(OWNER));
        t.detach(id, OWNER);
        assert_eq!(t.get(id).unwrap().owner, None);
    }
}

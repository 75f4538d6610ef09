//! The session table as ZooKeeper's session trackers dump it (`dump`, four
//! letters and AdminServer): a server that expires sessions (standalone, a
//! leader: `SessionTrackerImpl`) lists them by expiry time, a learner
//! (`LearnerSessionTracker`) lists the global sessions with their timeouts
//! and has no expiry map.
//!
//! Expiry times are on Java's `Time.currentElapsedTime()` clock
//! (`crate::clock::elapsed_ms`), rounded
//! up to the next tick as `ExpiryQueue.roundToNextInterval` does, so the
//! AdminServer's `expiry_time_to_session_ids` keys read as ZooKeeper's.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::proto::SessionId;

/// One session of the pipeline's table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionEntry {
    pub id: SessionId,
    pub timeout_ms: i32,
    /// Its expiry bucket, elapsed-clock ms (see the module's note).
    pub expiry_ms: u64,
}

/// What the pipeline answers a gather that asks for sessions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionList {
    /// This server expires sessions (standalone or an active leader).
    pub expiring: bool,
    pub sessions: Vec<SessionEntry>,
    /// The table had more than `SESSION_GATHER_MAX` sessions.
    pub truncated: bool,
}

/// `ExpiryQueue.roundToNextInterval`: the first tick boundary after `ms`.
pub fn round_to_next_tick(ms: u64, tick_ms: u64) -> u64 {
    let tick = tick_ms.max(1);
    (ms / tick + 1) * tick
}

/// expiry time -> session ids, both ascending (`getSessionExpiryMap`); empty
/// on a learner, as ZooKeeper's.
pub fn expiry_map(list: &SessionList) -> BTreeMap<u64, Vec<SessionId>> {
    let mut map: BTreeMap<u64, Vec<SessionId>> = BTreeMap::new();
    if list.expiring {
        for s in &list.sessions {
            map.entry(s.expiry_ms).or_default().push(s.id);
        }
    }
    for ids in map.values_mut() {
        ids.sort_unstable();
    }
    map
}

/// The four-letter `dump`'s session part, after "SessionTracker dump:".
/// `now_elapsed_ms`/`now_unix_ms` turn expiry times into dates, as
/// `Time.elapsedTimeToDate` does.
pub fn dump_text(list: &SessionList, now_elapsed_ms: u64, now_unix_ms: i64) -> String {
    let mut s = String::new();
    if !list.expiring {
        let mut sessions = list.sessions.clone();
        sessions.sort_unstable_by_key(|e| e.id);
        let _ = writeln!(s, "Global Sessions({}):", sessions.len());
        for e in sessions {
            let _ = writeln!(s, "0x{:x}\t{}ms", e.id, e.timeout_ms);
        }
        return s;
    }
    let map = expiry_map(list);
    let _ = writeln!(s, "Session Sets ({})/({}):", map.len(), list.sessions.len());
    for (expiry_ms, ids) in map {
        let unix_ms = now_unix_ms + (expiry_ms as i64 - now_elapsed_ms as i64);
        let _ = writeln!(s, "{} expire at {}:", ids.len(), java_date(unix_ms));
        for id in ids {
            let _ = writeln!(s, "\t0x{id:x}");
        }
    }
    s
}

/// `java.util.Date.toString()` in UTC: `Wed Dec 02 02:02:37 UTC 2026`.
fn java_date(unix_ms: i64) -> String {
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp(unix_ms.div_euclid(1000)) else {
        return unix_ms.to_string();
    };
    let weekday = t.weekday().to_string();
    let month = t.month().to_string();
    format!(
        "{} {} {:02} {:02}:{:02}:{:02} UTC {}",
        &weekday[..3],
        &month[..3],
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.year()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: SessionId, timeout_ms: i32, expiry_ms: u64) -> SessionEntry {
        SessionEntry {
            id,
            timeout_ms,
            expiry_ms,
        }
    }

    #[test]
    fn rounds_up_to_the_next_tick_as_expiry_queue() {
        assert_eq!(round_to_next_tick(61_749_999, 2000), 61_750_000);
        assert_eq!(round_to_next_tick(61_750_000, 2000), 61_752_000);
    }

    #[test]
    fn expiring_tracker_dumps_sets_by_time() {
        let list = SessionList {
            expiring: true,
            sessions: vec![entry(0x11, 10_000, 4000), entry(0x10, 10_000, 4000)],
            truncated: false,
        };
        // 1_796_176_291_000 ms since the epoch is Wed Dec 02 01:51:31 UTC 2026.
        let text = dump_text(&list, 2000, 1_796_176_291_000 - 2000);
        assert_eq!(
            text,
            "Session Sets (1)/(2):\n2 expire at Wed Dec 02 01:51:31 UTC 2026:\n\t0x10\n\t0x11\n"
        );
        assert_eq!(expiry_map(&list)[&4000], vec![0x10, 0x11]);
    }

    #[test]
    fn learner_lists_global_sessions_and_has_no_expiry_map() {
        let list = SessionList {
            expiring: false,
            sessions: vec![entry(0xb, 30_000, 9), entry(0xa, 4000, 9)],
            truncated: false,
        };
        assert_eq!(
            dump_text(&list, 0, 0),
            "Global Sessions(2):\n0xa\t4000ms\n0xb\t30000ms\n"
        );
        assert!(expiry_map(&list).is_empty());
    }
}

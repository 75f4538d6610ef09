//! Java's two clocks, as ZooKeeper reads them: `System.currentTimeMillis()`
//! (stats' ctime/mtime, connection and learner `established`, dates) and
//! `Time.currentElapsedTime()` (`System.nanoTime()` in ms, CLOCK_MONOTONIC
//! on Linux: session expiry times).

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Java's `Time.currentElapsedTime()`: CLOCK_MONOTONIC in ms.
pub fn elapsed_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    if rc != 0 {
        return 0;
    }
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

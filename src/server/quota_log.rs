//! Logging the quota limits writes go over, rate limited as ZooKeeper's
//! `RateLogger` does for checkQuota: a message is logged the first time it
//! appears; repeats of the same message are counted and logged at most once
//! per interval ("[n times] ..."), and pending repeats are logged when a
//! different message arrives. A client writing past a soft limit in a loop
//! thus costs a few log lines per second, not one per write.

use std::time::{Duration, Instant};

use tracing::warn;

use crate::limits;

#[derive(Debug, Default)]
pub struct QuotaLog {
    last: Option<Repeated>,
}

#[derive(Debug)]
struct Repeated {
    message: String,
    since: Instant,
    /// Repeats not logged yet.
    pending: u64,
}

impl QuotaLog {
    /// Logs `message` now or counts it; returns the line logged, if any.
    pub fn note(&mut self, message: String, now: Instant) -> Option<String> {
        let interval = Duration::from_millis(limits::QUOTA_LOG_INTERVAL_MS);
        let line = match &mut self.last {
            Some(last) if last.message == message => {
                last.pending += 1;
                if now.duration_since(last.since) < interval {
                    return None;
                }
                let line = repeated_line(last);
                last.since = now;
                last.pending = 0;
                Some(line)
            }
            _ => {
                if let Some(last) = self.last.take().filter(|last| last.pending > 0) {
                    warn!("{}", repeated_line(&last));
                }
                let line = message.clone();
                self.last = Some(Repeated {
                    message,
                    since: now,
                    pending: 0,
                });
                Some(line)
            }
        };
        if let Some(line) = &line {
            warn!("{line}");
        }
        line
    }
}

fn repeated_line(last: &Repeated) -> String {
    if last.pending > 1 {
        format!("[{} times] {}", last.pending, last.message)
    } else {
        last.message.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_are_counted_and_logged_once_per_interval() {
        let mut log = QuotaLog::default();
        let start = Instant::now();
        let msg = || "Quota exceeded: /q [current count=3, softCountLimit=2]".to_string();
        assert_eq!(log.note(msg(), start), Some(msg()));
        assert_eq!(log.note(msg(), start), None);
        assert_eq!(log.note(msg(), start + Duration::from_millis(1)), None);
        let later = start + Duration::from_millis(limits::QUOTA_LOG_INTERVAL_MS);
        assert_eq!(log.note(msg(), later), Some(format!("[3 times] {}", msg())));
        let other = "Quota exceeded: /r [current bytes=9, softByteLimit=1]".to_string();
        assert_eq!(log.note(other.clone(), later), Some(other));
    }
}

//! ZooKeeper's `RateLimiter` (`server.util`): `rate` permits per window;
//! the window restarts at the first call after it ended (not on a fixed
//! grid), and starts full when the limiter is made (at server start).

use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct RateLimiter {
    rate: u32,
    interval: Duration,
    /// When the window began, and the permits left in it.
    window: Mutex<(Instant, u32)>,
}

impl RateLimiter {
    pub fn new(rate: u32, interval: Duration) -> RateLimiter {
        RateLimiter::starting_at(rate, interval, Instant::now())
    }

    fn starting_at(rate: u32, interval: Duration, now: Instant) -> RateLimiter {
        RateLimiter {
            rate,
            interval,
            window: Mutex::new((now, rate)),
        }
    }

    /// Takes a permit if one is left.
    pub fn allow(&self) -> bool {
        self.allow_at(Instant::now())
    }

    fn allow_at(&self, now: Instant) -> bool {
        let mut window = self.window.lock().unwrap_or_else(|e| e.into_inner());
        if now > window.0 + self.interval {
            *window = (now, self.rate);
        }
        if window.1 == 0 {
            return false;
        }
        window.1 -= 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_permit_per_window_from_the_first_call_after_it() {
        let t0 = Instant::now();
        let second = Duration::from_secs(1);
        let limiter = RateLimiter::starting_at(1, second, t0);
        assert!(limiter.allow_at(t0));
        assert!(
            !limiter.allow_at(t0 + second),
            "the window includes its end"
        );
        let later = t0 + second * 5;
        assert!(limiter.allow_at(later));
        assert!(!limiter.allow_at(later + second / 2));
        assert!(limiter.allow_at(later + second * 2));
    }
}

//! A wake-up signal between tasks of one executor. Ringing never blocks, rings
//! that arrive while one is pending merge into one, and a `wait` future that is
//! dropped before it fires leaves nothing behind (it only replaces the stored
//! waker) — unlike dropping a pending channel receive, which keeps a waker
//! registered in the channel.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::task::{Poll, Waker};

#[derive(Default)]
pub struct Bell {
    rung: Cell<bool>,
    waiter: RefCell<Option<Waker>>,
}

impl Bell {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn ring(&self) {
        self.rung.set(true);
        if let Some(waker) = self.waiter.borrow_mut().take() {
            waker.wake();
        }
    }

    /// Completes once the bell has rung since the last completed wait.
    pub async fn wait(&self) {
        poll_fn(|cx| {
            if self.rung.replace(false) {
                return Poll::Ready(());
            }
            let mut waiter = self.waiter.borrow_mut();
            match waiter.as_ref() {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => *waiter = Some(cx.waker().clone()),
            }
            Poll::Pending
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::future::{block_on, poll_once};

    #[test]
    fn rings_merge_and_dropped_waits_are_harmless() {
        let bell = Bell::new();
        block_on(async {
            assert!(poll_once(bell.wait()).await.is_none());
            bell.ring();
            bell.ring();
            assert!(poll_once(bell.wait()).await.is_some());
            assert!(
                poll_once(bell.wait()).await.is_none(),
                "two rings merged into one"
            );
        });
    }
}

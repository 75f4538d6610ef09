//! systemd readiness notification (`Type=notify` in tuning/ferrokeeper.service).
//!
//! Outside systemd (`NOTIFY_SOCKET` unset) these do nothing. A failure to
//! notify is logged and otherwise ignored: the server serves either way, and
//! systemd reports the missing notification itself (start timeout).

use sd_notify::NotifyState;
use tracing::warn;

/// Tells systemd the server is ready: call once every listener is bound.
pub fn notify_ready() {
    notify(NotifyState::Ready, "READY");
}

/// Tells systemd a clean shutdown (final snapshot) has begun, so a slow stop
/// shows as "deactivating" rather than a hang.
pub fn notify_stopping() {
    notify(NotifyState::Stopping, "STOPPING");
}

fn notify(state: NotifyState, what: &str) {
    if let Err(e) = sd_notify::notify(&[state]) {
        warn!("cannot send {what}=1 to systemd: {e}");
    }
}

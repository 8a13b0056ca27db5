//! Telling systemd how the daemon is doing (`Type=notify`): ready, reloading,
//! stopping, a status line, and the watchdog keep-alive. Outside systemd
//! (`NOTIFY_SOCKET` unset) every call does nothing.
//!
//! Notifications are best effort: a lost one must never stop the gateway, so
//! failures are logged and otherwise ignored.

use sd_notify::NotifyState;
use std::time::Duration;

/// The gateway is up: sources, pipelines and sinks are running.
pub fn ready() {
    send(&[NotifyState::Ready, NotifyState::Status("running")]);
}

/// A reload began; call [`ready`] when it is done. systemd ≥ 253 wants the
/// monotonic timestamp with `RELOADING=1` (`Type=notify-reload`); older
/// versions ignore it.
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now]),
        Err(_) => send(&[NotifyState::Reloading]),
    }
}

/// Shutdown began: draining, then exit.
pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

/// A free-form status line, shown by `systemctl status`.
pub fn status(text: &str) {
    send(&[NotifyState::Status(text)]);
}

/// When the unit sets `WatchdogSec=`, a task on the current tokio runtime
/// that sends a keep-alive every half period. It runs on the same runtime as
/// the gateway's tasks, so if that runtime wedges the keep-alives stop and
/// systemd restarts the service. None when no watchdog is asked for.
pub fn spawn_watchdog() -> Option<tokio::task::JoinHandle<()>> {
    let period = sd_notify::watchdog_enabled()?;
    let every = keepalive_interval(period);
    tracing::debug!(?every, "sending systemd watchdog keep-alives");
    Some(tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        loop {
            ticks.tick().await;
            send(&[NotifyState::Watchdog]);
        }
    }))
}

/// Half the watchdog period, as sd_watchdog_enabled(3) recommends, and never
/// zero (a zero interval would make tokio panic).
fn keepalive_interval(period: Duration) -> Duration {
    (period / 2).max(Duration::from_millis(1))
}

fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!("cannot notify systemd: {e}");
    }
}

// End to end (the daemon's READY, WATCHDOG and STOPPING on a socket):
// tests/all/systemd.rs.
#[cfg(test)]
mod tests {
    use super::*;

    /// Keep-alives go out at half the watchdog period, and never at zero.
    #[test]
    fn keepalive_is_half_the_period() {
        assert_eq!(keepalive_interval(Duration::from_secs(30)), Duration::from_secs(15));
        assert_eq!(keepalive_interval(Duration::ZERO), Duration::from_millis(1));
    }
}

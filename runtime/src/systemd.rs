//! Telling systemd how the daemon is doing (`Type=notify`): ready, reloading,
//! stopping, a status line, and the watchdog keep-alive. Outside systemd
//! (`NOTIFY_SOCKET` unset) every call does nothing.
//!
//! Notifications are best effort: a lost one must never stop the gateway, so
//! failures are logged and otherwise ignored.

use sd_notify::NotifyState;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::runtime::Handle;

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
/// that sends a keep-alive every half period, but only while this runtime
/// and every one given to [`watch_runtime`] still run a task within that
/// half period: if one wedges, the keep-alives stop and systemd restarts the
/// service. None when no watchdog is asked for.
pub fn spawn_watchdog() -> Option<tokio::task::JoinHandle<()>> {
    let period = sd_notify::watchdog_enabled()?;
    let every = keepalive_interval(period);
    tracing::debug!(?every, "sending systemd watchdog keep-alives");
    Some(tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        loop {
            ticks.tick().await;
            if watched_runtimes_respond(every).await {
                send(&[NotifyState::Watchdog]);
            } else {
                tracing::error!(
                    "the message path ran no task for {every:?}: withholding the watchdog keep-alive"
                );
            }
        }
    }))
}

/// Runtimes the watchdog checks besides its own, by registration number.
static WATCHED: Mutex<Vec<(u64, Handle)>> = Mutex::new(Vec::new());

/// Watched until dropped.
pub struct Watched(u64);

/// Make the watchdog's keep-alives depend on `runtime` running tasks.
pub fn watch_runtime(runtime: Handle) -> Watched {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    WATCHED.lock().unwrap_or_else(|p| p.into_inner()).push((id, runtime));
    Watched(id)
}

impl Drop for Watched {
    fn drop(&mut self) {
        WATCHED.lock().unwrap_or_else(|p| p.into_inner()).retain(|(id, _)| *id != self.0);
    }
}

/// Whether every watched runtime runs an empty task within `within`.
async fn watched_runtimes_respond(within: Duration) -> bool {
    let runtimes: Vec<Handle> =
        WATCHED.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|(_, h)| h.clone()).collect();
    for runtime in runtimes {
        if !matches!(tokio::time::timeout(within, runtime.spawn(async {})).await, Ok(Ok(()))) {
            return false;
        }
    }
    true
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

    /// A watched runtime that runs no task (here: one no thread drives)
    /// withholds the keep-alive until it is no longer watched.
    #[tokio::test]
    async fn a_stalled_watched_runtime_withholds_keepalives() {
        let within = Duration::from_millis(100);
        let live = tokio::runtime::Builder::new_multi_thread().worker_threads(1).build().unwrap();
        let stalled = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let watched_live = watch_runtime(live.handle().clone());
        assert!(watched_runtimes_respond(within).await);
        let watched_stalled = watch_runtime(stalled.handle().clone());
        assert!(!watched_runtimes_respond(within).await);
        drop(watched_stalled);
        assert!(watched_runtimes_respond(within).await);
        drop(watched_live);
        live.shutdown_background();
        stalled.shutdown_background();
    }
}

//! Logging set-up and the counters an operator would alert on.

use std::sync::atomic::{AtomicU64, Ordering};
use tracing_subscriber::EnvFilter;

/// Install the global `tracing` subscriber, logging to standard error
/// (standard output carries records). Under systemd (`JOURNAL_STREAM` set)
/// lines are plain, without colours or timestamps, since the journal adds its own.
pub fn init() {
    use std::io::IsTerminal;
    let filter = EnvFilter::try_from_env("EDGEWARD_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        builder.without_time().with_ansi(false).init();
    } else {
        builder.with_ansi(std::io::stderr().is_terminal()).init();
    }
}

/// Counters of what went through the gateway since it started.
#[derive(Debug, Default)]
pub struct Counters {
    /// Frames received from sources.
    pub frames: AtomicU64,
    /// Frames from addresses not configured as sensors (ignored).
    pub unknown_sender: AtomicU64,
    /// Frames that could not be decoded or failed verification (dropped).
    pub decode_errors: AtomicU64,
    /// Signed readings refused as replays.
    pub replays: AtomicU64,
    /// Messages that entered a pipeline.
    pub messages: AtomicU64,
    /// Messages a pipeline forwarded to the uplink.
    pub forwarded: AtomicU64,
    /// Messages a module dropped, or dropped after a module failed.
    pub dropped: AtomicU64,
    /// Module calls that failed (error, trap, timeout, memory).
    pub module_faults: AtomicU64,
    /// Alarms raised or cleared.
    pub alarms: AtomicU64,
    /// Actuator commands issued.
    pub commands: AtomicU64,
}

impl Counters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// A snapshot as `name value` pairs, for logs and `--json` output.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        vec![
            ("frames", get(&self.frames)),
            ("unknown_sender", get(&self.unknown_sender)),
            ("decode_errors", get(&self.decode_errors)),
            ("replays", get(&self.replays)),
            ("messages", get(&self.messages)),
            ("forwarded", get(&self.forwarded)),
            ("dropped", get(&self.dropped)),
            ("module_faults", get(&self.module_faults)),
            ("alarms", get(&self.alarms)),
            ("commands", get(&self.commands)),
        ]
    }
}

/// This process's peak resident set size in KiB (Linux `VmHWM`), if known.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

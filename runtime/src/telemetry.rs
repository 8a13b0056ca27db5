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
    /// Per-module call statistics: (profile, module, stats), registered as
    /// pipelines are built. The lock is taken there and by readers, never
    /// per message: the pipelines write the stats themselves.
    pub modules: std::sync::Mutex<Vec<(String, String, std::sync::Arc<crate::pipeline::ModuleStats>)>>,
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
    /// Uplink messages the broker acknowledged (PUBACK).
    pub uplink_acked: AtomicU64,
    /// Times the uplink connection was lost.
    pub uplink_disconnects: AtomicU64,
    /// Times the uplink connected (the first time and every reconnect).
    pub uplink_connects: AtomicU64,
    /// Attempts to connect the uplink that failed (refused, TLS, unreachable).
    pub uplink_connect_failures: AtomicU64,
    /// Messages an MQTT 5 broker refused in its PUBACK (kept in the outbox).
    pub uplink_refused: AtomicU64,
    /// 1 while the uplink is connected.
    pub uplink_connected: AtomicU64,
    /// Messages the full outbox refused (`overflow = "reject-new"`).
    pub outbox_rejected: AtomicU64,
    /// Messages the full outbox evicted (`overflow = "drop-oldest"`).
    pub outbox_evicted: AtomicU64,
    /// Messages refused because `outbox.db` could not be written (disk full,
    /// I/O error): never accepted.
    pub outbox_write_refused: AtomicU64,
    /// BLE advertisements heard from configured sensors (each one BlueZ
    /// reported; bad BTHome data among them is counted in `decode_errors`).
    pub ble_advertisements_matched: AtomicU64,
    /// Devices BlueZ reported that are not configured sensors (ignored;
    /// counted once per appearance: their further advertisements are not
    /// even listened to).
    pub ble_devices_ignored: AtomicU64,
    /// GATT connections to signed sensors established and subscribed.
    pub ble_connects: AtomicU64,
    /// Connection attempts that failed (connect, service discovery or subscribe).
    pub ble_connect_failures: AtomicU64,
    /// Established connections that were lost.
    pub ble_disconnects: AtomicU64,
    /// Connection attempts after a failure or a loss.
    pub ble_reconnect_attempts: AtomicU64,
    /// Notifications (signed readings) received over GATT.
    pub ble_notifications: AtomicU64,
    /// Times the adapter became unusable (missing, powered off, BlueZ gone).
    pub ble_adapter_lost: AtomicU64,
    /// Times it became usable again after such a wait.
    pub ble_adapter_recovered: AtomicU64,
    /// BlueZ sessions started over after an error.
    pub ble_session_restarts: AtomicU64,
    /// Times the watchdog restarted listening after silence.
    pub ble_watchdog_restarts: AtomicU64,
    /// Advertisement monitors registered (passive scanning): 1 while it runs.
    pub ble_passive_scan: AtomicU64,
    /// Discoveries running (active scanning): 1 while it runs.
    pub ble_active_discovery: AtomicU64,
    /// From a frame entering the gateway to its message committed to the
    /// outbox (MQTT uplink only).
    pub latency_to_outbox: LatencyHistogram,
    /// From a frame entering the gateway to an alarm it raised being handed
    /// to the alarm sink's transport (the MQTT client, or written to the file).
    pub latency_to_alarm: LatencyHistogram,
}

/// Latencies in microseconds, in buckets an eighth of a power of two wide
/// (exact below 16 µs): quantiles within 12.5 %, lock-free to record.
pub struct LatencyHistogram {
    buckets: [AtomicU64; LatencyHistogram::BUCKETS],
    sum_us: AtomicU64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram { buckets: std::array::from_fn(|_| AtomicU64::new(0)), sum_us: AtomicU64::new(0) }
    }
}

impl std::fmt::Debug for LatencyHistogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LatencyHistogram").field("count", &self.count()).finish()
    }
}

impl LatencyHistogram {
    /// Up to 2^40 µs (12 days); longer ones land in the last bucket.
    const BUCKETS: usize = 16 + (40 - 4) * 8;

    fn bucket(us: u64) -> usize {
        if us < 16 {
            return us as usize;
        }
        let exponent = 63 - us.leading_zeros() as usize; // 4 or more
        let eighth = ((us >> (exponent - 3)) & 7) as usize;
        (16 + (exponent - 4) * 8 + eighth).min(Self::BUCKETS - 1)
    }

    /// The largest value in bucket `i`, in µs.
    fn upper_bound_us(i: usize) -> u64 {
        if i < 16 {
            return i as u64;
        }
        let (exponent, eighth) = (4 + (i - 16) / 8, ((i - 16) % 8) as u64);
        ((8 + eighth + 1) << (exponent - 3)) - 1
    }

    pub fn record(&self, latency: std::time::Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.buckets[Self::bucket(us)].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    /// The `q` quantile (0..=1) in milliseconds: the upper bound of its
    /// bucket. None when nothing was recorded.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        let counts: Vec<u64> = self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        let i = counts.iter().position(|c| {
            seen += c;
            seen >= rank
        })?;
        Some(Self::upper_bound_us(i) as f64 / 1000.0)
    }

    /// Count and p50, p99, p99.9 (ms), for status and metrics.
    pub fn summary(&self) -> LatencySummary {
        LatencySummary {
            count: self.count(),
            sum_s: self.sum_us.load(Ordering::Relaxed) as f64 / 1e6,
            p50_ms: self.quantile_ms(0.5),
            p99_ms: self.quantile_ms(0.99),
            p999_ms: self.quantile_ms(0.999),
        }
    }
}

/// A latency histogram's quantiles (ms; None before the first sample).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LatencySummary {
    pub count: u64,
    pub sum_s: f64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub p999_ms: Option<f64>,
}

impl Counters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Show the module statistics of `pipelines`, the ones serving now, in
    /// metrics and status (a reload replaces the set).
    pub fn set_modules<'a>(&self, pipelines: impl IntoIterator<Item = &'a crate::pipeline::Pipeline>) {
        let mut modules = self.modules.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        modules.clear();
        for pipeline in pipelines {
            for (module, stats) in pipeline.module_stats() {
                modules.push((pipeline.profile().to_string(), module, stats));
            }
        }
    }

    /// Every module's statistics now.
    pub fn module_snapshot(&self) -> Vec<ModuleStatus> {
        let modules = self.modules.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        modules
            .iter()
            .map(|(profile, module, stats)| {
                let buckets: Vec<u64> = stats.buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect();
                let calls = buckets.iter().sum();
                let seconds = stats.nanos.load(Ordering::Relaxed) as f64 / 1e9;
                ModuleStatus {
                    profile: profile.clone(),
                    module: module.clone(),
                    calls,
                    faults: stats.faults.load(Ordering::Relaxed),
                    latency_sum_s: seconds,
                    latency_mean_us: if calls == 0 { 0.0 } else { seconds * 1e6 / calls as f64 },
                    latency_buckets: buckets,
                }
            })
            .collect()
    }

    /// Whether the counter `name` (as [`Counters::snapshot`] names it) is a
    /// gauge, which may go down, rather than a total.
    pub fn is_gauge(name: &str) -> bool {
        matches!(name, "uplink_connected" | "ble_passive_scan" | "ble_active_discovery")
    }

    /// The latency histograms' summaries, by name.
    pub fn latency_snapshot(&self) -> [(&'static str, LatencySummary); 2] {
        [("to_outbox", self.latency_to_outbox.summary()), ("to_alarm", self.latency_to_alarm.summary())]
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
            ("uplink_acked", get(&self.uplink_acked)),
            ("uplink_disconnects", get(&self.uplink_disconnects)),
            ("uplink_connects", get(&self.uplink_connects)),
            ("uplink_connect_failures", get(&self.uplink_connect_failures)),
            ("uplink_refused", get(&self.uplink_refused)),
            ("uplink_connected", get(&self.uplink_connected)),
            ("outbox_rejected", get(&self.outbox_rejected)),
            ("outbox_evicted", get(&self.outbox_evicted)),
            ("outbox_write_refused", get(&self.outbox_write_refused)),
            ("ble_advertisements_matched", get(&self.ble_advertisements_matched)),
            ("ble_devices_ignored", get(&self.ble_devices_ignored)),
            ("ble_connects", get(&self.ble_connects)),
            ("ble_connect_failures", get(&self.ble_connect_failures)),
            ("ble_disconnects", get(&self.ble_disconnects)),
            ("ble_reconnect_attempts", get(&self.ble_reconnect_attempts)),
            ("ble_notifications", get(&self.ble_notifications)),
            ("ble_adapter_lost", get(&self.ble_adapter_lost)),
            ("ble_adapter_recovered", get(&self.ble_adapter_recovered)),
            ("ble_session_restarts", get(&self.ble_session_restarts)),
            ("ble_watchdog_restarts", get(&self.ble_watchdog_restarts)),
            ("ble_passive_scan", get(&self.ble_passive_scan)),
            ("ble_active_discovery", get(&self.ble_active_discovery)),
        ]
    }
}

/// This process's peak resident set size in KiB (Linux `VmHWM`), if known.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// What `edgeward status` shows: written by the daemon to
/// `STATE/status.json` every few seconds and when it stops.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Status {
    pub gateway: String,
    pub config: String,
    pub pid: u32,
    /// False in the copy written as the daemon stopped.
    pub running: bool,
    pub updated: String,
    pub counters: std::collections::BTreeMap<String, u64>,
    pub outbox: Option<OutboxStatus>,
    /// The configuration serving, and how the last reload went.
    #[serde(default)]
    pub reload: ReloadStatus,
    /// Per module per profile: calls, faults, latency.
    #[serde(default)]
    pub modules: Vec<ModuleStatus>,
    /// Frame entered → `to_outbox` / `to_alarm`, since the daemon started.
    #[serde(default)]
    pub latency: std::collections::BTreeMap<String, LatencySummary>,
}

/// Which configuration generation serves, and the last reload's outcome.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct ReloadStatus {
    /// 1 for the configuration the daemon started with, +1 per applied reload.
    pub generation: u64,
    /// The files the serving configuration was read from.
    pub files: Vec<String>,
    pub last: Option<ReloadOutcome>,
}

/// One reload attempt.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ReloadOutcome {
    /// When it finished (RFC 3339).
    pub at: String,
    /// What asked for it: `SIGHUP`, or the files that changed.
    pub trigger: String,
    /// `applied`, `unchanged` or `refused`.
    pub result: String,
    /// Why it was refused: file, line and key, or module and import.
    pub error: Option<String>,
    /// What was replaced (`profile home`, `uplink`, `source ble`, ...).
    #[serde(default)]
    pub changed: Vec<String>,
    /// From the trigger to the new configuration serving, in milliseconds.
    pub took_ms: f64,
}

/// One module's calls in one profile.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ModuleStatus {
    pub profile: String,
    pub module: String,
    /// `process` and `tick` calls.
    pub calls: u64,
    /// Calls that failed (error, trap, timeout, memory).
    pub faults: u64,
    /// Time spent in calls.
    pub latency_sum_s: f64,
    pub latency_mean_us: f64,
    /// Calls per latency bucket (`crate::pipeline::LATENCY_BUCKETS_US`, then above), not cumulative.
    pub latency_buckets: Vec<u64>,
}

/// The outbox's depth and age.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct OutboxStatus {
    pub messages: u64,
    pub bytes: u64,
    /// Age of the oldest message not yet acknowledged, in seconds.
    pub oldest_age_s: Option<f64>,
}

impl Status {
    /// The current state of this process.
    pub fn gather(
        gateway: &str,
        config: &std::path::Path,
        counters: &Counters,
        outbox: Option<&crate::sink::outbox::Outbox>,
        reload: &ReloadStatus,
        running: bool,
    ) -> Self {
        let now = crate::clock::wall_ms();
        let outbox = outbox.and_then(|o| o.depth().ok()).map(|d| OutboxStatus {
            messages: d.messages,
            bytes: d.bytes,
            oldest_age_s: d.oldest_created_ms.map(|t| now.saturating_sub(t) as f64 / 1000.0),
        });
        Status {
            gateway: gateway.to_string(),
            config: config.display().to_string(),
            pid: std::process::id(),
            running,
            updated: crate::clock::format_rfc3339_ms(now),
            counters: counters.snapshot().into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
            outbox,
            reload: reload.clone(),
            modules: counters.module_snapshot(),
            latency: counters.latency_snapshot().into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        }
    }

    /// Write `dir/status.json` atomically (a reader never sees half a file).
    pub fn write(&self, dir: &std::path::Path) {
        let tmp = dir.join("status.json.tmp");
        let written = serde_json::to_vec_pretty(self)
            .map_err(std::io::Error::other)
            .and_then(|bytes| std::fs::write(&tmp, bytes))
            .and_then(|()| std::fs::rename(&tmp, dir.join("status.json")));
        // Written every few seconds: a full disk is reported when it starts
        // and when it ends, not on every attempt.
        static FAILING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        match written {
            Err(e) if !FAILING.swap(true, Ordering::Relaxed) => {
                tracing::warn!("cannot write {}: {e}", dir.join("status.json").display());
            }
            Err(e) => tracing::debug!("still cannot write status.json: {e}"),
            Ok(()) if FAILING.swap(false, Ordering::Relaxed) => tracing::info!("status.json written again"),
            Ok(()) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Quantiles come out within the bucket width (12.5 %) of the truth,
    /// exact for small values, and every value lands in a bucket that holds it.
    #[test]
    fn latency_quantiles() {
        let h = LatencyHistogram::default();
        assert_eq!(h.quantile_ms(0.5), None);
        for us in 1..=1000u64 {
            h.record(Duration::from_micros(us));
        }
        let near = |got: Option<f64>, want_ms: f64| {
            let got = got.unwrap();
            assert!(got >= want_ms && got <= want_ms * 1.125, "{got} for {want_ms}");
        };
        near(h.quantile_ms(0.5), 0.5);
        near(h.quantile_ms(0.99), 0.99);
        near(h.quantile_ms(0.999), 0.999);
        assert_eq!(h.summary().count, 1000);
        assert!((h.summary().sum_s - 0.5005).abs() < 1e-9);
        for us in [0u64, 7, 15, 16, 17, 100, 1 << 20, u64::MAX >> 1] {
            let i = LatencyHistogram::bucket(us);
            assert!(LatencyHistogram::upper_bound_us(i) >= us.min((1 << 40) - 1), "{us} in bucket {i}");
            assert!(i == 0 || LatencyHistogram::upper_bound_us(i - 1) < us, "{us} in bucket {i}");
        }
    }
}

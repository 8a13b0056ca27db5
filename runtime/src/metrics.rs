//! The Prometheus endpoint (`[metrics] listen = "127.0.0.1:9464"`; off by
//! default): the counters, each module's calls, faults and latency per
//! profile, and the outbox's depth in the text exposition
//! format, for any scraper. Deliberately tiny: one route, no keep-alive.

use crate::sink::outbox::Outbox;
use crate::telemetry::Counters;
use std::fmt::Write as _;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// The exposition text for the current state.
pub fn render(counters: &Counters, outbox: Option<&Outbox>) -> String {
    let mut out = String::new();
    for (name, value) in counters.snapshot() {
        // Counters that only go up are `_total` counters; the rest are gauges.
        if Counters::is_gauge(name) {
            let _ = writeln!(out, "# TYPE edgeward_{name} gauge\nedgeward_{name} {value}");
        } else {
            let _ = writeln!(out, "# TYPE edgeward_{name}_total counter\nedgeward_{name}_total {value}");
        }
    }
    let modules = counters.module_snapshot();
    if !modules.is_empty() {
        out.push_str("# TYPE edgeward_module_calls_total counter\n");
        for m in &modules {
            let _ = writeln!(out, "edgeward_module_calls_total{{{}}} {}", labels(m), m.calls);
        }
        out.push_str("# TYPE edgeward_module_faults_total counter\n");
        for m in &modules {
            let _ = writeln!(out, "edgeward_module_faults_total{{{}}} {}", labels(m), m.faults);
        }
        out.push_str("# TYPE edgeward_module_call_seconds histogram\n");
        for m in &modules {
            let mut cumulative = 0;
            for (i, count) in m.latency_buckets.iter().enumerate() {
                cumulative += count;
                let le = crate::pipeline::LATENCY_BUCKETS_US
                    .get(i)
                    .map_or_else(|| "+Inf".to_string(), |us| (*us as f64 / 1e6).to_string());
                let _ = writeln!(
                    out,
                    "edgeward_module_call_seconds_bucket{{{},le=\"{le}\"}} {cumulative}",
                    labels(m)
                );
            }
            let _ = writeln!(out, "edgeward_module_call_seconds_sum{{{}}} {}", labels(m), m.latency_sum_s);
            let _ = writeln!(out, "edgeward_module_call_seconds_count{{{}}} {}", labels(m), m.calls);
        }
    }
    out.push_str("# TYPE edgeward_latency_seconds summary\n");
    for (path, summary) in counters.latency_snapshot() {
        for (quantile, ms) in [("0.5", summary.p50_ms), ("0.99", summary.p99_ms), ("0.999", summary.p999_ms)]
        {
            if let Some(ms) = ms {
                let _ = writeln!(
                    out,
                    "edgeward_latency_seconds{{path=\"{path}\",quantile=\"{quantile}\"}} {}",
                    ms / 1e3
                );
            }
        }
        let _ = writeln!(out, "edgeward_latency_seconds_sum{{path=\"{path}\"}} {}", summary.sum_s);
        let _ = writeln!(out, "edgeward_latency_seconds_count{{path=\"{path}\"}} {}", summary.count);
    }
    if let Some(depth) = outbox.and_then(|o| o.depth().ok()) {
        let age = depth
            .oldest_created_ms
            .map_or(0.0, |t| crate::clock::wall_ms().saturating_sub(t) as f64 / 1000.0);
        let _ = writeln!(
            out,
            "# TYPE edgeward_outbox_messages gauge\nedgeward_outbox_messages {}",
            depth.messages
        );
        let _ = writeln!(out, "# TYPE edgeward_outbox_bytes gauge\nedgeward_outbox_bytes {}", depth.bytes);
        let _ = writeln!(
            out,
            "# TYPE edgeward_outbox_oldest_age_seconds gauge\nedgeward_outbox_oldest_age_seconds {age}"
        );
    }
    out
}

/// `profile="…",module="…"`, escaped as the exposition format wants.
fn labels(m: &crate::telemetry::ModuleStatus) -> String {
    let escape = |v: &str| v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
    format!("profile=\"{}\",module=\"{}\"", escape(&m.profile), escape(&m.module))
}

/// Serve `GET /metrics` on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, counters: Arc<Counters>, outbox: Option<Arc<Outbox>>) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else { continue };
        let (counters, outbox) = (counters.clone(), outbox.clone());
        tokio::spawn(async move {
            let mut request = [0u8; 1024];
            let n = stream.read(&mut request).await.unwrap_or(0);
            let wanted = request[..n].starts_with(b"GET /metrics ");
            let response = if wanted {
                let body = tokio::task::block_in_place(|| render(&counters, outbox.as_deref()));
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
            } else {
                "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string()
            };
            let _ = stream.write_all(response.as_bytes()).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Totals get `_total` and a counter type; gauges (uplink, BLE scanning) keep their name.
    #[test]
    fn counters_and_gauges_are_typed() {
        let counters = Counters::default();
        Counters::add(&counters.ble_notifications, 3);
        Counters::add(&counters.ble_passive_scan, 1);
        let text = render(&counters, None);
        assert!(text.contains(
            "# TYPE edgeward_ble_notifications_total counter\nedgeward_ble_notifications_total 3\n"
        ));
        assert!(text.contains("# TYPE edgeward_ble_passive_scan gauge\nedgeward_ble_passive_scan 1\n"));
        assert!(text.contains("edgeward_ble_active_discovery 0\n"));
        assert!(text.contains("edgeward_uplink_connected 0\n"));
        assert!(!text.contains("edgeward_ble_passive_scan_total"));
    }
}

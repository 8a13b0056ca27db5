//! Outbox: group commit and backlog drain
//!
//! The durable outbox (`synchronous = FULL`: every commit fsync'd, so an
//! accepted message survives power loss): 200-byte appends in groups,
//! against one transaction per message (the naive floor); then a backlog of
//! 100 000 messages (an outage) drained to a local Mosquitto with QoS 1, 64
//! in flight, each removed on its PUBACK.
//!
//! Run with `cargo bench -p edgeward --bench outbox` (needs `mosquitto` on
//! PATH or in /usr/sbin for the drain figure). Prints Markdown.

mod common;

use edgeward::sink::mqtt::{MqttConfig, Publisher, publish_outbox};
use edgeward::sink::outbox::{NewEntry, Outbox, Overflow};
use edgeward::telemetry::Counters;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

const PAYLOAD: usize = 200;

fn entries(n: usize, from: usize) -> Vec<NewEntry> {
    (from..from + n)
        .map(|i| NewEntry {
            id: format!("gw-1-{i}"),
            topic: "medical/gw-1/wearable-1".into(),
            payload: vec![0xa5; PAYLOAD],
            content_type: None,
            created_ms: i as u64,
        })
        .collect()
}

fn appends_per_second(batch: usize, total: usize) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Outbox::open(dir.path(), u64::MAX, Overflow::RejectNew).unwrap();
    let start = Instant::now();
    for b in 0..total / batch {
        outbox.append(&entries(batch, b * batch)).unwrap();
    }
    total as f64 / start.elapsed().as_secs_f64()
}

fn drain_per_second(backlog: usize) -> Option<f64> {
    let (mut broker, port) = common::mosquitto()?;
    let dir = tempfile::tempdir().unwrap();
    let outbox = Arc::new(Outbox::open(dir.path(), u64::MAX, Overflow::RejectNew).unwrap());
    for b in 0..backlog / 1000 {
        outbox.append(&entries(1000, b * 1000)).unwrap();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let elapsed = runtime.block_on(async {
        let stop = Arc::new(Notify::new());
        // Told to stop at once: it drains the backlog, then returns.
        stop.notify_one();
        let start = Instant::now();
        publish_outbox(Publisher {
            outbox: outbox.clone(),
            config: MqttConfig::for_url(&format!("mqtt://127.0.0.1:{port}")),
            client_id: "bench".into(),
            status_topic: "bench/status".into(),
            wake: Arc::new(Notify::new()),
            stop,
            drain: Duration::from_secs(600),
            counters: Arc::new(Counters::default()),
        })
        .await;
        start.elapsed()
    });
    let _ = broker.kill();
    let _ = broker.wait();
    let left = outbox.depth().unwrap().messages;
    assert_eq!(left, 0, "the backlog drained");
    Some(backlog as f64 / elapsed.as_secs_f64())
}

fn main() {
    let single = appends_per_second(1, 2_000);
    let grouped = appends_per_second(64, 64_000);
    let grouped_256 = appends_per_second(256, 128_000);
    println!("| outbox append, {PAYLOAD} B, synchronous = FULL | appends/s | vs one per transaction |");
    println!("| --- | ---: | ---: |");
    println!("| one message per transaction (floor) | {single:.0} | 1.0x |");
    println!("| group commit, 64 per transaction | {grouped:.0} | {:.1}x |", grouped / single);
    println!("| group commit, 256 per transaction | {grouped_256:.0} | {:.1}x |", grouped_256 / single);
    println!();
    match drain_per_second(100_000) {
        Some(rate) => println!(
            "Backlog of 100 000 messages drained to a local Mosquitto (QoS 1, 64 in flight, removed on PUBACK): {rate:.0} messages/s."
        ),
        None => println!("Drain rate not measured: no mosquitto found."),
    }
}

//! The cost of running policy in WebAssembly, measured against its floor.
//!
//! - The alarm + heating pipeline through the real wasmtime host, against the
//!   same two rules compiled natively and called directly (their crates'
//!   native build, with the SDK's in-memory host), in the same run.
//! - The per-call overhead of a rule that does nothing but forward.
//! - Peak RSS of `edgeward run` on the demo configuration, with a cold and a
//!   warm compiled-module cache.
//!
//! Run with `cargo bench -p edgeward --bench pipeline`; it prints Markdown
//! for BENCHMARKS.md. Figures are medians of several runs.

mod common;

use common::{Host, RUNS, median_ns};
use edgeward::config::OnError;
use edgeward::pipeline::Pipeline;
use edgeward::pipeline::bindings::{Authenticity, Envelope, Measurement, Message, Reading};
use edgeward::trust::Keyring;
use edgeward_module_alarm::AlarmRule;
use edgeward_module_heating::Thermostat;
use edgeward_sdk::Rule;
use std::hint::black_box;
use std::path::Path;
use std::process::Command;

const MESSAGES: usize = 20_000;

const ALARM: &str = r#"{"stale-after-s": 600, "threshold": [
    {"measurement": "temperature", "unit": "Cel", "above": 21.5, "hysteresis": 0.3, "min-duration-s": 120, "code": "warm"},
    {"measurement": "temperature", "unit": "Cel", "below": 17.5, "severity": "critical", "code": "cold"}]}"#;
const HEATING: &str = r#"{"utc-offset-minutes": 60, "zone": [{"name": "room", "sensors": ["room"],
    "actuator": "heating/room", "setpoint": 19.0, "hysteresis": 0.6, "min-on-s": 600, "min-off-s": 600,
    "schedule": [{"at": "06:30", "setpoint": 21.0}, {"at": "22:30", "setpoint": 18.0}]}]}"#;

/// A room's temperature every 10 s, swinging across the thresholds and the
/// thermostat's band, so both rules make transitions as in real use.
fn series(n: usize) -> Vec<(u64, f64)> {
    (0..n)
        .map(|i| {
            let t_ms = 1_768_435_200_000 + i as u64 * 10_000;
            let phase = i as f64 / 2_000.0 * std::f64::consts::TAU;
            (t_ms, 19.5 + 3.0 * phase.sin() + 0.1 * ((i * 7919) % 13) as f64 / 13.0)
        })
        .collect()
}

fn host_message(t_ms: u64, celsius: f64) -> Message {
    Message {
        reading: Reading {
            sensor: "room".into(),
            address: "A4:C1:38:00:00:01".into(),
            seq: None,
            sensor_time_ms: None,
            received_ms: t_ms,
            rssi: Some(-60),
            authenticity: Authenticity::None,
            measurements: vec![
                Measurement { name: "temperature".into(), unit: "Cel".into(), value: celsius },
                Measurement { name: "humidity".into(), unit: "%RH".into(), value: 48.0 },
            ],
        },
        envelope: Envelope { content_type: "application/senml+cbor".into(), body: vec![0u8; 64] },
        path: Vec::new(),
    }
}

fn native_message(t_ms: u64, celsius: f64) -> edgeward_sdk::Message {
    let mut reading = edgeward_sdk::Reading::new(
        "room",
        t_ms,
        vec![
            edgeward_sdk::Measurement::new("temperature", "Cel", celsius),
            edgeward_sdk::Measurement::new("humidity", "%RH", 48.0),
        ],
    );
    reading.address = "A4:C1:38:00:00:01".into();
    reading.rssi = Some(-60);
    edgeward_sdk::Message {
        reading,
        envelope: edgeward_sdk::Envelope {
            content_type: "application/senml+cbor".into(),
            body: vec![0u8; 64],
        },
        path: Vec::new(),
    }
}

fn builtin(name: &str) -> &'static [u8] {
    edgeward::builtin::module(name).unwrap()
}

fn bench_pipeline() -> (f64, f64) {
    let series = series(MESSAGES);

    let host = Host::new(|_| Keyring::default());
    let stages = vec![
        host.instance("alarm", builtin("alarm"), ALARM, &["kv"]),
        host.instance("heating", builtin("heating"), HEATING, &["kv"]),
    ];
    let mut pipeline = Pipeline::new("bench".into(), OnError::Drop, stages);
    let messages: Vec<Message> = series.iter().map(|&(t, c)| host_message(t, c)).collect();
    let wasm = median_ns(|| {
        for msg in &messages {
            black_box(pipeline.process(msg.clone()));
        }
        messages.len()
    });

    let mut alarm: AlarmRule = edgeward_sdk::testing::init(ALARM).unwrap();
    let mut heating: Thermostat = edgeward_sdk::testing::init(HEATING).unwrap();
    let messages: Vec<edgeward_sdk::Message> = series.iter().map(|&(t, c)| native_message(t, c)).collect();
    let native = median_ns(|| {
        for msg in &messages {
            let outcome = alarm.process(msg.clone()).unwrap();
            if let edgeward_sdk::Verdict::Forward(next) = outcome.verdict {
                black_box(heating.process(next).unwrap());
            }
        }
        messages.len()
    });
    (wasm, native)
}

/// One WebAssembly call to a rule that only forwards (the `faulty` test rule
/// configured to fail on `tick` only).
fn bench_call_overhead() -> f64 {
    let wasm = std::fs::read(Path::new(env!("EDGEWARD_GUEST_DIR")).join("test-faulty.wasm")).unwrap();
    let host = Host::new(|_| Keyring::default());
    let mut rule = host.instance("forward", &wasm, r#"{"fault":"error","on":"tick"}"#, &[]);
    let msg = host_message(0, 20.0);
    median_ns(|| {
        for _ in 0..MESSAGES {
            black_box(rule.process(&msg).unwrap());
        }
        MESSAGES
    })
}

/// Peak RSS (KiB) of `edgeward run` on the demo config at full simulation
/// speed, with a fresh state directory, and the cache cold or warm.
fn demo_rss() -> (u64, u64) {
    let dir = tempfile::tempdir().unwrap();
    let demo =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/demo.toml")).unwrap();
    let mut config: toml::Table = demo.parse().unwrap();
    let set = |config: &mut toml::Table, table: &str, key: &str, value: toml::Value| {
        config.get_mut(table).unwrap().as_table_mut().unwrap().insert(key.into(), value);
    };
    set(&mut config, "gateway", "state-dir", "state".into());
    set(&mut config, "sim", "speed", 0.into());
    for sink in ["uplink", "alarm", "actuator"] {
        config.insert(sink.into(), toml::toml! { type = "none" }.into());
    }
    let path = dir.path().join("demo.toml");
    std::fs::write(&path, toml::to_string(&config).unwrap()).unwrap();
    let run = || {
        let out = Command::new(env!("CARGO_BIN_EXE_edgeward"))
            .args(["run", "-c", path.to_str().unwrap()])
            .env("EDGEWARD_LOG", "info")
            .env_remove("EDGEWARD_CACHE_DIR")
            .output()
            .unwrap();
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{log}");
        let field = log.split("peak_rss_kib=").nth(1).expect("the stopped line");
        field.split_whitespace().next().unwrap().parse::<u64>().unwrap()
    };
    (run(), run())
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing
    // useful either: always run, it takes under a minute.
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find(|l| l.starts_with("model name")).map(|l| l[l.find(':').unwrap() + 2..].to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let (wasm, native) = bench_pipeline();
    let call = bench_call_overhead();
    let (rss_cold, rss_warm) = demo_rss();

    println!("Machine: {cpu}, {cores} cores. {MESSAGES} messages per run, median of {RUNS} runs.\n");
    println!("| path | per message | messages/s (one core) | vs native |");
    println!("| --- | ---: | ---: | ---: |");
    println!("| alarm + heating, native (floor) | {:.2} µs | {:.0} | 1.00x |", native / 1e3, 1e9 / native);
    println!(
        "| alarm + heating, WebAssembly pipeline | {:.2} µs | {:.0} | {:.2}x |",
        wasm / 1e3,
        1e9 / wasm,
        wasm / native
    );
    println!("| one forwarding rule (call overhead) | {:.2} µs | {:.0} | |", call / 1e3, 1e9 / call);
    println!();
    println!("| `edgeward run -c configs/demo.toml` | peak RSS |");
    println!("| --- | ---: |");
    println!("| cold module cache (compiles in-process) | {:.1} MiB |", rss_cold as f64 / 1024.0);
    println!("| warm module cache | {:.1} MiB |", rss_warm as f64 / 1024.0);
}

//! Policy pipeline: WebAssembly against native
//!
//! The `alarm` and `heating` rules, exactly as shipped, over room readings
//! that swing across the alarm thresholds and the thermostat's band: through
//! the gateway's real wasmtime host (one instance per rule, reused; epoch
//! deadline and memory cap armed; module state in SQLite), against the same
//! two crates compiled natively and called directly (the SDK's in-memory
//! host), in alternating rounds. Then the cost of crossing into the sandbox
//! and back: a rule that only forwards, alone and four in a row. (Memory:
//! `--bench startup`.)
//!
//! Run with `cargo bench -p edgeward --bench pipeline`. Prints Markdown.

mod common;

use common::{Host, Interleaved, RUNS, interleaved};
use edgeward::config::OnError;
use edgeward::pipeline::Pipeline;
use edgeward::pipeline::bindings::{Authenticity, Envelope, Measurement, Message, Reading};
use edgeward::trust::Keyring;
use edgeward_module_alarm::AlarmRule;
use edgeward_module_heating::Thermostat;
use edgeward_sdk::Rule;
use std::hint::black_box;
use std::path::Path;

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
    edgeward_sdk::Message::from_reading(reading).with_envelope(edgeward_sdk::Envelope {
        content_type: "application/senml+cbor".into(),
        body: vec![0u8; 64],
    })
}

fn builtin(name: &str) -> &'static [u8] {
    edgeward::builtin::module(name).unwrap()
}

fn bench_pipeline() -> Interleaved {
    let series = series(MESSAGES);

    let host = Host::new(|_| Keyring::default());
    let stages = vec![
        host.instance("alarm", builtin("alarm"), ALARM, &["kv"]),
        host.instance("heating", builtin("heating"), HEATING, &["kv"]),
    ];
    let mut pipeline = Pipeline::new("bench".into(), OnError::Drop, stages);
    let host_messages: Vec<Message> = series.iter().map(|&(t, c)| host_message(t, c)).collect();

    let mut alarm: AlarmRule = edgeward_sdk::testing::init(ALARM).unwrap();
    let mut heating: Thermostat = edgeward_sdk::testing::init(HEATING).unwrap();
    let native_messages: Vec<edgeward_sdk::Message> =
        series.iter().map(|&(t, c)| native_message(t, c)).collect();
    interleaved(
        RUNS,
        || {
            for msg in &native_messages {
                let outcome = alarm.process(msg.clone()).unwrap();
                if let edgeward_sdk::Verdict::Forward(next) = outcome.verdict {
                    black_box(heating.process(next).unwrap());
                }
            }
            native_messages.len()
        },
        || {
            for msg in &host_messages {
                black_box(pipeline.process(msg.clone()));
            }
            host_messages.len()
        },
    )
}

/// The sandbox's cost per message: a pipeline of `stages` rules that only
/// forward (the `faulty` test rule, configured to misbehave never), against
/// the same message cloned as the pipeline does on the way in. Also the
/// cost of a call that carries no message (`tick`), per pipeline: the floor
/// of crossing into the sandbox and back.
fn bench_call_overhead(stages: usize) -> (Interleaved, f64) {
    let wasm = std::fs::read(Path::new(env!("EDGEWARD_GUEST_DIR")).join("test-faulty.wasm")).unwrap();
    let host = Host::new(|_| Keyring::default());
    let rules = (0..stages)
        .map(|i| host.instance(&format!("forward-{i}"), &wasm, r#"{"fault":"none","on":"process"}"#, &[]))
        .collect();
    let mut pipeline = Pipeline::new("bench".into(), OnError::Drop, rules);
    let msg = host_message(0, 20.0);
    let tick_ns = common::median_ns(|| {
        for _ in 0..MESSAGES {
            black_box(pipeline.tick(0));
        }
        MESSAGES
    });
    let process = interleaved(
        RUNS,
        || {
            for _ in 0..MESSAGES {
                black_box(msg.clone());
            }
            MESSAGES
        },
        || {
            for _ in 0..MESSAGES {
                black_box(pipeline.process(msg.clone()));
            }
            MESSAGES
        },
    );
    (process, tick_ns)
}

fn main() {
    let rules = bench_pipeline();
    let one = bench_call_overhead(1);
    let four = bench_call_overhead(4);

    println!("{MESSAGES} messages per round, {RUNS} rounds alternating native and WebAssembly, medians.\n");
    println!("| path | per message | messages/s (one core) | vs native |");
    println!("| --- | ---: | ---: | ---: |");
    println!(
        "| alarm + heating, native (floor) | {:.2} µs | {:.0} | 1.00x |",
        rules.floor_ns / 1e3,
        1e9 / rules.floor_ns
    );
    println!(
        "| alarm + heating, WebAssembly pipeline | {:.2} µs | {:.0} | {:.2}x |",
        rules.subject_ns / 1e3,
        1e9 / rules.subject_ns,
        rules.ratio
    );
    println!();
    println!(
        "Sandbox overhead: pipelines of rules that only forward, per message, less cloning the message \
         (one instance per rule, reused; pooling allocator off; epoch deadline and memory cap armed; \
         module path recorded; the message lent to each rule as a resource, edgeward:policy@0.2). \
         Beside it, a call that carries no message (`tick`): the floor of entering a component and \
         back with this wasmtime. Goal: ≤ 3 µs for four rules.\n"
    );
    println!("| rules | per message | per rule | a call without a message, per rule |");
    println!("| ---: | ---: | ---: | ---: |");
    for (n, (m, tick_ns)) in [(1, &one), (4, &four)] {
        let overhead = m.subject_ns - m.floor_ns;
        println!(
            "| {n} | {:.2} µs | {:.2} µs | {:.2} µs |",
            overhead / 1e3,
            overhead / 1e3 / n as f64,
            tick_ns / 1e3 / n as f64
        );
    }
}

//! Latency under load: reading to outbox, and to local alarm
//!
//! The real daemon (`edgeward run`) with simulated room sensors at real
//! time, 1 000 and then 10 000 readings a second, through an `alarm` +
//! `heating` pipeline, to a local Mosquitto: the uplink through the durable
//! outbox, alarms on their own MQTT topics. The alarm threshold sits just
//! above the rooms' mean temperature with little hysteresis, so the sensors'
//! noise raises or clears an alarm on about one reading in five. The
//! figures are the daemon's own: each frame is stamped when the source
//! makes it, and the daemon records the
//! time to its message being committed to the outbox (fsync'd) and to each
//! alarm it raised being handed to the alarm sink's MQTT client
//! (`edgeward_latency_seconds` on `/metrics`; read here from `status.json`
//! when the daemon stops). Quantiles are to within 12.5 %. Goal: p99 to the
//! local alarm ≤ 2 ms at 1 000/s. The daemon runs on the core the bench is
//! pinned to, and at 10 000/s once more on every core of the machine (the
//! broker stays on the pinned one).
//!
//! Run with `cargo bench -p edgeward --bench latency` (needs `mosquitto`).
//! `EDGEWARD_BENCH_SECONDS` sets each run's length (default 20). Prints Markdown.

mod common;
#[path = "../../tests/support/mod.rs"]
mod support;

use std::fmt::Write as _;
use std::path::Path;
use std::process::Stdio;

/// Each sensor's reading interval; the rate is set by the number of sensors.
const INTERVAL_S: f64 = 0.1;

fn config(dir: &Path, sensors: usize, seconds: u64, broker: u16) -> std::path::PathBuf {
    let mut text = format!(
        r#"[gateway]
id = "bench-gw"
state-dir = "state"

[sim]
seed = 1
speed = 1.0
# 11:00 UTC: the rooms' daily curve is at its mean (19.5 °C), just below the alarm threshold.
start = "2026-01-15T11:00:00Z"
duration-s = {seconds}

[profile.rooms]
modules = ["alarm", "thermostat"]
topic = "rooms/{{sensor}}"

[module.alarm]
wasm = "builtin:alarm"
capabilities = ["kv"]
config = {{ threshold = [{{ measurement = "temperature", unit = "Cel", above = 19.6, hysteresis = 0.05, severity = "warning", code = "warm" }}] }}

[module.thermostat]
wasm = "builtin:heating"
capabilities = ["kv"]

[uplink]
type = "mqtt"
url = "mqtt://127.0.0.1:{broker}"

[alarm]
type = "mqtt"
url = "mqtt://127.0.0.1:{broker}"

[actuator]
type = "none"

[[module.thermostat.config.zone]]
name = "all"
actuator = "heating/all"
setpoint = 19.5
hysteresis = 0.6
sensors = ["#
    );
    let names: Vec<String> = (0..sensors).map(|i| format!("\"room-{i}\"")).collect();
    let _ = writeln!(text, "{}]", names.join(", "));
    for i in 0..sensors {
        let _ = writeln!(
            text,
            "\n[[sensor]]\nname = \"room-{i}\"\naddress = \"A4:C1:3A:00:{:02X}:{:02X}\"\nprofile = \"rooms\"\nsource = \"sim\"\nsim = {{ model = \"room\", interval-s = {INTERVAL_S} }}",
            i >> 8,
            i & 0xff
        );
    }
    let path = dir.join("edgeward.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// One run at `rate` readings a second, on `cores` (the first ones) or on
/// the cores this process may use; returns the daemon's final status.
fn run(rate: usize, seconds: u64, broker: u16, cache: &Path, cores: Option<usize>) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let sensors = (rate as f64 * INTERVAL_S) as usize;
    let config = config(dir.path(), sensors, seconds, broker);
    let mut command = support::edgeward_command(&["run", "-c", config.to_str().unwrap()]);
    if let Some(cores) = cores {
        // A child may use cores its (pinned) parent may not.
        let mut wide = std::process::Command::new("taskset");
        wide.arg("-c").arg(format!("0-{}", cores - 1)).arg(command.get_program()).args(command.get_args());
        for (key, value) in command.get_envs() {
            if let Some(value) = value {
                wide.env(key, value);
            }
        }
        command = wide;
    }
    let out = command
        .env("EDGEWARD_CACHE_DIR", cache)
        .env("EDGEWARD_LOG", "warn")
        .stdout(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let status = std::fs::read_to_string(dir.path().join("state/status.json")).unwrap();
    serde_json::from_str(&status).unwrap()
}

fn main() {
    let seconds: u64 =
        std::env::var("EDGEWARD_BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(20);
    let Some((mut broker, port)) = common::mosquitto() else {
        println!("Latency not measured: no mosquitto found.");
        return;
    };
    let cache = tempfile::tempdir().unwrap();
    run(10, 1, port, cache.path(), None); // compiles the rules into the cache
    let allowed = std::thread::available_parallelism().map_or(1, |n| n.get());
    // On every core: only with taskset to widen the bench's own pinning.
    let taskset = std::process::Command::new("taskset").arg("-V").output().is_ok_and(|o| o.status.success());
    let machine = std::fs::read_to_string("/proc/cpuinfo")
        .map_or(allowed, |info| info.lines().filter(|l| l.starts_with("processor")).count());
    let mut runs = vec![(1_000, None), (10_000, None)];
    if taskset && machine > 1 {
        runs.push((10_000, Some(machine)));
    }

    println!(
        "| readings/s | cores | messages | to outbox p50 ms | p99 | p99.9 | alarms | to alarm p50 ms | p99 | p99.9 |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let mut medians = Vec::new();
    for (rate, cores) in runs {
        let status = run(rate, seconds, port, cache.path(), cores);
        let latency = &status["latency"];
        let used = cores.unwrap_or(allowed);
        medians.push((rate, used, latency["to_outbox"]["p50_ms"].as_f64().unwrap_or(0.0)));
        let ms = |path: &str, q: &str| latency[path][q].as_f64().map_or("–".into(), |v| format!("{v:.2}"));
        println!(
            "| {rate} | {used} | {} | {} | {} | {} | {} | {} | {} | {} |",
            latency["to_outbox"]["count"],
            ms("to_outbox", "p50_ms"),
            ms("to_outbox", "p99_ms"),
            ms("to_outbox", "p999_ms"),
            latency["to_alarm"]["count"],
            ms("to_alarm", "p50_ms"),
            ms("to_alarm", "p99_ms"),
            ms("to_alarm", "p999_ms"),
        );
    }
    println!();
    for (rate, cores, p50) in &medians {
        if *p50 > 100.0 {
            println!(
                "At {rate} readings/s on {cores} core(s) the daemon fell behind (half the messages waited \
                 over {p50:.0} ms): it could not carry the whole path at that rate."
            );
        }
    }
    let _ = broker.kill();
    let _ = broker.wait();
}

//! BLE latency: BlueZ signal to uplink record
//!
//! From the emulated BlueZ emitting a device's PropertiesChanged (new BTHome
//! ServiceData and RSSI) to the reading's record in the file uplink (polled
//! every 0.1 ms), through the real daemon (`edgeward run`: bluer, decode,
//! one rule, sink), one reading at a time, with active discovery and with an
//! advertisement monitor (passive scanning); "emit → source" is to the
//! `received` time the BLE source stamped (1 ms resolution). Then a burst of
//! advertisements as fast as the emulator emits them (a Python process: its
//! own rate is printed beside, and is the ceiling). Real BlueZ adds the
//! controller-to-bluetoothd hop, which no emulation covers.
//!
//! Uses the tests' emulated BlueZ (`tests/support/bluez.rs`: a private
//! dbus-daemon and python3-dbusmock), so it needs what the BLE tests need
//! (`dbus-daemon`, `/usr/bin/python3` with `dbusmock`).
//! `cargo test -p edgeward --bench ble_latency` runs the same code in a
//! debug build (a check, not a measurement). `EDGEWARD_BENCH_READINGS` sets
//! how many readings are timed (default 500).
//!
//! Run with `cargo bench -p edgeward --bench ble_latency`. Prints Markdown.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The tests' emulator and gateway helpers, compiled into this bench (they
/// take `repo_root` and `module_cache` from here).
#[allow(dead_code)]
#[path = "../../tests/support/bluez.rs"]
mod bluez;

use bluez::{ADAPTER, BTHOME, Bluez, Gateway};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Compiled rules are cached across runs, outside the build's own folders.
fn module_cache() -> PathBuf {
    std::env::temp_dir().join("edgeward-bench-module-cache")
}

const KITCHEN: &str = "A4:C1:38:00:00:01";
/// Longest wait for the gateway to start (compiling the rule when the cache is cold) and for one reading.
const START: Duration = Duration::from_secs(300);
const WAIT: Duration = Duration::from_secs(30);
/// Advertisements sent back to back for the throughput figure.
const BURST: usize = 2_000;

/// The temperature of reading `i`: distinct per reading at BTHome's 0.01 °C
/// resolution, so each record names the advertisement it came from.
fn temperature(i: usize) -> f64 {
    -20.0 + i as f64 * 0.01
}

fn bthome_data(i: usize) -> Vec<u8> {
    edgeward::decode::bthome::encode(&[(0x01, 90.0), (0x02, temperature(i))], Some(i as u8)).unwrap()
}

fn config(dir: &Path) -> PathBuf {
    let text = format!(
        r#"
[gateway]
id = "bench-gw"
state-dir = "state"

[ble]
adapter = "{ADAPTER}"
watchdog-s = 0

[[sensor]]
name = "kitchen"
address = "{KITCHEN}"
profile = "rooms"

[profile.rooms]
modules = ["thresholds"]

[module.thresholds]
wasm = "builtin:alarm"
capabilities = ["kv"]

[[module.thresholds.config.threshold]]
measurement = "temperature"
above = 1000.0
code = "too-hot"

[uplink]
type = "file"
path = "uplink.jsonl"

[alarm]
type = "none"

[actuator]
type = "none"
"#
    );
    let path = dir.join("edgeward.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn wall_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// The uplink file, read as it grows.
struct Tail {
    path: PathBuf,
    offset: usize,
    partial: String,
}

impl Tail {
    /// Complete records appended since the last call.
    fn records(&mut self) -> Vec<serde_json::Value> {
        use std::io::{Read as _, Seek as _, SeekFrom};
        let mut bytes = Vec::new();
        let read = std::fs::File::open(&self.path)
            .and_then(|mut file| {
                file.seek(SeekFrom::Start(self.offset as u64))?;
                file.read_to_end(&mut bytes)
            })
            .unwrap_or(0);
        if read == 0 {
            return Vec::new();
        }
        self.partial.push_str(&String::from_utf8_lossy(&bytes));
        self.offset += read;
        let complete = self.partial.rfind('\n').map_or(0, |end| end + 1);
        let lines: String = self.partial.drain(..complete).collect();
        lines.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }
}

/// The reading index a record carries (by its temperature).
fn index(record: &serde_json::Value) -> Option<usize> {
    let value =
        record["measurements"].as_array()?.iter().find(|m| m["name"] == "temperature")?["value"].as_f64()?;
    Some(((value + 20.0) / 0.01).round() as usize)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// What one mode measured.
struct Figures {
    mode: &'static str,
    /// Emit to the record appended, in ms, sorted.
    to_file: Vec<f64>,
    /// Emit to the BLE source's receive time stamp, in ms (1 ms resolution), sorted.
    to_source: Vec<f64>,
    /// Advertisements per second, end to end, in a burst.
    per_second: f64,
    /// How fast the emulator emitted them: the burst's ceiling.
    emitted_per_second: f64,
}

fn measure(mode: &'static str, readings: usize) -> Figures {
    let bluez = Bluez::start();
    bluez.set_monitor_support(mode == "passive");
    let dir = tempfile::tempdir().unwrap();
    let gateway = Gateway::start(&bluez, &config(dir.path()));
    let mut tail = Tail { path: dir.path().join("uplink.jsonl"), offset: 0, partial: String::new() };

    // Warm up: the gateway has started and hears the sensor.
    // Above every timed index (and within BTHome's temperature range).
    let warm = 30_000;
    gateway.wait_for("the first reading", START, || {
        bluez.advertise(KITCHEN, "kitchen", -60, &[(BTHOME, &bthome_data(warm))]);
        tail.records().into_iter().next()
    });
    let log = gateway.log();
    assert!(log.contains(if mode == "passive" { "passive scanning" } else { "active discovery" }), "{log}");
    std::thread::sleep(Duration::from_millis(500));
    tail.records();

    let mut to_file = Vec::with_capacity(readings);
    let mut to_source = Vec::with_capacity(readings);
    for i in 0..readings {
        let data = bthome_data(i);
        let (emitted_ms, emitted) = (wall_ms(), Instant::now());
        assert!(bluez.advertise(KITCHEN, "kitchen", -60, &[(BTHOME, &data)]), "not heard");
        let deadline = emitted + WAIT;
        let record = loop {
            if let Some(record) = tail.records().into_iter().find(|r| index(r) == Some(i)) {
                break record;
            }
            assert!(Instant::now() < deadline, "reading {i} did not arrive\n{}", gateway.log());
            std::thread::sleep(Duration::from_micros(100));
        };
        to_file.push(emitted.elapsed().as_secs_f64() * 1000.0);
        let received = record["received"].as_str().and_then(edgeward::clock::parse_rfc3339_ms).unwrap();
        to_source.push(received.saturating_sub(emitted_ms) as f64);
    }

    // Throughput: a burst, timed from the first emit to the last record.
    let burst = readings..readings + BURST.min(readings * 4);
    let started = Instant::now();
    for i in burst.clone() {
        bluez.advertise(KITCHEN, "kitchen", -60, &[(BTHOME, &bthome_data(i))]);
    }
    let emitted_per_second = burst.len() as f64 / started.elapsed().as_secs_f64();
    let mut seen = 0;
    let deadline = Instant::now() + WAIT * 4;
    while seen < burst.len() {
        seen += tail.records().iter().filter(|r| index(r).is_some_and(|i| burst.contains(&i))).count();
        assert!(Instant::now() < deadline, "{seen} of {} burst readings arrived", burst.len());
        std::thread::sleep(Duration::from_micros(200));
    }
    let per_second = burst.len() as f64 / started.elapsed().as_secs_f64();
    assert_eq!(gateway.stop(), 0);

    to_file.sort_by(f64::total_cmp);
    to_source.sort_by(f64::total_cmp);
    Figures { mode, to_file, to_source, per_second, emitted_per_second }
}

fn main() {
    let readings = std::env::var("EDGEWARD_BENCH_READINGS").ok().and_then(|n| n.parse().ok()).unwrap_or(500);
    let figures: Vec<Figures> =
        ["active", "passive"].into_iter().map(|mode| measure(mode, readings)).collect();
    let build = if cfg!(debug_assertions) { "debug" } else { "release" };
    println!("{readings} readings one at a time, then a burst; {build} build:\n");
    println!(
        "| scanning | emit → source p50 | p99 | emit → uplink file p50 | p99 | max | advertisements/s (burst) \
         | emulator emits/s |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for f in &figures {
        println!(
            "| {} | {:.0} ms | {:.0} ms | {:.2} ms | {:.2} ms | {:.2} ms | {:.0} | {:.0} |",
            f.mode,
            percentile(&f.to_source, 0.5),
            percentile(&f.to_source, 0.99),
            percentile(&f.to_file, 0.5),
            percentile(&f.to_file, 0.99),
            f.to_file[f.to_file.len() - 1],
            f.per_second,
            f.emitted_per_second,
        );
    }
}

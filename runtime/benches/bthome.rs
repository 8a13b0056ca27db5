//! BTHome decoding against bthome-ble (Home Assistant's parser)
//!
//! BTHome v2 advertisements decoded per second on one core, against the
//! Python parser Home Assistant uses today (`bthome-ble`), over the same
//! payloads in the same run: a room sensor's battery, temperature and
//! humidity with a packet id, 20 000 distinct advertisements unencrypted and
//! 20 000 encrypted (AES-CCM, increasing counters, so bthome-ble's replay
//! and duplicate filters accept every one). The Python side
//! (`runtime/benches/bthome_python.py`, one device object per sensor, the
//! service-info objects built before the clock starts, as Home Assistant
//! calls it, including building its sensor update) runs with
//! `target/bthome-venv/bin/python` when that venv exists (`scripts/bench.sh`
//! makes it). Rust: median of several runs; Python: one pass. Goal: at
//! least 50x faster.
//!
//! Run with `cargo bench -p edgeward --bench bthome`, after
//! `python3 -m venv target/bthome-venv && target/bthome-venv/bin/pip install bthome-ble`.
//! Prints Markdown.

use edgeward::decode::bthome;
use std::hint::black_box;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

const ADVERTISEMENTS: usize = 20_000;
const RUNS: usize = 7;
/// The bindkey and address of the bthome.io encryption example.
const KEY: [u8; 16] =
    [0x23, 0x1d, 0x39, 0xc1, 0xd7, 0xcc, 0x1a, 0xb1, 0xae, 0xe2, 0x24, 0xcd, 0x09, 0x6d, 0xb9, 0x32];
const MAC: [u8; 6] = [0x54, 0x48, 0xE6, 0x8F, 0x80, 0xA5];

/// Battery, temperature and humidity of advertisement `i`.
fn values(i: usize) -> [(u8, f64); 3] {
    let battery = 90.0 + (i % 10) as f64;
    let temperature = 18.0 + (i % 100) as f64 * 0.07;
    let humidity = 40.0 + (i % 50) as f64 * 0.5;
    [(0x01, battery), (0x02, temperature), (0x03, humidity)]
}

fn payloads() -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let plain = (0..ADVERTISEMENTS).map(|i| bthome::encode(&values(i), Some(i as u8)).unwrap()).collect();
    let sealed = (0..ADVERTISEMENTS)
        .map(|i| bthome::encode_encrypted(&values(i), Some(i as u8), &KEY, MAC, i as u32 + 1).unwrap())
        .collect();
    (plain, sealed)
}

/// Median nanoseconds per advertisement decoding `payloads` with `key`.
fn rust_ns(payloads: &[Vec<u8>], key: Option<&[u8; 16]>) -> f64 {
    let mut runs: Vec<f64> = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            let mut values = 0;
            for payload in payloads {
                let packet = bthome::decode(black_box(payload), key, Some(MAC)).unwrap();
                values += black_box(packet).values.len();
            }
            assert_eq!(values, 3 * payloads.len());
            start.elapsed().as_nanos() as f64 / payloads.len() as f64
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    runs[RUNS / 2]
}

/// bthome-ble's nanoseconds per advertisement (plain, encrypted), or why there are none.
fn python_ns(plain: &[Vec<u8>], sealed: &[Vec<u8>]) -> Result<(f64, f64), String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let python = root.join("target/bthome-venv/bin/python");
    if !python.exists() {
        return Err(format!("{} not found: bthome-ble is not installed", python.display()));
    }
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let write = |name: &str, payloads: &[Vec<u8>]| {
        let lines: Vec<String> = payloads.iter().map(hex::encode).collect();
        std::fs::write(dir.path().join(name), lines.join("\n")).map_err(|e| e.to_string())
    };
    write("plain.hex", plain)?;
    write("sealed.hex", sealed)?;
    let script = root.join("runtime/benches/bthome_python.py");
    let output = Command::new(&python)
        .arg(&script)
        .arg(dir.path().join("plain.hex"))
        .arg(dir.path().join("sealed.hex"))
        .arg(hex::encode(KEY))
        .output()
        .map_err(|e| e.to_string())?;
    if !output.status.success() {
        return Err(format!("bthome_python.py failed: {}", String::from_utf8_lossy(&output.stderr)));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let mut figures = text.split_whitespace().map(str::parse::<f64>);
    match (figures.next(), figures.next()) {
        (Some(Ok(plain)), Some(Ok(sealed))) => Ok((plain, sealed)),
        _ => Err(format!("unexpected output from bthome_python.py: {text}")),
    }
}

fn row(path: &str, ns: f64, baseline: Option<f64>) {
    let ratio = baseline.map_or(String::new(), |b| format!("{:.1}x", b / ns));
    println!("| {path} | {:.2} µs | {:.0} | {ratio} |", ns / 1e3, 1e9 / ns);
}

fn main() {
    let (plain, sealed) = payloads();
    let rust_plain = rust_ns(&plain, None);
    let rust_sealed = rust_ns(&sealed, Some(&KEY));
    let rust_mix = (rust_plain + rust_sealed) / 2.0;
    let python = python_ns(&plain, &sealed);
    println!(
        "{ADVERTISEMENTS} advertisements of each kind (battery, temperature, humidity, packet id); \
         Rust: median of {RUNS} runs.\n"
    );
    println!("| decoder | per advertisement | advertisements/s (one core) | vs bthome-ble |");
    println!("| --- | ---: | ---: | ---: |");
    match python {
        Ok((py_plain, py_sealed)) => {
            let py_mix = (py_plain + py_sealed) / 2.0;
            row("edgeward, unencrypted", rust_plain, Some(py_plain));
            row("edgeward, encrypted", rust_sealed, Some(py_sealed));
            row("edgeward, half and half", rust_mix, Some(py_mix));
            row("bthome-ble, unencrypted", py_plain, Some(py_plain));
            row("bthome-ble, encrypted", py_sealed, Some(py_sealed));
            row("bthome-ble, half and half", py_mix, Some(py_mix));
        }
        Err(why) => {
            row("edgeward, unencrypted", rust_plain, None);
            row("edgeward, encrypted", rust_sealed, None);
            row("edgeward, half and half", rust_mix, None);
            println!("\nbthome-ble not measured: {why}");
        }
    }
}

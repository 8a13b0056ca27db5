//! Start-up and memory
//!
//! The real daemon with the demo configuration (two profiles, four built-in
//! rules, three simulated sensors), from `exec` to its first message in the
//! uplink file, with an empty compiled-module cache (every rule compiled by
//! Cranelift) and with a warm one (deserialised); then its peak resident
//! memory (VmHWM) over a simulated hour as fast as possible with the demo's
//! three sensors and with 500 more rooms. Goals: first message ≤ 200 ms with
//! the cache; ≤ 20 MiB and ≤ 40 MiB.
//!
//! Run with `cargo bench -p edgeward --bench startup`. Prints Markdown.

#[path = "../../tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};
use toml::Table;

const RUNS: usize = 7;

/// The demo configuration, self-contained in `dir`, for `hours` simulated
/// hours as fast as possible, with `extra` more room sensors.
fn demo(dir: &Path, hours: u64, extra: usize) -> std::path::PathBuf {
    support::fast_config("demo.toml", dir, |c| {
        support::table(c, "sim").insert("duration-s".into(), ((hours * 3600) as i64).into());
        let none: Table = toml::toml! { type = "none" };
        c.insert("alarm".into(), none.clone().into());
        c.insert("actuator".into(), none.into());
        let sensors = c.get_mut("sensor").unwrap().as_array_mut().unwrap();
        for i in 0..extra {
            let mut sensor: Table = toml::toml! {
                profile = "home"
                source = "sim"
                sim = { model = "room", interval-s = 300 }
            };
            sensor.insert("name".into(), format!("room-{i}").into());
            sensor.insert("address".into(), format!("A4:C1:39:00:{:02X}:{:02X}", i >> 8, i & 0xff).into());
            sensors.push(sensor.into());
        }
    })
}

fn spawn(config: &Path, cache: &Path) -> Child {
    support::edgeward_command(&["run", "-c", config.to_str().unwrap()])
        .env("EDGEWARD_CACHE_DIR", cache)
        .env("EDGEWARD_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// From spawning the daemon to the first line in its uplink file.
fn time_to_first_message(cache: &Path) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let config = demo(dir.path(), 1, 0);
    let uplink = dir.path().join("uplink.jsonl");
    let start = Instant::now();
    let mut child = spawn(&config, cache);
    while std::fs::metadata(&uplink).map_or(true, |m| m.len() == 0) {
        assert!(start.elapsed() < Duration::from_secs(120), "no message after 120 s");
        std::thread::sleep(Duration::from_micros(200));
    }
    let took = start.elapsed();
    let _ = child.kill();
    let _ = child.wait();
    took
}

/// Peak resident memory (KiB) of a whole run, from the daemon's last log line.
fn peak_rss_kib(hours: u64, extra: usize, cache: &Path) -> (u64, u64) {
    let dir = tempfile::tempdir().unwrap();
    let config = demo(dir.path(), hours, extra);
    let out = support::edgeward_command(&["run", "-c", config.to_str().unwrap()])
        .env("EDGEWARD_CACHE_DIR", cache)
        .env("EDGEWARD_LOG", "info")
        .stdout(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let log = String::from_utf8_lossy(&out.stderr);
    let stopped = log.lines().rev().find(|l| l.contains("stopped:")).expect("the stop line");
    let field = |name: &str| -> u64 {
        stopped.split(&format!("{name}=")).nth(1).unwrap().split_whitespace().next().unwrap().parse().unwrap()
    };
    (field("peak_rss_kib"), field("messages"))
}

/// (min, median, max) of `runs`.
fn spread(mut runs: Vec<f64>) -> (f64, f64, f64) {
    runs.sort_by(f64::total_cmp);
    (runs[0], runs[runs.len() / 2], runs[runs.len() - 1])
}

fn median_ms(runs: Vec<Duration>) -> (f64, f64, f64) {
    spread(runs.iter().map(|d| d.as_secs_f64() * 1000.0).collect())
}

fn main() {
    let cold: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let cache = tempfile::tempdir().unwrap();
            time_to_first_message(cache.path())
        })
        .collect();
    let cache = tempfile::tempdir().unwrap();
    time_to_first_message(cache.path()); // fills the cache
    let warm: Vec<Duration> = (0..RUNS).map(|_| time_to_first_message(cache.path())).collect();

    println!(
        "Demo configuration (4 built-in rules in 2 profiles), `exec` → first message in the uplink file, {RUNS} runs:\n"
    );
    println!("| compiled-module cache | min ms | median ms | max ms |");
    println!("|---|---:|---:|---:|");
    let (lo, mid, hi) = median_ms(cold);
    println!("| empty (every rule compiled) | {lo:.0} | {mid:.0} | {hi:.0} |");
    let (lo, mid, hi) = median_ms(warm);
    println!("| warm | {lo:.0} | {mid:.0} | {hi:.0} |");
    println!();
    println!(
        "Peak resident memory (VmHWM) over one simulated hour as fast as possible, warm cache, {RUNS} runs:\n"
    );
    println!("| sensors | messages | min MiB | median MiB | max MiB |");
    println!("|---:|---:|---:|---:|---:|");
    for extra in [0, 500] {
        let runs: Vec<(u64, u64)> = (0..RUNS).map(|_| peak_rss_kib(1, extra, cache.path())).collect();
        let messages = runs[0].1;
        let (lo, mid, hi) = spread(runs.iter().map(|(kib, _)| *kib as f64 / 1024.0).collect());
        println!("| {} | {messages} | {lo:.1} | {mid:.1} | {hi:.1} |", 3 + extra);
    }
}

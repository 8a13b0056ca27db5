//! Hot reload under load
//!
//! The real daemon with a countersigning pipeline at about 60 messages a
//! second, reloaded 100 times by renaming an edited file over its
//! configuration (a rule setting changes, so the pipeline is rebuilt and
//! swapped) and 100 times by SIGHUP (file unchanged: built, then the running
//! pipeline kept). Time from the edit (or signal) to the new configuration
//! serving, as a client sees it (polling `status.json`, which the daemon
//! writes the moment a reload is applied; file changes first settle for
//! 50 ms) and as the daemon measures it (trigger to swap done), and the
//! messages lost or duplicated across all reloads (goal: 0).
//!
//! Run with `cargo bench -p edgeward --bench reload`. Prints Markdown.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const RELOADS: u64 = 100;

fn config(dir: &Path, stale_after_s: u64) -> String {
    format!(
        r#"[gateway]
id = "bench-gw"
state-dir = "state"

[signer.gateway]
key = "gateway.key"
generate = true

[sim]
speed = 3600.0

[[sensor]]
name = "wearable-1"
address = "C0:FF:EE:00:00:01"
format = "signed-gatt"
profile = "provenance"
source = "sim"
sim = {{ model = "wearable", interval-s = 60, key = "wearable-1.key" }}

[profile.provenance]
modules = ["vitals", "countersign"]

[module.vitals]
wasm = "builtin:alarm"
capabilities = ["kv"]
[module.vitals.config]
stale-after-s = {stale_after_s}

[module.countersign]
wasm = "builtin:sign"
capabilities = ["sign:gateway"]
config = {{ key = "gateway" }}

[uplink]
type = "file"
path = "{uplink}"

[alarm]
type = "none"

[actuator]
type = "none"
"#,
        uplink = dir.join("uplink.jsonl").display()
    )
}

fn status(dir: &Path) -> serde_json::Value {
    std::fs::read(dir.join("state/status.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(serde_json::Value::Null)
}

fn generation(dir: &Path) -> u64 {
    status(dir)["reload"]["generation"].as_u64().unwrap_or(0)
}

/// Poll (every 200 µs) until the generation passes `past`; the time it took.
fn wait_generation(dir: &Path, past: u64, since: Instant) -> Duration {
    let deadline = since + Duration::from_secs(30);
    while generation(dir) <= past {
        assert!(Instant::now() < deadline, "no reload after 30 s");
        std::thread::sleep(Duration::from_micros(200));
    }
    since.elapsed()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn summary(mut ms: Vec<f64>) -> String {
    ms.sort_by(f64::total_cmp);
    format!("{:.1} | {:.1} | {:.1}", percentile(&ms, 0.5), percentile(&ms, 0.99), ms[ms.len() - 1])
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let path = dir.join("edgeward.toml");
    std::fs::write(&path, config(dir, 600)).unwrap();
    let log = std::fs::File::create(dir.join("edgeward.log")).unwrap();
    let mut child: Child = Command::new(env!("CARGO_BIN_EXE_edgeward"))
        .args(["run", "-c", path.to_str().unwrap()])
        .env("EDGEWARD_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let started = Instant::now();
    while status(dir)["counters"]["forwarded"].as_u64().unwrap_or(0) == 0 {
        assert!(started.elapsed() < Duration::from_secs(60), "the daemon did not start");
        std::thread::sleep(Duration::from_millis(10));
    }

    let mut by_file = Vec::new();
    let mut by_signal = Vec::new();
    for round in 0..2 * RELOADS {
        let before = generation(dir);
        std::thread::sleep(Duration::from_millis(50)); // traffic between reloads
        if round % 2 == 0 {
            let edited = config(dir, 601 + round);
            // Editors save by renaming a new file over the old one.
            let tmp = dir.join("edgeward.toml.new");
            std::fs::write(&tmp, edited).unwrap();
            let t0 = Instant::now();
            std::fs::rename(&tmp, &path).unwrap();
            by_file.push(wait_generation(dir, before, t0).as_secs_f64() * 1000.0);
        } else {
            // SIGHUP with the file as it is: the whole build and swap
            // (nothing changed, so the running pipeline is kept), no settling.
            let previous = status(dir)["reload"]["last"]["at"].clone();
            let t0 = Instant::now();
            Command::new("kill").args(["-HUP", &child.id().to_string()]).status().unwrap();
            loop {
                let last = status(dir)["reload"]["last"].clone();
                if last["trigger"] == "SIGHUP" && last["at"] != previous {
                    break;
                }
                assert!(t0.elapsed() < Duration::from_secs(30), "no SIGHUP reload after 30 s");
                std::thread::sleep(Duration::from_micros(200));
            }
            by_signal.push(t0.elapsed().as_secs_f64() * 1000.0);
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(child.wait().unwrap().success());

    // The daemon's own view: trigger to swap done, from its log.
    let log = std::fs::read_to_string(dir.join("edgeward.log")).unwrap();
    let internal: Vec<f64> = log
        .lines()
        .filter(|l| l.contains("configuration reloaded"))
        .filter_map(|l| l.split("took_ms=").nth(1)?.split_whitespace().next()?.parse().ok())
        .collect();

    let seqs: Vec<u64> = std::fs::read_to_string(dir.join("uplink.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["seq"].as_u64().unwrap())
        .collect();
    let unique: std::collections::BTreeSet<u64> = seqs.iter().copied().collect();
    let max = seqs.iter().copied().max().unwrap_or(0);
    let lost = max - unique.len() as u64;
    let duplicated = seqs.len() - unique.len();
    let in_order = seqs.windows(2).all(|w| w[0] < w[1]);

    println!("| reload | runs | p50 ms | p99 ms | max ms |");
    println!("|---|---:|---:|---:|---:|");
    println!(
        "| file edit (rename) → serving, as a client sees it | {} | {} |",
        by_file.len(),
        summary(by_file)
    );
    println!(
        "| SIGHUP → serving (file unchanged), as a client sees it | {} | {} |",
        by_signal.len(),
        summary(by_signal)
    );
    println!(
        "| trigger → swap done, applied reloads, daemon's log | {} | {} |",
        internal.len(),
        summary(internal)
    );
    println!();
    println!(
        "Messages across {} reloads: {} delivered, {lost} lost, {duplicated} duplicated, order kept: {in_order}.",
        2 * RELOADS,
        seqs.len()
    );
}

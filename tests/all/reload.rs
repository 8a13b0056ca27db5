//! Hot reload while simulated traffic flows: a changed rule setting takes
//! effect, a broken file is refused and the running configuration keeps
//! serving, a replaced module file shows its new hash in countersignatures,
//! a revoked capability is refused, and a hundred reloads leak nothing. In
//! every case no message is lost or duplicated.

use crate::support::broker::{Broker, Subscriber};
use crate::support::{edgeward_command, fast_config, guest_dir, read_jsonl, table};
use base64::Engine as _;
use edgeward_formats::cose;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};
use toml::Table;

/// The medical profile with steady traffic: one reading a simulated minute
/// at 3600x, so about 60 a second, until the test stops it.
fn medical(dir: &Path, tweak: impl FnOnce(&mut Table)) -> PathBuf {
    fast_config("medical.toml", dir, |c| {
        table(c, "sim").insert("speed".into(), 3600.0.into());
        table(c, "sim").remove("duration-s");
        tweak(c);
    })
}

/// The running daemon; stopped (SIGTERM, then waited for) when dropped.
struct Gateway {
    child: Child,
    dir: PathBuf,
}

impl Gateway {
    fn start(config: &Path) -> Gateway {
        let dir = config.parent().unwrap().to_path_buf();
        let log = std::fs::File::create(dir.join("edgeward.log")).unwrap();
        let child = edgeward_command(&["run", "-c", config.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let gateway = Gateway { child, dir };
        gateway.wait_for("the first messages", || gateway.counter("forwarded") > 0);
        gateway
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("edgeward.log")).unwrap_or_default()
    }

    /// `STATE/status.json`, as `edgeward status --json` reads it.
    fn status(&self) -> serde_json::Value {
        std::fs::read(self.dir.join("state/status.json"))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or(serde_json::Value::Null)
    }

    fn counter(&self, name: &str) -> u64 {
        self.status()["counters"][name].as_u64().unwrap_or(0)
    }

    fn generation(&self) -> u64 {
        self.status()["reload"]["generation"].as_u64().unwrap_or(0)
    }

    /// The last reload's outcome.
    fn last_reload(&self) -> serde_json::Value {
        self.status()["reload"]["last"].clone()
    }

    /// Poll until `done`, failing with the log after a generous bound.
    fn wait_for(&self, what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}; log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Wait until `n` more messages have been forwarded than now.
    fn wait_for_traffic(&self, n: u64) {
        let start = self.counter("forwarded");
        self.wait_for("traffic", || self.counter("forwarded") >= start + n);
    }

    fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn stop(mut self) -> String {
        self.signal("TERM");
        let status = self.child.wait().unwrap();
        assert!(status.success(), "exit {status}; log:\n{}", self.log());
        self.log()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Rewrite the configuration the way editors save: a new file renamed over the old.
fn edit(config: &Path, change: impl FnOnce(&mut Table)) {
    let mut table: Table = std::fs::read_to_string(config).unwrap().parse().unwrap();
    change(&mut table);
    let tmp = config.with_extension("toml.new");
    std::fs::write(&tmp, toml::to_string(&table).unwrap()).unwrap();
    std::fs::rename(&tmp, config).unwrap();
}

/// The `vitals` alarm rule's thresholds.
fn thresholds(config: &mut Table) -> &mut Vec<toml::Value> {
    let vitals = table(table(config, "module"), "vitals");
    table(vitals, "config").get_mut("threshold").unwrap().as_array_mut().unwrap()
}

/// A threshold any wearable's temperature crosses at once.
fn warm_threshold() -> toml::Value {
    toml::toml! {
        measurement = "temperature"
        unit = "Cel"
        above = 20.0
        severity = "warning"
        code = "warm"
    }
    .into()
}

/// Sensor counters of the countersigned readings in `uplink.jsonl`.
fn uplink_seqs(dir: &Path) -> Vec<u64> {
    read_jsonl(&dir.join("uplink.jsonl")).iter().map(|r| r["seq"].as_u64().unwrap()).collect()
}

/// Every reading from the first to the last, each exactly once, in order.
fn assert_exactly_once_in_order(seqs: &[u64]) {
    assert!(!seqs.is_empty(), "no messages");
    let expected: Vec<u64> = (1..=*seqs.iter().max().unwrap()).collect();
    assert_eq!(seqs, expected.as_slice(), "lost, duplicated or reordered messages");
}

/// A changed alarm threshold applies within a bounded time; through the
/// MQTT outbox, every reading reaches the broker exactly once.
#[test]
fn changed_threshold_applies_without_loss() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(&dir.path().join("broker"));
    let sub = Subscriber::start(broker.port, "cloud", "medical/#");
    let config = medical(dir.path(), |c| {
        let mut uplink = Table::new();
        uplink.insert("type".into(), "mqtt".into());
        uplink.insert("url".into(), broker.url().into());
        c.insert("uplink".into(), uplink.into());
    });
    let gateway = Gateway::start(&config);
    gateway.wait_for_traffic(30);
    assert_eq!(gateway.generation(), 1);

    edit(&config, |c| thresholds(c).push(warm_threshold()));
    gateway.wait_for("the reload", || gateway.generation() == 2);
    let last = gateway.last_reload();
    assert_eq!(last["result"], "applied", "{last}");
    assert_eq!(last["changed"], serde_json::json!(["profile provenance"]), "{last}");
    let warm =
        |alarms: &[serde_json::Value]| alarms.iter().any(|a| a["code"] == "warm" && a["state"] == "raised");
    gateway.wait_for("the new threshold's alarm", || warm(&read_jsonl(&dir.path().join("alarm.jsonl"))));
    gateway.wait_for_traffic(30);

    let log = gateway.stop();
    // The uplink's configuration did not change: one connection throughout.
    assert_eq!(log.matches("uplink connected").count(), 1, "{log}");
    let status: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("state/status.json")).unwrap()).unwrap();
    assert_eq!(status["outbox"]["messages"], 0, "the outbox drained: {status}");
    let acked = status["counters"]["uplink_acked"].as_u64().unwrap();
    let got = sub.collect(acked as usize, Duration::from_secs(20));
    let seqs: Vec<u64> =
        got.iter().map(|(_, body)| cose::parse_sign1(body).expect("a COSE_Sign1").seq().unwrap()).collect();
    assert_exactly_once_in_order(&seqs);
}

/// A broken file is refused with its line and key while the running
/// configuration keeps serving; the fixed file then applies.
#[test]
fn broken_config_keeps_serving_until_fixed() {
    let dir = tempfile::tempdir().unwrap();
    let config = medical(dir.path(), |_| {});
    let gateway = Gateway::start(&config);
    let good = std::fs::read_to_string(&config).unwrap();

    // Saved in place, not renamed: the other way editors write.
    std::fs::write(&config, good.replace("stale-after-s = 600", "stale-after-s = 600 s")).unwrap();
    gateway.wait_for("the refusal", || gateway.last_reload()["result"] == "refused");
    let error = gateway.last_reload()["error"].as_str().unwrap().to_string();
    assert!(error.starts_with(&format!("{}:", config.display())), "{error}");
    let line = good.lines().position(|l| l.starts_with("stale-after-s")).unwrap() + 1;
    assert!(error.starts_with(&format!("{}:{line}:", config.display())), "{error}");
    assert!(error.contains("stale-after-s"), "{error}");
    assert_eq!(gateway.generation(), 1);
    assert!(gateway.log().contains("reload refused, the running configuration stays"), "{}", gateway.log());
    gateway.wait_for_traffic(30);

    // `edgeward status` still answers, and shows the refusal.
    let out = crate::support::edgeward(&["status", "-c", config.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("reload  refused") && text.contains("generation 1"), "{text}");

    std::fs::write(&config, &good).unwrap();
    gateway.wait_for("the fix", || gateway.last_reload()["result"] == "unchanged");
    edit(&config, |c| thresholds(c).push(warm_threshold()));
    gateway.wait_for("the reload", || gateway.generation() == 2);
    gateway.wait_for_traffic(30);
    gateway.stop();
    assert_exactly_once_in_order(&uplink_seqs(dir.path()));
}

/// A component with one more custom section: the same code, another hash.
fn with_custom_section(component: &[u8], note: &str) -> Vec<u8> {
    let name = b"edgeward-test";
    let mut payload = vec![name.len() as u8];
    payload.extend_from_slice(name);
    payload.extend_from_slice(note.as_bytes());
    assert!(payload.len() < 128, "one-byte LEB128 size");
    let mut bytes = component.to_vec();
    bytes.push(0); // custom section id
    bytes.push(payload.len() as u8);
    bytes.extend_from_slice(&payload);
    bytes
}

/// The countersigning module's hash in each uplink message, in order.
fn countersign_hashes(dir: &Path) -> Vec<String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    read_jsonl(&dir.join("uplink.jsonl"))
        .iter()
        .map(|r| {
            let body = b64.decode(r["body"].as_str().unwrap()).unwrap();
            let sign1 = cose::parse_sign1(&body).unwrap();
            let modules = sign1.countersignatures()[0].modules();
            let (name, hash) = modules.last().unwrap();
            assert_eq!(name, "countersign");
            hex::encode(hash)
        })
        .collect()
}

/// Replacing a module file on disk reloads the pipeline that uses it; the
/// countersignatures that follow name the new file's hash.
#[test]
fn replaced_module_file_shows_new_hash() {
    let dir = tempfile::tempdir().unwrap();
    let original = std::fs::read(guest_dir().join("builtin-sign.wasm")).unwrap();
    std::fs::create_dir(dir.path().join("modules")).unwrap();
    let module = dir.path().join("modules/sign.wasm");
    std::fs::write(&module, &original).unwrap();
    let config = medical(dir.path(), |c| {
        table(table(c, "module"), "countersign").insert("wasm".into(), "modules/sign.wasm".into());
    });
    let gateway = Gateway::start(&config);
    gateway.wait_for_traffic(20);

    let replaced = with_custom_section(&original, "v2");
    let tmp = dir.path().join("modules/sign.wasm.tmp");
    std::fs::write(&tmp, &replaced).unwrap();
    std::fs::rename(&tmp, &module).unwrap();
    gateway.wait_for("the reload", || gateway.generation() == 2);
    assert_eq!(gateway.last_reload()["changed"], serde_json::json!(["profile provenance"]));
    gateway.wait_for_traffic(20);
    gateway.stop();

    let hashes = countersign_hashes(dir.path());
    let (old, new) = (sha256_hex(&original), sha256_hex(&replaced));
    let switch = hashes.iter().position(|h| *h == new).expect("messages countersigned by the new module");
    assert!(hashes[..switch].iter().all(|h| *h == old), "before the swap: the old hash only");
    assert!(hashes[switch..].iter().all(|h| *h == new), "after the swap: the new hash only");
    assert!(switch > 0);
    assert_exactly_once_in_order(&uplink_seqs(dir.path()));
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Taking away a capability a module imports is refused, naming the module,
/// the import and the line to add; the running pipeline keeps countersigning.
#[test]
fn revoked_capability_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = medical(dir.path(), |_| {});
    let gateway = Gateway::start(&config);
    edit(&config, |c| {
        table(table(c, "module"), "countersign").insert("capabilities".into(), toml::Value::Array(vec![]));
    });
    gateway.wait_for("the refusal", || gateway.last_reload()["result"] == "refused");
    let error = gateway.last_reload()["error"].as_str().unwrap().to_string();
    assert!(error.contains("countersign") && error.contains("signer"), "{error}");
    assert_eq!(gateway.generation(), 1);
    let before = read_jsonl(&dir.path().join("uplink.jsonl")).len();
    gateway.wait_for_traffic(30);
    gateway.stop();
    let hashes = countersign_hashes(dir.path());
    assert!(hashes.len() > before + 20, "still countersigning after the refusal");
    assert_exactly_once_in_order(&uplink_seqs(dir.path()));
}

/// A process's open file descriptors and resident memory (KiB): the least
/// of a few samples, so a file open for a moment (status.json being
/// rewritten) is not mistaken for a leak.
fn resources(pid: u32) -> (usize, u64) {
    let sample = || {
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let rss = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        (fds, rss.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap())
    };
    (0..5)
        .map(|_| {
            std::thread::sleep(Duration::from_millis(20));
            sample()
        })
        .reduce(|(f, r), (g, s)| (f.min(g), r.min(s)))
        .unwrap()
}

/// A hundred reloads (SIGHUP, each with a changed rule setting) in a row:
/// each applies, file descriptors and memory stay flat, nothing is lost.
#[test]
fn hundred_reloads_leak_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = medical(dir.path(), |_| {});
    let gateway = Gateway::start(&config);
    let pid = gateway.child.id();
    let mut after_warmup = (0, 0);
    for round in 1..=100u64 {
        // Change a setting so every reload rebuilds the pipeline.
        edit(&config, |c| {
            vitals_config(c).insert("stale-after-s".into(), toml::Value::Integer(600 + round as i64));
        });
        // The write itself also triggers a reload; SIGHUP asks once more. Either
        // way the generation moves on past this round's change.
        gateway.signal("HUP");
        gateway.wait_for("the reload", || {
            let status = gateway.status();
            status["reload"]["last"]["result"] != "refused"
                && status["reload"]["generation"].as_u64().unwrap_or(0) > round
        });
        if round == 10 {
            after_warmup = resources(pid);
        }
    }
    gateway.wait_for_traffic(20);
    let (fds, rss) = resources(pid);
    let (warm_fds, warm_rss) = after_warmup;
    assert!(fds <= warm_fds, "file descriptors grew from {warm_fds} to {fds}");
    // Allocator noise, not a pipeline's worth per reload (each holds two
    // instances of several MiB of linear memory and tables).
    assert!(rss < warm_rss + 16 * 1024, "resident memory grew from {warm_rss} KiB to {rss} KiB");
    let log = gateway.stop();
    assert!(!log.contains("reload refused"), "{log}");
    assert_exactly_once_in_order(&uplink_seqs(dir.path()));
}

fn vitals_config(config: &mut Table) -> &mut Table {
    table(table(table(config, "module"), "vitals"), "config")
}

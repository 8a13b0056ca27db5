//! Helpers shared by the integration tests.

#![allow(dead_code)]

pub mod bluez;
pub mod broker;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use toml::Table;

/// The folder holding the guest components runtime/build.rs produced:
/// `builtin-alarm.wasm`, `test-faulty.wasm`, ...
pub fn guest_dir() -> PathBuf {
    PathBuf::from(env!("EDGEWARD_GUEST_DIR"))
}

/// The path of the test rule `name` (a crate under tests/rules/).
pub fn test_rule(name: &str) -> PathBuf {
    guest_dir().join(format!("test-{name}.wasm"))
}

/// The path of the example rule `name` (a crate under examples/rules/).
pub fn example_rule(name: &str) -> PathBuf {
    guest_dir().join(format!("example-{name}.wasm"))
}

/// The repository's root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// A compiled-module cache shared by all tests of this build, so each
/// module is compiled once per test run rather than once per test.
pub fn module_cache() -> PathBuf {
    guest_dir().join("test-module-cache")
}

/// The `edgeward` binary with `args`, set up as the tests run it (shared
/// module cache, info logs), to spawn or wait for. `EDGEWARD_BIN` names
/// another build to run instead, e.g. to bench a change against a copy of
/// the binary from before it.
pub fn edgeward_command(args: &[&str]) -> Command {
    let binary = std::env::var_os("EDGEWARD_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_edgeward").into());
    let mut command = Command::new(binary);
    command.args(args).env("EDGEWARD_LOG", "info").env("EDGEWARD_CACHE_DIR", module_cache());
    command
}

/// Run the `edgeward` binary with `args` and wait for it.
pub fn edgeward(args: &[&str]) -> Output {
    edgeward_command(args).output().expect("running edgeward")
}

/// Standard error of `output` as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Read a JSON-lines file into values (empty when the file does not exist).
pub fn read_jsonl(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// A shipped configuration (`configs/FILE`) made fast and self-contained for
/// a test: everything it writes goes into `dir` (state, keys, sinks as JSON
/// lines: `uplink.jsonl`, `alarm.jsonl`, `actuator.jsonl`), the simulation
/// runs as fast as possible, and `tweak` is applied last. Returns the path
/// of the config file written into `dir`.
pub fn fast_config(file: &str, dir: &Path, tweak: impl FnOnce(&mut Table)) -> PathBuf {
    let text = std::fs::read_to_string(repo_root().join("configs").join(file)).unwrap();
    let mut config: Table = text.parse().unwrap();
    table(&mut config, "gateway").insert("state-dir".into(), "state".into());
    table(&mut config, "sim").insert("speed".into(), 0.into());
    // Deadlines are wall-clock: on a loaded test machine a debug build can
    // miss a tight one, which would make the output depend on timing.
    table(&mut config, "sandbox").insert("call-timeout-ms".into(), 5000.into());
    for (name, signer) in table(&mut config, "signer").iter_mut() {
        signer.as_table_mut().unwrap().insert("key".into(), format!("keys/{name}.key").into());
    }
    if let Some(sensors) = config.get_mut("sensor").and_then(|s| s.as_array_mut()) {
        for sensor in sensors.iter_mut().filter_map(|s| s.as_table_mut()) {
            let name = sensor["name"].as_str().unwrap().to_string();
            if let Some(sim) = sensor.get_mut("sim").and_then(|s| s.as_table_mut())
                && sim.contains_key("key")
            {
                sim.insert("key".into(), format!("keys/{name}.key").into());
            }
        }
    }
    for sink in ["uplink", "alarm", "actuator"] {
        let mut file: Table = toml::toml! { type = "file" };
        file.insert("path".into(), format!("{sink}.jsonl").into());
        config.insert(sink.into(), file.into());
    }
    tweak(&mut config);
    let path = dir.join("edgeward.toml");
    std::fs::write(&path, toml::to_string(&config).unwrap()).unwrap();
    path
}

/// The table at `key` (created when absent).
pub fn table<'a>(parent: &'a mut Table, key: &str) -> &'a mut Table {
    parent.entry(key).or_insert_with(|| Table::new().into()).as_table_mut().expect("a table")
}

/// A trust store file in `dir` for the sensors' and gateway's public keys
/// that a `fast_config` run generated under `dir/keys/`.
pub fn trust_store(dir: &Path, sensors: &[&str], gateway_id: &str) -> PathBuf {
    let public = |name: &str| {
        std::fs::read_to_string(dir.join("keys").join(format!("{name}.key.pub"))).unwrap().trim().to_string()
    };
    let mut text = String::from("[sensors]\n");
    for sensor in sensors {
        text.push_str(&format!("{sensor} = \"{}\"\n", public(sensor)));
    }
    text.push_str(&format!("[gateways]\n{gateway_id} = \"{}\"\n", public("gateway")));
    let path = dir.join("trust.toml");
    std::fs::write(&path, text).unwrap();
    path
}

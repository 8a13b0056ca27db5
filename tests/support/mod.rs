//! Helpers shared by the integration tests.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The folder holding the guest components runtime/build.rs produced:
/// `builtin-alarm.wasm`, `test-faulty.wasm`, ...
pub fn guest_dir() -> PathBuf {
    PathBuf::from(env!("EDGEWARD_GUEST_DIR"))
}

/// The path of the test rule `name` (a crate under tests/rules/).
pub fn test_rule(name: &str) -> PathBuf {
    guest_dir().join(format!("test-{name}.wasm"))
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

/// Run the `edgeward` binary with `args` and wait for it.
pub fn edgeward(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_edgeward"))
        .args(args)
        .env("EDGEWARD_LOG", "info")
        .env("EDGEWARD_CACHE_DIR", module_cache())
        .output()
        .expect("running edgeward")
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

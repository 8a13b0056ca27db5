//! Tools for rule authors: `edgeward module inspect` and `edgeward new-rule`.

use crate::support::{edgeward, repo_root, stderr, test_rule};

/// The built-in `seal` rule needs a `seal:` grant and exports the whole rule interface.
#[test]
fn inspect_shows_capabilities_and_exports() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("seal.wasm");
    std::fs::write(&file, edgeward::builtin::module("seal").unwrap()).unwrap();
    let output = edgeward(&["module", "inspect", file.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("contract  edgeward:policy@0.1.0"), "{text}");
    assert!(text.contains("needs     seal:RECIPIENTS"), "{text}");
    assert!(text.contains("linked with nothing granted"), "{text}");
    for export in ["init", "process", "tick"] {
        assert!(
            text.lines().any(|l| l.contains(&format!("export    {export}")) && l.ends_with("yes")),
            "{text}"
        );
    }

    let output = edgeward(&["module", "inspect", "--json", file.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["capabilities"], serde_json::json!(["seal:RECIPIENTS"]));
    assert_eq!(json["exports"], serde_json::json!(["init", "process", "tick"]));
    assert_eq!(json["contract"], "0.1.0");
    assert_eq!(json["rule"], true);
    assert_eq!(json["bytes"], edgeward::builtin::module("seal").unwrap().len());
    assert_eq!(json["sha256"].as_str().unwrap().len(), 64);
}

/// A test rule that keeps state needs `kv`, and nothing for signing or sealing.
#[test]
fn inspect_test_rule() {
    let output = edgeward(&["module", "inspect", "--json", test_rule("counter").to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["capabilities"], serde_json::json!(["kv"]));
    assert_eq!(json["rule"], true);
}

/// Anything that is not a component is refused, saying so.
#[test]
fn inspect_refuses_non_components() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("rule.wasm");
    std::fs::write(&text, "not wasm").unwrap();
    let output = edgeward(&["module", "inspect", text.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("is not a WebAssembly component: not WebAssembly at all"),
        "{}",
        stderr(&output)
    );

    // A core module (just the header) is WebAssembly, but not a component.
    let core = dir.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    let output = edgeward(&["module", "inspect", core.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("is not a WebAssembly component"), "{}", stderr(&output));
}

/// `cargo` with the generated crate's build output in target/new-rule-test
/// (kept across runs, so only the first run compiles the SDK).
fn cargo(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    std::process::Command::new(cargo)
        .args(args)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", repo_root().join("target/new-rule-test"))
        .env_remove("RUSTFLAGS")
        .output()
        .expect("running cargo")
}

/// A generated rule builds for wasm32-wasip2, passes its own unit tests and
/// loads in the gateway; generating into an existing directory is refused.
#[test]
fn new_rule_builds_tests_and_loads() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("range-check");
    let sdk = repo_root().join("sdk");
    let args =
        ["new-rule", "range-check", "--dir", dir.to_str().unwrap(), "--sdk-path", sdk.to_str().unwrap()];
    let output = edgeward(&args);
    assert!(output.status.success(), "{}", stderr(&output));
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    assert!(manifest.contains(r#"crate-type = ["cdylib", "rlib"]"#), "{manifest}");
    assert!(manifest.contains("[workspace]"), "{manifest}");
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    assert!(readme.contains("cargo build --release --target wasm32-wasip2"), "{readme}");

    let again = edgeward(&args);
    assert_eq!(again.status.code(), Some(1));
    assert!(stderr(&again).contains("already exists"), "{}", stderr(&again));

    // The repository's lock file pins the same dependency versions the
    // workspace builds with (and so needs no registry update).
    std::fs::copy(repo_root().join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
    let build = cargo(&dir, &["build", "--release", "--target", "wasm32-wasip2"]);
    assert!(build.status.success(), "{}", stderr(&build));
    let test = cargo(&dir, &["test"]);
    assert!(test.status.success(), "{}\n{}", String::from_utf8_lossy(&test.stdout), stderr(&test));
    assert!(String::from_utf8_lossy(&test.stdout).contains("2 passed"));

    let wasm = repo_root().join("target/new-rule-test/wasm32-wasip2/release/range_check.wasm");
    let config = format!(
        r#"
[gateway]
id = "test-gw"
state-dir = "state"

[[sensor]]
name = "kitchen"
address = "A4:C1:38:00:00:01"
profile = "home"
source = "sim"
sim = {{ model = "room", interval-s = 60 }}

[profile.home]
modules = ["range-check"]

[module.range-check]
wasm = {wasm:?}
config = {{ measurement = "temperature", min = -20.0, max = 60.0 }}

[uplink]
type = "none"
"#
    );
    let path = tmp.path().join("edgeward.toml");
    std::fs::write(&path, config).unwrap();
    let check = edgeward(&["check", "-c", path.to_str().unwrap()]);
    assert_eq!(check.status.code(), Some(0), "{}", stderr(&check));
    let inspect = edgeward(&["module", "inspect", "--json", wasm.to_str().unwrap()]);
    let json: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(json["rule"], true);
    assert_eq!(json["capabilities"], serde_json::json!([]));
}

/// `--sdk-version` depends on a published SDK; names cargo cannot use are refused.
#[test]
fn new_rule_options() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("nested/too-hot");
    let output = edgeward(&["new-rule", "too-hot", "--dir", dir.to_str().unwrap(), "--sdk-version", "0.1.0"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    assert!(manifest.contains("edgeward-sdk = \"0.1.0\""), "{manifest}");
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    assert!(readme.contains("release/too_hot.wasm"), "{readme}");
    assert!(dir.join("src/lib.rs").is_file());

    let bad = tmp.path().join("bad");
    let output = edgeward(&["new-rule", "Too Hot", "--dir", bad.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("cannot name a rule"), "{}", stderr(&output));
    assert!(!bad.exists());
}

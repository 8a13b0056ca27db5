//! Tools for rule authors: `edgeward module inspect` and `edgeward new-rule`.

use crate::support::{edgeward, repo_root, stderr, test_rule};

/// A rule of the earlier contract is shown as such, and as loadable.
#[test]
fn inspect_shows_an_earlier_contract_as_loadable() {
    let file = repo_root().join("tests/fixtures/rules/counter-policy-0.1.wasm");
    let output = edgeward(&["module", "inspect", file.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("contract  edgeward:policy@0.1.0 (an earlier contract, still loaded"), "{text}");
    assert!(!text.contains("refused"), "{text}");
}

/// The built-in `seal` rule needs a `seal:` grant and exports the whole rule interface.
#[test]
fn inspect_shows_capabilities_and_exports() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("seal.wasm");
    std::fs::write(&file, edgeward::builtin::module("seal").unwrap()).unwrap();
    let output = edgeward(&["module", "inspect", file.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("contract  edgeward:policy@0.2.0"), "{text}");
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
    assert_eq!(json["contract"], "0.2.0");
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
    assert!(stderr(&output).contains("is a core WebAssembly module, not a component"), "{}", stderr(&output));
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

/// A config with one room sensor whose profile runs the module `rule` from
/// `wasm` (granted `capabilities`, configured with the TOML `config`).
fn one_rule_config(
    dir: &std::path::Path,
    wasm: &std::path::Path,
    capabilities: &[&str],
    config: &str,
) -> String {
    let text = format!(
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

[sim]
speed = 0
duration-s = 600

[profile.home]
modules = ["rule"]

[module.rule]
wasm = {wasm:?}
capabilities = {capabilities:?}
config = {config}

[uplink]
type = "none"
"#,
        wasm = wasm.display().to_string(),
    );
    let path = dir.join("edgeward.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// `edgeward check` (and, for the first case, `run`) refuses `wasm` with
/// EX_CONFIG; returns standard error.
fn refused(wasm: &std::path::Path, capabilities: &[&str], config: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = one_rule_config(dir.path(), wasm, capabilities, config);
    let out = edgeward(&["check", "-c", &path]);
    assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));
    stderr(&out)
}

/// A component without `tick` is refused naming the module, the file, the export and the fix.
#[test]
fn missing_export_is_named() {
    let wasm = test_rule("no-tick");
    let text = refused(&wasm, &[], "{}");
    let expected = format!("module `rule` ({}) does not export `tick`", wasm.display());
    assert!(text.contains(&expected), "{text}");
    assert!(text.contains("implement what is missing"), "{text}");
    assert!(text.contains("rebuild it against the current SDK"), "{text}");

    // `run` refuses it the same way, before any reading flows.
    let dir = tempfile::tempdir().unwrap();
    let path = one_rule_config(dir.path(), &wasm, &[], "{}");
    let out = edgeward(&["run", "-c", &path]);
    assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));
    assert!(stderr(&out).contains(&expected), "{}", stderr(&out));
}

/// A component built against another contract version is refused naming both versions.
#[test]
fn other_contract_version_is_named() {
    let wasm = test_rule("contract-next");
    let text = refused(&wasm, &[], "{}");
    assert!(text.contains(&format!("module `rule` ({})", wasm.display())), "{text}");
    assert!(text.contains("was built against edgeward:policy@0.3.0"), "{text}");
    assert!(text.contains("this gateway supports edgeward:policy@0.2.0"), "{text}");
}

/// A component that is no rule at all is refused saying what it exports and what a rule exports.
#[test]
fn foreign_component_is_named() {
    let text = refused(&test_rule("not-a-rule"), &[], "{}");
    assert!(text.contains("is a WebAssembly component but not an edgeward rule"), "{text}");
    assert!(text.contains("imports nothing of edgeward:policy and exports `greet`"), "{text}");
    assert!(text.contains("a rule exports `init`, `process` and `tick` of edgeward:policy@0.2.0"), "{text}");
}

/// A core module (not a component) is refused saying how to make a component.
#[test]
fn core_module_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let core = dir.path().join("core.wasm");
    // The smallest valid core module: the preamble of binary version 1.
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    let text = refused(&core, &[], "{}");
    assert!(text.contains(&format!("module `rule` ({})", core.display())), "{text}");
    assert!(text.contains("is a core WebAssembly module, not a component"), "{text}");
    assert!(text.contains("wasm32-wasip2"), "{text}");

    let output = edgeward(&["module", "inspect", core.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("is a core WebAssembly module"), "{}", stderr(&output));
}

/// A capability used without its grant is refused naming the line to add.
#[test]
fn ungranted_capability_names_the_grant() {
    let text = refused(&test_rule("counter"), &[], "{}");
    assert!(text.contains("imports `edgeward:policy/kv@0.2.0` but is not granted it"), "{text}");
    assert!(text.contains("add \"kv\" to `capabilities` in [module.rule]"), "{text}");
}

/// A panic in `init` is reported with the guest's own panic message.
#[test]
fn init_trap_shows_the_panic() {
    let text = refused(&test_rule("faulty"), &[], r#"{ fault = "trap", on = "init" }"#);
    assert!(text.contains("module `home/rule` trapped in `init`"), "{text}");
    assert!(text.contains("panicked at") && text.contains("deliberate trap"), "{text}");
}

/// Without --force an existing directory is refused, naming it and the
/// option; with it the generated files are rewritten and others kept.
#[test]
fn new_rule_force_overwrites_generated_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("door-check");
    let args = ["new-rule", "door-check", "--dir", dir.to_str().unwrap(), "--sdk-version", "0.1.0"];
    let output = edgeward(&args);
    assert!(output.status.success(), "{}", stderr(&output));
    let generated = std::fs::read_to_string(dir.join("src/lib.rs")).unwrap();
    std::fs::write(dir.join("src/lib.rs"), "edited").unwrap();
    std::fs::write(dir.join("NOTES.md"), "mine").unwrap();

    let refused = edgeward(&args);
    assert_eq!(refused.status.code(), Some(1));
    let text = stderr(&refused);
    assert!(text.contains(&format!("{} already exists", dir.display())), "{text}");
    assert!(text.contains("--force"), "{text}");
    assert_eq!(std::fs::read_to_string(dir.join("src/lib.rs")).unwrap(), "edited");

    let forced = edgeward(&[&args[..], &["--force"]].concat());
    assert!(forced.status.success(), "{}", stderr(&forced));
    assert_eq!(std::fs::read_to_string(dir.join("src/lib.rs")).unwrap(), generated);
    assert_eq!(std::fs::read_to_string(dir.join("NOTES.md")).unwrap(), "mine");

    // --force into a directory that does not exist yet simply creates it.
    let fresh = tmp.path().join("fresh");
    let output = edgeward(&[
        "new-rule",
        "fresh",
        "--dir",
        fresh.to_str().unwrap(),
        "--force",
        "--sdk-version",
        "0.1.0",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(fresh.join("Cargo.toml").is_file());
}

//! The `edgeward` binary end to end: the shipped configs check clean, and a
//! simulated day flows through both profiles to the sinks.

use crate::support::{edgeward, fast_config, read_jsonl, repo_root, stderr, table, test_rule};
use toml::Table;

/// Add a module `name` from a test rule and make it the medical profile's first module.
fn add_medical_module(config: &mut Table, name: &str, module: Table) {
    table(config, "module").insert(name.into(), module.into());
    let medical = table(table(config, "profile"), "medical");
    let modules = medical.get_mut("modules").unwrap().as_array_mut().unwrap();
    modules.insert(0, name.into());
}

/// Every configuration shipped in configs/ passes `edgeward check`.
#[test]
fn shipped_configs_check_clean() {
    let mut checked = 0;
    for entry in std::fs::read_dir(repo_root().join("configs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let out = edgeward(&["check", "-c", path.to_str().unwrap()]);
            assert!(out.status.success(), "{}: {}", path.display(), stderr(&out));
            checked += 1;
        }
    }
    assert!(checked >= 1);
}

/// `check --json` describes the modules it loaded, with their hashes.
#[test]
fn check_reports_modules_as_json() {
    let out = edgeward(&["check", "--json", "-c", repo_root().join("configs/demo.toml").to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], true);
    let modules = report["modules"].as_array().unwrap();
    assert!(modules.iter().any(|m| m["source"] == "builtin:heating"));
    assert!(modules.iter().all(|m| m["sha256"].as_str().unwrap().len() == 64));
}

/// A simulated day yields every reading upstream, heating commands only on
/// change, and fever alarms that are raised and cleared in pairs.
#[test]
fn simulated_day_flows_through_both_profiles() {
    let dir = tempfile::tempdir().unwrap();
    let config = fast_config("demo.toml", dir.path(), |_| {});
    let out = edgeward(&["run", "-c", config.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));

    let uplink = read_jsonl(&dir.path().join("uplink.jsonl"));
    // 2 rooms every 300 s and a wearable every 60 s, for 86 400 s.
    assert_eq!(uplink.len(), 2 * 288 + 1440);
    let medical = uplink.iter().filter(|m| m["profile"] == "medical").count();
    assert_eq!(medical, 1440);
    for m in &uplink {
        let expected = match m["profile"].as_str().unwrap() {
            "medical" => "application/cose; cose-type=\"cose-sign1\"",
            _ => "application/cose; cose-type=\"cose-encrypt0\"",
        };
        assert_eq!(m["content_type"], expected);
    }
    assert!(uplink.iter().any(|m| m["topic"] == "medical/demo-gw/wearable-1"));

    let commands = read_jsonl(&dir.path().join("actuator.jsonl"));
    assert!(commands.len() >= 4, "the rooms cross the band: {commands:?}");
    for actuator in ["heating/living-room", "heating/bedroom"] {
        let states: Vec<String> = commands
            .iter()
            .filter(|c| c["actuator"] == actuator)
            .map(|c| {
                serde_json::from_str::<serde_json::Value>(c["payload"].as_str().unwrap()).unwrap()["state"]
                    .to_string()
            })
            .collect();
        assert!(!states.is_empty(), "{actuator} got no command");
        assert!(states.windows(2).all(|w| w[0] != w[1]), "{actuator} repeated a state: {states:?}");
    }

    let alarms = read_jsonl(&dir.path().join("alarm.jsonl"));
    let raised = alarms.iter().filter(|a| a["code"] == "fever" && a["state"] == "raised").count();
    let cleared = alarms.iter().filter(|a| a["code"] == "fever" && a["state"] == "cleared").count();
    assert!(raised >= 1, "a simulated day has a fever episode: {alarms:?}");
    assert!(cleared == raised || cleared + 1 == raised, "{raised} raised, {cleared} cleared");
}

/// The same seed gives the same output, run after run (state reset).
#[test]
fn simulation_is_deterministic() {
    let run = || {
        let dir = tempfile::tempdir().unwrap();
        let config = fast_config("demo.toml", dir.path(), |_| {});
        let out = edgeward(&["run", "-c", config.to_str().unwrap()]);
        assert!(out.status.success(), "{}", stderr(&out));
        read_jsonl(&dir.path().join("actuator.jsonl"))
    };
    assert_eq!(run(), run());
}

/// A module that traps on every other message, under load, neither stops the
/// daemon nor loses messages under `on-error = "pass"`; the faults are counted.
#[test]
fn faulty_module_under_load_keeps_the_daemon_running() {
    let dir = tempfile::tempdir().unwrap();
    let config = fast_config("demo.toml", dir.path(), |config| {
        let mut flaky = Table::new();
        flaky.insert("wasm".into(), test_rule("faulty").display().to_string().into());
        flaky.insert("config".into(), toml::toml! { fault = "trap" on = "process" every = 2 }.into());
        add_medical_module(config, "flaky", flaky);
    });

    let out = edgeward(&["run", "-c", config.to_str().unwrap()]);
    let log = stderr(&out);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("module `medical/flaky` trapped in `process`"), "{log}");
    assert!(log.contains("module_faults=720"), "{log}");
    let medical =
        read_jsonl(&dir.path().join("uplink.jsonl")).iter().filter(|m| m["profile"] == "medical").count();
    assert_eq!(medical, 1440);
}

/// Module state persists in the state directory across runs of the daemon.
#[test]
fn module_state_persists_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let config = fast_config("demo.toml", dir.path(), |config| {
        let mut counter = Table::new();
        counter.insert("wasm".into(), test_rule("counter").display().to_string().into());
        counter.insert("capabilities".into(), vec![toml::Value::from("kv")].into());
        add_medical_module(config, "counter", counter);
    });
    let counts = || {
        read_jsonl(&dir.path().join("uplink.jsonl"))
            .iter()
            .filter(|m| m["profile"] == "medical")
            .map(|m| {
                m["measurements"].as_array().unwrap().iter().find(|x| x["name"] == "count").unwrap()["value"]
                    .as_f64()
                    .unwrap()
            })
            .fold(0.0, f64::max)
    };
    assert!(edgeward(&["run", "-c", config.to_str().unwrap()]).status.success());
    assert_eq!(counts(), 1440.0);
    assert!(edgeward(&["run", "-c", config.to_str().unwrap()]).status.success());
    assert_eq!(counts(), 2880.0);
}

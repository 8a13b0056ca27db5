//! The example rules of examples/rules/ through the real gateway: each is
//! loaded by path from a config, fed simulated readings on a manual clock
//! (`[sim] speed = 0`), and judged by what reaches the file sinks.

use crate::support::{edgeward, example_rule, read_jsonl, stderr};
use base64::Engine as _;
use edgeward_formats::senml;
use serde_json::Value;
use std::path::Path;

/// Run the gateway for `duration_s` simulated seconds from 2026-01-15T00:00Z
/// with `sensors_and_profile` (TOML: `[[sensor]]`s and `[profile.home]`) and
/// the example `example` loaded as module `rule` with `config` (a TOML
/// table body). Returns (uplink, alarm) records.
fn run(
    dir: &Path,
    duration_s: u64,
    sensors_and_profile: &str,
    example: &str,
    config: &str,
) -> (Vec<Value>, Vec<Value>) {
    let text = format!(
        r#"
[gateway]
id = "test-gw"
state-dir = "state"

[sim]
seed = 42
speed = 0
duration-s = {duration_s}
start = "2026-01-15T00:00:00Z"

[sandbox]
# Deadlines are wall-clock; a loaded test machine must not change the output.
call-timeout-ms = 5000

{sensors_and_profile}

[module.rule]
wasm = {wasm:?}
capabilities = ["kv"]

[module.rule.config]
{config}

[uplink]
type = "file"
path = "uplink.jsonl"

[alarm]
type = "file"
path = "alarm.jsonl"

[actuator]
type = "none"
"#,
        wasm = example_rule(example).display().to_string(),
    );
    let path = dir.join("edgeward.toml");
    std::fs::write(&path, text).unwrap();
    let check = edgeward(&["check", "-c", path.to_str().unwrap()]);
    assert!(check.status.success(), "{}", stderr(&check));
    let out = edgeward(&["run", "-c", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    (read_jsonl(&dir.join("uplink.jsonl")), read_jsonl(&dir.join("alarm.jsonl")))
}

/// A record's RFC 3339 time field as ms since the Unix epoch.
fn ms(record: &Value, field: &str) -> u64 {
    let text = record[field].as_str().unwrap_or_else(|| panic!("no {field} in {record}"));
    let time = humantime::parse_rfc3339(text).unwrap();
    time.duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

const START_MS: u64 = 1_768_435_200_000; // 2026-01-15T00:00:00Z
const HOUR_MS: u64 = 3_600_000;

fn value_of(record: &Value, name: &str) -> Option<f64> {
    record["measurements"].as_array()?.iter().find(|m| m["name"] == name)?["value"].as_f64()
}

/// A simulated room warms fastest in the morning: the rate-of-change alarm
/// is raised then (never while the room cools) and always cleared again,
/// and every reading is still forwarded.
#[test]
fn rate_of_change_alarms_while_the_room_warms() {
    let dir = tempfile::tempdir().unwrap();
    let setup = r#"
[[sensor]]
name = "kitchen"
address = "A4:C1:38:00:00:01"
profile = "home"
source = "sim"
sim = { model = "room", interval-s = 60 }

[profile.home]
modules = ["rule"]
"#;
    let config = r#"
measurement = "temperature"
unit = "Cel"
rate-per-min = 0.008
hysteresis = 0.004
window-s = 1800
"#;
    let (uplink, alarms) = run(dir.path(), 86_400, setup, "rate-of-change", config);
    // One reading a minute for a day, all forwarded.
    assert!((1_439..=1_441).contains(&uplink.len()), "{}", uplink.len());

    assert!(!alarms.is_empty(), "the morning rise raised nothing");
    for (i, alarm) in alarms.iter().enumerate() {
        assert_eq!(alarm["code"], "rate-of-change");
        assert_eq!(alarm["sensor"], "kitchen");
        assert_eq!(alarm["state"], if i % 2 == 0 { "raised" } else { "cleared" }, "{alarms:#?}");
        if alarm["state"] == "raised" {
            // The simulated room warms from 05:00 to 17:00 UTC (fastest at 11:00).
            let hour = (ms(alarm, "at") - START_MS) / HOUR_MS;
            assert!((5..17).contains(&hour), "raised at hour {hour}: {alarm}");
        }
    }
    assert_eq!(alarms.len() % 2, 0, "every alarm is cleared by evening: {alarms:#?}");
}

/// A door left open is noticed by `tick` while the door sensor is silent
/// (other sensors keep the profile's clock moving), and cleared by the
/// reading that says closed.
#[test]
fn door_open_too_long_is_noticed_in_silence() {
    let dir = tempfile::tempdir().unwrap();
    let setup = r#"
[[sensor]]
name = "front-door"
address = "A4:C1:38:00:00:0D"
profile = "home"
source = "sim"
sim = { model = "door", interval-s = 1800 }

[[sensor]]
name = "hall"
address = "A4:C1:38:00:00:01"
profile = "home"
source = "sim"
sim = { model = "room", interval-s = 60 }

[profile.home]
modules = ["rule"]
tick-interval-s = 60
"#;
    let (uplink, alarms) = run(dir.path(), 12 * 3_600, setup, "door-open-too-long", "open-for-s = 600");
    let end_ms = uplink.iter().map(|r| ms(r, "received")).max().unwrap();
    let door: Vec<(u64, bool)> = uplink
        .iter()
        .filter(|r| r["sensor"] == "front-door")
        .map(|r| (ms(r, "received"), value_of(r, "door").expect("a door state") == 1.0))
        .collect();
    assert!(door.len() >= 23, "{door:?}");

    // Each run of "open" readings that lasted long enough earns one alarm.
    let mut expected = Vec::new();
    let mut since = None;
    for &(at, open) in &door {
        match (open, since) {
            (true, None) => since = Some(at),
            (false, Some(opened)) => {
                expected.push((opened, Some(at)));
                since = None;
            }
            _ => {}
        }
    }
    if let Some(opened) = since {
        expected.push((opened, None));
    }
    // Long enough: 600 s, plus a tick (60 s) and a room reading to carry it.
    expected.retain(|&(opened, _)| opened + 720_000 <= end_ms);
    assert!(!expected.is_empty(), "the door never stayed open: {door:?}");

    let door_alarms: Vec<(u64, &str)> =
        alarms.iter().map(|a| (ms(a, "at"), a["state"].as_str().unwrap())).collect();
    assert!(
        alarms.iter().all(|a| a["sensor"] == "front-door" && a["code"] == "open-too-long"),
        "{alarms:#?}"
    );
    let raised: Vec<u64> = door_alarms.iter().filter(|a| a.1 == "raised").map(|a| a.0).collect();
    let cleared: Vec<u64> = door_alarms.iter().filter(|a| a.1 == "cleared").map(|a| a.0).collect();
    assert_eq!(raised.len(), expected.len(), "{door:?}\n{door_alarms:?}");
    for (&at, &(opened, closed)) in raised.iter().zip(&expected) {
        // Raised by a tick between readings: after the limit, before the next reading.
        assert!((opened + 600_000..opened + 720_000).contains(&at), "opened {opened}, raised {at}");
        assert!(!door.iter().any(|d| d.0 == at), "raised by a reading, not by tick");
        if let Some(closed) = closed {
            assert!(cleared.contains(&closed), "not cleared when closed at {closed}: {door_alarms:?}");
        }
    }
    assert_eq!(cleared.len(), expected.iter().filter(|e| e.1.is_some()).count(), "{door_alarms:?}");
}

/// What leaves is only the allowed measurement, rounded, one per 15
/// minutes, at bucketed times, without address, RSSI or counter, and the
/// upstream body says exactly that and no more.
#[test]
fn data_minimising_sends_only_coarse_readings() {
    let dir = tempfile::tempdir().unwrap();
    let setup = r#"
[[sensor]]
name = "kitchen"
address = "A4:C1:38:00:00:01"
profile = "home"
source = "sim"
sim = { model = "room", interval-s = 60 }

[profile.home]
modules = ["rule"]
"#;
    let config = r#"
allow = ["temperature"]
round = { temperature = 0.5 }
min-interval-s = 900
bucket-s = 900
strip = ["address", "rssi", "seq"]
"#;
    let (uplink, _) = run(dir.path(), 4 * 3_600, setup, "data-minimising", config);
    // 240 readings, one forwarded every 15.
    assert_eq!(uplink.len(), 16, "{uplink:#?}");
    let mut previous = None;
    for record in &uplink {
        let names: Vec<&str> =
            record["measurements"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["temperature"], "{record}");
        let temperature = value_of(record, "temperature").unwrap();
        assert_eq!((temperature * 2.0).fract(), 0.0, "not rounded to 0.5: {temperature}");
        assert_eq!(record["address"], "");
        assert!(record["rssi"].is_null() && record["seq"].is_null(), "{record}");
        let at = ms(record, "received");
        assert_eq!(at % 900_000, 0, "not bucketed: {record}");
        if let Some(previous) = previous {
            assert_eq!(at, previous + 900_000);
        }
        previous = Some(at);

        assert_eq!(record["content_type"], senml::CONTENT_TYPE);
        let body =
            base64::engine::general_purpose::STANDARD.decode(record["body"].as_str().unwrap()).unwrap();
        let pack = senml::decode(&body).unwrap();
        assert_eq!(pack.base_name, None, "the body names no device");
        assert_eq!(pack.base_time_ms, Some(at));
        assert_eq!(pack.measurements.len(), 1);
        assert_eq!(pack.measurements[0].value, temperature);
    }
}

//! The BLE source end to end: the real gateway binary, through the real
//! bluer client, against an emulated BlueZ on a private D-Bus bus (see
//! `tests/support/bluez.rs` and `tests/bluez/edgeward_bluez.py`).
//!
//! Sensors advertise and notify again and again until the test sees what it
//! waits for, as real sensors repeat themselves: so no test depends on when
//! the gateway subscribed. Waits are bounded; nothing asserts on timing.

use crate::support::bluez::{ADAPTER, BTHOME, Bluez, Gateway, json_lines};
use crate::support::{edgeward, fast_config, stderr, table, trust_store};
use ed25519_dalek::{Signer, SigningKey};
use edgeward::decode::bthome;
use edgeward::source::ble::{READING_CHARACTERISTIC_UUID, SENSOR_SERVICE_UUID};
use edgeward::trust::keys::{KeyKind, format_public};
use edgeward_formats::{cose, senml};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Table;

const KITCHEN: &str = "A4:C1:38:00:00:01";
const WEARABLE: &str = "C0:FF:EE:00:00:01";
/// A first wait covers the gateway's start (compiling rules when the cache is cold).
const START: Duration = Duration::from_secs(120);
const WAIT: Duration = Duration::from_secs(60);

/// A gateway config in `dir` with a BTHome sensor `kitchen` (source ble) whose
/// readings go through an alarm rule to a file uplink; `ble` is the `[ble]` table.
fn bthome_config(dir: &Path, ble: &str) -> PathBuf {
    let text = format!(
        r#"
[gateway]
id = "ble-gw"
state-dir = "state"

[ble]
adapter = "{ADAPTER}"
{ble}

[sandbox]
call-timeout-ms = 5000

[[sensor]]
name = "kitchen"
address = "{KITCHEN}"
profile = "rooms"

[profile.rooms]
modules = ["thresholds"]

[module.thresholds]
wasm = "builtin:alarm"
capabilities = ["kv"]

[[module.thresholds.config.threshold]]
measurement = "temperature"
above = 30.0
code = "too-hot"

[uplink]
type = "file"
path = "uplink.jsonl"

[alarm]
type = "file"
path = "alarm.jsonl"

[actuator]
type = "none"
"#
    );
    let path = dir.join("edgeward.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// BTHome service data: battery 90 %, `temperature`, packet id `packet`.
fn bthome_data(packet: u8, temperature: f64) -> Vec<u8> {
    bthome::encode(&[(0x01, 90.0), (0x02, temperature)], Some(packet)).unwrap()
}

/// The uplink record for the kitchen's packet `packet`, once there.
fn uplink_packet(dir: &Path, packet: u64) -> Option<Value> {
    json_lines(&dir.join("uplink.jsonl")).into_iter().find(|r| r["sensor"] == "kitchen" && r["seq"] == packet)
}

/// Advertise the kitchen's `packet` until it is upstream; its uplink record.
fn kitchen_reading(bluez: &Bluez, gateway: &Gateway, dir: &Path, packet: u8, temperature: f64) -> Value {
    let data = bthome_data(packet, temperature);
    gateway.wait_for(&format!("kitchen packet {packet} upstream"), WAIT, || {
        bluez.advertise(KITCHEN, "kitchen-sensor", -58, &[(BTHOME, &data)]);
        uplink_packet(dir, u64::from(packet))
    })
}

/// A measurement's value in an uplink record.
fn measurement(record: &Value, name: &str) -> Option<f64> {
    record["measurements"].as_array()?.iter().find(|m| m["name"] == name)?["value"].as_f64()
}

/// A signed sensor: its name (also its key id), address and production key.
struct Wearable {
    name: &'static str,
    address: &'static str,
    key: SigningKey,
}

const WEARABLE_2: &str = "C0:FF:EE:00:00:02";

impl Wearable {
    fn new(name: &'static str, address: &'static str, seed: u8) -> Self {
        Wearable { name, address, key: SigningKey::from_bytes(&[seed; 32]) }
    }

    fn public(&self) -> String {
        format_public(KeyKind::Ed25519, &self.key.verifying_key().to_bytes())
    }

    /// Its reading `seq`, as it notifies it: a COSE_Sign1 over SenML-CBOR.
    fn reading(&self, seq: u64) -> Vec<u8> {
        let payload = senml::encode(
            self.address,
            1_768_435_200_000 + seq * 60_000,
            &[senml::Measurement { name: "temperature".into(), unit: "Cel".into(), value: temperature(seq) }],
        );
        cose::build_sensor_sign1(self.name.as_bytes(), seq, &payload, |tbs| {
            Ok::<_, std::convert::Infallible>(self.key.sign(tbs).to_bytes().to_vec())
        })
        .unwrap()
    }

    /// The emulated sensor offers the edgeward sensor service once connected.
    fn offer_service(&self, bluez: &Bluez) {
        bluez.add_gatt_service(
            self.address,
            &SENSOR_SERVICE_UUID.to_string(),
            &[&READING_CHARACTERISTIC_UUID.to_string()],
        );
    }

    /// Advertise (so the gateway finds it) and notify reading `seq`; true when delivered.
    fn send(&self, bluez: &Bluez, seq: u64) -> bool {
        bluez.advertise(self.address, self.name, -50, &[]);
        bluez.notify(self.address, &READING_CHARACTERISTIC_UUID.to_string(), &self.reading(seq))
    }

    /// Its uplink record for reading `seq`, once there.
    fn upstream(&self, dir: &Path, seq: u64) -> Option<Value> {
        json_lines(&dir.join("uplink.jsonl"))
            .into_iter()
            .find(|r| r["sensor"] == self.name && r["seq"] == seq)
    }

    /// Send reading `seq` until it is upstream; its uplink record.
    fn deliver(&self, bluez: &Bluez, gateway: &Gateway, dir: &Path, seq: u64) -> Value {
        gateway.wait_for(&format!("{} reading {seq} upstream", self.name), WAIT, || {
            self.send(bluez, seq);
            self.upstream(dir, seq)
        })
    }
}

/// The temperature a wearable reports in reading `seq`.
fn temperature(seq: u64) -> f64 {
    36.5 + seq as f64 / 10.0
}

/// The shipped medical config with `wearables` on BLE (signed GATT), with
/// `[ble]` keys `ble`; their public keys also go where `trust_store` reads them.
fn signed_config(dir: &Path, wearables: &[&Wearable], ble: Table) -> PathBuf {
    std::fs::create_dir_all(dir.join("keys")).unwrap();
    for w in wearables {
        std::fs::write(dir.join(format!("keys/{}.key.pub", w.name)), format!("{}\n", w.public())).unwrap();
    }
    fast_config("medical.toml", dir, |config| {
        let sensors = wearables
            .iter()
            .map(|w| {
                let mut sensor = Table::new();
                sensor.insert("name".into(), w.name.into());
                sensor.insert("address".into(), w.address.into());
                sensor.insert("format".into(), "signed-gatt".into());
                sensor.insert("profile".into(), "provenance".into());
                sensor.insert("source".into(), "ble".into());
                sensor.insert("key".into(), w.public().into());
                toml::Value::from(sensor)
            })
            .collect();
        config.insert("sensor".into(), toml::Value::Array(sensors));
        let section = table(config, "ble");
        section.insert("adapter".into(), ADAPTER.into());
        section.extend(ble);
    })
}

/// BTHome advertisements of a configured sensor flow through its profile's
/// rules to the uplink (and raise an alarm); strangers and garbage do not.
/// BlueZ offers no advertisement monitor here: discovery is active.
#[test]
fn bthome_advertisements_flow_through_the_pipeline() {
    let bluez = Bluez::start();
    let dir = tempfile::tempdir().unwrap();
    let gateway = Gateway::start(&bluez, &bthome_config(dir.path(), ""));
    gateway.wait_for("discovery", START, || bluez.discovering().then_some(()));
    let filter = bluez.discovery_filter();
    assert_eq!(dbus::arg::prop_cast::<bool>(&filter, "DuplicateData"), Some(&true), "{filter:?}");
    assert_eq!(dbus::arg::prop_cast::<String>(&filter, "Transport").map(String::as_str), Some("le"));

    let stranger = bthome_data(9, 99.0);
    bluez.advertise("11:22:33:44:55:66", "stranger", -80, &[(BTHOME, &stranger)]);
    let first = kitchen_reading(&bluez, &gateway, dir.path(), 1, 21.5);
    assert_eq!(first["address"], KITCHEN);
    assert_eq!(first["rssi"], -58);
    assert_eq!(first["authenticity"], "none");
    assert_eq!(measurement(&first, "temperature"), Some(21.5));
    assert_eq!(measurement(&first, "battery"), Some(90.0));

    // A malformed advertisement is a frame the decoder rejects, not a crash.
    gateway.wait_for("the garbage rejected", WAIT, || {
        bluez.advertise(KITCHEN, "kitchen-sensor", -58, &[(BTHOME, &[0xff, 0x00])]);
        gateway.log().contains("frame rejected").then_some(())
    });

    let hot = kitchen_reading(&bluez, &gateway, dir.path(), 2, 31.25);
    assert_eq!(measurement(&hot, "temperature"), Some(31.25));
    gateway.wait_for("the too-hot alarm", WAIT, || {
        json_lines(&dir.path().join("alarm.jsonl")).into_iter().find(|a| a["code"] == "too-hot")
    });
    let uplink = json_lines(&dir.path().join("uplink.jsonl"));
    assert!(uplink.iter().all(|r| r["sensor"] == "kitchen"), "only the configured sensor: {uplink:?}");
    assert!(
        gateway.log().contains("active discovery with duplicate data: BlueZ offers no advertisement monitor")
    );
    let state = dir.path().join("state");
    gateway.wait_for_counter(&state, "ble_advertisements_matched", 3);
    gateway.wait_for_counter(&state, "ble_devices_ignored", 1);
    gateway.wait_for_counter(&state, "decode_errors", 1);
    gateway.wait_for_counter(&state, "ble_active_discovery", 1);
    assert_eq!(Gateway::counter(&state, "ble_passive_scan"), Some(0));
    assert_eq!(gateway.stop(), 0);
}

/// Reloading a rule's setting leaves the BLE source alone: no new discovery,
/// no second session; the new setting applies to the next advertisement.
#[test]
fn reload_of_a_rule_setting_keeps_discovery_running() {
    let bluez = Bluez::start();
    let dir = tempfile::tempdir().unwrap();
    let config = bthome_config(dir.path(), "");
    let gateway = Gateway::start(&bluez, &config);
    gateway.wait_for("discovery", START, || bluez.discovering().then_some(()));
    kitchen_reading(&bluez, &gateway, dir.path(), 1, 25.0);
    let starts = bluez.discovery_starts();

    // Saved the way editors save: a new file renamed over the old.
    let text = std::fs::read_to_string(&config).unwrap().replace("above = 30.0", "above = 20.0");
    std::fs::write(dir.path().join("edgeward.toml.new"), text).unwrap();
    std::fs::rename(dir.path().join("edgeward.toml.new"), &config).unwrap();
    let status = dir.path().join("state/status.json");
    gateway.wait_for("the reload", WAIT, || {
        let status: Value = serde_json::from_slice(&std::fs::read(&status).ok()?).ok()?;
        (status["reload"]["generation"] == 2).then_some(())
    });

    kitchen_reading(&bluez, &gateway, dir.path(), 2, 25.0);
    gateway.wait_for("the alarm at the new threshold", WAIT, || {
        json_lines(&dir.path().join("alarm.jsonl")).into_iter().find(|a| a["code"] == "too-hot")
    });
    assert_eq!(bluez.discovery_starts(), starts, "discovery was not restarted");
    assert_eq!(gateway.log().matches("BLE source starting").count(), 1, "{}", gateway.log());
    assert_eq!(gateway.stop(), 0);
}

/// Where BlueZ offers advertisement monitors, BTHome readings arrive through
/// one (passive scanning) and no discovery is ever started.
#[test]
fn passive_scanning_when_bluez_offers_monitors() {
    let bluez = Bluez::start();
    bluez.set_monitor_support(true);
    let dir = tempfile::tempdir().unwrap();
    let gateway = Gateway::start(&bluez, &bthome_config(dir.path(), ""));
    gateway.wait_for("an active monitor", START, || (bluez.active_monitors() >= 1).then_some(()));
    let record = kitchen_reading(&bluez, &gateway, dir.path(), 1, 21.0);
    assert_eq!(measurement(&record, "temperature"), Some(21.0));
    kitchen_reading(&bluez, &gateway, dir.path(), 2, 21.5);
    assert!(
        gateway.log().contains("passive scanning: BlueZ offers advertisement monitors"),
        "{}",
        gateway.log()
    );
    assert_eq!(bluez.discovery_starts(), 0, "no discovery while passive");
    let state = dir.path().join("state");
    gateway.wait_for_counter(&state, "ble_passive_scan", 1);
    gateway.wait_for_counter(&state, "ble_advertisements_matched", 2);
    assert_eq!(Gateway::counter(&state, "ble_active_discovery"), Some(0));
    assert_eq!(gateway.stop(), 0);
}

/// A BlueZ restart forgets the monitor without telling: noticed (its bus
/// name changed hands, or it was gone), a new one is registered, passively again.
#[test]
fn bluez_restart_is_survived_passively() {
    let mut bluez = Bluez::start();
    bluez.set_monitor_support(true);
    let dir = tempfile::tempdir().unwrap();
    let gateway = Gateway::start(&bluez, &bthome_config(dir.path(), ""));
    gateway.wait_for("an active monitor", START, || (bluez.active_monitors() >= 1).then_some(()));
    kitchen_reading(&bluez, &gateway, dir.path(), 1, 19.0);

    bluez.restart();
    kitchen_reading(&bluez, &gateway, dir.path(), 2, 19.5);
    assert!(bluez.active_monitors() >= 1);
    assert_eq!(bluez.discovery_starts(), 0, "passive again, not active");
    gateway.wait_for_counter(&dir.path().join("state"), "ble_session_restarts", 1);
    assert_eq!(gateway.stop(), 0);
}

/// `scan = "passive"` where BlueZ offers no monitor: an error names the
/// problem, nothing scans actively, and once BlueZ offers monitors the
/// source's retries pick them up.
#[test]
fn passive_required_without_monitors_is_refused_and_retried() {
    let bluez = Bluez::start();
    let dir = tempfile::tempdir().unwrap();
    let gateway = Gateway::start(&bluez, &bthome_config(dir.path(), "scan = \"passive\""));
    gateway.wait_for_log(
        "scan = \"passive\" but BlueZ offers no advertisement monitor (or_patterns) on hci0",
        START,
    );
    assert!(!bluez.advertise(KITCHEN, "kitchen-sensor", -58, &[(BTHOME, &bthome_data(1, 20.0))]));
    assert_eq!(bluez.discovery_starts(), 0, "no active discovery behind the operator's back");
    gateway.wait_for_counter(&dir.path().join("state"), "ble_session_restarts", 1);

    bluez.set_monitor_support(true);
    kitchen_reading(&bluez, &gateway, dir.path(), 2, 20.5);
    assert_eq!(bluez.discovery_starts(), 0);
    assert_eq!(gateway.stop(), 0);
}

/// In passive mode a signed sensor is discovered (no pattern matches its
/// advertisements) until it is connected; then discovery stops.
#[test]
fn passive_mode_discovers_only_until_signed_sensors_connect() {
    let bluez = Bluez::start();
    bluez.set_monitor_support(true);
    let wearable = Wearable::new("wearable-1", WEARABLE, 46);
    wearable.offer_service(&bluez);
    let dir = tempfile::tempdir().unwrap();
    let gateway = Gateway::start(&bluez, &signed_config(dir.path(), &[&wearable], Table::new()));
    wearable.deliver(&bluez, &gateway, dir.path(), 1);
    assert!(bluez.discovery_starts() >= 1, "discovered to find it");
    gateway.wait_for_log("every signed sensor is connected; discovery stopped", WAIT);
    gateway.wait_for("discovery to stop", WAIT, || (!bluez.discovering()).then_some(()));
    wearable.deliver(&bluez, &gateway, dir.path(), 2);
    let state = dir.path().join("state");
    gateway.wait_for_counter(&state, "ble_passive_scan", 1);
    assert_eq!(gateway.stop(), 0);
}

/// A signed GATT sensor is connected and subscribed to; its notifications
/// arrive sensor-signed, are countersigned, and verify offline.
#[test]
fn signed_gatt_notifications_arrive_verified() {
    let bluez = Bluez::start();
    let wearable = Wearable::new("wearable-1", WEARABLE, 42);
    wearable.offer_service(&bluez);
    let dir = tempfile::tempdir().unwrap();
    let gateway = Gateway::start(&bluez, &signed_config(dir.path(), &[&wearable], Table::new()));
    for seq in 1..=3 {
        let record = wearable.deliver(&bluez, &gateway, dir.path(), seq);
        assert_eq!(record["authenticity"], "sensor-signed");
        assert_eq!(record["address"], WEARABLE);
        assert_eq!(measurement(&record, "temperature"), Some(temperature(seq)));
    }
    assert!(gateway.log().contains("subscribed to signed readings"));
    let state = dir.path().join("state");
    gateway.wait_for_counter(&state, "ble_notifications", 3);
    gateway.wait_for_counter(&state, "ble_connects", 1);
    assert_eq!(gateway.stop(), 0);

    let trust = trust_store(dir.path(), &["wearable-1"], "ward-7-gw");
    let uplink = dir.path().join("uplink.jsonl");
    let out = edgeward(&["verify", "--trust", trust.to_str().unwrap(), uplink.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("3 passed, 0 failed"), "{}", stderr(&out));
}

/// Failed connection attempts are retried with backoff until one succeeds,
/// and a lost link is reconnected and resubscribed.
#[test]
fn failed_and_lost_connections_are_retried() {
    let bluez = Bluez::start();
    let wearable = Wearable::new("wearable-1", WEARABLE, 43);
    wearable.offer_service(&bluez);
    bluez.fail_connects(WEARABLE, 2);
    let dir = tempfile::tempdir().unwrap();
    let gateway = Gateway::start(&bluez, &signed_config(dir.path(), &[&wearable], Table::new()));

    wearable.deliver(&bluez, &gateway, dir.path(), 1);
    assert!(bluez.connect_attempts(WEARABLE) >= 3, "two failures, then a connection");
    assert!(gateway.log().contains("le-connection-abort-by-local"), "{}", gateway.log());

    let attempts = bluez.connect_attempts(WEARABLE);
    assert!(bluez.drop_connection(WEARABLE));
    gateway.wait_for_log("BLE: connection lost: disconnected", WAIT);
    wearable.deliver(&bluez, &gateway, dir.path(), 2);
    assert!(bluez.connect_attempts(WEARABLE) > attempts, "reconnected");
    let state = dir.path().join("state");
    gateway.wait_for_counter(&state, "ble_connect_failures", 2);
    gateway.wait_for_counter(&state, "ble_disconnects", 1);
    // Two after the failures, one after the loss.
    gateway.wait_for_counter(&state, "ble_reconnect_attempts", 3);
    gateway.wait_for_counter(&state, "ble_connects", 2);
    assert_eq!(gateway.stop(), 0);
}

/// With `max-connections = 1`, a second signed sensor waits for the slot
/// and gets it when the first one's link drops.
#[test]
fn connections_are_bounded_per_adapter() {
    let bluez = Bluez::start();
    let wearables = [Wearable::new("wearable-1", WEARABLE, 44), Wearable::new("wearable-2", WEARABLE_2, 45)];
    for w in &wearables {
        w.offer_service(&bluez);
    }
    let dir = tempfile::tempdir().unwrap();
    let mut ble = Table::new();
    ble.insert("max-connections".into(), 1.into());
    let config = signed_config(dir.path(), &[&wearables[0], &wearables[1]], ble);
    let gateway = Gateway::start(&bluez, &config);

    // Both are in range; one gets the slot and delivers.
    let first = gateway.wait_for("one wearable upstream", WAIT, || {
        wearables.iter().find(|w| {
            w.send(&bluez, 1);
            w.upstream(dir.path(), 1).is_some()
        })
    });
    let second = wearables.iter().find(|w| w.name != first.name).unwrap();
    gateway.wait_for_log("all 1 connection slots are taken", WAIT);
    assert_eq!(bluez.connect_attempts(second.address), 0, "no second connection while the slot is taken");
    assert!(!second.send(&bluez, 1));

    assert!(bluez.drop_connection(first.address));
    second.deliver(&bluez, &gateway, dir.path(), 1);
    assert_eq!(gateway.stop(), 0);
}

/// When the adapter is unplugged, or powered off, the source waits and
/// recovers once it is back, without a gateway restart.
#[test]
fn adapter_removed_or_powered_off_then_back() {
    let bluez = Bluez::start();
    let dir = tempfile::tempdir().unwrap();
    let gateway = Gateway::start(&bluez, &bthome_config(dir.path(), ""));
    gateway.wait_for("discovery", START, || bluez.discovering().then_some(()));
    kitchen_reading(&bluez, &gateway, dir.path(), 1, 20.0);

    bluez.remove_adapter(ADAPTER);
    gateway.wait_for_log("no Bluetooth adapter hci0; waiting for it", WAIT);
    bluez.add_adapter(ADAPTER);
    kitchen_reading(&bluez, &gateway, dir.path(), 2, 20.5);
    assert!(gateway.log().contains("adapter available again"), "{}", gateway.log());

    bluez.set_powered(false);
    gateway.wait_for_log("hci0 is powered off; waiting for it", WAIT);
    bluez.set_powered(true);
    kitchen_reading(&bluez, &gateway, dir.path(), 3, 21.0);
    let state = dir.path().join("state");
    gateway.wait_for_counter(&state, "ble_adapter_lost", 2);
    gateway.wait_for_counter(&state, "ble_adapter_recovered", 2);
    assert_eq!(gateway.stop(), 0);
}

/// When BlueZ itself goes away and comes back (a restart: its D-Bus name
/// vanishes and is taken again), advertisements flow again.
#[test]
fn bluez_restart_is_survived() {
    let mut bluez = Bluez::start();
    let dir = tempfile::tempdir().unwrap();
    let gateway = Gateway::start(&bluez, &bthome_config(dir.path(), ""));
    gateway.wait_for("discovery", START, || bluez.discovering().then_some(()));
    kitchen_reading(&bluez, &gateway, dir.path(), 1, 19.0);

    bluez.restart();
    kitchen_reading(&bluez, &gateway, dir.path(), 2, 19.5);
    // Noticed while BlueZ was gone, or once a new one answered.
    let log = gateway.log();
    assert!(log.contains("BlueZ (org.bluez) is not running") || log.contains("was it restarted?"), "{log}");
    assert_eq!(gateway.stop(), 0);
}

/// With no advertisement for `watchdog-s`, discovery is restarted (logged),
/// and advertisements are heard afterwards.
#[test]
fn watchdog_restarts_silent_discovery() {
    let bluez = Bluez::start();
    let dir = tempfile::tempdir().unwrap();
    let gateway = Gateway::start(&bluez, &bthome_config(dir.path(), "watchdog-s = 1"));
    gateway.wait_for("two watchdog restarts", START, || (bluez.discovery_starts() >= 3).then_some(()));
    assert!(gateway.log().contains("BLE watchdog: no advertisement"), "{}", gateway.log());
    kitchen_reading(&bluez, &gateway, dir.path(), 1, 22.0);
    gateway.wait_for_counter(&dir.path().join("state"), "ble_watchdog_restarts", 2);
    assert_eq!(gateway.stop(), 0);
}

/// `edgeward scan --json` lists an advertising sensor with its address,
/// name, RSSI and decoded BTHome values.
#[test]
fn scan_lists_nearby_sensors_with_decoded_values() {
    let bluez = Bluez::start();
    let mut scan = std::process::Command::new(env!("CARGO_BIN_EXE_edgeward"))
        .args(["scan", "--adapter", ADAPTER, "--seconds", "4", "--json"])
        .env("DBUS_SYSTEM_BUS_ADDRESS", bluez.address())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let data = bthome_data(7, 23.5);
    let deadline = std::time::Instant::now() + WAIT;
    while scan.try_wait().unwrap().is_none() {
        assert!(std::time::Instant::now() < deadline, "scan did not end");
        bluez.advertise(KITCHEN, "kitchen-sensor", -61, &[(BTHOME, &data)]);
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = scan.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let line: Value = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["address"] == KITCHEN)
        .unwrap_or_else(|| panic!("kitchen not listed: {}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(line["name"], "kitchen-sensor");
    assert_eq!(line["rssi"], -61);
    let temperature =
        line["bthome"]["measurements"].as_array().unwrap().iter().find(|m| m["name"] == "temperature");
    assert_eq!(temperature.unwrap()["value"], 23.5);
    assert_eq!(line["bthome"]["packet_id"], 7);
}

/// An encrypted BTHome sensor with its bindkey: its advertisements arrive
/// MIC-verified under their counter; a wrong key, a plain advertisement
/// (downgrade) and a replayed counter are rejected.
#[test]
fn encrypted_bthome_with_bindkey() {
    const BINDKEY: [u8; 16] = [0x5a; 16];
    let mac = edgeward::config::parse_mac(KITCHEN).unwrap();
    let bluez = Bluez::start();
    let dir = tempfile::tempdir().unwrap();
    let config = bthome_config(dir.path(), "");
    let text = std::fs::read_to_string(&config).unwrap();
    let keyed = text.replace(
        "profile = \"rooms\"\n",
        &format!("profile = \"rooms\"\nbindkey = \"{}\"\n", hex::encode(BINDKEY)),
    );
    std::fs::write(&config, keyed).unwrap();
    let gateway = Gateway::start(&bluez, &config);
    gateway.wait_for("discovery", START, || bluez.discovering().then_some(()));

    let sealed = |key: &[u8; 16], counter: u32| {
        bthome::encode_encrypted(&[(0x01, 90.0), (0x02, 22.5)], None, key, mac, counter).unwrap()
    };
    let first = sealed(&BINDKEY, 1000);
    let record = gateway.wait_for("the encrypted reading upstream", WAIT, || {
        bluez.advertise(KITCHEN, "kitchen-sensor", -58, &[(BTHOME, &first)]);
        json_lines(&dir.path().join("uplink.jsonl")).into_iter().find(|r| r["seq"] == 1000)
    });
    assert_eq!(record["authenticity"], "mic-verified");
    assert_eq!(measurement(&record, "temperature"), Some(22.5));

    for (what, data, reason) in [
        ("a wrong key", sealed(&[0x11; 16], 1001), "mic mismatch"),
        ("a plain advertisement", bthome_data(7, 22.5), "downgrade"),
        ("the same counter again", first.clone(), "already accepted"),
    ] {
        gateway.wait_for(&format!("{what} rejected"), WAIT, || {
            bluez.advertise(KITCHEN, "kitchen-sensor", -58, &[(BTHOME, &data)]);
            gateway.log().contains(reason).then_some(())
        });
    }
    let accepted = json_lines(&dir.path().join("uplink.jsonl"));
    assert!(accepted.iter().all(|r| r["authenticity"] == "mic-verified"), "{accepted:?}");
    assert_eq!(accepted.len(), 1, "nothing but the one genuine reading: {accepted:?}");
    assert_eq!(gateway.stop(), 0);
}

//! A privacy rule: send upstream only what the cloud needs, as coarsely as
//! it needs it. A reading that leaves the home tells more than its values
//! (a precise temperature every minute shows when someone is in, a device
//! address and signal strength follow a person between homes), so this rule,
//! placed before the uplink:
//!
//! - keeps only the measurements on the allow-list (`allow`), dropping the
//!   message when none is left;
//! - rounds each kept value to a resolution (`round`, per measurement);
//! - forwards at most one reading per sensor every `min-interval-s`
//!   (rate limiting; the others are dropped, counted by the gateway);
//! - moves the reading's time down to the start of its `bucket-s` bucket;
//! - strips identifying fields (`strip`): `address`, `rssi`, `seq`,
//!   `sensor-time`.
//!
//! The upstream body is rebuilt as SenML-CBOR from what is left, so the
//! original values do not travel on inside it. This also replaces a
//! sensor's own signature (it covers the exact values): put `sign` (attest)
//! after this rule if upstream needs to know the gateway vouched for it.
//!
//! ```toml
//! [module.minimise]
//! wasm = "target/wasm32-wasip2/guest/edgeward_example_data_minimising.wasm"
//! capabilities = ["kv"]
//!
//! [module.minimise.config]
//! allow = ["temperature", "humidity"]
//! round = { temperature = 0.5, humidity = 5.0 }
//! min-interval-s = 900
//! bucket-s = 900
//! strip = ["address", "rssi", "seq", "sensor-time"]
//! ```

use edgeward_formats::senml;
use edgeward_sdk::{Envelope, Message, Outcome, Rule, kv};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};

/// A field of the reading that can be stripped.
#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum Field {
    /// The sensor's Bluetooth address (also left out of the SenML base name).
    Address,
    /// The received signal strength.
    Rssi,
    /// The sensor's packet or signature counter.
    Seq,
    /// The sensor's own timestamp.
    SensorTime,
}

/// The `[module.NAME.config]` table.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// The measurements that may leave; all others are removed.
    pub allow: Vec<String>,
    /// Measurement name → resolution to round to (e.g. `0.5`); others are kept as they are.
    #[serde(default)]
    pub round: BTreeMap<String, f64>,
    /// Forward at most one reading per sensor this often, in seconds (0: no limit).
    #[serde(default)]
    pub min_interval_s: u64,
    /// Round the reading's time down to a multiple of this many seconds (0: keep it).
    #[serde(default)]
    pub bucket_s: u64,
    /// Fields to remove from the reading.
    #[serde(default)]
    pub strip: BTreeSet<Field>,
}

/// The rule.
pub struct DataMinimising {
    config: Config,
}

impl Rule for DataMinimising {
    type Config = Config;

    fn new(config: Config) -> Result<Self, String> {
        if config.allow.is_empty() {
            return Err("`allow` is empty: nothing would ever leave (list the measurements that may)".into());
        }
        if let Some((name, r)) = config.round.iter().find(|(_, r)| !(r.is_finite() && **r > 0.0)) {
            return Err(format!("`round.{name}` must be a positive resolution, not {r}"));
        }
        Ok(DataMinimising { config })
    }

    fn process(&mut self, mut msg: Message) -> Result<Outcome, String> {
        let c = &self.config;
        let reading = msg.reading_mut();
        reading.retain_measurements(|m| c.allow.contains(&m.name));
        if reading.measurements.is_empty() {
            return Ok(Outcome::drop("no allowed measurement"));
        }

        if c.min_interval_s > 0 {
            let key = format!("last/{}", reading.sensor);
            let last: Option<u64> = kv::get_json(&key);
            if last.is_some_and(|last| reading.received_ms < last + c.min_interval_s * 1000) {
                return Ok(Outcome::drop("rate-limited"));
            }
            kv::set_json(&key, &reading.received_ms);
        }

        for m in &mut reading.measurements {
            if let Some(resolution) = c.round.get(&m.name) {
                m.value = round_to(m.value, *resolution);
            }
        }
        if c.bucket_s > 0 {
            let bucket_ms = c.bucket_s * 1000;
            reading.received_ms -= reading.received_ms % bucket_ms;
        }
        for field in &c.strip {
            match field {
                Field::Address => reading.address.clear(),
                Field::Rssi => reading.rssi = None,
                Field::Seq => reading.seq = None,
                Field::SensorTime => reading.sensor_time_ms = None,
            }
        }

        let records: Vec<senml::Measurement> = reading
            .measurements
            .iter()
            .map(|m| senml::Measurement { name: m.name.clone(), unit: m.unit.clone(), value: m.value })
            .collect();
        let body = if reading.address.is_empty() {
            senml::encode_with_base_name(None, reading.received_ms, &records)
        } else {
            senml::encode(&reading.address, reading.received_ms, &records)
        };
        msg.set_envelope(Envelope { content_type: senml::CONTENT_TYPE.to_string(), body });
        Ok(Outcome::forward(msg))
    }
}

/// `value` rounded to the nearest multiple of `resolution`, without the
/// binary noise of the multiplication (0.1 * 3 = 0.30000000000000004).
fn round_to(value: f64, resolution: f64) -> f64 {
    let rounded = (value / resolution).round() * resolution;
    // Keep as many decimals as the resolution has, at most 9.
    let decimals = (0..10).find(|d| (resolution * 10f64.powi(*d)).fract().abs() < 1e-9).unwrap_or(9);
    let scale = 10f64.powi(decimals);
    (rounded * scale).round() / scale
}

edgeward_sdk::export_rule!(DataMinimising);

#[cfg(test)]
mod tests {
    use super::*;
    use edgeward_sdk::{Envelope, Measurement, Reading, Verdict, testing};

    const CONFIG: &str = r#"{
        "allow": ["temperature", "humidity"],
        "round": {"temperature": 0.5, "humidity": 5},
        "min-interval-s": 900,
        "bucket-s": 900,
        "strip": ["address", "rssi", "seq"]
    }"#;

    fn rule(config: &str) -> DataMinimising {
        testing::reset();
        testing::init(config).unwrap()
    }

    fn reading(sensor: &str, at_s: u64) -> Message {
        let mut reading = Reading::new(
            sensor,
            at_s * 1000,
            vec![
                Measurement::new("battery", "%EL", 87.0),
                Measurement::new("temperature", "Cel", 21.37),
                Measurement::new("humidity", "%RH", 47.9),
            ],
        );
        reading.address = "A4:C1:38:00:00:01".into();
        reading.rssi = Some(-61);
        reading.seq = Some(7);
        Message::from_reading(reading)
            .with_envelope(Envelope { content_type: senml::CONTENT_TYPE.into(), body: vec![0x80] })
    }

    fn forwarded(outcome: Outcome) -> Message {
        match outcome.verdict {
            Verdict::Forward(msg) => msg,
            Verdict::Drop(reason) => panic!("dropped: {reason}"),
        }
    }

    /// Only allowed measurements leave, rounded, bucketed and without identifying fields.
    #[test]
    fn minimises_a_reading() {
        let mut r = rule(CONFIG);
        let msg = forwarded(r.process(reading("kitchen", 1_000)).unwrap());
        let reading = msg.reading();
        let values: Vec<(&str, f64)> =
            reading.measurements.iter().map(|m| (m.name.as_str(), m.value)).collect();
        assert_eq!(values, [("temperature", 21.5), ("humidity", 50.0)]);
        assert_eq!(reading.received_ms, 900_000);
        assert_eq!((reading.address.as_str(), reading.rssi, reading.seq), ("", None, None));

        // The body says exactly the same, and nothing more.
        let pack = senml::decode(&msg.envelope().body).unwrap();
        assert_eq!(pack.base_name, None);
        assert_eq!(pack.base_time_ms, Some(900_000));
        let body: Vec<(&str, f64)> = pack.measurements.iter().map(|m| (m.name.as_str(), m.value)).collect();
        assert_eq!(body, values);
    }

    /// At most one reading per sensor per interval; sensors are limited apart.
    #[test]
    fn rate_limits_per_sensor() {
        let mut r = rule(CONFIG);
        let mut verdicts = Vec::new();
        for at_s in [0, 300, 899, 900, 1_000, 1_800] {
            for sensor in ["a", "b"] {
                let forwarded =
                    matches!(r.process(reading(sensor, at_s)).unwrap().verdict, Verdict::Forward(_));
                verdicts.push((sensor, at_s, forwarded));
            }
        }
        let passed: Vec<(&str, u64)> = verdicts.iter().filter(|v| v.2).map(|v| (v.0, v.1)).collect();
        assert_eq!(passed, [("a", 0), ("b", 0), ("a", 900), ("b", 900), ("a", 1_800), ("b", 1_800)]);
    }

    /// A reading with nothing allowed is dropped, saying why.
    #[test]
    fn drops_what_has_nothing_allowed() {
        let mut r = rule(r#"{"allow": ["co2"]}"#);
        let outcome = r.process(reading("a", 0)).unwrap();
        assert_eq!(outcome.verdict, Verdict::Drop("no allowed measurement".into()));
    }

    /// Without `strip = ["address"]` the body keeps the device's base name.
    #[test]
    fn keeps_address_unless_stripped() {
        let mut r = rule(r#"{"allow": ["temperature"]}"#);
        let msg = forwarded(r.process(reading("a", 1)).unwrap());
        let pack = senml::decode(&msg.envelope().body).unwrap();
        assert_eq!(pack.base_name.as_deref(), Some("urn:dev:mac:a4c138000001:"));
        assert_eq!(pack.measurements[0].value, 21.37);
        assert_eq!(msg.received_ms(), 1_000);
    }

    /// Rounding lands on the resolution's own decimals.
    #[test]
    fn rounds_cleanly() {
        assert_eq!(round_to(0.3000001, 0.1), 0.3);
        assert_eq!(round_to(21.37, 0.5), 21.5);
        assert_eq!(round_to(47.9, 5.0), 50.0);
        assert_eq!(round_to(-3.26, 0.25), -3.25);
    }

    /// An empty allow-list and a zero resolution are refused.
    #[test]
    fn refuses_bad_config() {
        testing::reset();
        assert!(testing::init::<DataMinimising>(r#"{"allow": []}"#).err().unwrap().contains("`allow`"));
        let err = testing::init::<DataMinimising>(r#"{"allow": ["t"], "round": {"t": 0}}"#).err().unwrap();
        assert!(err.contains("`round.t`"), "{err}");
        let err = testing::init::<DataMinimising>(r#"{"allow": ["t"], "strip": ["name"]}"#).err().unwrap();
        assert!(err.contains("unknown variant"), "{err}");
    }
}

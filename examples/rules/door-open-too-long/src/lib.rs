//! Alarm when a door (or window, or any binary sensor) stays open longer
//! than `open-for-s`. BTHome sensors report their state as a unitless
//! measurement, 1 for open and 0 for closed, named `door`, `opening`,
//! `window`, `garage_door` ... (see `sdk/formats/src/bthome.rs`). A sensor
//! that stays open usually goes quiet rather than repeating itself, so the
//! alarm is raised from `tick` (the profile's `tick-interval-s`) as well as
//! from the next reading; it is cleared by a reading that says closed. Which
//! doors are open, since when, is kept in `kv`. Messages are forwarded
//! unchanged.
//!
//! ```toml
//! [module.door-open]
//! wasm = "target/wasm32-wasip2/guest/edgeward_example_door_open_too_long.wasm"
//! capabilities = ["kv"]
//! config = { open-for-s = 300 }
//! ```

use edgeward_sdk::{Alarm, AlarmState, Effects, Message, Outcome, Rule, Severity, kv};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The `[module.NAME.config]` table.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// How long a door may stay open before the alarm, in seconds.
    pub open_for_s: u64,
    /// The binary measurements that mean "open" (default `door`, `opening`, `window`, `garage_door`).
    #[serde(default = "openings")]
    pub measurements: Vec<String>,
    /// Alarm code (default `open-too-long`).
    #[serde(default = "default_code")]
    pub code: String,
    /// `info`, `warning` (default) or `critical`.
    #[serde(default = "warning")]
    pub severity: Severity,
}

fn openings() -> Vec<String> {
    ["door", "opening", "window", "garage_door"].map(String::from).to_vec()
}
fn default_code() -> String {
    "open-too-long".into()
}
fn warning() -> Severity {
    Severity::Warning
}

/// An open door, in kv under [`OPEN_KEY`].
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq)]
struct Open {
    /// When it was first seen open (the gateway's ms).
    since_ms: u64,
    raised: bool,
}

/// One kv entry for all open doors, so `tick` can find them.
const OPEN_KEY: &str = "open";

/// The rule.
pub struct DoorOpenTooLong {
    config: Config,
}

impl Rule for DoorOpenTooLong {
    type Config = Config;

    fn new(config: Config) -> Result<Self, String> {
        if config.open_for_s == 0 {
            return Err("`open-for-s` must be at least 1".into());
        }
        if config.measurements.is_empty() {
            return Err("`measurements` must name at least one binary measurement".into());
        }
        Ok(DoorOpenTooLong { config })
    }

    fn process(&mut self, msg: Message) -> Result<Outcome, String> {
        let Some(open) = self.config.measurements.iter().find_map(|name| msg.flag(name)) else {
            return Ok(Outcome::forward(msg));
        };
        let mut doors = load();
        let (sensor, received_ms) = (msg.sensor().to_string(), msg.received_ms());
        let mut effects = Effects::none();
        match (open, doors.get(&sensor).copied()) {
            (true, None) => {
                doors.insert(sensor, Open { since_ms: received_ms, raised: false });
            }
            (true, Some(_)) => effects = self.check(&mut doors, received_ms),
            (false, None) => {}
            (false, Some(was)) => {
                doors.remove(&sensor);
                if was.raised {
                    let open_s = received_ms.saturating_sub(was.since_ms) / 1000;
                    let text = format!("{sensor} closed after {open_s} s open");
                    effects = effects.with_alarm(self.alarm(AlarmState::Cleared, &sensor, text));
                }
            }
        }
        save(&doors);
        Ok(Outcome::forward(msg).with_effects(effects))
    }

    fn tick(&mut self, now_ms: u64) -> Result<Effects, String> {
        let mut doors = load();
        let effects = self.check(&mut doors, now_ms);
        if !effects.is_empty() {
            save(&doors);
        }
        Ok(effects)
    }
}

impl DoorOpenTooLong {
    /// Raise the alarm for every door open too long at `now_ms` and not yet raised.
    fn check(&self, doors: &mut BTreeMap<String, Open>, now_ms: u64) -> Effects {
        let limit_ms = self.config.open_for_s * 1000;
        let mut effects = Effects::none();
        for (sensor, open) in doors.iter_mut() {
            if !open.raised && now_ms.saturating_sub(open.since_ms) >= limit_ms {
                open.raised = true;
                edgeward_sdk::info!("{sensor} open since {} ms", open.since_ms);
                let text = format!("{sensor} open for more than {} s", self.config.open_for_s);
                effects = effects.with_alarm(self.alarm(AlarmState::Raised, sensor, text));
            }
        }
        effects
    }

    fn alarm(&self, state: AlarmState, sensor: &str, text: String) -> Alarm {
        Alarm { state, ..Alarm::raised(sensor, &self.config.code, self.config.severity, text) }
    }
}

fn load() -> BTreeMap<String, Open> {
    kv::get_json(OPEN_KEY).unwrap_or_default()
}

fn save(doors: &BTreeMap<String, Open>) {
    if doors.is_empty() { kv::delete(OPEN_KEY) } else { kv::set_json(OPEN_KEY, doors) }
}

edgeward_sdk::export_rule!(DoorOpenTooLong);

#[cfg(test)]
mod tests {
    use super::*;
    use edgeward_sdk::{Level, Measurement, Reading, testing};

    fn rule(config: &str) -> DoorOpenTooLong {
        testing::reset();
        testing::init(config).unwrap()
    }

    fn door(rule: &mut DoorOpenTooLong, sensor: &str, name: &str, at_s: u64, open: bool) -> Vec<Alarm> {
        let value = if open { 1.0 } else { 0.0 };
        let reading = Reading::new(sensor, at_s * 1000, vec![Measurement::new(name, "", value)]);
        rule.process(Message::from_reading(reading)).unwrap().effects.alarms
    }

    fn states(alarms: &[Alarm]) -> Vec<(String, AlarmState)> {
        alarms.iter().map(|a| (a.sensor.clone(), a.state)).collect()
    }

    /// A door left open is noticed by `tick` without any further reading, and cleared when closed.
    #[test]
    fn tick_notices_a_silent_open_door() {
        let mut r = rule(r#"{"open-for-s": 300}"#);
        assert!(door(&mut r, "front", "door", 1_000, true).is_empty());
        assert!(r.tick(1_299_000).unwrap().is_empty(), "not yet");
        let raised = r.tick(1_300_000).unwrap().alarms;
        assert_eq!(states(&raised), [("front".into(), AlarmState::Raised)]);
        assert_eq!(raised[0].code, "open-too-long");
        assert_eq!(testing::logs(), [(Level::Info, "front open since 1000000 ms".to_string())]);
        assert!(r.tick(1_400_000).unwrap().is_empty(), "raised once");
        let cleared = door(&mut r, "front", "door", 1_500, false);
        assert_eq!(states(&cleared), [("front".into(), AlarmState::Cleared)]);
        assert!(cleared[0].text.contains("500 s"), "{}", cleared[0].text);
        assert!(testing::kv_entries().is_empty(), "nothing open, nothing kept");
    }

    /// Closing in time raises nothing; repeated "open" readings keep the first time.
    #[test]
    fn closed_in_time_is_quiet() {
        let mut r = rule(r#"{"open-for-s": 60}"#);
        assert!(door(&mut r, "back", "opening", 0, true).is_empty());
        assert!(door(&mut r, "back", "opening", 30, true).is_empty());
        assert!(door(&mut r, "back", "opening", 50, false).is_empty());
        assert!(r.tick(200_000).unwrap().is_empty());
        // Open again later: the clock starts anew, and a reading can raise too.
        assert!(door(&mut r, "back", "opening", 300, true).is_empty());
        let raised = door(&mut r, "back", "opening", 360, true);
        assert_eq!(states(&raised), [("back".into(), AlarmState::Raised)]);
    }

    /// Other measurements, and binary sensors not configured, pass untouched.
    #[test]
    fn only_configured_measurements_count() {
        let mut r = rule(r#"{"open-for-s": 1, "measurements": ["window"], "severity": "critical"}"#);
        assert!(door(&mut r, "hall", "door", 0, true).is_empty());
        assert!(door(&mut r, "hall", "motion", 0, true).is_empty());
        assert!(r.tick(10_000).unwrap().is_empty());
        assert!(door(&mut r, "bath", "window", 0, true).is_empty());
        let raised = r.tick(10_000).unwrap().alarms;
        assert_eq!(states(&raised), [("bath".into(), AlarmState::Raised)]);
        assert_eq!(raised[0].severity, Severity::Critical);
    }

    /// A zero limit is refused.
    #[test]
    fn refuses_zero_limit() {
        testing::reset();
        let err = testing::init::<DoorOpenTooLong>(r#"{"open-for-s": 0}"#).err().unwrap();
        assert!(err.contains("`open-for-s`"), "{err}");
    }
}

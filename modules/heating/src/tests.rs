//! Unit tests, natively against the SDK's in-memory host.

use super::*;
use config::{local_minute_of_day, parse_time_of_day};
use edgeward_sdk::{AlarmState, Measurement, Reading, Verdict, testing};
use serde_json::{Value, json};

/// 2024-01-01T00:00:00Z.
const DAY: u64 = 1_704_067_200_000;
const MIN: u64 = 60_000;
const SEC: u64 = 1_000;

/// Gateway time `h:m` UTC on the test day.
fn at(h: u64, m: u64) -> u64 {
    DAY + (h * 60 + m) * MIN
}

/// A fresh host and a rule from `config` (JSON).
fn rule(config: Value) -> Thermostat {
    testing::reset();
    testing::init::<Thermostat>(&config.to_string()).expect("valid config")
}

/// One zone "living" on sensor "t1", actuator "heat/living", plus `extra` keys.
fn one_zone(extra: Value) -> Value {
    let mut zone = json!({ "name": "living", "sensors": ["t1"], "actuator": "heat/living" });
    if let (Some(zone), Some(extra)) = (zone.as_object_mut(), extra.as_object()) {
        zone.extend(extra.clone());
    }
    json!({ "zone": [zone] })
}

fn temp_msg(sensor: &str, received_ms: u64, celsius: f64) -> Message {
    Message::from_reading(Reading::new(
        sensor,
        received_ms,
        vec![Measurement::new("temperature", "Cel", celsius)],
    ))
}

/// Process a reading, check it was forwarded unchanged, return the effects.
fn feed(rule: &mut Thermostat, sensor: &str, received_ms: u64, celsius: f64) -> Effects {
    let msg = temp_msg(sensor, received_ms, celsius);
    let outcome = rule.process(msg.clone()).expect("process never fails");
    // Compared through Debug: a NaN reading is not equal to itself.
    assert_eq!(
        format!("{:?}", outcome.verdict),
        format!("{:?}", Verdict::Forward(msg)),
        "the message is always forwarded"
    );
    outcome.effects
}

fn tick(rule: &mut Thermostat, now_ms: u64) -> Effects {
    rule.tick(now_ms).expect("tick never fails")
}

/// The commands as `(actuator, payload JSON)`.
fn commands(fx: &Effects) -> Vec<(String, Value)> {
    fx.commands
        .iter()
        .map(|c| (c.actuator.clone(), serde_json::from_str(&c.payload).expect("JSON payload")))
        .collect()
}

/// The single command's state, panicking unless there is exactly one.
fn only_state(fx: &Effects) -> String {
    let cmds = commands(fx);
    assert_eq!(cmds.len(), 1, "expected exactly one command, got {cmds:?}");
    cmds[0].1["state"].as_str().expect("state").to_string()
}

fn config_error(config: Value) -> String {
    testing::reset();
    match testing::init::<Thermostat>(&config.to_string()) {
        Ok(_) => panic!("config {config} was accepted"),
        Err(e) => e,
    }
}

/// The first reading of a zone commands a state with the documented payload.
#[test]
fn first_reading_emits_command() {
    let mut r = rule(one_zone(json!({})));
    let fx = feed(&mut r, "t1", at(12, 0), 19.6);
    assert_eq!(
        commands(&fx),
        vec![(
            "heat/living".to_string(),
            json!({"state":"on","zone":"living","setpoint":20.0,"temperature":19.6,"reason":"below setpoint"})
        )]
    );
    assert!(fx.alarms.is_empty());
}

/// Even inside the band, the first decision commands a state so the actuator's state is known.
#[test]
fn first_reading_inside_band_still_commands() {
    let mut r = rule(one_zone(json!({})));
    assert_eq!(only_state(&feed(&mut r, "t1", at(12, 0), 20.1)), "off");
    let mut r = rule(one_zone(json!({})));
    assert_eq!(only_state(&feed(&mut r, "t1", at(12, 0), 19.9)), "on");
}

/// On below the band, nothing inside it, off above it, and never a repeated command.
#[test]
fn hysteresis_band_switches_only_outside() {
    let mut r = rule(one_zone(json!({ "setpoint": 20.0, "hysteresis": 1.0 })));
    let mut t = at(12, 0);
    let mut next = || {
        t += MIN;
        t
    };
    assert_eq!(only_state(&feed(&mut r, "t1", next(), 19.4)), "on");
    assert!(feed(&mut r, "t1", next(), 19.0).is_empty(), "already on: no repeat");
    assert!(feed(&mut r, "t1", next(), 20.4).is_empty(), "inside band keeps on");
    assert!(feed(&mut r, "t1", next(), 20.5).is_empty(), "band edge keeps on");
    let fx = feed(&mut r, "t1", next(), 20.6);
    assert_eq!(only_state(&fx), "off");
    assert_eq!(commands(&fx)[0].1["reason"], "above setpoint");
    assert!(feed(&mut r, "t1", next(), 21.0).is_empty(), "already off: no repeat");
    assert!(feed(&mut r, "t1", next(), 19.6).is_empty(), "inside band keeps off");
    assert!(tick(&mut r, next()).is_empty(), "tick inside band changes nothing");
    assert_eq!(only_state(&feed(&mut r, "t1", next(), 19.4)), "on");
}

/// A zero hysteresis switches on either side of the setpoint.
#[test]
fn zero_hysteresis_switches_at_setpoint() {
    let mut r = rule(one_zone(json!({ "hysteresis": 0.0 })));
    assert_eq!(only_state(&feed(&mut r, "t1", at(1, 0), 19.99)), "on");
    assert!(feed(&mut r, "t1", at(1, 1), 20.0).is_empty());
    assert_eq!(only_state(&feed(&mut r, "t1", at(1, 2), 20.01)), "off");
}

/// Min-on holds back a switch-off; the first tick after it has passed performs it, once.
#[test]
fn min_on_delays_switch_off_until_tick() {
    let mut r = rule(one_zone(json!({ "min-on-s": 300 })));
    let t0 = at(8, 0);
    assert_eq!(only_state(&feed(&mut r, "t1", t0, 18.0)), "on");
    assert!(feed(&mut r, "t1", t0 + 60 * SEC, 22.0).is_empty(), "held back by min-on");
    assert!(tick(&mut r, t0 + 299 * SEC).is_empty(), "still held back");
    let fx = tick(&mut r, t0 + 300 * SEC);
    assert_eq!(only_state(&fx), "off");
    assert_eq!(commands(&fx)[0].1["temperature"], 22.0);
    assert!(tick(&mut r, t0 + 330 * SEC).is_empty(), "performed once");
    assert!(feed(&mut r, "t1", t0 + 340 * SEC, 22.0).is_empty());
}

/// Min-off holds back a switch-on; a reading after it has passed performs it.
#[test]
fn min_off_delays_switch_on_until_reading() {
    let mut r = rule(one_zone(json!({ "min-off-s": 120 })));
    let t0 = at(8, 0);
    assert_eq!(only_state(&feed(&mut r, "t1", t0, 22.0)), "off");
    assert!(feed(&mut r, "t1", t0 + 30 * SEC, 18.0).is_empty());
    assert!(feed(&mut r, "t1", t0 + 119 * SEC, 18.0).is_empty());
    assert_eq!(only_state(&feed(&mut r, "t1", t0 + 120 * SEC, 18.0)), "on");
    assert!(tick(&mut r, t0 + 121 * SEC).is_empty());
}

/// A held-back switch that is no longer wanted when the minimum passes does not happen.
#[test]
fn held_back_switch_is_dropped_when_no_longer_wanted() {
    let mut r = rule(one_zone(json!({ "min-on-s": 300 })));
    let t0 = at(8, 0);
    assert_eq!(only_state(&feed(&mut r, "t1", t0, 18.0)), "on");
    assert!(feed(&mut r, "t1", t0 + 60 * SEC, 22.0).is_empty());
    assert!(feed(&mut r, "t1", t0 + 120 * SEC, 20.0).is_empty(), "back inside the band");
    assert!(tick(&mut r, t0 + 400 * SEC).is_empty(), "inside the band: stays on");
}

/// The schedule applies the latest entry at or before the local time, wrapping past midnight.
#[test]
fn schedule_picks_setpoint_with_wrap() {
    let config = |offset: i32| {
        let mut c = one_zone(json!({
            "setpoint": 5.0,
            "schedule": [ { "at": "22:00", "setpoint": 17.0 }, { "at": "06:30", "setpoint": 21.0 } ],
        }));
        c["utc-offset-minutes"] = json!(offset);
        c
    };
    let setpoint_at = |offset: i32, now_ms: u64| {
        let mut r = rule(config(offset));
        commands(&feed(&mut r, "t1", now_ms, 19.0))[0].1["setpoint"].as_f64().expect("setpoint")
    };
    assert_eq!(setpoint_at(0, at(0, 10)), 17.0, "before the first entry: yesterday's last");
    assert_eq!(setpoint_at(0, at(6, 29)), 17.0);
    assert_eq!(setpoint_at(0, at(6, 30)), 21.0, "an entry applies from its own minute");
    assert_eq!(setpoint_at(0, at(21, 59)), 21.0);
    assert_eq!(setpoint_at(0, at(22, 0)), 17.0);
    assert_eq!(setpoint_at(60, at(5, 45)), 21.0, "UTC 05:45 is 06:45 at +60");
    assert_eq!(setpoint_at(60, at(21, 15)), 17.0, "UTC 21:15 is 22:15 at +60");
    assert_eq!(setpoint_at(-120, at(1, 0)), 17.0, "UTC 01:00 is 23:00 the day before at -120");
    assert_eq!(setpoint_at(-120, at(8, 45)), 21.0, "UTC 08:45 is 06:45 at -120");
}

/// Without a schedule the zone's `setpoint` applies all day.
#[test]
fn no_schedule_uses_setpoint() {
    let mut r = rule(one_zone(json!({ "setpoint": 18.5 })));
    assert_eq!(commands(&feed(&mut r, "t1", at(3, 0), 18.0))[0].1["setpoint"], 18.5);
}

/// A schedule change takes effect at the next tick, with the last known temperature.
#[test]
fn tick_applies_schedule_change() {
    let mut r = rule(one_zone(json!({
        "schedule": [ { "at": "06:30", "setpoint": 21.0 }, { "at": "22:00", "setpoint": 17.0 } ],
    })));
    assert_eq!(only_state(&feed(&mut r, "t1", at(6, 20), 19.0)), "off");
    assert!(tick(&mut r, at(6, 29)).is_empty());
    let fx = tick(&mut r, at(6, 30));
    assert_eq!(only_state(&fx), "on");
    assert_eq!(commands(&fx)[0].1["setpoint"], 21.0);
}

/// The helpers behind the schedule: time parsing and the local minute of the day.
#[test]
fn time_of_day_helpers() {
    assert_eq!(parse_time_of_day("00:00"), Some(0));
    assert_eq!(parse_time_of_day("06:30"), Some(390));
    assert_eq!(parse_time_of_day("23:59"), Some(1439));
    for bad in ["24:00", "12:60", "6:30", "06:3", "0630", "", "ab:cd", "+1:30", "06:30:00"] {
        assert_eq!(parse_time_of_day(bad), None, "{bad:?}");
    }
    assert_eq!(local_minute_of_day(at(0, 30), -60), 23 * 60 + 30);
    assert_eq!(local_minute_of_day(at(23, 30), 60), 30);
    assert_eq!(local_minute_of_day(0, -840), 1440 - 840);
    assert!(local_minute_of_day(u64::MAX, 840) < 1440);
}

/// Stale readings: the failsafe is commanded once with an alarm; a reading clears it and control resumes.
#[test]
fn failsafe_on_stale_and_resume() {
    let mut r = rule(one_zone(json!({ "stale-after-s": 600, "failsafe": "off" })));
    let t0 = at(10, 0);
    assert_eq!(only_state(&feed(&mut r, "t1", t0, 18.0)), "on");
    assert!(tick(&mut r, t0 + 300 * SEC).is_empty());
    assert!(tick(&mut r, t0 + 600 * SEC).is_empty(), "exactly stale-after-s old is not yet stale");

    let fx = tick(&mut r, t0 + 601 * SEC);
    let cmds = commands(&fx);
    assert_eq!(cmds.len(), 1);
    assert_eq!(cmds[0].1["state"], "off");
    assert_eq!(cmds[0].1["temperature"], Value::Null);
    assert_eq!(cmds[0].1["reason"], "failsafe: no reading for 600 s");
    assert_eq!(fx.alarms.len(), 1);
    let alarm = &fx.alarms[0];
    assert_eq!(
        (alarm.sensor.as_str(), alarm.code.as_str(), alarm.severity, alarm.state),
        ("t1", FAILSAFE_ALARM, Severity::Warning, AlarmState::Raised)
    );
    assert!(tick(&mut r, t0 + 700 * SEC).is_empty(), "failsafe only once");
    assert!(tick(&mut r, t0 + 5000 * SEC).is_empty(), "failsafe only once");

    let fx = feed(&mut r, "t1", t0 + 5100 * SEC, 18.0);
    assert_eq!(fx.alarms.len(), 1);
    assert_eq!((fx.alarms[0].code.as_str(), fx.alarms[0].state), (FAILSAFE_ALARM, AlarmState::Cleared));
    assert_eq!(only_state(&fx), "on", "normal control resumes");
    assert!(tick(&mut r, t0 + 5200 * SEC).is_empty());
    assert!(feed(&mut r, "t1", t0 + 5300 * SEC, 18.0).is_empty(), "alarm cleared only once");
}

/// The failsafe ignores minimum times, and minimum times apply again after it.
#[test]
fn failsafe_ignores_min_times() {
    let mut r =
        rule(one_zone(json!({ "stale-after-s": 60, "failsafe": "on", "min-off-s": 3600, "min-on-s": 3600 })));
    let t0 = at(10, 0);
    assert_eq!(only_state(&feed(&mut r, "t1", t0, 25.0)), "off");
    let fx = tick(&mut r, t0 + 61 * SEC);
    assert_eq!(only_state(&fx), "on", "failsafe despite min-off");
    assert_eq!(fx.alarms.len(), 1);
    let fx = feed(&mut r, "t1", t0 + 120 * SEC, 25.0);
    assert_eq!(fx.alarms.len(), 1);
    assert!(fx.commands.is_empty(), "min-on counts from the failsafe switch");
    // Readings keep the zone fresh; the switch happens once min-on has passed.
    assert!(feed(&mut r, "t1", t0 + 61 * SEC + 3599 * SEC, 25.0).is_empty());
    assert_eq!(only_state(&feed(&mut r, "t1", t0 + 61 * SEC + 3600 * SEC, 25.0)), "off");
}

/// A zone that never gets a reading goes to failsafe counting from the first tick.
#[test]
fn failsafe_without_any_reading() {
    let mut r = rule(one_zone(json!({ "stale-after-s": 60 })));
    assert!(tick(&mut r, at(10, 0)).is_empty(), "first tick starts the count");
    assert!(tick(&mut r, at(10, 1)).is_empty());
    let fx = tick(&mut r, at(10, 1) + SEC);
    assert_eq!(only_state(&fx), "off");
    assert_eq!(fx.alarms.len(), 1);
}

/// The failsafe command is sent even when the actuator should already be in that state.
#[test]
fn failsafe_reasserts_same_state() {
    let mut r = rule(one_zone(json!({ "stale-after-s": 60, "min-off-s": 300 })));
    let t0 = at(10, 0);
    assert_eq!(only_state(&feed(&mut r, "t1", t0, 25.0)), "off");
    let fx = tick(&mut r, t0 + 61 * SEC);
    assert_eq!(only_state(&fx), "off");
    // Re-asserting "off" is not a switch: min-off still counts from t0.
    assert_eq!(only_state(&feed(&mut r, "t1", t0 + 300 * SEC, 10.0)), "on");
}

/// Commanded state survives a recycle: the new instance does not repeat the command, and min times still hold.
#[test]
fn state_survives_recycle() {
    let config = one_zone(json!({ "min-on-s": 600 }));
    let mut r = rule(config.clone());
    let t0 = at(10, 0);
    assert_eq!(only_state(&feed(&mut r, "t1", t0, 18.0)), "on");
    let stored = testing::kv_entries();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].0, "zone/living");
    let stored: Value = serde_json::from_slice(&stored[0].1).expect("JSON state");
    assert_eq!(stored, json!({"actuator":"heat/living","state":"on","switched_ms":t0,"failsafe":false}));

    // The gateway replaces the instance: same thread, same kv.
    let mut r = testing::init::<Thermostat>(&config.to_string()).expect("valid config");
    assert!(feed(&mut r, "t1", t0 + 60 * SEC, 18.0).is_empty(), "no duplicate command");
    assert!(feed(&mut r, "t1", t0 + 120 * SEC, 25.0).is_empty(), "min-on survives the recycle");
    assert_eq!(only_state(&tick(&mut r, t0 + 600 * SEC)), "off");
}

/// A failsafe survives a recycle: no second alarm, and the next reading clears it.
#[test]
fn failsafe_survives_recycle() {
    let config = one_zone(json!({ "stale-after-s": 60 }));
    let mut r = rule(config.clone());
    let t0 = at(10, 0);
    feed(&mut r, "t1", t0, 18.0);
    assert_eq!(tick(&mut r, t0 + 61 * SEC).alarms.len(), 1);

    let mut r = testing::init::<Thermostat>(&config.to_string()).expect("valid config");
    assert!(tick(&mut r, t0 + 100 * SEC).is_empty(), "staleness counts afresh");
    assert!(tick(&mut r, t0 + 200 * SEC).is_empty(), "already in failsafe: nothing repeated");
    let fx = feed(&mut r, "t1", t0 + 300 * SEC, 18.0);
    assert_eq!(fx.alarms.len(), 1);
    assert_eq!(fx.alarms[0].state, AlarmState::Cleared);
    assert_eq!(only_state(&fx), "on");
}

/// State stored for another actuator is ignored, so the new actuator gets a first command.
#[test]
fn stored_state_for_other_actuator_is_ignored() {
    let mut r = rule(one_zone(json!({})));
    assert_eq!(only_state(&feed(&mut r, "t1", at(10, 0), 18.0)), "on");
    let mut config = one_zone(json!({}));
    config["zone"][0]["actuator"] = json!("heat/other");
    let mut r = testing::init::<Thermostat>(&config.to_string()).expect("valid config");
    let fx = feed(&mut r, "t1", at(10, 1), 18.0);
    assert_eq!(commands(&fx)[0].0, "heat/other");
}

/// kv is written on transitions only, never for readings that change nothing.
#[test]
fn kv_written_only_on_transitions() {
    let mut r = rule(one_zone(json!({})));
    assert_eq!(only_state(&feed(&mut r, "t1", at(10, 0), 18.0)), "on");
    kv::delete("zone/living");
    for i in 1..20 {
        feed(&mut r, "t1", at(10, i), 19.0 + 0.05 * i as f64);
        tick(&mut r, at(10, i) + SEC);
    }
    assert!(testing::kv_entries().is_empty(), "no write without a transition");
    feed(&mut r, "t1", at(11, 0), 22.0);
    assert_eq!(testing::kv_entries().len(), 1, "a switch is written");
}

/// Readings of other sensors, without a Celsius temperature or with non-finite values change nothing.
#[test]
fn irrelevant_readings_change_nothing() {
    let mut r = rule(one_zone(json!({ "stale-after-s": 60 })));
    let t0 = at(10, 0);
    assert!(feed(&mut r, "other", t0, 10.0).is_empty());
    assert!(feed(&mut r, "t1", t0, f64::NAN).is_empty());
    assert!(feed(&mut r, "t1", t0, f64::INFINITY).is_empty());
    assert!(feed(&mut r, "t1", t0, f64::NEG_INFINITY).is_empty());
    for measurements in [
        vec![Measurement::new("humidity", "%RH", 10.0)],
        vec![Measurement::new("temperature", "K", 200.0)],
        vec![],
    ] {
        let msg = Message::from_reading(Reading::new("t1", t0, measurements));
        let outcome = r.process(msg.clone()).expect("process");
        assert_eq!(outcome.verdict, Verdict::Forward(msg));
        assert!(outcome.effects.is_empty());
    }
    assert!(testing::kv_entries().is_empty());
    // None of them counted as a reading: the zone goes stale from the first tick.
    assert!(tick(&mut r, t0).is_empty());
    assert_eq!(tick(&mut r, t0 + 61 * SEC).alarms.len(), 1);
}

/// A later measurement in the same reading is used when the first temperature is not finite.
#[test]
fn first_finite_celsius_temperature_is_used() {
    let mut r = rule(one_zone(json!({})));
    let msg = Message::from_reading(Reading::new(
        "t1",
        at(10, 0),
        vec![Measurement::new("temperature", "Cel", f64::NAN), Measurement::new("temperature", "Cel", 18.0)],
    ));
    let fx = r.process(msg).expect("process").effects;
    assert_eq!(commands(&fx)[0].1["temperature"], 18.0);
}

/// With several sensors in a zone the latest reading wins; zones are independent.
#[test]
fn several_sensors_and_zones() {
    let mut r = rule(json!({ "zone": [
        { "name": "a", "sensors": ["s1", "s2"], "actuator": "heat/a" },
        { "name": "b", "sensors": ["s2"], "actuator": "heat/b", "setpoint": 15.0 },
    ]}));
    let fx = feed(&mut r, "s1", at(9, 0), 18.0);
    assert_eq!(commands(&fx), vec![("heat/a".to_string(), commands(&fx)[0].1.clone())]);
    assert_eq!(only_state(&fx), "on");
    let fx = feed(&mut r, "s2", at(9, 1), 21.0);
    let cmds = commands(&fx);
    assert_eq!(cmds.len(), 2);
    assert_eq!((cmds[0].0.as_str(), cmds[0].1["state"].as_str()), ("heat/a", Some("off")));
    assert_eq!((cmds[1].0.as_str(), cmds[1].1["state"].as_str()), ("heat/b", Some("off")));
    assert_eq!(testing::kv_entries().len(), 2);
}

/// Extreme times and values neither panic nor fail.
#[test]
fn extreme_inputs_do_not_panic() {
    let mut r = rule(one_zone(json!({ "min-on-s": i64::MAX, "stale-after-s": i64::MAX })));
    feed(&mut r, "t1", u64::MAX, f64::MAX);
    feed(&mut r, "t1", 0, -f64::MAX);
    tick(&mut r, 0);
    tick(&mut r, u64::MAX);
    feed(&mut r, "t1", u64::MAX / 2, 1e300);
}

/// After the clock steps backwards a held-back switch waits at most the minimum time.
#[test]
fn clock_stepping_back_does_not_block_switching() {
    let mut r = rule(one_zone(json!({ "min-on-s": 60 })));
    assert_eq!(only_state(&feed(&mut r, "t1", at(12, 0), 18.0)), "on");
    assert!(feed(&mut r, "t1", at(2, 0), 25.0).is_empty(), "held back from now");
    assert_eq!(only_state(&tick(&mut r, at(2, 1))), "off");
}

/// A minimal zone gets the documented defaults.
#[test]
fn config_defaults() {
    testing::reset();
    let config: Config = serde_json::from_value(one_zone(json!({}))).expect("config");
    assert_eq!(config.utc_offset_minutes, 0);
    let settings = config.validate().expect("valid");
    let zone = &settings.zones[0];
    assert_eq!(zone.setpoint, 20.0);
    assert_eq!(zone.hysteresis, 0.5);
    assert_eq!((zone.min_on_ms, zone.min_off_ms, zone.stale_after_ms), (0, 0, 900_000));
    assert_eq!(zone.failsafe, HeatState::Off);
    assert!(zone.schedule.is_empty());
}

/// Configuration mistakes are refused with messages that name the zone or key.
#[test]
fn config_errors() {
    let two = |a: Value, b: Value| json!({ "zone": [a, b] });
    let zone = |name: &str, actuator: &str| json!({ "name": name, "sensors": ["t1"], "actuator": actuator });
    let cases: Vec<(Value, &[&str])> = vec![
        (two(zone("a", "x"), zone("a", "y")), &["zone \"a\"", "another zone"]),
        (two(zone("a", "x"), zone("b", "x")), &["zone \"b\"", "already driven by zone \"a\""]),
        (
            one_zone(json!({ "schedule": [{ "at": "6:30", "setpoint": 20.0 }] })),
            &["zone \"living\"", "\"6:30\"", "HH:MM"],
        ),
        (
            one_zone(json!({ "schedule": [{ "at": "25:00", "setpoint": 20.0 }] })),
            &["zone \"living\"", "\"25:00\""],
        ),
        (
            one_zone(json!({ "schedule": [
                { "at": "07:00", "setpoint": 20.0 }, { "at": "07:00", "setpoint": 21.0 }
            ] })),
            &["zone \"living\"", "more than once"],
        ),
        (one_zone(json!({ "sensors": [] })), &["zone \"living\"", "sensors"]),
        (one_zone(json!({ "sensors": [""] })), &["zone \"living\"", "sensors"]),
        (one_zone(json!({ "hysteresis": -0.1 })), &["zone \"living\"", "hysteresis"]),
        (one_zone(json!({ "min-on-s": -1 })), &["zone \"living\"", "min-on-s"]),
        (one_zone(json!({ "min-off-s": -1 })), &["zone \"living\"", "min-off-s"]),
        (one_zone(json!({ "stale-after-s": 0 })), &["zone \"living\"", "stale-after-s"]),
        (one_zone(json!({ "actuator": "" })), &["zone \"living\"", "actuator"]),
        (one_zone(json!({ "name": " " })), &["zone #1", "name"]),
        (one_zone(json!({ "setpiont": 20.0 })), &["unknown field `setpiont`"]),
        (one_zone(json!({ "failsafe": "maybe" })), &["maybe"]),
        (json!({ "zone": [{ "name": "a", "sensors": ["t1"] }] }), &["actuator"]),
        (json!({ "zones": [] }), &["unknown field `zones`"]),
        (json!({}), &["no zones"]),
        (json!({ "utc-offset-minutes": 900, "zone": [zone("a", "x")] }), &["utc-offset-minutes"]),
    ];
    for (config, needles) in cases {
        let error = config_error(config.clone());
        for needle in needles {
            assert!(error.contains(needle), "error for {config} was {error:?}, lacks {needle:?}");
        }
    }
}

//! Unit tests of the `alarm` rule, through the SDK's native stand-in host.

use super::*;
use edgeward_sdk::{AlarmState, Measurement, Reading, Verdict, testing};

const FEVER: &str = r#"{"threshold": [{
    "measurement": "temperature", "unit": "Cel", "above": 38.0,
    "hysteresis": 0.3, "min-duration-s": 30, "severity": "critical", "code": "fever"
}]}"#;

/// A fresh rule from JSON configuration, on a clean host.
fn rule(config: &str) -> AlarmRule {
    testing::reset();
    testing::init::<AlarmRule>(config).expect("valid configuration")
}

/// A message from `sensor` received at `at_s` seconds with one measurement.
fn msg(sensor: &str, at_s: u64, name: &str, unit: &str, value: f64) -> Message {
    Message::from_reading(Reading::new(sensor, at_s * 1000, vec![Measurement::new(name, unit, value)]))
}

/// A temperature in `Cel` from `sensor` at `at_s` seconds.
fn temp(sensor: &str, at_s: u64, value: f64) -> Message {
    msg(sensor, at_s, "temperature", "Cel", value)
}

/// Process `m`, check it is forwarded unchanged, and return the alarms.
fn feed(rule: &mut AlarmRule, m: Message) -> Vec<Alarm> {
    let out = rule.process(m.clone()).expect("process never fails");
    // Compared by Debug form, since NaN != NaN.
    let forwarded = match &out.verdict {
        Verdict::Forward(f) => format!("{f:?}"),
        Verdict::Drop(reason) => panic!("dropped: {reason}"),
    };
    assert_eq!(forwarded, format!("{m:?}"), "the message is always forwarded as is");
    assert!(out.effects.commands.is_empty());
    out.effects.alarms
}

/// (state, code, sensor) of each alarm, for compact assertions.
fn summary(alarms: &[Alarm]) -> Vec<(AlarmState, &str, &str)> {
    alarms.iter().map(|a| (a.state, a.code.as_str(), a.sensor.as_str())).collect()
}

/// The error `new` gives for `config`.
fn config_error(config: &str) -> String {
    testing::reset();
    match testing::init::<AlarmRule>(config) {
        Ok(_) => panic!("configuration accepted: {config}"),
        Err(e) => e,
    }
}

/// An `above` threshold with min-duration raises once while the value hovers, and clears only past the hysteresis.
#[test]
fn above_raises_once_after_min_duration_and_clears_with_hysteresis() {
    let mut r = rule(FEVER);
    assert!(feed(&mut r, temp("w1", 0, 38.6)).is_empty(), "pending, not yet raised");
    assert!(feed(&mut r, temp("w1", 20, 38.4)).is_empty(), "held only 20 s");

    let raised = feed(&mut r, temp("w1", 30, 38.6));
    assert_eq!(summary(&raised), [(AlarmState::Raised, "fever", "w1")]);
    assert_eq!(raised[0].severity, Severity::Critical);
    assert_eq!(raised[0].text, "temperature 38.6 Cel above 38 on w1 for 30 s");

    // Hovering around the limit, and dipping inside the hysteresis band, stays quiet.
    for (t, v) in [(40, 37.9), (50, 38.2), (60, 37.8), (70, 38.01), (80, 37.71)] {
        assert!(feed(&mut r, temp("w1", t, v)).is_empty(), "{v} at {t} s must not alarm");
    }

    let cleared = feed(&mut r, temp("w1", 90, 37.7));
    assert_eq!(summary(&cleared), [(AlarmState::Cleared, "fever", "w1")]);
    assert_eq!(cleared[0].severity, Severity::Critical);
    assert!(cleared[0].text.contains("no longer above 38"), "{}", cleared[0].text);
    assert!(feed(&mut r, temp("w1", 100, 37.0)).is_empty(), "cleared only once");
}

/// A `below` threshold with the default code and severity raises below the limit and clears above limit + hysteresis.
#[test]
fn below_raises_and_clears() {
    let mut r = rule(r#"{"threshold": [{"measurement": "battery", "below": 20, "hysteresis": 5}]}"#);
    assert!(feed(&mut r, msg("s", 0, "battery", "%", 21.0)).is_empty());
    let raised = feed(&mut r, msg("s", 1, "battery", "%", 19.0));
    assert_eq!(summary(&raised), [(AlarmState::Raised, "battery-low", "s")]);
    assert_eq!(raised[0].severity, Severity::Warning);
    assert_eq!(raised[0].text, "battery 19 % below 20 on s");
    assert!(feed(&mut r, msg("s", 2, "battery", "%", 24.9)).is_empty(), "inside the hysteresis band");
    let cleared = feed(&mut r, msg("s", 3, "battery", "%", 25.0));
    assert_eq!(summary(&cleared), [(AlarmState::Cleared, "battery-low", "s")]);
}

/// A pending condition that recovers before min-duration raises nothing, and the next excursion starts its own timer.
#[test]
fn pending_that_recovers_raises_nothing() {
    let mut r = rule(FEVER);
    assert!(feed(&mut r, temp("w1", 0, 39.0)).is_empty());
    assert!(feed(&mut r, temp("w1", 20, 38.0)).is_empty(), "back at the limit: not beyond");
    assert!(feed(&mut r, temp("w1", 25, 39.0)).is_empty(), "a new excursion starts pending again");
    assert!(feed(&mut r, temp("w1", 50, 39.0)).is_empty(), "only 25 s into the new excursion");
    let raised = feed(&mut r, temp("w1", 55, 39.0));
    assert_eq!(summary(&raised), [(AlarmState::Raised, "fever", "w1")]);
}

/// Both directions of one threshold get their default codes, and with min-duration 0 alarm at once.
#[test]
fn both_directions_with_default_codes() {
    let mut r = rule(r#"{"threshold": [{"measurement": "temperature", "above": 30, "below": 10}]}"#);
    assert_eq!(summary(&feed(&mut r, temp("a", 0, 31.0))), [(AlarmState::Raised, "temperature-high", "a")]);
    assert_eq!(
        summary(&feed(&mut r, temp("a", 1, 5.0))),
        [(AlarmState::Cleared, "temperature-high", "a"), (AlarmState::Raised, "temperature-low", "a")]
    );
    assert_eq!(summary(&feed(&mut r, temp("a", 2, 20.0))), [(AlarmState::Cleared, "temperature-low", "a")]);
}

/// When both directions share an explicit code, a jump across the range clears the code before raising it again.
#[test]
fn shared_code_clears_before_raising() {
    let mut r =
        rule(r#"{"threshold": [{"measurement": "temperature", "above": 38, "below": 35, "code": "range"}]}"#);
    assert_eq!(summary(&feed(&mut r, temp("a", 0, 34.0))), [(AlarmState::Raised, "range", "a")]);
    assert_eq!(
        summary(&feed(&mut r, temp("a", 1, 39.0))),
        [(AlarmState::Cleared, "range", "a"), (AlarmState::Raised, "range", "a")]
    );
}

/// The `sensors` filter limits a threshold to the listed sensors, and each sensor has its own state.
#[test]
fn sensors_filter() {
    let mut r =
        rule(r#"{"threshold": [{"measurement": "temperature", "above": 38, "sensors": ["w1", "w2"]}]}"#);
    assert!(feed(&mut r, temp("other", 0, 40.0)).is_empty(), "not a listed sensor");
    assert_eq!(summary(&feed(&mut r, temp("w1", 0, 40.0))), [(AlarmState::Raised, "temperature-high", "w1")]);
    assert_eq!(summary(&feed(&mut r, temp("w2", 0, 40.0))), [(AlarmState::Raised, "temperature-high", "w2")]);
    assert_eq!(
        summary(&feed(&mut r, temp("w1", 1, 30.0))),
        [(AlarmState::Cleared, "temperature-high", "w1")]
    );
    assert!(feed(&mut r, temp("w2", 1, 40.0)).is_empty(), "w2 is still raised");
}

/// The `unit` filter ignores the measurement in other units.
#[test]
fn unit_filter() {
    let mut r = rule(r#"{"threshold": [{"measurement": "temperature", "unit": "Cel", "above": 38}]}"#);
    assert!(feed(&mut r, msg("w1", 0, "temperature", "degF", 100.0)).is_empty());
    assert_eq!(
        summary(&feed(&mut r, msg("w1", 1, "temperature", "Cel", 38.5))),
        [(AlarmState::Raised, "temperature-high", "w1")]
    );
}

/// A reading without the measurement neither resets a pending condition nor clears a raised one.
#[test]
fn reading_without_the_measurement_changes_nothing() {
    let mut r = rule(FEVER);
    assert!(feed(&mut r, temp("w1", 0, 39.0)).is_empty());
    assert!(feed(&mut r, msg("w1", 10, "humidity", "%RH", 40.0)).is_empty());
    assert_eq!(summary(&feed(&mut r, temp("w1", 30, 39.0))), [(AlarmState::Raised, "fever", "w1")]);
    assert!(feed(&mut r, msg("w1", 40, "humidity", "%RH", 40.0)).is_empty());
    assert!(feed(&mut r, temp("w1", 50, 38.5)).is_empty(), "still raised");
}

/// NaN and infinite values neither raise, nor clear, nor disturb a pending condition.
#[test]
fn non_finite_values_are_ignored() {
    let mut r = rule(
        r#"{"threshold": [{"measurement": "temperature", "above": 38, "below": 35, "min-duration-s": 10}]}"#,
    );
    for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        assert!(feed(&mut r, temp("w1", 0, v)).is_empty(), "{v} must not alarm");
    }
    assert!(feed(&mut r, temp("w1", 0, 39.0)).is_empty());
    assert!(feed(&mut r, temp("w1", 5, f64::NAN)).is_empty(), "NaN does not end the pending");
    assert_eq!(
        summary(&feed(&mut r, temp("w1", 10, 39.0))),
        [(AlarmState::Raised, "temperature-high", "w1")]
    );
    assert!(feed(&mut r, temp("w1", 11, f64::NAN)).is_empty(), "NaN does not clear");
    assert!(feed(&mut r, temp("w1", 12, f64::NEG_INFINITY)).is_empty(), "-inf does not clear");
    assert_eq!(
        summary(&feed(&mut r, temp("w1", 13, 36.0))),
        [(AlarmState::Cleared, "temperature-high", "w1")]
    );
}

/// A silent sensor gets one `stale` alarm from tick, cleared by its next reading.
#[test]
fn stale_raised_once_and_cleared_by_next_reading() {
    let mut r = rule(r#"{"stale-after-s": 300}"#);
    assert!(feed(&mut r, msg("door", 0, "door", "", 1.0)).is_empty());
    assert!(r.tick(300_000).unwrap().alarms.is_empty(), "exactly 300 s is not more than 300 s");

    let stale = r.tick(301_000).unwrap().alarms;
    assert_eq!(summary(&stale), [(AlarmState::Raised, "stale", "door")]);
    assert_eq!(stale[0].severity, Severity::Warning);
    assert_eq!(stale[0].text, "no reading from door for 301 s (stale after 300 s)");
    assert!(r.tick(400_000).unwrap().alarms.is_empty(), "raised once only");

    let back = feed(&mut r, msg("door", 410, "door", "", 0.0));
    assert_eq!(summary(&back), [(AlarmState::Cleared, "stale", "door")]);
    assert!(r.tick(600_000).unwrap().alarms.is_empty(), "silence counts from the last reading");
    assert!(feed(&mut r, msg("door", 610, "door", "", 0.0)).is_empty(), "cleared once only");
}

/// Without `stale-after-s`, tick never alarms.
#[test]
fn no_stale_alarm_unless_configured() {
    let mut r = rule(FEVER);
    feed(&mut r, temp("w1", 0, 36.0));
    assert!(r.tick(u64::MAX).unwrap().is_empty());
}

/// A raised alarm survives the instance being replaced: the new instance clears it, and does not raise it again.
#[test]
fn raised_state_survives_recycle() {
    let mut r = rule(FEVER);
    feed(&mut r, temp("w1", 0, 39.0));
    assert_eq!(summary(&feed(&mut r, temp("w1", 30, 39.0))).len(), 1);
    drop(r);

    // A fresh instance on the same host (no testing::reset): what a trap does.
    let mut r = testing::init::<AlarmRule>(FEVER).unwrap();
    assert!(feed(&mut r, temp("w1", 40, 39.0)).is_empty(), "already raised: no second alarm");
    assert_eq!(summary(&feed(&mut r, temp("w1", 50, 37.0))), [(AlarmState::Cleared, "fever", "w1")]);
}

/// A pending condition survives the instance being replaced, keeping when it began.
#[test]
fn pending_state_survives_recycle() {
    let mut r = rule(FEVER);
    feed(&mut r, temp("w1", 0, 39.0));
    drop(r);
    let mut r = testing::init::<AlarmRule>(FEVER).unwrap();
    assert_eq!(summary(&feed(&mut r, temp("w1", 30, 39.0))), [(AlarmState::Raised, "fever", "w1")]);
}

/// A stale flag survives the instance being replaced: not raised twice, and cleared by the next reading.
#[test]
fn stale_state_survives_recycle() {
    let config = r#"{"stale-after-s": 60}"#;
    let mut r = rule(config);
    feed(&mut r, temp("w1", 0, 20.0));
    assert_eq!(r.tick(61_000).unwrap().alarms.len(), 1);
    drop(r);

    let mut r = testing::init::<AlarmRule>(config).unwrap();
    assert!(r.tick(62_000).unwrap().alarms.is_empty());
    assert!(r.tick(500_000).unwrap().alarms.is_empty(), "still the same stale episode");
    assert_eq!(summary(&feed(&mut r, temp("w1", 501, 20.0))), [(AlarmState::Cleared, "stale", "w1")]);
}

/// A sensor seen before a replacement and silent since is still reported stale, counting from the first tick.
#[test]
fn known_sensors_survive_recycle() {
    let config = r#"{"stale-after-s": 60}"#;
    let mut r = rule(config);
    feed(&mut r, temp("w1", 0, 20.0));
    drop(r);

    let mut r = testing::init::<AlarmRule>(config).unwrap();
    assert!(r.tick(100_000).unwrap().alarms.is_empty(), "silence starts counting now");
    assert!(r.tick(160_000).unwrap().alarms.is_empty());
    assert_eq!(summary(&r.tick(161_000).unwrap().alarms), [(AlarmState::Raised, "stale", "w1")]);
}

/// While a value hovers with nothing changing, the state store is left alone.
#[test]
fn no_state_writes_without_transitions() {
    let mut r = rule(FEVER);
    feed(&mut r, temp("w1", 0, 39.0));
    feed(&mut r, temp("w1", 30, 39.0));
    let stored = testing::kv_entries();
    for t in 31..60 {
        feed(&mut r, temp("w1", t, 38.0 + (t % 3) as f64 * 0.1));
    }
    assert_eq!(testing::kv_entries(), stored);
    feed(&mut r, temp("w1", 60, 36.0));
    assert!(testing::kv_entries().is_empty(), "nothing left to remember once all is normal");
}

/// An empty configuration is valid and never alarms.
#[test]
fn empty_config_is_valid() {
    let mut r = rule("{}");
    assert!(feed(&mut r, temp("w1", 0, 1e9)).is_empty());
    assert!(r.tick(u64::MAX).unwrap().is_empty());
}

/// A misspelt key is refused, naming it.
#[test]
fn unknown_keys_are_refused() {
    let e = config_error(r#"{"threshold": [{"measurement": "t", "above": 1, "hysterisis": 0.3}]}"#);
    assert!(e.contains("hysterisis"), "{e}");
    let e = config_error(r#"{"stale-after": 300}"#);
    assert!(e.contains("stale-after"), "{e}");
    let e = config_error(r#"{"threshold": [{"measurement": "t", "above": 1, "severity": "fatal"}]}"#);
    assert!(e.contains("fatal"), "{e}");
}

/// A threshold without `above` or `below` is refused, naming which one.
#[test]
fn threshold_without_limit_is_refused() {
    let e = config_error(r#"{"threshold": [{"measurement": "t", "above": 1}, {"measurement": "humidity"}]}"#);
    assert!(e.contains("#2") && e.contains("humidity"), "{e}");
    assert!(e.contains("above") && e.contains("below"), "{e}");
}

/// Negative or otherwise unusable numbers are refused with the key's name.
#[test]
fn bad_numbers_are_refused() {
    let e = config_error(r#"{"threshold": [{"measurement": "t", "above": 1, "hysteresis": -0.5}]}"#);
    assert!(e.contains("hysteresis") && e.contains("#1"), "{e}");
    let e = config_error(r#"{"threshold": [{"measurement": "t", "above": 1, "min-duration-s": -1}]}"#);
    assert!(e.contains("min-duration-s"), "{e}");
    let e = config_error(r#"{"stale-after-s": 0}"#);
    assert!(e.contains("stale-after-s"), "{e}");
    let e = config_error(r#"{"threshold": [{"measurement": "t", "above": 10, "below": 20}]}"#);
    assert!(e.contains("greater"), "{e}");
}

/// Codes that would be ambiguous downstream are refused.
#[test]
fn ambiguous_codes_are_refused() {
    let e = config_error(
        r#"{"threshold": [{"measurement": "t", "above": 1}, {"measurement": "t", "unit": "K", "above": 300}]}"#,
    );
    assert!(e.contains("t-high") && e.contains("code"), "{e}");
    let e = config_error(r#"{"threshold": [{"measurement": "t", "above": 1, "code": "stale"}]}"#);
    assert!(e.contains("reserved"), "{e}");
    let e = config_error(
        r#"{"threshold": [{"measurement": "t", "above": 10, "below": 9, "hysteresis": 2, "code": "x"}]}"#,
    );
    assert!(e.contains("hysteresis"), "{e}");
    let e = config_error(r#"{"threshold": [{"measurement": "t", "above": 1, "sensors": []}]}"#);
    assert!(e.contains("sensors"), "{e}");

    // The same code on sensors that do not overlap is fine.
    testing::reset();
    let ok = r#"{"threshold": [
        {"measurement": "t", "above": 1, "code": "hot", "sensors": ["a"]},
        {"measurement": "t", "above": 2, "code": "hot", "sensors": ["b"]}]}"#;
    assert!(testing::init::<AlarmRule>(ok).is_ok());
}

//! Alarm when a measurement changes too fast: a window left open in winter,
//! a fridge door ajar, a heater stuck on. The rate is the least-squares
//! slope of the sensor's readings over the last `window-s`, in units per
//! minute, so a single noisy reading does not raise it. The alarm is raised
//! when the rate goes past `rate-per-min` in the configured direction and
//! cleared when it falls back below `rate-per-min - hysteresis`. Each
//! sensor's recent readings and alarm state live in `kv`, so a restart or a
//! trap loses nothing. Messages are always forwarded unchanged.
//!
//! ```toml
//! [module.warming-fast]
//! wasm = "target/wasm32-wasip2/guest/edgeward_example_rate_of_change.wasm"
//! capabilities = ["kv"]
//! config = { measurement = "temperature", unit = "Cel", rate-per-min = 0.5, window-s = 600 }
//! ```

use edgeward_sdk::{Alarm, Message, Outcome, Rule, Severity, kv};
use serde::{Deserialize, Serialize};

/// Which way of changing is alarming.
#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    /// Rising faster than the rate.
    Rising,
    /// Falling faster than the rate.
    Falling,
    /// Either.
    Either,
}

/// The `[module.NAME.config]` table.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// The measurement to watch, e.g. `temperature`.
    pub measurement: String,
    /// Its SenML unit, e.g. `Cel`; readings in another unit are ignored.
    pub unit: String,
    /// The alarming rate, in `unit` per minute (positive).
    pub rate_per_min: f64,
    /// `rising` (default), `falling` or `either`.
    #[serde(default = "rising")]
    pub direction: Direction,
    /// How far back the rate looks, in seconds (default 600).
    #[serde(default = "ten_minutes")]
    pub window_s: u64,
    /// The alarm clears below `rate-per-min - hysteresis` (default: a fifth of the rate).
    pub hysteresis: Option<f64>,
    /// Alarm code (default `rate-of-change`).
    #[serde(default = "default_code")]
    pub code: String,
    /// `info`, `warning` (default) or `critical`.
    #[serde(default = "warning")]
    pub severity: Severity,
}

fn rising() -> Direction {
    Direction::Rising
}
fn ten_minutes() -> u64 {
    600
}
fn default_code() -> String {
    "rate-of-change".into()
}
fn warning() -> Severity {
    Severity::Warning
}

/// What the rule keeps per sensor, in kv under `sensor/NAME`.
#[derive(Serialize, Deserialize, Default, Debug, PartialEq)]
struct SensorState {
    /// (received ms, value), oldest first, within the window.
    samples: Vec<(u64, f64)>,
    raised: bool,
}

/// The rule.
pub struct RateOfChange {
    config: Config,
    clear_below: f64,
}

impl Rule for RateOfChange {
    type Config = Config;

    fn new(config: Config) -> Result<Self, String> {
        if !(config.rate_per_min > 0.0 && config.rate_per_min.is_finite()) {
            return Err(format!("`rate-per-min` must be a positive number, not {}", config.rate_per_min));
        }
        if config.window_s < 60 {
            return Err(format!("`window-s` must be at least 60, not {}", config.window_s));
        }
        let hysteresis = config.hysteresis.unwrap_or(config.rate_per_min / 5.0);
        if !(0.0..config.rate_per_min).contains(&hysteresis) {
            return Err(format!(
                "`hysteresis` must be at least 0 and below `rate-per-min`, not {hysteresis}"
            ));
        }
        Ok(RateOfChange { clear_below: config.rate_per_min - hysteresis, config })
    }

    fn process(&mut self, msg: Message) -> Result<Outcome, String> {
        let Some(value) = msg.value_in(&self.config.measurement, &self.config.unit) else {
            return Ok(Outcome::forward(msg));
        };
        let key = format!("sensor/{}", msg.sensor());
        let mut state: SensorState = kv::get_json(&key).unwrap_or_default();
        let now = msg.received_ms();
        let window_ms = self.config.window_s * 1000;
        state.samples.retain(|&(t, _)| t <= now && now - t <= window_ms);
        state.samples.push((now, value));

        let alarm = self.judge(msg.sensor(), &mut state);
        kv::set_json(&key, &state);
        let outcome = Outcome::forward(msg);
        Ok(match alarm {
            Some(alarm) => outcome.with_alarm(alarm),
            None => outcome,
        })
    }
}

impl RateOfChange {
    /// Raise or clear the alarm for `sensor` from its samples.
    fn judge(&self, sensor: &str, state: &mut SensorState) -> Option<Alarm> {
        // Too short a span makes the slope mostly noise: wait for half a window.
        let span_ms = state.samples.last()?.0 - state.samples.first()?.0;
        if span_ms < self.config.window_s * 500 {
            return None;
        }
        let slope = slope_per_min(&state.samples)?;
        let rate = match self.config.direction {
            Direction::Rising => slope,
            Direction::Falling => -slope,
            Direction::Either => slope.abs(),
        };
        let (c, unit) = (&self.config, &self.config.unit);
        if !state.raised && rate > c.rate_per_min {
            state.raised = true;
            let text = format!(
                "{} on {sensor} changing at {slope:+.3} {unit}/min over {} s (limit {} {unit}/min)",
                c.measurement, c.window_s, c.rate_per_min
            );
            Some(Alarm::raised(sensor, &c.code, c.severity, text))
        } else if state.raised && rate < self.clear_below {
            state.raised = false;
            let text = format!("{} on {sensor} changing at {slope:+.3} {unit}/min again", c.measurement);
            Some(Alarm::cleared(sensor, &c.code, c.severity, text))
        } else {
            None
        }
    }
}

/// The least-squares slope of `samples` in value per minute; `None` when
/// all samples share one time.
fn slope_per_min(samples: &[(u64, f64)]) -> Option<f64> {
    let t0 = samples.first()?.0;
    let points: Vec<(f64, f64)> = samples.iter().map(|&(t, v)| ((t - t0) as f64 / 60_000.0, v)).collect();
    let n = points.len() as f64;
    let mean_t = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_v = points.iter().map(|p| p.1).sum::<f64>() / n;
    let var_t: f64 = points.iter().map(|p| (p.0 - mean_t).powi(2)).sum();
    if var_t == 0.0 {
        return None;
    }
    let cov: f64 = points.iter().map(|p| (p.0 - mean_t) * (p.1 - mean_v)).sum();
    Some(cov / var_t)
}

edgeward_sdk::export_rule!(RateOfChange);

#[cfg(test)]
mod tests {
    use super::*;
    use edgeward_sdk::{AlarmState, Measurement, Reading, Verdict, testing};

    const MINUTE: u64 = 60_000;

    fn rule(config: &str) -> RateOfChange {
        testing::reset();
        testing::init(config).unwrap()
    }

    fn temperature(rule: &mut RateOfChange, sensor: &str, at_min: u64, value: f64) -> Vec<Alarm> {
        let reading =
            Reading::new(sensor, at_min * MINUTE, vec![Measurement::new("temperature", "Cel", value)]);
        let outcome = rule.process(Message::from_reading(reading)).unwrap();
        assert!(matches!(outcome.verdict, Verdict::Forward(_)), "always forwards");
        outcome.effects.alarms
    }

    const CONFIG: &str =
        r#"{"measurement":"temperature","unit":"Cel","rate-per-min":0.5,"window-s":600,"hysteresis":0.2}"#;

    /// A fast rise raises once, a plateau clears once (after the window moves on).
    #[test]
    fn raises_on_fast_rise_and_clears_with_hysteresis() {
        let mut r = rule(CONFIG);
        let mut events = Vec::new();
        // Flat for 10 minutes, then +1 °C per minute for 10, then flat.
        for minute in 0..40u64 {
            let value = 20.0 + minute.clamp(10, 20) as f64 - 10.0;
            for alarm in temperature(&mut r, "kitchen", minute, value) {
                events.push((minute, alarm.state, alarm.code));
            }
        }
        assert_eq!(events.len(), 2, "{events:?}");
        let (raised_at, state, code) = &events[0];
        assert_eq!((*state, code.as_str()), (AlarmState::Raised, "rate-of-change"));
        assert!((11..=16).contains(raised_at), "raised at minute {raised_at}");
        let (cleared_at, state, _) = &events[1];
        assert_eq!(*state, AlarmState::Cleared);
        assert!((21..=30).contains(cleared_at), "cleared at minute {cleared_at}");
    }

    /// A rise just under the rate raises nothing; falling is not rising.
    #[test]
    fn slow_rise_and_fall_are_quiet() {
        let mut r = rule(CONFIG);
        for minute in 0..30u64 {
            assert!(temperature(&mut r, "a", minute, 20.0 + 0.4 * minute as f64).is_empty());
            assert!(temperature(&mut r, "b", minute, 20.0 - 2.0 * minute as f64).is_empty());
        }
    }

    /// `direction = "falling"` alarms on a fast fall; sensors are judged apart.
    #[test]
    fn falling_direction_and_per_sensor_state() {
        let mut r = rule(
            r#"{"measurement":"temperature","unit":"Cel","rate-per-min":0.5,"direction":"falling","code":"window-open","severity":"critical"}"#,
        );
        let mut raised = Vec::new();
        for minute in 0..20u64 {
            raised.extend(temperature(&mut r, "cold", minute, 20.0 - minute as f64));
            raised.extend(temperature(&mut r, "steady", minute, 20.0));
        }
        assert_eq!(raised.len(), 1, "{raised:?}");
        assert_eq!((raised[0].sensor.as_str(), raised[0].code.as_str()), ("cold", "window-open"));
        assert_eq!(raised[0].severity, Severity::Critical);
        let keys: Vec<String> = testing::kv_entries().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["sensor/cold", "sensor/steady"]);
    }

    /// The alarm state is in kv: a new instance (after a trap) does not raise again.
    #[test]
    fn state_survives_a_new_instance() {
        let mut r = rule(CONFIG);
        let mut raised = 0;
        for minute in 0..10u64 {
            raised += temperature(&mut r, "k", minute, 20.0 + minute as f64).len();
        }
        assert_eq!(raised, 1);
        let mut fresh: RateOfChange = testing::init(CONFIG).unwrap();
        assert!(temperature(&mut fresh, "k", 10, 30.0).is_empty(), "already raised");
    }

    /// Other units and measurements pass untouched and leave no state.
    #[test]
    fn ignores_other_units() {
        let mut r = rule(CONFIG);
        let reading = Reading::new("k", 0, vec![Measurement::new("temperature", "K", 300.0)]);
        let outcome = r.process(Message::from_reading(reading.clone())).unwrap();
        assert_eq!(outcome.verdict, Verdict::Forward(Message::from_reading(reading)));
        assert!(testing::kv_entries().is_empty());
    }

    /// Nonsense limits are refused with the key's name.
    #[test]
    fn refuses_bad_config() {
        let err = testing::init::<RateOfChange>(r#"{"measurement":"t","unit":"Cel","rate-per-min":-1}"#);
        assert!(err.err().unwrap().contains("`rate-per-min`"));
        let err = testing::init::<RateOfChange>(
            r#"{"measurement":"t","unit":"Cel","rate-per-min":1,"hysteresis":2}"#,
        );
        assert!(err.err().unwrap().contains("`hysteresis`"));
    }
}

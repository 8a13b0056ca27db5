//! An edgeward rule. It is called for every message of the profiles that
//! list it, and answers `forward` (possibly changed) or `drop`, plus alarms
//! and commands, which are always delivered.
//!
//! This example drops readings whose measurement is outside a configured
//! range (a broken or misplaced sensor) and raises an alarm for them:
//!
//! ```toml
//! [module.NAME]
//! wasm = "target/wasm32-wasip2/release/CRATE.wasm"
//! config = { measurement = "temperature", min = -20.0, max = 60.0 }
//! ```

use edgeward_sdk::{Alarm, Level, Message, Outcome, Rule, Severity, log};

/// The `[module.NAME.config]` table of the gateway's configuration.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Which measurement to check, e.g. `temperature`.
    pub measurement: String,
    /// The lowest plausible value.
    pub min: f64,
    /// The highest plausible value.
    pub max: f64,
}

/// The rule: one instance per profile, kept between messages.
pub struct InRange {
    config: Config,
}

impl Rule for InRange {
    type Config = Config;

    /// Check the configuration once; an `Err` stops the gateway from starting with it.
    fn new(config: Config) -> Result<Self, String> {
        if config.min.is_nan() || config.max.is_nan() || config.min > config.max {
            return Err(format!(
                "`min` ({}) must not be above `max` ({})",
                config.min, config.max
            ));
        }
        Ok(InRange { config })
    }

    fn process(&mut self, msg: Message) -> Result<Outcome, String> {
        let Some(value) = msg.value(&self.config.measurement) else {
            // Not a measurement this rule checks: pass it on unchanged.
            return Ok(Outcome::forward(msg));
        };
        let Config {
            measurement,
            min,
            max,
        } = &self.config;
        if (*min..=*max).contains(&value) {
            return Ok(Outcome::forward(msg));
        }
        let text = format!(
            "{measurement} {value} outside {min}..{max} on {}",
            msg.sensor()
        );
        log(Level::Warn, &text);
        let alarm = Alarm::raised(
            msg.sensor(),
            "out-of-range",
            Severity::Warning,
            &text,
        );
        Ok(Outcome::drop(text).with_alarm(alarm))
    }
}

edgeward_sdk::export_rule!(InRange);

/// Natively, `edgeward_sdk::testing` stands in for the gateway.
#[cfg(test)]
mod tests {
    use super::*;
    use edgeward_sdk::{Measurement, Reading, Verdict, testing};

    fn temperature(value: f64) -> Message {
        Message::from_reading(Reading::new(
            "kitchen",
            1_000,
            vec![Measurement::new("temperature", "Cel", value)],
        ))
    }

    #[test]
    fn forwards_plausible_readings_and_drops_the_rest() {
        testing::reset();
        let mut rule: InRange =
            testing::init(r#"{"measurement": "temperature", "min": -20.0, "max": 60.0}"#).unwrap();

        let outcome = rule.process(temperature(21.5)).unwrap();
        assert!(matches!(outcome.verdict, Verdict::Forward(_)));
        assert!(outcome.effects.is_empty());

        let outcome = rule.process(temperature(85.0)).unwrap();
        assert!(matches!(outcome.verdict, Verdict::Drop(_)));
        assert_eq!(outcome.effects.alarms.len(), 1);
        assert_eq!(outcome.effects.alarms[0].code, "out-of-range");
        assert_eq!(testing::logs().len(), 1);
    }

    #[test]
    fn refuses_an_empty_range() {
        let refused =
            testing::init::<InRange>(r#"{"measurement": "humidity", "min": 80.0, "max": 20.0}"#);
        assert!(refused.is_err());
    }
}

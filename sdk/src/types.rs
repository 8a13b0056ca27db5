//! Conveniences on the message types generated from the WIT.

use crate::{Alarm, AlarmState, Authenticity, Command, Effects, Measurement, Reading, Severity};

impl Reading {
    /// The first measurement called `name`, if the reading has one.
    pub fn measurement(&self, name: &str) -> Option<&Measurement> {
        self.measurements.iter().find(|m| m.name == name)
    }

    /// The value of the first measurement called `name` whose value is
    /// finite (NaN or infinity says nothing about the quantity).
    pub fn value(&self, name: &str) -> Option<f64> {
        self.finite_value(name, None)
    }

    /// Like [`Reading::value`], in unit `unit` only (SenML symbols such as
    /// `Cel`, `%RH`). A value in another unit is not converted: it is
    /// `None`, so a rule never compares °F with °C.
    pub fn value_in(&self, name: &str, unit: &str) -> Option<f64> {
        self.finite_value(name, Some(unit))
    }

    /// What the gateway's `value(name, unit)` answers, computed here.
    pub(crate) fn finite_value(&self, name: &str, unit: Option<&str>) -> Option<f64> {
        self.measurements
            .iter()
            .find(|m| m.name == name && unit.is_none_or(|u| u == m.unit) && m.value.is_finite())
            .map(|m| m.value)
    }

    /// The state of the binary sensor `name` (BTHome `door`, `opening`,
    /// `window`, `motion` ...: unitless 0 or 1): `Some(true)` for 1 (open,
    /// detected, on), `Some(false)` for 0, `None` when the reading has no
    /// unitless measurement of that name.
    pub fn flag(&self, name: &str) -> Option<bool> {
        self.value_in(name, "").map(|v| v != 0.0)
    }

    /// Keep only the measurements for which `keep` is true.
    pub fn retain_measurements(&mut self, keep: impl FnMut(&Measurement) -> bool) {
        self.measurements.retain(keep)
    }
}

impl Measurement {
    /// A measurement of `name` in `unit`.
    pub fn new(name: impl Into<String>, unit: impl Into<String>, value: f64) -> Self {
        Measurement { name: name.into(), unit: unit.into(), value }
    }
}

impl Reading {
    /// A reading of `sensor` received at `received_ms` with the given
    /// measurements and nothing else known; handy in tests.
    pub fn new(sensor: impl Into<String>, received_ms: u64, measurements: Vec<Measurement>) -> Self {
        Reading {
            sensor: sensor.into(),
            address: String::new(),
            seq: None,
            sensor_time_ms: None,
            received_ms,
            rssi: None,
            authenticity: Authenticity::None,
            measurements,
        }
    }
}

impl Effects {
    /// No alarms, no commands.
    pub fn none() -> Self {
        Effects { alarms: Vec::new(), commands: Vec::new() }
    }

    /// True when there is neither an alarm nor a command.
    pub fn is_empty(&self) -> bool {
        self.alarms.is_empty() && self.commands.is_empty()
    }

    /// These effects and `alarm`.
    pub fn with_alarm(mut self, alarm: Alarm) -> Self {
        self.alarms.push(alarm);
        self
    }

    /// These effects and `command`.
    pub fn with_command(mut self, command: Command) -> Self {
        self.commands.push(command);
        self
    }
}

impl FromIterator<Alarm> for Effects {
    fn from_iter<I: IntoIterator<Item = Alarm>>(alarms: I) -> Self {
        Effects { alarms: alarms.into_iter().collect(), commands: Vec::new() }
    }
}

impl Default for Effects {
    fn default() -> Self {
        Effects::none()
    }
}

impl Alarm {
    /// An alarm about `sensor` with a machine-readable `code`, being raised.
    pub fn raised(
        sensor: impl Into<String>,
        code: impl Into<String>,
        severity: Severity,
        text: impl Into<String>,
    ) -> Self {
        Alarm {
            sensor: sensor.into(),
            code: code.into(),
            severity,
            state: AlarmState::Raised,
            text: text.into(),
        }
    }

    /// The end of the alarm `code` about `sensor`.
    pub fn cleared(
        sensor: impl Into<String>,
        code: impl Into<String>,
        severity: Severity,
        text: impl Into<String>,
    ) -> Self {
        Alarm { state: AlarmState::Cleared, ..Alarm::raised(sensor, code, severity, text) }
    }
}

impl Command {
    /// A command for `actuator` with a `payload` (usually JSON).
    pub fn new(actuator: impl Into<String>, payload: impl Into<String>) -> Self {
        Command { actuator: actuator.into(), payload: payload.into() }
    }

    /// A command for `actuator` whose payload is `payload` as JSON, e.g.
    /// `Command::json("heating/hall", &serde_json::json!({"state": "on"}))`.
    pub fn json<T: serde::Serialize>(actuator: impl Into<String>, payload: &T) -> Self {
        let payload = serde_json::to_string(payload).expect("serializing a command payload to JSON");
        Command::new(actuator, payload)
    }
}

impl Severity {
    /// The name used in configurations and the gateway's output: `info`, `warning`, `critical`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

impl std::str::FromStr for Severity {
    type Err = String;

    /// Parse `info`, `warning` or `critical`, as a rule's configuration names a severity.
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "info" => Ok(Severity::Info),
            "warning" => Ok(Severity::Warning),
            "critical" => Ok(Severity::Critical),
            other => Err(format!("unknown severity `{other}` (use info, warning or critical)")),
        }
    }
}

impl<'de> serde::Deserialize<'de> for Severity {
    /// A severity in a rule's configuration: `"info"`, `"warning"` or `"critical"`.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading() -> Reading {
        Reading::new(
            "hall",
            0,
            vec![
                Measurement::new("temperature", "Cel", 21.5),
                Measurement::new("door", "", 1.0),
                Measurement::new("window", "", 0.0),
            ],
        )
    }

    /// Values are found by name and unit, never converted; binary sensors read as flags.
    #[test]
    fn typed_access() {
        let r = reading();
        assert_eq!(r.value_in("temperature", "Cel"), Some(21.5));
        assert_eq!(r.value_in("temperature", "K"), None);
        assert_eq!(r.flag("door"), Some(true));
        assert_eq!(r.flag("window"), Some(false));
        assert_eq!(r.flag("temperature"), None, "a measurement with a unit is no flag");
        assert_eq!(r.flag("motion"), None);
        let mut nan_first = r.clone();
        nan_first.measurements.insert(0, Measurement::new("temperature", "Cel", f64::NAN));
        assert_eq!(nan_first.value("temperature"), Some(21.5), "a NaN says nothing: the next value counts");
        assert_eq!(nan_first.value_in("temperature", "Cel"), Some(21.5));
        let mut r = r;
        r.retain_measurements(|m| m.unit.is_empty());
        assert_eq!(r.measurements.len(), 2);
    }

    /// Effects and commands build up as written.
    #[test]
    fn builders() {
        let alarm = Alarm::raised("hall", "open", Severity::Info, "open");
        let effects = Effects::none()
            .with_alarm(alarm.clone())
            .with_command(Command::json("heating/hall", &serde_json::json!({"state": "on"})));
        assert_eq!(effects.alarms, std::slice::from_ref(&alarm));
        assert_eq!(effects.commands[0].payload, r#"{"state":"on"}"#);
        let collected: Effects = [alarm.clone(), alarm].into_iter().collect();
        assert_eq!(collected.alarms.len(), 2);
        assert!(collected.commands.is_empty());
    }

    /// Severities read from configuration text, and refuse anything else.
    #[test]
    fn severity_from_config() {
        let parsed: Vec<Severity> = serde_json::from_str(r#"["info","warning","critical"]"#).unwrap();
        assert_eq!(parsed, [Severity::Info, Severity::Warning, Severity::Critical]);
        assert_eq!(parsed.iter().map(Severity::as_str).collect::<Vec<_>>(), ["info", "warning", "critical"]);
        let err = serde_json::from_str::<Severity>(r#""loud""#).unwrap_err().to_string();
        assert!(err.contains("unknown severity `loud`"), "{err}");
    }
}

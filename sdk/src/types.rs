//! Conveniences on the message types generated from the WIT.

use crate::{
    Alarm, AlarmState, Authenticity, Command, Effects, Envelope, Measurement, Message, Outcome, Reading,
    Severity, Verdict,
};

impl Reading {
    /// The first measurement called `name`, if the reading has one.
    pub fn measurement(&self, name: &str) -> Option<&Measurement> {
        self.measurements.iter().find(|m| m.name == name)
    }

    /// The value of the first measurement called `name`.
    pub fn value(&self, name: &str) -> Option<f64> {
        self.measurement(name).map(|m| m.value)
    }

    /// The value of the first measurement called `name` in unit `unit`
    /// (SenML symbols such as `Cel`, `%RH`).
    pub fn value_in(&self, name: &str, unit: &str) -> Option<f64> {
        self.measurements.iter().find(|m| m.name == name && m.unit == unit).map(|m| m.value)
    }
}

impl Measurement {
    /// A measurement of `name` in `unit`.
    pub fn new(name: impl Into<String>, unit: impl Into<String>, value: f64) -> Self {
        Measurement { name: name.into(), unit: unit.into(), value }
    }
}

impl Message {
    /// A message for a reading, with an empty envelope; handy in tests.
    pub fn from_reading(reading: Reading) -> Self {
        Message {
            reading,
            envelope: Envelope { content_type: String::new(), body: Vec::new() },
            path: Vec::new(),
        }
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
}

impl Default for Effects {
    fn default() -> Self {
        Effects::none()
    }
}

impl Outcome {
    /// Pass `msg` on to the next rule.
    pub fn forward(msg: Message) -> Self {
        Outcome { verdict: Verdict::Forward(msg), effects: Effects::none() }
    }

    /// End the message here, for `reason` (counted by the gateway).
    pub fn drop(reason: impl Into<String>) -> Self {
        Outcome { verdict: Verdict::Drop(reason.into()), effects: Effects::none() }
    }

    /// Add effects (alarms and commands) to this outcome.
    pub fn with_effects(mut self, effects: Effects) -> Self {
        self.effects.alarms.extend(effects.alarms);
        self.effects.commands.extend(effects.commands);
        self
    }

    /// Add an alarm to this outcome.
    pub fn with_alarm(mut self, alarm: Alarm) -> Self {
        self.effects.alarms.push(alarm);
        self
    }

    /// Add a command to this outcome.
    pub fn with_command(mut self, command: Command) -> Self {
        self.effects.commands.push(command);
        self
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
}

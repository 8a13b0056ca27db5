//! Rules built against `edgeward:policy@0.1.0` keep loading: their host
//! interfaces delegate to the current ones, and their message (a record
//! lowered into the rule, returned in its verdict) is converted at the
//! boundary. Only this file knows the old shapes.

use super::bindings::edgeward::policy::{clock, kv, log, sealer, signer};
use super::bindings::v0_1::edgeward::policy as old;
use super::bindings::{
    Alarm, AlarmState, Authenticity, Command, Effects, Envelope, Measurement, Message, Outcome, Reading,
    Severity, Verdict,
};
use super::host::{Lent, ModuleState};

/// The message as a 0.1 rule receives it.
pub(crate) fn message_for_v0_1(msg: &Message) -> old::types::Message {
    let r = &msg.reading;
    old::types::Message {
        reading: old::types::Reading {
            sensor: r.sensor.clone(),
            address: r.address.clone(),
            seq: r.seq,
            sensor_time_ms: r.sensor_time_ms,
            received_ms: r.received_ms,
            rssi: r.rssi,
            authenticity: match r.authenticity {
                Authenticity::None => old::types::Authenticity::None,
                Authenticity::MicVerified => old::types::Authenticity::MicVerified,
                Authenticity::SensorSigned => old::types::Authenticity::SensorSigned,
            },
            measurements: r
                .measurements
                .iter()
                .map(|m| old::types::Measurement {
                    name: m.name.clone(),
                    unit: m.unit.clone(),
                    value: m.value,
                })
                .collect(),
        },
        envelope: old::types::Envelope {
            content_type: msg.envelope.content_type.clone(),
            body: msg.envelope.body.clone(),
        },
        path: msg
            .path
            .iter()
            .map(|h| old::types::Hop { module: h.module.clone(), sha256: h.sha256.clone() })
            .collect(),
    }
}

/// A 0.1 rule's outcome; the reading and envelope of the message it
/// forwarded become the changes of `lent` (its changes to the path were
/// always ignored).
pub(crate) fn outcome_from_v0_1(outcome: old::types::Outcome, lent: &mut Lent) -> Outcome {
    let verdict = match outcome.verdict {
        old::types::Verdict::Forward(next) => {
            let r = next.reading;
            let reading = Reading {
                sensor: r.sensor,
                address: r.address,
                seq: r.seq,
                sensor_time_ms: r.sensor_time_ms,
                received_ms: r.received_ms,
                rssi: r.rssi,
                authenticity: match r.authenticity {
                    old::types::Authenticity::None => Authenticity::None,
                    old::types::Authenticity::MicVerified => Authenticity::MicVerified,
                    old::types::Authenticity::SensorSigned => Authenticity::SensorSigned,
                },
                measurements: r
                    .measurements
                    .into_iter()
                    .map(|m| Measurement { name: m.name, unit: m.unit, value: m.value })
                    .collect(),
            };
            let envelope = Envelope { content_type: next.envelope.content_type, body: next.envelope.body };
            lent.change(reading, envelope);
            Verdict::Forward
        }
        old::types::Verdict::Drop(reason) => Verdict::Drop(reason),
    };
    Outcome { verdict, effects: effects_from_v0_1(outcome.effects) }
}

pub(crate) fn effects_from_v0_1(effects: old::types::Effects) -> Effects {
    let alarms = effects
        .alarms
        .into_iter()
        .map(|a| Alarm {
            sensor: a.sensor,
            code: a.code,
            severity: match a.severity {
                old::types::Severity::Info => Severity::Info,
                old::types::Severity::Warning => Severity::Warning,
                old::types::Severity::Critical => Severity::Critical,
            },
            state: match a.state {
                old::types::AlarmState::Raised => AlarmState::Raised,
                old::types::AlarmState::Cleared => AlarmState::Cleared,
            },
            text: a.text,
        })
        .collect();
    let commands =
        effects.commands.into_iter().map(|c| Command { actuator: c.actuator, payload: c.payload }).collect();
    Effects { alarms, commands }
}

/// Unused by the conversions above but named by the old world's `types`.
impl old::types::Host for ModuleState {}

impl old::log::Host for ModuleState {
    fn log(&mut self, level: old::log::Level, msg: String) -> wasmtime::Result<()> {
        let level = match level {
            old::log::Level::Trace => log::Level::Trace,
            old::log::Level::Debug => log::Level::Debug,
            old::log::Level::Info => log::Level::Info,
            old::log::Level::Warn => log::Level::Warn,
            old::log::Level::Error => log::Level::Error,
        };
        log::Host::log(self, level, msg)
    }
}

impl old::clock::Host for ModuleState {
    fn now_ms(&mut self) -> wasmtime::Result<u64> {
        clock::Host::now_ms(self)
    }
}

impl old::kv::Host for ModuleState {
    fn get(&mut self, key: String) -> wasmtime::Result<Option<Vec<u8>>> {
        kv::Host::get(self, key)
    }

    fn set(&mut self, key: String, value: Vec<u8>) -> wasmtime::Result<()> {
        kv::Host::set(self, key, value)
    }

    fn delete(&mut self, key: String) -> wasmtime::Result<()> {
        kv::Host::delete(self, key)
    }
}

impl old::signer::Host for ModuleState {
    fn describe(&mut self, key: String) -> wasmtime::Result<Result<old::signer::KeyInfo, String>> {
        Ok(signer::Host::describe(self, key)?
            .map(|info| old::signer::KeyInfo { kid: info.kid, alg: info.alg }))
    }

    fn sign(&mut self, key: String, tbs: Vec<u8>) -> wasmtime::Result<Result<Vec<u8>, String>> {
        signer::Host::sign(self, key, tbs)
    }
}

impl old::sealer::Host for ModuleState {
    fn seal(
        &mut self,
        recipients: String,
        aad: Vec<u8>,
        plaintext: Vec<u8>,
    ) -> wasmtime::Result<Result<Vec<u8>, String>> {
        sealer::Host::seal(self, recipients, aad, plaintext)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::bindings::Hop;
    use std::sync::Arc;

    /// What a 0.1 rule receives is the whole message; what it forwards comes back whole.
    #[test]
    fn messages_round_trip() {
        let msg = Message {
            reading: Reading {
                sensor: "room".into(),
                address: "A4:C1:38:00:00:01".into(),
                seq: Some(7),
                sensor_time_ms: None,
                received_ms: 1_000,
                rssi: Some(-60),
                authenticity: Authenticity::MicVerified,
                measurements: vec![Measurement {
                    name: "temperature".into(),
                    unit: "Cel".into(),
                    value: 21.5,
                }],
            },
            envelope: Envelope { content_type: "application/senml+cbor".into(), body: vec![1, 2, 3] },
            path: vec![Arc::new(Hop { module: "alarm".into(), sha256: vec![0xaa; 32] })],
        };
        let original = msg.clone();
        let mut old_msg = message_for_v0_1(&msg);
        assert_eq!(old_msg.reading.seq, Some(7));
        assert_eq!(old_msg.path[0].module, "alarm");
        old_msg.reading.measurements[0].value = 22.0;
        old_msg.envelope.body = vec![9];
        old_msg.path.clear();
        let alarm = old::types::Alarm {
            sensor: "room".into(),
            code: "warm".into(),
            severity: old::types::Severity::Warning,
            state: old::types::AlarmState::Raised,
            text: "warm".into(),
        };
        let outcome = old::types::Outcome {
            verdict: old::types::Verdict::Forward(old_msg),
            effects: old::types::Effects { alarms: vec![alarm], commands: Vec::new() },
        };
        let mut lent = Lent::new(msg);
        let outcome = outcome_from_v0_1(outcome, &mut lent);
        assert_eq!(outcome.verdict, Verdict::Forward);
        let msg = lent.forwarded();
        assert_eq!(outcome.effects.alarms[0].severity, Severity::Warning);
        assert_eq!(msg.reading.measurements[0].value, 22.0);
        assert_eq!(msg.envelope.body, vec![9]);
        assert_eq!(msg.path, original.path, "the path is the gateway's");
        assert_eq!(msg.reading.address, original.reading.address);
    }
}

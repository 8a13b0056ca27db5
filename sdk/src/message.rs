//! The message a rule is called with, and what the rule says about it.

use crate::bindings::edgeward::policy::types as wit;
use crate::{Authenticity, Effects, Envelope, Hop, Measurement, Reading};
use std::cell::OnceCell;
use std::mem::ManuallyDrop;

/// A message on its way through the pipeline: a reading, and the bytes that
/// will leave the gateway for it.
///
/// In the gateway the message stays in the host, and each accessor asks for
/// what it returns the first time it is called (the answer is kept for the
/// rest of the call): a rule that looks at one value copies one value.
/// Changes ([`Message::reading_mut`], [`Message::set_envelope`] ...) are
/// made here and handed to the gateway when the rule forwards the message;
/// dropping it, returning an error or trapping discards them. A `Message`
/// the gateway lent is valid only during the `process` call it came with:
/// do not keep it.
///
/// A message made with [`Message::from_reading`] (in tests, natively) holds
/// its data itself.
pub struct Message {
    /// The gateway's message this one reads through; `None` when made here.
    lent: Option<ManuallyDrop<wit::Message>>,
    sensor: OnceCell<String>,
    reading: OnceCell<Reading>,
    envelope: OnceCell<Envelope>,
    path: OnceCell<Vec<Hop>>,
    /// Changed here, not yet handed to the gateway.
    reading_changed: bool,
    envelope_changed: bool,
}

impl Message {
    /// A message for `reading`, with an empty envelope and path; handy in tests.
    pub fn from_reading(reading: Reading) -> Self {
        Message {
            lent: None,
            sensor: OnceCell::new(),
            reading: OnceCell::from(reading),
            envelope: OnceCell::from(Envelope { content_type: String::new(), body: Vec::new() }),
            path: OnceCell::from(Vec::new()),
            reading_changed: false,
            envelope_changed: false,
        }
    }

    /// This message with `envelope`; handy in tests.
    pub fn with_envelope(mut self, envelope: Envelope) -> Self {
        self.set_envelope(envelope);
        self
    }

    /// This message as if it had passed through `path`; handy in tests (in
    /// the gateway the path is the gateway's record, which no rule changes).
    pub fn with_path(mut self, path: Vec<Hop>) -> Self {
        self.path = OnceCell::from(path);
        self
    }

    /// The gateway's message, borrowed for one `process` call.
    pub(crate) fn lent(handle: u32) -> Self {
        Message {
            lent: Some(borrowed(handle)),
            sensor: OnceCell::new(),
            reading: OnceCell::new(),
            envelope: OnceCell::new(),
            path: OnceCell::new(),
            reading_changed: false,
            envelope_changed: false,
        }
    }

    fn remote(&self) -> &wit::Message {
        self.lent.as_deref().expect("a message made by the rule holds all its data")
    }

    /// The name of the sensor the reading came from.
    pub fn sensor(&self) -> &str {
        match self.reading.get() {
            Some(reading) => &reading.sensor,
            None => self.sensor.get_or_init(|| self.remote().sensor()),
        }
    }

    /// When the gateway received the reading (ms since the Unix epoch).
    pub fn received_ms(&self) -> u64 {
        match self.reading.get() {
            Some(reading) => reading.received_ms,
            None => self.remote().received_ms(),
        }
    }

    /// How far the gateway could establish where the reading came from.
    pub fn authenticity(&self) -> Authenticity {
        match self.reading.get() {
            Some(reading) => reading.authenticity,
            None => self.remote().authenticity(),
        }
    }

    /// The value of the first measurement called `name` whose value is
    /// finite (NaN or infinity says nothing about the quantity).
    pub fn value(&self, name: &str) -> Option<f64> {
        self.finite_value(name, None)
    }

    /// Like [`Message::value`], in `unit` only (SenML symbols such as `Cel`,
    /// `%RH`). A value in another unit is not converted: it is `None`, so a
    /// rule never compares °F with °C.
    pub fn value_in(&self, name: &str, unit: &str) -> Option<f64> {
        self.finite_value(name, Some(unit))
    }

    /// From the reading when it is here already, else one question to the gateway.
    fn finite_value(&self, name: &str, unit: Option<&str>) -> Option<f64> {
        match self.reading.get() {
            Some(reading) => reading.finite_value(name, unit),
            None => self.remote().value(name, unit),
        }
    }

    /// The state of the binary sensor `name` (BTHome `door`, `opening`,
    /// `window`, `motion` ...: unitless 0 or 1): `Some(true)` for 1 (open,
    /// detected, on), `Some(false)` for 0, `None` when the reading has no
    /// unitless measurement of that name.
    pub fn flag(&self, name: &str) -> Option<bool> {
        self.value_in(name, "").map(|v| v != 0.0)
    }

    /// The whole reading.
    pub fn reading(&self) -> &Reading {
        self.reading.get_or_init(|| self.remote().reading())
    }

    /// The reading, to change (filter, round, strip fields). The envelope
    /// does not follow: a rule that changes values must rebuild the body too.
    pub fn reading_mut(&mut self) -> &mut Reading {
        self.reading();
        self.reading_changed = true;
        self.reading.get_mut().expect("just read")
    }

    /// The envelope: the bytes that go upstream.
    pub fn envelope(&self) -> &Envelope {
        self.envelope.get_or_init(|| self.remote().envelope())
    }

    /// The envelope, to change.
    pub fn envelope_mut(&mut self) -> &mut Envelope {
        self.envelope();
        self.envelope_changed = true;
        self.envelope.get_mut().expect("just read")
    }

    /// Replace the envelope (a rule that signs or seals does).
    pub fn set_envelope(&mut self, envelope: Envelope) {
        self.envelope = OnceCell::from(envelope);
        self.envelope_changed = true;
    }

    /// The modules this message has passed through, in order, ending with
    /// the one being called.
    pub fn path(&self) -> &[Hop] {
        self.path.get_or_init(|| self.remote().path())
    }

    /// Add a measurement to the reading.
    pub fn add_measurement(&mut self, measurement: Measurement) {
        self.reading_mut().measurements.push(measurement);
    }

    /// Keep only the measurements for which `keep` is true.
    pub fn retain_measurements(&mut self, keep: impl FnMut(&Measurement) -> bool) {
        self.reading_mut().measurements.retain(keep);
    }

    /// Hand this message's changes to the gateway's message `handle`: a
    /// message the rule made (or cloned) replaces its reading and envelope.
    fn write_into(&self, handle: u32) {
        let own = self.lent.as_ref().is_some_and(|lent| lent.handle() == handle);
        let lent = borrowed(handle);
        if !own || self.reading_changed {
            lent.set_reading(self.reading());
        }
        if !own || self.envelope_changed {
            lent.set_envelope(self.envelope());
        }
    }
}

/// The gateway's message `handle`, as the borrow it is.
fn borrowed(handle: u32) -> ManuallyDrop<wit::Message> {
    // SAFETY: `handle` is the borrow the gateway passed to `process`, valid
    // for the call; `ManuallyDrop` keeps it from being dropped as if owned.
    ManuallyDrop::new(unsafe { wit::Message::from_handle(handle) })
}

/// A copy holding its data itself (it reads everything from the gateway first).
impl Clone for Message {
    fn clone(&self) -> Self {
        Message::from_reading(self.reading().clone())
            .with_envelope(self.envelope().clone())
            .with_path(self.path().to_vec())
    }
}

impl PartialEq for Message {
    fn eq(&self, other: &Self) -> bool {
        self.reading() == other.reading()
            && self.envelope() == other.envelope()
            && self.path() == other.path()
    }
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Message")
            .field("reading", self.reading())
            .field("envelope", self.envelope())
            .field("path", &self.path())
            .finish()
    }
}

/// What happens to the message after this rule.
// One per call, returned at once: boxing the message would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Hand the message, with this rule's changes, to the next rule (or to
    /// the uplink after the last).
    Forward(Message),
    /// Stop here; the reason is counted and logged.
    Drop(String),
}

/// A rule's answer to one message: a verdict, and effects delivered whatever the verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// What happens to the message.
    pub verdict: Verdict,
    /// Alarms and commands, delivered whatever the verdict.
    pub effects: Effects,
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
    pub fn with_alarm(mut self, alarm: crate::Alarm) -> Self {
        self.effects.alarms.push(alarm);
        self
    }

    /// Add a command to this outcome.
    pub fn with_command(mut self, command: crate::Command) -> Self {
        self.effects.commands.push(command);
        self
    }

    /// The outcome as the contract carries it, the forwarded message's
    /// changes written into the gateway's message `handle`.
    pub(crate) fn into_wit(self, handle: u32) -> wit::Outcome {
        let verdict = match self.verdict {
            Verdict::Forward(msg) => {
                msg.write_into(handle);
                wit::Verdict::Forward
            }
            Verdict::Drop(reason) => wit::Verdict::Drop(reason),
        };
        wit::Outcome { verdict, effects: self.effects }
    }
}

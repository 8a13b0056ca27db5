//! Sinks: where the pipeline's output goes. Three kinds of record leave the
//! pipelines: uplink messages (what a profile forwarded), alarms and actuator
//! commands. Each kind has its own sink, configured in `[uplink]`, `[alarm]`
//! and `[actuator]`, running as its own task behind a channel, so a slow sink
//! never holds up a pipeline and new sink types slot in behind [`Sink`].

mod jsonl;
pub mod mqtt;
pub mod outbox;

pub use jsonl::{FileSink, NullSink, StdoutSink};

use crate::clock::format_rfc3339_ms;
use crate::config::{Loaded, SinkConfig};
use crate::pipeline::bindings::{Alarm, Command, Message};
use crate::telemetry::Counters;
use base64::Engine as _;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// How many records may wait for a sink before pipelines wait for it.
const SINK_QUEUE: usize = 1024;

/// One piece of output.
#[derive(Debug, Clone)]
pub enum Record {
    /// A message a profile forwarded, for the uplink. `entered`: when its
    /// frame entered the gateway, for the latency statistics.
    Uplink { id: String, topic: String, profile: String, entered: Option<Instant>, message: Message },
    /// A local alarm; `entered` as above, None when raised by a tick.
    Alarm { profile: String, at_ms: u64, entered: Option<Instant>, alarm: Alarm },
    /// A command for a local actuator.
    Command { profile: String, at_ms: u64, command: Command },
}

impl Record {
    /// The record as one JSON object (the JSON-lines format).
    pub fn to_json(&self) -> Value {
        match self {
            Record::Uplink { id, topic, profile, message, .. } if message.is_sealed() => json!({
                // Sealed: only what the broker would see.
                "kind": "uplink",
                "id": id,
                "topic": topic,
                "profile": profile,
                "content_type": message.envelope.content_type,
                "body": base64::engine::general_purpose::STANDARD.encode(&message.envelope.body),
            }),
            Record::Uplink { id, topic, profile, message, .. } => {
                let r = &message.reading;
                json!({
                    "kind": "uplink",
                    "id": id,
                    "topic": topic,
                    "profile": profile,
                    "sensor": r.sensor,
                    "address": r.address,
                    "received": format_rfc3339_ms(r.received_ms),
                    "seq": r.seq,
                    "rssi": r.rssi,
                    "authenticity": r.authenticity.as_str(),
                    "measurements": r.measurements.iter()
                        .map(|m| json!({"name": m.name, "unit": m.unit, "value": m.value}))
                        .collect::<Vec<_>>(),
                    "content_type": message.envelope.content_type,
                    "body": base64::engine::general_purpose::STANDARD.encode(&message.envelope.body),
                })
            }
            Record::Alarm { profile, at_ms, alarm, .. } => json!({
                "kind": "alarm",
                "profile": profile,
                "at": format_rfc3339_ms(*at_ms),
                "sensor": alarm.sensor,
                "code": alarm.code,
                "severity": alarm.severity.as_str(),
                "state": alarm.state.as_str(),
                "text": alarm.text,
            }),
            Record::Command { profile, at_ms, command } => json!({
                "kind": "command",
                "profile": profile,
                "at": format_rfc3339_ms(*at_ms),
                "actuator": command.actuator,
                "payload": command.payload,
            }),
        }
    }

    /// The record with its id inside the envelope, where consumers read
    /// it: under the private label `msg-id` (-65542) of a COSE message's
    /// unprotected header, which keeps signatures and seals valid. Other
    /// bodies stay as the rules made them (a consumer's parser must not
    /// meet fields it does not know); MQTT 5 carries every id as the user
    /// property `msg-id`, and the JSON-lines sinks as `id`.
    pub fn with_id_in_envelope(mut self) -> Self {
        if let Record::Uplink { id, message, .. } = &mut self
            && message.envelope.content_type.starts_with("application/cose")
        {
            match edgeward_formats::cose::set_message_id(&message.envelope.body, id) {
                Ok(body) => message.envelope.body = body,
                // Sent as it is: the id is a convenience, the message is the data.
                Err(e) => tracing::warn!(msg_id = %id, "message id not added to the envelope: {e}"),
            }
        }
        self
    }

    /// The record as one short line for a person.
    pub fn to_text(&self) -> String {
        match self {
            Record::Uplink { topic, message, .. } if message.is_sealed() => format!(
                "{} uplink  {topic}  sealed  [{}, {} B]",
                format_rfc3339_ms(message.reading.received_ms),
                message.envelope.content_type,
                message.envelope.body.len()
            ),
            Record::Uplink { topic, message, .. } => {
                let r = &message.reading;
                let values: Vec<String> = r
                    .measurements
                    .iter()
                    .map(|m| {
                        format!(
                            "{}={}{}{}",
                            m.name,
                            m.value,
                            if m.unit.is_empty() { "" } else { " " },
                            m.unit
                        )
                    })
                    .collect();
                format!(
                    "{} uplink  {topic}  {}  [{}, {} B]",
                    format_rfc3339_ms(r.received_ms),
                    values.join("  "),
                    message.envelope.content_type,
                    message.envelope.body.len()
                )
            }
            Record::Alarm { at_ms, alarm, .. } => format!(
                "{} ALARM   {} {} {}/{}: {}",
                format_rfc3339_ms(*at_ms),
                alarm.state.as_str(),
                alarm.severity.as_str(),
                alarm.sensor,
                alarm.code,
                alarm.text
            ),
            Record::Command { at_ms, command, .. } => {
                format!("{} command {} {}", format_rfc3339_ms(*at_ms), command.actuator, command.payload)
            }
        }
    }
}

/// Why a sink could not take a record.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("{sink}: {source}")]
    Io {
        sink: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{sink} ({url}): {source}")]
    Mqtt {
        sink: &'static str,
        url: String,
        #[source]
        source: Box<mqtt::MqttError>,
    },
}

/// A destination for records of one kind.
pub trait Sink: Send + 'static {
    /// Deliver one record.
    fn write(&mut self, record: &Record) -> Result<(), SinkError>;
    /// Make everything written so far durable or visible.
    fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
    /// The last call, at shutdown: finish what is under way.
    fn close(&mut self) -> Result<(), SinkError> {
        self.flush()
    }
}

/// Build the alarm or actuator sink a config section describes (the
/// uplink's MQTT sink needs the outbox: see `topology`).
pub fn from_config(
    config: &SinkConfig,
    loaded: &Loaded,
    kind: &'static str,
) -> Result<Box<dyn Sink>, SinkError> {
    Ok(match config {
        SinkConfig::Stdout { format } => Box::new(StdoutSink::new(*format)),
        SinkConfig::File { path } => Box::new(FileSink::open(&loaded.resolve(path), kind)?),
        SinkConfig::Mqtt(mqtt) => Box::new(
            mqtt::LocalSink::start(&mqtt.resolved(|p| loaded.resolve(p)), &loaded.config.gateway.id, kind)
                .map_err(|e| SinkError::Mqtt {
                    sink: kind,
                    url: mqtt.url().to_string(),
                    source: Box::new(e),
                })?,
        ),
        SinkConfig::None {} => Box::new(NullSink),
    })
}

/// The senders of the three sinks; dropping them lets the sinks drain and stop.
#[derive(Clone)]
pub struct SinkSet {
    pub uplink: mpsc::Sender<Record>,
    pub alarm: mpsc::Sender<Record>,
    pub actuator: mpsc::Sender<Record>,
}

impl SinkSet {
    /// The sender for `record`'s kind.
    pub fn route(&self, record: &Record) -> &mpsc::Sender<Record> {
        match record {
            Record::Uplink { .. } => &self.uplink,
            Record::Alarm { .. } => &self.alarm,
            Record::Command { .. } => &self.actuator,
        }
    }
}

/// Run `sink` on a blocking thread, fed by the returned sender; the task
/// flushes when its queue runs dry and closes the sink when every sender is gone.
/// An alarm's latency (frame entered → handed to its sink's transport) is
/// recorded in `counters`.
pub fn spawn(
    kind: &'static str,
    mut sink: Box<dyn Sink>,
    counters: Arc<Counters>,
) -> (mpsc::Sender<Record>, JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<Record>(SINK_QUEUE);
    let handle = tokio::task::spawn_blocking(move || {
        while let Some(record) = rx.blocking_recv() {
            let record = record.with_id_in_envelope();
            match sink.write(&record) {
                Err(e) => tracing::error!(sink = kind, "record lost: {e}"),
                Ok(()) => {
                    if let Record::Alarm { entered: Some(entered), .. } = &record {
                        counters.latency_to_alarm.record(entered.elapsed());
                    }
                }
            }
            if rx.is_empty()
                && let Err(e) = sink.flush()
            {
                tracing::error!(sink = kind, "{e}");
            }
        }
        if let Err(e) = sink.close() {
            tracing::error!(sink = kind, "{e}");
        }
    });
    (tx, handle)
}

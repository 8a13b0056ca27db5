//! Decoding: a raw frame from a source becomes a [`Message`]: a reading with
//! the measurements the sensor sent, and the envelope that will go upstream
//! (for BTHome sensors, SenML-CBOR made by the gateway). Pure functions on
//! bytes; the same path serves real radios and the simulator.

pub mod bthome;
pub mod senml;

use crate::config::SensorFormat;
use crate::pipeline::bindings::{Authenticity, Envelope, Measurement, Message, Reading};

/// What a source hands to the decoder.
#[derive(Debug, Clone)]
pub struct Frame {
    /// The sender's Bluetooth address.
    pub address: [u8; 6],
    /// Received signal strength, when the radio reports it.
    pub rssi: Option<i16>,
    /// When the gateway received it (gateway clock, ms since the Unix epoch).
    pub received_ms: u64,
    pub payload: Payload,
}

/// The bytes of a frame, by what carried them.
#[derive(Debug, Clone)]
pub enum Payload {
    /// Advertisement service data for a 16-bit service UUID.
    ServiceData { uuid16: u16, data: Vec<u8> },
}

/// Why a frame could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("BTHome: {0}")]
    Bthome(#[from] bthome::BthomeError),
    #[error("service data for UUID {uuid16:#06x} is not BTHome (0xfcd2)")]
    NotBthome { uuid16: u16 },
    #[error("the packet carries no measurements")]
    Empty,
}

/// The sensor a frame belongs to, as far as decoding needs to know.
pub struct SensorRef<'a> {
    pub name: &'a str,
    pub address: &'a str,
    pub format: SensorFormat,
}

/// Decode `frame` from `sensor` into a message.
pub fn decode_frame(frame: &Frame, sensor: &SensorRef<'_>) -> Result<Message, DecodeError> {
    match (&frame.payload, sensor.format) {
        (Payload::ServiceData { uuid16, data }, SensorFormat::Bthome) => {
            if *uuid16 != bthome::SERVICE_UUID16 {
                return Err(DecodeError::NotBthome { uuid16: *uuid16 });
            }
            let packet = bthome::decode(data, None, Some(frame.address))?;
            if packet.values.is_empty() {
                return Err(DecodeError::Empty);
            }
            let measurements = packet
                .values
                .iter()
                .map(|v| Measurement { name: v.name.to_string(), unit: v.unit.to_string(), value: v.value })
                .collect();
            let reading = Reading {
                sensor: sensor.name.to_string(),
                address: sensor.address.to_string(),
                seq: packet.packet_id.map(u64::from).or(packet.counter.map(u64::from)),
                sensor_time_ms: None,
                received_ms: frame.received_ms,
                rssi: frame.rssi,
                authenticity: if packet.encrypted { Authenticity::MicVerified } else { Authenticity::None },
                measurements,
            };
            let envelope =
                Envelope { content_type: senml::CONTENT_TYPE.to_string(), body: senml::encode(&reading) };
            Ok(Message { reading, envelope })
        }
    }
}

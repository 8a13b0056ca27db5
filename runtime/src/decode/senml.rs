//! SenML (RFC 8428) in CBOR: the payload the gateway makes for readings that
//! did not arrive already signed. Integer labels per RFC 8428 §6: base name
//! -2, base time -3, name 0, unit 1, value 2.

use crate::pipeline::bindings::{Measurement, Reading};
use ciborium::Value;

/// The media type of SenML-CBOR (RFC 8428 §12.3).
pub const CONTENT_TYPE: &str = "application/senml+cbor";

const BASE_NAME: i64 = -2;
const BASE_TIME: i64 = -3;
const NAME: i64 = 0;
const UNIT: i64 = 1;
const VALUE: i64 = 2;

/// Why bytes are not the SenML-CBOR this gateway reads.
#[derive(Debug, thiserror::Error)]
pub enum SenmlError {
    #[error("not CBOR: {0}")]
    Cbor(String),
    #[error("not a SenML pack: {0}")]
    Shape(&'static str),
}

/// The SenML pack for `reading`: a base name from the sensor's address
/// (`urn:dev:mac:…:`), the base time it was received (seconds), then one
/// record per measurement.
pub fn encode(reading: &Reading) -> Vec<u8> {
    let mac: String = reading.address.chars().filter(|c| *c != ':').collect::<String>().to_lowercase();
    let records = reading.measurements.iter().enumerate().map(|(i, m)| {
        let mut fields = Vec::with_capacity(5);
        if i == 0 {
            fields.push((int(BASE_NAME), Value::Text(format!("urn:dev:mac:{mac}:"))));
            fields.push((int(BASE_TIME), Value::Float(reading.received_ms as f64 / 1000.0)));
        }
        fields.push((int(NAME), Value::Text(m.name.clone())));
        if !m.unit.is_empty() {
            fields.push((int(UNIT), Value::Text(m.unit.clone())));
        }
        fields.push((int(VALUE), Value::Float(m.value)));
        Value::Map(fields)
    });
    let mut out = Vec::with_capacity(32 + 24 * reading.measurements.len());
    ciborium::into_writer(&Value::Array(records.collect()), &mut out).expect("writing CBOR to memory");
    out
}

/// The measurements and base time (ms) of a SenML-CBOR pack.
pub fn decode(bytes: &[u8]) -> Result<(Vec<Measurement>, Option<u64>), SenmlError> {
    let value: Value = ciborium::from_reader(bytes).map_err(|e| SenmlError::Cbor(e.to_string()))?;
    let Value::Array(records) = value else {
        return Err(SenmlError::Shape("the top level is not an array"));
    };
    let mut base_time = None;
    let mut measurements = Vec::with_capacity(records.len());
    for record in records {
        let Value::Map(fields) = record else {
            return Err(SenmlError::Shape("a record is not a map"));
        };
        let (mut name, mut unit, mut value) = (None, String::new(), None);
        for (label, field) in fields {
            let label = label.as_integer().and_then(|i| i64::try_from(i).ok());
            match (label, field) {
                (Some(BASE_TIME), v) => base_time = number(&v).map(|s| (s * 1000.0) as u64),
                (Some(NAME), Value::Text(n)) => name = Some(n),
                (Some(UNIT), Value::Text(u)) => unit = u,
                (Some(VALUE), v) => value = number(&v),
                _ => {}
            }
        }
        match (name, value) {
            (Some(name), Some(value)) => measurements.push(Measurement { name, unit, value }),
            _ => {
                return Err(SenmlError::Shape("a record lacks a name or a numeric value"));
            }
        }
    }
    Ok((measurements, base_time))
}

fn int(label: i64) -> Value {
    Value::Integer(label.into())
}

fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Float(f) => Some(*f),
        Value::Integer(i) => i64::try_from(*i).ok().map(|i| i as f64),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::bindings::Authenticity;

    fn reading() -> Reading {
        Reading {
            sensor: "living-room".into(),
            address: "A4:C1:38:00:00:01".into(),
            seq: None,
            sensor_time_ms: None,
            received_ms: 1_768_456_800_250,
            rssi: None,
            authenticity: Authenticity::None,
            measurements: vec![
                Measurement { name: "temperature".into(), unit: "Cel".into(), value: 21.5 },
                Measurement { name: "door".into(), unit: String::new(), value: 1.0 },
            ],
        }
    }

    /// A reading survives encoding and decoding, base time included.
    #[test]
    fn round_trip() {
        let bytes = encode(&reading());
        let (measurements, base_time) = decode(&bytes).unwrap();
        assert_eq!(measurements, reading().measurements);
        assert_eq!(base_time, Some(1_768_456_800_250));
    }

    /// The first record carries the RFC 8428 base name with integer label -2.
    #[test]
    fn uses_rfc8428_labels() {
        let value: Value = ciborium::from_reader(&encode(&reading())[..]).unwrap();
        let first = &value.as_array().unwrap()[0];
        let base_name = first.as_map().unwrap().iter().find(|(k, _)| k == &int(BASE_NAME)).unwrap();
        assert_eq!(base_name.1, Value::Text("urn:dev:mac:a4c138000001:".into()));
    }

    /// Garbage is an error, not a panic.
    #[test]
    fn garbage_is_an_error() {
        assert!(decode(&[0xff, 0x00, 0x13]).is_err());
        assert!(decode(&[0x01]).is_err());
    }
}

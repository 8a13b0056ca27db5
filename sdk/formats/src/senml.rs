//! SenML (RFC 8428) in CBOR: the payload of every signed edgeward message.
//! Integer labels per RFC 8428 §6: base name -2, base time -3, name 0,
//! unit 1, value 2.
//!
//! A pack is an array of records (maps). The first record carries the base
//! name `urn:dev:mac:<12 lowercase hex digits>:` (from the sensor's BLE
//! address) and the base time in seconds (a float, so milliseconds survive);
//! every record carries a name, a unit when there is one, and a numeric
//! value.

use crate::FormatError;
use ciborium::Value;

/// The media type of SenML-CBOR (RFC 8428 §12.3).
pub const CONTENT_TYPE: &str = "application/senml+cbor";

const BASE_NAME: i64 = -2;
const BASE_TIME: i64 = -3;
const NAME: i64 = 0;
const UNIT: i64 = 1;
const VALUE: i64 = 2;

/// One measured quantity of a reading.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    /// What was measured, e.g. `temperature`.
    pub name: String,
    /// The SenML unit, e.g. `Cel`; empty for none.
    pub unit: String,
    /// The value.
    pub value: f64,
}

/// The SenML pack for `measurements`: a base name from the sensor's BLE
/// address `base_name_mac` (`"A4:C1:38:00:00:01"` becomes
/// `urn:dev:mac:a4c138000001:`), the base time it was received
/// (`base_time_ms`, written as seconds), then one record per measurement.
pub fn encode(base_name_mac: &str, base_time_ms: u64, measurements: &[Measurement]) -> Vec<u8> {
    let mac: String = base_name_mac.chars().filter(|c| *c != ':').collect::<String>().to_lowercase();
    encode_with_base_name(Some(&format!("urn:dev:mac:{mac}:")), base_time_ms, measurements)
}

/// The SenML pack for `measurements` under any base name, or none: for a
/// pack that must not say which device it came from.
pub fn encode_with_base_name(
    base_name: Option<&str>,
    base_time_ms: u64,
    measurements: &[Measurement],
) -> Vec<u8> {
    let records = measurements.iter().enumerate().map(|(i, m)| {
        let mut fields = Vec::with_capacity(5);
        if i == 0 {
            if let Some(base_name) = base_name {
                fields.push((int(BASE_NAME), Value::Text(base_name.to_string())));
            }
            fields.push((int(BASE_TIME), Value::Float(base_time_ms as f64 / 1000.0)));
        }
        fields.push((int(NAME), Value::Text(m.name.clone())));
        if !m.unit.is_empty() {
            fields.push((int(UNIT), Value::Text(m.unit.clone())));
        }
        fields.push((int(VALUE), Value::Float(m.value)));
        Value::Map(fields)
    });
    let mut out = Vec::with_capacity(32 + 24 * measurements.len());
    // Writing a Value into a Vec cannot fail: the only I/O is growing the Vec.
    ciborium::into_writer(&Value::Array(records.collect()), &mut out).expect("writing CBOR to memory");
    out
}

/// A decoded SenML pack, as far as edgeward reads one.
#[derive(Debug, Clone, PartialEq)]
pub struct Pack {
    /// The base name (RFC 8428 `bn`), e.g. `urn:dev:mac:a4c138000001:`.
    pub base_name: Option<String>,
    /// The base time (`bt`) in ms since the Unix epoch.
    pub base_time_ms: Option<u64>,
    /// The records' names, units and values.
    pub measurements: Vec<Measurement>,
}

/// Decode a SenML-CBOR pack.
///
/// ciborium grows its buffers as bytes actually arrive (it never reserves
/// memory from a length field), so hostile lengths cost nothing.
pub fn decode(bytes: &[u8]) -> Result<Pack, FormatError> {
    let value: Value = ciborium::from_reader(bytes).map_err(|e| FormatError::SenmlCbor(e.to_string()))?;
    let Value::Array(records) = value else {
        return Err(FormatError::SenmlShape("the top level is not an array"));
    };
    let mut base_time = None;
    let mut base_name = None;
    let mut measurements = Vec::with_capacity(records.len());
    for record in records {
        let Value::Map(fields) = record else {
            return Err(FormatError::SenmlShape("a record is not a map"));
        };
        let (mut name, mut unit, mut value) = (None, String::new(), None);
        for (label, field) in fields {
            let label = label.as_integer().and_then(|i| i64::try_from(i).ok());
            match (label, field) {
                (Some(BASE_TIME), v) => base_time = number(&v).map(|s| (s * 1000.0).round() as u64),
                (Some(BASE_NAME), Value::Text(n)) => base_name = Some(n),
                (Some(NAME), Value::Text(n)) => name = Some(n),
                (Some(UNIT), Value::Text(u)) => unit = u,
                (Some(VALUE), v) => value = number(&v),
                _ => {}
            }
        }
        match (name, value) {
            (Some(name), Some(value)) => measurements.push(Measurement { name, unit, value }),
            _ => {
                return Err(FormatError::SenmlShape("a record lacks a name or a numeric value"));
            }
        }
    }
    Ok(Pack { base_name, base_time_ms: base_time, measurements })
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

    const MAC: &str = "A4:C1:38:00:00:01";
    const RECEIVED_MS: u64 = 1_768_456_800_250;

    fn measurements() -> Vec<Measurement> {
        vec![
            Measurement { name: "temperature".into(), unit: "Cel".into(), value: 21.5 },
            Measurement { name: "door".into(), unit: String::new(), value: 1.0 },
        ]
    }

    /// A reading survives encoding and decoding, base time included.
    #[test]
    fn round_trip() {
        let bytes = encode(MAC, RECEIVED_MS, &measurements());
        let pack = decode(&bytes).unwrap();
        let (decoded, base_time) = (pack.measurements, pack.base_time_ms);
        assert_eq!(pack.base_name.as_deref(), Some("urn:dev:mac:a4c138000001:"));
        assert_eq!(decoded, measurements());
        assert_eq!(base_time, Some(RECEIVED_MS));
    }

    /// The first record carries the RFC 8428 base name with integer label -2.
    #[test]
    fn uses_rfc8428_labels() {
        let value: Value = ciborium::from_reader(&encode(MAC, RECEIVED_MS, &measurements())[..]).unwrap();
        let first = &value.as_array().unwrap()[0];
        let base_name = first.as_map().unwrap().iter().find(|(k, _)| k == &int(BASE_NAME)).unwrap();
        assert_eq!(base_name.1, Value::Text("urn:dev:mac:a4c138000001:".into()));
    }

    /// A pack without a base name decodes with none, values and time intact.
    #[test]
    fn round_trip_without_base_name() {
        let pack = decode(&encode_with_base_name(None, RECEIVED_MS, &measurements())).unwrap();
        assert_eq!(pack.base_name, None);
        assert_eq!(pack.measurements, measurements());
        assert_eq!(pack.base_time_ms, Some(RECEIVED_MS));
    }

    /// Garbage is an error, not a panic.
    #[test]
    fn garbage_is_an_error() {
        assert!(decode(&[0xff, 0x00, 0x13]).is_err());
        assert!(decode(&[0x01]).is_err());
    }

    /// A byte string claiming 4 GiB in a 5-byte input is an error, not an allocation.
    #[test]
    fn huge_length_is_an_error() {
        assert!(decode(&[0x9a, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(decode(&[0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).is_err());
    }
}

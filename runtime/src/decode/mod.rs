//! Decoding: a raw frame from a source becomes a [`Message`]: a reading with
//! the measurements the sensor sent, and the envelope that will go upstream
//! (for BTHome sensors, SenML-CBOR made by the gateway). Pure functions on
//! bytes; the same path serves real radios and the simulator.

pub use edgeward_formats::bthome;

use crate::config::SensorFormat;
use crate::pipeline::bindings::{Authenticity, Envelope, Measurement, Message, Reading};
use ed25519_dalek::{Signature, VerifyingKey};
use edgeward_formats::{FormatError, cose, senml};
use std::time::Instant;

/// The media type of a COSE_Sign1 envelope (RFC 9052 §2).
pub const COSE_SIGN1: &str = "application/cose; cose-type=\"cose-sign1\"";

/// What a source hands to the decoder.
#[derive(Debug, Clone)]
pub struct Frame {
    /// The sender's Bluetooth address.
    pub address: [u8; 6],
    /// Received signal strength, when the radio reports it.
    pub rssi: Option<i16>,
    /// When the gateway received it (gateway clock, ms since the Unix epoch).
    pub received_ms: u64,
    /// When the source made it (monotonic): the start of the latency the
    /// gateway reports to the outbox and to local alarms.
    pub entered: Instant,
    pub payload: Payload,
}

/// The bytes of a frame, by what carried them.
#[derive(Debug, Clone)]
pub enum Payload {
    /// Advertisement service data for a 16-bit service UUID.
    ServiceData { uuid16: u16, data: Vec<u8> },
    /// A GATT notification of the edgeward sensor service's reading characteristic.
    Notification { data: Vec<u8> },
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
    #[error("signed reading: {0}")]
    Cose(#[from] FormatError),
    #[error("signed reading: kid {found:?} is not this sensor's ({expected:?})")]
    UnknownKid { found: String, expected: String },
    #[error("signed reading: no counter in the protected header")]
    NoCounter,
    #[error("signed reading: signature does not verify with the sensor's key")]
    BadSignature,
    #[error("downgrade: a signed or encrypting sensor sent a plain advertisement")]
    Downgrade,
    #[error("a BTHome sensor sent a GATT notification")]
    UnexpectedNotification,
}

impl DecodeError {
    /// A short label for counters: what kind of rejection this is.
    pub fn kind(&self) -> &'static str {
        match self {
            DecodeError::BadSignature => "bad-signature",
            DecodeError::UnknownKid { .. } => "unknown-kid",
            DecodeError::Downgrade => "downgrade",
            DecodeError::Cose(_) | DecodeError::NoCounter => "malformed-cose",
            _ => "malformed",
        }
    }
}

/// The sensor a frame belongs to, as far as decoding needs to know.
pub struct SensorRef<'a> {
    pub name: &'a str,
    pub address: &'a str,
    pub format: SensorFormat,
    /// The key id its signatures carry.
    pub kid: &'a str,
    /// Its production public key, for signed sensors.
    pub key: Option<&'a VerifyingKey>,
    /// Its BTHome bindkey, for encrypted advertisements.
    pub bindkey: Option<&'a [u8; 16]>,
}

/// Decode `frame` from `sensor` into a message, verifying its signature.
pub fn decode_frame(frame: &Frame, sensor: &SensorRef<'_>) -> Result<Message, DecodeError> {
    let (message, check) = decode_unverified(frame, sensor)?;
    match check {
        Some(check) if !check.verify() => Err(DecodeError::BadSignature),
        _ => Ok(message),
    }
}

/// A sensor's signature, still to be verified (see [`verify_all`]).
pub struct SignatureCheck {
    key: VerifyingKey,
    tbs: Vec<u8>,
    signature: Signature,
}

impl SignatureCheck {
    /// Verify this one signature (RFC 8032 with the strict checks).
    pub fn verify(&self) -> bool {
        self.key.verify_strict(&self.tbs, &self.signature).is_ok()
    }
}

/// Verify several signatures at once: one batch verification (about half
/// the cost of verifying each), and only if the batch fails, each one on its
/// own to find which. So a forged signature is never accepted and a valid
/// one never refused because it shared a batch with a forgery. True for each
/// signature that verifies.
///
/// The batch equation is the same cofactorless one `verify_strict` checks;
/// what `verify_strict` adds, refusing small-order points, matters for keys,
/// and sensor keys are checked for that when the configuration is loaded.
pub fn verify_all(checks: &[SignatureCheck]) -> Vec<bool> {
    if checks.len() > 1 {
        let messages: Vec<&[u8]> = checks.iter().map(|c| c.tbs.as_slice()).collect();
        let signatures: Vec<Signature> = checks.iter().map(|c| c.signature).collect();
        let keys: Vec<VerifyingKey> = checks.iter().map(|c| c.key).collect();
        if ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok() {
            return vec![true; checks.len()];
        }
    }
    checks.iter().map(SignatureCheck::verify).collect()
}

/// Decode `frame` from `sensor`, leaving a signed reading's signature to the
/// caller (which may verify many at once with [`verify_all`]): the message
/// must not be used unless the check, if any, passes.
pub fn decode_unverified(
    frame: &Frame,
    sensor: &SensorRef<'_>,
) -> Result<(Message, Option<SignatureCheck>), DecodeError> {
    match (&frame.payload, sensor.format) {
        (Payload::ServiceData { uuid16, data }, SensorFormat::Bthome) => {
            if *uuid16 != bthome::SERVICE_UUID16 {
                return Err(DecodeError::NotBthome { uuid16: *uuid16 });
            }
            let packet = bthome::decode(data, sensor.bindkey, Some(frame.address))?;
            if sensor.bindkey.is_some() && !packet.encrypted {
                return Err(DecodeError::Downgrade);
            }
            if packet.values.is_empty() {
                return Err(DecodeError::Empty);
            }
            // The SenML records are made once, then moved into the reading.
            let records: Vec<senml::Measurement> = packet
                .values
                .iter()
                .map(|v| senml::Measurement {
                    name: v.name.to_string(),
                    unit: v.unit.to_string(),
                    value: v.value,
                })
                .collect();
            let body = senml::encode(sensor.address, frame.received_ms, &records);
            let reading = Reading {
                sensor: sensor.name.to_string(),
                address: sensor.address.to_string(),
                // An encrypted advertisement's counter is the one to guard against replay.
                seq: packet.counter.map(u64::from).or(packet.packet_id.map(u64::from)),
                sensor_time_ms: None,
                received_ms: frame.received_ms,
                rssi: frame.rssi,
                authenticity: if packet.encrypted { Authenticity::MicVerified } else { Authenticity::None },
                measurements: into_measurements(records),
            };
            let envelope = Envelope { content_type: senml::CONTENT_TYPE.to_string(), body };
            Ok((Message { reading, envelope, path: Vec::new() }, None))
        }
        (Payload::Notification { data }, SensorFormat::SignedGatt) => decode_signed(frame, sensor, data),
        (Payload::ServiceData { .. }, SensorFormat::SignedGatt) => Err(DecodeError::Downgrade),
        (Payload::Notification { .. }, SensorFormat::Bthome) => Err(DecodeError::UnexpectedNotification),
    }
}

/// SenML records as the reading's measurements (moved, not copied).
fn into_measurements(records: Vec<senml::Measurement>) -> Vec<Measurement> {
    records.into_iter().map(|m| Measurement { name: m.name, unit: m.unit, value: m.value }).collect()
}

/// A signed reading: check the COSE_Sign1's key id (the parser already
/// refused any algorithm but EdDSA/Ed25519) and prepare the check of its
/// signature against the sensor's production key. The replay check on its
/// counter is the caller's (it needs the state store). The envelope is the
/// sensor's COSE_Sign1, byte for byte, so anyone can verify it again later.
fn decode_signed(
    frame: &Frame,
    sensor: &SensorRef<'_>,
    data: &[u8],
) -> Result<(Message, Option<SignatureCheck>), DecodeError> {
    let sign1 = cose::parse_sign1(data)?;
    if sign1.kid() != sensor.kid.as_bytes() {
        return Err(DecodeError::UnknownKid {
            found: String::from_utf8_lossy(sign1.kid()).into_owned(),
            expected: sensor.kid.to_string(),
        });
    }
    let seq = sign1.seq().ok_or(DecodeError::NoCounter)?;
    let key = *sensor.key.ok_or(DecodeError::BadSignature)?;
    let signature = Signature::from_slice(sign1.signature()).map_err(|_| DecodeError::BadSignature)?;
    let check = SignatureCheck { key, tbs: sign1.tbs(), signature };
    let pack = senml::decode(sign1.payload())?;
    let (measurements, sensor_time_ms) = (pack.measurements, pack.base_time_ms);
    if measurements.is_empty() {
        return Err(DecodeError::Empty);
    }
    let reading = Reading {
        sensor: sensor.name.to_string(),
        address: sensor.address.to_string(),
        seq: Some(seq),
        sensor_time_ms,
        received_ms: frame.received_ms,
        rssi: frame.rssi,
        authenticity: Authenticity::SensorSigned,
        measurements: into_measurements(measurements),
    };
    let envelope = Envelope { content_type: COSE_SIGN1.to_string(), body: data.to_vec() };
    Ok((Message { reading, envelope, path: Vec::new() }, Some(check)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    const KID: &str = "wearable-1";
    const BINDKEY: [u8; 16] = [0x23; 16];

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[7u8; 32])
    }

    fn signed(seq: u64, kid: &str, signer: &SigningKey) -> Vec<u8> {
        let payload = senml::encode(
            "C0:FF:EE:00:00:01",
            1_768_435_200_000,
            &[senml::Measurement { name: "temperature".into(), unit: "Cel".into(), value: 36.6 }],
        );
        cose::build_sensor_sign1(kid.as_bytes(), seq, &payload, |tbs| {
            Ok::<_, std::convert::Infallible>(signer.sign(tbs).to_bytes().to_vec())
        })
        .unwrap()
    }

    fn decode(payload: Payload, format: SensorFormat) -> Result<Message, DecodeError> {
        let verifying = key().verifying_key();
        let sensor = SensorRef {
            name: "wearable-1",
            address: "C0:FF:EE:00:00:01",
            format,
            kid: KID,
            key: Some(&verifying),
            bindkey: Some(&BINDKEY),
        };
        decode_frame(&frame(payload), &sensor)
    }

    fn frame(payload: Payload) -> Frame {
        Frame {
            address: [0xc0, 0xff, 0xee, 0, 0, 1],
            rssi: Some(-50),
            received_ms: 5,
            entered: Instant::now(),
            payload,
        }
    }

    fn notification(data: Vec<u8>) -> Result<Message, DecodeError> {
        decode(Payload::Notification { data }, SensorFormat::SignedGatt)
    }

    /// A genuine signed reading decodes as sensor-signed, its COSE_Sign1 kept byte for byte.
    #[test]
    fn genuine_reading_is_sensor_signed() {
        let bytes = signed(42, KID, &key());
        let msg = notification(bytes.clone()).unwrap();
        assert_eq!(msg.reading.authenticity, Authenticity::SensorSigned);
        assert_eq!(msg.reading.seq, Some(42));
        assert_eq!(msg.reading.sensor_time_ms, Some(1_768_435_200_000));
        assert_eq!(msg.reading.measurements[0].value, 36.6);
        assert_eq!(msg.envelope.body, bytes);
        assert_eq!(msg.envelope.content_type, COSE_SIGN1);
    }

    /// A reading signed by another key is refused as a bad signature.
    #[test]
    fn forged_signature_is_refused() {
        let forged = signed(42, KID, &SigningKey::from_bytes(&[8u8; 32]));
        assert!(matches!(notification(forged), Err(DecodeError::BadSignature)));
        let mut tampered = signed(42, KID, &key());
        let last = tampered.len() - 70; // inside the payload
        tampered[last] ^= 1;
        assert!(notification(tampered).is_err());
    }

    /// Verified together, a forgery among genuine readings is refused and
    /// every genuine one accepted; a batch of genuine ones all pass.
    #[test]
    fn batch_verification_finds_the_forgery() {
        let verifying = key().verifying_key();
        let sensor = SensorRef {
            name: "wearable-1",
            address: "C0:FF:EE:00:00:01",
            format: SensorFormat::SignedGatt,
            kid: KID,
            key: Some(&verifying),
            bindkey: None,
        };
        let forger = SigningKey::from_bytes(&[8u8; 32]);
        let checks = |forged_at: Option<u64>| -> Vec<SignatureCheck> {
            (1..=8)
                .map(|seq| {
                    let signer = if Some(seq) == forged_at { &forger } else { &key() };
                    let frame = frame(Payload::Notification { data: signed(seq, KID, signer) });
                    decode_unverified(&frame, &sensor).unwrap().1.unwrap()
                })
                .collect()
        };
        assert_eq!(verify_all(&checks(None)), vec![true; 8]);
        let verdicts = verify_all(&checks(Some(5)));
        assert_eq!(verdicts, (1..=8).map(|seq| seq != 5).collect::<Vec<_>>());
        assert_eq!(verify_all(&checks(Some(1))[..1]), vec![false]);
    }

    /// A reading under another key id is refused, naming both.
    #[test]
    fn unknown_kid_is_refused() {
        let err = notification(signed(1, "intruder", &key())).unwrap_err();
        assert_eq!(err.kind(), "unknown-kid");
        assert!(err.to_string().contains("\"intruder\""), "{err}");
    }

    /// An algorithm other than EdDSA is refused before any signature check.
    #[test]
    fn wrong_algorithm_is_refused() {
        let mut bytes = signed(1, KID, &key());
        // The protected header starts {1: -8}: turn -8 (0x27) into -7 (0x26, ES256).
        let at = bytes.windows(2).position(|w| w == [0x01, 0x27]).unwrap();
        bytes[at + 1] = 0x26;
        let err = notification(bytes).unwrap_err();
        assert!(err.to_string().contains("alg -7 is not EdDSA"), "{err}");
    }

    /// Truncated or garbage bytes are refused as malformed, never a panic.
    #[test]
    fn garbage_is_refused() {
        let bytes = signed(1, KID, &key());
        for cut in [0, 1, 5, bytes.len() / 2, bytes.len() - 1] {
            assert_eq!(notification(bytes[..cut].to_vec()).unwrap_err().kind(), "malformed-cose");
        }
        assert!(notification(b"\xd2\x84garbage".to_vec()).is_err());
    }

    /// A signed sensor advertising unsigned BTHome data is a downgrade.
    #[test]
    fn downgrade_is_refused() {
        let data = bthome::encode(&[(0x02, 21.0)], None).unwrap();
        let err =
            decode(Payload::ServiceData { uuid16: bthome::SERVICE_UUID16, data }, SensorFormat::SignedGatt);
        assert!(matches!(err, Err(DecodeError::Downgrade)));
    }

    fn advert(data: Vec<u8>) -> Result<Message, DecodeError> {
        decode(Payload::ServiceData { uuid16: bthome::SERVICE_UUID16, data }, SensorFormat::Bthome)
    }

    /// An encrypted advertisement with the right bindkey decodes as MIC-verified, with its counter.
    #[test]
    fn encrypted_bthome_with_the_right_key() {
        let mac = [0xc0, 0xff, 0xee, 0, 0, 1];
        let data = bthome::encode_encrypted(&[(0x02, 21.5)], None, &BINDKEY, mac, 77).unwrap();
        let msg = advert(data).unwrap();
        assert_eq!(msg.reading.authenticity, Authenticity::MicVerified);
        assert_eq!(msg.reading.seq, Some(77));
        assert_eq!(msg.reading.measurements[0].value, 21.5);
    }

    /// A wrong key fails the MIC; a plain advertisement from a keyed sensor is a downgrade.
    #[test]
    fn encrypted_bthome_wrong_key_and_downgrade() {
        let mac = [0xc0, 0xff, 0xee, 0, 0, 1];
        let data = bthome::encode_encrypted(&[(0x02, 21.5)], None, &[0x24; 16], mac, 1).unwrap();
        assert!(matches!(advert(data), Err(DecodeError::Bthome(bthome::BthomeError::MicMismatch { .. }))));
        let plain = bthome::encode(&[(0x02, 21.5)], None).unwrap();
        assert!(matches!(advert(plain), Err(DecodeError::Downgrade)));
    }
}

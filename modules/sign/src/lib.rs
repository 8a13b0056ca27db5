//! `sign`: the gateway's signature on every message, so anyone can trace
//! where it came from and which code handled it, offline.
//!
//! - A reading the sensor signed (a COSE_Sign1, `authenticity =
//!   sensor-signed`) gets an RFC 9338 full countersignature (header label
//!   11) over the sensor's untouched COSE_Sign1: the gateway's `kid`, the
//!   time it received the reading and the SHA-256 of every module that
//!   processed it, in its protected header.
//! - A reading from an unsigned sensor (SenML-CBOR the gateway made) is
//!   wrapped in a gateway COSE_Sign1 marked as gateway-attested only.
//!
//! The private key never enters this module: it builds the bytes to be
//! signed and asks the host to sign them with the key named in its config.
//!
//! ```toml
//! [module.countersign]
//! wasm = "builtin:sign"
//! capabilities = ["sign:gateway"]
//! config = { key = "gateway" }
//! ```

use edgeward_formats::cose;
use edgeward_sdk::{Authenticity, Envelope, Message, Outcome, Rule, signer};
use serde::Deserialize;

/// The media type of a COSE_Sign1 (RFC 9052 §2).
pub const COSE_SIGN1: &str = "application/cose; cose-type=\"cose-sign1\"";

/// The rule's configuration.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// The signing key (`[signer.NAME]` in the gateway config); the module
    /// must be granted `sign:NAME`.
    pub key: String,
}

/// The rule: countersigns or attests each message.
pub struct Sign {
    key: String,
    /// The key's id, asked of the host once.
    kid: Vec<u8>,
}

impl Rule for Sign {
    type Config = Config;

    fn new(config: Config) -> Result<Self, String> {
        let info = signer::describe(&config.key)?;
        if info.alg != cose::ALG_EDDSA {
            return Err(format!(
                "key `{}` has COSE alg {}, this module signs EdDSA only",
                config.key, info.alg
            ));
        }
        Ok(Sign { key: config.key, kid: info.kid })
    }

    fn process(&mut self, mut msg: Message) -> Result<Outcome, String> {
        let modules: Vec<(String, Vec<u8>)> =
            msg.path().iter().map(|h| (h.module.clone(), h.sha256.clone())).collect();
        let received_ms = msg.received_ms();
        let sign = |tbs: &[u8]| signer::sign(&self.key, tbs);
        let signed = &msg.envelope().body;
        let body = match msg.authenticity() {
            Authenticity::SensorSigned => cose::countersign(signed, &self.kid, received_ms, &modules, sign),
            Authenticity::None | Authenticity::MicVerified => {
                cose::build_gateway_sign1(&self.kid, received_ms, &modules, signed, sign)
            }
        }
        .map_err(|e| e.to_string())?;
        msg.set_envelope(Envelope { content_type: COSE_SIGN1.to_string(), body });
        Ok(Outcome::forward(msg))
    }
}

edgeward_sdk::export_rule!(Sign);

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signature, Signer, SigningKey, Verifier};
    use edgeward_formats::senml;
    use edgeward_sdk::{Hop, Measurement, Reading, Verdict, testing};

    const GATEWAY: [u8; 32] = [1; 32];
    const SENSOR: [u8; 32] = [2; 32];

    fn setup() -> Sign {
        testing::reset();
        testing::set_signer("gateway", b"gw-1", |_, tbs| {
            Ok(SigningKey::from_bytes(&GATEWAY).sign(tbs).to_bytes().to_vec())
        });
        testing::init(r#"{"key":"gateway"}"#).unwrap()
    }

    fn message(authenticity: Authenticity, body: Vec<u8>) -> Message {
        let mut reading =
            Reading::new("wearable-1", 1_768_435_200_000, vec![Measurement::new("temperature", "Cel", 36.6)]);
        reading.authenticity = authenticity;
        Message::from_reading(reading).with_envelope(Envelope { content_type: "x".into(), body }).with_path(
            vec![
                Hop { module: "vitals".into(), sha256: vec![0xaa; 32] },
                Hop { module: "countersign".into(), sha256: vec![0xbb; 32] },
            ],
        )
    }

    fn forwarded(outcome: Outcome) -> Message {
        match outcome.verdict {
            Verdict::Forward(msg) => msg,
            Verdict::Drop(why) => panic!("dropped: {why}"),
        }
    }

    fn verify(key: &[u8; 32], tbs: &[u8], signature: &[u8]) -> bool {
        let signature = Signature::from_slice(signature).unwrap();
        SigningKey::from_bytes(key).verifying_key().verify(tbs, &signature).is_ok()
    }

    /// A sensor-signed reading keeps its signature and gains a gateway
    /// countersignature naming the gateway, the time and the module path.
    #[test]
    fn countersigns_sensor_signed_readings() {
        let mut rule = setup();
        let payload = senml::encode("C0:FF:EE:00:00:01", 1, &[]);
        let sensor_sign1 = cose::build_sensor_sign1(b"wearable-1", 9, &payload, |tbs| {
            Ok::<_, std::convert::Infallible>(SigningKey::from_bytes(&SENSOR).sign(tbs).to_bytes().to_vec())
        })
        .unwrap();
        let msg = forwarded(rule.process(message(Authenticity::SensorSigned, sensor_sign1)).unwrap());
        assert_eq!(msg.envelope().content_type, COSE_SIGN1);
        let parsed = cose::parse_sign1(&msg.envelope().body).unwrap();
        assert!(verify(&SENSOR, &parsed.tbs(), parsed.signature()), "the sensor's signature is untouched");
        let cs = &parsed.countersignatures()[0];
        assert_eq!(cs.kid(), b"gw-1");
        assert_eq!(cs.received_ms(), Some(1_768_435_200_000));
        assert_eq!(cs.modules()[0], ("vitals".to_string(), vec![0xaa; 32]));
        assert_eq!(cs.modules().len(), 2);
        assert!(verify(&GATEWAY, cs.tbs(), cs.signature()));
    }

    /// An unsigned reading is wrapped in a gateway COSE_Sign1 marked as gateway-attested.
    #[test]
    fn attests_unsigned_readings() {
        let mut rule = setup();
        let senml = senml::encode("A4:C1:38:00:00:01", 1, &[]);
        let msg = forwarded(rule.process(message(Authenticity::None, senml.clone())).unwrap());
        let parsed = cose::parse_sign1(&msg.envelope().body).unwrap();
        assert_eq!(parsed.attestation(), Some(cose::ATTESTATION_GATEWAY));
        assert_eq!(parsed.payload(), &senml[..]);
        assert!(verify(&GATEWAY, &parsed.tbs(), parsed.signature()));
    }

    /// A key the host does not grant makes the rule refuse its configuration.
    #[test]
    fn refuses_an_unknown_key() {
        testing::reset();
        let err = testing::init::<Sign>(r#"{"key":"gateway"}"#).err().unwrap();
        assert!(err.contains("no signing key `gateway`"), "{err}");
    }

    /// A body that is not a COSE_Sign1 under a sensor-signed reading is an error, not a forward.
    #[test]
    fn malformed_sensor_envelope_is_an_error() {
        let mut rule = setup();
        assert!(rule.process(message(Authenticity::SensorSigned, vec![0xff, 0x00])).is_err());
    }
}

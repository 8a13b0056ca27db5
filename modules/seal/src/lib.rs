//! `seal`: end-to-end encryption of every message to a tenant's app.
//!
//! The whole envelope (normally the gateway-signed COSE_Sign1, so the app
//! can also check provenance) is encrypted with COSE-HPKE to the recipient
//! set named in the config. The gateway holds no secret for this: the host
//! encrypts to the recipients' public keys, pads to a fixed bucket so the
//! ciphertext's length tells nothing, and returns the COSE object, which
//! replaces the envelope. What leaves the gateway is ciphertext only.
//!
//! ```toml
//! [module.seal]
//! wasm = "builtin:seal"
//! capabilities = ["seal:tenants"]
//! config = { recipients = "tenants" }
//! ```

use edgeward_sdk::{Envelope, Message, Outcome, Rule, sealer};
use serde::Deserialize;

/// The media type of a COSE object of `cose_type`.
fn content_type(sealed: &[u8]) -> &'static str {
    // Tag 16 is COSE_Encrypt0 (one recipient), tag 96 COSE_Encrypt (several).
    match sealed {
        [0xd0, ..] => "application/cose; cose-type=\"cose-encrypt0\"",
        _ => "application/cose; cose-type=\"cose-encrypt\"",
    }
}

/// The rule's configuration.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// The recipient set (`[recipients.NAME]` in the gateway config); the
    /// module must be granted `seal:NAME`.
    pub recipients: String,
}

/// The rule: seals each message's envelope.
#[derive(Debug)]
pub struct Seal {
    recipients: String,
}

impl Rule for Seal {
    type Config = Config;

    fn new(config: Config) -> Result<Self, String> {
        if config.recipients.is_empty() {
            return Err("`recipients` must name a recipient set".into());
        }
        Ok(Seal { recipients: config.recipients })
    }

    fn process(&mut self, mut msg: Message) -> Result<Outcome, String> {
        // What is sealed is self-describing CBOR (a tagged COSE_Sign1 or a
        // SenML pack), so no external data is needed to open it.
        let sealed = sealer::seal(&self.recipients, b"", &msg.envelope().body)?;
        msg.set_envelope(Envelope { content_type: content_type(&sealed).to_string(), body: sealed });
        Ok(Outcome::forward(msg))
    }
}

edgeward_sdk::export_rule!(Seal);

#[cfg(test)]
mod tests {
    use super::*;
    use edgeward_sdk::{Measurement, Reading, Verdict, testing};

    fn message() -> Message {
        Message::from_reading(Reading::new("room", 1_000, vec![Measurement::new("temperature", "Cel", 21.0)]))
            .with_envelope(Envelope { content_type: "application/senml+cbor".into(), body: vec![1, 2, 3] })
    }

    /// The envelope is replaced by what the host's sealer returns, for the configured set.
    #[test]
    fn replaces_the_envelope_with_the_sealed_object() {
        testing::reset();
        testing::set_sealer(|set, aad, pt| {
            assert_eq!(set, "tenants");
            assert!(aad.is_empty());
            Ok([&[0xd0][..], pt].concat())
        });
        let mut rule: Seal = testing::init(r#"{"recipients":"tenants"}"#).unwrap();
        let outcome = rule.process(message()).unwrap();
        let Verdict::Forward(msg) = outcome.verdict else { panic!("dropped") };
        assert_eq!(msg.envelope().body, vec![0xd0, 1, 2, 3]);
        assert_eq!(msg.envelope().content_type, "application/cose; cose-type=\"cose-encrypt0\"");
    }

    /// A sealing failure is the rule's error (the profile's on-error decides), never a clear-text forward.
    #[test]
    fn sealing_failure_is_an_error() {
        testing::reset();
        testing::set_sealer(|_, _, _| Err("no recipient set `tenants` is configured".into()));
        let mut rule: Seal = testing::init(r#"{"recipients":"tenants"}"#).unwrap();
        assert!(rule.process(message()).unwrap_err().contains("no recipient set"));
    }

    /// The configuration must name a set and nothing else.
    #[test]
    fn config_is_checked() {
        assert!(testing::init::<Seal>(r#"{"recipients":""}"#).is_err());
        assert!(
            testing::init::<Seal>(r#"{"recipients":"t","extra":1}"#).unwrap_err().contains("unknown field")
        );
    }
}

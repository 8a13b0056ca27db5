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
            msg.path.iter().map(|h| (h.module.clone(), h.sha256.clone())).collect();
        let received_ms = msg.reading.received_ms;
        let sign = |tbs: &[u8]| signer::sign(&self.key, tbs);
        let body = match msg.reading.authenticity {
            Authenticity::SensorSigned => {
                cose::countersign(&msg.envelope.body, &self.kid, received_ms, &modules, sign)
            }
            Authenticity::None | Authenticity::MicVerified => {
                cose::build_gateway_sign1(&self.kid, received_ms, &modules, &msg.envelope.body, sign)
            }
        }
        .map_err(|e| e.to_string())?;
        msg.envelope = Envelope { content_type: COSE_SIGN1.to_string(), body };
        Ok(Outcome::forward(msg))
    }
}

edgeward_sdk::export_rule!(Sign);

//! Trust: keys, the sensors' signed readings and the gateway's
//! countersignature (COSE, in `edgeward-formats`), end-to-end sealing to
//! tenants' apps (COSE-HPKE, [`seal`]), and the replay guard ([`replay`]).
//!
//! Private keys live here, in the host, and nowhere else: rules get only the
//! `signer` and `sealer` host calls, which name keys and never carry them.

pub mod keys;
pub mod replay;
pub mod seal;
pub mod verify;

use crate::config::Loaded;
use ed25519_dalek::{Signer as _, SigningKey};
use keys::{KeyError, KeyKind, Missing};
use std::collections::HashMap;
use std::path::Path;

/// The COSE algorithm of every edgeward signature: EdDSA (Ed25519).
pub const ALG_EDDSA: i64 = -8;

/// A gateway signing key and the id it signs under.
pub struct Signer {
    pub kid: Vec<u8>,
    key: SigningKey,
}

impl Signer {
    /// Sign `tbs` (the bytes to be signed).
    pub fn sign(&self, tbs: &[u8]) -> Vec<u8> {
        self.key.sign(tbs).to_bytes().to_vec()
    }

    /// The public half, as a config quotes it.
    pub fn public(&self) -> String {
        keys::format_public(KeyKind::Ed25519, &self.key.verifying_key().to_bytes())
    }
}

/// A set of recipients sealed messages are encrypted to.
pub struct RecipientSet {
    pub recipients: Vec<seal::Recipient>,
    pub pad_to: usize,
}

/// Every key the gateway's rules may use, by name.
#[derive(Default)]
pub struct Keyring {
    pub signers: HashMap<String, Signer>,
    pub recipients: HashMap<String, RecipientSet>,
}

impl Keyring {
    /// Load the signers and recipient sets of a configuration, generating
    /// signing keys marked `generate` that do not exist yet.
    pub fn load(loaded: &Loaded, missing: Missing) -> Result<Self, KeyError> {
        let config = &loaded.config;
        let mut keyring = Keyring::default();
        for (name, signer) in &config.signers {
            let path = loaded.resolve(&signer.key);
            let key = keys::signing_key(&path, signer.generate, missing)?;
            let kid = signer.kid.clone().unwrap_or_else(|| config.gateway.id.clone()).into_bytes();
            keyring.signers.insert(name.clone(), Signer { kid, key });
        }
        for (name, set) in &config.recipients {
            let recipients = set
                .keys
                .iter()
                .map(|r| {
                    let what = format!("recipient `{}` of [recipients.{name}]", r.kid);
                    let public_key = keys::parse_public(KeyKind::X25519, r.key.get_ref(), &what)?;
                    Ok(seal::Recipient { kid: r.kid.clone().into_bytes(), public_key })
                })
                .collect::<Result<_, KeyError>>()?;
            keyring.recipients.insert(name.clone(), RecipientSet { recipients, pad_to: set.pad_to });
        }
        Ok(keyring)
    }

    /// A keyring with one signer, for tests and tools.
    pub fn with_signer(name: &str, kid: &str, key_file: &Path) -> Result<Self, KeyError> {
        let mut keyring = Keyring::default();
        let key = keys::read_signing_key(key_file)?;
        keyring.signers.insert(name.to_string(), Signer { kid: kid.as_bytes().to_vec(), key });
        Ok(keyring)
    }
}

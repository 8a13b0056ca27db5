//! The cloud side's check of a message's provenance, offline, with nothing
//! but public keys: the sensor's signature on its COSE_Sign1 and every
//! gateway countersignature on it, or the gateway's own signature on an
//! attested reading from an unsigned sensor.

use super::keys::{self, KeyError};
use ed25519_dalek::{Signature, VerifyingKey};
use edgeward_formats::cose::{self, ParsedSign1};
use edgeward_formats::senml;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Public keys of sensors and gateways, by key id: what a verifier trusts.
///
/// As a TOML file:
/// ```toml
/// [sensors]
/// wearable-1 = "ed25519:…"
/// [gateways]
/// demo-gw = "ed25519:…"
/// ```
#[derive(Debug, Default, Clone)]
pub struct TrustStore {
    pub sensors: BTreeMap<String, VerifyingKey>,
    pub gateways: BTreeMap<String, VerifyingKey>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TrustFile {
    #[serde(default)]
    sensors: BTreeMap<String, String>,
    #[serde(default)]
    gateways: BTreeMap<String, String>,
}

/// Why a trust store could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("{path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error(transparent)]
    Key(#[from] KeyError),
}

impl TrustStore {
    /// Read a trust store file.
    pub fn load(path: &Path) -> Result<Self, TrustError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|source| TrustError::Read { path: shown.clone(), source })?;
        let file: TrustFile = toml::from_str(&text)
            .map_err(|e| TrustError::Parse { path: shown.clone(), message: e.to_string() })?;
        let parse = |kind: &str, entries: BTreeMap<String, String>| {
            entries
                .into_iter()
                .map(|(kid, key)| {
                    let key = keys::parse_verifying_key(&key, &format!("{shown}: {kind} `{kid}`"))?;
                    Ok((kid, key))
                })
                .collect::<Result<BTreeMap<_, _>, KeyError>>()
        };
        Ok(TrustStore { sensors: parse("sensor", file.sensors)?, gateways: parse("gateway", file.gateways)? })
    }
}

/// A module a message passed through, as a countersignature records it.
#[derive(Debug, Clone, Serialize)]
pub struct ModuleRecord {
    pub name: String,
    pub sha256: String,
}

/// One gateway signature and whether it holds.
#[derive(Debug, Clone, Serialize)]
pub struct GatewaySignature {
    pub kid: String,
    pub received_ms: Option<u64>,
    pub modules: Vec<ModuleRecord>,
    pub valid: bool,
}

/// What [`verify`] found out about one message.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// Every signature present verified, and the chain is complete: a
    /// sensor signature plus at least one gateway countersignature, or a
    /// gateway attestation.
    pub ok: bool,
    /// `sensor-signed` or `gateway-attested`.
    pub provenance: &'static str,
    /// The sensor's key id and counter, for sensor-signed readings.
    pub sensor_kid: Option<String>,
    pub seq: Option<u64>,
    pub sensor_signature_valid: Option<bool>,
    /// Countersignatures, or the attesting gateway's signature.
    pub gateways: Vec<GatewaySignature>,
    /// What is wrong, in words; empty when `ok`.
    pub problems: Vec<String>,
    /// The SenML pack inside.
    #[serde(skip)]
    pub reading: Option<senml::Pack>,
}

fn check(key: Option<&VerifyingKey>, tbs: &[u8], signature: &[u8]) -> bool {
    match (key, Signature::from_slice(signature)) {
        (Some(key), Ok(signature)) => key.verify_strict(tbs, &signature).is_ok(),
        _ => false,
    }
}

fn text(kid: &[u8]) -> String {
    String::from_utf8_lossy(kid).into_owned()
}

fn modules(list: &[cose::Module]) -> Vec<ModuleRecord> {
    list.iter().map(|(name, hash)| ModuleRecord { name: name.clone(), sha256: hex::encode(hash) }).collect()
}

/// Check a signed message (a COSE_Sign1) against `trust`.
pub fn verify(bytes: &[u8], trust: &TrustStore) -> Verdict {
    let sign1 = match cose::parse_sign1(bytes) {
        Ok(sign1) => sign1,
        Err(e) => {
            return Verdict {
                ok: false,
                provenance: "unknown",
                sensor_kid: None,
                seq: None,
                sensor_signature_valid: None,
                gateways: Vec::new(),
                problems: vec![format!("not a COSE_Sign1 this verifier reads: {e}")],
                reading: None,
            };
        }
    };
    match sign1.attestation() {
        Some(_) => verify_attested(&sign1, trust),
        None => verify_countersigned(&sign1, trust),
    }
}

fn reading(sign1: &ParsedSign1, problems: &mut Vec<String>) -> Option<senml::Pack> {
    match senml::decode(sign1.payload()) {
        Ok(pack) => Some(pack),
        Err(e) => {
            problems.push(format!("payload is not SenML-CBOR: {e}"));
            None
        }
    }
}

fn verify_countersigned(sign1: &ParsedSign1, trust: &TrustStore) -> Verdict {
    let mut problems = Vec::new();
    let kid = text(sign1.kid());
    let sensor_key = trust.sensors.get(&kid);
    if sensor_key.is_none() {
        problems.push(format!("unknown sensor kid `{kid}`"));
    }
    let sensor_valid = check(sensor_key, &sign1.tbs(), sign1.signature());
    if sensor_key.is_some() && !sensor_valid {
        problems.push(format!("sensor `{kid}`: signature does not verify"));
    }
    let gateways: Vec<GatewaySignature> = sign1
        .countersignatures()
        .iter()
        .map(|cs| {
            let gw = text(cs.kid());
            let key = trust.gateways.get(&gw);
            let valid = check(key, cs.tbs(), cs.signature());
            if key.is_none() {
                problems.push(format!("unknown gateway kid `{gw}`"));
            } else if !valid {
                problems.push(format!("gateway `{gw}`: countersignature does not verify"));
            }
            GatewaySignature { kid: gw, received_ms: cs.received_ms(), modules: modules(cs.modules()), valid }
        })
        .collect();
    if gateways.is_empty() {
        problems.push("no gateway countersignature".into());
    }
    let reading = reading(sign1, &mut problems);
    Verdict {
        ok: problems.is_empty(),
        provenance: "sensor-signed",
        sensor_kid: Some(kid),
        seq: sign1.seq(),
        sensor_signature_valid: Some(sensor_valid),
        gateways,
        problems,
        reading,
    }
}

fn verify_attested(sign1: &ParsedSign1, trust: &TrustStore) -> Verdict {
    let mut problems = Vec::new();
    let gw = text(sign1.kid());
    let key = trust.gateways.get(&gw);
    let valid = check(key, &sign1.tbs(), sign1.signature());
    if key.is_none() {
        problems.push(format!("unknown gateway kid `{gw}`"));
    } else if !valid {
        problems.push(format!("gateway `{gw}`: signature does not verify"));
    }
    let reading = reading(sign1, &mut problems);
    Verdict {
        ok: problems.is_empty(),
        provenance: "gateway-attested",
        sensor_kid: None,
        seq: None,
        sensor_signature_valid: None,
        gateways: vec![GatewaySignature {
            kid: gw,
            received_ms: sign1.received_ms(),
            modules: modules(sign1.modules()),
            valid,
        }],
        problems,
        reading,
    }
}

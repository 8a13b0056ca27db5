//! edgeward's signed envelopes: COSE_Sign1 (RFC 9052) and full
//! countersignatures (RFC 9338). These are frozen wire contracts: anyone
//! with the public keys can verify a stored message offline with any RFC
//! 9052/9338 implementation.
//!
//! # Header labels
//!
//! | label | name | where | value |
//! |---|---|---|---|
//! | 1 | alg | protected | int: -8 (EdDSA) or -19 (Ed25519); both mean Ed25519 |
//! | 2 | crit | protected | optional; may list only labels of this table |
//! | 3 | content type | protected | tstr or uint; `"application/senml+cbor"` from the gateway, may be omitted by sensors |
//! | 4 | kid | protected | non-empty bstr: the sensor id (UTF-8) or the gateway's key id |
//! | 11 | Countersignature version 2 | unprotected | RFC 9338 §2: one `COSE_Countersignature`, or an array of them |
//! | -65537 | [`labels::SEQ`] | protected | uint: the sensor's monotonically increasing counter |
//! | -65538 | [`labels::RECEIVED_MS`] | protected | uint: when the gateway received the reading, ms since the Unix epoch |
//! | -65539 | [`labels::MODULES`] | protected | array of `[name: tstr, sha256: bstr .size 32]`: the rule modules that processed the message, in order |
//! | -65540 | [`labels::ATTESTATION`] | protected | tstr: `"gateway"` on a gateway-made COSE_Sign1 over an unsigned sensor's data |
//! | -65541 | envelope version | protected | uint: of sealed messages (COSE_Encrypt0 / COSE_Encrypt), see the runtime's `trust::seal` |
//! | -65542 | [`labels::MSG_ID`] | unprotected | tstr: the gateway's unique id of the uplink message, for consumers to deduplicate ([`set_message_id`]) |
//!
//! The private labels are below -65536, the range RFC 9052 §3.1 leaves to
//! private use. Every label of this table except 11 and -65542 must be in the
//! protected header (a parser rejects them in an unprotected one), a label may occur
//! once per map and not in both maps, and a verifier must ignore other labels.
//! We write protected maps in RFC 8949 §4.2.1 deterministic order (by
//! encoded key: 1, 3, 4, then -65537, -65538, ...) with shortest-form
//! integers; a parser takes whatever order and encoding the signer used,
//! because it hashes the protected bytes exactly as received.
//!
//! # Sensor reading: COSE_Sign1
//!
//! ```text
//! 18([                                 ; tag 18 (optional for parsing)
//!   << { 1: -8, 4: h'<sensor id>', -65537: seq } >>,   ; protected (bstr)
//!   { },                               ; unprotected; label 11 once countersigned
//!   h'<SenML-CBOR pack>',              ; payload (never detached/nil)
//!   h'<64-byte Ed25519 signature>'
//! ])
//! ```
//!
//! The signature is over RFC 9052 §4.4's `Sig_structure`:
//! `["Signature1", protected: bstr, external_aad: h'', payload: bstr]`
//! ([`sign1_tbs`]). A sensor may add content type (3).
//!
//! # Gateway countersignature (RFC 9338, full form)
//!
//! The gateway adds a `COSE_Countersignature` (same shape as
//! `COSE_Signature`: `[protected: bstr, unprotected: map, signature: bstr]`)
//! under label 11 in the *target* COSE_Sign1's unprotected header:
//!
//! ```text
//! [ << { 1: -8, 4: h'<gateway kid>', -65538: received_ms,
//!        -65539: [["rule-a", h'<sha256>'], ...] } >>,
//!   { },
//!   h'<64-byte Ed25519 signature>' ]
//! ```
//!
//! `MODULES` is always written, as `[]` when no module ran. With one
//! countersignature, label 11 holds it directly; a second one turns the value
//! into an array of countersignatures `[cs1, cs2]`, and later ones are
//! appended (RFC 9338 §2: `COSE_Countersignature / [+ COSE_Countersignature]`;
//! a parser tells the forms apart by the first element: a bstr means one
//! countersignature, an array means several). The sensor's protected header,
//! payload and signature are copied byte for byte; only the unprotected map
//! is rewritten, its other entries copied byte for byte too.
//!
//! The countersignature signs RFC 9338 §3.3's `Countersign_structure`
//! ([`countersign_tbs`]):
//!
//! ```text
//! [ "CounterSignatureV2",
//!   body_protected: bstr,  ; the COSE_Sign1's protected header bytes
//!   sign_protected: bstr,  ; the countersignature's protected header bytes
//!   external_aad: h'',
//!   payload: bstr,         ; the COSE_Sign1's payload
//!   other_fields: [ signature: bstr ] ]  ; the COSE_Sign1's signature
//! ```
//!
//! The context is `"CounterSignatureV2"`, not `"CounterSignature"`: RFC 9338
//! uses the `V2` string whenever `other_fields` is present, and it is present
//! here because a COSE_Sign1 has three bstr fields (protected, payload,
//! signature) and `other_fields` holds every bstr after the second. That is
//! what makes the countersignature cover the sensor's signature. It is one
//! array nested in the structure (`[+ bstr]`), not spliced into it.
//!
//! # Gateway attestation: COSE_Sign1 by the gateway
//!
//! For data from a sensor that does not sign, the gateway signs a
//! COSE_Sign1 of its own (tag 18, Sig_structure as above) whose protected
//! header is
//! `{1: -8, 3: "application/senml+cbor", 4: h'<gateway kid>', -65538: received_ms, -65539: modules, -65540: "gateway"}`.
//!
//! # Parsing
//!
//! [`parse_sign1`] checks structure, not signatures: it returns the fields
//! and the exact to-be-signed bytes of the COSE_Sign1 and of each
//! countersignature, which the caller verifies with the key it trusts for
//! that kid. All signatures must be Ed25519 (64 bytes); a countersignature
//! by anyone else is an error rather than silently skipped.

use crate::cbor::{self, ARRAY, BSTR, Head, MAP, SIMPLE, TAG, TSTR, UINT};
use crate::{BuildError, FormatError};
use std::collections::BTreeSet;
use std::fmt;
use std::ops::Range;

/// COSE header labels used by edgeward: the RFC 9052/9338 ones it reads and
/// its private-use ones (below -65536, RFC 9052 §3.1). This table is the
/// single definition of every label.
pub mod labels {
    /// Signature algorithm (RFC 9052).
    pub const ALG: i64 = 1;
    /// Critical header parameters (RFC 9052).
    pub const CRIT: i64 = 2;
    /// Content type of the payload (RFC 9052).
    pub const CONTENT_TYPE: i64 = 3;
    /// Key identifier (RFC 9052).
    pub const KID: i64 = 4;
    /// Countersignature version 2 (RFC 9338).
    pub const COUNTERSIGNATURE: i64 = 11;
    /// The sensor's monotonically increasing counter (uint).
    pub const SEQ: i64 = -65537;
    /// When the gateway received the reading (uint, ms since the Unix epoch).
    pub const RECEIVED_MS: i64 = -65538;
    /// The rule modules that processed the message, in order: array of
    /// `[name: tstr, sha256: bstr]`.
    pub const MODULES: i64 = -65539;
    /// What a gateway-made COSE_Sign1 attests (tstr): `"gateway"`.
    pub const ATTESTATION: i64 = -65540;
    /// The uplink message's unique id (tstr), set by the gateway as the
    /// message leaves (COSE_Sign1, COSE_Encrypt0, COSE_Encrypt). Unprotected
    /// on purpose: adding it after signing or sealing keeps every signature
    /// and tag valid, and a resend carries the same id, so duplicates are
    /// recognisable. Not authenticated: use it to deduplicate, not to trust.
    pub const MSG_ID: i64 = -65542;
}

/// COSE algorithm EdDSA (RFC 9053); edgeward uses it only with Ed25519.
pub const ALG_EDDSA: i64 = -8;
/// COSE algorithm Ed25519 (the fully-specified IANA registration); accepted as a synonym of [`ALG_EDDSA`].
pub const ALG_ED25519: i64 = -19;
/// The CBOR tag of COSE_Sign1.
pub const TAG_SIGN1: u64 = 18;
/// The `ATTESTATION` value of a gateway-made COSE_Sign1.
pub const ATTESTATION_GATEWAY: &str = "gateway";
/// The `Sig_structure` context of a COSE_Sign1 (RFC 9052 §4.4).
pub const SIGNATURE1_CONTEXT: &str = "Signature1";
/// The `Countersign_structure` context of a full countersignature whose
/// target has a third bstr field, as a COSE_Sign1 does (RFC 9338 §3.3).
pub const COUNTERSIGNATURE_CONTEXT: &str = "CounterSignatureV2";
/// The length of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;
/// The length of a module hash (SHA-256).
pub const MODULE_HASH_LEN: usize = 32;

/// A rule module that processed a message: its name and the SHA-256 of its
/// component bytes.
pub type Module = (String, Vec<u8>);

/// The content type of a payload (RFC 9052 label 3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContentType {
    /// A media type, e.g. `application/senml+cbor`.
    Media(String),
    /// A CoAP Content-Format number, e.g. 112 for SenML-CBOR.
    Format(u64),
}

/// A COSE_Sign1, checked for structure but not yet verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedSign1 {
    protected: Vec<u8>,
    alg: i64,
    kid: Vec<u8>,
    seq: Option<u64>,
    content_type: Option<ContentType>,
    received_ms: Option<u64>,
    modules: Vec<Module>,
    attestation: Option<String>,
    payload: Vec<u8>,
    signature: Vec<u8>,
    countersignatures: Vec<ParsedCountersignature>,
}

impl ParsedSign1 {
    /// The protected header exactly as received (the bstr's content).
    pub fn protected(&self) -> &[u8] {
        &self.protected
    }
    /// The algorithm: [`ALG_EDDSA`] or [`ALG_ED25519`], both Ed25519.
    pub fn alg(&self) -> i64 {
        self.alg
    }
    /// The key id: the sensor id, or the gateway's for a gateway-made Sign1.
    pub fn kid(&self) -> &[u8] {
        &self.kid
    }
    /// The sensor's counter, if the signer set one.
    pub fn seq(&self) -> Option<u64> {
        self.seq
    }
    /// The payload's content type, if given.
    pub fn content_type(&self) -> Option<&ContentType> {
        self.content_type.as_ref()
    }
    /// The gateway's receipt time (ms) of a gateway-made Sign1.
    pub fn received_ms(&self) -> Option<u64> {
        self.received_ms
    }
    /// The rule modules of a gateway-made Sign1 (empty if absent).
    pub fn modules(&self) -> &[Module] {
        &self.modules
    }
    /// `Some("gateway")` for a gateway-made Sign1.
    pub fn attestation(&self) -> Option<&str> {
        self.attestation.as_deref()
    }
    /// The payload (SenML-CBOR for edgeward messages).
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }
    /// The 64-byte Ed25519 signature.
    pub fn signature(&self) -> &[u8] {
        &self.signature
    }
    /// The countersignatures under label 11, in the order they were added.
    pub fn countersignatures(&self) -> &[ParsedCountersignature] {
        &self.countersignatures
    }
    /// The bytes the signature must verify against (RFC 9052 `Sig_structure`).
    pub fn tbs(&self) -> Vec<u8> {
        sign1_tbs(&self.protected, &self.payload)
    }
}

/// A full countersignature (RFC 9338) on a COSE_Sign1, checked for structure
/// but not yet verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedCountersignature {
    protected: Vec<u8>,
    alg: i64,
    kid: Vec<u8>,
    received_ms: Option<u64>,
    modules: Vec<Module>,
    signature: Vec<u8>,
    tbs: Vec<u8>,
}

impl ParsedCountersignature {
    /// The countersignature's protected header exactly as received.
    pub fn protected(&self) -> &[u8] {
        &self.protected
    }
    /// The algorithm: [`ALG_EDDSA`] or [`ALG_ED25519`], both Ed25519.
    pub fn alg(&self) -> i64 {
        self.alg
    }
    /// The countersigner's key id.
    pub fn kid(&self) -> &[u8] {
        &self.kid
    }
    /// When the gateway received the message (ms); always set by edgeward.
    pub fn received_ms(&self) -> Option<u64> {
        self.received_ms
    }
    /// The rule modules that processed the message (empty if absent).
    pub fn modules(&self) -> &[Module] {
        &self.modules
    }
    /// The 64-byte Ed25519 signature.
    pub fn signature(&self) -> &[u8] {
        &self.signature
    }
    /// The bytes the signature must verify against (RFC 9338
    /// `Countersign_structure` over the target COSE_Sign1).
    pub fn tbs(&self) -> &[u8] {
        &self.tbs
    }
}

/// RFC 9052 §4.4 `Sig_structure` of a COSE_Sign1:
/// `["Signature1", protected, h'', payload]`, deterministically encoded.
/// `protected` is the protected header's bytes (the bstr's content).
pub fn sign1_tbs(protected: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(20 + protected.len() + payload.len());
    cbor::write_head(&mut out, ARRAY, 4);
    cbor::write_tstr(&mut out, SIGNATURE1_CONTEXT);
    cbor::write_bstr(&mut out, protected);
    cbor::write_bstr(&mut out, &[]);
    cbor::write_bstr(&mut out, payload);
    out
}

/// RFC 9338 §3.3 `Countersign_structure` of a full countersignature on a
/// COSE_Sign1: `["CounterSignatureV2", body_protected, sign_protected, h'',
/// payload, [signature]]`, deterministically encoded. `body_protected`,
/// `payload` and `signature` are the COSE_Sign1's; `sign_protected` is the
/// countersignature's protected header bytes.
pub fn countersign_tbs(
    body_protected: &[u8],
    sign_protected: &[u8],
    payload: &[u8],
    signature: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        40 + body_protected.len() + sign_protected.len() + payload.len() + signature.len(),
    );
    cbor::write_head(&mut out, ARRAY, 6);
    cbor::write_tstr(&mut out, COUNTERSIGNATURE_CONTEXT);
    cbor::write_bstr(&mut out, body_protected);
    cbor::write_bstr(&mut out, sign_protected);
    cbor::write_bstr(&mut out, &[]);
    cbor::write_bstr(&mut out, payload);
    cbor::write_head(&mut out, ARRAY, 1);
    cbor::write_bstr(&mut out, signature);
    out
}

/// A sensor's tagged COSE_Sign1 over `payload` (SenML-CBOR), with protected
/// header `{1: -8, 4: kid, SEQ: seq}`; `sign` gets the `Sig_structure` and
/// returns the 64-byte Ed25519 signature.
pub fn build_sensor_sign1<E>(
    kid: &[u8],
    seq: u64,
    payload: &[u8],
    sign: impl FnOnce(&[u8]) -> Result<Vec<u8>, E>,
) -> Result<Vec<u8>, BuildError<E>> {
    check_kid(kid, "sensor kid")?;
    let mut protected = Vec::new();
    cbor::write_head(&mut protected, MAP, 3);
    write_alg_kid(&mut protected, kid);
    cbor::write_int(&mut protected, labels::SEQ);
    cbor::write_head(&mut protected, UINT, seq);
    sign_and_assemble(protected, payload, sign, "sensor COSE_Sign1")
}

/// The gateway's own tagged COSE_Sign1 over `payload` (SenML-CBOR from an
/// unsigned sensor), with protected header `{1: -8, 3:
/// "application/senml+cbor", 4: gateway_kid, RECEIVED_MS, MODULES,
/// ATTESTATION: "gateway"}`; `sign` gets the `Sig_structure`.
pub fn build_gateway_sign1<E>(
    gateway_kid: &[u8],
    received_ms: u64,
    modules: &[Module],
    payload: &[u8],
    sign: impl FnOnce(&[u8]) -> Result<Vec<u8>, E>,
) -> Result<Vec<u8>, BuildError<E>> {
    check_kid(gateway_kid, "gateway kid")?;
    check_modules(modules)?;
    let mut protected = Vec::new();
    cbor::write_head(&mut protected, MAP, 6);
    cbor::write_int(&mut protected, labels::ALG);
    cbor::write_int(&mut protected, ALG_EDDSA);
    // Deterministic order puts content type (3) between alg (1) and kid (4).
    cbor::write_int(&mut protected, labels::CONTENT_TYPE);
    cbor::write_tstr(&mut protected, crate::senml::CONTENT_TYPE);
    cbor::write_int(&mut protected, labels::KID);
    cbor::write_bstr(&mut protected, gateway_kid);
    write_gateway_fields(&mut protected, received_ms, modules);
    cbor::write_int(&mut protected, labels::ATTESTATION);
    cbor::write_tstr(&mut protected, ATTESTATION_GATEWAY);
    sign_and_assemble(protected, payload, sign, "gateway COSE_Sign1")
}

/// `sign1` with the gateway's RFC 9338 countersignature added under label 11
/// of its unprotected header (after any already there). Its protected header
/// is `{1: -8, 4: gateway_kid, RECEIVED_MS, MODULES}`; `sign` gets the
/// `Countersign_structure`. The COSE_Sign1's protected header, payload,
/// signature and other unprotected entries are copied byte for byte.
pub fn countersign<E>(
    sign1: &[u8],
    gateway_kid: &[u8],
    received_ms: u64,
    modules: &[Module],
    sign: impl FnOnce(&[u8]) -> Result<Vec<u8>, E>,
) -> Result<Vec<u8>, BuildError<E>> {
    check_kid(gateway_kid, "gateway kid")?;
    check_modules(modules)?;
    let (target, layout) = parse(sign1)?;

    let mut sign_protected = Vec::new();
    cbor::write_head(&mut sign_protected, MAP, 4);
    write_alg_kid(&mut sign_protected, gateway_kid);
    write_gateway_fields(&mut sign_protected, received_ms, modules);

    let tbs = countersign_tbs(&target.protected, &sign_protected, &target.payload, &target.signature);
    let signature = sign(&tbs).map_err(BuildError::Sign)?;
    check_signature_len(&signature, "gateway countersignature")?;
    let mut new = Vec::with_capacity(sign_protected.len() + signature.len() + 8);
    cbor::write_head(&mut new, ARRAY, 3);
    cbor::write_bstr(&mut new, &sign_protected);
    cbor::write_head(&mut new, MAP, 0);
    cbor::write_bstr(&mut new, &signature);

    // Rewrite only the unprotected map; `parse` has checked every span below.
    let [protected, unprotected, payload, sig] = layout.items;
    let entries = cbor::map_entries(sign1, unprotected.start).map_err(|e| malformed(AT_UNPROTECTED, e))?;
    let mut map = Vec::with_capacity(unprotected.len() + new.len() + 8);
    let existing = layout.countersignature_entry;
    let count = entries.len() + usize::from(existing.is_none());
    cbor::write_head(&mut map, MAP, count as u64);
    for (i, (key, value)) in entries.iter().enumerate() {
        map.extend_from_slice(&sign1[key.clone()]);
        if Some(i) != existing {
            map.extend_from_slice(&sign1[value.clone()]);
            continue;
        }
        // One countersignature becomes an array of two; an array grows by one.
        let items = cbor::array_items(sign1, value.start).map_err(|e| malformed(AT_UNPROTECTED, e))?;
        let first_is_bstr =
            items.first().and_then(|f| cbor::head(sign1, f.start).ok()).map(|h| h.major) == Some(BSTR);
        if first_is_bstr {
            cbor::write_head(&mut map, ARRAY, 2);
            map.extend_from_slice(&sign1[value.clone()]);
        } else {
            cbor::write_head(&mut map, ARRAY, items.len() as u64 + 1);
            for item in items {
                map.extend_from_slice(&sign1[item]);
            }
        }
        map.extend_from_slice(&new);
    }
    if existing.is_none() {
        cbor::write_int(&mut map, labels::COUNTERSIGNATURE);
        map.extend_from_slice(&new);
    }

    let mut out = Vec::with_capacity(sign1.len() + new.len() + 16);
    out.extend_from_slice(&sign1[..layout.array_start]);
    cbor::write_head(&mut out, ARRAY, 4);
    out.extend_from_slice(&sign1[protected]);
    out.extend_from_slice(&map);
    out.extend_from_slice(&sign1[payload]);
    out.extend_from_slice(&sign1[sig]);
    Ok(out)
}

/// Parses a COSE_Sign1 (tag 18 or untagged) and its countersignatures,
/// checking structure and header rules but no signature.
pub fn parse_sign1(bytes: &[u8]) -> Result<ParsedSign1, FormatError> {
    parse(bytes).map(|(parsed, _)| parsed)
}

/// The COSE messages whose second element is an unprotected header map:
/// COSE_Sign1 (tag 18), COSE_Encrypt0 (16), COSE_Encrypt (96), or untagged.
const TAGS_WITH_UNPROTECTED: [u64; 3] = [TAG_SIGN1, 16, 96];

/// Where the unprotected header map of the COSE message `bytes` starts.
fn unprotected_map(bytes: &[u8]) -> Result<usize, FormatError> {
    const AT: &str = "COSE message";
    cbor::check_single(bytes).map_err(|e| malformed(AT, e))?;
    let mut h = head(bytes, 0, AT)?;
    let mut array_start = 0;
    if h.major == TAG {
        let tag = h.arg.unwrap_or_default();
        if !TAGS_WITH_UNPROTECTED.contains(&tag) {
            return Err(invalid(
                AT,
                &format!("CBOR tag {tag} is not COSE_Sign1, COSE_Encrypt0 or COSE_Encrypt"),
            ));
        }
        array_start = h.body;
        h = head(bytes, array_start, AT)?;
    }
    expect(h, ARRAY, "an array", AT)?;
    let items = cbor::array_items(bytes, array_start).map_err(|e| malformed(AT, e))?;
    let Some(map) = items.get(1) else {
        return Err(FormatError::WrongLength { at: AT.into(), expected: 3, found: items.len() });
    };
    expect(head(bytes, map.start, "COSE unprotected header")?, MAP, "a map", "COSE unprotected header")?;
    Ok(map.start)
}

/// `bytes` (a COSE_Sign1, COSE_Encrypt0 or COSE_Encrypt) with `id` under
/// [`labels::MSG_ID`] in its unprotected header. Everything else is copied
/// byte for byte and the entry is appended last (the largest key in
/// deterministic order), so signatures and authentication tags stay valid.
/// An id already there is replaced.
pub fn set_message_id(bytes: &[u8], id: &str) -> Result<Vec<u8>, FormatError> {
    const AT: &str = "COSE unprotected header";
    let map = unprotected_map(bytes)?;
    let h = head(bytes, map, AT)?;
    let entries = cbor::map_entries(bytes, map).map_err(|e| malformed(AT, e))?;
    let mut kept = Vec::new();
    for (key, value) in &entries {
        if label(bytes, key.start, AT)? != Label::Int(labels::MSG_ID.into()) {
            kept.push(key.start..value.end);
        }
    }
    let end = entries.last().map_or(h.body, |(_, value)| value.end);
    let mut out = Vec::with_capacity(bytes.len() + id.len() + 8);
    out.extend_from_slice(&bytes[..map]);
    match h.arg {
        Some(_) => cbor::write_head(&mut out, MAP, kept.len() as u64 + 1),
        None => out.push(0xbf), // indefinite length, closed by the break below
    }
    for entry in kept {
        out.extend_from_slice(&bytes[entry]);
    }
    cbor::write_int(&mut out, labels::MSG_ID);
    cbor::write_tstr(&mut out, id);
    // The rest: after a definite map the next item, after an indefinite one its break.
    out.extend_from_slice(&bytes[end..]);
    Ok(out)
}

/// The id under [`labels::MSG_ID`] in the unprotected header of a COSE
/// message, if it has one.
pub fn message_id(bytes: &[u8]) -> Option<String> {
    const AT: &str = "COSE unprotected header";
    let map = unprotected_map(bytes).ok()?;
    let entries = cbor::map_entries(bytes, map).ok()?;
    entries.iter().find_map(|(key, value)| {
        (label(bytes, key.start, AT).ok()? == Label::Int(labels::MSG_ID.into()))
            .then(|| tstr(bytes, value.start, AT, "msg-id").ok())
            .flatten()
    })
}

// ---------------------------------------------------------------- internals

const AT_SIGN1: &str = "COSE_Sign1";
const AT_PROTECTED: &str = "COSE_Sign1 protected header";
const AT_UNPROTECTED: &str = "COSE_Sign1 unprotected header";

/// Where the parts of a parsed COSE_Sign1 are in its bytes.
struct Layout {
    /// Where the 4-element array starts (after any tag).
    array_start: usize,
    /// protected, unprotected, payload, signature.
    items: [Range<usize>; 4],
    /// The index of the label-11 entry in the unprotected map.
    countersignature_entry: Option<usize>,
}

/// A header label: an integer or a text string (RFC 9052 §3).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Label {
    Int(i128),
    Text(String),
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Label::Int(i) => write!(f, "{i}"),
            Label::Text(t) => write!(f, "{t:?}"),
        }
    }
}

/// The header parameters this crate understands, with their names.
const KNOWN: [(i64, &str); 8] = [
    (labels::ALG, "alg"),
    (labels::CRIT, "crit"),
    (labels::CONTENT_TYPE, "content type"),
    (labels::KID, "kid"),
    (labels::SEQ, "seq"),
    (labels::RECEIVED_MS, "received_ms"),
    (labels::MODULES, "modules"),
    (labels::ATTESTATION, "attestation"),
];

fn known_name(label: &Label) -> Option<(i64, &'static str)> {
    match label {
        Label::Int(i) => KNOWN.iter().copied().find(|(l, _)| i128::from(*l) == *i),
        Label::Text(_) => None,
    }
}

/// The protected parameters of a COSE_Sign1 or a countersignature.
#[derive(Default)]
struct Protected {
    // A set, not a Vec: duplicate checks stay O(n log n) on hostile maps.
    labels: BTreeSet<Label>,
    alg: Option<i64>,
    kid: Option<Vec<u8>>,
    content_type: Option<ContentType>,
    seq: Option<u64>,
    received_ms: Option<u64>,
    modules: Option<Vec<Module>>,
    attestation: Option<String>,
}

impl Protected {
    fn alg(&self, at: &str) -> Result<i64, FormatError> {
        self.alg.ok_or_else(|| missing(at, labels::ALG, "alg"))
    }
    fn kid(&mut self, at: &str) -> Result<Vec<u8>, FormatError> {
        self.kid.take().ok_or_else(|| missing(at, labels::KID, "kid"))
    }
}

fn parse(bytes: &[u8]) -> Result<(ParsedSign1, Layout), FormatError> {
    cbor::check_single(bytes).map_err(|e| malformed(AT_SIGN1, e))?;
    let mut h = head(bytes, 0, AT_SIGN1)?;
    let mut array_start = 0;
    if h.major == TAG {
        let tag = h.arg.unwrap_or_default();
        if tag != TAG_SIGN1 {
            return Err(FormatError::WrongTag { at: AT_SIGN1.into(), tag });
        }
        array_start = h.body;
        h = head(bytes, array_start, AT_SIGN1)?;
    }
    expect(h, ARRAY, "an array", AT_SIGN1)?;
    let items = cbor::array_items(bytes, array_start).map_err(|e| malformed(AT_SIGN1, e))?;
    let items: [Range<usize>; 4] = items.try_into().map_err(|v: Vec<_>| FormatError::WrongLength {
        at: AT_SIGN1.into(),
        expected: 4,
        found: v.len(),
    })?;

    let protected_bytes = bstr(bytes, items[0].start, AT_PROTECTED)?;
    let mut protected = parse_protected(&protected_bytes, AT_PROTECTED)?;
    let countersignature_value = parse_unprotected(bytes, items[1].start, AT_UNPROTECTED, &protected.labels)?;

    let payload_head = head(bytes, items[2].start, "COSE_Sign1 payload")?;
    if payload_head.major == SIMPLE && payload_head.info == 22 {
        return Err(invalid("COSE_Sign1 payload", "detached payload (nil) is not supported"));
    }
    let payload = bstr(bytes, items[2].start, "COSE_Sign1 payload")?;
    let signature = bstr(bytes, items[3].start, "COSE_Sign1 signature")?;
    check_signature_len(&signature, "COSE_Sign1")?;

    let alg = protected.alg(AT_PROTECTED)?;
    let kid = protected.kid(AT_PROTECTED)?;
    let mut countersignatures = Vec::new();
    let mut countersignature_entry = None;
    if let Some((entry, value)) = countersignature_value {
        countersignature_entry = Some(entry);
        for (i, span) in countersignature_spans(bytes, value)?.into_iter().enumerate() {
            countersignatures.push(parse_countersignature(
                bytes,
                span,
                i + 1,
                &protected_bytes,
                &payload,
                &signature,
            )?);
        }
    }
    let parsed = ParsedSign1 {
        protected: protected_bytes,
        alg,
        kid,
        seq: protected.seq,
        content_type: protected.content_type,
        received_ms: protected.received_ms,
        modules: protected.modules.unwrap_or_default(),
        attestation: protected.attestation,
        payload,
        signature,
        countersignatures,
    };
    Ok((parsed, Layout { array_start, items, countersignature_entry }))
}

/// The spans of the COSE_Countersignatures in a label-11 value: one
/// `[bstr, map, bstr]`, or an array of them (RFC 9338 §2).
fn countersignature_spans(bytes: &[u8], value: Range<usize>) -> Result<Vec<Range<usize>>, FormatError> {
    const AT: &str = "COSE_Sign1 unprotected header countersignature (label 11)";
    let h = head(bytes, value.start, AT)?;
    expect(h, ARRAY, "an array", AT)?;
    let items = cbor::array_items(bytes, value.start).map_err(|e| malformed(AT, e))?;
    let Some(first) = items.first() else {
        return Err(invalid(AT, "empty array"));
    };
    let first = head(bytes, first.start, AT)?;
    match first.major {
        BSTR => Ok(vec![value]),
        ARRAY => Ok(items),
        _ => Err(FormatError::WrongType {
            at: AT.into(),
            expected: "a countersignature or an array of them",
            found: cbor::type_name(first),
        }),
    }
}

fn parse_countersignature(
    bytes: &[u8],
    span: Range<usize>,
    number: usize,
    body_protected: &[u8],
    payload: &[u8],
    body_signature: &[u8],
) -> Result<ParsedCountersignature, FormatError> {
    let at = format!("countersignature {number}");
    let at_protected = format!("{at} protected header");
    let h = head(bytes, span.start, &at)?;
    expect(h, ARRAY, "an array", &at)?;
    let items = cbor::array_items(bytes, span.start).map_err(|e| malformed(&at, e))?;
    let items: [Range<usize>; 3] = items.try_into().map_err(|v: Vec<_>| FormatError::WrongLength {
        at: at.clone(),
        expected: 3,
        found: v.len(),
    })?;
    let protected_bytes = bstr(bytes, items[0].start, &at_protected)?;
    let mut protected = parse_protected(&protected_bytes, &at_protected)?;
    // Nested countersignatures (on this countersignature) are allowed by
    // RFC 9338 but not read here.
    parse_unprotected(bytes, items[1].start, &format!("{at} unprotected header"), &protected.labels)?;
    let signature = bstr(bytes, items[2].start, &format!("{at} signature"))?;
    check_signature_len(&signature, &at)?;
    let alg = protected.alg(&at_protected)?;
    let kid = protected.kid(&at_protected)?;
    let tbs = countersign_tbs(body_protected, &protected_bytes, payload, body_signature);
    Ok(ParsedCountersignature {
        protected: protected_bytes,
        alg,
        kid,
        received_ms: protected.received_ms,
        modules: protected.modules.unwrap_or_default(),
        signature,
        tbs,
    })
}

/// Reads a protected header (the content of its bstr): a zero-length string
/// is the empty map (RFC 9052 §3), anything else one CBOR map.
fn parse_protected(bytes: &[u8], at: &str) -> Result<Protected, FormatError> {
    let mut out = Protected::default();
    if bytes.is_empty() {
        return Ok(out);
    }
    cbor::check_single(bytes).map_err(|e| malformed(at, e))?;
    expect(head(bytes, 0, at)?, MAP, "a map", at)?;
    let mut crit = Vec::new();
    for (key, value) in cbor::map_entries(bytes, 0).map_err(|e| malformed(at, e))? {
        let label = label(bytes, key.start, at)?;
        if !out.labels.insert(label.clone()) {
            return Err(FormatError::DuplicateLabel { at: at.into(), label: label.to_string() });
        }
        let v = value.start;
        match known_name(&label) {
            Some((labels::ALG, name)) => {
                let h = head(bytes, v, at)?;
                let alg = match (cbor::integer(h), h.major) {
                    (Some(i), _) => i,
                    (None, TSTR) => {
                        let text = tstr(bytes, v, at, name)?;
                        return Err(FormatError::UnsupportedAlg { at: at.into(), alg: format!("{text:?}") });
                    }
                    _ => return Err(wrong_type(at, name, "an integer", h)),
                };
                if alg != i128::from(ALG_EDDSA) && alg != i128::from(ALG_ED25519) {
                    return Err(FormatError::UnsupportedAlg { at: at.into(), alg: alg.to_string() });
                }
                out.alg = Some(alg as i64);
            }
            Some((labels::CRIT, name)) => {
                let h = head(bytes, v, at)?;
                if h.major != ARRAY {
                    return Err(wrong_type(at, name, "an array", h));
                }
                for item in cbor::array_items(bytes, v).map_err(|e| malformed(at, e))? {
                    crit.push(self::label(bytes, item.start, at)?);
                }
                if crit.is_empty() {
                    return Err(invalid(at, "crit is an empty array"));
                }
            }
            Some((labels::CONTENT_TYPE, name)) => {
                let h = head(bytes, v, at)?;
                out.content_type = Some(match (h.major, h.arg) {
                    (UINT, Some(n)) => ContentType::Format(n),
                    (TSTR, _) => ContentType::Media(tstr(bytes, v, at, name)?),
                    _ => return Err(wrong_type(at, name, "a text string or an unsigned integer", h)),
                });
            }
            Some((labels::KID, name)) => {
                let kid = bstr(bytes, v, &format!("{at} {name}"))?;
                check_kid(&kid, at)?;
                out.kid = Some(kid);
            }
            Some((labels::SEQ, name)) => out.seq = Some(uint(bytes, v, at, name)?),
            Some((labels::RECEIVED_MS, name)) => out.received_ms = Some(uint(bytes, v, at, name)?),
            Some((labels::MODULES, _)) => out.modules = Some(modules(bytes, v, at)?),
            Some((labels::ATTESTATION, name)) => out.attestation = Some(tstr(bytes, v, at, name)?),
            // Labels we do not know are ignored, unless `crit` names them.
            _ => {}
        }
    }
    for label in crit {
        // RFC 9052 §3.1: crit may list only labels present in the protected
        // header, and a recipient must reject labels it does not understand.
        if known_name(&label).is_none() || !out.labels.contains(&label) {
            return Err(FormatError::UnknownCritical { at: at.into(), label: label.to_string() });
        }
    }
    Ok(out)
}

/// Checks an unprotected header map at `pos` and returns the entry index and
/// value span of label 11, if present.
fn parse_unprotected(
    bytes: &[u8],
    pos: usize,
    at: &str,
    protected: &BTreeSet<Label>,
) -> Result<Option<(usize, Range<usize>)>, FormatError> {
    expect(head(bytes, pos, at)?, MAP, "a map", at)?;
    let mut seen = BTreeSet::new();
    let mut countersignature = None;
    for (i, (key, value)) in
        cbor::map_entries(bytes, pos).map_err(|e| malformed(at, e))?.into_iter().enumerate()
    {
        let label = label(bytes, key.start, at)?;
        if protected.contains(&label) || seen.contains(&label) {
            return Err(FormatError::DuplicateLabel { at: at.into(), label: label.to_string() });
        }
        if let Some((number, name)) = known_name(&label) {
            return Err(FormatError::NotProtected { at: at.into(), name, label: number });
        }
        if label == Label::Int(labels::COUNTERSIGNATURE.into()) {
            countersignature = Some((i, value));
        }
        seen.insert(label);
    }
    Ok(countersignature)
}

fn modules(bytes: &[u8], pos: usize, at: &str) -> Result<Vec<Module>, FormatError> {
    let h = head(bytes, pos, at)?;
    if h.major != ARRAY {
        return Err(wrong_type(at, "modules", "an array", h));
    }
    let mut out = Vec::new();
    for (i, item) in cbor::array_items(bytes, pos).map_err(|e| malformed(at, e))?.into_iter().enumerate() {
        let entry_at = format!("{at} modules entry {}", i + 1);
        expect(head(bytes, item.start, &entry_at)?, ARRAY, "an array", &entry_at)?;
        let fields = cbor::array_items(bytes, item.start).map_err(|e| malformed(&entry_at, e))?;
        let [name, hash]: [Range<usize>; 2] = fields.try_into().map_err(|v: Vec<_>| {
            FormatError::WrongLength { at: entry_at.clone(), expected: 2, found: v.len() }
        })?;
        let name = tstr(bytes, name.start, &entry_at, "name")?;
        let hash = bstr(bytes, hash.start, &format!("{entry_at} hash"))?;
        out.push((name, hash));
    }
    check_modules_at(&out, at)?;
    Ok(out)
}

// ---- small readers; every span they get has passed `cbor::skip` ----

fn head(bytes: &[u8], pos: usize, at: &str) -> Result<Head, FormatError> {
    cbor::head(bytes, pos).map_err(|e| malformed(at, e))
}

fn label(bytes: &[u8], pos: usize, at: &str) -> Result<Label, FormatError> {
    let h = head(bytes, pos, at)?;
    match (cbor::integer(h), h.major) {
        (Some(i), _) => Ok(Label::Int(i)),
        (None, TSTR) => Ok(Label::Text(tstr(bytes, pos, at, "label")?)),
        _ => Err(wrong_type(at, "label", "an integer or a text string", h)),
    }
}

fn bstr(bytes: &[u8], pos: usize, at: &str) -> Result<Vec<u8>, FormatError> {
    let h = head(bytes, pos, at)?;
    if h.major != BSTR {
        return Err(FormatError::WrongType {
            at: at.into(),
            expected: "a byte string",
            found: cbor::type_name(h),
        });
    }
    cbor::string_content(bytes, pos).map_err(|e| malformed(at, e))
}

fn tstr(bytes: &[u8], pos: usize, at: &str, name: &str) -> Result<String, FormatError> {
    let h = head(bytes, pos, at)?;
    if h.major != TSTR {
        return Err(wrong_type(at, name, "a text string", h));
    }
    let raw = cbor::string_content(bytes, pos).map_err(|e| malformed(at, e))?;
    String::from_utf8(raw).map_err(|_| invalid(at, &format!("{name} is not UTF-8")))
}

fn uint(bytes: &[u8], pos: usize, at: &str, name: &str) -> Result<u64, FormatError> {
    let h = head(bytes, pos, at)?;
    match (h.major, h.arg) {
        (UINT, Some(n)) => Ok(n),
        _ => Err(wrong_type(at, name, "an unsigned integer", h)),
    }
}

fn expect(h: Head, major: u8, expected: &'static str, at: &str) -> Result<(), FormatError> {
    if h.major == major {
        Ok(())
    } else {
        Err(FormatError::WrongType { at: at.into(), expected, found: cbor::type_name(h) })
    }
}

// ---- writing ----

fn write_alg_kid(out: &mut Vec<u8>, kid: &[u8]) {
    cbor::write_int(out, labels::ALG);
    cbor::write_int(out, ALG_EDDSA);
    cbor::write_int(out, labels::KID);
    cbor::write_bstr(out, kid);
}

fn write_gateway_fields(out: &mut Vec<u8>, received_ms: u64, modules: &[Module]) {
    cbor::write_int(out, labels::RECEIVED_MS);
    cbor::write_head(out, UINT, received_ms);
    cbor::write_int(out, labels::MODULES);
    cbor::write_head(out, ARRAY, modules.len() as u64);
    for (name, hash) in modules {
        cbor::write_head(out, ARRAY, 2);
        cbor::write_tstr(out, name);
        cbor::write_bstr(out, hash);
    }
}

/// Signs `protected` + `payload` and writes the tagged COSE_Sign1.
fn sign_and_assemble<E>(
    protected: Vec<u8>,
    payload: &[u8],
    sign: impl FnOnce(&[u8]) -> Result<Vec<u8>, E>,
    what: &str,
) -> Result<Vec<u8>, BuildError<E>> {
    let signature = sign(&sign1_tbs(&protected, payload)).map_err(BuildError::Sign)?;
    check_signature_len(&signature, what)?;
    let mut out = Vec::with_capacity(protected.len() + payload.len() + signature.len() + 16);
    cbor::write_head(&mut out, TAG, TAG_SIGN1);
    cbor::write_head(&mut out, ARRAY, 4);
    cbor::write_bstr(&mut out, &protected);
    cbor::write_head(&mut out, MAP, 0);
    cbor::write_bstr(&mut out, payload);
    cbor::write_bstr(&mut out, &signature);
    Ok(out)
}

// ---- checks and errors ----

fn check_kid(kid: &[u8], at: &str) -> Result<(), FormatError> {
    if kid.is_empty() {
        return Err(invalid(at, "kid is empty"));
    }
    Ok(())
}

fn check_signature_len(signature: &[u8], at: &str) -> Result<(), FormatError> {
    if signature.len() != SIGNATURE_LEN {
        return Err(FormatError::SignatureLength { at: at.into(), len: signature.len() });
    }
    Ok(())
}

fn check_modules(modules: &[Module]) -> Result<(), FormatError> {
    check_modules_at(modules, "modules argument")
}

fn check_modules_at(modules: &[Module], at: &str) -> Result<(), FormatError> {
    match modules.iter().find(|(_, hash)| hash.len() != MODULE_HASH_LEN) {
        Some((name, hash)) => {
            Err(FormatError::ModuleHashLength { at: at.into(), module: name.clone(), len: hash.len() })
        }
        None => Ok(()),
    }
}

fn malformed(at: &str, e: cbor::Malformed) -> FormatError {
    FormatError::Malformed { at: at.into(), reason: e.to_string() }
}

fn missing(at: &str, label: i64, name: &'static str) -> FormatError {
    FormatError::MissingHeader { at: at.into(), name, label }
}

fn invalid(at: &str, problem: &str) -> FormatError {
    FormatError::Invalid { at: at.into(), problem: problem.into() }
}

fn wrong_type(at: &str, name: &str, expected: &'static str, h: Head) -> FormatError {
    FormatError::WrongType { at: format!("{at} {name}"), expected, found: cbor::type_name(h) }
}

#[cfg(test)]
mod tests;

use super::*;
use crate::senml::{self, Measurement};
use ciborium::Value;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use std::convert::Infallible;

const SENSOR_KID: &[u8] = b"living-room";
const GATEWAY_KID: &[u8] = b"gw-1";
const RECEIVED_MS: u64 = 1_768_456_800_250;

fn sensor_key() -> SigningKey {
    SigningKey::from_bytes(&[7u8; 32])
}

fn gateway_key() -> SigningKey {
    SigningKey::from_bytes(&[9u8; 32])
}

/// A signing closure as the host would pass one.
fn signer(key: &SigningKey) -> impl FnOnce(&[u8]) -> Result<Vec<u8>, Infallible> + '_ {
    move |tbs| Ok(key.sign(tbs).to_bytes().to_vec())
}

fn verifies(key: &VerifyingKey, tbs: &[u8], signature: &[u8]) -> bool {
    Signature::from_slice(signature).is_ok_and(|s| key.verify_strict(tbs, &s).is_ok())
}

fn payload() -> Vec<u8> {
    senml::encode(
        "A4:C1:38:00:00:01",
        RECEIVED_MS,
        &[Measurement { name: "temperature".into(), unit: "Cel".into(), value: 21.5 }],
    )
}

fn modules() -> Vec<Module> {
    vec![("filter".into(), vec![0x11; 32]), ("sign".into(), vec![0x22; 32])]
}

fn sensor_sign1() -> Vec<u8> {
    build_sensor_sign1(SENSOR_KID, 42, &payload(), signer(&sensor_key())).unwrap()
}

fn countersigned(sign1: &[u8], received_ms: u64) -> Vec<u8> {
    countersign(sign1, GATEWAY_KID, received_ms, &modules(), signer(&gateway_key())).unwrap()
}

fn cbor(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(value, &mut out).unwrap();
    out
}

fn int(i: i64) -> Value {
    Value::Integer(i.into())
}

/// A tagged COSE_Sign1 assembled from ciborium values, for malformed cases.
fn sign1_from(protected: Value, unprotected: Value, payload: Value, signature: Value) -> Vec<u8> {
    cbor(&Value::Tag(
        18,
        Box::new(Value::Array(vec![Value::Bytes(cbor(&protected)), unprotected, payload, signature])),
    ))
}

fn good_protected() -> Vec<(Value, Value)> {
    vec![(int(1), int(-8)), (int(4), Value::Bytes(SENSOR_KID.to_vec())), (int(labels::SEQ), int(1))]
}

fn err_of(bytes: &[u8]) -> String {
    parse_sign1(bytes).unwrap_err().to_string()
}

/// A sensor Sign1 parses back to its fields and its signature verifies over `tbs()`.
#[test]
fn sensor_sign1_round_trip() {
    let bytes = sensor_sign1();
    assert_eq!(bytes[0], 0xd2, "tag 18");
    let parsed = parse_sign1(&bytes).unwrap();
    assert_eq!(parsed.alg(), ALG_EDDSA);
    assert_eq!(parsed.kid(), SENSOR_KID);
    assert_eq!(parsed.seq(), Some(42));
    assert_eq!(parsed.content_type(), None);
    assert_eq!(parsed.payload(), payload());
    assert!(parsed.countersignatures().is_empty());
    assert!(verifies(&sensor_key().verifying_key(), &parsed.tbs(), parsed.signature()));
    assert!(!verifies(&gateway_key().verifying_key(), &parsed.tbs(), parsed.signature()));
}

/// The sensor's protected header is exactly `{1: -8, 4: kid, -65537: seq}` in deterministic order.
#[test]
fn sensor_protected_header_bytes() {
    let parsed = parse_sign1(&sensor_sign1()).unwrap();
    let expected = Value::Map(vec![
        (int(1), int(-8)),
        (int(4), Value::Bytes(SENSOR_KID.to_vec())),
        (int(-65537), int(42)),
    ]);
    assert_eq!(parsed.protected(), cbor(&expected));
}

/// `tbs()` is RFC 9052's Sig_structure, built independently with ciborium values.
#[test]
fn sign1_tbs_is_rfc9052_sig_structure() {
    let parsed = parse_sign1(&sensor_sign1()).unwrap();
    let expected = Value::Array(vec![
        Value::Text("Signature1".into()),
        Value::Bytes(parsed.protected().to_vec()),
        Value::Bytes(vec![]),
        Value::Bytes(parsed.payload().to_vec()),
    ]);
    assert_eq!(parsed.tbs(), cbor(&expected));
}

/// Our Sign1 is byte-identical to coset's (an independent RFC 9052 implementation), and coset verifies it.
#[test]
fn sensor_sign1_matches_coset() {
    use coset::{CborSerializable, CoseSign1Builder, HeaderBuilder, TaggedCborSerializable, iana};
    let key = sensor_key();
    let protected = HeaderBuilder::new()
        .algorithm(iana::Algorithm::EdDSA)
        .key_id(SENSOR_KID.to_vec())
        .value(labels::SEQ, int(42))
        .build();
    let theirs = CoseSign1Builder::new()
        .protected(protected)
        .payload(payload())
        .create_signature(b"", |tbs| key.sign(tbs).to_bytes().to_vec())
        .build()
        .to_tagged_vec()
        .unwrap();
    assert_eq!(sensor_sign1(), theirs);

    let countersigned = countersigned(&sensor_sign1(), RECEIVED_MS);
    let parsed = coset::CoseSign1::from_tagged_slice(&countersigned).unwrap();
    parsed
        .verify_signature(b"", |sig, tbs| {
            verifies(&key.verifying_key(), tbs, sig).then_some(()).ok_or("bad signature")
        })
        .unwrap();
    assert!(parsed.unprotected.rest.iter().any(|(l, _)| *l == coset::Label::Int(11)));
    let _ = parsed.to_vec().unwrap();
}

/// After countersigning, both the sensor's signature and the gateway's countersignature verify.
#[test]
fn countersignature_round_trip() {
    let bytes = countersigned(&sensor_sign1(), RECEIVED_MS);
    let parsed = parse_sign1(&bytes).unwrap();
    assert!(verifies(&sensor_key().verifying_key(), &parsed.tbs(), parsed.signature()));
    let [cs] = parsed.countersignatures() else { panic!("one countersignature") };
    assert_eq!(cs.alg(), ALG_EDDSA);
    assert_eq!(cs.kid(), GATEWAY_KID);
    assert_eq!(cs.received_ms(), Some(RECEIVED_MS));
    assert_eq!(cs.modules(), modules());
    assert!(verifies(&gateway_key().verifying_key(), cs.tbs(), cs.signature()));
    assert!(!verifies(&sensor_key().verifying_key(), cs.tbs(), cs.signature()));
}

/// One countersignature sits directly under label 11 as `[protected, {}, signature]` (RFC 9338 §2).
#[test]
fn single_countersignature_is_not_wrapped() {
    let bytes = countersigned(&sensor_sign1(), RECEIVED_MS);
    let Value::Tag(18, sign1) = ciborium::from_reader::<Value, _>(&bytes[..]).unwrap() else { panic!() };
    let unprotected = sign1.as_array().unwrap()[1].as_map().unwrap();
    let [(label, value)] = unprotected.as_slice() else { panic!("one entry") };
    assert_eq!(label, &int(11));
    let cs = value.as_array().unwrap();
    assert_eq!(cs.len(), 3);
    assert!(cs[0].is_bytes() && cs[1].as_map().unwrap().is_empty() && cs[2].as_bytes().unwrap().len() == 64);
}

/// A second and third countersignature keep the earlier ones, which still verify.
#[test]
fn more_countersignatures_keep_the_first() {
    let once = countersigned(&sensor_sign1(), RECEIVED_MS);
    let twice = countersigned(&once, RECEIVED_MS + 1);
    let thrice = countersigned(&twice, RECEIVED_MS + 2);
    for (bytes, n) in [(&twice, 2), (&thrice, 3)] {
        let parsed = parse_sign1(bytes).unwrap();
        assert!(verifies(&sensor_key().verifying_key(), &parsed.tbs(), parsed.signature()));
        assert_eq!(parsed.countersignatures().len(), n);
        for (i, cs) in parsed.countersignatures().iter().enumerate() {
            assert_eq!(cs.received_ms(), Some(RECEIVED_MS + i as u64));
            assert!(verifies(&gateway_key().verifying_key(), cs.tbs(), cs.signature()));
        }
    }
    // Several countersignatures are an array of COSE_Countersignature arrays.
    let Value::Tag(18, sign1) = ciborium::from_reader::<Value, _>(&thrice[..]).unwrap() else { panic!() };
    let value = &sign1.as_array().unwrap()[1].as_map().unwrap()[0].1;
    assert!(value.as_array().unwrap().iter().all(|cs| cs.as_array().unwrap().len() == 3));
    assert_eq!(
        parse_sign1(&once).unwrap().countersignatures()[0],
        parse_sign1(&thrice).unwrap().countersignatures()[0]
    );
}

/// The Countersign_structure signed is exactly RFC 9338 §3.3's array, built independently with ciborium values.
#[test]
fn countersign_structure_known_answer() {
    let sign1 = sensor_sign1();
    let target = parse_sign1(&sign1).unwrap();
    let mut signed = None;
    let out = countersign(&sign1, GATEWAY_KID, RECEIVED_MS, &modules(), |tbs| {
        signed = Some(tbs.to_vec());
        Ok::<_, Infallible>(vec![0xab; 64])
    })
    .unwrap();

    let sign_protected = cbor(&Value::Map(vec![
        (int(1), int(-8)),
        (int(4), Value::Bytes(GATEWAY_KID.to_vec())),
        (int(-65538), Value::Integer(RECEIVED_MS.into())),
        (
            int(-65539),
            Value::Array(vec![
                Value::Array(vec![Value::Text("filter".into()), Value::Bytes(vec![0x11; 32])]),
                Value::Array(vec![Value::Text("sign".into()), Value::Bytes(vec![0x22; 32])]),
            ]),
        ),
    ]));
    let expected = cbor(&Value::Array(vec![
        Value::Text("CounterSignatureV2".into()),
        Value::Bytes(target.protected().to_vec()),
        Value::Bytes(sign_protected.clone()),
        Value::Bytes(vec![]),
        Value::Bytes(target.payload().to_vec()),
        Value::Array(vec![Value::Bytes(target.signature().to_vec())]),
    ]));
    assert_eq!(signed.unwrap(), expected);

    let parsed = parse_sign1(&out).unwrap();
    let cs = &parsed.countersignatures()[0];
    assert_eq!(cs.protected(), sign_protected);
    assert_eq!(cs.tbs(), expected);
    assert_eq!(cs.signature(), [0xab; 64]);
}

/// `countersign_tbs` pins every byte: context "CounterSignatureV2" and other_fields as a nested one-element array.
#[test]
fn countersign_tbs_bytes() {
    let tbs = countersign_tbs(&[0xa0], &[0xa1, 0x01, 0x27], b"hi", &[0x01]);
    let mut expected = vec![0x86, 0x72];
    expected.extend_from_slice(b"CounterSignatureV2");
    expected
        .extend_from_slice(&[0x41, 0xa0, 0x43, 0xa1, 0x01, 0x27, 0x40, 0x42, b'h', b'i', 0x81, 0x41, 0x01]);
    assert_eq!(tbs, expected);
}

/// Changing the payload, the protected header or the sensor's signature breaks verification of both signatures.
#[test]
fn tampering_breaks_verification() {
    let bytes = countersigned(&sensor_sign1(), RECEIVED_MS);
    let good = parse_sign1(&bytes).unwrap();
    let sensor = sensor_key().verifying_key();
    let gateway = gateway_key().verifying_key();

    // Re-assemble the message with one part replaced, as an attacker would.
    let rebuild = |protected: Vec<u8>, payload: Vec<u8>, signature: Vec<u8>| {
        let Value::Tag(18, sign1) = ciborium::from_reader::<Value, _>(&bytes[..]).unwrap() else { panic!() };
        let unprotected = sign1.as_array().unwrap()[1].clone();
        let bytes = cbor(&Value::Tag(
            18,
            Box::new(Value::Array(vec![
                Value::Bytes(protected),
                unprotected,
                Value::Bytes(payload),
                Value::Bytes(signature),
            ])),
        ));
        parse_sign1(&bytes).unwrap()
    };
    let mut payload = good.payload().to_vec();
    *payload.last_mut().unwrap() ^= 1;
    let mut protected = good.protected().to_vec();
    *protected.last_mut().unwrap() ^= 1; // seq 42 -> 43
    let mut signature = good.signature().to_vec();
    signature[0] ^= 1;
    let cases = [
        rebuild(good.protected().to_vec(), payload, good.signature().to_vec()),
        rebuild(protected, good.payload().to_vec(), good.signature().to_vec()),
        rebuild(good.protected().to_vec(), good.payload().to_vec(), signature),
    ];
    for tampered in &cases {
        assert!(!verifies(&sensor, &tampered.tbs(), tampered.signature()));
        let cs = &tampered.countersignatures()[0];
        assert!(!verifies(&gateway, cs.tbs(), cs.signature()));
    }
    assert_eq!(cases[1].seq(), Some(43));
}

/// A tampered countersignature header (e.g. received_ms) fails the countersignature only.
#[test]
fn tampered_countersignature_fails() {
    let bytes = countersigned(&sensor_sign1(), RECEIVED_MS);
    let needle = RECEIVED_MS.to_be_bytes();
    let at = bytes.windows(8).position(|w| w == needle).unwrap();
    let mut tampered = bytes.clone();
    tampered[at + 7] ^= 1;
    let parsed = parse_sign1(&tampered).unwrap();
    assert_eq!(parsed.countersignatures()[0].received_ms(), Some(RECEIVED_MS ^ 1));
    assert!(verifies(&sensor_key().verifying_key(), &parsed.tbs(), parsed.signature()));
    let cs = &parsed.countersignatures()[0];
    assert!(!verifies(&gateway_key().verifying_key(), cs.tbs(), cs.signature()));
}

/// Countersigning keeps protected header, payload, signature, unknown entries and untaggedness byte for byte.
#[test]
fn countersign_preserves_bytes() {
    // Protected header with seq in a needlessly long 4-byte form and keys out of order.
    let protected: Vec<u8> = vec![
        0xa3, 0x3a, 0x00, 0x01, 0x00, 0x00, 0x1a, 0x00, 0x00, 0x00, 0x2a, 0x04, 0x42, b'k', b'1', 0x01, 0x27,
    ];
    let payload = payload();
    let signature = sensor_key().sign(&sign1_tbs(&protected, &payload)).to_bytes();
    let mut bytes = vec![0x84, 0x58, protected.len() as u8]; // untagged; bstr length in the long form
    bytes.extend_from_slice(&protected);
    let head_len = bytes.len();
    bytes.extend_from_slice(&[0xa1, 0x64, b'n', b'o', b't', b'e', 0x61, b'x']);
    let tail_start = bytes.len();
    bytes.extend_from_slice(&[0x59, 0x00, payload.len() as u8]);
    bytes.extend_from_slice(&payload);
    bytes.extend_from_slice(&[0x58, 0x40]);
    bytes.extend_from_slice(&signature);

    let parsed = parse_sign1(&bytes).unwrap();
    assert_eq!((parsed.kid(), parsed.seq(), parsed.alg()), (&b"k1"[..], Some(42), ALG_EDDSA));
    assert!(verifies(&sensor_key().verifying_key(), &parsed.tbs(), parsed.signature()));

    let out = countersigned(&bytes, RECEIVED_MS);
    assert_eq!(out[..head_len], bytes[..head_len]);
    assert_eq!(out[out.len() - (bytes.len() - tail_start)..], bytes[tail_start..]);
    let note = [0x64, b'n', b'o', b't', b'e', 0x61, b'x'];
    assert!(out[head_len..].windows(note.len()).any(|w| w == note));
    let parsed = parse_sign1(&out).unwrap();
    assert!(verifies(&sensor_key().verifying_key(), &parsed.tbs(), parsed.signature()));
    let cs = &parsed.countersignatures()[0];
    assert!(verifies(&gateway_key().verifying_key(), cs.tbs(), cs.signature()));
}

/// A gateway-made Sign1 carries the attestation, content type, receipt time and modules, and verifies.
#[test]
fn gateway_sign1_round_trip() {
    let bytes = build_gateway_sign1(GATEWAY_KID, RECEIVED_MS, &modules(), &payload(), signer(&gateway_key()))
        .unwrap();
    let parsed = parse_sign1(&bytes).unwrap();
    assert_eq!(parsed.attestation(), Some("gateway"));
    assert_eq!(parsed.content_type(), Some(&ContentType::Media("application/senml+cbor".into())));
    assert_eq!(parsed.kid(), GATEWAY_KID);
    assert_eq!(parsed.received_ms(), Some(RECEIVED_MS));
    assert_eq!(parsed.modules(), modules());
    assert_eq!(parsed.seq(), None);
    assert!(verifies(&gateway_key().verifying_key(), &parsed.tbs(), parsed.signature()));
    let expected = Value::Map(vec![
        (int(1), int(-8)),
        (int(3), Value::Text("application/senml+cbor".into())),
        (int(4), Value::Bytes(GATEWAY_KID.to_vec())),
        (int(-65538), Value::Integer(RECEIVED_MS.into())),
        (
            int(-65539),
            Value::Array(
                modules()
                    .into_iter()
                    .map(|(n, h)| Value::Array(vec![Value::Text(n), Value::Bytes(h)]))
                    .collect(),
            ),
        ),
        (int(-65540), Value::Text("gateway".into())),
    ]);
    assert_eq!(parsed.protected(), cbor(&expected));
}

/// Alg -19 (Ed25519) is accepted like -8; other algorithms are named in the error.
#[test]
fn algorithms() {
    let with_alg = |alg: Value| {
        let mut p = good_protected();
        p[0].1 = alg;
        sign1_from(Value::Map(p), Value::Map(vec![]), Value::Bytes(vec![]), Value::Bytes(vec![0; 64]))
    };
    assert_eq!(parse_sign1(&with_alg(int(-19))).unwrap().alg(), ALG_ED25519);
    assert_eq!(err_of(&with_alg(int(-7))), "COSE_Sign1 protected header: alg -7 is not EdDSA");
    assert_eq!(
        err_of(&with_alg(Value::Text("EdDSA".into()))),
        r#"COSE_Sign1 protected header: alg "EdDSA" is not EdDSA"#
    );
    assert_eq!(
        err_of(&with_alg(Value::Bytes(vec![]))),
        "COSE_Sign1 protected header alg: expected an integer, found a byte string"
    );
}

/// Each structural problem is an error that says what is wrong and where.
#[test]
fn errors_say_what_and_where() {
    let empty = || Value::Map(vec![]);
    let sig = || Value::Bytes(vec![0; 64]);
    let pl = || Value::Bytes(b"x".to_vec());
    let without =
        |label: i64| Value::Map(good_protected().into_iter().filter(|(l, _)| *l != int(label)).collect());
    let with = |extra: (Value, Value)| {
        let mut p = good_protected();
        p.push(extra);
        Value::Map(p)
    };
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (sign1_from(without(4), empty(), pl(), sig()), "COSE_Sign1 protected header: no kid (label 4)"),
        (sign1_from(without(1), empty(), pl(), sig()), "COSE_Sign1 protected header: no alg (label 1)"),
        (
            sign1_from(without(labels::SEQ), Value::Map(vec![(int(labels::SEQ), int(1))]), pl(), sig()),
            "COSE_Sign1 unprotected header: seq (label -65537) must be in the protected header",
        ),
        (
            sign1_from(
                Value::Map(good_protected()),
                Value::Map(vec![(int(4), Value::Bytes(b"x".to_vec()))]),
                pl(),
                sig(),
            ),
            "COSE_Sign1 unprotected header: label 4 appears more than once",
        ),
        (
            sign1_from(with((int(1), int(-8))), empty(), pl(), sig()),
            "COSE_Sign1 protected header: label 1 appears more than once",
        ),
        (
            sign1_from(Value::Map(good_protected()), empty(), Value::Null, sig()),
            "COSE_Sign1 payload: detached payload (nil) is not supported",
        ),
        (
            sign1_from(Value::Map(good_protected()), empty(), pl(), Value::Bytes(vec![0; 63])),
            "COSE_Sign1: signature is 63 bytes, not 64",
        ),
        (
            sign1_from(with((int(labels::SEQ), int(-1))), empty(), pl(), sig()),
            "COSE_Sign1 protected header: label -65537 appears more than once",
        ),
        (
            sign1_from(without(labels::SEQ), empty(), pl(), sig())[..].to_vec(),
            "", // no seq is fine (a gateway-made Sign1 has none)
        ),
        (
            sign1_from(
                Value::Map(vec![
                    (int(1), int(-8)),
                    (int(4), Value::Bytes(b"k".to_vec())),
                    (int(labels::SEQ), int(-1)),
                ]),
                empty(),
                pl(),
                sig(),
            ),
            "COSE_Sign1 protected header seq: expected an unsigned integer, found a negative integer",
        ),
        (
            sign1_from(with((int(2), Value::Array(vec![int(-70000)]))), empty(), pl(), sig()),
            "COSE_Sign1 protected header: critical header parameter -70000 is not understood",
        ),
        (sign1_from(with((int(2), Value::Array(vec![int(labels::SEQ)]))), empty(), pl(), sig()), ""),
        (
            sign1_from(
                with((
                    int(labels::MODULES),
                    Value::Array(vec![Value::Array(vec![
                        Value::Text("m".into()),
                        Value::Bytes(vec![1; 31]),
                    ])]),
                )),
                empty(),
                pl(),
                sig(),
            ),
            "COSE_Sign1 protected header: hash of module \"m\" is 31 bytes, not 32",
        ),
        (
            sign1_from(
                Value::Map(good_protected()),
                Value::Map(vec![(int(11), Value::Array(vec![]))]),
                pl(),
                sig(),
            ),
            "COSE_Sign1 unprotected header countersignature (label 11): empty array",
        ),
        (
            sign1_from(
                Value::Map(good_protected()),
                Value::Map(vec![(
                    int(11),
                    Value::Array(vec![
                        Value::Bytes(cbor(&Value::Map(vec![
                            (int(1), int(-7)),
                            (int(4), Value::Bytes(b"g".to_vec())),
                        ]))),
                        empty(),
                        sig(),
                    ]),
                )]),
                pl(),
                sig(),
            ),
            "countersignature 1 protected header: alg -7 is not EdDSA",
        ),
        (
            sign1_from(
                Value::Map(good_protected()),
                Value::Map(vec![(
                    int(11),
                    Value::Array(vec![Value::Array(vec![Value::Bytes(vec![]), empty()])]),
                )]),
                pl(),
                sig(),
            ),
            "countersignature 1: expected 3 elements, found 2",
        ),
        (
            cbor(&Value::Tag(17, Box::new(Value::Array(vec![])))),
            "COSE_Sign1: CBOR tag 17 is not COSE_Sign1 (18)",
        ),
        (
            cbor(&Value::Array(vec![Value::Bytes(vec![]), empty(), pl()])),
            "COSE_Sign1: expected 4 elements, found 3",
        ),
        (cbor(&Value::Map(vec![])), "COSE_Sign1: expected an array, found a map"),
        (
            [sensor_sign1(), vec![0x00]].concat(),
            "COSE_Sign1: not well-formed CBOR: unexpected bytes after the item at byte",
        ),
        (sensor_sign1()[..40].to_vec(), "COSE_Sign1: not well-formed CBOR: truncated"),
    ];
    for (bytes, expected) in cases {
        match parse_sign1(&bytes) {
            Ok(_) => assert_eq!(expected, "", "parsed, expected {expected:?}"),
            Err(e) => {
                assert!(!expected.is_empty() && e.to_string().starts_with(expected), "{e} / {expected}")
            }
        }
    }
}

/// Bad builder inputs and signer outputs are errors, and a signer's own error is passed through.
#[test]
fn build_errors() {
    let key = sensor_key();
    let e = build_sensor_sign1(b"", 1, b"x", signer(&key)).unwrap_err();
    assert_eq!(e.to_string(), "sensor kid: kid is empty");
    let e = build_sensor_sign1(b"k", 1, b"x", |_| Ok::<_, Infallible>(vec![0; 10])).unwrap_err();
    assert_eq!(e.to_string(), "sensor COSE_Sign1: signature is 10 bytes, not 64");
    let e = build_sensor_sign1(b"k", 1, b"x", |_| Err("no key")).unwrap_err();
    assert!(matches!(e, BuildError::Sign("no key")));
    let bad = vec![("m".to_string(), vec![0; 31])];
    let e = countersign(&sensor_sign1(), GATEWAY_KID, 1, &bad, signer(&key)).unwrap_err();
    assert_eq!(e.to_string(), "modules argument: hash of module \"m\" is 31 bytes, not 32");
    let e = build_gateway_sign1(GATEWAY_KID, 1, &bad, b"x", signer(&key)).unwrap_err();
    assert!(matches!(e, BuildError::Format(FormatError::ModuleHashLength { .. })));
    let e = countersign(b"\x00", GATEWAY_KID, 1, &[], signer(&key)).unwrap_err();
    assert_eq!(e.to_string(), "COSE_Sign1: expected an array, found an unsigned integer");
}

/// Huge length fields in tiny inputs are errors, with nothing allocated from them.
#[test]
fn huge_lengths_are_errors() {
    let huge: [&[u8]; 5] = [
        &[0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
        &[0xd2, 0x84, 0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
        &[0xd2, 0x84, 0x40, 0xbb, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
        &[0x84, 0x5a, 0xff, 0xff, 0xff, 0xff],
        &[0x84, 0x45, 0xba, 0x00, 0x01, 0x00, 0x00, 0xa0, 0x40, 0x40],
    ];
    for bytes in huge {
        assert!(parse_sign1(bytes).unwrap_err().to_string().contains("truncated"), "{bytes:02x?}");
    }
}

/// Every truncation of a valid countersigned Sign1 is an error, never a panic.
#[test]
fn truncations_are_errors() {
    let bytes = countersigned(&countersigned(&sensor_sign1(), 1), 2);
    for len in 0..bytes.len() {
        assert!(parse_sign1(&bytes[..len]).is_err(), "prefix {len}");
    }
}

/// 50k xorshift-random inputs and 50k mutations of a valid Sign1 never panic; what parses countersigns cleanly.
#[test]
fn fuzz_never_panics() {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..50_000 {
        let len = (next() % 200) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let _ = parse_sign1(&bytes);
        let _ = senml::decode(&bytes);
    }

    let valid = countersigned(&sensor_sign1(), 1);
    let (mut parsed_ok, mut countersigned_ok) = (0, 0);
    for _ in 0..50_000 {
        let mut bytes = valid.clone();
        for _ in 0..1 + next() % 4 {
            let at = (next() as usize) % bytes.len().max(1);
            match next() % 5 {
                0 if !bytes.is_empty() => bytes[at] ^= 1 << (next() % 8),
                1 if !bytes.is_empty() => bytes[at] = next() as u8,
                2 => bytes.insert(at.min(bytes.len()), next() as u8),
                3 if !bytes.is_empty() => {
                    bytes.remove(at);
                }
                _ => bytes.truncate(at),
            }
        }
        let Ok(parsed) = parse_sign1(&bytes) else { continue };
        parsed_ok += 1;
        let _ = parsed.tbs();
        let Ok(again) = countersign(&bytes, GATEWAY_KID, 7, &[], signer(&gateway_key())) else { continue };
        countersigned_ok += 1;
        let again = parse_sign1(&again).expect("a countersigned valid Sign1 parses");
        assert_eq!(
            (again.protected(), again.payload(), again.signature()),
            (parsed.protected(), parsed.payload(), parsed.signature())
        );
        assert_eq!(
            again.countersignatures()[..parsed.countersignatures().len()],
            parsed.countersignatures()[..]
        );
    }
    // The mutations must reach the deep paths, not just bounce off the first byte.
    assert!(parsed_ok > 1_000 && countersigned_ok > 1_000, "{parsed_ok} {countersigned_ok}");
}

/// A message id added to a countersigned COSE_Sign1 keeps both signatures
/// valid, reads back, and replaces an earlier one instead of adding a second.
#[test]
fn message_id_keeps_signatures() {
    let message = countersigned(&sensor_sign1(), RECEIVED_MS);
    assert_eq!(message_id(&message), None);
    let stamped = set_message_id(&message, "gw-1-0000abcd-7").unwrap();
    assert_eq!(message_id(&stamped).as_deref(), Some("gw-1-0000abcd-7"));
    let parsed = parse_sign1(&stamped).unwrap();
    assert!(verifies(&sensor_key().verifying_key(), &parsed.tbs(), parsed.signature()));
    let cs = &parsed.countersignatures()[0];
    assert!(verifies(&gateway_key().verifying_key(), cs.tbs(), cs.signature()));
    let again = set_message_id(&stamped, "gw-1-0000abcd-8").unwrap();
    assert_eq!(message_id(&again).as_deref(), Some("gw-1-0000abcd-8"));
    assert_eq!(again.len(), stamped.len(), "replaced, not added");
}

/// The id goes into the unprotected map of any COSE message with one, also
/// an indefinite-length map, and only there.
#[test]
fn message_id_in_other_structures() {
    // COSE_Encrypt0 shape: 16([protected, {_ -4: h'..' }, ciphertext]).
    let mut encrypt0 = vec![0xd0, 0x83, 0x44, 0xa1, 0x01, 0x18];
    encrypt0.extend_from_slice(&[0x2a, 0xbf, 0x23, 0x41, 0x01, 0xff, 0x42, 0x01, 0x02]);
    let stamped = set_message_id(&encrypt0, "id-1").unwrap();
    assert_eq!(message_id(&stamped).as_deref(), Some("id-1"));
    assert!(stamped.ends_with(&[0x64, b'i', b'd', b'-', b'1', 0xff, 0x42, 0x01, 0x02]));
    assert!(set_message_id(&[0xd8, 0x2a, 0x80], "x").is_err(), "tag 42 is no COSE message");
    assert!(set_message_id(&payload(), "x").is_err(), "SenML is no COSE message");
}

//! The trust profiles against their cryptographic floor, in one run.
//!
//! - Provenance: a signed wearable reading is decoded and verified at ingest
//!   (COSE_Sign1, Ed25519), then runs through `alarm` and `sign` (the RFC 9338
//!   countersignature). Floor: bare ed25519-dalek verify + sign of the same
//!   bytes.
//! - Privacy: a room reading runs through `heating` and `seal` (COSE-HPKE to
//!   one recipient). Floor: a bare HPKE-4 single-shot seal of the same
//!   plaintext. The home profile as shipped also attests (`sign`) before
//!   sealing; its floor adds one Ed25519 signature.
//! - The replay guard's SQLite write per signed reading, on its own.
//!
//! Run with `cargo bench -p edgeward --bench trust`; it prints Markdown for
//! BENCHMARKS.md. Figures are medians of several runs.

use ed25519_dalek::{Signature, Signer as _, SigningKey};
mod common;

use common::{Host, RUNS, median_ns};
use edgeward::config::{OnError, SensorFormat};
use edgeward::decode::{Frame, Payload, SensorRef, decode_frame};
use edgeward::pipeline::{Instance, Pipeline};
use edgeward::trust::replay::CounterWidth;
use edgeward::trust::{Keyring, keys, seal};
use edgeward_formats::{cose, senml};
use hpke::Deserializable as _;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use std::hint::black_box;

const MESSAGES: usize = 2_000;

const ALARM: &str = r#"{"threshold": [{"measurement": "temperature", "unit": "Cel", "above": 38.0,
    "hysteresis": 0.3, "min-duration-s": 120, "severity": "critical", "code": "fever"}]}"#;
const HEATING: &str = r#"{"zone": [{"name": "room", "sensors": ["room"], "actuator": "heating/room",
    "setpoint": 20.0, "hysteresis": 0.6}]}"#;

/// A host whose keyring has the gateway's signing key and one app recipient.
fn host() -> Host {
    Host::new(|dir| {
        let gateway_key = dir.join("gateway.key");
        keys::generate(keys::KeyKind::Ed25519, &gateway_key).unwrap();
        let mut keyring = Keyring::with_signer("gateway", "gw", &gateway_key).unwrap();
        let app_public = keys::generate(keys::KeyKind::X25519, &dir.join("app.key")).unwrap();
        let public_key = keys::parse_public(keys::KeyKind::X25519, &app_public, "app").unwrap();
        keyring.recipients.insert(
            "tenants".into(),
            edgeward::trust::RecipientSet {
                recipients: vec![seal::Recipient { kid: b"app".to_vec(), public_key }],
                pad_to: 512,
            },
        );
        keyring
    })
}

/// An instance of the built-in module `name`.
fn builtin(host: &Host, name: &str, config: &str, grants: &[&str]) -> Instance {
    host.instance(name, edgeward::builtin::module(name).unwrap(), config, grants)
}

/// Signed wearable readings, as the sensor sends them.
fn signed_frames(sensor: &SigningKey) -> Vec<Frame> {
    (0..MESSAGES as u64)
        .map(|i| {
            let t_ms = 1_768_435_200_000 + i * 60_000;
            let celsius = 36.6 + (i % 40) as f64 * 0.06;
            let payload = senml::encode(
                "C0:FF:EE:00:00:01",
                t_ms,
                &[
                    senml::Measurement { name: "battery".into(), unit: "%EL".into(), value: 90.0 },
                    senml::Measurement { name: "temperature".into(), unit: "Cel".into(), value: celsius },
                ],
            );
            let data = cose::build_sensor_sign1(b"wearable-1", i + 1, &payload, |tbs| {
                Ok::<_, std::convert::Infallible>(sensor.sign(tbs).to_bytes().to_vec())
            })
            .unwrap();
            Frame {
                address: [0xc0, 0xff, 0xee, 0, 0, 1],
                rssi: Some(-60),
                received_ms: t_ms,
                payload: Payload::Notification { data },
            }
        })
        .collect()
}

fn main() {
    let host = host();
    let sensor = SigningKey::from_bytes(&[5u8; 32]);
    let verifying = sensor.verifying_key();
    let frames = signed_frames(&sensor);
    let sensor_ref = SensorRef {
        name: "wearable-1",
        address: "C0:FF:EE:00:00:01",
        format: SensorFormat::SignedGatt,
        kid: "wearable-1",
        key: Some(&verifying),
        bindkey: None,
    };

    // Provenance floor: verify the sensor's signature, sign once, nothing else.
    let gateway = SigningKey::from_bytes(&[6u8; 32]);
    let parsed: Vec<_> = frames
        .iter()
        .map(|f| {
            let Payload::Notification { data } = &f.payload else { unreachable!() };
            let sign1 = cose::parse_sign1(data).unwrap();
            (sign1.tbs(), Signature::from_slice(sign1.signature()).unwrap())
        })
        .collect();
    let provenance_floor = median_ns(|| {
        for (tbs, signature) in &parsed {
            verifying.verify_strict(tbs, signature).unwrap();
            black_box(gateway.sign(tbs));
        }
        parsed.len()
    });

    // Provenance pipeline: ingest (parse + verify) → alarm → countersign.
    let mut provenance = Pipeline::new(
        "provenance".into(),
        OnError::Drop,
        vec![
            builtin(&host, "alarm", ALARM, &["kv"]),
            builtin(&host, "sign", r#"{"key":"gateway"}"#, &["sign:gateway"]),
        ],
    );
    let provenance_ns = median_ns(|| {
        for frame in &frames {
            let msg = decode_frame(frame, &sensor_ref).unwrap();
            black_box(provenance.process(msg));
        }
        frames.len()
    });

    // The replay guard: one SQLite read and upsert per signed reading.
    let mut seq = 0u64;
    let replay_ns = median_ns(|| {
        for _ in 0..MESSAGES {
            seq += 1;
            host.state.replay_accept("wearable-1", seq, CounterWidth::Bits64).unwrap().unwrap();
        }
        MESSAGES
    });

    // Privacy: the plaintext is what the shipped profile seals (a gateway
    // COSE_Sign1 over the room's SenML), so both sides encrypt the same size.
    let room = edgeward::pipeline::Message {
        reading: {
            let mut r = decode_frame(&frames[0], &sensor_ref).unwrap().reading;
            r.sensor = "room".into();
            r.authenticity = edgeward::pipeline::bindings::Authenticity::None;
            r
        },
        envelope: edgeward::pipeline::bindings::Envelope {
            content_type: senml::CONTENT_TYPE.into(),
            body: senml::encode(
                "A4:C1:38:00:00:01",
                1,
                &[senml::Measurement { name: "temperature".into(), unit: "Cel".into(), value: 20.5 }],
            ),
        },
        path: Vec::new(),
    };
    let signed_room = cose::build_gateway_sign1(b"gw", 1, &[], &room.envelope.body, |tbs| {
        Ok::<_, std::convert::Infallible>(gateway.sign(tbs).to_bytes().to_vec())
    })
    .unwrap();
    let app_secret = [9u8; 32];
    let app_public = keys::public_of(keys::KeyKind::X25519, &app_secret);
    let recipient = <hpke::kem::X25519HkdfSha256 as hpke::Kem>::PublicKey::from_bytes(&app_public).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let padded = vec![0u8; 512];
    let seal_floor = median_ns(|| {
        for _ in 0..MESSAGES {
            black_box(
                hpke::single_shot_seal_with_rng::<
                    hpke::aead::ChaCha20Poly1305,
                    hpke::kdf::HkdfSha256,
                    hpke::kem::X25519HkdfSha256,
                >(&hpke::OpModeS::Base, &recipient, b"", &padded, b"", &mut rng)
                .unwrap(),
            );
        }
        MESSAGES
    });
    let sign_and_seal_floor = seal_floor
        + median_ns(|| {
            for _ in 0..MESSAGES {
                black_box(gateway.sign(&signed_room));
            }
            MESSAGES
        });

    let privacy_msg = {
        let mut m = room.clone();
        m.envelope.body = signed_room.clone();
        m
    };
    let mut privacy = Pipeline::new(
        "privacy".into(),
        OnError::Drop,
        vec![
            builtin(&host, "heating", HEATING, &["kv"]),
            builtin(&host, "seal", r#"{"recipients":"tenants"}"#, &["seal:tenants"]),
        ],
    );
    let privacy_ns = median_ns(|| {
        for i in 0..MESSAGES {
            let mut msg = privacy_msg.clone();
            msg.reading.received_ms += i as u64 * 60_000;
            black_box(privacy.process(msg));
        }
        MESSAGES
    });
    let mut home = Pipeline::new(
        "home".into(),
        OnError::Drop,
        vec![
            builtin(&host, "heating", HEATING, &["kv"]),
            builtin(&host, "sign", r#"{"key":"gateway"}"#, &["sign:gateway"]),
            builtin(&host, "seal", r#"{"recipients":"tenants"}"#, &["seal:tenants"]),
        ],
    );
    let home_ns = median_ns(|| {
        for i in 0..MESSAGES {
            let mut msg = room.clone();
            msg.reading.received_ms += i as u64 * 60_000;
            black_box(home.process(msg));
        }
        MESSAGES
    });
    drop(host.dir);

    let row = |name: &str, ns: f64, floor: f64| {
        println!(
            "| {name} | {:.1} µs | {:.0} | {:.1} µs | {:.2}x |",
            ns / 1e3,
            1e9 / ns,
            floor / 1e3,
            ns / floor
        );
    };
    println!("{MESSAGES} messages per run, median of {RUNS} runs.\n");
    println!("| path | per message | messages/s (one core) | floor | vs floor |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    row("provenance: verify + alarm + countersign", provenance_ns, provenance_floor);
    row("privacy: heating + seal", privacy_ns, seal_floor);
    row("home as shipped: heating + attest + seal", home_ns, sign_and_seal_floor);
    println!(
        "| replay guard (SQLite upsert per reading) | {:.1} µs | {:.0} | | |",
        replay_ns / 1e3,
        1e9 / replay_ns
    );
}

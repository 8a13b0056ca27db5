//! Trust profiles against their cryptographic floor
//!
//! The per-message cost of the sandboxed trust rules against the bare
//! cryptography they wrap, in alternating rounds, one message at a time
//! (no batching: `--bench throughput` has the whole path).
//! - Provenance: a signed wearable reading decoded and verified (COSE_Sign1,
//!   Ed25519), then `alarm` and `sign` (the RFC 9338 countersignature).
//!   Floor: bare ed25519-dalek `verify_strict` + `sign` of the same bytes.
//! - Privacy: a room reading through `heating` and `seal` (COSE-HPKE to one
//!   recipient, padded to 512 bytes). Floor: a bare HPKE-4 single-shot seal
//!   of the same padded plaintext. The home profile as shipped also attests
//!   (`sign`) before sealing; its floor adds one Ed25519 signature.
//! - The replay guard (SQLite): one transaction per reading, and per batch
//!   of 64 as the router does when frames queue up.
//!
//! Run with `cargo bench -p edgeward --bench trust`. Prints Markdown.

use ed25519_dalek::{Signature, Signer as _, SigningKey};
mod common;

use common::{Host, Interleaved, RUNS, interleaved, signed_wearable_frame};
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
        .map(|i| signed_wearable_frame(sensor, i + 1, 1_768_435_200_000 + i * 60_000))
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

    // Provenance: bare verify + sign, against ingest (parse + verify) →
    // alarm → countersign.
    let gateway = SigningKey::from_bytes(&[6u8; 32]);
    let parsed: Vec<_> = frames
        .iter()
        .map(|f| {
            let Payload::Notification { data } = &f.payload else { unreachable!() };
            let sign1 = cose::parse_sign1(data).unwrap();
            (sign1.tbs(), Signature::from_slice(sign1.signature()).unwrap())
        })
        .collect();
    let mut provenance = Pipeline::new(
        "provenance".into(),
        OnError::Drop,
        vec![
            builtin(&host, "alarm", ALARM, &["kv"]),
            builtin(&host, "sign", r#"{"key":"gateway"}"#, &["sign:gateway"]),
        ],
    );
    let provenance = interleaved(
        RUNS,
        || {
            for (tbs, signature) in &parsed {
                verifying.verify_strict(tbs, signature).unwrap();
                black_box(gateway.sign(tbs));
            }
            parsed.len()
        },
        || {
            for frame in &frames {
                let msg = decode_frame(frame, &sensor_ref).unwrap();
                black_box(provenance.process(msg));
            }
            frames.len()
        },
    );

    // The replay guard: a transaction per reading, against one per 64.
    let seq = std::cell::Cell::new(0u64);
    let next = || {
        seq.set(seq.get() + 1);
        ("wearable-1", seq.get(), CounterWidth::Bits64)
    };
    let replay = interleaved(
        RUNS,
        || {
            for _ in 0..MESSAGES {
                let (sensor, seq, width) = next();
                host.state.replay_accept(sensor, seq, width).unwrap().unwrap();
            }
            MESSAGES
        },
        || {
            for _ in 0..MESSAGES / 64 {
                let batch: Vec<_> = (0..64).map(|_| next()).collect();
                assert!(host.state.replay_accept_all(&batch).unwrap().iter().all(Result::is_ok));
            }
            MESSAGES / 64 * 64
        },
    );

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
    let mut seal_floor = |sign: bool| {
        for _ in 0..MESSAGES {
            if sign {
                black_box(gateway.sign(&signed_room));
            }
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
    };

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
    let mut t = 0;
    let privacy = interleaved(
        RUNS,
        || seal_floor(false),
        || {
            for _ in 0..MESSAGES {
                let mut msg = privacy_msg.clone();
                t += 60_000;
                msg.reading.received_ms += t;
                black_box(privacy.process(msg));
            }
            MESSAGES
        },
    );
    let mut home = Pipeline::new(
        "home".into(),
        OnError::Drop,
        vec![
            builtin(&host, "heating", HEATING, &["kv"]),
            builtin(&host, "sign", r#"{"key":"gateway"}"#, &["sign:gateway"]),
            builtin(&host, "seal", r#"{"recipients":"tenants"}"#, &["seal:tenants"]),
        ],
    );
    let home = interleaved(
        RUNS,
        || seal_floor(true),
        || {
            for _ in 0..MESSAGES {
                let mut msg = room.clone();
                t += 60_000;
                msg.reading.received_ms += t;
                black_box(home.process(msg));
            }
            MESSAGES
        },
    );
    drop(host.dir);

    let row = |name: &str, m: &Interleaved| {
        println!(
            "| {name} | {:.1} µs | {:.0} | {:.1} µs | {:.2}x |",
            m.subject_ns / 1e3,
            1e9 / m.subject_ns,
            m.floor_ns / 1e3,
            m.ratio
        );
    };
    println!("{MESSAGES} messages per round, {RUNS} rounds alternating floor and gateway, medians.\n");
    println!("| path | per message | messages/s (one core) | floor | vs floor |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    row("provenance: verify + alarm + countersign", &provenance);
    row("privacy: heating + seal", &privacy);
    row("home as shipped: heating + attest + seal", &home);
    println!();
    println!("| replay guard | per reading | readings/s | vs a transaction each |");
    println!("| --- | ---: | ---: | ---: |");
    println!(
        "| a transaction per reading | {:.1} µs | {:.0} | 1.00x |",
        replay.floor_ns / 1e3,
        1e9 / replay.floor_ns
    );
    println!(
        "| a transaction per 64 (the router's batch) | {:.1} µs | {:.0} | {:.2}x |",
        replay.subject_ns / 1e3,
        1e9 / replay.subject_ns,
        replay.ratio
    );
}

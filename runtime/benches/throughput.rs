//! Throughput per deployment on one core
//!
//! The gateway side is the daemon's own message path on one thread, built by
//! `topology::build` from configurations like the shipped ones: admission
//! (decode, batch signature verification, replay guard), the profile's
//! sandboxed rules, and the uplink sink committing to the outbox in groups
//! (`synchronous = FULL`). Frames are handed over as fast as it takes them,
//! in the batches the router forms when frames queue up. Publishing the
//! outbox to the broker is a separate task (see the outbox's drain rate).
//!
//! The native side is a naive implementation doing only the cryptography
//! and the durable write, with no sandbox, no rules and no decoding:
//! provenance verifies the sensor's signature (`verify_strict`) and signs
//! once; privacy signs once (as shipped, attesting) and HPKE-seals the
//! padded plaintext; both append to the same kind of outbox in groups of 64.
//! Rounds alternate between the two sides and medians are reported, so
//! drift on a shared machine hits both alike.
//!
//! Run with `cargo bench -p edgeward --bench throughput`. Prints Markdown.

mod common;

use common::{interleaved, signed_wearable_frame};
use ed25519_dalek::{Signature, Signer as _, SigningKey};
use edgeward::config::load_str;
use edgeward::decode::{Frame, Payload, bthome};
use edgeward::pipeline::{Engine, Fate};
use edgeward::sink::mqtt::UplinkSink;
use edgeward::sink::outbox::{NewEntry, Outbox, Overflow};
use edgeward::sink::{Record, Sink as _};
use edgeward::state::StateStore;
use edgeward::telemetry::Counters;
use edgeward::topology::admit::{ADMIT_BATCH, Admission};
use edgeward::topology::{Built, build, clock_for};
use edgeward::trust::keys::{self, KeyKind, Missing};
use edgeward_formats::cose;
use hpke::{Deserializable as _, Serializable as _};
use rand_chacha::rand_core::SeedableRng as _;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

const MESSAGES: usize = 4_000;
const ROUNDS: usize = 5;

const ROOM: [u8; 6] = [0xa4, 0xc1, 0x38, 0, 0, 1];

/// What both deployments' configurations start with: the gateway and its key.
const GATEWAY: &str = r#"
[gateway]
id = "bench-gw"
state-dir = "state"
[signer.gateway]
key = "gateway.key"
generate = true"#;

fn provenance_config(sensor_key: &SigningKey) -> String {
    let public = keys::format_public(KeyKind::Ed25519, &sensor_key.verifying_key().to_bytes());
    format!(
        r#"{GATEWAY}
[[sensor]]
name = "wearable-1"
address = "C0:FF:EE:00:00:01"
format = "signed-gatt"
key = "{public}"
profile = "provenance"
[profile.provenance]
modules = ["vitals", "countersign"]
on-error = "pass"
topic = "medical/{{gateway}}/{{sensor}}"
[module.vitals]
wasm = "builtin:alarm"
capabilities = ["kv"]
config = {{ stale-after-s = 600, threshold = [{{ measurement = "temperature", unit = "Cel", above = 38.0, hysteresis = 0.3, min-duration-s = 120, severity = "critical", code = "fever" }}] }}
[module.countersign]
wasm = "builtin:sign"
capabilities = ["sign:gateway"]
config = {{ key = "gateway" }}
"#
    )
}

fn privacy_config(attest: bool) -> String {
    let modules = if attest { r#"["thermostat", "attest", "seal"]"# } else { r#"["thermostat", "seal"]"# };
    let app = keys::format_public(KeyKind::X25519, &keys::public_of(KeyKind::X25519, &[9u8; 32]));
    format!(
        r#"{GATEWAY}
[recipients.tenants]
keys = [{{ kid = "tenant-app", key = "{app}" }}]
pad-to = 512
[[sensor]]
name = "living-room"
address = "A4:C1:38:00:00:01"
profile = "privacy"
[profile.privacy]
modules = {modules}
topic = "home/{{sensor-id}}"
[module.thermostat]
wasm = "builtin:heating"
capabilities = ["kv"]
config = {{ zone = [{{ name = "living-room", sensors = ["living-room"], actuator = "heating/living-room", setpoint = 20.0, hysteresis = 0.6 }}] }}
[module.attest]
wasm = "builtin:sign"
capabilities = ["sign:gateway"]
config = {{ key = "gateway" }}
[module.seal]
wasm = "builtin:seal"
capabilities = ["seal:tenants"]
config = {{ recipients = "tenants" }}
"#
    )
}

/// The gateway's message path for one configuration, on this thread.
struct Gateway {
    _dir: tempfile::TempDir,
    built: Built,
    admission: Admission,
    uplink: UplinkSink,
}

impl Gateway {
    fn new(config: &str, engine: &Engine) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let loaded = load_str(config, &dir.path().join("edgeward.toml"), dir.path()).unwrap();
        let state = StateStore::open(&loaded.state_dir()).unwrap();
        let clock = clock_for(&loaded);
        let built = build(&loaded, engine, &state, &clock, Missing::Generate).unwrap();
        let counters = Arc::new(Counters::default());
        let outbox = Arc::new(Outbox::open(&loaded.state_dir(), u64::MAX, Overflow::RejectNew).unwrap());
        let uplink = UplinkSink::new(outbox, Arc::new(tokio::sync::Notify::new()), counters.clone());
        let admission = Admission::new(state, "bench-gw", counters);
        Gateway { _dir: dir, built, admission, uplink }
    }

    /// Every frame through admission, the profile's rules and the outbox.
    fn run(&mut self, frames: &[Frame]) -> usize {
        let Built { sensors, profiles, .. } = &mut self.built;
        for batch in frames.chunks(ADMIT_BATCH) {
            for admitted in self.admission.admit(batch, sensors) {
                let runtime = profiles.get_mut(&admitted.sensor.profile).unwrap();
                let processed = runtime.pipeline.process(admitted.message);
                black_box(processed.effects);
                if let Fate::Forwarded(message) = processed.fate {
                    let record = Record::Uplink {
                        id: admitted.id,
                        topic: runtime.topics[&admitted.sensor.name].clone(),
                        profile: admitted.sensor.profile.clone(),
                        entered: Some(admitted.entered),
                        message,
                    };
                    self.uplink.write(&record.with_id_in_envelope()).unwrap();
                }
            }
        }
        self.uplink.flush().unwrap();
        frames.len()
    }
}

/// The naive native side's durable write: the same outbox, groups of 64.
struct NativeOutbox {
    _dir: tempfile::TempDir,
    outbox: Outbox,
    pending: Vec<NewEntry>,
}

impl NativeOutbox {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path(), u64::MAX, Overflow::RejectNew).unwrap();
        NativeOutbox { _dir: dir, outbox, pending: Vec::with_capacity(64) }
    }

    fn push(&mut self, payload: Vec<u8>) {
        let n = self.pending.len();
        self.pending.push(NewEntry {
            id: format!("native-{n}"),
            topic: "bench".into(),
            payload,
            content_type: None,
            created_ms: 0,
        });
        if self.pending.len() == 64 {
            self.flush();
        }
    }

    fn flush(&mut self) {
        self.outbox.append(&std::mem::take(&mut self.pending)).unwrap();
    }
}

/// `ROUNDS` sets of signed wearable readings with fresh counters.
fn signed_frames(sensor: &SigningKey) -> Vec<Vec<Frame>> {
    let per_round = MESSAGES as u64;
    (0..ROUNDS as u64)
        .map(|round| {
            (1..=per_round)
                .map(|i| {
                    let seq = round * per_round + i;
                    signed_wearable_frame(sensor, seq, 1_768_435_200_000 + seq * 60_000)
                })
                .collect()
        })
        .collect()
}

/// Room advertisements (BTHome: battery, temperature, humidity, packet id)
/// swinging across the thermostat's band.
fn room_frames() -> Vec<Frame> {
    (0..MESSAGES)
        .map(|i| {
            let celsius = 19.0 + (i % 20) as f64 * 0.1;
            let data = bthome::encode(&[(0x01, 90.0), (0x02, celsius), (0x03, 48.0)], Some(i as u8)).unwrap();
            let t_ms = 1_768_435_200_000 + i as u64 * 60_000;
            frame(ROOM, t_ms, Payload::ServiceData { uuid16: bthome::SERVICE_UUID16, data })
        })
        .collect()
}

fn frame(address: [u8; 6], received_ms: u64, payload: Payload) -> Frame {
    Frame { address, rssi: Some(-60), received_ms, entered: Instant::now(), payload }
}

fn main() {
    let cache = tempfile::tempdir().unwrap();
    let engine = Engine::new(Some(cache.path().to_path_buf())).unwrap();
    let gateway_key = SigningKey::from_bytes(&[6u8; 32]);

    // Provenance.
    let sensor = SigningKey::from_bytes(&[5u8; 32]);
    let rounds = signed_frames(&sensor);
    let mut gateway = Gateway::new(&provenance_config(&sensor), &engine);
    let mut native = NativeOutbox::new();
    let verifying = sensor.verifying_key();
    let mut round = 0..;
    let mut native_round = 0..;
    let provenance = interleaved(
        ROUNDS,
        || {
            let frames = &rounds[native_round.next().unwrap()];
            for frame in frames {
                let Payload::Notification { data } = &frame.payload else { unreachable!() };
                let sign1 = cose::parse_sign1(data).unwrap();
                let tbs = sign1.tbs();
                verifying.verify_strict(&tbs, &Signature::from_slice(sign1.signature()).unwrap()).unwrap();
                let countersignature = gateway_key.sign(&tbs).to_bytes();
                let mut record = data.clone();
                record.extend_from_slice(&countersignature);
                native.push(record);
            }
            native.flush();
            frames.len()
        },
        || gateway.run(&rounds[round.next().unwrap()]),
    );

    // Privacy, as shipped (thermostat, attest, seal) and without attesting.
    let rooms = room_frames();
    let app_public = keys::public_of(KeyKind::X25519, &[9u8; 32]);
    let recipient = <hpke::kem::X25519HkdfSha256 as hpke::Kem>::PublicKey::from_bytes(&app_public).unwrap();
    let plaintext_len = 200; // a gateway COSE_Sign1 over a room's SenML is about this size
    let mut privacy = Vec::new();
    for attest in [true, false] {
        let mut gateway = Gateway::new(&privacy_config(attest), &engine);
        let mut native = NativeOutbox::new();
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
        let measured = interleaved(
            ROUNDS,
            || {
                for _ in 0..MESSAGES {
                    let mut padded = vec![0u8; 512];
                    if attest {
                        let signature = gateway_key.sign(&padded[..plaintext_len]).to_bytes();
                        padded[..64].copy_from_slice(&signature);
                    }
                    let (enc, ciphertext) = hpke::single_shot_seal_with_rng::<
                        hpke::aead::ChaCha20Poly1305,
                        hpke::kdf::HkdfSha256,
                        hpke::kem::X25519HkdfSha256,
                    >(
                        &hpke::OpModeS::Base, &recipient, b"", &padded, b"", &mut rng
                    )
                    .unwrap();
                    let mut record = enc.to_bytes().to_vec();
                    record.extend_from_slice(&ciphertext);
                    native.push(record);
                }
                native.flush();
                MESSAGES
            },
            || gateway.run(&rooms),
        );
        privacy.push(measured);
    }

    println!(
        "{MESSAGES} messages per round, {ROUNDS} rounds alternating native and gateway, medians (ratio: median of the rounds' ratios).\n"
    );
    println!(
        "| deployment | gateway per message | gateway messages/s | native per message | native messages/s | gateway vs native | goal |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | --- |");
    let row = |name: &str, m: &common::Interleaved, goal: &str| {
        println!(
            "| {name} | {:.1} µs | {:.0} | {:.1} µs | {:.0} | {:.2}x | {goal} |",
            m.subject_ns / 1e3,
            1e9 / m.subject_ns,
            m.floor_ns / 1e3,
            1e9 / m.floor_ns,
            m.ratio
        );
    };
    row("provenance: verify, alarm, countersign", &provenance, "≥ 20 000/s");
    row("privacy as shipped: heating, attest, seal", &privacy[0], "≥ 9 300/s");
    row("privacy without attesting: heating, seal", &privacy[1], "≥ 9 300/s");
}

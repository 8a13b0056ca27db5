//! What the benchmarks share: timing by median, and a real host with its
//! state and keys in a temporary directory.

#![allow(dead_code)]

use edgeward::clock::Clock;
use edgeward::decode::{Frame, Payload};
use edgeward::pipeline::{Engine, Grants, Instance, InstanceContext, Limits};
use edgeward::state::StateStore;
use edgeward::trust::Keyring;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How many times each measurement runs; the median is reported.
pub const RUNS: usize = 7;

/// Median of `RUNS` timings of `f` (which returns how many messages it
/// handled), per message, in ns.
pub fn median_ns(mut f: impl FnMut() -> usize) -> f64 {
    let mut runs: Vec<f64> = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            let n = f();
            start.elapsed().as_nanos() as f64 / n as f64
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    runs[RUNS / 2]
}

/// Two measurements taken in alternating rounds: medians per message (ns)
/// and the median of the rounds' ratios `subject / floor`.
pub struct Interleaved {
    pub floor_ns: f64,
    pub subject_ns: f64,
    pub ratio: f64,
}

/// Time `floor` and `subject` (each returns how many messages it handled)
/// in `rounds` alternating rounds, so that a shared machine's drift hits
/// both alike.
pub fn interleaved(
    rounds: usize,
    mut floor: impl FnMut() -> usize,
    mut subject: impl FnMut() -> usize,
) -> Interleaved {
    let time = |f: &mut dyn FnMut() -> usize| {
        let start = Instant::now();
        let n = f();
        start.elapsed().as_nanos() as f64 / n as f64
    };
    let (mut floors, mut subjects, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let f = time(&mut floor);
        let s = time(&mut subject);
        floors.push(f);
        subjects.push(s);
        ratios.push(s / f);
    }
    Interleaved { floor_ns: median(floors), subject_ns: median(subjects), ratio: median(ratios) }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The wearable's reading number `seq` as it sends it: a COSE_Sign1 over
/// SenML (battery, and a temperature cycling across the fever threshold)
/// signed by `sensor`, received at `t_ms`.
pub fn signed_wearable_frame(sensor: &ed25519_dalek::SigningKey, seq: u64, t_ms: u64) -> Frame {
    use ed25519_dalek::Signer as _;
    use edgeward_formats::{cose, senml};
    let celsius = 36.6 + (seq % 40) as f64 * 0.06;
    let payload = senml::encode(
        "C0:FF:EE:00:00:01",
        t_ms,
        &[
            senml::Measurement { name: "battery".into(), unit: "%EL".into(), value: 90.0 },
            senml::Measurement { name: "temperature".into(), unit: "Cel".into(), value: celsius },
        ],
    );
    let data = cose::build_sensor_sign1(b"wearable-1", seq, &payload, |tbs| {
        Ok::<_, std::convert::Infallible>(sensor.sign(tbs).to_bytes().to_vec())
    })
    .unwrap();
    Frame {
        address: [0xc0, 0xff, 0xee, 0, 0, 1],
        rssi: Some(-60),
        received_ms: t_ms,
        entered: Instant::now(),
        payload: Payload::Notification { data },
    }
}

/// The gateway's real wasmtime host, state store and keys.
pub struct Host {
    pub engine: Engine,
    pub state: StateStore,
    pub keyring: Arc<Keyring>,
    pub dir: tempfile::TempDir,
}

impl Host {
    /// A host in a fresh temporary directory; `keyring` makes the keys it
    /// offers from that directory.
    pub fn new(keyring: impl FnOnce(&std::path::Path) -> Keyring) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let state = StateStore::open(dir.path()).unwrap();
        let keyring = Arc::new(keyring(dir.path()));
        Host { engine: Engine::new(Some(dir.path().join("cache"))).unwrap(), state, keyring, dir }
    }

    /// A started instance of component `wasm`, labelled `bench/NAME`.
    pub fn instance(&self, name: &str, wasm: &[u8], config: &str, grants: &[&str]) -> Instance {
        let prepared = self
            .engine
            .prepare(name, "(bench)", wasm, Grants::parse(grants.iter().copied()).unwrap())
            .unwrap();
        let ctx = InstanceContext {
            label: format!("bench/{name}").into(),
            config_json: config.into(),
            limits: Limits {
                call_timeout: Duration::from_millis(100),
                init_timeout: Duration::from_secs(1),
                memory_bytes: 16 << 20,
            },
            state: self.state.clone(),
            clock: Clock::manual(0),
            keyring: self.keyring.clone(),
        };
        Instance::start(Arc::new(prepared), ctx).unwrap()
    }
}

/// A private Mosquitto on a free port (None when it is not installed).
/// Kill the child when done.
pub fn mosquitto() -> Option<(std::process::Child, u16)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port();
    let binary = ["mosquitto", "/usr/sbin/mosquitto"].into_iter().find(|b| {
        std::process::Command::new(b)
            .arg("-h")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok()
    })?;
    let child = std::process::Command::new(binary)
        .args(["-p", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Some((child, port))
}

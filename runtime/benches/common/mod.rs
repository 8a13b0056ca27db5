//! What the benchmarks share: timing by median, and a real host with its
//! state and keys in a temporary directory.

#![allow(dead_code)]

use edgeward::clock::Clock;
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

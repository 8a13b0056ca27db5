//! The sandbox through the real wasmtime host: capabilities, limits, faults
//! and recovery, with the deliberately misbehaving rules of tests/rules/.

use crate::support::{module_cache, repo_root, test_rule};
use edgeward::clock::Clock;
use edgeward::config::OnError;
use edgeward::pipeline::bindings::{Authenticity, Envelope, Measurement, Message, Reading, Verdict};
use edgeward::pipeline::{Engine, Fate, Grants, Instance, InstanceContext, Limits, ModuleError, Pipeline};
use edgeward::state::StateStore;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Fixture {
    engine: Engine,
    state: StateStore,
    _dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let state = StateStore::open(dir.path()).unwrap();
    Fixture { engine: Engine::new(Some(module_cache())).unwrap(), state, _dir: dir }
}

// The deadline is wall-clock: generous, so that on a loaded machine a debug
// build hits the memory cap (or finishes) before it.
const LIMITS: Limits = Limits {
    call_timeout: Duration::from_millis(200),
    init_timeout: Duration::from_millis(500),
    memory_bytes: 8 << 20,
};

impl Fixture {
    fn start(&self, rule: &str, config: &str, grants: &[&str]) -> Result<Instance, ModuleError> {
        self.start_file(rule, &test_rule(rule), config, grants)
    }

    fn start_file(
        &self,
        rule: &str,
        file: &Path,
        config: &str,
        grants: &[&str],
    ) -> Result<Instance, ModuleError> {
        let wasm = std::fs::read(file).unwrap();
        let grants = Grants::parse(grants.iter().copied()).unwrap();
        let prepared = self.engine.prepare(rule, &file.display().to_string(), &wasm, grants)?;
        let ctx = InstanceContext {
            label: format!("test/{rule}").into(),
            config_json: config.into(),
            limits: LIMITS,
            state: self.state.clone(),
            clock: Clock::manual(0),
            keyring: Default::default(),
        };
        Instance::start(Arc::new(prepared), ctx)
    }
}

fn message(value: f64) -> Message {
    Message {
        reading: Reading {
            sensor: "s1".into(),
            address: "A4:C1:38:00:00:01".into(),
            seq: None,
            sensor_time_ms: None,
            received_ms: 1_000,
            rssi: None,
            authenticity: Authenticity::None,
            measurements: vec![Measurement { name: "temperature".into(), unit: "Cel".into(), value }],
        },
        envelope: Envelope { content_type: "application/senml+cbor".into(), body: vec![0x80] },
        path: Vec::new(),
    }
}

fn count_of(msg: &Message) -> f64 {
    msg.reading.measurements.iter().find(|m| m.name == "count").expect("a count").value
}

/// A rule built against edgeward:policy@0.1.0 (the counter test rule as it
/// was then) still runs: it is handed the whole message, what it forwards
/// (its count added) comes back, its kv works, a trap is recycled from.
#[test]
fn rules_of_contract_0_1_still_run() {
    let f = fixture();
    let file = repo_root().join("tests/fixtures/rules/counter-policy-0.1.wasm");
    let mut rule = f.start_file("counter", &file, r#"{"trap-every":3}"#, &["kv"]).unwrap();
    let mut counts = Vec::new();
    for i in 0..4 {
        let (msg, result) = rule.process(message(f64::from(i)));
        match result {
            Ok(outcome) => {
                assert_eq!(outcome.verdict, Verdict::Forward);
                assert_eq!(msg.reading.measurements[0].value, f64::from(i), "the reading comes back whole");
                counts.push(count_of(&msg));
            }
            Err(ModuleError::Trap { .. }) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(counts, [1.0, 2.0, 4.0]);
    assert!(rule.tick(0).unwrap().alarms.is_empty());
}

/// A trap is reported with the guest's panic message, and the next call works on a fresh instance.
#[test]
fn trap_is_contained_and_instance_recycled() {
    let f = fixture();
    let mut rule = f.start("faulty", r#"{"fault":"trap","on":"process","every":2}"#, &[]).unwrap();
    assert!(rule.process(message(1.0)).1.is_ok());
    let err = rule.process(message(2.0)).1.unwrap_err();
    assert!(matches!(err, ModuleError::Trap { .. }), "{err}");
    assert!(err.to_string().contains("deliberate trap"), "{err}");
    assert!(err.to_string().contains("test/faulty"), "{err}");
    // A fresh instance: its call counter restarted, so the next call succeeds.
    assert!(rule.process(message(3.0)).1.is_ok());
}

/// A module that loops forever is stopped by its deadline, promptly.
#[test]
fn endless_loop_is_stopped_by_the_deadline() {
    let f = fixture();
    let mut rule = f.start("faulty", r#"{"fault":"loop","on":"process"}"#, &[]).unwrap();
    let started = Instant::now();
    let err = rule.process(message(1.0)).1.unwrap_err();
    assert!(matches!(err, ModuleError::Timeout { limit_ms: 200, .. }), "{err}");
    // Generous bound: this checks the loop was interrupted, not how fast.
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(err.to_string().contains("exceeded its time limit of 200 ms"), "{err}");
}

/// A module that grows memory without end is stopped by its memory cap.
#[test]
fn memory_hog_is_stopped_by_the_cap() {
    let f = fixture();
    let mut rule = f.start("faulty", r#"{"fault":"hog","on":"tick"}"#, &[]).unwrap();
    let err = rule.tick(5).unwrap_err();
    assert!(matches!(err, ModuleError::MemoryLimit { limit_mib: 8, .. }), "{err}");
    assert!(err.to_string().contains("memory limit of 8 MiB in `tick`"), "{err}");
}

/// A module returning an error is reported with its message and is not recycled.
#[test]
fn guest_error_is_reported() {
    let f = fixture();
    let mut rule = f.start("faulty", r#"{"fault":"error","on":"process"}"#, &[]).unwrap();
    let err = rule.process(message(1.0)).1.unwrap_err();
    assert!(matches!(err, ModuleError::Rejected { ref reason, .. } if reason == "deliberate error"), "{err}");
}

/// `init` refusing its configuration, and a trap in `init`, both fail the start with the reason.
#[test]
fn init_failures_are_reported() {
    let f = fixture();
    let err = f.start("faulty", r#"{"fault":"error","on":"init"}"#, &[]).err().unwrap();
    assert!(
        err.to_string().contains("refused its configuration: refusing the configuration: deliberate error"),
        "{err}"
    );
    let err = f.start("faulty", r#"{"fault":"trap","on":"init"}"#, &[]).err().unwrap();
    assert!(matches!(err, ModuleError::Trap { call: "init", .. }), "{err}");
    // The guest's own panic message, which the SDK logs before the trap.
    assert!(
        err.to_string().contains("panic: panicked at") && err.to_string().contains("deliberate trap"),
        "{err}"
    );
    let err = f.start("faulty", r#"{"fault":"sideways","on":"init"}"#, &[]).err().unwrap();
    assert!(err.to_string().contains("unknown variant `sideways`"), "{err}");
}

/// A component importing `kv` without the grant is refused at load time, naming module, import and fix.
#[test]
fn ungranted_capability_is_refused_at_load() {
    let f = fixture();
    let err = f.start("counter", "{}", &[]).err().unwrap();
    let text = err.to_string();
    assert!(matches!(err, ModuleError::NotGranted { .. }), "{text}");
    assert!(text.contains("module `counter` ("), "{text}");
    assert!(text.contains("test-counter.wasm) imports `edgeward:policy/kv@0.2.0`"), "{text}");
    assert!(text.contains("add \"kv\" to `capabilities`"), "{text}");
    assert!(f.start("counter", "{}", &["kv"]).is_ok());
}

/// Bytes that are not a component are refused with a clear error.
#[test]
fn non_component_is_refused() {
    let f = fixture();
    let err = f.engine.prepare("junk", "junk.wasm", b"\0asm\x01\0\0\0", Grants::default()).err().unwrap();
    assert!(matches!(err, ModuleError::CoreModule { .. }), "{err}");
    let err = f.engine.prepare("junk", "junk.wasm", b"not wasm at all", Grants::default()).err().unwrap();
    assert!(
        err.to_string().contains("module `junk` (junk.wasm) is not a valid WebAssembly component"),
        "{err}"
    );
}

/// State in kv survives traps: the count goes on across recycled instances.
#[test]
fn kv_state_survives_traps() {
    let f = fixture();
    let mut rule = f.start("counter", r#"{"trap-every":3}"#, &["kv"]).unwrap();
    let mut counts = Vec::new();
    let mut traps = 0;
    for i in 0..7 {
        match rule.process(message(f64::from(i))) {
            (m, Ok(outcome)) => match outcome.verdict {
                edgeward::pipeline::bindings::Verdict::Forward => counts.push(count_of(&m)),
                other => panic!("unexpected verdict {other:?}"),
            },
            (_, Err(ModuleError::Trap { .. })) => traps += 1,
            (_, Err(e)) => panic!("{e}"),
        }
    }
    assert_eq!(traps, 2);
    assert_eq!(counts, vec![1.0, 2.0, 4.0, 5.0, 7.0]);
}

/// `on-error = "drop"` drops the message at the failing module; `pass` skips the module.
#[test]
fn on_error_policy() {
    let f = fixture();
    let stages = |f: &Fixture| {
        vec![
            f.start("faulty", r#"{"fault":"error","on":"process"}"#, &[]).unwrap(),
            f.start("counter", "{}", &["kv"]).unwrap(),
        ]
    };
    let mut drop = Pipeline::new("p".into(), OnError::Drop, stages(&f));
    let processed = drop.process(message(1.0));
    assert_eq!(processed.faults.len(), 1);
    assert!(
        matches!(processed.fate, Fate::Dropped { ref module, ref reason } if module == "test/faulty" && reason == "module-error")
    );

    let mut pass = Pipeline::new("p".into(), OnError::Pass, stages(&f));
    let processed = pass.process(message(1.0));
    assert_eq!(processed.faults.len(), 1);
    match processed.fate {
        Fate::Forwarded(m) => assert!(count_of(&m) >= 1.0, "the counter ran after the failure"),
        other => panic!("expected forwarded, got {other:?}"),
    }
}

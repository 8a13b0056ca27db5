//! The policy pipeline: a profile's rule modules, each a sandboxed
//! WebAssembly component instance, called in order for every message.
//!
//! Semantics (the contract rule authors rely on, also in the WIT):
//! - each module gets the message the previous one forwarded;
//! - `drop` ends the chain, with its reason;
//! - alarms and commands from every module that ran are delivered, whatever
//!   the verdict;
//! - a module's error, trap, timeout or memory overrun follows the profile's
//!   `on-error`: `drop` ends the chain, `pass` skips the module and passes the
//!   message on unchanged. Either way it is counted and logged with module
//!   and sensor, the instance is replaced if it trapped, and nothing else stops.

pub mod bindings;
mod capability;
mod compat;
mod engine;
mod host;
pub mod inspect;

pub use bindings::{Effects, Message};
pub use capability::{Capability, Grants};
pub use engine::{EPOCH_TICK, Engine, Instance, InstanceContext, Limits, Prepared};
pub use inspect::{Inspection, inspect};

use crate::config::OnError;
use bindings::Verdict;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// Upper bounds of the module call latency histogram, in microseconds (a
/// call takes a few µs; the default deadline is 50 ms).
pub const LATENCY_BUCKETS_US: [u64; 8] = [10, 50, 100, 500, 1_000, 5_000, 10_000, 50_000];

/// One module's calls in one profile (`process` and `tick`). Only the
/// profile's own task writes it, with relaxed atomic adds (no lock on the
/// message path); the metrics endpoint and `status.json` read it.
#[derive(Debug, Default)]
pub struct ModuleStats {
    /// Calls that failed: error, trap, timeout, memory.
    pub faults: AtomicU64,
    /// Time spent in calls, nanoseconds.
    pub nanos: AtomicU64,
    /// Calls per latency bucket of [`LATENCY_BUCKETS_US`] (not cumulative),
    /// the last one for calls above every bound. Their sum is the number of
    /// calls, so a reader always sees a count that matches its buckets.
    pub buckets: [AtomicU64; LATENCY_BUCKETS_US.len() + 1],
}

impl ModuleStats {
    fn record(&self, elapsed: Duration, fault: bool) {
        self.faults.fetch_add(u64::from(fault), Relaxed);
        self.nanos.fetch_add(elapsed.as_nanos() as u64, Relaxed);
        let micros = elapsed.as_micros() as u64;
        let bucket =
            LATENCY_BUCKETS_US.iter().position(|&bound| micros <= bound).unwrap_or(LATENCY_BUCKETS_US.len());
        self.buckets[bucket].fetch_add(1, Relaxed);
    }
}

/// Why a module could not be loaded, or what went wrong in a call.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ModuleError {
    #[error("wasm engine: {0}")]
    Engine(String),
    #[error("module `{module}`: cannot read {path}: {reason}")]
    Read { module: String, path: String, reason: String },
    #[error("module `{module}` ({file}) is not a valid WebAssembly component: {reason}")]
    Compile { module: String, file: String, reason: String },
    #[error(
        "module `{module}` ({file}) is a core WebAssembly module, not a component: build the rule for \
         wasm32-wasip2 (`cargo build --release --target wasm32-wasip2`), or make a component of it with \
         `wasm-tools component new`"
    )]
    CoreModule { module: String, file: String },
    #[error(
        "module `{module}` ({file}) imports `{import}` but is not granted it: add {capability} to `capabilities` in [module.{module}]"
    )]
    NotGranted { module: String, file: String, import: String, capability: &'static str },
    #[error(
        "module `{module}` ({file}) was built against {}@{found} (it imports `{import}`), but this gateway supports {}@{}: rebuild it with the edgeward-sdk of this gateway (or against sdk/wit/policy.wit), or upgrade the gateway",
        bindings::WIT_PACKAGE,
        bindings::WIT_PACKAGE,
        bindings::WIT_VERSION
    )]
    WitVersion { module: String, file: String, import: String, found: String },
    #[error(
        "module `{module}` ({file}) is a WebAssembly component but not an edgeward rule: it imports nothing of {} and exports {exports}; a rule exports `init`, `process` and `tick` of {}@{} (build it with edgeward-sdk, or see sdk/wit/README.md)",
        bindings::WIT_PACKAGE,
        bindings::WIT_PACKAGE,
        bindings::WIT_VERSION
    )]
    NotARule { module: String, file: String, exports: String },
    #[error(
        "module `{module}` ({file}) does not export {missing}, which the rule world of {}@{} requires: implement what is missing (with edgeward-sdk, `export_rule!` exports `init`, `process` and `tick`, and `Rule::tick` has a default), or rebuild it against the current SDK",
        bindings::WIT_PACKAGE,
        bindings::WIT_VERSION
    )]
    MissingExports { module: String, file: String, missing: String },
    #[error("module `{module}` ({file}) imports `{import}`, which this gateway does not provide")]
    UnknownImport { module: String, file: String, import: String },
    #[error("module `{module}` ({file}) cannot be linked: {reason}")]
    Link { module: String, file: String, reason: String },
    #[error("module `{module}` ({file}) does not export the rule interface: {reason}")]
    Exports { module: String, file: String, reason: String },
    #[error("module `{module}` refused its configuration: {reason}")]
    InitRejected { module: String, reason: String },
    #[error("module `{module}` returned an error: {reason}")]
    Rejected { module: String, reason: String },
    #[error("module `{module}` trapped in `{call}`: {reason}")]
    Trap { module: String, call: &'static str, reason: String },
    #[error("module `{module}` exceeded its time limit of {limit_ms} ms in `{call}` and was stopped")]
    Timeout { module: String, call: &'static str, limit_ms: u64 },
    #[error("module `{module}` exceeded its memory limit of {limit_mib} MiB in `{call}` and was stopped")]
    MemoryLimit { module: String, call: &'static str, limit_mib: usize },
}

impl ModuleError {
    /// A short label for counters and drop reasons.
    pub fn kind(&self) -> &'static str {
        match self {
            ModuleError::Rejected { .. } => "module-error",
            ModuleError::Trap { .. } => "module-trap",
            ModuleError::Timeout { .. } => "module-timeout",
            ModuleError::MemoryLimit { .. } => "module-memory",
            _ => "module-unavailable",
        }
    }
}

/// A profile's running pipeline.
pub struct Pipeline {
    profile: String,
    on_error: OnError,
    stages: Vec<Instance>,
    /// One per stage, in the same order.
    stats: Vec<Arc<ModuleStats>>,
}

/// What became of one message.
#[derive(Debug)]
pub enum Fate {
    /// It passed every module; this is what goes upstream.
    Forwarded(Message),
    /// A module dropped it (or failed under `on-error = "drop"`).
    Dropped { module: String, reason: String },
}

/// The result of running one message through a pipeline.
#[derive(Debug)]
pub struct Processed {
    pub fate: Fate,
    /// Alarms and commands from every module that ran.
    pub effects: Effects,
    /// Modules that failed on this message (already logged).
    pub faults: Vec<ModuleError>,
}

impl Pipeline {
    /// A pipeline of started instances, in order.
    pub fn new(profile: String, on_error: OnError, stages: Vec<Instance>) -> Self {
        let stats = stages.iter().map(|_| Arc::default()).collect();
        Pipeline { profile, on_error, stages, stats }
    }

    /// Each module's name and call statistics, in pipeline order.
    pub fn module_stats(&self) -> Vec<(String, Arc<ModuleStats>)> {
        self.stages
            .iter()
            .zip(&self.stats)
            .map(|(stage, stats)| (stage.hop().module.clone(), stats.clone()))
            .collect()
    }

    pub fn profile(&self) -> &str {
        &self.profile
    }

    /// Run `msg` through every module.
    pub fn process(&mut self, mut msg: Message) -> Processed {
        let mut effects = Effects::none();
        let mut faults = Vec::new();
        // One clock read per stage: each stage's end is the next one's start.
        let mut started = Instant::now();
        for (stage, stats) in self.stages.iter_mut().zip(&self.stats) {
            msg.path.push(stage.hop().clone());
            let (next, result) = stage.process(msg);
            let ended = Instant::now();
            stats.record(ended - started, result.is_err());
            started = ended;
            msg = next;
            match result {
                Ok(outcome) => {
                    effects.extend(outcome.effects);
                    if let Verdict::Drop(reason) = outcome.verdict {
                        let module = stage.label().to_string();
                        return Processed { fate: Fate::Dropped { module, reason }, effects, faults };
                    }
                }
                Err(error) => {
                    tracing::warn!(sensor = %msg.reading.sensor, on_error = ?self.on_error, "{error}");
                    let reason = error.kind().to_string();
                    faults.push(error);
                    if self.on_error == OnError::Drop {
                        let module = stage.label().to_string();
                        return Processed { fate: Fate::Dropped { module, reason }, effects, faults };
                    }
                }
            }
        }
        Processed { fate: Fate::Forwarded(msg), effects, faults }
    }

    /// Let every module act on the passage of time.
    pub fn tick(&mut self, now_ms: u64) -> (Effects, Vec<ModuleError>) {
        let mut effects = Effects::none();
        let mut faults = Vec::new();
        let mut started = Instant::now();
        for (stage, stats) in self.stages.iter_mut().zip(&self.stats) {
            let result = stage.tick(now_ms);
            let ended = Instant::now();
            stats.record(ended - started, result.is_err());
            started = ended;
            match result {
                Ok(more) => effects.extend(more),
                Err(error) => {
                    tracing::warn!("{error}");
                    faults.push(error);
                }
            }
        }
        (effects, faults)
    }
}

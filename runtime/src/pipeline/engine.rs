//! Loading rule components and running one instance of each, sandboxed.
//!
//! 1. [`Engine::new`]: one wasmtime engine with epoch interruption, a linker
//!    with the capability interfaces and an empty WASI context, and a thread
//!    that advances the epoch every [`EPOCH_TICK`].
//! 2. [`Engine::prepare`]: compile (or load from the on-disk cache), check
//!    every import against the module's grants, pre-link (`InstancePre`).
//! 3. [`Instance::start`]: a store with its memory cap, instantiate, `init`.
//! 4. [`Instance::process`] / [`Instance::tick`]: one call under a deadline;
//!    after a trap the instance is rebuilt from the `InstancePre` (a trap
//!    poisons a component instance) and its state comes back from kv.

use super::ModuleError;
use super::bindings::{
    Effects, Hop, Message, Outcome, Rule, RulePre, Verdict, WIT_PACKAGE, WIT_VERSION, v0_1,
};
use super::capability::{Grants, ImportRefusal};
use super::compat;
use super::host::{Lent, ModuleState};
use super::inspect::{self, Unfit};
use crate::clock::Clock;
use crate::state::StateStore;
use crate::trust::Keyring;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Store, Trap};

/// How often the epoch advances; deadlines are counted in these ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

/// Limits for one module instance.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest one `process` or `tick` call may run.
    pub call_timeout: Duration,
    /// Longest `init` may run.
    pub init_timeout: Duration,
    /// Most linear memory the instance may have.
    pub memory_bytes: usize,
}

/// The wasmtime engine, linker and compiled-module cache shared by all pipelines.
pub struct Engine {
    engine: wasmtime::Engine,
    linker: Linker<ModuleState>,
    /// Where compiled components are kept (`None`: always compile).
    cache_dir: Option<PathBuf>,
    /// Compiled components by content hash while a prepared rule holds
    /// them: modules of the same wasm (one rule configured twice, or kept
    /// across a reload) share one copy of its code in memory.
    loaded: Mutex<HashMap<[u8; 32], Weak<Component>>>,
    stop_ticker: Arc<AtomicBool>,
}

impl Engine {
    /// An engine whose compiled modules are cached in `cache_dir`.
    pub fn new(cache_dir: Option<PathBuf>) -> Result<Self, ModuleError> {
        let engine_err = |e: wasmtime::Error| ModuleError::Engine(format!("{e:#}"));
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        let engine = wasmtime::Engine::new(&config).map_err(engine_err)?;

        let mut linker = Linker::new(&engine);
        // Rules built for wasm32-wasip2 import stdio/env interfaces even when
        // unused; an empty WasiCtx satisfies them while granting nothing.
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(engine_err)?;
        Rule::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state).map_err(engine_err)?;
        v0_1::Rule::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state).map_err(engine_err)?;

        let stop_ticker = Arc::new(AtomicBool::new(false));
        let (ticking, stop) = (engine.clone(), stop_ticker.clone());
        std::thread::Builder::new()
            .name("edgeward-epoch".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    ticking.increment_epoch();
                }
            })
            .map_err(|e| ModuleError::Engine(format!("cannot start the epoch thread: {e}")))?;

        Ok(Engine { engine, linker, cache_dir, loaded: Mutex::default(), stop_ticker })
    }

    /// Compile `wasm` (or load it from the cache), check that it is a rule of
    /// this contract and its imports against `grants`, and pre-link it.
    /// `name` and `file` (where the bytes came from) label errors.
    pub fn prepare(
        &self,
        name: &str,
        file: &str,
        wasm: &[u8],
        grants: Grants,
    ) -> Result<Prepared, ModuleError> {
        let (module, file) = (name.to_string(), file.to_string());
        if inspect::is_core_module(wasm) {
            return Err(ModuleError::CoreModule { module, file });
        }
        let hash: [u8; 32] = Sha256::digest(wasm).into();
        let component = self.component(name, &file, wasm, hash)?;

        // Diagnose from the component's type what linking would only report
        // as a mismatch: the contract version, and the exports a rule needs.
        let found = inspect::describe(&self.engine, &component, wasm);
        match found.unfit() {
            None => {}
            Some(Unfit::Version { import, found }) => {
                return Err(ModuleError::WitVersion { module, file, import, found });
            }
            Some(Unfit::NotARule { exports }) => {
                let exports = if exports.is_empty() { "nothing".to_string() } else { backticked(&exports) };
                return Err(ModuleError::NotARule { module, file, exports });
            }
            Some(Unfit::MissingExports { missing }) => {
                return Err(ModuleError::MissingExports { module, file, missing: backticked(&missing) });
            }
        }

        for import in &found.imports {
            let refusal = match grants.allow_import(&import.name) {
                Ok(()) => continue,
                Err(refusal) => refusal,
            };
            let import = import.name.clone();
            return Err(match refusal {
                ImportRefusal::NotGranted { capability } => {
                    ModuleError::NotGranted { module, file, import, capability }
                }
                ImportRefusal::Version { found } => ModuleError::WitVersion { module, file, import, found },
                ImportRefusal::Unknown => ModuleError::UnknownImport { module, file, import },
            });
        }

        let instance_pre = self.linker.instantiate_pre(&component).map_err(|e| ModuleError::Link {
            module: module.clone(),
            file: file.clone(),
            reason: format!("{e:#}"),
        })?;
        // Right names but other signatures: the reason names the function and type.
        let exports = |e: wasmtime::Error| ModuleError::Exports {
            module: module.clone(),
            file: file.clone(),
            reason: format!(
                "{e:#} (a rule exports `init`, `process` and `tick` of {WIT_PACKAGE}@{WIT_VERSION}; build it with edgeward-sdk)"
            ),
        };
        let pre = match found.contract.as_deref() {
            Some(v0_1::VERSION) => RuleKind::V0_1(v0_1::RulePre::new(instance_pre).map_err(exports)?),
            _ => RuleKind::Current(RulePre::new(instance_pre).map_err(exports)?),
        };
        Ok(Prepared { name: module, hash, pre, grants: Arc::new(grants), _code: component })
    }

    /// The component of `wasm` (whose SHA-256 is `hash`): the one already in
    /// memory if a prepared rule holds it, else compiled or from the cache.
    fn component(
        &self,
        name: &str,
        file: &str,
        wasm: &[u8],
        hash: [u8; 32],
    ) -> Result<Arc<Component>, ModuleError> {
        let loaded = || self.loaded.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(component) = loaded().get(&hash).and_then(Weak::upgrade) {
            return Ok(component);
        }
        let component = Arc::new(self.compile(name, file, wasm, &hex::encode(hash))?);
        let mut loaded = loaded();
        loaded.retain(|_, held| held.strong_count() > 0);
        loaded.insert(hash, Arc::downgrade(&component));
        Ok(component)
    }

    /// The compiled form of `wasm`, from the cache when it holds one made by
    /// an engine with this exact configuration.
    fn compile(&self, name: &str, file: &str, wasm: &[u8], hash: &str) -> Result<Component, ModuleError> {
        let not_component = |e: wasmtime::Error| ModuleError::Compile {
            module: name.to_string(),
            file: file.to_string(),
            reason: format!("{e:#}"),
        };
        let Some(dir) = &self.cache_dir else {
            return Component::new(&self.engine, wasm).map_err(not_component);
        };
        let mut engine_hash = std::hash::DefaultHasher::new();
        self.engine.precompile_compatibility_hash().hash(&mut engine_hash);
        let path = dir.join(format!("{hash}-{:016x}.cwasm", engine_hash.finish()));
        if path.is_file() {
            // SAFETY: the cache lives in the gateway's private state directory
            // and only this engine configuration writes files with this name.
            match unsafe { Component::deserialize_file(&self.engine, &path) } {
                Ok(component) => return Ok(component),
                Err(e) => {
                    tracing::warn!(module = name, path = %path.display(), "ignoring unusable compiled-module cache entry: {e:#}")
                }
            }
        }
        let started = Instant::now();
        let component = Component::new(&self.engine, wasm).map_err(not_component)?;
        tracing::debug!(module = name, ms = started.elapsed().as_millis() as u64, "compiled");
        if let Err(e) = component
            .serialize()
            .map_err(|e| e.to_string())
            .and_then(|bytes| write_atomically(dir, &path, &bytes).map_err(|e| e.to_string()))
        {
            tracing::warn!(module = name, path = %path.display(), "cannot cache the compiled module: {e}");
        }
        Ok(component)
    }

    /// The underlying wasmtime engine.
    pub fn wasmtime(&self) -> &wasmtime::Engine {
        &self.engine
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.stop_ticker.store(true, Ordering::Relaxed);
    }
}

/// `a`, `a` and `b`, `a`, `b` and `c`: names for a message.
fn backticked(names: &[String]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match quoted.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        None => String::new(),
    }
}

fn write_atomically(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    crate::state::create_private_dir(dir)?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// A module compiled, checked and pre-linked: instances start from here.
pub struct Prepared {
    pub name: String,
    /// SHA-256 of the component's bytes.
    pub hash: [u8; 32],
    pre: RuleKind<RulePre<ModuleState>, v0_1::RulePre<ModuleState>>,
    grants: Arc<Grants>,
    /// Keeps the component listed in [`Engine`]'s loaded components while
    /// this rule may be started (`pre` holds the same component).
    _code: Arc<Component>,
}

/// A rule of the current contract, or of 0.1.0 (see `compat`).
enum RuleKind<Current, V0_1> {
    Current(Current),
    V0_1(V0_1),
}

/// Everything an instance needs besides its [`Prepared`] module.
#[derive(Clone)]
pub struct InstanceContext {
    /// `profile/module`: log label and kv namespace.
    pub label: Arc<str>,
    /// The module's configuration table as JSON, for `init`.
    pub config_json: Arc<str>,
    pub limits: Limits,
    pub state: StateStore,
    pub clock: Clock,
    /// The gateway's keys, reachable only through granted host calls.
    pub keyring: Arc<Keyring>,
}

/// One running instance of a module in one pipeline.
pub struct Instance {
    prepared: Arc<Prepared>,
    ctx: InstanceContext,
    /// This module as a message's path records it.
    hop: Arc<Hop>,
    live: Option<Live>,
}

struct Live {
    store: Store<ModuleState>,
    rule: RuleKind<Rule, v0_1::Rule>,
}

impl Instance {
    /// Instantiate `prepared` and run its `init`.
    pub fn start(prepared: Arc<Prepared>, ctx: InstanceContext) -> Result<Self, ModuleError> {
        let live = Self::instantiate(&prepared, &ctx)?;
        let hop = Arc::new(Hop { module: prepared.name.clone(), sha256: prepared.hash.to_vec() });
        Ok(Instance { prepared, ctx, hop, live: Some(live) })
    }

    fn instantiate(prepared: &Prepared, ctx: &InstanceContext) -> Result<Live, ModuleError> {
        let module = ctx.label.to_string();
        let state = ModuleState::new(
            ctx.label.clone(),
            prepared.grants.clone(),
            ctx.state.clone(),
            ctx.clock.clone(),
            ctx.keyring.clone(),
            ctx.limits.memory_bytes,
        );
        let engine = match &prepared.pre {
            RuleKind::Current(pre) => pre.engine(),
            RuleKind::V0_1(pre) => pre.engine(),
        };
        let mut store = Store::new(engine, state);
        store.limiter(|state| &mut state.limiter);
        // A fresh store's deadline is 0: set it before instantiating or the start traps.
        store.set_epoch_deadline(ticks(ctx.limits.init_timeout));
        let rule = match &prepared.pre {
            RuleKind::Current(pre) => pre.instantiate(&mut store).map(RuleKind::Current),
            RuleKind::V0_1(pre) => pre.instantiate(&mut store).map(RuleKind::V0_1),
        }
        .map_err(|e| fault(&module, "instantiate", ctx.limits.init_timeout, store.data_mut(), e))?;
        let result = match &rule {
            RuleKind::Current(rule) => rule.call_init(&mut store, &ctx.config_json),
            RuleKind::V0_1(rule) => rule.call_init(&mut store, &ctx.config_json),
        };
        store.data_mut().flush_kv();
        match result {
            Ok(Ok(())) => Ok(Live { store, rule }),
            Ok(Err(reason)) => Err(ModuleError::InitRejected { module, reason }),
            Err(e) => Err(fault(&module, "init", ctx.limits.init_timeout, store.data_mut(), e)),
        }
    }

    /// The module's content hash, hex.
    pub fn hash(&self) -> String {
        hex::encode(self.prepared.hash)
    }

    /// This module as a message's path records it.
    pub fn hop(&self) -> &Arc<Hop> {
        &self.hop
    }

    /// `profile/module`.
    pub fn label(&self) -> &str {
        &self.ctx.label
    }

    /// Run `process` on `msg`, lent to the rule for the call. Returns the
    /// message with the rule's changes if it forwarded it, else as it came.
    pub fn process(&mut self, msg: Message) -> (Message, Result<Outcome, ModuleError>) {
        let mut msg = Some(Lent::new(msg));
        let result = self.call("process", |rule, store| match rule {
            RuleKind::Current(rule) => {
                let handle = store.data_mut().lend(msg.take().expect("lent once"));
                let result = rule.call_process(&mut *store, handle);
                msg = store.data_mut().take_back();
                result
            }
            RuleKind::V0_1(rule) => {
                let lent = msg.as_mut().expect("not lent");
                let result = rule.call_process(&mut *store, &compat::message_for_v0_1(lent.message()));
                Ok(result?.map(|outcome| compat::outcome_from_v0_1(outcome, lent)))
            }
        });
        // `call` runs the closure unless no instance could be started: either way `msg` is back.
        let lent = msg.expect("the message comes back from the call");
        match &result {
            Ok(outcome) if outcome.verdict == Verdict::Forward => (lent.forwarded(), result),
            _ => (lent.unchanged(), result),
        }
    }

    /// Run `tick` at `now_ms`.
    pub fn tick(&mut self, now_ms: u64) -> Result<Effects, ModuleError> {
        self.call("tick", |rule, store| match rule {
            RuleKind::Current(rule) => rule.call_tick(store, now_ms),
            RuleKind::V0_1(rule) => Ok(rule.call_tick(store, now_ms)?.map(compat::effects_from_v0_1)),
        })
    }

    fn call<T>(
        &mut self,
        what: &'static str,
        f: impl FnOnce(
            &RuleKind<Rule, v0_1::Rule>,
            &mut Store<ModuleState>,
        ) -> wasmtime::Result<Result<T, String>>,
    ) -> Result<T, ModuleError> {
        let live = match &mut self.live {
            Some(live) => live,
            // The last recycle failed: try again now rather than never.
            None => self.live.insert(Self::instantiate(&self.prepared, &self.ctx)?),
        };
        live.store.set_epoch_deadline(ticks(self.ctx.limits.call_timeout));
        live.store.data_mut().last_guest_error = None;
        let result = f(&live.rule, &mut live.store);
        // Writes made before a trap are kept too: the state a rule saved is its own.
        live.store.data_mut().flush_kv();
        match result {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(reason)) => Err(ModuleError::Rejected { module: self.ctx.label.to_string(), reason }),
            Err(e) => {
                let error =
                    fault(&self.ctx.label, what, self.ctx.limits.call_timeout, live.store.data_mut(), e);
                self.recycle();
                Err(error)
            }
        }
    }

    /// Replace a trapped (poisoned) instance with a fresh one. Its lasting
    /// state is in kv, so nothing is lost.
    fn recycle(&mut self) {
        self.live = match Self::instantiate(&self.prepared, &self.ctx) {
            Ok(live) => Some(live),
            Err(e) => {
                tracing::error!(module = self.label(), "cannot restart the module after a fault: {e}");
                None
            }
        };
    }
}

/// Epoch ticks for `timeout`, rounded up, plus one for the tick in progress.
fn ticks(timeout: Duration) -> u64 {
    timeout.as_micros().div_ceil(EPOCH_TICK.as_micros()) as u64 + 1
}

/// Turn a wasmtime error from a call into what happened, in words.
fn fault(
    module: &str,
    call: &'static str,
    timeout: Duration,
    state: &mut ModuleState,
    e: wasmtime::Error,
) -> ModuleError {
    let module = module.to_string();
    if std::mem::take(&mut state.limiter.exceeded) {
        return ModuleError::MemoryLimit { module, call, limit_mib: state.limiter.max_bytes >> 20 };
    }
    if let Some(Trap::Interrupt) = e.downcast_ref::<Trap>() {
        return ModuleError::Timeout { module, call, limit_ms: timeout.as_millis() as u64 };
    }
    let mut reason = format!("{e:#}");
    if let Some(guest) = state.last_guest_error.take() {
        reason = format!("{guest} ({reason})");
    }
    ModuleError::Trap { module, call, reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modules_of_the_same_wasm_share_one_compiled_component() {
        let engine = Engine::new(None).unwrap();
        let (alarm, heating) =
            (crate::builtin::module("alarm").unwrap(), crate::builtin::module("heating").unwrap());
        let prepare = |name, wasm| {
            engine.prepare(name, "builtin", wasm, Grants::parse(["kv", "sign:gateway"]).unwrap()).unwrap()
        };

        let first = prepare("first", alarm);
        let second = prepare("second", alarm);
        let other = prepare("other", heating);
        assert!(Arc::ptr_eq(&first._code, &second._code), "the same wasm is compiled once");
        assert!(!Arc::ptr_eq(&first._code, &other._code));

        // Once no prepared rule holds it, the code is freed, not kept for
        // later, and the next load forgets it.
        let held = Arc::downgrade(&other._code);
        drop(other);
        assert!(held.upgrade().is_none());
        let sign = prepare("sign", crate::builtin::module("sign").unwrap());
        assert_eq!(engine.loaded.lock().unwrap().len(), 2, "the alarm and sign rules' code, not heating's");
        drop((first, second, sign));
    }
}

//! What a module instance's store holds, and the host side of each
//! capability interface. Every call checks the module's grants again, even
//! though the loader already refused components importing ungranted
//! interfaces.

use super::bindings::edgeward::policy::{clock, kv, log, sealer, signer, types};
use super::bindings::{Authenticity, Envelope, Hop, Message, Reading};
use super::capability::Grants;
use crate::clock::Clock;
use crate::state::StateStore;
use crate::trust::{ALG_EDDSA, Keyring, seal};
use std::collections::BTreeMap;
use std::sync::Arc;
use wasmtime::component::{Resource, ResourceTable};
use wasmtime::{ResourceLimiter, bail};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// Longest log line a module may write; the rest is cut, so a module cannot
/// flood the journal with one call.
const MAX_LOG_LINE: usize = 2048;
/// Longest kv key, in bytes.
const MAX_KV_KEY: usize = 256;
/// Largest kv value, in bytes: kv is for rule state, not for payloads.
const MAX_KV_VALUE: usize = 64 * 1024;

/// The representation of the one message a `process` call borrows.
const LENT_REP: u32 = 0;

/// The data of one module instance's `Store`.
pub struct ModuleState {
    /// `profile/module`, used in logs and as the kv namespace.
    pub(crate) label: Arc<str>,
    grants: Arc<Grants>,
    state: StateStore,
    clock: Clock,
    /// Keys stay here: rules name them and never see them.
    keyring: Arc<Keyring>,
    pub(crate) limiter: MemoryCap,
    /// kv writes of the current call, applied to the state store after the
    /// call returns, in one transaction: disk I/O never counts against the
    /// module's deadline, and a call's writes land together.
    kv_writes: BTreeMap<String, Option<Vec<u8>>>,
    /// The last error-level line the guest logged during the current call:
    /// the SDK logs a panic's message there just before the trap.
    pub(crate) last_guest_error: Option<String>,
    /// The message of the `process` call under way.
    lent: Option<Lent>,
    wasi: WasiCtx,
    table: ResourceTable,
}

impl ModuleState {
    pub fn new(
        label: Arc<str>,
        grants: Arc<Grants>,
        state: StateStore,
        clock: Clock,
        keyring: Arc<Keyring>,
        memory_limit: usize,
    ) -> Self {
        ModuleState {
            label,
            grants,
            state,
            clock,
            keyring,
            limiter: MemoryCap { max_bytes: memory_limit, exceeded: false },
            kv_writes: BTreeMap::new(),
            last_guest_error: None,
            lent: None,
            // Grants nothing: no preopened files, no sockets, no environment, no stdio.
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
        }
    }

    /// Apply the kv writes of the last call to the state store.
    pub(crate) fn flush_kv(&mut self) {
        if self.kv_writes.is_empty() {
            return;
        }
        let writes = std::mem::take(&mut self.kv_writes);
        if let Err(e) = self.state.kv_apply(&self.label, writes) {
            tracing::error!(module = &*self.label, "module state not saved: {e}");
        }
    }

    /// Lend `msg` to the rule for one call: the handle to pass to `process`.
    /// A call has one message, so it is kept here rather than in a table.
    pub(crate) fn lend(&mut self, msg: Lent) -> Resource<Lent> {
        self.lent = Some(msg);
        Resource::new_borrow(LENT_REP)
    }

    /// Take back the message lent with [`ModuleState::lend`].
    pub(crate) fn take_back(&mut self) -> Option<Lent> {
        self.lent.take()
    }

    fn lent(&self, handle: &Resource<Lent>) -> wasmtime::Result<&Lent> {
        match &self.lent {
            Some(lent) if handle.rep() == LENT_REP => Ok(lent),
            _ => bail!("module `{}` used a message outside the `process` call it was lent for", self.label),
        }
    }

    fn lent_mut(&mut self, handle: &Resource<Lent>) -> wasmtime::Result<&mut Lent> {
        match &mut self.lent {
            Some(lent) if handle.rep() == LENT_REP => Ok(lent),
            _ => bail!("module `{}` used a message outside the `process` call it was lent for", self.label),
        }
    }

    fn denied(&self, capability: &str) -> wasmtime::Error {
        wasmtime::format_err!(
            "module `{}` called a host function without the capability `{capability}`",
            self.label
        )
    }
}

/// The memory cap of one instance. Growing past it traps, and `exceeded`
/// records why, so the error is reported as a memory limit rather than as
/// whatever instruction happened to fail.
pub struct MemoryCap {
    pub max_bytes: usize,
    pub exceeded: bool,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            self.exceeded = true;
            bail!("memory limit of {} MiB reached (wanted {} bytes)", self.max_bytes >> 20, desired);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

impl WasiView for ModuleState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// A message lent to a rule for one `process` call: the WIT's `message`
/// resource. The rule's changes are kept beside the message and applied
/// only when it forwards it, so a rule that drops, fails or traps leaves the
/// message as it came.
#[derive(Debug)]
pub struct Lent {
    msg: Message,
    reading: Option<Reading>,
    envelope: Option<Envelope>,
}

impl Lent {
    pub fn new(msg: Message) -> Self {
        Lent { msg, reading: None, envelope: None }
    }

    /// The message with the rule's changes.
    pub fn forwarded(self) -> Message {
        let mut msg = self.msg;
        if let Some(reading) = self.reading {
            msg.reading = reading;
        }
        if let Some(envelope) = self.envelope {
            msg.envelope = envelope;
        }
        msg
    }

    /// The message as it came.
    pub fn unchanged(self) -> Message {
        self.msg
    }

    /// The message as it came, for a rule of contract 0.1 (which gets a copy).
    pub(crate) fn message(&self) -> &Message {
        &self.msg
    }

    /// Record a rule's new reading and envelope, as `set-reading` and
    /// `set-envelope` do: they apply if it forwards the message.
    pub(crate) fn change(&mut self, reading: Reading, envelope: Envelope) {
        self.reading = Some(reading);
        self.envelope = Some(envelope);
    }

    /// The reading as the rule left it so far.
    fn reading(&self) -> &Reading {
        self.reading.as_ref().unwrap_or(&self.msg.reading)
    }
}

impl types::Host for ModuleState {}

impl types::HostMessage for ModuleState {
    fn sensor(&mut self, msg: Resource<Lent>) -> wasmtime::Result<String> {
        Ok(self.lent(&msg)?.reading().sensor.clone())
    }

    fn received_ms(&mut self, msg: Resource<Lent>) -> wasmtime::Result<u64> {
        Ok(self.lent(&msg)?.reading().received_ms)
    }

    fn authenticity(&mut self, msg: Resource<Lent>) -> wasmtime::Result<Authenticity> {
        Ok(self.lent(&msg)?.reading().authenticity)
    }

    fn value(
        &mut self,
        msg: Resource<Lent>,
        name: String,
        unit: Option<String>,
    ) -> wasmtime::Result<Option<f64>> {
        let found =
            self.lent(&msg)?.reading().measurements.iter().find(|m| {
                m.name == name && unit.as_ref().is_none_or(|u| *u == m.unit) && m.value.is_finite()
            });
        Ok(found.map(|m| m.value))
    }

    fn reading(&mut self, msg: Resource<Lent>) -> wasmtime::Result<Reading> {
        Ok(self.lent(&msg)?.reading().clone())
    }

    fn envelope(&mut self, msg: Resource<Lent>) -> wasmtime::Result<Envelope> {
        let lent = self.lent(&msg)?;
        Ok(lent.envelope.as_ref().unwrap_or(&lent.msg.envelope).clone())
    }

    fn path(&mut self, msg: Resource<Lent>) -> wasmtime::Result<Vec<Hop>> {
        Ok(self.lent(&msg)?.msg.path.iter().map(|hop| Hop::clone(hop)).collect())
    }

    fn set_reading(&mut self, msg: Resource<Lent>, reading: Reading) -> wasmtime::Result<()> {
        self.lent_mut(&msg)?.reading = Some(reading);
        Ok(())
    }

    fn set_envelope(&mut self, msg: Resource<Lent>, envelope: Envelope) -> wasmtime::Result<()> {
        self.lent_mut(&msg)?.envelope = Some(envelope);
        Ok(())
    }

    fn drop(&mut self, _msg: Resource<Lent>) -> wasmtime::Result<()> {
        // Rules only ever borrow the message; the gateway takes it back after the call.
        Ok(())
    }
}

impl log::Host for ModuleState {
    fn log(&mut self, level: log::Level, msg: String) -> wasmtime::Result<()> {
        let mut msg = msg;
        if msg.len() > MAX_LOG_LINE {
            let mut cut = MAX_LOG_LINE;
            while !msg.is_char_boundary(cut) {
                cut -= 1;
            }
            msg.truncate(cut);
            msg.push_str(" [cut]");
        }
        let module = &*self.label;
        match level {
            log::Level::Trace => tracing::trace!(module, "{msg}"),
            log::Level::Debug => tracing::debug!(module, "{msg}"),
            log::Level::Info => tracing::info!(module, "{msg}"),
            log::Level::Warn => tracing::warn!(module, "{msg}"),
            log::Level::Error => {
                tracing::error!(module, "{msg}");
                self.last_guest_error = Some(msg);
            }
        }
        Ok(())
    }
}

impl clock::Host for ModuleState {
    fn now_ms(&mut self) -> wasmtime::Result<u64> {
        Ok(self.clock.now_ms())
    }
}

impl kv::Host for ModuleState {
    fn get(&mut self, key: String) -> wasmtime::Result<Option<Vec<u8>>> {
        if !self.grants.kv() {
            return Err(self.denied("kv"));
        }
        match self.kv_writes.get(&key) {
            Some(pending) => Ok(pending.clone()),
            None => Ok(self.state.kv_get(&self.label, &key)?),
        }
    }

    fn set(&mut self, key: String, value: Vec<u8>) -> wasmtime::Result<()> {
        if !self.grants.kv() {
            return Err(self.denied("kv"));
        }
        if key.len() > MAX_KV_KEY || value.len() > MAX_KV_VALUE {
            bail!(
                "module `{}`: kv entry too large (key {} bytes, value {} bytes; limits {MAX_KV_KEY} and {MAX_KV_VALUE})",
                self.label,
                key.len(),
                value.len()
            );
        }
        self.kv_writes.insert(key, Some(value));
        Ok(())
    }

    fn delete(&mut self, key: String) -> wasmtime::Result<()> {
        if !self.grants.kv() {
            return Err(self.denied("kv"));
        }
        self.kv_writes.insert(key, None);
        Ok(())
    }
}

impl signer::Host for ModuleState {
    fn describe(&mut self, key: String) -> wasmtime::Result<Result<signer::KeyInfo, String>> {
        if !self.grants.sign(&key) {
            return Ok(Err(format!("capability `sign:{key}` is not granted to module `{}`", self.label)));
        }
        Ok(match self.keyring.signers.get(&key) {
            Some(signer) => Ok(signer::KeyInfo { kid: signer.kid.clone(), alg: ALG_EDDSA }),
            None => Err(format!("no signing key `{key}` is configured")),
        })
    }

    fn sign(&mut self, key: String, tbs: Vec<u8>) -> wasmtime::Result<Result<Vec<u8>, String>> {
        if !self.grants.sign(&key) {
            return Ok(Err(format!("capability `sign:{key}` is not granted to module `{}`", self.label)));
        }
        Ok(match self.keyring.signers.get(&key) {
            Some(signer) => Ok(signer.sign(&tbs)),
            None => Err(format!("no signing key `{key}` is configured")),
        })
    }
}

impl sealer::Host for ModuleState {
    fn seal(
        &mut self,
        recipients: String,
        aad: Vec<u8>,
        plaintext: Vec<u8>,
    ) -> wasmtime::Result<Result<Vec<u8>, String>> {
        if !self.grants.seal(&recipients) {
            return Ok(Err(format!(
                "capability `seal:{recipients}` is not granted to module `{}`",
                self.label
            )));
        }
        Ok(match self.keyring.recipients.get(&recipients) {
            Some(set) => seal::seal(&set.recipients, &aad, &plaintext, set.pad_to).map_err(|e| e.to_string()),
            None => Err(format!("no recipient set `{recipients}` is configured")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::bindings::Measurement;

    fn message() -> Message {
        Message {
            reading: Reading {
                sensor: "s1".into(),
                address: String::new(),
                seq: None,
                sensor_time_ms: None,
                received_ms: 1_000,
                rssi: None,
                authenticity: Authenticity::None,
                measurements: vec![Measurement {
                    name: "temperature".into(),
                    unit: "Cel".into(),
                    value: 20.0,
                }],
            },
            envelope: Envelope { content_type: "application/senml+cbor".into(), body: vec![0x80] },
            path: Vec::new(),
        }
    }

    /// A rule's changes reach the message only when it forwards it.
    #[test]
    fn changes_apply_on_forward_only() {
        let changed = |lent: &mut Lent| {
            let mut reading = lent.reading().clone();
            reading.measurements[0].value = 25.0;
            lent.change(reading, Envelope { content_type: "x".into(), body: vec![1] });
            assert_eq!(lent.reading().measurements[0].value, 25.0, "getters see the change at once");
        };
        let mut lent = Lent::new(message());
        changed(&mut lent);
        assert_eq!(lent.unchanged(), message(), "dropped, failed or trapped: as it came");
        let mut lent = Lent::new(message());
        changed(&mut lent);
        let forwarded = lent.forwarded();
        assert_eq!(forwarded.reading.measurements[0].value, 25.0);
        assert_eq!(forwarded.envelope.body, vec![1]);
    }
}

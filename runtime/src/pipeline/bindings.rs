//! The host side of the rule contract: `bindgen!` over the SDK's
//! `wit/policy.wit`, the same file rules are built from, and over the
//! frozen 0.1.0 contract whose rules still load ([`v0_1`]).

/// What `bindgen!` makes of the WIT. Its world-level `Message` is the
/// resource (our `Lent`), so the gateway's own `Message` lives beside it.
mod generated {
    wasmtime::component::bindgen!({
        world: "rule",
        path: "../sdk/wit",
        // Host functions may refuse (a capability used without its grant) by trapping.
        imports: { default: trappable },
        // A rule borrows the gateway's message; the store's data holds it.
        with: { "edgeward:policy/types.message": super::super::host::Lent },
        additional_derives: [PartialEq],
    });
}

pub use generated::edgeward::policy::types::{
    Alarm, AlarmState, Authenticity, Command, Envelope, Hop, Measurement, Reading, Severity, Verdict,
};
pub use generated::{Effects, Outcome, Rule, RulePre, edgeward};

use std::sync::Arc;

/// The package and version of the contract this gateway implements.
pub const WIT_PACKAGE: &str = "edgeward:policy";
/// The contract version rules are built against (the SDK's).
pub const WIT_VERSION: &str = "0.2.0";
/// Does this gateway load rules built against contract `version`?
pub fn supports(version: &str) -> bool {
    version == WIT_VERSION || version == v0_1::VERSION
}

/// `edgeward:policy@0.1.0`, in which a rule received the whole message and
/// returned it in its verdict. Rules built against it still load; the
/// gateway converts at the boundary (`pipeline::compat`).
pub mod v0_1 {
    pub const VERSION: &str = "0.1.0";

    wasmtime::component::bindgen!({
        world: "rule",
        path: "wit/policy-0.1",
        imports: { default: trappable },
    });
}

/// A reading together with the bytes that will leave the gateway for it:
/// what flows through the gateway. Rules see it through the WIT's `message`
/// resource and never hold it.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub reading: Reading,
    pub envelope: Envelope,
    /// The modules this message has passed through, in order (shared with
    /// the pipeline's stages: recording a hop copies nothing).
    pub path: Vec<Arc<Hop>>,
}

impl Effects {
    /// No alarms, no commands.
    pub fn none() -> Self {
        Effects { alarms: Vec::new(), commands: Vec::new() }
    }

    /// Append another module's effects.
    pub fn extend(&mut self, other: Effects) {
        self.alarms.extend(other.alarms);
        self.commands.extend(other.commands);
    }
}

impl Message {
    /// Is the envelope end-to-end encrypted (a COSE_Encrypt0 or COSE_Encrypt)?
    /// Then nothing but the envelope may leave the gateway.
    pub fn is_sealed(&self) -> bool {
        self.envelope.content_type.contains("cose-type=\"cose-encrypt")
    }
}

impl Authenticity {
    /// The name used in JSON output and the WIT.
    pub fn as_str(&self) -> &'static str {
        match self {
            Authenticity::None => "none",
            Authenticity::MicVerified => "mic-verified",
            Authenticity::SensorSigned => "sensor-signed",
        }
    }
}

impl Severity {
    /// The name used in JSON output and the WIT.
    pub fn as_str(&self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

impl AlarmState {
    /// The name used in JSON output and the WIT.
    pub fn as_str(&self) -> &'static str {
        match self {
            AlarmState::Raised => "raised",
            AlarmState::Cleared => "cleared",
        }
    }
}

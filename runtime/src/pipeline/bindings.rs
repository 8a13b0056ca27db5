//! The host side of the rule contract: the one `bindgen!` over the SDK's
//! `wit/policy.wit`, the same file rules are built from.

wasmtime::component::bindgen!({
    world: "rule",
    path: "../sdk/wit",
    // Host functions may refuse (a capability used without its grant) by trapping.
    imports: { default: trappable },
    additional_derives: [PartialEq],
});

// `Message`, `Outcome` and `Effects` are already at this level (the world `use`s them).
pub use self::edgeward::policy::types::{
    Alarm, AlarmState, Authenticity, Command, Envelope, Hop, Measurement, Reading, Severity, Verdict,
};

/// The package and version of the contract this gateway implements.
pub const WIT_PACKAGE: &str = "edgeward:policy";
/// The contract version a rule must be built against.
pub const WIT_VERSION: &str = "0.1.0";

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

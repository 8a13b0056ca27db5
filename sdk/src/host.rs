//! The host capabilities a rule may call. In WebAssembly they are the
//! component's imports; natively they are the in-memory stand-in of
//! [`crate::testing`], so the same rule code runs in both.

use crate::Level;

#[cfg(target_arch = "wasm32")]
use crate::bindings::edgeward::policy as imports;

#[cfg(not(target_arch = "wasm32"))]
use crate::testing::native as imports;

/// Write a line to the gateway's log, tagged with the rule's name. Always
/// granted. The macros [`info!`](crate::info) and friends format for you.
pub fn log(level: Level, msg: &str) {
    imports::log::log(level, msg)
}

/// The gateway's clock. Always granted.
pub mod clock {
    use super::imports;

    /// Milliseconds since the Unix epoch, on the gateway's clock (which the
    /// simulator may run faster than real time).
    pub fn now_ms() -> u64 {
        imports::clock::now_ms()
    }
}

/// Persistent per-instance key-value state; needs the capability `kv`.
///
/// Values are bytes; [`get_json`] and [`set_json`] store any serde type.
pub mod kv {
    use super::imports;
    use serde::{Serialize, de::DeserializeOwned};

    /// The value stored under `key`, if any.
    pub fn get(key: &str) -> Option<Vec<u8>> {
        imports::kv::get(key)
    }

    /// Store `value` under `key`, replacing what was there.
    pub fn set(key: &str, value: &[u8]) {
        imports::kv::set(key, value)
    }

    /// Remove `key`.
    pub fn delete(key: &str) {
        imports::kv::delete(key)
    }

    /// The value under `key` decoded from JSON; `None` when absent or when
    /// it no longer decodes (say, after the rule changed its state type).
    pub fn get_json<T: DeserializeOwned>(key: &str) -> Option<T> {
        get(key).and_then(|bytes| serde_json::from_slice(&bytes).ok())
    }

    /// Store `value` under `key` as JSON.
    pub fn set_json<T: Serialize>(key: &str, value: &T) {
        let bytes = serde_json::to_vec(value).expect("serializing rule state to JSON");
        set(key, &bytes)
    }
}

/// Signing with a gateway key that never enters the rule; needs the
/// capability `sign:KEY` for each key used.
pub mod signer {
    use super::imports;
    pub use crate::bindings::edgeward::policy::signer::KeyInfo;

    /// The key id (COSE `kid`) and algorithm (COSE `alg`) of the key named `key`.
    pub fn describe(key: &str) -> Result<KeyInfo, String> {
        imports::signer::describe(key)
    }

    /// Sign `tbs` with the key named `key`.
    pub fn sign(key: &str, tbs: &[u8]) -> Result<Vec<u8>, String> {
        imports::signer::sign(key, tbs)
    }
}

/// End-to-end encryption to a recipient set configured in the gateway;
/// needs the capability `seal:NAME` for each set used.
pub mod sealer {
    use super::imports;

    /// Seal `plaintext` for the recipient set `recipients`, authenticating
    /// `aad` too. Returns the complete COSE object.
    pub fn seal(recipients: &str, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, String> {
        imports::sealer::seal(recipients, aad, plaintext)
    }
}

/// Log at a level with `format!` arguments.
#[doc(hidden)]
#[macro_export]
macro_rules! __log {
    ($level:ident, $($arg:tt)+) => {
        $crate::log($crate::Level::$level, &::std::format!($($arg)+))
    };
}

/// Log at `trace` level, with `format!` arguments.
#[macro_export]
macro_rules! trace { ($($arg:tt)+) => { $crate::__log!(Trace, $($arg)+) }; }
/// Log at `debug` level, with `format!` arguments.
#[macro_export]
macro_rules! debug { ($($arg:tt)+) => { $crate::__log!(Debug, $($arg)+) }; }
/// Log at `info` level, with `format!` arguments.
#[macro_export]
macro_rules! info { ($($arg:tt)+) => { $crate::__log!(Info, $($arg)+) }; }
/// Log at `warn` level, with `format!` arguments.
#[macro_export]
macro_rules! warn { ($($arg:tt)+) => { $crate::__log!(Warn, $($arg)+) }; }
/// Log at `error` level, with `format!` arguments.
#[macro_export]
macro_rules! error { ($($arg:tt)+) => { $crate::__log!(Error, $($arg)+) }; }

//! Write edgeward policy rules in Rust.
//!
//! A rule is a WebAssembly component the gateway runs for every message of
//! the profiles that list it. You write one type that implements [`Rule`] and
//! export it with [`export_rule!`]:
//!
//! ```
//! use edgeward_sdk::{Message, Outcome, Rule};
//!
//! #[derive(serde::Deserialize)]
//! struct Config { max: f64 }
//!
//! struct TooHot { max: f64 }
//!
//! impl Rule for TooHot {
//!     type Config = Config;
//!     fn new(config: Config) -> Result<Self, String> {
//!         Ok(TooHot { max: config.max })
//!     }
//!     fn process(&mut self, msg: Message) -> Result<Outcome, String> {
//!         match msg.value("temperature") {
//!             Some(t) if t > self.max => Ok(Outcome::drop("too hot to forward")),
//!             _ => Ok(Outcome::forward(msg)),
//!         }
//!     }
//! }
//!
//! edgeward_sdk::export_rule!(TooHot);
//! ```
//!
//! Build it with `cargo build --release --target wasm32-wasip2`. The same
//! code also compiles natively, where the host capabilities ([`kv`],
//! [`clock`], [`log()`]) are backed by an in-memory stand-in that
//! [`testing`] controls, so a rule's logic is unit-tested with plain
//! `cargo test`.
//!
//! The contract itself is `wit/policy.wit` in this crate: the same file the
//! gateway is built from.

#![deny(missing_docs)]

use std::any::Any;
use std::cell::RefCell;

/// The bindings generated from `wit/policy.wit`. Rules rarely need them
/// directly: the useful types are re-exported at the crate root.
#[allow(missing_docs)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "rule",
        path: "wit",
        pub_export_macro: true,
        export_macro_name: "export_rule_bindings",
        default_bindings_module: "edgeward_sdk::bindings",
        additional_derives: [PartialEq],
    });
}

mod host;
mod message;
mod types;

#[cfg(not(target_arch = "wasm32"))]
pub mod testing;

pub use bindings::edgeward::policy::log::Level;
pub use bindings::edgeward::policy::types::{
    Alarm, AlarmState, Authenticity, Command, Effects, Envelope, Hop, Measurement, Reading, Severity,
};
pub use host::{clock, kv, log, sealer, signer};
pub use message::{Message, Outcome, Verdict};

/// A policy rule: one value per instance, created by [`Rule::new`] from the
/// rule's configuration table, then called for every message.
///
/// State kept in `self` lasts as long as the instance. The gateway replaces
/// an instance after it traps (and on reload), so state that must survive
/// that belongs in [`kv`].
pub trait Rule: Sized + 'static {
    /// The rule's configuration: the `[module.NAME.config]` table of the
    /// gateway's TOML, deserialized with serde (an absent table is `{}`).
    type Config: serde::de::DeserializeOwned;

    /// Create the rule. An `Err` refuses the configuration: the gateway
    /// reports it with the rule's name and does not start (or reload).
    fn new(config: Self::Config) -> Result<Self, String>;

    /// Decide what happens to one message.
    fn process(&mut self, msg: Message) -> Result<Outcome, String>;

    /// Act on the passage of time (called every `tick-interval` of the
    /// profile). The default does nothing.
    fn tick(&mut self, now_ms: u64) -> Result<Effects, String> {
        let _ = now_ms;
        Ok(Effects::none())
    }
}

/// Export a [`Rule`] type as the component's implementation of the `rule`
/// world. Expands to nothing outside WebAssembly, so the crate still builds
/// and tests natively.
#[macro_export]
macro_rules! export_rule {
    ($rule:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct Export;
            impl $crate::bindings::Guest for Export {
                fn init(config: ::std::string::String) -> ::std::result::Result<(), ::std::string::String> {
                    $crate::__private::init::<$rule>(&config)
                }
                fn process(
                    msg: &$crate::bindings::edgeward::policy::types::Message,
                ) -> ::std::result::Result<
                    $crate::bindings::edgeward::policy::types::Outcome,
                    ::std::string::String,
                > {
                    $crate::__private::process::<$rule>(msg.handle())
                }
                fn tick(now_ms: u64) -> ::std::result::Result<$crate::Effects, ::std::string::String> {
                    $crate::__private::tick::<$rule>(now_ms)
                }
            }
            $crate::bindings::export_rule_bindings!(Export);
        };
        // Natively nothing is exported, but the rule is still "used": it is
        // what a native test or benchmark drives.
        #[cfg(not(target_arch = "wasm32"))]
        const _: () = {
            let _ = $crate::__private::init::<$rule>;
            let _ = $crate::__private::process::<$rule>;
            let _ = $crate::__private::tick::<$rule>;
        };
    };
}

thread_local! {
    /// The instance's rule, created by `init`. A component instance is single-threaded.
    static RULE: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
}

/// Used by [`export_rule!`]; not part of the public API.
#[doc(hidden)]
pub mod __private {
    use super::*;

    pub fn init<R: Rule>(config: &str) -> Result<(), String> {
        // A panic aborts the instance (a trap); say why in the gateway's log first.
        std::panic::set_hook(Box::new(|info| log(Level::Error, &format!("panic: {info}"))));
        let config = if config.trim().is_empty() { "{}" } else { config };
        let config: R::Config =
            serde_json::from_str(config).map_err(|e| format!("invalid configuration: {e}"))?;
        let rule = R::new(config)?;
        RULE.with_borrow_mut(|slot| *slot = Some(Box::new(rule)));
        Ok(())
    }

    fn with_rule<R: Rule, T>(f: impl FnOnce(&mut R) -> Result<T, String>) -> Result<T, String> {
        RULE.with_borrow_mut(|slot| match slot.as_mut().and_then(|r| r.downcast_mut::<R>()) {
            Some(rule) => f(rule),
            None => Err("the rule was called before init".to_string()),
        })
    }

    /// Run the rule on the gateway's message `handle`.
    pub fn process<R: Rule>(handle: u32) -> Result<bindings::edgeward::policy::types::Outcome, String> {
        let outcome = with_rule::<R, _>(|rule| rule.process(Message::lent(handle)))?;
        Ok(outcome.into_wit(handle))
    }

    pub fn tick<R: Rule>(now_ms: u64) -> Result<Effects, String> {
        with_rule::<R, _>(|rule| rule.tick(now_ms))
    }
}

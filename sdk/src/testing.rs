//! Unit-test a rule natively, through the same API it uses in WebAssembly.
//!
//! Outside WebAssembly the host capabilities are served by an in-memory
//! stand-in, one per thread (so tests running in parallel do not share
//! state): [`set_now_ms`] sets the clock, [`kv_entries`] shows what the rule
//! stored, [`logs`] what it logged. [`init`] runs a rule's configuration
//! through the same JSON path the gateway uses.
//!
//! ```
//! use edgeward_sdk::testing;
//! testing::reset();
//! testing::set_now_ms(1_000);
//! assert_eq!(edgeward_sdk::clock::now_ms(), 1_000);
//! ```

use crate::{Level, Rule};
use std::cell::RefCell;
use std::collections::BTreeMap;

#[derive(Default)]
struct Host {
    now_ms: u64,
    kv: BTreeMap<String, Vec<u8>>,
    logs: Vec<(Level, String)>,
}

thread_local! {
    static HOST: RefCell<Host> = RefCell::new(Host::default());
}

/// Forget the clock, the stored state and the logs of this thread.
pub fn reset() {
    HOST.with_borrow_mut(|h| *h = Host::default());
}

/// Set the clock [`crate::clock::now_ms`] returns.
pub fn set_now_ms(now_ms: u64) {
    HOST.with_borrow_mut(|h| h.now_ms = now_ms);
}

/// Everything the rule stored with [`crate::kv`], sorted by key.
pub fn kv_entries() -> Vec<(String, Vec<u8>)> {
    HOST.with_borrow(|h| h.kv.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

/// Everything the rule logged, oldest first.
pub fn logs() -> Vec<(Level, String)> {
    HOST.with_borrow(|h| h.logs.clone())
}

/// Create a rule from a JSON configuration, as the gateway's `init` does.
pub fn init<R: Rule>(config_json: &str) -> Result<R, String> {
    let config: R::Config =
        serde_json::from_str(config_json).map_err(|e| format!("invalid configuration: {e}"))?;
    R::new(config)
}

/// The native implementations behind [`crate::host`].
#[doc(hidden)]
pub mod native {
    use super::HOST;

    pub mod log {
        use super::HOST;
        use crate::Level;
        pub fn log(level: Level, msg: &str) {
            HOST.with_borrow_mut(|h| h.logs.push((level, msg.to_string())));
        }
    }

    pub mod clock {
        use super::HOST;
        pub fn now_ms() -> u64 {
            HOST.with_borrow(|h| h.now_ms)
        }
    }

    pub mod kv {
        use super::HOST;
        pub fn get(key: &str) -> Option<Vec<u8>> {
            HOST.with_borrow(|h| h.kv.get(key).cloned())
        }
        pub fn set(key: &str, value: &[u8]) {
            HOST.with_borrow_mut(|h| h.kv.insert(key.to_string(), value.to_vec()));
        }
        pub fn delete(key: &str) {
            HOST.with_borrow_mut(|h| h.kv.remove(key));
        }
    }
}

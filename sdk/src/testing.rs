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

/// Signs `tbs` with the named key, standing in for the gateway's signer.
pub type SignFn = Box<dyn Fn(&str, &[u8]) -> Result<Vec<u8>, String>>;
/// Seals a plaintext for the named recipient set, standing in for the gateway's sealer.
pub type SealFn = Box<dyn Fn(&str, &[u8], &[u8]) -> Result<Vec<u8>, String>>;

#[derive(Default)]
struct Host {
    now_ms: u64,
    kv: BTreeMap<String, Vec<u8>>,
    logs: Vec<(Level, String)>,
    /// Key name → (kid, signing function).
    signers: BTreeMap<String, (Vec<u8>, std::rc::Rc<SignFn>)>,
    sealer: Option<std::rc::Rc<SealFn>>,
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

/// Make the key `name` (with key id `kid`) available to [`crate::signer`],
/// signing with `sign`.
pub fn set_signer(name: &str, kid: &[u8], sign: impl Fn(&str, &[u8]) -> Result<Vec<u8>, String> + 'static) {
    let sign: SignFn = Box::new(sign);
    HOST.with_borrow_mut(|h| h.signers.insert(name.to_string(), (kid.to_vec(), std::rc::Rc::new(sign))));
}

/// Make [`crate::sealer`] seal with `seal`.
pub fn set_sealer(seal: impl Fn(&str, &[u8], &[u8]) -> Result<Vec<u8>, String> + 'static) {
    let seal: SealFn = Box::new(seal);
    HOST.with_borrow_mut(|h| h.sealer = Some(std::rc::Rc::new(seal)));
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

    pub mod signer {
        use super::HOST;
        use crate::bindings::edgeward::policy::signer::KeyInfo;

        fn find(key: &str) -> Result<(Vec<u8>, std::rc::Rc<super::super::SignFn>), String> {
            HOST.with_borrow(|h| h.signers.get(key).cloned())
                .ok_or_else(|| format!("no signing key `{key}` (testing::set_signer)"))
        }

        pub fn describe(key: &str) -> Result<KeyInfo, String> {
            find(key).map(|(kid, _)| KeyInfo { kid, alg: -8 })
        }

        pub fn sign(key: &str, tbs: &[u8]) -> Result<Vec<u8>, String> {
            let (_, sign) = find(key)?;
            sign(key, tbs)
        }
    }

    pub mod sealer {
        use super::HOST;

        pub fn seal(recipients: &str, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, String> {
            let seal = HOST.with_borrow(|h| h.sealer.clone()).ok_or("no sealer (testing::set_sealer)")?;
            seal(recipients, aad, plaintext)
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

//! A test rule that misbehaves on purpose, as configured: it traps, loops
//! forever, eats memory or returns an error, in `init`, `process` or `tick`.
//! The gateway's sandbox tests load it to prove each fault is contained.

use edgeward_sdk::{Effects, Message, Outcome, Rule};
use serde::Deserialize;

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
enum Fault {
    /// Never misbehave: a rule that only forwards (for benchmarks).
    None,
    Trap,
    Loop,
    Hog,
    Error,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
enum Call {
    Init,
    Process,
    Tick,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Config {
    fault: Fault,
    on: Call,
    /// Misbehave on every Nth call only (default: every call).
    #[serde(default = "one")]
    every: u64,
}

fn one() -> u64 {
    1
}

struct Faulty {
    config: Config,
    calls: u64,
}

impl Faulty {
    fn maybe_fail(&mut self, call: Call) -> Result<(), String> {
        if call != self.config.on {
            return Ok(());
        }
        self.calls += 1;
        if !self.calls.is_multiple_of(self.config.every) {
            return Ok(());
        }
        misbehave(self.config.fault)
    }
}

fn misbehave(fault: Fault) -> Result<(), String> {
    match fault {
        Fault::None => Ok(()),
        Fault::Trap => panic!("deliberate trap"),
        Fault::Loop => {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        Fault::Hog => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1u8; 1 << 20]);
                std::hint::black_box(&hoard);
            }
        }
        Fault::Error => Err("deliberate error".to_string()),
    }
}

impl Rule for Faulty {
    type Config = Config;

    fn new(config: Config) -> Result<Self, String> {
        if config.on == Call::Init {
            misbehave(config.fault).map_err(|e| format!("refusing the configuration: {e}"))?;
        }
        Ok(Faulty { config, calls: 0 })
    }

    fn process(&mut self, msg: Message) -> Result<Outcome, String> {
        self.maybe_fail(Call::Process)?;
        Ok(Outcome::forward(msg))
    }

    fn tick(&mut self, _now_ms: u64) -> Result<Effects, String> {
        self.maybe_fail(Call::Tick)?;
        Ok(Effects::none())
    }
}

edgeward_sdk::export_rule!(Faulty);

//! A test rule that counts the messages it has seen in `kv` and adds the
//! count to each message as a `count` measurement. With `trap-every = N` it
//! also traps on every Nth message (after saving the count), which proves
//! that kv state survives the instance being replaced.

use edgeward_sdk::{Measurement, Message, Outcome, Rule, kv};
use serde::Deserialize;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Config {
    trap_every: Option<u64>,
}

struct Counter {
    trap_every: Option<u64>,
}

impl Rule for Counter {
    type Config = Config;

    fn new(config: Config) -> Result<Self, String> {
        Ok(Counter { trap_every: config.trap_every })
    }

    fn process(&mut self, mut msg: Message) -> Result<Outcome, String> {
        let count = kv::get_json::<u64>("count").unwrap_or(0) + 1;
        kv::set_json("count", &count);
        if self.trap_every.is_some_and(|n| count.is_multiple_of(n)) {
            panic!("trap at message {count}");
        }
        msg.add_measurement(Measurement::new("count", "", count as f64));
        Ok(Outcome::forward(msg))
    }
}

edgeward_sdk::export_rule!(Counter);

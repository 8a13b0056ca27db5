//! edgeward: a BLE gateway whose per-message policy runs in sandboxed
//! WebAssembly rules.
//!
//! The data path, in the names you can grep for:
//!
//! ```text
//! source::sim::run / source::ble (later)     raw frames (BTHome service data, signed notifications)
//!   → decode::decode_frame                    a Reading plus its SenML-CBOR envelope
//!   → topology::Router                        the sensor's profile
//!   → pipeline::Pipeline::process             the profile's rules, in order, each in its own sandbox
//!   → sink::SinkSet                           uplink (forwarded messages), alarm, actuator
//! ```
//!
//! Around it: [`config`] loads and validates the TOML; [`state::StateStore`]
//! keeps module key-value state (and later the outbox and replay counters) in
//! one SQLite file; [`clock::Clock`] is the gateway's time, which the
//! simulator may run faster than real time; [`topology`] builds all of it
//! from a config and runs it until the sources end or a signal arrives.

pub mod builtin;
pub mod clock;
pub mod config;
pub mod decode;
pub mod metrics;
pub mod pipeline;
pub mod report;
pub mod sink;
pub mod source;
pub mod state;
pub mod telemetry;
pub mod topology;
pub mod trust;

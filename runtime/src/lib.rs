//! edgeward: a BLE gateway whose per-message policy runs in sandboxed
//! WebAssembly rules.
//!
//! The data path, in the names you can grep for:
//!
//! ```text
//! source::ble::run / source::sim::run   raw frames (BTHome service data, signed notifications)
//!   → topology::admit::Admission        in batches of what has queued: the sensor by address;
//!                                       decode::decode_unverified (BTHome, or a COSE_Sign1),
//!                                       decode::verify_all (the batch's signatures at once);
//!                                       the replay guard (StateStore::replay_accept_all)
//!   → pipeline::Pipeline::process       the profile's rules, in order, each in its own sandbox
//!   → sink::SinkSet                     uplink (sink::mqtt::UplinkSink → sink::outbox::Outbox →
//!                                       sink::mqtt::publish_outbox), alarm, actuator
//! ```
//!
//! Sources, admission and pipelines run on a tokio runtime of their own
//! (`topology::MessagePath`), synchronous work in place; sinks write from
//! threads of their own; the main runtime keeps the MQTT clients, status,
//! metrics, signals and reloads.
//!
//! Around it: [`config`] loads and validates the TOML; [`state::StateStore`]
//! keeps module key-value state and replay windows in `state.db` (the outbox
//! has `outbox.db`); [`trust`] holds the keys and the sealing; [`clock::Clock`] is the
//! gateway's time, which the simulator may run faster than real time;
//! [`topology`] builds all of it from a config, runs it until the sources
//! end or a signal arrives, and reloads it when its files change or on
//! SIGHUP (building beside the running pipelines, swapping between frames);
//! [`telemetry`] and [`metrics`] say how it goes, and [`systemd`] tells the
//! service manager (ready, reloading, stopping, watchdog).

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
pub mod systemd;
pub mod telemetry;
pub mod topology;
pub mod trust;

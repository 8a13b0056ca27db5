//! Integration tests: the real gateway binary and the real wasmtime host,
//! with the rule components built by runtime/build.rs (built-in modules and
//! the misbehaving test rules under tests/rules/, the examples under
//! examples/rules/).

#[path = "../support/mod.rs"]
mod support;

mod bad_configs;
mod ble;
mod daemon;
mod examples;
mod interop;
mod mqtt;
mod reload;
mod sandbox;
mod sdk;
mod systemd;
mod tls;
mod trust;

//! Any bytes into the SenML-CBOR decoder: it must return, never panic.
#![no_main]

use edgeward_formats::senml;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = senml::decode(data);
});

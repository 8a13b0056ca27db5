//! edgeward's wire formats, shared by the gateway (native) and its
//! WebAssembly rules, so both sides agree on every byte.
//!
//! - [`senml`]: readings as SenML-CBOR (RFC 8428), the payload of every
//!   signed message.
//! - [`cose`]: the sensor's COSE_Sign1 (RFC 9052), the gateway's RFC 9338
//!   countersignature on it, and the gateway's own COSE_Sign1 attesting data
//!   from sensors that do not sign.
//! - [`bthome`]: BTHome v2 BLE advertisement service data, decoded (and
//!   encrypted ones opened with the sensor's AES-CCM bindkey) and encoded.
//!
//! Apart from BTHome's AES-CCM (a symmetric bindkey the caller passes in), the
//! crate does no cryptography, and it does no I/O: building a signed structure
//! takes a signing closure that is handed the exact to-be-signed bytes, and
//! parsing returns the to-be-signed bytes for the caller to verify against.
//! That keeps signing keys out of this crate and lets the same code run in
//! a sandboxed guest (it builds for `wasm32-wasip2`: no clocks, threads or
//! randomness). No input makes it panic or allocate more than a small
//! multiple of the input's size.

#![deny(missing_docs)]

pub mod bthome;
mod cbor;
pub mod cose;
mod error;
pub mod senml;

pub use error::{BuildError, FormatError};

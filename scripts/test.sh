#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine with rustup: installs
# what the tests need, then runs formatting, lints, unit and integration tests.
set -euo pipefail
cd "$(dirname "$0")/.."

# The guests (rule modules) build for WebAssembly components.
rustup target add wasm32-wasip2
rustup component add rustfmt clippy >/dev/null 2>&1 || true

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked

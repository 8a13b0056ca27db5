#!/usr/bin/env bash
# Build edgeward (with its built-in WebAssembly rules) and run the demo:
# simulated sensors through both deployment profiles, output on this terminal.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target add wasm32-wasip2
cargo run --release --locked -p edgeward -- run -c configs/demo.toml "$@"

#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine with rustup: installs
# what the tests need, then runs formatting, lints, unit and integration tests.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
# mosquitto lives in /usr/sbin, which a non-login root shell may lack.
export PATH="$PATH:/usr/sbin"

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked

# The Debian package: build, lintian, the unit's hardening score; with
# CI=true also install, upgrade, remove and purge it on this machine.
packaging/test.sh

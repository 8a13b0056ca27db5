#!/usr/bin/env bash
# What building, testing and benchmarking need on a fresh Debian machine with
# rustup: the WebAssembly target and the Debian packages the integration
# tests and benchmarks talk to. Run by scripts/test.sh and scripts/bench.sh.
set -euo pipefail

# The guests (rule modules) build for WebAssembly components.
rustup target add wasm32-wasip2
rustup component add rustfmt clippy >/dev/null 2>&1 || true

# mosquitto lives in /usr/sbin, which a non-login root shell may lack.
PATH="$PATH:/usr/sbin"

# Debian packages the integration tests talk to: a real Mosquitto broker;
# python3 with venv for the interop checks (pycose, pyhpke from PyPI).
need=()
command -v mosquitto >/dev/null || need+=(mosquitto)
python3 -m venv --help >/dev/null 2>&1 || need+=(python3-venv)
# The BLE tests emulate BlueZ on a private bus: dbus-daemon, and
# python-dbusmock for the system python (/usr/bin/python3). libdbus itself is
# built from source (the dbus crate's `vendored` feature): no libdbus-1-dev.
command -v dbus-daemon >/dev/null || need+=(dbus-daemon)
/usr/bin/python3 -c 'import dbusmock' 2>/dev/null || need+=(python3-dbusmock)
if ((${#need[@]})); then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi

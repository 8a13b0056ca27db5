#!/usr/bin/env bash
# Every benchmark, one after the other, written to BENCHMARKS.md: what the
# machine is, then one section per benchmark (its description is the bench
# file's own doc comment, its tables what it prints). Benchmarks run pinned
# to one core, the last, when `taskset` is there; the build is not pinned.
#
#   scripts/bench.sh              # all of them (about 15 minutes after the build)
#   scripts/bench.sh trust outbox # some of them, into BENCHMARKS.md all the same
#
# The latency and startup benches, which run the daemon, run
# `$EDGEWARD_BIN` instead of this build when it is set: copy
# target/release/edgeward aside before a change to measure before/after,
# e.g. `EDGEWARD_BIN=/tmp/edgeward-before cargo bench -p edgeward --bench latency`.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
export PATH="$PATH:/usr/sbin"
# The Python BTHome parser Home Assistant runs, to compare decoding with.
if [ ! -x target/bthome-venv/bin/python ]; then
    python3 -m venv target/bthome-venv
    target/bthome-venv/bin/pip install -q bthome-ble
fi

benches=("$@")
if ((${#benches[@]} == 0)); then
    benches=(throughput trust pipeline latency outbox bthome startup reload ble_latency)
fi

cargo bench -p edgeward --locked --no-run
pin=()
if command -v taskset >/dev/null; then
    pin=(taskset -c "$(($(nproc) - 1))")
fi

out=target/BENCHMARKS.md
{
    echo "# Benchmarks"
    echo
    echo "Written by \`scripts/bench.sh\` (every figure below comes from the command"
    echo "above its table; baselines are measured in the same run, and ratios are"
    echo "what to compare across machines: on shared machines absolute figures"
    echo "drift by up to 1.8x between runs)."
    echo
    echo "| machine | |"
    echo "|---|---|"
    echo "| date | $(date -u +%Y-%m-%dT%H:%MZ) |"
    echo "| commit | $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet -- . ':!BENCHMARKS.md' 2>/dev/null || echo ' (with local changes)') |"
    echo "| CPU | $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores |"
    echo "| memory | $(free -g | awk '/^Mem:/ {print $2}') GiB |"
    echo "| kernel | $(uname -r) |"
    echo "| Rust | $(rustc --version) |"
    echo "| profile | \`bench\` (= \`release\`, see Cargo.toml) |"
    echo "| pinned | ${pin[*]:-no (taskset not found)} |"
    echo
    echo "## The release build"
    echo
    echo "The benchmarks run the \`bench\` profile, which is \`release\`:"
    echo
    echo '```toml'
    sed -n '/^\[profile.release\]/,/^$/p' Cargo.toml | grep -v '^#' | sed '/^$/d'
    echo '```'
    echo
    # The daemon the benchmarks ran (built for them by `cargo bench`).
    binary=target/release/edgeward
    strip -o target/edgeward.stripped "$binary"
    echo "| \`edgeward\` binary | bytes |"
    echo "|---|---:|"
    echo "| as built | $(stat -c %s "$binary") |"
    echo "| stripped (as packaged) | $(stat -c %s target/edgeward.stripped) |"
    for bench in "${benches[@]}"; do
        file="runtime/benches/$bench.rs"
        echo
        # The doc comment: its first line is the title, then the description
        # up to "Run with".
        sed -n 's|^//! \{0,1\}||p' "$file" | awk '
            NR == 1 { print "## " $0; next }
            /^Run with/ { exit }
            { print }'
        echo
        echo '```sh'
        echo "cargo bench -p edgeward --bench $bench"
        echo '```'
        echo
        echo "running --bench $bench" >&2
        "${pin[@]}" cargo bench -p edgeward --locked --bench "$bench" 2>/dev/null
    done
} | cat -s >"$out"
mv "$out" BENCHMARKS.md
echo "BENCHMARKS.md written" >&2

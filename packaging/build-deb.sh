#!/usr/bin/env bash
# Build the Debian package from the release build and print the .deb's path
# on the last line of standard output.
#
#   packaging/build-deb.sh [--deb-version VERSION] [--output DIR] [--fast] [--debug]
#
# --fast compresses lightly (seconds instead of a minute, a larger file) and
# --debug packages the debug build instead: for tests, which check the
# packaging with the one profile the tests build (the program is the same
# code; the debug build compiles rules and runs them far slower).
# Needs cargo-deb (packaging/test.sh installs the pinned version). Generated
# files (man pages, completions, the rule modules, the examples) are staged
# under target/packaging/, where runtime/Cargo.toml's deb assets point.
set -euo pipefail
cd "$(dirname "$0")/.."

deb_args=()
profile=release
while (($#)); do
    case "$1" in
        --deb-version | --output) deb_args+=("$1" "$2"); shift 2 ;;
        --fast) deb_args+=("$1"); shift ;;
        --debug) profile=debug; shift ;;
        *) echo "usage: $0 [--deb-version VERSION] [--output DIR] [--fast] [--debug]" >&2; exit 2 ;;
    esac
done

command -v cargo-deb >/dev/null || {
    echo "cargo-deb is missing: cargo install cargo-deb --locked --version $(cat packaging/cargo-deb.version)" >&2
    exit 1
}

# Builds the guest modules too (runtime/build.rs); a no-op when up to date.
if [ "$profile" = release ]; then
    cargo build -p edgeward --locked --release >&2
else
    cargo build -p edgeward --locked >&2
fi
target="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
bin="$target/$profile/edgeward"
stage="$target/packaging"
rm -rf "$stage"
mkdir -p "$stage/modules" "$stage/examples"

# Man pages and completions from the CLI definition itself.
"$bin" generate man "$stage/man"
gzip -9n "$stage"/man/*.1
for shell in bash zsh fish; do
    "$bin" generate completions "$shell" "$stage/completions" 2>/dev/null
done

# The built-in rules as files, the same bytes the binary embeds as
# builtin:NAME: for `edgeward module inspect` and for configurations that
# load a rule by path.
for wasm in "$target"/guest/wasm32-wasip2/guest/edgeward_module_*.wasm; do
    name="$(basename "$wasm" .wasm)"
    cp "$wasm" "$stage/modules/${name#edgeward_module_}.wasm"
done

# The example profiles keep their state beside themselves (../target/ is
# the repository's build folder): a copy runs from any writable folder.
for config in configs/*.toml; do
    sed 's#\.\./target/#./#g' "$config" >"$stage/examples/$(basename "$config")"
done

# The binary, stripped as dh_strip does (the debug build carries 390 MB of
# debug information: a 60 MB package that takes minutes to compress).
strip --strip-unneeded --remove-section=.comment --remove-section=.note -o "$stage/edgeward" "$bin"

# cargo-deb prints the path of the package it wrote, last.
deb="$(cargo deb -p edgeward --no-build --locked "${deb_args[@]}" | tail -n 1)"
test -f "$deb"
echo "$deb"

#!/usr/bin/env bash
# Build the Debian package from the debug build (the CI's one profile) and
# print the .deb's path on the last line of standard output.
#
#   packaging/build-deb.sh [--deb-version VERSION] [--output DIR] [--fast]
#
# --fast compresses lightly (seconds instead of a minute, a larger file): for
# tests.
# Needs cargo-deb (packaging/test.sh installs the pinned version). Generated
# files (man pages, completions, the rule modules, the examples) are staged
# under target/packaging/, where runtime/Cargo.toml's deb assets point.
set -euo pipefail
cd "$(dirname "$0")/.."

deb_args=()
while (($#)); do
    case "$1" in
        --deb-version | --output) deb_args+=("$1" "$2"); shift 2 ;;
        --fast) deb_args+=("$1"); shift ;;
        *) echo "usage: $0 [--deb-version VERSION] [--output DIR] [--fast]" >&2; exit 2 ;;
    esac
done

command -v cargo-deb >/dev/null || {
    echo "cargo-deb is missing: cargo install cargo-deb --locked --version $(cat packaging/cargo-deb.version)" >&2
    exit 1
}

# Builds the guest modules too (runtime/build.rs); a no-op when up to date.
cargo build -p edgeward --locked >&2
target="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
bin="$target/debug/edgeward"
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

# The debug binary, stripped as dh_strip does: 390 MB of debug information
# would make a 60 MB package that takes minutes to compress.
strip --strip-unneeded --remove-section=.comment --remove-section=.note -o "$stage/edgeward" "$bin"

# cargo-deb prints the path of the package it wrote, last.
deb="$(cargo deb -p edgeward --no-build --locked "${deb_args[@]}" | tail -n 1)"
test -f "$deb"
echo "$deb"

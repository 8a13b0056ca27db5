#!/usr/bin/env bash
# The Debian package, checked: its contents and control fields, lintian, the
# systemd unit (verify, and its exposure score), then a real installation,
# an upgrade, a removal and a purge.
#
# The installation steps install the package on THIS machine (and bluez,
# which it depends on), so they run only on CI (CI=true) or when asked for
# with EDGEWARD_TEST_INSTALL=1; anywhere else they are skipped, and said so.
# They refuse to run over an edgeward package that was already installed.
set -euo pipefail
cd "$(dirname "$0")/.."
# adduser, deluser and dpkg's helpers live in /usr/sbin.
export PATH="$PATH:/usr/sbin:/sbin"

fail() {
    echo "packaging test FAILED: $*" >&2
    exit 1
}
step() { echo "--- packaging: $*" >&2; }

# --- What the test needs ------------------------------------------------------
cargo_deb_version="$(cat packaging/cargo-deb.version)"
if [ "$(cargo deb --version 2>/dev/null)" != "$cargo_deb_version" ]; then
    step "installing cargo-deb $cargo_deb_version"
    cargo install cargo-deb --locked --version "$cargo_deb_version"
fi
need=()
command -v lintian >/dev/null || need+=(lintian)
command -v systemd-analyze >/dev/null || need+=(systemd)
command -v strip >/dev/null || need+=(binutils)
if ((${#need[@]})); then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

# --- Build: two versions, for the upgrade -------------------------------------
out="$(mktemp -d)"
step "building the package"
deb="$(packaging/build-deb.sh --fast --debug --output "$out/old.deb" | tail -n 1)"
[ -f "$deb" ] || fail "build-deb.sh printed no package path"
version="$(dpkg-deb -f "$deb" Version)"
upgrade_version="${version%-*}+upgrade-test"
newer="$(packaging/build-deb.sh --fast --debug --deb-version "$upgrade_version" --output "$out/new.deb" | tail -n 1)"
dpkg --compare-versions "$(dpkg-deb -f "$newer" Version)" gt "$version" ||
    fail "the second build's version is not newer than $version"
echo "package: $deb ($(du -h "$deb" | cut -f1))" >&2

# --- Contents and control fields -----------------------------------------------
step "contents"
contents="$(dpkg-deb -c "$deb" | awk '{ sub(/^\.\//, "", $NF); print $NF }')"
for path in \
    usr/bin/edgeward \
    usr/lib/edgeward/modules/alarm.wasm \
    usr/lib/edgeward/modules/heating.wasm \
    usr/lib/edgeward/modules/seal.wasm \
    usr/lib/edgeward/modules/sign.wasm \
    etc/edgeward/edgeward.toml \
    lib/systemd/system/edgeward.service \
    usr/share/man/man1/edgeward.1.gz \
    usr/share/man/man1/edgeward-run.1.gz \
    usr/share/man/man1/edgeward-check.1.gz \
    usr/share/bash-completion/completions/edgeward \
    usr/share/zsh/vendor-completions/_edgeward \
    usr/share/fish/vendor_completions.d/edgeward.fish \
    usr/share/doc/edgeward/examples/demo.toml \
    usr/share/doc/edgeward/examples/home.toml \
    usr/share/doc/edgeward/examples/medical.toml \
    usr/share/doc/edgeward/copyright \
    usr/share/doc/edgeward/changelog.Debian.gz \
    usr/share/lintian/overrides/edgeward; do
    grep -qxF "$path" <<<"$contents" || fail "$path is not in the package"
done
# The hidden packaging subcommand gets no man page.
! grep -q 'edgeward-generate' <<<"$contents" || fail "a man page for the hidden 'generate' subcommand"
ctl="$out/control"
dpkg-deb -e "$deb" "$ctl"
grep -qxF /etc/edgeward/edgeward.toml "$ctl/conffiles" || fail "/etc/edgeward/edgeward.toml is not a conffile"

step "control fields"
[ "$(dpkg-deb -f "$deb" Package)" = edgeward ] || fail "Package is not edgeward"
[ "$(dpkg-deb -f "$deb" Architecture)" = "$(dpkg --print-architecture)" ] || fail "Architecture is not $(dpkg --print-architecture)"
depends="$(dpkg-deb -f "$deb" Depends)"
for dep in bluez dbus adduser libc6; do
    grep -qE "(^|, )$dep( |,|$)" <<<"$depends" || fail "Depends ($depends) lacks $dep"
done
[ "$(dpkg-deb -f "$deb" Section)" = net ] || fail "Section is not net"
[ "$(dpkg-deb -f "$deb" Priority)" = optional ] || fail "Priority is not optional"

# --- lintian -------------------------------------------------------------------
step "lintian"
# Any error or warning fails; justified overrides are in packaging/lintian-overrides.
lintian --fail-on error,warning "$deb" ||
    fail "lintian found problems (above)"

# --- The unit's exposure ---------------------------------------------------------
step "systemd-analyze security"
security="$(systemd-analyze security --offline=true --no-pager packaging/edgeward.service 2>&1)" ||
    { echo "$security" >&2; fail "systemd-analyze security failed"; }
score="$(sed -n 's/.*Overall exposure level for edgeward.service: \([0-9.]*\).*/\1/p' <<<"$security")"
[ -n "$score" ] || { echo "$security" >&2; fail "no exposure score in systemd-analyze's output"; }
echo "exposure score: $score (at most 2.0)" >&2
awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }' || { echo "$security" >&2; fail "exposure $score is above 2.0"; }

# --- Installation, upgrade, removal, purge --------------------------------------
if [ "${CI:-}" != true ] && [ "${EDGEWARD_TEST_INSTALL:-}" != 1 ]; then
    echo "packaging: SKIPPED installing the package on this machine (set CI=true or EDGEWARD_TEST_INSTALL=1)" >&2
    echo "packaging test passed (without installation)" >&2
    exit 0
fi
if dpkg-query -W -f '${db:Status-Status}' edgeward 2>/dev/null | grep -qv '^not-installed$'; then
    fail "an edgeward package is already installed here; remove it (apt purge edgeward) first"
fi
# Leave the machine as found, should a check fail half-way.
trap 'dpkg --purge edgeward >/dev/null 2>&1 || true' EXIT

apt_install() {
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@" </dev/null
}
dpkg-query -W -f '${db:Status-Status}' bluez 2>/dev/null | grep -qx installed || apt-get update -qq

step "install"
apt_install "$deb"
[ "$(dpkg-query -W -f '${Version}' edgeward)" = "$version" ] || fail "version $version is not installed"

owner_mode() { stat -c '%U:%G %a' "$1"; }
getent passwd edgeward >/dev/null || fail "no user edgeward"
getent group edgeward >/dev/null || fail "no group edgeward"
[ "$(getent passwd edgeward | cut -d: -f7)" != /bin/bash ] || fail "the edgeward user has a login shell"
if getent group bluetooth >/dev/null; then
    id -nG edgeward | tr ' ' '\n' | grep -qx bluetooth || fail "edgeward is not in the bluetooth group"
fi
[ "$(owner_mode /var/lib/edgeward)" = "edgeward:edgeward 700" ] || fail "/var/lib/edgeward is $(owner_mode /var/lib/edgeward)"
key=/var/lib/edgeward/gateway.key
[ -f "$key" ] || fail "postinst made no gateway key"
[ "$(owner_mode "$key")" = "edgeward:edgeward 600" ] || fail "$key is $(owner_mode "$key")"
grep -q '^ed25519:' "$key.pub" || fail "$key.pub holds no ed25519 public key"
key_sum="$(sha256sum "$key")"

step "edgeward check (as the service's user, as ExecReload runs it)"
runuser -u edgeward -- env EDGEWARD_CACHE_DIR=/var/cache/edgeward \
    edgeward check --config /etc/edgeward/edgeward.toml || fail "the packaged configuration does not check"
ls /var/cache/edgeward/*.cwasm >/dev/null 2>&1 || fail "check left no compiled module in /var/cache/edgeward"
scratch="$(mktemp -d)"
for example in /usr/share/doc/edgeward/examples/*.toml; do
    EDGEWARD_CACHE_DIR="$scratch" edgeward check --config "$example" >/dev/null || fail "$example does not check"
done
rm -rf "$scratch"
# The module files are the very rules built in (same bytes, same hash).
builtin_sign="$(EDGEWARD_CACHE_DIR=/var/cache/edgeward edgeward check --json --config /etc/edgeward/edgeward.toml |
    python3 -c 'import json,sys; print(next(m["sha256"] for m in json.load(sys.stdin)["modules"] if m["source"] == "builtin:sign"))')"
[ "$(sha256sum /usr/lib/edgeward/modules/sign.wasm | cut -d' ' -f1)" = "$builtin_sign" ] ||
    fail "/usr/lib/edgeward/modules/sign.wasm differs from builtin:sign"
edgeward module inspect /usr/lib/edgeward/modules/alarm.wasm >/dev/null || fail "module inspect of a packaged rule failed"

step "systemd-analyze verify (the installed unit)"
verify="$(systemd-analyze verify /lib/systemd/system/edgeward.service 2>&1)" || {
    echo "$verify" >&2
    fail "systemd-analyze verify failed"
}
# It also reports problems of other units it loads; only ours matter.
if grep -i 'edgeward' <<<"$verify"; then fail "systemd-analyze verify complained about edgeward.service"; fi

step "upgrade over an edited configuration"
echo '# edited after installation' >>/etc/edgeward/edgeward.toml
sed -i 's/^id = "edgeward"$/id = "upgrade-test-gw"/' /etc/edgeward/edgeward.toml
apt_install "$newer"
[ "$(dpkg-query -W -f '${Version}' edgeward)" = "$upgrade_version-1" ] ||
    [ "$(dpkg-query -W -f '${Version}' edgeward)" = "$upgrade_version" ] || fail "the upgrade did not install"
grep -qx 'id = "upgrade-test-gw"' /etc/edgeward/edgeward.toml || fail "the upgrade replaced the edited configuration"
[ ! -e /etc/edgeward/edgeward.toml.dpkg-new ] || fail "the upgrade left a .dpkg-new configuration"
[ "$(sha256sum "$key")" = "$key_sum" ] || fail "the upgrade changed the gateway key"
[ "$(owner_mode "$key")" = "edgeward:edgeward 600" ] || fail "after the upgrade $key is $(owner_mode "$key")"
edgeward check --config /etc/edgeward/edgeward.toml >/dev/null || fail "the edited configuration does not check after the upgrade"

step "remove keeps the state"
DEBIAN_FRONTEND=noninteractive apt-get remove -y -qq edgeward </dev/null
[ ! -e /usr/bin/edgeward ] || fail "remove left /usr/bin/edgeward"
[ "$(sha256sum "$key")" = "$key_sum" ] || fail "remove changed or deleted the gateway key"
[ -f /etc/edgeward/edgeward.toml ] || fail "remove deleted the configuration"

step "purge deletes it"
dpkg --purge edgeward
[ ! -e /var/lib/edgeward ] || fail "purge left /var/lib/edgeward"
[ ! -e /var/cache/edgeward ] || fail "purge left /var/cache/edgeward"
[ ! -e /etc/edgeward ] || fail "purge left /etc/edgeward"
trap - EXIT
rm -rf "$out"
echo "packaging test passed" >&2

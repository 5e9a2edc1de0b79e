#!/usr/bin/env bash
# Installs what the real-kernel tests need (agent/tests/interop.rs): iproute2 (`ip netns`,
# veth), wireguard-tools (`wg`) and, where the kernel cannot make WireGuard links, the
# userspace WireGuard `boringtun-cli`. Idempotent: installs only what is missing, and says
# what it does. Needs root for apt-get; the boringtun-cli step needs cargo.
#
#   scripts/setup.sh            everything
#   scripts/setup.sh --no-userspace   skip boringtun-cli (kernel WireGuard only)
set -euo pipefail

userspace=1
for arg in "$@"; do
    case "$arg" in
        --no-userspace) userspace=0 ;;
        -h | --help)
            sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "setup.sh: unknown argument $arg" >&2
            exit 2
            ;;
    esac
done

say() { echo "setup.sh: $*"; }

missing=()
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v wg >/dev/null 2>&1 || missing+=(wireguard-tools)
if ((${#missing[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        say "missing ${missing[*]}, and installing needs root" >&2
        exit 1
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        say "missing ${missing[*]}, and there is no apt-get here" >&2
        exit 1
    fi
    say "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    say "apt-get install -y --no-install-recommends ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
    say "ip and wg are installed"
fi

# Can the kernel make a WireGuard link? Asked inside a scratch namespace, so the host's
# links are never touched.
kernel_wireguard() {
    local ns="jbsetup-$$"
    ip netns add "$ns" 2>/dev/null || return 1
    local ok=1
    ip -n "$ns" link add wg0 type wireguard 2>/dev/null && ok=0
    ip netns del "$ns" 2>/dev/null || true
    return $ok
}

if kernel_wireguard; then
    say "the kernel has WireGuard"
elif command -v boringtun-cli >/dev/null 2>&1 || [[ -x "${CARGO_HOME:-$HOME/.cargo}/bin/boringtun-cli" ]]; then
    say "no kernel WireGuard; boringtun-cli is installed"
elif ((userspace == 0)); then
    say "no kernel WireGuard and no boringtun-cli (--no-userspace: not installing it)"
elif command -v cargo >/dev/null 2>&1; then
    say "no kernel WireGuard: cargo install --locked boringtun-cli (a few minutes)"
    cargo install --locked --quiet boringtun-cli
else
    say "no kernel WireGuard, no boringtun-cli and no cargo to install it" >&2
    exit 1
fi

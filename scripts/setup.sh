#!/usr/bin/env bash
# Installs what the real-kernel tests need (agent/tests/interop.rs): iproute2 (`ip netns`,
# veth), wireguard-tools (`wg`) and, where the kernel cannot make WireGuard links, the
# userspace WireGuard `boringtun-cli`. Idempotent: installs only what is missing, and says
# what it does. Needs root for apt-get; the boringtun-cli step needs cargo.
#
#   scripts/setup.sh            everything for the interop test
#   scripts/setup.sh --no-userspace   skip boringtun-cli (kernel WireGuard only)
#   scripts/setup.sh snmp       only net-snmp's snmpd and snmp tools (controller/tests/snmp.rs)
#   scripts/setup.sh promtool   only promtool (Debian package prometheus)
#   scripts/setup.sh tmux       only tmux (netlab/tests/dashboard.rs drives the dashboard in it)
#
# Tests may run this concurrently: apt-get runs under an flock on /tmp/jinbao-setup.lock
# (JINBAO_SETUP_LOCK overrides). Services a package would start (snmpd, prometheus) are
# kept from starting, or stopped again, so nothing is left listening.
set -euo pipefail

userspace=1
components=()
for arg in "$@"; do
    case "$arg" in
        --no-userspace) userspace=0 ;;
        snmp | promtool | tmux) components+=("$arg") ;;
        -h | --help)
            sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "setup.sh: unknown argument $arg" >&2
            exit 2
            ;;
    esac
done

say() { echo "setup.sh: $*"; }

lock_file=${JINBAO_SETUP_LOCK:-/tmp/jinbao-setup.lock}
made_policy=""

# While we install, /usr/sbin/policy-rc.d answers 101 ("action forbidden"), so neither
# invoke-rc.d nor deb-systemd-invoke starts a packaged service. Only a file we made is
# removed again.
forbid_service_starts() {
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\n# made by jinbao scripts/setup.sh while it runs apt-get\nexit 101\n' \
            >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        made_policy=/usr/sbin/policy-rc.d
    fi
}

allow_service_starts() {
    if [[ -n "$made_policy" ]]; then
        rm -f "$made_policy"
        made_policy=""
    fi
}
trap allow_service_starts EXIT

# can_install PACKAGE...: fails, saying why, when apt-get cannot be run here.
can_install() {
    if [[ $(id -u) -ne 0 ]]; then
        say "missing $*, and installing needs root" >&2
        return 1
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        say "missing $*, and there is no apt-get here" >&2
        return 1
    fi
}

# lock / unlock: one setup.sh at a time runs apt-get (a second one would fail on dpkg's
# lock instead of waiting).
lock() {
    exec 9>"$lock_file"
    flock 9
}

unlock() {
    flock -u 9
    exec 9>&-
}

# apt_install PACKAGE...: apt-get update and install; call it holding the lock.
apt_install() {
    forbid_service_starts
    say "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    say "apt-get install -y --no-install-recommends $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
    allow_service_starts
}

# stop_service NAME: stops a service the install started anyway (a policy-rc.d of someone
# else's that allows starts), through its service manager, never by process name.
stop_service() {
    local name=$1
    if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1; then
        if systemctl is-active --quiet "$name" 2>/dev/null; then
            say "stopping the $name service the package started"
            systemctl stop "$name" || true
        fi
    elif [[ -x "/etc/init.d/$name" && -s "/run/$name.pid" ]]; then
        say "stopping the $name service the package started"
        "/etc/init.d/$name" stop || true
    fi
}

# ensure COMMAND SERVICE PACKAGE...: installs PACKAGE... unless COMMAND exists (checked
# again under the lock, in case a concurrent run installed it meanwhile).
ensure() {
    local command=$1 service=$2
    shift 2
    if has_command "$command"; then
        say "$command is installed"
        return 0
    fi
    can_install "$@" || return 1
    lock
    if has_command "$command"; then
        unlock
        say "$command is installed"
        return 0
    fi
    apt_install "$@"
    if [[ -n "$service" ]]; then
        stop_service "$service"
    fi
    unlock
    if ! has_command "$command"; then
        say "installed $*, but there is still no $command" >&2
        return 1
    fi
}

# Also looks in the sbin directories, which are not on every user's PATH (snmpd).
has_command() {
    command -v "$1" >/dev/null 2>&1 || [[ -x "/usr/sbin/$1" || -x "/usr/local/sbin/$1" ]]
}

if ((${#components[@]})); then
    for component in "${components[@]}"; do
        case "$component" in
            snmp)
                ensure snmpd snmpd snmpd snmp
                ensure snmpget "" snmp
                ;;
            promtool) ensure promtool prometheus prometheus ;;
            tmux) ensure tmux "" tmux ;;
        esac
    done
    exit 0
fi

missing=()
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v wg >/dev/null 2>&1 || missing+=(wireguard-tools)
if ((${#missing[@]})); then
    can_install "${missing[@]}" || exit 1
    lock
    apt_install "${missing[@]}"
    unlock
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

#!/usr/bin/env bash
# Installs what `bench` needs on a Debian (bookworm) machine, as root: Debian's
# Prosody 0.12, ejabberd 23.01, tsung and Janus 1.1 (for `bench --media`),
# without leaving their system services running (the benchmark starts its own
# instances on loopback ports), and the release builds of lilt and bench.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
for pkg in prosody ejabberd tsung janus iproute2 util-linux; do
    dpkg-query -W -f '${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    # Keep the packages' services from starting during installation.
    had_policy=0
    [ -e /usr/sbin/policy-rc.d ] && had_policy=1 && cp /usr/sbin/policy-rc.d /tmp/policy-rc.d.bench
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    if [ $had_policy = 1 ]; then mv /tmp/policy-rc.d.bench /usr/sbin/policy-rc.d; else rm -f /usr/sbin/policy-rc.d; fi
fi
# Services started some other way (systemd) would share the cores.
for svc in prosody ejabberd janus; do
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
        systemctl stop "$svc"
    fi
done

cargo build --release -p lilt -p bench
echo "ready: target/release/bench --help"

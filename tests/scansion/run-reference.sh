#!/usr/bin/env bash
# Proves the scansion runner faithful: runs Prosody's own 0.12 scansion scripts against
# Debian's Prosody 0.12 (../shared/tools/reference-prosody), configured from the scripts'
# own prosody.cfg.lua with loopback-only listeners on free ports and all state inside a
# temporary directory.
#
#   tests/scansion/run-reference.sh [SET] [RUNNER ARGS...]
#
# SET is the script set under ../shared/conformance/prosody-scansion (default 0.12), or
# the path of a directory holding .scs scripts and their prosody.cfg.lua (e.g. an edited
# copy). RUNNER ARGS go to scansion-runner (e.g. --only basic -v). For a named set, the
# reference run's expected failures are read from conformance/reference-SET.txt.
# Exit status: the runner's. KEEP=1 keeps the temporary directory (config, prosody.log,
# debug.log) for inspection; RUNNER=path uses that scansion-runner binary instead of
# building it; REGISTER="user@host=password ..." creates those accounts with prosodyctl
# before the start (for configs with real authentication and storage).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
shared="$root/../shared"
if [ ! -d "$shared/conformance/prosody-scansion" ]; then
    echo "skipping: ../shared not found"
    exit 0
fi
shared=$(cd "$shared" && pwd)

set_name=${1:-0.12}
[ $# -gt 0 ] && shift
case "$set_name" in
*/*) scripts=$(cd "$set_name" && pwd); set_name="" ;;
*) scripts="$shared/conformance/prosody-scansion/$set_name" ;;
esac
[ -f "$scripts/prosody.cfg.lua" ] || { echo "no prosody.cfg.lua in $scripts" >&2; exit 2; }

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

dir=$(mktemp -d /tmp/scansion-reference.XXXXXX)
chmod 755 "$dir"
pid=""
cleanup() {
    if [ -n "$pid" ]; then "$shared/tools/reference-prosody" stop "$pid" || true; fi
    if [ "${KEEP:-0}" = 1 ]; then echo "kept $dir" >&2; else rm -rf "$dir"; fi
}
trap cleanup EXIT

c2s_port=$(free_port)
http_port=$(free_port)
mkdir -p "$dir/data"
cp "$scripts"/*.txt "$dir/" 2>/dev/null || true

# The script set's config, with local overrides inserted just before the first host
# section so that they are global and come after every global setting of the original.
overrides=$(cat <<EOF
-- Added by run-reference.sh: loopback only, free ports, all state in this directory.
interfaces = { "127.0.0.1" }
local_interfaces = { "127.0.0.1" }
c2s_ports = { $c2s_port }
c2s_interfaces = { "127.0.0.1" }
c2s_direct_tls_ports = { }
http_ports = { $http_port }
http_interfaces = { "127.0.0.1" }
https_ports = { }
https_interfaces = { "127.0.0.1" }
data_path = "$dir/data"
pidfile = "$dir/prosody.pid"
certificates = "$dir"
daemonize = false
log = {
	{ levels = { min = "debug" }, to = "file", filename = "$dir/debug.log" };
	{ levels = { min = "warn" }, to = "console" };
}

EOF
)
awk -v overrides="$overrides" '
    !done && /^(VirtualHost|Component|Host) / { print overrides; done = 1 }
    { print }
' "$scripts/prosody.cfg.lua" >"$dir/prosody.cfg.lua"

for account in ${REGISTER:-}; do
    jid=${account%%=*}
    "$shared/tools/reference-prosody" ctl "$dir" register "${jid%@*}" "${jid#*@}" "${account#*=}" >/dev/null
done
pid=$("$shared/tools/reference-prosody" start "$dir")
for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$c2s_port") 2>/dev/null; then break; fi
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "prosody exited during start-up:" >&2
        cat "$dir/prosody.log" >&2
        exit 2
    fi
    sleep 0.1
done

expected=()
if [ -n "$set_name" ] && [ -f "$root/conformance/reference-$set_name.txt" ]; then
    expected=(--expected-failures "$root/conformance/reference-$set_name.txt")
fi

echo "Prosody $(dpkg-query -W -f '${Version}' prosody 2>/dev/null || echo "?") on 127.0.0.1:$c2s_port, scripts: $scripts"
runner=${RUNNER:-}
if [ -z "$runner" ]; then
    (cd "$root" && cargo build -q -p scansion-runner)
    runner="${CARGO_TARGET_DIR:-$root/target}/debug/scansion-runner"
fi
status=0
"$runner" --server "127.0.0.1:$c2s_port" "${expected[@]}" "$@" "$scripts" || status=$?
exit $status

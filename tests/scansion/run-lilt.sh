#!/usr/bin/env bash
# Runs Prosody's 13.0 scansion scripts against lilt: lilt's conformance scoreboard.
#
#   tests/scansion/run-lilt.sh [SET] [RUNNER ARGS...]
#
# Builds lilt and the runner, starts lilt on loopback with conformance/lilt.cfg.lua (ports
# and paths filled in, all state in a temporary directory) and its clock fixed at the
# scripts' instant (--fixed-time 1219439344), then runs scansion-runner over
# ../shared/conformance/prosody-scansion/SET (default 13.0) with
# conformance/expected-failures-SET.txt. SET may also be a directory of .scs scripts
# (e.g. conformance/scripts, lilt's own). RUNNER ARGS go to scansion-runner (--only NAME,
# -v, ...). Exit status: the runner's (non-zero on an unexpected failure or pass).
# KEEP=1 keeps the temporary directory; LILT=path / RUNNER=path use prebuilt binaries.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
shared="$root/../shared"

set_name=${1:-13.0}
[ $# -gt 0 ] && shift
case "$set_name" in
*/*) scripts=$(cd "$set_name" && pwd); list_name=$(basename "$scripts") ;;
*)
    if [ ! -d "$shared/conformance/prosody-scansion" ]; then
        echo "skipping: ../shared not found"
        exit 0
    fi
    scripts=$(cd "$shared/conformance/prosody-scansion/$set_name" && pwd)
    list_name=$set_name
    ;;
esac

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

target="${CARGO_TARGET_DIR:-$root/target}"
lilt=${LILT:-}
runner=${RUNNER:-}
if [ -z "$lilt" ] || [ -z "$runner" ]; then
    (cd "$root" && cargo build -q -p lilt -p scansion-runner)
fi
lilt=${lilt:-$target/debug/lilt}
runner=${runner:-$target/debug/scansion-runner}

dir=$(mktemp -d /tmp/scansion-lilt.XXXXXX)
pid=""
cleanup() {
    if [ -n "$pid" ]; then
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    if declare -F stop_pg >/dev/null; then stop_pg; fi
    if [ "${KEEP:-0}" = 1 ]; then echo "kept $dir" >&2; else rm -rf "$dir"; fi
}
trap cleanup EXIT

c2s_port=$(free_port)
http_port=$(free_port)
mkdir -p "$dir/data"
sed -e "s|@C2S_PORT@|$c2s_port|g" -e "s|@HTTP_PORT@|$http_port|g" -e "s|@DIR@|$dir|g" \
    "$root/conformance/lilt.cfg.lua" >"$dir/lilt.cfg.lua"

# LILT_STORAGE=sql: every store in SQLite ($dir/data/prosody.sqlite); LILT_STORAGE=postgresql:
# in a throw-away PostgreSQL cluster started here (Debian's postgresql, as user postgres
# when root). Default: the config's memory storage.
sql_option=""
case "${LILT_STORAGE:-}" in
"") ;;
sql | sqlite) sql_option='{ driver = "SQLite3", database = "prosody.sqlite" }' ;;
postgresql)
    pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
    [ -n "$pgbin" ] || { echo "LILT_STORAGE=postgresql: PostgreSQL is not installed (apt-get install postgresql)" >&2; exit 2; }
    as_pg=()
    if [ "$(id -u)" = 0 ]; then as_pg=(runuser -u postgres --); chmod 777 "$dir"; mkdir -p "$dir/pg"; chown postgres "$dir/pg"; else mkdir -p "$dir/pg"; fi
    "${as_pg[@]}" "$pgbin/initdb" -A trust -U postgres --no-sync -E UTF8 -D "$dir/pg/data" >/dev/null
    pg_port=$(free_port)
    "${as_pg[@]}" "$pgbin/pg_ctl" -D "$dir/pg/data" -l "$dir/pg/log" -w \
        -o "-c listen_addresses=127.0.0.1 -p $pg_port -k $dir/pg" start >/dev/null
    stop_pg() { "${as_pg[@]}" "$pgbin/pg_ctl" -D "$dir/pg/data" -m immediate stop >/dev/null 2>&1 || true; }
    "${as_pg[@]}" "$pgbin/psql" -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres -qc 'CREATE DATABASE prosody' >/dev/null
    sql_option="{ driver = \"PostgreSQL\", database = \"prosody\", username = \"postgres\", host = \"127.0.0.1\", port = $pg_port }"
    ;;
*) echo "LILT_STORAGE must be sql or postgresql, not $LILT_STORAGE" >&2; exit 2 ;;
esac
if [ -n "$sql_option" ]; then
    sed -i -e "s|^storage = \"memory\"|storage = \"sql\"\nsql = $sql_option|" \
        -e "s|^\(\s*\)storage = \"memory\"|\1storage = \"sql\"|" "$dir/lilt.cfg.lua"
    echo "storage: sql ($sql_option)"
fi

"$lilt" --config "$dir/lilt.cfg.lua" --fixed-time 1219439344 >"$dir/lilt.log" 2>&1 &
pid=$!
for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$c2s_port") 2>/dev/null; then break; fi
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "lilt exited during start-up:" >&2
        cat "$dir/lilt.log" >&2
        pid=""
        exit 2
    fi
    sleep 0.1
done

expected=()
if [ -f "$root/conformance/expected-failures-$list_name.txt" ]; then
    expected=(--expected-failures "$root/conformance/expected-failures-$list_name.txt")
fi

echo "lilt on 127.0.0.1:$c2s_port, scripts: $scripts"
status=0
"$runner" --server "127.0.0.1:$c2s_port" "${expected[@]}" "$@" "$scripts" || status=$?
exit $status

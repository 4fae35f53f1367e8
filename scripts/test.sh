#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls this). From any directory:
#
#   scripts/test.sh              every step, in order, stopping at the first failure
#   scripts/test.sh STEP...      only these steps: fmt clippy test build fuzz pytest scansion js
#
# Steps: cargo fmt --check; cargo clippy --workspace --all-targets -D warnings;
# cargo test --workspace; cargo build (the lilt binary); fuzz (each fuzz target of fuzz/ a few
# seconds on its corpus, scripts/fuzz.sh --ci); the pytest suite in tests/python
# (slixmpp clients against target/debug/lilt, plus the differential tests against
# Debian's Prosody when ../shared exists); tests/scansion/run-lilt.sh when present (on
# memory storage, then on sql with SQLite and with PostgreSQL).
# Then tests/js (node --test): BOSH and WebSocket with strophe.js, @xmpp/client and
# headless Chromium (npm ci; Debian's chromium installed when root).
#
# Installs what is missing: a venv at .venv with tests/python/requirements.txt (pip),
# and Debian's prosody through ../shared/tools/reference-prosody (apt) when ../shared
# exists, and slapd, ldap-utils, sasl2-bin and lua-ldap (apt, as root) for the LDAP tests.
# Environment: PYTEST_ARGS (extra pytest arguments, e.g. "-x -k auth").
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root" || exit 1
shared="$root/../shared"
venv="$root/.venv"
requirements="$root/tests/python/requirements.txt"

all_steps=(fmt clippy test build fuzz pytest scansion js)
steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=("${all_steps[@]}")

# The suite builds once, so incremental-compilation caches would only take disk
# space (they double the debug build's ~3 GB); CARGO_INCREMENTAL=1 keeps them.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
# What a cold run needs on the disk holding the target directory: the debug and
# fuzz builds, Debian's packages (Chromium, Prosody, ejabberd, PostgreSQL), npm
# and pip (measured from a clean checkout: target/ 4.6 GB, the rest about 1.5 GB).
disk_needed_gb=8

suite_start=$(date +%s)
summary=()

section() {
    printf '\n==================== %s ====================\n' "$*"
}

fail() {
    echo "scripts/test.sh: $*" >&2
    print_summary
    echo "FAILED"
    exit 1
}

print_summary() {
    section "summary ($(( $(date +%s) - suite_start ))s)"
    local line
    for line in "${summary[@]}"; do echo "  $line"; done
}

# run_step NAME COMMAND...: a section header, the command, its time; stop on failure.
run_step() {
    local name=$1; shift
    section "$name"
    echo "+ $*"
    local start=$SECONDS
    "$@"
    local status=$?
    local took=$(( SECONDS - start ))
    if [ $status -ne 0 ]; then
        disk_full_hint
        summary+=("$name: FAILED (exit $status, ${took}s)")
        fail "step '$name' failed with exit status $status"
    fi
    summary+=("$name: ok (${took}s)")
}

# Free space, in GiB (rounded down), on the disk holding the target directory.
free_gb() {
    mkdir -p "$target_dir" 2>/dev/null
    df -Pk "$target_dir" 2>/dev/null | awk 'NR == 2 { print int($4 / 1048576) }'
}

# Before the first step: says plainly when the disk is too small for a cold run
# (a full disk otherwise shows up as a linker killed by SIGBUS, "Bus error").
check_disk() {
    local free
    free=$(free_gb)
    [ -n "$free" ] || return 0
    if [ "$free" -lt "$disk_needed_gb" ]; then
        echo "scripts/test.sh: warning: only ${free} GiB free on the disk holding $target_dir;" \
            "a run from a clean checkout needs about ${disk_needed_gb} GiB (less when target/ is already built)" >&2
    fi
}

# After a failed step: a nearly full disk is the likely cause; say so.
disk_full_hint() {
    local free
    free=$(free_gb)
    if [ -n "$free" ] && [ "$free" -lt 1 ]; then
        echo "scripts/test.sh: the disk holding $target_dir is (nearly) full: less than 1 GiB free;" \
            "a linker 'Bus error' or 'No space left on device' above comes from that" >&2
    fi
}

ensure_cargo_tool() {
    # rustfmt and clippy come with the toolchain (rustup components).
    if ! cargo "$1" --version >/dev/null 2>&1; then
        if command -v rustup >/dev/null 2>&1; then
            rustup component add "$2" || fail "cargo $1 is missing and rustup could not add $2"
        else
            fail "cargo $1 is missing (install the $2 component of the Rust toolchain)"
        fi
    fi
}

ensure_venv() {
    section "python environment (.venv)"
    if [ ! -x "$venv/bin/python" ]; then
        if ! python3 -m venv "$venv"; then
            # Debian splits venv out of python3.
            if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
                rm -rf "$venv"
                apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv \
                    || fail "could not install python3-venv"
                python3 -m venv "$venv" || fail "could not create $venv"
            else
                fail "python3 -m venv failed; install python3-venv"
            fi
        fi
    fi
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$requirements" \
        || fail "pip could not install $requirements"
    "$venv/bin/python" --version
    "$venv/bin/python" -m pip list --disable-pip-version-check 2>/dev/null \
        | grep -iE '^(slixmpp|pytest|cryptography|pyopenssl) ' | sed 's/^/  /'
}

ensure_reference_prosody() {
    # The differential tests need Debian's Prosody; reference-prosody installs it (apt)
    # on first use. Do that here, under its own header, rather than inside a test.
    [ -f "$shared/tools/reference-prosody" ] || { echo "skipping: ../shared not found"; return 0; }
    [ "$(id -u)" = 0 ] || { echo "not root: the Prosody differential tests will be skipped"; return 0; }
    command -v prosody >/dev/null 2>&1 && { echo "prosody: $(dpkg-query -W -f '${Version}' prosody 2>/dev/null || echo installed)"; return 0; }
    section "reference prosody (Debian's, through ../shared/tools/reference-prosody)"
    local dir
    dir=$(mktemp -d /tmp/lilt-prosody-install.XXXXXX)
    chmod 755 "$dir"
    mkdir -p "$dir/data"
    cat >"$dir/prosody.cfg.lua" <<CFG
interfaces = { "127.0.0.1" }
data_path = "$dir/data"
pidfile = "$dir/prosody.pid"
CFG
    bash "$shared/tools/reference-prosody" ctl "$dir" about >/dev/null 2>&1
    rm -rf "$dir"
    command -v prosody >/dev/null 2>&1 || fail "reference-prosody could not install prosody"
    echo "prosody: $(dpkg-query -W -f '${Version}' prosody 2>/dev/null || echo installed)"
}

ensure_ldap_servers() {
    # tests/python/test_ldap.py runs Debian's slapd and saslauthd itself, on 127.0.0.1
    # with throw-away configs; the packages' own services are stopped and disabled.
    # lua-ldap is what Prosody's mod_auth_ldap needs (the differential LDAP test).
    if [ -x /usr/sbin/slapd ] && [ -x /usr/sbin/saslauthd ] && command -v ldapadd >/dev/null 2>&1 \
        && ls /usr/lib/x86_64-linux-gnu/lua/*/lualdap.so >/dev/null 2>&1; then
        return 0
    fi
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "slapd/ldap-utils/sasl2-bin missing and this is not root: the LDAP tests will be skipped"
        return 0
    fi
    section "OpenLDAP and saslauthd for the LDAP tests (apt: slapd ldap-utils sasl2-bin lua-ldap)"
    echo "slapd slapd/no_configuration boolean true" | debconf-set-selections
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends slapd ldap-utils sasl2-bin lua-ldap) >/dev/null \
        || { echo "could not install slapd: the LDAP tests will be skipped"; return 0; }
    for service in slapd saslauthd; do
        if command -v systemctl >/dev/null 2>&1; then systemctl disable --now "$service" >/dev/null 2>&1; fi
        service "$service" stop >/dev/null 2>&1 || true
    done
    echo "slapd: $(dpkg-query -W -f '${Version}' slapd 2>/dev/null || echo installed)"
}

ensure_prosody_modules() {
    # tests/python/test_logging.py compares lilt's log lines with Prosody 0.12's
    # mod_log_auth (Debian's prosody-modules); it skips without the package.
    if [ -e /usr/lib/prosody/modules/mod_log_auth.lua ] \
        || [ -e /usr/lib/prosody/modules/mod_log_auth/mod_log_auth.lua ]; then
        return 0
    fi
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "prosody-modules missing and this is not root: the log comparison with Prosody will be skipped"
        return 0
    fi
    section "Prosody's community modules for the log comparison (apt: prosody-modules)"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends prosody-modules) >/dev/null \
        || echo "could not install prosody-modules: the log comparison with Prosody will be skipped"
}

ensure_fail2ban() {
    # tests/python/test_logging.py runs fail2ban-regex with mod_log_auth's filter
    # over lilt's and Prosody's log files; it skips without the package.
    command -v fail2ban-regex >/dev/null 2>&1 && return 0
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "fail2ban missing and this is not root: the fail2ban filter check will be skipped"
        return 0
    fi
    section "fail2ban, for its filter check on the log files (apt: fail2ban)"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends fail2ban) >/dev/null \
        || echo "could not install fail2ban: the fail2ban filter check will be skipped"
    # Only its fail2ban-regex tool is used: no daemon.
    service fail2ban stop >/dev/null 2>&1 || true
}

ensure_postgresql() {
    # The sql storage tests (storage-sql's unit tests, tests/python/test_sql_storage.py,
    # test_storage_crash.py) start throw-away PostgreSQL clusters themselves (initdb in
    # a temporary directory, on 127.0.0.1); Prosody needs lua-dbi-postgresql and
    # lua-dbi-sqlite3 for the differential cases. The package's own cluster is stopped.
    if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
        && ls /usr/lib/x86_64-linux-gnu/lua/*/dbd/postgresql.so >/dev/null 2>&1 \
        && ls /usr/lib/x86_64-linux-gnu/lua/*/dbd/sqlite3.so >/dev/null 2>&1; then
        return 0
    fi
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "postgresql/lua-dbi missing and this is not root: the PostgreSQL tests will be skipped"
        return 0
    fi
    section "PostgreSQL and Prosody's SQL drivers (apt: postgresql lua-dbi-postgresql lua-dbi-sqlite3)"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends postgresql lua-dbi-postgresql lua-dbi-sqlite3) >/dev/null \
        || { echo "could not install postgresql: the PostgreSQL tests will be skipped"; return 0; }
    if command -v systemctl >/dev/null 2>&1; then systemctl disable --now postgresql >/dev/null 2>&1; fi
    service postgresql stop >/dev/null 2>&1 || true
}

ensure_go_client() {
    # tests/python/test_go_client.py builds tests/go-client (go-xmpp, from the Go
    # module proxy) with its module and build caches under the target directory;
    # fetch the modules here, under their own header. Without Go the test skips.
    command -v go >/dev/null 2>&1 || { echo "go not installed: the go-xmpp client test will be skipped"; return 0; }
    section "go client modules (tests/go-client: go mod download)"
    local go_dir="$target_dir/go"
    (cd "$root/tests/go-client" && GOPATH="$go_dir" GOMODCACHE="$go_dir/mod" GOCACHE="$go_dir/cache" \
        GOTOOLCHAIN=local GOFLAGS=-mod=mod timeout 600 go mod download) \
        || echo "go mod download failed: test_go_client.py will report it"
    go version
}

pytest_step() {
    ensure_venv
    ensure_go_client
    ensure_reference_prosody
    ensure_ldap_servers
    ensure_postgresql
    ensure_prosody_modules
    ensure_fail2ban
    section "pytest: tests/python against target/debug/lilt"
    local lilt="$target_dir/debug/lilt"
    [ -x "$lilt" ] || { echo "no lilt binary at $lilt (run the build step)"; return 1; }
    # shellcheck disable=SC2086 # PYTEST_ARGS is split on purpose
    LILT_BIN="$lilt" timeout 2400 "$venv/bin/python" -m pytest "$root/tests/python" \
        -p no:cacheprovider ${PYTEST_ARGS:-}
    local status=$?
    if [ $status -eq 5 ]; then
        echo "pytest collected no test: the suite is broken"
    fi
    return $status
}

# tests/js: BOSH and WebSocket with real JavaScript clients (strophe.js and
# @xmpp/client in Node, strophe.js over BOSH in Debian's headless Chromium).
# Installs the npm packages from package-lock.json and, as root, Debian's
# chromium when missing (without it the browser tests skip themselves).
js_step() {
    local dir="$root/tests/js"
    command -v node >/dev/null 2>&1 || { echo "node is missing (Node.js 20 or later)"; return 1; }
    if [ ! -f "$dir/node_modules/.package-lock.json" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
        (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) || { echo "npm ci failed in tests/js"; return 1; }
    fi
    if ! command -v chromium >/dev/null 2>&1; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
            echo "installing Debian's chromium for the BOSH browser tests"
            (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null \
                || echo "could not install chromium: the browser tests will be skipped"
        else
            echo "chromium is missing and this is not root: the browser tests will be skipped"
        fi
    fi
    local lilt="$target_dir/debug/lilt"
    [ -x "$lilt" ] || { echo "no lilt binary at $lilt (run the build step)"; return 1; }
    (cd "$dir" && LILT_BIN="$lilt" timeout 900 node --test --test-concurrency=1 --test-force-exit --test-timeout=180000)
}

scansion_step() {
    local script="$root/tests/scansion/run-lilt.sh"
    if [ ! -f "$script" ]; then
        echo "tests/scansion/run-lilt.sh not present: nothing to run"
        return 0
    fi
    # Prosody's 13.0 scripts (with the expected-failures list), then lilt's own, on the
    # config's memory storage; then both again with storage = "sql" on SQLite and on
    # PostgreSQL (a throw-away cluster run-lilt.sh starts on 127.0.0.1), which must pass
    # the same scripts (issue 20).
    bash "$script" && bash "$script" "$root/conformance/scripts" || return 1
    local target="$target_dir"
    export LILT="$target/debug/lilt" RUNNER="$target/debug/scansion-runner"
    section "scansion conformance, storage = sql on SQLite"
    LILT_STORAGE=sql bash "$script" && LILT_STORAGE=sql bash "$script" "$root/conformance/scripts" \
        || return 1
    section "scansion conformance, storage = sql on PostgreSQL"
    ensure_postgresql
    if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
        echo "SKIPPED: PostgreSQL is not installed (apt-get install postgresql), so the scansion"
        echo "scripts did not run on PostgreSQL"
        return 0
    fi
    LILT_STORAGE=postgresql bash "$script" \
        && LILT_STORAGE=postgresql bash "$script" "$root/conformance/scripts"
}

ensure_media_tools() {
    # The recorder links libopus (built from source with cmake when the system
    # has none) and its tests check the files it writes with ffprobe/ffmpeg
    # (skipped, saying so, without them).
    if command -v ffprobe >/dev/null 2>&1 && [ -e /usr/include/opus/opus.h ]; then
        return 0
    fi
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "ffmpeg/libopus-dev missing and this is not root: the recording checks will be skipped"
        return 0
    fi
    section "ffmpeg and libopus for the recorder's tests (apt: ffmpeg libopus-dev)"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends ffmpeg libopus-dev) >/dev/null \
        || echo "could not install ffmpeg/libopus-dev: the recording checks will be skipped"
}

ensure_s2s_tools() {
    # tests/s2s.rs federates lilt with lilt, with Debian's Prosody and with
    # Debian's ejabberd inside a user+network+mount namespace (unshare from
    # util-linux, ip from iproute2); each part skips, saying so, without them.
    # ejabberd's own service is stopped and disabled (the test runs its own).
    if command -v prosody >/dev/null 2>&1 && command -v ejabberdctl >/dev/null 2>&1 \
        && command -v ip >/dev/null 2>&1 && command -v unshare >/dev/null 2>&1; then
        return 0
    fi
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "prosody/ejabberd/iproute2/util-linux missing and this is not root: the federation checks will be skipped"
        return 0
    fi
    section "prosody, ejabberd, iproute2 and util-linux for the federation tests (apt)"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends prosody ejabberd iproute2 util-linux) >/dev/null \
        || echo "could not install prosody/ejabberd/iproute2: the federation checks will be skipped"
    if command -v systemctl >/dev/null 2>&1; then systemctl disable --now ejabberd >/dev/null 2>&1; fi
    service ejabberd stop >/dev/null 2>&1 || true
}

check_disk
for step in "${steps[@]}"; do
    case "$step" in
    fmt)
        ensure_cargo_tool fmt rustfmt
        run_step "cargo fmt --check" cargo fmt --all --check
        ;;
    clippy)
        ensure_cargo_tool clippy clippy
        ensure_media_tools
        run_step "cargo clippy" cargo clippy --workspace --all-targets -- -D warnings
        ;;
    test)
        ensure_media_tools
        ensure_postgresql
        ensure_s2s_tools
        run_step "cargo test" cargo test --workspace
        ;;
    build) run_step "cargo build (lilt)" cargo build -p lilt ;;
    fuzz) run_step "fuzz (every target a few seconds on its corpus)" "$root/scripts/fuzz.sh" --ci 4 ;;
    pytest) run_step "pytest (whole-server tests)" pytest_step ;;
    scansion) run_step "scansion conformance" scansion_step ;;
    js) run_step "js (BOSH and WebSocket with strophe.js, @xmpp/client, Chromium)" js_step ;;
    *) fail "unknown step '$step' (steps: ${all_steps[*]})" ;;
    esac
done

print_summary
echo "all steps passed"

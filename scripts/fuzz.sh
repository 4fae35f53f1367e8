#!/usr/bin/env bash
# Fuzzes lilt's parsers with the harness in fuzz/ (see fuzz/README.md).
#
#   scripts/fuzz.sh TARGET|all SECONDS     each target SECONDS on its corpus
#   scripts/fuzz.sh --ci [SECONDS]         every target a few seconds (default 4),
#                                          built with the dev profile in target/
#                                          (reusing the workspace's build)
#   scripts/fuzz.sh --list                 the targets
#   scripts/fuzz.sh --replay TARGET FILE.. runs saved inputs once
#
# Corpus: fuzz/corpus/<target>/. A crash is saved in fuzz/artifacts/<target>/
# and makes the script exit 1. Targets run one after the other, each in its
# own process. The long runs use the `fuzz` profile (optimised, with debug
# assertions and overflow checks) in $CARGO_TARGET_DIR (default fuzz/target).
# Environment: FUZZ_SEED (a fixed seed), FUZZ_MAX_LEN (largest input, 4096).
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
manifest="$root/fuzz/Cargo.toml"

if ! command -v cargo >/dev/null 2>&1; then
    echo "scripts/fuzz.sh: no cargo on PATH: fuzzing skipped"
    exit 0
fi

mode=long
case "${1:-}" in
    --ci) mode=ci; shift ;;
    --list|--replay) mode=direct ;;
    ""|-h|--help)
        sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
        exit 2
        ;;
esac

if [ "$mode" = ci ]; then
    export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
    profile=(--profile dev)
    bin_dir="$CARGO_TARGET_DIR/debug"
else
    export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/fuzz/target}"
    profile=(--profile fuzz)
    bin_dir="$CARGO_TARGET_DIR/fuzz"
fi

echo "+ cargo build --manifest-path fuzz/Cargo.toml ${profile[*]} --bin run (target dir $CARGO_TARGET_DIR)"
if ! cargo build --manifest-path "$manifest" "${profile[@]}" --bin run; then
    echo "scripts/fuzz.sh: building the fuzz harness failed"
    exit 1
fi
run="$bin_dir/run"
seed=()
[ -n "${FUZZ_SEED:-}" ] && seed=(--seed "$FUZZ_SEED")
max_len=(--max-len "${FUZZ_MAX_LEN:-4096}")

case "$mode" in
    direct) exec "$run" "$@" ;;
    ci) exec "$run" all --seconds "${1:-4}" "${seed[@]}" "${max_len[@]}" ;;
esac

target=${1:?TARGET|all}
seconds=${2:?SECONDS}
exec "$run" "$target" --seconds "$seconds" "${seed[@]}" "${max_len[@]}"

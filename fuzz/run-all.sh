#!/usr/bin/env bash
# Runs every fuzz target for SECONDS seconds each (default 60), one after another, and prints
# one line per target: executions, corpus size, and whether it crashed. See docs/fuzzing.md.
#
#   fuzz/run-all.sh [SECONDS] [TARGET...]
#
# The corpus grows in $CARGO_TARGET_DIR/fuzz-corpus/TARGET (outside the repository), seeded
# from fuzz/seeds/TARGET; crashes land in fuzz/artifacts/TARGET/. Needs a nightly toolchain
# (`rustup toolchain install nightly`) and `cargo install cargo-fuzz`.
set -u
cd "$(dirname "$0")/.."
seconds="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo +nightly fuzz list)
fi
target_dir="${CARGO_TARGET_DIR:-fuzz/target}"
logs="$target_dir/fuzz-logs"
mkdir -p "$logs"
cargo +nightly fuzz build || exit 1
status=0
for t in "${targets[@]}"; do
    corpus="$target_dir/fuzz-corpus/$t"
    mkdir -p "$corpus"
    cargo +nightly fuzz run "$t" "$corpus" "fuzz/seeds/$t" -- \
        -max_total_time="$seconds" -print_final_stats=1 >"$logs/$t.log" 2>&1
    rc=$?
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$logs/$t.log" | grep -o '[0-9]*$' | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$logs/$t.log" | tail -1)
    files=$(find "$corpus" -type f | wc -l)
    if [ $rc -eq 0 ]; then
        verdict="ok"
    else
        verdict="CRASH (exit $rc): $(grep -m1 -E 'panicked at|ERROR: libFuzzer|SUMMARY' "$logs/$t.log" | head -c 200); log $logs/$t.log"
        status=1
    fi
    took=$(grep -o 'Done [0-9]* runs in [0-9]* second' "$logs/$t.log" | grep -o 'in [0-9]*' | tail -1)
    if [ -n "$took" ]; then took="$took s"; else took="before the first crash"; fi
    printf '%-20s %10s execs %s, %s, corpus %s files: %s\n' "$t" "${runs:-?}" \
        "$took" "${cov:-cov ?}" "$files" "$verdict"
done
exit $status

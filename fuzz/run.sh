#!/usr/bin/env bash
# Builds every fuzz target and runs each in turn for a bounded time; prints how many
# inputs each ran and whether it crashed, and exits non-zero if any did.
#
#   fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]     (default: 60 s, every target)
#
# Environment:
#   SANITIZER   address (default) or none: `none` runs faster, and the code under test
#               forbids `unsafe`, so what it finds there is a panic either way.
#   JOBS        parallel fuzzing processes per target (default 1: the machine is shared).
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`). On stable Rust cargo-fuzz passes -Z
# flags, so this script sets RUSTC_BOOTSTRAP=1 for its own builds. The seeds in seeds/
# are copied into corpus/ (not committed), which grows from run to run; whatever crashes
# lands in artifacts/TARGET/. Nothing here touches the network.
set -euo pipefail
cd "$(dirname "$0")"

seconds="${1:-60}"
shift || true
case "$seconds" in
    '' | *[!0-9]*) echo "usage: $0 [SECONDS_PER_TARGET] [TARGET...]" >&2; exit 2 ;;
esac
sanitizer="${SANITIZER:-address}"
jobs="${JOBS:-1}"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz is missing: cargo install cargo-fuzz" >&2
    exit 1
fi

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

echo "== build (sanitizer: $sanitizer)"
cargo fuzz build --sanitizer "$sanitizer"

mkdir -p logs
summary=()
total=0
crashed=0
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target"
    if [ -d "seeds/$target" ]; then
        cp -n seeds/"$target"/* "corpus/$target/" 2>/dev/null || true
    fi
    log="logs/$target.log"
    echo "== $target: $seconds s"
    status=0
    # -max_total_time bounds the run; -timeout turns a hang (one input over 10 s) into a
    # failure rather than a stall.
    extra=()
    if [ "$jobs" -gt 1 ]; then
        extra=(-jobs="$jobs" -workers="$jobs")
    fi
    # The sequence targets get long inputs from the start (many operations, deep states)
    # instead of libFuzzer's slowly growing length limit.
    case "$target" in
        acd | rtp) extra+=(-len_control=0) ;;
    esac
    cargo fuzz run --sanitizer "$sanitizer" "$target" "corpus/$target" -- \
        -max_total_time="$seconds" -timeout=10 -max_len=4096 -print_final_stats=1 \
        "${extra[@]}" >"$log" 2>&1 || status=$?
    # With -jobs the workers write fuzz-N.log; their stats are added up.
    logs=("$log")
    if [ "$jobs" -gt 1 ]; then
        mapfile -t logs < <(ls fuzz-*.log 2>/dev/null)
        cat "${logs[@]}" >>"$log" 2>/dev/null || true
        rm -f fuzz-*.log
    fi
    runs=0
    for file in "${logs[@]}"; do
        n=$(grep -a 'stat::number_of_executed_units' "$file" | tail -n 1 | awk '{print $2}')
        runs=$((runs + ${n:-0}))
    done
    if [ "$status" -ne 0 ] || grep -aq -e '^==[0-9]*== ERROR' -e 'panicked at' "$log"; then
        verdict="CRASHED (exit $status; see fuzz/$log and fuzz/artifacts/$target/)"
        crashed=$((crashed + 1))
        grep -a -m 3 -e 'panicked at' -e 'ERROR:' "$log" || true
    else
        verdict="no crash"
    fi
    total=$((total + runs))
    summary+=("$(printf '%-12s %14d  %s' "$target" "$runs" "$verdict")")
done

echo
echo "== summary: $seconds s per target, sanitizer $sanitizer, $(nproc) cores"
printf '%-12s %14s  %s\n' target executions result
printf '%s\n' "${summary[@]}"
printf '%-12s %14d\n' total "$total"
if [ "$crashed" -gt 0 ]; then
    echo "$crashed target(s) crashed" >&2
    exit 1
fi

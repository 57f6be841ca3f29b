#!/usr/bin/env bash
# Builds the libFuzzer targets (Fuzz/) with -sanitize=fuzzer,address into .build-fuzz and runs each
# for SECONDS (default 60) from a temporary copy of its seed corpus (Fuzz/corpus/TARGET/), so runs
# never write into the repository. Fails on the first target that crashes, leaks or times out; the
# crashing input is kept under .build-fuzz/artifacts/TARGET/.
#   scripts/fuzz.sh [SECONDS]            all targets
#   FUZZ_TARGETS="FuzzRouting" scripts/fuzz.sh 30
#   FUZZ_BUILD_ONLY=1 scripts/fuzz.sh    build only
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SECONDS_PER_TARGET="${1:-60}"
TARGETS=(${FUZZ_TARGETS:-FuzzRouting FuzzConfig FuzzClientHello FuzzPeerMetadata FuzzHTTP1})
SCRATCH=.build-fuzz
SWIFT="${SWIFT:-swift}"
FLAGS=(--scratch-path "$SCRATCH" -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library)

started=$(date +%s)
for target in "${TARGETS[@]}"; do
    echo "fuzz: building $target"
    MESHGATE_FUZZ=1 "$SWIFT" build "${FLAGS[@]}" --product "$target" 2>&1 \
        | grep -v "warning: Cannot export local symbol" || { echo "fuzz: building $target failed" >&2; exit 1; }
    [[ -x "$SCRATCH/debug/$target" ]] || { echo "fuzz: no $SCRATCH/debug/$target" >&2; exit 1; }
done
echo "fuzz: built in $(($(date +%s) - started)) s"
[[ -n "${FUZZ_BUILD_ONLY:-}" ]] && exit 0

WORK="$(mktemp -d /tmp/meshgate-fuzz.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
# Swift's own crash backtracer would compete with ASan's report; libFuzzer prints what matters.
export SWIFT_BACKTRACE=enable=no
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"
failed=()
for target in "${TARGETS[@]}"; do
    corpus="$WORK/$target"
    mkdir -p "$corpus" "$SCRATCH/artifacts/$target"
    cp Fuzz/corpus/"$target"/* "$corpus"/
    echo "fuzz: running $target for $SECONDS_PER_TARGET s ($(ls "$corpus" | wc -l) seeds)"
    if ! "$SCRATCH/debug/$target" "$corpus" -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=4096 \
        -max_len=65536 -print_final_stats=1 -artifact_prefix="$SCRATCH/artifacts/$target/" \
        >"$WORK/$target.log" 2>&1; then
        tail -n 60 "$WORK/$target.log" >&2
        echo "fuzz: $target FAILED; the input is in $SCRATCH/artifacts/$target/" >&2
        failed+=("$target")
        continue
    fi
    grep -E "^stat::number_of_executed_units|^stat::new_units_added|Done [0-9]+ runs" "$WORK/$target.log" | tr '\n' ' '
    echo
done
echo "fuzz: finished in $(($(date +%s) - started)) s"
if ((${#failed[@]})); then
    echo "fuzz: crashes in ${failed[*]}" >&2
    exit 1
fi

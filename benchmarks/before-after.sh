#!/usr/bin/env bash
# Two Meshgate binaries compared on the HTTP keep-alive scenario, runs alternating so slow drift on
# a shared machine hits both alike:
#
#   benchmarks/before-after.sh BEFORE_BIN AFTER_BIN [RUNS] [OUT_DIR]
#
# Each run is `run.sh --scenarios http --only nginx,meshgate --event-loops 1 --rounds 3`. Per run:
# the median over its rounds of Meshgate's CPU µs/req and of Meshgate ÷ nginx CPU in the same round;
# then the median over the runs of each binary, and the change from before to after.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BEFORE="$1" AFTER="$2" RUNS="${3:-4}" OUT="${4:-$HERE/out/before-after}"
mkdir -p "$OUT"
for i in $(seq 1 "$RUNS"); do
    for which in before after; do
        bin="$BEFORE"; [[ $which == after ]] && bin="$AFTER"
        "$HERE/run.sh" --scenarios http --only nginx,meshgate --event-loops 1 --rounds 3 \
            --meshgate-bin "$bin" --out "$OUT/$which-$i" >"$OUT/$which-$i.log" 2>&1
        echo "$which $i done $(date -u +%T)"
    done
done
python3 - "$OUT" <<'PY'
import glob, re, statistics as st, sys
out = sys.argv[1]
medians = {}
for which in ("before", "after"):
    runs = []
    for path in sorted(glob.glob(f"{out}/{which}-*.log")):
        text = open(path).read()
        nginx = [float(x) for x in re.findall(r"round \d+/\d+ nginx .*?([\d.]+) µs/req", text)]
        mesh = [float(x) for x in re.findall(r"round \d+/\d+ meshgate-el1 .*?([\d.]+) µs/req", text)]
        if nginx and len(nginx) == len(mesh):
            runs.append((st.median(mesh), st.median(m / n for m, n in zip(mesh, nginx))))
            print(f"{which} {path.rsplit('-', 1)[1][:-4]}: {runs[-1][0]:.1f} µs/req, {runs[-1][1]:.3f}x nginx")
    medians[which] = (st.median(r[0] for r in runs), st.median(r[1] for r in runs))
(bc, br), (ac, ar) = medians["before"], medians["after"]
print(f"median before {bc:.2f} µs/req {br:.3f}x; after {ac:.2f} µs/req {ar:.3f}x; CPU {100 * (ac / bc - 1):+.1f}%, ratio {100 * (ar / br - 1):+.1f}%")
PY

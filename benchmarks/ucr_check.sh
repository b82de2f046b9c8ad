#!/usr/bin/env bash
# The sensor classifiers on every classification set sktime bundles (UCR/UEA, real recordings), with
# default settings, as a user runs them: edge-train sensor → edge-export → edge-eval on the set's TEST
# split, beside the 1-NN Euclidean baseline. A check that the defaults were not tuned to PLAID.
# usage: benchmarks/ucr_check.sh OUT [ARCH ...]      (default archs: rocket cnn; ≈ 5 min each on 2 cores)
set -euo pipefail
OUT=${1:?usage: ucr_check.sh OUT [ARCH ...]}; shift
ARCHS=${*:-rocket cnn}
BIN=${BIN:-.venv/bin}
DATA=$("$BIN/python" -c "import os, sktime; print(os.path.join(os.path.dirname(sktime.__file__), 'datasets', 'data'))")
SETS=${SETS:-ArrowHead BasicMotions GunPoint ItalyPowerDemand JapaneseVowels OSULeaf ACSF1 PLAID}
mkdir -p "$OUT"
for arch in $ARCHS; do
    for set in $SETS; do
        run=$OUT/$arch/$set
        mkdir -p "$run"
        "$BIN/edge-train" sensor --task classify --arch "$arch" --data "$DATA/$set/${set}_TRAIN.ts" \
            --out "$run/run" --overwrite > "$run/train.log" 2>&1
        "$BIN/edge-export" "$run/run" --out "$run/art" --precision fp32 > "$run/export.log" 2>&1
        "$BIN/edge-eval" --model "$run/art/model.fp32.onnx" --data "$DATA/$set/${set}_TEST.ts" \
            --baseline-train "$DATA/$set/${set}_TRAIN.ts" --json "$run/eval.json" > "$run/eval.log" 2>&1
        echo "$arch $set done"
    done
done
"$BIN/python" - "$OUT" "$SETS" "$ARCHS" > "$OUT/report.md" <<'EOF'
import json, sys
from pathlib import Path

out, sets, archs = Path(sys.argv[1]), sys.argv[2].split(), sys.argv[3].split()
print("| set | " + " | ".join(f"{a} accuracy | {a} fp32 p50 ms" for a in archs) + " | 1-NN Euclidean |")
print("|---|" + "---:|---:|" * len(archs) + "---:|")
for name in sets:
    cells, baseline = [], None
    for arch in archs:
        run = out / arch / name
        metrics = json.loads((run / "eval.json").read_text())
        report = json.loads((run / "art" / "export_report.json").read_text())
        baseline = metrics["baseline_1nn_euclidean"]
        cells += [f"{metrics['accuracy']:.4f}", f"{report['artifacts']['fp32']['parity']['p50_ms_batch1']:.2f}"]
    print(f"| {name} | " + " | ".join(cells) + f" | {baseline:.4f} |")
EOF
cat "$OUT/report.md"

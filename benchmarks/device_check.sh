#!/usr/bin/env bash
# The GPU proof, run on a lent GPU machine (python3 there holds a CUDA build of torch) in stages that
# each fit one short call; state lives in /tmp between calls while the machine stays warm.
#
#   bash benchmarks/device_check.sh train   # install lineside, tests/gpu's training tests, demo models on CUDA
#   bash benchmarks/device_check.sh export  # export both demo models on this host's CPU (INT8 speed per its ISA)
#   bash benchmarks/device_check.sh ort     # onnxruntime-gpu from .whl/ (split in parts), CUDA provider tests,
#                                           # torch-on-GPU vs ORT CUDA bench, edge-run --device cuda on the clip
#   bash benchmarks/device_check.sh parts   # only collect the .whl/ort.part.* this call carried
#   bash benchmarks/device_check.sh gpuexport  # after the parts: onnxruntime-gpu, export with CUDA timing and the
#                                           # per-device recommendation, TensorRT refused/skipped without libnvinfer
#   bash benchmarks/device_check.sh vnni    # alone, in one call: export and bench the demo classifier and brick
#                                           # anomaly model from runs/ carried with data/demo/brick, on the host's CPU
#   bash benchmarks/device_check.sh ov      # carried .scratch/openvino*.whl and .scratch/vnni/<run>/ (made here with
#                                           # `python -m benchmarks.int8_ab runs/<run> data/demo/brick --target vnni
#                                           # --save .scratch/vnni/<run>`): ORT vs OpenVINO INT8 on the host's CPU
#   bash benchmarks/device_check.sh ovep    # carried .whl/ovep.tar.xz (onnxruntime-openvino, repacked under 64 MiB: the
#                                           # GPU/NPU plugins and duplicate .so copies dropped) and .scratch/vnni/<run>:
#                                           # ORT CPU vs ORT's OpenVINO provider (--device openvino) vs torch on the
#                                           # host's CPU, then tests/gpu's training tests (sensor and quality too)
# Every stage first copies any .whl/ort.part.* it was carried with to /tmp/ortparts: the onnxruntime-gpu wheel
# (256 MB) is larger than one call may carry (64 MiB), so it travels in parts, one per call, made here with
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --platform manylinux_2_28_x86_64 \
#       -d /tmp/whl onnxruntime-gpu==1.31.1 && split -b 61M -d -a1 /tmp/whl/onnxruntime_gpu-*.whl .whl/ort.part.
# (.whl/ ignored through .git/info/exclude). Logs and reports go to $OUT.
set -uo pipefail
stage=${1:?stage: train, export, ort, parts, gpuexport, vnni, ov or ovep}
OUT=${OUT:-/tmp/out}
W=/tmp/lineside-device
mkdir -p "$OUT" "$W" /tmp/ortparts
export PYTHONUNBUFFERED=1
cp .whl/ort.part.* /tmp/ortparts/ 2>/dev/null && ls -la /tmp/ortparts

case "$stage" in
train)
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
    grep -m1 "model name" /proc/cpuinfo; nproc
    echo "ISA: $(grep -o -w -E 'avx2|avx512f|avx512_vnni|avx_vnni|amx_int8' /proc/cpuinfo | sort -u | tr '\n' ' ')"
    python3 -c "import sys, torch, onnxruntime as o; print(sys.version.split()[0], 'torch', torch.__version__,
        torch.cuda.is_available(), 'ort', o.__version__, o.get_available_providers())"
    python3 -m pip install -q --no-deps --no-index --no-build-isolation -e . || exit 1
    python3 -m pytest tests/gpu -q -p no:logging -k trains 2>&1 | tee "$OUT/gpu_train_tests.log"
    edge-data demo --out $W/demo --surfaces brick --clip-parts 4 || exit 1
    edge-train classify --data $W/demo/brick --out $W/runs/brick --overwrite --device cuda 2>&1 | tail -3
    edge-train anomaly --data $W/demo/brick --out $W/runs/brick-anomaly --overwrite --device cuda 2>&1 | tail -3
    ;;
export)
    for run in brick brick-anomaly; do
        precisions=$([ $run = brick ] && echo fp32,int8,fp16 || echo fp32,int8)
        edge-export $W/runs/$run --out $W/art/$run --precision $precisions --threads 2 2>&1 | tail -25
        cp $W/art/$run/export_report.md "$OUT/export_report.$run.md"
        cp $W/art/$run/export_report.json "$OUT/export_report.$run.json"
    done
    ;;
ort)
    cat /tmp/ortparts/ort.part.* > /tmp/onnxruntime_gpu-1.31.1-cp312-cp312-manylinux_2_28_x86_64.whl || exit 1
    python3 -m pip uninstall -q -y onnxruntime
    python3 -m pip install -q --no-deps --no-index /tmp/onnxruntime_gpu-*.whl || exit 1
    edge-run doctor --device cuda
    python3 -m pytest tests/gpu -q -p no:logging 2>&1 | tee "$OUT/gpu_tests.log"
    edge-bench model --checkpoint $W/runs/brick --artifacts $W/art/brick --out $W/bench --threads 2 \
        --iters 200 --no-compile 2>&1 | tail -5
    cp $W/bench/report.md "$OUT/bench.brick.md"; cp $W/bench/*.json "$OUT/" 2>/dev/null
    edge-run --source $W/demo/line_clip.mp4 --roi 512,232,256,256 --model $W/art/brick/model.fp16.onnx \
        --device cuda --quiet --jsonl $W/verdicts.jsonl 2>&1 | tail -4
    ;;
parts)
    ;;
gpuexport)
    cat /tmp/ortparts/ort.part.* > /tmp/onnxruntime_gpu-1.31.1-cp312-cp312-manylinux_2_28_x86_64.whl || exit 1
    python3 -m pip uninstall -q -y onnxruntime
    python3 -m pip install -q --no-deps --no-index /tmp/onnxruntime_gpu-*.whl || exit 1
    python3 -m pip install -q --no-deps --no-index --no-build-isolation -e . || exit 1
    nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
    edge-run doctor --device cuda 2>&1 | tail -4
    edge-run doctor --device tensorrt 2>&1 | tail -3
    edge-export runs/brick --data data/demo/brick --out $W/art/brick --precision fp32,int8,fp16 --threads 2 2>&1 | tail -8
    cp $W/art/brick/export_report.md "$OUT/export_report.gpu.md"; cp $W/art/brick/export_report.json "$OUT/export_report.gpu.json"
    python3 -c "import json; r = json.load(open('$W/art/brick/export_report.json')); print('recommended', r.get('recommended'), 'by device', r.get('recommended_by_device')); [print(p, a['gate'], {k: v for k, v in a['parity'].items() if k.startswith('p50')}) for p, a in r['artifacts'].items()]"
    echo "--- --device tensorrt on a real model (expect one line, exit 2):"
    edge-run --source data/demo/line_clip.mp4 --roi 512,232,256,256 --model $W/art/brick/model.fp16.onnx \
        --device tensorrt --quiet 2>&1 | tail -3; echo "rc=${PIPESTATUS[0]}"
    echo "--- --device auto (expect CUDA, no TensorRT load errors):"
    edge-run --source data/demo/line_clip.mp4 --roi 512,232,256,256 --model $W/art/brick/model.fp16.onnx \
        --device auto --quiet --jsonl $W/auto.jsonl > $W/auto.log 2>&1; echo "rc=$? stderr lines: $(wc -l < $W/auto.log)"
    head -3 $W/auto.log; tail -2 $W/auto.log
    ;;
vnni)
    grep -m1 "model name" /proc/cpuinfo; nproc
    echo "ISA: $(grep -o -w -E 'avx2|avx512f|avx512_vnni|avx_vnni|amx_int8' /proc/cpuinfo | sort -u | tr '\n' ' ')"
    python3 -m pip install -q --no-deps --no-index --no-build-isolation -e . || exit 1
    for run in brick brick-anomaly; do
        edge-export runs/$run --data data/demo/brick --out $W/art/$run --precision fp32,int8 --threads 2 2>&1 | tail -6
        cp $W/art/$run/export_report.md "$OUT/export_report.$run.md"
        edge-bench model --checkpoint runs/$run --data data/demo/brick --artifacts $W/art/$run --out $W/bench/$run \
            --threads 2 --batch 1 --no-compile 2>&1 | grep -E "^\| (torch|onnxruntime (fp32|int8) \|)"
        cp $W/bench/$run/report.md "$OUT/bench.$run.md"
        python3 -m benchmarks.int8_ab runs/$run data/demo/brick 2>&1 | grep threads
    done
    ;;
ov)
    grep -m1 "model name" /proc/cpuinfo; nproc
    echo "ISA: $(grep -o -w -E 'avx2|avx512f|avx512_vnni|avx_vnni|amx_int8' /proc/cpuinfo | sort -u | tr '\n' ' ')"
    python3 -m pip install -q --no-deps --no-index .scratch/openvino*.whl || exit 1
    python3 -m pip install -q --no-deps --no-index --no-build-isolation -e . || exit 1
    python3 -c "import openvino, onnxruntime; print('openvino', openvino.__version__, 'onnxruntime', onnxruntime.__version__)"
    for run in brick brick-anomaly; do
        python3 -m benchmarks.int8_ab runs/$run --load .scratch/vnni/$run 2>&1 | grep -E "threads|skipped"
    done
    ;;
ovep)
    grep -m1 "model name" /proc/cpuinfo; nproc
    echo "ISA: $(grep -o -w -E 'avx2|avx512f|avx512_vnni|avx_vnni|amx_int8' /proc/cpuinfo | sort -u | tr '\n' ' ')"
    nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
    python3 -m pip install -q --no-deps --no-index --no-build-isolation -e . || exit 1
    mkdir -p /tmp/ovsite && tar -xJf .whl/ovep.tar.xz -C /tmp/ovsite || exit 1
    PYTHONPATH=/tmp/ovsite python3 -c "import onnxruntime as o; print('onnxruntime', o.__version__, o.get_available_providers())"
    for run in brick brick-anomaly; do
        PYTHONPATH=/tmp/ovsite python3 -m benchmarks.int8_ab runs/$run --load .scratch/vnni/$run 2>&1 \
            | grep -E "threads|skipped|Error" | tee -a "$OUT/ovep.log"
    done
    python3 -m pytest tests/gpu -q -p no:logging -rs 2>&1 | tee "$OUT/gpu_tests.log" | tail -15
    ;;
esac

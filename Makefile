# lineside — the two commands: `make demo` and `make test`.
#
# CPU machines (CI, tests, demo) get the small CPU build of torch pinned below.
# On an NVIDIA machine install the CUDA build instead, e.g.
#   make install TORCH="torch==2.13.0" TORCH_INDEX="--index-url https://download.pytorch.org/whl/cu130"
# (see README, Install).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH ?= torch==2.13.0
TORCH_INDEX ?=
EXTRAS ?= dev
DEMO_DATA ?= data/demo
SURFACE ?= brick
RUN := runs/$(SURFACE)
ART := artifacts/$(SURFACE)
REPORT := reports/$(SURFACE)

.PHONY: install test demo demo-anomaly demo-sensor ucr-check clean

install: $(BIN)/.installed

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(TORCH_INDEX) "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $@

# A second environment with onnxruntime-openvino (it provides the same `onnxruntime` module as the cpu
# extra, so the two never share one): the suite proves --device openvino on this CPU through it.
OV_VENV ?= .venv-openvino

$(OV_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(OV_VENV)
	$(OV_VENV)/bin/python -m pip install --quiet -e ".[openvino]"
	touch $@

test: install $(OV_VENV)/.installed
	$(BIN)/python -m pytest

demo: install
	$(BIN)/edge-data demo --out $(DEMO_DATA)
	$(BIN)/edge-train classify --overwrite --data $(DEMO_DATA)/$(SURFACE) --out $(RUN)
	$(BIN)/edge-export $(RUN) --out $(ART) --precision fp32,int8,fp16
	$(BIN)/edge-eval --model $(ART)/model.int8.onnx --data $(DEMO_DATA)/$(SURFACE) --json $(REPORT)/eval.int8.json \
		--explain $(REPORT)/maps
	$(BIN)/edge-eval --model $(ART)/model.fp32.onnx --data $(DEMO_DATA)/$(SURFACE) --json $(REPORT)/eval.fp32.json
	rm -f $(REPORT)/verdicts.jsonl
	$(BIN)/edge-run --source $(DEMO_DATA)/line_clip.mp4 --roi 512,232,256,256 --jsonl $(REPORT)/verdicts.jsonl \
		--model $(ART)/model.$$($(BIN)/python -m benchmarks.demo_summary --recommended $(ART)).onnx
	$(BIN)/edge-bench model --checkpoint $(RUN) --artifacts $(ART) --out $(REPORT)
	$(BIN)/edge-bench pipeline --source $(DEMO_DATA)/line_clip.mp4 --roi 512,232,256,256 --fps 30 --frames 300 --viewers 2 \
		--model $(ART)/model.$$($(BIN)/python -m benchmarks.demo_summary --recommended $(ART)).onnx --out $(REPORT)/pipeline
	$(BIN)/python -m benchmarks.demo_summary --data $(DEMO_DATA) --artifacts $(ART) --report $(REPORT)

# Anomaly detection on the same surface: trained on its good images only (≈ 18 min on 2 cores, all of it). --score auto picks
# the gauss score on the demo's surfaces (README, "Which score"); the same weights under the line score follow, for
# comparison and INT8. An INT8 artifact that fails the export gate (exit 3) is reported, not shipped; the run uses
# what export recommends.
define export_eval  # $(1) run, $(2) artifacts, $(3) reports, $(4) edge-eval's data and flags: the default precisions
	$(BIN)/edge-export $(1) --out $(2) || [ $$? -eq 3 ]
	test ! -f $(2)/model.int8.onnx || $(BIN)/edge-eval --model $(2)/model.int8.onnx --data $(4) --perturb all \
		--json $(3)/eval.int8.json
	$(BIN)/edge-eval --model $(2)/model.fp32.onnx --data $(4) --perturb all --json $(3)/eval.fp32.json
endef
anomaly_model = $(call export_eval,$(RUN)-$(1),$(ART)-$(1),$(REPORT)-$(1),$(DEMO_DATA)/$(SURFACE))
demo-anomaly: install
	test -d $(DEMO_DATA)/$(SURFACE) || $(BIN)/edge-data demo --out $(DEMO_DATA)
	$(BIN)/edge-train anomaly --overwrite --data $(DEMO_DATA)/$(SURFACE) --out $(RUN)-anomaly
	$(call anomaly_model,anomaly)
	$(BIN)/edge-run --source $(DEMO_DATA)/$(SURFACE)/test/crack \
		--model $(ART)-anomaly/model.$$($(BIN)/python -m benchmarks.demo_summary --recommended $(ART)-anomaly).onnx \
		--frozen-frames 0 --quiet --save-defects $(REPORT)-anomaly/rejects --jsonl $(REPORT)-anomaly/verdicts.jsonl
	$(BIN)/python -m benchmarks.rescore $(RUN)-anomaly $(RUN)-line --score line
	$(call anomaly_model,line)

# Sensor and process models (#8): PLAID, generated machine signals, river's water-flow, moulding quality
# (≈ 4–6 min on 2 cores). An INT8 artifact that fails the export gate (exit 3) is reported, not shipped.
SENSOR_DATA ?= data/sensor
sensor_model = $(call export_eval,runs/sensor/$(1),artifacts/sensor/$(1),reports/sensor/$(1),$(2) $(3))
demo-sensor: install
	$(BIN)/edge-data sensor --out $(SENSOR_DATA)
	rm -rf reports/sensor artifacts/sensor
	$(BIN)/edge-train sensor --overwrite --task classify --data $(SENSOR_DATA)/plaid/PLAID_TRAIN.ts --fit pad --window 512 \
		--out runs/sensor/plaid
	$(call sensor_model,plaid,$(SENSOR_DATA)/plaid/PLAID_TEST.ts,--baseline-train $(SENSOR_DATA)/plaid/PLAID_TRAIN.ts)
	$(BIN)/edge-train sensor --overwrite --task classify --arch lstm --data $(SENSOR_DATA)/machine/train.csv --stride 250 \
		--sample-rate 1000 --out runs/sensor/machine-lstm
	$(call sensor_model,machine-lstm,$(SENSOR_DATA)/machine/test.csv,--baseline-train $(SENSOR_DATA)/machine/train.csv)
	$(BIN)/edge-train sensor --overwrite --task anomaly --data $(SENSOR_DATA)/machine/train_normal.csv --stride 250 \
		--sample-rate 1000 --epochs 60 --out runs/sensor/machine-anomaly
	$(call sensor_model,machine-anomaly,$(SENSOR_DATA)/machine/stream.csv,)
	$(BIN)/edge-train sensor --overwrite --task anomaly --data $(SENSOR_DATA)/water_flow/train.csv --window 24 --stride 1 \
		--epochs 60 --out runs/sensor/flow
	$(call sensor_model,flow,$(SENSOR_DATA)/water_flow/test.csv,)
	$(BIN)/edge-train quality --overwrite --data $(SENSOR_DATA)/quality/train.csv --target quality \
		--spec $(SENSOR_DATA)/quality/spec.json --out runs/sensor/quality
	$(call sensor_model,quality,$(SENSOR_DATA)/quality/test.csv,)
	$(BIN)/edge-bench model --checkpoint runs/sensor/machine-lstm --artifacts artifacts/sensor/machine-lstm \
		--threads 1 --no-compile --out reports/sensor/machine-lstm/bench
	$(BIN)/edge-bench model --checkpoint runs/sensor/quality --artifacts artifacts/sensor/quality \
		--threads 1 --no-compile --out reports/sensor/quality/bench
	$(BIN)/edge-run --sensor "csv:$(SENSOR_DATA)/machine/stream.csv?rate=max" --quiet \
		--model artifacts/sensor/machine-anomaly/model.fp32.onnx --jsonl reports/sensor/machine-anomaly/verdicts.jsonl
	$(BIN)/edge-bench sensor-stream --model artifacts/sensor/machine-lstm/model.fp32.onnx --seconds 60 \
		--out reports/sensor/stream
	$(BIN)/python -m benchmarks.sensor_summary --root .

# The sensor classifiers with default settings on every set sktime bundles (≈ 15 min on 2 cores)
ucr-check: install
	bash benchmarks/ucr_check.sh reports/ucr rocket cnn lstm

clean:
	rm -rf data runs artifacts reports

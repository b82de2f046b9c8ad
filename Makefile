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

.PHONY: install test demo demo-anomaly clean

install: $(BIN)/.installed

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(TORCH_INDEX) "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $@

test: install
	$(BIN)/python -m pytest

demo: install
	$(BIN)/edge-data demo --out $(DEMO_DATA)
	$(BIN)/edge-train classify --data $(DEMO_DATA)/$(SURFACE) --out $(RUN)
	$(BIN)/edge-export $(RUN) --out $(ART) --precision fp32,int8,fp16
	$(BIN)/edge-eval --model $(ART)/model.int8.onnx --data $(DEMO_DATA)/$(SURFACE) --json $(REPORT)/eval.int8.json
	$(BIN)/edge-eval --model $(ART)/model.fp32.onnx --data $(DEMO_DATA)/$(SURFACE) --json $(REPORT)/eval.fp32.json
	rm -f $(REPORT)/verdicts.jsonl
	$(BIN)/edge-run --source $(DEMO_DATA)/line_clip.mp4 --roi 512,232,256,256 --jsonl $(REPORT)/verdicts.jsonl \
		--model $(ART)/model.$$($(BIN)/python -m benchmarks.demo_summary --recommended $(ART)).onnx
	$(BIN)/edge-bench model --checkpoint $(RUN) --artifacts $(ART) --out $(REPORT)
	$(BIN)/edge-bench pipeline --source $(DEMO_DATA)/line_clip.mp4 --roi 512,232,256,256 --fps 30 --frames 300 --viewers 2 \
		--model $(ART)/model.$$($(BIN)/python -m benchmarks.demo_summary --recommended $(ART)).onnx --out $(REPORT)/pipeline
	$(BIN)/python -m benchmarks.demo_summary --data $(DEMO_DATA) --artifacts $(ART) --report $(REPORT)

# Anomaly detection on the same surface: trained on its good images only (≈ 6 min on 2 cores).
demo-anomaly: install
	test -d $(DEMO_DATA)/$(SURFACE) || $(BIN)/edge-data demo --out $(DEMO_DATA)
	$(BIN)/edge-train anomaly --data $(DEMO_DATA)/$(SURFACE) --out $(RUN)-anomaly
	$(BIN)/edge-export $(RUN)-anomaly --out $(ART)-anomaly --precision fp32,int8
	$(BIN)/edge-eval --model $(ART)-anomaly/model.int8.onnx --data $(DEMO_DATA)/$(SURFACE) --perturb all \
		--json $(REPORT)-anomaly/eval.int8.json
	$(BIN)/edge-eval --model $(ART)-anomaly/model.fp32.onnx --data $(DEMO_DATA)/$(SURFACE) --perturb all \
		--json $(REPORT)-anomaly/eval.fp32.json
	$(BIN)/edge-run --source $(DEMO_DATA)/$(SURFACE)/test/crack --model $(ART)-anomaly/model.int8.onnx \
		--frozen-frames 0 --quiet --save-defects $(REPORT)-anomaly/rejects --jsonl $(REPORT)-anomaly/verdicts.jsonl

clean:
	rm -rf data runs artifacts reports

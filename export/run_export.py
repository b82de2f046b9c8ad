"""The export job: checkpoint → fp32 ONNX → INT8, each checked against torch by the gate."""

from __future__ import annotations

import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnx
import torch

from edge_runtime import __version__
from edge_runtime.datasets import labeled_images
from edge_runtime.decision import SENSOR_TASKS
from edge_runtime.errors import InputFileError, LinesideError, ModelFileError
from edge_runtime.metadata import ModelInfo, to_props
from edge_runtime.metrics import figure
from edge_runtime.model import EdgeModel, file_sha256
from edge_runtime.stats import percentile, time_interleaved
from export.openvino_runtime import openvino_installed, openvino_runner
from export.onnx_graph import DEFAULT_OPSET, MIN_OPSET, export_fp32, set_metadata, write_folded
from export.float_ends import float_ends
from export.fp16 import convert_fp16
from export.gate_set import OUTPUT_NAMES, calibration_images, gate_set, input_name, threshold_images
from export.parity import compare, onnx_outputs, torch_outputs
from export.gauss_int8 import REFIT_IMAGES, int8_threshold, quantize_gauss
from export.int8_debug import layer_errors
from export.quantize import prepare, quantize_int8
from export.report import check_out_folder, speed_key
from train.anomaly import RECALIBRATE, good_images, recorded_paths
from train.checkpoint import load_checkpoint, load_config
from train.images import files_sha256

PRECISIONS = ("fp32", "int8", "fp16")
DEFAULT_PRECISIONS = ("fp32", "int8")
# Models whose INT8 cannot work, exported in fp32 unless INT8 is asked for (and then gated like any other):
# seq_rocket's features count outputs above biases spread through each output's range; 8-bit outputs move
# many across them (ArrowHead: 2 of 6 validation decisions flipped with 3 layers in float).
FP32_ONLY_MODELS = ("seq_rocket",)
EXPORTABLE_TASKS = tuple(OUTPUT_NAMES)
# what every exportable run's config.json holds (edge-train writes them; export reads each)
RUN_KEYS = ("model", "preprocess", "labels", "good_label", "threshold", "data", "metrics", "train")


class GateError(LinesideError):
    """An artifact decided differently from the trained model beyond the gate's limits."""

    exit_code = 3


@dataclass(frozen=True)
class Gate:
    fp32_max_rel_error: float = 1e-4  # max |onnx - torch| / max |torch| of the decision output
    fp32_max_flips: int = 0
    int8_max_flip_rate: float = 0.01
    int8_max_metric_drop: float = 0.005  # accuracy, AUROC or R², 0.005 = half a point

    def check(self, precision: str, figures: dict, fp32: dict | None) -> list[str]:
        """Reasons the figures break the gate (empty: passes). FP16 is held to the INT8 limits."""
        fails = []
        if figures.get("non_finite_outputs") or not np.isfinite(figures.get("max_abs_error", 0.0)):
            fails.append(f"output NaN or infinite on {figures.get('non_finite_outputs', 0)} of {figures['count']} "
                         "validation inputs (a diverged training: train again, e.g. with a lower --lr)")
        if precision == "fp32":
            if figures["max_rel_error"] > self.fp32_max_rel_error:
                fails.append(f"max relative error {figures['max_rel_error']:.2e} > {self.fp32_max_rel_error:.0e}")
            if figures["flips"] > self.fp32_max_flips:
                fails.append(f"{figures['flips']} decision flips vs torch")
        else:
            if figures["flip_rate"] > self.int8_max_flip_rate:
                fails.append(f"flip rate {figures['flip_rate']:.2%} > {self.int8_max_flip_rate:.0%}")
            # the task metric, and an anomaly model's heat map (what the operator looks at), by the same limit
            for key, name in (("metric", figures["metric_name"]), ("pixel_auroc", "pixel_auroc")):
                if fp32 and figures.get(key) is not None and fp32.get(key) is not None \
                        and fp32[key] - figures[key] > self.int8_max_metric_drop:  # None: undefined on this set
                    fails.append(f"{name} {figures[key]:.4f} vs fp32 {fp32[key]:.4f}")
        return fails


def _time_artifacts(built: dict, sample: np.ndarray, threads: int) -> None:
    """Each artifact's batch-1 p50 on this CPU, on the GPU where this ORT has one, and in OpenVINO's own runtime
    where openvino is installed (the engine of `edge-run --device openvino`, which Intel PC owners use), timed
    interleaved so the recommendation compares them under the same machine phases; written into their gate
    figures."""
    runners = [(device, lambda path, d=device: EdgeModel(path, device=d, threads=threads).infer)
               for device in ["cpu", *_gpu_devices()]]
    if openvino_installed():
        runners.append(("openvino", lambda path: openvino_runner(path, threads)[0]))
    for device, runner in runners:
        calls = []
        for precision, (path, _, figures) in built.items():
            try:
                run = runner(path)
            except LinesideError as err:  # the provider is in the build but not usable here (no GPU, no CUDA libs)
                figures[speed_key(device)] = None
                figures[f"{device}_not_timed"] = str(err)
                continue
            calls.append((precision, lambda run=run: run(sample)))
        samples, errors, interrupted = time_interleaved(calls, warmup=20, iters=200, threads=threads)
        if interrupted:
            raise KeyboardInterrupt
        if errors and device == "cpu":  # it ran on the gate set a moment ago: a failure now is not to be shipped
            raise ModelFileError("timing failed: " + "; ".join(f"{p}: {e}" for p, e in errors.items()))
        for precision, (_, _, figures) in built.items():
            if samples.get(precision):
                figures[speed_key(device)] = round(percentile(samples[precision], 50), 4)
            elif precision in errors:
                figures[speed_key(device)] = None
                figures[f"{device}_not_timed"] = errors[precision]


def _gpu_devices() -> list[str]:
    """GPU devices this machine can time an artifact on: the CUDA provider in this ORT build (whether it really
    runs is checked when the session opens; a fallback to CPU is a ProviderError, never a CPU timing)."""
    import onnxruntime

    return ["cuda"] if "CUDAExecutionProvider" in onnxruntime.get_available_providers() else []


def model_info(config: dict, precision: str, extra: dict) -> ModelInfo:
    pre = config["preprocess"]
    if config["task"] in SENSOR_TASKS:  # raw float32 windows; normalisation statistics shown, applied in-graph
        return ModelInfo(task=config["task"], labels=config["labels"], threshold=config["threshold"],
                         precision=precision, good_label=config["good_label"] or "", input_size=(0, 0),
                         input_layout="NTC", input_dtype="float32", channel_order="", resize="",
                         mean=pre["mean"], std=pre["std"], extra={**config["sensor"], **extra})
    return ModelInfo(task=config["task"], labels=config["labels"], threshold=config["threshold"], precision=precision,
                     good_label=config["good_label"], input_size=tuple(pre["input_size"]), resize=pre["resize"],
                     channel_order=pre["channel_order"], mean=pre["mean"], std=pre["std"], extra=extra)


def run_export(run: str, out: str, precisions: tuple[str, ...] | None = None, data: str | None = None, calib: str | None = None,
               calib_method: str | None = None, calib_count: int = 128, target: str = "auto",
               opset: int = DEFAULT_OPSET, threads: int | None = None, gate: Gate = Gate(), force: bool = False,
               max_excluded_layers: int = 3, dominant_layer: str = "auto", overwrite: bool = False,
               echo=print) -> dict:
    """Export `run` into `out`; returns the export report.

    An artifact that fails the gate is only written with `force` (stamped as
    failed in its metadata); the failures are listed in `report["gate_failures"]`.
    """
    newest = onnx.defs.onnx_opset_version()  # what this onnx can write
    if not MIN_OPSET <= opset <= newest:
        raise InputFileError(f"--opset {opset} is not supported: use {MIN_OPSET} to {newest} "
                             f"(default {DEFAULT_OPSET})")
    unknown = set(precisions or ()) - set(PRECISIONS)
    if unknown:
        raise InputFileError(f"unknown precision {', '.join(sorted(unknown))}; choose from {', '.join(PRECISIONS)}")
    config = load_config(run)
    if "task" not in config:
        raise InputFileError(f"{Path(run) / 'config.json'} lacks task: it was cut short or edited; re-run edge-train")
    if config["task"] not in EXPORTABLE_TASKS:
        raise InputFileError(f"{run} is a {config['task']!r} run; this edge-export exports: "
                             f"{', '.join(EXPORTABLE_TASKS)}")
    missing = [key for key in RUN_KEYS + (("sensor", "validation_index") if config["task"] in SENSOR_TASKS
                                          else ("validation_files",)) if key not in config]
    if missing:
        raise InputFileError(f"{Path(run) / 'config.json'} lacks {', '.join(missing)}: it was cut short or edited; "
                             "re-run edge-train")
    if not overwrite:
        check_out_folder(Path(out), Path(run))
    model, config = load_checkpoint(run)
    precisions = precisions or (("fp32",) if config["model"]["name"] in FP32_ONLY_MODELS else DEFAULT_PRECISIONS)
    if calib and "int8" in precisions:  # checked before the fp32 export, not after it
        sensor = config["task"] in SENSOR_TASKS
        if not (Path(calib).is_file() if sensor else Path(calib).is_dir()):
            raise InputFileError(f"--calib {calib} is not " + ("a data file (.ts or .csv) like the training data"
                                                               if sensor else "a folder of images"))
    # edge-train calibrate --good [--refit]: a gauss INT8 is refitted, calibrated and thresholded on the same
    # station images as the run (export.gate_set); checked here, before any work, so a missing one is one line
    station = None if calib or "int8" not in precisions else recorded_paths(
        config.get("gaussian", {}), "give --calib DIR with the station's good images, or " + RECALIBRATE)
    root, images, truth, masks = gate_set(config, data)
    same_data = None if data is None else _data_sha256(config, Path(data)) == config["data"]["sha256"]
    if same_data is False:  # a copy of the training data is fine; other files make the gate judge something else
        echo(f"warning: --data {data} is not the data this run was trained on (its sha256 differs from the "
             "run's): the gate judges the artifacts on these files")
    threads = threads or os.cpu_count()
    torch.set_num_threads(threads)
    reference = torch_outputs(model, images)
    out_dir = Path(out)
    common = {
        "checkpoint.sha256": file_sha256(Path(run) / "model.safetensors"),
        "data.sha256": config["data"]["sha256"],
        "metrics": {k: v for k, v in config["metrics"]["validation"].items() if k != "confusion_matrix"},
    }
    if "threshold_rule" in config:  # how the threshold was calibrated travels with it
        common["threshold_rule"] = config["threshold_rule"]
    report = {"run": str(run), "run_path": str(Path(run).resolve()), "data_is_the_runs": same_data,
              "toolkit_version": __version__,
              "versions": _versions(), "threads": threads,
              "validation_count": len(truth), "camera_copies": config["task"] not in SENSOR_TASKS, "gate": asdict(gate),
              "artifacts": {}}
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        fp32_tmp, unfolded = Path(tmp) / "model.fp32.onnx", Path(tmp) / "unfolded.onnx"
        example = torch.from_numpy(images[:2])
        echo("exporting fp32 ONNX")
        report["graph_nodes"] = export_fp32(model, example, unfolded, opset, OUTPUT_NAMES[config["task"]],
                                            input_name(config["task"]))
        set_metadata(unfolded, to_props(model_info(config, "fp32", common)))
        report["graph_nodes"]["fp32"] = write_folded(unfolded, fp32_tmp, images[:2])  # metadata travels with it
        thresholds = {}  # an artifact's own threshold where it differs from the run's (a gauss score's INT8)
        config_of = lambda precision: {**config, "threshold": thresholds.get(precision, config["threshold"])}  # noqa: E731
        evaluate = lambda path, precision: _figures(path, precision, config_of(precision), reference, images, truth,  # noqa: E731
                                                    masks, threads, model_info(config, "fp32", {}))
        built = {"fp32": (fp32_tmp, {}, evaluate(fp32_tmp, "fp32"))}
        fp32_figures = built["fp32"][2]
        if "int8" in precisions:
            calib_method = calib_method or default_calib_method(config["task"])
            echo(f"quantizing to INT8 ({calib_method} calibration)")
            calibration = calibration_images(config, root, calib, calib_count, seed=0)
            if config["task"] == "anomaly":  # see DOMINANT_LOSS_DB: its gate set cannot show real cracks
                dominant_layer = "float"
            if config["task"] == "anomaly" and config["model"]["args"].get("score") == "gauss":  # gauss_int8.py
                compressed = config["train"].get("compressed", False)  # the Gaussian knows the stream's JPEG
                source = config.get("gaussian", {}).get("source")  # edge-train calibrate --refit
                if station:
                    echo(f"fitting the INT8's Gaussian on the run's: {source}")
                elif source and not calib:  # refitted before the files were recorded (2026-11-28)
                    echo(f"warning: the Gaussian was fitted on {source}; the INT8's is fitted again on the training "
                         f"images: give that folder as --calib to fit it on the station's")
                good = calibration_images(config, root, calib, REFIT_IMAGES, seed=1, synthetic=False,
                                          jpeg_seed=0 if compressed else None)
                path, details = quantize_gauss(model, unfolded, Path(tmp), calibration, good, target, calib_method,
                                               opset, OUTPUT_NAMES[config["task"]], input_name(config["task"]))
                details["threshold"] = int8_threshold(config, path, model, *threshold_images(config, data)[1:])
                thresholds["int8"] = details["threshold"]["int8"]
                built["int8"] = (path, details, evaluate(path, "int8"))
            else:
                built["int8"] = _int8_with_exclusions(unfolded, Path(tmp), calibration, target, calib_method, gate,
                                                      fp32_figures, evaluate, images[:32], max_excluded_layers,
                                                      echo, input_name(config["task"]), dominant_layer, threads)
            report["int8"] = built["int8"][1]  # per-layer error and exclusions, even when INT8 is not written
        if "fp16" in precisions:
            echo("converting to FP16 (for GPU targets; I/O stays uint8 in, float32 out)")
            fp16_tmp = Path(tmp) / "model.fp16.onnx"
            details = convert_fp16(unfolded, fp16_tmp, float_ends(unfolded) if config["task"] in SENSOR_TASKS else [])
            built["fp16"] = (fp16_tmp, details, evaluate(fp16_tmp, "fp16"))
        _time_artifacts(built, images[:1], threads)
        out_dir.mkdir(parents=True, exist_ok=True)  # only now: a failure above leaves no folder behind
        for precision, (path, details, figures) in built.items():
            fails = gate.check(precision, figures, fp32_figures)
            extra = {**common, "parity": figures, "gate": "fail: " + "; ".join(fails) if fails else "pass"}
            if details:
                extra["quantization" if precision == "int8" else "conversion"] = details
            final = out_dir / f"model.{precision}.onnx"
            if precision in precisions and (not fails or force):
                set_metadata(path, to_props(model_info(config_of(precision), precision, extra)), out=final)
                report["artifacts"][precision] = {"file": final.name, "bytes": final.stat().st_size,
                                                  "sha256": file_sha256(final), "gate": extra["gate"],
                                                  "parity": figures, "quantization": details or None}
            if fails:
                failures.append(f"{precision}: {'; '.join(fails)}")
            echo(f"{precision}: flips {figures['flips']}/{figures['count']}, max abs error "
                 f"{figures['max_abs_error']:.2e}, {figures['metric_name']} {figure(figures['metric'])}, "
                 f"p50 {figures['p50_ms_batch1']} ms")
    written = {out_dir / art["file"] for art in report["artifacts"].values()}
    for stale in sorted(set(out_dir.glob("model.*.onnx")) - written):
        stale.unlink()  # an earlier export's file beside this one's manifest would be deployed by mistake
        echo(f"removed {stale} (an earlier export's; this export did not write it: not requested, or failed its gate)")
    report["recommended"] = _recommend(report["artifacts"])
    report["recommended_by_device"] = {"cpu": report["recommended"], "cuda": _recommend(report["artifacts"], "cuda"),
                                       "openvino": _recommend(report["artifacts"], "openvino")}
    report["gate_failures"] = failures
    return report


def _figures(path: Path, precision: str, config: dict, reference: np.ndarray, images: np.ndarray, truth: list[str],
             masks: np.ndarray | None, threads: int, reference_info: ModelInfo) -> dict:
    """Gate figures of one artifact (`config`: with its own threshold): error, flips and the task metric against
    torch, decided as the run decides (`reference_info`). Speed: _time_artifacts."""
    return compare(reference, onnx_outputs(EdgeModel(path, threads=threads), images),
                   model_info(config, precision, {}), truth, masks, reference_info)


# One layer that alone adds this much INT8 error (SQNR loss; 20 dB = 100x the noise power) is kept in float
# even when the gate passes: the gate set cannot show every drift. A grass anomaly model: the stem added 35 dB,
# the gate passed, and INT8 lost 2.1 image-AUROC points on real cracks; with the stem in float 0.2, same speed.
DOMINANT_LOSS_DB = 20.0
# ...unless quantizing it makes INT8 this much faster (edge-export --dominant-layer auto, the default), except in
# anomaly models, whose loss showed on real cracks only. The demo classifier (AVX2, 2 threads): 1.42x fp32
# quantized, 1.17x with the stem in float; the grass anomaly model: 1.26x and 1.24x (no reason to risk it there).
DOMINANT_SPEEDUP = 1.10


def _data_sha256(config: dict, data: Path) -> str | None:
    """The hash edge-train recorded, computed again on `data` (None where it cannot be: the gate says why)."""
    if config["task"] in SENSOR_TASKS:
        return file_sha256(data) if data.is_file() else None
    try:
        files = good_images(data) if config["task"] == "anomaly" else [p for p, _ in labeled_images(data, "train")]
    except (LinesideError, OSError):
        return None
    return files_sha256(data, files)


def default_calib_method(task: str) -> str:
    """Percentile for anomaly models: their activations have rare peaks (the pasted anomalies of calibration
    are not among them, real defects are) and minmax spent the INT8 range on them. Measured on the three demo
    surfaces (2026-11-27): every gate passed with 0 flips (minmax: grass 1 flip in 80) and INT8 image AUROC
    within 0.41 points of fp32 (minmax: gravel -0.63). Minmax for the rest, whose gates pass with it."""
    return "percentile" if task == "anomaly" else "minmax"


def _int8_with_exclusions(fp32: Path, tmp: Path, calibration: np.ndarray, target: str, method: str, gate: Gate,
                          fp32_figures: dict, evaluate, probe: np.ndarray, max_layers: int, echo, input_name: str,
                          dominant_layer: str = "auto", threads: int | None = None):
    """Quantize; while the gate fails or one layer dominates the error, keep the layer that adds most INT8
    error in float and try again.

    A dominant layer in float can cost speed (on AVX2 at 2 threads the demo classifier's float stem made INT8
    1.17x fp32 instead of 1.42x: the float output is re-laid out and quantized on every call). With
    `dominant_layer="auto"` the INT8 that passed the gate with it quantized is kept when it is at least
    DOMINANT_SPEEDUP faster; "float" always keeps the layer in float.

    Returns (path, quantization details with the per-layer table, gate figures).
    """
    prepared, out = tmp / "prepared.onnx", tmp / "model.int8.onnx"
    prepare(fp32, prepared)
    ends = float_ends(prepared) if input_name == "signal" else []
    excluded: list[str] = []
    kept_layers, dominance_kept = 0, False
    quantized = None  # (path, details, figures, layer): the INT8 that passed with its dominant layer quantized
    while True:
        details = quantize_int8(prepared, out, calibration, input_name=input_name, target=target, method=method,
                                exclude=excluded, float_ends=ends)
        figures = evaluate(out, "int8")
        # Per-layer error needs QDQ pairs to compare; a dynamically quantized (recurrent) model has none.
        layers = layer_errors(prepared, out, probe, input_name) if details["format"] == "QDQ" else []
        details["layers"] = [{k: v for k, v in row.items() if k != "nodes"} for row in layers[:8]]
        fails = gate.check("int8", figures, fp32_figures)
        if quantized is not None:
            return _faster_int8(quantized, (out, details, figures), fails, probe[:1], threads, echo)
        candidates = [row for row in layers if row["added_loss_db"] > 0 and not set(row["nodes"]) <= set(excluded) | set(ends)]
        # once only: the tensor a kept layer writes is still quantized for the next one, so it can stay on top
        dominant = not dominance_kept and bool(candidates) and candidates[0]["added_loss_db"] >= DOMINANT_LOSS_DB
        dominance_kept = dominance_kept or dominant  # kept for the gate or for dominance: once is enough
        if (not fails and not dominant) or kept_layers >= max_layers or not candidates:
            return out, details, figures
        worst = candidates[0]
        if dominant and not fails and dominant_layer == "auto":
            kept = tmp / "model.int8.dominant-quantized.onnx"
            os.replace(out, kept)
            quantized = (kept, details, figures, worst)
        why = f"fails the gate ({'; '.join(fails)})" if fails else f"has one layer adding ≥ {DOMINANT_LOSS_DB:g} dB"
        echo(f"int8 {why}; keeping {worst['tensor']} "
             f"({', '.join(worst['nodes'])}, +{worst['added_loss_db']} dB loss) in float and retrying")
        excluded = sorted(set(excluded) | set(worst["nodes"]))
        kept_layers += 1


def _faster_int8(quantized: tuple, in_float: tuple, float_fails: list[str], sample: np.ndarray,
                 threads: int | None, echo):
    """The INT8 with its dominant layer in float, unless the one with it quantized (which passed the gate) is
    DOMINANT_SPEEDUP faster here, timed interleaved; the choice and both timings go into the details."""
    q_path, q_details, q_figures, layer = quantized
    f_path, f_details, f_figures = in_float
    calls = [(name, lambda m=EdgeModel(path, threads=threads): m.infer(sample))
             for name, path in (("quantized", q_path), ("float", f_path))]
    samples, errors, interrupted = time_interleaved(calls, warmup=20, iters=200, threads=threads)
    if interrupted:
        raise KeyboardInterrupt
    p50 = {name: round(percentile(values, 50), 4) for name, values in samples.items()}
    faster = not errors and p50["quantized"] * DOMINANT_SPEEDUP <= p50["float"]
    keep_float = not float_fails and not faster
    choice = {"tensor": layer["tensor"], "nodes": layer["nodes"], "added_loss_db": layer["added_loss_db"],
              "in_float": keep_float, "p50_ms_batch1": p50,
              "why": "in float it failed the gate" if float_fails else
              f"quantized it ran {p50['float'] / p50['quantized']:.2f}x as fast as in float (the rule: float below "
              f"{DOMINANT_SPEEDUP:g}x)" if not errors else f"timing failed: {errors}"}
    echo(f"int8: {layer['tensor']} {'kept in float' if keep_float else 'quantized'}: {choice['why']} "
         f"(p50 {p50.get('quantized')} vs {p50.get('float')} ms)")
    path, details, figures = (f_path, f_details, f_figures) if keep_float else (q_path, q_details, q_figures)
    details["dominant_layer"] = choice
    return path, details, figures


def _recommend(artifacts: dict, device: str = "cpu") -> str | None:
    """The fastest precision that passed the gate on `device` — INT8 only when it is actually faster there
    (on an H100 INT8 QDQ ran slower than fp32 and fp16). None when nothing passed or `device` was not timed
    on this machine: a CPU timing says nothing about a GPU."""
    key = speed_key(device)
    passed = {p: a for p, a in artifacts.items() if a["gate"] == "pass" and a["parity"].get(key) is not None}
    if not passed:
        return None
    return min(passed, key=lambda p: passed[p]["parity"][key])


def _versions() -> dict:
    import onnx
    import onnxruntime

    return {"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__}

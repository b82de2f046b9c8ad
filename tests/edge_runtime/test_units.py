"""Preprocessing, decisions, metadata and metrics on known inputs."""

import numpy as np
import pytest

from edge_runtime.decision import decide
from edge_runtime.errors import ModelFileError
from edge_runtime.metadata import ModelInfo, from_props, to_props
from edge_runtime.metrics import classification_metrics, format_table
from edge_runtime.preprocess import prepare_image, roi_fits
from edge_runtime.stats import percentile

INFO = ModelInfo(task="classify", labels=["good", "crack", "stain"], threshold=0.5, precision="fp32")


def test_prepare_image_crops_resizes_and_swaps_to_rgb():
    frame = np.zeros((100, 200, 3), np.uint8)
    frame[10:60, 20:70] = (255, 0, 0)  # blue in BGR, inside the ROI
    out = prepare_image(frame, (25, 25), roi=(20, 10, 50, 50))
    assert out.shape == (25, 25, 3) and out.dtype == np.uint8
    assert (out[..., 2] == 255).all() and (out[..., 0] == 0).all()  # blue is now the last channel


def test_prepare_image_accepts_gray_and_bgra():
    assert prepare_image(np.full((40, 40), 7, np.uint8), (20, 20)).shape == (20, 20, 3)
    assert prepare_image(np.full((40, 40, 4), 7, np.uint8), (20, 20))[0, 0].tolist() == [7, 7, 7]


def test_roi_fits():
    assert roi_fits((0, 0, 10, 10), (10, 10, 3))
    assert not roi_fits((5, 0, 10, 10), (10, 10, 3))


def test_decision_rejects_when_not_good_reaches_threshold():
    probs = np.array([[0.9, 0.05, 0.05], [0.45, 0.35, 0.20], [0.5, 0.1, 0.4], [0.2, 0.1, 0.7]])
    got = [(d.verdict, d.label) for d in decide(probs, INFO)]
    # row 2: good is the argmax (0.45) but P(not good) = 0.55 >= 0.5 -> rejected as its likeliest defect
    assert got == [("good", "good"), ("defect", "crack"), ("defect", "stain"), ("defect", "stain")]
    assert decide(probs[:1], INFO)[0].score == pytest.approx(0.1)


def test_metadata_round_trip_and_refusals():
    props = to_props(INFO)
    assert from_props(props, "m.onnx").labels == INFO.labels
    with pytest.raises(ModelFileError, match="no lineside metadata"):
        from_props({"task": "classify"}, "m.onnx")
    with pytest.raises(ModelFileError, match="upgrade lineside"):
        from_props({**props, "lineside.schema": "99"}, "m.onnx")
    with pytest.raises(ModelFileError, match="lacks metadata threshold"):
        from_props({k: v for k, v in props.items() if k != "threshold"}, "m.onnx")


def test_classification_metrics_on_known_input():
    true = ["good", "good", "good", "crack", "crack", "stain"]
    pred = ["good", "good", "crack", "crack", "good", "stain"]
    m = classification_metrics(true, pred, ["good", "crack", "stain"])
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["confusion_matrix"] == [[2, 1, 0], [1, 1, 0], [0, 0, 1]]
    assert m["per_class"]["crack"]["accuracy"] == pytest.approx(0.5)
    assert m["false_reject_rate"] == pytest.approx(1 / 3)
    assert m["escape_rate"] == pytest.approx(1 / 3)
    assert "confusion" in format_table(m)


def test_percentile_matches_numpy():
    values = list(np.random.default_rng(0).exponential(size=101))
    for q in (50, 90, 99):
        assert percentile(values, q) == pytest.approx(np.percentile(values, q))


def test_rate_meter_and_overlay_draw_the_verdict():
    from edge_runtime.overlay import COLOURS, RateMeter, annotate

    meter = RateMeter()
    assert meter({"decided_at": 10.0}) == 0.0
    assert meter({"decided_at": 10.1}) == pytest.approx(10.0)
    frame = np.zeros((120, 200, 3), np.uint8)
    record = {"verdict": "defect", "label": "crack", "score": 0.9, "frame_id": 3, "flags": []}
    out = annotate(frame, record, (50, 20, 60, 60), fps=10.0)
    assert tuple(out[20, 80]) == COLOURS["defect"]  # the ROI box in the verdict's colour
    assert frame.sum() == 0  # the frame itself is never drawn on


def test_provider_options_cache_tensorrt_engines_and_pick_openvino_device(tmp_path, monkeypatch):
    from pathlib import Path

    from edge_runtime.session import provider_options

    monkeypatch.setenv("LINESIDE_TRT_CACHE", str(tmp_path / "trt"))
    trt = provider_options("TensorrtExecutionProvider", Path("part.fp16.onnx"))
    assert trt["trt_engine_cache_enable"] == "True" and trt["trt_fp16_enable"] == "True"
    assert (tmp_path / "trt").is_dir() and trt["trt_engine_cache_path"] == str(tmp_path / "trt")
    monkeypatch.setenv("LINESIDE_OPENVINO_DEVICE", "NPU")
    assert provider_options("OpenVINOExecutionProvider", Path("m.onnx")) == {"device_type": "NPU"}
    assert provider_options("OpenVINOExecutionProvider", Path("m.onnx"), 3)["num_of_threads"] == "3"
    assert provider_options("CPUExecutionProvider", Path("m.onnx")) == {}
    # fp32 keeps its gate's promise on CUDA: no TF32 (10-bit mantissa) convolutions
    assert provider_options("CUDAExecutionProvider", Path("m.fp32.onnx"))["use_tf32"] == "0"
    assert provider_options("CUDAExecutionProvider", Path("m.fp16.onnx"))["use_tf32"] == "1"


def test_tensorrt_counts_only_where_its_library_loads():
    import ctypes.util

    from edge_runtime.session import tensorrt_loadable

    # onnxruntime-gpu lists TensorRT without it; auto must not pick it then, nor --device tensorrt start it
    assert tensorrt_loadable() == (ctypes.util.find_library("nvinfer") is not None)


def test_jpeg_disturbance_compresses_colour_and_gray_frames_alike():
    from edge_runtime.disturb import DISTURBANCES

    rng = np.random.default_rng(0)
    for frame in (rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), rng.integers(0, 256, (64, 64), dtype=np.uint8)):
        out, mask = DISTURBANCES["jpeg"](frame, None, 0)
        assert out.shape == frame.shape and out.dtype == np.uint8 and mask is None
        assert 2 < np.abs(out.astype(int) - frame.astype(int)).mean() < 60  # noise does not survive quality 70
        assert np.array_equal(out, DISTURBANCES["jpeg"](frame, None, 5)[0])  # the same frame, the same damage

"""Export: one self-contained checked file per precision, metadata inside, parity proven."""

import json
import shutil

import numpy as np
import pytest
import onnx
import torch

from clitools import final_error, one_line_error, run_cli
from export.report import report_markdown
from edge_runtime.decision import decide
from edge_runtime.model import EdgeModel, file_sha256


def test_one_file_per_precision_checker_clean_no_side_files(artifacts):
    names = sorted(p.name for p in artifacts.iterdir())
    assert names == ["export_report.json", "export_report.md", "manifest.json", "model.fp16.onnx", "model.fp32.onnx",
                     "model.int8.onnx"]
    for precision in ("fp32", "int8", "fp16"):
        model = onnx.load(str(artifacts / f"model.{precision}.onnx"), load_external_data=False)
        onnx.checker.check_model(model, full_check=True)
        assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer)
        meta = {p.key: p.value for p in model.metadata_props}
        for key in ("lineside.schema", "task", "labels", "threshold", "precision", "input_size", "mean", "std",
                    "resize", "channel_order", "data.sha256", "checkpoint.sha256", "lineside.version", "parity"):
            assert key in meta, key
        assert meta["precision"] == precision
        dims = model.graph.input[0].type.tensor_type.shape.dim
        assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [128, 128, 3]  # dynamic batch, uint8 NHWC
        assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8


def test_fp32_decides_exactly_like_torch_on_the_whole_validation_set(trained_run, artifacts):
    from train.checkpoint import load_checkpoint
    from train.images import validation_set

    model, config = load_checkpoint(trained_run)
    _, val = validation_set(config)
    with torch.inference_mode():
        reference = model(torch.from_numpy(val.images)).numpy()
    deployed = EdgeModel(artifacts / "model.fp32.onnx")
    outputs = np.concatenate([deployed.infer(val.images[i:i + 16]) for i in range(0, len(val.images), 16)])
    assert np.abs(outputs - reference).max() <= 1e-4
    assert [d.label for d in decide(outputs, deployed.info)] == [d.label for d in decide(reference, deployed.info)]


def test_int8_is_quantized_for_this_cpu_and_close_to_torch(artifacts):
    model = onnx.load(str(artifacts / "model.int8.onnx"))
    ops = {n.op_type for n in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    meta = {p.key: p.value for p in model.metadata_props}
    quant = json.loads(meta["quantization"])
    assert quant["target"] in ("vnni", "avx2", "arm") and quant["per_channel"] is True
    report = json.loads((artifacts / "export_report.json").read_text())
    assert report["artifacts"]["int8"]["parity"]["flip_rate"] <= 0.1  # the demo's trained model: 0 (README)
    assert report["cpu"]["flags"] is not None and report["recommended"] in ("fp32", "int8")


def test_pixels_enter_int8_with_scale_one_whatever_the_calibration(artifacts, tmp_path):
    """A uint8 image enters the first quantized layer as its own bytes (scale 1, zero point 0) even when the
    calibration images never reach 255: a calibrated scale rounds every grey level and clips pixels above its
    max. With unsigned activations the Cast and QuantizeLinear in front are gone (drop_pixel_requantize)."""
    from onnx import numpy_helper

    from export.quantize import pixel_tensors, prepare, quantize_int8

    prepared, out = tmp_path / "prepared.onnx", tmp_path / "model.int8.onnx"
    prepare(artifacts / "model.fp32.onnx", prepared)
    size = EdgeModel(artifacts / "model.fp32.onnx").blank_input().shape[1:]
    dim = np.random.default_rng(0).integers(10, 180, (16, *size), dtype=np.uint8)  # darkest 10, brightest 179
    details = quantize_int8(prepared, out, dim, target="avx2")
    assert details["pixels_enter_uint8"] is True
    model = onnx.load(str(out))
    values = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    assert not pixel_tensors(out), "the image is still cast to float"
    layout = {model.graph.input[0].name} | {n.output[0] for n in model.graph.node if n.op_type == "Transpose"
                                            and n.input[0] == model.graph.input[0].name}
    entry = [n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in layout]
    assert entry, "no DequantizeLinear reads the uint8 image"
    for node in entry:
        assert float(values[node.input[1]]) == 1.0 and int(values[node.input[2]]) == 0, node.name
    bright = np.full((1, *size), 250, np.uint8)  # brighter than any calibration pixel: not clipped
    a = EdgeModel(out).infer(bright)
    b = EdgeModel(artifacts / "model.fp32.onnx").infer(bright)
    assert np.abs(a - b).max() < 0.2


def _pixel_graph(path, zero_point: int, dtype) -> None:
    """uint8 image -> Cast -> QuantizeLinear(1, zero_point) -> DequantizeLinear -> Conv: the front of a QDQ model
    (the zero point's dtype sets the quantized type)."""
    from onnx import helper, numpy_helper

    inits = [numpy_helper.from_array(np.array(1.0, np.float32), "one"),
             numpy_helper.from_array(np.array(zero_point, dtype), "zp"),
             numpy_helper.from_array(np.random.default_rng(0).normal(size=(4, 3, 3, 3)).astype(np.float32), "w")]
    nodes = [helper.make_node("Cast", ["image"], ["pixels"], to=onnx.TensorProto.FLOAT),
             helper.make_node("QuantizeLinear", ["pixels", "one", "zp"], ["q"]),
             helper.make_node("DequantizeLinear", ["q", "one", "zp"], ["dq"]),
             helper.make_node("Conv", ["dq", "w"], ["out"])]
    graph = helper.make_graph(nodes, "front", [helper.make_tensor_value_info("image", onnx.TensorProto.UINT8,
                                                                             [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("out", onnx.TensorProto.FLOAT, [1, 4, 6, 6])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)]), str(path))


def test_dropping_the_pixel_requantize_is_exact_and_only_for_unsigned_zero_point(tmp_path):
    import onnxruntime

    from export.quantize import drop_pixel_requantize

    image = np.random.default_rng(1).integers(0, 256, (1, 3, 8, 8), dtype=np.uint8)
    unsigned, signed = tmp_path / "u8.onnx", tmp_path / "s8.onnx"
    _pixel_graph(unsigned, 0, np.uint8)
    before = onnxruntime.InferenceSession(str(unsigned)).run(None, {"image": image})[0]
    assert drop_pixel_requantize(unsigned) == 2
    assert {n.op_type for n in onnx.load(str(unsigned)).graph.node} == {"DequantizeLinear", "Conv"}
    assert np.array_equal(onnxruntime.InferenceSession(str(unsigned)).run(None, {"image": image})[0], before)
    _pixel_graph(signed, -128, np.int8)  # int8 = pixel - 128: not the image's bytes, so it stays
    assert drop_pixel_requantize(signed) == 0 and len(onnx.load(str(signed)).graph.node) == 4


def test_a_dominant_layer_is_quantized_when_in_float_it_fails_the_gate(artifacts, tmp_path):
    """The dominant-layer rule's choice is recorded with both timings; a float copy that fails the gate is
    never preferred to a quantized one that passed."""
    from export.run_export import _faster_int8

    quantized, in_float = artifacts / "model.int8.onnx", artifacts / "model.fp32.onnx"
    layer = {"tensor": "relu", "nodes": ["node_relu"], "added_loss_db": 31.0}
    sample = EdgeModel(quantized).blank_input()
    path, details, figures = _faster_int8((quantized, {"q": 1}, {"gate": "q"}, layer), (in_float, {}, {}),
                                          ["flip rate 2% > 1%"], sample, 1, lambda *_: None)
    assert path == quantized and figures == {"gate": "q"} and details["q"] == 1
    choice = details["dominant_layer"]
    assert choice["in_float"] is False and choice["why"] == "in float it failed the gate"
    assert choice["tensor"] == "relu" and set(choice["p50_ms_batch1"]) == {"quantized", "float"}


def test_manifest_hashes_match_the_files(artifacts):
    manifest = json.loads((artifacts / "manifest.json").read_text())
    assert {a["file"] for a in manifest["artifacts"]} == {"model.fp32.onnx", "model.int8.onnx", "model.fp16.onnx"}
    for entry in manifest["artifacts"]:
        assert file_sha256(artifacts / entry["file"]) == entry["sha256"]


def test_quantizer_picks_the_format_for_the_cpu():
    from edge_runtime.cpu import int8_target
    from export.quantize import INT8_FORMATS

    assert int8_target({"arch": "x86_64", "flags": ["avx2", "avx512_vnni"]}) == "vnni"
    assert int8_target({"arch": "x86_64", "flags": ["avx2", "fma"]}) == "avx2"
    assert int8_target({"arch": "aarch64", "flags": ["asimddp"]}) == "arm"
    assert INT8_FORMATS["avx2"]["reduce_range"] and not INT8_FORMATS["vnni"]["reduce_range"]
    assert INT8_FORMATS["avx2"]["activation_type"].name == "QUInt8"


def test_bad_inputs_are_one_line(tmp_path, trained_run):
    one_line_error(run_cli("edge-export", str(tmp_path / "no_run"), "--out", str(tmp_path / "a")))
    line = one_line_error(run_cli("edge-export", str(trained_run), "--out", str(tmp_path / "b"), "--precision", "fp64"))
    assert "fp64" in line
    line = one_line_error(run_cli("edge-export", str(trained_run), "--out", str(tmp_path / "c"), "--opset", "9"))
    assert "opset" in line
    assert not (tmp_path / "c" / "model.fp32.onnx").exists()
    other = tmp_path / "other_run"
    shutil.copytree(trained_run, other)
    config = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**config, "task": "banana"}))
    assert "banana" in one_line_error(run_cli("edge-export", str(other), "--out", str(tmp_path / "d")))
    (other / "config.json").write_text(json.dumps({**config, "schema": 99}))
    assert "newer lineside" in one_line_error(run_cli("edge-export", str(other), "--out", str(tmp_path / "e")))
    for broken in ([1, 2], {**config, "schema": "2"}):
        (other / "config.json").write_text(json.dumps(broken))
        assert "not a lineside run config" in one_line_error(run_cli("edge-export", str(other), "--out",
                                                                     str(tmp_path / "e")))
    for key in ("metrics", "task"):
        (other / "config.json").write_text(json.dumps({k: v for k, v in config.items() if k != key}))
        assert f"lacks {key}" in one_line_error(run_cli("edge-export", str(other), "--out", str(tmp_path / "e")))
    (other / "config.json").write_bytes(b"\xff\xfe\x00x")
    assert "not UTF-8" in one_line_error(run_cli("edge-export", str(other), "--out", str(tmp_path / "e")))
    export = lambda *args: run_cli("edge-export", str(trained_run), "--precision", "fp32", *args)  # noqa: E731
    assert "28" in one_line_error(export("--out", str(tmp_path / "f"), "--opset", "99"))  # onnx 1.2x writes <= 28
    assert "--precision" in one_line_error(run_cli("edge-export", str(trained_run), "--out", str(tmp_path / "f"),
                                                   "--precision", ""))
    assert "--threads" in one_line_error(export("--out", str(tmp_path / "f"), "--threads", "0"))
    (tmp_path / "a_file").write_text("")
    assert "is a file" in one_line_error(export("--out", str(tmp_path / "a_file" / "sub")))
    assert not any((tmp_path / name).exists() for name in "cdef")  # no folder is made for an export that failed


def test_an_opset_the_model_cannot_be_converted_to_is_one_line(trained_run, tmp_path):
    # the exporter writes opset 18 when conversion fails, with a logged traceback; it used to ship that silently
    line = final_error(run_cli("edge-export", str(trained_run), "--out", str(tmp_path / "o"), "--precision",
                               "fp32", "--opset", "17"))
    assert "cannot be converted to opset 17" in line and "--opset 18" in line
    assert not (tmp_path / "o").exists()


def test_a_handful_of_calibration_images_is_one_line_and_no_folder(trained_run, demo_data, tmp_path):
    few = tmp_path / "few"
    few.mkdir()
    for image in sorted((demo_data / "brick" / "test" / "good").iterdir())[:3]:
        (few / image.name).write_bytes(image.read_bytes())
    line = final_error(run_cli("edge-export", str(trained_run), "--out", str(tmp_path / "o"), "--precision",
                               "fp32,int8", "--calib", str(few)))
    assert "holds 3 image(s)" in line and "at least 16" in line
    assert not (tmp_path / "o").exists()
    (tmp_path / "empty").mkdir()
    line = final_error(run_cli("edge-export", str(trained_run), "--out", str(tmp_path / "o"), "--precision",
                               "int8", "--calib", str(tmp_path / "empty")))
    assert "holds 0 image(s)" in line


def test_an_export_into_an_earlier_ones_folder_keeps_only_its_own_files(trained_run, demo_data, tmp_path):
    out, moved = tmp_path / "out", tmp_path / "moved"
    out.mkdir()
    (out / "model.int8.onnx").write_bytes(b"an earlier export's INT8")
    (out / "manifest.json").write_text('{"artifacts": [{"file": "model.int8.onnx"}]}')
    shutil.copytree(demo_data / "brick", moved)  # the training data, moved: the same data, no warning
    proc = run_cli("edge-export", str(trained_run), "--out", str(out), "--precision", "fp32", "--data", str(moved))
    assert proc.returncode == 0 and "warning" not in proc.stderr, proc.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir()) == ["export_report.json", "export_report.md", "manifest.json",
                                                     "model.fp32.onnx"]
    assert [a["file"] for a in json.loads((out / "manifest.json").read_text())["artifacts"]] == ["model.fp32.onnx"]
    assert "removed" in proc.stderr and "model.int8.onnx" in proc.stderr
    assert json.loads((out / "export_report.json").read_text())["data_is_the_runs"] is True


def test_data_other_than_the_runs_is_said_and_recorded(trained_run, demo_data, tmp_path):
    moved = tmp_path / "moved"
    shutil.copytree(demo_data / "brick", moved)
    image = sorted((moved / "train" / "good").iterdir())[0]
    image.write_bytes(image.read_bytes() + b"\0")  # one training file differs
    proc = run_cli("edge-export", str(trained_run), "--out", str(tmp_path / "b"), "--precision", "fp32",
                   "--data", str(moved))
    assert proc.returncode == 0 and "is not the data this run was trained on" in proc.stderr, proc.stderr[-2000:]
    assert json.loads((tmp_path / "b" / "export_report.json").read_text())["data_is_the_runs"] is False

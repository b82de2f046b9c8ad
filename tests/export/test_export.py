"""Export: one self-contained checked file per precision, metadata inside, parity proven."""

import json

import cv2
import numpy as np
import pytest
import onnx
import torch

from clitools import run_cli
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


def test_gate_blocks_flips_and_metric_loss():
    from export.run_export import Gate

    gate = Gate()
    fp32 = {"max_rel_error": 1e-6, "flips": 0, "flip_rate": 0.0, "metric_name": "accuracy", "metric": 0.95}
    assert gate.check("fp32", fp32, None) == []
    assert gate.check("fp32", {**fp32, "flips": 1}, None)
    assert gate.check("fp32", {**fp32, "max_rel_error": 1e-3}, None)
    assert gate.check("int8", {**fp32, "flip_rate": 0.01, "metric": 0.946}, fp32) == []  # the defaults
    assert gate.check("int8", {**fp32, "flip_rate": 0.011, "metric": 0.95}, fp32)
    assert gate.check("int8", {**fp32, "flip_rate": 0.0, "metric": 0.944}, fp32)
    # an anomaly model's heat map is held to the same half point as its score
    heat = {**fp32, "metric_name": "auroc", "pixel_auroc": 0.97}
    assert gate.check("int8", {**heat, "pixel_auroc": 0.966}, heat) == []
    assert "pixel_auroc" in gate.check("int8", {**heat, "pixel_auroc": 0.96}, heat)[0]
    # a diverged model: torch and ONNX agree on NaN, so there is no flip and no finite error, yet nothing is judged
    nan = {**fp32, "max_abs_error": float("nan"), "max_rel_error": float("nan"), "non_finite_outputs": 12,
           "count": 12}
    assert "output NaN or infinite on 12 of 12" in gate.check("fp32", nan, None)[0]
    assert gate.check("int8", {**nan, "non_finite_outputs": 0}, fp32)  # a NaN error alone fails too


def test_parity_counts_non_finite_outputs():
    from edge_runtime.metadata import ModelInfo
    from export.parity import compare

    info = ModelInfo(task="classify", labels=["good", "bad"], threshold=0.5, precision="fp32")
    outputs = np.array([[0.9, 0.1], [np.nan, np.nan], [0.2, 0.8]])
    figures = compare(outputs, outputs, info, ["good", "bad", "bad"])
    assert figures["non_finite_outputs"] == 1 and figures["flips"] == 0 and figures["accuracy"] == 2 / 3


def test_flips_count_each_side_at_the_threshold_it_deploys():
    """A gauss score's INT8 has its own threshold (export/gauss_int8.py): torch decides at the run's, the INT8 at
    its own. gravel's case: borderline anomalies just under the fp32 threshold in INT8, all above the INT8's own."""
    from edge_runtime.metadata import ModelInfo
    from export.parity import compare

    run = ModelInfo(task="anomaly", labels=["good", "anomaly"], threshold=0.1515, precision="fp32")
    own = ModelInfo(task="anomaly", labels=["good", "anomaly"], threshold=0.1493, precision="int8")
    torch_scores = np.array([0.05, 0.09, 0.155, 0.157, 0.30])
    int8_scores = np.array([0.05, 0.09, 0.1508, 0.1507, 0.29])
    truth = ["good", "good", "anomaly", "anomaly", "anomaly"]
    assert compare(torch_scores, int8_scores, run, truth)["flips"] == 2  # both at the run's threshold
    figures = compare(torch_scores, int8_scores, own, truth, reference_info=run)
    assert figures["flips"] == 0 and figures["escape_rate"] == 0.0  # the INT8's rates at its own threshold
    assert compare(torch_scores, int8_scores + 0.01, own, truth, reference_info=run)["flips"] == 0
    assert compare(torch_scores, np.full(5, 0.15), own, truth, reference_info=run)["flips"] == 2  # goods rejected


def test_recommendation_is_per_device_and_never_a_slower_int8():
    from export.run_export import _recommend

    def art(gate, cpu, cuda=None):
        return {"gate": gate, "parity": {"p50_ms_batch1": cpu, "p50_ms_batch1_cuda": cuda}}

    # timings as measured on the H100 machine (README, GPU section): INT8 fastest on its CPU, slowest on CUDA
    timed = {"fp32": art("pass", 0.60, 0.355), "int8": art("pass", 0.27, 0.444), "fp16": art("pass", 0.9, 0.334)}
    assert _recommend(timed) == "int8" and _recommend(timed, "cuda") == "fp16"
    assert _recommend({**timed, "fp16": art("fail: flips", 0.9, 0.3)}, "cuda") == "fp32"
    untimed = {"fp32": art("pass", 0.6), "int8": art("pass", 0.3)}
    assert _recommend(untimed, "cuda") is None  # a CPU timing never stands for a GPU
    assert _recommend({"int8": art("fail: flips", 0.3)}) is None


def test_gate_judges_each_image_as_taken_under_another_lamp_and_with_noise(trained_run, artifacts):
    import onnxruntime

    from export.gate_set import gate_set
    from train.checkpoint import load_config
    from train.images import validation_set

    config = load_config(trained_run)
    _, val = validation_set(config)
    _, images, truth, masks = gate_set(config)
    n = len(val.images)
    assert len(images) == len(truth) == 3 * n and masks is None
    assert truth[:n] == truth[n : 2 * n] == truth[2 * n :] == [config["labels"][t] for t in val.targets]
    assert np.array_equal(images[:n], val.images)
    for copy in (images[n : 2 * n], images[2 * n :]):  # the same parts, as another lamp and a noisier sensor see them
        diff = np.abs(copy.astype(int) - val.images.astype(int)).mean()
        assert 2 < diff < 40, diff
    report = json.loads((artifacts / "export_report.json").read_text())
    assert report["validation_count"] == 3 * n and report["camera_copies"] is True
    assert report["recommended_by_device"]["cpu"] == report["recommended"]
    text = (artifacts / "export_report.md").read_text()
    assert "sigma-8 sensor noise" in text
    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        assert report["recommended_by_device"]["cuda"] is None and "GPU: not timed" in text


def test_every_artifact_is_also_timed_in_openvinos_own_runtime(artifacts):
    pytest.importorskip("openvino")  # the bench extra; edge-export skips the timing without it
    report = json.loads((artifacts / "export_report.json").read_text())
    for precision in ("fp32", "int8"):
        assert report["artifacts"][precision]["parity"]["p50_ms_batch1_openvino"] > 0
    best = report["recommended_by_device"]["openvino"]
    passed = {p: a["parity"]["p50_ms_batch1_openvino"] for p, a in report["artifacts"].items()
              if a["gate"] == "pass" and a["parity"].get("p50_ms_batch1_openvino")}
    assert passed and best == min(passed, key=passed.get)
    text = (artifacts / "export_report.md").read_text()
    assert "p50 ms OpenVINO |" in text and f"`edge-run --device openvino`): **{best}**" in text
    # where openvino is not installed nothing is timed in it, and the report says so
    for art in report["artifacts"].values():
        art["parity"].pop("p50_ms_batch1_openvino")
    report["recommended_by_device"]["openvino"] = None
    text = report_markdown(report)
    assert "OpenVINO |" not in text and "OpenVINO: not timed (pip install openvino" in text


def test_failed_gate_exits_non_zero_and_writes_no_failing_artifact(trained_run, tmp_path):
    (tmp_path / "model.int8.onnx").write_bytes(b"an earlier export's INT8")  # must not outlive this export's gate
    (tmp_path / "export_report.json").write_text(json.dumps({"run": str(trained_run)}))  # this run's, earlier
    gray = tmp_path / "gray"  # calibration on the wrong images: flat gray frames set ranges no brick fits in
    gray.mkdir()
    for level in range(16):
        cv2.imwrite(str(gray / f"{level}.png"), np.full((128, 128, 3), 8 * level, np.uint8))
    proc = run_cli("edge-export", str(trained_run), "--out", str(tmp_path), "--precision", "fp32,int8",
                   "--calib", str(gray), "--max-int8-flip-rate", "0", "--max-excluded-layers", "1")
    assert proc.returncode == 3 and "int8" in proc.stderr.splitlines()[-1]
    assert (tmp_path / "model.fp32.onnx").exists() and not (tmp_path / "model.int8.onnx").exists()
    assert "removed" in proc.stdout + proc.stderr
    report = json.loads((tmp_path / "export_report.json").read_text())
    assert report["gate_failures"] and "int8" not in report["artifacts"]
    # before giving up it kept the worst layer in float and tried again
    assert "keeping" in proc.stderr and report["int8"]["excluded_nodes"]
    assert report["int8"]["layers"][0]["added_loss_db"] >= report["int8"]["layers"][-1]["added_loss_db"]
    assert "Kept in float:" in (tmp_path / "export_report.md").read_text()


def test_layer_errors_name_real_nodes_and_rank_them(artifacts, trained_run, tmp_path):
    from export.int8_debug import layer_errors
    from export.quantize import prepare
    from train.checkpoint import load_config
    from train.images import validation_set

    _, val = validation_set(load_config(trained_run))
    prepared = tmp_path / "prepared.onnx"
    prepare(artifacts / "model.fp32.onnx", prepared)
    rows = layer_errors(prepared, artifacts / "model.int8.onnx", val.images[:8])
    names = {n.name for n in onnx.load(str(prepared)).graph.node}
    assert rows and all(set(r["nodes"]) <= names for r in rows)
    assert [r["added_loss_db"] for r in rows] == sorted((r["added_loss_db"] for r in rows), reverse=True)
    assert any(r["op"] == "Relu" for r in rows)


def test_fp16_keeps_io_types_and_halves_the_weights(artifacts):
    model = onnx.load(str(artifacts / "model.fp16.onnx"))
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer)
    report = json.loads((artifacts / "export_report.json").read_text())
    assert report["artifacts"]["fp16"]["parity"]["flip_rate"] <= 0.05
    assert (artifacts / "model.fp16.onnx").stat().st_size < 0.6 * (artifacts / "model.fp32.onnx").stat().st_size


def test_anomaly_models_calibrate_int8_by_percentile_and_the_rest_by_minmax(anomaly_artifacts, artifacts):
    anomaly = json.loads((anomaly_artifacts / "export_report.json").read_text())
    classifier = json.loads((artifacts / "export_report.json").read_text())
    assert anomaly["int8"]["calibration_method"] == "percentile"
    assert classifier["int8"]["calibration_method"] == "minmax"


class _ResidualAE(torch.nn.Module):
    """The shape of a signal autoencoder: raw values normalised, a Gemm encoder/decoder, a Reshape back, and the
    reconstruction error against the normalised input (so the input's walk also reaches the output)."""

    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(24, 8), torch.nn.ReLU(), torch.nn.Linear(8, 24))

    def forward(self, x):
        z = (x - 50.0) / 5.0
        recon = self.net(z.flatten(1)).reshape(z.shape)
        return ((recon - z) ** 2).mean(dim=(1, 2))


def test_the_float_tail_reads_the_last_layer_unrounded(tmp_path):
    """Every node from the last weighted layer to the output stays float, and reads that layer's float output,
    not a copy rounded and clipped to the calibration range (which clipped a quality model's out-of-spec parts)."""
    from export.float_ends import float_ends
    from export.onnx_graph import export_fp32
    from export.quantize import prepare, quantize_int8

    torch.manual_seed(0)
    model = _ResidualAE().eval()
    rng = np.random.default_rng(0)
    calib = (50 + 5 * rng.normal(size=(64, 24, 1))).astype(np.float32)
    fp32, prepared, int8 = tmp_path / "ae.onnx", tmp_path / "prepared.onnx", tmp_path / "ae.int8.onnx"
    export_fp32(model, torch.from_numpy(calib[:2]), fp32, input_name="signal")
    prepare(fp32, prepared)
    ends = float_ends(prepared)
    graph = onnx.load(str(prepared)).graph
    last_gemm = [n for n in graph.node if n.op_type in ("Gemm", "MatMul")][-1]
    readers = [n for n in graph.node if last_gemm.output[0] in n.input]
    assert readers and all(n.name in ends for n in readers), (ends, [n.name for n in readers])
    details = quantize_int8(prepared, int8, calib, input_name="signal", target="avx2", float_ends=ends)
    assert details["float_nodes_read_float"] >= 1
    quantized = onnx.load(str(int8)).graph
    dequantized = {n.output[0] for n in quantized.node if n.op_type == "DequantizeLinear"}
    assert not [n.name for n in quantized.node if n.name in ends and set(n.input) & dequantized]
    import onnxruntime as ort

    fresh = (50 + 5 * rng.normal(size=(16, 24, 1))).astype(np.float32)
    with torch.inference_mode():
        expected = model(torch.from_numpy(fresh)).numpy()
    got = ort.InferenceSession(str(int8), providers=["CPUExecutionProvider"]).run(None, {"signal": fresh})[0]
    assert np.abs(got - expected).max() / expected.mean() < 0.05

"""Model files arrive over the network: each bad kind is refused with one line before anything runs."""

import pickle

import onnx
from onnx import TensorProto, helper

from clitools import one_line_error, run_cli
from edge_runtime.metadata import ModelInfo, to_props


def _run(model, demo_data):
    return one_line_error(run_cli("edge-run", "--source", str(demo_data / "brick" / "test" / "good"),
                                  "--model", str(model)))


def test_empty_truncated_and_oversized_files(tmp_path, artifacts, demo_data, monkeypatch):
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    assert "is empty" in _run(empty, demo_data)
    truncated = tmp_path / "cut.onnx"
    truncated.write_bytes((artifacts / "model.int8.onnx").read_bytes()[:3000])
    assert "not a loadable ONNX model" in _run(truncated, demo_data)
    line = one_line_error(run_cli("edge-run", "--source", str(demo_data / "line_clip.mp4"), "--model",
                                  str(artifacts / "model.int8.onnx"), env={"LINESIDE_MAX_MODEL_MB": "0.01",
                                                                           "PATH": "/usr/bin:/bin"}))
    assert "over the" in line


def test_wrong_input_rank_or_dtype_is_refused(tmp_path, demo_data):
    """A valid ONNX file with lineside metadata whose graph does not take the promised uint8 NHWC image."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 128, 128])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, 128, 128])
    model = helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    info = ModelInfo(task="classify", labels=["good", "bad"], threshold=0.5, precision="fp32")
    for key, value in to_props(info).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    path = tmp_path / "nchw_float.onnx"
    onnx.save(model, str(path))
    assert "metadata promises uint8" in _run(path, demo_data)


def test_side_file_of_external_weights_is_refused(tmp_path, artifacts, demo_data):
    model = tmp_path / "m.onnx"
    model.write_bytes((artifacts / "model.int8.onnx").read_bytes())
    (tmp_path / "m.onnx.data").write_bytes(b"\0" * 16)
    assert "external-data" in _run(model, demo_data)


def test_external_data_pointing_outside_the_model_folder_is_refused(tmp_path, artifacts, demo_data):
    """Path traversal, an absolute path, a symlink out of the folder: the file is refused before anything runs."""
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"\1" * 4096)
    graph = onnx.load(str(artifacts / "model.fp32.onnx"))
    tensor = next(t for t in graph.graph.initializer if t.data_type == TensorProto.FLOAT and len(t.raw_data) >= 64)
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "link.bin").symlink_to(secret)
    for location in ("../secret.bin", str(secret), "link.bin"):
        tampered = onnx.ModelProto()
        tampered.CopyFrom(graph)
        target = next(t for t in tampered.graph.initializer if t.name == tensor.name)
        length = len(target.raw_data)
        target.ClearField("raw_data")
        target.data_location = TensorProto.EXTERNAL
        for key, value in (("location", location), ("offset", "0"), ("length", str(length))):
            entry = target.external_data.add()
            entry.key, entry.value = key, value
        path = folder / "m.onnx"
        onnx.save(tampered, str(path))
        line = _run(path, demo_data)
        assert "escapes model directory" in line or "Absolute path not allowed" in line, line


def test_a_pickle_checkpoint_is_never_unpickled(trained_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    (run / "model.safetensors").write_bytes(pickle.dumps(Evil()))
    line = one_line_error(run_cli("edge-export", str(run), "--out", str(tmp_path / "out")))
    assert "never unpickles" in line
    assert not marker.exists()


def test_a_model_is_checked_in_a_separate_process_with_a_time_limit(tmp_path, artifacts, demo_data):
    """--model-check-s: the file is loaded and run in a child first; its refusal, a hang or a crash stays there."""
    from edge_runtime.errors import ModelFileError
    from edge_runtime.model_vet import vet_model

    vet_model(artifacts / "model.int8.onnx", timeout_s=60)  # a good file passes
    truncated = tmp_path / "cut.onnx"
    truncated.write_bytes((artifacts / "model.int8.onnx").read_bytes()[:3000])
    line = one_line_error(run_cli("edge-run", "--source", str(demo_data / "brick" / "test" / "good"), "--model",
                                  str(truncated), "--model-check-s", "60"))
    assert "not a loadable ONNX model" in line  # the child's own one-line reason
    try:
        vet_model(artifacts / "model.int8.onnx", timeout_s=0.05)  # no interpreter starts that fast
    except ModelFileError as exc:
        assert "did not load and run one input within 0.05 s" in str(exc)
    else:
        raise AssertionError("a check past its time limit passed")


def test_labels_that_do_not_match_the_class_columns_are_refused(tmp_path, artifacts, demo_data):
    """The demo classifier outputs one probability per class; metadata naming fewer labels is refused at load,
    not an IndexError at the first defect."""
    model = onnx.load(str(artifacts / "model.fp32.onnx"))
    labels = next(p for p in model.metadata_props if p.key == "labels")
    labels.value = '["good", "crack"]'
    path = tmp_path / "two_labels.onnx"
    onnx.save(model, str(path))
    line = _run(path, demo_data)
    assert "class probabilities but its metadata names 2 labels" in line

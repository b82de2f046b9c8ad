"""edge-train anomaly --init: start from a local run's or file's weights; the new data's own parts stay new."""

import json

import pytest
import torch
from safetensors.torch import save_file

from clitools import one_line_error, run_cli
from edge_runtime.errors import InputFileError
from train.checkpoint import load_checkpoint
from train.init_weights import FROM_NEW_DATA, load_init
from train.models.anomaly_net import SurfaceNet


def _fresh() -> SurfaceNet:
    torch.manual_seed(1)
    return SurfaceNet([0.3, 0.3, 0.3], [0.2, 0.2, 0.2], score="line")  # another surface's pixel statistics


def test_a_run_folder_loads_every_learnt_tensor_and_keeps_the_new_pixel_normalisation(anomaly_run):
    source, _ = load_checkpoint(anomaly_run)
    model = _fresh()
    scale = model.stem.scale.clone()
    summary = load_init(model, anomaly_run)
    assert summary["loaded"] == summary["of"] and summary["not_loaded"] == [] and len(summary["sha256"]) == 64
    theirs, ours = source.state_dict(), model.state_dict()
    for name in ours:
        if name in FROM_NEW_DATA:
            continue
        assert torch.equal(ours[name], theirs[name]), name
    assert torch.equal(model.stem.scale, scale) and not torch.equal(model.stem.scale, source.stem.scale)


def test_a_partial_file_loads_what_matches_and_names_the_rest(tmp_path):
    encoder = {f"module.{k}": v.clone() + 1 for k, v in _fresh().state_dict().items() if k.startswith(("stem.conv", "enc1."))}
    encoder["enc2.0.0.weight"] = torch.zeros(3, 3)  # a wrong shape is not loaded
    path = tmp_path / "encoder.safetensors"
    save_file(encoder, str(path))
    model = _fresh()
    before = model.state_dict()
    summary = load_init(model, path)
    assert summary["loaded"] == len(encoder) - 1 and "enc2.0.0.weight" in summary["not_loaded"]
    assert torch.equal(model.stem.conv.weight, encoder["module.stem.conv.weight"])
    assert torch.equal(model.state_dict()["enc2.0.0.weight"], before["enc2.0.0.weight"])


def test_pickles_strangers_and_missing_files_are_refused(tmp_path):
    pickle = tmp_path / "enc.pt"
    torch.save(_fresh().state_dict(), pickle)
    with pytest.raises(InputFileError, match="never unpickles"):
        load_init(_fresh(), pickle)
    stranger = tmp_path / "resnet.safetensors"
    save_file({"layer1.0.conv1.weight": torch.zeros(64, 64, 3, 3)}, str(stranger))
    with pytest.raises(InputFileError, match="none of its 1 tensors"):
        load_init(_fresh(), stranger)
    with pytest.raises(InputFileError, match="no such file"):
        load_init(_fresh(), tmp_path / "absent")


def test_edge_train_anomaly_init_records_the_start_and_refuses_a_pickle_in_one_line(anomaly_run, demo_data,
                                                                                      tmp_path):
    out = tmp_path / "run"
    proc = run_cli("edge-train", "anomaly", "--data", str(demo_data / "brick"), "--out", str(out), "--init",
                   str(anomaly_run), "--steps", "3", "--image-size", "64", "--crop", "64")
    assert proc.returncode == 0, proc.stderr
    init = json.loads((out / "config.json").read_text())["init"]
    assert init["loaded"] == init["of"] and init["file"].endswith("model.safetensors")
    assert "started from" in proc.stderr
    pickle = tmp_path / "enc.pt"
    torch.save(_fresh().state_dict(), pickle)
    refused = tmp_path / "refused"
    line = one_line_error(run_cli("edge-train", "anomaly", "--data", str(demo_data / "brick"), "--out",
                                  str(refused), "--init", str(pickle), "--steps", "3", "--image-size", "64"))
    assert "never unpickles" in line and not (refused / "model.safetensors").exists()

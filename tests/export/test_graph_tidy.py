"""The exported graph is tidied without changing what it computes: real torch models through the real exporter,
compared with torch on ONNX Runtime."""

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from export.onnx_graph import export_fp32, write_folded


class NormLSTM(nn.Module):
    """The shape of lineside's sequence models: per-channel statistics, a 2-layer LSTM, the last step into a head."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(3, 16, num_layers=2, batch_first=True)
        self.head = nn.Linear(16, 4)

    def forward(self, x):
        z = (x - x.mean(dim=1, keepdim=True)) / (x.std(dim=1, keepdim=True) + 1e-3)
        return torch.softmax(self.head(self.lstm(z)[0][:, -1]), dim=1)


class ScaledMLP(nn.Module):
    """The quality model's shape: fixed input normalisation, an MLP, the target's scale and offset."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor([200.0, 3.0, 0.5]))
        self.register_buffer("std", torch.tensor([15.0, 0.2, 0.05]))
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(3, 8), nn.SiLU(), nn.Linear(8, 1))

    def forward(self, x):
        return self.net((x - self.mean) / self.std) * 0.03 + 50.0


def _run(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def _ops(path) -> list[str]:
    return [n.op_type for n in onnx.load(str(path)).graph.node]


def test_lstm_loses_its_shape_chains_and_zero_states_and_computes_the_same(tmp_path):
    torch.manual_seed(0)
    model = NormLSTM().eval()
    x = torch.randn(5, 40, 3)
    path = tmp_path / "lstm.onnx"
    nodes = export_fp32(model, x, path, input_name="signal")
    assert nodes["tidied"] < nodes["exported"] - 10, nodes
    graph = onnx.load(str(path)).graph
    lstms = [n for n in graph.node if n.op_type == "LSTM"]
    assert len(lstms) == 2 and all(list(n.input[5:7]) in ([], ["", ""]) for n in lstms)  # zeros = absent
    assert _ops(path).count("Shape") <= 1 and "Reshape" not in _ops(path)
    with torch.inference_mode():
        expected = model(x).numpy()
    for batch in (1, 5):  # the batch axis stays dynamic
        assert np.abs(_run(path, x[:batch].numpy()) - expected[:batch]).max() < 1e-6


def test_constant_normalisation_folds_into_the_gemms_of_the_fp32_artifact_only(tmp_path):
    torch.manual_seed(0)
    model = ScaledMLP().eval()
    x = torch.tensor([[[200.0, 3.0, 0.5]]]) + torch.randn(64, 1, 3) * torch.tensor([15.0, 0.2, 0.05])
    unfolded, folded = tmp_path / "unfolded.onnx", tmp_path / "folded.onnx"
    export_fp32(model, x, unfolded, input_name="signal")
    assert {"Sub", "Div", "Add"} <= set(_ops(unfolded))  # INT8 and FP16 are made from this one: raw values stay float
    count = write_folded(unfolded, folded, x.numpy())
    assert count == len(_ops(folded)) and not {"Sub", "Div", "Add"} & set(_ops(folded)), _ops(folded)
    with torch.inference_mode():
        expected = model(x).numpy()
    got = _run(folded, x.numpy())
    assert np.abs(got - expected).max() < 1e-4 and np.abs(got - expected).max() / expected.std() < 1e-3


def test_a_graph_without_such_patterns_is_left_alone(tmp_path):
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 2)).eval()
    path = tmp_path / "cnn.onnx"
    nodes = export_fp32(model, torch.randn(2, 3, 8, 8), path)
    assert write_folded(path, tmp_path / "same.onnx", np.zeros((2, 3, 8, 8), np.float32)) == nodes["tidied"]
    x = np.random.default_rng(0).normal(size=(3, 3, 8, 8)).astype(np.float32)
    with torch.inference_mode():
        assert np.abs(_run(tmp_path / "same.onnx", x) - model(torch.from_numpy(x)).numpy()).max() < 1e-5


def test_a_rewrite_that_changes_the_answer_or_breaks_the_graph_is_not_used(tmp_path):
    from onnx import numpy_helper

    from export.onnx_graph import _checked_rewrite

    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3)).eval()
    path = tmp_path / "mlp.onnx"
    export_fp32(model, torch.randn(2, 12), path, input_name="signal")
    exported = onnx.load(str(path))
    example = np.random.default_rng(0).normal(size=(4, 12)).astype(np.float32)

    def doubled(m):  # a wrong rewrite: every weight twice as large
        for t in m.graph.initializer:
            t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t) * 2, t.name))
        return m

    def broken(m):
        del m.graph.node[:]
        return m

    for rewrite in (doubled, broken):
        kept = _checked_rewrite(exported, rewrite, example)
        assert kept.SerializeToString() == exported.SerializeToString()

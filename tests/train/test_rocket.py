"""seq_rocket's fitting pieces, checked against their definitions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edge_runtime.sensor_files import fit_length, read_series
from train.models.rocket import SeqRocket, dilations
from train.rocket_fit import ALPHAS, fit_rocket, ridge_loo


def _brute_loo(f: np.ndarray, targets: np.ndarray, alpha: float) -> np.ndarray:
    """Leave each row out, fit a ridge with an intercept on the rest, predict it."""
    out = np.empty_like(targets)
    for i in range(len(f)):
        keep = np.arange(len(f)) != i
        fm, tm = f[keep].mean(0), targets[keep].mean(0)
        a, b = f[keep] - fm, targets[keep] - tm
        w = np.linalg.solve(a.T @ a + alpha * np.eye(f.shape[1]), a.T @ b)
        out[i] = (f[i] - fm) @ w + tm
    return out


def test_ridge_loo_predictions_are_exact_leave_one_out_refits_for_few_and_many_windows():
    rng = np.random.default_rng(0)
    for n, width in ((12, 30), (40, 6)):  # fewer windows than features (Gram matrix), and more (covariance)
        f = rng.normal(size=(n, width))
        targets = -np.ones((n, 3))
        targets[np.arange(n), rng.integers(0, 3, n)] = 1
        f, offset = f - f.mean(0), targets.mean(0)
        weights, alpha, loo = ridge_loo(f, targets - offset)
        assert alpha in ALPHAS
        np.testing.assert_allclose(loo + offset, _brute_loo(f, targets, alpha), atol=1e-6)
        direct = np.linalg.solve(f.T @ f + alpha * np.eye(width), f.T @ (targets - offset))
        np.testing.assert_allclose(weights, direct, atol=1e-6)


def test_dilations_span_the_window_and_give_each_kernel_its_features():
    for length in (8, 24, 300, 1460):
        values, counts = dilations(length)
        assert values[0] == 1 and counts.sum() == 119
        assert (values - 1).max() * 8 <= max(length - 1, 8)  # the widest kernel fits in the window


def test_fitted_rocket_separates_two_signal_shapes_and_rebuilds_from_its_arguments():
    rng = np.random.default_rng(1)
    t = np.arange(64)
    x = np.stack([np.sin(t / (3 if k % 2 else 9) + rng.uniform(0, 6))[:, None] + 0.1 * rng.normal(size=(64, 1))
                  for k in range(40)]).astype(np.float32)
    y = np.arange(40) % 2
    args = {"channels": 1, "num_classes": 2, "mean": [0.0], "std": [1.0], "length": 64, "seed": 3}
    model = SeqRocket(**args)
    fitted = fit_rocket(model, x, y, seed=3)
    assert fitted["loo_accuracy"] == 1.0
    with torch.no_grad():
        probs = model(torch.from_numpy(x)).numpy()
    assert (probs.argmax(1) == y).all() and probs.max(1).min() > 0.5
    rebuilt = SeqRocket(**args)  # kernels come from the arguments; biases and head from the checkpoint
    rebuilt.load_state_dict(model.state_dict())
    with torch.no_grad():
        np.testing.assert_allclose(rebuilt(torch.from_numpy(x)).numpy(), probs, atol=1e-6)


@pytest.mark.parametrize("edges", ["zero", "repeat"])
def test_torch_and_onnx_runtime_agree_on_windows_that_defeat_float_rounding(tmp_path, edges):
    """PLAID (real currents, zero-padded to 512; small appliances draw 1/1000 of the large ones' current) and
    a pressure of 883.7 bar +- 0.01 with a stuck tail: where a feature compares values with biases, rounding
    that differs between torch and ONNX Runtime may move a window's share by a sample, never a cluster of
    equal outputs across its bias. (A design that z-normalised each window counted 1 % of PLAID's features
    apart, by up to 60 % of a window, and put these probabilities 1.9e-3 apart; this one: none.)"""
    import onnxruntime as ort

    from export.onnx_graph import export_fp32
    from export.run_export import Gate
    from train.data.sensor_demo import package_file

    series = read_series(package_file("sktime", "datasets/data/PLAID/PLAID_TRAIN.ts"))
    plaid = fit_length(series.series[:160], 512, "pad")
    rng = np.random.default_rng(2)
    pressure = 883.7 + 0.01 * np.sin(np.arange(512) / 7 + rng.uniform(0, 6, (40, 1)))
    pressure[:, 400:] = pressure[:, 399:400]
    x = np.concatenate([plaid, pressure[:, :, None]]).astype(np.float32)
    y = np.r_[[int(label) % 4 for label in series.labels[:160]], np.arange(40) % 4]
    flat = x.reshape(-1, 1).astype(np.float64)
    model = SeqRocket(1, 4, flat.mean(0).tolist(), flat.std(0).tolist(), 512, seed=0, edges=edges)
    fit_rocket(model, x[::2], y[::2], seed=0)
    path = tmp_path / "features.onnx"
    export_fp32(_Features(model).eval(), torch.from_numpy(x[:2]), path, input_name="signal")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    test = x[1::2]
    with torch.no_grad():
        expected = model.features(torch.from_numpy(test)).numpy()
        got = session.run(None, {"signal": test})[0]
        gap = np.abs(model(torch.from_numpy(test)).numpy()
                     - torch.softmax(model.head(torch.from_numpy(got)), dim=1).numpy()).max()
    counted_apart = np.abs(got - expected)[:, 2:] > 1e-6  # the first two are the window's level, not counts
    # A window's share moves by one sample where an output lies within rounding of a bias (a few in 10^4);
    # a cluster of equal outputs crossing its bias moved 1 % of them, by up to 60 % of a window.
    assert counted_apart.mean() < 2e-4
    assert gap <= Gate().fp32_max_rel_error


class _Features(torch.nn.Module):
    def __init__(self, model: SeqRocket):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.features(x)



def test_repeated_edges_make_the_features_ignore_an_offset_and_zero_padding_does_not():
    """--ignore-offset: the kernels sum to zero, so with the end samples repeated at the edges a sensor's
    zero-point offset cancels everywhere; the paper's zero padding lets the level in at the edges."""
    rng = np.random.default_rng(4)
    x = np.cumsum(rng.normal(size=(24, 200, 2)), axis=1).astype(np.float32)
    y = np.arange(24) % 3
    changed = {}
    for edges in ("repeat", "zero"):
        model = SeqRocket(2, 3, [0.0, 0.0], [5.0, 5.0], 200, seed=1, edges=edges)
        fit_rocket(model, x, y, seed=1)
        with torch.no_grad():
            before = model.features(torch.from_numpy(x)).numpy()
            after = model.features(torch.from_numpy(x + np.float32([2.5, -1.25]))).numpy()
        changed[edges] = (np.abs(after - before) > 1e-6).mean()
    assert changed["repeat"] < 1e-3  # rounding: a sample here and there
    assert changed["zero"] > 0.05

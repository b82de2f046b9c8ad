"""`edge-data sensor` and its generators: files the readers take, same seed same bytes, classes that differ."""

import importlib.util
import json

import numpy as np
import pytest

from clitools import one_line_error, run_cli
from edge_runtime.errors import InputFileError
from edge_runtime.sensor_files import read_long_csv, read_series, read_wide_csv
from edge_runtime.ucr_ts import read_ts
from train.data import sensor_demo
from train.data import sensor_gen as gen

SMALL = ["--train-per-class", "2", "--test-per-class", "1"]


@pytest.fixture(scope="module")
def sensor_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("sensor")
    proc = run_cli("edge-data", "sensor", "--out", str(out / "a"), "--seed", "1", *SMALL)
    assert proc.returncode == 0, proc.stderr
    assert "4 anomalous segments" in proc.stdout
    return out


def test_files_read_back_with_the_readers(sensor_data):
    root = sensor_data / "a"
    for split in ("TRAIN", "TEST"):
        plaid = read_ts(root / "plaid" / f"PLAID_{split}.ts")
        assert len(plaid.series) == 537 and len(set(plaid.labels)) == 11

    train = read_series(root / "machine" / "train.csv")
    assert train.channels == list(gen.CHANNELS) and sorted(set(train.labels)) == sorted(gen.MACHINE_CLASSES)
    assert len(train.series) == 8 and {x.shape for x in train.series} == {(500, 3)}
    assert len(read_long_csv(root / "machine" / "test.csv").series) == 4
    assert set(read_long_csv(root / "machine" / "train_normal.csv").labels) == {"normal"}
    stream = read_wide_csv(root / "machine" / "stream.csv")
    assert stream.values.shape == (60_000, 3) and stream.times[1] == pytest.approx(0.001)
    assert set(stream.labels) == {"normal", *gen.MACHINE_CLASSES, *gen.SENSOR_FAULTS}
    windows = read_series(root / "machine" / "stream.csv", window=1000)
    assert len(windows.series) == 60 and windows.labels[12:18] == ["imbalance"] * 6

    water = read_wide_csv(root / "water_flow" / "stream.csv")
    assert water.channels == ["flow"] and len(water.values) == 1268 and np.all(np.diff(water.times) > 0)
    assert len(sensor_demo.water_flow_segments(water.labels)) == 4
    train_flow = read_wide_csv(root / "water_flow" / "train.csv")
    test_flow = read_wide_csv(root / "water_flow" / "test.csv")
    assert set(train_flow.labels) == {"normal"} and len(train_flow.values) > 400
    assert len(train_flow.values) + len(test_flow.values) == 1268 and test_flow.labels.count("anomaly") == 49

    spec = json.loads((root / "quality" / "spec.json").read_text())
    parts = read_wide_csv(root / "quality" / "train.csv", label_column="pass")
    assert parts.channels == [*gen.PROCESS_PARAMETERS, "quality"] and len(parts.values) == 2000
    width = parts.values[:, -1].astype(np.float64)
    ok = (width >= spec["lower"] - 1e-4) & (width <= spec["upper"] + 1e-4)  # float32 of a 3-decimal value
    assert parts.labels == ["in_spec" if x else "out_of_spec" for x in ok]
    assert 0.05 <= 1 - ok.mean() <= 0.15
    readme = (root / "README.md").read_text()
    assert "sktime 1.2.0" in readme and "river 0.26.1" in readme and "2022-04-03T06:00:00+02:00" in readme


def test_same_seed_same_bytes_other_seed_differs(sensor_data, tmp_path):
    for name, seed in (("b", "1"), ("c", "2")):
        assert run_cli("edge-data", "sensor", "--out", str(tmp_path / name), "--seed", seed, *SMALL).returncode == 0
    a = sensor_data / "a"
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert len(files) == 13
    assert all((a / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files)
    differ = {str(f) for f in files if (a / f).read_bytes() != (tmp_path / "c" / f).read_bytes()}
    assert differ == {"machine/train.csv", "machine/test.csv", "machine/train_normal.csv", "machine/stream.csv",
                      "quality/train.csv", "quality/test.csv", "README.md"}


def test_out_is_a_file_is_one_line(tmp_path):
    (tmp_path / "f").write_text("x")
    assert "is a file" in one_line_error(run_cli("edge-data", "sensor", "--out", str(tmp_path / "f")))


def test_missing_package_names_the_pin(monkeypatch, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "sktime" else real(name, *a))
    with pytest.raises(InputFileError, match=r"pip install sktime==1\.2\.0"):
        sensor_demo.make_sensor(tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing written before the check


# ----------------------------------------------------------------------------- generators


def _order_amplitude(x: np.ndarray, order: float, shaft_band=(23.5, 25.5)) -> float:
    """Peak spectral amplitude near `order` x shaft speed (Hann window)."""
    spectrum = np.abs(np.fft.rfft((x - x.mean()) * np.hanning(len(x)))) * 4 / len(x)
    freqs = np.fft.rfftfreq(len(x), 1 / gen.FS)
    band = (freqs >= order * shaft_band[0] - 2) & (freqs <= order * shaft_band[1] + 2)
    return float(spectrum[band].max())


def _envelope_at(x: np.ndarray, hz_band) -> float:
    """Peak of the envelope spectrum (squared, demeaned signal) inside `hz_band`: the bearing analyst's view."""
    env = (x - x.mean()) ** 2
    spectrum = np.abs(np.fft.rfft((env - env.mean()) * np.hanning(len(x))))
    freqs = np.fft.rfftfreq(len(x), 1 / gen.FS)
    return float(spectrum[(freqs >= hz_band[0]) & (freqs <= hz_band[1])].max() / env.mean())


def test_same_seed_same_signal_and_classes_differ_as_expected():
    def signals(label, n=24):
        return [gen.machine_signal(label, 1000, np.random.default_rng([7, i])) for i in range(n)]

    assert np.array_equal(gen.machine_signal("imbalance", 500, np.random.default_rng(3)),
                          gen.machine_signal("imbalance", 500, np.random.default_rng(3)))
    normal, imbalance = signals("normal"), signals("imbalance")
    misaligned, bearing = signals("misalignment"), signals("bearing_outer")
    median = lambda xs, f: float(np.median([f(x) for x in xs]))  # noqa: E731
    one_x = lambda x: _order_amplitude(x[:, 0], 1)  # noqa: E731
    assert median(imbalance, one_x) > 2 * median(normal, one_x)
    two_x = lambda x: _order_amplitude(x[:, 0], 2)  # noqa: E731
    assert median(misaligned, two_x) > 3 * median(normal, two_x)
    assert median(misaligned, lambda x: x[:, 1].std()) > 2 * median(normal, lambda x: x[:, 1].std())
    bpfo = (gen.BPFO * 23.5, gen.BPFO * 25.5)
    envelope = lambda x: _envelope_at(x[:, 0], bpfo)  # noqa: E731
    assert median(bearing, envelope) > 2 * median(normal, envelope)
    # not trivial: the weakest imbalance overlaps the strongest normal machines
    assert min(map(one_x, imbalance)) < max(map(one_x, normal))


def test_sensor_faults_change_one_channel_where_asked():
    clean = gen.machine_signal("normal", 1000, np.random.default_rng(0))
    rng = np.random.default_rng(1)
    stuck = gen.inject_sensor_fault(clean, "dropout", rng, channel=2, start=400, stop=700)
    assert np.ptp(stuck[400:700, 2]) == 0 and np.array_equal(stuck[:, :2], clean[:, :2])
    spiked = gen.inject_sensor_fault(clean, "spike", rng, channel=0, start=100, stop=200)
    changed = np.flatnonzero(spiked[:, 0] != clean[:, 0])
    assert 1 <= len(changed) <= 4 and changed.min() >= 100 and changed.max() < 200
    assert np.abs(spiked[changed, 0] - clean[changed, 0]).min() > 5 * clean[:, 0].std()
    drifted = gen.inject_sensor_fault(clean, "drift", rng, channel=1, start=500, stop=1000)
    offset = drifted[:, 1] - clean[:, 1]
    assert np.all(offset[:500] == 0) and abs(offset[-1]) > 2.5 * clean[:, 1].std()
    assert np.array_equal(clean, gen.machine_signal("normal", 1000, np.random.default_rng(0)))  # input untouched


def test_process_quality_is_nonlinear_and_in_spec_mostly():
    params, width = gen.process_parts(5000, np.random.default_rng(0))
    again, width_again = gen.process_parts(5000, np.random.default_rng(0))
    assert np.array_equal(width, width_again) and all(np.array_equal(params[k], again[k]) for k in params)
    for name, (_, _, _, lower, upper) in gen.PROCESS_PARAMETERS.items():
        assert params[name].min() >= lower and params[name].max() <= upper
    assert 0.05 <= 1 - gen.in_spec(width).mean() <= 0.15
    X = np.column_stack([*params.values(), np.ones(len(width))])
    linear = X @ np.linalg.lstsq(X, width, rcond=None)[0]
    true = gen.part_width(params)
    r2 = lambda fit: 1 - np.var(width - fit) / np.var(width)  # noqa: E731
    assert r2(true) > 0.85 and r2(true) - r2(linear) > 0.08  # a linear model leaves real signal on the table


def test_stream_sensor_faults_sit_in_their_segments():
    signal, labels = gen.machine_stream([("normal", 1), ("dropout", 0.5), ("normal", 1)], np.random.default_rng(4))
    labels = np.array(labels)
    assert signal.shape == (2500, 3) and (labels == "dropout").sum() == 500
    stuck = [c for c in range(3) if np.ptp(signal[labels == "dropout", c]) == 0]
    assert len(stuck) == 1 and np.ptp(signal[labels == "normal", stuck[0]]) > 0
    with pytest.raises(ValueError):
        gen.machine_stream([("wobble", 1)], np.random.default_rng(0))

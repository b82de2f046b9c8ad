"""Shared fixtures: one small real data set, one trained run and its artifacts per test session.

They are built with the same functions the CLIs call, on scikit-image's real
surfaces, so every later test works on real files.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory) -> Path:
    from train.data.demo import make_demo

    out = tmp_path_factory.mktemp("demo")
    make_demo(out, seed=0, surfaces=("brick",), train_good=60, train_defect=20, test_good=16, test_defect=8,
              clip_parts=3)
    return out


@pytest.fixture(scope="session")
def trained_run(demo_data, tmp_path_factory) -> Path:
    from train.classify import ClassifyConfig, train_classifier

    out = tmp_path_factory.mktemp("run")
    train_classifier(ClassifyConfig(data=str(demo_data / "brick"), out=str(out), epochs=8, batch_size=32,
                                    device="cpu"), echo=lambda *_: None)
    return out


@pytest.fixture(scope="session")
def artifacts(trained_run, tmp_path_factory) -> Path:
    from export.report import write_export_report
    from export.run_export import run_export

    out = tmp_path_factory.mktemp("artifacts")
    # force: a model trained for seconds may flip one of its few validation images in INT8;
    # the gate itself is tested on its own figures (tests/export).
    report = run_export(str(trained_run), str(out), ("fp32", "int8", "fp16"), calib_count=32, force=True,
                        echo=lambda *_: None)
    write_export_report(report, out)
    return out


@pytest.fixture(scope="session")
def anomaly_run(demo_data, tmp_path_factory) -> Path:
    """A small line-score anomaly model (the one with INT8) trained on the good brick images only (seconds, not
    minutes: 128 px, few steps)."""
    from train.anomaly import AnomalyConfig, train_anomaly

    out = tmp_path_factory.mktemp("anomaly-run")
    train_anomaly(AnomalyConfig(data=str(demo_data / "brick"), out=str(out), steps=250, batch_size=16, crop=64,
                                image_size=128, device="cpu", score="line"), echo=lambda *_: None)
    return out


@pytest.fixture(scope="session")
def anomaly_artifacts(anomaly_run, tmp_path_factory) -> Path:
    from export.report import write_export_report
    from export.run_export import run_export

    out = tmp_path_factory.mktemp("anomaly-artifacts")
    report = run_export(str(anomaly_run), str(out), ("fp32", "int8"), calib_count=32, force=True,
                        max_excluded_layers=1, echo=lambda *_: None)
    write_export_report(report, out)
    return out

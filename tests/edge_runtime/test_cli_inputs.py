"""What every tool's options share (edge_runtime/cli_support.py): a NaN or infinite number, and an output path
that cannot be written, are refused in one line before any work (an audit found them saved, used or crashing
after the work, 2026-11-29)."""

from __future__ import annotations

from clitools import one_line_error, run_cli

UNWRITABLE = "/sys/lineside-test"  # sysfs: no one, root included, creates a file there


def test_nan_and_infinity_are_refused_by_every_tool(artifacts, trained_run, demo_data, tmp_path):
    model = str(artifacts / "model.fp32.onnx")
    cases = [  # NaN passes every range check and no comparison with it is true: --threshold nan passed every part
        (("edge-run", "--source", str(demo_data / "brick" / "test" / "good"), "--model", model, "--threshold",
          "nan"), "--threshold"),
        (("edge-train", "calibrate", str(trained_run), "--margin", "inf"), "--margin"),
        (("edge-export", str(trained_run), "--out", str(tmp_path / "e"), "--max-int8-flip-rate", "nan"),
         "--max-int8-flip-rate"),
        (("edge-bench", "pipeline", "--source", str(demo_data / "line_clip.mp4"), "--model", model, "--out",
          str(tmp_path / "p"), "--fps", "nan"), "--fps"),
    ]
    for args, flag in cases:
        line = one_line_error(run_cli(*args))
        assert flag in line and "not a finite number" in line, line
    assert not (tmp_path / "e").exists() and not (tmp_path / "p").exists()
    # a learning rate above 1 does not train: 1e300 overflowed inside torch's optimizer with a traceback
    line = one_line_error(run_cli("edge-train", "classify", "--data", str(demo_data / "brick"), "--out",
                                  str(tmp_path / "r"), "--lr", "1e300"))
    assert "--lr" in line and "0<x<=1" in line


def test_an_output_that_cannot_be_written_is_refused_before_the_work(artifacts, demo_data, tmp_path):
    model = str(artifacts / "model.fp32.onnx")
    for args, flag in ((("edge-eval", "--model", model, "--data", str(demo_data / "brick"), "--json",
                         f"{UNWRITABLE}/m.json"), "--json"),  # after the whole evaluation, this had been a traceback
                       (("edge-train", "classify", "--data", str(demo_data / "brick"), "--out", UNWRITABLE), "--out"),
                       (("edge-bench", "sweep", "--model", model, "--out", UNWRITABLE), "--out")):
        line = one_line_error(run_cli(*args))
        assert flag in line and "cannot be written" in line and "choose another path" in line, line


def test_a_diverged_training_is_stopped_not_saved():
    import pytest
    import torch

    from edge_runtime.errors import TrainingError
    from train.fit import check_finite

    model = torch.nn.Linear(3, 2)
    check_finite(model, "in epoch 1", 1e-3)
    with torch.no_grad():
        model.weight[0, 0] = float("nan")
    with pytest.raises(TrainingError, match="diverged.*in epoch 2 with --lr 0.5.*lower --lr"):
        check_finite(model, "in epoch 2", 0.5)

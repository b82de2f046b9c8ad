"""What edge-export refuses (one line, nothing left behind), warns about, and keeps in its output folder."""

import json
import shutil
from pathlib import Path

from clitools import final_error, one_line_error, run_cli


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
    (other / "config.json").write_text(json.dumps({**config, "labels": "good"}))  # a hand edit: had been a KeyError
    line = one_line_error(run_cli("edge-export", str(other), "--out", str(tmp_path / "e")))
    assert 'labels is "good", not a list of class names' in line
    (other / "config.json").write_bytes(b"\xff\xfe\x00x")
    assert "not UTF-8" in one_line_error(run_cli("edge-export", str(other), "--out", str(tmp_path / "e")))
    export = lambda *args: run_cli("edge-export", str(trained_run), "--precision", "fp32", *args)  # noqa: E731
    assert "28" in one_line_error(export("--out", str(tmp_path / "f"), "--opset", "99"))  # onnx 1.2x writes <= 28
    assert "--precision" in one_line_error(run_cli("edge-export", str(trained_run), "--out", str(tmp_path / "f"),
                                                   "--precision", ""))
    assert "--threads" in one_line_error(export("--out", str(tmp_path / "f"), "--threads", "0"))
    assert "repeats fp32" in one_line_error(export("--out", str(tmp_path / "f"), "--precision", "fp32,fp32"))
    assert "0<=x<=1" in one_line_error(export("--out", str(tmp_path / "f"), "--max-int8-flip-rate", "-1"))
    line = one_line_error(export("--out", str(tmp_path / "f"), "--target", "arm", "--calib-method", "entropy"))
    assert "--calib-method, --target shape the INT8 artifact, and --precision has no int8" in line
    line = one_line_error(run_cli("edge-export", str(trained_run), "--out", str(tmp_path / "f"), "--calib",
                                  str(tmp_path / "nowhere")))
    assert "is not a folder of images" in line  # before the fp32 export, which used to come first
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
    (out / "export_report.json").write_text(json.dumps({"run": str(trained_run)}))  # this run's earlier export
    shutil.copytree(demo_data / "brick", moved)  # the training data, moved: the same data, no warning
    proc = run_cli("edge-export", str(trained_run), "--out", str(out), "--precision", "fp32", "--data", str(moved))
    assert proc.returncode == 0 and "warning" not in proc.stderr, proc.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir()) == ["export_report.json", "export_report.md", "manifest.json",
                                                     "model.fp32.onnx"]
    assert [a["file"] for a in json.loads((out / "manifest.json").read_text())["artifacts"]] == ["model.fp32.onnx"]
    assert "removed" in proc.stderr and "model.int8.onnx" in proc.stderr
    assert json.loads((out / "export_report.json").read_text())["data_is_the_runs"] is True



def test_an_export_never_replaces_another_runs_models_without_overwrite(trained_run, tmp_path):
    other, out = tmp_path / "other-run", tmp_path / "line3"
    shutil.copytree(trained_run, other)
    out.mkdir()
    (out / "model.int8.onnx").write_bytes(b"what line 3 runs")
    (out / "export_report.json").write_text(json.dumps({"run": "runs/line3-part", "run_path": "/srv/runs/line3-part"}))
    line = one_line_error(run_cli("edge-export", str(other), "--out", str(out), "--precision", "fp32"))
    assert "holds the export of another run (/srv/runs/line3-part)" in line and "--overwrite" in line
    (out / "export_report.json").unlink()  # models edge-export did not write at all
    line = one_line_error(run_cli("edge-export", str(other), "--out", str(out), "--precision", "fp32"))
    assert "holds model.int8.onnx but no export_report.json" in line
    assert (out / "model.int8.onnx").read_bytes() == b"what line 3 runs"  # nothing lost
    proc = run_cli("edge-export", str(other), "--out", str(out), "--precision", "fp32", "--overwrite")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(p.name for p in out.glob("*.onnx")) == ["model.fp32.onnx"]
    assert json.loads((out / "export_report.json").read_text())["run_path"] == str(other.resolve())


def test_an_older_report_without_run_path_and_a_broken_one(tmp_path):
    import os

    import pytest

    from edge_runtime.errors import InputFileError
    from export.report import check_out_folder

    out, run = tmp_path / "artifacts" / "brick", tmp_path / "runs" / "brick"
    out.mkdir(parents=True)
    run.mkdir(parents=True)
    (out / "export_report.json").write_text(json.dumps({"run": "runs/brick"}))  # as given, relative to its cwd
    cwd = os.getcwd()
    try:
        os.chdir(tmp_path)
        check_out_folder(Path("artifacts/brick"), Path("runs/brick"))  # the Makefile's way
    finally:
        os.chdir(cwd)
    check_out_folder(out, run)  # the same run from elsewhere: an old report knows only its name
    with pytest.raises(InputFileError, match="another run"):
        check_out_folder(out, tmp_path / "runs" / "gravel")
    (out / "export_report.json").write_text("[1]")
    with pytest.raises(InputFileError, match="unreadable report"):
        check_out_folder(out, run)


def test_data_other_than_the_runs_is_said_and_recorded(trained_run, demo_data, tmp_path):
    moved = tmp_path / "moved"
    shutil.copytree(demo_data / "brick", moved)
    image = sorted((moved / "train" / "good").iterdir())[0]
    image.write_bytes(image.read_bytes() + b"\0")  # one training file differs
    proc = run_cli("edge-export", str(trained_run), "--out", str(tmp_path / "b"), "--precision", "fp32",
                   "--data", str(moved))
    assert proc.returncode == 0 and "is not the data this run was trained on" in proc.stderr, proc.stderr[-2000:]
    assert json.loads((tmp_path / "b" / "export_report.json").read_text())["data_is_the_runs"] is False

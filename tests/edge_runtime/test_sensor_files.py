"""Sensor file readers: good files read back exactly; a malformed one is a one-line InputFileError naming the line."""

import importlib.util
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_runtime import csv_rows
from edge_runtime.errors import InputFileError
from edge_runtime.sensor_data import SeriesSet, WideTable
from edge_runtime.sensor_files import fit_length, read_long_csv, read_series, read_wide_csv, wide_windows
from edge_runtime.ucr_ts import read_ts

TS_HEADER = "# a comment\n@problemName demo\n@timeStamps false\n@univariate true\n@equalLength false\n" \
            "@classLabel true good bad\n@data\n"


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def one_line(error: pytest.ExceptionInfo, *parts: str) -> str:
    message = str(error.value)
    assert "\n" not in message
    for part in parts:
        assert part in message, message
    return message


# ----------------------------------------------------------------------------- .ts


def test_ts_univariate_variable_length(tmp_path):
    path = write(tmp_path, "u.ts", TS_HEADER + "1,2,3:good\n\n4.5,-1e-3:bad\n7:good\n")
    s = read_ts(path)
    assert [x.shape for x in s.series] == [(3, 1), (2, 1), (1, 1)]
    assert s.series[1].dtype == np.float32 and s.series[1][:, 0].tolist() == pytest.approx([4.5, -0.001])
    assert s.labels == ["good", "bad", "good"] and s.channels == ["dim_0"] and s.origin == str(path)


def test_ts_multivariate_and_unlabelled(tmp_path):
    path = write(tmp_path, "m.ts", "%arff-style comment\n@problemName m\n@timeStamps false\n@univariate false\n"
                 "@dimensions 2\n@equalLength true\n@seriesLength 3\n@classLabel false\n@data\n"
                 "1,2,3:4,5,6\n7,8,9:1,1,1\n")
    s = read_ts(path)
    assert s.labels is None and s.channels == ["dim_0", "dim_1"]
    assert s.series[0].tolist() == [[1, 4], [2, 5], [3, 6]]


def test_ts_missing_values_only_when_allowed(tmp_path):
    path = write(tmp_path, "q.ts", TS_HEADER + "1,?,3:good\n")
    with pytest.raises(InputFileError) as error:
        read_ts(path)
    one_line(error, "q.ts line 8", "missing value", "delete that series")
    assert np.isnan(read_ts(path, allow_missing=True).series[0][1, 0])


@pytest.mark.parametrize("body, line, words", [
    ("1,2,x:good\n", 8, "not a number"),
    ("1,2,3\n", 8, "no ':<label>'"),
    ("1,2,3:ugly\n", 8, "not among @classLabel"),
    ("1,2:good\n1,,3:good\n", 9, "is empty"),
    ("1,2,inf:good\n", 8, "infinite"),
    ("1,2,1e39:good\n", 8, "float32"),
    ("1,2:3,4:good\n", 8, "2 dimensions, expected 1"),
    ("1,2:good\n@data\n", 9, "after @data"),
    ("", 7, "no series after @data"),
])
def test_ts_malformed_body(tmp_path, body, line, words):
    with pytest.raises(InputFileError) as error:
        read_ts(write(tmp_path, "bad.ts", TS_HEADER + body))
    one_line(error, f"bad.ts line {line}:", words)


@pytest.mark.parametrize("text, line, words", [
    ("@problemName x\n@timeStamps true\n@classLabel false\n@data\n(0,1)\n", 2, "@timeStamps true is not supported"),
    ("@problemName x\n@data\n1,2\n", 2, "no @classLabel"),
    ("1,2:a\n", 1, "before the @data"),
    ("@classLabel true\n@data\n", 1, "without class names"),
    ("@classLabel false\n@univariate maybe\n@data\n", 2, "true or false"),
    ("@classLabel false\n@univariate false\n@dimensions 2\n@data\n1,2:3,4\n1:2:3\n", 6, "3 dimensions, expected 2"),
    ("@classLabel false\n@univariate false\n@data\n1,2:3\n", 4, "dimension 2 has 1 values"),
    ("@classLabel false\n@seriesLength 3\n@data\n1,2\n", 4, "@seriesLength says 3"),
    ("@classLabel false\n@equalLength true\n@data\n1,2\n1\n", 5, "@equalLength is true"),
])
def test_ts_malformed_header(tmp_path, text, line, words):
    with pytest.raises(InputFileError) as error:
        read_ts(write(tmp_path, "h.ts", text))
    one_line(error, f"h.ts line {line}:", words)


def test_ts_without_data_line(tmp_path):
    with pytest.raises(InputFileError) as error:
        read_ts(write(tmp_path, "n.ts", "@problemName x\n@classLabel false\n"))
    one_line(error, "n.ts", "no @data line")


def test_plaid_as_shipped_by_sktime():
    folder = Path(importlib.util.find_spec("sktime").submodule_search_locations[0]) / "datasets/data/PLAID"
    for split in ("TRAIN", "TEST"):
        start = time.perf_counter()
        s = read_ts(folder / f"PLAID_{split}.ts")
        assert time.perf_counter() - start < 1.5  # 1.5 MB; about 0.1 s on an idle core
        lengths = {len(x) for x in s.series}
        assert len(s.series) == 537 and len(set(s.labels)) == 11 and len(lengths) > 10
        assert s.channels == ["dim_0"] and all(np.isfinite(x).all() for x in s.series)


# ----------------------------------------------------------------------------- long CSV


def test_long_csv_groups_sorts_and_keeps_channel_order(tmp_path):
    path = write(tmp_path, "l.csv",
                 "series_id,t,b,a,label\nx,0.1,2,20,ok\ny,0,5,50,bad\nx,0.0,1,10,ok\n\nx,0.2,3,30,ok\n")
    s = read_long_csv(path)
    assert s.channels == ["b", "a"] and s.labels == ["ok", "bad"]
    assert s.series[0].tolist() == [[1, 10], [2, 20], [3, 30]] and s.series[1].shape == (1, 2)


def test_long_csv_without_label_and_with_iso_times(tmp_path):
    path = write(tmp_path, "l.csv", "series_id,t,v\n1,2024-01-01T00:00:01Z,2\n1,2024-01-01T01:00:00+01:00,1\n")
    s = read_long_csv(path)
    assert s.labels is None and s.series[0][:, 0].tolist() == [1, 2]


@pytest.mark.parametrize("text, line, words", [
    ("series_id,t,v,label\n1,0,1,a\n1,1,2\n", 3, "3 fields, the header has 4"),
    ("series_id,t,v,label\n1,0,1,a\n1,1,zz,a\n", 3, "'zz' in column 'v' is not a number"),
    ("series_id,t,v,label\n1,0,1,a\n1,1,,a\n", 3, "empty value in column 'v'"),
    ("series_id,t,v,label\n1,0,1,a\n1,1,nan,a\n", 3, "not a finite"),
    ("series_id,t,v,label\n1,0,1,a\n1,1,-inf,a\n", 3, "not a finite"),
    ("series_id,t,v,label\n1,0,1,a\n2,0,1,b\n1,1,2,b\n", 4, "changes label from 'a' (line 2) to 'b'"),
    ("series_id,t,v,label\n1,0,1,a\n1,0,2,a\n", 3, "time 0 twice"),
    ("series_id,t,v,label\n1,0,1,\n", 2, "empty label"),
    ("series_id,t,v,label\n1,x,1,a\n", 2, "neither seconds nor an ISO 8601"),
    ("series_id,t,v,label\n1,0,1,a\n1,2024-01-01T00:00:00Z,1,a\n", 3, "not a number of seconds"),
    ("series_id,t,v,state,label\n1,0,1,on,a\n", 2, "column 'state' is not numeric"),
    ("id,t,v\n1,0,1\n", 1, "no 'series_id' column"),
    ("series_id,t,label\n1,0,a\n", 1, "no channel columns"),
    ("series_id,t,v,v\n1,0,1,2\n", 1, "appears twice"),
    ("series_id,t,v\n", 1, "no data rows"),
    ('series_id,t,v\n1,0,"1\n', 2, "not valid CSV"),
])
def test_long_csv_malformed(tmp_path, text, line, words):
    with pytest.raises(InputFileError) as error:
        read_long_csv(write(tmp_path, "bad.csv", text))
    one_line(error, f"bad.csv line {line}:", words)


def test_unknown_label_column_missing_file_empty_and_binary(tmp_path):
    path = write(tmp_path, "l.csv", "series_id,t,v,label\n1,0,1,a\n")
    with pytest.raises(InputFileError) as error:
        read_long_csv(path, label_column="class")
    one_line(error, "l.csv line 1:", "no label column 'class'")
    with pytest.raises(InputFileError) as error:
        read_wide_csv(path, label_column="class")
    one_line(error, "l.csv line 1:", "no column 'class'")
    with pytest.raises(InputFileError) as error:
        read_long_csv(tmp_path / "gone.csv")
    one_line(error, "gone.csv does not exist")
    with pytest.raises(InputFileError) as error:
        read_wide_csv(write(tmp_path, "e.csv", "\n  \n"))
    one_line(error, "e.csv is empty")
    (tmp_path / "b.ts").write_bytes(b"@data\n\xff\xfe\x00")
    with pytest.raises(InputFileError) as error:
        read_ts(tmp_path / "b.ts")
    one_line(error, "b.ts line 2:", "not UTF-8")
    with pytest.raises(InputFileError) as error:
        read_ts(tmp_path)
    one_line(error, "is a folder")


# ----------------------------------------------------------------------------- wide CSV


def test_wide_csv_time_label_and_channels(tmp_path):
    path = write(tmp_path, "w.csv", "Time,flow,label,p\n2022-03-20T11:00:00+01:00,100.5,normal,1\n"
                 "2022-03-20T12:00:00+01:00,24.3,anomaly,2\n")
    table = read_wide_csv(path)
    assert table.channels == ["flow", "p"] and table.labels == ["normal", "anomaly"]
    assert table.values.dtype == np.float32 and table.values.tolist() == [[100.5, 2 * 0 + 1], [pytest.approx(24.3), 2]]
    assert table.times.dtype == np.float64 and table.times.tolist() == [1647770400.0, 1647774000.0]
    plain = read_wide_csv(write(tmp_path, "p.csv", "a,b\n1,2\n3,4\n"))
    assert plain.times is None and plain.labels is None and plain.values.shape == (2, 2)
    named = read_wide_csv(write(tmp_path, "n.csv", "clock,a,state\n0,1,x\n0.5,2,y\n"), label_column="state",
                          time_column="clock")
    assert named.times.tolist() == [0, 0.5] and named.labels == ["x", "y"] and named.channels == ["a"]


@pytest.mark.parametrize("text, line, words", [
    ("t,a\n0,1\n2,1\n1,1\n", 4, "time goes backwards (from line 3)"),
    ("time,a\n2022-03-20T11:00:00,1\n", 2, "no UTC offset"),
    ("time,a,state\n0,1,on\n", 2, "column 'state' is not numeric ('on'): if it holds labels, name it with "
                                   "edge-train sensor --label-column"),
    ("t,time,a\n0,0,1\n", 1, "several time columns (t, time): keep one time column"),
    ("t;a;b\n0;1,5;2\n", 1, "the columns are separated by ';'"),
    ('a,b\n"1,5",2\n', 2, "column 'a' is not numeric ('1,5'): write '.' for decimals"),
    ("a,b\n1,2\n1\n", 3, "1 fields, the header has 2"),
    ("a,,b\n1,2,3\n", 1, "column 2 of the header has no name"),
])
def test_wide_csv_malformed(tmp_path, text, line, words):
    with pytest.raises(InputFileError) as error:
        read_wide_csv(write(tmp_path, "w.csv", text))
    one_line(error, f"w.csv line {line}:", words)


@pytest.mark.parametrize("text, line, words", [
    ("t,a\n0,1\n1,2\n0.5,3\n", 4, "time goes backwards (from line 3)"),  # across the chunk boundary
    ("t,a\n0,1\n1,2\n2022-01-01T00:00:00Z,3\n", 4, "is not a number of seconds like line 2's"),
    ("t,a\n0,1\n1,2\n2,x\n", 4, "value 'x' in column 'a' is not a number"),
])
def test_wide_csv_read_in_chunks_checks_across_them(tmp_path, monkeypatch, text, line, words):
    monkeypatch.setattr(csv_rows, "CHUNK_ROWS", 2)
    with pytest.raises(InputFileError) as error:
        read_wide_csv(write(tmp_path, "w.csv", text))
    one_line(error, f"w.csv line {line}:", words)
    whole = read_wide_csv(write(tmp_path, "ok.csv", "t,a,label\n0,1,x\n\n1,2,y\n2,3,z\n3,4,y\n4,5,x\n"))
    assert whole.values.ravel().tolist() == [1, 2, 3, 4, 5] and whole.times.tolist() == [0, 1, 2, 3, 4]
    assert whole.labels == ["x", "y", "z", "y", "x"]


def test_wide_csv_of_a_long_recording_costs_a_few_times_its_size(tmp_path):
    # 600,000 rows had taken 500 MB as Python strings (17x the file); edge-run replays such files
    rows = np.random.default_rng(0).normal(size=(100_000, 3))
    path = tmp_path / "long.csv"
    path.write_text("t,a,b,c,label\n" + "".join(f"{i / 100:.2f},{a:.5f},{b:.5f},{c:.5f},normal\n"
                                                  for i, (a, b, c) in enumerate(rows)))
    tracemalloc.start()
    try:
        table = read_wide_csv(path, channels=["c", "a"])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5 * path.stat().st_size, peak / path.stat().st_size
    assert table.labels is None and table.values.shape == (100_000, 2)  # a model's inputs: labels not read
    assert np.allclose(table.values, rows[:, [2, 0]], atol=1e-5)


@pytest.mark.parametrize("data", [b't,a\r0,"1"\r1,2\r', b"t,a\r\n0,1\r\n1,2\r", b't,a,label\r0,1,"x\ny"\r1,2,y\r'],
                         ids=["classic Mac", "CRLF with a stray CR", "lone CR with a quoted newline"])
def test_wide_csv_ends_each_line_at_crlf_cr_or_lf(tmp_path, data):
    path = tmp_path / "cr.csv"
    path.write_bytes(data)
    assert read_wide_csv(path).values.ravel().tolist() == [1, 2]


def test_wide_windows_label_is_first_fault():
    labels = ["normal"] * 4 + ["spike", "drift"] + ["normal"] * 4
    table = WideTable(values=np.arange(20, dtype=np.float32).reshape(10, 2), channels=["a", "b"], times=None,
                      labels=labels, origin="mem")
    s = wide_windows(table, window=4, stride=2)
    assert [x[0, 0] for x in s.series] == [0, 4, 8, 12]
    assert s.labels == ["normal", "spike", "spike", "normal"] and s.channels == ["a", "b"]
    assert wide_windows(table, window=5, stride=5).labels == ["spike", "drift"]
    with pytest.raises(InputFileError, match="fewer than the window of 11"):
        wide_windows(table, window=11, stride=1)


# ----------------------------------------------------------------------------- dispatch and shaping


def test_read_series_dispatch(tmp_path):
    assert read_series(write(tmp_path, "a.ts", TS_HEADER + "1,2:good\n")).labels == ["good"]
    assert len(read_series(write(tmp_path, "l.csv", "series_id,t,v,label\n1,0,1,a\n2,0,1,b\n")).series) == 2
    wide = write(tmp_path, "w.csv", "t,v,label\n" + "".join(f"{i},{i},normal\n" for i in range(10)))
    s = read_series(wide, window=4)
    assert len(s.series) == 2 and s.series[1][0, 0] == 4
    assert len(read_series(wide, window=4, stride=1).series) == 7
    with pytest.raises(InputFileError) as error:
        read_series(wide)
    one_line(error, "wide CSV", "--window")
    with pytest.raises(InputFileError) as error:
        read_series(write(tmp_path, "x.parquet", "x"))
    one_line(error, "unknown sensor file type '.parquet'")


def test_fit_length_resample_and_pad():
    series = [np.array([[0.0, 10.0], [2.0, 30.0]], np.float32), np.arange(8, dtype=np.float32).reshape(4, 2)]
    resampled = fit_length(series, 3)
    assert resampled.shape == (2, 3, 2) and resampled.dtype == np.float32
    assert resampled[0].tolist() == [[0, 10], [1, 20], [2, 30]] and resampled[1, :, 0].tolist() == [0, 3, 6]
    padded = fit_length(series, 3, how="pad")
    assert padded[0].tolist() == [[0, 10], [2, 30], [2, 30]] and padded[1, :, 0].tolist() == [0, 2, 4]
    with pytest.raises(ValueError):
        fit_length(series, 3, how="stretch")


# ----------------------------------------------------------------------------- fuzz

FUZZ_ALPHABET = st.sampled_from(list("0123456789.,:-+e?\n\r \"#@tT") + ["series_id", "label", "time", "nan", "inf",
                                                                       "@data", "@classLabel true a b", "a", "b", "Z"])
FUZZ_TEXT = st.one_of(st.lists(FUZZ_ALPHABET, max_size=60).map("".join), st.text(max_size=80), st.binary(max_size=80))


def _valid(result):
    if isinstance(result, WideTable):
        assert result.values.dtype == np.float32 and result.values.ndim == 2
        assert result.values.shape[1] == len(result.channels) >= 1 and np.isfinite(result.values).all()
        assert result.labels is None or len(result.labels) == len(result.values)
        assert result.times is None or len(result.times) == len(result.values)
        return
    assert isinstance(result, SeriesSet) and result.series
    assert result.labels is None or len(result.labels) == len(result.series)
    for x in result.series:
        assert x.dtype == np.float32 and x.ndim == 2 and x.shape[1] == len(result.channels) and len(x) >= 1
        assert np.isfinite(x).all()


@settings(max_examples=120, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=FUZZ_TEXT, reader=st.sampled_from(["ts", "long", "wide"]), prefix=st.sampled_from(
    ["", TS_HEADER, "series_id,t,v,label\n", "t,a,label\n"]))
def test_fuzz_readers_return_valid_sets_or_input_errors(tmp_path, content, reader, prefix):
    path = tmp_path / "fuzz.txt"
    path.write_bytes(prefix.encode() + (content if isinstance(content, bytes) else content.encode("utf-8", "replace")))
    read = {"ts": read_ts, "long": read_long_csv, "wide": read_wide_csv}[reader]
    try:
        result = read(path)
    except InputFileError as error:
        assert "\n" not in str(error) and str(path) in str(error)
        return
    _valid(result)

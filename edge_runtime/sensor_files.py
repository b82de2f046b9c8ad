"""Reading the sensor CSVs people already have into arrays a sensor model takes.

Two CSV layouts (a `.ts` file is `ucr_ts`'s; `read_series` takes any of the three):

- Long CSV: one row per (series, time): `series_id, t, <channel>..., label`.
- Wide CSV: one row per sample time of a continuous recording: `time, <channel>..., label`.
  `wide_windows` cuts it into windows for a model.

The CSV text itself becomes rows and typed columns in `csv_rows`. Every malformed
input raises `InputFileError` with one line that names the file, the line and what
to do; nothing is guessed or filled in silently.
Runtime code: numpy and the standard library only.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from edge_runtime.csv_rows import is_number, iter_csv_rows, numeric_columns, parse_times, read_csv_rows, text_labels
from edge_runtime.errors import InputFileError
from edge_runtime.sensor_data import SeriesSet, WideTable, fail, read_text, show
from edge_runtime.ucr_ts import read_ts

TIME_NAMES = ("t", "time", "timestamp")  # wide CSV: the time column, whatever the case


# ----------------------------------------------------------------------------- columns


def _channel_columns(path, header: list[str], header_line: int, used: set[str]) -> list[int]:
    channels = [i for i, name in enumerate(header) if name not in used]
    if not channels:
        raise fail(path, header_line, f"no channel columns besides {', '.join(sorted(used))}",
                   "add a column per sensor channel")
    return channels


# A text column among the channels: labels under another name, or a column to drop (CLI words, not the API's).
LABEL_HINT = "if it holds labels, name it with edge-train sensor --label-column; otherwise remove the column"


# ----------------------------------------------------------------------------- long CSV


def read_long_csv(path, label_column: str | None = "label", id_column: str = "series_id",
                  time_column: str = "t") -> SeriesSet:
    """One row per (series, time): `series_id, t, <channel>..., label`.

    Series keep the order in which their ids first appear; each series' rows are sorted
    by t (seconds, or ISO 8601 with an offset), which must not repeat inside a series.
    Channels are every other column, in header order; each must be numeric. The label
    must stay the same within a series. A file without the default 'label' column gives
    `labels=None`; any other label column the file lacks is an error.
    """
    path, header, header_line, rows, lines = read_csv_rows(path)
    for name in (id_column, time_column):
        if name not in header:
            raise fail(path, header_line, f"no {name!r} column (header: {', '.join(header)})",
                       f"name that column {name!r}")
    if label_column is not None and label_column not in header:
        if label_column != "label":
            raise fail(path, header_line, f"no label column {label_column!r} (header: {', '.join(header)})",
                       "give the name of the column that holds the labels")
        label_column = None
    used = {id_column, time_column} | ({label_column} if label_column else set())
    columns = _channel_columns(path, header, header_line, used)
    id_col, time_col = header.index(id_column), header.index(time_column)
    times = parse_times(path, [row[time_col] for row in rows], lines, time_column)
    values = numeric_columns(path, rows, lines, header, columns, LABEL_HINT)
    labels = text_labels(path, [row[header.index(label_column)] for row in rows], lines, label_column) \
        if label_column else None
    members: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        key = row[id_col].strip()
        if not key:
            raise fail(path, lines[i], f"empty {id_column!r}", "give every row the id of its series")
        members.setdefault(key, []).append(i)
    series, series_labels = [], []
    for key, index in members.items():
        index = np.asarray(index)
        order = index[np.argsort(times[index], kind="stable")]
        sorted_times = times[order]
        repeat = np.flatnonzero(np.diff(sorted_times) == 0)
        if repeat.size:
            a, b = sorted((lines[order[repeat[0]]], lines[order[repeat[0] + 1]]))
            raise fail(path, b, f"series {show(key)} has time {rows[order[repeat[0]]][time_col].strip()} twice "
                       f"(also line {a})", "give each sample of a series its own time")
        if labels is not None:
            first = labels[index[0]]
            for i in index:
                if labels[i] != first:
                    raise fail(path, lines[i], f"series {show(key)} changes label from {show(first)} "
                               f"(line {lines[index[0]]}) to {show(labels[i])}",
                               "give every row of a series the same label, or split it into two series")
            series_labels.append(first)
        series.append(values[order])
    return SeriesSet(series=series, labels=series_labels if labels is not None else None,
                     channels=[header[c] for c in columns], origin=str(path))


# ----------------------------------------------------------------------------- wide CSV


def _wide_columns(path, header: list[str], header_line: int, time_column: str | None, label_column: str | None,
                  channels: list[str] | None) -> tuple[str | None, str | None, list[int]]:
    """(time column, label column, channel columns) of a wide CSV's header; see `read_wide_csv`."""
    for name, option in ((time_column, "time_column"), (label_column, "label_column")):
        if name is not None and name not in header:
            raise fail(path, header_line, f"no column {name!r} (header: {', '.join(header)})",
                       f"give {option} as one of the header's names")
    if time_column is None:
        found = [name for name in header if name.lower() in TIME_NAMES]
        if len(found) > 1:
            raise fail(path, header_line, f"several time columns ({', '.join(found)})",
                       "keep one time column and rename or remove the others")
        time_column = found[0] if found else None
    if label_column is None and "label" in header and channels is None:  # a model's inputs need no labels
        label_column = "label"
    if time_column is not None and time_column == label_column:
        raise fail(path, header_line, f"column {time_column!r} given as both time and label", "give two columns")
    if channels is None:
        used = {name for name in (time_column, label_column) if name is not None}
        return time_column, label_column, _channel_columns(path, header, header_line, used)
    missing = [name for name in channels if name not in header]
    if missing:
        raise fail(path, header_line, f"no column {', '.join(map(repr, missing))} for the model's channels "
                   f"({', '.join(channels)}; header: {', '.join(header)})", "record the channels the model reads")
    return time_column, label_column, [header.index(name) for name in channels]


def read_wide_csv(path, label_column: str | None = None, time_column: str | None = None,
                  channels: list[str] | None = None) -> WideTable:
    """One row per sample: an optional time column, an optional label column, the rest channels.

    The time column is the one named t, time or timestamp (any case) unless `time_column`
    names it; its values are seconds, or ISO 8601 times with an offset (-> epoch seconds),
    and must not go backwards. The label column is 'label' unless `label_column` names it.
    Every other column is a channel and must be numeric — or, with `channels` (a model's
    inputs), exactly those columns are read, in that order, and the rest are not (nor
    labels, unless `label_column` names them). Rows are parsed CHUNK_ROWS at a time, so a
    long recording costs a few times its file size in memory, not twenty.
    """
    parts: list[tuple[np.ndarray | None, np.ndarray, list[str] | None]] = []
    like = last = None  # the first time's kind and line; the last time and its line, to check across chunks
    for path, header, header_line, rows, lines in iter_csv_rows(path):
        if not parts:
            time_column, label_column, columns = _wide_columns(path, header, header_line, time_column,
                                                               label_column, channels)
        times = None
        if time_column is not None:
            texts = [row[header.index(time_column)] for row in rows]
            like = like or (is_number(texts[0]), lines[0])
            times = parse_times(path, texts, lines, time_column, like)
            joined = times if last is None else np.concatenate(([last[0]], times))
            joined_lines = lines if last is None else [last[1], *lines]
            back = np.flatnonzero(np.diff(joined) < 0)
            if back.size:
                raise fail(path, joined_lines[back[0] + 1], f"time goes backwards (from line {joined_lines[back[0]]})",
                           "sort the rows by time")
            last = (times[-1], lines[-1])
        hint = "make the model's channels numbers" if channels is not None else LABEL_HINT
        values = numeric_columns(path, rows, lines, header, columns, None if parts else hint)
        labels = text_labels(path, [row[header.index(label_column)] for row in rows], lines, label_column) \
            if label_column else None
        parts.append((times, values, labels))
    times = np.concatenate([p[0] for p in parts]) if time_column is not None else None
    values = np.concatenate([p[1] for p in parts]) if len(parts) > 1 else parts[0][1]
    labels = [label for p in parts for label in p[2]] if label_column else None
    return WideTable(values=values, channels=[header[c] for c in columns], times=times, labels=labels, origin=str(path))


def wide_windows(table: WideTable, window: int, stride: int, good_label: str = "normal") -> SeriesSet:
    """Sliding windows of `window` rows every `stride` rows (the last partial window is dropped).

    A window's label is the first label in it that is not `good_label`, else `good_label`.
    """
    if window < 1 or stride < 1:
        raise ValueError(f"window and stride must be at least 1, got {window} and {stride}")
    n = len(table.values)
    if window > n:
        raise InputFileError(f"{table.origin} has {n} samples, fewer than the window of {window}: "
                             "give a smaller window or a longer recording")
    starts = range(0, n - window + 1, stride)
    series = [table.values[s:s + window] for s in starts]
    labels = None
    if table.labels is not None:
        bad = np.array([label != good_label for label in table.labels])
        labels = []
        for s in starts:
            hit = np.flatnonzero(bad[s:s + window])
            labels.append(table.labels[s + hit[0]] if hit.size else good_label)
    return SeriesSet(series=series, labels=labels, channels=list(table.channels), origin=table.origin)


# ----------------------------------------------------------------------------- dispatch and shaping


def _csv_header(path) -> list[str]:
    path, text = read_text(path)
    first = next(line for line in text.splitlines() if line.strip())
    try:
        return [name.strip() for name in next(csv.reader([first]))]
    except csv.Error:
        return []  # read_wide_csv reports it with its line


def read_series(path, label_column: str = "label", window: int | None = None,
                stride: int | None = None) -> SeriesSet:
    """Series from any of the three layouts: .ts, long CSV (has a series_id column), wide CSV (cut into windows).

    A wide CSV needs `window` (rows per series); `stride` defaults to `window`.
    """
    suffix = Path(path).suffix.lower()
    if suffix == ".ts":
        return read_ts(path)
    if suffix != ".csv":
        if not Path(path).exists():
            raise InputFileError(f"{path} does not exist: check the path")
        raise InputFileError(f"{path}: unknown sensor file type {suffix or '(none)'!r}: give a .ts or .csv file")
    if "series_id" in _csv_header(path):
        return read_long_csv(path, label_column=label_column)
    if window is None:
        raise InputFileError(f"{path} is a wide CSV (one row per sample, no series_id column): "
                             "give a window length (--window) to cut it into series")
    table = read_wide_csv(path, label_column=None if label_column == "label" else label_column)
    return wide_windows(table, window, stride or window)


def fit_length(series: list[np.ndarray], length: int, how: str = "resample") -> np.ndarray:
    """Series of any lengths as one float32 (N, length, C) array.

    "resample": linear interpolation per channel onto `length` evenly spaced points;
    "pad": keep the first `length` samples, padding a short series by repeating its last sample.
    """
    if how not in ("resample", "pad"):
        raise ValueError(f"how must be 'resample' or 'pad', got {how!r}")
    if length < 1:
        raise ValueError(f"length must be at least 1, got {length}")
    if not series:
        raise ValueError("no series to fit")
    channels = {s.shape[1] if s.ndim == 2 else -1 for s in series}
    if len(channels) != 1 or -1 in channels or any(len(s) == 0 for s in series):
        raise ValueError("every series must be a non-empty (T, C) array with the same C")
    out = np.empty((len(series), length, channels.pop()), dtype=np.float32)
    for i, s in enumerate(series):
        s = np.asarray(s, dtype=np.float64)
        if how == "pad":
            take = s[:length]
            out[i, :len(take)] = take
            out[i, len(take):] = take[-1]
        elif len(s) == 1:
            out[i] = s[0]
        else:
            old = np.arange(len(s), dtype=np.float64)
            new = np.linspace(0.0, len(s) - 1, length)
            for c in range(s.shape[1]):
                out[i, :, c] = np.interp(new, old, s[:, c])
    return out

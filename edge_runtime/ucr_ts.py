"""Reading UCR/UEA `.ts` files (sktime's format, e.g. PLAID) into a `SeriesSet`.

One series per line, dimensions separated by ':', values by ',', the class label
last; lengths may differ. Errors are `sensor_data`'s one-line `InputFileError`s.
Runtime code: numpy and the standard library only.
"""

from __future__ import annotations

import numpy as np

from edge_runtime.errors import InputFileError
from edge_runtime.sensor_data import F32_MAX, SeriesSet, fail, read_text, show

_TS_KEYS = ("@problemname", "@timestamps", "@missing", "@univariate", "@dimension", "@dimensions", "@equallength",
            "@serieslength", "@classlabel", "@targetlabel", "@data")


def _ts_bool(path, line: int, key: str, tokens: list[str]) -> bool:
    if len(tokens) < 2 or tokens[1].lower() not in ("true", "false"):
        raise fail(path, line, f"{key} needs true or false", f"write e.g. '{key} false'")
    return tokens[1].lower() == "true"


def _ts_int(path, line: int, key: str, tokens: list[str]) -> int:
    if len(tokens) != 2 or not tokens[1].isdecimal() or int(tokens[1]) < 1:
        raise fail(path, line, f"{key} needs one positive whole number", f"write e.g. '{key} 100'")
    return int(tokens[1])


def _ts_values(path, line: int, part: str, dim: int, allow_missing: bool) -> np.ndarray:
    tokens = part.split(",")
    try:
        values = np.array(tokens, dtype=np.float64)
    except ValueError:
        values = np.empty(len(tokens), dtype=np.float64)
        for i, token in enumerate(tokens):
            token = token.strip()
            if token == "?":
                values[i] = np.nan
                continue
            try:
                values[i] = float(token)
            except ValueError:
                what = f"value {i + 1} of dimension {dim + 1} is empty" if not token else \
                    f"value {i + 1} of dimension {dim + 1} ({show(token)}) is not a number"
                raise fail(path, line, what, "separate values with ',' and dimensions with ':'") from None
    if np.isnan(values).any() and not allow_missing:
        raise fail(path, line, f"missing value ('?' or NaN) in dimension {dim + 1}",
                   "fill the gap in the file, or delete that series")
    if np.isinf(values).any() or (np.abs(values[~np.isnan(values)]) > F32_MAX).any():
        raise fail(path, line, f"infinite or out-of-float32-range value in dimension {dim + 1}",
                   "fix the value (|x| must stay below 3.4e38)")
    return values


def read_ts(path, allow_missing: bool = False) -> SeriesSet:
    """A UCR/UEA `.ts` file: univariate or multivariate, equal or variable length, with or without labels.

    Honoured header keys: @problemName, @timeStamps (false only), @missing, @univariate,
    @dimensions, @equalLength, @seriesLength, @classLabel (true <classes> | false) and
    @targetLabel (a regression target, kept as text in `labels`). Other @ keys are ignored,
    as sktime does. '?' marks a missing value: read as NaN when `allow_missing`, refused otherwise.
    Channels are named dim_0, dim_1, ...
    """
    path, text = read_text(path)
    header: dict = {}
    series: list[np.ndarray] = []
    labels: list[str] = []
    data_line = None
    dims = None
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.strip()
        if not line or line[0] in "#%":  # comments: "#" (UEA) or "%" (ARFF style)
            continue
        if data_line is None:
            if not line.startswith("@"):
                raise fail(path, number, "data before the @data line",
                           "put the header (@problemName ... @data) before the series")
            tokens = line.split()
            key = tokens[0].lower()
            if key not in _TS_KEYS:
                continue
            if key == "@timestamps":
                if _ts_bool(path, number, tokens[0], tokens):
                    raise fail(path, number, "@timeStamps true is not supported",
                               "write the values without timestamps ('@timeStamps false')")
            elif key in ("@univariate", "@equallength", "@missing"):
                header[key] = _ts_bool(path, number, tokens[0], tokens)
            elif key in ("@dimension", "@dimensions", "@serieslength"):
                header["@dimensions" if key.startswith("@dim") else key] = _ts_int(path, number, tokens[0], tokens)
            elif key == "@classlabel":
                header["labelled"] = _ts_bool(path, number, tokens[0], tokens)
                header["classes"] = tokens[2:] if header["labelled"] else []
                if header["labelled"] and not header["classes"]:
                    raise fail(path, number, "@classLabel true without class names",
                               "list them, e.g. '@classLabel true normal fault'")
            elif key == "@targetlabel":
                header["labelled"] = _ts_bool(path, number, tokens[0], tokens)
                header["classes"] = []
            elif key == "@data":
                if "labelled" not in header:
                    raise fail(path, number, "no @classLabel line before @data",
                               "add '@classLabel false' or '@classLabel true <class names>' to the header")
                if header.get("@univariate") and header.get("@dimensions", 1) != 1:
                    raise fail(path, number, "@univariate true but @dimensions is not 1", "fix the header")
                dims = 1 if header.get("@univariate") else header.get("@dimensions")
                data_line = number
            continue
        if line.startswith("@"):
            raise fail(path, number, f"header line {show(line)} after @data", "move it above @data")
        parts = line.split(":")
        if header["labelled"]:
            if len(parts) < 2:
                raise fail(path, number, "no ':<label>' at the end of the series",
                           "end each series with ':' and its class, or declare '@classLabel false'")
            label = parts.pop().strip()
            if not label:
                raise fail(path, number, "empty label after the last ':'", "give the series its class")
            if header["classes"] and label not in header["classes"]:
                raise fail(path, number, f"label {show(label)} is not among @classLabel's classes "
                           f"({' '.join(header['classes'])})", "add it to @classLabel or fix the label")
            labels.append(label)
        if dims is None:
            dims = len(parts)
        elif len(parts) != dims:
            raise fail(path, number, f"{len(parts)} dimensions, expected {dims}",
                       "give every series the same number of ':'-separated dimensions")
        columns = [_ts_values(path, number, part, d, allow_missing) for d, part in enumerate(parts)]
        length = len(columns[0])
        for d, column in enumerate(columns[1:], start=2):
            if len(column) != length:
                raise fail(path, number, f"dimension {d} has {len(column)} values, dimension 1 has {length}",
                           "give all dimensions of a series the same length")
        if header.get("@serieslength") and length != header["@serieslength"]:
            raise fail(path, number, f"{length} values per dimension, @seriesLength says {header['@serieslength']}",
                       "fix the series or the header")
        if header.get("@equallength") and series and length != len(series[0]):
            raise fail(path, number, f"{length} values per dimension, the first series has {len(series[0])} "
                       "and @equalLength is true", "fix the series, or declare '@equalLength false'")
        series.append(np.stack(columns, axis=1).astype(np.float32))
    if data_line is None:
        raise InputFileError(f"{path}: no @data line: a .ts file needs its header, then '@data', "
                             "then one series a line")
    if not series:
        raise fail(path, data_line, "no series after @data", "add one series per line after @data")
    return SeriesSet(series=series, labels=labels if header["labelled"] else None,
                     channels=[f"dim_{d}" for d in range(dims)], origin=str(path))

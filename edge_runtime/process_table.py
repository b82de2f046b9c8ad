"""Process parameters per part, for quality models: a CSV with one row per part.

Feature columns are numbers (temperatures, pressures, speeds ...); the target is a
number (a measured dimension: regression against spec limits) or a word
(pass / fail: classification). Columns that are neither a feature nor the target
(part ids, operator names) are ignored, and said to be.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_runtime.errors import InputFileError


@dataclass(frozen=True)
class ProcessTable:
    features: np.ndarray  # float32 (N, C)
    names: list[str]  # feature names, len C
    target: list[str] | None  # the target column as read (None when the file has none)
    ignored: list[str]  # columns that are neither
    origin: str

    def target_values(self) -> np.ndarray:
        """The target as numbers (regression); InputFileError when a value is not one."""
        try:
            values = np.array([float(v) for v in self.target], dtype=np.float64)
        except ValueError as exc:
            raise InputFileError(f"{self.origin}: the target column holds {exc.args[0].split(': ')[-1]}, "
                                 "not a number") from exc
        if not np.isfinite(values).all():
            raise InputFileError(f"{self.origin}: the target column holds NaN or inf: clean those rows")
        return values


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value


def read_process_table(path: str | Path, target: str | None, features: list[str] | None = None) -> ProcessTable:
    """Read the CSV; `features` names the input columns (default: every numeric column but the target)."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path} does not exist: give a CSV with one row per part")
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InputFileError(f"{path} is not a readable CSV ({exc}): save it as UTF-8 CSV") from exc
    if len(rows) < 2:
        raise InputFileError(f"{path} has no data rows: it needs a header and one row per part")
    header, body = [h.strip() for h in rows[0]], rows[1:]
    for number, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise InputFileError(f"{path}:{number}: {len(row)} fields, the header has {len(header)}: fix that row")
    if target is not None and target not in header:
        raise InputFileError(f"{path} has no column {target!r} (columns: {', '.join(header)}): name the target "
                             "with --target")
    others = [h for h in header if h != target]
    if features is None:
        features = [h for h in others if all(_number(row[header.index(h)]) is not None for row in body)]
    missing = [f for f in features if f not in header]
    if missing:
        raise InputFileError(f"{path} lacks the model's input columns {', '.join(missing)}")
    if not features:
        raise InputFileError(f"{path} has no numeric columns besides the target: nothing to predict from")
    columns = [header.index(f) for f in features]
    values = np.empty((len(body), len(columns)), dtype=np.float32)
    for number, row in enumerate(body, start=2):
        for j, col in enumerate(columns):
            value = _number(row[col])
            if value is None or not math.isfinite(value):
                raise InputFileError(f"{path}:{number}: {features[j]} = {row[col]!r} is not a finite number: "
                                     "fix or drop that row")
            values[number - 2, j] = value
    return ProcessTable(values, list(features), [row[header.index(target)].strip() for row in body] if target else None,
                        [h for h in others if h not in features], str(path))

"""Process parameters per part, for quality models: a CSV with one row per part.

Feature columns are numbers (temperatures, pressures, speeds ...); the target is a
number (a measured dimension: regression against spec limits) or a word
(pass / fail: classification). Columns that are neither a feature nor the target
(part ids, operator names) are left out, and said to be. Parsing and its errors
are sensor_files' (the same CSV rules as a sensor recording).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_runtime.errors import InputFileError
from edge_runtime.csv_rows import is_number, numeric_columns, read_csv_rows


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


def read_process_table(path: str | Path, target: str | None, features: list[str] | None = None) -> ProcessTable:
    """Read the CSV; `features` names the input columns (default: every numeric column but the target)."""
    path, header, _, rows, lines = read_csv_rows(path)
    if target is not None and target not in header:
        # `features` given: read for a trained model (edge-eval, edge-export), whose target is fixed
        hint = ("give a file of the same process, with the column the model was trained to predict"
                if features is not None else "name the target with --target")
        raise InputFileError(f"{path} has no column {target!r} (columns: {', '.join(header)}): {hint}")
    others = [h for h in header if h != target]
    if features is None:
        features = [h for h in others if is_number(rows[0][header.index(h)])]
    missing = [f for f in features if f not in header]
    if missing:
        raise InputFileError(f"{path} lacks the model's input columns {', '.join(missing)}")
    if not features:
        raise InputFileError(f"{path} has no numeric columns besides the target: nothing to predict from")
    values = numeric_columns(path, rows, lines, header, [header.index(f) for f in features],
                             "make every input column numeric (edge-train quality: name the target column with --target)")
    return ProcessTable(values, list(features), [row[header.index(target)].strip() for row in rows] if target else None,
                        [h for h in others if h not in features], str(path))

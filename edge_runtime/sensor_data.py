"""What the sensor file readers share: the containers they return and the helpers behind their errors.

`sensor_files` (CSV) and `ucr_ts` (UCR/UEA `.ts`) read through these, so both
open files, check values and word their errors the same way: every malformed
input raises `InputFileError` with one line that names the file, the line and
what to do; nothing is guessed or filled in silently.
Runtime code: numpy and the standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_runtime.errors import InputFileError

F32_MAX = float(np.finfo(np.float32).max)


@dataclass(frozen=True)
class SeriesSet:
    """Series of one file: each a float32 (T_i, C) array; lengths may differ."""

    series: list[np.ndarray]
    labels: list[str] | None  # one per series, None when the file has none
    channels: list[str]  # len C
    origin: str  # the file, for messages


@dataclass(frozen=True)
class WideTable:
    """A continuous recording: one row per sample time."""

    values: np.ndarray  # float32 (N, C)
    channels: list[str]
    times: np.ndarray | None  # float64 (N,) seconds, when a time column exists
    labels: list[str] | None  # per row, when a label column exists
    origin: str


# ----------------------------------------------------------------------------- reading and checking


def fail(path, line: int | None, what: str, todo: str) -> InputFileError:
    where = f"{path} line {line}" if line is not None else f"{path}"
    return InputFileError(f"{where}: {what}: {todo}")


def show(text: str, limit: int = 30) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def read_text(path) -> tuple[Path, str]:
    """The file's text (UTF-8, a BOM allowed); missing, unreadable, empty or binary files fail."""
    path = Path(path)
    if not path.exists():
        raise InputFileError(f"{path} does not exist: check the path")
    if path.is_dir():
        raise InputFileError(f"{path} is a folder: give the sensor file itself (.ts or .csv)")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise InputFileError(f"cannot read {path} ({error.strerror}): check its permissions") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise fail(path, line, "not UTF-8 text", "save the file as UTF-8 text") from None
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise fail(path, line, "a NUL byte (binary data)", "give a text file")
    if not text.strip():
        raise InputFileError(f"{path} is empty: give a file with data")
    return path, text


def check_finite(path, values: np.ndarray, lines, column: str | None = None) -> np.ndarray:
    """float32 of `values` (float64, one per line); NaN, inf or out-of-float32-range values fail."""
    bad = ~np.isfinite(values) | (np.abs(values) > F32_MAX)
    if bad.any():
        i = int(np.argmax(bad))
        where = f" in column {column!r}" if column else ""
        raise fail(path, lines[i], f"value {float(values[i])}{where} is not a finite float32 number",
                   "fix or remove the sample (NaN, inf and values beyond ±3.4e38 are refused)")
    return values.astype(np.float32)


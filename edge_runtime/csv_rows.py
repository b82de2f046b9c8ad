"""CSV text to checked rows and typed columns: the layer under the sensor files and the process tables.

Rows come CHUNK_ROWS at a time (`iter_csv_rows`), so a long recording is held as arrays, not as millions of
strings; each line ends at CRLF, CR or LF, as in universal newlines. Columns become float (`numeric_columns`),
times in seconds (`parse_times`) or labels (`text_labels`). Every fault is one `InputFileError` line naming the
file and the line. Runtime code: numpy and the standard library only.
"""

from __future__ import annotations

import csv
import re
from datetime import datetime
from pathlib import Path

import numpy as np

from edge_runtime.sensor_data import check_finite, fail, read_text, show


def _numbers(path, texts: list[str], lines: list[int], column: str) -> np.ndarray:
    """float64 of a column's texts; the first empty or non-numeric one fails, naming its line."""
    try:
        return np.array(texts, dtype=np.float64)
    except ValueError:
        pass
    for text, line in zip(texts, lines):
        try:
            float(text)
        except ValueError:
            what = f"empty value in column {column!r}" if not text.strip() else \
                f"value {show(text)} in column {column!r} is not a number"
            raise fail(path, line, what, "every channel value must be a number (decimal point '.')") from None
    raise AssertionError("numpy refused a column that float() accepts")  # a bug, not a user error


def is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def parse_times(path, texts: list[str], lines: list[int], column: str,
                 like: tuple[bool, int] | None = None) -> np.ndarray:
    """Seconds (numbers) or ISO 8601 times with a UTC offset (-> epoch seconds), one kind per file.

    `like` is (numeric, line) of the file's first time when `texts` is a later chunk of it.
    """
    numeric, first_line = like if like else (is_number(texts[0]), lines[0])
    if numeric:
        try:
            times = np.array(texts, dtype=np.float64)
        except ValueError:
            for text, line in zip(texts, lines):
                try:
                    float(text)
                except ValueError:
                    raise fail(path, line, f"time {show(text)} in column {column!r} is not a number of seconds "
                               f"like line {first_line}'s", "give every row's time in the same form") from None
            raise AssertionError("numpy refused times that float() accepts")
        bad = ~np.isfinite(times)
        if bad.any():
            i = int(np.argmax(bad))
            raise fail(path, lines[i], f"time {texts[i].strip()!r} is not a finite number", "fix the time")
        return times
    times = np.empty(len(texts), dtype=np.float64)
    for i, (text, line) in enumerate(zip(texts, lines)):
        try:
            stamp = datetime.fromisoformat(text.strip())
            times[i] = stamp.timestamp()
        except (ValueError, OverflowError, OSError):
            raise fail(path, line, f"time {show(text)} in column {column!r} is neither seconds nor an ISO 8601 time",
                       "write times as seconds or like 2022-03-20T11:00:00+01:00") from None
        if stamp.tzinfo is None or stamp.utcoffset() is None:
            raise fail(path, line, f"time {show(text)} has no UTC offset",
                       "add the offset (e.g. +01:00 or Z) so the time is unambiguous")
    return times


CHUNK_ROWS = 10_000  # rows parsed at a time: a long recording is held as arrays, not as millions of strings


def iter_csv_rows(path):
    """(path, header, header's line, rows, line of each row) per chunk of up to CHUNK_ROWS rows.

    Blank lines are skipped and every row is as wide as the header; the header's faults,
    and a header without data rows, fail before anything is yielded.
    """
    path, text = read_text(path)
    reader = csv.reader(_lines(text), strict=True)
    rows: list[list[str]] = []
    lines: list[int] = []
    header: list[str] | None = None
    header_line = 1
    sent = False
    try:
        for row in reader:
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if header is None:
                header = [name.strip() for name in row]
                header_line = reader.line_num
                _check_header(path, header, header_line)
                continue
            if len(row) != len(header):
                raise fail(path, reader.line_num, f"{len(row)} fields, the header has {len(header)}",
                           "give every row one value per column")
            rows.append(row)
            lines.append(reader.line_num)
            if len(rows) == CHUNK_ROWS:
                yield path, header, header_line, rows, lines
                rows, lines, sent = [], [], True
    except csv.Error as error:
        raise fail(path, reader.line_num, f"not valid CSV ({error})", "fix the quoting of that line") from None
    if header is None:  # only empty fields and blank lines, e.g. a lone ""
        raise fail(path, 1, "no header row: every line is empty", "put the column names on the first line")
    if not rows and not sent:
        raise fail(path, header_line, "a header and no data rows", "give at least one row of data")
    if rows:
        yield path, header, header_line, rows, lines


_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")  # each line ends at \r\n, \r or \n, as in universal newlines


def _lines(text: str):
    """The text's lines with their endings, one at a time (a StringIO would copy the text at 4 bytes a character)."""
    return (match.group() for match in _LINE.finditer(text))


def _check_header(path, header: list[str], header_line: int) -> None:
    if len(header) == 1 and ";" in header[0]:  # a spreadsheet's export in a comma-decimal locale
        raise fail(path, header_line, "the columns are separated by ';'",
                   "save it as CSV with ',' between columns and '.' for decimals")
    for i, name in enumerate(header):
        if not name:
            raise fail(path, header_line, f"column {i + 1} of the header has no name", "name every column")
        if name in header[:i]:
            raise fail(path, header_line, f"column {name!r} appears twice in the header", "give columns unique names")


def read_csv_rows(path) -> tuple[Path, list[str], int, list[list[str]], list[int]]:
    """(path, header, header's line, rows, line of each row): `iter_csv_rows`' chunks as one."""
    rows: list[list[str]] = []
    lines: list[int] = []
    for path, header, header_line, chunk, chunk_lines in iter_csv_rows(path):
        rows += chunk
        lines += chunk_lines
    return path, header, header_line, rows, lines


def text_labels(path, texts: list[str], lines: list[int], column: str) -> list[str]:
    labels = [text.strip() for text in texts]
    for label, line in zip(labels, lines):
        if not label:
            raise fail(path, line, f"empty label in column {column!r}", "give every row its label")
    return labels


def numeric_columns(path, rows, lines, header, columns: list[int], label_hint: str | None) -> np.ndarray:
    """float32 (N, C) of the channel columns; a text column fails with `label_hint` (None: a later chunk's rows)."""
    out = np.empty((len(rows), len(columns)), dtype=np.float32)
    for j, col in enumerate(columns):
        texts = [row[col] for row in rows]
        if label_hint is not None and not is_number(texts[0]):
            if texts[0].strip():
                comma = "write '.' for decimals, " if re.fullmatch(r"-?\d+,\d+", texts[0].strip()) else ""
                raise fail(path, lines[0], f"column {header[col]!r} is not numeric ({show(texts[0])})",
                           f"{comma}{label_hint}")
        out[:, j] = check_finite(path, _numbers(path, texts, lines, header[col]), lines, header[col])
    return out

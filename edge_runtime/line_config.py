"""`--config line.yaml`: everything the edge-run flags hold, in a file a station keeps.

Read with OpenCV's own YAML reader (cv2.FileStorage), so the runtime floor needs
no YAML package: flat `key: value` lines, lists as `[a, b]`. Keys are the flag
names (`max_age_ms` or `max-age-ms`). Flags given on the command line win.
"""

from __future__ import annotations

import re
from pathlib import Path

import cv2

from edge_runtime.errors import InputFileError


def _value(node: cv2.FileNode):
    if node.isSeq():
        return [_value(node.at(i)) for i in range(node.size())]
    if node.isString():
        return node.string()
    if node.isInt():
        return int(node.real())
    if node.isReal():
        return node.real()
    if node.isMap():
        raise InputFileError(f"nested section {node.name()!r} is not supported: use flat keys named like the flags")
    return None


def _parse_error(exc: Exception, path: Path) -> str:
    """OpenCV's parse error as 'line N: what', with a hint for the usual cause: an unquoted value holding ':'."""
    cause = exc.__cause__ or exc
    text = " ".join(str(cause).split())
    found = re.search(r"\((\d+)\): (.*)$", text)  # "... in function 'line.yaml(2): Missing ':''" and maybe ")"
    if not found:
        return (text or type(cause).__name__)[:160]
    number, what = int(found.group(1)), re.sub(r"'\)?$", "", found.group(2)).strip()
    lines = path.read_text(errors="replace").splitlines()
    line = lines[number - 1] if 0 < number <= len(lines) else ""
    if line.count(":") > 1:
        hint = ': quote a value that holds ":", e.g. mqtt: "mqtt://broker:1883/line1"'
    elif re.match(r"\s*[\w-]+\s*:\s*[^\s\"'\[].*,", line):  # OpenCV reads `roi: 1,2,3,4` as a broken list
        key, value = (part.strip() for part in line.split(":", 1))
        hint = f": quote a comma list or write it in brackets, e.g. {key}: [{value}]"
    else:
        hint = ""
    return f"line {number}: {what}{hint}"


def _check_keys(path: Path) -> None:
    """OpenCV keeps one of two equal keys without a word (and `max-frames` beside `max_frames` is two keys to it):
    a station file that says two things about one option is refused, naming the lines. So is a key without a value,
    which OpenCV reads as the text '...'."""
    seen: dict[str, int] = {}
    lines = path.read_text(errors="replace").splitlines()
    for number, line in enumerate(lines, 1):
        match = re.match(r"([A-Za-z_][\w-]*)\s*:", line)  # top-level keys start in the first column
        if not match:
            continue
        below = next((n for n in lines[number:] if n.strip() and not n.lstrip().startswith("#")), "")
        if re.fullmatch(r"\s*(#.*)?", line[match.end():]) and not below[:1].isspace() and not below.startswith("-"):
            raise InputFileError(f"--config {path}: {match.group(1)!r} on line {number} has no value: give one, or "
                                 "delete the line to keep the default")
        name = match.group(1).replace("-", "_")
        if name in seen:
            raise InputFileError(f"--config {path}: {match.group(1)!r} on line {number} repeats the key of line "
                                 f"{seen[name]}: keep one")
        seen[name] = number


def load_line_config(path: str | Path, known: set[str]) -> dict:
    """{option name: value} from the file; an unknown key is an error naming the known ones."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"--config {path} does not exist")
    if not path.read_text(errors="replace").strip():
        return {}  # OpenCV's parser fails on a zero-byte file; an empty config simply overrides nothing
    try:
        storage = cv2.FileStorage(str(path), cv2.FILE_STORAGE_READ | cv2.FILE_STORAGE_FORMAT_YAML)
    except (cv2.error, SystemError) as exc:  # OpenCV's parser raises either, depending on where it fails
        raise InputFileError(f"--config {path} is not valid YAML ({_parse_error(exc, path)})") from None
    if not storage.isOpened():
        raise InputFileError(f"--config {path} could not be read as YAML")
    root = storage.root()
    if root.isNone():  # blank or comments only: nothing to override
        storage.release()
        return {}
    if not root.isMap():  # a list or a bare value at the top (found by fuzzing: a file holding "-")
        storage.release()
        raise InputFileError(f"--config {path} must be `key: value` lines, one per option")
    _check_keys(path)
    values = {}
    for key in root.keys():
        name = key.replace("-", "_")
        if name not in known:
            raise InputFileError(f"--config {path}: unknown key {key!r}; known keys: {', '.join(sorted(known))}")
        values[name] = _value(root.getNode(key))
    storage.release()
    return values

"""Checking a model file in a child process with a time limit, before this process loads it.

Model files arrive over the network. The checks in `EdgeModel` (size, contract,
input) refuse what they recognise, but ONNX Runtime's own parser and kernels
run on the bytes too; a file crafted to hang or crash them must not take the
running line with it. `vet_model` loads the file and runs one warm-up input in
a child (`python -m edge_runtime.model_vet PATH`): a clean exit is a pass, its
one-line error a refusal, and a hang past the limit or a crash a refusal that
names it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from edge_runtime.errors import LinesideError, ModelFileError


def vet_model(path: str | Path, timeout_s: float, device: str = "cpu") -> None:
    """Raise ModelFileError unless `path` loads and runs one input in a child within `timeout_s`."""
    try:
        proc = subprocess.run([sys.executable, "-m", "edge_runtime.model_vet", str(path), device],
                              capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise ModelFileError(f"{path} did not load and run one input within {timeout_s:g} s in a separate process: "
                             "refused (a model that hangs the loader never reaches the line)") from None
    if proc.returncode == 0:
        return
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    if proc.returncode < 0:
        raise ModelFileError(f"loading {path} crashed a separate process (signal {-proc.returncode}): refused")
    raise ModelFileError(lines[-1].removeprefix("error: ") if lines else f"{path} failed its check (exit "
                         f"{proc.returncode})")


def warm_up(model) -> None:
    """One blank input through an opened EdgeModel: a model that cannot run one never goes live."""
    try:
        outputs = model.run(model.blank_input())
    except Exception as exc:  # ORT raises its own types for graphs that load but cannot run
        raise ModelFileError(f"{model.path} loads but fails a warm-up run ({type(exc).__name__}): "
                             "re-export it") from None
    if not all(np.isfinite(o).all() for o in outputs):
        raise ModelFileError(f"{model.path} gives NaN or infinite outputs on a blank input: re-export it")


def _check(path: str, device: str) -> None:
    from edge_runtime.model import EdgeModel

    warm_up(EdgeModel(path, device=device))


if __name__ == "__main__":
    try:
        _check(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "cpu")
    except LinesideError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)

"""Running lineside's commands the way a user does, and checking how they fail."""

from __future__ import annotations

import contextlib
import functools
import json
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run_cli(*args: str, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    """Run an installed console script (edge-run, edge-export, ...) as a user would; an absolute path runs
    that program instead (another environment's edge-run)."""
    return subprocess.run([str(BIN / args[0]), *args[1:]], capture_output=True, text=True, timeout=timeout,
                          cwd=kwargs.pop("cwd", ROOT), **kwargs)


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    """Assert the command failed with exactly one `error:` line and no traceback; return it."""
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


def final_error(proc: subprocess.CompletedProcess) -> str:
    """Assert a command that printed progress first failed with one `error:` line, its last, and no traceback;
    return that line."""
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error: ") and sum(x.startswith("error: ") for x in lines) == 1, proc.stderr
    return lines[-1]


def free_port() -> int:
    """A TCP port nobody listens on right now (for servers a test starts)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def busy_port():
    """A loopback port somebody else is listening on, for the 'port in use' cases."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        yield busy.getsockname()[1]


def jsonl_rows(path: Path) -> list[dict]:
    """Every record of an edge-run --jsonl file. Read while edge-run writes it, the text may end inside a record
    being written (a CI run caught one cut at its "score"): only lines ended by their newline are records yet."""
    *written, _unfinished = Path(path).read_text().split("\n")
    return [json.loads(line) for line in written if line]


@functools.cache  # asked by several test modules at collection; one probe per process
def cuda_provider_works() -> bool:
    """ONNX Runtime's CUDA provider loads and runs here (a GPU machine with the gpu extra)."""
    from edge_runtime.doctor import working_providers

    return working_providers().get("cuda") == "ok"

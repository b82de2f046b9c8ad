"""Atomic model update: a new model file is validated and warmed up, then swapped in between two frames.

Triggers: SIGHUP, or (`--watch-model`) the model file changing on disk — replaced
by a rename, or rewritten and then left alone for one check interval (so a copy
in progress is never loaded). A new file that fails any check (ONNX and metadata
contract, a different task, the manifest's hash, a warm-up run) is refused with
a record saying why, and the running model keeps deciding.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path


from edge_runtime.errors import LinesideError, ModelFileError
from edge_runtime.model import EdgeModel, file_sha256
from edge_runtime.model_vet import vet_model, warm_up


def check_manifest(path: Path, manifest: str | Path) -> None:
    """The file's sha256 must be the one edge-export's manifest.json lists for a file of that name."""
    try:
        entries = json.loads(Path(manifest).read_text())["artifacts"]
        wanted = {Path(e["file"]).name: e["sha256"] for e in entries}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelFileError(f"--manifest {manifest} is not an edge-export manifest.json ({exc})") from None
    if path.name not in wanted:
        raise ModelFileError(f"{path.name} is not listed in --manifest {manifest}")
    if file_sha256(path) != wanted[path.name]:
        raise ModelFileError(f"{path} does not match the sha256 in --manifest {manifest}: it was altered or "
                             "truncated on its way, or the manifest is another export's; copy both again from the "
                             "same edge-export --out folder")


def open_model(path: str | Path, device: str = "cpu", threads: int | None = None, manifest: str | None = None,
               threshold: float | None = None, check_s: float | None = None) -> EdgeModel:
    """The model edge-run starts with, and every one it swaps in: checked against the manifest, with
    `check_s` first loaded and run in a separate process within that many seconds, then opened."""
    if manifest:
        check_manifest(Path(path), manifest)
    if check_s:
        vet_model(path, check_s, device)
    return EdgeModel(path, device=device, threads=threads, threshold=threshold)


class ModelSwapper:
    def __init__(self, model: EdgeModel, device: str = "cpu", threads: int | None = None,
                 manifest: str | None = None, watch: bool = False, check_every_s: float = 1.0,
                 threshold: float | None = None, check_s: float | None = None):
        self.model, self.device, self.threads, self.threshold = model, device, threads, threshold
        self.check_s = check_s
        self.manifest, self.watch, self.check_every_s = manifest, watch, check_every_s
        self.requested = threading.Event()
        self._seen = self._signature()
        self._pending = None  # a changed signature waiting to be stable for one interval
        self._next_check = time.monotonic() + check_every_s
        self.swaps = self.refusals = 0

    def _signature(self):
        try:
            st = self.model.path.stat()
        except OSError:
            return None  # being replaced right now: look again next time
        return st.st_ino, st.st_size, st.st_mtime_ns

    def _changed_on_disk(self) -> bool:
        now = time.monotonic()
        if not self.watch or now < self._next_check:
            return False
        self._next_check = now + self.check_every_s
        sig = self._signature()
        if sig is None or sig == self._seen:
            self._pending = None
            return False
        if sig != self._pending:  # still being written (or just renamed): wait one more interval
            self._pending = sig
            return False
        self._seen, self._pending = sig, None
        return True

    def poll(self) -> list[dict]:
        """Between frames: swap if asked and the new file passes; the records saying what happened."""
        if not (self.requested.is_set() or self._changed_on_disk()):
            return []
        self.requested.clear()
        self._seen = self._signature()
        old = self.model
        try:
            new = self.load(old.path)
            if new.info.task != old.info.task:
                raise ModelFileError(f"the new {new.path.name} is a {new.info.task!r} model, the running one "
                                     f"{old.info.task!r}: restart edge-run to change what this station does")
        except LinesideError as exc:
            self.refusals += 1
            return [{"type": "model_refused", "at": round(time.time(), 6), "path": str(old.path),
                     "reason": str(exc), "running_sha256": old.sha256}]
        self.model = new
        self.swaps += 1
        return [{"type": "model", "at": round(time.time(), 6), "model": new.describe(),
                 "previous_sha256": old.sha256}]

    def load(self, path: Path) -> EdgeModel:
        """Check against the manifest, open, and warm up: a model that cannot run one frame never goes live.
        An --threshold override holds for every model swapped in, as for the first."""
        model = open_model(path, self.device, self.threads, self.manifest, self.threshold, self.check_s)
        warm_up(model)
        return model

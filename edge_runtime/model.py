"""A deployed model: an ONNX session plus the metadata that says how to feed and read it."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from edge_runtime.decision import DECIDERS, Decision, decide
from edge_runtime.errors import ModelFileError
from edge_runtime.metadata import ModelInfo, from_props
from edge_runtime.preprocess import Roi, prepare_image
from edge_runtime.session import create_session


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class EdgeModel:
    """Load once, then `prepare` frames, `infer` batches and `decide` on outputs."""

    def __init__(self, path: str | Path, device: str = "cpu", threads: int | None = None):
        self.path = Path(path)
        self.session = create_session(self.path, device=device, threads=threads)
        props = self.session.get_modelmeta().custom_metadata_map
        self.info: ModelInfo = from_props(props, origin=str(self.path))
        if self.info.task not in DECIDERS:
            raise ModelFileError(
                f"{self.path} is a {self.info.task!r} model, which this runtime version cannot run yet; "
                f"it runs: {', '.join(DECIDERS)}"
            )
        self.input_name = self.session.get_inputs()[0].name
        self.sha256 = file_sha256(self.path)
        self.provider = self.session.get_providers()[0]

    def prepare(self, image: np.ndarray, roi: Roi | None = None) -> np.ndarray:
        """One frame → one model input (H x W x 3 uint8), via the shared preprocessing."""
        return prepare_image(image, self.info.input_size, roi, self.info.resize, self.info.channel_order)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Run a N x H x W x 3 uint8 batch; returns the model's first output."""
        return self.session.run(None, {self.input_name: batch})[0]

    def decide(self, outputs: np.ndarray) -> list[Decision]:
        return decide(outputs, self.info)

    def describe(self) -> dict:
        """A short identity block for records and reports."""
        return {
            "path": str(self.path),
            "sha256": self.sha256,
            "task": self.info.task,
            "precision": self.info.precision,
            "provider": self.provider,
        }

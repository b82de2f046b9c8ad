"""A deployed model: an ONNX session plus the metadata that says how to feed and read it."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path

import numpy as np

from edge_runtime.bound_run import BoundRunner
from edge_runtime.decision import DECIDERS, SENSOR_TASKS, Decision, decide, decides_by_class
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


MAX_MODEL_MB = float(os.environ.get("LINESIDE_MAX_MODEL_MB", "512"))


def check_file(path: Path) -> None:
    """Refuse before parsing: missing, not a regular file (symlinks resolved), empty, or absurdly large."""
    if not path.is_file():
        raise ModelFileError(f"model file {path} does not exist: pass the .onnx written by edge-export")
    size = path.stat().st_size
    if size == 0:
        raise ModelFileError(f"model file {path} is empty: copy it again from the export folder")
    if size > MAX_MODEL_MB * 2**20:
        raise ModelFileError(f"model file {path} is {size / 2**20:.0f} MB, over the {MAX_MODEL_MB:.0f} MB limit "
                             "(LINESIDE_MAX_MODEL_MB raises it): a line-side model is a few MB")
    if path.with_name(path.name + ".data").exists():
        raise ModelFileError(f"{path} comes with an external-data file {path.name}.data; lineside artifacts carry "
                             "their weights inside: re-export it with edge-export")


class EdgeModel:
    """Load once, then `prepare` frames, `infer` batches and `decide` on outputs."""

    def __init__(self, path: str | Path, device: str = "cpu", threads: int | None = None,
                 threshold: float | None = None):
        """`threshold` overrides the one in the file's metadata (edge-run --threshold)."""
        self.path = Path(path)
        check_file(self.path)
        self.session = create_session(self.path, device=device, threads=threads)
        props = self.session.get_modelmeta().custom_metadata_map
        self.info: ModelInfo = from_props(props, origin=str(self.path))
        if threshold is not None:
            self.info = dataclasses.replace(self.info, threshold=threshold)
        if self.info.task not in DECIDERS:
            raise ModelFileError(
                f"{self.path} is a {self.info.task!r} model, which this runtime version cannot run yet; "
                f"it runs: {', '.join(DECIDERS)}"
            )
        self.input_name = self._check_input()
        self._check_output()
        self.sha256 = file_sha256(self.path)
        self.provider = self.session.get_providers()[0]
        self._runner = BoundRunner(self.session, self.input_name)

    @property
    def is_sensor(self) -> bool:
        return self.info.task in SENSOR_TASKS

    @property
    def window(self) -> int:
        """Samples per model input (sensor models; 1 for a quality model on process parameters)."""
        return int(self.info.extra["window"])

    @property
    def channels(self) -> list[str]:
        return list(self.info.extra["channels"])

    def _check_input(self) -> str:
        """The graph's input must be what the metadata promises.

        Image models: one uint8 N x H x W x 3 tensor. Sensor models: one float32
        N x T x C window, T and the channel names in the metadata.
        """
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise ModelFileError(f"{self.path} has {len(inputs)} inputs; a lineside model has exactly one")
        shape, kind = inputs[0].shape, inputs[0].type
        if self.is_sensor:
            try:
                expected, dtype = [self.window, len(self.channels)], "float32"
            except (KeyError, TypeError, ValueError) as exc:
                raise ModelFileError(f"{self.path} is a {self.info.task} model without window/channels metadata "
                                     f"({exc}): re-export it with edge-export") from exc
        else:
            expected, dtype = [*self.info.input_size, 3], "uint8"
        if kind != {"float32": "tensor(float)"}.get(dtype, f"tensor({dtype})") or len(shape) != len(expected) + 1 or list(shape[1:]) != expected:
            raise ModelFileError(f"{self.path} takes {kind} {shape}, but its metadata promises {dtype} "
                                 f"[N, {', '.join(map(str, expected))}]: re-export it with edge-export")
        return inputs[0].name

    def _check_output(self) -> None:
        """Class probabilities must have one column per label: the decision names the class by its column."""
        width = (self.session.get_outputs()[0].shape or [None])[-1]
        if decides_by_class(self.info) and isinstance(width, int) and width != len(self.info.labels):
            raise ModelFileError(f"{self.path} outputs {width} class probabilities but its metadata names "
                                 f"{len(self.info.labels)} labels ({', '.join(self.info.labels)}): re-export it "
                                 "with edge-export")

    def blank_input(self, batch: int = 1) -> np.ndarray:
        """A zero input of the model's shape and type: warm-ups and benchmarks."""
        if self.is_sensor:
            return np.zeros((batch, self.window, len(self.channels)), np.float32)
        return np.zeros((batch, *self.info.input_size, 3), np.uint8)

    def prepare(self, image: np.ndarray, roi: Roi | None = None) -> np.ndarray:
        """One frame → one model input (H x W x 3 uint8), via the shared preprocessing."""
        return prepare_image(image, self.info.input_size, roi, self.info.resize, self.info.channel_order)

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        """Run a batch (images: N x H x W x 3 uint8; sensor windows: N x T x C float32); every output
        (an anomaly model: scores, heat maps)."""
        return self._runner(batch)  # through a kept I/O binding on the CPU: edge_runtime/bound_run.py

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Run a batch; the output decisions are made on (probabilities, scores or quality values)."""
        return self._runner(batch)[0]  # not through self.run: one Python call less per batch

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

"""Safe checkpoints: weights in safetensors, everything else in a readable JSON.

Nothing is unpickled on load, so a checkpoint from elsewhere cannot run code.
The config holds the model's constructor arguments, so loading never needs the
original command line.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import torch.nn as nn
from safetensors.torch import load_file, save_file

from edge_runtime.errors import InputFileError
from edge_runtime.metadata import SCHEMA_VERSION
from train.models import create_model

WEIGHTS = "model.safetensors"
CONFIG = "config.json"


def save_checkpoint(run_dir: Path, model: nn.Module, config: dict) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(run_dir / WEIGHTS))
    save_config(run_dir, config)


def save_config(run_dir: Path, config: dict) -> None:
    """config.json, written beside and then renamed over the old one: never half a file."""
    staged = run_dir / (CONFIG + ".tmp")
    staged.write_text(json.dumps({"schema": SCHEMA_VERSION, **config}, indent=2))
    os.replace(staged, run_dir / CONFIG)


def load_config(run_dir: str | Path) -> dict:
    run_dir = Path(run_dir)
    path = run_dir / CONFIG
    if not path.is_file() or not (run_dir / WEIGHTS).is_file():
        raise InputFileError(f"{run_dir} is not a training run: expected {CONFIG} and {WEIGHTS} from `edge-train`")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8 text"
        raise InputFileError(f"{path} is not valid JSON ({reason}): re-run edge-train") from exc
    if not isinstance(config, dict) or not isinstance(config.get("schema", 0), int):
        raise InputFileError(f"{path} is not a lineside run config (a JSON object with a whole-number schema): "
                             "re-run edge-train")
    if config.get("schema", 0) > SCHEMA_VERSION:
        raise InputFileError(f"{run_dir} was written by a newer lineside (schema {config['schema']}): upgrade lineside")
    for key, (fits, shape) in _SHAPES.items():
        if key in config and not fits(config[key]):  # a hand edit: a string where a list goes failed deep inside
            raise InputFileError(f"{path}: {key} is {json.dumps(config[key])[:60]}, not {shape}: "
                                 "undo the edit or re-run edge-train")
    return config


def is_finite_number(value) -> bool:
    """A JSON number that is neither NaN nor infinite (Python's JSON reads both) nor a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# The keys every reader of a run's config relies on: the check each must pass, and the shape it names.
_SHAPES = {
    "task": (lambda v: isinstance(v, str), "a string"),
    "labels": (lambda v: isinstance(v, list) and len(v) >= 1 and all(isinstance(x, str) for x in v),
               "a list of class names"),
    "good_label": (lambda v: v is None or isinstance(v, str), "a string or null"),  # None: PLAID names classes
    "threshold": (is_finite_number, "a finite number"),
    "model": (lambda v: isinstance(v, dict) and isinstance(v.get("name"), str) and isinstance(v.get("args", {}), dict),
              "an object with a name and args"),
}


def load_checkpoint(run_dir: str | Path) -> tuple[nn.Module, dict]:
    """Rebuild the model from its config and load its weights; eval mode, on CPU."""
    config = load_config(run_dir)
    spec = config["model"]
    try:
        model = create_model(spec["name"], **spec["args"])
    except (TypeError, ValueError) as exc:  # arguments this lineside cannot build a model from
        raise InputFileError(f"{run_dir}: {exc}") from exc
    weights = Path(run_dir) / WEIGHTS
    try:
        state = load_file(str(weights))  # safetensors: plain tensors, nothing is executed
        model.load_state_dict(state)
    except Exception as exc:  # a pickle, a truncated file, or weights of another model
        raise InputFileError(f"{weights} is not a valid safetensors checkpoint for this model "
                             f"({type(exc).__name__}): re-run edge-train; lineside never unpickles") from exc
    return model.eval(), config

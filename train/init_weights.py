"""Start a model from weights in a local file (`edge-train anomaly --init`), instead of from scratch.

No pretrained backbone can be downloaded here, but a line often has one of its
own: a model trained on a similar part at another station, or an encoder a user
trained on many of the plant's images. A lineside run folder or a `.safetensors`
file is read (never a pickle: lineside does not unpickle); each tensor whose name
and shape match the new model's is loaded, the rest start as usual. What belongs
to the new data is never taken over: the stem's pixel normalisation (`scale`,
`shift`) and a fitted Gaussian (score="gauss"), which are set from the new images.
A `.pt` state dict converts with
`safetensors.torch.save_file(torch.load("enc.pt"), "enc.safetensors")`.
"""

from __future__ import annotations

from pathlib import Path

import torch.nn as nn
from safetensors.torch import load_file

from edge_runtime.errors import InputFileError
from edge_runtime.model import file_sha256
from train.checkpoint import WEIGHTS
from train.models.anomaly_net import GAUSSIAN_BUFFERS

FROM_NEW_DATA = ("stem.scale", "stem.shift", *GAUSSIAN_BUFFERS)


def load_init(model: nn.Module, path: str | Path) -> dict:
    """Load the matching tensors of `path` (a run folder or a .safetensors file) into `model`; returns what was
    loaded. Raises InputFileError when the file is missing, unreadable, or matches none of the model's tensors."""
    path = Path(path)
    file = path / WEIGHTS if path.is_dir() else path
    if not file.is_file():
        raise InputFileError(f"--init {path}: no such file (give a lineside run folder or a .safetensors file)")
    try:
        state = load_file(str(file))
    except Exception as exc:  # a pickle, a truncated file
        raise InputFileError(f"--init {file} is not a safetensors file ({type(exc).__name__}): lineside never "
                             "unpickles; convert a .pt state dict with safetensors.torch.save_file") from exc
    state = {name.removeprefix("module."): tensor for name, tensor in state.items()}  # saved from DataParallel
    own = model.state_dict()
    wanted = {name: tensor for name, tensor in own.items() if name not in FROM_NEW_DATA}
    loaded = {name: state[name] for name, tensor in wanted.items()
              if name in state and state[name].shape == tensor.shape}
    if not loaded:
        example = ", ".join(list(wanted)[:3])
        raise InputFileError(f"--init {file}: none of its {len(state)} tensors matches this model's by name and "
                             f"shape (names like {example}; a run of another width or model?)")
    model.load_state_dict(loaded, strict=False)
    return {"file": str(file), "sha256": file_sha256(file), "loaded": len(loaded), "of": len(wanted),
            "not_loaded": sorted(set(wanted) - set(loaded))}

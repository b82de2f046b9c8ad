"""Name → constructor, so a checkpoint's config (or a CLI flag) can rebuild its model."""

from __future__ import annotations

from typing import Callable

import torch.nn as nn

from edge_runtime.errors import InputFileError

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str):
    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _REGISTRY[name] = fn
        return fn

    return wrap


def create_model(name: str, **kwargs) -> nn.Module:
    if name not in _REGISTRY:
        raise InputFileError(f"unknown model {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name](**kwargs)


def model_names() -> list[str]:
    return sorted(_REGISTRY)

"""torchrun support: the same loop runs on one process or N (DDP), CPU (gloo) or GPU (nccl)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0


def resolve_device(name: str) -> torch.device:
    """`auto` picks CUDA when present; `cuda` without a GPU is a user error, not a silent CPU run."""
    from edge_runtime.errors import ProviderError

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name != "cpu" and not re.fullmatch(r"cuda(:\d+)?", name):
        raise ProviderError(f"--device {name!r} is not a device: use auto, cpu, cuda or cuda:N")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ProviderError("--device cuda but torch sees no GPU: install the CUDA build of torch (README) or use --device cpu")
    return torch.device(name)


def setup(device_name: str) -> DistContext:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = resolve_device(device_name)
    if world == 1:
        return DistContext(device=device)
    rank = int(os.environ["RANK"])
    if device.type == "cuda":
        from edge_runtime.errors import ProviderError

        # every process of this machine says so, before any waits in the process group for the others
        here, gpus = int(os.environ.get("LOCAL_WORLD_SIZE", "1")), torch.cuda.device_count()
        if here > gpus:
            raise ProviderError(f"torchrun started {here} processes on this machine but torch sees {gpus} GPU(s): "
                                f"use --nproc_per_node {gpus} or fewer (one GPU each), or --device cpu")
        local = int(os.environ.get("LOCAL_RANK", "0"))
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return DistContext(rank=rank, world=world, device=device)


def teardown(ctx: DistContext) -> None:
    if ctx.world > 1 and dist.is_initialized():
        dist.destroy_process_group()

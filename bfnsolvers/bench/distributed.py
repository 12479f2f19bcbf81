"""torch.distributed for sweeps (torchrun; gloo on CPU, NCCL on GPU): join the group, gather to rank 0, broadcast."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["Ranks", "broadcast", "gather", "init_distributed"]


@dataclass
class Ranks:
    """This process's rank, the world size, and whether this module started the group (and ends it)."""

    rank: int = 0
    world: int = 1
    owned: bool = False

    @property
    def active(self) -> bool:
        return self.world > 1


def init_distributed(device: torch.device) -> tuple[Ranks, torch.device]:
    """Join the torch.distributed group (initialising it under torchrun); pick this rank's device."""
    import torch.distributed as dist

    owned = False
    if dist.is_available() and not dist.is_initialized() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        if device.type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        owned = True
    if not (dist.is_available() and dist.is_initialized()):
        return Ranks(), device
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", dist.get_rank() % torch.cuda.device_count())))
        torch.cuda.set_device(device)
    return Ranks(dist.get_rank(), dist.get_world_size(), owned), device


def gather(obj: Any, d: Ranks) -> list[Any]:
    if not d.active:
        return [obj]
    import torch.distributed as dist

    out = [None] * d.world if d.rank == 0 else None
    dist.gather_object(obj, out, dst=0)
    return out


def broadcast(obj: Any, d: Ranks) -> Any:
    if not d.active:
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]

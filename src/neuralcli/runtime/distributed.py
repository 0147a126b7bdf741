"""DistributedDataParallel setup from the environment torchrun provides (no own launcher)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as torch_dist


@dataclass(frozen=True)
class DistributedInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def distributed_info() -> DistributedInfo:
    """Read RANK/WORLD_SIZE/LOCAL_RANK (set by torchrun); single process otherwise."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistributedInfo()
    return DistributedInfo(
        rank=int(os.environ.get("RANK", "0")),
        world_size=world_size,
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
    )


def init_process_group(info: DistributedInfo, device: torch.device) -> None:
    """Join the torchrun process group once: NCCL on CUDA, gloo otherwise."""
    if not info.enabled or torch_dist.is_initialized():
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    torch_dist.init_process_group(backend=backend, rank=info.rank, world_size=info.world_size)


def barrier(info: DistributedInfo) -> None:
    if info.enabled and torch_dist.is_initialized():
        torch_dist.barrier()


def destroy_process_group() -> None:
    if torch_dist.is_initialized():
        torch_dist.destroy_process_group()

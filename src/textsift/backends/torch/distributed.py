"""torch.distributed for data-parallel training under ``torchrun``: no engine of our own.

``torchrun --nproc_per_node N -m textsift train CONFIG`` sets RANK, WORLD_SIZE, MASTER_ADDR, ...;
multi-node runs use the same torchrun flags (--nnodes, --rdzv-endpoint). Backends: gloo on CPU, NCCL
on GPU.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

logger = logging.getLogger(__name__)


def env_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def init_from_env(device: torch.device) -> bool:
    """Join the process group torchrun describes; False when not launched by torchrun."""
    if env_world_size() <= 1:
        return False
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend=backend)
        logger.info("Distributed: rank %d of %d (%s)", rank(), world_size(), backend)
    return True


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    return rank() == 0


def shard(index: np.ndarray) -> np.ndarray:
    """This rank's part of a global batch (every rank sees the same global batches)."""
    return index[rank() :: world_size()] if active() else index


def gather_rows(local: np.ndarray, local_index: np.ndarray, total: int) -> np.ndarray:
    """Put every rank's rows (``local`` at dataset positions ``local_index``) into one array, on all ranks."""
    if not active():
        out = np.empty((total, *local.shape[1:]), dtype=local.dtype)
        out[local_index] = local
        return out
    parts: list[Any] = [None] * world_size()
    dist.all_gather_object(parts, (local, local_index))
    width = next(p[0].shape[1:] for p in parts if p[0].size or p[0].ndim > 1)
    out = np.empty((total, *width), dtype=local.dtype)
    for rows, index in parts:
        if len(index):
            out[index] = rows
    return out


def all_mean(value: float) -> float:
    """The mean of ``value`` over the ranks (itself when not distributed)."""
    if not active():
        return value
    tensor = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(tensor)
    return float(tensor.item()) / world_size()


def barrier() -> None:
    if active():
        dist.barrier()


def destroy() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()

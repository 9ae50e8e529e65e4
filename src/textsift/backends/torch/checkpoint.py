"""Resumable checkpoints in one safetensors file: tensors in the body, everything else as JSON metadata.

No pickles: loading a checkpoint runs no code. The file is replaced atomically.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save

from textsift.errors import CheckpointError
from textsift.util import atomic_write_bytes


def _split_optimizer(sd: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, pstate in sd["state"].items():
        for key, value in pstate.items():
            if torch.is_tensor(value):
                tensors[f"optimizer/{pid}/{key}"] = value
            else:
                scalars.setdefault(str(pid), {})[key] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _join_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith("optimizer/"):
            _, pid, key = name.split("/", 2)
            state.setdefault(int(pid), {})[key] = value
    for pid, values in meta["scalars"].items():
        state.setdefault(int(pid), {}).update(values)
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(
    path: Path,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None,
    scheduler: Any,
    best_weights: dict[str, torch.Tensor] | None,
    meta: dict[str, Any],
) -> None:
    """Model, optimizer, schedule, best weights and RNG in one safetensors file; a model fitted by a solver (linear)
    has no optimizer or schedule (None)."""
    opt_tensors, opt_meta = _split_optimizer(optimizer.state_dict()) if optimizer is not None else ({}, {})
    tensors = {f"model/{k}": v.detach().contiguous() for k, v in model.state_dict().items()}
    tensors.update({k: v.contiguous() for k, v in opt_tensors.items()})
    if best_weights is not None:
        tensors.update({f"best/{k}": v.contiguous() for k, v in best_weights.items()})
    tensors["rng/torch"] = torch.get_rng_state()
    sched = {k: v for k, v in scheduler.state_dict().items() if k != "lr_lambdas"} if scheduler is not None else {}
    header = {"meta": json.dumps({**meta, "optimizer": opt_meta, "scheduler": sched})}
    atomic_write_bytes(path, save(tensors, metadata=header))


def load_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    from safetensors import safe_open

    if not path.is_file():
        raise CheckpointError(f"No checkpoint at '{path}': this run has nothing to resume from.")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {})["meta"])
        tensors = load_file(str(path))
    except Exception as exc:  # safetensors raises SafetensorError, KeyError on damaged files
        raise CheckpointError(f"Checkpoint '{path}' is damaged ({exc}); delete it to start the run again.") from None
    return tensors, meta


def restore(
    tensors: dict[str, torch.Tensor], meta: dict[str, Any], *, model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None, scheduler: Any,
) -> dict[str, torch.Tensor] | None:
    model.load_state_dict({k[len("model/"):]: v for k, v in tensors.items() if k.startswith("model/")})
    if optimizer is not None:
        optimizer.load_state_dict(_join_optimizer(tensors, meta["optimizer"]))
    if scheduler is not None:
        sched = scheduler.state_dict()
        sched.update(meta["scheduler"])
        scheduler.load_state_dict(sched)
    torch.set_rng_state(tensors["rng/torch"])
    best = {k[len("best/"):]: v for k, v in tensors.items() if k.startswith("best/")}
    return best or None

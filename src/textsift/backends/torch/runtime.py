"""The torch runtime: a network built from the saved config, with its safetensors weights."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from textsift.errors import ConfigError
from textsift.inference.runtime import Runtime


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"trainer.device is '{name}' but no CUDA device is available. Use 'cpu' or 'auto'.")
    return device


def to_tensors(batch: dict[str, np.ndarray], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(v).to(device, non_blocking=True) for k, v in batch.items() if k not in ("index", "labels")}


def inference_fn(model: torch.nn.Module) -> Any:
    """The network's prediction function: its ``inference`` (the same logits, maybe a faster way), else the module
    itself (a wrapper such as DistributedDataParallel has none)."""
    return getattr(model, "inference", model)


class TorchRuntime(Runtime):
    """Runs a torch network (in eval mode, without gradients) on the chosen device."""

    name = "torch"

    def __init__(self, model: torch.nn.Module, device: str | torch.device = "cpu", config: Any = None) -> None:
        self.device = device if isinstance(device, torch.device) else resolve_device(device)
        self.model = model.to(self.device).eval()
        self.input_format = getattr(model, "input_format", "padded")
        self.config = config  # the full config the network was built from, when loaded from a directory

    @classmethod
    def load(cls, model_dir: Path, *, labels: list[str], tokenizer: Any, device: str = "cpu",
             num_threads: int | None = None, **options: Any) -> "TorchRuntime":
        from textsift.modeldir import load_config_from, load_network

        if num_threads is not None:
            torch.set_num_threads(num_threads)
        config = load_config_from(model_dir)
        return cls(load_network(model_dir, config, tokenizer, labels), device, config)

    @torch.no_grad()
    def logits(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        was_training = self.model.training
        self.model.eval()
        try:
            return inference_fn(self.model)(to_tensors(batch, self.device)).float().cpu().numpy()
        finally:
            self.model.train(was_training)

    def describe(self) -> dict[str, Any]:
        per_module = {name: sum(p.numel() for p in module.parameters()) for name, module in self.model.named_children()}
        # parameters of the network itself, outside any submodule (the linear model's weight and bias): counted as 0
        per_module.update({name: p.numel() for name, p in self.model.named_parameters(recurse=False)})
        return {"runtime": self.name, "parameters": {"total": sum(per_module.values()), "per_module": per_module}}

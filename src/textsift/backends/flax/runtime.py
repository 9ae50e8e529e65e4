"""The flax runtime: the NNX network of a model directory's spec, with its safetensors weights, jitted.

Loading reads ``config.yaml`` as plain settings (the saved config is complete: every default written out) and
builds the network from its ``model`` section, without validating the full config, whose components import torch:
predicting with a flax model imports no torch. Batches are padded to bucketed widths and row counts
(:mod:`.shapes`), so prediction compiles a bounded number of times.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jax
import numpy as np
from flax import nnx

from textsift.backends.flax import weights as wio
from textsift.backends.flax.forward import Forward
from textsift.backends.flax.networks import build_network, count_parameters
from textsift.backends.flax.shapes import bucket_rows, bucket_width
from textsift.errors import ModelDirError
from textsift.inference.runtime import Runtime

WEIGHTS = "model.safetensors"


def spec_view(settings: dict[str, Any]) -> Any:
    """Attribute access to saved model settings (``spec.head.hidden_dims``), as the networks read a spec."""
    return SimpleNamespace(**{k: spec_view(v) if isinstance(v, dict) else v for k, v in settings.items()})


class FlaxRuntime(Runtime):
    """Runs an NNX network (split into graph and parameters) under one jitted forward function."""

    name = "flax"
    input_format = "padded"

    def __init__(self, network: nnx.Module) -> None:
        self.network = network
        graphdef, params = nnx.split(network, nnx.Param)
        self.params = jax.device_put(params, jax.devices()[0])  # on the device once, not copied per batch
        self.forward = Forward(graphdef)

    @classmethod
    def load(cls, model_dir: Path, *, labels: list[str], tokenizer: Any, device: str = "cpu",
             num_threads: int | None = None, **options: Any) -> "FlaxRuntime":
        from textsift.modeldir import load_raw_config

        raw = load_raw_config(model_dir)
        model = raw.get("model")
        if not isinstance(model, dict) or "type" not in model:
            raise ModelDirError(f"{model_dir}/config.yaml has no model settings (model.type): it is damaged. "
                                "Copy the whole directory that training wrote, or train again.")
        network = build_network(spec_view(model), vocab_size=tokenizer.vocab_size, num_labels=len(labels), seed=0)
        weights_file = model_dir / WEIGHTS
        if not weights_file.is_file():
            raise ModelDirError(f"{model_dir}: missing {WEIGHTS} (the model weights). The model directory is incomplete: "
                                "copy the whole directory that training wrote, or train again.")
        arrays, _ = wio.load_file(weights_file)
        params = nnx.state(network, nnx.Param)
        nnx.update(network, wio.unflatten(params, arrays, source=str(weights_file)))
        return cls(network)

    def save_weights(self, directory: Path) -> None:
        """Write ``model.safetensors`` (the flattened parameters) into ``directory``."""
        wio.save_file(directory / WEIGHTS, wio.flatten(self.params))

    def logits(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        ids, lengths = batch["ids"], batch["lengths"]
        n = len(lengths)
        rows, width = bucket_rows(n), bucket_width(int(lengths.max()) if n else 1)
        padded = np.zeros((rows, width), np.int32)
        padded[:n, : ids.shape[1]] = ids
        full = np.zeros(rows, np.int32)
        full[:n] = lengths
        device = jax.devices()[0]  # placed as the trainer places them: its evaluation's compilations are reused
        logits = self.forward.fn(self.params, jax.device_put(padded, device), jax.device_put(full, device))
        return np.asarray(logits)[:n].astype(np.float32, copy=False)

    def describe(self) -> dict[str, Any]:
        per_module: dict[str, int] = {}
        for name, array in wio.flatten(self.params).items():  # by the network's top-level part, as torch's children
            top = name.split("/")[0]
            per_module[top] = per_module.get(top, 0) + int(array.size)
        return {"runtime": self.name, "backend": "flax", "devices": [str(d) for d in jax.devices()],
                "parameters": {"total": count_parameters(self.network), "per_module": per_module}}

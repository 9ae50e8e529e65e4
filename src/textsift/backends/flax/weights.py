"""The flattened NNX state as safetensors: ``embedding/embedding``, ``head/layers/0/kernel``, ... -> arrays.

No pickles: a weights file or checkpoint is tensors plus JSON metadata. Files are written atomically.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jax
import numpy as np

from textsift.errors import CheckpointError, ModelDirError
from textsift.util import atomic_write_bytes

FORMAT = "flax"


def _name(path: tuple[Any, ...]) -> str:
    parts = []
    for key in path:
        name = getattr(key, "key", getattr(key, "name", getattr(key, "idx", key)))
        parts.append(str(name))
    if parts and parts[-1] == "value":  # the nnx.Variable's value
        parts.pop()
    return "/".join(parts)


def flatten(tree: Any, prefix: str = "") -> dict[str, np.ndarray]:
    """``{name: array}`` of a pytree (an nnx.State of parameters, an optax state), named by path."""
    out: dict[str, np.ndarray] = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        array = np.asarray(leaf)  # (not np.ascontiguousarray: it makes a scalar, an optimizer's step count, 1-d)
        out[prefix + _name(path)] = array if array.flags.c_contiguous else array.copy()
    return out


def unflatten(template: Any, arrays: dict[str, np.ndarray], prefix: str = "", *, source: str) -> Any:
    """The pytree ``template`` with its leaves replaced by ``arrays`` (by name); a missing or misshapen array is an
    error naming ``source``."""
    leaves_with_path, treedef = jax.tree_util.tree_flatten_with_path(template)
    leaves = []
    for path, leaf in leaves_with_path:
        name = prefix + _name(path)
        if name not in arrays:
            raise ModelDirError(f"{source}: no tensor '{name}' (the file holds {len(arrays)} others): "
                                "it was written for another model or settings. Copy the whole directory, or train again.")
        value = arrays[name]
        if tuple(value.shape) != tuple(np.shape(leaf)):
            raise ModelDirError(f"{source}: tensor '{name}' has shape {tuple(value.shape)}, the model expects "
                                f"{tuple(np.shape(leaf))}: the files come from different models (labels.json, tokenizer/?). "
                                "Copy the whole directory that training wrote, or train again.")
        leaves.append(value.astype(np.asarray(leaf).dtype, copy=False))
    return jax.tree_util.tree_unflatten(treedef, leaves)


def save_file(path: Path, arrays: dict[str, np.ndarray], meta: dict[str, Any] | None = None) -> None:
    from safetensors.numpy import save

    header = {"format": FORMAT}
    if meta is not None:
        header["meta"] = json.dumps(meta)
    atomic_write_bytes(path, save(arrays, metadata=header))


def load_file(path: Path, *, error: type[Exception] = ModelDirError) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The arrays and metadata of a file this module wrote; a damaged file or another format is ``error``."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            header = f.metadata() or {}
            arrays = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # safetensors raises its own error types for a damaged file
        raise error(f"{path}: cannot read the tensors ({str(exc).splitlines()[0]}).") from None
    if header.get("format") != FORMAT:
        raise error(f"{path} holds {header.get('format', 'unknown')}-format weights, not flax ones: it was not written by "
                    "the flax backend. Use the runtime of its backend (--runtime torch), or train with backend: flax.")
    meta = json.loads(header["meta"]) if "meta" in header else {}
    return arrays, meta


def load_checkpoint(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    if not path.is_file():
        raise CheckpointError(f"No checkpoint at '{path}': this run has nothing to resume from.")
    return load_file(path, error=CheckpointError)


def _torch_names(model_type: str, keys: Any) -> dict[str, tuple[str, bool]]:
    """``{torch parameter name: (this backend's name, whether its axes are reversed)}`` for the parameter names
    ``keys`` of a torch network of a ``model_type`` spec: torch's Linear, Conv1d and recurrent weights are stored
    with their axes the other way round (``[out, in]`` / ``[out, in, kernel]`` against ``[in, out]`` / ``[kernel,
    in, out]``); reversing the axes is its own inverse, so one table serves both directions."""
    keys = list(keys)
    names: dict[str, tuple[str, bool]] = {}
    head = sorted({int(k.split(".")[2]) for k in keys if k.startswith("head.net.")})
    for i, index in enumerate(head):
        names[f"head.net.{index}.weight"] = (f"head/layers/{i}/kernel", True)
        names[f"head.net.{index}.bias"] = (f"head/layers/{i}/bias", False)
    names["embedding.weight"] = ("embedding" if model_type == "bag" else "embedding/embedding", False)
    if model_type == "cnn":
        for block in ("block1", "block2"):
            names[f"{block}.conv.weight"] = (f"{block}/conv/kernel", True)
            names[f"{block}.conv.bias"] = (f"{block}/conv/bias", False)
            names[f"{block}.norm.weight"] = (f"{block}/norm/scale", False)
            names[f"{block}.norm.bias"] = (f"{block}/norm/bias", False)
    if model_type in ("lstm", "gru"):
        for key in keys:
            if key.startswith("rnn."):
                kind, layer = key[len("rnn."):].split("_l")
                direction = 1 if layer.endswith("_reverse") else 0
                layer = layer.removesuffix("_reverse")
                target = {"weight_ih": "w_in", "weight_hh": "w_h", "bias_ih": "b_in", "bias_hh": "b_h"}[kind]
                names[key] = (f"layers/{layer}/{direction}/{target}", kind.startswith("weight"))
    return names


def from_torch(model_type: str, state: dict[str, Any]) -> dict[str, np.ndarray]:
    """The weights of a torch network of the same spec (its ``state_dict``, tensors or arrays) under this backend's
    parameter names, transposed where the layouts differ: give them to :func:`unflatten` to start a flax network
    from exactly the weights a torch one has (how the tests compare the two backends' functions and gradients, and
    the benchmark their training from one initialisation)."""
    state = {k: np.asarray(v.detach().cpu().numpy() if hasattr(v, "detach") else v) for k, v in state.items()}
    return {name: (np.ascontiguousarray(np.transpose(state[key])) if reverse else state[key])
            for key, (name, reverse) in _torch_names(model_type, state).items() if key in state}


def to_torch(model_type: str, arrays: dict[str, np.ndarray], torch_keys: Any, *, source: str) -> dict[str, np.ndarray]:
    """The inverse of :func:`from_torch`: this backend's weights ``arrays`` under the parameter names ``torch_keys``
    of a torch network of the same spec (its ``state_dict().keys()``), as numpy arrays: how a flax model is exported
    to ONNX (through the torch network of its spec, which computes the same function). A name either side lacks is
    a ModelDirError naming ``source``."""
    names = _torch_names(model_type, torch_keys)
    out: dict[str, np.ndarray] = {}
    for key in torch_keys:
        if key not in names:
            raise ModelDirError(f"{source}: the torch network of model.type '{model_type}' has a parameter '{key}' that "
                                "flax weights do not map to; this model cannot be converted.")
        name, reverse = names[key]
        if name not in arrays:
            raise ModelDirError(f"{source}: no tensor '{name}' (the file holds {len(arrays)} others): it was written for "
                                "another model or settings. Copy the whole directory, or train again.")
        out[key] = np.ascontiguousarray(np.transpose(arrays[name])) if reverse else arrays[name]
    unused = sorted(set(arrays) - {names[k][0] for k in torch_keys})
    if unused:
        raise ModelDirError(f"{source}: tensor(s) {', '.join(unused[:3])} have no place in the torch network of "
                            f"model.type '{model_type}': the weights come from other settings. Copy the whole directory, or train again.")
    return out

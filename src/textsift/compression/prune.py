"""Structured pruning of a transformer classifier: attention heads and FFN neurons are cut out of the weights,
so the saved model is smaller and faster on dense CPU kernels (not only sparser).

Importance (Michel et al. 2019, "Are Sixteen Heads Really Better than One?"): a gate of 1 multiplies each head's
output (and each FFN neuron's activation); a unit's importance is the mean absolute gradient of the loss with
respect to its gate over training examples, normalised per layer. The least important units are removed across
all layers (each layer keeps at least one head and one neuron). The encoder's config records the kept sizes
(``textsift_pruned``), so loading rebuilds the smaller shapes. A short fine-tune, optionally distilled from the
unpruned model, restores accuracy.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from textsift.batching import EncodedDataset, collate, eval_batches
from textsift.compression.distill import encoder_layers
from textsift.errors import ConfigError
from textsift.backends.torch.networks.transformer import slice_layer

logger = logging.getLogger(__name__)


@dataclass
class Importance:
    heads: list[np.ndarray]  # per layer: one score per head
    neurons: list[np.ndarray]  # per layer: one score per FFN neuron


def importance_scores(model: nn.Module, data: EncodedDataset, *, batch_size: int = 32) -> Importance:
    """Mean |d loss / d gate| of every head and FFN neuron over ``data`` (labels: class indices), each layer's scores
    divided by their L2 norm (Michel et al. 2019)."""
    layers = encoder_layers(model)
    head_gates = [torch.ones(layer.attention.self.num_attention_heads, requires_grad=True) for layer in layers]
    neuron_gates = [torch.ones(layer.intermediate.dense.out_features, requires_grad=True) for layer in layers]
    handles = []
    for layer, hg, ng in zip(layers, head_gates, neuron_gates):
        size = layer.attention.self.attention_head_size

        def gate_heads(module: nn.Module, args: tuple[Any, ...], gate: torch.Tensor = hg, size: int = size) -> tuple[Any, ...]:
            x = args[0]  # [B, L, heads * size]: the heads' outputs before the output projection
            return (x * gate.repeat_interleave(size),) + args[1:]

        def gate_neurons(module: nn.Module, args: tuple[Any, ...], gate: torch.Tensor = ng) -> tuple[Any, ...]:
            return (args[0] * gate,) + args[1:]

        handles.append(layer.attention.output.dense.register_forward_pre_hook(gate_heads))
        handles.append(layer.output.dense.register_forward_pre_hook(gate_neurons))
    head_sum = [torch.zeros_like(g) for g in head_gates]
    neuron_sum = [torch.zeros_like(g) for g in neuron_gates]
    was_training = model.training
    model.eval()  # no dropout: the gradient of the model as it predicts
    params = [p.requires_grad for p in model.parameters()]
    model.requires_grad_(False)
    try:
        assert data.labels is not None
        for index in eval_batches(data.ids.lengths, batch_size):
            batch = collate(data.ids, index, "padded", data.labels)
            tensors = {k: torch.from_numpy(v) for k, v in batch.items() if k != "index"}
            loss = F.cross_entropy(model(tensors), tensors["labels"], reduction="sum")
            grads = torch.autograd.grad(loss, head_gates + neuron_gates)
            for acc, g in zip(head_sum + neuron_sum, grads):
                acc += g.abs()
    finally:
        for handle in handles:
            handle.remove()
        for p, flag in zip(model.parameters(), params):
            p.requires_grad_(flag)
        model.train(was_training)
    n = max(len(data), 1)

    def normalised(scores: list[torch.Tensor]) -> list[np.ndarray]:
        out = []
        for s in scores:
            s = (s / n).numpy().astype(np.float64)
            norm = np.linalg.norm(s)
            out.append(s / norm if norm > 0 else s)
        return out

    return Importance(normalised(head_sum), normalised(neuron_sum))


def choose_kept(scores: Sequence[np.ndarray], fraction: float) -> list[list[int]]:
    """Per layer, the indices to keep after removing ``fraction`` of all units, least important first (ranked
    across layers), each layer keeping at least its most important unit."""
    total = sum(len(s) for s in scores)
    remove = int(round(fraction * total))
    ranked = sorted(((float(v), layer, i) for layer, s in enumerate(scores) for i, v in enumerate(s)))
    left = [len(s) for s in scores]
    removed: set[tuple[int, int]] = set()
    for _, layer, i in ranked:
        if len(removed) >= remove:
            break
        if left[layer] > 1:
            removed.add((layer, i))
            left[layer] -= 1
    return [[i for i in range(len(s)) if (layer, i) not in removed] for layer, s in enumerate(scores)]


def prune_transformer(model: nn.Module, heads: Sequence[Sequence[int]], neurons: Sequence[Sequence[int]]) -> nn.Module:
    """Keep only ``heads[l]`` and ``neurons[l]`` of each layer ``l``, in place, and record the kept sizes in the
    encoder's config (``textsift_pruned``) so a saved model directory loads with these shapes."""
    layers = encoder_layers(model)
    if len(heads) != len(layers) or len(neurons) != len(layers):
        raise ValueError(f"prune: {len(heads)} head lists and {len(neurons)} neuron lists for {len(layers)} layers")
    for layer, h, n in zip(layers, heads, neurons):
        if not h or not n:
            raise ValueError("prune: every layer keeps at least one head and one FFN neuron")
        slice_layer(layer, sorted(h), sorted(n))
    model.encoder.config.textsift_pruned = {
        "heads": [layer.attention.self.num_attention_heads for layer in layers],
        "ffn": [layer.intermediate.dense.out_features for layer in layers],
    }
    return model


def mask_units(model: nn.Module, heads: Sequence[Sequence[int]], neurons: Sequence[Sequence[int]]) -> nn.Module:
    """Zero the heads and neurons *not* kept, leaving shapes as they are (what pruning must equal, for tests)."""
    with torch.no_grad():
        for layer, h, n in zip(encoder_layers(model), heads, neurons):
            size = layer.attention.self.attention_head_size
            for head in range(layer.attention.self.num_attention_heads):
                if head not in h:
                    rows = slice(head * size, (head + 1) * size)
                    layer.attention.self.value.weight[rows] = 0.0
                    layer.attention.self.value.bias[rows] = 0.0
            drop = [i for i in range(layer.intermediate.dense.out_features) if i not in set(n)]
            layer.intermediate.dense.weight[drop] = 0.0
            layer.intermediate.dense.bias[drop] = 0.0
    return model


def prune(
    model_dir: str | Path, output: str | Path | None, *, heads: float, ffn: float, importance_examples: int = 2000,
    overrides: Sequence[str] = (), distill: bool = False, callbacks: Sequence[Any] = (), report: bool = True,
    splits: Any = None,
) -> Any:
    """Prune ``heads`` and ``ffn`` (fractions) of a transformer model directory's heads and FFN neurons, fine-tune
    it with the directory's own config (``overrides``: e.g. ``trainer.epochs=1``), optionally on the unpruned
    model's soft labels (``distill``), and save the run in ``output``; returns the run's ``TrainResult``."""
    from textsift.config import config_to_dict, resolve
    from textsift.config.loader import apply_overrides
    from textsift.config.schema import DistillConfig
    from textsift.compression.distill import DistillLoss
    from textsift.compression.teacher import TeacherOutputs
    from textsift.data.loading import load_splits
    from textsift.inference.predictor import Predictor
    from textsift.modeldir import check_model_dir, load_config_from
    from textsift.training.run import train

    for name, value in (("--heads", heads), ("--ffn", ffn)):
        if not 0.0 <= value < 1.0:
            raise ConfigError(f"prune {name}: the fraction of units to remove must be in [0, 1); got {value}.")
    model_dir = check_model_dir(model_dir).resolve()
    config = load_config_from(model_dir)
    if config.model.type != "transformer":  # type: ignore[attr-defined]
        raise ConfigError(f"prune: '{model_dir}' holds a '{config.model.type}' model; structured pruning is for "  # type: ignore[attr-defined]
                          "transformer models (attention heads and FFN neurons).")
    if overrides:
        config = resolve(apply_overrides(config_to_dict(config), list(overrides)), source=f"{model_dir}/config.yaml + --set")
    predictor = Predictor.load(model_dir, runtime="torch")
    net, tokenizer, labels = predictor.model, predictor.tokenizer, predictor.label_names
    splits = splits if splits is not None else load_splits(config)
    if splits.labels.names != list(labels):
        raise ConfigError(f"prune: the data's labels {splits.labels.names} differ from the model's {labels}; "
                          "fine-tune on data with the model's label set (data.labels).")
    rng = np.random.default_rng(config.seed)
    sample = splits.train.examples
    if len(sample) > importance_examples:
        sample = [sample[i] for i in sorted(rng.choice(len(sample), importance_examples, replace=False))]
    from textsift.data.example import Dataset

    scored = EncodedDataset(tokenizer.encode(sample), splits.labels.encode(Dataset("importance", list(sample))))
    scores = importance_scores(net, scored)
    kept_heads, kept_neurons = choose_kept(scores.heads, heads), choose_kept(scores.neurons, ffn)
    before = sum(p.numel() for p in net.parameters())
    prune_transformer(net, kept_heads, kept_neurons)
    logger.info("prune: heads per layer %s, FFN neurons per layer %s; %s -> %s parameters",
                [len(h) for h in kept_heads], [len(n) for n in kept_neurons], f"{before:,}",
                f"{sum(p.numel() for p in net.parameters()):,}")
    settings = (config.distill or DistillConfig()).model_copy(update={"teacher": str(model_dir)})
    soft: np.ndarray | None = None
    if distill:  # the unpruned model's soft labels (distill.temperature, alpha, cache_dir apply)
        teacher = TeacherOutputs(model_dir, Path(settings.cache_dir) if settings.cache_dir else None)
        soft = teacher.logits_for(splits.train.examples, labels)

    def prepare(model: nn.Module, loss_fn: nn.Module, train_data: EncodedDataset) -> tuple[nn.Module, nn.Module, EncodedDataset]:
        net.train()
        if soft is None:
            return net, loss_fn, train_data
        assert train_data.labels is not None
        targets = np.concatenate([train_data.labels.astype(np.float32)[:, None], soft], axis=1)
        return net, DistillLoss(loss_fn, settings), EncodedDataset(train_data.ids, targets)

    if distill:
        config = config.model_copy(update={"distill": settings})
    return train(config, output, callbacks=callbacks, splits=splits, report=report, tokenizer=tokenizer, prepare=prepare)

"""Knowledge distillation: a student of any model type learns a trained teacher's outputs.

Losses (Hinton et al. 2015; TinyBERT, Jiao et al. 2020): KL divergence to the teacher's soft labels at temperature
T, scaled by T^2, mixed with the hard labels by ``alpha``; for transformer students also the MSE between hidden
states and between attention maps of matched layers (``layer_map``). A transformer student can start from chosen
teacher layers (``init_from_teacher_layers``, DistilBERT-style). Students of another architecture learn from the
teacher's outputs on the training texts, ``data.unlabeled`` texts and augmented copies (Tang et al. 2019).

Training is the ordinary run (:func:`textsift.training.run.train`) through its ``prepare`` seam: the student, the
loss and the teacher-labelled training data are swapped in; the loop, callbacks and model directory are the same.
The teacher's logits are computed once per (teacher, text set) and cached by content (:mod:`.teacher`).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from textsift.batching import EncodedDataset
from textsift.compression.augment import augment
from textsift.compression.teacher import TeacherOutputs
from textsift.config import Config
from textsift.config.schema import DistillConfig
from textsift.data.example import Example
from textsift.errors import ConfigError
from textsift.text.base import Ragged
from textsift.training.callbacks import Callback

logger = logging.getLogger(__name__)


# --- losses -------------------------------------------------------------------------------------------------------

def soft_label_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(teacher || student) of the softmaxes at ``temperature``, times T^2 (gradients keep their scale), batch mean."""
    t = temperature
    return F.kl_div(F.log_softmax(student_logits / t, -1), F.log_softmax(teacher_logits / t, -1),
                    reduction="batchmean", log_target=True) * (t * t)


class LayerProbe:
    """Hooks on a :class:`TransformerClassifier` that keep, during one forward pass, the input batch, the output of
    every encoder layer and the queries and keys of every self-attention (for attention maps).

    ``when``: ``"training"`` keeps them only in training mode (the student; evaluation passes keep nothing),
    ``"always"`` on every pass (the teacher, run by the loss in eval mode)."""

    def __init__(self, model: nn.Module, when: str = "training") -> None:
        self.model = model
        self.when = when
        self.batch: dict[str, torch.Tensor] | None = None
        self.hidden: dict[int, torch.Tensor] = {}
        self.query: dict[int, torch.Tensor] = {}
        self.key: dict[int, torch.Tensor] = {}
        self.handles: list[Any] = []
        layers = encoder_layers(model)
        self.heads = [layer.attention.self.num_attention_heads for layer in layers]
        self.head_size = [layer.attention.self.attention_head_size for layer in layers]
        self.handles.append(model.register_forward_pre_hook(self._on_batch))
        for i, layer in enumerate(layers):
            self.handles.append(layer.register_forward_hook(self._keep(self.hidden, i)))
            self.handles.append(layer.attention.self.query.register_forward_hook(self._keep(self.query, i)))
            self.handles.append(layer.attention.self.key.register_forward_hook(self._keep(self.key, i)))

    def _active(self) -> bool:
        return self.when == "always" or self.model.training

    def _on_batch(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        if self._active():
            self.batch = args[0]

    def _keep(self, store: dict[int, torch.Tensor], i: int) -> Any:
        def hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
            if self._active():
                store[i] = output[0] if isinstance(output, tuple) else output
        return hook

    def mask(self) -> torch.Tensor:
        """[B, L] True on real tokens of the kept batch."""
        assert self.batch is not None
        ids, lengths = self.batch["ids"], self.batch["lengths"]
        return torch.arange(ids.shape[1], device=ids.device)[None, :] < lengths[:, None]

    def attention(self, i: int) -> torch.Tensor:
        """Attention probabilities of layer ``i``, [B, heads, L, L], padding keys masked out."""
        q, k = self.query[i], self.key[i]
        b, length, _ = q.shape
        h, d = self.heads[i], self.head_size[i]
        q = q.view(b, length, h, d).transpose(1, 2)
        k = k.view(b, length, h, d).transpose(1, 2)
        scores = (q @ k.transpose(-1, -2)) * d ** -0.5
        scores = scores.masked_fill(~self.mask()[:, None, None, :], torch.finfo(scores.dtype).min)
        return scores.softmax(-1)

    def clear(self) -> None:
        self.batch = None
        for store in (self.hidden, self.query, self.key):  # the hooks hold these dicts: empty them, never replace
            store.clear()

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []
        self.clear()


def encoder_layers(model: nn.Module) -> Sequence[nn.Module]:
    """The encoder layers of a transformer classifier (BERT-family ``encoder.encoder.layer``)."""
    encoder = getattr(getattr(model, "encoder", None), "encoder", None)
    layers = getattr(encoder, "layer", None)
    if layers is None:
        raise ConfigError(
            f"distill: the transformer {type(getattr(model, 'encoder', model)).__name__} has no BERT-style encoder.layer list; "
            "hidden-state, attention and layer-initialisation distillation need one. Set distill.hidden_weight and "
            "attention_weight to 0 and leave out init_from_teacher_layers."
        )
    return layers


class DistillLoss(nn.Module):
    """The student's loss. Training targets are rows ``[hard label or -1, teacher logits...]``; a row without a
    label (unlabeled and augmented texts) counts in the soft-label term only. Validation targets are plain label
    indices: the ``base`` loss (the config's trainer.loss)."""

    def __init__(
        self, base: nn.Module, settings: DistillConfig, *, student_probe: LayerProbe | None = None,
        teacher: nn.Module | None = None, layer_map: Sequence[int] = (),
    ) -> None:
        super().__init__()
        self.base = base
        self.temperature = settings.temperature
        self.alpha = settings.alpha
        self.hidden_weight = settings.hidden_weight
        self.attention_weight = settings.attention_weight
        self.student_probe = student_probe
        self.layer_map = list(layer_map)
        self.teacher_probe: LayerProbe | None = None
        if teacher is not None:
            self.teacher = teacher.eval().requires_grad_(False)
            self.teacher_probe = LayerProbe(teacher, when="always")
        self.last: dict[str, float] = {}

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if target.ndim == 1:
            return self.base(logits, target)
        hard, teacher_logits = target[:, 0].long(), target[:, 1:]
        loss = self.alpha * soft_label_loss(logits, teacher_logits, self.temperature)
        labelled = hard >= 0
        if self.alpha < 1.0 and bool(labelled.any()):
            share = labelled.float().mean()
            loss = loss + (1.0 - self.alpha) * share * self.base(logits[labelled], hard[labelled])
        self.last = {"soft_hard": float(loss.detach())}
        if self.student_probe is not None and self.teacher_probe is not None and (self.hidden_weight or self.attention_weight):
            loss = loss + self._intermediate()
        return loss

    def solver_targets(self, targets: np.ndarray) -> np.ndarray | None:
        """What a student fitted by a solver (``linear``, linear_bag's linear member) fits instead of this loss: per
        example the teacher's probabilities mixed with the one-hot label by ``alpha`` (a row without a label: the
        teacher's alone). Their cross-entropy is this loss's two terms at temperature 1; a solver's fit has no
        temperature (distill.temperature shapes the students trained by gradient)."""
        if targets.ndim == 1:
            return None
        hard, logits = targets[:, 0].astype(np.int64), targets[:, 1:].astype(np.float64)
        z = np.exp(logits - logits.max(1, keepdims=True))
        mix = z / z.sum(1, keepdims=True)
        labelled = np.flatnonzero(hard >= 0)
        mix[labelled] *= self.alpha
        mix[labelled, hard[labelled]] += 1.0 - self.alpha
        if self.temperature != 1.0:
            logger.info("distill: the solver fits the teacher's probabilities at temperature 1 (distill.temperature %g "
                        "applies to the members trained by gradient)", self.temperature)
        return mix

    def _intermediate(self) -> torch.Tensor:
        student, teacher = self.student_probe, self.teacher_probe
        assert student is not None and teacher is not None and student.batch is not None
        with torch.no_grad():
            self.teacher(student.batch)  # the same ids through the teacher: its probe keeps its layers
        mask = student.mask()
        tokens = mask.sum().clamp(min=1)
        hidden = attention = torch.zeros((), device=mask.device)
        for s, t in enumerate(self.layer_map):
            if self.hidden_weight:
                diff = (student.hidden[s] - teacher.hidden[t]) ** 2
                hidden = hidden + (diff.mean(-1) * mask).sum() / tokens
            if self.attention_weight:
                diff = (student.attention(s) - teacher.attention(t)) ** 2  # [B, H, L, L]
                rows = diff.sum(-1).mean(1)  # per query token: summed over keys, mean over heads
                attention = attention + (rows * mask).sum() / tokens
        n = max(len(self.layer_map), 1)
        extra = self.hidden_weight * hidden / n + self.attention_weight * attention / n
        self.last.update({"hidden": float(hidden.detach()) / n, "attention": float(attention.detach()) / n})
        student.clear()
        teacher.clear()
        return extra


class RemoveProbes(Callback):
    """Takes the layer hooks off the student (and the teacher) when training ends."""

    def __init__(self, loss: DistillLoss) -> None:
        self.loss = loss

    def on_fit_end(self, trainer: Any) -> None:
        for probe in (self.loss.student_probe, self.loss.teacher_probe):
            if probe is not None:
                probe.remove()


# --- the student --------------------------------------------------------------------------------------------------

def check_layers(setting: str, layers: Sequence[int], teacher_layers: int) -> None:
    bad = [i for i in layers if not 0 <= i < teacher_layers]
    if bad:
        raise ConfigError(
            f"{setting}: layer {bad[0]} is out of range: the teacher has {teacher_layers} layers (0 to {teacher_layers - 1}). "
            f"Give teacher layer indices from 0 to {teacher_layers - 1}."
        )
    if not layers:
        raise ConfigError(f"{setting}: empty; give at least one teacher layer (0 to {teacher_layers - 1}).")


def default_layer_map(student_layers: int, teacher_layers: int) -> list[int]:
    """Student layer i matches teacher layer (i + 1) * T / S - 1: evenly spaced, the last on the last (TinyBERT)."""
    return [round((i + 1) * teacher_layers / student_layers) - 1 for i in range(student_layers)]


def student_from_teacher(teacher: nn.Module, layers: Sequence[int], spec: Any, label_order: Sequence[int],
                         tokenizer: Any) -> nn.Module:
    """A transformer classifier with the teacher's embeddings, the teacher layers ``layers`` (in that order) and the
    teacher's head (output rows in the student's label order: ``label_order[i]`` is the teacher's index of label i)."""
    from textsift.backends.torch.networks.transformer import TransformerClassifier

    check_layers("distill.init_from_teacher_layers", layers, len(encoder_layers(teacher)))
    encoder = copy.deepcopy(teacher.encoder)
    kept = [copy.deepcopy(encoder_layers(teacher)[i]) for i in layers]
    encoder.encoder.layer = nn.ModuleList(kept)
    encoder.config.num_hidden_layers = len(kept)
    pruned = getattr(encoder.config, "textsift_pruned", None)
    if pruned:  # a pruned teacher: the kept layers' shapes, renumbered
        encoder.config.textsift_pruned = {"heads": [pruned["heads"][i] for i in layers], "ffn": [pruned["ffn"][i] for i in layers]}
    for i, layer in enumerate(kept):
        layer.attention.self.layer_idx = i
    student = TransformerClassifier(spec, encoder, len(label_order), tokenizer).requires_grad_(True)  # (a frozen teacher's copy)
    head = copy.deepcopy(teacher.head)
    last = [m for m in head.modules() if isinstance(m, nn.Linear)][-1]
    with torch.no_grad():
        order = torch.as_tensor(list(label_order))
        last.weight.copy_(last.weight[order].clone())
        last.bias.copy_(last.bias[order].clone())
    if [tuple(p.shape) for p in head.parameters()] == [tuple(p.shape) for p in student.head.parameters()]:
        student.head = head
    else:
        logger.info("distill: the student's head (model.head) differs from the teacher's; it starts untrained.")
    return student


def concat_ragged(a: Ragged, b: Ragged) -> Ragged:
    return Ragged(np.concatenate([a.values, b.values]), np.concatenate([a.offsets, b.offsets[1:] + a.offsets[-1]]))


# --- the run ------------------------------------------------------------------------------------------------------

def read_unlabeled(config: Config) -> list[Example]:
    if config.data.unlabeled is None:
        return []
    from textsift.data.loading import read_for

    return read_for(config, config.data.unlabeled, require_labels=False).examples


def check_labels(student_labels: Sequence[str], teacher_labels: Sequence[str], teacher_dir: Path) -> None:
    if set(student_labels) != set(teacher_labels):
        only_student = sorted(set(student_labels) - set(teacher_labels))
        only_teacher = sorted(set(teacher_labels) - set(student_labels))
        raise ConfigError(
            f"distill.teacher: the teacher '{teacher_dir}' has labels {sorted(teacher_labels)}, the student's data "
            f"(data.train / data.labels) {sorted(student_labels)} (only the student's: {only_student}; only the "
            f"teacher's: {only_teacher}). Distil into data with the teacher's label set."
        )


def distill(
    config: Config, teacher_dir: str | Path | None, output: str | Path | None, *, callbacks: Sequence[Callback] = (),
    report: bool = True,
) -> Any:
    """Train the student described by ``config`` on the teacher's outputs; returns the run's ``TrainResult``."""
    from textsift.data.loading import load_splits
    from textsift.modeldir import check_model_dir
    from textsift.training.run import train

    settings = config.distill or DistillConfig()
    teacher_path = teacher_dir if teacher_dir is not None else settings.teacher
    if teacher_path is None:
        raise ConfigError("distill.teacher: no teacher. Give the teacher's model directory (textsift distill TEACHER_DIR CONFIG).")
    teacher_path = check_model_dir(teacher_path).resolve()
    settings = settings.model_copy(update={"teacher": str(teacher_path)})
    if config.task != "single_label":
        raise ConfigError("task: distillation is implemented for single_label tasks (softmax soft labels); this config is multilabel.")
    transformer_student = config.model.type == "transformer"  # type: ignore[attr-defined]
    layered = settings.init_from_teacher_layers is not None or settings.hidden_weight > 0 or settings.attention_weight > 0
    if layered and not transformer_student:
        setting = "init_from_teacher_layers" if settings.init_from_teacher_layers is not None else (
            "hidden_weight" if settings.hidden_weight > 0 else "attention_weight")
        raise ConfigError(
            f"distill.{setting}: layer-to-layer distillation needs a transformer student; this student is "
            f"'{config.model.type}'. Remove it (soft labels work for every model type).")  # type: ignore[attr-defined]

    teacher = TeacherOutputs(teacher_path, Path(settings.cache_dir) if settings.cache_dir else None,
                             runtime=settings.teacher_runtime)
    splits = load_splits(config)
    labels = splits.labels.names
    check_labels(labels, teacher.label_names, teacher_path)
    label_order = [teacher.label_names.index(name) for name in labels]
    teacher_net: nn.Module | None = None
    tokenizer = None
    if layered:
        if settings.teacher_runtime == "torch":
            teacher_net = teacher.predictor.model
        else:  # the layers come from the torch network
            from textsift.inference.predictor import Predictor

            teacher_net = Predictor.load(teacher_path, runtime="torch").model
        if teacher.predictor.full_config().model.type != "transformer":  # type: ignore[attr-defined]
            raise ConfigError(f"distill: layer-to-layer distillation needs a transformer teacher; '{teacher_path}' is "
                              f"'{teacher.predictor.full_config().model.type}'. Distil from soft labels only.")  # type: ignore[attr-defined]
        teacher_layers = len(encoder_layers(teacher_net))
        if settings.init_from_teacher_layers is not None:
            check_layers("distill.init_from_teacher_layers", settings.init_from_teacher_layers, teacher_layers)
        if settings.layer_map is not None:
            check_layers("distill.layer_map", settings.layer_map, teacher_layers)
        # layers are compared token by token: the student reads the teacher's tokens
        tokenizer = teacher.predictor.tokenizer
        config = config.model_copy(update={"tokenizer": teacher.predictor.full_config().tokenizer})  # type: ignore[attr-defined]
        logger.info("distill: the student uses the teacher's tokenizer (%s).", teacher.predictor.full_config().tokenizer.type)  # type: ignore[attr-defined]
    extra = read_unlabeled(config) + augment(splits.train.examples, settings.augment, config.seed)
    if tokenizer is None:
        tokenizer = config.tokenizer.build()  # type: ignore[attr-defined]
        tokenizer.fit(splits.train.examples + extra)  # the student's vocabulary covers the extra texts too
    logger.info("distill: %d training texts, %d extra texts (data.unlabeled and %d augmented copies each)",
                len(splits.train), len(extra), settings.augment.copies)
    soft = teacher.logits_for(splits.train.examples, labels)
    soft_extra = teacher.logits_for(extra, labels) if extra else np.zeros((0, len(labels)), np.float32)
    config = config.model_copy(update={"distill": settings})
    probes: list[DistillLoss] = []

    def prepare(model: nn.Module, loss_fn: nn.Module, train_data: EncodedDataset) -> tuple[nn.Module, nn.Module, EncodedDataset]:
        if settings.init_from_teacher_layers is not None:
            assert teacher_net is not None
            model = student_from_teacher(teacher_net, settings.init_from_teacher_layers, config.model, label_order, tokenizer)
            logger.info("distill: student initialised from teacher layers %s", settings.init_from_teacher_layers)
        layer_map: list[int] = []
        student_probe = None
        if teacher_net is not None and (settings.hidden_weight > 0 or settings.attention_weight > 0):
            student_layers = len(encoder_layers(model))
            layer_map = settings.layer_map or default_layer_map(student_layers, len(encoder_layers(teacher_net)))
            if len(layer_map) != student_layers:
                raise ConfigError(f"distill.layer_map: {len(layer_map)} entries for a student of {student_layers} layers; "
                                  "give one teacher layer per student layer.")
            student_probe = LayerProbe(model)
            _check_shapes(student_probe, LayerProbe(teacher_net), layer_map, settings)
        loss = DistillLoss(loss_fn, settings, student_probe=student_probe, teacher=teacher_net if student_probe else None,
                           layer_map=layer_map)
        probes.append(loss)
        ids = concat_ragged(train_data.ids, tokenizer.encode(extra)) if extra else train_data.ids
        assert train_data.labels is not None
        hard = np.concatenate([train_data.labels.astype(np.float32), np.full(len(extra), -1.0, np.float32)])
        targets = np.concatenate([hard[:, None], np.concatenate([soft, soft_extra])], axis=1).astype(np.float32)
        return model, loss, EncodedDataset(ids, targets)

    class _Cleanup(Callback):
        def on_fit_end(self, trainer: Any) -> None:
            for loss in probes:
                RemoveProbes(loss).on_fit_end(trainer)

    return train(config, output, callbacks=[*callbacks, _Cleanup()], splits=splits, report=report, tokenizer=tokenizer,
                 prepare=prepare)


def _check_shapes(student: LayerProbe, teacher: LayerProbe, layer_map: Sequence[int], settings: DistillConfig) -> None:
    """Hidden sizes and head counts of matched layers must agree (no learned projection here)."""
    try:
        for s, t in enumerate(layer_map):
            if settings.attention_weight and student.heads[s] != teacher.heads[t]:
                raise ConfigError(
                    f"distill.attention_weight: student layer {s} has {student.heads[s]} attention heads, teacher layer {t} "
                    f"{teacher.heads[t]}; attention maps compare head by head. Set attention_weight: 0, or match the layers.")
        if settings.hidden_weight:
            s_size = student.model.encoder.config.hidden_size
            t_size = teacher.model.encoder.config.hidden_size
            if s_size != t_size:
                raise ConfigError(f"distill.hidden_weight: the student's hidden size is {s_size}, the teacher's {t_size}; "
                                  "hidden states compare only at equal sizes. Set hidden_weight: 0, or use a student of width "
                                  f"{t_size}.")
    finally:
        teacher.remove()

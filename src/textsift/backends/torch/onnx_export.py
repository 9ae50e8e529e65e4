"""Export a torch network to an ONNX graph with dynamic batch and sequence axes, and check it.

The graph takes collated batches (:mod:`textsift.batching`), int64, and gives ``logits``: ``ids`` and
``lengths`` (padded), or ``ids`` and ``offsets`` (bag) for a bag network of a plugin, exported as it is. Some networks
are rewritten for export with the same weights and the same arithmetic, where torch.export cannot trace them
or ONNX has no good equivalent:

* bag: ``nn.EmbeddingBag`` exports as an ONNX Loop over the batch; here the graph takes the batch padded
  (``ids`` and ``lengths``) and pools with a gather and a masked sum, mean or max over each row;
* linear: the TF-IDF weights in its forward need ``bincount``, which the exporter cannot translate; here the
  graph takes the batch padded, and the weights come from ``unique`` counts and masked sums over each row
  (no scatter-add: ONNX Runtime's ScatterND adds colliding indices in parallel threads, racing);
* LSTM/GRU: ``pack_padded_sequence`` does not trace; here each direction of each layer runs over the padded
  batch, the backward one over each text reversed within its own length, which gives the packed result.

The exporter's traps are avoided: the sample batch has sizes of at least 2 that differ from each other (a
size of 0 or 1 is specialised away) and the exported graph is checked to have symbolic batch and sequence
dimensions and to match torch on batches of 1, 3 and 17 texts, from 1 token to the longest.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

from textsift.errors import ModelDirError

logger = logging.getLogger(__name__)

#: ONNX opset of the exported graphs (ScatterElements with max reduction needs 18)
OPSET = 18
INPUTS = {"bag": ("ids", "offsets"), "padded": ("ids", "lengths")}


class PaddedInputs(nn.Module):
    """A network that takes a batch dict, called with the padded tensors positionally."""

    input_format = "padded"

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.model({"ids": ids, "lengths": lengths})


class FlatInputs(nn.Module):
    """A bag network that takes a batch dict, called with the flat tensors positionally."""

    input_format = "bag"

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, ids: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        return self.model({"ids": ids, "offsets": offsets})


class BagForExport(nn.Module):
    """``BagClassifier`` over padded ids: EmbeddingBag (mean, sum or max, ``padding_idx`` left out) as a gather and a
    masked reduction over each row, then the head."""

    input_format = "padded"

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.weight = model.embedding.weight
        self.mode = model.embedding.mode
        self.padding_idx = model.embedding.padding_idx
        self.head = model.head

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        keep = torch.arange(ids.shape[1])[None, :] < lengths[:, None]
        if self.padding_idx is not None:
            keep = keep & (ids != self.padding_idx)
        vectors = nn.functional.embedding(ids, self.weight)  # a Gather, which int8 quantization knows
        if self.mode == "max":
            pooled = vectors.masked_fill(~keep[:, :, None], float("-inf")).max(1).values
            return self.head(torch.where(torch.isinf(pooled), torch.zeros_like(pooled), pooled))  # an empty bag is zeros
        pooled = (vectors * keep[:, :, None].float()).sum(1)
        if self.mode == "mean":
            pooled = pooled / keep.float().sum(1).clamp(min=1.0)[:, None]
        return self.head(pooled)


class LinearForExport(nn.Module):
    """``LinearClassifier`` over padded ids: the same TF-IDF weights (tf from ``unique`` counts of (text, feature),
    L2 norm per text and kind of feature) and logits, as masked reductions over each row."""

    input_format = "padded"

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.idf, self.weight, self.bias = model.idf, model.weight, model.bias
        self.vocab_size = int(model.vocab_size)
        self.first_char_row = int(model.first_char_row)
        self.sublinear_tf = bool(model.spec.sublinear_tf)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        rows, width = ids.shape
        valid = torch.arange(width)[None, :] < lengths[:, None]
        keys = torch.where(valid, torch.arange(rows)[:, None] * self.vocab_size + ids, torch.full_like(ids, -1))
        _, inverse, counts = torch.unique(keys.reshape(-1), return_inverse=True, return_counts=True)
        count = counts.index_select(0, inverse.reshape(-1)).reshape(rows, width).float()  # of this feature in its text
        tf = 1.0 + torch.log(count) if self.sublinear_tf else count
        weight = tf * nn.functional.embedding(ids, self.idf[:, None])[:, :, 0] * valid.float()
        share = 1.0 / count  # each occurrence carries its share of the feature, which counts once
        chars = ids >= self.first_char_row  # words and character n-grams are normalised apart
        squares = share * weight * weight
        word_norm = (squares * (~chars).float()).sum(1, keepdim=True).sqrt()
        char_norm = (squares * chars.float()).sum(1, keepdim=True).sqrt()
        norm = torch.where(chars, char_norm, word_norm).clamp_min(1e-12)
        scale = share * weight / norm
        return (scale[:, :, None] * nn.functional.embedding(ids, self.weight)).sum(1) + self.bias


class LinearBagForExport(nn.Module):
    """``LinearBagClassifier`` over padded ids: both members' export forms, the bag reading the word n-grams only
    (character ids become padding, which it leaves out), and the same average of their probabilities."""

    input_format = "padded"

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.linear, self.bag = LinearForExport(model.linear), BagForExport(model.bag)
        self.first_char_row = int(model.linear.first_char_row)
        self.weight = float(model.spec.linear_weight)
        self.sigmoid = bool(model.sigmoid)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        from textsift.backends.torch.networks.linear_bag import average

        linear = self.linear(ids, lengths)
        bag = self.bag(torch.where(ids < self.first_char_row, ids, torch.zeros_like(ids)), lengths)
        return average(linear, bag, self.weight, self.sigmoid)


class RnnForExport(nn.Module):
    """``RnnClassifier`` without packing: each direction of each layer over the padded batch; the backward one
    over every text reversed within its own length (padding stays behind), which is what packing computes."""

    input_format = "padded"

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        rnn = model.rnn
        self.embedding, self.head, self.pooling = model.embedding, model.head, model.pooling
        self.directions, self.layers = model.directions, rnn.num_layers
        self.cells = nn.ModuleList()
        for layer in range(rnn.num_layers):
            for suffix in ("", "_reverse")[: self.directions]:
                size = rnn.input_size if layer == 0 else rnn.hidden_size * self.directions
                cell = type(rnn)(size, rnn.hidden_size, batch_first=True, bias=rnn.bias)
                with torch.no_grad():
                    for name in ("weight_ih", "weight_hh") + (("bias_ih", "bias_hh") if rnn.bias else ()):
                        getattr(cell, f"{name}_l0").copy_(getattr(rnn, f"{name}_l{layer}{suffix}"))
                self.cells.append(cell)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        width = ids.shape[1]
        steps = lengths.clamp(min=1)  # as the torch network packs an empty text: one step
        position = torch.arange(width)[None, :]
        valid = position < steps[:, None]
        reverse = torch.where(valid, steps[:, None] - 1 - position, position)  # its own inverse
        x = self.embedding(ids)
        last: list[torch.Tensor] = []
        for layer in range(self.layers):
            outputs, last = [], []
            for d in range(self.directions):
                cell = self.cells[layer * self.directions + d]
                if d == 0:
                    out, _ = cell(x)
                    end = (steps - 1)[:, None, None].expand(-1, 1, out.shape[2])
                    last.append(out.gather(1, end)[:, 0])
                else:
                    index = reverse[:, :, None]
                    out, _ = cell(x.gather(1, index.expand(-1, -1, x.shape[2])))
                    out = out.gather(1, index.expand(-1, -1, out.shape[2]))
                    last.append(out[:, 0])
                outputs.append(out)
            x = torch.cat(outputs, dim=-1) * valid[:, :, None]
        if self.pooling == "last":
            pooled = torch.cat(last, dim=-1)
        else:
            mask = (position < lengths[:, None])[:, :, None]
            if self.pooling == "mean":
                pooled = (x * mask).sum(1) / mask.sum(1).clamp(min=1)
            else:
                pooled = x.masked_fill(~mask, float("-inf")).max(1).values
        return self.head(pooled)


def exportable(model: nn.Module) -> nn.Module:
    """The module torch.onnx.export traces for ``model``: a rewrite for export, or the network itself."""
    from textsift.backends.torch.networks.bag import BagClassifier
    from textsift.backends.torch.networks.linear import LinearClassifier
    from textsift.backends.torch.networks.linear_bag import LinearBagClassifier
    from textsift.backends.torch.networks.rnn import RnnClassifier

    if isinstance(model, LinearBagClassifier):
        return LinearBagForExport(model).eval()

    if isinstance(model, BagClassifier):
        return BagForExport(model).eval()
    if isinstance(model, LinearClassifier):
        return LinearForExport(model).eval()
    if isinstance(model, RnnClassifier):
        return RnnForExport(model).eval()
    wrapper = FlatInputs if getattr(model, "input_format", "padded") == "bag" else PaddedInputs
    return wrapper(model).eval()


def sample_batch(lengths: list[int], vocab_size: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """A batch of random ids (1 .. vocab_size - 1) with these lengths, in both collations: ``ids`` and ``lengths``
    (padded), ``flat`` and ``offsets`` (bag)."""
    generator = torch.Generator().manual_seed(seed)
    size = torch.tensor(lengths, dtype=torch.long)
    width = max(max(lengths), 1)
    mask = torch.arange(width)[None, :] < size[:, None]
    ids = torch.randint(1, max(vocab_size, 2), (len(lengths), width), generator=generator) * mask
    offsets = torch.zeros(len(lengths), dtype=torch.long)
    offsets[1:] = torch.cumsum(size, 0)[:-1]
    return {"ids": ids, "lengths": size, "flat": ids[mask], "offsets": offsets}


def inputs_of(batch: dict[str, torch.Tensor], input_format: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The two input tensors of a :func:`sample_batch` in ``input_format``."""
    return (batch["flat"], batch["offsets"]) if input_format == "bag" else (batch["ids"], batch["lengths"])


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The exporter's progress lines, warnings and log records are not the user's business."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "torch._dynamo", "torch.fx", "onnxscript", "onnx_ir")]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(None):  # type: ignore[type-var]
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def longest_input(model: nn.Module, max_length: int) -> int:
    """The most tokens a text can have: the tokenizer's maximum, or fewer where the network has fewer positions."""
    positions = getattr(getattr(getattr(model, "encoder", None), "config", None), "max_position_embeddings", None)
    return min(max_length, positions) if isinstance(positions, int) else max_length


def export_onnx(model: nn.Module, path: Path, *, vocab_size: int, max_length: int) -> None:
    """Write ``model`` as an ONNX graph to ``path`` (one file, weights inside)."""
    from torch.export import Dim

    module = exportable(model.eval())
    input_format = module.input_format
    sample = inputs_of(sample_batch([5, 2, 4], vocab_size), input_format)  # sizes >= 2, all different
    batch = Dim("batch", min=1)
    if input_format == "bag":
        shapes: tuple[Any, ...] = ({0: Dim("features", min=1)}, {0: batch})
    else:
        shapes = ({0: batch, 1: Dim("length", min=1, max=max(max_length, 5))}, {0: batch})
    with _quiet(), torch.no_grad():
        torch.onnx.export(module, sample, str(path), input_names=list(INPUTS[input_format]), output_names=["logits"],
                          dynamic_shapes=shapes, opset_version=OPSET, external_data=False, dynamo=True, verbose=False)


def check_dynamic(path: Path) -> None:
    """Every input dimension of the graph is symbolic: batch and sequence sizes were not fixed by the sample."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    for value in graph.input:
        dims = value.type.tensor_type.shape.dim
        fixed = [i for i, d in enumerate(dims) if not d.dim_param]
        if fixed:
            raise ModelDirError(f"{path.name}: input '{value.name}' has fixed size in dimension {fixed[0]} "
                                f"({dims[fixed[0]].dim_value}): the exporter specialised it to the sample batch.")


def parity_batches(vocab_size: int, max_length: int) -> Iterator[tuple[str, dict[str, torch.Tensor]]]:
    """Batches of 1, 3 and 17 texts, of lengths from 1 token to ``max_length`` (at most 2,048: a bag model's
    tokenizer allows 100,000 features, and the arithmetic does not change with the length)."""
    rng = np.random.default_rng(0)
    top = min(max_length, 2048)
    for size in (1, 3, 17):
        for longest in sorted({1, min(7, top), top}):
            lengths = [longest] + rng.integers(1, longest + 1, size - 1).tolist()
            yield f"batch {size}, up to {longest} tokens", sample_batch(lengths, vocab_size, seed=size * 10_000 + longest)


def agreement(expected: np.ndarray, got: np.ndarray, multilabel: bool) -> tuple[float, bool]:
    """How two computations of the same logits agree: the largest probability difference (inf for other shapes) and
    whether they choose the same labels (the argmax; multilabel: every probability on the same side of 0.5)."""
    p, q = probabilities(expected, multilabel), probabilities(got, multilabel)
    if p.shape != q.shape:
        return float("inf"), False
    diff = float(np.abs(p - q).max()) if p.size else 0.0
    return diff, bool(np.array_equal(p > 0.5, q > 0.5) if multilabel else np.array_equal(p.argmax(1), q.argmax(1)))


def probabilities(logits: np.ndarray, multilabel: bool) -> np.ndarray:
    logits = np.asarray(logits, np.float64)
    if multilabel:
        return 1.0 / (1.0 + np.exp(-logits))
    z = np.exp(logits - logits.max(1, keepdims=True))
    return z / z.sum(1, keepdims=True)


def check_parity(model: nn.Module, path: Path, *, vocab_size: int, max_length: int, multilabel: bool,
                 tolerance: float = 1e-4) -> float:
    """Run the graph with ONNX Runtime beside torch on :func:`parity_batches`; returns the largest probability
    difference, and raises if it is above ``tolerance`` or a predicted label differs."""
    import onnxruntime as ort

    ours = getattr(model, "input_format", "padded")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    graph = "bag" if [i.name for i in session.get_inputs()] == list(INPUTS["bag"]) else "padded"
    worst = 0.0
    for name, batch in parity_batches(vocab_size, max_length):
        with torch.no_grad():
            expected = model(dict(zip(INPUTS[ours], inputs_of(batch, ours)))).float().numpy()
        got = session.run(["logits"], {k: v.numpy() for k, v in zip(INPUTS[graph], inputs_of(batch, graph))})[0]
        diff, same = agreement(expected, got, multilabel)
        if diff > tolerance or not same:
            raise ModelDirError(f"{path.name} does not match the torch network ({name}: probabilities differ by up to {diff:.2e}"
                                f"{'' if same else ', and a label differs'}); the export is not written.")
        worst = max(worst, diff)
    return worst

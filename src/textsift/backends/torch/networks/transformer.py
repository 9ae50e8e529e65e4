"""Fine-tuned pretrained encoders (BERT family) from a local directory or the Hugging Face hub."""

from __future__ import annotations

import contextlib
import re
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
from pydantic import Field
from torch import nn

from textsift import registry
from textsift.errors import ConfigError, ModelDirError
from textsift.models.base import ModelSpec
from textsift.backends.torch.networks.heads import ClassificationHead, TorchClassifier

_LAYER = re.compile(r"\.layers?\.(\d+)\.")


@registry.models.register("transformer")
class TransformerSpec(ModelSpec):
    """A pretrained encoder (``AutoModel``), pooled, under the shared classification head."""

    type: Literal["transformer"] = "transformer"
    recommended: ClassVar[dict[str, Any]] = {
        "tokenizer": {"type": "pretrained", "max_length": 128},
        "trainer": {
            "epochs": 3, "batch_size": 32, "grad_clip": 1.0, "early_stopping": None,
            "optimizer": {"type": "torch.optim:AdamW", "lr": 5e-5, "weight_decay": 0.01},
            "scheduler": {"type": "linear", "warmup_ratio": 0.1},
        },
    }
    pretrained: str = Field(description="Local directory or hub name of the encoder (e.g. bert-base-uncased).",
                            json_schema_extra={"input_path": True})  # workflows fingerprint a local directory's files
    pooling: Literal["cls", "pooler", "mean", "max", "weighted"] = Field(
        "cls", description="First token; the first token through the encoder's pretrained pooler (BERT's dense + tanh, "
        "as AutoModelForSequenceClassification uses it); masked mean or max over tokens; or a learned mix of all hidden layers."
    )
    freeze_embeddings: bool = Field(False, description="Keep the embedding layer frozen (until unfreeze_at_epoch).")
    freeze_layers: int = Field(0, ge=0, description="Keep the lowest N encoder layers frozen (until unfreeze_at_epoch).")
    unfreeze_at_epoch: int | None = Field(
        None, ge=1, description="Unfreeze everything from this epoch on (1-based); null: frozen throughout."
    )
    layer_lr_decay: float = Field(
        1.0, gt=0.0, le=1.0, description="Layer-wise LR decay: layer i from the top trains at lr * decay**i."
    )
    head_lr: float | None = Field(None, gt=0.0, description="Learning rate of the head; null: trainer.optimizer.lr.")

    @classmethod
    def fill_config(cls, raw: dict[str, Any]) -> dict[str, Any]:
        tokenizer, model = raw.get("tokenizer"), raw.get("model")
        if isinstance(tokenizer, dict) and tokenizer.get("type") == "pretrained" and tokenizer.get("name") is None:
            if isinstance(model, dict) and isinstance(model.get("pretrained"), str):
                raw = {**raw, "tokenizer": {**tokenizer, "name": model["pretrained"]}}
        return raw

    def build(self, *, vocab_size: int, num_labels: int, tokenizer: Any = None) -> "TransformerClassifier":
        from transformers import AutoModel

        try:
            encoder = AutoModel.from_pretrained(self.pretrained)
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"model.pretrained: cannot load '{self.pretrained}': {str(exc).splitlines()[0]} "
                "Give a local directory with config.json and weights, or a hub name reachable from here."
            ) from None
        return TransformerClassifier(self, encoder, num_labels, tokenizer)

    def build_from_dir(self, directory: Path, *, vocab_size: int, num_labels: int, tokenizer: Any = None) -> "TransformerClassifier":
        from transformers import AutoConfig, AutoModel

        encoder_dir = directory / "encoder"
        if not (encoder_dir / "config.json").is_file():
            raise ModelDirError(f"{directory}: missing encoder/config.json (the encoder's architecture).")
        encoder = AutoModel.from_config(AutoConfig.from_pretrained(str(encoder_dir)))
        apply_pruned_shapes(encoder)
        return TransformerClassifier(self, encoder, num_labels, tokenizer)

    def save_extra(self, model: "TransformerClassifier", directory: Path) -> None:
        (directory / "encoder").mkdir(exist_ok=True)
        model.encoder.config.to_json_file(str(directory / "encoder" / "config.json"))


def _slice_linear(linear: nn.Linear, index: torch.Tensor, dim: int) -> nn.Linear:
    """A copy of ``linear`` keeping the outputs (``dim`` 0) or inputs (``dim`` 1) at ``index``."""
    weight = linear.weight.detach().index_select(dim, index).clone()
    bias = None if linear.bias is None else (linear.bias.detach()[index] if dim == 0 else linear.bias.detach()).clone()
    out = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None, device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        out.weight.copy_(weight)
        if bias is not None:
            out.bias.copy_(bias)
    out.train(linear.training)
    return out


def slice_layer(layer: nn.Module, heads: list[int] | None = None, neurons: list[int] | None = None) -> None:
    """Keep only the attention ``heads`` and FFN ``neurons`` (indices, ascending) of a BERT-style encoder layer, in
    place: the weights are sliced, so the layer is smaller and faster (structured pruning)."""
    if heads is not None:
        attention = layer.attention.self
        size = attention.attention_head_size
        index = torch.tensor([h * size + j for h in heads for j in range(size)], dtype=torch.long)
        for name in ("query", "key", "value"):
            setattr(attention, name, _slice_linear(getattr(attention, name), index, 0))
        layer.attention.output.dense = _slice_linear(layer.attention.output.dense, index, 1)
        attention.num_attention_heads = len(heads)
        attention.all_head_size = len(heads) * size
    if neurons is not None:
        index = torch.tensor(neurons, dtype=torch.long)
        layer.intermediate.dense = _slice_linear(layer.intermediate.dense, index, 0)
        layer.output.dense = _slice_linear(layer.output.dense, index, 1)


def apply_pruned_shapes(encoder: nn.Module) -> None:
    """Give a freshly built encoder the per-layer head and FFN counts its config records after pruning
    (``textsift_pruned: {heads: [...], ffn: [...]}``, written by ``textsift prune``), before its weights load."""
    pruned = getattr(encoder.config, "textsift_pruned", None)
    if not pruned:
        return
    layers = encoder.encoder.layer
    heads, ffn = pruned.get("heads"), pruned.get("ffn")
    if not (isinstance(heads, list) and isinstance(ffn, list) and len(heads) == len(ffn) == len(layers)):
        raise ModelDirError(
            f"encoder/config.json: textsift_pruned must list heads and ffn sizes for each of the {len(layers)} layers; "
            f"found {pruned!r}. Copy the whole directory that textsift prune wrote."
        )
    for layer, n_heads, n_ffn in zip(layers, heads, ffn):
        slice_layer(layer, list(range(int(n_heads))), list(range(int(n_ffn))))


def attention_kernels(device: torch.device) -> Any:
    """The context a transformer's attention runs in: on a GPU, scaled dot-product attention without its cuDNN backend.

    cuDNN attention builds an execution plan for every new shape of its inputs, about 0.2 s each on an H200 (torch
    2.11), and textsift's batches are cut by length, so nearly every batch of an epoch is a new shape. Measured on a
    BERT-base-sized encoder, emotion's texts, batches of 256, each side in a fresh process: 1,480 training examples/s
    with cuDNN attention, 6,274 without it (SDPA's flash and memory-efficient kernels; BENCHMARKS.md, "GPU figures").
    Entered by :class:`TransformerClassifier` around the encoder itself, so that every forward pass takes it (training,
    evaluation, prediction, a distillation teacher's pass inside the loss). Elsewhere (a CPU) nothing changes."""
    if device.type != "cuda":
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH])


def unpadded_applies(encoder: nn.Module) -> bool:
    """Whether :func:`unpadded_hidden` computes this encoder's function: a transformers BERT encoder (absolute
    positions, not a decoder) with no hooks on its modules (a hook expects the layers' own calls, e.g. distillation's
    probes)."""
    config = getattr(encoder, "config", None)
    if config is None or getattr(config, "model_type", None) != "bert" or getattr(config, "is_decoder", False):
        return False
    if getattr(config, "position_embedding_type", "absolute") != "absolute":
        return False
    layers = getattr(getattr(encoder, "encoder", None), "layer", None)
    if layers is None or not hasattr(encoder, "embeddings"):
        return False
    return not any(m._forward_hooks or m._forward_pre_hooks for m in encoder.modules())


def unpadded_hidden(encoder: nn.Module, inputs: dict[str, torch.Tensor], mask: torch.Tensor, *,
                    all_layers: bool = False) -> tuple[list[torch.Tensor], torch.Tensor]:
    """A BERT encoder's hidden states of the real tokens only, ``[T, H]`` in row-major order of ``mask`` (the
    embeddings' output and each layer's with ``all_layers``, else the last layer's alone), and their flat positions
    in ``[B * L]``. The embeddings, every linear layer, layer norm and activation run over the ``T`` real tokens;
    only attention (scaled dot product, padding keys masked) runs on the padded ``[B, heads, L, L]``. Eval mode (no
    dropout): the function of ``encoder(**inputs).last_hidden_state`` at those positions, to float rounding."""
    rows, width = mask.shape
    index = mask.reshape(-1).nonzero().squeeze(1)
    embedded = encoder.embeddings(input_ids=inputs["input_ids"], token_type_ids=inputs.get("token_type_ids"))
    x = embedded.reshape(rows * width, -1).index_select(0, index)
    keys = mask[:, None, None, :]  # True: attend
    states = [x] if all_layers else []
    for layer in encoder.encoder.layer:
        attention = layer.attention.self
        heads, size = attention.num_attention_heads, attention.attention_head_size
        padded = []
        for linear in (attention.query, attention.key, attention.value):
            full = x.new_zeros(rows * width, heads * size).index_copy_(0, index, linear(x))
            padded.append(full.view(rows, width, heads, size).transpose(1, 2))
        scale = getattr(attention, "scaling", size ** -0.5)
        context = torch.nn.functional.scaled_dot_product_attention(*padded, attn_mask=keys, scale=scale)
        context = context.transpose(1, 2).reshape(rows * width, heads * size).index_select(0, index)
        out = layer.attention.output
        x = out.LayerNorm(out.dense(context) + x)
        out = layer.output
        x = out.LayerNorm(out.dense(layer.intermediate(x)) + x)
        if all_layers:
            states.append(x)
    return (states if all_layers else [x]), index


class TransformerClassifier(TorchClassifier):
    def __init__(self, spec: TransformerSpec, encoder: nn.Module, num_labels: int, tokenizer: Any) -> None:
        super().__init__()
        self.spec = spec
        self.encoder = encoder
        config = encoder.config
        ids = getattr(tokenizer, "special_ids", {}) if tokenizer is not None else {}
        self.pad_id = ids.get("pad") if ids.get("pad") is not None else (config.pad_token_id or 0)
        self.sep_id = ids.get("sep")
        self.use_token_types = getattr(config, "type_vocab_size", 1) > 1 and self.sep_id is not None
        n_layers = config.num_hidden_layers
        self.num_layers = n_layers
        if spec.pooling == "pooler" and getattr(encoder, "pooler", None) is None:
            raise ConfigError(
                f"model.pooling: 'pooler' needs an encoder with a pretrained pooler (BERT's dense + tanh over the first "
                f"token); {type(encoder).__name__} has none. Use pooling: cls, mean, max or weighted."
            )
        if spec.pooling == "weighted":
            self.layer_weights = nn.Parameter(torch.zeros(n_layers + 1))
        self.head = ClassificationHead(spec.head, config.hidden_size, num_labels)
        self._frozen: bool | None = None

    # -- forward --------------------------------------------------------------------------------
    def _inputs(self, batch: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """The encoder's inputs (ids with padding set to the pad id, attention mask, token types of a pair) and the
        ``[B, L]`` mask of real tokens."""
        ids, lengths = batch["ids"], batch["lengths"]
        mask = torch.arange(ids.shape[1], device=ids.device)[None, :] < lengths[:, None]
        ids = ids.masked_fill(~mask, self.pad_id)
        inputs: dict[str, torch.Tensor] = {"input_ids": ids, "attention_mask": mask.long()}
        if self.use_token_types:  # second text of a pair: everything after the first separator
            after_sep = torch.cumsum((ids == self.sep_id).long(), dim=1) - (ids == self.sep_id).long()
            inputs["token_type_ids"] = ((after_sep > 0) & mask).long()
        return inputs, mask

    def inference(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Logits in eval mode without gradients, as :meth:`forward` computes them; on a BERT encoder every product
        but attention runs over the batch's real tokens only (:func:`unpadded_hidden`), so a batch of mixed lengths
        costs its tokens, not its rows times its longest text (what a server's batches of whatever arrived are)."""
        if self.training or not unpadded_applies(self.encoder) or bool((batch["lengths"] < 1).any()):
            return self(batch)
        inputs, mask = self._inputs(batch)
        weighted = self.spec.pooling == "weighted"
        with attention_kernels(mask.device):
            states, _ = unpadded_hidden(self.encoder, inputs, mask, all_layers=weighted)
        if weighted:  # [layers + 1, T, H] mixed as forward mixes the padded states
            tokens = (torch.softmax(self.layer_weights, 0)[:, None, None] * torch.stack(states, 0)).sum(0)
        else:
            tokens = states[-1]
        lengths = mask.sum(1)
        rows = mask.shape[0]
        if self.spec.pooling in ("cls", "pooler"):
            starts = torch.cumsum(lengths, 0) - lengths  # each row's first token in the unpadded order
            pooled = tokens.index_select(0, starts)
            if self.spec.pooling == "pooler":  # BertPooler reads the first position of [B, L, H]
                pooled = self.encoder.pooler(pooled[:, None])
        else:
            segment = torch.repeat_interleave(torch.arange(rows, device=tokens.device), lengths)
            if self.spec.pooling == "max":
                pooled = tokens.new_full((rows, tokens.shape[1]), torch.finfo(tokens.dtype).min)
                pooled = pooled.scatter_reduce_(0, segment[:, None].expand_as(tokens), tokens, "amax")
            else:  # mean, weighted
                pooled = tokens.new_zeros(rows, tokens.shape[1]).index_add_(0, segment, tokens)
                pooled = pooled / lengths[:, None].to(tokens.dtype)
        return self.head(pooled)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        inputs, mask = self._inputs(batch)
        weighted = self.spec.pooling == "weighted"
        with attention_kernels(mask.device):
            out = self.encoder(**inputs, output_hidden_states=weighted)
        if weighted:
            stack = torch.stack(out.hidden_states, dim=0)  # [layers + 1, B, L, H]
            hidden = (torch.softmax(self.layer_weights, 0)[:, None, None, None] * stack).sum(0)
        else:
            hidden = out.last_hidden_state
        m = mask[:, :, None].to(hidden.dtype)
        if self.spec.pooling == "cls":
            pooled = hidden[:, 0]
        elif self.spec.pooling == "pooler":
            pooled = out.pooler_output
        elif self.spec.pooling == "max":
            pooled = hidden.masked_fill(m == 0, torch.finfo(hidden.dtype).min).max(1).values
        else:  # mean, weighted
            pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1)
        return self.head(pooled)

    # -- fine-tuning controls -------------------------------------------------------------------
    def _depth(self, name: str) -> int:
        """0 for embeddings, i + 1 for encoder layer i, num_layers + 1 for everything above."""
        if "embeddings" in name:
            return 0
        found = _LAYER.search(name)
        return int(found.group(1)) + 1 if found else self.num_layers + 1

    def on_train_epoch_start(self, epoch: int) -> None:
        """``epoch`` is 0-based. Freezes the configured lower part until ``unfreeze_at_epoch``."""
        spec = self.spec
        frozen = (spec.freeze_embeddings or spec.freeze_layers > 0) and (
            spec.unfreeze_at_epoch is None or epoch + 1 < spec.unfreeze_at_epoch
        )
        if frozen == self._frozen:
            return
        self._frozen = frozen
        for name, param in self.encoder.named_parameters():
            depth = self._depth("encoder." + name)
            lower = (depth == 0 and spec.freeze_embeddings) or (1 <= depth <= spec.freeze_layers)
            param.requires_grad_(not (frozen and lower))

    def parameter_groups(self, lr: float, weight_decay: float) -> list[dict[str, Any]]:
        """Layer-wise learning rates (decaying from the top layer down), the head's own rate, and no
        weight decay on biases and norms."""
        groups: dict[tuple[float, float], list[nn.Parameter]] = {}
        top = self.num_layers + 1
        for name, param in self.named_parameters():
            if name.startswith("head.") or name == "layer_weights":
                group_lr = self.spec.head_lr or lr
            else:
                group_lr = lr * self.spec.layer_lr_decay ** (top - self._depth(name))
            decay = 0.0 if param.ndim < 2 else weight_decay
            groups.setdefault((group_lr, decay), []).append(param)
        return [{"params": ps, "lr": g_lr, "weight_decay": wd} for (g_lr, wd), ps in sorted(groups.items(), key=lambda x: x[0])]

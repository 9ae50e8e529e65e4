"""What every model spec provides, whatever its backend."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from textsift.config.spec import Section, Spec

Activation = Literal["relu", "gelu", "silu", "elu", "tanh", "leaky_relu", "prelu"]


class HeadSpec(Section):
    """The classification head shared by every model: an MLP over the pooled representation."""

    hidden_dims: list[int] = Field(default_factory=list, description="Sizes of hidden layers; [] is a linear head.")
    activation: Activation = "relu"
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout before each linear layer of the head.")


#: recommended settings of the sequence models trained from scratch (CNN, LSTM, GRU)
SEQUENCE_MODEL_RECOMMENDED: dict[str, Any] = {
    "tokenizer": {"type": "words", "max_length": 256},
    "trainer": {
        "epochs": 10, "batch_size": 32,
        "optimizer": {"type": "torch.optim:AdamW", "lr": 2e-3, "weight_decay": 0.01},
        "scheduler": {"type": "linear", "warmup_ratio": 0.05},
    },
}


class ModelSpec(Spec):
    """A model's settings. ``build`` makes the network once the vocabulary and labels are known."""

    #: "bag" (flat ids + offsets) or "padded" (ids [batch, length] + lengths)
    input_format: ClassVar[str] = "padded"
    #: settings this model works best with, merged under the user's config (see config.loader)
    recommended: ClassVar[dict[str, Any]] = {}

    head: HeadSpec = Field(default_factory=HeadSpec)

    def build(self, *, vocab_size: int, num_labels: int, tokenizer: Any = None) -> Any:
        """The network, with fresh (or pretrained) weights. ``tokenizer`` is the fitted tokenizer."""
        raise NotImplementedError

    def build_from_dir(self, directory: Any, *, vocab_size: int, num_labels: int, tokenizer: Any = None) -> Any:
        """The network for a saved model directory (weights are loaded after); needs no download."""
        return self.build(vocab_size=vocab_size, num_labels=num_labels, tokenizer=tokenizer)

    def save_extra(self, model: Any, directory: Any) -> None:
        """Write what ``build_from_dir`` needs besides the weights (nothing, for most models)."""

    @classmethod
    def fill_config(cls, raw: dict[str, Any]) -> dict[str, Any]:
        """Complete a raw config from this model's settings (e.g. the tokenizer a model implies)."""
        return raw

    def auto_batch_size(self, num_examples: int, mean_length: float) -> int:
        """The batch size ``trainer.batch_size: auto`` means for this model and training data."""
        return 32

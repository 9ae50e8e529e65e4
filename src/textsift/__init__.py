"""textsift: train, evaluate, tune, compress and serve text classifiers from one config file."""

from __future__ import annotations

__version__ = "0.1.0"

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from textsift.predict import Predictor


def load(path: Any, device: str = "cpu") -> "Predictor":
    """Load a model directory: ``textsift.load("runs/x/model").predict(["some text"])``."""
    from textsift.config import load_builtins
    from textsift.predict import load as _load

    load_builtins()
    return _load(path, device)


def train(config: Any, output: Any = None, **kwargs: Any) -> Any:
    """Train from a :class:`textsift.config.Config` (see ``textsift.config.load_config``)."""
    from textsift.training.run import train as _train

    return _train(config, output, **kwargs)


__all__ = ["__version__", "load", "train"]

"""Search spaces: dotted config paths with categorical, int, float and log-float ranges.

A space file (YAML, JSON or Jsonnet)::

    trainer.optimizer.lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
    model.dropout: {type: float, low: 0.0, high: 0.5}
    model.num_filters: {type: int, low: 64, high: 256, step: 64}
    model.activation: {type: categorical, choices: [relu, gelu]}
    trainer.batch_size: [16, 32, 64]          # a list is a categorical shorthand
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from textsift.config.loader import read_config_file
from textsift.errors import ConfigError


class _Range(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FloatRange(_Range):
    type: Literal["float"] = "float"
    low: float
    high: float
    log: bool = False
    step: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> "FloatRange":
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"a log range needs low > 0, got {self.low}")
        return self


class IntRange(_Range):
    type: Literal["int"] = "int"
    low: int
    high: int
    log: bool = False
    step: int = 1

    @model_validator(mode="after")
    def _ordered(self) -> "IntRange":
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        return self


class Categorical(_Range):
    type: Literal["categorical"] = "categorical"
    choices: list[Any] = Field(min_length=1)


Dimension = Annotated[Union[FloatRange, IntRange, Categorical], Field(discriminator="type")]
_ADAPTER: TypeAdapter[Any] = TypeAdapter(Dimension)


class SearchSpace:
    def __init__(self, dimensions: dict[str, Any]) -> None:
        self.dimensions = dimensions

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = "the search space") -> "SearchSpace":
        if not isinstance(raw, dict) or not raw:
            raise ConfigError(f"{source}: expected a mapping of dotted config paths to ranges, e.g. "
                              "'trainer.optimizer.lr: {type: float, low: 1e-4, high: 1e-2, log: true}'.")
        dims = {}
        for path, spec in raw.items():
            if isinstance(spec, list):
                spec = {"type": "categorical", "choices": spec}
            if isinstance(spec, dict):
                spec = {k: (float(v) if k in ("low", "high") and isinstance(v, str) else v) for k, v in spec.items()}
            try:
                dims[str(path)] = _ADAPTER.validate_python(spec)
            except ValidationError as exc:
                err = exc.errors()[0]
                loc = ".".join(str(x) for x in err["loc"][1:])
                raise ConfigError(f"{source}: {path}{'.' + loc if loc else ''}: {err['msg']} "
                                  "(ranges: {type: float|int, low, high, log?, step?} or {type: categorical, choices: [...]}).") from None
        return cls(dims)

    @classmethod
    def load(cls, path: str | Path) -> "SearchSpace":
        return cls.from_dict(read_config_file(path), str(path))

    def suggest(self, trial: Any) -> dict[str, Any]:
        """Values for an Optuna trial."""
        out = {}
        for path, d in self.dimensions.items():
            if isinstance(d, FloatRange):
                out[path] = trial.suggest_float(path, d.low, d.high, log=d.log, step=d.step)
            elif isinstance(d, IntRange):
                out[path] = trial.suggest_int(path, d.low, d.high, log=d.log, step=d.step)
            else:
                out[path] = trial.suggest_categorical(path, d.choices)
        return out

    def grid(self) -> dict[str, list[Any]]:
        """Every value of every dimension, for grid search (ranges need a step)."""
        grid = {}
        for path, d in self.dimensions.items():
            if isinstance(d, Categorical):
                grid[path] = list(d.choices)
            elif d.step is not None and not d.log:
                values, v = [], d.low
                while v <= d.high + 1e-12:
                    values.append(round(v, 12) if isinstance(d, FloatRange) else int(v))
                    v += d.step
                grid[path] = values
            else:
                raise ConfigError(f"Grid search needs a finite set of values: give {path} a step (and no log), or make it categorical.")
        return grid

    def ray(self) -> dict[str, Any]:
        """The same space as Ray Tune sampling functions."""
        from ray import tune

        out: dict[str, Any] = {}
        for path, d in self.dimensions.items():
            if isinstance(d, FloatRange):
                out[path] = tune.loguniform(d.low, d.high) if d.log else tune.uniform(d.low, d.high)
            elif isinstance(d, IntRange):
                out[path] = tune.lograndint(d.low, d.high + 1) if d.log else tune.randint(d.low, d.high + 1)
            else:
                out[path] = tune.choice(d.choices)
        return out


def as_override(path: str, value: Any) -> str:
    """``path=value`` for :func:`textsift.config.load_config` (JSON is valid YAML, so types survive)."""
    return f"{path}={json.dumps(value)}"

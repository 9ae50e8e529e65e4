"""Callbacks: side effects of training (progress, logging, early stopping, checkpoints).

Callbacks are backend-neutral: they see the :class:`TrainerState` and plain ``dict[str, float]``
metrics, never tensors. They ask for a change through the state (``state.should_stop = True``)
and never drive the loop.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from textsift import registry
from textsift.config.schema import EarlyStoppingConfig
from textsift.config.spec import Spec
from textsift.errors import ConfigError
from textsift.util import atomic_write_text

logger = logging.getLogger(__name__)


class StepLoss:
    """One step's training loss as the backend left it (a 0-d torch tensor or jax array, or a number), read by
    ``float(loss)``, once.

    Reading a loss that lives on a GPU waits for the device to finish the step. A loop that read every step's loss
    would idle the GPU while Python queues the next step; the trainers instead hand this to the callbacks that
    declare ``lazy_loss`` and read it where a number is shown or written (a log line every N steps, a progress bar's
    refresh, the epoch's mean)."""

    __slots__ = ("_value", "_number")

    def __init__(self, value: Any) -> None:
        self._value: Any = value
        self._number: float | None = None

    def __float__(self) -> float:
        if self._number is None:
            self._number, self._value = float(self._value), None
        return self._number

    def __format__(self, spec: str) -> str:
        return format(float(self), spec)

    def __repr__(self) -> str:
        return f"StepLoss({float(self)!r})"


@dataclass
class TrainerState:
    epoch: int = 0  # epochs completed
    global_step: int = 0
    step_in_epoch: int = 0  # batches done in the current (unfinished) epoch
    steps_per_epoch: int = 0
    total_steps: int = 0
    best_metric: float | None = None
    best_epoch: int | None = None
    should_stop: bool = False
    stop_reason: str = ""
    history: list[dict[str, float]] = field(default_factory=list)
    lr: float = 0.0
    last_loss: float = float("nan")

    def __post_init__(self) -> None:
        self._unread: list[float | StepLoss] = []  # recorded, not yet in the sums (not a field: never saved)
    epoch_loss_sum: float = 0.0  # training loss over the current epoch's batches so far (kept across a resume)
    epoch_loss_batches: int = 0

    def begin_epoch(self) -> int:
        """Start (or, resumed, continue) the current epoch; returns how many of its batches are already done. A fresh
        epoch resets the running loss; a resumed one continues it from the checkpoint."""
        self.settle()
        if self.step_in_epoch == 0:
            self.epoch_loss_sum, self.epoch_loss_batches = 0.0, 0
        return self.step_in_epoch

    def record_step(self, loss: float | StepLoss) -> None:
        """One optimizer step done with this training loss (a :class:`StepLoss` is read later, by :meth:`settle`)."""
        self._unread.append(loss)
        self.global_step += 1
        self.step_in_epoch += 1

    def settle(self) -> None:
        """Read the losses recorded since the last call into the epoch's sum (and ``last_loss``)."""
        for loss in self._unread:
            value = float(loss)
            self.epoch_loss_sum += value
            self.epoch_loss_batches += 1
            self.last_loss = value
        self._unread.clear()

    def finish_epoch(self, examples: int, loop_s: float) -> dict[str, float]:
        """The epoch is complete: its number, the rate and the loop's speed (``examples`` in ``loop_s`` seconds)."""
        self.epoch += 1
        self.step_in_epoch = 0
        return {"epoch": float(self.epoch), "lr": self.lr, "train/examples_per_s": examples / loop_s if loop_s > 0 else 0.0}

    def epoch_loss(self) -> float | None:
        """This process's mean training loss over the epoch's batches (None before any)."""
        self.settle()
        return self.epoch_loss_sum / self.epoch_loss_batches if self.epoch_loss_batches else None

    def to_json(self) -> dict[str, Any]:
        self.settle()
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "TrainerState":
        return cls(**data)


class Callback:
    """Override the hooks you need. ``state_dict`` / ``load_state_dict`` carry state across a resume.

    ``on_batch_end`` gets the step's training loss as a float, and ``trainer.state`` (``last_loss``, the epoch's loss
    sums) up to date with it; a callback that sets ``lazy_loss = True`` gets a :class:`StepLoss` instead and reads it
    with ``float(loss)`` where it needs the number (the state's loss fields then lag until the epoch ends): when every
    callback of a run is lazy, a GPU run's loop never waits for the device between steps."""

    lazy_loss: ClassVar[bool] = False

    def on_fit_start(self, trainer: Any) -> None: ...
    def on_epoch_start(self, trainer: Any) -> None: ...
    def on_batch_end(self, trainer: Any, loss: float) -> None: ...
    def on_epoch_end(self, trainer: Any, metrics: dict[str, float]) -> None: ...
    def on_loop_end(self, trainer: Any) -> None: ...  # the last step is done; best weights not yet restored
    def on_fit_end(self, trainer: Any) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def batch_end(callbacks: list[Callback], trainer: Any, loss: StepLoss) -> None:
    """``on_batch_end`` of each callback that has one: a :class:`StepLoss` to the lazy ones, its number to the rest
    (read once, and only if one of them needs it, with the trainer's state brought up to date for it first)."""
    for cb in callbacks:
        if type(cb).on_batch_end is Callback.on_batch_end:
            continue
        if not cb.lazy_loss:
            trainer.state.settle()
        cb.on_batch_end(trainer, loss if cb.lazy_loss else float(loss))


class CallbackSpec(Spec):
    def build(self) -> Callback:
        raise NotImplementedError


class EarlyStopping(Callback):
    """Stop when the monitored metric has not improved for ``patience`` epochs.

    Strict: a monitored metric missing from the epoch's metrics is an error listing the available ones.
    With ``smoothing`` > 1 the moving average over that many epochs is compared. ``max_regression``
    stops at once when the metric falls that far behind its best (a diverging run).
    """

    def __init__(self, config: EarlyStoppingConfig, monitor: str, mode: str) -> None:
        self.config = config
        self.monitor = config.monitor or monitor
        self.sign = 1.0 if mode == "max" else -1.0
        self.best: float | None = None
        self.wait = 0
        self.window: deque[float] = deque(maxlen=config.smoothing)

    def on_epoch_end(self, trainer: Any, metrics: dict[str, float]) -> None:
        if self.monitor not in metrics:
            available = ", ".join(sorted(k for k in metrics if "/per_label/" not in k))
            raise ConfigError(
                f"trainer.early_stopping.monitor: metric '{self.monitor}' was not logged. Available: {available}."
            )
        value = metrics[self.monitor]
        self.window.append(value)
        smoothed = sum(self.window) / len(self.window)
        state = trainer.state
        if self.best is None or self.sign * (smoothed - self.best) > self.config.min_delta:
            self.best = smoothed
            self.wait = 0
            return
        self.wait += 1
        if state.epoch < self.config.min_epochs:
            return
        cfg = self.config
        if cfg.max_regression is not None and self.sign * (self.best - smoothed) > cfg.max_regression:
            state.should_stop = True
            state.stop_reason = (
                f"early stopping: {self.monitor} = {smoothed:.4f} fell more than {cfg.max_regression} behind its best {self.best:.4f}"
            )
        elif self.wait >= cfg.patience:
            state.should_stop = True
            state.stop_reason = (
                f"early stopping: {self.monitor} did not improve by more than {cfg.min_delta} for {self.wait} epochs "
                f"(best {self.best:.4f})"
            )

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "wait": self.wait, "window": list(self.window)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.wait = state["best"], state["wait"]
        self.window.clear()
        self.window.extend(state["window"])


class MetricsLog(Callback):
    """Appends one JSON line per logged event to ``metrics.jsonl`` in the run directory.

    When training starts (fresh, resumed or warm-started), records the run cannot have reached yet
    are dropped first: those with a step past the trainer's ``global_step`` (written after the last
    checkpoint of an interrupted run, and written again after the resume) and a last line cut short by
    a crash. So the log keeps one line per logged step and epoch. The file is replaced atomically.
    """

    lazy_loss = True  # reads the loss only where it logs or shows it

    def __init__(self, path: Path, every_steps: int) -> None:
        self.path = path
        self.every = every_steps

    def on_fit_start(self, trainer: Any) -> None:
        if not self.path.exists():
            return
        step = trainer.state.global_step
        text = self.path.read_text(encoding="utf-8")
        lines = text.split("\n")
        partial = lines.pop()  # "" when the file ends with a newline, else a line cut short
        kept = [line for line in lines if not self._after(line, step)]
        dropped = len(lines) - len(kept)
        if dropped or partial:
            atomic_write_text(self.path, "".join(line + "\n" for line in kept))
            logger.info("%s: dropped %d record(s) after step %d%s, written before the run was interrupted",
                        self.path.name, dropped, step, " and a cut-short last line" if partial else "")

    @staticmethod
    def _after(line: str, step: int) -> bool:
        try:
            record = json.loads(line)
        except ValueError:
            return False  # not ours to judge: kept as it is
        return isinstance(record, dict) and isinstance(record.get("step"), int) and record["step"] > step

    def _write(self, record: dict[str, Any]) -> None:
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def on_batch_end(self, trainer: Any, loss: float) -> None:
        s = trainer.state
        if s.global_step % self.every == 0:
            self._write({"event": "step", "step": s.global_step, "epoch": s.epoch + 1, "train/loss": float(loss), "lr": s.lr,
                         "time": time.time()})

    def on_epoch_end(self, trainer: Any, metrics: dict[str, float]) -> None:
        self._write({"event": "epoch", "step": trainer.state.global_step, **metrics, "time": time.time()})


class PeriodicCheckpoint(Callback):
    """Save a resumable checkpoint: every ``every_steps`` steps, at an epoch's end once ``every_s`` seconds have
    passed since the last save, and when the loop ends (``final``).

    The time rule bounds the work an interruption loses (at most about ``every_s`` seconds of training) without
    paying for a save every epoch: a bag model's checkpoint on IMDB is about 1 GB (weights, best weights and
    Adam's two moments), and writing it each epoch cost a sixth of its training time. ``every_s=0``: every epoch.
    """

    lazy_loss = True  # never reads the loss

    def __init__(self, every_steps: int | None, every_s: float | None = 0.0, final: bool = True) -> None:
        self.every = every_steps
        self.every_s = every_s
        self.final = final
        self._last_time = time.perf_counter()
        self._last_step: int | None = None

    def _save(self, trainer: Any) -> None:
        trainer.save_checkpoint()
        self._last_time, self._last_step = time.perf_counter(), trainer.state.global_step

    def on_fit_start(self, trainer: Any) -> None:
        self._last_time = time.perf_counter()

    def on_batch_end(self, trainer: Any, loss: float) -> None:
        s = trainer.state
        if self.every and s.global_step % self.every == 0 and s.step_in_epoch < s.steps_per_epoch:
            self._save(trainer)

    def on_epoch_end(self, trainer: Any, metrics: dict[str, float]) -> None:
        if self.every_s is not None and time.perf_counter() - self._last_time >= self.every_s:
            self._save(trainer)

    def on_loop_end(self, trainer: Any) -> None:
        if self.final and self._last_step != trainer.state.global_step:
            self._save(trainer)


@registry.callbacks.register("stop_at_target")
class StopAtTargetSpec(CallbackSpec):
    """Stop training once a metric reaches a target value."""

    type: Literal["stop_at_target"] = "stop_at_target"
    metric: str = Field(description="Metric key, e.g. val/accuracy.")
    target: float
    mode: Literal["max", "min"] = "max"

    def build(self) -> Callback:
        spec = self

        class _StopAtTarget(Callback):
            def on_epoch_end(self, trainer: Any, metrics: dict[str, float]) -> None:
                if spec.metric not in metrics:
                    raise ConfigError(
                        f"trainer.callbacks: stop_at_target metric '{spec.metric}' was not logged. "
                        f"Available: {', '.join(sorted(k for k in metrics if '/per_label/' not in k))}."
                    )
                v = metrics[spec.metric]
                if (v >= spec.target) if spec.mode == "max" else (v <= spec.target):
                    trainer.state.should_stop = True
                    trainer.state.stop_reason = f"{spec.metric} = {v:.4f} reached the target {spec.target}"

        return _StopAtTarget()


def is_better(value: float, best: float | None, mode: str) -> bool:
    if math.isnan(value):
        return False
    return best is None or (value > best if mode == "max" else value < best)

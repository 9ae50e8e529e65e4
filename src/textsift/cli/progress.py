"""A rich progress bar as a training callback (attached by the CLI only)."""

from __future__ import annotations

import time
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from textsift.training.callbacks import Callback


class ProgressBar(Callback):
    lazy_loss = True  # reads the loss only where it logs or shows it

    def __init__(self, console: Any, refresh_s: float = 0.1) -> None:
        self.progress = Progress(
            TextColumn("epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}  lr {task.fields[lr]:.2e}"),
            TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=True,
        )
        self.task: Any = None
        self.refresh_s = refresh_s
        self._last = 0.0

    def on_fit_start(self, trainer: Any) -> None:
        self.progress.start()

    def on_epoch_start(self, trainer: Any) -> None:
        s = trainer.state
        if self.task is not None:
            self.progress.remove_task(self.task)
        self.task = self.progress.add_task(
            "train", total=s.steps_per_epoch, completed=s.step_in_epoch, epoch=f"{s.epoch + 1}/{trainer.config.epochs}",
            loss=float("nan"), lr=s.lr,
        )

    def on_batch_end(self, trainer: Any, loss: float) -> None:
        now = time.monotonic()
        if now - self._last >= self.refresh_s or trainer.state.step_in_epoch == trainer.state.steps_per_epoch:
            self._last = now
            self.progress.update(self.task, completed=trainer.state.step_in_epoch, loss=float(loss), lr=trainer.state.lr)

    def on_fit_end(self, trainer: Any) -> None:
        self.progress.stop()

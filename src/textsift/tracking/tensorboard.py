"""TensorBoard event files: one sub-directory per step under ``log_dir/EXECUTION_ID``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textsift.tracking.base import Tracker


class TensorBoardTracker(Tracker):
    name = "tensorboard"

    def __init__(self, log_dir: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package

        self._writer_cls = SummaryWriter
        self.log_dir = Path(log_dir)
        self.root: Path | None = None
        self.writer: Any = None

    def start_execution(self, execution_id: str, params: dict[str, str], tags: dict[str, str]) -> None:
        self.root = self.log_dir / execution_id

    def start_step(self, step: str, params: dict[str, str], tags: dict[str, str]) -> None:
        assert self.root is not None
        self.writer = self._writer_cls(str(self.root / step))
        if params:
            self.writer.add_text("params", "\n".join(f"    {k} = {v}" for k, v in sorted(params.items())))

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        if self.writer is not None:
            for key, value in metrics.items():
                self.writer.add_scalar(key, value, global_step=step or 0)

    def end_step(self, status: str) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

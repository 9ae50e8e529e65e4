"""A user-side component for tests, named by import path: the process "dies" once, after a given step."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from textsift.training.callbacks import Callback, CallbackSpec


class CrashOnce(CallbackSpec):
    """Raise after step ``at_step`` (once it is logged) unless ``marker`` exists; create ``marker`` first."""

    type: Literal["crash_once:CrashOnce"] = "crash_once:CrashOnce"
    at_step: int
    marker: str

    def build(self) -> Callback:
        at_step, marker = self.at_step, Path(self.marker)

        class _Crash(Callback):
            def on_batch_end(self, trainer: Any, loss: float) -> None:
                if trainer.state.global_step == at_step and not marker.exists():
                    marker.touch()
                    raise RuntimeError(f"simulated crash after step {at_step}")

        return _Crash()

"""A user-side component for tests, named by import path: sleeps after every training step."""

from __future__ import annotations

import time
from typing import Any, Literal

from textsift.training.callbacks import Callback, CallbackSpec


class SlowSteps(CallbackSpec):
    type: Literal["slow_steps:SlowSteps"] = "slow_steps:SlowSteps"
    seconds: float = 0.01

    def build(self) -> Callback:
        seconds = self.seconds

        class _Sleep(Callback):
            def on_batch_end(self, trainer: Any, loss: float) -> None:
                time.sleep(seconds)

        return _Sleep()

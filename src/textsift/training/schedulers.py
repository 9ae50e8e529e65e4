"""Registered learning-rate schedules: constant, linear and cosine, each with warmup."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

from textsift import registry
from textsift.config.spec import Spec


class SchedulerSpec(Spec):
    warmup_ratio: float = Field(0.0, ge=0.0, lt=1.0, description="Fraction of all steps spent warming up.")
    warmup_steps: int | None = Field(None, ge=0, description="Warmup length in steps; overrides warmup_ratio.")

    def warmup(self, total_steps: int) -> int:
        return self.warmup_steps if self.warmup_steps is not None else int(self.warmup_ratio * total_steps)

    def factor(self, step: int, total_steps: int) -> float:
        raise NotImplementedError

    def build(self, optimizer: Optimizer, total_steps: int) -> LambdaLR:
        total = max(total_steps, 1)
        return LambdaLR(optimizer, lambda step: self.factor(step, total))


@registry.schedulers.register("constant")
class ConstantSchedule(SchedulerSpec):
    """The peak learning rate throughout (after warmup)."""

    type: Literal["constant"] = "constant"

    def factor(self, step: int, total_steps: int) -> float:
        warm = self.warmup(total_steps)
        return min(1.0, (step + 1) / warm) if warm else 1.0


@registry.schedulers.register("linear")
class LinearSchedule(SchedulerSpec):
    """Warmup, then linear decay to ``final_ratio`` of the peak at the last step."""

    type: Literal["linear"] = "linear"
    final_ratio: float = Field(0.0, ge=0.0, le=1.0)

    def factor(self, step: int, total_steps: int) -> float:
        warm = self.warmup(total_steps)
        if step < warm:
            return (step + 1) / warm
        progress = (step - warm) / max(1, total_steps - warm)
        return max(self.final_ratio, 1.0 - (1.0 - self.final_ratio) * progress)


@registry.schedulers.register("cosine")
class CosineSchedule(SchedulerSpec):
    """Warmup, then half a cosine down to ``final_ratio`` of the peak."""

    type: Literal["cosine"] = "cosine"
    final_ratio: float = Field(0.0, ge=0.0, le=1.0)

    def factor(self, step: int, total_steps: int) -> float:
        warm = self.warmup(total_steps)
        if step < warm:
            return (step + 1) / warm
        progress = min(1.0, (step - warm) / max(1, total_steps - warm))
        return self.final_ratio + (1 - self.final_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

"""A user-side component for the PBT tests, named by import path: records what each population member starts
from and reaches, one JSON file per event in ``out``.

At the start of training: the member (Ray trial id), its step, a digest of its weights, its configured learning
rate and the rate its optimizer took (``initial_lr``). After the last step of each epoch: the digest of the
weights that epoch's checkpoint holds.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any, Literal

from textsift.training.callbacks import Callback, CallbackSpec


def digest(model: Any) -> str:
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _trial() -> str:
    from ray import tune

    return str(tune.get_context().get_trial_id())


class PbtProbe(CallbackSpec):
    type: Literal["pbt_probe:PbtProbe"] = "pbt_probe:PbtProbe"
    out: str

    def build(self) -> Callback:
        out = Path(self.out)

        def write(event: str, trainer: Any, **data: Any) -> None:
            out.mkdir(parents=True, exist_ok=True)
            record = {"event": event, "trial": _trial(), "step": trainer.state.global_step, "epoch": trainer.state.epoch,
                      "weights": digest(trainer.model), "lr": trainer.config.optimizer.lr,
                      "time": time.time(), **data}
            name = f"{record['trial']}-{event}-{record['step']}-{os.getpid()}-{time.monotonic_ns()}.json"
            (out / name).write_text(json.dumps(record))

        class _Probe(Callback):
            def on_fit_start(self, trainer: Any) -> None:
                write("start", trainer, initial_lr=[g.get("initial_lr") for g in trainer.optimizer.param_groups])

            def on_batch_end(self, trainer: Any, loss: float) -> None:
                # the epoch's last step: the weights its checkpoint will hold. (Not on_epoch_end: PBT's report to
                # Ray, an earlier callback there, may pause the member for good before the later ones run.)
                if trainer.state.step_in_epoch == trainer.state.steps_per_epoch:
                    write("epoch", trainer)

        return _Probe()

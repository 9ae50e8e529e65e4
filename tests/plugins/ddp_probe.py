"""``torchrun ... ddp_probe.py ARGS`` runs ``textsift ARGS`` and records what this rank did, for the DDP tests.

Into ``$TEXTSIFT_DDP_PROBE/rank{RANK}.json``: the world size and rank the process group reports; for every
optimizer step the global batch and the example indices this rank's micro-batches held; for every gathered
evaluation the dataset positions this rank scored.
"""

from __future__ import annotations

import atexit
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from textsift.backends.torch import distributed
from textsift.backends.torch import trainer as trainer_module

record: dict[str, Any] = {"steps": [], "gathered": []}
current: dict[str, Any] | None = None

real_step = trainer_module.Trainer._step
real_collate = trainer_module.collate
real_gather_rows = distributed.gather_rows


def _step(self: Any, batch_index: np.ndarray, *args: Any, **kwargs: Any) -> float:
    global current
    record.update(rank=distributed.rank(), world_size=distributed.world_size())
    current = {"batch": np.asarray(batch_index).tolist(), "rows": []}
    record["steps"].append(current)
    try:
        return real_step(self, batch_index, *args, **kwargs)
    finally:
        current = None


def _collate(ids: Any, index: np.ndarray, *args: Any, **kwargs: Any) -> Any:
    if current is not None:  # a training micro-batch of this rank
        current["rows"] += np.asarray(index).tolist()
    return real_collate(ids, index, *args, **kwargs)


def _gather_rows(local: np.ndarray, local_index: np.ndarray, total: int) -> np.ndarray:
    record["gathered"].append({"index": np.asarray(local_index).tolist(), "total": int(total)})
    return real_gather_rows(local, local_index, total)


def _dump() -> None:
    out = Path(os.environ["TEXTSIFT_DDP_PROBE"])
    out.mkdir(parents=True, exist_ok=True)
    (out / f"rank{os.environ.get('RANK', '0')}.json").write_text(json.dumps(record))


trainer_module.Trainer._step = _step  # type: ignore[method-assign]
trainer_module.collate = _collate  # type: ignore[assignment]
distributed.gather_rows = _gather_rows  # type: ignore[assignment]
atexit.register(_dump)

if __name__ == "__main__":
    from textsift.cli import main

    main()

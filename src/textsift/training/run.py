"""One training run: config -> data -> tokenizer -> model -> trainer -> metrics -> model directory.

A run directory holds ``config.yaml``, ``train.log``, ``metrics.jsonl``, ``checkpoint.safetensors``
(for ``--resume``) and, at the end, the model directory ``model/``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from logging.handlers import MemoryHandler
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from textsift.batching import EncodedDataset
from textsift.config import Config, config_to_dict, dump_yaml
from textsift.data.generators import DatasetSpec
from textsift.data.loading import Splits, load_splits, read_for
from textsift.errors import CheckpointError, DataError
from textsift.text.base import Tokenizer
from textsift.evaluation.calibration import Calibration, fit_temperature
from textsift.evaluation.report import EvaluationData, write_report
from textsift.evaluation.thresholds import Decision, default_decision, tune_binary, tune_multilabel
from textsift.errors import ConfigError
from textsift.modeldir import save_model_dir
from textsift.inference.predictor import Predictor
from textsift.training.callbacks import Callback, MetricsLog, PeriodicCheckpoint, TrainerState
from textsift.backends.torch import distributed
from textsift.backends.torch.trainer import Trainer, resolve_device
from textsift.util import atomic_write_text, file_fingerprint, seed_everything

logger = logging.getLogger(__name__)


@dataclass
class TrainResult:
    predictor: Predictor
    metrics: dict[str, float]
    state: TrainerState
    run_dir: Path | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def model_dir(self) -> Path | None:
        return self.run_dir / "model" if self.run_dir is not None else None


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("textsift", "torch", "numpy", "tokenizers", "pydantic", "scikit-learn", "safetensors", "jax", "flax", "optax"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def _git() -> dict[str, Any]:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True, timeout=5).stdout.strip())
        return {"commit": commit, "dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def _fingerprint(source: Any) -> str | None:
    if source is None:
        return None
    if isinstance(source, DatasetSpec):
        return "generated:" + json.dumps(source.model_dump(mode="json"), sort_keys=True)
    return file_fingerprint(source)


def tune_decision(
    config: Config, predictor: Predictor, validation: Any, y_val: np.ndarray | None, label_names: list[str],
    val_logits: Callable[[], np.ndarray],
) -> Decision | None:
    """Thresholds from ``config.thresholds``: tuned on the validation data when asked (multilabel: by default).

    ``val_logits``: the model's validation logits, computed on first call (the caller shares them).
    """
    settings = config.thresholds
    multilabel = config.task == "multilabel"
    tune = settings.tune if settings.tune != "auto" else ("per_label" if multilabel else "none")
    metric = settings.metric or _metric_name(config.trainer.main_metric)
    if multilabel:
        if tune == "none" or validation is None or y_val is None:
            return default_decision("multilabel", len(label_names), settings.default, settings.at_least_one, settings.top_k)
        probs = predictor.probabilities(val_logits())
        return tune_multilabel(probs, y_val, metric=metric, per_label=tune == "per_label", default=settings.default,
                               at_least_one=settings.at_least_one, top_k=settings.top_k, tuned_on=validation.name)
    if tune == "none" or validation is None or y_val is None:
        return None
    if len(label_names) != 2:
        raise ConfigError(
            f"thresholds.tune '{settings.tune}': threshold tuning is for multilabel and binary tasks; this task has "
            f"{len(label_names)} labels. Set thresholds.tune: none."
        )
    positive = label_names.index(settings.positive_label) if settings.positive_label in label_names else 1
    if settings.positive_label is not None and settings.positive_label not in label_names:
        raise ConfigError(f"thresholds.positive_label '{settings.positive_label}' is not a label: {label_names}.")
    probs = predictor.probabilities(val_logits())
    return tune_binary(probs, y_val, positive=positive, metric=metric, tuned_on=validation.name)


def _metric_name(main_metric: str) -> str:
    name = main_metric.split("/", 1)[-1]
    return name if name.endswith("f1") or name in ("accuracy", "mcc") else "macro_f1"


# What a run leaves in its directory before its first training step (config.yaml, train.log, and data/ for
# data given in memory). A directory holding nothing else never trained: no checkpoint, no model, no metrics.
_BEFORE_TRAINING = frozenset({"config.yaml", "train.log", "data"})
_IN_MEMORY_FILES = frozenset(f"{split}.jsonl" for split in ("train", "validation", "test"))


def untrained_run_files(run_dir: Path) -> list[str] | None:
    """The files of ``run_dir`` if they are only those of a run that stopped before training (else None)."""
    if not run_dir.is_dir():
        return None
    names = sorted(p.name for p in run_dir.iterdir())
    if not names or not set(names) <= _BEFORE_TRAINING:
        return None
    data = run_dir / "data"
    if data.exists() and not (data.is_dir() and {p.name for p in data.iterdir()} <= _IN_MEMORY_FILES):
        return None
    return names


def _check_run_dir(run_dir: Path, config: Config, resume: bool) -> None:
    """Refuse a run directory that holds another run (or, with ``resume``, a run of another config). Writes nothing.

    A directory left by a run that stopped before training (a data error, a model that failed to build) is free:
    its retry, with or without ``resume``, starts afresh there.
    """
    if run_dir.exists() and not run_dir.is_dir():
        raise CheckpointError(f"--output '{run_dir}' is a file; give a directory for the run (a new one, or a run to --resume).")
    leftovers = untrained_run_files(run_dir)
    if leftovers is not None:
        logger.info("Output directory '%s' holds only %s of a run that never started training: reusing it.",
                    run_dir, ", ".join(leftovers))
        return
    saved = run_dir / "config.yaml"
    if resume:
        if not saved.is_file():
            raise CheckpointError(
                f"--resume: '{run_dir}' holds no run (no config.yaml) to resume. Leave out --resume to start a run there."
            )
        old = yaml.safe_load(saved.read_text(encoding="utf-8"))
        new = config_to_dict(config)
        if old != new:
            diffs = sorted(_diff(old, new), key=_decisiveness)
            more = f"; and {len(diffs) - 5} more" if len(diffs) > 5 else ""
            raise CheckpointError(
                f"--resume: the config differs from the one '{run_dir}' was started with ({'; '.join(diffs[:5])}{more}). "
                "Resume with the same config, or start a new run in another --output directory."
            )
        return
    if run_dir.exists() and any(run_dir.iterdir()):
        raise CheckpointError(
            f"Output directory '{run_dir}' already holds files. Pass --resume to continue that run (Python: resume=True), or choose another --output directory."
        )


def _write_run_dir(run_dir: Path, config: Config) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "config.yaml", dump_yaml(config))


def _prepare_run_dir(run_dir: Path, config: Config, resume: bool) -> None:
    """Check ``run_dir`` is free for this run (see :func:`_check_run_dir`), then create it and save the config."""
    _check_run_dir(run_dir, config, resume)
    _write_run_dir(run_dir, config)


def _decisiveness(diff: str) -> tuple[int, str]:
    """Order config differences so that the one that decides most comes first: a component type, the task,
    then model and tokenizer settings, data, and the rest."""
    path = diff.split(":", 1)[0]
    if path == "task" or path.endswith(".type") and path.count(".") == 1:
        rank = 0
    elif path.startswith(("model.", "tokenizer.")):
        rank = 1
    elif path.startswith("data."):
        rank = 2
    else:
        rank = 3
    return rank, path


def _diff(old: Any, new: Any, path: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new)):
            out += _diff(old.get(key), new.get(key), f"{path}.{key}" if path else key)
        return out
    return [] if old == new else [f"{path}: {old!r} -> {new!r}"]


def train(
    config: Config,
    output: str | Path | None = None,
    *,
    resume: bool = False,
    callbacks: Sequence[Callback] = (),
    checkpoint_every_steps: int | None = None,
    splits: Splits | None = None,
    report: bool = True,
    tokenizer: Tokenizer | None = None,
    warm_start: Path | None = None,
    in_memory: Sequence[InMemorySplit] = (),
    final_checkpoint: bool = True,
    prepare: Callable[[Any, Any, EncodedDataset], tuple[Any, Any, EncodedDataset]] | None = None,
) -> TrainResult:
    """Train, evaluate on the test data (if any) and, with ``output``, save the run and its model directory.

    The data is read and checked before anything is written to ``output``: a data error leaves no run behind.
    ``splits``: the data to use instead of reading the files the config names (cross-validation folds).
    ``tokenizer``: an already fitted tokenizer to use instead of fitting one on the training data.
    ``report``: write the evaluation report (``run_dir/report/``) on the test data, or the validation data without it.
    ``in_memory``: data given in Python (checked by :func:`config_and_data`), written where the config names it.
    ``final_checkpoint``: checkpoint the end of training too (``--resume`` with more epochs continues from it);
    ``--model auto``'s candidates skip it, their checkpoints are removed once they are trained.
    ``prepare``: ``(model, loss, train data) -> (model, loss, train data)`` to train with instead (distillation: the
    student initialised from the teacher, the loss to the teacher's outputs, the training data with extra texts).
    """
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    started_distributed = distributed.init_from_env(resolve_device(config.trainer.device))
    main = distributed.is_main()
    package_logger = logging.getLogger("textsift")
    if not main:  # one rank speaks and writes: rank 0
        package_logger.setLevel(logging.WARNING)
    run_dir = Path(output) if output is not None else None
    handler: logging.Handler | None = None
    # until the run directory exists, its log is kept in memory, then written at the top of train.log
    early_log = MemoryHandler(capacity=10_000, flushLevel=logging.CRITICAL + 1, target=None, flushOnClose=False)
    package_logger.addHandler(early_log)
    try:
        if run_dir is not None and main:
            _check_run_dir(run_dir, config, resume)  # refuse an occupied directory before reading any data
        if run_dir is not None and resume and (run_dir / "metrics.json").is_file() and (run_dir / "model" / "model.safetensors").is_file():
            # the run finished (metrics.json is its last write) with this very config: nothing is left to train, and
            # going through the end again rewrote the model directory, deleting the ONNX graphs exported into it
            logger.info("'%s' finished earlier: nothing left to resume; its model directory, report and exports are kept "
                        "(train into a new --output to train again).", run_dir)
            from textsift.inference.predictor import load

            state = TrainerState()
            state.stop_reason = "the run had finished earlier"
            return TrainResult(load(run_dir / "model", runtime="torch"), json.loads((run_dir / "metrics.json").read_text(encoding="utf-8")),
                               state, run_dir, {"total_s": time.perf_counter() - t0})
        for part in in_memory:
            part.write()
        if config.trainer.num_threads:
            torch.set_num_threads(config.trainer.num_threads)
        seed_everything(config.seed)
        splits = splits if splits is not None else load_splits(config)
        timings["read_s"] = time.perf_counter() - t0
        if run_dir is not None and main:
            _write_run_dir(run_dir, config)
            handler = logging.FileHandler(run_dir / "train.log", encoding="utf-8")
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
            early_log.setTarget(handler)
            early_log.flush()
            package_logger.addHandler(handler)
        package_logger.removeHandler(early_log)

        t = time.perf_counter()
        label_names = splits.labels.names
        if tokenizer is None:
            tokenizer = config.tokenizer.build()  # type: ignore[attr-defined]
            train_ids = tokenizer.fit_encode(splits.train.examples)
        else:
            train_ids = tokenizer.encode(splits.train.examples)
        train_data = EncodedDataset(train_ids, splits.labels.encode(splits.train))
        val_data = (
            EncodedDataset(tokenizer.encode(splits.validation.examples), splits.labels.encode(splits.validation))
            if splits.validation is not None else None
        )
        timings["tokenize_s"] = time.perf_counter() - t
        logger.info("Tokenizer %s: %d ids", config.tokenizer.type, tokenizer.vocab_size)

        t = time.perf_counter()
        flax = config.backend == "flax"  # the flax backend builds, trains and runs its own network from the same spec
        if flax:
            from textsift.backends.flax import networks as flax_networks
            from textsift.backends.flax.optim import build_loss as flax_loss
            from textsift.backends.flax.runtime import FlaxRuntime
            from textsift.backends.flax.trainer import FlaxTrainer

            model = flax_networks.build_network(config.model, vocab_size=tokenizer.vocab_size, num_labels=len(label_names),
                                                seed=config.seed)
            n_params = flax_networks.count_parameters(model)
        else:
            torch.manual_seed(config.seed)
            model = config.model.build(vocab_size=tokenizer.vocab_size, num_labels=len(label_names), tokenizer=tokenizer)  # type: ignore[attr-defined]
            n_params = sum(p.numel() for p in model.parameters())
        logger.info("Model %s: %s parameters", config.model.type, f"{n_params:,}")
        if train_data.labels.ndim == 2:  # type: ignore[union-attr]  (multilabel: examples having each label)
            counts = train_data.labels.sum(axis=0)  # type: ignore[union-attr]
        else:
            counts = np.bincount(train_data.labels, minlength=len(label_names))  # type: ignore[arg-type]
        loss_fn = (flax_loss(config.trainer.loss, counts, len(train_data)) if flax  # type: ignore[attr-defined]
                   else config.trainer.loss.build(counts, len(train_data)))  # type: ignore[attr-defined]
        if prepare is not None:  # distillation (textsift.compression) swaps these three; the loop stays this one
            model, loss_fn, train_data = prepare(model, loss_fn, train_data)
            n_params = sum(p.numel() for p in model.parameters())
        cbs = list(callbacks)
        checkpoint_path = None
        distributed.barrier()  # rank 0 has prepared the run directory
        if run_dir is not None:
            checkpoint_path = run_dir / "checkpoint.safetensors"
            if main:
                cbs += [MetricsLog(run_dir / "metrics.jsonl", config.trainer.log_every_steps)]
            # saving itself happens on rank 0
            cbs += [PeriodicCheckpoint(checkpoint_every_steps, config.trainer.checkpoint_every_s, final=final_checkpoint)]
        trainer = (FlaxTrainer if flax else Trainer)(
            config.trainer, seed=config.seed, model_spec=config.model, label_names=label_names, callbacks=cbs,
            checkpoint_path=checkpoint_path,
        )
        state = trainer.fit(model, train_data, val_data, loss_fn=loss_fn,
                            resume=resume and checkpoint_path is not None and checkpoint_path.exists(), warm_start=warm_start)
        timings["train_s"] = time.perf_counter() - t

        metrics: dict[str, float] = {}
        if state.history:
            best = next((h for h in state.history if h["epoch"] == state.best_epoch), state.history[-1])
            metrics.update({k: v for k, v in best.items() if k.startswith("val/")})
        if flax:
            model = FlaxRuntime(model)  # the predictor's runtime, and what writes the weights
        predictor = Predictor(config, model, tokenizer, label_names, device=config.trainer.device)
        calibration: Calibration | None = None
        cached: dict[str, np.ndarray] = {}

        def val_logits() -> np.ndarray:  # one forward pass over the validation data, shared below
            if "val" not in cached:
                cached["val"] = predictor.logits(splits.validation.examples)  # type: ignore[union-attr]
            return cached["val"]

        if config.trainer.calibration == "temperature" and splits.validation is not None and val_data is not None:
            calibration = fit_temperature(val_logits(), val_data.labels, splits.validation.name)
            predictor.calibration = calibration
            metrics["val/temperature"] = calibration.temperature
        decision = tune_decision(config, predictor, splits.validation, val_data.labels if val_data is not None else None, label_names,
                                 val_logits)
        predictor.decision = decision
        if decision is not None and decision.tuned_on:
            metrics[f"val/tuned_{decision.metric}"] = float(decision.score_after or 0.0)
        # the report is on the test data, or, without test data, on the validation data
        reported = splits.test if splits.test is not None else splits.validation
        if reported is not None:
            t = time.perf_counter()
            prefix = "test" if splits.test is not None else "val"
            evaluated = EvaluationData(
                examples=reported.examples, y_true=splits.labels.encode(reported),
                logits=predictor.logits(reported.examples) if prefix == "test" else val_logits(),
                label_names=label_names, temperature=predictor.temperature, source=reported.name,
                fingerprint=_fingerprint(config.data.test) if prefix == "test" else None,
                model_dir=str(run_dir / "model") if run_dir is not None else None, decision=decision,
            )
            if prefix == "test":
                metrics.update(evaluated.metrics("test"))
            if run_dir is not None and main and report:
                write_report(run_dir / "report", evaluated, prefix=prefix, training_log=run_dir / "metrics.jsonl",
                             title=f"{config.model.type} on {reported.name}")  # type: ignore[attr-defined]
            timings[f"{prefix}_s"] = time.perf_counter() - t
        if run_dir is not None and main:
            meta = {
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "versions": _versions(),
                "git": _git(),
                "data": {s: _fingerprint(getattr(config.data, s)) for s in ("train", "validation", "test")},
                "training": {"epochs": state.epoch, "steps": state.global_step, "best_epoch": state.best_epoch,
                             "batch_size": trainer.batch_size,
                             "stop_reason": state.stop_reason, "parameters": n_params, "timings": timings},
                "metrics": metrics,
                "data_checks": splits.summary(),
            }
            save_model_dir(run_dir / "model", config=config, model=model, tokenizer=tokenizer, labels=label_names, meta=meta,
                           calibration=calibration, decision=decision)
            atomic_write_text(run_dir / "metrics.json", json.dumps(metrics, indent=1))
            from textsift.debug.card import write_card  # (a few small files: no heavy import)

            write_card(run_dir / "model")  # README.md, the model card
            predictor.meta = meta
        timings["total_s"] = time.perf_counter() - t0
        return TrainResult(predictor, metrics, state, run_dir, timings)
    finally:
        package_logger.removeHandler(early_log)
        early_log.close()
        if started_distributed:
            distributed.barrier()
            distributed.destroy()
        if handler is not None:
            package_logger.removeHandler(handler)
            handler.close()


# --- config and data given in Python (textsift.train, textsift.evaluate) ----------------------------------------

SPLITS = ("train", "validation", "test")
IN_MEMORY_FORMS = "a file path, a list of {'text': ..., 'label': ...} dicts, a (texts, labels) pair or a pandas DataFrame"


@dataclass(frozen=True)
class InMemorySplit:
    """Data given in Python for one setting (``data.train``, ...): already checked, written as JSON Lines to ``path``.

    Written into the run directory (``OUTPUT/data/train.jsonl``), the saved config names a real file and the model
    directory rebuilds everything, like a run on files (``evaluate --calibrate`` reads its validation file).
    """

    setting: str
    path: Path
    text: str

    def write(self) -> None:
        atomic_write_text(self.path, self.text)


def is_frame(value: Any) -> bool:
    """A pandas DataFrame (or one alike), recognised without importing pandas."""
    return hasattr(value, "columns") and callable(getattr(value, "to_dict", None)) and not isinstance(value, Mapping)


def is_in_memory(value: Any) -> bool:
    return is_frame(value) or isinstance(value, (list, tuple))


def config_and_data(
    config: Config | Mapping[str, Any] | str | os.PathLike[str], data_dir: Path, data: Mapping[str, Any],
) -> tuple[Config, list[InMemorySplit]]:
    """A validated config from a :class:`Config`, a dict of settings or a config file, with its data in place.

    ``data``: ``{"train": ..., "validation": ..., "test": ...}`` replacing ``data.<split>`` of the config (None: keep it).
    A split (there, or in a dict config) is a file path or data in memory (see ``IN_MEMORY_FORMS``); data in memory
    gets the file ``data_dir/<split>.jsonl``, is checked row by row as that file will be, and is returned to be
    written (:meth:`InMemorySplit.write`). Nothing is written here.
    """
    from textsift.config.loader import read_raw_config, resolve

    given = {split: value for split, value in data.items() if value is not None}
    if isinstance(config, Config):
        if not given:
            return config, []
        raw, source = config_to_dict(config), "config"
    elif isinstance(config, (str, os.PathLike)):
        raw, source = read_raw_config(config), str(config)
    elif isinstance(config, Mapping):
        raw, source = dict(config), "config (dict)"
    else:
        raise ConfigError(
            f"config: expected a config file path, a dict of settings or a textsift.Config; got {type(config).__name__}."
        )
    data_raw = raw.get("data")
    if isinstance(data_raw, Mapping) or (data_raw is None and given):
        data_raw = dict(data_raw or {})
        raw = {**raw, "data": data_raw}
    pending: dict[str, Any] = {}
    if isinstance(data_raw, dict):
        for split in SPLITS:
            if split in given and data_raw.get(split) is not None:
                logger.info("%s= replaces data.%s of the config.", split, split)
            value = given.get(split, data_raw.get(split))
            if isinstance(value, Mapping) and "type" not in value:
                raise ConfigError(
                    f"data.{split}: a mapping here names a dataset generator ({{type: DATASET, ...}}) and has no 'type'. "
                    f"For data in memory give {IN_MEMORY_FORMS.removeprefix('a file path, ')}."
                )
            if value is None or isinstance(value, Mapping):  # absent, or {type: DATASET, ...}
                continue
            if isinstance(value, (str, os.PathLike)):
                if str(value).strip():  # an empty path is the schema's to report
                    data_raw[split] = str(Path(value).expanduser().resolve())
            elif is_in_memory(value):
                pending[split] = value
                data_raw[split] = str(data_dir.resolve() / f"{split}.jsonl")
            else:
                raise ConfigError(f"data.{split}: expected {IN_MEMORY_FORMS}; got {type(value).__name__}.")
    resolved = resolve(raw, source=source)
    reader_type = resolved.data.reader.type  # type: ignore[attr-defined]
    if pending and reader_type not in ("auto", "jsonl"):
        raise ConfigError(
            f"data.reader.type '{reader_type}': data given in memory ({', '.join('data.' + s for s in pending)}) is "
            "written as JSON Lines, which this reader cannot read. Set data.reader.type: auto (the columns still apply)."
        )
    parts = [InMemorySplit(f"data.{split}", data_dir.resolve() / f"{split}.jsonl", jsonl_text(value, f"data.{split}", resolved.data.reader))
             for split, value in pending.items()]
    with tempfile.TemporaryDirectory(prefix="textsift-check-") as tmp:
        for part in parts:
            staged = Path(tmp) / part.path.name
            atomic_write_text(staged, part.text)
            with errors_name(staged, f"{part.setting} (in memory)"):
                read_for(resolved, staged)  # the row checks of a file: empty text, missing label, the task's labels
    return resolved, parts


def jsonl_text(value: Any, setting: str, reader: Any) -> str:
    """Rows given in memory as JSON Lines, one object a row, keyed by the reader's column names.

    ``value``: a list of dicts (keys: ``reader.text_column``, ``label_column``, ``text_pair_column``), a pandas
    DataFrame with those columns, or a pair ``(texts, labels)``. Row N of an error is the N-th row given.
    """
    if is_frame(value):
        rows = value.to_dict(orient="records")
    elif isinstance(value, (list, tuple)) and _is_texts_and_labels(value):
        texts, labels = (v.tolist() if hasattr(v, "tolist") else list(v) for v in value)
        if len(texts) != len(labels):
            raise DataError(f"{setting}: {len(texts)} texts but {len(labels)} labels; a (texts, labels) pair needs one label per text.")
        rows = [{reader.text_column: t, reader.label_column: y} for t, y in zip(texts, labels)]
    elif isinstance(value, (list, tuple)) and all(isinstance(row, Mapping) for row in value):
        rows = list(value)
    else:
        found = sorted({type(row).__name__ for row in value if not isinstance(row, Mapping)})
        raise DataError(
            f"{setting}: a list of rows must hold dicts like {{'{reader.text_column}': ..., '{reader.label_column}': ...}}, "
            f"found {', '.join(found)}. Give dicts, a (texts, labels) pair of lists, or a DataFrame."
        )
    if not rows:
        raise DataError(f"{setting}: no examples (the {type(value).__name__} is empty).")
    return "".join(
        json.dumps({str(k): _plain(v) for k, v in row.items()}, ensure_ascii=False, default=str) + "\n" for row in rows
    )


def _is_texts_and_labels(value: Sequence[Any]) -> bool:
    return len(value) == 2 and all(
        not isinstance(v, (str, bytes, Mapping)) and hasattr(v, "__len__") and hasattr(v, "__iter__") for v in value
    )


def _plain(value: Any) -> Any:
    """A cell as JSON holds it: numpy scalars and arrays as Python values, a missing value (NaN, pd.NA) as null."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if type(value).__name__ in ("NAType", "NaTType"):
        return None
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return _plain(value.tolist())
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


@contextmanager
def errors_name(path: Path, name: str) -> Iterator[None]:
    """A :class:`DataError` about ``path`` (a file staged from data in memory) names ``name`` instead."""
    try:
        yield
    except DataError as exc:
        if str(path) not in str(exc):
            raise
        raise DataError(str(exc).replace(str(path), name)) from None

"""``--model auto``: a time-budgeted choice among cheap candidates, by the validation metric.

What a user runs first (``textsift train --train FILE``, no model named) should hold on data nobody tuned it
on. No single default does: TF-IDF + logistic regression wins on long or topical texts, the bag of n-grams on
short noisy ones. So the candidates are trained on the same train / validation split (cheapest and most often
best first) until the time budget is spent; the one with the best validation metric is the run's model.

* The first two (linear_bag, bag: the defaults) always train, side by side: linear_bag (the linear model and a bag
  averaged) uses one core, the bag takes the other in a second process. With more candidates (``--candidates``), while the bag still trains the
  next one trains here; after them a budget of a few bag runs (or ``--budget``) decides whether more start, and
  one past it stops at the end of its epoch.
* When the validation data is a small held-out part of the training data (under :data:`CV_BELOW` examples), one
  split decides by noise (on 240 validation sentences three examples told two candidates apart, the other way
  round from the test data), and a network's validation score is the best of its epochs on those same examples,
  an optimistic pick. There each candidate is scored by stratified :data:`CV_FOLDS`-fold cross-validation over
  train + validation, and the winner alone is then trained, on all of it (see :func:`_final_training`).
* On larger data the winner keeps the split it was chosen on (training it again would cost a whole run).

A leaderboard (``leaderboard.csv`` / ``.json``) is logged and saved in the run directory, each candidate's run
in ``candidates/NAME/`` (its model directory is removed unless it won), its result in ``candidates/NAME.json``.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textsift.config import Config, dump_yaml
from textsift.data.loading import Splits, load_splits
from textsift.errors import CheckpointError, ConfigError
from textsift.training.callbacks import Callback
from textsift.util import atomic_write_text, replace_dir

logger = logging.getLogger(__name__)

#: (name, overrides) in the order they are tried: cheapest and most often best first
CANDIDATES: list[tuple[str, list[str]]] = [
    ("linear_bag", ["model=linear_bag"]),
    ("linear", ["model=linear"]),
    ("bag", ["model=bag"]),
    ("linear-C30", ["model=linear", "model.C=30"]),
    ("linear-C3", ["model=linear", "model.C=3"]),
    ("bag-chars", ["model=bag", "tokenizer.char_ngrams=[3,5]", "trainer.epochs=10"]),
    # a bag of character n-grams (10 epochs) was a default candidate: never the best on the develop sets (emotion
    # 0.864 vs 0.888 on validation, uci_sentences 0.817 vs 0.834 by CV) and three times a bag run
]
#: what ``--model auto`` tries unless ``--candidates`` names others. linear-C30 was a third default: in the
#: benchmark of 2026-11-29 it was never chosen on any of the seven datasets (at best a tie), and wherever the bag
#: still trained beside it it ran in that wait and added its whole time to the run (emotion: the time to a model
#: is what the zero-config target measures). The two defaults train side by side, in about the time of one.
#: linear_bag replaced linear (2026-11-29): on a held-out tenth of each develop set's training data the average of the
#: two members beat the linear model alone on every one (test accuracy sst2 +1.0, trec +0.8, emotion +0.45, r8 +0.13),
#: though its validation score was at most level with linear's there: chosen by validation it would never have won.
DEFAULT_CANDIDATES: tuple[str, ...] = ("linear_bag", "bag")
#: without --budget: after the first two candidates, go on while the time spent stays within this many bag runs
DEFAULT_BUDGET_BAG_RUNS = 3.0
#: training texts longer than this on average (characters): linear candidates use word n-grams only. Character
#: n-grams multiply the features of a long text (7x on R8, 605 characters on average, for 0.04 point) and with them
#: the solver's time; on short texts they are worth points (emotion: +2 over words alone).
LONG_TEXTS = 1000
#: a validation split held out of train with fewer examples than this: candidates are compared by cross-validation
CV_BELOW = 1000
CV_FOLDS = 5


@dataclass
class Candidate:
    name: str
    config: Config
    score: float | None = None
    seconds: float = 0.0
    metrics: dict[str, float] | None = None
    skipped: str = ""
    note: str = ""  # e.g. stopped early, behind a rival


def candidate_configs(make: Callable[[list[str]], Config], names: Sequence[str] | None = None) -> list[Candidate]:
    """The candidates' configs: ``make(overrides)`` resolves the user's config with each candidate's overrides on top.

    ``names``: which of :data:`CANDIDATES`, in their order there (default :data:`DEFAULT_CANDIDATES`)."""
    names = DEFAULT_CANDIDATES if names is None else tuple(names)
    unknown = [n for n in names if n not in dict(CANDIDATES)]
    if unknown:
        raise ConfigError(f"--candidates: unknown candidate {', '.join(map(repr, unknown))}; "
                          f"choose from {', '.join(name for name, _ in CANDIDATES)}.")
    return [Candidate(name, make(overrides)) for name, overrides in CANDIDATES if name in names]


def _board_rows(candidates: list[Candidate], metric: str, winner: str | None) -> list[dict[str, Any]]:
    rows = []
    for c in candidates:
        row = {"candidate": c.name, "model": c.config.model.type, metric: c.score, "seconds": round(c.seconds, 2),  # type: ignore[attr-defined]
               "chosen": c.name == winner, "skipped": c.skipped, "note": c.note}
        for key in ("val/accuracy", "val/macro_f1", f"cv/{metric}_std", "cv/folds"):
            if c.metrics and key in c.metrics and key != metric:
                row[key] = c.metrics[key]
        rows.append(row)
    return rows


def train_auto(
    candidates: list[Candidate], output: Path, *, budget_s: float | None = None, resume: bool = False,
    callbacks: Sequence[Any] = (), report: bool = True,
) -> Any:
    """Train the candidates within ``budget_s`` seconds, keep the best by validation metric; returns its TrainResult.

    The first two candidates always train. Without ``budget_s`` the budget is a few times the time of one bag run
    (:data:`DEFAULT_BUDGET_BAG_RUNS`), so it scales with the data.
    """
    if not candidates:
        raise ConfigError("--model auto: no candidate models to choose from.")
    output = Path(output)
    if output.exists() and not output.is_dir():
        raise CheckpointError(f"--output '{output}' is a file; give a directory for the run.")
    if output.is_dir() and any(output.iterdir()) and not resume and not _only_failed_start(output):
        raise CheckpointError(f"Output directory '{output}' already holds files. Pass --resume to continue that run (Python: resume=True), or choose another --output directory.")
    first = candidates[0].config
    metric, mode = first.trainer.main_metric, first.trainer.main_metric_mode
    splits = load_splits(first)  # one read, one split: every candidate sees the same data
    if splits.validation is None:
        raise ConfigError("--model auto chooses by the validation metric: give --validation FILE or keep data.validation_split > 0.")
    held = Splits(splits.train, splits.validation, None, splits.labels)  # the test data is seen by the winner only
    folds = _cv_folds(first, held)
    _words_only_on_long_texts(candidates, held)
    output.mkdir(parents=True, exist_ok=True)
    budget = budget_s
    beside: dict[int, Any] = {}  # candidate index -> its future, training in a second process
    threads = 0  # this process's torch threads before the second process started (0: not changed)
    queue, finished = list(range(len(candidates))), []
    while queue:
        i = queue.pop(0)
        cand = candidates[i]
        # the second candidate still training in the other process: the next one trains here meanwhile, in time
        # that would otherwise be spent waiting (before the budget, which is counted from the second's time)
        meanwhile = i in beside and not beside[i].done() and bool(queue) and queue[0] not in beside
        if meanwhile:
            queue.insert(1, i)
            i = queue.pop(0)
            cand = candidates[i]
        spent = sum(candidates[j].seconds for j in finished)  # training time so far (kept across a resume)
        if budget is None and len(finished) >= 2 and not meanwhile:
            bag = next((candidates[j].seconds for j in finished if candidates[j].config.model.type == "bag"),  # type: ignore[attr-defined]
                       max(candidates[j].seconds for j in finished))
            budget = DEFAULT_BUDGET_BAG_RUNS * bag
            logger.info("auto: budget %.0f s (%.0f bag runs)", budget, DEFAULT_BUDGET_BAG_RUNS)
        # the cost to expect: the last candidate of the same model type, else the last one
        same = [candidates[j].seconds for j in finished if candidates[j].config.model.type == cand.config.model.type]  # type: ignore[attr-defined]
        expected = same[-1] if same else (candidates[finished[-1]].seconds if finished else 0.0)
        if i >= 2 and not meanwhile and spent + expected > budget:  # type: ignore[operator]
            cand.skipped = f"budget: {spent:.0f} s of {budget:.0f} s spent"
            logger.info("auto: skipping %s (%s)", cand.name, cand.skipped)
            continue
        run_dir = output / "candidates" / cand.name
        # written when the candidate finished (its metrics and training time); beside its run directory, which
        # holds only what train() writes (a cross-validated winner is trained there afterwards)
        done = output / "candidates" / f"{cand.name}.json"
        if resume and done.is_file():
            record = json.loads(done.read_text(encoding="utf-8"))
            cand.metrics, cand.seconds = record["metrics"], float(record["seconds"])
            logger.info("auto: %s already trained (resumed)", cand.name)
        else:
            if i in beside:  # started beside the first, when it did (logged then): now its result is awaited
                logger.info("auto: waiting for candidate %s (%d of %d), training in the second process", cand.name, i + 1,
                            len(candidates))
            else:
                logger.info("auto: training candidate %s (%d of %d)%s%s", cand.name, i + 1, len(candidates),
                            f", {len(folds)}-fold cross-validation" if folds else "", " (while the second trains)" if meanwhile else "")
            # past the first two, a candidate stops (at an epoch's end) when the budget is spent, however long it is
            deadline = time.perf_counter() + budget - spent if i >= 2 and budget is not None else None
            if i in beside:
                from concurrent.futures.process import BrokenProcessPool

                try:
                    cand.metrics, cand.seconds = beside.pop(i).result()
                    _set_threads(threads)  # the other core is free again
                except BrokenProcessPool:  # the second process died (out of memory, killed): train it here instead
                    logger.warning("auto: the second process training %s died; training it in this one", cand.name)
                    _set_threads(threads)
                    cand.metrics, cand.seconds = _train_candidate(cand.config, run_dir, held, folds, metric, resume=True,
                                                                  callbacks=callbacks)
            else:
                if i == 0:
                    beside = _start_beside(candidates, output, held, folds, metric, resume)
                    if beside:  # this process keeps one core while the second process has the other
                        threads = _set_threads(1)
                        if report:
                            beside[1].add_done_callback(_import_report_modules)
                cand.metrics, cand.seconds = _train_candidate(cand.config, run_dir, held, folds, metric, resume=resume,
                                                              callbacks=callbacks, deadline=deadline, rivals=i > 0)
            if cand.metrics is None:
                cand.skipped = "budget: spent during its cross-validation"
                logger.info("auto: dropping %s (%s)", cand.name, cand.skipped)
                continue
            done.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(done, json.dumps({"metrics": cand.metrics, "seconds": cand.seconds}, indent=1))
        stopped = output / "candidates" / f"{cand.name}.stopped"
        if stopped.is_file():
            cand.note = stopped.read_text(encoding="utf-8")
            logger.info("auto: %s %s", cand.name, cand.note)
        finished.append(i)
        cand.score = cand.metrics.get(metric)
        if cand.score is None:
            raise ConfigError(f"trainer.main_metric: '{metric}' was not logged by candidate {cand.name}.")
        logger.info("auto: %s %s = %.4f (%.1f s)", cand.name, metric, cand.score, cand.seconds)
    scored = [c for c in candidates if c.score is not None]
    best = (max if mode == "max" else min)(scored, key=lambda c: c.score)  # type: ignore[arg-type, return-value]
    if folds:  # cross-validated: now train the winner, on all of train + validation when nothing needs held-out data
        final_config, final_splits = _final_training(best, held, has_test=splits.test is not None)
        if not (output / "candidates" / best.name / "model").is_dir():
            logger.info("auto: training %s on %s", best.name,
                        "all of train + validation" if final_splits.validation is None else "the train / validation split")
            _train_candidate(final_config, output / "candidates" / best.name, final_splits, [], metric, resume=resume,
                             callbacks=callbacks)
        best.config = final_config
    rows = _board_rows(candidates, metric, best.name)
    _save_board(output, rows, metric)
    logger.info("auto: chose %s (%s = %.4f) over %s", best.name, metric, best.score,
                ", ".join(f"{c.name} {c.score:.4f}" for c in scored if c is not best) or "no other candidate")
    for c in scored:  # only the winner's model directory is kept
        if c is not best:
            shutil.rmtree(output / "candidates" / c.name / "model", ignore_errors=True)
        (output / "candidates" / c.name / "checkpoint.safetensors").unlink(missing_ok=True)
    return _finish(best, output, splits, metric, report=report)


def _train_candidate(
    config: Config, run_dir: Path, held: Splits, folds: list[Splits], metric: str, *, resume: bool = False,
    callbacks: Sequence[Any] = (), deadline: float | None = None, rivals: bool = False,
) -> tuple[dict[str, float] | None, float]:
    """Train one candidate (or cross-validate it): its metrics (None: the budget ran out mid-CV) and wall seconds.

    ``rivals``: stop it early when it falls clearly behind a candidate that already finished (:class:`_Behind`)."""
    from textsift.training.run import train

    t = time.perf_counter()
    stop: list[Callback] = [_Deadline(deadline)] if deadline is not None else []
    if rivals and not folds and config.trainer.main_metric_mode == "max":
        stop.append(_Behind(run_dir.parent, run_dir.name, metric))
    if folds:
        metrics = _cross_validate(config, folds, metric, stop)
    else:
        metrics = train(config, run_dir, resume=resume and run_dir.is_dir(), splits=held, report=False,
                        callbacks=[*callbacks, *stop], final_checkpoint=False).metrics
    return metrics, time.perf_counter() - t


def _set_threads(n: int) -> int:
    """Set torch's intra-op threads (0: leave them) and return the number before."""
    import torch

    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    return before


def _import_report_modules(_: Any = None) -> None:
    """Import what the report needs (matplotlib: about 0.5 s) in a thread, on the core the second candidate has just
    left idle, while this process still trains: the report then starts without that wait."""
    import threading

    def work() -> None:
        try:
            import textsift.debug.card  # noqa: F401
            import textsift.evaluation.evaluate  # noqa: F401
            import textsift.evaluation.plots  # noqa: F401
            import textsift.evaluation.report  # noqa: F401
        except Exception:  # an import error surfaces where the report imports it, with its message
            pass

    threading.Thread(target=work, name="textsift-report-imports", daemon=True).start()


def _train_beside(*args: Any, **kwargs: Any) -> tuple[dict[str, float] | None, float]:
    """:func:`_train_candidate` in the second process, on one core: the first process holds the other."""
    import torch

    torch.set_num_threads(1)
    return _train_candidate(*args, **kwargs)


def _start_beside(candidates: list[Candidate], output: Path, held: Splits, folds: list[Splits], metric: str,
                  resume: bool) -> dict[int, Any]:
    """Start the second candidate in a second process while the first trains here, when there are cores for both.

    The first two candidates always train, and the first (linear) fits on one core (its L-BFGS products are
    single-threaded), so the second (the bag network) takes the other: two candidates in about the time of the
    longer one. The second process gets the same split (and folds) and writes its own run directory; it reports
    to this process's log but not to its callbacks (progress bars).
    """
    if len(candidates) < 2 or (os.cpu_count() or 1) < 2 or os.environ.get("TEXTSIFT_AUTO_SEQUENTIAL"):
        return {}
    second = candidates[1]
    if resume and (output / "candidates" / f"{second.name}.json").is_file():
        return {}
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    logger.info("auto: training candidate %s (2 of %d)%s in a second process, beside %s", second.name, len(candidates),
                f", {len(folds)}-fold cross-validation," if folds else "", candidates[0].name)
    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
    future = pool.submit(_train_beside, second.config, output / "candidates" / second.name, held, folds, metric, resume=resume,
                         rivals=True)
    pool.shutdown(wait=False)  # the process exits once the candidate is done
    return {1: future}


def _words_only_on_long_texts(candidates: list[Candidate], held: Splits) -> None:
    mean = sum(len(ex.text) + len(ex.text_pair or "") for ex in held.train.examples) / max(len(held.train), 1)
    if mean <= LONG_TEXTS:
        return
    for cand in candidates:
        tokenizer = cand.config.tokenizer
        if cand.config.model.type in ("linear", "linear_bag") and getattr(tokenizer, "char_ngrams", None):  # type: ignore[attr-defined]
            cand.config = cand.config.model_copy(update={"tokenizer": tokenizer.model_copy(update={"char_ngrams": None})})
            logger.info("auto: the training texts average %.0f characters: %s uses word n-grams only", mean, cand.name)


def _cv_folds(config: Config, held: Splits) -> list[Splits]:
    """The cross-validation splits of train + validation when the validation data is a small held-out part, else []."""
    from textsift.data.example import Dataset
    from textsift.training.cv import fold_assignment, stratification_labels

    if config.data.validation is not None or held.validation is None or len(held.validation) >= CV_BELOW:
        return []
    pooled = _pooled(held)
    pool = pooled.examples
    assignment = fold_assignment(stratification_labels(held.labels.encode(pooled)), CV_FOLDS, config.seed)
    logger.info("auto: %d validation examples: candidates are compared by %d-fold cross-validation over %d examples",
                len(held.validation), CV_FOLDS, len(pool))
    return [Splits(Dataset(f"folds other than {k + 1}", [ex for ex, f in zip(pool, assignment) if f != k]),
                   Dataset(f"fold {k + 1} of {CV_FOLDS}", [ex for ex, f in zip(pool, assignment) if f == k]), None, held.labels)
            for k in range(CV_FOLDS)]


#: a candidate that has trained as long as a finished one took and is still this far below its validation score
#: (absolute, on a metric to maximise) stops at that epoch's end: successive halving's idea, for two candidates.
#: On the seven benchmark datasets the bag never ended above the linear model; on imdb it took 3x as long (37 s vs
#: 12 s) to end 0.1 point below, and the run waited for it.
BEHIND_BY = 0.01


class _Behind(Callback):
    """Stop a candidate at an epoch's end once it has trained at least as long as a finished rival took and its
    best validation score so far is more than :data:`BEHIND_BY` below the rival's. The rivals' results are the
    ``candidates/NAME.json`` records (written atomically when each finishes, by either process). The reason is
    logged and saved beside the records (``NAME.stopped``) for the leaderboard."""

    def __init__(self, records: Path, name: str, metric: str) -> None:
        self.records, self.name, self.metric = records, name, metric
        self.start = time.perf_counter()

    def on_epoch_end(self, trainer: Any, metrics: dict[str, float]) -> None:
        mine = trainer.state.best_metric
        if trainer.state.should_stop or mine is None or trainer.state.epoch >= trainer.config.epochs:
            return
        elapsed = time.perf_counter() - self.start
        for path in sorted(self.records.glob("*.json")):
            if path.stem == self.name:
                continue
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
                score, seconds = record["metrics"][self.metric], float(record["seconds"])
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if elapsed >= seconds and mine < score - BEHIND_BY:
                reason = (f"stopped after epoch {trainer.state.epoch}: {self.metric} {mine:.4f}, more than {BEHIND_BY:g} "
                          f"below {path.stem}'s {score:.4f} after as long as {path.stem} took ({seconds:.0f} s)")
                trainer.state.should_stop = True
                trainer.state.stop_reason = f"--model auto: {reason}"
                atomic_write_text(self.records / f"{self.name}.stopped", reason)
                return


class _Deadline(Callback):
    """Stop training at the end of the epoch in which the clock passes ``at`` (``time.perf_counter()`` seconds)."""

    def __init__(self, at: float) -> None:
        self.at = at

    def on_epoch_end(self, trainer: Any, metrics: dict[str, float]) -> None:
        if time.perf_counter() >= self.at and not trainer.state.should_stop:
            trainer.state.should_stop = True
            trainer.state.stop_reason = "--model auto: the time budget is spent"


def _cross_validate(config: Config, folds: list[Splits], metric: str, deadline: list[_Deadline]) -> dict[str, float] | None:
    """The candidate's validation metrics averaged over the folds (each fold held out once), and their spread;
    None when the budget ran out before the last fold."""
    from textsift.training.run import train

    import numpy as np

    per_fold, epochs = [], []
    for k, fold in enumerate(folds):
        if deadline and k and time.perf_counter() >= deadline[0].at:
            return None
        result = train(config, None, splits=fold, report=False, callbacks=deadline)
        per_fold.append(result.metrics)
        # the epoch the fold's run ended with: its best one where the recipe restores it, else its last (linear_bag
        # keeps its last epoch; the final training on all data must not stop where validation happened to peak)
        kept = result.state.best_epoch if config.trainer.restore_best else None
        epochs.append(kept or result.state.epoch)
    keys = [k for k in per_fold[0] if k.startswith("val/") and "/per_label/" not in k and all(k in m for m in per_fold)]
    out = {k: float(np.mean([m[k] for m in per_fold])) for k in keys}
    out[f"cv/{metric}_std"] = float(np.std([m[metric] for m in per_fold], ddof=1))
    out["cv/folds"] = float(len(folds))
    out["cv/best_epoch_median"] = float(np.median(epochs))
    return out


def _final_training(best: Candidate, held: Splits, *, has_test: bool) -> tuple[Config, Splits]:
    """The config and data the cross-validated winner is trained with.

    On all of train + validation (the folds told which candidate is best, the split is not needed to choose), for
    the median of the folds' kept epoch counts (the best, or the last for a recipe that keeps its last), unless something needs held-out data: calibration, tuned
    thresholds (multilabel), or the report when there is no test data. Measured with the linear model (test
    accuracy, split -> all): trec 0.898 -> 0.902, r8 0.9712 -> 0.9712, uci_sentences 0.838 -> 0.845, emotion
    0.875 -> 0.878. On larger data (no cross-validation) the winner keeps its split: training it again would
    cost a whole run for that small gain.
    """
    config = best.config
    needs_held_out = (not has_test or config.trainer.calibration != "none" or config.task != "single_label"
                      or config.thresholds.tune not in ("auto", "none"))  # type: ignore[attr-defined]
    if needs_held_out:
        return config, held
    epochs = max(1, int(round((best.metrics or {}).get("cv/best_epoch_median", config.trainer.epochs))))
    trainer = config.trainer.model_copy(update={
        "epochs": epochs, "main_metric": "train/loss", "main_metric_mode": "min", "early_stopping": None, "restore_best": False})
    data = config.data.model_copy(update={"validation_split": 0.0})
    return config.model_copy(update={"trainer": trainer, "data": data}), Splits(_pooled(held), None, None, held.labels)


def _pooled(held: Splits) -> Any:
    """Train and validation examples as one dataset (what cross-validation folds and the final training use)."""
    from textsift.data.example import Dataset

    return Dataset(f"{held.train.name} + validation", held.train.examples + held.validation.examples)  # type: ignore[union-attr]


def _only_failed_start(output: Path) -> bool:
    from textsift.training.run import untrained_run_files

    return untrained_run_files(output) is not None


def _save_board(output: Path, rows: list[dict[str, Any]], metric: str) -> None:
    atomic_write_text(output / "leaderboard.json", json.dumps({"metric": metric, "candidates": rows}, indent=1))
    columns = list(dict.fromkeys(k for row in rows for k in row))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(output / "leaderboard.csv", buf.getvalue())


def _finish(best: Candidate, output: Path, splits: Splits, metric: str, *, report: bool) -> Any:
    """The winner becomes the run: its model directory, config, metrics on the test data and report."""
    from textsift import load
    from textsift.evaluation.evaluate import evaluation_data
    from textsift.evaluation.report import write_report
    from textsift.training.run import TrainResult
    from textsift.training.callbacks import TrainerState

    source = output / "candidates" / best.name
    target = output / "model"
    if (source / "model").is_dir():
        replace_dir(source / "model", target)
    elif not (target / "model.safetensors").is_file():
        raise CheckpointError(f"{output}: the chosen candidate {best.name} has no model directory left; train again in a new --output.")
    atomic_write_text(output / "config.yaml", dump_yaml(best.config))
    predictor = load(target)
    metrics = dict(best.metrics or {})
    if "cv/folds" in metrics:  # chosen by cross-validation: the winner's own run on the split, the folds' means beside
        run_metrics = json.loads((source / "metrics.json").read_text(encoding="utf-8"))
        metrics = {**run_metrics, f"cv/{metric}": float(best.score), f"cv/{metric}_std": metrics[f"cv/{metric}_std"],  # type: ignore[arg-type]
                   "cv/folds": metrics["cv/folds"], "cv/best_epoch_median": metrics.get("cv/best_epoch_median", 1.0),
                   "auto/trained_on_validation_too": float(best.config.data.validation_split == 0)}
    if splits.test is not None:
        evaluated = evaluation_data(predictor, splits.test)
        prefix = "test"
        if report:
            metrics.update(write_report(output / "report", evaluated, prefix=prefix, training_log=source / "metrics.jsonl",
                                        title=f"{best.config.model.type} (auto) on {splits.test.name}").metrics)  # type: ignore[attr-defined]
        else:
            metrics.update(evaluated.metrics(prefix))
    elif report:
        write_report(output / "report", evaluation_data(predictor, splits.validation), prefix="val",  # type: ignore[arg-type]
                     training_log=source / "metrics.jsonl",
                     title=f"{best.config.model.type} (auto) on {splits.validation.name}")  # type: ignore[union-attr, attr-defined]
    metrics["auto/candidates"] = float(sum(1 for _ in (output / "candidates").glob("*.json")))
    atomic_write_text(output / "metrics.json", json.dumps(metrics, indent=1))
    # the model directory's own record of them (inspect, the server's /model, the card read it): the candidate was
    # trained without the test data, and a cross-validated winner on all of train + validation, so its meta.json had
    # no metrics at all
    meta = json.loads((target / "meta.json").read_text(encoding="utf-8"))
    meta["metrics"] = {**(meta.get("metrics") or {}), **metrics}
    atomic_write_text(target / "meta.json", json.dumps(meta, indent=1, default=str))
    from textsift.debug.card import write_card

    write_card(target)  # the card again: the candidate's run wrote it before there were test metrics
    state = TrainerState()
    state.stop_reason = f"auto chose {best.name}"
    return TrainResult(predictor, metrics, state, output, {"total_s": best.seconds})

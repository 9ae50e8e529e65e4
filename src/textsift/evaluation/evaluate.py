"""Evaluate a saved model on labeled data: metrics, an optional report, optional temperature scaling."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np

from textsift.data.example import Dataset
from textsift.data.labels import LabelSet
from textsift.data.loading import load_splits, read_for
from textsift.data.readers import ReadOptions, Reader, reader_for_file
from textsift.errors import DataError
from textsift.evaluation.calibration import Calibration, fit_temperature
from textsift.evaluation.report import EvaluationData, warn_labels_without_examples, write_report
from textsift.evaluation.thresholds import Decision
from textsift.inference.predictor import Predictor
from textsift.util import check_output_dir, file_fingerprint

logger = logging.getLogger(__name__)


TRAINED_LABELS_FIX = "The model was trained on these labels only and cannot predict others: remove such rows, or relabel them."


def evaluation_data(predictor: Predictor, dataset: Dataset, batch_size: int | None = None) -> EvaluationData:
    """Logits of ``predictor`` on ``dataset`` with the gold labels, ready for metrics and reports."""
    predictor.check(dataset.examples, on_empty="predict", where=f"{dataset.name}, row")
    y_true = LabelSet(predictor.label_names, predictor.multilabel).encode(dataset, TRAINED_LABELS_FIX)
    logits = predictor.logits(dataset.examples, batch_size)
    path = Path(dataset.name)
    return EvaluationData(
        examples=dataset.examples, y_true=y_true, logits=logits, label_names=predictor.label_names,
        temperature=predictor.temperature, source=dataset.name,
        fingerprint=file_fingerprint(path) if path.is_file() else None,
        model_dir=str(predictor.path) if predictor.path is not None else None, decision=predictor.decision,
    )


def validation_data_of(predictor: Predictor) -> Dataset:
    """The validation data the model was trained with, as its saved config names it."""
    config = predictor.full_config()
    try:
        if config.data.validation is not None:
            return read_for(config, config.data.validation)
        splits = load_splits(config)
    except DataError as exc:
        raise DataError(
            f"Cannot read the validation data named in the model's config ({exc}). "
            "Give the data to fit the temperature on with --calibration-data FILE."
        ) from None
    if splits.validation is None:
        raise DataError(
            "The model was trained without validation data, so there is none to fit the temperature on: "
            "give held-out labeled data with --calibration-data FILE."
        )
    return splits.validation


def calibrate(predictor: Predictor, dataset: Dataset, batch_size: int | None = None, save: bool = True) -> Calibration:
    """Fit temperature scaling on ``dataset``, use it in ``predictor`` and save it into its model directory."""
    y_true = LabelSet(predictor.label_names, predictor.multilabel).encode(dataset, TRAINED_LABELS_FIX)
    old_t = predictor.temperature
    calibration = fit_temperature(predictor.logits(dataset.examples, batch_size), y_true, dataset.name)
    predictor.calibration = calibration
    if predictor.decision is not None:  # thresholds live in probability space: move them so no decision changes
        predictor.decision = rescale_thresholds(predictor.decision, old_t, calibration.temperature)
    if save and predictor.path is not None:
        calibration.save(predictor.path)
        if predictor.decision is not None:
            predictor.decision.save(predictor.path)
        logger.info("Saved the temperature into %s/calibration.json; predict uses it from now on.", predictor.path)
    return calibration


def rescale_thresholds(decision: Decision, old_t: float, new_t: float) -> Decision:
    """p = sigmoid(z / T) >= t  <=>  z >= T logit(t): the same cut in logit space at the new temperature."""
    t = np.clip(np.asarray(decision.thresholds, np.float64), 1e-7, 1 - 1e-7)
    z = old_t * np.log(t / (1 - t))
    return dataclasses.replace(decision, thresholds=[float(v) for v in 1 / (1 + np.exp(-z / new_t))])


def evaluate(
    model_dir: str | Path, data: str | Path, *, report: str | Path | None = None, calibrate_on: str | Path | bool = False,
    batch_size: int | None = None, prefix: str = "test", reader: Reader | None = None, options: ReadOptions | None = None,
    overwrite: bool = False, runtime: str = "auto",
) -> dict[str, float]:
    """Metrics of the model in ``model_dir`` on the labeled file ``data``.

    ``calibrate_on``: True fits temperature scaling on the model's validation data, a path on that file;
    the temperature is saved into the model directory first. ``report``: write the report there (an existing
    folder only with ``overwrite``: then it is replaced whole). ``reader``: read ``data`` (and a calibration file)
    with these settings instead of the model's; ``options.names`` says how errors name them. ``runtime``: which
    runtime computes the logits (see :func:`textsift.load`).
    """
    from textsift import load

    if report is not None:
        check_output_dir(Path(report), "--report", overwrite=overwrite)
    predictor = load(model_dir, runtime=runtime)
    dataset = read_for(predictor.config, str(Path(data).resolve()), options=options,
                       reader=reader or reader_for_file(predictor.config.data.reader, data))  # type: ignore[arg-type]
    if calibrate_on is not False:
        held_out = validation_data_of(predictor) if calibrate_on is True else read_for(
            predictor.config, str(Path(calibrate_on).resolve()), options=options,
            reader=reader or reader_for_file(predictor.config.data.reader, calibrate_on))  # type: ignore[arg-type]
        if Path(held_out.name).is_file() and file_fingerprint(Path(held_out.name)) == file_fingerprint(Path(dataset.name)):
            logger.warning("The temperature is fitted on the data being evaluated: its ECE will look better than on new data.")
        calibrate(predictor, held_out, batch_size)
    result = evaluation_data(predictor, dataset, batch_size)
    warn_labels_without_examples(result)
    if report is not None:
        return write_report(report, result, prefix=prefix).metrics
    return result.metrics(prefix)

"""The built-in steps: datasets, split, vocabulary (tokenizer + label set), train, evaluate, predict, export."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator

from textsift import registry
from textsift.config import Config
from textsift.config.spec import Component
from textsift.data.example import Dataset
from textsift.errors import ConfigError
from textsift.util import atomic_write_text, replace_dir
from textsift.workflow.results import ModelArtifact, PredictionsArtifact, ReportArtifact, TokenizerArtifact
from textsift.workflow.steps import step

PLACEHOLDER = "(from the workflow)"


def _as_config(value: Any) -> Any:
    """A train step's config: a run config whose data files come from the workflow's refs."""
    if isinstance(value, Config):
        return value
    if not isinstance(value, dict):
        raise ValueError(f"expected a config mapping (model, tokenizer, trainer, ...), got {type(value).__name__}")
    from textsift.config.loader import resolve

    raw = json.loads(json.dumps(value))
    data = raw.setdefault("data", {})
    for key in ("train", "validation", "test", "reader"):
        if key in data:
            raise ValueError(f"data.{key} comes from the step's train/validation/test refs; remove it from config")
    data["train"] = PLACEHOLDER
    return resolve(raw, source="the train step's config")


RunConfig = Annotated[Config, BeforeValidator(_as_config)]


def _file_of(dataset: Dataset, output_dir: Path, name: str) -> str:
    if dataset.file is not None:
        return dataset.file
    from textsift.workflow.results import write_dataset

    write_dataset(dataset, output_dir / "data" / f"{name}.jsonl")
    return str(output_dir / "data" / f"{name}.jsonl")


@step("dataset")
def dataset(
    path: Path | None = None,
    generate: Component(registry.datasets) | None = None,  # type: ignore[valid-type]
    reader: Component(registry.readers) | None = None,  # type: ignore[valid-type]
    limit: int | None = None,
) -> Dataset:
    """Read a data file (any reader) or generate a dataset; ``limit`` keeps the first N examples."""
    from textsift.data.loading import read_source
    from textsift.data.readers import AutoReader

    if (path is None) == (generate is None):
        raise ConfigError("The dataset step needs exactly one of 'path' (a data file) or 'generate' ({type: GENERATOR, ...}).")
    data = read_source(str(path) if path is not None else generate, reader or AutoReader(), task=None)  # label sets stay as read
    if limit is not None:
        data = Dataset(f"{data.name} (first {limit})", data.examples[:limit])
    return data


@step("split")
def split(data: Dataset, validation: float = 0.1, test: float = 0.0, seed: int = 0) -> dict[str, Dataset | None]:
    """Stratified train / validation / test split; the fractions are of the whole dataset."""
    from textsift.data.loading import stratified_split

    if validation < 0 or test < 0 or validation + test >= 1:
        raise ConfigError(f"split: validation ({validation}) and test ({test}) must be >= 0 and add up to less than 1.")
    rest, test_part = (stratified_split(data, test, seed) if test > 0 else (data, None))
    train_part, val_part = (stratified_split(rest, validation / (1 - test), seed) if validation > 0 else (rest, None))
    named = lambda part, name: Dataset(f"{data.name} [{name}]", part.examples) if part is not None else None  # noqa: E731
    return {"train": named(train_part, "train"), "validation": named(val_part, "validation"), "test": named(test_part, "test")}


@step("vocabulary")
def vocabulary(
    data: Dataset,
    output_dir: Path,
    tokenizer: Component(registry.tokenizers, "hashed_ngrams") = "hashed_ngrams",  # type: ignore[valid-type]
    labels: list[str] | None = None,
) -> TokenizerArtifact:
    """Fit a tokenizer on the data and fix the label set (in ``labels`` order, or sorted), for train steps to share."""
    from textsift.data.labels import LabelSet

    label_set = LabelSet.infer(data, labels)
    fitted = tokenizer.build()
    fitted.fit(data.examples)
    out = output_dir / "tokenizer"
    out.mkdir(parents=True, exist_ok=True)
    fitted.save(out)
    return TokenizerArtifact(path=out, tokenizer=tokenizer.model_dump(mode="json"), labels=label_set.names)


@step("train")
def train(
    config: RunConfig,
    train: Dataset,
    output_dir: Path,
    context: Any,
    validation: Dataset | None = None,
    test: Dataset | None = None,
    vocabulary: TokenizerArtifact | None = None,
) -> ModelArtifact:
    """Train a model (a run config without data files) on the referenced datasets; the report is on ``test``."""
    from textsift.config.schema import DataConfig
    from textsift.training.run import train as run_training

    pairs = any(ex.text_pair is not None for ex in train.examples)
    data = DataConfig(
        train=_file_of(train, output_dir, "train"),
        validation=_file_of(validation, output_dir, "validation") if validation is not None else None,
        test=_file_of(test, output_dir, "test") if test is not None else None,
        reader={"type": "jsonl", "text_pair_column": "text_pair" if pairs else None},
        labels=vocabulary.labels if vocabulary is not None else config.data.labels,
        validation_split=config.data.validation_split if validation is None else 0.0,
    )
    if vocabulary is not None and vocabulary.tokenizer.get("type") != config.tokenizer.type:  # type: ignore[attr-defined]
        raise ConfigError(
            f"train: the vocabulary step fitted a '{vocabulary.tokenizer.get('type')}' tokenizer, but config.tokenizer is "
            f"'{config.tokenizer.type}'. Make them the same."  # type: ignore[attr-defined]
        )
    from textsift.config.loader import resolve, config_to_dict

    raw = config_to_dict(config)
    raw["data"] = data.model_dump(mode="json")
    run_config = resolve(raw, source="the train step's config")
    run_dir = output_dir / "run"
    resume = (run_dir / "checkpoint.safetensors").is_file()  # a run killed midway continues where it stopped
    if run_dir.exists() and not resume:
        shutil.rmtree(run_dir)
    result = run_training(
        run_config, run_dir, resume=resume, callbacks=context.trainer_callbacks(run_config.trainer.log_every_steps),
        tokenizer=vocabulary.build() if vocabulary is not None else None,
    )
    return ModelArtifact(path=run_dir, metrics={k: v for k, v in result.metrics.items() if "/per_label/" not in k})


def _model_dir(model: ModelArtifact | Path) -> Path:
    return model.model_dir if isinstance(model, ModelArtifact) else Path(model)


@step("evaluate")
def evaluate(
    model: ModelArtifact | Path, data: Dataset, output_dir: Path, calibrate_on: Dataset | None = None, prefix: str = "test",
) -> ReportArtifact:
    """Evaluate a model on labeled data and write the full report (temperature scaling first with ``calibrate_on``)."""
    from textsift import load
    from textsift.evaluation.evaluate import calibrate, evaluation_data
    from textsift.evaluation.report import write_report

    predictor = load(_model_dir(model))
    if calibrate_on is not None:  # fitted for this report only: the cached model directory is never changed
        calibrate(predictor, calibrate_on, save=False)
    report = write_report(output_dir / "report", evaluation_data(predictor, data), prefix=prefix)
    return ReportArtifact(path=report.directory, metrics={k: v for k, v in report.metrics.items() if "/per_label/" not in k})


@step("predict")
def predict(model: ModelArtifact | Path, data: Dataset, output_dir: Path, top_k: int | None = None) -> PredictionsArtifact:
    """Predict labels and probabilities for every example; JSON Lines, one record per example."""
    from textsift import load

    import io

    from textsift.predict import write_predictions

    predictor = load(_model_dir(model))
    out = output_dir / "predictions.jsonl"
    buffer = io.StringIO()  # the same records as `textsift predict` (row, text, text_pair for pair models, label, ...)
    count = write_predictions(buffer, "jsonl", predictor, iter(data.examples), top_k=top_k, chunk=10_000)
    atomic_write_text(out, buffer.getvalue())
    return PredictionsArtifact(path=out, count=count)


MODEL_DIR_FILES = ("config.yaml", "model.safetensors", "labels.json")


def _is_model_dir(path: Path) -> bool:
    return path.is_dir() and all((path / name).is_file() for name in MODEL_DIR_FILES)


@step("export")
def export(model: ModelArtifact | Path, path: str, context: Any) -> dict[str, Any]:
    """Copy the model directory to ``path`` (relative to the workflow file; replaced atomically), for serving or sharing.

    The copy is declared with ``context.external``: a cache hit is served only while ``path`` holds exactly
    what this step copied there, and otherwise the step copies the cached model again. A folder at
    ``path`` that is neither a model directory nor this step's earlier export is never replaced.
    """
    source = _model_dir(model)
    target = context.external(path)
    if target.exists() and not _is_model_dir(target) and not context.wrote_before(target):
        raise ConfigError(
            f"export: {target} exists and is not a textsift model directory ({', '.join(MODEL_DIR_FILES)}) nor an earlier "
            f"export of this step; exporting would replace it. Choose another 'path' for the export step, or remove {target} "
            "if nothing in it is needed."
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(source, tmp)
    replace_dir(tmp, target)
    return {"path": str(target), "files": sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file())}

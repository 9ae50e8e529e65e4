"""Model cards: ``README.md`` in every model directory, in the Hugging Face model-card format.

YAML front matter (``library_name``, ``pipeline_tag``, ``tags`` and a ``model-index`` of the test metrics, which the
Hub shows as evaluation results), then model details, intended use, training data with the data checks' summary,
evaluation results with per-label metrics and calibration, limitations, and how to load and predict.

Everything comes from the files of the model directory (``config.yaml``, ``labels.json``, ``meta.json``,
``calibration.json``, ``thresholds.json``) and, when the model directory sits in a run directory, the run's
``metrics.json`` (``--model auto`` records its winner's test metrics there). Writing a card reads a few small files
and imports nothing heavy: it runs at the end of every training run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from textsift.errors import CheckpointError
from textsift.util import atomic_write_text

CARD = "README.md"
HEADLINE = [  # (metric key without prefix, model-index type, display name, args)
    ("accuracy", "accuracy", "Accuracy", None),
    ("macro_f1", "f1", "Macro F1", {"average": "macro"}),
    ("weighted_f1", "f1", "Weighted F1", {"average": "weighted"}),
    ("micro_f1", "f1", "Micro F1", {"average": "micro"}),
    ("macro_precision", "precision", "Macro precision", {"average": "macro"}),
    ("macro_recall", "recall", "Macro recall", {"average": "macro"}),
    ("mcc", "matthews_correlation", "MCC", None),
    ("hamming_loss", "hamming_loss", "Hamming loss", None),
    ("ece", "expected_calibration_error", "ECE (15 bins)", None),
    ("nll", "log_loss", "NLL", None),
]


def resolve_model_dir(path: str | Path) -> Path:
    """``path`` itself when it is a model directory, or ``path/model`` for a run directory."""
    path = Path(path)
    for candidate in (path, path / "model"):
        if (candidate / "meta.json").is_file() and (candidate / "config.yaml").is_file():
            return candidate
    raise CheckpointError(f"'{path}' is not a model directory (no meta.json and config.yaml there or in {path / 'model'}). "
                          "Give the model directory a training run wrote (RUN/model) or the run directory.")


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _split_metrics(metrics: dict[str, float]) -> tuple[str, dict[str, float]]:
    prefix = "test" if any(k.startswith("test/") for k in metrics) else "val"
    return prefix, {k.removeprefix(f"{prefix}/"): v for k, v in metrics.items() if k.startswith(f"{prefix}/")}


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _md_cell(value: Any) -> str:
    return _fmt(value).replace("|", "\\|").replace("\n", " ")


def _source_name(source: Any) -> str:
    if isinstance(source, dict):
        return str(source.get("type", "generated data"))
    return Path(str(source)).name if source else "unknown"


def _dataset_type(source: Any) -> str:
    """A short id of the evaluation data: its folder's name (datasets/trec/test.jsonl: trec), else the file's stem."""
    if isinstance(source, dict) or not source:
        return _source_name(source)
    path = Path(str(source))
    return path.parent.name or path.name.split(".")[0]


def render_card(model_dir: str | Path) -> str:
    """The card's text for ``model_dir`` (see the module doc)."""
    model_dir = resolve_model_dir(model_dir)
    config = yaml.safe_load((model_dir / "config.yaml").read_text(encoding="utf-8")) or {}
    meta = _read_json(model_dir / "meta.json") or {}
    labels = _read_json(model_dir / "labels.json") or []
    labels = labels.get("labels", labels) if isinstance(labels, dict) else labels
    calibration = _read_json(model_dir / "calibration.json")
    thresholds = _read_json(model_dir / "thresholds.json")
    metrics = dict(meta.get("metrics") or {})
    run_metrics = _read_json(model_dir.parent / "metrics.json")
    if isinstance(run_metrics, dict) and (model_dir.parent / "config.yaml").is_file():
        metrics.update({k: v for k, v in run_metrics.items() if isinstance(v, (int, float))})
    prefix, headline = _split_metrics(metrics)
    data = config.get("data") or {}
    model = config.get("model") or {}
    model_type = model.get("type", "model") if isinstance(model, dict) else str(model)
    tokenizer = config.get("tokenizer") or {}
    task = config.get("task", "single_label")
    name = f"textsift-{model_type}-{model_dir.parent.name if model_dir.name == 'model' else model_dir.name}"
    evaluated_on = data.get(prefix if prefix == "test" else "validation") or (data.get("train") if prefix == "val" else None)
    dataset = _source_name(evaluated_on) if isinstance(evaluated_on, dict) else "/".join(Path(str(evaluated_on)).parts[-2:])

    front: dict[str, Any] = {
        "library_name": "textsift",
        "pipeline_tag": "text-classification",
        "tags": ["textsift", "text-classification", str(model_type)] + (["multi-label-classification"] if task == "multilabel" else []),
    }
    entries = []
    for key, kind, display, args in HEADLINE:
        if key in headline:
            entry: dict[str, Any] = {"type": kind, "value": round(float(headline[key]), 6), "name": display}
            if args:
                entry["args"] = args
            entries.append(entry)
    if entries:
        front["model-index"] = [{"name": name, "results": [{
            "task": {"type": "text-classification", "name": "Text Classification"},
            "dataset": {"name": dataset, "type": _dataset_type(evaluated_on),
                        "split": "test" if prefix == "test" else "validation"},
            "metrics": entries,
        }]}]

    training = meta.get("training") or {}
    versions = meta.get("versions") or {}
    git = meta.get("git") or {}
    checks = meta.get("data_checks") or {}
    lines = ["---", yaml.safe_dump(front, sort_keys=False, allow_unicode=True).rstrip(), "---", "",
             f"# {name}", "",
             f"A {'multi-label' if task == 'multilabel' else 'single-label'} text classifier ({model_type}) trained with "
             f"textsift on {_source_name(data.get('train'))}: {len(labels)} labels.", ""]

    lines += ["## Model details", "",
              "| | |", "|---|---|",
              f"| model | `{model_type}` |",
              f"| tokenizer | `{tokenizer.get('type', '?') if isinstance(tokenizer, dict) else tokenizer}`"
              + (f", max length {tokenizer['max_length']}" if isinstance(tokenizer, dict) and "max_length" in tokenizer else "") + " |",
              f"| task | {task} |",
              f"| labels | {', '.join(f'`{_md_cell(x)}`' for x in labels)} |"]
    if "parameters" in training:
        lines.append(f"| parameters | {training['parameters']:,} |")
    if training:
        lines.append(f"| training | epochs {training.get('epochs', '?')}, {training.get('steps', '?')} steps, batch size "
                     f"{training.get('batch_size', '?')}; best epoch {training.get('best_epoch', '?')} ({_md_cell(training.get('stop_reason', ''))}) |")
    if meta.get("created"):
        lines.append(f"| created | {meta['created']} |")
    if versions:
        lines.append(f"| versions | {', '.join(f'{k} {v}' for k, v in versions.items())} |")
    if git.get("commit"):
        lines.append(f"| git commit | `{git['commit']}`{' (uncommitted changes)' if git.get('dirty') else ''} |")
    lines += ["", "The full resolved config is `config.yaml` in this directory.", ""]

    lines += ["## Intended use", "",
              f"Assigning {'label sets' if task == 'multilabel' else 'one label'} of [{', '.join(map(str, labels))}] to texts like "
              f"those of the training data ({_source_name(data.get('train'))}). It knows no other labels, and texts from "
              "another domain, language or time may be classified worse than the results below say.", ""]

    lines += ["## Training data", ""]
    fingerprints = meta.get("data") or {}
    rows = [(split, data.get(split)) for split in ("train", "validation", "test") if data.get(split)]
    if rows:
        lines += ["| split | source | fingerprint |", "|---|---|---|"]
        for split, source in rows:
            lines.append(f"| {split} | `{_md_cell(source if not isinstance(source, dict) else json.dumps(source))}` | "
                         f"{_md_cell(fingerprints.get(split) or '')} |")
        if not data.get("validation"):
            lines.append(f"\nValidation data: {data.get('validation_split', 0.1):.0%} of the training file, held out stratified.")
        lines.append("")
    if checks.get("sizes"):
        lines.append("Examples: " + ", ".join(f"{k} {v:,}" for k, v in checks["sizes"].items()) + ".")
    if checks.get("train_label_counts"):
        lines.append("Training labels: " + ", ".join(f"{k} {v:,}" for k, v in checks["train_label_counts"].items()) + ".")
    if checks.get("checks"):
        lines += ["", "Data checks before training (`textsift debug data` runs all of them):", ""]
        lines += [f"- **{c['status']}** {c['name']}: {c['message']}" for c in checks["checks"]]
    elif "checks" in checks:
        lines.append("The data checks were turned off for this run (data.checks: false).")
    lines.append("")

    lines += ["## Evaluation results", ""]
    if headline:
        where = f"the test data ({dataset})" if prefix == "test" else "the validation data (no test data was given)"
        lines += [f"On {where}" + (f", {int(headline['examples']):,} examples" if "examples" in headline else "") + ":", "",
                  "| metric | value |", "|---|---|"]
        lines += [f"| {display} | {_fmt(float(headline[key]))} |" for key, _, display, _ in HEADLINE if key in headline]
        per_label = sorted({k.split("/")[1] for k in headline if k.startswith("per_label/")}, key=lambda x: labels.index(x) if x in labels else 0)
        if per_label:
            columns = [c for c in ("precision", "recall", "f1", "support") if f"per_label/{per_label[0]}/{c}" in headline]
            lines += ["", "Per label:", "", "| label | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
            for label in per_label:
                values = [headline.get(f"per_label/{label}/{c}") for c in columns]
                lines.append(f"| {_md_cell(label)} | " + " | ".join(
                    str(int(v)) if c == "support" and v is not None else (_fmt(float(v)) if v is not None else "") for c, v in zip(columns, values)) + " |")
    else:
        lines.append("No evaluation metrics were recorded.")
    lines += ["", "### Calibration", ""]
    if calibration:
        lines.append(f"Temperature scaling: T = {calibration.get('temperature', float('nan')):.3f}, fitted on "
                     f"{calibration.get('examples', '?')} examples ({_md_cell(calibration.get('fitted_on', '?'))}); ECE there "
                     f"{calibration.get('ece_before', float('nan')):.4f} before, {calibration.get('ece_after', float('nan')):.4f} after.")
        if "ece_uncalibrated" in headline and "ece" in headline:
            lines.append(f"On the evaluation data: ECE {headline['ece_uncalibrated']:.4f} uncalibrated, {headline['ece']:.4f} with T.")
    elif "ece" in headline:
        lines.append(f"Not calibrated (trainer.calibration: none). Expected calibration error: {headline['ece']:.4f}: the "
                     "probabilities " + ("are close to observed accuracy." if headline["ece"] < 0.05 else "should not be read as accuracy."))
    else:
        lines.append("Not calibrated.")
    if thresholds:
        lines += ["", f"Decision thresholds are in `thresholds.json` (tuned on {_md_cell(thresholds.get('tuned_on', 'validation data'))})."]
    lines.append("")

    lines += ["## Limitations", "",
              "- The figures above hold for data like the evaluation data; measure again on your own before relying on them.",
              "- Labels in the training data may be wrong (see the data checks; `textsift debug data` ranks suspect rows), "
              "and the model learns their mistakes.",
              "- Texts longer than the tokenizer's max length are cut; empty texts are refused."
              + (" Probabilities are not calibrated." if not calibration else ""), ""]

    lines += ["## How to use", "", "`MODEL_DIR` is this directory.", "", "```python", "import textsift", "",
              'model = textsift.load("MODEL_DIR")',
              'preds = model.predict(["an example text"])',
              "preds.labels, preds.probabilities", "```", "", "```bash",
              "textsift predict MODEL_DIR texts.csv --output predictions.csv",
              "textsift evaluate MODEL_DIR labeled.jsonl --report eval/", "```", "",
              "This card was written by textsift; `textsift card MODEL_DIR` writes it again.", ""]
    return "\n".join(lines)


def write_card(model_dir: str | Path) -> Path:
    """Write ``README.md`` into the model directory; returns its path."""
    model_dir = resolve_model_dir(model_dir)
    path = model_dir / CARD
    atomic_write_text(path, render_card(model_dir))
    return path

"""What steps return, and how each kind is stored in the cache: never pickles.

* :class:`~textsift.data.example.Dataset` -> ``dataset.jsonl`` (text, text_pair, label, row)
* a dict of datasets (``{"train": ..., "validation": ..., "test": ...}``) -> one JSONL file each
* an :class:`Artifact` (a directory or file the step wrote under its ``output_dir``, plus JSON fields):
  model directories, reports, predictions, fitted tokenizers
* anything JSON can hold -> ``result.json``

Each cache entry has ``result.json``, the manifest that says which of these it holds, and the
content digest of each path the step wrote outside the cache (``external``: path -> digest).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from textsift.data.example import Dataset, Example
from textsift.errors import ConfigError
from textsift.util import atomic_write_text

MANIFEST = "result.json"


@dataclass
class Artifact:
    """Files a step wrote under its ``output_dir`` (``path`` is relative to it once stored), with JSON fields."""

    path: Path
    kind: ClassVar[str] = "artifact"

    def fields(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "path"}


@dataclass
class ModelArtifact(Artifact):
    """A training run directory: ``path/model`` is the model directory, ``path/report`` its report."""

    metrics: dict[str, float] = field(default_factory=dict)
    kind: ClassVar[str] = "model"

    @property
    def model_dir(self) -> Path:
        return self.path / "model"

    @property
    def report_dir(self) -> Path:
        return self.path / "report"


@dataclass
class ReportArtifact(Artifact):
    metrics: dict[str, float] = field(default_factory=dict)
    kind: ClassVar[str] = "report"


@dataclass
class PredictionsArtifact(Artifact):
    """A JSON Lines file: one record per example (label, probabilities)."""

    count: int = 0
    kind: ClassVar[str] = "predictions"


@dataclass
class TokenizerArtifact(Artifact):
    """A fitted tokenizer (its directory) and the label set, for train steps to share."""

    tokenizer: dict[str, Any] = field(default_factory=dict)  # the tokenizer's config section
    labels: list[str] = field(default_factory=list)
    kind: ClassVar[str] = "tokenizer"

    def build(self) -> Any:
        from textsift.config.schema import Config

        spec = Config.model_validate({"data": {"train": "unused"}, "tokenizer": self.tokenizer}).tokenizer
        return spec.build().load(self.path)  # type: ignore[attr-defined]


ARTIFACTS: dict[str, type[Artifact]] = {c.kind: c for c in (Artifact, ModelArtifact, ReportArtifact, PredictionsArtifact, TokenizerArtifact)}


def write_dataset(dataset: Dataset, file: Path) -> dict[str, Any]:
    lines = []
    for ex in dataset.examples:
        record: dict[str, Any] = {"text": ex.text}
        if ex.text_pair is not None:
            record["text_pair"] = ex.text_pair
        if ex.labels is not None:
            record["label"] = list(ex.labels)
        elif ex.label is not None:
            record["label"] = ex.label
        lines.append(json.dumps(record, ensure_ascii=False))
    atomic_write_text(file, "\n".join(lines) + ("\n" if lines else ""))
    return {"kind": "dataset", "file": file.name, "name": dataset.name, "examples": len(dataset)}


def read_dataset(entry: Path, manifest: dict[str, Any]) -> Dataset:
    examples = []
    with (entry / manifest["file"]).open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                examples.append(Example(text=r["text"], label=r.get("label"), text_pair=r.get("text_pair"), row=len(examples) + 1))
    return Dataset(manifest["name"], examples, file=str(entry / manifest["file"]))


def _is_json(value: Any) -> bool:
    try:
        json.dumps(value)
        return True
    except (TypeError, ValueError):
        return False


def store(value: Any, entry: Path, step: str, external: dict[str, str] | None = None) -> dict[str, Any]:
    """Write ``value`` into the cache entry directory ``entry``; returns (and writes) its manifest.

    ``external``: the content digest of each path the step wrote outside ``entry``, checked on every cache hit.
    """
    if isinstance(value, Dataset):
        manifest = write_dataset(value, entry / "dataset.jsonl")
    elif isinstance(value, dict) and value and all(isinstance(v, Dataset) or v is None for v in value.values()):
        items = {}
        for key, ds in value.items():
            items[key] = write_dataset(ds, entry / f"{key}.jsonl") if ds is not None else None
        manifest = {"kind": "datasets", "items": items}
    elif isinstance(value, Artifact):
        path = Path(value.path)
        try:
            relative = path.resolve().relative_to(entry.resolve())
        except ValueError:
            raise ConfigError(
                f"Step '{step}' returned an artifact at {path}, outside its output_dir {entry}: write artifacts under output_dir."
            ) from None
        manifest = {"kind": value.kind, "path": str(relative), "fields": value.fields()}
    elif _is_json(value):
        manifest = {"kind": "json", "value": value}
    else:
        raise ConfigError(
            f"Step '{step}' returned a {type(value).__name__}, which cannot be stored without pickling. Return a Dataset, "
            "a dict of Datasets, an Artifact (files under output_dir) or JSON-compatible data."
        )
    if external:
        manifest["external"] = dict(sorted(external.items()))
    atomic_write_text(entry / MANIFEST, json.dumps(manifest, indent=1, default=str))
    return manifest


def load(entry: Path) -> Any:
    manifest = json.loads((entry / MANIFEST).read_text(encoding="utf-8"))
    kind = manifest["kind"]
    if kind == "dataset":
        return read_dataset(entry, manifest)
    if kind == "datasets":
        return {k: (read_dataset(entry, m) if m is not None else None) for k, m in manifest["items"].items()}
    if kind == "json":
        return manifest["value"]
    cls = ARTIFACTS.get(kind)
    if cls is None:
        raise ConfigError(f"{entry / MANIFEST}: unknown result kind '{kind}' (written by another textsift version?).")
    return cls(path=entry / manifest["path"], **manifest["fields"])


def externals(entry: Path) -> dict[str, str]:
    """The paths outside the cache that the entry's step wrote, with their content digests when it finished."""
    return dict(json.loads((entry / MANIFEST).read_text(encoding="utf-8")).get("external", {}))


def metrics_of(value: Any) -> dict[str, float]:
    """The final metrics a result carries, for tracking."""
    metrics = getattr(value, "metrics", None)
    if isinstance(metrics, dict):
        return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and "/per_label/" not in k}
    return {}

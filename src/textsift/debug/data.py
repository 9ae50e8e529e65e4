"""``textsift debug data``: every check of a config's data, each passing, warning or failing, without stopping at the
first problem where it can go on.

What ``train`` rejects (an empty label or text, a label outside the label set, multi-label data for a single-label
task) is a failed check here, worded as ``train`` words it, with every row that has it rather than the first.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from textsift.config.schema import Config
from textsift.data.checks import (
    TRUNCATION_WARN, CheckResult, check_exact_leakage, check_missing_labels, compact_key, example_text, label_names_of,
    normalize,
)
from textsift.data.example import Dataset, Example
from textsift.data.labels import LabelSet
from textsift.data.loading import fit_task
from textsift.data.readers import ReadOptions
from textsift.errors import DataError, TextsiftError

logger = logging.getLogger(__name__)

IMBALANCE_WARN = 10.0  # the most frequent label over the rarest
FEW_EXAMPLES = 10  # training examples a label should have at least
NEAR_DUPLICATE_JACCARD = 0.8
OOV_WARN = 0.10
SHORT_WORDS = 2  # a text of fewer words than this is "very short"
PERCENTILES = (50, 90, 95, 99)
LENGTH_SAMPLE = 5000  # texts per split whose length is measured in tokenizer ids (a random sample of larger splits)


@dataclass
class DataReport:
    """Everything ``debug data`` found: the checks in order, statistics per split, and the label-noise result."""

    checks: list[CheckResult]
    stats: dict[str, Any] = field(default_factory=dict)
    label_noise: Any = None  # textsift.debug.noise.LabelNoise, when it ran
    noise_examples: list[Example] = field(default_factory=list)  # the training examples label_noise scored, in order
    timings: dict[str, float] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        found = Counter(c.status for c in self.checks)
        return {s: found.get(s, 0) for s in ("pass", "info", "warn", "fail")}

    @property
    def failed(self) -> bool:
        return any(c.status == "fail" for c in self.checks)

    def summary_line(self) -> str:
        c = self.counts()
        parts = [f"{c['pass']} passed", f"{c['warn']} warning{'s' * (c['warn'] != 1)}", f"{c['fail']} failed"]
        if c["info"]:
            parts.append(f"{c['info']} skipped")
        return f"{len(self.checks)} checks: " + ", ".join(parts)

    def as_dict(self, max_rows: int | None = 20) -> dict[str, Any]:
        checks = []
        for c in self.checks:
            d = c.as_dict(rows=False)
            d["rows"] = c.rows[:max_rows] if max_rows is not None else c.rows
            d["rows_total"] = len(c.rows)
            checks.append(d)
        return {"summary": {**self.counts(), "checks": len(self.checks), "line": self.summary_line()},
                "checks": checks, "stats": self.stats, "timings": self.timings}


# --- reading without stopping at the first bad row ---------------------------------------------------------------

def _read(config: Config, source: Any, split: str) -> tuple[Dataset | None, CheckResult | None]:
    """The split's examples, empty texts and labels kept; a problem reading stops that split only (a failed check)."""
    from textsift.data.generators import DatasetSpec

    if isinstance(source, DatasetSpec):
        return source.generate(), None
    from pathlib import Path

    path = Path(source)
    examples: list[Example] = []
    options = ReadOptions(require_labels=False, on_empty="keep")
    try:
        for ex in config.data.reader.iter(path, options=options):  # type: ignore[attr-defined]
            examples.append(ex)
    except DataError as exc:
        where = f" (the {len(examples)} rows read before the error are checked)" if examples else ""
        return (Dataset(str(path), examples) if examples else None), CheckResult(f"read_{split}", "fail", f"{exc}{where}")
    if not examples:
        return None, CheckResult(f"read_{split}", "fail", f"{path}: no examples found (the file has no data rows).")
    if all(ex.label is None and ex.labels is None for ex in examples):  # no label at all: say why as train does
        try:
            next(iter(config.data.reader.iter(path, options=ReadOptions(on_empty="keep"))), None)  # type: ignore[attr-defined]
        except DataError as exc:
            return None, CheckResult(f"read_{split}", "fail", str(exc))
    return Dataset(str(path), examples), None


def _row(split: str, ex: Example, **extra: Any) -> dict[str, Any]:
    return {"split": split, "row": ex.row, **extra}


def _listed(rows: list[dict[str, Any]], limit: int = 5) -> str:
    shown = ", ".join(f"{r['split']} row {r['row']}" for r in rows[:limit])
    return shown + (f" and {len(rows) - limit} more" if len(rows) > limit else "")


def _check_required(splits: dict[str, Dataset], config: Config) -> tuple[dict[str, Dataset], list[CheckResult]]:
    """Empty labels and texts (what ``train`` rejects): failed checks listing every row; the rows are left out after."""
    label_column, text_column = config.data.reader.label_column, config.data.reader.text_column  # type: ignore[attr-defined]
    no_label, empty = [], []
    kept: dict[str, Dataset] = {}
    for split, ds in splits.items():
        good = []
        for ex in ds.examples:
            if not ex.text.strip() or (ex.text_pair is not None and not ex.text_pair.strip()):
                empty.append(_row(split, ex, file=ds.name))
            elif ex.label is None and ex.labels is None:
                no_label.append(_row(split, ex, file=ds.name))
            else:
                good.append(ex)
        kept[split] = Dataset(ds.name, good)
    results = []
    if no_label:
        first = no_label[0]
        results.append(CheckResult(
            "labels_given", "fail",
            f"{len(no_label)} rows have no label ({_listed(no_label)}). {first['file']}, row {first['row']}: the label (column "
            f"'{label_column}') is empty. Every training and evaluation example needs a label: fill it in or remove the row.",
            no_label))
    else:
        results.append(CheckResult("labels_given", "pass", "Every example has a label."))
    if empty:
        first = empty[0]
        results.append(CheckResult(
            "empty_texts", "fail",
            f"{len(empty)} texts are empty or whitespace only ({_listed(empty)}). {first['file']}, row {first['row']}: the text "
            f"(column '{text_column}') is empty. Remove the row or fill in its text.", empty))
    else:
        results.append(CheckResult("empty_texts", "pass", "No text is empty or whitespace only."))
    return kept, results


def _fit_tasks(splits: dict[str, Dataset], config: Config) -> tuple[dict[str, Dataset], list[CheckResult]]:
    failures = []
    out = {}
    for split, ds in splits.items():
        try:
            out[split] = fit_task(ds, config.task, config.data.label_delimiter)
        except DataError as exc:
            failures.append(str(exc))
    if failures:
        return out, [CheckResult("task", "fail", " ".join(failures))]
    return out, [CheckResult("task", "pass", f"The labels fit the task ({config.task}).")]


# --- the checks ---------------------------------------------------------------------------------------------------

def _label_counts(ds: Dataset) -> Counter[str]:
    return Counter(name for ex in ds.examples for name in label_names_of(ex))


def _check_label_set(splits: dict[str, Dataset], labels: LabelSet) -> CheckResult:
    rows = []
    for split, ds in splits.items():
        if split == "train":
            continue
        for ex in ds.examples:
            rows += [_row(split, ex, label=name, file=ds.name) for name in label_names_of(ex) if name not in labels.index]
    if not rows:
        return CheckResult("label_set", "pass", f"Validation and test labels are all in the label set ({len(labels)} labels).")
    unknown = Counter(r["label"] for r in rows)
    first = rows[0]
    return CheckResult(
        "label_set", "fail",
        f"{len(rows)} rows have labels outside the label set: {', '.join(f'{k!r} ({v})' for k, v in unknown.most_common(10))} "
        f"({_listed(rows)}). {first['file']}, row {first['row']}: label '{first['label']}' is not in the label set "
        f"[{', '.join(labels.names)}]. Add it to data.labels, or fix the row.", rows)


def _check_lookalike_labels(splits: dict[str, Dataset]) -> CheckResult:
    """Labels of any split that differ only in case or spacing ('FEAR' and 'fear'): each is a class of its own."""
    from textsift.data.labels import lookalike_labels

    counts: Counter = Counter(name for ds in splits.values() for ex in ds.examples for name in label_names_of(ex))
    groups = lookalike_labels(counts)
    if not groups:
        return CheckResult("labels_lookalike", "pass", "No two labels differ only in case or spacing.")
    rows = [_row(split, ex, label=name, file=ds.name) for split, ds in splits.items() for ex in ds.examples
            for name in label_names_of(ex) if any(name in g[1:] for g in groups)]
    shown_groups = "; ".join(" / ".join(f"{n!r} ({counts[n]})" for n in g) for g in groups[:5])
    return CheckResult(
        "labels_lookalike", "warn",
        f"Labels that differ only in case or spacing are separate classes: {shown_groups} ({_listed(rows)}). If they "
        "mean the same, fix those rows, or set data.labels to the ones you mean.", rows)


def _check_distribution(splits: dict[str, Dataset], labels: LabelSet) -> tuple[list[CheckResult], dict[str, Any]]:
    counts = {split: _label_counts(ds) for split, ds in splits.items()}
    table = [{"label": name, **{split: counts[split].get(name, 0) for split in splits}} for name in labels.names]
    train = counts["train"]
    present = [train[n] for n in labels.names if train[n] > 0]
    ratio = max(present) / min(present) if present else float("nan")
    results = []
    rare = min(labels.names, key=lambda n: train[n])
    common = max(labels.names, key=lambda n: train[n])
    if ratio >= IMBALANCE_WARN:
        results.append(CheckResult(
            "label_balance", "warn", f"Imbalanced labels: '{common}' has {train[common]} training examples, '{rare}' {train[rare]} "
            f"(ratio {ratio:.1f}). Watch macro F1 rather than accuracy, or weigh the loss (trainer.loss.class_weights: balanced).",
            table))
    else:
        results.append(CheckResult("label_balance", "pass", f"{len(labels)} labels; most to least frequent in train: ratio {ratio:.1f}.", table))
    few = [{"label": n, "train_examples": train[n]} for n in labels.names if train[n] < FEW_EXAMPLES]
    if few:
        results.append(CheckResult(
            "few_examples", "warn", f"{len(few)} labels have fewer than {FEW_EXAMPLES} training examples: "
            f"{', '.join(repr(r['label']) + ' (' + str(r['train_examples']) + ')' for r in few[:10])}. Add examples, or merge "
            "rare labels.", few))
    else:
        results.append(CheckResult("few_examples", "pass", f"Every label has at least {FEW_EXAMPLES} training examples."))
    return results, {"label_counts": table, "imbalance_ratio": ratio}


def _check_short(splits: dict[str, Dataset], norms: dict[str, list[str]]) -> CheckResult:
    rows = []
    for split, ds in splits.items():
        for ex, norm in zip(ds.examples, norms[split]):
            words = len(norm.split())
            if words < SHORT_WORDS:
                rows.append(_row(split, ex, words=words, text=example_text(ex)))
    if not rows:
        return CheckResult("short_texts", "pass", f"Every text has at least {SHORT_WORDS} words.")
    wordless = sum(1 for r in rows if r["words"] == 0)
    total = sum(len(ds) for ds in splits.values())
    return CheckResult(
        "short_texts", "warn", f"{len(rows)} texts ({len(rows) / total:.1%}) have fewer than {SHORT_WORDS} words"
        + (f", {wordless} none at all (only punctuation or symbols)" if wordless else "") + f" ({_listed(rows)}): a classifier "
        "has little to go on. Check they are meant to be there.", rows)


def _label_key(ex: Example) -> tuple[str, ...]:
    return tuple(sorted(label_names_of(ex)))


def _check_duplicates(splits: dict[str, Dataset]) -> list[CheckResult]:
    dup_rows, conflict_rows = [], []
    parts, conflict_parts = [], []
    for split, ds in splits.items():
        groups: dict[bytes, list[int]] = {}
        for i, ex in enumerate(ds.examples):
            key = compact_key(example_text(ex))
            if key:
                groups.setdefault(key, []).append(i)
        copies = conflicts = 0
        for members in groups.values():
            if len(members) < 2:
                continue
            first = ds.examples[members[0]]
            copies += len(members) - 1
            labels = {_label_key(ds.examples[i]) for i in members}
            for i in members[1:]:
                ex = ds.examples[i]
                dup_rows.append(_row(split, ex, first_row=first.row, text=example_text(ex)))
            if len(labels) > 1:
                conflicts += 1
                for i in members:
                    ex = ds.examples[i]
                    conflict_rows.append(_row(split, ex, group=first.row, label="|".join(_label_key(ex)), text=example_text(ex)))
        if copies:
            parts.append(f"{split} has {copies} repeated texts ({copies / len(ds):.1%})")
        if conflicts:
            conflict_parts.append(f"{split}: {conflicts} texts")
    results = []
    if parts:
        results.append(CheckResult(
            "duplicates", "warn", f"{'; '.join(parts)} (ignoring case, punctuation and whitespace; e.g. "
            f"{dup_rows[0]['split']} row {dup_rows[0]['row']} repeats row {dup_rows[0]['first_row']}): repeats weigh those "
            "texts more and, split apart, leak. Drop the copies.", dup_rows))
    else:
        results.append(CheckResult("duplicates", "pass", "No text repeats inside a split."))
    if conflict_parts:
        results.append(CheckResult(
            "conflicting_labels", "warn", f"The same text has different labels ({'; '.join(conflict_parts)}; e.g. "
            f"{conflict_rows[0]['split']} row {conflict_rows[0]['row']}): at most one label can be right. Fix or drop them.",
            conflict_rows))
    else:
        results.append(CheckResult("conflicting_labels", "pass", "No text has two different labels."))
    return results


def _check_near_leakage(train: Dataset, others: list[tuple[str, Dataset]], norms: dict[str, list[str]], seed: int) -> CheckResult:
    from textsift.debug.minhash import near_duplicates

    rows = []
    parts = []
    for split, ds in others:
        pairs = near_duplicates(norms["train"], norms[split], threshold=NEAR_DUPLICATE_JACCARD, seed=seed)
        same = [(norms["train"][p.left].replace(" ", ""), norms[split][p.right].replace(" ", "")) for p in pairs]
        pairs = [p for p, (a, b) in zip(pairs, same) if a != b]  # exact copies: leakage_exact
        if pairs:
            parts.append(f"{len({p.right for p in pairs})} of {len(ds)} {split} texts")
        for p in sorted(pairs, key=lambda p: (p.right, -p.jaccard)):
            ex = ds.examples[p.right]
            rows.append({"split": split, "row": ex.row, "train_row": train.examples[p.left].row, "kind": "near",
                         "jaccard": round(p.jaccard, 4), "text": example_text(ex), "train_text": example_text(train.examples[p.left])})
    if not rows:
        return CheckResult("leakage_near", "pass", f"No validation or test text is a near copy of a training text "
                           f"(Jaccard of their words >= {NEAR_DUPLICATE_JACCARD}, MinHash LSH).")
    first = rows[0]
    return CheckResult(
        "leakage_near", "warn", f"{' and '.join(parts)} are near copies of training texts (word Jaccard >= {NEAR_DUPLICATE_JACCARD}; "
        f"e.g. {first['split']} row {first['row']} ~ train row {first['train_row']}, {first['jaccard']:.2f}): they make "
        "evaluation easier than new data. Check them in leakage.csv; drop them from one side.", rows)


def _lengths(config: Config, splits: dict[str, Dataset]) -> tuple[list[CheckResult], dict[str, Any]]:
    """Length percentiles in the config's tokenizer ids, the share cut at max_length, and OOV of words."""
    spec = config.tokenizer
    max_length = getattr(spec, "max_length", None)
    unit = f"{spec.type} ids"  # type: ignore[attr-defined]
    lengths: dict[str, np.ndarray] = {}
    rng = np.random.default_rng(config.seed)
    sampled = {split: (ds.examples if len(ds) <= LENGTH_SAMPLE else [ds.examples[i] for i in np.sort(rng.choice(len(ds), LENGTH_SAMPLE, replace=False))])
               for split, ds in splits.items()}
    try:
        uncapped = spec.model_copy(update={"max_length": 1 << 30}) if max_length is not None else spec
        tokenizer = uncapped.build()  # type: ignore[attr-defined]
        for split, examples in sampled.items():
            ids = tokenizer.fit_encode(examples) if split == "train" else tokenizer.encode(examples)
            lengths[split] = ids.lengths
    except (TextsiftError, OSError, ValueError) as exc:
        logger.warning("The tokenizer %s could not be built (%s): lengths are counted in words.", spec.type, exc)  # type: ignore[attr-defined]
        unit = "words"
        lengths = {split: np.array([len(example_text(ex).split()) for ex in examples]) for split, examples in sampled.items()}
    table = []
    for split, lens in lengths.items():
        row: dict[str, Any] = {"split": split, "unit": unit, "examples": len(splits[split]), "measured": len(lens)}
        row.update({f"p{p}": round(float(np.percentile(lens, p)), 1) for p in PERCENTILES})
        row["max"] = int(lens.max()) if len(lens) else 0
        if max_length is not None:
            row["max_length"] = max_length
            share = float((lens > max_length).mean()) if len(lens) else 0.0
            row["truncated"] = int(round(share * len(splits[split])))  # estimated from the sample when one was taken
            row["truncated_share"] = share
        table.append(row)
    results = []
    if any(len(ds) > LENGTH_SAMPLE for ds in splits.values()):
        unit_note = f", measured on a random {LENGTH_SAMPLE:,} texts of each larger split"
    else:
        unit_note = ""
    if max_length is None:
        results.append(CheckResult("truncation", "info", f"tokenizer {spec.type} has no max_length: nothing is cut.", table))  # type: ignore[attr-defined]
    else:
        heavy = [r for r in table if r["truncated_share"] >= TRUNCATION_WARN]
        median = ", ".join(f"{r['split']} {r['p50']:.0f}" for r in table)
        if heavy:
            found = "; ".join(f"{r['truncated']} of {r['examples']} {r['split']} texts ({r['truncated_share']:.0%})" for r in heavy)
            results.append(CheckResult(
                "truncation", "warn", f"{found} are longer than tokenizer.max_length ({max_length} {unit}) and lose their ends "
                f"(median length: {median}{unit_note}). Raise tokenizer.max_length if the ends matter.", table))
        else:
            results.append(CheckResult(
                "truncation", "pass", f"Under {TRUNCATION_WARN:.0%} of each split's texts exceed tokenizer.max_length "
                f"({max_length} {unit}; median length: {median}{unit_note}).", table))
    return results, {"lengths": table}


def _check_oov(splits: dict[str, Dataset], norms: dict[str, list[str]]) -> tuple[CheckResult, dict[str, Any]]:
    vocab = {w for n in norms["train"] for w in n.split()}
    rows = []
    for split in splits:
        if split == "train":
            continue
        total = unknown = 0
        for n in norms[split]:
            words = n.split()
            total += len(words)
            unknown += sum(1 for w in words if w not in vocab)
        rows.append({"split": split, "words": total, "unknown": unknown, "oov_rate": unknown / max(total, 1)})
    if not rows:
        return CheckResult("oov", "info", "No validation or test data: out-of-vocabulary rate not measured."), {"oov": rows}
    text = "; ".join(f"{r['split']} {r['oov_rate']:.1%}" for r in rows)
    if any(r["oov_rate"] >= OOV_WARN for r in rows):
        return CheckResult("oov", "warn", f"Words never seen in train (normalised words, {len(vocab)} in train's vocabulary): {text}. "
                           "The evaluation data may come from another domain; subword or character features help.", rows), {"oov": rows}
    return CheckResult("oov", "pass", f"Words never seen in train: {text} (of {len(vocab)} training words).", rows), {"oov": rows}


def _check_noise(train: Dataset, labels: LabelSet, config: Config, folds: int) -> tuple[CheckResult, Any]:
    from textsift.debug.noise import MIN_CLASS_EXAMPLES, find_label_noise

    given = labels.encode(train)
    noise = find_label_noise([example_text(ex) for ex in train.examples], given, labels.names, folds=folds, seed=config.seed)
    accuracy = float((noise.probabilities.argmax(axis=1) == given).mean())
    majority = float(np.bincount(given).max() / len(given))
    if accuracy <= majority + 0.02:  # the models learned nothing the majority label does not say: no basis to judge labels
        noise.issues[:] = False
        return CheckResult(
            "label_noise", "info", f"Label noise not judged: the cross-validated models ({noise.folds} folds) are right for "
            f"{accuracy:.1%} of the training examples, no better than always answering the most frequent label ({majority:.1%}). "
            "Too little or too hard data for confident learning.", []), noise
    flagged = noise.ranked_issues()
    rates = noise.noise_rates
    pairs = sorted(((rates[i, j], i, j) for i in range(len(labels)) for j in range(len(labels)) if i != j), reverse=True)
    top = ", ".join(f"{labels.names[i]}->{labels.names[j]} {r:.1%}" for r, i, j in pairs[:3] if r > 0)
    estimate = 1.0 - float(np.trace(noise.joint)) if noise.joint.sum() > 0 else 0.0
    rows = [{"row": train.examples[i].row, "given_label": labels.names[noise.given[i]],
             "suggested_label": labels.names[noise.suggested[i]], "score": float(noise.score[i])} for i in flagged]
    if not len(flagged):
        return CheckResult("label_noise", "pass", f"Confident learning ({noise.folds}-fold cross-validation) flags no label.", rows), noise
    first = rows[0]
    counts = np.bincount(noise.given, minlength=len(labels))
    rare = [labels.names[j] for j in range(len(labels)) if 0 < counts[j] < MIN_CLASS_EXAMPLES]
    rare_note = (f" Too rare to be suggested (under {MIN_CLASS_EXAMPLES} examples): {', '.join(map(repr, rare[:5]))}"
                 f"{' and more' if len(rare) > 5 else ''}." if rare else "")
    return CheckResult(
        "label_noise", "warn",
        f"{len(flagged)} training labels ({len(flagged) / len(train):.1%}) look wrong by confident learning ({noise.folds}-fold "
        f"cross-validation; estimated noise {estimate:.1%}; most: {top or 'none'}); the most suspect is row {first['row']}, "
        f"'{first['given_label']}' where '{first['suggested_label']}' is likely. Review label_issues.csv (--report).{rare_note}", rows), noise


# --- the whole run -------------------------------------------------------------------------------------------------

def debug_data(config: Config, *, label_noise: bool = True, folds: int = 10, progress: Callable[[str], None] | None = None) -> DataReport:
    """Run every check on the data ``config`` names; never raises for a problem of the data (it becomes a failed check)."""
    timings: dict[str, float] = {}
    note = progress or (lambda _: None)
    t0 = t = time.perf_counter()
    checks: list[CheckResult] = []
    raw: dict[str, Dataset] = {}
    for split in ("train", "validation", "test"):
        source = getattr(config.data, split)
        if source is None:
            continue
        ds, problem = _read(config, source, split)
        if problem is not None:
            checks.append(problem)
        if ds is not None:
            raw[split] = ds
    timings["read_s"] = time.perf_counter() - t
    stats: dict[str, Any] = {"files": {split: ds.name for split, ds in raw.items()}}
    report = DataReport(checks, stats, timings=timings)
    if "train" not in raw:
        return report
    held_out = "validation" not in raw and config.data.validation_split > 0
    splits, required = _check_required(raw, config)
    checks += required
    splits, task = _fit_tasks(splits, config)
    checks += task
    if "train" not in splits or any(c.status == "fail" and c.name == "task" for c in task):
        return report
    stats["sizes"] = {split: len(ds) for split, ds in splits.items()}
    sizes = ", ".join(f"{split} {len(ds)}" for split, ds in splits.items())
    checks.append(CheckResult("sizes", "pass", f"Examples: {sizes}"
                              + (f" (no validation file: train holds out {config.data.validation_split:.0%} of train)" if held_out else "") + "."))
    try:
        labels = LabelSet.infer(splits["train"], config.data.labels, multilabel=config.task == "multilabel")
    except DataError as exc:
        checks.append(CheckResult("label_set", "fail", str(exc)))
        return report
    checks.append(_check_label_set(splits, labels))
    checks.append(_check_lookalike_labels(splits))
    results, label_stats = _check_distribution(splits, labels)
    checks += results
    stats.update(label_stats)
    others = [(split, ds) for split, ds in splits.items() if split != "train"]
    checks.append(check_missing_labels(labels, others) if others else CheckResult(
        "labels_missing", "info", "Only training data: nothing to compare its labels with."))

    t = time.perf_counter()
    note("texts")
    norms = {split: [normalize(example_text(ex)) for ex in ds.examples] for split, ds in splits.items()}
    checks.append(_check_short(splits, norms))
    checks += _check_duplicates(splits)
    timings["texts_s"] = time.perf_counter() - t
    t = time.perf_counter()
    note("leakage")
    if others:
        checks.append(check_exact_leakage(splits["train"], others))
        checks.append(_check_near_leakage(splits["train"], others, norms, config.seed))
    else:
        checks.append(CheckResult("leakage_exact", "info", "Only training data: no validation or test split to leak into"
                                  + (" (the validation split train holds out comes from the same file: see duplicates)." if held_out else ".")))
    timings["leakage_s"] = time.perf_counter() - t
    t = time.perf_counter()
    note("lengths")
    results, length_stats = _lengths(config, splits)
    checks += results
    stats.update(length_stats)
    oov, oov_stats = _check_oov(splits, norms)
    checks.append(oov)
    stats.update(oov_stats)
    timings["lengths_s"] = time.perf_counter() - t

    if not label_noise:
        checks.append(CheckResult("label_noise", "info", "Label noise not checked (--no-label-noise)."))
    elif labels.multilabel:
        checks.append(CheckResult("label_noise", "info", "Label noise is checked for single-label tasks only."))
    else:
        t = time.perf_counter()
        note("label noise")
        result, noise = _check_noise(splits["train"], labels, config, folds)
        checks.append(result)
        report.label_noise, report.noise_examples = noise, splits["train"].examples
        timings["label_noise_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - t0
    return report


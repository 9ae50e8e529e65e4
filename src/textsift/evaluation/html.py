"""``report.html``: one self-contained page (images inlined as data URIs, no scripts, no network)."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from typing import Any

STYLE = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:2rem auto;max-width:1200px;color:#222;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem} h2{font-size:1.25rem;border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
.meta{color:#666;font-size:.9rem} table{border-collapse:collapse;margin:.5rem 0;font-size:.9rem}
th,td{border:1px solid #ddd;padding:.25rem .6rem;text-align:left;vertical-align:top} th{background:#f4f4f4}
td.num{text-align:right;font-variant-numeric:tabular-nums} img{max-width:100%;height:auto;border:1px solid #eee;margin:.5rem 0}
.cards{display:flex;flex-wrap:wrap;gap:.6rem} .card{border:1px solid #ddd;border-radius:6px;padding:.5rem .9rem;min-width:8rem}
.card b{display:block;font-size:1.3rem} .card span{color:#666;font-size:.8rem} td.text{max-width:40rem;word-wrap:break-word}
nav a{margin-right:.8rem}
"""

SECTIONS = [
    ("summary", "Summary"), ("per-label", "Per label"), ("confusion", "Confusion matrix"), ("calibration", "Calibration"),
    ("confidence", "Confidence"), ("pairs", "Top confused pairs"), ("length", "Errors by length"), ("errors", "Errors"),
    ("training", "Training curves"),
]


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return _e(value)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], text_columns: Sequence[int] = ()) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = []
    for row in rows:
        cells = []
        for i, v in enumerate(row):
            cls = "text" if i in text_columns else ("num" if isinstance(v, (int, float)) else "")
            cells.append(f'<td class="{cls}">{_num(v)}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _img(images: dict[str, bytes], name: str, alt: str) -> str:
    data = base64.b64encode(images[name]).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{_e(alt)}" title="{_e(name)}">'


def render_report(
    *, info: dict[str, Any], headline: dict[str, float], prefix: str, per_label: list[dict[str, Any]],
    pairs: list[dict[str, Any]], errors: list[dict[str, Any]], n_errors: int, by_length: list[dict[str, Any]],
    images: dict[str, bytes], epochs: list[dict[str, Any]] | None,
) -> str:
    parts = [f"<h1>{_e(info['title'])}</h1>"]
    parts.append(
        f'<p class="meta">{_e(info["examples"])} examples from {_e(info["data"])} · model {_e(info["model_dir"])} · '
        f'{len(info["labels"])} labels · temperature {info["temperature"]:.3f} · {_e(info["created"])}</p>'
    )
    present = [(a, t) for a, t in SECTIONS if (a != "training" or "training_curves.png" in images) and (a != "confidence" or "confidence.png" in images)]
    parts.append("<nav>" + "".join(f'<a href="#{a}">{_e(t)}</a>' for a, t in present) + "</nav>")

    cards = [("accuracy", "accuracy"), ("macro_f1", "macro F1"), ("weighted_f1", "weighted F1"), ("mcc", "MCC"),
             ("ece", "ECE"), ("nll", "NLL")]
    parts.append('<h2 id="summary">Summary</h2><div class="cards">' + "".join(
        f'<div class="card"><b>{headline[f"{prefix}/{k}"]:.4f}</b><span>{_e(name)}</span></div>'
        for k, name in cards if f"{prefix}/{k}" in headline
    ) + "</div>")
    parts.append(_table(["metric", "value"], [[k.removeprefix(prefix + "/"), int(v) if k.endswith("/examples") else v] for k, v in headline.items()]))
    parts.append(f'<p class="coverage">{_e(info["macro_average_note"])}</p>')

    multilabel = info.get("task") == "multilabel"
    parts.append('<h2 id="per-label">Per label</h2>')
    parts.append(_img(images, "classification_report.png", "classification report heatmap"))
    columns = (["threshold"] if multilabel else []) + ["precision", "recall", "f1", "support", "predicted"]
    parts.append(_table(["label", *columns], [[r["label"], *(r[c] for c in columns)] for r in per_label]))

    if "confusion_matrix.png" in images:
        parts.append('<h2 id="confusion">Confusion matrix</h2><p>Rows are true labels, columns predicted labels.</p>')
        parts.append(_img(images, "confusion_matrix.png", "confusion matrix"))
    if "per_label_confusion.png" in images:
        parts.append('<h2 id="confusion">Per-label confusion counts</h2><p>Each label is a yes/no decision: '
                     "true positives, missed labels (false negatives) and extra labels (false positives).</p>")
        parts.append(_img(images, "per_label_confusion.png", "per-label confusion counts"))
    if "pr_curves.png" in images:
        parts.append(_img(images, "pr_curves.png", "precision-recall curves per label"))
    if "binary_curves.png" in images:
        parts.append("<h3>Precision-recall and ROC</h3>")
        parts.append(_img(images, "binary_curves.png", "precision-recall and ROC curves"))

    parts.append('<h2 id="calibration">Calibration</h2><p>Expected calibration error over 15 equal-width confidence bins: '
                 "the bin-weighted gap between accuracy and mean confidence"
                 + (" (every label decision of every example counts as one prediction)." if multilabel else ".") + "</p>")
    parts.append(_img(images, "reliability.png", "reliability diagram"))

    if "confidence.png" in images:
        parts.append('<h2 id="confidence">Confidence</h2>')
        parts.append(_img(images, "confidence.png", "confidence histograms"))

    parts.append('<h2 id="pairs">Top confused pairs</h2>' + ("<p>A missing label of an example next to an extra one.</p>" if multilabel else ""))
    parts.append(_table(["missing" if multilabel else "true", "extra" if multilabel else "predicted", "count", "share of true label"],
                        [[p["true"], p["predicted"], p["count"], p["share_of_true"]] for p in pairs]) if pairs else "<p>No errors.</p>")

    parts.append('<h2 id="length">Errors by length</h2>')
    parts.append(_img(images, "error_by_length.png", "error rate by text length"))
    parts.append(_table(["words", "examples", "error rate"],
                        [[f"{r['min_length']}–{r['max_length']}", r["count"], r["error_rate"]] for r in by_length]))

    shown = f"the first {len(errors)} of {n_errors}" if len(errors) < n_errors else f"all {n_errors}"
    parts.append(f'<h2 id="errors">Errors</h2><p>Misclassified examples, {shown} (every one is in errors.csv).</p>')
    if errors:
        header = [h for h in errors[0] if h not in ("length_chars",)]
        text_cols = [i for i, h in enumerate(header) if h.startswith("text")]
        parts.append(_table(header, [[r[h] if h in ("row", "length_words") else (float(r[h]) if h in ("confidence", "true_label_probability") else r[h])
                                       for h in header] for r in errors], text_cols))

    if "training_curves.png" in images:
        parts.append('<h2 id="training">Training curves</h2>')
        parts.append(_img(images, "training_curves.png", "training curves"))
        if epochs:
            keys = [k for k in ("epoch", "train/loss", "val/loss", "val/accuracy", "val/macro_f1", "lr") if any(k in e for e in epochs)]
            parts.append(_table(keys, [[e.get(k, "") for k in keys] for e in epochs]))

    files = ", ".join(_e(f) for f in info["files"])
    parts.append(f'<p class="meta">Files in this report: {files}</p>')
    body = "\n".join(parts)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,">'
        f"<title>{_e(info['title'])}</title><style>{STYLE}</style></head>\n<body>\n{body}\n</body></html>\n"
    )

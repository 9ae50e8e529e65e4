"""The ``debug data --report DIR`` folder: ``report.html`` (one self-contained page, no scripts), ``report.json`` and
CSVs: ``checks.csv``, ``label_distribution.csv``, ``lengths.csv``, ``leakage.csv``, ``duplicates.csv``,
``conflicting_labels.csv``, ``label_issues.csv`` (suspected label errors, most suspect first) and ``noise_matrix.csv``."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from textsift.data.checks import example_text
from textsift.debug.data import DataReport
from textsift.evaluation.html import STYLE, _e, _table
from textsift.util import atomic_write_text

SHOWN_ROWS = 50  # rows of a table the page shows; the CSVs hold all
ICONS = {"pass": "✔", "info": "ℹ", "warn": "⚠", "fail": "✘"}
COLOURS = {"pass": "#1a7f37", "info": "#57606a", "warn": "#9a6700", "fail": "#cf222e"}


def _csv(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    columns = list(columns or dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def label_issue_rows(report: DataReport) -> list[dict[str, Any]]:
    """One row per suspected label error, most suspect first: row, text, given and suggested label, score, probabilities."""
    noise = report.label_noise
    if noise is None:
        return []
    names = noise.label_names
    rows = []
    for i in noise.ranked_issues():
        ex = report.noise_examples[i]
        given, suggested = int(noise.given[i]), int(noise.suggested[i])
        rows.append({"row": ex.row, "text": example_text(ex), "given_label": names[given], "suggested_label": names[suggested],
                     "score": round(float(noise.score[i]), 6), "p_given": round(float(noise.probabilities[i, given]), 6),
                     "p_suggested": round(float(noise.probabilities[i, suggested]), 6)})
    return rows


def noise_matrix_rows(report: DataReport) -> list[dict[str, Any]]:
    """Per given label: its count, threshold, and estimated p(true j | given i) for every j (confident learning)."""
    noise = report.label_noise
    if noise is None:
        return []
    rates = noise.noise_rates
    rows = []
    for i, name in enumerate(noise.label_names):
        row: dict[str, Any] = {"given_label": name, "examples": int((noise.given == i).sum()), "threshold": round(float(noise.thresholds[i]), 4)}
        row.update({f"true={other}": round(float(rates[i, j]), 4) for j, other in enumerate(noise.label_names)})
        row["confident_joint"] = " ".join(str(int(v)) for v in noise.confident_joint[i])
        rows.append(row)
    return rows


def _rows_of(report: DataReport, *names: str) -> list[dict[str, Any]]:
    return [r for c in report.checks if c.name in names for r in c.rows]


def render_html(report: DataReport, title: str) -> str:
    counts = report.counts()
    parts = [f"<h1>{_e(title)}</h1>", f'<p class="meta">{_e(time.strftime("%Y-%m-%d %H:%M"))} · '
             + " · ".join(f"{_e(split)}: {_e(name)}" for split, name in report.stats.get("files", {}).items()) + "</p>"]
    sections = [("checks", "Checks"), ("labels", "Labels"), ("lengths", "Lengths"), ("leakage", "Leakage"),
                ("duplicates", "Duplicates"), ("noise", "Label noise")]
    parts.append("<nav>" + "".join(f'<a href="#{a}">{_e(t)}</a>' for a, t in sections) + "</nav>")
    parts.append('<h2 id="checks">Checks</h2><div class="cards">' + "".join(
        f'<div class="card"><b style="color:{COLOURS[s]}">{counts[s]}</b><span>{_e(s)}</span></div>' for s in ("pass", "warn", "fail", "info")
    ) + f"</div><p>{_e(report.summary_line())}</p>")
    rows = "".join(
        f'<tr><td style="color:{COLOURS[c.status]}">{ICONS[c.status]} {_e(c.status)}</td><td>{_e(c.name)}</td>'
        f'<td class="text">{_e(c.message)}</td><td class="num">{len(c.rows)}</td></tr>' for c in report.checks)
    parts.append(f"<table><thead><tr><th>status</th><th>check</th><th>finding</th><th>rows</th></tr></thead><tbody>{rows}</tbody></table>")

    parts.append('<h2 id="labels">Labels</h2>')
    table = report.stats.get("label_counts", [])
    if table:
        header = list(table[0])
        parts.append(_table(header, [[r[h] for h in header] for r in table]))
        ratio = report.stats.get("imbalance_ratio")
        if ratio is not None:
            parts.append(f"<p>Most to least frequent training label: ratio {ratio:.1f}.</p>")
    parts.append('<h2 id="lengths">Lengths</h2>')
    lengths = report.stats.get("lengths", [])
    if lengths:
        header = [h for h in lengths[0]]
        parts.append(_table(header, [[r.get(h, "") for h in header] for r in lengths]))
    oov = report.stats.get("oov", [])
    if oov:
        parts.append("<p>Out-of-vocabulary words (normalised words never seen in train):</p>")
        parts.append(_table(["split", "words", "unknown", "oov rate"], [[r["split"], r["words"], r["unknown"], r["oov_rate"]] for r in oov]))

    leaks = _rows_of(report, "leakage_exact", "leakage_near")
    parts.append(f'<h2 id="leakage">Leakage</h2><p>{len(leaks)} validation/test rows with a copy in train '
                 f"(exact after normalisation, or near: word Jaccard ≥ 0.8){'; the first ' + str(SHOWN_ROWS) + ' (all in leakage.csv)' if len(leaks) > SHOWN_ROWS else ''}.</p>")
    if leaks:
        parts.append(_table(["split", "row", "train row", "kind", "jaccard", "text"],
                            [[r["split"], r["row"], r["train_row"], r["kind"], r.get("jaccard", 1.0), r["text"]] for r in leaks[:SHOWN_ROWS]], [5]))
    dups = _rows_of(report, "duplicates")
    conflicts = _rows_of(report, "conflicting_labels")
    parts.append(f'<h2 id="duplicates">Duplicates</h2><p>{len(dups)} repeated texts inside a split, {len(conflicts)} rows of texts '
                 "with conflicting labels (duplicates.csv, conflicting_labels.csv).</p>")
    if conflicts:
        parts.append(_table(["split", "row", "group (first row)", "label", "text"],
                            [[r["split"], r["row"], r["group"], r["label"], r["text"]] for r in conflicts[:SHOWN_ROWS]], [4]))
    if dups:
        parts.append(_table(["split", "row", "repeats row", "text"], [[r["split"], r["row"], r["first_row"], r["text"]] for r in dups[:SHOWN_ROWS]], [3]))

    parts.append('<h2 id="noise">Label noise</h2>')
    issues = label_issue_rows(report)
    if report.label_noise is None:
        parts.append("<p>Not checked.</p>")
    else:
        parts.append(f"<p>Confident learning on out-of-sample probabilities ({report.label_noise.folds}-fold cross-validation): "
                     f"{len(issues)} suspected label errors, most suspect first (all in label_issues.csv). Score: 1 − the "
                     "probability of the given label. The matrix estimates p(true label | given label); the diagonal is the "
                     "share of each label that is right.</p>")
        matrix = noise_matrix_rows(report)
        header = [h for h in matrix[0] if h != "confident_joint"]
        parts.append(_table(header, [[r[h] for h in header] for r in matrix]))
        if issues:
            parts.append(_table(["row", "given", "suggested", "score", "text"],
                                [[r["row"], r["given_label"], r["suggested_label"], r["score"], r["text"]] for r in issues[:SHOWN_ROWS]], [4]))
    body = "\n".join(parts)
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,">'
            f"<title>{_e(title)}</title><style>{STYLE}</style></head>\n<body>\n{body}\n</body></html>\n")


def write_data_report(report: DataReport, directory: str | Path, title: str = "textsift debug data") -> list[Path]:
    """Write the report folder (see the module doc); returns the files written."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "report.json": json.dumps(report.as_dict(max_rows=None), indent=1, default=float),
        "checks.csv": _csv([{"status": c.status, "check": c.name, "rows": len(c.rows), "finding": c.message} for c in report.checks]),
        "label_distribution.csv": _csv(report.stats.get("label_counts", [])),
        "lengths.csv": _csv(report.stats.get("lengths", [])),
        "leakage.csv": _csv(_rows_of(report, "leakage_exact", "leakage_near"),
                            ["split", "row", "train_row", "kind", "jaccard", "text", "train_text"]),
        "duplicates.csv": _csv(_rows_of(report, "duplicates"), ["split", "row", "first_row", "text"]),
        "conflicting_labels.csv": _csv(_rows_of(report, "conflicting_labels"), ["split", "row", "group", "label", "text"]),
        "label_issues.csv": _csv(label_issue_rows(report), ["row", "text", "given_label", "suggested_label", "score", "p_given", "p_suggested"]),
        "noise_matrix.csv": _csv(noise_matrix_rows(report)),
        "report.html": render_html(report, title),
    }
    for name, text in files.items():
        atomic_write_text(out / name, text)
    return [out / name for name in files]

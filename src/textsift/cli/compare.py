"""``textsift compare A B ...``: side-by-side metrics and paired bootstrap intervals."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table
from rich.text import Text

from textsift.cli.app import app, console, handle_errors


@app.command()
@handle_errors
def compare(
    paths: list[Path] = typer.Argument(..., help="Run, model or report directories; the first is the baseline."),
    data: Path | None = typer.Option(None, "--data", help="Predict with every model on this labeled file instead of using saved reports."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write compare.json and CSV tables here."),
    resamples: int = typer.Option(10_000, "--resamples", min=100, help="Bootstrap resamples."),
    confidence: float = typer.Option(0.95, "--confidence", min=0.5, max=0.999, help="Confidence level of the intervals."),
    seed: int = typer.Option(0, "--seed"),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --output folder."),
) -> None:
    """Compare models on the same test set, with a paired bootstrap interval for each difference to the first."""
    from textsift.evaluation.compare import compare as run, load_report_predictions, predict_afresh, write_comparison

    from textsift.util import check_output_dir

    if output is not None:
        check_output_dir(output, "--output", overwrite=overwrite)
    systems = [predict_afresh(p, data) if data is not None else load_report_predictions(p) for p in paths]
    result = run(systems, resamples=resamples, confidence=confidence, seed=seed)
    names = list(result["metrics"])
    table = Table(title=Text(f"{result['test_set']['examples']} test examples: {result['test_set']['source']}"), header_style="bold")
    table.add_column("metric")
    for name in names:
        table.add_column(Text(name), justify="right")
    for metric in next(iter(result["metrics"].values())):
        table.add_row(metric, *(f"{result['metrics'][n][metric]:.4f}" for n in names))
    console.print(table)
    pct = f"{confidence:.0%}"
    diff = Table(title=Text(f"difference to {names[0]} (paired bootstrap, {resamples} resamples, {pct} interval)"), header_style="bold")
    for col in ("model", "metric", "difference", f"{pct} interval", "p (approx.)"):
        diff.add_column(col, justify="right" if col != "model" else "left")
    for d in result["differences"]:
        for metric in ("accuracy", "macro_f1"):
            m = d[metric]
            diff.add_row(Text(d["system"]), metric, f"{m['difference']:+.4f}", f"[{m['low']:+.4f}, {m['high']:+.4f}]", f"{m['p_value']:.4f}")
    console.print(diff)
    if output is not None:
        write_comparison(output, result)
        console.print(f"written: {output / 'compare.json'}", markup=False, highlight=False)

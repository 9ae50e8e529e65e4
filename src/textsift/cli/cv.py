"""``textsift cv CONFIG --folds K``: stratified K-fold cross-validation."""

from __future__ import annotations

import os
import time
from pathlib import Path

import typer
from rich.table import Table
from rich.text import Text

from textsift.cli.app import Settings, app, console, err_console, handle_errors


@app.command()
@handle_errors
def cv(
    config: Path = typer.Argument(..., help="Config file (YAML or Jsonnet); its training data is split into folds."),
    folds: int = typer.Option(5, "--folds", "-k", min=2, help="Number of stratified folds."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Directory for the folds and the summary (default: runs/cv-MODEL-TIME)."),
    overrides: list[str] = typer.Option([], "--set", "-s", help="Override a setting: --set trainer.epochs=5."),
    resume: bool = typer.Option(False, "--resume", help="Continue the cross-validation in --output: finished folds are kept."),
) -> None:
    """Cross-validate: train and evaluate once per fold, then report mean and standard deviation per metric."""
    from textsift.config import load_config
    from textsift.training.cv import cross_validate

    cfg = load_config(config, overrides=list(overrides))
    if output is None:
        output = Path("runs") / f"cv-{cfg.model.type.replace(':', '.')}-{time.strftime('%Y%m%d-%H%M%S')}"  # type: ignore[attr-defined]
    callbacks = []
    if Settings.verbosity >= 0 and int(os.environ.get("RANK", "0")) == 0:
        from textsift.cli.progress import ProgressBar

        callbacks.append(ProgressBar(err_console))
    result = cross_validate(cfg, folds, output, resume=resume, callbacks=callbacks)
    table = Table(title=Text(f"cross-validation, {folds} folds"), header_style="bold")
    table.add_column("metric")
    for k in range(folds):
        table.add_column(f"fold {k + 1}", justify="right")
    table.add_column("mean", justify="right")
    table.add_column("std", justify="right")
    for key, a in result.aggregate.items():
        if key.endswith("/examples"):
            continue
        table.add_row(Text(key), *(f"{v:.4f}" for v in a["per_fold"]), f"{a['mean']:.4f}", f"{a['std']:.4f}")
    console.print(table)
    console.print(f"summary: {output / 'cv_report.html'}", markup=False, highlight=False)

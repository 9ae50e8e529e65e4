"""``textsift distill TEACHER_DIR CONFIG -o DIR``: train the student of CONFIG on a trained teacher's outputs."""

from __future__ import annotations

import os
import time
from pathlib import Path

import typer

from textsift.cli.app import Settings, app, console, err_console, handle_errors


@app.command("distill")
@handle_errors
def distill(
    teacher: Path = typer.Argument(..., help="The teacher's model directory (or the run directory holding model/)."),
    config: Path = typer.Argument(..., help="The student's config (YAML or Jsonnet); its distill: section sets the losses."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Run directory (default: runs/distill-MODEL-TIME)."),
    overrides: list[str] = typer.Option([], "--set", "-s", help="Override a setting: --set distill.temperature=4."),
    no_report: bool = typer.Option(False, "--no-report", help="Skip the evaluation report after training."),
) -> None:
    """Distil a teacher into the student CONFIG describes (any model type): KL to the teacher's soft labels at
    distill.temperature mixed with the labels by distill.alpha; transformer students also match hidden states and
    attention maps (distill.hidden_weight, attention_weight) and can start from teacher layers
    (distill.init_from_teacher_layers). data.unlabeled and distill.augment add texts the teacher labels."""
    from textsift.cli.train import summary_table
    from textsift.compression.distill import distill as run_distill
    from textsift.config import load_config

    cfg = load_config(config, overrides=list(overrides))
    if output is None:
        output = Path("runs") / f"distill-{cfg.model.type.replace(':', '.')}-{time.strftime('%Y%m%d-%H%M%S')}"  # type: ignore[attr-defined]
    callbacks = []
    if Settings.verbosity >= 0 and int(os.environ.get("RANK", "0")) == 0:
        from textsift.cli.progress import ProgressBar

        callbacks.append(ProgressBar(err_console))
    result = run_distill(cfg, teacher, output, callbacks=callbacks, report=not no_report)
    test = {k: v for k, v in result.metrics.items() if k.startswith("test/")}
    if result.metrics:
        console.print(summary_table(test or result.metrics, "test metrics" if test else "validation metrics (best epoch)"))
    console.print(f"model directory: {result.model_dir}", markup=False, highlight=False)

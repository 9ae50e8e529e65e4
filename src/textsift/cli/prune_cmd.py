"""``textsift prune MODEL_DIR --heads 0.5 --ffn 0.5 -o DIR``: structured pruning of a transformer, then a short fine-tune."""

from __future__ import annotations

import os
import time
from pathlib import Path

import typer

from textsift.cli.app import Settings, app, console, err_console, handle_errors


@app.command("prune")
@handle_errors
def prune(
    model_dir: Path = typer.Argument(..., help="A transformer model directory (or the run directory holding model/)."),
    heads: float = typer.Option(0.5, "--heads", help="Fraction of all attention heads to remove (least important first)."),
    ffn: float = typer.Option(0.5, "--ffn", help="Fraction of all FFN neurons to remove (least important first)."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Run directory (default: runs/pruned-TIME)."),
    overrides: list[str] = typer.Option(
        [], "--set", "-s", help="Override a setting of the model's config for the fine-tune: --set trainer.epochs=1."),
    distill: bool = typer.Option(False, "--distill", help="Fine-tune on the unpruned model's soft labels too."),
    importance_examples: int = typer.Option(
        2000, "--importance-examples", min=1, help="Training examples whose gradients score the heads and neurons."),
    no_report: bool = typer.Option(False, "--no-report", help="Skip the evaluation report after training."),
) -> None:
    """Remove the least important attention heads and FFN neurons (Michel et al. 2019 gradient importance) from
    the weights, so the model is smaller and faster, and fine-tune it briefly with its own config (data, trainer).
    The result is a normal model directory."""
    from textsift.cli.train import summary_table
    from textsift.compression.prune import prune as run_prune

    if output is None:
        output = Path("runs") / f"pruned-{time.strftime('%Y%m%d-%H%M%S')}"
    callbacks = []
    if Settings.verbosity >= 0 and int(os.environ.get("RANK", "0")) == 0:
        from textsift.cli.progress import ProgressBar

        callbacks.append(ProgressBar(err_console))
    result = run_prune(model_dir, output, heads=heads, ffn=ffn, importance_examples=importance_examples,
                       overrides=overrides, distill=distill, callbacks=callbacks, report=not no_report)
    test = {k: v for k, v in result.metrics.items() if k.startswith("test/")}
    if result.metrics:
        console.print(summary_table(test or result.metrics, "test metrics" if test else "validation metrics (best epoch)"))
    console.print(f"model directory: {result.model_dir}", markup=False, highlight=False)

"""``textsift card MODEL_DIR``: write the model card (README.md, Hugging Face format) of a model directory again."""

from __future__ import annotations

from pathlib import Path

import typer

from textsift.cli.app import app, console, handle_errors


@app.command()
@handle_errors
def card(
    model_dir: Path = typer.Argument(..., help="Model directory (or the run directory holding model/)."),
    show: bool = typer.Option(False, "--show", help="Also print the card."),
) -> None:
    """Write MODEL_DIR/README.md, the model card: metrics (model-index), data, calibration, limitations, usage."""
    from textsift.debug.card import write_card

    path = write_card(model_dir)
    if show:
        console.print(path.read_text(encoding="utf-8"), markup=False, highlight=False)
    console.print(f"model card: {path}", markup=False, highlight=False)

"""``textsift export MODEL_DIR --format onnx [--quantize int8]``: an ONNX graph (and its int8 copy) beside the weights."""

from __future__ import annotations

from pathlib import Path

import typer

from textsift.cli.app import app, console, handle_errors


@app.command("export")
@handle_errors
def export(
    model_dir: Path = typer.Argument(..., help="Model directory (or the run directory holding model/)."),
    format: str = typer.Option("onnx", "--format", help="Export format: onnx."),
    quantize: str | None = typer.Option(None, "--quantize", help="Also write an int8 copy (model.int8.onnx): int8."),
    activations: str = typer.Option(
        "per_token", "--int8-activations",
        help="int8: one scale per token of each activation (per_token, the default) or one per tensor (per_tensor: "
             "ONNX Runtime's dynamic quantization; slightly faster, less close to fp32 on transformers)."),
) -> None:
    """Export a model to ONNX (model.onnx, checked against torch) in its model directory; --quantize int8 adds
    model.int8.onnx. predict and evaluate then run it with ONNX Runtime (--runtime auto, the default)."""
    from textsift.inference.export import export_model_dir
    from textsift.modeldir import find_model_dir

    manifest = export_model_dir(model_dir, format=format, quantize=quantize, activations=activations)
    target = find_model_dir(model_dir)
    for name, info in manifest["files"].items():
        extra = f", probabilities within {info['parity_max_probability_diff']:.1e} of torch" if "parity_max_probability_diff" in info else ""
        console.print(f"{target / name}: {info['precision']}, {info['bytes'] / 1e6:.2f} MB{extra}", markup=False, highlight=False)

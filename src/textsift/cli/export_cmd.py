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
        "auto", "--int8-activations",
        help="int8: auto (the default: one scale per token for the products whose calibration texts show outlier "
             "tokens, one per tensor for the rest), per_token (every product: closest to fp32, slower) or per_tensor "
             "(ONNX Runtime's dynamic quantization: fastest, less close to fp32 on transformers)."),
    calibration: Path | None = typer.Option(
        None, "--int8-calibration",
        help="int8 auto: a data file whose texts calibrate it (default: the model's validation, else training file)."),
) -> None:
    """Export a model to ONNX (model.onnx, checked against torch) in its model directory; --quantize int8 adds
    model.int8.onnx. predict and evaluate then run it with ONNX Runtime (--runtime auto, the default)."""
    from textsift.inference.export import export_model_dir
    from textsift.modeldir import find_model_dir

    manifest = export_model_dir(model_dir, format=format, quantize=quantize, activations=activations, calibration=calibration)
    target = find_model_dir(model_dir)
    for name, info in manifest["files"].items():
        extra = f", probabilities within {info['parity_max_probability_diff']:.1e} of torch" if "parity_max_probability_diff" in info else ""
        if extra and "flax_parity_max_probability_diff" in manifest:  # exported through the torch network of flax weights
            extra += f" (the torch network of the flax weights, within {manifest['flax_parity_max_probability_diff']:.1e} of flax)"
        console.print(f"{target / name}: {info['precision']}, {info['bytes'] / 1e6:.2f} MB{extra}", markup=False, highlight=False)

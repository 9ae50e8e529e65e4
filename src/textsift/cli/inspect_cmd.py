"""``textsift inspect MODEL_DIR``: what a model directory holds."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import typer
from rich.table import Table
from rich.text import Text

from textsift.cli.app import app, console, handle_errors


def runtimes(path: Path) -> dict:
    """Which runtime ``auto`` picks for the model directory, and what each runtime lacks here."""
    from textsift.inference.export import read_manifest
    from textsift.inference.runtime import RUNTIMES, choose_runtime, weights_format
    from textsift.util import file_fingerprint

    lacks = {}
    for name, entry in RUNTIMES.items():
        missing = entry.missing_files(path)
        package = entry.missing_package()
        lacks[name] = (f"no {missing[0]}" if missing else "") + ("; " if missing and package else "") + (
            f"{package} not installed (pip install 'textsift[{entry.extra}]')" if package else "")
        if not missing and not entry.runs_weights_of(path):  # torch's weights for flax, or the reverse
            lacks[name] = f"model.safetensors holds {weights_format(path)} weights"
    manifest = read_manifest(path)
    if manifest is not None:  # exported from these weights, or from others (a stale graph)
        manifest["current"] = manifest.get("source", {}).get("fingerprint") == file_fingerprint(path / "model.safetensors")
    return {"auto": choose_runtime(path).name, "available": [n for n, why in lacks.items() if not why],
            "unavailable": {n: why for n, why in lacks.items() if why}, "onnx": manifest}


def describe(model_dir: Path) -> dict:
    from textsift import load
    from textsift.inference.runtime import weights_format
    from textsift.modeldir import check_model_dir

    flax = weights_format(check_model_dir(model_dir)) == "flax"  # the parameters of the network the weights are for
    predictor = load(model_dir, runtime="flax" if flax else "torch")
    path = predictor.path
    modules = predictor.runtime.describe()["parameters"]["per_module"]
    files = {str(p.relative_to(path)): p.stat().st_size for p in sorted(path.rglob("*")) if p.is_file()}
    return {
        "path": str(path),
        "model": predictor.config.model.type,  # type: ignore[attr-defined]
        "tokenizer": predictor.config.tokenizer.type,  # type: ignore[attr-defined]
        "vocab_size": predictor.tokenizer.vocab_size,
        "labels": predictor.label_names,
        "parameters": {"total": sum(modules.values()), "per_module": modules},
        "size_on_disk_bytes": sum(files.values()),
        "files": files,
        "training": predictor.meta.get("training", {}),
        "metrics": predictor.meta.get("metrics", {}),
        "versions": predictor.meta.get("versions", {}),
        "git": predictor.meta.get("git", {}),
        "data": predictor.meta.get("data", {}),
        "created": predictor.meta.get("created"),
        "calibration": dataclasses.asdict(predictor.calibration) if predictor.calibration is not None else None,
        "runtimes": runtimes(path),
    }


def _activations(how: dict) -> str:
    """How an int8 graph quantizes its activations, for inspect (graphs exported before ``auto`` say less)."""
    mode = how.get("activations")
    if mode is None:
        return ""
    per_token, per_tensor = how.get("per_token_matmuls"), how.get("per_tensor_matmuls")
    if mode == "auto" and per_tensor is not None:
        source = Path(str(how.get("calibration_file", "?"))).name
        return f", activations: {per_token} products per token, {per_tensor} per tensor (auto, calibrated on {source})"
    if per_token is not None:
        return f", activations: per token ({per_token} products{', no calibration texts' if mode == 'auto' else ''})"
    return f", activations: {mode.replace('_', ' ')}"


@app.command("inspect")
@handle_errors
def inspect_model(
    model_dir: Path = typer.Argument(..., help="Model directory (or the run directory holding model/)."),
    as_json: bool = typer.Option(False, "--json", help="Print everything as one JSON object."),
) -> None:
    """Parameters per module, size on disk, labels, runtimes (exported graphs, quantization) and training metadata."""
    info = describe(model_dir)
    if as_json:
        typer.echo(json.dumps(info, indent=1))
        return
    console.print(f"{info['path']}  model {info['model']}, tokenizer {info['tokenizer']} ({info['vocab_size']:,} ids)", markup=False)
    console.print(f"labels ({len(info['labels'])}): {', '.join(info['labels'])}", markup=False, highlight=False)
    params = Table(title="parameters", header_style="bold")
    params.add_column("module")
    params.add_column("parameters", justify="right")
    for name, n in info["parameters"]["per_module"].items():
        params.add_row(Text(name), f"{n:,}")
    params.add_row("[bold]total[/]", f"[bold]{info['parameters']['total']:,}[/]")
    console.print(params)
    files = Table(title=f"files ({info['size_on_disk_bytes'] / 1e6:.2f} MB on disk)", header_style="bold")
    files.add_column("file")
    files.add_column("bytes", justify="right")
    for name, size in info["files"].items():
        files.add_row(Text(name), f"{size:,}")
    console.print(files)
    rt = info["runtimes"]
    console.print(f"runtime: auto runs {rt['auto']}; available: {', '.join(rt['available'])}"
                  + "".join(f"; {n}: {why}" for n, why in rt["unavailable"].items()), markup=False, highlight=False)
    onnx = rt["onnx"]
    if onnx is not None:
        for name, graph in onnx["files"].items():
            how = graph.get("quantization")
            quantization = (f", {how.get('method')} {how.get('weight_type')} quantization, per channel: {how.get('per_channel')}, "
                            f"reduce range: {how.get('reduce_range')}{_activations(how)}") if isinstance(how, dict) else ""
            console.print(f"  {name}: {graph.get('precision')}, {graph.get('bytes', 0) / 1e6:.2f} MB{quantization}",
                          markup=False, highlight=False)
        if not onnx["current"]:
            console.print("  [yellow]warning[/]: the ONNX graphs were exported from other weights than model.safetensors: "
                          f"export again (textsift export {info['path']} --format onnx).", highlight=False)
    training = info["training"]
    if training:
        console.print(
            f"trained {training.get('epochs')} epochs ({training.get('steps')} steps), best epoch {training.get('best_epoch')}: "
            f"{training.get('stop_reason')}", markup=False, highlight=False,
        )
    if info["calibration"]:
        cal = info["calibration"]
        console.print(f"temperature scaling: T={cal['temperature']:.3f}, fitted on {cal['fitted_on']} "
                      f"(ECE {cal['ece_before']:.4f} -> {cal['ece_after']:.4f})", markup=False, highlight=False)
    for key, value in info["metrics"].items():
        if "/per_label/" not in key:
            console.print(f"  {key} = {value:.4f}", markup=False, highlight=False)
    console.print(f"versions: {json.dumps(info['versions'])}", markup=False, highlight=False)
    console.print(f"git: {json.dumps(info['git'])}  created: {info['created']}", markup=False, highlight=False)

"""Temperature scaling on the emotion benchmark models: test ECE before and after, test accuracy unchanged.

Usage: python benchmarks/calibration.py [--models bag cnn] [--repeats 3]

Each model trains with its default settings on ../shared/datasets/emotion/train.jsonl (textsift holds out
a 10% stratified validation split, as in bag_vs_peers.py) with ``trainer.calibration: temperature``: the
temperature is fitted on that validation split after training. The test set (test.jsonl, 2000 examples)
is scored twice from the same logits: softmax(logits) and softmax(logits / T). ECE: 15 equal-width bins
of top-label confidence. Figures are means over --repeats seeds.
Results go to benchmarks/results/calibration.json and the marked section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from _markdown import write_section  # noqa: E402  (benchmarks/ is on sys.path when a script runs)

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "datasets" / "emotion"


def run(model: str, seed: int) -> dict:
    import textsift
    from textsift.config import load_config
    from textsift.data.loading import read_source
    from textsift.evaluation.metrics import expected_calibration_error, probability_metrics, softmax

    config = load_config(base={
        "seed": seed,
        "data": {"train": str(DATA / "train.jsonl")},
        "model": {"type": model},
        "trainer": {"calibration": "temperature", "num_threads": 2},
    })
    t = time.perf_counter()
    result = textsift.train(config)
    train_s = time.perf_counter() - t
    predictor = result.predictor
    test = read_source(str(DATA / "test.jsonl"), config.data.reader)  # type: ignore[arg-type]
    y = np.array([predictor.label_names.index(ex.label) for ex in test.examples])
    logits = predictor.logits(test.examples)
    before, after = softmax(logits), softmax(logits, predictor.temperature)
    raw, scaled = probability_metrics(before, y, "test"), probability_metrics(after, y, "test")
    return {
        "model": model, "seed": seed, "temperature": predictor.temperature, "train_s": train_s,
        "accuracy_before": float(np.mean(before.argmax(1) == y)), "accuracy_after": float(np.mean(after.argmax(1) == y)),
        "labels_unchanged": bool((before.argmax(1) == after.argmax(1)).all()),
        "ece_before": expected_calibration_error(before, y), "ece_after": expected_calibration_error(after, y),
        "nll_before": raw["test/nll"], "nll_after": scaled["test/nll"],
        "brier_before": raw["test/brier"], "brier_after": scaled["test/brier"],
        "val_ece_before": predictor.calibration.ece_before, "val_ece_after": predictor.calibration.ece_after,  # type: ignore[union-attr]
    }


def section(rows: list[dict], models: list[str], repeats: int) -> str:
    lines = [
        "<!-- calibration:start -->",
        "### Temperature scaling on emotion: test ECE before and after",
        "",
        f"Command: `python benchmarks/calibration.py --models {' '.join(models)} --repeats {repeats}`  ",
        f"Machine: {platform.machine()}, 2 CPU threads, Python {platform.python_version()}; measured {time.strftime('%Y-%m-%d')}. "
        f"Mean of {repeats} seeds. Temperature fitted on the 10% validation split (NLL), test set: emotion test.jsonl (2000).",
        "",
        "| model | temperature | test accuracy before | test accuracy after | test ECE before | test ECE after | test NLL before | test NLL after | labels unchanged |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for model in models:
        rs = [r for r in rows if r["model"] == model]
        m = {k: float(np.mean([r[k] for r in rs])) for k in rs[0] if isinstance(rs[0][k], float)}
        lines.append(
            f"| {model} | {m['temperature']:.3f} | {m['accuracy_before']:.4f} | {m['accuracy_after']:.4f} | "
            f"{m['ece_before']:.4f} | **{m['ece_after']:.4f}** | {m['nll_before']:.4f} | {m['nll_after']:.4f} | "
            f"{'yes' if all(r['labels_unchanged'] for r in rs) else 'NO'} |"
        )
    lines += [
        "",
        "Target (issue #4): temperature scaling lowers test ECE while test accuracy is unchanged.",
        "<!-- calibration:end -->",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["bag", "cnn"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    import logging

    logging.basicConfig(level=logging.WARNING)
    rows = []
    for model in args.models:
        for seed in range(args.repeats):
            r = run(model, seed)
            print(json.dumps(r), flush=True)
            rows.append(r)
    text = section(rows, args.models, args.repeats)
    print(text)
    if args.no_write:
        return
    out = ROOT / "benchmarks" / "results" / "calibration.json"
    out.write_text(json.dumps({"command": f"python benchmarks/calibration.py --models {' '.join(args.models)} --repeats {args.repeats}",
                               "rows": rows}, indent=1))
    write_section("calibration", text)


if __name__ == "__main__":
    main()

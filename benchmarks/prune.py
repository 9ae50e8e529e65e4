"""Structured pruning of the fine-tuned MiniLM on emotion: half of its attention heads and FFN neurons removed
(Michel et al. 2019 importance), then a brief fine-tune distilled from the unpruned model, beside the unpruned model.

Usage: python benchmarks/prune.py MODEL_DIR [--heads 0.5] [--ffn 0.5] [--finetune N] [--epochs 1] [--no-write]

The importance scores use 2,000 training texts; the fine-tune runs ``--epochs`` over the first ``--finetune``
training texts (a subsample, to bound the CPU time) on the labels mixed with the unpruned model's soft labels
(alpha 0.5, T=2). Columns: emotion test accuracy and macro-F1, parameters, size on disk, CPU examples/s (textsift
torch runtime, batch 32, 2 threads, the 2,000 test texts, whole predict call). Results:
benchmarks/results/prune.json and the marked section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import shlex
import shutil
import sys
import time
from pathlib import Path

from _markdown import write_section  # noqa: E402  (benchmarks/ is on sys.path when a script runs)
from distill import THREADS, measure  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "benchmarks" / ".work" / "prune"
RESULT = ROOT / "benchmarks" / "results" / "prune.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--heads", type=float, default=0.5)
    parser.add_argument("--ffn", type=float, default=0.5)
    parser.add_argument("--finetune", type=int, default=4000, help="Training texts of the fine-tune (the first N).")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--note", default="", help="How the model was trained (shown in BENCHMARKS.md).")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    import torch

    from textsift.compression.prune import prune
    from textsift.data.example import Dataset
    from textsift.data.loading import load_splits
    from textsift.modeldir import find_model_dir, load_config_from

    torch.set_num_threads(THREADS)
    model_dir = find_model_dir(args.model_dir).resolve()
    load = open("/proc/loadavg").read().split()[0]
    unpruned = measure(model_dir, None)
    print("unpruned", json.dumps(unpruned), flush=True)
    splits = load_splits(load_config_from(model_dir))
    splits = dataclasses.replace(splits, train=Dataset(splits.train.name, splits.train.examples[: args.finetune]))
    out = WORK / "pruned"
    if out.exists():
        shutil.rmtree(out)
    start = time.perf_counter()
    result = prune(model_dir, out, heads=args.heads, ffn=args.ffn, distill=True, report=False, splits=splits,
                   overrides=[f"trainer.epochs={args.epochs}", f"trainer.num_threads={THREADS}",
                              f"distill.cache_dir={WORK / 'teacher_cache'}"])
    seconds = time.perf_counter() - start
    pruned = measure(result.model_dir, seconds)
    pruned["pruned"] = json.loads((result.model_dir / "encoder" / "config.json").read_text())["textsift_pruned"]
    print("pruned", json.dumps(pruned), flush=True)
    record = {"measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "model": args.note or str(model_dir),
              "heads": args.heads, "ffn": args.ffn, "finetune": args.finetune, "epochs": args.epochs, "load": load,
              "load_end": open("/proc/loadavg").read().split()[0], "unpruned": unpruned, "pruned": pruned}
    ratio = pruned["examples_per_s"] / unpruned["examples_per_s"]
    loss = 100 * (unpruned["accuracy"] - pruned["accuracy"])
    ok = ratio >= 1.3 and loss <= 1.0
    command = "python " + shlex.join(["benchmarks/prune.py", *sys.argv[1:]])
    lines = [
        "<!-- prune:start -->",
        "### Structured pruning: MiniLM on emotion with half of its heads and FFN neurons removed, briefly fine-tuned",
        "",
        f"Command: `{command}`  ",
        f"Machine: {platform.machine()}, {THREADS} threads, shared with other jobs (load {load} at the start, "
        f"{record['load_end']} at the end: speeds are noisy); measured {record['measured']}. Model: {record['model']}. "
        f"Importance: Michel et al. 2019 gradient scores on 2,000 training texts; removed {args.heads:.0%} of all heads "
        f"and {args.ffn:.0%} of all FFN neurons (least important first across layers; kept per layer: heads "
        f"{pruned['pruned']['heads']}, FFN {pruned['pruned']['ffn']}); fine-tune: {args.epochs} epoch(s) on the first "
        f"{args.finetune:,} training texts, labels mixed with the unpruned model's soft labels (alpha 0.5, T=2), "
        f"{seconds:.0f} s with scoring and pruning.",
        "",
        "| model | accuracy | macro-F1 | parameters | size MB | examples/s |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in (("unpruned", unpruned), ("pruned + fine-tuned", pruned)):
        lines.append(f"| {name} | {r['accuracy']:.4f} | {r['macro_f1']:.4f} | {r['parameters']:,} | {r['size_bytes'] / 1e6:.1f} | "
                     f"{r['examples_per_s']:.0f} |")
    lines += ["", f"Throughput {ratio:.2f}x the unpruned model at {loss:+.2f} points of accuracy lost (target >= 1.3x at "
              f"<= 1 point: {'met' if ok else 'NOT met'}).", "<!-- prune:end -->"]
    section = "\n".join(lines)
    print(section)
    if not args.no_write:
        RESULT.parent.mkdir(exist_ok=True)
        RESULT.write_text(json.dumps(record, indent=1))
        write_section("prune", section)


if __name__ == "__main__":
    main()

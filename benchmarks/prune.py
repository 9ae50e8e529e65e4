"""Structured pruning of the fine-tuned MiniLM on emotion: half of its attention heads and FFN neurons removed
(Michel et al. 2019 importance), then a brief fine-tune distilled from the unpruned model, beside the unpruned model.

Usage: python benchmarks/prune.py MODEL_DIR [--heads 0.5] [--ffn 0.5] [--finetune N] [--epochs 2] [--no-write]
       python benchmarks/prune.py MODEL_DIR --remeasure [--rounds 3]

The importance scores use 2,000 training texts; the fine-tune runs ``--epochs`` over the training texts (all of
them by default; ``--finetune N``: the first N, to bound the CPU time) on the labels mixed with the unpruned
model's soft labels (alpha 0.5, T=2). Columns: emotion test accuracy and macro-F1, parameters, size on disk, CPU
examples/s (textsift torch runtime, batch 32, 2 threads, the 2,000 test texts, whole predict call).

The speeds are taken after the fine-tune, the two models in turn for ``--rounds`` rounds (the median of each), so
that both see the same load; ``--remeasure`` trains nothing and takes them again for the recorded run. Results:
benchmarks/results/prune.json and the marked section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import shlex
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from _markdown import write_section  # noqa: E402  (benchmarks/ is on sys.path when a script runs)
from distill import THREADS, measure  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "benchmarks" / ".work" / "prune"
RESULT = ROOT / "benchmarks" / "results" / "prune.json"


def loadavg() -> str:
    return open("/proc/loadavg").read().split()[0]


def measure_both(unpruned_dir: Path, pruned_dir: Path, seconds: float | None, rounds: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Accuracy and the rest from one measurement of each; examples/s the median of ``rounds`` taken in turn."""
    runs: dict[str, list[dict[str, Any]]] = {"unpruned": [], "pruned": []}
    for _ in range(rounds):
        runs["unpruned"].append(measure(unpruned_dir, None))
        runs["pruned"].append(measure(pruned_dir, seconds))
        print({k: round(v[-1]["examples_per_s"]) for k, v in runs.items()}, flush=True)
    out = []
    for name in ("unpruned", "pruned"):
        record = dict(runs[name][0])
        record["examples_per_s_rounds"] = [r["examples_per_s"] for r in runs[name]]
        record["examples_per_s"] = statistics.median(record["examples_per_s_rounds"])
        out.append(record)
    return out[0], out[1]


def markdown(record: dict[str, Any]) -> str:
    unpruned, pruned = record["unpruned"], record["pruned"]
    ratio = pruned["examples_per_s"] / unpruned["examples_per_s"]
    loss = 100 * (unpruned["accuracy"] - pruned["accuracy"])
    ok = ratio >= 1.3 and loss <= 1.0
    rounds = len(pruned.get("examples_per_s_rounds", [0]))
    commands = f"`{record['command']}`" + (f"; speeds again: `{record['remeasure_command']}`" if record.get("remeasured") else "")
    lines = [
        "<!-- prune:start -->",
        "### Structured pruning: MiniLM on emotion with half of its heads and FFN neurons removed, then fine-tuned",
        "",
        f"Command{'s' if record.get('remeasured') else ''}: {commands}  ",
        f"Machine: {platform.machine()}, {THREADS} threads, shared with other jobs (load {record['load']} at the start, "
        f"{record['load_end']} at the end: speeds are noisy); trained {record['measured']}"
        + (f", speeds measured again {record['remeasured']}" if record.get("remeasured") else "") + f". Model: {record['model']}. "
        f"Importance: Michel et al. 2019 gradient scores on 2,000 training texts; removed {record['heads']:.0%} of all heads "
        f"and {record['ffn']:.0%} of all FFN neurons (least important first across layers; kept per layer: heads "
        f"{pruned['pruned']['heads']}, FFN {pruned['pruned']['ffn']}); fine-tune: {record['epochs']} epoch(s) on "
        f"{'all ' if record.get('finetune_all') else 'the first '}{record['finetune']:,} training texts, labels mixed with "
        f"the unpruned model's soft labels (alpha 0.5, T=2), {pruned['train_s']:.0f} s with scoring and pruning. "
        + (f"Examples/s: the median of {rounds} measurements of each model, taken in turn." if rounds > 1 else ""),
        "",
        "| model | accuracy | macro-F1 | parameters | size MB | examples/s |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in (("unpruned", unpruned), ("pruned + fine-tuned", pruned)):
        speed = f"{r['examples_per_s']:.0f}" + (" (starved: not valid)" if record.get("speeds_invalid") else "")
        lines.append(f"| {name} | {r['accuracy']:.4f} | {r['macro_f1']:.4f} | {r['parameters']:,} | {r['size_bytes'] / 1e6:.1f} | {speed} |")
    if record.get("speeds_invalid"):  # accuracy stands; the speeds of that run do not
        lines += ["", f"Accuracy {-loss:+.2f} points against the unpruned model (target: at most 1 point lost: met). "
                  f"Throughput NOT measured validly: {record['speeds_invalid']} Until `--remeasure` runs on a quiet "
                  "machine, the last valid ratio is the previous run's (same 50%/50% pruning, shapes within a few units): "
                  f"{record['previous_ratio']}.", "<!-- prune:end -->"]
        return "\n".join(lines)
    lines += ["", f"Throughput {ratio:.2f}x the unpruned model at {loss:+.2f} points of accuracy lost (target >= 1.3x at "
              f"<= 1 point: {'met' if ok else 'NOT met'}).", "<!-- prune:end -->"]
    return "\n".join(lines)


def save(record: dict[str, Any], write: bool) -> None:
    section = markdown(record)
    print(section)
    if write:
        RESULT.parent.mkdir(exist_ok=True)
        RESULT.write_text(json.dumps(record, indent=1))
        write_section("prune", section)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--heads", type=float, default=0.5)
    parser.add_argument("--ffn", type=float, default=0.5)
    parser.add_argument("--finetune", type=int, default=None, help="Training texts of the fine-tune (the first N; default: all).")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="Speed measurements of each model, in turn (the median counts).")
    parser.add_argument("--note", default="", help="How the model was trained (shown in BENCHMARKS.md).")
    parser.add_argument("--remeasure", action="store_true",
                        help="Train nothing: measure the recorded run's two models again and rewrite the section.")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    import torch

    from textsift.modeldir import find_model_dir

    torch.set_num_threads(THREADS)
    model_dir = find_model_dir(args.model_dir).resolve()
    command = "python " + shlex.join(["benchmarks/prune.py", *sys.argv[1:]])
    if args.remeasure:
        record = json.loads(RESULT.read_text())
        record["load"] = loadavg()
        pruned_dir = Path(record["pruned"]["model_dir"])
        unpruned, pruned = measure_both(model_dir, pruned_dir, record["pruned"]["train_s"], args.rounds)
        pruned["pruned"] = record["pruned"]["pruned"]
        record.pop("speeds_invalid", None)
        record.update({"unpruned": unpruned, "pruned": pruned, "load_end": loadavg(), "remeasure_command": command,
                       "remeasured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())})
        save(record, not args.no_write)
        return

    from textsift.compression.prune import prune
    from textsift.data.example import Dataset
    from textsift.data.loading import load_splits
    from textsift.modeldir import load_config_from

    load = loadavg()
    splits = load_splits(load_config_from(model_dir))
    if args.finetune is not None:
        splits = dataclasses.replace(splits, train=Dataset(splits.train.name, splits.train.examples[: args.finetune]))
    out = WORK / "pruned"
    if out.exists():
        shutil.rmtree(out)
    start = time.perf_counter()
    result = prune(model_dir, out, heads=args.heads, ffn=args.ffn, distill=True, report=False, splits=splits,
                   overrides=[f"trainer.epochs={args.epochs}", f"trainer.num_threads={THREADS}",
                              f"distill.cache_dir={WORK / 'teacher_cache'}"])
    seconds = time.perf_counter() - start
    unpruned, pruned = measure_both(model_dir, result.model_dir, seconds, args.rounds)
    pruned["pruned"] = json.loads((result.model_dir / "encoder" / "config.json").read_text())["textsift_pruned"]
    record = {"measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "model": args.note or str(model_dir),
              "command": command, "heads": args.heads, "ffn": args.ffn, "finetune": len(splits.train),
              "finetune_all": args.finetune is None, "epochs": args.epochs, "load": load, "load_end": loadavg(),
              "unpruned": unpruned, "pruned": pruned}
    save(record, not args.no_write)


if __name__ == "__main__":
    main()

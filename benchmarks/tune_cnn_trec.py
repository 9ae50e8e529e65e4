"""20 TPE trials of the CNN on TREC: does the search improve test accuracy over the default config?

Usage: python benchmarks/tune_cnn_trec.py [--trials 20]

Baseline: examples/trec/cnn.yaml (the CNN's default settings), trained once. Search: textsift tune with
examples/trec/space.yaml (learning rate, weight decay, batch size, warmup, dropout, channels, kernel
size, embedding size, activation), TPE sampler (seed 0), median pruner, trials selected by validation
accuracy (10% of train, stratified); the test accuracy reported is that of the trial the search picked.
Results go to benchmarks/results/tune_cnn_trec.json and the marked section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
import time
from pathlib import Path

from _markdown import write_section  # noqa: E402  (benchmarks/ is on sys.path when a script runs)

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "examples" / "trec" / "cnn.yaml"
SPACE = ROOT / "examples" / "trec" / "space.yaml"


def main() -> None:
    import logging

    import textsift
    from textsift.config import load_builtins, load_config
    from textsift.tuning.space import SearchSpace
    from textsift.tuning.study import run_study

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    load_builtins()
    tmp = Path(tempfile.mkdtemp(prefix="tune-trec-"))
    try:
        t = time.perf_counter()
        base = textsift.train(load_config(CONFIG, overrides=["trainer.num_threads=2"]), tmp / "baseline", report=False)
        base_s = time.perf_counter() - t
        t = time.perf_counter()
        result = run_study(CONFIG, SearchSpace.load(SPACE), trials=args.trials, study_name="trec-cnn", output=tmp / "study",
                           overrides=["trainer.num_threads=2"], sampler="tpe", pruner="median", seed=0)
        tune_s = time.perf_counter() - t
        best = result.study.best_trial
        row = {
            "baseline_val_accuracy": base.state.best_metric, "baseline_test_accuracy": base.metrics["test/accuracy"],
            "baseline_s": base_s, "tuned_val_accuracy": best.value, "tuned_test_accuracy": best.user_attrs["test/accuracy"],
            "best_params": best.params, "trials": result.counts, "tune_s": tune_s, "best_trial": best.number,
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(row, indent=1))
    command = f"python benchmarks/tune_cnn_trec.py --trials {args.trials}"
    improved = row["tuned_test_accuracy"] > row["baseline_test_accuracy"]
    params = ", ".join(f"{k.split('.')[-1]}={v:.3g}" if isinstance(v, float) else f"{k.split('.')[-1]}={v}" for k, v in row["best_params"].items())
    text = "\n".join([
        "<!-- tune_cnn_trec:start -->",
        "### Hyperparameter search: 20 TPE trials of the CNN on TREC",
        "",
        f"Command: `{command}`  ",
        f"Machine: {platform.machine()}, 2 CPU threads, Python {platform.python_version()}; measured {time.strftime('%Y-%m-%d')}. "
        "Space: examples/trec/space.yaml; selection by validation accuracy (10% of train), median pruning.",
        "",
        "| | validation accuracy | test accuracy | wall s |",
        "|---|---|---|---|",
        f"| default config (examples/trec/cnn.yaml) | {row['baseline_val_accuracy']:.4f} | {row['baseline_test_accuracy']:.4f} | {row['baseline_s']:.0f} |",
        f"| best of {args.trials} TPE trials (trial {row['best_trial']}) | {row['tuned_val_accuracy']:.4f} | **{row['tuned_test_accuracy']:.4f}** | {row['tune_s']:.0f} (all trials) |",
        "",
        f"Trials: {', '.join(f'{n} {s}' for s, n in row['trials'].items())}. Best: {params}.",
        f"Target (issue #7): the search improves test accuracy over the default config: {'met' if improved else 'NOT met'}.",
        "<!-- tune_cnn_trec:end -->",
    ])
    print(text)
    if args.no_write:
        return
    (ROOT / "benchmarks" / "results" / "tune_cnn_trec.json").write_text(json.dumps({"command": command, **row}, indent=1, default=str))
    write_section("tune_cnn_trec", text)


if __name__ == "__main__":
    main()

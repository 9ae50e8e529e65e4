"""Re-running the sort-detection workflow: every step from the cache, in under 10 seconds.

Usage: python benchmarks/workflow_cache.py [--repeats 3]

Runs ``textsift run examples/sort_detection/workflow.yaml`` as a fresh process on an empty home
directory (first run: every step computed, MLflow and TensorBoard tracking on), then again with new
execution ids; wall time of the whole command (process start, imports, fingerprints, tracking
included). Results go to benchmarks/results/workflow_cache.json and the marked section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _markdown import write_section  # noqa: E402  (benchmarks/ is on sys.path when a script runs)

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / "examples" / "sort_detection" / "workflow.yaml"


def run(home: Path, execution_id: str) -> tuple[float, dict]:
    t = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "textsift", "-q", "run", str(WORKFLOW), "-e", execution_id, "--set", f"home={home}"],
        capture_output=True, text=True,
    )
    seconds = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(proc.stderr)
    record = json.loads((home / "executions" / execution_id / "execution.json").read_text())
    return seconds, record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="textsift-wf-"))
    try:
        first, record = run(home, "first")
        assert not any(s["cache_hit"] for s in record["steps"].values())
        reruns = []
        for i in range(args.repeats):
            seconds, rec = run(home, f"rerun-{i}")
            hits = [s["cache_hit"] for s in rec["steps"].values()]
            assert all(hits), rec["steps"]
            reruns.append(seconds)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    steps = len(record["steps"])
    median = statistics.median(reruns)
    text = "\n".join([
        "<!-- workflow_cache:start -->",
        "### Workflow re-run from the cache (sort detection)",
        "",
        f"Command: `python benchmarks/workflow_cache.py --repeats {args.repeats}`  ",
        f"Machine: {platform.machine()}, 2 CPU cores, Python {platform.python_version()}; measured {time.strftime('%Y-%m-%d')}. "
        "Wall time of the whole `textsift run examples/sort_detection/workflow.yaml` process (imports, fingerprints, "
        "MLflow + TensorBoard tracking included).",
        "",
        "| run | steps computed | steps from cache | wall s |",
        "|---|---|---|---|",
        f"| first (empty cache) | {steps} | 0 | {first:.2f} |",
        f"| re-run (median of {args.repeats}) | 0 | {steps} | **{median:.2f}** |",
        "",
        f"Target (issue #5): a re-run after a first run finishes in under 10 seconds, all steps from the cache: "
        f"{'met' if median < 10 else 'NOT met'} ({median:.2f} s; runs: {', '.join(f'{s:.2f}' for s in reruns)}).",
        "<!-- workflow_cache:end -->",
    ])
    print(text)
    if args.no_write:
        return
    (ROOT / "benchmarks" / "results" / "workflow_cache.json").write_text(json.dumps(
        {"first_s": first, "reruns_s": reruns, "steps": steps, "command": f"python benchmarks/workflow_cache.py --repeats {args.repeats}"}, indent=1))
    write_section("workflow_cache", text)


if __name__ == "__main__":
    main()

"""Where a GPU fine-tuning step's time goes: textsift's and Trainer's, on one cell of throughput.py.

Usage: python benchmarks/gpu/profile_step.py --tokenizer DIR --data DIR --out FILE [--kind emotion --batch 256]
       [--smoke]

Written after the first GPU run (BENCHMARKS.md, "GPU figures"): on emotion's short texts of varying length textsift
trained 3.5x slower than Trainer on the same GPU, while on rows of one length (packed128) it was 1.5x faster; so
something costs per batch shape. This script times textsift's row under SDPA backend choices (all on; cuDNN
attention off; flash and cuDNN off) beside Trainer's, then profiles ten steps of each (``torch.profiler``, CPU and
CUDA), and writes the tables to ``--out``.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import throughput as T  # noqa: E402


@contextlib.contextmanager
def sdpa(cudnn: bool = True, flash: bool = True):
    before = (torch.backends.cuda.cudnn_sdp_enabled(), torch.backends.cuda.flash_sdp_enabled())
    torch.backends.cuda.enable_cudnn_sdp(cudnn)
    torch.backends.cuda.enable_flash_sdp(flash)
    try:
        yield
    finally:
        torch.backends.cuda.enable_cudnn_sdp(before[0])
        torch.backends.cuda.enable_flash_sdp(before[1])


def profiled(fn, steps: int) -> tuple[dict, str]:
    """Run ``fn(start, stop)`` whose training calls start() at step WARMUP and stop() ten steps later."""
    activities = [torch.profiler.ProfilerActivity.CPU]
    if torch.cuda.is_available():
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    prof = torch.profiler.profile(activities=activities)
    row = fn(prof.start, prof.stop)
    tables = []
    for key in ("self_cpu_time_total", "self_cuda_time_total" if torch.cuda.is_available() else "cpu_time_total"):
        tables.append(f"-- sorted by {key}\n" + prof.key_averages().table(sort_by=key, row_limit=25, max_name_column_width=70))
    return row, "\n".join(tables)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokenizer", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--kind", default="emotion")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    device = "cpu" if args.smoke else "cuda"
    tmp = Path(tempfile.mkdtemp())
    encoder, params = T.make_encoder(args.tokenizer, tmp / "encoder", args.smoke)
    batch, steps = (8, T.WARMUP + 12) if args.smoke else (args.batch, args.steps)
    rows, mean_tokens = T.make_rows(args.data, args.kind, batch * steps, args.tokenizer)
    report = [f"{args.kind} batch {batch}, {steps} steps, mean tokens {mean_tokens:.1f}, torch {torch.__version__}"]

    def keep(name: str, row: dict) -> None:
        line = f"{name}: {row['examples_per_s']:.1f} examples/s ({row['seconds']:.2f} s for {steps - T.WARMUP} steps)"
        report.append(line)
        print(line, flush=True)
        args.out.write_text("\n".join(report) + "\n")

    work = lambda: Path(tempfile.mkdtemp(dir=tmp))  # noqa: E731
    for name, cudnn, flash in (("textsift", True, True), ("textsift, cuDNN attention off", False, True),
                               ("textsift, cuDNN and flash attention off", False, False)):
        with sdpa(cudnn, flash):
            keep(name, T.run_textsift(encoder, rows, batch, steps, work(), compile=False, device=device))
    keep("trainer", T.run_trainer(encoder, rows, batch, steps, work(), device=device))

    hooks: dict = {}
    T.STEP_HOOKS = hooks
    for name, fn in (("textsift", lambda: T.run_textsift(encoder, rows, batch, steps, work(), compile=False, device=device)),
                     ("trainer", lambda: T.run_trainer(encoder, rows, batch, steps, work(), device=device))):
        def run(start, stop, fn=fn):
            hooks.clear()
            hooks.update({T.WARMUP: start, T.WARMUP + 10: stop})
            return fn()
        row, tables = profiled(run, steps)
        report.append(f"\n==== {name} profiled (steps {T.WARMUP}-{T.WARMUP + 10}; {row['examples_per_s']:.1f} examples/s "
                      f"with the profiler on)\n{tables}")
        args.out.write_text("\n".join(report) + "\n")
    print("\n".join(report[-2:]))


if __name__ == "__main__":
    main()

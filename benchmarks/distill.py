"""Distillation on emotion: students of the fine-tuned MiniLM teacher, each beside the same architecture trained on
the labels alone, in one run.

Usage: python benchmarks/distill.py TEACHER_DIR [--only NAMES] [--unlabeled N] [--copies N] [--student-train N]
       [--student-epochs N] [--seq-epochs N] [--no-write]

Rows: the teacher (6 layers); a 3-layer transformer initialised from teacher layers 0, 2, 4 (DistilBERT-style)
trained on the teacher's soft labels (KL at T=2, alpha 0.5 with the labels) and the same 3-layer init trained on the
labels alone (both on the first ``--student-train`` training texts, a subsample that bounds the CPU time);
a CNN and a bag student trained on the teacher's soft labels over the training texts, N unlabeled
goemotions Reddit comments (``data.unlabeled``) and augmented copies of the training texts (masking and n-gram
sampling, Tang et al. 2019), beside the CNN and bag trained on the labels alone (same settings, same epochs).
Columns: emotion test accuracy and macro-F1, parameters, size on disk, CPU examples/s (textsift torch runtime,
batch 32, 2 threads, whole predict call on the 2,000 test texts). Each row is kept in
benchmarks/results/distill.json as it finishes; ``--only`` reruns some rows and keeps the others.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from _markdown import write_section  # noqa: E402  (benchmarks/ is on sys.path when a script runs)

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "datasets"
WORK = ROOT / "benchmarks" / ".work" / "distill"
RESULT = ROOT / "benchmarks" / "results" / "distill.json"
THREADS = 2
BATCH = 32
ROWS = ("teacher", "3-layer distilled", "3-layer labels only", "cnn distilled", "cnn labels only", "bag distilled",
        "bag labels only")


def emotion(split: str) -> Path:
    return DATA / "emotion" / f"{split}.jsonl"


def write_unlabeled(n: int) -> Path:
    """The first ``n`` goemotions training comments, texts only."""
    path = WORK / f"goemotions_unlabeled_{n}.jsonl"
    if not path.is_file():
        WORK.mkdir(parents=True, exist_ok=True)
        rows = []
        with (DATA / "goemotions" / "train.jsonl").open(encoding="utf-8") as f:
            for line in f:
                text = json.loads(line)["text"].strip()
                if text:
                    rows.append(json.dumps({"text": text}))
                if len(rows) >= n:
                    break
        path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def first_rows(path: Path, n: int) -> Path:
    out = WORK / f"{path.stem}_first{n}.jsonl"
    if not out.is_file():
        WORK.mkdir(parents=True, exist_ok=True)
        with path.open(encoding="utf-8") as f:
            out.write_text("".join(line for _, line in zip(range(n), f)), encoding="utf-8")
    return out


def measure(model_dir: Path, seconds: float | None) -> dict:
    """Accuracy, macro-F1, parameters, size and examples/s of a model directory on emotion test."""
    import torch

    import textsift
    from textsift.evaluation.metrics import classification_metrics

    torch.set_num_threads(THREADS)
    rows = [json.loads(line) for line in emotion("test").open(encoding="utf-8")]
    texts, gold = [r["text"] for r in rows], [r["label"] for r in rows]
    predictor = textsift.load(model_dir, runtime="torch", num_threads=THREADS)
    predictor.predict(texts[:BATCH], batch_size=BATCH)  # warm up
    start = time.perf_counter()
    predicted = list(predictor.predict(texts, batch_size=BATCH).labels)
    rate = len(texts) / (time.perf_counter() - start)
    names = predictor.label_names
    metrics = classification_metrics(np.array([names.index(g) for g in gold]), np.array([names.index(p) for p in predicted]),
                                     names, "test")
    return {"accuracy": metrics["test/accuracy"], "macro_f1": metrics["test/macro_f1"],
            "parameters": int(sum(p.numel() for p in predictor.model.parameters())),
            "size_bytes": (model_dir / "model.safetensors").stat().st_size, "examples_per_s": rate,
            "train_s": seconds, "model_dir": str(model_dir)}


def base_config(model: dict, epochs: int, extra: dict | None = None) -> dict:
    raw = {"data": {"train": str(emotion("train")), "validation": str(emotion("validation")), "test": str(emotion("test"))},
           "model": model, "trainer": {"epochs": epochs, "num_threads": THREADS}}
    for key, value in (extra or {}).items():
        raw[key] = value
    return raw


def run_row(name: str, teacher: Path, args: argparse.Namespace) -> dict:
    import textsift
    from textsift.compression.distill import distill
    from textsift.config import resolve

    out = WORK / name.replace(" ", "_")
    if out.exists():
        import shutil

        shutil.rmtree(out)
    cache = {"cache_dir": str(WORK / "teacher_cache"), "teacher_runtime": "onnx"}  # soft labels from the fp32 graph
    teacher_cfg = textsift.load(teacher, runtime="torch").full_config()
    transformer = {"type": "transformer", "pretrained": getattr(teacher_cfg.model, "pretrained", ""),
                   "pooling": getattr(teacher_cfg.model, "pooling", "mean")}
    tf_trainer = {"epochs": args.student_epochs, "num_threads": THREADS, "batch_size": 32, "early_stopping": None,
                  "optimizer": {"type": "torch.optim:AdamW", "lr": 5e-5, "weight_decay": 0.01},
                  "scheduler": {"type": "linear", "warmup_ratio": 0.1}}
    unlabeled = str(write_unlabeled(args.unlabeled))
    start = time.perf_counter()
    if name == "teacher":
        return measure(teacher, None)
    if name.startswith("3-layer"):
        raw = base_config(transformer, args.student_epochs, {"tokenizer": {"type": "pretrained", "max_length": 128}})
        raw["data"]["train"] = str(first_rows(emotion("train"), args.student_train))
        raw["trainer"] = tf_trainer
        alpha = 0.5 if name == "3-layer distilled" else 0.0  # alpha 0: the labels alone (same init, same loop)
        raw["distill"] = {**cache, "init_from_teacher_layers": [0, 2, 4], "alpha": alpha, "temperature": 2.0}
        result = distill(resolve(raw), teacher, out, report=False)
    else:
        kind = name.split()[0]
        epochs = args.seq_epochs
        if name.endswith("labels only"):
            result = textsift.train(resolve(base_config({"type": kind}, epochs)), out, report=False)
        else:
            raw = base_config({"type": kind}, epochs)
            raw["data"]["unlabeled"] = unlabeled
            raw["distill"] = {**cache, "alpha": 0.5, "temperature": 2.0, "augment": {"copies": args.copies}}
            result = distill(resolve(raw), teacher, out, report=False)
    return measure(result.model_dir, time.perf_counter() - start)


def markdown(result: dict, command: str) -> str:
    rows = result["rows"]
    teacher = rows.get("teacher")
    shown = "`; `".join(dict.fromkeys([r.get("command") or command for r in rows.values()]))  # the runs that trained rows
    if result.get("remeasured"):
        shown += f"`; speeds again: `{result['remeasure_command']}"
    lines = [
        "<!-- distill:start -->",
        "### Distillation on emotion: students of the fine-tuned MiniLM (teacher), each beside its architecture on labels alone",
        "",
        f"Commands: `{shown}`  ",
        f"Machine: {platform.machine()}, {THREADS} threads, shared with other jobs (speeds are noisy); measured "
        f"{result['measured']}. Teacher: {result['teacher_note']}. Students: 3-layer transformers from teacher layers "
        f"0, 2, 4, {result['student_epochs']} epoch(s) on the first {result['student_train']:,} training texts at lr 5e-5 (distilled: KL at T=2, alpha 0.5; labels only: alpha 0, the "
        f"same init and loop); CNN and bag with their default settings, {result['seq_epochs']} epochs (distilled: soft "
        f"labels on the 16,000 training texts + {result['unlabeled']:,} goemotions comments + {result['copies']} "
        "augmented copies of each training text, alpha 0.5, T=2; soft labels from the teacher's exported fp32 graph). Examples/s: textsift torch runtime, batch 32, the "
        "2,000 test texts, whole predict call" + (f"; all rows measured again one after another at {result['remeasured']} "
        "(a row's speed taken right after its training varied with the load)." if result.get("remeasured") else "."),
        "",
        "| model | accuracy | macro-F1 | parameters | size MB | examples/s | x teacher speed | train s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in ROWS:
        r = rows.get(name)
        if r is None:
            continue
        speed = r["examples_per_s"] / teacher["examples_per_s"] if teacher else float("nan")
        train_s = f"{r['train_s']:.0f}" if r.get("train_s") else "-"
        lines.append(f"| {name} | {r['accuracy']:.4f} | {r['macro_f1']:.4f} | {r['parameters']:,} | {r['size_bytes'] / 1e6:.1f} | "
                     f"{r['examples_per_s']:.0f} | {speed:.1f}x | {train_s} |")
    verdicts = []
    if teacher and "3-layer distilled" in rows:
        s = rows["3-layer distilled"]
        kept, speed = s["accuracy"] / teacher["accuracy"], s["examples_per_s"] / teacher["examples_per_s"]
        ok = kept >= 0.97 and speed >= 1.8
        verdicts.append(f"3-layer student: {kept:.1%} of the teacher's accuracy at {speed:.2f}x its throughput "
                        f"(target >= 97% at >= 1.8x: {'met' if ok else 'NOT met'}).")
    if teacher and "cnn distilled" in rows and "cnn labels only" in rows:
        d, plain = rows["cnn distilled"], rows["cnn labels only"]
        gap = teacher["accuracy"] - plain["accuracy"]
        closed = (d["accuracy"] - plain["accuracy"]) / gap if gap > 0 else float("nan")
        speed = d["examples_per_s"] / teacher["examples_per_s"]
        ok = closed >= 0.5 and speed >= 10
        verdicts.append(f"CNN student: closes {closed:.0%} of the accuracy gap between the label-trained CNN and the "
                        f"teacher, at {speed:.1f}x the teacher's throughput (target >= 50% at >= 10x: {'met' if ok else 'NOT met'}).")
    if "bag distilled" in rows and "bag labels only" in rows:
        d, plain = rows["bag distilled"], rows["bag labels only"]
        verdicts.append(f"Bag student: {100 * (d['accuracy'] - plain['accuracy']):+.2f} points of accuracy over the label-trained bag.")
    lines += ["", "  \n".join(verdicts), "<!-- distill:end -->"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("teacher", type=Path)
    parser.add_argument("--only", default=",".join(ROWS), help=f"Comma-separated rows to (re)run: {', '.join(ROWS)}.")
    parser.add_argument("--unlabeled", type=int, default=10000, help="goemotions comments used as unlabeled text.")
    parser.add_argument("--copies", type=int, default=1, help="Augmented copies of each training text.")
    parser.add_argument("--student-train", type=int, default=4000, help="Training texts of the 3-layer rows (the first N).")
    parser.add_argument("--student-epochs", type=int, default=1)
    parser.add_argument("--seq-epochs", type=int, default=3)
    parser.add_argument("--teacher-note", default="", help="How the teacher was trained (shown in BENCHMARKS.md).")
    parser.add_argument("--remeasure", action="store_true",
                        help="Train nothing: measure every recorded row's model again, one after another (speeds taken "
                        "in one pass, under the same load), and rewrite the section.")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    import torch

    from textsift.modeldir import find_model_dir

    torch.set_num_threads(THREADS)
    teacher = find_model_dir(args.teacher).resolve()
    if not (teacher / "model.onnx").is_file():  # the soft labels come from the fp32 graph (faster than torch)
        from textsift.inference.export import export_model_dir

        export_model_dir(teacher, quantize="int8")
    wanted = [r.strip() for r in args.only.split(",") if r.strip()]
    unknown = [r for r in wanted if r not in ROWS]
    if unknown:
        raise SystemExit(f"--only: unknown rows {unknown}; choose from {list(ROWS)}")
    result = json.loads(RESULT.read_text()) if RESULT.is_file() and (not args.no_write or args.remeasure) else {"rows": {}}
    if args.remeasure:
        for name, row in result["rows"].items():
            again = measure(Path(row["model_dir"]), row.get("train_s"))
            print(name, f"{row['examples_per_s']:.0f} -> {again['examples_per_s']:.0f} examples/s", flush=True)
            row.update(again)
        result["remeasured"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        command = "python " + shlex.join(["benchmarks/distill.py", *sys.argv[1:]])
        trained = result.get("command") or "python " + shlex.join([  # the settings rows without a command were trained with
            "benchmarks/distill.py", str(args.teacher), "--unlabeled", str(result["unlabeled"]), "--copies", str(result["copies"]),
            "--student-train", str(result["student_train"]), "--student-epochs", str(result["student_epochs"]),
            "--seq-epochs", str(result["seq_epochs"]), "--teacher-note", result["teacher_note"]])
        for row in result["rows"].values():
            row.setdefault("command", trained)
        result["remeasure_command"] = command
        section = markdown(result, command)
        print(section)
        if not args.no_write:
            RESULT.write_text(json.dumps(result, indent=1))
            write_section("distill", section)
        return
    result.update({"measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "teacher_note": args.teacher_note or str(teacher),
                   "unlabeled": args.unlabeled, "copies": args.copies, "student_epochs": args.student_epochs,
                   "student_train": args.student_train,
                   "seq_epochs": args.seq_epochs})
    command = "python " + shlex.join(["benchmarks/distill.py", *sys.argv[1:]])
    for name in wanted:
        load = open("/proc/loadavg").read().split()[0]
        row = run_row(name, teacher, args)
        row["load_at_start"] = load
        row["command"] = command
        result["rows"][name] = row
        print(name, json.dumps(row), flush=True)
        if not args.no_write:
            RESULT.parent.mkdir(exist_ok=True)
            RESULT.write_text(json.dumps(result, indent=1))
    result["command"] = command
    section = markdown(result, command)
    print(section)
    if not args.no_write:
        RESULT.write_text(json.dumps(result, indent=1))
        write_section("distill", section)


if __name__ == "__main__":
    main()

"""Zero-config `textsift train --train FILE --test FILE` against tuned fastText and TF-IDF + LogisticRegression.

Usage: python benchmarks/zero_config.py [--datasets trec emotion ...]

One run each, same machine, 2 threads. Every dataset of ../shared/datasets that is single-label (sst2 scored
on its validation split). The datasets are split into ones the defaults were developed on (DEV) and ones
only used to confirm them (CONFIRM); the table marks which is which.

* textsift: the whole process as a user waits for it (`textsift train ... -q`, no model named: `--model auto`),
  wall time of the subprocess, accuracy and macro-F1 from the run's metrics.json, the model auto chose.
* fastText (`fasttext-wheel`): its setting tuned as in bag_vs_peers.py (best of epoch 5/10/25 x lr 0.1/0.5/1.0 by
  accuracy on a 10% stratified validation split, wordNgrams 2, shuffled input), then that setting run once as a
  whole process (python start-up, import, reading the JSON Lines, writing its input file, training, predicting
  the test file), timed the same way.
* TF-IDF(word 1-2 grams, sublinear tf) + LogisticRegression(C=10): scikit-learn, in-process, on the same split.

Results go to benchmarks/results/zero_config.json and the marked section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bag_vs_peers as peers  # noqa: E402
from _markdown import write_section  # noqa: E402

ROOT, SHARED = peers.ROOT, peers.SHARED
# the defaults (candidates, linear settings, the cross-validation rule) were chosen looking at these; uci_sentences
# was a confirm set until its run of 2026-11-28 failed, and the cross-validation rule was made with it in view
DEV = ["trec", "emotion", "r8", "sst2", "uci_sentences"]
CONFIRM = ["imdb", "spamassassin"]  # looked at only to confirm, after the defaults were fixed
# bag_vs_peers' datasets plus the two it leaves out; its helpers (split_data, run_fasttext, run_tfidf) read them from its FILES
peers.FILES.update({"spamassassin": ("train.jsonl.gz", "test.jsonl.gz"), "uci_sentences": ("train.jsonl", "test.jsonl")})
FILES = {name: peers.FILES[name] for name in DEV + CONFIRM}
TEXTSIFT = Path(sys.executable).with_name("textsift")

FASTTEXT_SCRIPT = r'''
import json, gzip, random, re, sys
import fasttext
train, test, epoch, lr = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
TOKEN = re.compile(r"\w+|[^\w\s]")
def rows(path):
    with (gzip.open(path, "rt", encoding="utf-8") if path.endswith(".gz") else open(path, encoding="utf-8")) as f:
        return [json.loads(line) for line in f if line.strip()]
def line(r):
    return "__label__" + str(r["label"]).replace(" ", "_") + " " + " ".join(TOKEN.findall(r["text"].lower()))
data = [line(r) for r in rows(train)]
random.Random(0).shuffle(data)
open(sys.argv[5], "w", encoding="utf-8").write("\n".join(data) + "\n")
model = fasttext.train_supervised(sys.argv[5], epoch=epoch, lr=lr, wordNgrams=2, thread=2, verbose=0, seed=0)
gold, pred = [], []
for r in rows(test):
    gold.append(str(r["label"]).replace(" ", "_"))
    pred.append(model.f.predict(" ".join(TOKEN.findall(r["text"].lower())) + "\n", 1, 0.0, "strict")[0][1][len("__label__"):])
print(json.dumps({"gold": gold, "pred": pred}))
'''


def run_textsift(name: str, tmp: Path) -> dict:
    train, test = (SHARED / name / f for f in FILES[name])
    out = tmp / f"textsift-{name}"
    t = time.perf_counter()
    proc = subprocess.run([str(TEXTSIFT), "train", "--train", str(train), "--test", str(test), "-o", str(out), "-q"],
                          capture_output=True, text=True)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"textsift failed on {name}: {proc.stderr[-2000:]}")
    metrics = json.loads((out / "metrics.json").read_text())
    board = json.loads((out / "leaderboard.json").read_text())
    chosen = next(r["candidate"] for r in board["candidates"] if r["chosen"])
    return {"accuracy": metrics["test/accuracy"], "macro_f1": metrics["test/macro_f1"], "wall_s": wall, "chosen": chosen,
            "leaderboard": board["candidates"]}


def run_fasttext(name: str, tmp: Path) -> dict:
    tuned = peers.run_fasttext(name, repeats=1)  # the grid on the validation split picks epoch and lr
    _, _, fit, _, _ = peers.split_data(name)
    fit_file = tmp / f"fit-{name}.jsonl"  # the same training part as the grid saw (the 10% validation held out)
    fit_file.write_text("".join(json.dumps({"text": ex.text, "label": ex.label}) + "\n" for ex in fit.examples))
    script = tmp / "fasttext_whole.py"
    script.write_text(FASTTEXT_SCRIPT)
    test = SHARED / name / FILES[name][1]
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, str(script), str(fit_file), str(test), str(tuned["epoch"]), str(tuned["lr"]),
                           str(tmp / f"ft-{name}.txt")], capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t
    out = json.loads(proc.stdout)
    accuracy = sum(g == p for g, p in zip(out["gold"], out["pred"])) / len(out["gold"])
    return {"accuracy": accuracy, "macro_f1": peers.macro_f1(out["gold"], out["pred"]), "wall_s": wall,
            "epoch": tuned["epoch"], "lr": tuned["lr"]}


def markdown(results: dict, command: str) -> str:
    lines = [
        "<!-- zero_config:start -->",
        "### Zero-config `textsift train` vs tuned fastText vs TF-IDF + LogisticRegression",
        "",
        f"Command: `{command}`  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}; measured "
        f"{time.strftime('%Y-%m-%d')}; one run each. Times: the whole process as the user waits for it (textsift: "
        "`textsift train --train F --test T -q`, reading, choosing, training, report; fastText: its tuned setting as one "
        "process, start-up, reading, training and predicting the test file).",
        "",
        "| dataset | role | textsift acc (auto chose) | fastText acc (epoch, lr) | TF-IDF+LR acc | textsift F1 | fastText F1 "
        "| TF-IDF+LR F1 | textsift s | fastText s | time / fastText | acc - max(fastText, TF-IDF+LR) (points) | target met "
        "| measured |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results["datasets"].items():
        ts, ft, lr = r["textsift"], r["fasttext"], r["tfidf_lr"]
        margin = 100 * (ts["accuracy"] - max(ft["accuracy"], lr["accuracy"]))
        ok = ts["accuracy"] >= ft["accuracy"] and ts["accuracy"] >= lr["accuracy"] - 0.005
        lines.append(
            f"| {name} | {'develop' if name in DEV else 'confirm'} | {ts['accuracy']:.4f} ({ts['chosen']}) "
            f"| {ft['accuracy']:.4f} ({ft['epoch']}, {ft['lr']}) | {lr['accuracy']:.4f} | {ts['macro_f1']:.4f} "
            f"| {ft['macro_f1']:.4f} | {lr['macro_f1']:.4f} | {ts['wall_s']:.1f} | {ft['wall_s']:.1f} "
            f"| {ts['wall_s'] / ft['wall_s']:.2f}x | {margin:+.2f} | {'yes' if ok else 'NO'} | {r.get('measured', '')} |"
        )
    lines += [
        "",
        "Target (issue #12): accuracy >= tuned fastText's and >= TF-IDF+LR's - 0.5 point on every dataset; whole-process time "
        "<= 1.0x fastText's on imdb and <= 2.0x on emotion.",
        f"develop: {', '.join(DEV)} (the candidates, the linear model's settings and the cross-validation rule were chosen on "
        "these; uci_sentences was a confirm set until its run of 2026-11-28 failed, so it no longer counts as held out); "
        f"confirm: {', '.join(CONFIRM)} (run only after the defaults were fixed).",
        "Rows measured on different days (see `measured`) ran on different commits; rerun all with the command above.",
        "<!-- zero_config:end -->",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(FILES), choices=list(FILES))
    parser.add_argument("--no-write", action="store_true", help="Print only; leave BENCHMARKS.md alone.")
    args = parser.parse_args()
    peers.warm_up()
    saved = ROOT / "benchmarks" / "results" / "zero_config.json"
    results: dict = json.loads(saved.read_text()) if saved.is_file() else {"datasets": {}}  # rows not rerun are kept
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for name in args.datasets:
            r = {"textsift": run_textsift(name, tmp), "fasttext": run_fasttext(name, tmp), "tfidf_lr": peers.run_tfidf(name),
                 "measured": time.strftime("%Y-%m-%d %H:%M")}
            results["datasets"][name] = r
            print(name, json.dumps({k: {kk: vv for kk, vv in v.items() if kk not in ("grid", "leaderboard")} if isinstance(v, dict) else v for k, v in r.items()}),
                  flush=True)
    results["datasets"] = {name: results["datasets"][name] for name in FILES if name in results["datasets"]}
    command = "python benchmarks/zero_config.py"
    section = markdown(results, command)
    print(section)
    if not args.no_write:
        out = ROOT / "benchmarks" / "results"
        out.mkdir(exist_ok=True)
        (out / "zero_config.json").write_text(json.dumps(results, indent=1))
        write_section("zero_config", section)


if __name__ == "__main__":
    sys.exit(main())

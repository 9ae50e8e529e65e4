"""textsift debug data: label noise found on planted flips, leakage found on planted copies, time on imdb, and what
it finds in every dataset of ../shared/datasets.

Usage: python benchmarks/debug_data.py [--parts noise models leakage imdb datasets] [--no-write]

- noise: trec, r8 and emotion train files with 5% of labels flipped uniformly to another label (numpy seeds 0-2; emotion 0); the
  whole `debug data` run (every check, 10-fold label noise) on the noisy file; the rows of label_issues are scored
  against the flipped rows (precision, recall) and the ranking score by AUROC. emotion's own labels are noisy, so
  precision against the planted flips understates there.
- models: the same on trec, out-of-sample probabilities from the models textsift trains (bag, linear; 5 folds, each
  with a 10% validation split) instead of the TF-IDF + SGD logistic regression debug data uses: which flags better.
- leakage: 100 test rows (seeded) copied into train with case, punctuation and whitespace changes, and 100 other test
  rows of 10 or more words copied with 10% of their words edited (replaced, deleted or inserted; at least one); found
  against the planted rows, and against the findings on the clean files (which are real copies, not false positives).
- imdb: `debug data --no-label-noise` on imdb (25,000 + 24,678 reviews), wall time of the command.
- datasets: `debug data` (with label noise; goemotions is multi-label: none) on every dataset; what it finds.
Results go to benchmarks/results/debug_data.json and the marked section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from _markdown import write_section  # noqa: E402  (benchmarks/ is on sys.path when a script runs)

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "datasets"
WORK = ROOT / "benchmarks" / ".work" / "debug_data"
COMMAND = "python benchmarks/debug_data.py"
DATASETS = {  # name: (train, validation, test, extra config)
    "trec": ("train.jsonl", None, "test.jsonl", {}),
    "r8": ("train.jsonl", None, "test.jsonl", {}),
    "emotion": ("train.jsonl", "validation.jsonl", "test.jsonl", {}),
    "sst2": ("train.jsonl", "validation.jsonl", None, {}),
    "imdb": ("train.jsonl.gz", None, "test.jsonl.gz", {}),
    "spamassassin": ("train.jsonl.gz", None, "test.jsonl.gz", {}),
    "uci_sentences": ("train.jsonl", None, "test.jsonl", {}),
    "goemotions": ("train.jsonl", "validation.jsonl", "test.jsonl", {"task": "multilabel", "data": {"reader": {"type": "jsonl", "label_column": "labels"}}}),
}


def read_rows(path: Path) -> list[dict]:
    import gzip

    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def write_rows(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def config_for(name: str, train: Path | None = None, test: Path | None | str = "default") -> object:
    from textsift.config import load_config

    tr, va, te, extra = DATASETS[name]
    data = {"train": str(train or DATA / name / tr)}
    if va:
        data["validation"] = str(DATA / name / va)
    if test == "default":
        if te:
            data["test"] = str(DATA / name / te)
    elif test is not None:
        data["test"] = str(test)
    base = {"data": {**data, **extra.get("data", {})}, **{k: v for k, v in extra.items() if k != "data"}}
    return load_config(base=base)


def flip(rows: list[dict], fraction: float, seed: int) -> tuple[list[dict], set[int]]:
    """A copy of rows with ``fraction`` of labels changed uniformly to another label; the changed rows (1-based lines)."""
    rng = np.random.default_rng(seed)
    names = sorted({r["label"] for r in rows})
    idx = rng.choice(len(rows), int(round(fraction * len(rows))), replace=False)
    out = [dict(r) for r in rows]
    for i in idx:
        out[i]["label"] = str(rng.choice([n for n in names if n != rows[i]["label"]]))
    return out, {int(i) + 1 for i in idx}


def auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    from scipy.stats import rankdata

    ranks = rankdata(scores)
    n_pos, n_neg = positive.sum(), (~positive).sum()
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def score_noise(report, flipped: set[int]) -> dict:
    issues = next(c for c in report.checks if c.name == "label_noise").rows
    flagged = {r["row"] for r in issues}
    tp = len(flagged & flipped)
    noise = report.label_noise
    rows = np.array([ex.row for ex in report.noise_examples])
    positive = np.isin(rows, list(flipped))
    return {"flipped": len(flipped), "flagged": len(flagged), "true_positives": tp,
            "precision": tp / max(len(flagged), 1), "recall": tp / max(len(flipped), 1), "auroc": auroc(noise.score, positive),
            "estimated_noise": float(1 - np.trace(noise.joint))}


def run_noise(name: str, seeds: list[int]) -> list[dict]:
    from textsift.debug import debug_data

    tr = DATASETS[name][0]
    clean = debug_data(config_for(name), label_noise=True)  # the file as published: what it flags without planted flips
    out = []
    for seed in seeds:
        noisy, flipped = flip(read_rows(DATA / name / tr), 0.05, seed)
        path = write_rows(WORK / f"{name}-noisy-{seed}.jsonl", noisy)
        t = time.perf_counter()
        report = debug_data(config_for(name, path))
        seconds = time.perf_counter() - t
        out.append({"dataset": name, "seed": seed, "rows": len(noisy), "seconds": seconds,
                    "label_noise_seconds": report.timings.get("label_noise_s"), **score_noise(report, flipped),
                    "flagged_on_clean_file": len(next(c for c in clean.checks if c.name == "label_noise").rows)})
    return out


def run_models(name: str = "trec", seed: int = 0, folds: int = 5) -> list[dict]:
    """Out-of-sample probabilities from textsift's bag and linear models, then the same confident learning."""
    import logging

    from sklearn.model_selection import StratifiedKFold

    from textsift.config import load_config
    from textsift.data.example import Dataset, Example
    from textsift.data.labels import LabelSet
    from textsift.data.loading import Splits, stratified_split
    from textsift.debug.noise import confident_learning, find_label_noise
    from textsift.evaluation.metrics import softmax
    from textsift.training.run import train

    logging.getLogger("textsift").setLevel(logging.ERROR)
    rows = read_rows(DATA / name / DATASETS[name][0])
    noisy, flipped = flip(rows, 0.05, seed)
    names = sorted({r["label"] for r in noisy})
    given = np.array([names.index(r["label"]) for r in noisy])
    truth = np.isin(np.arange(1, len(noisy) + 1), list(flipped))
    examples = [Example(text=r["text"], label=r["label"], row=i + 1) for i, r in enumerate(noisy)]
    out = []

    def scored(model: str, noise, seconds: float) -> dict:
        tp = int((noise.issues & truth).sum())
        return {"dataset": name, "model": model, "folds": noise.folds, "seconds": seconds, "flagged": int(noise.issues.sum()),
                "precision": tp / max(int(noise.issues.sum()), 1), "recall": tp / int(truth.sum()), "auroc": auroc(noise.score, truth)}

    t = time.perf_counter()
    out.append(scored("tfidf+sgd (debug data)", find_label_noise([e.text for e in examples], given, names, folds=10), time.perf_counter() - t))
    t = time.perf_counter()
    out.append(scored("tfidf+sgd, 5 folds", find_label_noise([e.text for e in examples], given, names, folds=folds), time.perf_counter() - t))
    for model in ("bag", "linear"):
        config = load_config(base={"data": {"train": str(DATA / name / DATASETS[name][0])}, "model": model, "trainer": {"num_threads": 2}})
        probs = np.zeros((len(examples), len(names)))
        t = time.perf_counter()
        for train_idx, held_idx in StratifiedKFold(folds, shuffle=True, random_state=seed).split(np.zeros(len(given)), given):
            part, val = stratified_split(Dataset("fold", [examples[i] for i in train_idx]), 0.1, seed)
            result = train(config, None, splits=Splits(part, val, None, LabelSet(names)), report=False)
            probs[held_idx] = softmax(result.predictor.logits([examples[i] for i in held_idx]))
        out.append(scored(f"{model} (textsift)", confident_learning(probs, given, names, folds), time.perf_counter() - t))
    return out


_PUNCT = list(",.;:!?'\"-()")


def case_punct_space_variant(text: str, rng: np.random.Generator) -> str:
    words = text.split()
    out = []
    for w in words:
        r = rng.random()
        w = w.upper() if r < 0.3 else (w.capitalize() if r < 0.5 else w.lower())
        if rng.random() < 0.2:
            w = w + str(rng.choice(_PUNCT))
        out.append(w)
    joined = ""
    for w in out:
        joined += w + (" " * int(rng.integers(1, 4)) if rng.random() < 0.3 else " ")
    text = re.sub(r"[,.;:!?]", lambda m: "" if rng.random() < 0.5 else m.group(0), joined)
    return ("  " if rng.random() < 0.5 else "") + text.strip() + ("!!" if rng.random() < 0.3 else "")


def edited_variant(text: str, rng: np.random.Generator, vocab: list[str]) -> str:
    words = text.split()
    edits = max(1, int(len(words) * 0.10))
    for _ in range(edits):
        kind = rng.choice(["replace", "delete", "insert"])
        k = int(rng.integers(0, len(words)))
        if kind == "replace":
            words[k] = str(rng.choice(vocab))
        elif kind == "delete" and len(words) > 1:
            del words[k]
        else:
            words.insert(k, str(rng.choice(vocab)))
    return " ".join(words)


def run_leakage(name: str, seed: int = 0, n: int = 100) -> dict:
    from textsift.debug import debug_data

    rng = np.random.default_rng(seed)
    tr, _, te, _ = DATASETS[name]
    train_rows, test_rows = read_rows(DATA / name / tr), read_rows(DATA / name / te)
    clean = debug_data(config_for(name), label_noise=False)
    base_exact = {(r["row"], r["train_row"]) for c in clean.checks if c.name == "leakage_exact" for r in c.rows if r["split"] == "test"}
    base_near = {(r["row"], r["train_row"]) for c in clean.checks if c.name == "leakage_near" for r in c.rows if r["split"] == "test"}
    leaked_tests = {r for r, _ in base_exact | base_near}
    vocab = sorted({w for r in train_rows[:2000] for w in r["text"].lower().split() if w.isalpha()})
    candidates = [i for i in rng.permutation(len(test_rows)) if i + 1 not in leaked_tests]
    exact_src = candidates[:n]
    near_src = [i for i in candidates[n:] if len(test_rows[i]["text"].split()) >= 10][:n]
    planted = list(train_rows)
    exact_planted, near_planted = {}, {}
    for i in exact_src:
        planted.append({"text": case_punct_space_variant(test_rows[i]["text"], rng), "label": test_rows[i]["label"]})
        exact_planted[len(planted)] = i + 1
    for i in near_src:
        planted.append({"text": edited_variant(test_rows[i]["text"], rng, vocab), "label": test_rows[i]["label"]})
        near_planted[len(planted)] = i + 1
    path = write_rows(WORK / f"{name}-planted-{seed}.jsonl", planted)
    t = time.perf_counter()
    report = debug_data(config_for(name, path), label_noise=False)
    seconds = time.perf_counter() - t
    exact = {(r["row"], r["train_row"]) for c in report.checks if c.name == "leakage_exact" for r in c.rows if r["split"] == "test"}
    near = {(r["row"], r["train_row"]) for c in report.checks if c.name == "leakage_near" for r in c.rows if r["split"] == "test"}
    from textsift.data.checks import normalize

    # every exact finding on the clean files is a real copy (the same words after normalisation), never a false positive
    clean_exact_real = all(normalize(test_rows[r - 1]["text"]).replace(" ", "") == normalize(train_rows[t_ - 1]["text"]).replace(" ", "")
                           for r, t_ in base_exact)
    new_exact, new_near = exact - base_exact, near - base_near
    exact_found = sum(1 for trow, src in exact_planted.items() if (src, trow) in exact)
    near_found_any = {(src, trow) for trow, src in near_planted.items() if (src, trow) in near | exact}
    near_flags = {p for p in new_near | new_exact if p[1] in near_planted}
    near_true = {p for p in near_flags if near_planted[p[1]] == p[0]}
    false_new = {p for p in new_near | new_exact if p[1] not in near_planted and p[1] not in exact_planted}
    exact_false = {p for p in new_exact if p[1] in exact_planted and exact_planted[p[1]] != p[0]
                   and normalize(test_rows[p[0] - 1]["text"]).replace(" ", "") != normalize(planted[p[1] - 1]["text"]).replace(" ", "")}
    return {"dataset": name, "seconds": seconds, "clean_exact": len(base_exact), "clean_near": len(base_near),
            "clean_exact_all_real_copies": clean_exact_real,
            "exact_planted": len(exact_planted), "exact_found": exact_found, "exact_recall": exact_found / len(exact_planted),
            "exact_false_positives": len(exact_false),
            "near_planted": len(near_planted), "near_found": len(near_found_any), "near_recall": len(near_found_any) / max(len(near_planted), 1),
            "near_flags": len(near_flags | {p for p in false_new}), "near_precision": len(near_true) / max(len(near_flags | false_new), 1),
            "new_flags_on_unplanted_rows": len(false_new)}


def run_imdb() -> dict:
    cmd = [sys.executable, "-m", "textsift", "debug", "data", "--train", str(DATA / "imdb" / "train.jsonl.gz"),
           "--test", str(DATA / "imdb" / "test.jsonl.gz"), "--no-label-noise", "--json"]
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    seconds = time.perf_counter() - t
    summary = json.loads(proc.stdout)
    return {"seconds": seconds, "exit_code": proc.returncode, "summary": summary["summary"]["line"], "timings": summary["timings"]}


def sst2_inside(report) -> dict:
    """How many sst2 validation sentences equal a training phrase, and how many occur inside one (as a word span)."""
    from textsift.data.checks import normalize

    train = [normalize(r["text"]) for r in read_rows(DATA / "sst2" / "train.jsonl")]
    val = [normalize(r["text"]) for r in read_rows(DATA / "sst2" / "validation.jsonl")]
    haystack = "\n" + "\n".join(f" {t} " for t in train) + "\n"
    exact = set(train)
    return {"validation": len(val), "equal_to_a_training_phrase": sum(1 for v in val if v in exact),
            "inside_a_training_phrase": sum(1 for v in val if v and f" {v} " in haystack)}


def run_dataset(name: str) -> dict:
    from textsift.debug import debug_data

    t = time.perf_counter()
    report = debug_data(config_for(name))
    seconds = time.perf_counter() - t
    out = {"dataset": name, "seconds": seconds, "summary": report.summary_line(),
           "checks": {c.name: {"status": c.status, "message": c.message, "rows": len(c.rows),
                               "distinct_rows": len({(r.get("split"), r.get("row")) for r in c.rows})} for c in report.checks}}
    if name == "sst2":
        out["sst2_inside"] = sst2_inside(report)
    return out


def section(results: dict) -> str:
    lines = ["<!-- debug_data:start -->", "### textsift debug data: label noise, leakage, time, findings", "",
             f"Command: `{COMMAND}`  ",
             f"Machine: {platform.machine()}, 2 CPU cores (shared), Python {platform.python_version()}; measured {time.strftime('%Y-%m-%d')}.", ""]
    if results.get("noise"):
        lines += ["**Label noise** (confident learning, out-of-sample probabilities from 10-fold TF-IDF + SGD logistic regression): "
                  "train files with 5% of labels flipped uniformly at random (numpy seeds 0-2 for trec and r8, 0 for emotion); flagged = rows of label_issues.csv; time = "
                  "the whole `debug data` run on the noisy file. Target: precision and recall >= 0.6 on trec and r8; emotion under 5 minutes.", "",
                  "| dataset | seed | rows | flipped | flagged | precision | recall | ranking AUROC | estimated noise | flagged on the published file | debug data s | of it label noise s |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in results["noise"]:
            lines.append(f"| {r['dataset']} | {r['seed']} | {r['rows']:,} | {r['flipped']} | {r['flagged']} | **{r['precision']:.3f}** | **{r['recall']:.3f}** | "
                         f"{r['auroc']:.3f} | {r['estimated_noise']:.1%} | {r['flagged_on_clean_file']} | {r['seconds']:.1f} | {r['label_noise_seconds']:.1f} |")
        lines.append("")
    if results.get("models"):
        lines += ["Which model's out-of-sample probabilities flag best (trec, the same 5% flips; bag and linear trained by textsift, "
                  "each fold with a 10% validation split):", "",
                  "| probabilities from | folds | flagged | precision | recall | AUROC | seconds |", "|---|---|---|---|---|---|---|"]
        for r in results["models"]:
            lines.append(f"| {r['model']} | {r['folds']} | {r['flagged']} | {r['precision']:.3f} | {r['recall']:.3f} | {r['auroc']:.3f} | {r['seconds']:.1f} |")
        lines.append("")
    if results.get("leakage"):
        lines += ["**Leakage**: 100 test rows planted into train with case, punctuation and whitespace changes (exact after "
                  "normalisation), and 100 test rows of >= 10 words with 10% of their words replaced, deleted or inserted (near). "
                  "Findings on the clean files are real copies and are not counted against precision. Target: exact 100% with no "
                  "false positive; near recall and precision >= 95%.", "",
                  "| dataset | on clean files: exact / near | exact found | exact false positives | near found (recall) | near precision | new flags on unplanted rows | s |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in results["leakage"]:
            lines.append(f"| {r['dataset']} | {r['clean_exact']} / {r['clean_near']} | {r['exact_found']}/{r['exact_planted']} | {r['exact_false_positives']} | "
                         f"{r['near_found']}/{r['near_planted']} ({r['near_recall']:.1%}) | {r['near_precision']:.1%} | {r['new_flags_on_unplanted_rows']} | {r['seconds']:.1f} |")
        lines.append("")
    if results.get("imdb"):
        r = results["imdb"]
        t = r["timings"]
        lines += [f"**imdb** (25,000 + 24,678 reviews), `textsift debug data --train imdb/train.jsonl.gz --test imdb/test.jsonl.gz "
                  f"--no-label-noise`: **{r['seconds']:.1f} s** wall (target <= 60 s); read {t['read_s']:.1f} s, texts {t['texts_s']:.1f} s, "
                  f"leakage {t['leakage_s']:.1f} s, lengths {t['lengths_s']:.1f} s. {r['summary']}.", ""]
    if results.get("datasets"):
        lines += ["**Every dataset** (`debug data` with all checks; label noise 10-fold except multi-label goemotions). Leaks: "
                  "validation/test rows with at least one copy in train (exact: ignoring case, punctuation, whitespace; near: word Jaccard >= 0.8); "
                  "repeated: rows repeating an earlier row of their split; conflicting: rows of texts that have two labels in a split; label issues: rows of label_issues.csv (estimated noise).", "",
                  "| dataset | summary | exact leaks | near leaks | repeated texts | rows with conflicting labels | label issues | other warnings | s |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in results["datasets"]:
            c = r["checks"]
            noise = c.get("label_noise", {})
            estimated = re.search(r"estimated noise ([0-9.]+%)", noise.get("message", ""))
            issues = f"{noise.get('rows', 0)} ({estimated.group(1)})" if estimated else ("n/a" if noise.get("status") == "info" else str(noise.get("rows", 0)))
            shown = {"leakage_exact", "leakage_near", "duplicates", "conflicting_labels", "label_noise"}
            other = "; ".join(f"{name}: {v['message'].split(':')[0] if name == 'label_balance' else v['message'].split('(')[0].strip()}"
                              for name, v in c.items() if v["status"] in ("warn", "fail") and name not in shown)
            lines.append(f"| {r['dataset']} | {r['summary']} | {c.get('leakage_exact', {}).get('distinct_rows', 0)} | {c.get('leakage_near', {}).get('distinct_rows', 0)} | "
                         f"{c.get('duplicates', {}).get('rows', 0)} | {c.get('conflicting_labels', {}).get('rows', 0)} | {issues} | "
                         f"{other.replace('|', '/')} | {r['seconds']:.0f} |")
        sst = next((r["sst2_inside"] for r in results["datasets"] if "sst2_inside" in r), None)
        if sst:
            lines += ["", f"sst2: of its {sst['validation']} validation sentences, {sst['equal_to_a_training_phrase']} equal a training "
                      f"phrase and {sst['inside_a_training_phrase']} occur inside one (as a span of words, after normalisation)."]
        lines.append("")
    lines.append("<!-- debug_data:end -->")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", default=["noise", "models", "leakage", "imdb", "datasets"])
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    import logging

    logging.basicConfig(level=logging.ERROR)
    out = ROOT / "benchmarks" / "results" / "debug_data.json"
    results = json.loads(out.read_text()) if out.is_file() else {}
    if "noise" in args.parts:
        results["noise"] = []
        for name, seeds in (("trec", [0, 1, 2]), ("r8", [0, 1, 2]), ("emotion", [0])):
            results["noise"] += run_noise(name, seeds)
            print(json.dumps(results["noise"][-len(seeds):]), flush=True)
    if "models" in args.parts:
        results["models"] = run_models()
        print(json.dumps(results["models"]), flush=True)
    if "leakage" in args.parts:
        results["leakage"] = []
        for name in ("trec", "r8", "emotion"):
            results["leakage"].append(run_leakage(name))
            print(json.dumps(results["leakage"][-1]), flush=True)
    if "imdb" in args.parts:
        results["imdb"] = run_imdb()
        print(json.dumps(results["imdb"]), flush=True)
    if "datasets" in args.parts:
        results["datasets"] = []
        for name in DATASETS:
            results["datasets"].append(run_dataset(name))
            print(json.dumps(results["datasets"][-1])[:2000], flush=True)
    text = section(results)
    print(text)
    if args.no_write:
        return
    results["command"] = COMMAND
    out.write_text(json.dumps(results, indent=1))
    write_section("debug_data", text)


if __name__ == "__main__":
    main()

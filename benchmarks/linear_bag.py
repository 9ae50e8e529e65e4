"""How linear_bag's recipe was chosen: linear, bag, their averaged probabilities and linear_bag on the develop sets.

Each develop set's training file is split 90/10 (stratified, seed 0, as bag_vs_peers.py splits it): the 90% trains,
the 10% is the validation data, the test file scores. Printed per dataset: test (and validation) accuracy of
``model: linear``, ``model: bag``, the average of their probabilities at several linear weights (the two trained
apart, each with its own tokenizer), and ``model: linear_bag`` as it trains by default (all epochs, the last kept)
and with its epoch chosen by the average's validation accuracy.

    python benchmarks/linear_bag.py [--datasets sst2 r8 trec emotion]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import bag_vs_peers as peers  # noqa: E402

WEIGHTS = (0.5, 0.6, 0.75, 0.85)


def main() -> None:
    import textsift
    from textsift.data.loading import examples_from_texts

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["sst2", "r8", "trec", "emotion"], choices=list(peers.FILES))
    args = parser.parse_args()
    results = {}
    for name in args.datasets:
        _, _, fit, val, test = peers.split_data(name)

        def data(split):
            return [e.text for e in split.examples], [e.label for e in split.examples]

        row, probs = {}, {}
        for model in ("linear", "bag"):
            result = textsift.train({"seed": 0, "model": {"type": model}}, train=data(fit), validation=data(val), report=False)
            p = result.predictor
            probs[model] = [p.probabilities(p.logits(examples_from_texts(data(s)[0]))) for s in (val, test)]
            names = p.label_names
        truth = [np.array([names.index(label) for label in data(s)[1]]) for s in (val, test)]
        for w in (1.0, 0.0, *WEIGHTS):
            val_acc, test_acc = (float(((w * probs["linear"][i] + (1 - w) * probs["bag"][i]).argmax(1) == truth[i]).mean())
                                 for i in (0, 1))
            key = {1.0: "linear", 0.0: "bag"}.get(w, f"average {w}")
            row[key] = {"val": round(val_acc, 4), "test": round(test_acc, 4)}
        for key, trainer in (("linear_bag", {}), ("linear_bag, best epoch", {"early_stopping": {"patience": 2}, "restore_best": True})):
            result = textsift.train({"seed": 0, "model": {"type": "linear_bag"}, "trainer": trainer}, train=data(fit),
                                    validation=data(val), test=data(test), report=False)
            row[key] = {"val": round(result.state.best_metric if trainer else result.state.history[-1]["val/accuracy"], 4),
                        "test": round(result.metrics["test/accuracy"], 4)}
        results[name] = row
        print(name, json.dumps(row), flush=True)
    out = Path(__file__).parent / "results" / "linear_bag.json"
    saved = json.loads(out.read_text()) if out.is_file() else {}
    out.write_text(json.dumps({**saved, **results}, indent=1) + "\n")


if __name__ == "__main__":
    main()

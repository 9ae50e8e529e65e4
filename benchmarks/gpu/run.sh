#!/usr/bin/env bash
# The GPU figures of issue #18, in one run of about 7 minutes on one H100/H200-class GPU; SWEEP=1 adds the
# fine-tuning recipe sweep of #17 (12 runs at once, about 2 more minutes).
#
# Here first (with the package registry): python benchmarks/gpu/prepare.py   -> .gpu/ (git-ignored, about 57 MiB)
# There, from the repository root, with .gpu carried:  bash benchmarks/gpu/run.sh
# Results: $OUT (default benchmarks/gpu/out): run.log, nvidia-smi.txt, throughput.json, minilm_2ep.json,
# flax_imdb.json, sweep.jsonl. Each part has its own time limit, so one that fails or overruns loses only its figures.
set -u
cd "$(dirname "$0")/../.."
OUT=${OUT:-benchmarks/gpu/out}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/run.log") 2>&1
stamp() { echo "== $(date -u +%H:%M:%S) $*"; }

stamp setup
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/whl/*.whl || exit 1
export PYTHONPATH=$PWD/src:/tmp/site PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1
export XLA_PYTHON_CLIENT_PREALLOCATE=false  # jax would otherwise take 75% of the GPU in every process that imports it
python3 benchmarks/gpu/prepare.py --unpack /tmp/minilm || exit 1
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
python3 -c "import torch, transformers, jax, flax; print('torch', torch.__version__, torch.cuda.get_device_name(0), 'transformers', transformers.__version__, 'jax', jax.__version__, jax.devices(), 'flax', flax.__version__)"

stamp "throughput: BERT-base-sized encoder, textsift vs Trainer, bf16"
timeout -k 5 330 python3 benchmarks/gpu/throughput.py --tokenizer /tmp/minilm --data .gpu/emotion --json "$OUT/throughput.json"

stamp "MiniLM on emotion, 2 epochs, bf16: textsift and Trainer (length grouping, bf16)"
timeout -k 5 100 python3 benchmarks/finetune_vs_trainer.py --device cuda --encoder /tmp/minilm --data .gpu/emotion \
  --epochs 2 --systems textsift,trainer_grouped_bf16 --json "$OUT/minilm_2ep.json"

stamp "flax CNN of examples/imdb/flax_cnn.yaml on the imdb subset (10,000 train / 5,000 test)"
rm -rf /tmp/imdb_flax
start=$(date +%s)
timeout -k 5 90 python3 -m textsift train examples/imdb/flax_cnn.yaml --output /tmp/imdb_flax \
  --set data.train=$PWD/.gpu/imdb/train.jsonl.gz --set data.test=$PWD/.gpu/imdb/test.jsonl.gz
python3 - "$OUT/flax_imdb.json" "$(( $(date +%s) - start ))" <<'EOF'
import json, sys
from pathlib import Path
run = Path("/tmp/imdb_flax")
out = {"wall_s": float(sys.argv[2])}
for name in ("metrics.json", "model/meta.json"):
    if (run / name).exists():
        out[name] = json.loads((run / name).read_text())
if (run / "metrics.jsonl").exists():
    keep = ("epoch", "train/examples_per_s", "train/loss", "val/accuracy", "val/loss")
    out["epochs"] = [{k: r.get(k) for k in keep} for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
                     if r.get("event") == "epoch"]
Path(sys.argv[1]).write_text(json.dumps(out, indent=1, default=str))
print("flax imdb:", out.get("metrics.json", {}).get("test/accuracy"), "wall", out["wall_s"])
EOF

[ "${SWEEP:-0}" = 1 ] || { stamp done; exit 0; }
stamp "recipe sweep (#17): MiniLM on emotion, 3 epochs, bf16, 4 recipes x 3 seeds, all at once"
rm -rf /tmp/sweep && mkdir -p /tmp/sweep
recipes=(
  "base|"
  "decay1|--set model.layer_lr_decay=1.0"
  "pooler|--set model.layer_lr_decay=1.0 --set model.pooling=pooler --set model.head.dropout=0.1"
  "cls|--set model.layer_lr_decay=1.0 --set model.pooling=cls"
)
jobs=()
for seed in 0 1 2; do
  for recipe in "${recipes[@]}"; do
    jobs+=("${recipe%%|*}|$seed|${recipe#*|}")
  done
done
run_one() {
  IFS='|' read -r name seed sets <<<"$1"
  # shellcheck disable=SC2086
  timeout -k 5 140 python3 benchmarks/finetune_vs_trainer.py --device cuda --encoder /tmp/minilm --data .gpu/emotion \
    --systems textsift --seed "$seed" $sets --json "/tmp/sweep/$name-$seed.json" > "/tmp/sweep/$name-$seed.log" 2>&1
  echo "$name seed $seed: exit $?"
  # a line per finished run, so that a cut sweep keeps what finished
  python3 -c "import json,sys; r=json.load(open(sys.argv[1])).get('textsift') or {}; print(json.dumps({'run': sys.argv[2], **{k: r.get(k) for k in ('val_accuracy','accuracy','macro_f1','examples_per_s','wall_s','settings','pooling')}}))" \
    "/tmp/sweep/$name-$seed.json" "$name-$seed" >> "$OUT/sweep.jsonl" 2>/dev/null
}
export -f run_one
export OUT
printf '%s\n' "${jobs[@]}" | xargs -P 12 -I{} bash -c 'run_one "$@"' _ {}
cat "$OUT/sweep.jsonl"
tail -n 3 /tmp/sweep/*.log | grep -i error | head -20
stamp done

"""The fine-tuning benchmark (textsift vs transformers.Trainer) in its smoke mode, so that the script cannot rot."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "finetune_vs_trainer.py"


def test_smoke_mode_trains_every_system_and_writes_only_its_json(tmp_path):
    benchmarks_md = (ROOT / "BENCHMARKS.md").read_text()
    results = {p.name: p.read_bytes() for p in (ROOT / "benchmarks" / "results").iterdir()}
    out = tmp_path / "smoke.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--json", str(out)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["job"]["smoke"] is True and result["job"]["epochs"] == 1
    for name in ("textsift", "trainer_grouped", "trainer_padded"):
        row = result[name]
        assert row["examples_per_s"] > 0 and row["wall_s"] > 0, name
        assert 0.0 <= row["accuracy"] <= 1.0 and 0.0 <= row["macro_f1"] <= 1.0, name
    assert len(result["textsift"]["per_epoch"]) == 1  # one epoch, its throughput measured
    # the peer is configured as the benchmark says: length grouping and the fused optimizer
    assert result["trainer_grouped"]["sampling"] == "group_by_length"
    assert result["trainer_padded"]["sampling"] == "random"
    assert result["trainer_grouped"]["optim"] == result["trainer_padded"]["optim"] == "adamw_torch_fused"
    assert result["trainer_grouped"]["precision"] == result["trainer_padded"]["precision"] == "fp32"
    table = [line for line in result["markdown"].splitlines() if line.startswith("| ")]
    assert "group_by_length" in table[2] and "fp32 (the peer)" in table[2] and "padding per batch" in table[-1]
    # textsift trains as the example config says (bf16: autocast where the CPU has native bf16, else fp32); when it
    # trained in bf16, Trainer with bf16=True is measured too, as a labelled extra row, and the verdict names it
    from textsift.backends.torch.trainer import cpu_has_native_bf16

    bf16 = cpu_has_native_bf16()
    assert result["textsift"]["precision"] == ("bf16" if bf16 else "fp32")
    assert ("trainer_grouped_bf16" in result) == bf16 and len(table) == (5 if bf16 else 4)
    if bf16:
        assert result["trainer_grouped_bf16"]["precision"] == "bf16" and "bf16=True" in table[3]
        assert "at equal precision, the ratio is" in result["markdown"]
    assert "SMOKE run" in result["markdown"] and "not judged here" in result["markdown"]
    # a smoke run writes neither BENCHMARKS.md nor benchmarks/results
    assert (ROOT / "BENCHMARKS.md").read_text() == benchmarks_md
    assert {p.name: p.read_bytes() for p in (ROOT / "benchmarks" / "results").iterdir()} == results

"""The GPU throughput benchmark (benchmarks/gpu/throughput.py) in its smoke mode on the CPU, so that the script the
GPU machine runs cannot rot between the sessions that have one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu" / "throughput.py"


def test_every_row_runs_in_its_own_process_and_is_timed(tmp_path, tiny_bert):
    data = tmp_path / "data"
    data.mkdir()
    texts = ["a happy day in the sun", "an awful sad day", "so angry at the rain today", "i fear the dark night"]
    (data / "train.jsonl").write_text("".join(json.dumps({"text": t, "label": str(i % 2)}) + "\n" for i, t in enumerate(texts * 8)))
    out = tmp_path / "throughput.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--tokenizer", str(tiny_bert), "--data", str(data),
                           "--json", str(out), "--only", "emotion:8"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["fresh_process_per_row"] is True and result["non_embedding_params"] > 0
    rows = {row["system"]: row for row in result["rows"]}
    assert set(rows) == {"textsift", "trainer", "textsift_compile"}
    for name, row in rows.items():
        assert "error" not in row, (name, row.get("error"))
        assert row["kind"] == "emotion" and row["batch"] == 8 and row["examples_per_s"] > 0 and row["seconds"] > 0, name
        assert 0 < row["mfu"] < 1 and row["mean_tokens"] > 2, name

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from textsift.cli.app import app
from textsift.cli import commands  # noqa: F401

from conftest import TINY, write_jsonl

runner = CliRunner()


def run(*args: str, input: str | None = None):
    return runner.invoke(app, list(args), input=input)


def one_error_line(result) -> str:
    assert result.exit_code == 1, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.output + result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    data = write_jsonl(tmp / "tiny.jsonl", [{"text": t, "label": l} for t, l in TINY])
    result = run("-q", "train", "--train", str(data), "--validation", str(data), "--test", str(data), "--model", "bag",
                 "--output", str(tmp / "run"), "--set", "trainer.epochs=30", "--set", "trainer.early_stopping=null")
    assert result.exit_code == 0, result.output + result.stderr
    assert "test accuracy: 1.0000" in result.stdout
    return tmp / "run", data


def test_train_without_config_file_and_evaluate_json(trained_run):
    run_dir, data = trained_run
    result = run("evaluate", str(run_dir / "model"), str(data), "--json")
    assert result.exit_code == 0
    metrics = json.loads(result.stdout)
    assert metrics["test/accuracy"] == 1.0 and metrics["test/per_label/pos/support"] == 8.0
    # the run directory works as well as the model directory inside it
    assert json.loads(run("evaluate", str(run_dir), str(data), "--json").stdout) == metrics


def test_predict_csv_jsonl_topk_and_stdin(trained_run, tmp_path):
    run_dir, data = trained_run
    out = tmp_path / "preds.csv"
    assert run("predict", str(run_dir), str(data), "--output", str(out)).exit_code == 0
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 16 and list(rows[0]) == ["row", "text", "label", "p_neg", "p_pos"]
    assert [r["label"] for r in rows] == [l for _, l in TINY]
    out = tmp_path / "preds.jsonl"
    assert run("predict", str(run_dir), str(data), "-o", str(out), "--top-k", "1", "--chunk-size", "5").exit_code == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 16 and records[0]["top_k"][0]["label"] == records[0]["label"]
    result = run("predict", str(run_dir), "-", input="\ufeffwhat a happy day\nawful dreadful film\n")
    lines = [json.loads(x) for x in result.stdout.splitlines()]
    assert [x["text"] for x in lines] == ["what a happy day", "awful dreadful film"]  # a byte order mark is not text
    assert abs(sum(lines[0]["probabilities"].values()) - 1) < 1e-5


def test_predict_reads_files_without_labels(trained_run, tmp_path):
    run_dir, _ = trained_run
    path = tmp_path / "unlabeled.csv"
    path.write_text("text\nhappy day\nsad day\n")
    out = tmp_path / "p.jsonl"
    result = run("predict", str(run_dir), str(path), "-o", str(out))
    assert result.exit_code == 0, result.stderr
    assert len(out.read_text().splitlines()) == 2


def test_a_model_trained_on_json_lines_reads_a_csv_file_by_its_name(tmp_path, tiny_jsonl, tiny_csv):
    """The README's quick start predicts a .csv with a model whose config says reader: jsonl: that reader failed on
    the file's first line ('not valid JSON'). A file whose name says another format is read in that format."""
    out = tmp_path / "run"
    result = run("-q", "train", "--train", str(tiny_jsonl), "--validation", str(tiny_jsonl), "--model", "bag", "-o", str(out),
                 "--set", "data.reader.type=jsonl", "--set", "trainer.epochs=30", "--set", "trainer.early_stopping=null")
    assert result.exit_code == 0, result.output + result.stderr
    assert "type: jsonl" in (out / "model" / "config.yaml").read_text()
    predictions = tmp_path / "p.jsonl"
    result = run("predict", str(out), str(tiny_csv), "-o", str(predictions))
    assert result.exit_code == 0, result.stderr
    assert [json.loads(line)["label"] for line in predictions.read_text().splitlines()] == [label for _, label in TINY]
    result = run("evaluate", str(out), str(tiny_csv), "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["test/accuracy"] == 1.0
    # --reader still forces the model's (or any) format
    assert "not valid JSON" in one_error_line(run("evaluate", str(out), str(tiny_csv), "--reader", "jsonl"))


def test_inspect(trained_run):
    run_dir, _ = trained_run
    info = json.loads(run("inspect", str(run_dir), "--json").stdout)
    assert info["model"] == "bag" and info["labels"] == ["neg", "pos"]
    assert info["parameters"]["total"] == sum(info["parameters"]["per_module"].values()) > 0
    assert info["size_on_disk_bytes"] > 0 and "model.safetensors" in info["files"]
    assert info["training"]["epochs"] == 30
    text = run("inspect", str(run_dir)).stdout
    assert "parameters" in text and "embedding" in text


def test_config_show_and_schema(tmp_path, tiny_jsonl):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"data: {{train: {tiny_jsonl}}}\nmodel: cnn\n")
    result = run("config", "show", str(cfg), "--set", "model.channels=7")
    assert result.exit_code == 0
    assert "channels: 7" in result.stdout and "kernel_size: 3" in result.stdout and "optimizer:" in result.stdout
    schema = json.loads(run("config", "schema").stdout)
    assert "data" in schema["properties"]


# --- broken inputs: one clear line, no traceback, nothing already written lost ----------------


def test_missing_column(tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", [{"sentence": "hi", "label": "a"}])
    line = one_error_line(run("train", "--train", str(data), "-o", str(tmp_path / "r")))
    assert "no column 'text'" in line and "d.jsonl" in line and "sentence" in line


def test_empty_text(tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", [{"text": "hi", "label": "a"}, {"text": "", "label": "b"}])
    assert "row 2: the text (column 'text') is empty" in one_error_line(run("train", "--train", str(data), "-o", str(tmp_path / "r")))


def test_label_not_in_label_set(tmp_path, tiny_jsonl):
    line = one_error_line(run("train", "--train", str(tiny_jsonl), "-o", str(tmp_path / "r"), "--set", "data.labels=[pos,neutral]"))
    assert "label 'neg' is not in the label set [pos, neutral]" in line and "row 9" in line


def test_latin1_file_read_as_utf8(tmp_path):
    data = tmp_path / "d.csv"
    data.write_bytes("text,label\ngood,pos\nna\xefve,neg\n".encode("latin-1"))
    line = one_error_line(run("train", "--train", str(data), "-o", str(tmp_path / "r")))
    assert "line 3" in line and "utf-8" in line and "data.reader.encoding" in line


def test_typo_in_a_config_key(tmp_path, tiny_jsonl):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"data: {{train: {tiny_jsonl}}}\ntrainer: {{bacth_size: 8}}\n")
    line = one_error_line(run("train", str(cfg), "-o", str(tmp_path / "r")))
    assert "unknown setting 'trainer.bacth_size'. Did you mean 'batch_size'?" in line
    assert line.startswith(f"error: {cfg}: ")
    # a typo in --set is the command line's, not the file's
    cfg.write_text(f"data: {{train: {tiny_jsonl}}}\n")
    line = one_error_line(run("train", str(cfg), "-o", str(tmp_path / "r"), "--set", "trainer.epoch=2"))
    assert line.startswith("error: --set trainer.epoch=2: unknown setting 'trainer.epoch'. Did you mean 'epochs'?"), line


def test_unknown_model_type(tmp_path, tiny_jsonl):
    line = one_error_line(run("train", "--train", str(tiny_jsonl), "--model", "cnm", "-o", str(tmp_path / "r")))
    assert "Unknown model 'cnm'. Did you mean 'cnn'?" in line


def test_model_directory_missing_its_weights(trained_run, tmp_path):
    run_dir, data = trained_run
    broken = tmp_path / "model"
    shutil.copytree(run_dir / "model", broken)
    (broken / "model.safetensors").unlink()
    before = sorted(p.name for p in broken.iterdir())
    line = one_error_line(run("evaluate", str(broken), str(data)))
    assert "missing model.safetensors (the model weights)" in line
    assert sorted(p.name for p in broken.iterdir()) == before


def test_damaged_weights(trained_run, tmp_path):
    run_dir, data = trained_run
    broken = tmp_path / "model"
    shutil.copytree(run_dir / "model", broken)
    (broken / "model.safetensors").write_bytes(b"not safetensors")
    assert "cannot load the weights" in one_error_line(run("predict", str(broken), str(data)))


def test_existing_output_is_kept(tmp_path, tiny_jsonl):
    out = tmp_path / "r"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert "already holds files" in one_error_line(run("train", "--train", str(tiny_jsonl), "-o", str(out)))
    assert (out / "keep.txt").read_text() == "mine"


def test_failed_predict_leaves_an_existing_output_file_alone(trained_run, tmp_path):
    run_dir, _ = trained_run
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"text": "fine"}, {"text": ""}])
    out = tmp_path / "p.jsonl"
    out.write_text("previous results\n")
    assert "already exists; pass --overwrite" in one_error_line(run("predict", str(run_dir), str(bad), "-o", str(out)))
    assert "row 2" in one_error_line(run("predict", str(run_dir), str(bad), "-o", str(out), "--overwrite"))
    assert out.read_text() == "previous results\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".p.jsonl")] == []


def test_no_config_and_no_train_file():
    assert "Give a config file, or at least --train" in one_error_line(run("train"))


def test_console_script_runs_as_a_process(tmp_path, tiny_jsonl):
    """The real entry point: a bad config gives one line on stderr, exit 1, no traceback."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"data: {{train: {tiny_jsonl}}}\nmodel: {{type: bag, embed_dimm: 3}}\n")
    proc = subprocess.run([sys.executable, "-m", "textsift", "train", str(cfg)], capture_output=True, text=True)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and "Did you mean 'embed_dim'" in proc.stderr
    assert len([x for x in proc.stderr.splitlines() if x.strip()]) <= 3  # one message, soft-wrapped at most


def test_serve_and_export_without_their_extras_say_what_to_install(trained_run, monkeypatch):
    """serve without FastAPI printed a 30-line traceback ending in ModuleNotFoundError."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in ("fastapi", "onnxscript") else real(name, *a))
    run_dir, _ = trained_run
    line = one_error_line(run("serve", str(run_dir), "--port", "9"))
    assert "textsift serve needs fastapi, not installed: pip install -e '.[serve]'" in line
    assert "pip install -e '.[onnx]'" in one_error_line(run("export", str(run_dir), "--format", "onnx"))
